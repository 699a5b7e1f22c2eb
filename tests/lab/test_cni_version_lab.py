"""A VPC CNI release's own rules on the real kernel: issue aws/amazon-vpc-cni-k8s#2025.

The real case `tests/importers/cases/nodeport-support-off-no-mangle-restore` is a node of
VPC CNI v1.10.1 with `AWS_VPC_CNI_NODE_PORT_SUPPORT=false`: that release writes neither rule
1024 nor the mangle restore (`pkg/networkutils/network.go` at v1.10.1; PR #2026 added both in
v1.12.1). A pod on the secondary ENI sending to the internet is then routed by rule 1536 out
of eth1, SNATed to eth0's address, and the fabric's source/destination check drops it; with
v1.12.1 the nat table's mark meets rule 1024 and the packet leaves by eth0. Both labs are built
from the case's spec (one under `--set cni.version=v1.12.1`) and the kernel must agree with the
simulator on each, frame for frame. The check can fail: each walk sent in the other release's
lab differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.lab.conftest import _built

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.lab.names import LabNames
from eksnet.lab.verify import verify_walk
from eksnet.model import load_cluster
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk

pytestmark = pytest.mark.lab

CASE = (
    Path(__file__).parent.parent
    / "importers"
    / "cases"
    / "nodeport-support-off-no-mangle-restore"
    / "cluster.yaml"
)
POD = "pod/default/toolbox-4"
WEB = "ip/198.51.100.20"
NODE = "ip-192-168-10-10.us-west-2.compute.internal"


@pytest.fixture(scope="module")
def v1_10_lab(capable: None) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _built("cni110", build_state(load_cluster(CASE)))


@pytest.fixture(scope="module")
def v1_12_lab(capable: None) -> Iterator[tuple[LabNames, DataplaneState]]:
    state = build_state(load_cluster(CASE, overrides=("cni.version=v1.12.1",)))
    yield from _built("cni112", state)


def egress(state: DataplaneState) -> Walk:
    return walk(state, POD, WEB, dport=443, sport=41000)


def node_exit(result: Walk) -> str | None:
    return next(hop.oif for hop in result.hops if hop.where.name == NODE)


def test_v1_10_1_drops_the_first_packet_as_the_kernel_does(
    v1_10_lab: tuple[LabNames, DataplaneState],
) -> None:
    names, state = v1_10_lab
    simulated = egress(state)
    assert simulated.disposition is not None
    assert simulated.disposition.code == "vpc-source-check"
    assert node_exit(simulated) == "eth1"
    verdict = verify_walk(state, simulated, names, "#2025 at v1.10.1")
    assert verdict.status == "agree", verdict.differences


def test_v1_12_1_delivers_it_as_the_kernel_does(
    v1_12_lab: tuple[LabNames, DataplaneState],
) -> None:
    names, state = v1_12_lab
    simulated = egress(state)
    assert simulated.disposition is not None and simulated.disposition.kind == "delivered"
    assert node_exit(simulated) == "eth0"
    verdict = verify_walk(state, simulated, names, "#2025 at v1.12.1")
    assert verdict.status == "agree", verdict.differences


def test_each_release_s_walk_differs_in_the_other_s_lab(
    v1_10_lab: tuple[LabNames, DataplaneState],
    v1_12_lab: tuple[LabNames, DataplaneState],
) -> None:
    (old_names, old_state), (new_names, new_state) = v1_10_lab, v1_12_lab
    assert verify_walk(old_state, egress(new_state), old_names, "v1.12.1 walk").status == (
        "differs"
    )
    assert verify_walk(new_state, egress(old_state), new_names, "v1.10.1 walk").status == (
        "differs"
    )
