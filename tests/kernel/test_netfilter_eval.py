"""Evaluating VPC CNI and kube-proxy rules (vpc-cni.md §2.4–2.8, talk-walks.md §4.3/§4.4)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.spec_texts import VPC_CNI_MANGLE

from eksnet.errors import NotModelled
from eksnet.kernel.conntrack import NatRequest, apply_nat
from eksnet.kernel.netfilter import NfEnv, NfOutcome, NfPacket, Ruleset, parse_ruleset, traverse

A = IPv4Address

# Node 1 of the talk cluster (talk-walks.md §4.3): every AWS and kube-proxy line printed there is
# verbatim; the chains that section abbreviates (the other SEP chains, the app1-nodeport and
# app1-nlb-local SVC chains, their KUBE-SERVICES/KUBE-NODEPORTS entries, the filter jumps) are
# filled in with the same patterns (kube-proxy.md §3, §6.3), endpoints .71/.81/.91 on port 80.
NODE1 = (
    VPC_CNI_MANGLE
    + """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:AWS-CONNMARK-CHAIN-0 - [0:0]
:AWS-SNAT-CHAIN-0 - [0:0]
:KUBE-EXT-J3KDY2YMAWFNLSIG - [0:0]
:KUBE-EXT-U6DUQYH3K73AFEIO - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-323SXKU2I6DGJCMN - [0:0]
:KUBE-SEP-6A6DAJO7EMKD4LNB - [0:0]
:KUBE-SEP-CGDVTEPNP2RHKNBA - [0:0]
:KUBE-SEP-F3TDPLX74CV44RW3 - [0:0]
:KUBE-SEP-F7EOZMC462Z6LNNA - [0:0]
:KUBE-SEP-JHNGFEQO6KQMKAYB - [0:0]
:KUBE-SEP-KRMQ4J6TVND77YH7 - [0:0]
:KUBE-SEP-MEL7OXIRKSVFI5KJ - [0:0]
:KUBE-SEP-ZNFO7Z6Q24HM3JQ7 - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-4QFXEAV27BCWXK5E - [0:0]
:KUBE-SVC-J3KDY2YMAWFNLSIG - [0:0]
:KUBE-SVC-U6DUQYH3K73AFEIO - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0
-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0
-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80
-A AWS-SNAT-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 192.168.1.50 --random-fully
-A KUBE-EXT-J3KDY2YMAWFNLSIG -m comment --comment "masquerade traffic for default/app1-nodeport external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-J3KDY2YMAWFNLSIG -j KUBE-SVC-J3KDY2YMAWFNLSIG
-A KUBE-EXT-U6DUQYH3K73AFEIO -m comment --comment "masquerade LOCAL traffic for default/app1-nlb-local external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-U6DUQYH3K73AFEIO -m comment --comment "route LOCAL traffic for default/app1-nlb-local external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-U6DUQYH3K73AFEIO
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/app1-nodeport" -m tcp --dport 30080 -j KUBE-EXT-J3KDY2YMAWFNLSIG
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/app1-nlb-local" -m tcp --dport 30082 -j KUBE-EXT-U6DUQYH3K73AFEIO
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-323SXKU2I6DGJCMN -s 192.168.2.91/32 -m comment --comment "default/app1-nodeport" -j KUBE-MARK-MASQ
-A KUBE-SEP-323SXKU2I6DGJCMN -p tcp -m comment --comment "default/app1-nodeport" -m tcp -j DNAT --to-destination 192.168.2.91:80
-A KUBE-SEP-6A6DAJO7EMKD4LNB -s 192.168.1.71/32 -m comment --comment "default/app1-nlb-local" -j KUBE-MARK-MASQ
-A KUBE-SEP-6A6DAJO7EMKD4LNB -p tcp -m comment --comment "default/app1-nlb-local" -m tcp -j DNAT --to-destination 192.168.1.71:80
-A KUBE-SEP-CGDVTEPNP2RHKNBA -s 192.168.1.71/32 -m comment --comment "default/app1" -j KUBE-MARK-MASQ
-A KUBE-SEP-CGDVTEPNP2RHKNBA -p tcp -m comment --comment "default/app1" -m tcp -j DNAT --to-destination 192.168.1.71:80
-A KUBE-SEP-F3TDPLX74CV44RW3 -s 192.168.1.71/32 -m comment --comment "default/app1-nodeport" -j KUBE-MARK-MASQ
-A KUBE-SEP-F3TDPLX74CV44RW3 -p tcp -m comment --comment "default/app1-nodeport" -m tcp -j DNAT --to-destination 192.168.1.71:80
-A KUBE-SEP-F7EOZMC462Z6LNNA -s 192.168.1.81/32 -m comment --comment "default/app1" -j KUBE-MARK-MASQ
-A KUBE-SEP-F7EOZMC462Z6LNNA -p tcp -m comment --comment "default/app1" -m tcp -j DNAT --to-destination 192.168.1.81:80
-A KUBE-SEP-JHNGFEQO6KQMKAYB -s 192.168.1.81/32 -m comment --comment "default/app1-nodeport" -j KUBE-MARK-MASQ
-A KUBE-SEP-JHNGFEQO6KQMKAYB -p tcp -m comment --comment "default/app1-nodeport" -m tcp -j DNAT --to-destination 192.168.1.81:80
-A KUBE-SEP-KRMQ4J6TVND77YH7 -s 192.168.2.91/32 -m comment --comment "default/app1" -j KUBE-MARK-MASQ
-A KUBE-SEP-KRMQ4J6TVND77YH7 -p tcp -m comment --comment "default/app1" -m tcp -j DNAT --to-destination 192.168.2.91:80
-A KUBE-SEP-MEL7OXIRKSVFI5KJ -s 192.168.1.81/32 -m comment --comment "default/app1-nlb-local" -j KUBE-MARK-MASQ
-A KUBE-SEP-MEL7OXIRKSVFI5KJ -p tcp -m comment --comment "default/app1-nlb-local" -m tcp -j DNAT --to-destination 192.168.1.81:80
-A KUBE-SEP-ZNFO7Z6Q24HM3JQ7 -s 192.168.2.91/32 -m comment --comment "default/app1-nlb-local" -j KUBE-MARK-MASQ
-A KUBE-SEP-ZNFO7Z6Q24HM3JQ7 -p tcp -m comment --comment "default/app1-nlb-local" -m tcp -j DNAT --to-destination 192.168.2.91:80
-A KUBE-SERVICES -d 10.100.200.10/32 -p tcp -m comment --comment "default/app1 cluster IP" -m tcp --dport 80 -j KUBE-SVC-4QFXEAV27BCWXK5E
-A KUBE-SERVICES -d 10.100.200.20/32 -p tcp -m comment --comment "default/app1-nodeport cluster IP" -m tcp --dport 80 -j KUBE-SVC-J3KDY2YMAWFNLSIG
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.1.71:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-CGDVTEPNP2RHKNBA
-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.1.81:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-F7EOZMC462Z6LNNA
-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.2.91:80" -j KUBE-SEP-KRMQ4J6TVND77YH7
-A KUBE-SVC-J3KDY2YMAWFNLSIG -m comment --comment "default/app1-nodeport -> 192.168.1.71:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-F3TDPLX74CV44RW3
-A KUBE-SVC-J3KDY2YMAWFNLSIG -m comment --comment "default/app1-nodeport -> 192.168.1.81:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-JHNGFEQO6KQMKAYB
-A KUBE-SVC-J3KDY2YMAWFNLSIG -m comment --comment "default/app1-nodeport -> 192.168.2.91:80" -j KUBE-SEP-323SXKU2I6DGJCMN
-A KUBE-SVC-U6DUQYH3K73AFEIO -m comment --comment "default/app1-nlb-local -> 192.168.1.71:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-6A6DAJO7EMKD4LNB
-A KUBE-SVC-U6DUQYH3K73AFEIO -m comment --comment "default/app1-nlb-local -> 192.168.1.81:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-MEL7OXIRKSVFI5KJ
-A KUBE-SVC-U6DUQYH3K73AFEIO -m comment --comment "default/app1-nlb-local -> 192.168.2.91:80" -j KUBE-SEP-ZNFO7Z6Q24HM3JQ7
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/app1-nlb-local has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30082 -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/app1-nlb-local health check node port" -m tcp --dport 32082 -j ACCEPT
COMMIT
"""
)

# vpc-cni.md §2.7: legacy backend, VPC CIDRs 10.0.0.0/16 + 100.64.0.0/16, exclusion 192.168.0.0/16.
VPC_CNI = (
    VPC_CNI_MANGLE
    + """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:AWS-CONNMARK-CHAIN-0 - [0:0]
:AWS-SNAT-CHAIN-0 - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0
-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0
-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -d 100.64.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -d 10.0.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80
-A AWS-SNAT-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN
-A AWS-SNAT-CHAIN-0 -d 100.64.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 -d 10.0.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 10.0.1.5 --random-fully
COMMIT
"""
)

NODE1_LOCAL = {A("192.168.1.50"): "eth0", A("192.168.1.60"): "eth1"}


def node1_addr_type(address: IPv4Address, device: str | None) -> str:
    """Node 1's local table: .50 on eth0, .60 on eth1, 127/8 on lo; a device restricts LOCAL to
    that device's addresses (`--limit-iface-in`)."""
    if address in IPv4Network("127.0.0.0/8"):
        return "LOCAL" if device in (None, "lo") else "UNICAST"
    owner = NODE1_LOCAL.get(address)
    if owner is not None and device in (None, owner):
        return "LOCAL"
    if address == A("192.168.1.255"):
        return "BROADCAST"
    return "UNICAST"


ENV = NfEnv(addr_type=node1_addr_type)
POD51_VETH = "enib9b00b57dd4"


@pytest.fixture(scope="module")
def node1() -> Ruleset:
    return parse_ruleset(NODE1, source="talk-walks.md §4.3")


@pytest.fixture(scope="module")
def vpc_cni() -> Ruleset:
    return parse_ruleset(VPC_CNI, source="vpc-cni.md §2.7")


def only(outcomes: tuple[NfOutcome, ...]) -> NfOutcome:
    assert len(outcomes) == 1, outcomes
    assert outcomes[0].probability == 1
    return outcomes[0]


def steps(outcome: NfOutcome) -> list[tuple[str, int | None, str]]:
    return [(hit.chain, hit.position, hit.effect) for hit in outcome.trace]


def pod51(dst: str, dport: int) -> NfPacket:
    return NfPacket.new_connection(A("192.168.1.51"), A(dst), "tcp", 41000, dport, iif=POD51_VETH)


# --- W3: ClusterIP ------------------------------------------------------------------------


def test_w3_mangle_restores_ct_mark_zero(node1: Ruleset) -> None:
    outcome = only(traverse(node1, "mangle", "PREROUTING", pod51("10.100.200.10", 80), ENV))
    assert steps(outcome) == [
        ("PREROUTING", 2, "mark 0x0 -> 0x0 (restored from ct mark 0x0)"),
        ("PREROUTING", None, "policy ACCEPT"),
    ]
    assert outcome.verdict == "ACCEPT"


def test_w3_service_chain_gives_three_branches(node1: Ruleset) -> None:
    outcomes = traverse(node1, "nat", "PREROUTING", pod51("10.100.200.10", 80), ENV)
    assert [o.nat.to_address if o.nat else None for o in outcomes] == [
        A("192.168.1.71"), A("192.168.1.81"), A("192.168.2.91")
    ]  # fmt: skip
    first = Fraction(715827883, 2**31)  # 0.33333333349 as the kernel stores it
    assert [o.probability for o in outcomes] == [first, (1 - first) / 2, (1 - first) / 2]
    assert sum(o.probability for o in outcomes) == 1
    for outcome in outcomes:
        assert abs(outcome.probability - Fraction(1, 3)) < Fraction(1, 10**9)
        assert outcome.verdict == "ACCEPT"
        assert outcome.nat is not None
        assert outcome.nat == NatRequest("DNAT", outcome.nat.to_address, to_ports=(80, 80))
        assert outcome.packet.mark == 0  # source is not the endpoint: no KUBE-MARK-MASQ
    assert steps(outcomes[0]) == [
        ("PREROUTING", 1, "jump KUBE-SERVICES"),
        ("KUBE-SERVICES", 1, "jump KUBE-SVC-4QFXEAV27BCWXK5E"),
        ("KUBE-SVC-4QFXEAV27BCWXK5E", 1, "jump KUBE-SEP-CGDVTEPNP2RHKNBA"),
        ("KUBE-SEP-CGDVTEPNP2RHKNBA", 2, "DNAT to 192.168.1.71:80"),
    ]
    hit = outcomes[0].trace[2]
    assert hit.text == NODE1.splitlines()[hit.line - 1 if hit.line else 0]
    assert hit.verdict == "JUMP"
    # DNAT ends nat PREROUTING: C1 and C4 are never reached (talk-walks W3)
    assert all(h.chain != "AWS-CONNMARK-CHAIN-0" for o in outcomes for h in o.trace)
    assert [h.chain for h in outcomes[2].trace][2] == "KUBE-SVC-4QFXEAV27BCWXK5E"
    assert outcomes[2].trace[2].position == 3


def test_w3_postrouting_no_masquerade_without_0x4000(node1: Ruleset) -> None:
    packet = replace(pod51("10.100.200.10", 80), dst=A("192.168.1.71"), oif="eth0", iif=None)
    outcome = only(traverse(node1, "nat", "POSTROUTING", packet, ENV))
    assert steps(outcome) == [
        ("POSTROUTING", 1, "jump KUBE-POSTROUTING"),
        ("KUBE-POSTROUTING", 1, "return"),
        ("POSTROUTING", 2, "jump AWS-SNAT-CHAIN-0"),
        ("AWS-SNAT-CHAIN-0", 1, "return"),
        ("POSTROUTING", None, "policy ACCEPT"),
    ]
    assert outcome.nat is None


# --- W1/W2/W10: pod egress and the 0x80 mark ----------------------------------------------


def test_pod_to_vpc_address_returns_with_ct_mark_zero(node1: Ruleset) -> None:
    outcome = only(traverse(node1, "nat", "PREROUTING", pod51("192.168.1.81", 80), ENV))
    assert steps(outcome) == [
        ("PREROUTING", 1, "jump KUBE-SERVICES"),
        ("PREROUTING", 2, "jump AWS-CONNMARK-CHAIN-0"),
        ("AWS-CONNMARK-CHAIN-0", 1, "return"),
        ("PREROUTING", 3, "mark 0x0 -> 0x0 (restored from ct mark 0x0)"),
        ("PREROUTING", None, "policy ACCEPT"),
    ]
    assert (outcome.ct_mark, outcome.packet.mark, outcome.nat) == (0, 0, None)


def test_w10_pod_to_internet_marks_connection_and_packet(node1: Ruleset) -> None:
    outcome = only(traverse(node1, "nat", "PREROUTING", pod51("198.51.100.20", 443), ENV))
    assert steps(outcome) == [
        ("PREROUTING", 1, "jump KUBE-SERVICES"),
        ("PREROUTING", 2, "jump AWS-CONNMARK-CHAIN-0"),
        ("AWS-CONNMARK-CHAIN-0", 2, "ct mark 0x0 -> 0x80"),
        ("PREROUTING", 3, "mark 0x0 -> 0x80 (restored from ct mark 0x80)"),
        ("PREROUTING", None, "policy ACCEPT"),
    ]
    assert (outcome.ct_mark, outcome.packet.mark) == (0x80, 0x80)
    after = replace(outcome.packet, iif=None, oif="eth0")
    snat = only(traverse(node1, "nat", "POSTROUTING", after, ENV))
    assert snat.nat == NatRequest("SNAT", A("192.168.1.50"), random_fully=True)
    assert snat.trace[-1].text == (
        '-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype '
        "! --dst-type LOCAL -j SNAT --to-source 192.168.1.50 --random-fully"
    )
    assert snat.trace[-1].verdict == "ACCEPT"


@pytest.mark.parametrize(
    ("dst", "position", "comment"),
    [
        ("192.168.7.7", 1, "AWS SNAT CHAIN EXCLUSION"),
        ("100.64.3.3", 2, "AWS SNAT CHAIN"),
        ("10.0.200.1", 3, "AWS SNAT CHAIN"),
    ],
)
def test_vpc_cni_exempt_cidrs(vpc_cni: Ruleset, dst: str, position: int, comment: str) -> None:
    packet = NfPacket.new_connection(A("10.0.1.23"), A(dst), "udp", 40000, 53, iif="eni0a1b2c3d4e5")
    nat = only(traverse(vpc_cni, "nat", "PREROUTING", packet, ENV))
    assert ("AWS-CONNMARK-CHAIN-0", position, "return") in steps(nat)
    assert nat.ct_mark == 0
    post = only(traverse(vpc_cni, "nat", "POSTROUTING", replace(packet, iif=None, oif="eth0"), ENV))
    assert steps(post)[-2][:2] == ("AWS-SNAT-CHAIN-0", position)
    assert comment in post.trace[-2].text
    assert post.nat is None


def test_vpc_cni_internet_gets_snat_but_not_out_of_vlan(vpc_cni: Ruleset) -> None:
    packet = NfPacket.new_connection(A("10.0.1.23"), A("8.8.8.8"), "udp", 40000, 53, iif="eni0a")
    nat = only(traverse(vpc_cni, "nat", "PREROUTING", packet, ENV))
    assert ("AWS-CONNMARK-CHAIN-0", 4, "ct mark 0x0 -> 0x80") in steps(nat)
    assert (nat.ct_mark, nat.packet.mark) == (0x80, 0x80)
    out = replace(nat.packet, iif=None, oif="eth0")
    snat = only(traverse(vpc_cni, "nat", "POSTROUTING", out, ENV))
    assert snat.nat == NatRequest("SNAT", A("10.0.1.5"), random_fully=True)
    vlan = only(traverse(vpc_cni, "nat", "POSTROUTING", replace(out, oif="vlan.eth.1"), ENV))
    assert vlan.nat is None


def test_snat_skips_local_destinations(node1: Ruleset) -> None:
    packet = replace(pod51("192.168.1.50", 80), dst=A("127.0.0.1"), iif=None, oif="lo")
    assert only(traverse(node1, "nat", "POSTROUTING", packet, ENV)).nat is None


# --- M1 and NodePorts (W4, W6) ------------------------------------------------------------


def client(dport: int, dst: str = "192.168.1.50", iif: str = "eth0") -> NfPacket:
    return NfPacket.new_connection(A("203.0.113.10"), A(dst), "tcp", 51000, dport, iif=iif)


def test_m1_marks_connections_to_a_local_address_on_eth0(node1: Ruleset) -> None:
    outcome = only(traverse(node1, "mangle", "PREROUTING", client(30080), ENV))
    assert steps(outcome)[0] == ("PREROUTING", 1, "ct mark 0x0 -> 0x80")
    assert (outcome.ct_mark, outcome.packet.mark) == (0x80, 0)
    # eth1's address arriving on eth0 is not local *to eth0* (--limit-iface-in)
    other = only(traverse(node1, "mangle", "PREROUTING", client(30080, "192.168.1.60"), ENV))
    assert other.ct_mark == 0
    # a pod address arriving on eth0 is not local at all
    pod = only(traverse(node1, "mangle", "PREROUTING", client(80, "192.168.1.51"), ENV))
    assert steps(pod) == [("PREROUTING", None, "policy ACCEPT")]


def test_w4_nodeport_marks_for_masquerade_and_dnats(node1: Ruleset) -> None:
    mangle = only(traverse(node1, "mangle", "PREROUTING", client(30080), ENV))
    outcomes = traverse(node1, "nat", "PREROUTING", mangle.packet, ENV)
    assert len(outcomes) == 3
    assert sum(o.probability for o in outcomes) == 1
    first = outcomes[0]
    assert steps(first) == [
        ("PREROUTING", 1, "jump KUBE-SERVICES"),
        ("KUBE-SERVICES", 3, "jump KUBE-NODEPORTS"),
        ("KUBE-NODEPORTS", 1, "jump KUBE-EXT-J3KDY2YMAWFNLSIG"),
        ("KUBE-EXT-J3KDY2YMAWFNLSIG", 1, "jump KUBE-MARK-MASQ"),
        ("KUBE-MARK-MASQ", 1, "mark 0x0 -> 0x4000"),
        ("KUBE-EXT-J3KDY2YMAWFNLSIG", 2, "jump KUBE-SVC-J3KDY2YMAWFNLSIG"),
        ("KUBE-SVC-J3KDY2YMAWFNLSIG", 1, "jump KUBE-SEP-F3TDPLX74CV44RW3"),
        ("KUBE-SEP-F3TDPLX74CV44RW3", 2, "DNAT to 192.168.1.71:80"),
    ]
    assert (first.packet.mark, first.ct_mark) == (0x4000, 0x80)
    # filter FORWARD accepts the marked first packet (KUBE-FORWARD)
    forwarded = replace(first.packet, dst=A("192.168.1.71"), dport=80, oif="eth0")
    accepted = only(traverse(node1, "filter", "FORWARD", forwarded, ENV))
    assert accepted.verdict == "ACCEPT"
    assert steps(accepted)[-1] == ("KUBE-FORWARD", 2, "accept")
    # POSTROUTING: only the 0x4000 mark leads to MASQUERADE, and the mark is cleared first
    post = only(traverse(node1, "nat", "POSTROUTING", replace(forwarded, iif=None), ENV))
    assert steps(post) == [
        ("POSTROUTING", 1, "jump KUBE-POSTROUTING"),
        ("KUBE-POSTROUTING", 2, "mark 0x4000 -> 0x0"),
        ("KUBE-POSTROUTING", 3, "MASQUERADE random-fully"),
    ]
    assert post.nat == NatRequest("MASQUERADE", random_fully=True)
    assert post.packet.mark == 0


def test_w6_local_policy_nodeport_without_local_endpoint_is_dropped(node1: Ruleset) -> None:
    mangle = only(traverse(node1, "mangle", "PREROUTING", client(30082), ENV))
    nat = only(traverse(node1, "nat", "PREROUTING", mangle.packet, ENV))
    assert steps(nat) == [
        ("PREROUTING", 1, "jump KUBE-SERVICES"),
        ("KUBE-SERVICES", 3, "jump KUBE-NODEPORTS"),
        ("KUBE-NODEPORTS", 2, "jump KUBE-EXT-U6DUQYH3K73AFEIO"),
        ("PREROUTING", 3, "mark 0x0 -> 0x80 (restored from ct mark 0x80)"),
        ("PREROUTING", None, "policy ACCEPT"),
    ]
    assert nat.nat is None
    dropped = only(traverse(node1, "filter", "INPUT", nat.packet, ENV))
    assert dropped.verdict == "DROP"
    assert "has no local endpoints" in dropped.trace[-1].text
    assert dropped.trace[-1].verdict == "DROP"


def test_w6_host_originated_traffic_goes_cluster_wide(node1: Ruleset) -> None:
    packet = NfPacket.new_connection(
        A("192.168.1.50"), A("192.168.1.50"), "tcp", 40000, 30082, oif="lo"
    )
    outcomes = traverse(node1, "nat", "OUTPUT", packet, ENV)
    assert len(outcomes) == 3
    assert all(o.packet.mark == 0x4000 for o in outcomes)
    assert [h.chain for h in outcomes[0].trace[3:5]] == [
        "KUBE-EXT-U6DUQYH3K73AFEIO",
        "KUBE-MARK-MASQ",
    ]


def test_hairpin_endpoint_marks_itself(node1: Ruleset) -> None:
    packet = NfPacket.new_connection(
        A("192.168.1.71"), A("10.100.200.10"), "tcp", 4000, 80, iif="eni1"
    )
    first = traverse(node1, "nat", "PREROUTING", packet, ENV)[0]
    assert ("KUBE-SEP-CGDVTEPNP2RHKNBA", 1, "jump KUBE-MARK-MASQ") in steps(first)
    assert first.packet.mark == 0x4000


# --- traversal semantics ------------------------------------------------------------------

SEMANTICS = """\
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
:EMPTY - [0:0]
-A INPUT -s 10.0.0.1/32 -j A
-A INPUT -s 10.0.0.2/32 -g B
-A INPUT -s 10.0.0.3/32 -j RETURN
-A INPUT -p tcp -m tcp --dport 22
-A INPUT -j LOG --log-prefix "in "
-A A -j EMPTY
-A A -g B
-A A -j ACCEPT
-A B -p udp -j ACCEPT
-A B -j RETURN
-A B -j DROP
-A FORWARD -j C
-A C -p icmp -m icmp --icmp-type 8 -j REJECT --reject-with icmp-host-prohibited
-A C -m conntrack --ctstate INVALID -j DROP
-A C -m conntrack --ctstate DNAT --ctorigdst 172.20.0.10 --ctdir ORIGINAL -j ACCEPT
-A C -m connmark ! --mark 0x1 -m state --state ESTABLISHED -j ACCEPT
-A C -m set --match-set X src -j DROP
-A OUTPUT -m statistic --mode nth --every 3 --packet 1 -j DROP
-A OUTPUT -p udp -m multiport --ports 53,5353:5360 -j DROP
-A OUTPUT -p tcp -m tcp --tcp-flags SYN,ACK SYN -j ACCEPT
COMMIT
"""

NO_LOCAL = NfEnv(addr_type=lambda address, device: "UNICAST")


@pytest.fixture(scope="module")
def semantics() -> Ruleset:
    return parse_ruleset(SEMANTICS)


def tcp_from(src: str, dport: int = 22) -> NfPacket:
    return NfPacket.new_connection(A(src), A("10.9.9.9"), "tcp", 1234, dport, iif="eth0")


def test_goto_returns_to_the_caller_of_the_chain(semantics: Ruleset) -> None:
    outcome = only(traverse(semantics, "filter", "INPUT", tcp_from("10.0.0.1"), NO_LOCAL))
    assert [(h.chain, h.position, h.verdict) for h in outcome.trace] == [
        ("INPUT", 1, "JUMP"),
        ("A", 1, "JUMP"),  # EMPTY returns at once
        ("A", 2, "GOTO"),
        ("B", 2, "RETURN"),  # back to INPUT, not to A (A's ACCEPT is never reached)
        ("INPUT", 4, "CONTINUE"),  # a rule without target only counts
        ("INPUT", 5, "CONTINUE"),  # LOG
        ("INPUT", None, "DROP"),
    ]
    assert outcome.verdict == "DROP"
    assert outcome.by_policy
    assert outcome.matched()[:2] == (("filter", "INPUT", 1), ("filter", "A", 1))


def test_goto_from_a_builtin_chain_ends_in_its_policy(semantics: Ruleset) -> None:
    outcome = only(traverse(semantics, "filter", "INPUT", tcp_from("10.0.0.2"), NO_LOCAL))
    assert [(h.chain, h.position) for h in outcome.trace] == [
        ("INPUT", 2), ("B", 2), ("INPUT", None)
    ]  # fmt: skip
    udp = NfPacket.new_connection(A("10.0.0.2"), A("10.9.9.9"), "udp", 1, 2, iif="eth0")
    accepted = only(traverse(semantics, "filter", "INPUT", udp, NO_LOCAL))
    assert (accepted.verdict, accepted.trace[-1].effect) == ("ACCEPT", "accept")
    assert not accepted.by_policy


def test_return_in_a_builtin_chain_applies_the_policy(semantics: Ruleset) -> None:
    outcome = only(traverse(semantics, "filter", "INPUT", tcp_from("10.0.0.3"), NO_LOCAL))
    assert [(h.position, h.verdict) for h in outcome.trace] == [(3, "RETURN"), (None, "DROP")]
    assert outcome.trace[-1].text == ":INPUT DROP"


def test_reject_and_conntrack_matches(semantics: Ruleset) -> None:
    ping = NfPacket.new_connection(
        A("10.0.0.9"), A("10.9.9.9"), "icmp", icmp_type=8, icmp_code=0, icmp_id=7, iif="eth0"
    )
    rejected = only(traverse(semantics, "filter", "FORWARD", ping, NO_LOCAL))
    assert (rejected.verdict, rejected.reject_with) == ("REJECT", "icmp-host-prohibited")
    invalid = replace(tcp_from("10.0.0.9"), ctstate="INVALID", ct=None)
    assert only(traverse(semantics, "filter", "FORWARD", invalid, NO_LOCAL)).verdict == "DROP"
    first = NfPacket.new_connection(A("10.0.0.9"), A("172.20.0.10"), "tcp", 1234, 80, iif="eth0")
    assert first.ct is not None
    request = NatRequest("DNAT", A("10.0.1.23"), to_ports=(8080, 8080))
    dnat = apply_nat(first.ct, request, A("10.0.1.23"), 8080)
    forwarded = replace(first, dst=A("10.0.1.23"), dport=8080, ct=dnat)
    serviced = only(traverse(semantics, "filter", "FORWARD", forwarded, NO_LOCAL))
    assert serviced.verdict == "ACCEPT"
    assert serviced.trace[-1].position == 3  # --ctstate DNAT --ctorigdst <service IP>
    # without the DNAT binding the packet goes on to the unmodelled `set` rule
    with pytest.raises(NotModelled):
        traverse(semantics, "filter", "FORWARD", first, NO_LOCAL)


def test_connmark_without_entry_never_matches_and_unmodelled_raises_when_reached(
    semantics: Ruleset,
) -> None:
    reply = replace(tcp_from("10.0.0.9", 80), ctstate="ESTABLISHED", ct_direction="REPLY")
    assert only(traverse(semantics, "filter", "FORWARD", reply, NO_LOCAL)).trace[-1].position == 4
    untracked = replace(reply, ctstate="UNTRACKED", ct=None)
    with pytest.raises(NotModelled) as caught:
        traverse(semantics, "filter", "FORWARD", untracked, NO_LOCAL)
    assert caught.value.what == "iptables match -m set"


def test_nth_uses_the_counter_the_caller_supplies(semantics: Ruleset) -> None:
    packet = tcp_from("10.0.0.9", 443)

    def seen(count: int) -> NfEnv:
        return NfEnv(NO_LOCAL.addr_type, nth_count=lambda table, chain, position: count)

    verdicts = [
        only(traverse(semantics, "filter", "OUTPUT", packet, seen(k))).verdict for k in range(6)
    ]
    assert verdicts == ["ACCEPT", "DROP", "ACCEPT", "ACCEPT", "DROP", "ACCEPT"]


def test_multiport_and_tcp_flags(semantics: Ruleset) -> None:
    dns = NfPacket.new_connection(A("10.0.0.9"), A("10.9.9.9"), "udp", 5355, 9)
    assert only(traverse(semantics, "filter", "OUTPUT", dns, NO_LOCAL)).verdict == "DROP"
    syn = tcp_from("10.0.0.9", 443)
    accepted = only(traverse(semantics, "filter", "OUTPUT", syn, NO_LOCAL))
    assert accepted.trace[-1].position == 3
    synack = replace(syn, tcp_flags=frozenset({"SYN", "ACK"}))
    assert only(traverse(semantics, "filter", "OUTPUT", synack, NO_LOCAL)).by_policy


def test_missing_table_accepts_and_wrong_chain_is_refused(semantics: Ruleset) -> None:
    packet = tcp_from("10.0.0.9")
    assert traverse(semantics, "raw", "PREROUTING", packet, NO_LOCAL) == (
        NfOutcome(Fraction(1), "ACCEPT", packet, None, ()),
    )
    with pytest.raises(ValueError, match="not a built-in chain"):
        traverse(semantics, "filter", "PREROUTING", packet, NO_LOCAL)


# --- kube-proxy load balancing, any n -----------------------------------------------------


def kube_proxy_service(n: int) -> str:
    """A service with n endpoints, probabilities as kube-proxy writes them (`%0.10f` of
    1/(n−i), kube-proxy.md §4)."""
    lines = ["*nat", ":KUBE-SVC-X - [0:0]"]
    lines += [f":KUBE-SEP-{i} - [0:0]" for i in range(n)]
    lines.append("-A PREROUTING -p tcp -m tcp --dport 80 -j KUBE-SVC-X")
    for i in range(n):
        statistic = (
            f"-m statistic --mode random --probability {1 / (n - i):0.10f} " if i < n - 1 else ""
        )
        lines.append(f"-A KUBE-SVC-X {statistic}-j KUBE-SEP-{i}")
        lines.append(f"-A KUBE-SEP-{i} -p tcp -m tcp -j DNAT --to-destination 10.1.0.{i + 1}:8080")
    return "\n".join([*lines, "COMMIT", ""])


@given(st.integers(min_value=1, max_value=40))
def test_endpoints_are_chosen_uniformly(n: int) -> None:
    ruleset = parse_ruleset(kube_proxy_service(n))
    packet = NfPacket.new_connection(A("10.0.0.1"), A("172.20.0.1"), "tcp", 1000, 80)
    outcomes = traverse(ruleset, "nat", "PREROUTING", packet, NO_LOCAL)
    assert [o.nat.to_address if o.nat else None for o in outcomes] == [
        A(f"10.1.0.{i + 1}") for i in range(n)
    ]
    assert sum(o.probability for o in outcomes) == 1
    for outcome in outcomes:
        assert abs(outcome.probability - Fraction(1, n)) < Fraction(1, 10**8)


@given(
    st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
    st.sampled_from(["--set-xmark {v:#x}/{m:#x}", "--set-mark {v:#x}/{m:#x}", "--or-mark {v:#x}",
                     "--and-mark {v:#x}", "--xor-mark {v:#x}"]),
)  # fmt: skip
def test_mark_arithmetic(mark: int, value: int, mask: int, form: str) -> None:
    option = form.format(v=value, m=mask)
    ruleset = parse_ruleset(f"*mangle\n-A OUTPUT -j MARK {option}\nCOMMIT\n")
    packet = replace(NfPacket.new_connection(A("10.0.0.1"), A("10.0.0.2"), "udp", 1, 2), mark=mark)
    result = only(traverse(ruleset, "mangle", "OUTPUT", packet, NO_LOCAL)).packet.mark
    expected = {
        "--set-xmark": (mark & ~mask) ^ value,
        "--set-mark": (mark & ~(mask | value)) ^ value,
        "--or-mark": mark | value,
        "--and-mark": mark & value,
        "--xor-mark": mark ^ value,
    }[option.split()[0]]
    assert result == expected & 0xFFFFFFFF
