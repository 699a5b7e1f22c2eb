"""VPC route tables (vpc-fabric.md §1.4) and the internet gateway (§4), on hand-built states.

Expected values follow the spec's rules: longest prefix, local never beaten by a propagated
route, static over propagated at equal length, a blackhole route drops what it selects, a
destination in the source subnet only ever takes the local route; the gateway maps 1:1 and
drops what it cannot map."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eksnet.dataplane.state import (
    Eni,
    PublicIp,
    RouteOrigin,
    RouteState,
    RouteTable,
    Subnet,
    VpcRoute,
    VpcState,
)
from eksnet.vpc import fabric, igw
from eksnet.vpc.routes import intervals, lookup, target_kind

A = IPv4Address
N = IPv4Network
VPC_CIDR = N("10.0.0.0/16")
SUBNET = N("10.0.1.0/24")


def route(
    dst: str, target: str, *, state: RouteState = "active", origin: RouteOrigin | None = None
) -> VpcRoute:
    if origin is None:
        origin = "CreateRouteTable" if target == "local" else "CreateRoute"
    return VpcRoute(N(dst), target, state=state, origin=origin)


def table(*routes: VpcRoute) -> RouteTable:
    return RouteTable("rtb-t", routes)


PUBLIC = table(route("10.0.0.0/16", "local"), route("0.0.0.0/0", "igw-1"))


def picked(t: RouteTable, dst: str, subnet: IPv4Network | None = None) -> str | None:
    found = lookup(t, A(dst), subnet=subnet).route
    return None if found is None else f"{found.destination} → {found.target}"


def test_longest_prefix_wins() -> None:
    t = table(
        route("10.0.0.0/16", "local"),
        route("0.0.0.0/0", "igw-1"),
        route("198.51.100.0/24", "nat-1"),
    )
    assert picked(t, "198.51.100.20") == "198.51.100.0/24 → nat-1"
    assert picked(t, "198.51.101.20") == "0.0.0.0/0 → igw-1"
    assert picked(t, "10.0.9.9") == "10.0.0.0/16 → local"


def test_no_route() -> None:
    t = table(route("10.0.0.0/16", "local"))
    assert picked(t, "198.51.100.20") is None
    assert lookup(t, A("198.51.100.20")).decision() == "rtb-t: no route to 198.51.100.20"


def test_a_propagated_route_never_beats_local_even_when_more_specific() -> None:
    t = table(
        route("10.0.0.0/16", "local"),
        route("10.0.5.0/24", "vgw-1", origin="EnableVgwRoutePropagation"),
        route("172.16.0.0/12", "vgw-1", origin="EnableVgwRoutePropagation"),
    )
    assert picked(t, "10.0.5.5") == "10.0.0.0/16 → local"
    assert picked(t, "172.16.0.1") == "172.16.0.0/12 → vgw-1"  # outside local it is a route


def test_static_beats_propagated_at_equal_length_and_a_longer_propagated_one_wins() -> None:
    t = table(
        route("10.0.0.0/16", "local"),
        route("172.16.0.0/16", "vgw-1", origin="EnableVgwRoutePropagation"),
        route("172.16.0.0/16", "tgw-1"),
        route("172.16.9.0/24", "vgw-1", origin="EnableVgwRoutePropagation"),
    )
    assert picked(t, "172.16.1.1") == "172.16.0.0/16 → tgw-1"
    assert picked(t, "172.16.9.1") == "172.16.9.0/24 → vgw-1"  # no local overlap: LPM


def test_a_blackhole_route_is_selected_and_not_skipped() -> None:
    t = table(
        route("10.0.0.0/16", "local"),
        route("0.0.0.0/0", "igw-1"),
        route("198.51.100.0/24", "nat-1", state="blackhole"),
    )
    found = lookup(t, A("198.51.100.20"))
    assert found.route is not None and found.route.state == "blackhole"
    assert found.decision() == "rtb-t: 198.51.100.0/24 → nat-1 (blackhole)"


def test_the_source_subnet_is_only_reached_by_the_local_route() -> None:
    # a middlebox route for the sender's own subnet does not steer its hosts (§1.4)
    t = table(route("10.0.0.0/16", "local"), route("10.0.1.0/24", "eni-9"))
    assert picked(t, "10.0.1.7", SUBNET) == "10.0.0.0/16 → local"
    assert picked(t, "10.0.1.7", N("10.0.2.0/24")) == "10.0.1.0/24 → eni-9"


def test_target_kinds() -> None:
    assert [target_kind(t) for t in ("local", "igw-1", "nat-1", "eni-1", "pcx-1")] == [
        "local",
        "igw",
        "nat",
        "eni",
        "other",
    ]


def test_intervals_of_a_public_table() -> None:
    cut = [(str(i.first), str(i.last), i.route and i.route.target) for i in intervals(PUBLIC)]
    assert cut == [
        ("0.0.0.0", "9.255.255.255", "igw-1"),
        ("10.0.0.0", "10.0.255.255", "local"),
        ("10.1.0.0", "255.255.255.255", "igw-1"),
    ]
    closed = table(route("10.0.0.0/16", "local"))
    assert [(str(i.first), str(i.last), i.route) for i in intervals(closed)] == [
        ("0.0.0.0", "9.255.255.255", None),
        ("10.0.0.0", "10.0.255.255", closed.routes[0]),
        ("10.1.0.0", "255.255.255.255", None),
    ]


STATES: list[RouteState] = ["active", "blackhole"]
TABLES = st.lists(
    st.tuples(
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
        st.sampled_from(["local", "igw-1", "nat-1", "vgw-1"]),
        st.sampled_from(STATES),
        st.booleans(),
    ),
    max_size=6,
)
Spec = list[tuple[int, int, str, RouteState, bool]]


def _table(spec: Spec) -> RouteTable:
    routes: dict[tuple[IPv4Network, bool], VpcRoute] = {}
    for address, length, target, state, propagated in spec:
        network = N((address, length), strict=False)
        local = target == "local"
        origin: RouteOrigin = "CreateRouteTable" if local else "CreateRoute"
        if propagated and not local:
            origin = "EnableVgwRoutePropagation"
        made = VpcRoute(network, target, state="active" if local else state, origin=origin)
        routes.setdefault((network, origin == "EnableVgwRoutePropagation"), made)
    return RouteTable("rtb-p", tuple(routes.values()))


@given(TABLES, st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20), st.booleans())
def test_intervals_partition_the_space_and_agree_with_lookup(
    spec: Spec, probes: list[int], with_subnet: bool
) -> None:
    t = _table(spec)
    subnet = SUBNET if with_subnet else None
    cut = intervals(t, subnet=subnet)
    assert int(cut[0].first) == 0 and int(cut[-1].last) == 2**32 - 1
    for before, after in pairwise(cut):
        assert int(before.last) + 1 == int(after.first)
        assert before.route != after.route  # merged: neighbours differ
    edges = [b for i in cut for b in (int(i.first), int(i.last))]
    for probe in [*probes, *edges]:
        piece = next(i for i in cut if int(i.first) <= probe <= int(i.last))
        assert piece.route == lookup(t, A(probe), subnet=subnet).route


# --- delivery by the router and the internet gateway -------------------------------------------

ENI = Eni(
    "eni-a", "a", "02:00:0a:00:01:0a", A("10.0.1.10"), (A("10.0.1.11"),), node="n", device="eth0"
)
OTHER = Eni("eni-b", "a", "02:00:0a:00:01:14", A("10.0.1.20"), node="m", device="eth0")
ROUTER = "02:00:0a:00:01:01"


def vpc(*routes: VpcRoute, gateway: str | None = "igw-1") -> VpcState:
    return VpcState(
        "vpc-t",
        (VPC_CIDR,),
        (Subnet("a", SUBNET, "az", ROUTER, "rtb-t"),),
        (ENI, OTHER),
        route_tables=(table(*routes),) if routes else (),
        internet_gateway=gateway,
        public_ips=(PublicIp(A("10.0.1.10"), A("192.0.2.10"), "eni-a"),),
    )


def send(state: VpcState, dst: str, src: str = "10.0.1.10") -> fabric.Delivery:
    return fabric.deliver(state, ENI, src=A(src), dst=A(dst), src_mac=ENI.mac, dst_mac=ROUTER)


def test_router_hands_internet_traffic_to_the_gateway() -> None:
    got = send(vpc(*PUBLIC.routes), "198.51.100.20")
    assert (got.kind, got.gateway, got.code) == ("gateway", "igw-1", None)
    assert got.decision == "rtb-t: 0.0.0.0/0 → igw-1"


def test_router_drops_without_a_route_and_on_a_blackhole() -> None:
    assert send(vpc(route("10.0.0.0/16", "local")), "198.51.100.20").code == "vpc-no-route"
    hole = vpc(route("10.0.0.0/16", "local"), route("0.0.0.0/0", "nat-1", state="blackhole"))
    got = send(hole, "198.51.100.20")
    assert (got.kind, got.code) == ("dropped", "vpc-blackhole")


def test_router_says_which_target_is_not_modelled() -> None:
    got = send(vpc(route("10.0.0.0/16", "local"), route("0.0.0.0/0", "pcx-7")), "1.1.1.1")
    assert got.kind == "not-modelled" and "pcx-7" in got.reason and "peering" in got.reason


def test_an_active_route_to_a_nat_gateway_the_vpc_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="no NAT gateway of the VPC"):
        vpc(route("10.0.0.0/16", "local"), route("0.0.0.0/0", "nat-7"))


def test_a_state_without_tables_routes_only_inside_the_vpc() -> None:
    state = vpc()  # the subnet names rtb-t, which the state does not list: local routes only
    assert state.route_table("rtb-t").routes == (route("10.0.0.0/16", "local"),)
    assert send(state, "198.51.100.20").code == "vpc-no-route"
    local = send(state, "10.0.1.20")
    assert (local.kind, local.to, local.src_mac) == ("routed", OTHER, ROUTER)


def test_gateway_translates_one_to_one_both_ways() -> None:
    state = vpc(*PUBLIC.routes)
    out = igw.outbound(state, "igw-1", A("10.0.1.10"))
    assert (out.after, out.code) == (A("192.0.2.10"), None)
    back = igw.inbound(state, "igw-1", A("192.0.2.10"))
    assert (back.after, back.code) == (A("10.0.1.10"), None)
    assert out.decision() == back.decision() == "igw-1: 10.0.1.10 ↔ 192.0.2.10 (eni-a)"


def test_gateway_drops_a_source_without_a_public_ip_and_an_unknown_public_ip() -> None:
    state = vpc(*PUBLIC.routes)
    # 10.0.1.11 is a secondary IP of the same ENI: the public IP sits on the primary only
    out = igw.outbound(state, "igw-1", A("10.0.1.11"))
    assert (out.after, out.code) == (None, "igw-no-public-ip")
    back = igw.inbound(state, "igw-1", A("192.0.2.99"))
    assert (back.after, back.code) == (None, "igw-unknown-public-ip")


def test_the_gateway_lets_in_to_the_owner_with_router_and_eni_macs() -> None:
    got = fabric.deliver_from_gateway(vpc(*PUBLIC.routes), "igw-1", A("10.0.1.10"))
    assert (got.kind, got.to, got.src_mac, got.dst_mac) == ("routed", ENI, ROUTER, ENI.mac)


def test_state_refuses_a_route_to_another_gateway_and_non_unique_public_ips() -> None:
    with pytest.raises(ValueError, match="internet gateway"):
        vpc(route("10.0.0.0/16", "local"), route("0.0.0.0/0", "igw-2"))
    with pytest.raises(ValueError, match="one to one"):
        VpcState(
            "vpc-t",
            (VPC_CIDR,),
            (),
            (),
            public_ips=(
                PublicIp(A("10.0.1.10"), A("192.0.2.10"), "eni-a"),
                PublicIp(A("10.0.1.20"), A("192.0.2.10"), "eni-b"),
            ),
        )
