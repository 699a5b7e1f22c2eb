"""The internet gateway: 1:1 static NAT between private and public IPv4 (vpc-fabric.md §4).

Outbound, the source address is rewritten to the public IPv4 associated with it (an EIP, or the
auto-assigned public IP on the primary private IP of the primary ENI); a source without one is
dropped (`igw-no-public-ip`). Inbound, the destination is rewritten back to the private address;
a public address no ENI of the VPC has never reaches it (AWS's border drops it, the gateway sees
nothing). Ports, and everything else in the packet, are untouched: it is address translation
only, so replies need no state at the gateway — the mapping is its own inverse.

TTL: the gateway does not decrement it. vpc-fabric.md §1.8 says the VPC router does not and a
NAT gateway does (it is an instance-like hop in traceroute); §4 says nothing of the internet
gateway, which is no IP hop of its own either: it is the VPC's edge doing the 1:1 translation,
not a router with an address (the first hop a traceroute from an instance shows is already
AWS's border network beyond it) [inf]. The lab agrees by construction: its gateway is nftables
in the fabric's bridge, which forwards without touching the TTL.

IPv6 passes the gateway untranslated; the state holds IPv4 only, so it never comes here.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from eksnet.dataplane.state import PublicIp, VpcState

IgwDrop = Literal["igw-no-public-ip", "igw-unknown-public-ip"]


@dataclass(frozen=True, slots=True)
class Translation:
    """The gateway's answer for one packet: the address it becomes, or why it is dropped."""

    gateway: str
    direction: Literal["outbound", "inbound"]
    before: IPv4Address
    after: IPv4Address | None
    mapping: PublicIp | None
    reason: str
    code: IgwDrop | None = None

    @property
    def translated(self) -> bool:
        return self.after is not None

    def decision(self) -> str:
        """The association that decided, in AWS's terms."""
        if self.mapping is None and self.direction == "outbound":
            return f"{self.gateway}: no public IPv4 address is associated with {self.before}"
        if self.mapping is None:
            return f"{self.gateway}: no ENI has the public IPv4 address {self.before}"
        item = self.mapping
        return f"{self.gateway}: {item.private_ip} ↔ {item.public_ip} ({item.eni})"


def outbound(vpc: VpcState, gateway: str, src: IPv4Address) -> Translation:
    """A packet from the VPC to the internet through `gateway`: source private → public."""
    mapping = vpc.public_ip_of(src)
    if mapping is None:
        return Translation(
            gateway,
            "outbound",
            src,
            None,
            None,
            f"{gateway} drops it: {src} has no public IPv4 address (a host in a public subnet "
            "without one has no internet)",
            code="igw-no-public-ip",
        )
    return Translation(
        gateway,
        "outbound",
        src,
        mapping.public_ip,
        mapping,
        f"1:1 NAT: source {src} → {mapping.public_ip}, ports unchanged",
    )


def inbound(vpc: VpcState, gateway: str, dst: IPv4Address) -> Translation:
    """A packet from the internet to a public IPv4 of the VPC: destination public → private."""
    mapping = vpc.private_ip_of(dst)
    if mapping is None:
        return Translation(
            gateway,
            "inbound",
            dst,
            None,
            None,
            f"{dst} is no public IPv4 address of {vpc.id}: it never reaches {gateway}",
            code="igw-unknown-public-ip",
        )
    return Translation(
        gateway,
        "inbound",
        dst,
        mapping.private_ip,
        mapping,
        f"1:1 NAT: destination {dst} → {mapping.private_ip}, ports unchanged",
    )
