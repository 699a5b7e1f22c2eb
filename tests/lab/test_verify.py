"""`lab verify`: real packets compared with walks, forward and return, on the real kernel."""

from __future__ import annotations

import pytest
from tests.lab.walks import w1

from eksnet.dataplane.state import DataplaneState
from eksnet.lab.names import LabNames
from eksnet.lab.verify import verify_walk
from eksnet.walk.engine import walk
from eksnet.walk.tour import PROVEN, TourWalk, in_configuration

pytestmark = pytest.mark.lab

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"


def test_hand_written_w1_agrees_with_the_kernel(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    verdict = verify_walk(demo_state, w1(), demo_lab, "W1 (spec)")
    assert verdict.differences == (), verdict.differences
    assert verdict.status == "agree"


def test_a_wrong_prediction_is_caught(demo_lab: LabNames, demo_state: DataplaneState) -> None:
    verdict = verify_walk(demo_state, w1(wrong_mac=True), demo_lab, "W1 (wrong MAC)")
    assert verdict.status == "differs"
    kinds = {(d.kind, d.where) for d in verdict.differences}
    assert (
        "field:src_mac",
        "ip-192-168-1-50.eu-west-2.compute.internal eni69e05c2a0e5 out",
    ) in kinds
    assert ("field:src_mac", "cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935 eth0 in") in kinds


@pytest.mark.parametrize(
    "proven", in_configuration(PROVEN), ids=[t.id for t in in_configuration(PROVEN)]
)
def test_every_proven_walk_agrees_with_the_kernel(
    demo_lab: LabNames, demo_state: DataplaneState, proven: TourWalk
) -> None:
    """The tour's walks and the ones beyond the talk (across AZs, from a node, ICMP, UDP, a
    drop), simulated by the engine, forward and return."""
    simulated = walk(
        demo_state,
        proven.src,
        proven.dst,
        proto=proven.proto,
        dport=proven.dport,
        sport=proven.sport,
    )
    verdict = verify_walk(demo_state, simulated, demo_lab, proven.id)
    assert verdict.status == "agree", verdict.differences


def test_a_split_walk_is_sent_until_every_branch_was_seen(
    split_lab: tuple[LabNames, DataplaneState],
) -> None:
    names, state = split_lab
    simulated = walk(state, POD_51, "ip/10.100.200.10", dport=80)
    assert [branch.probability for branch in simulated.branches] == [0.5, 0.5]
    verdict = verify_walk(state, simulated, names, "split")
    assert verdict.status == "agree", verdict.differences
    assert all(branch.connections >= 1 for branch in verdict.branches)
    assert verdict.connections == sum(branch.connections for branch in verdict.branches)


def test_a_walk_the_lab_cannot_send_is_not_verified(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    simulated = walk(demo_state, POD_51, "ip/169.254.169.253", proto="udp", dport=53)
    verdict = verify_walk(demo_state, simulated, demo_lab, "the Resolver")
    assert verdict.status == "not verified"
    assert not verdict.agree
    assert "Resolver" in verdict.why and "only the IMDS" in verdict.why


def test_a_rejected_connection_and_the_error_that_answers_it(
    reject_lab: tuple[LabNames, DataplaneState],
) -> None:
    """A ClusterIP without endpoints: node 1's REJECT drops the SYN and sends an ICMP port
    unreachable (from the address routing picks towards the pod), the client's connect() gets
    ECONNREFUSED; every frame, rule and errno held to the walk."""
    names, state = reject_lab
    for source in (POD_51, "pod/default/rating-6d8b7c9f5-q6m4t"):
        simulated = walk(state, source, "ip/10.100.200.99", dport=80)
        assert simulated.reply is not None and simulated.reply.hops[0].packet_out is not None
        assert simulated.reply.hops[0].packet_out.is_icmp_error
        verdict = verify_walk(state, simulated, names, "rejected")
        assert verdict.status == "agree", verdict.differences
