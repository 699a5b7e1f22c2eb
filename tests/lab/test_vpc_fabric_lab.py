"""The VPC fabric on the real kernel: security groups, NACLs, the NAT gateway and the IMDS of the
lab (`lab/filters.py`, `lab/attachments.py`) against the simulator's walks, both ways.

The configurations are the spec's own (`talk.yaml` and its `nat`/`externalSnat` variants) and the
negative walks of issue 9, each a one-line edit of the demo like the simulator's tests make
(`tests/walk/test_vpc_fabric_walks.py`): an SG without the NodePort rule, a NACL denying the
node port, a route to a NAT gateway that does not exist (a blackhole), external SNAT in a public
subnet (a private IP without a public one). Every lab is built once per session.

The checks can fail: a walk simulated in one configuration and sent in a lab built from another
(the rule is there in one and not the other; a hop limit of 2 against a lab's 1) is caught, and
a simulator whose security group or NACL lets everything through is caught by the counters of
the lab's drop rules and the delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.lab.conftest import _built

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.lab.names import LabNames
from eksnet.lab.verify import Verdict, verify_walk
from eksnet.model import load_cluster
from eksnet.model.load import demo_text
from eksnet.vpc import nacl, security_groups
from eksnet.walk.engine import walk
from eksnet.walk.tour import PROVEN, TourWalk, in_configuration

pytestmark = pytest.mark.lab

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
CLIENT = "ip/203.0.113.10"
WEB = "ip/198.51.100.20"
IMDS = "ip/169.254.169.254"
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
HOP_LIMIT_2 = f"nodes.{NODE_1}.imds.hopLimit=2"

NODEPORT_RULE = (
    '        - {protocol: tcp, ports: "30080", source: 0.0.0.0/0, description: user-added '
    "for the NodePort walk}\n"
)
NACL = """\
  networkAcls:
    acl-0a11c0ffee0000001:
      subnets: [public-a]
      inbound:
        - {rule: 90, action: deny, protocol: tcp, ports: "30080", cidr: 0.0.0.0/0}
        - {rule: 100, action: allow, protocol: all, cidr: 0.0.0.0/0}
      outbound:
        - {rule: 100, action: allow, protocol: all, cidr: 0.0.0.0/0}
  flowLogs:
"""
PUBLIC_A = "{name: public-a, az: eu-west-2a, azId: euw2-az2, cidr: 192.168.1.0/24, routeTable: "
EDITS: dict[str, tuple[str, str]] = {
    "nosg": (NODEPORT_RULE, ""),
    "nacl": ("  flowLogs:\n", NACL),
    "blackhole": (PUBLIC_A + "rtb-public,", PUBLIC_A + "rtb-private-a,"),
    "nopublic": (
        'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false"}',
        'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "true"}',
    ),
}


def edited_state(directory: Path, name: str) -> DataplaneState:
    text, _ = demo_text()
    old, new = EDITS[name]
    assert text.count(old) == 1, old
    path = directory / f"{name}.yaml"
    path.write_text(text.replace(old, new))
    return build_state(load_cluster(str(path)))


@pytest.fixture(scope="session")
def nat_lab(capable: None) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _built("nat", build_state(load_cluster(variant="nat")))


@pytest.fixture(scope="session")
def external_snat_lab(capable: None) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _built("xsnat", build_state(load_cluster(variant="externalSnat")))


@pytest.fixture(scope="session")
def hop_limit_2_lab(capable: None) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _built("hop2", build_state(load_cluster(overrides=(HOP_LIMIT_2,))))


def _negative(
    name: str, factory: pytest.TempPathFactory
) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _built(name, edited_state(factory.mktemp(name), name))


@pytest.fixture(scope="session")
def nosg_lab(
    capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _negative("nosg", tmp_path_factory)


@pytest.fixture(scope="session")
def nacl_lab(
    capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _negative("nacl", tmp_path_factory)


@pytest.fixture(scope="session")
def blackhole_lab(
    capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _negative("blackhole", tmp_path_factory)


@pytest.fixture(scope="session")
def nopublic_lab(
    capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LabNames, DataplaneState]]:
    yield from _negative("nopublic", tmp_path_factory)


NEGATIVE: dict[str, tuple[str, str, int, str]] = {
    "nosg": (CLIENT, f"node/{NODE_1}", 30080, "sg-ingress"),
    "nacl": (CLIENT, f"node/{NODE_1}", 30080, "nacl-ingress"),
    "blackhole": (POD_51, WEB, 443, "vpc-blackhole"),
    "nopublic": (POD_61, WEB, 443, "igw-no-public-ip"),
}
"""Per negative lab: the walk and the drop code the specs give it."""


def verify(state: DataplaneState, names: LabNames, src: str, dst: str, dport: int) -> Verdict:
    return verify_walk(state, walk(state, src, dst, dport=dport), names, f"{src} → {dst}")


def run(proven: TourWalk, state: DataplaneState, names: LabNames) -> Verdict:
    return verify_walk(state, proven.run(state), names, proven.id)


@pytest.mark.parametrize("proven", in_configuration(PROVEN, "nat"), ids=lambda t: t.id)
def test_the_nat_variants_walks_agree(
    nat_lab: tuple[LabNames, DataplaneState], proven: TourWalk
) -> None:
    """W10c (node SNAT, then the NAT gateway's, then the gateway's EIP; and back) and X13 (no
    session: dropped by the NAT gateway), every frame in the NAT gateway's namespace too."""
    names, state = nat_lab
    verdict = run(proven, state, names)
    assert verdict.status == "agree", verdict.differences


def test_w10d_agrees(external_snat_lab: tuple[LabNames, DataplaneState]) -> None:
    names, state = external_snat_lab
    (proven,) = in_configuration(PROVEN, "externalSnat")
    verdict = run(proven, state, names)
    assert verdict.status == "agree", verdict.differences
    assert "12 frames" in verdict.checked


def test_imds_with_hop_limit_2_is_delivered(
    hop_limit_2_lab: tuple[LabNames, DataplaneState],
) -> None:
    names, state = hop_limit_2_lab
    simulated = walk(state, POD_51, IMDS, dport=80, sport=41000)
    assert simulated.reply is not None and simulated.reply.disposition is not None
    assert simulated.reply.disposition.kind == "delivered"
    verdict = verify_walk(state, simulated, names, "IMDS, hop limit 2")
    assert verdict.status == "agree", verdict.differences


@pytest.mark.parametrize("name", sorted(EDITS))
def test_the_negative_walks_agree(request: pytest.FixtureRequest, name: str) -> None:
    names, state = request.getfixturevalue(f"{name}_lab")
    src, dst, dport, code = NEGATIVE[name]
    simulated = walk(state, src, dst, dport=dport)
    assert simulated.disposition is not None and simulated.disposition.code == code
    verdict = verify_walk(state, simulated, names, name)
    assert verdict.status == "agree", verdict.differences


# --- the checks can fail -----------------------------------------------------------------------


def test_a_walk_of_another_configuration_is_caught(
    demo_lab: LabNames,
    demo_state: DataplaneState,
    hop_limit_2_lab: tuple[LabNames, DataplaneState],
) -> None:
    """The IMDS answer delivered (hop limit 2) sent in the demo's lab (hop limit 1) and the
    other way round: the TTL on the wire, the drop and its evidence all differ."""
    names, state = hop_limit_2_lab
    delivered = walk(state, POD_51, IMDS, dport=80, sport=41000)
    dropped = walk(demo_state, POD_51, IMDS, dport=80, sport=41000)
    one = verify_walk(demo_state, delivered, demo_lab, "hop limit 2 in a lab of 1")
    other = verify_walk(state, dropped, names, "hop limit 1 in a lab of 2")
    assert one.status == other.status == "differs"
    assert "field:ttl" in {d.kind for d in one.differences}
    assert "drop:ttl" in {d.kind for d in other.differences}


def test_the_nodeport_rule_the_lab_lacks_is_caught(
    demo_state: DataplaneState, nosg_lab: tuple[LabNames, DataplaneState]
) -> None:
    """W4 as the demo (with the rule) has it, sent where sg-cluster lacks it."""
    names, _ = nosg_lab
    verdict = verify(demo_state, names, CLIENT, f"node/{NODE_1}", 30080)
    assert verdict.status == "differs"
    assert "drop:unexpected" in {d.kind for d in verdict.differences}


def test_a_security_group_that_allows_everything_is_caught(
    monkeypatch: pytest.MonkeyPatch, nosg_lab: tuple[LabNames, DataplaneState]
) -> None:
    names, state = nosg_lab
    real = security_groups.judge

    def allow_all(*args: Any, **kwargs: Any) -> security_groups.SgVerdict:
        verdict = real(*args, **kwargs)
        return security_groups.SgVerdict(True, verdict.eni, verdict.direction, tracked=True)

    monkeypatch.setattr(security_groups, "judge", allow_all)
    verdict = verify(state, names, CLIENT, f"node/{NODE_1}", 30080)
    assert verdict.status == "differs"
    assert {"drop:unexpected", "delivery"} <= {d.kind for d in verdict.differences}


def test_a_nacl_that_allows_everything_is_caught(
    monkeypatch: pytest.MonkeyPatch, nacl_lab: tuple[LabNames, DataplaneState]
) -> None:
    names, state = nacl_lab
    real = nacl.judge

    def allow_all(*args: Any, **kwargs: Any) -> nacl.NaclVerdict:
        verdict = real(*args, **kwargs)
        allowing = replace(verdict.entry, action="allow")
        return nacl.NaclVerdict(verdict.acl, verdict.subnet, verdict.egress, allowing)

    monkeypatch.setattr(nacl, "judge", allow_all)
    verdict = verify(state, names, CLIENT, f"node/{NODE_1}", 30080)
    assert verdict.status == "differs"
    assert {"drop:unexpected", "delivery"} <= {d.kind for d in verdict.differences}
