"""`lab verify` on walks through kube-proxy's rules: what the tour walks do not cover (a variant
that drops), and faults in the simulator's Service handling that the kernel must expose.

The tour's Service walks (W3, W4, W4b, X6–X10) are proven in
`test_verify.py::test_every_proven_walk_agrees_with_the_kernel`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from eksnet.dataplane.state import DataplaneState
from eksnet.lab.names import LabNames
from eksnet.lab.verify import verify_walk
from eksnet.walk import netfilter as nf
from eksnet.walk.engine import walk
from eksnet.walk.model import Branch, Walk

pytestmark = pytest.mark.lab

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
CLIENT = "ip/203.0.113.10"
NODE_2 = "node/ip-192-168-1-70.eu-west-2.compute.internal"


def test_w4b_without_node_port_support_drops_on_the_kernel_too(
    no_node_port_lab: tuple[LabNames, DataplaneState],
) -> None:
    names, state = no_node_port_lab
    one = walk(state, CLIENT, NODE_2, dport=30080)
    ends = {label: leaf.reply.disposition for _, label, leaf in one.leaves() if leaf.reply}
    dropped = ends["DNAT to 192.168.1.81:80"]
    assert dropped is not None and dropped.kind == "dropped"
    verdict = verify_walk(state, one, names, "W4b without NodePort support")
    assert verdict.status == "agree", verdict.differences


def _rotated_thens(one: Walk) -> Walk:
    """The affinity walk with each branch's next connection taken from the next branch: a
    simulator that remembers the client under the wrong endpoint."""
    branches = one.branches
    thens = [branch.walk.then for branch in branches]
    rotated = tuple(
        Branch(b.probability, b.label, replace(b.walk, then=thens[(i + 1) % len(thens)]))
        for i, b in enumerate(branches)
    )
    return replace(one, branches=rotated)


def test_a_next_connection_predicted_to_the_wrong_endpoint_differs(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    one = walk(demo_state, POD_51, "svc/default/app1-sticky", dport=80, again=True)
    assert all(b.walk.then is not None for b in one.branches)
    verdict = verify_walk(demo_state, _rotated_thens(one), demo_lab, "affinity, rotated")
    assert verdict.status == "differs"
    assert any("its next connection" in d.where for d in verdict.differences)


def test_a_reply_the_simulator_does_not_un_nat_differs(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    real = nf.nat_rewrite_at

    def forgetful(hook: Any, packet: Any, entry: Any, direction: Any) -> Any:
        return packet if direction == "REPLY" else real(hook, packet, entry, direction)

    monkeypatch.setattr(nf, "nat_rewrite_at", forgetful)
    one = walk(demo_state, POD_51, "svc/default/app1", dport=80)
    verdict = verify_walk(demo_state, one, demo_lab, "W3, reply not un-DNATed")
    assert verdict.status == "differs"
    assert "field:src" in {d.kind for d in verdict.differences}
