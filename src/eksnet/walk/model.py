"""A walk is data: the flow, the hops, the steps inside each hop, and the disposition.

Modelled on Batfish's trace (flow → hops → steps → disposition). Every renderer (text, JSON,
diagrams, flow-log records) and the lab's comparison read these types; nothing else carries the
result of a walk. Invariants are checked at construction, so a Walk that exists is well formed:
a hop after the first is entered through an interface (or is an AWS component), a delivered walk
ends where it was going, branch probabilities add up to one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Literal

Protocol = Literal["tcp", "udp", "icmp"]
IP_PROTOCOL_NUMBERS: Mapping[Protocol, int] = {"icmp": 1, "tcp": 6, "udp": 17}

EndpointKind = Literal["pod", "node", "ip"]
WhereKind = Literal["pod", "node", "vpc", "external"]
"""A hop happens in a pod's or a node's network namespace, in the VPC fabric, or outside AWS."""

StepKind = Literal[
    "originate",  # a socket in this namespace sends the first packet
    "receive",  # a frame arrives on an interface
    "netfilter",  # one table of one hook was traversed (rules matched, or none)
    "conntrack",  # an entry was created or matched
    "nat",  # a NAT binding rewrote the packet
    "route",  # the routing decision: policy rules, then a table
    "rp_filter",  # the reverse-path check of the input route lookup
    "forward",  # ip_forward / TTL decrement
    "neighbour",  # the next hop's MAC: a neighbour entry or an ARP exchange
    "transmit",  # the frame leaves on an interface
    "veth",  # the frame crosses a veth pair into the peer namespace
    "deliver",  # the packet reaches a local socket
    "vpc-source-check",  # the VPC's source/destination check
    "vpc-owner",  # which ENI owns an address
    "vpc-deliver",  # layer-2 delivery in a subnet, or via the subnet router
    "security-group",
    "nacl",
    "not-modelled",
    "drop",
]

DispositionKind = Literal["delivered", "dropped", "not-modelled"]
Direction = Literal["forward", "return"]


@dataclass(frozen=True, slots=True)
class Packet:
    """The headers that matter for a walk, as one frame on one wire.

    `mark` is the skb mark inside the current namespace (it does not survive a veth crossing);
    `tcp_flags` uses tcpdump's spelling (`S` for a SYN, `S.` for a SYN-ACK).
    """

    src: IPv4Address
    dst: IPv4Address
    proto: Protocol
    sport: int | None = None
    dport: int | None = None
    ttl: int = 64
    src_mac: str | None = None
    dst_mac: str | None = None
    mark: int = 0
    tcp_flags: str | None = None

    def __post_init__(self) -> None:
        has_ports = self.sport is not None and self.dport is not None
        if self.proto in ("tcp", "udp") and not has_ports:
            raise ValueError(f"a {self.proto} packet needs both ports")
        if self.proto == "icmp" and (self.sport is not None or self.dport is not None):
            raise ValueError("an icmp packet has no ports")

    def but(self, **changes: object) -> Packet:
        """A copy with some fields changed (a rewrite, a new frame)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def reply(self) -> Packet:
        """The first packet of the answer: addresses and ports swapped, no L2, no mark."""
        return Packet(
            src=self.dst,
            dst=self.src,
            proto=self.proto,
            sport=self.dport,
            dport=self.sport,
            tcp_flags="S." if self.proto == "tcp" else None,
        )

    def five_tuple(self) -> str:
        if self.proto == "icmp":
            return f"{self.src} > {self.dst} icmp"
        return f"{self.src}:{self.sport} > {self.dst}:{self.dport} {self.proto}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a flow starts or ends, as the user named it: `pod/NS/NAME`, `node/NAME`, `ip/ADDR`."""

    kind: EndpointKind
    name: str
    address: IPv4Address

    def spec(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Flow:
    """What was asked: from where to where, which protocol and ports."""

    src: Endpoint
    dst: Endpoint
    proto: Protocol
    sport: int | None
    dport: int | None

    def first_packet(self) -> Packet:
        return Packet(
            src=self.src.address,
            dst=self.dst.address,
            proto=self.proto,
            sport=self.sport,
            dport=self.dport,
            tcp_flags="S" if self.proto == "tcp" else None,
        )


@dataclass(frozen=True, slots=True)
class Where:
    """The place of a hop: a namespace (by its name in the state), the VPC, or the internet."""

    kind: WhereKind
    name: str
    label: str = ""
    """What the talk or a person calls it (`node 1`, `pod 61`), for the text renderer."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What decided a step, in the kernel's (or AWS's) own words.

    `text` is the rule or route exactly as the tool prints it (`1536:\tfrom 192.168.1.61 lookup 2`,
    `default via 192.168.1.1 dev eth1`, an `-A …` iptables line); `kind` says which tool's
    vocabulary it is; `table`, `priority`, `chain` and `position` locate it.
    """

    kind: Literal["rule", "route", "neighbour", "iptables", "conntrack", "sysctl", "vpc"]
    text: str
    table: str | None = None
    priority: int | None = None
    chain: str | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened to the packet inside a hop."""

    kind: StepKind
    summary: str
    decided_by: tuple[Decision, ...] = ()
    before: Packet | None = None
    after: Packet | None = None
    details: tuple[str, ...] = ()
    """Everything else worth showing with `-v`: rules that missed, chains traversed."""

    @property
    def rewrote(self) -> bool:
        return self.before is not None and self.after is not None and self.before != self.after


@dataclass(frozen=True, slots=True)
class Hop:
    """The packet's stay in one place: entered by `iif`, left by `oif`."""

    where: Where
    iif: str | None
    oif: str | None
    steps: tuple[Step, ...]
    packet_in: Packet | None
    packet_out: Packet | None

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"hop in {self.where.name} has no steps")

    def decisive(self) -> Step:
        """The step a one-line summary shows: the routing decision if there was one."""
        for kind in ("drop", "not-modelled", "route", "vpc-deliver", "deliver"):
            for step in self.steps:
                if step.kind == kind:
                    return step
        return self.steps[-1]


@dataclass(frozen=True, slots=True)
class Disposition:
    kind: DispositionKind
    where: Where
    reason: str
    decided_by: tuple[Decision, ...] = ()


@dataclass(frozen=True, slots=True)
class ConntrackRecord:
    """An entry a walk created or matched in one namespace, as `conntrack -L` prints it."""

    namespace: str
    text: str
    mark: int
    nat: bool


@dataclass(frozen=True, slots=True)
class WireObservation:
    """What `tcpdump -n -e -i IFACE` in `namespace` shows for the walk's packet."""

    namespace: str
    interface: str
    direction: Literal["in", "out"]
    packet: Packet


@dataclass(frozen=True, slots=True)
class Branch:
    """One of several ways a walk continues where load balancing splits it."""

    probability: float
    label: str
    walk: Walk


@dataclass(frozen=True, slots=True)
class Walk:
    """A packet's whole journey in one direction.

    Either it ends (a `disposition`) or it splits into `branches` whose probabilities add up to
    one. `reply` is the return walk, a walk of its own driven by the conntrack entries this one
    left behind.
    """

    flow: Flow
    direction: Direction
    hops: tuple[Hop, ...]
    disposition: Disposition | None
    branches: tuple[Branch, ...] = ()
    conntrack: tuple[ConntrackRecord, ...] = ()
    reply: Walk | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.hops:
            raise ValueError("a walk has at least one hop")
        if (self.disposition is None) == (not self.branches):
            raise ValueError("a walk either ends in a disposition or splits into branches")
        if self.branches:
            total = sum(branch.probability for branch in self.branches)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"branch probabilities add up to {total}, not 1")
        for previous, hop in zip(self.hops, self.hops[1:], strict=False):
            entered = hop.iif is not None or hop.where.kind in ("vpc", "external")
            if not entered:
                raise ValueError(f"hop in {hop.where.name} is not entered through an interface")
            if previous.where.kind in ("pod", "node") and previous.oif is None:
                raise ValueError(f"hop in {previous.where.name} continues without leaving")
        if self.disposition is not None and self.disposition.kind == "delivered":
            last = self.hops[-1]
            if last.where != self.disposition.where:
                raise ValueError("a delivered walk ends in the hop that delivered it")

    def wire(self) -> Iterator[WireObservation]:
        """Every frame this walk puts on a namespace's interface, in order (what the lab's
        tcpdump must see)."""
        for hop in self.hops:
            if hop.where.kind not in ("pod", "node"):
                continue
            if hop.iif is not None and hop.packet_in is not None:
                yield WireObservation(hop.where.name, hop.iif, "in", hop.packet_in)
            if hop.oif is not None and hop.packet_out is not None:
                yield WireObservation(hop.where.name, hop.oif, "out", hop.packet_out)
