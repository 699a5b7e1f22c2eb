"""VPC route tables: which route a subnet's router picks for a destination (vpc-fabric.md §1.4).

AWS's selection, restricted to what the state can express (CIDR destinations; no prefix lists,
no gateway route tables):

1. a destination inside the source subnet is delivered directly: only the local route can apply
   ("hosts of one subnet can never be steered through a route", §1.4);
2. candidates are the routes whose destination contains the address, active or blackhole (a
   blackhole route still matches: AWS drops what it selects, it does not fall back to a shorter
   route — the spec's "candidates: State == active" and "blackhole → drop" are read together so);
3. a propagated route (`EnableVgwRoutePropagation`) never beats a local route it overlaps, even
   when it is more specific;
4. the longest prefix wins; at equal length a static route beats a propagated one.

`intervals` compiles the same selection into disjoint address ranges, each with the route that
wins there, so the lab can hand a table to nftables (whose interval sets do not overlap) without
a second implementation of the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from itertools import pairwise
from typing import Literal

from eksnet.dataplane.state import LOCAL_TARGET, RouteTable, VpcRoute

TargetKind = Literal["local", "igw", "nat", "eni", "other"]


def target_kind(target: str) -> TargetKind:
    """What a route sends to, from its target id."""
    if target == LOCAL_TARGET:
        return "local"
    if target.startswith("igw-"):
        return "igw"
    if target.startswith("nat-"):
        return "nat"
    if target.startswith("eni-"):
        return "eni"
    return "other"


TARGET_NAMES: dict[TargetKind, str] = {
    "local": "the VPC",
    "igw": "internet gateway",
    "nat": "NAT gateway",
    "eni": "network interface",
    "other": "gateway",
}


def route_text(table: RouteTable, route: VpcRoute) -> str:
    """A route as the walk quotes it: `rtb-public: 0.0.0.0/0 → igw-0a11c0ffee0000001`."""
    suffix = " (blackhole)" if route.state == "blackhole" else ""
    destination = (
        f"{route.prefix_list} ({route.destination})" if route.prefix_list else route.destination
    )
    return f"{table.id}: {destination} → {route.target}{suffix}"


@dataclass(frozen=True, slots=True)
class RouteLookup:
    """The route `table` picks for `destination` (None: no route), and the routes that
    contained it (the candidates the choice was made among)."""

    table: RouteTable
    destination: IPv4Address
    route: VpcRoute | None
    candidates: tuple[VpcRoute, ...]
    within_subnet: bool
    """The destination is in the source subnet: only the local route was considered."""

    def decision(self) -> str:
        if self.route is None:
            return f"{self.table.id}: no route to {self.destination}"
        return route_text(self.table, self.route)


def _propagated(route: VpcRoute) -> bool:
    return route.origin == "EnableVgwRoutePropagation"


def lookup(
    table: RouteTable, destination: IPv4Address, *, subnet: IPv4Network | None = None
) -> RouteLookup:
    """The route `table` selects for `destination`, for a packet from `subnet` (the sender's)."""
    within = subnet is not None and destination in subnet
    candidates = tuple(route for route in table.routes if destination in route.destination)
    eligible = [r for r in candidates if r.target == LOCAL_TARGET] if within else list(candidates)
    if any(route.target == LOCAL_TARGET for route in eligible):
        eligible = [route for route in eligible if not _propagated(route)]
    if not eligible:
        return RouteLookup(table, destination, None, candidates, within)
    # Overlapping prefix lists with different targets: AWS keeps one at random; the walk
    # takes the lowest list id (§1.4 rule 4): `max` returns the first of equals.
    eligible.sort(key=lambda route: route.prefix_list or "")
    best = max(
        eligible,
        key=lambda route: (
            route.destination.prefixlen,
            not _propagated(route),
            route.prefix_list is None,
        ),
    )
    return RouteLookup(table, destination, best, candidates, within)


@dataclass(frozen=True, slots=True)
class RouteInterval:
    """Addresses `first`…`last` (inclusive), all of which `route` wins (None: no route)."""

    first: IPv4Address
    last: IPv4Address
    route: VpcRoute | None


def intervals(table: RouteTable, *, subnet: IPv4Network | None = None) -> tuple[RouteInterval, ...]:
    """The whole IPv4 space cut into the fewest ranges on which `lookup` picks one route.

    The choice can only change where some route's destination (or the subnet) starts or ends,
    so one `lookup` per piece between those boundaries decides the piece; neighbouring pieces
    with the same winner are merged."""
    edges = {0, 2**32}
    networks = [route.destination for route in table.routes]
    if subnet is not None:
        networks.append(subnet)
    for network in networks:
        edges.add(int(network.network_address))
        edges.add(int(network.broadcast_address) + 1)
    ordered = sorted(edges)
    found: list[RouteInterval] = []
    for start, end in pairwise(ordered):
        route = lookup(table, IPv4Address(start), subnet=subnet).route
        if found and found[-1].route == route:
            found[-1] = RouteInterval(found[-1].first, IPv4Address(end - 1), route)
        else:
            found.append(RouteInterval(IPv4Address(start), IPv4Address(end - 1), route))
    return tuple(found)
