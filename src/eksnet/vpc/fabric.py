"""The VPC fabric between ENIs: who owns an address, ARP answers, delivery, source/dest check.

What the VPC does with a frame an ENI sends (vpc-fabric.md §1.2–1.7): it checks that the ENI
owns the packet's source (source/destination check), then either delivers it at layer 2 (the
frame is addressed to another ENI's MAC in the same subnet: the receiver sees the sender's MAC)
or routes it (the frame is addressed to the subnet router's MAC: the route table picks the
target, and the receiver sees the router's MAC as source). ARP is answered by the fabric, not by
the target: base+1 gets the router MAC, an address owned by an ENI of the same subnet gets that
ENI's MAC, anything else no answer.

The router follows the sender subnet's route table (`vpc.routes`): the local route delivers to
the owning ENI, a route to the internet gateway hands the packet to it (`vpc.igw` translates),
a route to a NAT gateway hands it to the gateway's ENI, no route or a blackhole drops it.
Other targets (an ENI as a middlebox, VPN, transit and peering gateways) and gateway route
tables are not modelled; a walk that needs them says so. Security groups, NACLs, the NAT
gateway and host-served addresses are judged by the walk in the order of vpc-fabric.md §1.3
(`vpc.pipeline`), with `vpc.security_groups`, `vpc.nacl` and `vpc.nat_gateway`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from eksnet.dataplane.state import Eni, Subnet, VpcState
from eksnet.vpc import routes


def owner_of(vpc: VpcState, address: IPv4Address) -> Eni | None:
    """The ENI that owns `address` (primary, secondary or a delegated prefix), if any."""
    return vpc.owner_of(address)


def eni_of_device(vpc: VpcState, node: str, device: str) -> Eni | None:
    """The ENI behind a node's Linux interface (`eth1` on node X)."""
    for eni in vpc.enis:
        if eni.node == node and eni.device == device:
            return eni
    return None


def eni_with_mac(vpc: VpcState, mac: str) -> Eni | None:
    for eni in vpc.enis:
        if eni.mac == mac:
            return eni
    return None


HOST_SERVED: dict[IPv4Address, str] = {
    IPv4Address("169.254.169.254"): "the instance metadata service (IMDS)",
    IPv4Address("169.254.169.253"): "the Route 53 Resolver",
    IPv4Address("169.254.169.123"): "the Amazon Time Sync Service",
}
"""Link-local addresses the instance's host answers itself, never routed (vpc-fabric.md §1.1,
§8.4); the VPC's primary CIDR base+2 (the Resolver) is host-served too (`host_served`)."""

LINK_LOCAL = IPv4Network("169.254.0.0/16")
IMDS = IPv4Address("169.254.169.254")


def host_served(vpc: VpcState, address: IPv4Address) -> str | None:
    """What the instance's host answers at `address` itself, or None."""
    if address in HOST_SERVED:
        return HOST_SERVED[address]
    if vpc.cidrs and address == vpc.cidrs[0].network_address + 2:
        return "the Route 53 Resolver (the VPC's base+2)"
    return None


@dataclass(frozen=True, slots=True)
class ArpAnswer:
    """What the fabric answers to `who-has target` asked on an ENI in `subnet`."""

    target: IPv4Address
    mac: str | None
    answered_by: str
    """`router` (the subnet's base+1), `host` (a host-served link-local address), an ENI id,
    or `nobody`."""


def arp(vpc: VpcState, asking: Eni, target: IPv4Address) -> ArpAnswer:
    """The answer to `who-has target` on `asking`'s subnet. A host-served link-local address
    (an AL2 node routes 169.254.169.254 on-link via eth0) is answered by the instance's host;
    with which MAC is not documented, the subnet router's is assumed [inf]."""
    subnet = vpc.subnet(asking.subnet)
    if target == subnet.gateway:
        return ArpAnswer(target, subnet.router_mac, "router")
    if target in LINK_LOCAL and target in HOST_SERVED:
        return ArpAnswer(target, subnet.router_mac, "host")
    if target in subnet.cidr:
        owner = owner_of(vpc, target)
        if owner is not None and owner.subnet == subnet.name:
            return ArpAnswer(target, owner.mac, owner.id)
    return ArpAnswer(target, None, "nobody")


DeliveryKind = Literal["l2", "routed", "gateway", "nat-gateway", "dropped", "not-modelled"]
"""`gateway`: the route table handed the packet to the internet gateway `Delivery.gateway`;
`nat-gateway`: to the NAT gateway `Delivery.gateway`, whose ENI is `Delivery.to`."""
FabricDrop = Literal[
    "vpc-source-check",
    "vpc-destination-check",
    "vpc-no-owner",
    "vpc-no-route",
    "vpc-blackhole",
    "vpc-broadcast",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The fabric's answer for one frame: where it goes and with which MACs, or why not."""

    kind: DeliveryKind
    reason: str
    code: FabricDrop | None = None
    """Why a dropped frame was dropped (the walk's drop code)."""
    to: Eni | None = None
    src_mac: str | None = None
    dst_mac: str | None = None
    via: Subnet | None = None
    """For routed frames: the subnet whose router (and route table) forwarded it."""
    decision: str = ""
    """The fact that decided, in AWS's terms (`rtb-public: 192.168.0.0/16 → local`)."""
    gateway: str | None = None
    """For `gateway`: the internet gateway the route targets."""


def deliver(
    vpc: VpcState, sender: Eni, *, src: IPv4Address, dst: IPv4Address, src_mac: str, dst_mac: str
) -> Delivery:
    """Carry one frame that `sender` transmitted, per vpc-fabric.md §1.3 (the parts modelled)."""
    if sender.source_dest_check and not sender.owns(src):
        return Delivery(
            "dropped",
            f"source/destination check: {sender.id} does not own source {src} "
            f"(it owns {', '.join(map(str, sender.addresses()))})",
            code="vpc-source-check",
        )
    subnet = vpc.subnet(sender.subnet)
    if dst_mac == "ff:ff:ff:ff:ff:ff" or int(dst_mac[:2], 16) & 1:
        return Delivery(
            "dropped", f"{dst_mac}: the VPC carries no broadcast or multicast", code="vpc-broadcast"
        )
    if dst_mac == subnet.router_mac:
        return _route(vpc, subnet, dst)
    target = next((eni for eni in vpc.enis if eni.mac == dst_mac), None)
    if target is None or target.subnet != sender.subnet:
        return Delivery(
            "dropped", f"no ENI with MAC {dst_mac} in subnet {subnet.name}", code="vpc-no-owner"
        )
    if target.source_dest_check and not target.owns(dst):
        return Delivery(
            "dropped",
            f"source/destination check: {target.id} ({dst_mac}) does not own destination {dst}",
            code="vpc-destination-check",
        )
    return Delivery(
        "l2",
        f"layer 2 in {subnet.name}: {dst_mac} is {target.id}, which owns {dst}",
        to=target,
        src_mac=src_mac,
        dst_mac=dst_mac,
        decision=f"{dst_mac} is {target.id} in {subnet.name}, which owns {dst}",
    )


def _route(vpc: VpcState, subnet: Subnet, dst: IPv4Address) -> Delivery:
    """A frame for the subnet router: the subnet's route table decides (vpc-fabric.md §1.3
    steps 5 and 6)."""
    table = vpc.route_table(subnet.route_table)
    found = routes.lookup(table, dst, subnet=subnet.cidr)
    decision = found.decision()
    route = found.route
    if route is None:
        return Delivery(
            "dropped",
            f"route table {table.id} has no route to {dst}",
            code="vpc-no-route",
            via=subnet,
            decision=decision,
        )
    if route.state == "blackhole":
        return Delivery(
            "dropped",
            f"route table {table.id} sends {dst} to {route.target}, which is gone (blackhole)",
            code="vpc-blackhole",
            via=subnet,
            decision=decision,
        )
    kind = routes.target_kind(route.target)
    if kind == "nat":
        gateway = vpc.nat_gateway(route.target)
        assert gateway is not None  # a route to a NAT gateway the VPC lacks is a blackhole
        eni = vpc.eni(gateway.eni)
        return Delivery(
            "nat-gateway",
            f"route table {table.id}: {dst} matches {route.destination} → {route.target}",
            to=eni,
            src_mac=vpc.subnet(eni.subnet).router_mac,
            dst_mac=eni.mac,
            via=subnet,
            decision=decision,
            gateway=route.target,
        )
    if kind == "igw":
        return Delivery(
            "gateway",
            f"route table {table.id}: {dst} matches {route.destination} → {route.target}",
            via=subnet,
            decision=decision,
            gateway=route.target,
        )
    if kind != "local":
        return Delivery(
            "not-modelled",
            f"route table {table.id} sends {dst} to the {routes.TARGET_NAMES[kind]} "
            f"{route.target} ({decision}): the packet leaves what the VPC model carries "
            "(routes to an ENI as a middlebox, VPN, transit and peering gateways)",
            via=subnet,
            decision=decision,
        )
    return _to_owner(vpc, dst, via=subnet, decision=decision)


def _to_owner(vpc: VpcState, dst: IPv4Address, *, via: Subnet | None, decision: str) -> Delivery:
    """Local delivery by the router: to the ENI that owns `dst`, from the router MAC of that
    ENI's subnet (the receiver sees the router, not the sender)."""
    target = owner_of(vpc, dst)
    if target is None:
        return Delivery(
            "dropped",
            f"route {dst}: local, but no ENI owns {dst}",
            code="vpc-no-owner",
            via=via,
            decision=decision,
        )
    receiving = vpc.subnet(target.subnet)
    table = f"route table {via.route_table}: " if via is not None else ""
    return Delivery(
        "routed",
        f"{table}{dst} matches the VPC-local route; {target.id} owns it",
        to=target,
        src_mac=receiving.router_mac,
        dst_mac=target.mac,
        via=via,
        decision=f"{decision}; owner {target.id}",
    )


def deliver_from_gateway(vpc: VpcState, gateway: str, dst: IPv4Address) -> Delivery:
    """A packet the internet gateway let in, its destination already translated to the private
    address: the VPC delivers it to the owning ENI like any routed packet. Without a gateway
    route table (edge association, not modelled) the VPC's local route is the only choice."""
    local = next((cidr for cidr in vpc.cidrs if dst in cidr), None)
    if local is None:
        return Delivery(
            "dropped",
            f"{dst} is outside the VPC: nothing routes it from {gateway}",
            code="vpc-no-route",
            decision=f"{gateway}: no local route to {dst}",
        )
    return _to_owner(vpc, dst, via=None, decision=f"from {gateway}: {local} → local")
