"""The real kernel's `xt_recent` against `RecentTables` + `traverse`: same rules, same packets.

Throw-away namespaces `eksnet-lab-scratch-<random>-recent{,2,-kp}`. In the first, UDP
datagrams from addresses on `lo` to 127.0.0.1 pass filter OUTPUT rules that each exercise one
`recent` option (target-less rules: they only count, every packet meets every rule). The model
walks the same packets through the same rules, each at the time (`now`) it was sent, carrying
its `RecentTables` from packet to packet. Then the rule counters (`iptables-save -c`) and every
list (`/proc/net/xt_recent/NAME`: addresses, TTL, ring position, number of stamps) must be
what the model says. A second namespace with the same rules must have empty lists (lists are
per namespace). In the third, kube-proxy's ClientIP affinity rules in nat OUTPUT: the first
connection goes to either endpoint, every later one (as the model predicts: one outcome) to
the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from tests.kernel.test_netfilter_recent import AFFINITY

from eksnet.kernel.netfilter import NfEnv, NfPacket, RecentTables, Ruleset, parse_ruleset, traverse

pytestmark = pytest.mark.lab

A = IPv4Address
LOOPBACK = A("127.0.0.1")

RULES = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p udp -m udp --dport 1001 -m recent --set --name SETL --mask 255.255.255.255 --rsource
-A OUTPUT -p udp -m udp --dport 1002 -m recent --rcheck --seconds 2 --reap --name SETL --mask 255.255.255.255 --rsource
-A OUTPUT -p udp -m udp --dport 1003 -m recent --rcheck --name SETL --mask 255.255.255.255 --rsource
-A OUTPUT -p udp -m udp --dport 1004 -m recent --set --name MASKED --mask 255.255.255.0 --rsource
-A OUTPUT -p udp -m udp --dport 1005 -m recent --rcheck --seconds 100 --hitcount 3 --name SETL --mask 255.255.255.255 --rsource
-A OUTPUT -p udp -m udp --dport 1006 -m recent ! --update --seconds 2 --name SETL --mask 255.255.255.255 --rsource
-A OUTPUT -p udp -m udp --dport 1007 -m recent --remove --name SETL --mask 255.255.255.255 --rsource
-A OUTPUT -p udp -m udp --dport 1008 -m recent --set --name DEST --mask 255.255.255.255 --rdest
-A OUTPUT -p udp -m udp --dport 1009 -m recent --rcheck --rttl --name SETL --mask 255.255.255.255 --rsource
-A OUTPUT -p udp -m udp --dport 1010 -m recent --set --name FULL --mask 255.255.255.255 --rsource
COMMIT
"""

Step = tuple[int, int, int]
"""(last octet of the source 10.2.0.x, destination port, TTL)."""

BEFORE_THE_WAIT: list[Step] = [
    (1, 1001, 64), (1, 1001, 64), (1, 1003, 64), (2, 1003, 64), (2, 1001, 64),  # set, rcheck
    (6, 1001, 64),  # for `! --update` after the wait
]  # fmt: skip
AFTER_THE_WAIT: list[Step] = [
    (2, 1002, 64), (2, 1002, 64),  # --reap: .1 (the LRU head, stale) then .2 itself
    (6, 1006, 64), (6, 1006, 64), (77, 1006, 64),  # ! --update: stale, fresh, absent
    (3, 1001, 64), (3, 1001, 64), (3, 1001, 64), (3, 1005, 64), (4, 1001, 64), (4, 1005, 64),
    (3, 1004, 64), (77, 1004, 64),  # --mask 255.255.255.0
    (3, 1008, 64),  # --rdest
    (4, 1007, 64),  # --remove
    (5, 1001, 10), (5, 1009, 10), (5, 1009, 11),  # --rttl
    *((host, 1010, 64) for host in range(1, 101)), (1, 1010, 64), (101, 1010, 64),  # full list
]  # fmt: skip
WAIT = 2.4
"""Longer than the rules' `--seconds 2`, with room for the machine's noise."""


def sh(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def require_capabilities() -> None:
    """Fail loudly (never skip) when the machine cannot run the lab."""
    if os.geteuid() != 0:
        pytest.fail("lab test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create namespaces")
    missing = [
        tool for tool in ("ip", "iptables-restore", "conntrack") if shutil.which(tool) is None
    ]
    if missing:
        pytest.fail(f"lab test needs {', '.join(missing)} on PATH")
    if not Path("/sys/module/xt_recent").exists():
        sh("modprobe", "xt_recent")


@pytest.fixture()
def scratch() -> Iterator[str]:
    require_capabilities()
    base = f"eksnet-lab-scratch-{uuid.uuid4().hex[:8]}"
    created: list[str] = []
    try:
        for suffix in ("recent", "recent2", "kp"):
            sh("ip", "netns", "add", f"{base}-{suffix}")
            created.append(f"{base}-{suffix}")
            sh("ip", "-n", f"{base}-{suffix}", "link", "set", "lo", "up")
        yield base
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


SENDER = """\
import json, socket, sys, time
steps = json.loads(sys.argv[1])
wait = float(sys.argv[2])
sent = []
for index, (host, port, ttl) in enumerate(steps):
    if host is None:
        time.sleep(wait)
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((f"10.2.0.{host}", 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    sent.append(time.monotonic())
    s.sendto(b"eksnet", ("127.0.0.1", port))
    s.close()
print(json.dumps(sent))
"""


@dataclass(frozen=True)
class ProcEntry:
    address: IPv4Address
    ttl: int
    index: int
    stamps: int


def proc_lists(namespace: str, names: list[str]) -> dict[str, set[ProcEntry]]:
    """`/proc/net/xt_recent/NAME` read inside `namespace` (the view is per namespace)."""
    found: dict[str, set[ProcEntry]] = {}
    for name in names:
        text = sh("ip", "netns", "exec", namespace, "cat", f"/proc/net/xt_recent/{name}")
        entries = set()
        for line in text.splitlines():
            words = line.replace(",", "").split()
            # src=10.2.0.1 ttl: 64 last_seen: 4297112886 oldest_pkt: 2 4297112886 4297112886
            entries.add(ProcEntry(A(words[0][4:]), int(words[2]), int(words[6]), len(words) - 7))
        found[name] = entries
    return found


def model_lists(tables: RecentTables, names: list[str]) -> dict[str, set[ProcEntry]]:
    return {
        name: {
            ProcEntry(entry.address, entry.ttl, entry.index, len(entry.stamps))
            for entry in (tables.get(name).entries if tables.get(name) else ())  # type: ignore[union-attr]
        }
        for name in names
    }


def counters(namespace: str) -> dict[int, int]:
    saved = parse_ruleset(sh("ip", "netns", "exec", namespace, "iptables-save", "-c"))
    return {
        rule.position: rule.counters[0] if rule.counters else 0
        for rule in saved.rules()
        if rule.chain == "OUTPUT" and rule.table == "filter"
    }


def test_kernel_lists_and_counters_agree_with_the_model(scratch: str) -> None:
    namespace, other = f"{scratch}-recent", f"{scratch}-recent2"
    batch = "".join(f"addr add 10.2.0.{host}/32 dev lo\n" for host in range(1, 102))
    sh("ip", "-n", namespace, "-batch", "-", stdin=batch)
    for name in (namespace, other):
        sh("ip", "netns", "exec", name, "iptables-restore", stdin=RULES)
    capacity = int(Path("/sys/module/xt_recent/parameters/ip_list_tot").read_text())

    steps: list[tuple[int | None, int, int]] = [*BEFORE_THE_WAIT, (None, 0, 0), *AFTER_THE_WAIT]
    out = sh(
        "ip", "netns", "exec", namespace, sys.executable, "-c", SENDER, json.dumps(steps), str(WAIT)
    )
    times = json.loads(out)
    sent = [step for step in steps if step[0] is not None]
    assert len(times) == len(sent)

    ruleset = parse_ruleset(RULES)
    env = NfEnv(addr_type=lambda address, device: "LOCAL")
    tables = RecentTables(capacity=capacity)
    predicted = {rule.position: 0 for rule in ruleset.rules()}
    for (host, port, ttl), now in zip(sent, times, strict=True):
        assert host is not None
        packet = NfPacket.new_connection(
            A(f"10.2.0.{host}"), LOOPBACK, "udp", 40000, port, oif="lo", ttl=ttl
        )
        (outcome,) = traverse(
            ruleset, "filter", "OUTPUT", packet, replace(env, now=now), recent=tables
        )
        tables = outcome.recent
        for _, _, position in outcome.matched():
            predicted[position] += 1

    assert counters(namespace) == predicted
    names = ["SETL", "MASKED", "DEST", "FULL"]
    assert proc_lists(namespace, names) == model_lists(tables, names)
    assert len(tables.addresses("FULL")) == capacity  # the 101st address evicted one
    assert A("10.2.0.2") not in tables.addresses("FULL")  # .1 was refreshed: .2 went
    assert proc_lists(other, names) == {name: set() for name in names}  # per namespace


AFFINITY_OUTPUT = (
    AFFINITY.replace("-A PREROUTING ", "-A OUTPUT ")
    .replace("10.0.1.23", "10.3.0.1")
    .replace("10.0.2.57", "10.3.0.2")
    .replace("-p tcp", "-p udp")
    .replace("-m tcp", "-m udp")
)


def test_affinity_sticks_on_the_kernel_as_the_model_says(scratch: str) -> None:
    namespace = f"{scratch}-kp"
    for address in ("10.3.0.1", "10.3.0.2", "10.0.3.30"):
        sh("ip", "-n", namespace, "addr", "add", f"{address}/32", "dev", "lo")
    # a route for the ClusterIP, so the socket can send before nat OUTPUT rewrites it
    sh("ip", "-n", namespace, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    sh("ip", "-n", namespace, "link", "set", "d0", "up")
    sh("ip", "-n", namespace, "link", "set", "d1", "up")
    sh("ip", "-n", namespace, "route", "add", "172.20.0.0/16", "dev", "d0")
    sh("ip", "netns", "exec", namespace, "iptables-restore", stdin=AFFINITY_OUTPUT)
    ruleset: Ruleset = parse_ruleset(AFFINITY_OUTPUT)
    env = NfEnv(addr_type=lambda address, device: "LOCAL")
    tables = RecentTables()
    start = time.monotonic()
    for sport in range(41000, 41006):
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind(('10.0.3.30', {sport}))\n"
            "s.sendto(b'eksnet', ('172.20.10.10', 80))\n"
        )
        sh("ip", "netns", "exec", namespace, sys.executable, "-c", code)
        line = sh("ip", "netns", "exec", namespace, "conntrack", "-L", "-p", "udp",
                  "--orig-port-src", str(sport))  # fmt: skip
        endpoint = A(next(w for w in line.split() if w.startswith("src=") and "10.3.0" in w)[4:])
        packet = NfPacket.new_connection(A("10.0.3.30"), A("172.20.10.10"), "udp", sport, 80,
                                         oif="d0")  # fmt: skip
        outcomes = traverse(
            ruleset, "nat", "OUTPUT", packet, replace(env, now=time.monotonic() - start),
            recent=tables,
        )  # fmt: skip
        if sport == 41000:
            assert len(outcomes) == 2  # the first connection is a draw
        else:
            assert len(outcomes) == 1  # later ones stick (an rcheck rule matches)
        chosen = [o for o in outcomes if o.nat is not None and o.nat.to_address == endpoint]
        assert len(chosen) == 1, (line, outcomes)
        tables = chosen[0].recent
    lists = proc_lists(namespace, ["KUBE-SEP-A", "KUBE-SEP-B"])
    assert {name: {e.address for e in entries} for name, entries in lists.items()} == {
        name: set(tables.addresses(name)) for name in ("KUBE-SEP-A", "KUBE-SEP-B")
    }
