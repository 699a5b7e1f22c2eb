"""Security groups, network ACLs and prefix lists: the VPC's filters, as data.

The types hold what `DescribeSecurityGroups`, `DescribeNetworkAcls` and
`DescribeManagedPrefixLists` hold, in AWS's words (vpc-fabric.md §2, §3, §7.11); how a packet is
judged by them is the VPC semantics' business (`vpc/security_groups.py`, `vpc/nacl.py`), not the
state's. Protocols are IANA numbers (`-1`: all), as the API keeps them, so that `"tcp"` and
`"6"` in a spec are one rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Literal

ALL_PROTOCOLS = -1
"""`IpProtocol: "-1"` / NACL `Protocol: "-1"`: every protocol, no ports."""
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_NUMBERS.items()}
NACL_DEFAULT_DENY = 32767
"""The `*` entry every NACL ends with (IPv4): deny everything (vpc-fabric.md §3)."""

Direction = Literal["ingress", "egress"]
RuleAction = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class SgRule:
    """One permission of a security group, with one peer (AWS's `SecurityGroupRules` view:
    a permission listing several peers is several rules).

    Ports are destination ports in both directions; for ICMP `from_port` is the type and
    `to_port` the code (-1: any). `None` ports: all (protocol -1, or a range not given)."""

    direction: Direction
    protocol: int
    from_port: int | None
    to_port: int | None
    cidr: IPv4Network | None = None
    prefix_list: str | None = None
    group: str | None = None
    description: str = ""
    index: int = 0
    """Position in the group's list for its direction (as the spec lists it): how a walk names
    the rule that admitted a packet."""

    def __post_init__(self) -> None:
        peers = [peer for peer in (self.cidr, self.prefix_list, self.group) if peer is not None]
        if len(peers) != 1:
            raise ValueError("a security group rule has exactly one peer")
        if self.protocol == ALL_PROTOCOLS and (self.from_port, self.to_port) != (None, None):
            raise ValueError("protocol -1 (all) has no ports")

    def peer(self) -> str:
        """The peer as the console shows it: a CIDR, a prefix list id or a group id."""
        return str(self.cidr or self.prefix_list or self.group)

    def text(self) -> str:
        """`tcp 30080 from 0.0.0.0/0`: the rule in one phrase, as a walk quotes it."""
        return f"{_protocol_ports(self.protocol, self.from_port, self.to_port)} " + (
            f"from {self.peer()}" if self.direction == "ingress" else f"to {self.peer()}"
        )


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    """A security group: allow rules only, unioned over every group on an ENI."""

    id: str
    rules: tuple[SgRule, ...]
    description: str = ""
    name: str = ""
    """`GroupName` where it says more than the id (the groups the load balancer controllers
    create: `k8s-elb-…`, `k8s-traffic-…`)."""
    _by_direction: dict[str, tuple[SgRule, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for direction in ("ingress", "egress"):
            chosen = tuple(rule for rule in self.rules if rule.direction == direction)
            self._by_direction[direction] = chosen

    def direction(self, direction: Direction) -> tuple[SgRule, ...]:
        """The rules of one direction, in order (split once: a group is judged per packet)."""
        return self._by_direction[direction]


@dataclass(frozen=True, slots=True)
class NaclEntry:
    """One numbered NACL entry (`DescribeNetworkAcls` `Entries[]`)."""

    number: int
    egress: bool
    action: RuleAction
    protocol: int
    cidr: IPv4Network
    from_port: int | None = None
    to_port: int | None = None
    icmp_type: int | None = None
    """-1 or None: any type."""
    icmp_code: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.number <= NACL_DEFAULT_DENY:
            raise ValueError(f"NACL rule number {self.number} is outside 1–32767")

    def label(self) -> str:
        """`rule 100` or `rule *` (the console's name for 32767)."""
        return "rule *" if self.number == NACL_DEFAULT_DENY else f"rule {self.number}"

    def text(self) -> str:
        ports = _protocol_ports(self.protocol, self.from_port, self.to_port)
        if self.protocol == PROTOCOL_NUMBERS["icmp"] and self.icmp_type not in (None, -1):
            ports = f"icmp type {self.icmp_type}" + (
                f" code {self.icmp_code}" if self.icmp_code not in (None, -1) else ""
            )
        way = "to" if self.egress else "from"
        return f"{self.label()} {self.action} {ports} {way} {self.cidr}"


@dataclass(frozen=True, slots=True)
class NetworkAcl:
    """A network ACL and the subnets it guards; entries of both directions, any order (they
    are evaluated by number). Always ends with the `*` deny entries."""

    id: str
    subnets: tuple[str, ...]
    entries: tuple[NaclEntry, ...]
    default: bool = False

    def __post_init__(self) -> None:
        for egress in (False, True):
            numbers = [entry.number for entry in self.entries if entry.egress == egress]
            if len(set(numbers)) != len(numbers):
                raise ValueError(f"{self.id}: two entries with one number in one direction")
            if NACL_DEFAULT_DENY not in numbers:
                raise ValueError(f"{self.id}: the * entry (32767) is missing")

    def ordered(self, *, egress: bool) -> tuple[NaclEntry, ...]:
        """The entries of one direction in evaluation order (by number)."""
        chosen = (entry for entry in self.entries if entry.egress == egress)
        return tuple(sorted(chosen, key=lambda entry: entry.number))


@dataclass(frozen=True, slots=True)
class PrefixList:
    """A managed prefix list (`pl-…`): CIDRs a route or a rule names as one."""

    id: str
    cidrs: tuple[IPv4Network, ...]


def _protocol_ports(protocol: int, low: int | None, high: int | None) -> str:
    name = PROTOCOL_NAMES.get(protocol, "all" if protocol == ALL_PROTOCOLS else str(protocol))
    if protocol == ALL_PROTOCOLS:
        return "all traffic"
    if name == "icmp":
        if low in (None, -1):
            return "icmp (all)"
        return f"icmp type {low}" + (f" code {high}" if high not in (None, -1) else "")
    if low is None or high is None or (low, high) == (0, 65535):
        return f"{name} (all ports)"
    return f"{name} {low}" if low == high else f"{name} {low}-{high}"
