"""The NAT gateway: source NAT to its private IP, sessions, and what it refuses (vpc-fabric.md §5).

A public NAT gateway rewrites what its ENI receives from inside to its own private IP and a
port (or ICMP identifier) of its own, then sends it on by its subnet's route table (the internet
gateway maps the private IP to the EIP: the NAT ENI's flow logs never show the EIP). A packet
from outside is let back in only by a session, and un-NATed to the inside client. It carries
TCP, UDP and ICMP only, serves no client of its own subnet, and is an IP hop (it decrements the
TTL: it shows in a traceroute).

Which port it picks is not documented [unk]: the lowest free one from 1024 per destination
(destination address, port, protocol), as the spec says to choose, and the walk marks it as a
value chosen at random (the lab binds whatever its NAT picked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from eksnet.dataplane.state import NatGateway

FIRST_PORT = 1024
LAST_PORT = 65535
CARRIED = ("tcp", "udp", "icmp")

Inside = tuple[str, IPv4Address, int, IPv4Address, int]
"""(protocol, client, client port or ICMP id, server, server port or 0)."""
Outside = tuple[str, IPv4Address, int, IPv4Address, int]
"""(protocol, server, server port or 0, NAT private IP, NAT port or ICMP id)."""


@dataclass(frozen=True, slots=True)
class Sessions:
    """Every NAT gateway's sessions (a value carried through a walk like conntrack)."""

    out: Mapping[str, Mapping[Inside, int]] = field(default_factory=dict)
    back: Mapping[str, Mapping[Outside, Inside]] = field(default_factory=dict)

    def port_for(self, gateway: NatGateway, inside: Inside) -> tuple[int, Sessions]:
        """The session's port: the one it has, else the lowest free one for its destination."""
        known = self.out.get(gateway.id, {})
        if inside in known:
            return known[inside], self
        protocol, _, _, server, server_port = inside
        used = {
            port
            for (p, _, _, s, sp), port in known.items()
            if (p, s, sp) == (protocol, server, server_port)
        }
        port = next(
            (candidate for candidate in range(FIRST_PORT, LAST_PORT + 1) if candidate not in used),
            None,
        )
        if port is None:
            raise OverflowError("ErrorPortAllocation: no port left for this destination")
        out = dict(self.out)
        out[gateway.id] = {**known, inside: port}
        back = dict(self.back)
        outside: Outside = (protocol, server, server_port, gateway.private_ip, port)
        back[gateway.id] = {**self.back.get(gateway.id, {}), outside: inside}
        return port, Sessions(out, back)

    def inside_of(self, gateway: NatGateway, outside: Outside) -> Inside | None:
        return self.back.get(gateway.id, {}).get(outside)
