"""Walk targets beyond pods and nodes: a Service (`svc/NS/NAME`) and a client on the internet;
and picking one way of a split walk (`--seed`), and the conntrack tables a walk leaves."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from tests.lab.states import SPLIT_VIP, split_state

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState, Service, ServicePort
from eksnet.errors import InputError
from eksnet.model import load_cluster
from eksnet.walk.engine import walk

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
CLIENT = "ip/203.0.113.10"


@pytest.fixture(scope="module")
def demo() -> DataplaneState:
    return build_state(load_cluster())


def with_service(
    state: DataplaneState, *ports: ServicePort, vip: str = SPLIT_VIP
) -> DataplaneState:
    service = Service("default", "web", "ClusterIP", IPv4Address(vip), ports)
    return replace(state, services=(*state.services, service))


UNPROGRAMMED_VIP = "10.100.200.99"
"""An address of the demo's service CIDR that no Service of the spec has, so kube-proxy wrote no
rule for it (10.100.200.10 is app1's, which kube-proxy now translates)."""


def test_a_service_target_is_its_cluster_ip_and_port(demo: DataplaneState) -> None:
    state = split_state(with_service(demo, ServicePort("", "tcp", 80, 80)))
    one = walk(state, POD_51, "svc/default/web")
    assert (str(one.flow.dst.address), one.flow.dport, one.flow.dst.kind) == (SPLIT_VIP, 80, "svc")
    assert len(one.branches) == 2


def test_a_port_the_service_does_not_have_is_bad_input(demo: DataplaneState) -> None:
    state = with_service(
        demo, ServicePort("http", "tcp", 80, 80), ServicePort("dns", "udp", 53, 53)
    )
    with pytest.raises(InputError, match=r"has no port 8080/tcp \(its ports: 80/tcp, 53/udp\)"):
        walk(state, POD_51, "svc/default/web", dport=8080)
    assert walk(state, POD_51, "svc/default/web", proto="udp").flow.dport == 53
    with pytest.raises(InputError, match="unknown Service 'default/nope'"):
        walk(state, POD_51, "svc/default/nope", dport=80)


def test_a_cluster_ip_no_rule_translates_says_kube_proxy_is_missing(demo: DataplaneState) -> None:
    state = with_service(demo, ServicePort("", "tcp", 80, 80), vip=UNPROGRAMMED_VIP)
    one = walk(state, POD_51, "svc/default/web")
    assert one.disposition is not None and one.disposition.kind == "not-modelled"
    assert "kube-proxy's rules for it are missing" in one.disposition.reason
    assert one.disposition.where.name == NODE_1


def test_a_client_on_the_internet_addresses_the_public_ipv4(demo: DataplaneState) -> None:
    """talk-walks W4 hop 1: `203.0.113.10:51000 → 192.0.2.50:30080`, translated by the internet
    gateway to `192.168.1.50:30080` (51000 is the client's pinned source port)."""
    whole = walk(demo, CLIENT, f"node/{NODE_1}", dport=30080)
    # kube-proxy's NodePort rules split the walk by endpoint; every branch starts the same way.
    one = whole.leaf_at(0.0)[1] if whole.branches else whole
    sent = one.hops[0].packet_out
    assert sent is not None
    assert (str(sent.src), sent.sport, str(sent.dst), sent.dport) == (
        "203.0.113.10",
        51000,
        "192.0.2.50",
        30080,
    )
    arrived = one.hops[3].packet_in
    assert one.hops[3].where.name == NODE_1 and arrived is not None
    assert (str(arrived.dst), arrived.src_mac, arrived.dst_mac) == (
        "192.168.1.50",
        "02:00:c0:a8:01:01",
        "02:00:c0:a8:01:32",
    )


def test_a_seed_picks_one_branch_by_its_share(demo: DataplaneState) -> None:
    one = walk(split_state(demo), POD_51, f"ip/{SPLIT_VIP}", dport=80)
    assert [branch.probability for branch in one.branches] == [0.5, 0.5]
    first_label, first = one.leaf_at(0.25)
    second_label, second = one.leaf_at(0.75)
    assert (first_label, second_label) == ("DNAT to 192.168.1.71:80", "DNAT to 192.168.1.81:80")
    assert first is one.branches[0].walk and second is one.branches[1].walk
    with pytest.raises(ValueError):
        one.leaf_at(1.0)


def test_the_conntrack_tables_after_the_walk(demo: DataplaneState) -> None:
    """After the reply each node lists one entry per connection, in its state after the reply
    (node 1 of W2: `SYN_RECV`, talk-walks §3 W2 conntrack)."""
    one = walk(demo, POD_51, "pod/default/app1-5f7d9c6b8-z8h4k", dport=80)
    tables = one.final_conntrack()
    assert set(tables) == {NODE_1, "ip-192-168-1-70.eu-west-2.compute.internal"}
    (entry,) = tables[NODE_1]
    assert " SYN_RECV src=192.168.1.51 dst=192.168.1.81 sport=41000 dport=80 " in entry.text
