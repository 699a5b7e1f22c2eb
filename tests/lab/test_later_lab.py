"""A connection's later packet (`walk --later`) on the real kernel.

The verifier records the exchange as always (the client's own ACK dropped by the probe), then
has the agent send that ACK with the numbers the SYN-ACK gave, conntrack left as the exchange
left it, and holds its frames and drops to `Walk.later`. vpc-cni.md §2.4: the nat table sees
only a connection's first packet, and "M2 restores the mark for later packets". On the demo,
pod 61's (node 1's eth1) later packet to the internet leaves by eth0 like its first; with M2
removed from node 1 the first still does (the nat table's restore) but the later one takes
rule 1536 out of eth1 with node 1's address, and the fabric's source/destination check drops
it. The checks can fail: each state's walk sent in the other's lab differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from tests.lab.conftest import _built

from eksnet.dataplane.state import DataplaneState
from eksnet.lab.names import LabNames
from eksnet.lab.verify import verify_walk
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk

pytestmark = pytest.mark.lab

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
WEB = "ip/198.51.100.20"
M2 = (
    '-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" '
    "-j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80"
)


def without_m2(state: DataplaneState) -> DataplaneState:
    changed = []
    for namespace in state.namespaces:
        if namespace.name == NODE_1:
            assert namespace.iptables is not None
            lines = namespace.iptables.save.splitlines()
            lines.remove(M2)
            saved = "\n".join(lines) + "\n"
            namespace = replace(namespace, iptables=replace(namespace.iptables, save=saved))
        changed.append(namespace)
    return replace(state, namespaces=tuple(changed))


@pytest.fixture(scope="module")
def no_m2_lab(
    capable: None, demo_state: DataplaneState
) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _built("nom2", without_m2(demo_state))


def egress(state: DataplaneState) -> Walk:
    return walk(state, POD_61, WEB, dport=443, sport=41000, later=True)


def node_1_exit(part: Walk) -> str | None:
    return next(hop.oif for hop in part.hops if hop.where.name == NODE_1)


def test_the_later_packet_leaves_like_the_first_on_the_demo(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    simulated = egress(demo_state)
    assert simulated.later is not None and simulated.later.disposition is not None
    assert simulated.later.disposition.kind == "delivered"
    assert node_1_exit(simulated) == node_1_exit(simulated.later) == "eth0"
    verdict = verify_walk(demo_state, simulated, demo_lab, "W10b and its later packet")
    assert verdict.status == "agree", verdict.differences
    assert "the later packet: " in verdict.checked


def test_without_m2_only_the_later_packet_is_dropped(
    no_m2_lab: tuple[LabNames, DataplaneState],
) -> None:
    names, state = no_m2_lab
    simulated = egress(state)
    assert simulated.disposition is not None and simulated.disposition.kind == "delivered"
    assert simulated.later is not None and simulated.later.disposition is not None
    assert simulated.later.disposition.code == "vpc-source-check"
    assert node_1_exit(simulated.later) == "eth1"
    verdict = verify_walk(state, simulated, names, "no M2: the later packet")
    assert verdict.status == "agree", verdict.differences


def test_each_later_packet_differs_in_the_other_lab(
    demo_lab: LabNames,
    demo_state: DataplaneState,
    no_m2_lab: tuple[LabNames, DataplaneState],
) -> None:
    names, state = no_m2_lab
    healthy = verify_walk(state, egress(demo_state), names, "healthy walk, no-M2 lab")
    broken = verify_walk(demo_state, egress(state), demo_lab, "no-M2 walk, demo lab")
    assert healthy.status == broken.status == "differs"
    for verdict in (healthy, broken):
        # the later packet's frames part (eth0 against eth1); the first packet's path is the
        # same in both labs (only M2's own counter differs)
        later = [d for d in verdict.differences if "(the later packet)" in d.where]
        assert {d.kind for d in later} >= {"wire-missing", "wire-unexpected"}, verdict
        assert all(
            "(the later packet)" in d.where or d.kind == "netfilter" for d in verdict.differences
        ), verdict.differences


@pytest.mark.parametrize("service", ["app1-nlb", "app1-nlb-ip"])
def test_an_nlb_keeps_a_connection_s_later_packet_on_its_target(
    demo_lab: LabNames, demo_state: DataplaneState, service: str
) -> None:
    """aws-load-balancers.md §2.2: an NLB sends a flow's packets to the target it chose. The
    lab's NLB node holds each client's draw in a map (`attachments.nlb_attachment`); before it
    did, the later ACK went to a target drawn anew and the verifier said so (wire-missing on
    the first packet's target)."""
    simulated = walk(demo_state, "ip/203.0.113.10", f"lb/default/{service}", dport=80, later=True)
    for _, _, leaf in simulated.leaves():
        assert leaf.later is not None and leaf.later.disposition is not None
        assert leaf.later.disposition.kind == "delivered"
        assert leaf.later.disposition.where == leaf.disposition.where  # type: ignore[union-attr]
    verdict = verify_walk(demo_state, simulated, demo_lab, f"{service}, later packet")
    assert verdict.status == "agree", verdict.differences
