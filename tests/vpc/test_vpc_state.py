"""The controllers' VPC state: route tables, the internet gateway's public IPv4 mapping and the
external hosts, from the demo spec (talk-walks.md §2.2–2.3) and from small specs whose mistakes
must be reported at their line."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState, ExternalHost, PublicIp, VpcRoute
from eksnet.errors import InputError
from eksnet.model import load_cluster

A = IPv4Address
N = IPv4Network


def test_demo_route_tables_gateway_and_public_ips() -> None:
    vpc = build_state(load_cluster(None)).vpc
    assert vpc.internet_gateway == "igw-0a11c0ffee0000001"
    public = vpc.route_table("rtb-public")
    assert public.routes == (
        VpcRoute(N("192.168.0.0/16"), "local", origin="CreateRouteTable"),
        VpcRoute(N("0.0.0.0/0"), "igw-0a11c0ffee0000001"),
    )
    assert all(subnet.route_table == "rtb-public" for subnet in vpc.subnets)
    # §2.3: each node's public IPv4 sits on the primary IP of its primary ENI
    assert vpc.public_ips[:3] == (
        PublicIp(A("192.168.1.50"), A("192.0.2.50"), "eni-01a00000000000050"),
        PublicIp(A("192.168.1.70"), A("192.0.2.70"), "eni-01a00000000000070"),
        PublicIp(A("192.168.2.90"), A("192.0.2.90"), "eni-01a00000000000090"),
    )
    # then each load balancer node's (talk-walks.md §2.7: five load balancers, three AZs)
    nodes = vpc.public_ips[3:]
    assert len(nodes) == 15 and all(item.eni.startswith("eni-0e1b") for item in nodes)
    assert PublicIp(A("192.168.3.141"), A("192.0.2.143"), "eni-0e1bc0a8038d") in nodes
    # rtb-private-a's NAT gateway exists only in the nat variants: here a blackhole route
    private = vpc.route_table("rtb-private-a")
    assert [(r.target, r.state) for r in private.routes] == [
        ("local", "active"),
        ("nat-0a11c0ffee0000001", "blackhole"),
    ]


def test_demo_external_hosts() -> None:
    assert build_state(load_cluster(None)).external_hosts == (
        # talk.yaml's externalHosts: the client's fixed source port, the web server's port
        ExternalHost("client", A("203.0.113.10"), source_port=51000),
        ExternalHost("web", A("198.51.100.20"), port=443),
    )


def test_the_nat_variant_has_its_gateway_and_moves_public_a() -> None:
    vpc = build_state(load_cluster(None, variant="nat")).vpc
    assert vpc.subnet("public-a").route_table == "rtb-private-a"
    assert vpc.route_table("rtb-private-a").routes[1].state == "active"


SPEC = """\
name: t
region: eu-west-2
vpc:
  id: vpc-1
  cidrs: [10.1.0.0/16]
  internetGateway: igw-1
  subnets:
    - {name: a, az: eu-west-2a, cidr: 10.1.1.0/24, routeTable: public}
  routeTables:
    public:
      - {dst: 0.0.0.0/0, target: igw-1}
nodes:
  - name: node-a
    subnet: a
    publicIp: PUBLIC
    enis:
      - {linux: eth0, ifindex: 2, id: eni-0a, device: 0, mac: "02:00:0a:01:01:0a", primaryIp: 10.1.1.10}
externalHosts:
  - {name: web, ip: HOST}
"""


def state_of(
    tmp_path: Path, public: str = "192.0.2.10", host: str = "198.51.100.20"
) -> DataplaneState:
    path = tmp_path / "t.yaml"
    path.write_text(SPEC.replace("PUBLIC", public).replace("HOST", host))
    return build_state(load_cluster(path))


def test_a_table_without_its_local_route_gets_it_first(tmp_path: Path) -> None:
    routes = state_of(tmp_path).vpc.route_table("public").routes
    assert routes[0] == VpcRoute(N("10.1.0.0/16"), "local", origin="CreateRouteTable")
    assert routes[1].target == "igw-1"


@pytest.mark.parametrize(
    ("public", "host", "line", "words"),
    [
        ("10.1.9.9", "198.51.100.20", 15, "inside the VPC"),
        ("192.0.2.10", "10.1.1.77", 19, "inside the VPC"),
        ("192.0.2.10", "192.0.2.10", 19, "public IP of a node"),
    ],
)
def test_mistakes_are_reported_at_their_line(
    tmp_path: Path, public: str, host: str, line: int, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        state_of(tmp_path, public, host)
    assert caught.value.line == line, caught.value.one_line()
    assert words in caught.value.message
