"""SCTP on the real kernel against the model: conntrack states and `-m sctp` counters.

The lab has no SCTP sockets (no sctp module), so the packets are written by hand on raw
sockets (common header, one chunk, CRC32c, which conntrack checks at PREROUTING). Throw-away
namespaces `eksnet-lab-scratch-<random>-{c,n,s}`: a client `c` (10.9.1.2), a forwarding node
`n` that DNATs 172.20.0.5:9000 to 10.9.2.2:9100 and counts packets with target-less `-m sctp`
and `-m conntrack` rules in FORWARD, and a server `s` (10.9.2.2). Client and server drop SCTP
in INPUT, so no ICMP errors come back through the node. After each packet of an association's
handshake, the node's `conntrack -L` line and the counters must be the model's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address

import pytest

from eksnet.kernel.conntrack import (
    ConntrackTable,
    SctpChunk,
    Tuple,
    apply_nat,
    conntrack_in,
    conntrack_list_line,
    nat_rewrite_at,
    null_binding,
)
from eksnet.kernel.hooks import Hook
from eksnet.kernel.netfilter import NfEnv, NfPacket, parse_ruleset, traverse

pytestmark = pytest.mark.lab

A = IPv4Address
CLIENT, SERVER, SERVICE = A("10.9.1.2"), A("10.9.2.2"), A("172.20.0.5")

NODE_RULES = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 172.20.0.5/32 -p sctp -m sctp --dport 9000 -j DNAT --to-destination 10.9.2.2:9100
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p sctp -m sctp --dport 9100
-A FORWARD -p sctp -m sctp --sport 9100
-A FORWARD -p sctp -m sctp --chunk-types any INIT
-A FORWARD -p sctp -m sctp --chunk-types only INIT
-A FORWARD -p sctp -m sctp --chunk-types any INIT_ACK
-A FORWARD -p sctp -m sctp --chunk-types any DATA:E
-A FORWARD -p sctp -m sctp --chunk-types all DATA:Be
-A FORWARD -p sctp -m sctp ! --chunk-types any COOKIE_ECHO,COOKIE_ACK
-A FORWARD -m conntrack --ctstate NEW
-A FORWARD -m conntrack --ctstate ESTABLISHED
-A FORWARD -m conntrack --ctstate INVALID
-A FORWARD -m conntrack --ctstate DNAT
-A FORWARD -p sctp -m multiport --dports 9100,9000
COMMIT
"""

DROP_SCTP = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p sctp -j DROP\nCOMMIT\n"

SENDER = r"""
import socket, struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
src, dst, sport, dport, vtag, kind, flags, tag = sys.argv[1:9]
kind, flags, tag = int(kind), int(flags), int(tag)
if kind in (1, 2):  # INIT / INIT_ACK: tag, a_rwnd, streams, initial TSN
    chunk = struct.pack("!BBHIIHHI", kind, flags, 20, tag, 65535, 10, 10, 1)
elif kind == 0:  # DATA: TSN, stream, sequence, PPID, 4 bytes of data
    chunk = struct.pack("!BBHIHHI", kind, flags, 20, 1, 0, 0, 0) + b"abcd"
else:
    chunk = struct.pack("!BBH", kind, flags, 8) + b"cook"
header = struct.pack("!HHII", int(sport), int(dport), int(vtag), 0)
checksum = struct.pack("<I", crc32c(header + chunk))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_SCTP)
s.bind((src, 0))
s.sendto(header[:8] + checksum + chunk, (dst, 0))
"""

INIT_TAG, ACK_TAG = 0x1234, 0x5678


@dataclass(frozen=True)
class Send:
    """One packet: who sends it, its ports, verification tag and single chunk."""

    namespace: str  # "c" or "s"
    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int
    vtag: int
    chunk: SctpChunk
    tag: int = 0  # the INIT/INIT_ACK's own initiate tag


HANDSHAKE = (
    Send("c", CLIENT, SERVICE, 40000, 9000, 0, (1, 0), INIT_TAG),  # INIT
    Send("s", SERVER, CLIENT, 9100, 40000, INIT_TAG, (2, 0), ACK_TAG),  # INIT_ACK
    Send("c", CLIENT, SERVICE, 40000, 9000, ACK_TAG, (10, 0)),  # COOKIE_ECHO
    Send("s", SERVER, CLIENT, 9100, 40000, INIT_TAG, (11, 0)),  # COOKIE_ACK
    Send("c", CLIENT, SERVICE, 40000, 9000, ACK_TAG, (0, 0x03)),  # DATA, B and E
    Send("c", CLIENT, SERVICE, 40000, 9000, ACK_TAG, (0, 0x02)),  # DATA, B only
    Send("c", CLIENT, SERVER, 40001, 9100, 7, (0, 0x03)),  # DATA opening nothing: INVALID
)


def sh(*args: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@pytest.fixture()
def lab() -> Iterator[dict[str, str]]:
    if os.geteuid() != 0:
        pytest.fail("lab test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create namespaces")
    missing = [
        tool for tool in ("ip", "iptables-restore", "conntrack") if shutil.which(tool) is None
    ]
    if missing:
        pytest.fail(f"lab test needs {', '.join(missing)} on PATH")
    base = f"eksnet-lab-scratch-{uuid.uuid4().hex[:8]}"
    names = {role: f"{base}-{role}" for role in ("c", "n", "s")}
    created: list[str] = []
    try:
        for name in names.values():
            sh("ip", "netns", "add", name)
            created.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        c, n, s = names["c"], names["n"], names["s"]
        sh("ip", "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "c0", "netns", n)
        sh("ip", "-n", s, "link", "add", "eth0", "type", "veth", "peer", "name", "s0", "netns", n)
        for namespace, device, address, gateway in ((c, "eth0", "10.9.1.2/24", "10.9.1.1"),
                                                    (s, "eth0", "10.9.2.2/24", "10.9.2.1")):  # fmt: skip
            sh("ip", "-n", namespace, "addr", "add", address, "dev", device)
            sh("ip", "-n", namespace, "link", "set", device, "up")
            sh("ip", "-n", namespace, "route", "add", "default", "via", gateway)
            sh("ip", "netns", "exec", namespace, "iptables-restore", stdin=DROP_SCTP)
        for device, address in (("c0", "10.9.1.1/24"), ("s0", "10.9.2.1/24")):
            sh("ip", "-n", n, "addr", "add", address, "dev", device)
            sh("ip", "-n", n, "link", "set", device, "up")
        sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", n, "iptables-restore", stdin=NODE_RULES)
        yield names
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def counters(namespace: str) -> dict[int, int]:
    saved = parse_ruleset(sh("ip", "netns", "exec", namespace, "iptables-save", "-c"))
    return {
        rule.position: rule.counters[0] if rule.counters else 0
        for rule in saved.rules()
        if (rule.table, rule.chain) == ("filter", "FORWARD")
    }


def test_sctp_handshake_agrees_with_the_model(lab: dict[str, str]) -> None:
    ruleset = parse_ruleset(NODE_RULES)
    env = NfEnv(addr_type=lambda address, device: "UNICAST")
    table = ConntrackTable()
    expected = dict.fromkeys(range(1, 14), 0)
    for send in HANDSHAKE:
        sh("ip", "netns", "exec", lab[send.namespace], sys.executable, "-c", SENDER,
           str(send.src), str(send.dst), str(send.sport), str(send.dport), str(send.vtag),
           str(send.chunk[0]), str(send.chunk[1]), str(send.tag))  # fmt: skip
        time.sleep(0.05)

        # the model: conntrack at PREROUTING, nat (first packet), filter FORWARD, confirm
        arrived = Tuple(send.src, send.dst, "sctp", send.sport, send.dport)
        table, lookup = conntrack_in(table, arrived, sctp_chunks=(send.chunk,))
        entry, tuple_ = lookup.entry, arrived
        if entry is not None and not entry.confirmed:
            probe = NfPacket.new_connection(send.src, send.dst, "sctp", send.sport, send.dport,
                                            iif="c0", sctp_chunks=(send.chunk,))  # fmt: skip
            (nat,) = traverse(ruleset, "nat", "PREROUTING", probe, env)
            if nat.nat is not None:
                assert nat.nat.to_address is not None and nat.nat.to_ports is not None
                entry = apply_nat(entry, nat.nat, nat.nat.to_address, nat.nat.to_ports[0])
            else:
                entry = null_binding(entry, "DST")
        if entry is not None:
            tuple_ = nat_rewrite_at(Hook.PREROUTING, arrived, entry, lookup.direction)
        forwarded = NfPacket(
            tuple_.src, tuple_.dst, "sctp", tuple_.sport, tuple_.dport,
            iif="c0", oif="s0", ctstate=lookup.ctstate if entry is not None else "INVALID",
            ct=entry, ct_direction=lookup.direction, sctp_chunks=(send.chunk,),
        )  # fmt: skip
        (filtered,) = traverse(ruleset, "filter", "FORWARD", forwarded, env)
        for _, _, position in filtered.matched():
            expected[position] += 1
        if entry is not None:
            entry = null_binding(entry, "SRC")
            table = table.update(entry) if entry.confirmed else table.confirm(entry)

        assert counters(lab["n"]) == expected, send
        listed = sh("ip", "netns", "exec", lab["n"], "conntrack", "-L", "-p", "sctp", check=False)
        observed = [line for line in listed.splitlines() if line.strip()]
        predicted = [conntrack_list_line(e) for e in table]
        assert len(observed) == len(predicted) == 1
        words, model = observed[0].split(), predicted[0].split()
        seconds, full = int(words[2]), int(model[2])
        assert full - 2 <= seconds <= full, (observed, predicted)
        assert words[:2] + words[3:] == model[:2] + model[3:], (observed, predicted)
