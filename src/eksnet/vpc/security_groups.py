"""Security groups: stateful allow-lists per ENI (vpc-fabric.md §2).

The rules of every group on an ENI are unioned; a packet passes if one rule of its direction
allows it (protocol, destination port or ICMP type/code, and the peer: the source inbound, the
destination outbound), or if it belongs to a flow the ENI tracked when it was first allowed the
other way. A referenced group stands for every private address of every ENI carrying it
(primary, secondary, delegated prefixes: pods on secondary IPs match the node's group), never a
public one.

Tracking (§2.3) is kept per ENI as a value (`Tracking`), keyed by the packet as that ENI sees
it; the reply is matched reversed. A TCP or UDP flow admitted by a rule for 0.0.0.0/0 whose
reverse direction allows 0.0.0.0/0 on every port of the protocol is *untracked*: its replies are
judged by the rules alone (which, by that definition, allow them); ICMP is always tracked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from eksnet.dataplane.security import (
    ALL_PROTOCOLS,
    PROTOCOL_NUMBERS,
    Direction,
    SecurityGroup,
    SgRule,
)
from eksnet.dataplane.state import Eni, VpcState

ANYWHERE = IPv4Network("0.0.0.0/0")

FlowKey = tuple[int, IPv4Address, IPv4Address, int, int]
"""(protocol, source, destination, source port or ICMP id, destination port or 0)."""


@dataclass(frozen=True, slots=True)
class Headers:
    """What a security group or NACL reads of a packet."""

    protocol: int
    src: IPv4Address
    dst: IPv4Address
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None

    def key(self) -> FlowKey:
        return (
            self.protocol,
            self.src,
            self.dst,
            self.sport or self.icmp_id or 0,
            self.dport or 0,
        )

    def reversed_key(self) -> FlowKey:
        return (
            self.protocol,
            self.dst,
            self.src,
            self.dport or self.icmp_id or 0,
            self.sport or 0,
        )


@dataclass(frozen=True, slots=True)
class Tracking:
    """Every ENI's tracked flows, and the untracked ones it has seen (a value: a walk carries
    it like conntrack). A tracked flow admits its packets both ways whatever the rules say now
    ("rule changes do not cut tracked flows"); an untracked flow's packets, its replies too,
    are admitted by rules only and never start a tracked flow (vpc-fabric.md §2.3)."""

    flows: Mapping[str, frozenset[FlowKey]] = field(default_factory=dict)
    untracked: Mapping[str, frozenset[FlowKey]] = field(default_factory=dict)

    def knows(self, eni: str, headers: Headers) -> bool:
        """Whether `headers` is the reply of a flow `eni` tracked."""
        return headers.reversed_key() in self.flows.get(eni, frozenset())

    def follows(self, eni: str, headers: Headers) -> bool:
        """Whether `headers` is a later packet, the same way, of a flow `eni` tracked."""
        return headers.key() in self.flows.get(eni, frozenset())

    def leaves_untracked(self, eni: str, headers: Headers) -> bool:
        """Whether `headers` belongs (either way) to a flow `eni` saw untracked."""
        seen = self.untracked.get(eni, frozenset())
        return headers.key() in seen or headers.reversed_key() in seen

    def with_flow(self, eni: str, headers: Headers, *, untracked: bool = False) -> Tracking:
        table = dict(self.untracked if untracked else self.flows)
        table[eni] = table.get(eni, frozenset()) | {headers.key()}
        if untracked:
            return Tracking(self.flows, table)
        return Tracking(table, self.untracked)


@dataclass(frozen=True, slots=True)
class SgVerdict:
    """The ENI's groups on one packet: allowed by `rule` (of `group`), by tracking, or not."""

    allowed: bool
    eni: Eni
    direction: Direction
    group: SecurityGroup | None = None
    rule: SgRule | None = None
    tracked: bool = False
    """Allowed as the reply of a tracked flow (or, `later`, as a later packet of one)."""
    later: bool = False
    untracked: bool = False
    """Admitted by rules that make the flow untracked (0.0.0.0/0 both ways)."""

    def text(self) -> str:
        groups = ", ".join(self.eni.security_groups)
        way = "inbound" if self.direction == "ingress" else "outbound"
        if self.tracked and self.later:
            return f"{groups} on {self.eni.id}: {way} allowed as a later packet of a tracked flow"
        if self.tracked:
            return f"{groups} on {self.eni.id}: {way} allowed as the reply of a tracked flow"
        if self.rule is not None and self.group is not None:
            named = f"{self.group.id} ({self.group.name})" if self.group.name else self.group.id
            return f"{named} on {self.eni.id}: {way} rule {self.rule.text()}"
        return f"{groups} on {self.eni.id}: no {way} rule allows it"


def judge(
    vpc: VpcState, eni: Eni, direction: Direction, headers: Headers, tracking: Tracking
) -> SgVerdict:
    """The ENI's security groups on a packet leaving (`egress`) or entering (`ingress`) it."""
    if tracking.follows(eni.id, headers):
        return SgVerdict(True, eni, direction, tracked=True, later=True)
    if tracking.knows(eni.id, headers):
        return SgVerdict(True, eni, direction, tracked=True)
    seen_untracked = tracking.leaves_untracked(eni.id, headers)
    for group_id in eni.security_groups:
        group = vpc.security_group(group_id)
        for rule in group.direction(direction):
            if matches(vpc, rule, headers):
                untracked = seen_untracked or _untracked(vpc, eni, rule, direction, headers)
                return SgVerdict(True, eni, direction, group, rule, untracked=untracked)
    return SgVerdict(False, eni, direction)


def matches(vpc: VpcState, rule: SgRule, headers: Headers) -> bool:
    if not _protocol_and_ports(rule, headers):
        return False
    peer = headers.src if rule.direction == "ingress" else headers.dst
    if rule.cidr is not None:
        return peer in rule.cidr
    if rule.prefix_list is not None:
        return any(peer in cidr for cidr in vpc.prefix_list(rule.prefix_list).cidrs)
    assert rule.group is not None
    singles, prefixes = vpc.group_members(rule.group)
    return peer in singles or any(peer in prefix for prefix in prefixes)


def _protocol_and_ports(rule: SgRule, headers: Headers) -> bool:
    if rule.protocol == ALL_PROTOCOLS:
        return True
    if rule.protocol != headers.protocol:
        return False
    if headers.protocol == PROTOCOL_NUMBERS["icmp"]:
        return rule.from_port in (None, -1, headers.icmp_type) and rule.to_port in (
            None,
            -1,
            headers.icmp_code,
        )
    if rule.from_port is None or rule.to_port is None or headers.dport is None:
        return rule.from_port is None
    return rule.from_port <= headers.dport <= rule.to_port


def _untracked(
    vpc: VpcState, eni: Eni, rule: SgRule, direction: Direction, headers: Headers
) -> bool:
    """EC2-CT: TCP/UDP admitted by a rule for 0.0.0.0/0, with a 0.0.0.0/0 all-ports rule of the
    protocol the other way, is not tracked; except on a Network Load Balancer's ENI, whose
    connections are tracked automatically (EC2-CT's "automatically tracked connections",
    vpc-fabric.md §2.3)."""
    if headers.protocol not in (PROTOCOL_NUMBERS["tcp"], PROTOCOL_NUMBERS["udp"]):
        return False
    balancer = vpc.load_balancer_of(eni.id) if eni.interface_type == "load_balancer" else None
    if balancer is not None and balancer.kind == "nlb":
        return False
    if rule.cidr != ANYWHERE:
        return False
    other: Direction = "egress" if direction == "ingress" else "ingress"
    for group_id in eni.security_groups:
        for reverse in vpc.security_group(group_id).direction(other):
            if reverse.cidr != ANYWHERE:
                continue
            if reverse.protocol == ALL_PROTOCOLS:
                return True
            full = reverse.from_port is None or (reverse.from_port, reverse.to_port) == (0, 65535)
            if reverse.protocol == headers.protocol and full:
                return True
    return False
