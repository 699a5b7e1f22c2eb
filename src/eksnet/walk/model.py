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

from eksnet.errors import NotModelled

Protocol = Literal["tcp", "udp", "icmp", "sctp"]
IP_PROTOCOL_NUMBERS: Mapping[Protocol, int] = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMP_ECHO_TYPES: Mapping[int, str] = {
    ICMP_ECHO_REQUEST: "echo request",
    ICMP_ECHO_REPLY: "echo reply",
}
"""The ICMP queries a walk carries, in tcpdump's words."""
ICMP_UNREACHABLE = 3
ICMP_TIME_EXCEEDED = 11
TIME_EXCEEDED_CODES = {0: "time exceeded in-transit", 1: "fragment reassembly time exceeded"}
"""RFC 792's codes of ICMP time exceeded, in tcpdump's words (the kernel sends code 0 when a
forward runs out of TTL: the lab sees it as the evidence of a TTL drop)."""
UNREACHABLE_CODES: Mapping[int, str] = {
    0: "net unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    9: "net prohibited",
    10: "host prohibited",
    13: "administratively prohibited",
}
"""The destination-unreachable codes a REJECT (or the kernel's routing) answers with, named as
`--reject-with icmp-…` names them (RFC 792, RFC 1812). Other ICMP errors (time exceeded) are not
walked; a kernel that sends one shows up in the lab as a frame the walk did not predict."""

EndpointKind = Literal["pod", "node", "ip", "svc", "lb", "ingress", "dns"]
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
    "flow-log",
    "host-served",
    "load-balancer",  # a load balancer's listener, rule, health checks and target choice
    "dns",  # a client resolves a name
    "not-modelled",
    "drop",
]

DispositionKind = Literal["delivered", "dropped", "not-modelled"]
DropCode = Literal[
    "netfilter",
    "rp-filter",
    "martian",
    "no-route",
    "neighbour",
    "not-our-mac",
    "ttl",
    "loop",
    "socket",
    "vpc-source-check",
    "vpc-destination-check",
    "vpc-no-owner",
    "vpc-no-route",
    "vpc-blackhole",
    "vpc-broadcast",
    "igw-no-public-ip",
    "igw-unknown-public-ip",
    "sg-ingress",
    "sg-egress",
    "nacl-ingress",
    "nacl-egress",
    "natgw-own-subnet",
    "natgw-protocol",
    "natgw-no-session",
    "lb-no-target",
]
DROP_CODES: Mapping[str, str] = {
    "netfilter": "a DROP or REJECT rule, or a chain's DROP policy",
    "rp-filter": "the reverse-path filter (rp_filter) rejected the source",
    "martian": "a martian source or destination address (zeronet, loopback, multicast source)",
    "no-route": "the routing decision found no route (unreachable, prohibit, blackhole, none)",
    "neighbour": "the next hop's MAC could not be resolved (ARP unanswered)",
    "not-our-mac": "a frame addressed to another MAC (PACKET_OTHERHOST)",
    "ttl": "TTL exceeded while forwarding",
    "loop": "a forwarding loop (the walk gave up after too many hops)",
    "socket": "the sending socket refused it (e.g. TCP to a broadcast address)",
    "vpc-source-check": "the VPC's source check: the ENI does not own the source",
    "vpc-destination-check": "the VPC's destination check: the ENI does not own the destination",
    "vpc-no-owner": "no ENI owns the VPC address",
    "vpc-no-route": "the subnet's route table has no route",
    "vpc-blackhole": "the route's target is gone (blackhole)",
    "vpc-broadcast": "the VPC carries no broadcast or multicast",
    "igw-no-public-ip": "the internet gateway drops a source without a public IPv4 address",
    "igw-unknown-public-ip": "no ENI of the VPC has the destination public IPv4 address",
    "sg-ingress": "no inbound rule of the receiving ENI's security groups allows it",
    "sg-egress": "no outbound rule of the sending ENI's security groups allows it",
    "nacl-ingress": "the destination subnet's network ACL denies it inbound",
    "nacl-egress": "the source subnet's network ACL denies it outbound",
    "natgw-own-subnet": "a NAT gateway does not serve clients in its own subnet",
    "natgw-protocol": "a NAT gateway carries TCP, UDP and ICMP only",
    "natgw-no-session": "a packet from outside with no NAT gateway session",
    "lb-no-target": "a load balancer node with no eligible target (its AZ has no healthy one)",
}
"""Why a packet was dropped, as a code the lab can hold the kernel to (`lab verify` reads the
counter or state that each one leaves behind) and renderers can explain."""
Direction = Literal["forward", "return"]


@dataclass(frozen=True, slots=True)
class Packet:
    """The headers that matter for a walk, as one frame on one wire.

    `mark` is the skb mark inside the current namespace (it does not survive a veth crossing);
    `tcp_flags` uses tcpdump's spelling (`S` for a SYN, `S.` for a SYN-ACK, `R.` for a RST). An
    ICMP packet has no ports but a type: an echo (8 request, 0 reply) carries an identifier,
    which conntrack keys on and NAT may rewrite as it rewrites a port; a destination-unreachable
    error (3) carries its code and `quoted`, the header of the packet it answers.
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
    icmp_type: int | None = None
    icmp_id: int | None = None
    icmp_code: int | None = None
    quoted: Packet | None = None

    def __post_init__(self) -> None:
        has_ports = self.sport is not None and self.dport is not None
        if self.proto in ("tcp", "udp", "sctp") and not has_ports:
            raise ValueError(f"a {self.proto} packet needs both ports")
        if self.proto == "icmp":
            if self.sport is not None or self.dport is not None:
                raise ValueError("an icmp packet has no ports")
            echo = self.icmp_type in ICMP_ECHO_TYPES and self.icmp_id is not None
            codes = {ICMP_UNREACHABLE: UNREACHABLE_CODES, ICMP_TIME_EXCEEDED: TIME_EXCEEDED_CODES}
            error = (
                self.icmp_code in codes.get(self.icmp_type or 0, {})
                and self.quoted is not None
                and self.icmp_id is None
            )
            if not (echo or error):
                raise ValueError(
                    "an icmp packet is an echo request or reply with an identifier, or a "
                    "destination-unreachable or time-exceeded error quoting a packet"
                )
        elif any(v is not None for v in (self.icmp_type, self.icmp_id, self.icmp_code)):
            raise ValueError(f"a {self.proto} packet has no icmp type, code or identifier")
        if self.quoted is not None and not self.is_icmp_error:
            raise ValueError("only an ICMP error quotes a packet")

    @property
    def is_icmp_error(self) -> bool:
        return self.proto == "icmp" and self.icmp_type in (ICMP_UNREACHABLE, ICMP_TIME_EXCEEDED)

    def unreachable(self, code: int, src: IPv4Address | None) -> Packet:
        """The destination-unreachable error answering this packet (quoting it), from `src`
        (None: the sender's routing picks it)."""
        return Packet(
            src=src if src is not None else self.dst,
            dst=self.src,
            proto="icmp",
            icmp_type=ICMP_UNREACHABLE,
            icmp_code=code,
            quoted=self.but(src_mac=None, dst_mac=None, mark=0),
        )

    def reset(self) -> Packet:
        """The TCP RST answering this packet, as `REJECT --reject-with tcp-reset` sends it: from
        the address and port it was sent to (`nf_send_reset`)."""
        return Packet(
            src=self.dst,
            dst=self.src,
            proto="tcp",
            sport=self.dport,
            dport=self.sport,
            tcp_flags="R.",
        )

    def but(self, **changes: object) -> Packet:
        """A copy with some fields changed (a rewrite, a new frame)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def reply(self) -> Packet:
        """The first packet of the answer: addresses and ports swapped, no L2, no mark; an echo
        request is answered by an echo reply with the same identifier."""
        return Packet(
            src=self.dst,
            dst=self.src,
            proto=self.proto,
            sport=self.dport,
            dport=self.sport,
            tcp_flags="S." if self.proto == "tcp" else None,
            icmp_type=ICMP_ECHO_REPLY if self.proto == "icmp" else None,
            icmp_id=self.icmp_id,
        )

    def five_tuple(self) -> str:
        if self.is_icmp_error:
            assert self.quoted is not None
            table = (
                TIME_EXCEEDED_CODES if self.icmp_type == ICMP_TIME_EXCEEDED else UNREACHABLE_CODES
            )
            kind = table[self.icmp_code or 0]
            return f"{self.src} > {self.dst} icmp {kind} for {self.quoted.five_tuple()}"
        if self.proto == "icmp":
            kind = ICMP_ECHO_TYPES[self.icmp_type or 0]
            return f"{self.src} > {self.dst} icmp {kind} id {self.icmp_id}"
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
    icmp_id: int | None = None
    """The echo request's identifier (what a ping socket or the lab's sender puts in it)."""
    http: tuple[str | None, str] | None = None
    """The HTTP request the client sends on the connection, (Host, path), where an ALB reads
    it (`walk --host/--path`)."""

    def later_packet(self) -> Packet:
        """The source's next packet of the same connection, after the answer came back: a TCP
        ACK (tcpdump's `.`), the next UDP datagram, the next echo request of the same
        identifier. Conntrack finds its entry, so the nat table no longer sees it."""
        if self.proto == "sctp":
            raise NotModelled("a later packet of an SCTP association (its chunks)")
        return self.first_packet().but(tcp_flags="." if self.proto == "tcp" else None)

    def first_packet(self) -> Packet:
        icmp = self.proto == "icmp"
        return Packet(
            src=self.src.address,
            dst=self.dst.address,
            proto=self.proto,
            sport=self.sport,
            dport=self.dport,
            tcp_flags="S" if self.proto == "tcp" else None,
            icmp_type=ICMP_ECHO_REQUEST if icmp else None,
            icmp_id=self.icmp_id if icmp else None,
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
class RouteAnswer:
    """A routing decision as `ip route get` reports it: the route's type and where it sends the
    packet, or the error the kernel returns (`Network is unreachable`, `Invalid argument`)."""

    type: Literal["unicast", "local", "broadcast", "error"]
    dev: str | None = None
    gateway: IPv4Address | None = None
    table: str | None = None
    """As `ip route get` names it: `main`, `local`, `2`."""
    error: str | None = None
    iif: str | None = None
    """The ingress device of an input decision (None: a locally generated packet)."""


FlowLogAction = Literal["ACCEPT", "REJECT"]


@dataclass(frozen=True, slots=True)
class EniTraffic:
    """A packet an ENI sent or received, as its VPC flow log records it (vpc-fabric.md §6.1):
    every ENI a packet leaves or enters writes one record per direction; the internet gateway
    and the subnet router have no ENI and write none."""

    eni: str
    direction: Literal["ingress", "egress"]
    packet: Packet
    """The headers as they are on that ENI (before the internet gateway's translation, after a
    NAT gateway's)."""
    action: FlowLogAction
    """`REJECT`: a security group or NACL refused it (on the ENI whose traffic it is)."""
    traffic_path: int | None = None
    """Egress only: `1` within the VPC, `8` through the internet gateway (Nitro), None on
    ingress (vpc-fabric.md §6.3)."""


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
    route: RouteAnswer | None = None
    """For a routing decision: what `ip route get` must answer for `before` (the packet as the
    decision saw it)."""
    chosen: tuple[int, ...] = ()
    """Values the kernel picks at random in this step (a source NAT's new port or ICMP
    identifier). The walk's value is a reproducible stand-in; the lab treats it as a variable,
    bound to what the kernel chose and held consistent everywhere else it appears."""
    seen_by: EniTraffic | None = None
    """For a `flow-log` step: the record the ENI's flow log writes for this packet."""

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
        for kind in (
            "drop",
            "not-modelled",
            "route",
            "vpc-deliver",
            "deliver",
            "load-balancer",
            "dns",
        ):
            for step in self.steps:
                if step.kind == kind:
                    return step
        return self.steps[-1]


@dataclass(frozen=True, slots=True)
class Disposition:
    """How a walk ended. A drop carries a `code` (see `DROP_CODES`) besides the human reason."""

    kind: DispositionKind
    where: Where
    reason: str
    decided_by: tuple[Decision, ...] = ()
    code: DropCode | None = None
    rejected_with: str | None = None
    """For a REJECT: what the kernel answers the source with (`icmp-port-unreachable`)."""

    def __post_init__(self) -> None:
        if (self.kind == "dropped") != (self.code is not None):
            raise ValueError("a dropped walk, and only a dropped walk, has a drop code")
        if self.rejected_with is not None and self.code != "netfilter":
            raise ValueError("only a netfilter drop is a REJECT")


@dataclass(frozen=True, slots=True)
class ConntrackRecord:
    """An entry a walk created or matched in one namespace, as `conntrack -L` prints it."""

    namespace: str
    text: str
    mark: int
    nat: bool
    original: str = ""
    """The original tuple (`src=… dst=… sport=… dport=…`): which entry this is."""


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


ERROR_ERRNO: Mapping[int, str] = {
    0: "ENETUNREACH",
    1: "EHOSTUNREACH",
    2: "ENOPROTOOPT",
    3: "ECONNREFUSED",
    9: "ENETUNREACH",
    10: "EHOSTUNREACH",
}
"""What a connected socket reports for each destination-unreachable code it receives
(`icmp_err_convert`, measured: each `REJECT --reject-with icmp-…` against a TCP connect in a
lab namespace)."""


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
    then: Walk | None = None
    """The same client's next connection (one source port higher, a second later), walked
    with the state this exchange left: how ClientIP session affinity shows (`walk --again`)."""
    backend: Walk | None = None
    """The connection a proxy (a CLB, an ALB) opens for this one, from its node to the target
    it chose, with the target's answer: the client's connection ends at the proxy, so the two
    are linked walks (aws-load-balancers.md §2.3, §2.4)."""
    later: Walk | None = None
    """The source's next packet of the same connection (`Flow.later_packet`), sent once the
    reply arrived, walked with the conntrack entries the exchange left (`walk --later`): it
    skips the nat table, so what only the nat table did for the first packet (the VPC CNI's
    connmark of node-SNATed egress) must be done again by a mangle rule, or it goes otherwise."""

    def __post_init__(self) -> None:
        if self.then is not None and (self.direction != "forward" or self.disposition is None):
            raise ValueError("only a forward walk that ends has a next connection")
        if self.later is not None:
            answered = self.reply is not None and self.reply.disposition is not None
            if not answered or self.reply.disposition.kind != "delivered":  # type: ignore[union-attr]
                raise ValueError("only a walk whose reply arrived has a later packet")
            if self.later.direction != "forward" or self.later.flow != self.flow:
                raise ValueError("a later packet goes the walk's way, on the walk's flow")
        if not self.hops and not self.branches:
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

    def leaves(self) -> Iterator[tuple[float, str, Walk]]:
        """Every complete way this walk can go: itself, or each branch (with its probability and
        label); a branch's walk starts at the flow's source like any walk."""
        if not self.branches:
            yield 1.0, "", self
            return
        for branch in self.branches:
            for probability, label, leaf in branch.walk.leaves():
                joined = " · ".join(part for part in (branch.label, label) if part)
                yield branch.probability * probability, joined, leaf

    def leaf_at(self, draw: float) -> tuple[str, Walk]:
        """The complete way a draw in [0, 1) picks, each leaf taking a share of the interval as
        large as its probability (in `leaves()` order): `--seed` makes one walk of a split one
        reproducibly, with the randomness passed in."""
        if not 0 <= draw < 1:
            raise ValueError(f"a draw is in [0, 1), not {draw}")
        total = 0.0
        leaves = list(self.leaves())
        for probability, label, leaf in leaves:
            total += probability
            if draw < total:
                return label, leaf
        return leaves[-1][1], leaves[-1][2]

    def final_conntrack(self) -> dict[str, list[ConntrackRecord]]:
        """Per namespace, each entry as it stands after this walk and its reply (the reply's
        record of an entry replaces the forward one): what `conntrack -L` lists afterwards."""
        tables: dict[str, dict[str, ConntrackRecord]] = {}
        for part in (self, self.reply):
            if part is None:
                continue
            for record in part.conntrack:
                tables.setdefault(record.namespace, {})[record.original] = record
        return {namespace: list(entries.values()) for namespace, entries in tables.items()}

    def chosen_values(self) -> frozenset[int]:
        """The values the kernel chose at random along this walk and its reply (`Step.chosen`)."""
        found: set[int] = set()
        for hop in self.hops:
            for step in hop.steps:
                found.update(step.chosen)
        if self.reply is not None:
            found |= self.reply.chosen_values()
        return frozenset(found)

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
