"""The VPC fabric between ENIs: who owns an address, ARP answers, delivery, source/dest check.

What the VPC does with a frame an ENI sends (vpc-fabric.md §1.2–1.7): it checks that the ENI
owns the packet's source (source/destination check), then either delivers it at layer 2 (the
frame is addressed to another ENI's MAC in the same subnet: the receiver sees the sender's MAC)
or routes it (the frame is addressed to the subnet router's MAC: the route table picks the
target, and the receiver sees the router's MAC as source). ARP is answered by the fabric, not by
the target: base+1 gets the router MAC, an address owned by an ENI of the same subnet gets that
ENI's MAC, anything else no answer. Route tables beyond the VPC-local route, security groups,
NACLs, the internet and NAT gateways are later issues; asking for them says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from eksnet.dataplane.state import Eni, Subnet, VpcState


def owner_of(vpc: VpcState, address: IPv4Address) -> Eni | None:
    """The ENI that owns `address` (primary, secondary or a delegated prefix), if any."""
    for eni in vpc.enis:
        if eni.owns(address):
            return eni
    return None


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


def _local_cidr(vpc: VpcState, address: IPv4Address) -> str:
    """The VPC CIDR whose local route covers `address` (every subnet table has one)."""
    return next(str(cidr) for cidr in vpc.cidrs if address in cidr)


def in_vpc(vpc: VpcState, address: IPv4Address) -> bool:
    return any(address in cidr for cidr in vpc.cidrs)


DeliveryKind = Literal["l2", "routed", "dropped", "not-modelled"]
FabricDrop = Literal[
    "vpc-source-check", "vpc-destination-check", "vpc-no-owner", "vpc-no-route", "vpc-broadcast"
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
    served = host_served(vpc, dst)
    if served is not None:
        return Delivery(
            "not-modelled",
            f"{dst} is answered by the instance's host ({served}); host-served addresses come "
            "with the VPC fabric issue",
        )
    if dst_mac == subnet.router_mac:
        if not in_vpc(vpc, dst):
            return Delivery(
                "not-modelled",
                f"route table {subnet.route_table} for {dst} outside the VPC "
                "(internet gateway, NAT gateway and route tables come with the VPC fabric issue)",
                via=subnet,
            )
        target = owner_of(vpc, dst)
        if target is None:
            return Delivery(
                "dropped",
                f"route {dst}: local, but no ENI owns {dst}",
                code="vpc-no-owner",
                via=subnet,
            )
        receiving = vpc.subnet(target.subnet)
        return Delivery(
            "routed",
            f"route table {subnet.route_table}: {dst} matches the VPC-local route; "
            f"{target.id} owns it",
            to=target,
            src_mac=receiving.router_mac,
            dst_mac=target.mac,
            via=subnet,
            decision=f"{subnet.route_table}: {_local_cidr(vpc, dst)} → local; owner {target.id}",
        )
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
