"""Packet flows through kube-proxy's rules on the reference cluster of kube-proxy.md §6.1, held to
what the kernel did with the same rules (§6.5, measured: which endpoint a connection reached and
which source it saw). Upstream's flow oracles (§9, `runPacketFlowTests`) ask the same two
questions: where does it go, and is it masqueraded.

The external client of §6.5 (10.0.3.30) is played by node 2, another host that is neither
node 1 nor a pod: what matters to node 1's rules is that the source is not local. A node's own
connection is sent from its primary address (the lab's sender binds it too).
"""

from __future__ import annotations

import pytest
from tests.kube_proxy_specs import REFERENCE

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import NotModelled
from eksnet.model.load import parse_cluster
from eksnet.walk.engine import walk

NODE_1 = "node/ip-10-0-1-10.ec2.internal"
NODE_2 = "node/ip-10-0-2-20.ec2.internal"
POD_A = "pod/default/web-a"


@pytest.fixture(scope="module")
def state() -> DataplaneState:
    return build_state(parse_cluster(REFERENCE, "reference.yaml"))


def reached(state: DataplaneState, src: str, dst: str, port: int) -> dict[str, tuple[str, str]]:
    """Per way the connection can go: the endpoint that got it and the source it saw."""
    found = {}
    for _, _, leaf in walk(state, src, dst, dport=port, with_reply=False).leaves():
        assert leaf.disposition is not None and leaf.disposition.kind == "delivered"
        packet = leaf.hops[-1].packet_in
        assert packet is not None
        found[f"{packet.dst}:{packet.dport}"] = (str(packet.src), leaf.disposition.where.name)
    return found


def test_a_node_port_with_cluster_policy_is_masqueraded(state: DataplaneState) -> None:
    # §6.5: ext → 10.0.1.10:30080 (api, eTP=Cluster) reaches 10.0.2.58:8080 from 10.0.1.10
    found = reached(state, NODE_2, NODE_1, 30080)
    assert list(found) == ["10.0.2.58:8080"]
    assert found["10.0.2.58:8080"][0] == "10.0.1.10"


def test_a_node_port_with_local_policy_keeps_the_client(state: DataplaneState) -> None:
    # §6.5: ext → 10.0.1.10:31443 (shop, eTP=Local) reaches the local 10.0.1.24:8443, source kept
    found = reached(state, NODE_2, NODE_1, 31443)
    assert list(found) == ["10.0.1.24:8443"]
    assert found["10.0.1.24:8443"][0] == "10.0.2.20"


def test_a_pod_to_a_local_policy_node_port_goes_through_svl(state: DataplaneState) -> None:
    # §6.5: podA → 10.0.1.10:31443 reaches 10.0.1.24:8443 (SVL; no detector, no short-circuit)
    found = reached(state, POD_A, NODE_1, 31443)
    assert found == {"10.0.1.24:8443": ("10.0.1.23", found["10.0.1.24:8443"][1])}


def test_a_pod_reaching_its_own_service_is_hairpinned_half_the_time(
    state: DataplaneState,
) -> None:
    # §6.5: podA → 172.20.10.10:80 reaches itself (masqueraded to 10.0.1.10) or 10.0.2.57 (kept)
    found = reached(state, POD_A, "svc/default/web", 80)
    assert {endpoint: source for endpoint, (source, _) in found.items()} == {
        "10.0.1.23:8080": "10.0.1.10",
        "10.0.2.57:8080": "10.0.1.23",
    }


def test_a_service_without_endpoints_is_refused(state: DataplaneState) -> None:
    # §6.5: podA → 172.20.40.40:80 gets ECONNREFUSED (REJECT: icmp-port-unreachable)
    one = walk(state, POD_A, "svc/default/empty", dport=80)
    assert one.disposition is not None and one.disposition.kind == "dropped"
    assert "default/empty:http has no endpoints" in one.disposition.reason
    assert one.reply is not None and one.reply.disposition is not None
    error = one.reply.hops[-1].packet_in
    assert error is not None and (error.icmp_type, error.icmp_code) == (3, 3)


def test_a_node_to_its_own_local_policy_node_port_uses_any_endpoint(
    state: DataplaneState,
) -> None:
    # §6.5: node1 → 10.0.1.10:31443 reaches 10.0.2.59:8443 in the measurement: a LOCAL source
    # goes to KUBE-SVC (any endpoint, both ways), masqueraded to 10.0.1.10
    found = reached(state, NODE_1, NODE_1, 31443)
    assert {endpoint: source for endpoint, (source, _) in found.items()} == {
        "10.0.1.24:8443": "10.0.1.10",
        "10.0.2.59:8443": "10.0.1.10",
    }


def test_a_localhost_node_port_is_masqueraded(state: DataplaneState) -> None:
    # §6.5: node1 → 127.0.0.1:30080 reaches 10.0.2.58:8080 from 10.0.1.10
    found = reached(state, NODE_1, "ip/127.0.0.1", 30080)
    assert {endpoint: source for endpoint, (source, _) in found.items()} == {
        "10.0.2.58:8080": "10.0.1.10"
    }


def test_traffic_that_stays_local_is_not_modelled_yet(state: DataplaneState) -> None:
    with pytest.raises(NotModelled, match="through lo"):
        walk(state, NODE_1, NODE_1, dport=22)
