"""`lab verify`: real packets compared with walks, forward and return."""

from __future__ import annotations

import pytest
from tests.lab.walks import w1

from eksnet.dataplane.state import DataplaneState
from eksnet.lab.names import LabNames
from eksnet.lab.verify import verify_walk

pytestmark = pytest.mark.lab


def test_hand_written_w1_agrees_with_the_kernel(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    verdict = verify_walk(demo_state, w1(), demo_lab, "W1 (spec)")
    assert verdict.differences == (), verdict.differences
    assert verdict.agree


def test_a_wrong_prediction_is_caught(demo_lab: LabNames, demo_state: DataplaneState) -> None:
    verdict = verify_walk(demo_state, w1(wrong_mac=True), demo_lab, "W1 (wrong MAC)")
    assert not verdict.agree
    kinds = {(d.kind, d.where) for d in verdict.unexplained()}
    assert (
        "field:src_mac",
        "ip-192-168-1-50.eu-west-2.compute.internal eni69e05c2a0e5 out",
    ) in kinds
    assert ("field:src_mac", "cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935 eth0 in") in kinds


def test_tour_walks_agree_with_the_kernel(demo_lab: LabNames, demo_state: DataplaneState) -> None:
    """W0, W1, W2 of the tour, simulated by the engine, forward and return."""
    from eksnet.lab.cli import _tour_walks

    for label, walk in _tour_walks(demo_state, ["W0", "W1", "W2"]):
        verdict = verify_walk(demo_state, walk, demo_lab, label)
        assert verdict.agree, (label, verdict.unexplained())
