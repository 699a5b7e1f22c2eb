"""The real kernel against `traverse` + conntrack: same rules, same packet, same counters.

Three throw-away namespaces `eksnet-test-nf-<random>-{c,n,s}`: a pod-like client `c`
(10.99.1.23/32, VPC CNI wiring: gateway 169.254.1.1 as a permanent neighbour), a node `n`
(`eni…` veth without IPv4 towards the client, `eth0` 10.99.0.5/24 towards `s`, forwarding on)
and `s` standing for the VPC and the internet (10.99.0.100, endpoints 203.0.113.10-12 on lo).
The node gets VPC CNI + kube-proxy style rules (VPC CIDR 10.99.0.0/16). One UDP datagram per
flow; `c` and `s` drop UDP silently so nothing comes back through the node.

For each flow we read which rule counters moved (`iptables-save -c`) and the conntrack entry
(`conntrack -L`), and compare them with the prediction: the hooks of HOOK_ORDER walked with
`traverse`, NAT bindings set up with `apply_nat`/`null_binding`, the packet rewritten with
`nat_rewrite_at`. The two inputs the model does not predict are taken from the kernel: which
endpoint a random rule picked (we compare with *that* branch) and the `--random-fully` port
(checked to lie in the range the model allows).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network

import pytest
from tests.spec_texts import VPC_CNI_MANGLE

from eksnet.kernel.conntrack import (
    ConntrackTable,
    NatRequest,
    apply_nat,
    choose_nat_port,
    conntrack_list_line,
    nat_rewrite_at,
    null_binding,
)
from eksnet.kernel.hooks import HOOK_ORDER, Hook, StageKind
from eksnet.kernel.netfilter import NfEnv, NfPacket, RuleHit, Ruleset, parse_ruleset, traverse

pytestmark = pytest.mark.lab

A = IPv4Address
NODE_IP = A("10.99.0.5")
CLIENT_IP = A("10.99.1.23")
SERVER_IP = A("10.99.0.100")
VETH = "eni0a1b2c3d4e5"
ENDPOINTS = (A("203.0.113.10"), A("203.0.113.11"), A("203.0.113.12"))

NODE_RULES = f"""\
{VPC_CNI_MANGLE}*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:AWS-CONNMARK-CHAIN-0 - [0:0]
:AWS-SNAT-CHAIN-0 - [0:0]
:KUBE-EXT-NP - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:KUBE-SEP-C - [0:0]
:KUBE-SEP-POD - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-NP - [0:0]
:KUBE-SVC-WEB - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0
-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0
-A AWS-CONNMARK-CHAIN-0 -d 10.99.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80
-A AWS-SNAT-CHAIN-0 -d 10.99.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source {NODE_IP} --random-fully
-A KUBE-EXT-NP -m comment --comment "masquerade traffic for default/np external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NP -j KUBE-SVC-NP
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p udp -m comment --comment "default/np" -m udp --dport 30080 -j KUBE-EXT-NP
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-A -s 203.0.113.10/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-A -p udp -m comment --comment "default/web" -m udp -j DNAT --to-destination 203.0.113.10:9000
-A KUBE-SEP-B -s 203.0.113.11/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-B -p udp -m comment --comment "default/web" -m udp -j DNAT --to-destination 203.0.113.11:9000
-A KUBE-SEP-C -s 203.0.113.12/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-C -p udp -m comment --comment "default/web" -m udp -j DNAT --to-destination 203.0.113.12:9000
-A KUBE-SEP-POD -s 10.99.1.23/32 -m comment --comment "default/np" -j KUBE-MARK-MASQ
-A KUBE-SEP-POD -p udp -m comment --comment "default/np" -m udp -j DNAT --to-destination 10.99.1.23:8080
-A KUBE-SERVICES -d 172.20.0.10/32 -p udp -m comment --comment "default/web cluster IP" -m udp --dport 80 -j KUBE-SVC-WEB
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-NP -m comment --comment "default/np -> 10.99.1.23:8080" -j KUBE-SEP-POD
-A KUBE-SVC-WEB -m comment --comment "default/web -> 203.0.113.10:9000" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-A
-A KUBE-SVC-WEB -m comment --comment "default/web -> 203.0.113.11:9000" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-B
-A KUBE-SVC-WEB -m comment --comment "default/web -> 203.0.113.12:9000" -j KUBE-SEP-C
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""

DROP_UDP = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -j DROP\nCOMMIT\n"

BACKENDS = {
    "nft": ("iptables-nft-restore", "iptables-nft-save"),
    "legacy": ("iptables-legacy-restore", "iptables-legacy-save"),
}


def node_addr_type(address: IPv4Address, device: str | None) -> str:
    """The node namespace's local table: 10.99.0.5 on eth0, 127/8 on lo."""
    if address in IPv4Network("127.0.0.0/8"):
        return "LOCAL" if device in (None, "lo") else "UNICAST"
    if address == NODE_IP and device in (None, "eth0"):
        return "LOCAL"
    if address == A("10.99.0.255"):
        return "BROADCAST"
    return "UNICAST"


ENV = NfEnv(addr_type=node_addr_type)


# --- the lab ------------------------------------------------------------------------------


def require_capabilities(backend: str) -> None:
    """Fail loudly (never skip) when the machine cannot run the lab."""
    if os.geteuid() != 0:
        pytest.fail("lab test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create namespaces")
    missing = [
        tool for tool in ("ip", "conntrack", *BACKENDS[backend]) if shutil.which(tool) is None
    ]
    if missing:
        pytest.fail(f"lab test needs {', '.join(missing)} on PATH")


def sh(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Lab:
    client: str
    node: str
    server: str
    restore: str
    save: str

    def run(self, namespace: str, *args: str, stdin: str | None = None) -> str:
        return sh("ip", "netns", "exec", namespace, *args, stdin=stdin)

    def send_udp(self, namespace: str, src: IPv4Address, sport: int, dst: str, dport: int) -> None:
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind(('{src}', {sport}))\n"
            f"s.sendto(b'eksnet', ('{dst}', {dport}))\n"
        )
        self.run(namespace, sys.executable, "-c", code)

    def counters(self) -> dict[tuple[str, str, int], int]:
        saved = parse_ruleset(self.run(self.node, self.save, "-c"), source="iptables-save -c")
        return {
            (rule.table, rule.chain, rule.position): rule.counters[0] if rule.counters else 0
            for rule in saved.rules()
        }

    def conntrack_line(self, sport: int) -> str:
        for _ in range(50):
            out = self.run(self.node, "conntrack", "-L", "-p", "udp", "--orig-port-src", str(sport))
            lines = [line for line in out.splitlines() if line.strip()]
            if lines:
                assert len(lines) == 1, lines
                return lines[0]
            time.sleep(0.02)
        pytest.fail(f"no conntrack entry for source port {sport} in {self.node}")


@pytest.fixture(params=sorted(BACKENDS))
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    backend: str = request.param
    require_capabilities(backend)
    base = f"eksnet-test-nf-{uuid.uuid4().hex[:8]}"
    names = [f"{base}-c", f"{base}-n", f"{base}-s"]
    restore, save = BACKENDS[backend]
    created: list[str] = []
    try:
        for name in names:
            sh("ip", "netns", "add", name)
            created.append(name)
        client, node, server = names
        lab = Lab(client, node, server, restore, save)
        for name in names:
            lab.run(name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0")  # fmt: skip
            sh("ip", "-n", name, "link", "set", "lo", "up")
        lab.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", node, "link", "add", VETH, "type", "veth", "peer", "name", "eth0",
           "netns", client)  # fmt: skip
        sh("ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
           "netns", server)  # fmt: skip
        # client: a VPC CNI pod
        veth_mac = sh("ip", "-n", node, "-br", "link", "show", VETH).split()[2]
        for args in (
            ("link", "set", "eth0", "up"),
            ("addr", "add", f"{CLIENT_IP}/32", "dev", "eth0"),
            ("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"),
            ("route", "add", "default", "via", "169.254.1.1", "dev", "eth0"),
            ("neigh", "add", "169.254.1.1", "lladdr", veth_mac, "dev", "eth0", "nud", "permanent"),
        ):
            sh("ip", "-n", client, *args)
        # node
        for args in (
            ("link", "set", VETH, "up"),
            ("link", "set", "eth0", "up"),
            ("addr", "add", f"{NODE_IP}/24", "dev", "eth0"),
            ("route", "add", str(CLIENT_IP), "dev", VETH, "scope", "link"),
            ("route", "add", "default", "via", str(SERVER_IP), "dev", "eth0"),
        ):
            sh("ip", "-n", node, *args)
        # server: the VPC and the internet
        server_setup: list[tuple[str, ...]] = [
            ("link", "set", "eth0", "up"),
            ("addr", "add", f"{SERVER_IP}/24", "dev", "eth0"),
            *(("addr", "add", f"{e}/32", "dev", "lo") for e in ENDPOINTS),
            ("route", "add", "10.99.1.0/24", "via", str(NODE_IP)),
        ]
        for step in server_setup:
            sh("ip", "-n", server, *step)
        lab.run(node, restore, stdin=NODE_RULES)
        lab.run(client, restore, stdin=DROP_UDP)
        lab.run(server, restore, stdin=DROP_UDP)
        yield lab
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


# --- the prediction -----------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    probability: Fraction
    packet: NfPacket
    trace: tuple[RuleHit, ...]
    dropped: bool = False

    def moved(self) -> set[tuple[str, str, int]]:
        return {(h.table, h.chain, h.position) for h in self.trace if h.position is not None}


def predict(
    ruleset: Ruleset,
    first: NfPacket,
    *,
    oif: str,
    masquerade_source: IPv4Address,
    nat_port: int,
) -> list[Prediction]:
    """Walk a forwarded first packet through PREROUTING, FORWARD and POSTROUTING as the kernel
    orders the stages (HOOK_ORDER); `oif` is the routing decision, `nat_port` the port the kernel
    chose for a random-fully source NAT."""
    paths = [Prediction(Fraction(1), first, ())]
    for hook in (Hook.PREROUTING, Hook.FORWARD, Hook.POSTROUTING):
        for stage in HOOK_ORDER[hook]:
            if stage.table is None:
                continue
            following: list[Prediction] = []
            for path in paths:
                packet = path.packet
                if hook is not Hook.PREROUTING:
                    packet = replace(
                        packet, oif=oif, iif=None if hook is Hook.POSTROUTING else packet.iif
                    )
                for outcome in traverse(ruleset, stage.table, hook.value, packet, ENV):
                    after = outcome.packet
                    if stage.kind in (StageKind.NAT_DST, StageKind.NAT_SRC):
                        after = bind(after, outcome.nat, hook, masquerade_source, nat_port)
                    following.append(
                        Prediction(
                            path.probability * outcome.probability,
                            after,
                            path.trace + outcome.trace,
                            outcome.verdict != "ACCEPT",
                        )
                    )
            paths = [p for p in following if not p.dropped]
    return paths


def bind(
    packet: NfPacket,
    request: NatRequest | None,
    hook: Hook,
    masquerade_source: IPv4Address,
    nat_port: int,
) -> NfPacket:
    """The nat stage's effect on the first packet: set up the binding, rewrite the packet."""
    entry = packet.ct
    assert entry is not None
    if request is None:
        entry = null_binding(entry, "DST" if hook is Hook.PREROUTING else "SRC")
    else:
        address = request.to_address or masquerade_source
        if request.kind == "DNAT":
            port = request.to_ports[0] if request.to_ports else None
        else:
            port = choose_nat_port(
                ConntrackTable(), entry, request, address, lambda low, high: nat_port
            )
        entry = apply_nat(entry, request, address, port)
    rewritten = nat_rewrite_at(hook, packet.tuple, entry, "ORIGINAL")
    return replace(packet, ct=entry).with_tuple(rewritten)


def moved_counters(
    before: dict[tuple[str, str, int], int], after: dict[tuple[str, str, int], int]
) -> dict[tuple[str, str, int], int]:
    return {
        key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)
    }


def check_flow(
    lab: Lab,
    ruleset: Ruleset,
    send: tuple[str, IPv4Address, int, str, int],
    first: NfPacket,
    *,
    oif: str,
    masquerade_source: IPv4Address = NODE_IP,
) -> Prediction:
    """Send one datagram, then compare counters and the conntrack entry with the prediction
    branch that chose what the kernel chose."""
    before = lab.counters()
    namespace, src, sport, dst, dport = send
    lab.send_udp(namespace, src, sport, dst, dport)
    observed = lab.conntrack_line(sport)
    moved = moved_counters(before, lab.counters())
    words = observed.split()
    sources = [w.removeprefix("src=") for w in words if w.startswith("src=")]
    dports = [w.removeprefix("dport=") for w in words if w.startswith("dport=")]
    reply_src, nat_port = A(sources[1]), int(dports[1])
    branches = predict(
        ruleset, first, oif=oif, masquerade_source=masquerade_source, nat_port=nat_port
    )
    assert sum(p.probability for p in branches) == 1
    chosen = [p for p in branches if p.packet.ct is not None and p.packet.ct.reply.src == reply_src]
    assert len(chosen) == 1, (observed, branches)
    prediction = chosen[0]
    assert set(moved) == prediction.moved(), observed
    assert set(moved.values()) == {1}
    assert prediction.packet.ct is not None
    expected = conntrack_list_line(ConntrackTable().confirm(prediction.packet.ct).entries[0])
    # the kernel prints the seconds left: up to a second or two less than the fresh timeout
    left = int(words[2])
    assert prediction.packet.ct.timeout - 3 <= left <= prediction.packet.ct.timeout
    assert observed.replace(f" {left} ", f" {prediction.packet.ct.timeout} ", 1) == expected
    return prediction


def test_kernel_agrees_with_traverse_and_conntrack(lab: Lab) -> None:
    ruleset = parse_ruleset(NODE_RULES, source="lab node rules")
    # the kernel prints back exactly the rules we gave (canonical save form)
    saved = parse_ruleset(lab.run(lab.node, lab.save), source="iptables-save")
    assert sorted((r.table, r.chain, r.position, r.text) for r in saved.rules()) == sorted(
        (r.table, r.chain, r.position, r.text) for r in ruleset.rules()
    )

    # 1. pod -> ClusterIP: one of three endpoints, DNAT, then the VPC CNI SNAT (non-VPC dst)
    service = check_flow(
        lab,
        ruleset,
        (lab.client, CLIENT_IP, 40001, "172.20.0.10", 80),
        NfPacket.new_connection(CLIENT_IP, A("172.20.0.10"), "udp", 40001, 80, iif=VETH),
        oif="eth0",
    )
    assert service.packet.ct is not None
    assert service.packet.ct.reply.src in ENDPOINTS
    assert service.packet.ct.mark == 0  # DNAT ended nat PREROUTING before C1
    assert abs(service.probability - Fraction(1, 3)) < Fraction(1, 10**9)

    # 2. pod -> internet: C3 marks the connection 0x80, C4 the packet, S4 SNATs
    internet = check_flow(
        lab,
        ruleset,
        (lab.client, CLIENT_IP, 40002, str(ENDPOINTS[0]), 9),
        NfPacket.new_connection(CLIENT_IP, ENDPOINTS[0], "udp", 40002, 9, iif=VETH),
        oif="eth0",
    )
    assert internet.packet.ct is not None and internet.packet.ct.mark == 0x80
    assert ("nat", "AWS-CONNMARK-CHAIN-0", 2) in internet.moved()

    # 3. NodePort from "outside": M1 marks 0x80, KUBE-MARK-MASQ 0x4000, DNAT to the pod,
    #    KUBE-FORWARD accepts the marked packet, MASQUERADE borrows eth0's address
    nodeport = check_flow(
        lab,
        ruleset,
        (lab.server, SERVER_IP, 40003, str(NODE_IP), 30080),
        NfPacket.new_connection(SERVER_IP, NODE_IP, "udp", 40003, 30080, iif="eth0"),
        oif=VETH,
    )
    assert nodeport.packet.ct is not None and nodeport.packet.ct.mark == 0x80
    assert ("filter", "KUBE-FORWARD", 2) in nodeport.moved()
    assert ("nat", "KUBE-POSTROUTING", 3) in nodeport.moved()
