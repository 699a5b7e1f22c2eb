"""The netfilter part of `lab verify`: rules the kernel counted vs rules the walk matched.

Pure (no root): the expected sets come from the simulated W2 of the demo; the "kernel" side is
written by hand from talk-walks.md §3 W2 and §4.3 (kube-proxy's jumps come first in each
chain): node 1 forwards pod 51's SYN through mangle M2, nat KUBE-SERVICES (no match), C1 →
AWS-CONNMARK-CHAIN-0 r1 RETURN, C4, filter FORWARD's four kube-proxy jumps, POSTROUTING's
KUBE-POSTROUTING r1 RETURN and S1 → AWS-SNAT-CHAIN-0 r1 RETURN; the SYN-ACK matches only
KUBE-FORWARD's ESTABLISHED rule (M1 needs a local destination). Node 2 the same minus C1, which
needs `-i eni+`, with M2 on the SYN-ACK from pod 81's veth instead of the SYN."""

from __future__ import annotations

from eksnet.controllers import build_state
from eksnet.lab.verify import compare_rule_hits, expected_rule_hits
from eksnet.model import load_cluster
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "ip-192-168-1-70.eu-west-2.compute.internal"

FORWARDED_NEW = frozenset(
    {
        ("nat", "PREROUTING", 1),  # -j KUBE-SERVICES: no Service matches
        ("nat", "PREROUTING", 3),  # C4 restore
        ("filter", "FORWARD", 1),  # NEW -j KUBE-PROXY-FIREWALL
        ("filter", "FORWARD", 2),  # -j KUBE-FORWARD
        ("filter", "FORWARD", 3),  # NEW -j KUBE-SERVICES
        ("filter", "FORWARD", 4),  # NEW -j KUBE-EXTERNAL-SERVICES
        ("filter", "KUBE-FORWARD", 3),  # the SYN-ACK: RELATED,ESTABLISHED ACCEPT
        ("nat", "POSTROUTING", 1),  # -j KUBE-POSTROUTING
        ("nat", "KUBE-POSTROUTING", 1),  # no 0x4000: RETURN
        ("nat", "POSTROUTING", 2),  # S1 -j AWS-SNAT-CHAIN-0
        ("nat", "AWS-SNAT-CHAIN-0", 1),  # -d 192.168.0.0/16 RETURN
    }
)
W2_NODE_1 = FORWARDED_NEW | {
    ("mangle", "PREROUTING", 2),  # M2 -i eni+ restore (pod 51's SYN)
    ("nat", "PREROUTING", 2),  # C1 -i eni+ -j AWS-CONNMARK-CHAIN-0
    ("nat", "AWS-CONNMARK-CHAIN-0", 1),  # -d 192.168.0.0/16 RETURN
}
W2_NODE_2 = FORWARDED_NEW | {
    ("mangle", "PREROUTING", 2),  # pod 81's SYN-ACK enters from its veth
}


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
        NODE_1: W2_NODE_1 | {("filter", "INPUT", 1)},
        NODE_2: W2_NODE_2 - {("nat", "POSTROUTING", 1)},
    }
    differences = compare_rule_hits(w2(), counted)
    assert [d.kind for d in differences] == ["netfilter", "netfilter"]
    assert "extra filter/INPUT #1" in differences[0].observed
    assert "missing nat/POSTROUTING #1" in differences[1].observed
