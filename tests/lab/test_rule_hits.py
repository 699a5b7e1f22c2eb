"""The netfilter part of `lab verify`: rules the kernel counted vs rules the walk matched.

Pure (no root): the expected sets come from the simulated W2 of the demo; the "kernel" side is
written by hand from talk-walks.md §3 W2 (node 1: mangle M2, nat C1 → AWS-CONNMARK-CHAIN-0 r1
RETURN, C4, POSTROUTING S1 → AWS-SNAT-CHAIN-0 r1 RETURN; node 2 on the way back the same minus
C1, which needs `-i eni+` on a first packet)."""

from __future__ import annotations

from eksnet.controllers import build_state
from eksnet.lab.verify import compare_rule_hits, expected_rule_hits
from eksnet.model import load_cluster
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "ip-192-168-1-70.eu-west-2.compute.internal"

W2_NODE_1 = frozenset(
    {
        ("mangle", "PREROUTING", 2),  # M2 -i eni+ restore (pod 51's SYN)
        ("nat", "PREROUTING", 1),  # C1 -i eni+ -j AWS-CONNMARK-CHAIN-0
        ("nat", "AWS-CONNMARK-CHAIN-0", 1),  # -d 192.168.0.0/16 RETURN
        ("nat", "PREROUTING", 2),  # C4 restore
        ("nat", "POSTROUTING", 1),  # S1 -j AWS-SNAT-CHAIN-0
        ("nat", "AWS-SNAT-CHAIN-0", 1),  # -d 192.168.0.0/16 RETURN
    }
)
W2_NODE_2 = frozenset(
    {
        ("mangle", "PREROUTING", 2),  # pod 81's SYN-ACK enters from its veth
        ("nat", "PREROUTING", 2),  # C4 on the SYN arriving on eth1 (C1 needs -i eni+)
        ("nat", "POSTROUTING", 1),
        ("nat", "AWS-SNAT-CHAIN-0", 1),
    }
)


def w2() -> Walk:
    state = build_state(load_cluster())
    return walk(
        state, "pod/default/app2-7c9f8d6b5-k5x2p", "pod/default/app1-5f7d9c6b8-z8h4k", dport=80
    )


def test_the_simulated_w2_matches_the_talks_rules() -> None:
    expected = expected_rule_hits(w2())
    assert expected[NODE_1] == W2_NODE_1
    assert expected[NODE_2] == W2_NODE_2


def test_agreeing_counters_give_no_difference() -> None:
    assert compare_rule_hits(w2(), {NODE_1: W2_NODE_1, NODE_2: W2_NODE_2}) == []


def test_an_extra_or_missing_counted_rule_is_a_difference() -> None:
    counted = {
        NODE_1: W2_NODE_1 | {("filter", "FORWARD", 1)},
        NODE_2: W2_NODE_2 - {("nat", "POSTROUTING", 1)},
    }
    differences = compare_rule_hits(w2(), counted)
    assert [d.kind for d in differences] == ["netfilter", "netfilter"]
    assert "extra filter/FORWARD #1" in differences[0].observed
    assert "missing nat/POSTROUTING #1" in differences[1].observed
