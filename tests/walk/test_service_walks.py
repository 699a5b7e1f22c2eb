"""Walks through kube-proxy's rules on the demo, held to talk-walks.md §3 (W3, W4, W4b) and §4.4.

Every expected value is the spec's: rule texts of §4.3, addresses, MACs, rule priorities, the
conntrack tuples of W3/W4. The walks beyond the talk (hairpin, no endpoints, eTP Local, ClientIP
affinity) are held to kube-proxy.md §3.2/§4 (which rules match) and to what the kernel did in
the lab (`tests/lab/test_verify.py` proves each of them on the kernel).
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address

import pytest

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.model import load_cluster
from eksnet.walk.engine import walk
from eksnet.walk.model import Hop, Step, Walk

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "ip-192-168-1-70.eu-west-2.compute.internal"
POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
CLIENT = "ip/203.0.113.10"
A = IPv4Address


@pytest.fixture(scope="module")
def state() -> DataplaneState:
    return build_state(load_cluster())


def leaves(one: Walk) -> dict[str, Walk]:
    return {label: leaf for _, label, leaf in one.leaves()}


def hop_in(one: Walk, name: str) -> Hop:
    return next(hop for hop in one.hops if hop.where.name == name)


def rules_in(hop: Hop) -> list[tuple[str, str, int, str]]:
    """(table, chain, position, text) of every rule that matched in the hop, in order."""
    return [
        (d.table or "", d.chain or "", d.position or 0, d.text)
        for step in hop.steps
        if step.kind == "netfilter"
        for d in step.decided_by
        if d.kind == "iptables"
    ]


def routes_in(hop: Hop) -> list[Step]:
    return [step for step in hop.steps if step.kind == "route"]


def chains(hop: Hop) -> list[str]:
    return [chain for _, chain, _, _ in rules_in(hop)]


# W3 ---------------------------------------------------------------------------------------------

W3_SERVICE_RULE = (
    '-A KUBE-SERVICES -d 10.100.200.10/32 -p tcp -m comment --comment "default/app1 cluster IP" '
    "-m tcp --dport 80 -j KUBE-SVC-4QFXEAV27BCWXK5E"
)


def w3(state: DataplaneState) -> Walk:
    return walk(state, POD_51, "svc/default/app1", dport=80)


def test_w3_has_three_branches_of_one_third(state: DataplaneState) -> None:
    found = {label: p for p, label, _ in w3(state).leaves()}
    assert found == pytest.approx(
        {
            "DNAT to 192.168.1.71:80": 1 / 3,
            "DNAT to 192.168.1.81:80": 1 / 3,
            "DNAT to 192.168.2.91:80": 1 / 3,
        },
        abs=1e-9,
    )


def test_w3_node_1_matches_the_cluster_ip_rule_and_dnats(state: DataplaneState) -> None:
    leaf = leaves(w3(state))["DNAT to 192.168.1.71:80"]
    node = hop_in(leaf, NODE_1)
    texts = [text for _, _, _, text in rules_in(node)]
    assert W3_SERVICE_RULE in texts
    assert (
        '-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.1.71:80" '
        "-m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-CGDVTEPNP2RHKNBA"
    ) in texts
    # nat PREROUTING ends at the DNAT: C1 (#2) and C4 (#3) are not reached; no MASQUERADE
    nat_prerouting = [p for t, c, p, _ in rules_in(node) if (t, c) == ("nat", "PREROUTING")]
    assert nat_prerouting == [1]
    assert "KUBE-MARK-MASQ" not in chains(node)
    assert ("nat", "KUBE-POSTROUTING", 1) in [(t, c, p) for t, c, p, _ in rules_in(node)]
    assert node.packet_out is not None
    assert (node.packet_out.src, node.packet_out.sport) == (A("192.168.1.51"), 41000)
    assert (node.packet_out.dst, node.packet_out.dport) == (A("192.168.1.71"), 80)
    assert (node.oif, node.packet_out.dst_mac) == ("eth0", "02:00:c0:a8:01:46")


def test_w3_node_2_sees_the_pod_address_and_the_reply_is_un_dnated(state: DataplaneState) -> None:
    leaf = leaves(w3(state))["DNAT to 192.168.1.71:80"]
    node_2 = hop_in(leaf, NODE_2)
    assert node_2.packet_in is not None
    assert (node_2.packet_in.src, node_2.packet_in.dst) == (A("192.168.1.51"), A("192.168.1.71"))
    assert leaf.reply is not None
    back = hop_in(leaf.reply, NODE_1)
    assert back.packet_in is not None and back.packet_out is not None
    assert (back.iif, back.packet_in.src, back.packet_in.sport) == ("eth0", A("192.168.1.71"), 80)
    assert (back.oif, back.packet_out.src, back.packet_out.sport) == (
        "enib9b00b57dd4",
        A("10.100.200.10"),
        80,
    )
    texts = [r.text for r in leaf.reply.conntrack if r.namespace == NODE_1]
    assert (
        texts
        and (
            "src=192.168.1.51 dst=10.100.200.10 sport=41000 dport=80 "
            "src=192.168.1.71 dst=192.168.1.51 sport=80 dport=41000"
        )
        in texts[0]
    )


def test_w3_branch_91_crosses_to_az_b_by_the_default_route(state: DataplaneState) -> None:
    leaf = leaves(w3(state))["DNAT to 192.168.2.91:80"]
    route = routes_in(hop_in(leaf, NODE_1))[0]
    assert [d.text for d in route.decided_by][-1] == "default via 192.168.1.1 dev eth0"


def test_w3_branch_81_arrives_on_eth1_and_answers_by_rule_1536(state: DataplaneState) -> None:
    leaf = leaves(w3(state))["DNAT to 192.168.1.81:80"]
    assert hop_in(leaf, NODE_2).iif == "eth1"
    assert leaf.reply is not None
    back = hop_in(leaf.reply, NODE_2)
    assert "1536:\tfrom 192.168.1.81 lookup 2" in [d.text for d in routes_in(back)[0].decided_by]
    assert back.oif == "eth1"


# W4 ---------------------------------------------------------------------------------------------


def w4(state: DataplaneState, node: str = NODE_1) -> Walk:
    return walk(state, CLIENT, f"node/{node}", dport=30080)


def test_w4_node_1_marks_masquerades_and_tracks_with_mark_128(state: DataplaneState) -> None:
    leaf = leaves(w4(state))["DNAT to 192.168.1.71:80"]
    node = hop_in(leaf, NODE_1)
    found = [(t, c, p) for t, c, p, _ in rules_in(node)]
    assert ("mangle", "PREROUTING", 1) in found  # M1: ct mark 0x80
    assert "KUBE-NODEPORTS" in chains(node) and "KUBE-MARK-MASQ" in chains(node)
    assert ("nat", "KUBE-POSTROUTING", 3) in found  # MASQUERADE --random-fully
    assert "AWS-SNAT-CHAIN-0" not in chains(node)  # MASQUERADE is terminal
    assert node.packet_in is not None and node.packet_out is not None
    assert (node.packet_in.src, node.packet_in.dst, node.packet_in.dport) == (
        A("203.0.113.10"),
        A("192.168.1.50"),
        30080,
    )
    assert (node.packet_out.src, node.packet_out.dst, node.packet_out.dport) == (
        A("192.168.1.50"),
        A("192.168.1.71"),
        80,
    )
    assert node.packet_out.sport is not None and 1024 <= node.packet_out.sport <= 65535
    record = next(r for r in leaf.conntrack if r.namespace == NODE_1)
    assert record.mark == 128
    port = node.packet_out.sport
    assert (
        f"src=203.0.113.10 dst=192.168.1.50 sport=51000 dport=30080 [UNREPLIED] "
        f"src=192.168.1.71 dst=192.168.1.50 sport=80 dport={port} mark=128"
    ) in record.text


def test_w4_reply_is_un_snated_and_un_dnated_and_leaves_by_the_igw(state: DataplaneState) -> None:
    leaf = leaves(w4(state))["DNAT to 192.168.1.71:80"]
    assert leaf.reply is not None
    back = hop_in(leaf.reply, NODE_1)
    assert back.packet_out is not None
    assert (back.oif, back.packet_out.dst_mac) == ("eth0", "02:00:c0:a8:01:01")
    assert (
        back.packet_out.src,
        back.packet_out.sport,
        back.packet_out.dst,
        back.packet_out.dport,
    ) == (
        A("192.168.1.50"),
        30080,
        A("203.0.113.10"),
        51000,
    )
    last = leaf.reply.hops[-1]
    assert last.packet_in is not None
    assert (last.packet_in.src, last.packet_in.sport) == (A("192.0.2.50"), 30080)


def test_w4b_replies_leave_node_2_eth0_by_rule_1024(state: DataplaneState) -> None:
    for label, leaf in leaves(w4(state, NODE_2)).items():
        if label == "DNAT to 192.168.2.91:80":
            continue  # pod 91's reply comes back through the VPC router, not from a local veth
        assert leaf.reply is not None
        back = hop_in(leaf.reply, NODE_2)
        decided = [d.text for d in routes_in(back)[0].decided_by]
        assert "1024:\tfrom all fwmark 0x80/0x80 lookup main" in decided, label
        assert back.packet_out is not None
        assert (back.oif, back.packet_out.src, back.packet_out.sport) == (
            "eth0",
            A("192.168.1.70"),
            30080,
        )
        before = routes_in(back)[0].before
        assert before is not None and before.mark & 0x80  # M2 restored it before routing


def test_w4b_without_node_port_support_is_dropped_by_the_source_check() -> None:
    state = build_state(load_cluster(variant="noNodePortSupport"))
    leaf = leaves(w4(state, NODE_2))["DNAT to 192.168.1.81:80"]
    assert leaf.reply is not None
    back = hop_in(leaf.reply, NODE_2)
    assert "1536:\tfrom 192.168.1.81 lookup 2" in [d.text for d in routes_in(back)[0].decided_by]
    assert back.oif == "eth1"
    end = leaf.reply.disposition
    assert end is not None and end.kind == "dropped"
    assert "source/destination check" in end.reason and "eni-01a00000000000080" in end.reason


# beyond the talk --------------------------------------------------------------------------------


def test_hairpin_is_masqueraded(state: DataplaneState) -> None:
    """kube-proxy.md §3.2: the SEP chain's `-s <endpoint>/32 -j KUBE-MARK-MASQ` catches a pod
    reaching itself, so KUBE-POSTROUTING masquerades it (the node's address, as the kernel picked
    in the lab)."""
    one = walk(state, POD_61, "svc/default/rating", dport=80)
    node = hop_in(one, NODE_1)
    assert "KUBE-MARK-MASQ" in chains(node)
    assert node.packet_out is not None
    assert (node.oif, node.packet_out.dst, node.packet_out.dport) == (
        "eni69e05c2a0e5",
        A("192.168.1.61"),
        80,
    )
    assert node.packet_out.src == A("192.168.1.50")
    assert one.disposition is not None and one.disposition.kind == "delivered"


def test_a_service_without_endpoints_is_rejected(state: DataplaneState) -> None:
    one = walk(state, POD_51, "svc/default/app3", dport=80)
    assert one.disposition is not None and one.disposition.kind == "dropped"
    assert '--comment "default/app3 has no endpoints"' in one.disposition.reason
    assert "REJECT --reject-with icmp-port-unreachable" in one.disposition.reason
    assert one.reply is not None and one.reply.disposition is not None
    assert one.reply.disposition.kind == "delivered"  # the ICMP error reaches pod 51
    error = one.reply.hops[-1].packet_in
    assert error is not None and error.proto == "icmp" and error.icmp_type == 3


def test_etp_local_on_node_2_keeps_the_client_address(state: DataplaneState) -> None:
    one = walk(state, CLIENT, f"node/{NODE_2}", dport=30082)
    assert {label for _, label, _ in one.leaves()} == {
        "DNAT to 192.168.1.71:80",
        "DNAT to 192.168.1.81:80",
    }
    leaf = leaves(one)["DNAT to 192.168.1.71:80"]
    node = hop_in(leaf, NODE_2)
    path = [c for c in chains(node) if c.startswith("KUBE-") and c != "KUBE-SERVICES"]
    assert path[:4] == [
        "KUBE-NODEPORTS",
        "KUBE-EXT-U6DUQYH3K73AFEIO",
        "KUBE-SVL-U6DUQYH3K73AFEIO",
        "KUBE-SEP-6A6DAJO7EMKD4LNB",
    ]
    assert "KUBE-MARK-MASQ" not in chains(node)
    assert node.packet_out is not None
    assert (node.packet_out.src, node.packet_out.sport) == (A("203.0.113.10"), 51000)


def test_etp_local_on_node_1_is_dropped_for_having_no_local_endpoint(
    state: DataplaneState,
) -> None:
    one = walk(state, CLIENT, f"node/{NODE_1}", dport=30082)
    assert one.disposition is not None and one.disposition.kind == "dropped"
    assert "filter/KUBE-EXTERNAL-SERVICES" in one.disposition.reason
    assert "default/app1-nlb-local has no local endpoints" in one.disposition.reason


def test_clientip_affinity_sends_the_next_connection_the_same_way(state: DataplaneState) -> None:
    one = walk(state, POD_51, "svc/default/app1-sticky", dport=80, again=True)
    assert len(list(one.leaves())) == 3
    for label, leaf in leaves(one).items():
        assert leaf.then is not None
        following = list(leaf.then.leaves())
        assert len(following) == 1, label  # no split: the recent list decides
        endpoint = re.search(r"DNAT to (\S+)", label)
        assert endpoint is not None
        node_hop = hop_in(following[0][2], NODE_1)
        assert node_hop.packet_out is not None
        assert f"{node_hop.packet_out.dst}:{node_hop.packet_out.dport}" == endpoint.group(1)
        assert node_hop.packet_out.sport == 41001


def test_without_affinity_the_next_connection_splits_again(state: DataplaneState) -> None:
    one = walk(state, POD_51, "svc/default/app1", dport=80, again=True)
    for _, _, leaf in one.leaves():
        assert leaf.then is not None and len(list(leaf.then.leaves())) == 3
