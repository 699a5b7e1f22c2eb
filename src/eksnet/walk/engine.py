"""The walk engine: carry one packet through the data-plane state, hop by hop, and back.

It follows the kernel's order of work in each namespace (linux-dataplane.md §1.2–1.3): a
locally generated packet gets its output route, then OUTPUT and POSTROUTING; an arriving frame
goes through PREROUTING, the input route lookup (with rp_filter and the forwarding check), then
INPUT and local delivery or FORWARD and POSTROUTING; a frame leaving on a veth arrives in the
peer's namespace, one leaving on an ENI enters the VPC fabric, whose route table may hand it to
the internet gateway and on to a host on the internet. The netfilter tables are evaluated
by `walk.netfilter` (rules from the state's `iptables-save` text) and conntrack entries are kept
per namespace, so the return walk is driven by what the forward walk left behind.

Everything here is a pure function of the state and the flow: no I/O, no hidden randomness.
Where a `statistic` rule splits the traffic, the engine does not draw: it replays the walk once
per outcome (a *choice script* says which outcome to take at each split it reaches) and returns
every complete way the packet can go as weighted branches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from ipaddress import IPv4Address
from typing import Literal

from eksnet.dataplane.load_balancers import LbNode, LoadBalancer, TargetGroup
from eksnet.dataplane.load_balancers import Target as LbTarget
from eksnet.dataplane.security import PROTOCOL_NUMBERS
from eksnet.dataplane.state import (
    DataplaneState,
    Eni,
    ExternalHost,
    Link,
    Namespace,
    Service,
    VpcState,
)
from eksnet.dataplane.targets import Target, parse_target, resolve_namespace, resolve_service
from eksnet.errors import InputError, NotModelled
from eksnet.kernel.conntrack import ConntrackTable
from eksnet.kernel.fib import FibError, FibResult, InputRoute, input_route, output_route
from eksnet.kernel.netfilter import DEFAULT_NOW, NfOutcome, RecentTables
from eksnet.vpc import fabric, igw, nacl, nat_gateway, pipeline, security_groups
from eksnet.walk import describe, load_balancing
from eksnet.walk import netfilter as nf
from eksnet.walk.model import (
    ERROR_ERRNO,
    Branch,
    ConntrackRecord,
    Decision,
    Direction,
    Disposition,
    DropCode,
    Endpoint,
    EniTraffic,
    Flow,
    FlowLogAction,
    Hop,
    Packet,
    Protocol,
    Step,
    Walk,
    Where,
)

DEFAULT_TTL = 64
"""The TTL a packet starts with (Linux's `net.ipv4.ip_default_ttl`; what the walk assumes of
the hosts that answer it, the instance's host too [inf])."""
DEFAULT_SOURCE_PORT = 41000
DEFAULT_ICMP_ID = 41000
"""The identifier of a walk's echo request unless one is given (the lab's sender uses it too)."""
MAX_HOPS = 32
MAX_LEAVES = 4096
"""More complete ways than this (nested load balancing) is reported as not modelled rather than
enumerated: a walk is meant to be read."""


@dataclass(frozen=True, slots=True)
class _Arrive:
    """A frame arriving on `iif` in namespace `namespace`."""

    namespace: str
    iif: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class _Fabric:
    """A frame the VPC received from ENI `eni_id`."""

    eni_id: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class _Origin:
    """A socket in `namespace` sends the packet (`packet.src` may be unset: routing picks it)."""

    namespace: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class _Gateway:
    """A packet at the internet gateway `gateway`: leaving the VPC (`outbound`), or coming in
    from the internet."""

    gateway: str
    packet: Packet
    outbound: bool


@dataclass(frozen=True, slots=True)
class _Internet:
    """A packet the internet gateway `gateway` let out onto the internet."""

    gateway: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class _FromGateway:
    """A packet the internet gateway `gateway` let into the VPC (destination already private)."""

    gateway: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class _Host:
    """An external host sends the packet (the answer to a walk that reached it)."""

    host: ExternalHost
    packet: Packet
    resolved: str | None = None
    """What the host's DNS lookup answered, when it looked the destination up (`dns/NAME`)."""


@dataclass(frozen=True, slots=True)
class _AtNatGateway:
    """A packet the NAT gateway `gateway`'s ENI received."""

    gateway: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class _AtLoadBalancer:
    """A packet a load balancer node's ENI `eni_id` received."""

    eni_id: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class _LoadBalancerSends:
    """A load balancer node sends a packet of its own (a proxy accepting its client's
    connection, or opening its own to a target) from its ENI `eni_id`."""

    eni_id: str
    packet: Packet
    what: str
    chosen: tuple[int, ...] = ()
    """Values the load balancer picked for the packet (its source port)."""


@dataclass(frozen=True, slots=True)
class _LbSession:
    """A connection a load balancer node holds: how a packet coming back from the target side
    is rewritten towards the client (`back_src`/`back_sport` its source then), and whether the
    VPC steers the target's reply to the node (an NLB preserving the client's address)."""

    eni_id: str
    client: IPv4Address
    client_port: int
    listener: IPv4Address
    listener_port: int
    proxy: bool


@dataclass(frozen=True, slots=True)
class _LbFlow:
    """What a load balancer node chose for a client's connection, kept for its later packets:
    a passthrough NLB sends them to the same target with the same rewrite (`src`, `sport` as
    the target sees them), a proxy (CLB, ALB) takes them itself."""

    target: str
    address: IPv4Address
    port: int
    src: IPv4Address
    sport: int
    proxy: bool


@dataclass(frozen=True, slots=True)
class _HostAnswer:
    """The instance's host answers a host-served address (IMDS …) to the ENI `eni_id`."""

    eni_id: str
    packet: Packet
    label: str


_Position = (
    _Arrive
    | _Fabric
    | _Origin
    | _Gateway
    | _Internet
    | _FromGateway
    | _Host
    | _AtNatGateway
    | _HostAnswer
    | _AtLoadBalancer
    | _LoadBalancerSends
)

INTERNET = "internet"
"""How hops name the internet side of the internet gateway and of an external host (their
`iif`/`oif`: AWS components and hosts outside have no Linux interfaces)."""


class _Split(Exception):
    """A table split into several outcomes at a choice point the script has no answer for."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


@dataclass(slots=True)
class _Choices:
    """The choice script of one replay, and what it took: which outcome at each split, in the
    order the walk meets them, with the probability and a label of each choice."""

    script: tuple[int, ...]
    taken: list[tuple[Fraction, str]] = field(default_factory=list)

    def choose(self, where: str, outcomes: Sequence[NfOutcome]) -> NfOutcome:
        if len(outcomes) == 1:
            return outcomes[0]
        index = len(self.taken)
        if index >= len(self.script):
            raise _Split(len(outcomes))
        outcome = outcomes[self.script[index]]
        self.taken.append((outcome.probability, _outcome_label(where, outcome)))
        return outcome

    def pick(self, labels: Sequence[str]) -> int:
        """An equal-weight choice among `labels` (a load balancer's eligible targets): which
        one this replay takes."""
        if len(labels) == 1:
            return 0
        index = len(self.taken)
        if index >= len(self.script):
            raise _Split(len(labels))
        picked = self.script[index]
        self.taken.append((Fraction(1, len(labels)), labels[picked]))
        return picked

    @property
    def probability(self) -> Fraction:
        result = Fraction(1)
        for probability, _ in self.taken:
            result *= probability
        return result

    @property
    def label(self) -> str:
        return " · ".join(label for _, label in self.taken)


def _outcome_label(where: str, outcome: NfOutcome) -> str:
    """How a person tells the branches apart: the NAT the outcome asked for, else the last chain
    it jumped to, else its verdict."""
    if outcome.nat is not None:
        return outcome.nat.describe()
    jumps = [hit for hit in outcome.trace if hit.verdict in ("JUMP", "GOTO")]
    if jumps:
        return jumps[-1].effect
    return f"{outcome.verdict} in {where}"


@dataclass(slots=True)
class _Journey:
    """What one direction of a walk carries along: the state, the conntrack tables (which the
    return direction inherits), the hops so far and the replay's choices."""

    state: DataplaneState
    labels: Mapping[str, str]
    destination: str | None
    """The namespace the flow is addressed to, if it is a pod or node of the cluster."""
    choices: _Choices
    conntrack: dict[str, ConntrackTable] = field(default_factory=dict)
    recent: dict[str, RecentTables] = field(default_factory=dict)
    """The `-m recent` lists per namespace (ClientIP affinity), carried like conntrack."""
    now: float = DEFAULT_NOW
    """When this connection's packets pass, in seconds on the namespaces' clocks."""
    hops: list[Hop] = field(default_factory=list)
    records: list[ConntrackRecord] = field(default_factory=list)
    tracking: security_groups.Tracking = field(default_factory=security_groups.Tracking)
    """The flows each ENI's security groups track (the reply is judged against them)."""
    sessions: nat_gateway.Sessions = field(default_factory=nat_gateway.Sessions)
    """The NAT gateways' sessions."""
    lb_sessions: dict[tuple[str, IPv4Address, int, IPv4Address, int], _LbSession] = field(
        default_factory=dict
    )
    """The load balancers' connections, keyed by the target side's reply as it leaves the
    target: (protocol, source, source port, destination, destination port)."""
    lb_flows: dict[tuple[str, IPv4Address, int, IPv4Address, int], _LbFlow] = field(
        default_factory=dict
    )
    """The same connections keyed by the client's side as it reaches the node: what a later
    packet of the client finds."""
    request: load_balancing.HttpRequest | None = None
    """What the client asks over HTTP (an ALB reads it)."""
    backend: tuple[_LoadBalancerSends, Flow] | None = None
    """The connection a proxy opened for this one (`Walk.backend`), to walk after its reply."""

    def where(self, namespace: Namespace) -> Where:
        return Where(namespace.kind, namespace.name, self.labels.get(namespace.name, ""))

    def passage(self, namespace: Namespace) -> nf.Passage:
        return nf.Passage(
            self.conntrack, namespace, self.choices.choose, recent=self.recent, now=self.now
        )

    def answering(self, destination: str | None) -> _Journey:
        """The journey of the answer to this one: the same state and choices, the conntrack
        and recent tables as this journey left them, its own hops."""
        return _Journey(
            state=self.state,
            labels=self.labels,
            destination=destination,
            choices=self.choices,
            conntrack=dict(self.conntrack),
            recent=dict(self.recent),
            now=self.now,
            tracking=self.tracking,
            sessions=self.sessions,
            lb_sessions=dict(self.lb_sessions),
            lb_flows=dict(self.lb_flows),
            request=self.request,
        )


@dataclass(frozen=True, slots=True)
class _End:
    """How a direction ended, the packet a delivery handed to the socket, and where the answer
    to a REJECT starts (the rejecting namespace sends it)."""

    disposition: Disposition
    delivered_packet: Packet | None = None
    answer: _Position | None = None


def walk(
    state: DataplaneState,
    src: str,
    dst: str,
    *,
    proto: Protocol = "tcp",
    dport: int | None = None,
    sport: int | None = None,
    icmp_id: int | None = None,
    labels: Mapping[str, str] | None = None,
    with_reply: bool = True,
    again: bool = False,
    later: bool = False,
    az: str | None = None,
    host: str | None = None,
    path: str | None = None,
) -> Walk:
    """Walk a new connection from `src` to `dst` (`pod/NS/NAME`, `node/NAME`, `ip/ADDR`,
    `svc/NS/NAME`, a load balancer: `lb/NS/SERVICE`, `ingress/NS/NAME` or `dns/NAME`, with
    `az` its node's zone and `host`/`path` an ALB's request), and its first reply back; a walk
    that load balancing splits has one branch per way it can go. `again`: each way it can go
    also walks the same client's next connection (`Walk.then`), with the `recent` lists this
    one left. `later`: once the reply arrived, the source's next packet of the same connection
    is walked too (`Walk.later`)."""
    destination_target = parse_target(dst)
    balanced = destination_target.kind in ("lb", "ingress", "dns")
    if not balanced and (az, host, path) != (None, None, None):
        raise InputError(
            "--az, --host and --path choose a load balancer's node and request",
            fix="walk to lb/NAMESPACE/SERVICE, ingress/NAMESPACE/NAME or dns/NAME",
        )
    needs_port = destination_target.kind != "svc" and not balanced
    if proto in ("tcp", "udp", "sctp") and dport is None and needs_port:
        raise InputError(f"a {proto} walk needs a destination port", fix="add --port N")
    if proto == "icmp" and (dport is not None or sport is not None):
        raise InputError("an icmp walk has no ports", fix="drop --port/--sport")
    if proto != "icmp" and icmp_id is not None:
        raise InputError(f"a {proto} walk has no ICMP identifier", fix="drop the identifier")
    if later and not with_reply:
        raise InputError(
            "a later packet is sent once the reply arrived", fix="drop --no-return or --later"
        )
    source = _endpoint(state, parse_target(src), role="source")
    start = _namespace_of_endpoint(state, source)
    request: load_balancing.HttpRequest | None = None
    resolved: str | None = None
    if balanced:
        aimed = _balanced_destination(
            state, destination_target, az=az, host=host, path=path, outside=start is None,
            proto=proto, dport=dport,
        )  # fmt: skip
        destination, dport, request, resolved = aimed
    else:
        destination = _endpoint(state, destination_target, role="destination")
    if destination_target.kind == "svc":
        dport = _service_port(resolve_service(state, destination_target), proto, dport)
    client = state.external_host(source.address) if start is None else None
    if start is None and client is None:
        raise InputError(
            f"source {src}: {source.address} is not a pod or node of this cluster, nor an "
            "external host of the spec",
            fix="start in a pod or node, or declare the client under externalHosts",
        )
    if proto != "icmp" and sport is None:
        sport = client.source_port if client is not None and client.source_port else None
        sport = sport or DEFAULT_SOURCE_PORT
    if proto == "icmp" and icmp_id is None:
        icmp_id = DEFAULT_ICMP_ID
    flow = Flow(
        source,
        destination,
        proto,
        sport if proto != "icmp" else None,
        dport,
        icmp_id if proto == "icmp" else None,
        http=(request.host, request.path) if request is not None else None,
    )
    origin = _sent_from(state, start, client, flow, resolved)
    following = _sent_from(state, start, client, flow, resolved, later=True) if later else None
    target = _namespace_of_endpoint(state, destination)
    fresh = _Carried(request=request)

    def once(choices: _Choices) -> Walk:
        first, left = _walk_once(
            state, flow, origin, target, labels, choices, with_reply, fresh, following
        )
        if not again:
            return first
        return _with_next_connection(
            state, client, start, flow, target, labels, with_reply, first, left, request,
            resolved,
        )  # fmt: skip

    return _enumerated(flow, once, f"{src} to {dst}")


@dataclass(frozen=True, slots=True)
class _Carried:
    """The state a connection starts with: the `recent` lists earlier connections left (the
    first starts with none) and its time."""

    recent: Mapping[str, RecentTables] = field(default_factory=dict)
    now: float = DEFAULT_NOW
    request: load_balancing.HttpRequest | None = None
    """What an HTTP client asks (for an ALB), the same on every connection."""


NEXT_CONNECTION_AFTER = 1.0
"""Seconds between a connection and the same client's next one (`again`): inside any
affinity timeout (the API's default is 10800 s and its minimum 1 s; `--rcheck --seconds S`
still counts a timestamp exactly S seconds old)."""


def _enumerated(flow: Flow, once: Callable[[_Choices], Walk], what: str) -> Walk:
    """Every complete replay of `once` (one per way the load balancing can go), as one walk."""
    leaves: list[tuple[_Choices, Walk]] = []
    pending: list[tuple[int, ...]] = [()]
    while pending:
        script = pending.pop(0)
        choices = _Choices(script)
        try:
            leaves.append((choices, once(choices)))
        except _Split as split:
            pending[0:0] = [(*script, index) for index in range(split.count)]
            if len(leaves) + len(pending) > MAX_LEAVES:
                raise NotModelled(
                    f"more than {MAX_LEAVES} load-balanced ways from {what}"
                ) from None
    if len(leaves) == 1 and not leaves[0][0].taken:
        return leaves[0][1]
    return _branched(flow, leaves)


def _with_next_connection(
    state: DataplaneState,
    host: ExternalHost | None,
    start: str | None,
    flow: Flow,
    target: str | None,
    labels: Mapping[str, str] | None,
    with_reply: bool,
    first: Walk,
    left: Mapping[str, RecentTables],
    first_request: load_balancing.HttpRequest | None = None,
    resolved: str | None = None,
) -> Walk:
    """`first` with `then`: the same client's next connection (source port or ICMP identifier
    one higher, `NEXT_CONNECTION_AFTER` seconds later), started with the `recent` lists
    `first` left, so a ClientIP-affinity Service sends it to the same endpoint. Conntrack is
    not carried: the new source port makes a new connection either way."""
    following = Flow(
        flow.src,
        flow.dst,
        flow.proto,
        flow.sport + 1 if flow.sport is not None else None,
        flow.dport,
        flow.icmp_id + 1 if flow.icmp_id is not None else None,
        http=flow.http,
    )
    origin = _sent_from(state, start, host, following, resolved)
    carried = _Carried(dict(left), DEFAULT_NOW + NEXT_CONNECTION_AFTER, first_request)
    then = _enumerated(
        following,
        lambda choices: _walk_once(
            state, following, origin, target, labels, choices, with_reply, carried
        )[0],
        "the next connection",
    )
    return replace(first, then=then)


def _walk_once(
    state: DataplaneState,
    flow: Flow,
    origin: _Position,
    target: str | None,
    labels: Mapping[str, str] | None,
    choices: _Choices,
    with_reply: bool,
    carried: _Carried,
    following: _Position | None = None,
) -> tuple[Walk, Mapping[str, RecentTables]]:
    """One complete replay: the forward walk under `choices`, and its reply; with the `recent`
    lists as the exchange left them. `following`: where the source's later packet starts, walked
    if the reply arrived."""
    journey = _Journey(
        state=state,
        labels=labels or {},
        destination=target,
        choices=choices,
        recent=dict(carried.recent),
        now=carried.now,
        request=carried.request,
    )
    end = _run(journey, origin)
    reply: Walk | None = None
    left: Mapping[str, RecentTables] = journey.recent
    later: Walk | None = None
    if with_reply and end.disposition.kind == "delivered" and end.delivered_packet is not None:
        reply, answered = _reply_walk(flow, journey, end)
        left = answered.recent
        arrived = reply.disposition is not None and reply.disposition.kind == "delivered"
        if following is not None and arrived:
            later = _later_walk(flow, answered, target, following)
    elif with_reply and end.answer is not None:
        reply, left = _answer_walk(flow, journey, end.answer)
    walked = _walked(
        flow, "forward", journey, end.disposition,
        reply=reply, backend=_backend_walk(journey, with_reply), later=later,
    )  # fmt: skip
    return walked, left


def _later_walk(flow: Flow, answered: _Journey, target: str | None, start: _Position) -> Walk:
    """The source's next packet, walked with every table the exchange left (conntrack, the
    security groups' tracked flows, the NAT gateways' and load balancers' sessions), so each
    finds its connection instead of making a new one."""
    journey = answered.answering(target)
    return _walked(flow, "forward", journey, _run(journey, start).disposition)


def _walked(
    flow: Flow,
    direction: Direction,
    journey: _Journey,
    disposition: Disposition,
    *,
    reply: Walk | None = None,
    backend: Walk | None = None,
    later: Walk | None = None,
) -> Walk:
    """One direction of a walk as data: the journey's hops and conntrack records, its ending."""
    return Walk(
        flow=flow,
        direction=direction,
        hops=tuple(journey.hops),
        disposition=disposition,
        conntrack=tuple(journey.records),
        reply=reply,
        notes=_notes(journey),
        backend=backend,
        later=later,
    )


def _backend_walk(journey: _Journey, with_reply: bool) -> Walk | None:
    """The connection a proxy opened for the walk's client (`Walk.backend`), and its answer."""
    if journey.backend is None:
        return None
    start, flow = journey.backend
    opened = journey.answering(_namespace_of_endpoint(journey.state, flow.dst))
    end = _run(opened, start)
    reply: Walk | None = None
    if with_reply and end.disposition.kind == "delivered" and end.delivered_packet is not None:
        reply, _ = _reply_walk(flow, opened, end)
    elif with_reply and end.answer is not None:
        reply, _ = _answer_walk(flow, opened, end.answer)
    return _walked(flow, "forward", opened, end.disposition, reply=reply)


def _branched(flow: Flow, leaves: Sequence[tuple[_Choices, Walk]]) -> Walk:
    """One walk whose branches are the complete replays; its own hops are the ones every
    branch shares (none when the split happens in the first namespace)."""
    common = list(leaves[0][1].hops)
    for _, leaf in leaves[1:]:
        length = 0
        for ours, theirs in zip(common, leaf.hops, strict=False):
            if ours != theirs:
                break
            length += 1
        common = common[:length]
    branches = tuple(
        Branch(float(choices.probability), choices.label, leaf) for choices, leaf in leaves
    )
    return Walk(
        flow=flow, direction="forward", hops=tuple(common), disposition=None, branches=branches
    )


def _reply_walk(flow: Flow, forward: _Journey, end: _End) -> tuple[Walk, _Journey]:
    """The answer to the delivered packet, sent by the socket that received it; with the
    journey it made (its tables are what a later packet finds)."""
    assert end.delivered_packet is not None
    answer = end.delivered_packet.reply()
    journey = forward.answering(_namespace_of_endpoint(forward.state, flow.src))
    start: _Position = _Origin(end.disposition.where.name, answer)
    if end.answer is not None:
        start = end.answer
    elif end.disposition.where.kind == "external":
        host = forward.state.external_host(end.delivered_packet.dst)
        assert host is not None
        start = _Host(host, answer)
    reply_end = _run(journey, start)
    return _walked(flow, "return", journey, reply_end.disposition), journey


def _answer_walk(
    flow: Flow, forward: _Journey, answer: _Position
) -> tuple[Walk, Mapping[str, RecentTables]]:
    """The kernel's answer to a REJECTed packet (an ICMP error), on its way to the source."""
    journey = forward.answering(_namespace_of_endpoint(forward.state, flow.src))
    end = _run(journey, answer)
    disposition = end.disposition
    error = end.delivered_packet
    if disposition.kind == "delivered" and error is not None and error.is_icmp_error:
        errno = ERROR_ERRNO.get(error.icmp_code or 0)
        if errno is not None and flow.proto in ("tcp", "udp"):
            said = f"its {flow.proto} socket gets {errno}"
            disposition = replace(disposition, reason=f"{disposition.reason}: {said}")
    return _walked(flow, "return", journey, disposition), journey.recent


def _notes(journey: _Journey) -> tuple[str, ...]:
    vpc_hops = any(hop.where.kind == "vpc" for hop in journey.hops)
    if vpc_hops and not journey.state.vpc.security_groups:
        return ("the spec declares no security groups: none were evaluated",)
    return ()


def _run(journey: _Journey, position: _Position) -> _End:
    """Move the packet from position to position until it is delivered or dropped."""
    for _ in range(MAX_HOPS):
        if isinstance(position, _Origin):
            outcome = _originate(journey, position)
        elif isinstance(position, _Arrive):
            outcome = _arrive(journey, position)
        elif isinstance(position, _Fabric):
            outcome = _through_vpc(journey, position)
        elif isinstance(position, _Gateway):
            outcome = _at_gateway(journey, position)
        elif isinstance(position, _Internet):
            outcome = _on_internet(journey, position)
        elif isinstance(position, _FromGateway):
            outcome = _into_vpc(journey, position)
        elif isinstance(position, _AtNatGateway):
            outcome = _at_nat_gateway(journey, position)
        elif isinstance(position, _HostAnswer):
            outcome = _host_answers(journey, position)
        elif isinstance(position, _AtLoadBalancer):
            outcome = _at_load_balancer(journey, position)
        elif isinstance(position, _LoadBalancerSends):
            outcome = _load_balancer_sends(journey, position)
        else:
            outcome = _from_host(journey, position)
        if isinstance(outcome, _End):
            return outcome
        position = outcome
    last = journey.hops[-1].where
    reason = f"more than {MAX_HOPS} hops: a forwarding loop"
    return _End(Disposition("dropped", last, reason, code="loop"))


_Outcome = _Position | _End


# --- Linux namespaces -------------------------------------------------------------------------


def _originate(journey: _Journey, position: _Origin) -> _Outcome:
    namespace = journey.state.namespace(position.namespace)
    packet = position.packet
    steps: list[Step] = [
        Step("originate", f"a socket sends {packet.five_tuple()}", after=packet),
    ]
    route = output_route(namespace, packet.dst, src=packet.src)
    steps.append(describe.route_step(namespace, route, packet))
    if isinstance(route, FibError):
        return _finish_drop(
            journey, namespace, None, steps, None, packet, route_reason(route), "no-route"
        )
    if route.type == "broadcast":
        return _to_broadcast(journey, namespace, steps, packet)
    if route.prefsrc is not None:
        packet = packet.but(src=route.prefsrc)
        steps[0] = replace(steps[0], after=packet)
    if route.type == "local" and packet.src.is_loopback:
        raise NotModelled(
            f"traffic from a loopback address of {namespace.name} (localhost node ports, "
            "route_localnet)"
        )
    passage = journey.passage(namespace)
    hooked = passage.output(packet, oif=route.dev)
    steps += hooked.steps
    if hooked.dropped is not None:
        return _netfilter_drop(journey, namespace, None, steps, None, hooked, local=False)
    if hooked.reroute:
        # nat OUTPUT rewrote the destination (a node reaching a Service, or its own node
        # port): the kernel routes the packet again (`ip_route_me_harder`).
        route = output_route(
            namespace, hooked.packet.dst, src=hooked.packet.src, mark=hooked.packet.mark
        )
        steps.append(describe.route_step(namespace, route, hooked.packet))
        if isinstance(route, FibError):
            reason = route_reason(route)
            return _finish_drop(journey, namespace, None, steps, None, None, reason, "no-route")
    if route.type == "local":
        raise NotModelled(f"traffic to a local address of {namespace.name} (through lo)")
    return _send(journey, namespace, passage, None, steps, hooked.packet, route)


def _to_broadcast(
    journey: _Journey, namespace: Namespace, steps: list[Step], packet: Packet
) -> _End:
    """A socket sending to a broadcast address (the route's type is `broadcast`): TCP cannot
    connect to one (`tcp_v4_connect` answers ENETUNREACH, measured); the rest is not modelled."""
    if packet.proto != "tcp":
        raise NotModelled(f"{packet.proto} to the broadcast address {packet.dst}")
    reason = (
        f"connect() to {packet.dst} fails with Network is unreachable: TCP does not connect to a "
        "broadcast address"
    )
    return _finish_drop(journey, namespace, None, steps, None, None, reason, "socket")


def _arrive(journey: _Journey, position: _Arrive) -> _Outcome:
    namespace = journey.state.namespace(position.namespace)
    link = namespace.link(position.iif)
    packet = position.packet.but(mark=0)  # a veth crossing scrubs the mark
    steps: list[Step] = [
        Step("receive", f"frame arrives on {link.name} ({link.mac})", after=packet),
    ]
    if packet.dst_mac != link.mac:
        reason = f"{link.name} drops a frame addressed to another MAC ({packet.dst_mac})"
        steps.append(Step("drop", f"frame for {packet.dst_mac}, not {link.name}'s {link.mac}"))
        return _finish_drop(
            journey, namespace, link.name, steps, packet, None, reason, "not-our-mac"
        )
    passage = journey.passage(namespace)
    hooked = passage.prerouting(packet, iif=link.name)
    steps += hooked.steps
    if hooked.dropped is not None:
        return _finish_drop(
            journey,
            namespace,
            link.name,
            steps,
            position.packet,
            None,
            hooked.dropped,
            "netfilter",
        )
    packet = hooked.packet
    decision = input_route(
        namespace, src=packet.src, dst=packet.dst, iif=link.name, mark=packet.mark
    )
    steps += describe.input_route_steps(namespace, decision, packet, link.name)
    if decision.kind == "drop" or decision.fib is None or isinstance(decision.fib, FibError):
        reason = decision.reason or "no route"
        journey.records += _persisted(passage)
        return _finish_drop(
            journey,
            namespace,
            link.name,
            steps,
            position.packet,
            None,
            reason,
            _input_drop_code(decision),
        )
    if decision.kind == "local":
        local = passage.input(packet, iif=link.name)
        steps += local.steps
        journey.records += local.records
        if local.dropped is None and decision.fib.type == "broadcast":
            return _broadcast_received(journey, namespace, link.name, steps, position.packet)
        if local.dropped is not None:
            return _netfilter_drop(
                journey, namespace, link.name, steps, position.packet, local, local=True
            )
        return _deliver(journey, namespace, link.name, steps, local.packet, entered=position.packet)
    if packet.ttl <= 1:
        journey.records += _persisted(passage)
        return _finish_drop(
            journey,
            namespace,
            link.name,
            steps,
            position.packet,
            None,
            f"TTL exceeded while forwarding: the packet arrived with TTL {packet.ttl}, and "
            "forwarding takes one (the kernel answers the source with ICMP time exceeded)",
            "ttl",
        )
    packet = packet.but(ttl=packet.ttl - 1)
    steps.append(
        Step(
            "forward",
            f"forwarded: ip_forward on {link.name}, TTL {packet.ttl + 1} → {packet.ttl}",
            decided_by=(Decision("sysctl", f"net.ipv4.conf.{link.name}.forwarding = 1"),),
            after=packet,
        )
    )
    forwarded = passage.forward(packet, iif=link.name, oif=decision.fib.dev)
    steps += forwarded.steps
    if forwarded.dropped is not None:
        return _netfilter_drop(
            journey, namespace, link.name, steps, position.packet, forwarded, local=False
        )
    return _send(
        journey,
        namespace,
        passage,
        link.name,
        steps,
        forwarded.packet,
        decision.fib,
        entered=position.packet,
    )


def _input_drop_code(decision: InputRoute) -> DropCode:
    """rp_filter when the reverse-path check failed, else the routing decision itself. A
    source that is the namespace's own address fails the same check but is a martian, not an
    rp_filter drop: `__fib_validate_source` answers -EINVAL for it, and only -EXDEV counts
    `IPReversePathFilter` (measured in the lab: X14's SYN leaves that counter unchanged)."""
    if decision.rp_filter is not None and not decision.rp_filter.passed:
        if decision.rp_filter.why.startswith("martian"):
            return "martian"
        return "rp-filter"
    if decision.reason is not None and decision.reason.startswith("martian"):
        return "martian"
    return "no-route"


def _broadcast_received(
    journey: _Journey, namespace: Namespace, iif: str, steps: list[Step], entered: Packet
) -> _End:
    """A packet for a broadcast address is delivered to the host (measured: InDelivers counts
    it, INPUT and conntrack see it), but TCP never answers a SYN sent to a broadcast address
    (`tcp_v4_conn_request`)."""
    if entered.proto != "tcp":
        raise NotModelled(f"receiving {entered.proto} sent to the broadcast address {entered.dst}")
    reason = f"TCP ignores a SYN to the broadcast address {entered.dst} (no connection is made)"
    return _finish_drop(journey, namespace, iif, steps, entered, None, reason, "socket")


def _send(
    journey: _Journey,
    namespace: Namespace,
    passage: nf.Passage,
    iif: str | None,
    steps: list[Step],
    packet: Packet,
    route: FibResult,
    *,
    entered: Packet | None = None,
) -> _Outcome:
    """POSTROUTING, the neighbour, and the frame on the wire."""
    out = namespace.link(route.dev)
    post = passage.postrouting(packet, iif=iif, oif=out.name, nexthop=route.gateway)
    steps += post.steps
    if post.dropped is not None:
        return _finish_drop(
            journey, namespace, iif, steps, entered, None, post.dropped, "netfilter"
        )
    packet = post.packet
    journey.records += post.records
    nexthop = route.gateway or packet.dst
    neighbour = _neighbour(journey, namespace, out, nexthop, packet)
    steps.append(neighbour.step)
    if neighbour.mac is None:
        return _finish_drop(
            journey, namespace, iif, steps, entered, None, neighbour.step.summary, "neighbour"
        )
    frame = packet.but(src_mac=out.mac, dst_mac=neighbour.mac)
    steps.append(Step("transmit", f"transmitted on {out.name}", before=packet, after=frame))
    journey.hops.append(Hop(journey.where(namespace), iif, out.name, tuple(steps), entered, frame))
    if out.kind == "veth":
        assert out.peer is not None
        peer_namespace = _peer_namespace(journey.state, namespace, out)
        return _Arrive(peer_namespace.name, out.peer.name, frame)
    if out.kind == "device":
        service = _untranslated_service(journey.state, frame)
        if service is not None:
            return _End(
                Disposition(
                    "not-modelled",
                    journey.where(namespace),
                    f"{frame.dst} is the ClusterIP of svc/{service.key}, but no rule on "
                    f"{namespace.name} translated it: kube-proxy's rules for it are missing "
                    "from this node's iptables",
                )
            )
        eni = fabric.eni_of_device(journey.state.vpc, namespace.name, out.name)
        if eni is None:
            return _End(
                Disposition(
                    "not-modelled",
                    journey.where(namespace),
                    f"{out.name} on {namespace.name} is not an ENI of the VPC",
                )
            )
        return _Fabric(eni.id, frame)
    return _End(
        Disposition(
            "not-modelled", journey.where(namespace), f"transmit on a {out.kind} link ({out.name})"
        )
    )


@dataclass(frozen=True, slots=True)
class _NeighbourAnswer:
    step: Step
    mac: str | None


def _neighbour(
    journey: _Journey, namespace: Namespace, out: Link, nexthop: IPv4Address, packet: Packet
) -> _NeighbourAnswer:
    """The next hop's MAC: a neighbour entry of the state, or the answer to an ARP request (from
    the peer namespace across a veth, from the VPC fabric on an ENI)."""
    for neighbour in namespace.neighbours:
        if neighbour.dev == out.name and neighbour.dst == nexthop:
            text = (
                f"{neighbour.dst} dev {neighbour.dev} lladdr {neighbour.lladdr} {neighbour.state}"
            )
            return _NeighbourAnswer(
                Step(
                    "neighbour",
                    f"neighbour {nexthop} is {neighbour.lladdr} ({neighbour.state})",
                    decided_by=(Decision("neighbour", text),),
                ),
                neighbour.lladdr,
            )
    sender = describe.arp_sender(namespace, out.name, packet)
    ask = f"ARP who-has {nexthop} tell {sender} on {out.name}"
    if out.kind == "veth":
        peer_namespace = _peer_namespace(journey.state, namespace, out)
        assert out.peer is not None
        peer_link = peer_namespace.link(out.peer.name)
        owns = any(
            address.family == 4 and address.interface.ip == nexthop
            for address in peer_namespace.addresses_of(peer_link.name)
        )
        if owns:
            return _NeighbourAnswer(
                Step(
                    "neighbour",
                    f"{ask}: {peer_link.name} in the peer namespace answers {peer_link.mac}",
                    decided_by=(Decision("neighbour", ask),),
                ),
                peer_link.mac,
            )
        return _NeighbourAnswer(
            Step(
                "drop",
                f"{ask}: no answer (nothing on the peer owns {nexthop}); neighbour "
                "FAILED, the packet is dropped",
            ),
            None,
        )
    eni = fabric.eni_of_device(journey.state.vpc, namespace.name, out.name)
    if eni is None:
        return _NeighbourAnswer(Step("drop", f"{ask}: {out.name} is not an ENI"), None)
    answer = fabric.arp(journey.state.vpc, eni, nexthop)
    if answer.mac is None:
        return _NeighbourAnswer(
            Step("drop", f"{ask}: the VPC does not answer (no ENI of the subnet owns {nexthop})"),
            None,
        )
    who = {"router": "the subnet router", "host": "the instance's host"}.get(
        answer.answered_by, answer.answered_by
    )
    return _NeighbourAnswer(
        Step(
            "neighbour",
            f"{ask}: the VPC answers {answer.mac} ({who})",
            decided_by=(Decision("vpc", f"ARP {nexthop} is-at {answer.mac} ({who})"),),
        ),
        answer.mac,
    )


def _deliver(
    journey: _Journey,
    namespace: Namespace,
    iif: str | None,
    steps: list[Step],
    packet: Packet,
    *,
    entered: Packet | None = None,
) -> _End:
    where = journey.where(namespace)
    steps.append(
        Step(
            "deliver",
            f"delivered to the local socket {packet.dst}"
            + (f":{packet.dport}" if packet.dport is not None else ""),
            after=packet,
        )
    )
    journey.hops.append(Hop(where, iif, None, tuple(steps), entered, None))
    reason = f"delivered to {where.label or namespace.owner} ({packet.dst})"
    if journey.destination is not None and journey.destination != namespace.name:
        translated = _translated_destination(journey)
        if translated is not None:
            reason += f": DNAT on the way turned {translated} into {packet.dst}"
            reason += f":{packet.dport}" if packet.dport is not None else ""
        else:
            reason += f", not to the flow's destination {journey.destination}"
    return _End(Disposition("delivered", where, reason), delivered_packet=packet)


def _translated_destination(journey: _Journey) -> str | None:
    """The destination a netfilter DNAT rewrote on this journey (`addr:port`, or the address of
    a portless packet), if one did: a NodePort or Service walk is delivered to an endpoint, not
    to the namespace it was addressed to, and that is not a misdelivery."""
    for hop in journey.hops:
        if hop.where.kind not in ("node", "pod"):
            continue  # the internet gateway's 1:1 NAT is the VPC's, not a DNAT rule
        for step in hop.steps:
            if step.kind != "nat" or step.before is None or step.after is None:
                continue
            if step.before.dst != step.after.dst or step.before.dport != step.after.dport:
                port = f":{step.before.dport}" if step.before.dport is not None else ""
                return f"{step.before.dst}{port}"
    return None


def _persisted(passage: nf.Passage) -> list[ConntrackRecord]:
    """The conntrack entry a packet dropped after PREROUTING leaves behind, if it updated a
    confirmed one (`Passage.persisted`)."""
    record = passage.persisted()
    return [record] if record is not None else []


def _finish_drop(
    journey: _Journey,
    namespace: Namespace,
    iif: str | None,
    steps: list[Step],
    entered: Packet | None,
    left: Packet | None,
    reason: str,
    code: DropCode,
) -> _End:
    where = journey.where(namespace)
    if not steps or steps[-1].kind != "drop":
        steps.append(Step("drop", reason))
    journey.hops.append(Hop(where, iif, None, tuple(steps), entered, left))
    decided = steps[-2].decided_by if len(steps) > 1 else ()
    return _End(Disposition("dropped", where, reason, decided, code=code))


REJECT_CODES: Mapping[str, int] = {
    "icmp-net-unreachable": 0,
    "icmp-host-unreachable": 1,
    "icmp-proto-unreachable": 2,
    "icmp-port-unreachable": 3,
    "icmp-net-prohibited": 9,
    "icmp-host-prohibited": 10,
    "icmp-admin-prohibited": 13,
}
"""`REJECT --reject-with` (as iptables-save prints it) → the destination-unreachable code the
kernel sends (`nf_send_unreach`; codes of RFC 792/1812, measured with tcpdump)."""


def _netfilter_drop(
    journey: _Journey,
    namespace: Namespace,
    iif: str | None,
    steps: list[Step],
    entered: Packet | None,
    result: nf.HookResult,
    *,
    local: bool,
) -> _End:
    """A DROP, or a REJECT with the answer the kernel sends back to the packet's source."""
    assert result.dropped is not None
    end = _finish_drop(journey, namespace, iif, steps, entered, None, result.dropped, "netfilter")
    with_ = result.rejected_with
    if with_ is None:
        return end
    disposition = replace(end.disposition, rejected_with=with_)
    if with_ not in REJECT_CODES:
        raise NotModelled(f"the answer of REJECT --reject-with {with_}")
    rejected = result.packet
    if iif is None:
        # A REJECT in OUTPUT answers the local socket itself: the error never leaves the node.
        reason = f"{end.disposition.reason}; the sending socket gets the error at once"
        return _End(replace(disposition, reason=reason))
    error = rejected.unreachable(REJECT_CODES[with_], _error_source(namespace, rejected, local))
    return _End(disposition, answer=_Origin(namespace.name, error))


def _error_source(namespace: Namespace, rejected: Packet, local: bool) -> IPv4Address:
    """The source of an ICMP error (`__icmp_send`): the rejected packet's destination when it
    was addressed to this host, else none, so that routing the error back picks one (with
    `icmp_errors_use_inbound_ifaddr` 0, the default)."""
    if local:
        return rejected.dst
    route = output_route(namespace, rejected.src)
    if isinstance(route, FibError) or route.prefsrc is None:
        raise NotModelled(
            f"an ICMP error from {namespace.name} with no route back to {rejected.src}"
        )
    return route.prefsrc


def route_reason(error: FibError) -> str:
    return f"no route: {error.message}"


def _peer_namespace(state: DataplaneState, namespace: Namespace, link: Link) -> Namespace:
    """The namespace at the other end of a veth. A pod's peer is its node (the pod cannot name
    it: `link-netnsid 0`), a node's peer is named by the pod's netns."""
    assert link.peer is not None
    if link.peer.netns is not None:
        return state.namespace(link.peer.netns)
    for candidate in state.namespaces:
        for other in candidate.links:
            if (
                other.peer is not None
                and other.peer.netns == namespace.name
                and other.ifindex == link.peer.ifindex
                and other.name == link.peer.name
            ):
                return candidate
    raise InputError(f"{namespace.name}: the peer of {link.name} is in no namespace of the state")


# --- the VPC ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Carry:
    """One packet's way through the VPC's pipeline (`vpc.pipeline.STAGES`): what the stages
    decided so far. `sender` is None for a packet the internet gateway let in."""

    journey: _Journey
    packet: Packet
    sender: Eni | None
    entered_from: str
    """The hop's `iif`: the sending ENI, or the gateway the packet came from."""
    steps: list[Step] = field(default_factory=list)
    delivery: fabric.Delivery | None = None
    egress_action: FlowLogAction = "ACCEPT"

    @property
    def vpc(self) -> VpcState:
        return self.journey.state.vpc

    @property
    def where(self) -> Where:
        return Where("vpc", self.vpc.id, "VPC")

    @property
    def receiver(self) -> Eni | None:
        return None if self.delivery is None else self.delivery.to

    def crossing(self) -> bool:
        """Whether the packet leaves its subnet (NACLs apply only then)."""
        if self.delivery is None or self.sender is None:
            return False
        if self.delivery.kind == "gateway":
            return True
        receiver = self.receiver
        return receiver is not None and receiver.subnet != self.sender.subnet

    def end(self, reason: str, code: DropCode, decided: tuple[Decision, ...] = ()) -> _End:
        self.steps.append(Step("drop", reason, decided))
        oif = None
        self.journey.hops.append(
            Hop(self.where, self.entered_from, oif, tuple(self.steps), self.packet, None)
        )
        return _End(Disposition("dropped", self.where, reason, decided, code=code))


_Stage = Callable[[_Carry], "_Outcome | None"]


def _through_vpc(journey: _Journey, position: _Fabric) -> _Outcome:
    """A frame an ENI transmitted, judged stage by stage in the order `vpc.pipeline.STAGES`
    gives (vpc-fabric.md §1.3)."""
    sender = journey.state.vpc.eni(position.eni_id)
    carry = _Carry(journey, position.packet, sender, sender.id)
    return _run_stages(carry, pipeline.NAMES)


def _run_stages(carry: _Carry, stages: Sequence[str]) -> _Outcome:
    for stage in stages:
        outcome = _VPC_STAGES[stage](carry)
        if outcome is not None:
            return outcome
    return _handed_on(carry)


def _stage_source_check(carry: _Carry) -> _Outcome | None:
    sender, packet = carry.sender, carry.packet
    assert sender is not None
    owned = ", ".join(map(str, sender.addresses()))
    decided = (Decision("vpc", f"{sender.id} owns {owned}"),)
    if not sender.source_dest_check:
        carry.steps.append(
            Step("vpc-source-check", f"{sender.id}: source/destination check off", decided)
        )
        return None
    if not sender.owns(packet.src):
        reason = (
            f"source/destination check: {sender.id} does not own source {packet.src} "
            f"(it owns {owned})"
        )
        # Whether AWS writes a flow-log record for it is not documented (§11): none is shown.
        return carry.end(reason, "vpc-source-check", decided)
    carry.steps.append(
        Step("vpc-source-check", f"source/destination check on {sender.id}: passes", decided)
    )
    assert packet.dst_mac is not None
    if packet.dst_mac == "ff:ff:ff:ff:ff:ff" or int(packet.dst_mac[:2], 16) & 1:
        return carry.end(
            f"{packet.dst_mac}: the VPC carries no broadcast or multicast", "vpc-broadcast"
        )
    return None


def _stage_host_served(carry: _Carry) -> _Outcome | None:
    """IMDS, the Route 53 Resolver and time sync answer for the sending instance (§8.4)."""
    served = fabric.host_served(carry.vpc, carry.packet.dst)
    if served is None:
        return None
    sender = carry.sender
    assert sender is not None
    instance = carry.vpc.instance(sender.node) if sender.node is not None else None
    label = f"{served} of {instance.id or sender.node}" if instance is not None else served
    where = Where("vpc", f"host:{sender.id}", label)
    packet = carry.packet
    details = ["no route, NACL, security group or flow log applies to it (vpc-fabric.md §8.4)"]
    answer_ttl = DEFAULT_TTL
    if packet.dst == fabric.IMDS and instance is not None:
        answer_ttl = instance.hop_limit
        details.append(
            f"IMDS answers as to an IMDSv2 token request (PUT /latest/api/token): its "
            f"response packets carry IP TTL {instance.hop_limit}, the instance's "
            f"HttpPutResponseHopLimit (HttpTokens {instance.http_tokens})"
        )
    carry.steps.append(
        Step(
            "host-served",
            f"{packet.dst} is answered by the instance's host: {served}",
            decided_by=(Decision("vpc", f"{packet.dst}: host-served, never routed"),),
            details=tuple(details),
        )
    )
    socket = f"{packet.dst}" + (f":{packet.dport}" if packet.dport is not None else "")
    carry.steps.append(Step("deliver", f"delivered to {label} ({socket})", after=packet))
    carry.journey.hops.append(
        Hop(where, carry.entered_from, None, tuple(carry.steps), packet, None)
    )
    answer = packet.reply().but(ttl=answer_ttl)
    return _End(
        Disposition("delivered", where, f"delivered to {label} ({socket})"),
        delivered_packet=packet,
        answer=_HostAnswer(sender.id, answer, label),
    )


def _stage_sg_egress(carry: _Carry) -> _Outcome | None:
    sender = carry.sender
    assert sender is not None
    return _security_groups(carry, sender, "egress")


def _security_groups(
    carry: _Carry, eni: Eni, direction: Literal["ingress", "egress"]
) -> _Outcome | None:
    vpc, journey = carry.vpc, carry.journey
    if not vpc.security_groups or not eni.security_groups:
        if eni.interface_type == "nat_gateway":
            carry.steps.append(
                Step("security-group", f"{eni.id} (a NAT gateway's) has no security groups")
            )
        return None
    headers = _headers(carry.packet)
    verdict = security_groups.judge(vpc, eni, direction, headers, journey.tracking)
    decided = (Decision("vpc", verdict.text()),)
    if not verdict.allowed:
        way = "outbound" if direction == "egress" else "inbound"
        reason = (
            f"security groups {', '.join(eni.security_groups)} of {eni.id}: no {way} rule "
            f"allows {_sg_phrase(carry.packet)} (missing: {_missing_rule(carry.packet, direction)})"
        )
        carry.steps.append(_flow_log(eni, direction, carry.packet, "REJECT", carry))
        return carry.end(reason, "sg-egress" if direction == "egress" else "sg-ingress", decided)
    if not verdict.tracked:
        journey.tracking = journey.tracking.with_flow(eni.id, headers, untracked=verdict.untracked)
    if verdict.tracked:
        state = "tracked" if verdict.later else "tracked reply"
    else:
        state = "untracked: 0.0.0.0/0 both ways" if verdict.untracked else "tracked"
    carry.steps.append(Step("security-group", f"{verdict.text()}; {state}", decided_by=decided))
    return None


def _missing_rule(packet: Packet, direction: Literal["ingress", "egress"]) -> str:
    """The narrowest rule that would have let the packet through, in the console's words."""
    if packet.proto == "icmp":
        what = f"icmp type {packet.icmp_type}"
    else:
        what = f"{packet.proto} {packet.dport}"
    if direction == "ingress":
        return f"an inbound rule {what} from {packet.src}/32"
    return f"an outbound rule {what} to {packet.dst}/32"


def _sg_phrase(packet: Packet) -> str:
    if packet.proto == "icmp":
        return f"icmp from {packet.src} to {packet.dst}"
    return f"{packet.proto} port {packet.dport} from {packet.src} to {packet.dst}"


def _stage_route(carry: _Carry) -> _Outcome | None:
    sender, packet = carry.sender, carry.packet
    assert sender is not None and packet.src_mac is not None and packet.dst_mac is not None
    steered = _steered(carry, sender, packet)
    if steered is not None:
        carry.delivery = steered
        carry.steps.append(
            Step(
                "vpc-deliver",
                f"steered: {steered.reason}",
                decided_by=(Decision("vpc", steered.decision),),
            )
        )
        return None
    delivery = fabric.deliver(
        carry.vpc,
        sender,
        src=packet.src,
        dst=packet.dst,
        src_mac=packet.src_mac,
        dst_mac=packet.dst_mac,
    )
    carry.delivery = delivery
    decided = (Decision("vpc", delivery.decision),) if delivery.decision else ()
    if delivery.kind == "dropped":
        assert delivery.code is not None
        # The sender's record was written as it left: ACCEPT (§1.5).
        carry.steps.append(_flow_log(sender, "egress", packet, "ACCEPT", carry))
        return carry.end(delivery.reason, delivery.code, decided)
    if delivery.kind == "not-modelled":
        carry.steps.append(Step("not-modelled", delivery.reason))
        carry.journey.hops.append(
            Hop(carry.where, carry.entered_from, None, tuple(carry.steps), packet, None)
        )
        return _End(Disposition("not-modelled", carry.where, delivery.reason))
    via = {"l2": "layer 2"}.get(delivery.kind, "the subnet router")
    carry.steps.append(Step("vpc-deliver", f"{via}: {delivery.reason}", decided_by=decided))
    return None


def _stage_nacl_egress(carry: _Carry) -> _Outcome | None:
    if not carry.crossing():
        return None
    assert carry.sender is not None
    return _nacl(carry, carry.sender.subnet, egress=True)


def _nacl(carry: _Carry, subnet: str, *, egress: bool) -> _Outcome | None:
    acl = carry.vpc.network_acl(subnet)
    if acl is None:
        return None
    verdict = nacl.judge(acl, subnet, egress=egress, headers=_headers(carry.packet))
    decided = (Decision("vpc", verdict.text()),)
    if verdict.allowed:
        carry.steps.append(Step("nacl", verdict.text(), decided_by=decided))
        return None
    way = "outbound" if egress else "inbound"
    reason = f"network ACL {acl.id} of {subnet} denies it {way}: {verdict.entry.text()}"
    if egress:
        assert carry.sender is not None
        carry.steps.append(_flow_log(carry.sender, "egress", carry.packet, "REJECT", carry))
        return carry.end(reason, "nacl-egress", decided)
    if carry.sender is not None:
        carry.steps.append(_flow_log(carry.sender, "egress", carry.packet, "ACCEPT", carry))
    receiver = carry.receiver
    if receiver is not None:
        carry.steps.append(_flow_log(receiver, "ingress", carry.packet, "REJECT", carry))
    return carry.end(reason, "nacl-ingress", decided)


def _stage_flow_log_egress(carry: _Carry) -> _Outcome | None:
    assert carry.sender is not None
    carry.steps.append(_flow_log(carry.sender, "egress", carry.packet, "ACCEPT", carry))
    return None


def _stage_nacl_ingress(carry: _Carry) -> _Outcome | None:
    receiver = carry.receiver
    if receiver is None:
        return None
    if carry.sender is not None and not carry.crossing():
        return None
    return _nacl(carry, receiver.subnet, egress=False)


def _stage_destination_check(carry: _Carry) -> _Outcome | None:
    receiver = carry.receiver
    if receiver is None or not receiver.source_dest_check:
        return None
    if receiver.owns(carry.packet.dst):
        return None
    reason = f"source/destination check: {receiver.id} does not own destination {carry.packet.dst}"
    return carry.end(reason, "vpc-destination-check")


def _stage_sg_ingress(carry: _Carry) -> _Outcome | None:
    receiver = carry.receiver
    if receiver is None:
        return None
    return _security_groups(carry, receiver, "ingress")


def _stage_flow_log_ingress(carry: _Carry) -> _Outcome | None:
    receiver = carry.receiver
    if receiver is not None:
        carry.steps.append(_flow_log(receiver, "ingress", carry.packet, "ACCEPT", carry))
    return None


_VPC_STAGES: Mapping[str, _Stage] = {
    "source-check": _stage_source_check,
    "host-served": _stage_host_served,
    "sg-egress": _stage_sg_egress,
    "route": _stage_route,
    "nacl-egress": _stage_nacl_egress,
    "flow-log-egress": _stage_flow_log_egress,
    "nacl-ingress": _stage_nacl_ingress,
    "destination-check": _stage_destination_check,
    "sg-ingress": _stage_sg_ingress,
    "flow-log-ingress": _stage_flow_log_ingress,
}
assert tuple(_VPC_STAGES) == pipeline.NAMES


def _handed_on(carry: _Carry) -> _Outcome:
    """After the pipeline: to the internet gateway, a NAT gateway, or a node's device."""
    delivery, packet = carry.delivery, carry.packet
    assert delivery is not None
    if delivery.kind == "gateway":
        assert delivery.gateway is not None
        # Nothing beyond the VPC is an Ethernet segment: the frame's MACs end here, and the
        # sender's skb mark never left it.
        out = packet.but(src_mac=None, dst_mac=None, mark=0)
        carry.journey.hops.append(
            Hop(carry.where, carry.entered_from, delivery.gateway, tuple(carry.steps), packet, out)
        )
        return _Gateway(delivery.gateway, out, outbound=True)
    receiver = delivery.to
    assert receiver is not None
    frame = packet.but(src_mac=delivery.src_mac, dst_mac=delivery.dst_mac)
    last = carry.steps[-1]
    carry.steps.append(Step("vpc-deliver", f"to {receiver.id}", before=packet, after=frame))
    del last
    carry.journey.hops.append(
        Hop(carry.where, carry.entered_from, receiver.id, tuple(carry.steps), packet, frame)
    )
    if receiver.interface_type == "nat_gateway":
        gateway = next(g for g in carry.vpc.nat_gateways if g.eni == receiver.id)
        return _AtNatGateway(gateway.id, frame)
    if receiver.interface_type == "load_balancer":
        return _AtLoadBalancer(receiver.id, frame)
    if receiver.node is None or receiver.device is None:
        reason = f"{receiver.id} owns {packet.dst} but is attached to no node of the cluster"
        return _End(Disposition("not-modelled", carry.where, reason))
    return _Arrive(receiver.node, receiver.device, frame)


def _headers(packet: Packet) -> security_groups.Headers:
    return security_groups.Headers(
        protocol=PROTOCOL_NUMBERS[packet.proto],
        src=packet.src,
        dst=packet.dst,
        sport=packet.sport,
        dport=packet.dport,
        icmp_type=packet.icmp_type,
        icmp_code=packet.icmp_code if packet.icmp_type is not None else None,
        icmp_id=packet.icmp_id,
    )


def _flow_log(
    eni: Eni,
    direction: Literal["ingress", "egress"],
    packet: Packet,
    action: FlowLogAction,
    carry: _Carry,
) -> Step:
    """The record `eni`'s flow log writes for the packet (vpc-fabric.md §6)."""
    path = None
    if direction == "egress":
        delivery = carry.delivery
        if delivery is not None and delivery.kind == "gateway":
            # Through the internet gateway: 8 from a Nitro instance (every instance type the
            # model knows is Nitro), 2 from a service ENI such as a NAT gateway's [inf].
            path = 8 if eni.instance_id is not None or eni.node is not None else 2
        else:
            path = 1
    record = EniTraffic(eni.id, direction, packet.but(src_mac=None, dst_mac=None), action, path)
    return Step(
        "flow-log",
        f"flow log of {eni.id}: {direction} {action}",
        seen_by=record,
    )


# --- what the VPC's own services do ---------------------------------------------------------


def _at_nat_gateway(journey: _Journey, position: _AtNatGateway) -> _Outcome:
    """The NAT gateway (`vpc.nat_gateway`): SNAT to its private IP for an inside client, the
    session's un-NAT for an answer from outside; then out of its ENI again."""
    vpc = journey.state.vpc
    gateway = vpc.nat_gateway(position.gateway)
    assert gateway is not None
    eni = vpc.eni(gateway.eni)
    packet = position.packet
    where = Where("vpc", gateway.id, "NAT gateway")
    steps: list[Step] = []

    def drop(reason: str, code: DropCode) -> _End:
        steps.append(Step("drop", reason))
        journey.hops.append(Hop(where, eni.id, None, tuple(steps), packet, None))
        return _End(Disposition("dropped", where, reason, code=code))

    if packet.proto not in nat_gateway.CARRIED:
        return drop(
            f"{gateway.id} carries TCP, UDP and ICMP only, not {packet.proto}", "natgw-protocol"
        )
    key_port = packet.sport if packet.proto != "icmp" else packet.icmp_id
    if packet.dst == gateway.private_ip:
        outside = (
            packet.proto,
            packet.src,
            packet.sport or 0,
            packet.dst,
            packet.dport or packet.icmp_id or 0,
        )
        inside = journey.sessions.inside_of(gateway, outside)
        if inside is None:
            return drop(
                f"{gateway.id} has no session for {packet.five_tuple()}: nothing from outside "
                "gets in without one",
                "natgw-no-session",
            )
        _, client, client_port, _, _ = inside
        if packet.proto == "icmp":
            after = packet.but(dst=client, icmp_id=client_port)
        else:
            after = packet.but(dst=client, dport=client_port)
        what = f"the session's un-NAT: destination {packet.dst} → {client}"
        chosen: tuple[int, ...] = ()
    else:
        if vpc.subnet(gateway.subnet).cidr.__contains__(packet.src):
            return drop(
                f"{gateway.id} does not serve clients in its own subnet {gateway.subnet}",
                "natgw-own-subnet",
            )
        inside_key = (packet.proto, packet.src, key_port or 0, packet.dst, packet.dport or 0)
        port, journey.sessions = journey.sessions.port_for(gateway, inside_key)
        if packet.proto == "icmp":
            after = packet.but(src=gateway.private_ip, icmp_id=port)
        else:
            after = packet.but(src=gateway.private_ip, sport=port)
        what = (
            f"SNAT: source {packet.src}:{key_port} → {gateway.private_ip}:{port} (its private "
            "IP; the port is the gateway's choice, the lowest free from 1024 here)"
        )
        chosen = (port,)
    if packet.ttl <= 1:
        return drop(f"TTL {packet.ttl} expires at {gateway.id} (an IP hop)", "ttl")
    after = after.but(
        ttl=packet.ttl - 1, src_mac=eni.mac, dst_mac=vpc.subnet(eni.subnet).router_mac
    )
    steps.append(
        Step(
            "nat",
            what,
            decided_by=(Decision("vpc", f"{gateway.id} {gateway.private_ip}"),),
            before=packet,
            after=after,
            details=(f"TTL {packet.ttl} → {after.ttl}: a NAT gateway is an IP hop",),
            chosen=chosen,
        )
    )
    journey.hops.append(Hop(where, eni.id, eni.id, tuple(steps), packet, after))
    return _Fabric(eni.id, after)


def _host_answers(journey: _Journey, position: _HostAnswer) -> _Outcome:
    """The instance's host answers a host-served address on the ENI that asked: from the MAC
    the node resolved it to (the subnet router's), straight to the ENI."""
    vpc = journey.state.vpc
    eni = vpc.eni(position.eni_id)
    packet = position.packet
    frame = packet.but(src_mac=vpc.subnet(eni.subnet).router_mac, dst_mac=eni.mac)
    where = Where("vpc", f"host:{eni.id}", position.label)
    steps = (
        Step(
            "originate",
            f"{position.label} answers {packet.five_tuple()}",
            after=packet,
            details=(f"IP TTL {packet.ttl}",),
        ),
        Step("transmit", f"straight to {eni.id}", after=frame),
    )
    journey.hops.append(Hop(where, None, eni.id, steps, None, frame))
    assert eni.node is not None and eni.device is not None
    return _Arrive(eni.node, eni.device, frame)


# --- load balancers (aws-load-balancers.md §2) ------------------------------------------------


def _lb_where(balancer: LoadBalancer, node: LbNode) -> Where:
    return Where("vpc", f"lb:{balancer.name}:{node.az}", f"{balancer.kind.upper()} ({node.az})")


def _lb_frame(vpc: VpcState, eni: Eni, packet: Packet) -> Packet:
    """A packet a load balancer node sends, as a frame: to the owner's MAC inside its own
    subnet (layer 2, talk-walks.md W7's frame), else to its subnet's router."""
    subnet = vpc.subnet(eni.subnet)
    owner = vpc.owner_of(packet.dst)
    if packet.dst in subnet.cidr and owner is not None:
        return packet.but(src_mac=eni.mac, dst_mac=owner.mac)
    return packet.but(src_mac=eni.mac, dst_mac=subnet.router_mac)


def _steered(carry: _Carry, sender: Eni, packet: Packet) -> fabric.Delivery | None:
    """An NLB that preserves the client's address is in the reply's path all the same: the VPC
    hands a target's reply to the NLB node that forwarded the flow, whatever the route table
    says (aws-load-balancers.md §2.2 [inf]: AWS documents only the conditions)."""
    key = (packet.proto, packet.src, packet.sport or 0, packet.dst, packet.dport or 0)
    session = carry.journey.lb_sessions.get(key)
    if session is None or session.proxy or packet.dst != session.client:
        return None
    vpc = carry.vpc
    node_eni = vpc.eni(session.eni_id)
    router = vpc.subnet(node_eni.subnet).router_mac
    balancer = vpc.load_balancer_of(session.eni_id)
    assert balancer is not None
    return fabric.Delivery(
        "routed",
        f"{balancer.name} forwarded this flow preserving the client's address: its reply goes "
        f"back through the NLB node ({node_eni.id}), not by the route table",
        to=node_eni,
        src_mac=router,
        dst_mac=node_eni.mac,
        via=vpc.subnet(sender.subnet),
        decision=f"flow owner {node_eni.id} ({session.listener}:{session.listener_port})",
    )


def _lb_node(vpc: VpcState, eni_id: str) -> tuple[LoadBalancer, LbNode, Eni]:
    """The load balancer, its node and the node's ENI, of a load balancer ENI."""
    balancer = vpc.load_balancer_of(eni_id)
    assert balancer is not None
    node = balancer.node_of(eni_id)
    assert node is not None
    return balancer, node, vpc.eni(eni_id)


def _at_load_balancer(journey: _Journey, position: _AtLoadBalancer) -> _Outcome:
    vpc = journey.state.vpc
    balancer, node, eni = _lb_node(vpc, position.eni_id)
    packet = position.packet
    where = _lb_where(balancer, node)
    key = (packet.proto, packet.src, packet.sport or 0, packet.dst, packet.dport or 0)
    session = journey.lb_sessions.get(key)
    if session is not None:
        return _lb_back(journey, balancer, node, eni, packet, session)
    held = journey.lb_flows.get(key)
    if held is not None:
        return _lb_onwards(journey, balancer, node, eni, packet, held)
    steps: list[Step] = []

    def end(kind: str, reason: str, code: DropCode | None = None) -> _End:
        steps.append(Step("drop" if kind == "dropped" else "deliver", reason))
        journey.hops.append(Hop(where, eni.id, None, tuple(steps), packet, None))
        return _End(Disposition(kind, where, reason, code=code))  # type: ignore[arg-type]

    protocol = packet.proto.upper() if balancer.kind != "alb" else "HTTP"
    listener = balancer.listener(protocol, packet.dport or 0)
    if listener is None or packet.dst != node.private_ip:
        return end(
            "not-modelled",
            f"{balancer.name} has no listener for {packet.proto} {packet.dst}:{packet.dport}",
        )
    if listener.target_group is not None:
        group = balancer.target_group(listener.target_group)
        steps.append(
            Step(
                "load-balancer",
                f"listener {listener.protocol}:{listener.port} → target group {group.id} "
                f"({group.target_type} targets)",
                decided_by=(
                    Decision("vpc", f"{balancer.name} {listener.protocol}:{listener.port}"),
                ),
            )
        )
    else:
        request = journey.request or load_balancing.HttpRequest(None)
        rule = load_balancing.rule_for(listener, request)
        label = f"priority {rule.priority}" if rule.priority is not None else "the default rule"
        steps.append(
            Step(
                "load-balancer",
                f"listener HTTP:{listener.port}, {request.text()}: {label} "
                f"({rule.conditions()}) → {rule.action()}",
                decided_by=tuple(
                    Decision(
                        "vpc",
                        f"rule {r.priority if r.priority is not None else 'default'}: "
                        f"{r.conditions()} → {r.action()}",
                    )
                    for r in listener.rules
                ),
            )
        )
        if rule.target_group is None:
            answer = packet.reply().but(ttl=DEFAULT_TTL)
            reason = (
                f"{balancer.name} answers the request itself: fixed-response "
                f"{rule.fixed_response} text/plain (no target sees it)"
            )
            steps.append(Step("deliver", reason, after=packet))
            journey.hops.append(Hop(where, eni.id, None, tuple(steps), packet, None))
            return _End(
                Disposition("delivered", where, reason),
                delivered_packet=packet,
                answer=_LoadBalancerSends(eni.id, answer, "the ALB's own connection to the client"),
            )
        group = balancer.target_group(rule.target_group)
    chosen = load_balancing.eligible(balancer, node, group, _probe_with(journey.state))
    health = "; ".join(
        f"{h.target.id}:{h.target.port} {'healthy' if h.healthy else 'unhealthy'} ({h.reason})"
        for h in chosen.health
    )
    steps.append(
        Step(
            "load-balancer",
            f"health check {group.health_check.text()}: {health}",
            decided_by=(Decision("vpc", f"{group.id}: {chosen.reason}"),),
        )
    )
    if not chosen.targets:
        return end("dropped", f"{balancer.name} ({node.az}): {chosen.reason}", "lb-no-target")
    labels = [f"{balancer.kind.upper()} → {t.id}:{t.port}" for t in chosen.targets]
    target = chosen.targets[journey.choices.pick(labels)]
    steps.append(
        Step(
            "load-balancer",
            f"target {target.id}:{target.port} ({target.az}) of {len(chosen.targets)} eligible, "
            "each equally likely (AWS's flow hash is not reproduced)",
        )
    )
    client, client_port = packet.src, packet.sport or 0
    if balancer.proxies:
        return _proxy(journey, balancer, node, eni, listener.port, packet, target, steps, where)
    if group.preserve_client_ip:
        after = packet.but(dst=target.address, dport=target.port, src_mac=None, dst_mac=None)
        steps.append(
            Step(
                "nat",
                f"destination {packet.dst}:{packet.dport} → {target.address}:{target.port}; the "
                f"client's address {client} is kept (client IP preservation)",
                before=packet,
                after=after,
            )
        )
        journey.lb_sessions[(packet.proto, target.address, target.port, client, client_port)] = (
            _LbSession(eni.id, client, client_port, node.private_ip, listener.port, proxy=False)
        )
        journey.lb_flows[key] = _LbFlow(
            target.id, target.address, target.port, client, client_port, proxy=False
        )
    else:
        used = [k[4] for k in journey.lb_sessions if k[3] == node.private_ip]
        port = load_balancing.lowest_free_port(used)
        after = packet.but(
            src=node.private_ip, sport=port, dst=target.address, dport=target.port,
            src_mac=None, dst_mac=None,
        )  # fmt: skip
        steps.append(
            Step(
                "nat",
                f"source {client}:{client_port} → {node.private_ip}:{port}, destination → "
                f"{target.address}:{target.port} (no client IP preservation: the target sees the "
                "NLB; the port is the NLB's choice)",
                before=packet,
                after=after,
                chosen=(port,),
            )
        )
        journey.lb_sessions[(packet.proto, target.address, target.port, node.private_ip, port)] = (
            _LbSession(eni.id, client, client_port, node.private_ip, listener.port, proxy=True)
        )
        journey.lb_flows[key] = _LbFlow(
            target.id, target.address, target.port, node.private_ip, port, proxy=False
        )
    frame = _lb_frame(vpc, eni, after)
    steps.append(Step("transmit", f"out of {eni.id}", after=frame))
    journey.hops.append(Hop(where, eni.id, eni.id, tuple(steps), packet, frame))
    return _Fabric(eni.id, frame)


def _proxy(
    journey: _Journey,
    balancer: LoadBalancer,
    node: LbNode,
    eni: Eni,
    listener_port: int,
    packet: Packet,
    target: LbTarget,
    steps: list[Step],
    where: Where,
) -> _Outcome:
    """A CLB or an ALB (aws-load-balancers.md §2.3, §2.4): the client's connection ends at the
    node, which accepts it itself; the node opens a connection of its own to the target, from
    its own address and a port it picks, walked after this one (`Walk.backend`)."""
    kind = balancer.kind.upper()
    client, client_port = packet.src, packet.sport or 0
    used = [k[4] for k in journey.lb_sessions if k[3] == node.private_ip]
    port = load_balancing.lowest_free_port(used)
    opened = Packet(
        src=node.private_ip, dst=target.address, proto="tcp", sport=port, dport=target.port,
        tcp_flags="S", ttl=DEFAULT_TTL,
    )  # fmt: skip
    if balancer.kind == "alb":
        carried: tuple[str, ...] = load_balancing.forwarding_headers(client, listener_port)
    elif balancer.proxy_protocol:
        carried = (
            f"PROXY TCP4 {client} {node.private_ip} {client_port} {listener_port} (proxy "
            "protocol v1, the first line the target reads)",
        )
    else:
        carried = (f"the target sees {node.private_ip}, not the client",)
    steps.append(
        Step(
            "load-balancer",
            f"a new connection from {node.private_ip}:{port} to {target.address}:{target.port} "
            f"(the port is the {kind}'s choice); {carried[0]}",
            details=carried,
        )
    )
    reason = (
        f"delivered to the {kind}'s listener {packet.dst}:{packet.dport}: a proxy, it ends the "
        "client's connection here"
    )
    steps.append(Step("deliver", reason, after=packet))
    journey.hops.append(Hop(where, eni.id, None, tuple(steps), packet, None))
    journey.lb_sessions[("tcp", target.address, target.port, node.private_ip, port)] = _LbSession(
        eni.id, client, client_port, node.private_ip, listener_port, proxy=True
    )
    journey.lb_flows[("tcp", client, client_port, packet.dst, packet.dport or 0)] = _LbFlow(
        target.id, target.address, target.port, node.private_ip, port, proxy=True
    )
    flow = Flow(
        Endpoint("lb", balancer.name, node.private_ip),
        Endpoint("ip", str(target.address), target.address),
        "tcp",
        port,
        target.port,
    )
    journey.backend = (
        _LoadBalancerSends(eni.id, opened, f"the {kind}'s own connection", chosen=(port,)),
        flow,
    )
    accepted = packet.reply().but(ttl=DEFAULT_TTL)
    return _End(
        Disposition("delivered", where, reason),
        delivered_packet=packet,
        answer=_LoadBalancerSends(eni.id, accepted, f"the {kind} accepts its client's connection"),
    )


def _lb_onwards(
    journey: _Journey,
    balancer: LoadBalancer,
    node: LbNode,
    eni: Eni,
    packet: Packet,
    held: _LbFlow,
) -> _Outcome:
    """A later packet of a connection the node holds: a proxy takes it on the connection it
    accepted (its own to the target is another connection); a passthrough NLB rewrites it as
    it rewrote the first and sends it to the same target."""
    where = _lb_where(balancer, node)
    kind = balancer.kind.upper()
    if held.proxy:
        reason = (
            f"delivered to the {kind}'s listener {packet.dst}:{packet.dport} on the connection "
            f"it accepted (its own to {held.address}:{held.port} goes on apart)"
        )
        steps_in = (Step("deliver", reason, after=packet),)
        journey.hops.append(Hop(where, eni.id, None, steps_in, packet, None))
        return _End(Disposition("delivered", where, reason), delivered_packet=packet)
    after = packet.but(
        src=held.src, sport=held.sport, dst=held.address, dport=held.port,
        src_mac=None, dst_mac=None,
    )  # fmt: skip
    frame = _lb_frame(journey.state.vpc, eni, after)
    steps = (
        Step(
            "load-balancer",
            f"the connection's target {held.target}:{held.port}, the one its first packet went "
            "to (the NLB keeps a flow on its target)",
        ),
        Step("nat", f"as the first packet: → {after.five_tuple()}", before=packet, after=after),
        Step("transmit", f"out of {eni.id}", after=frame),
    )
    journey.hops.append(Hop(where, eni.id, eni.id, steps, packet, frame))
    return _Fabric(eni.id, frame)


def _lb_back(
    journey: _Journey,
    balancer: LoadBalancer,
    node: LbNode,
    eni: Eni,
    packet: Packet,
    session: _LbSession,
) -> _Outcome:
    """The target's side of a connection coming back: to the client from the listener."""
    vpc = journey.state.vpc
    where = _lb_where(balancer, node)
    if session.proxy and balancer.proxies:
        socket = f"{packet.dst}:{packet.dport}"
        reason = f"delivered to the {balancer.kind.upper()}'s own socket {socket}"
        steps_in = (Step("deliver", reason, after=packet),)
        journey.hops.append(Hop(where, eni.id, None, steps_in, packet, None))
        return _End(Disposition("delivered", where, reason), delivered_packet=packet)
    else:
        after = packet.but(
            src=session.listener, sport=session.listener_port, dst=session.client,
            dport=session.client_port, src_mac=None, dst_mac=None,
        )  # fmt: skip
        what = f"source {packet.src}:{packet.sport} → {session.listener}:{session.listener_port}"
        if packet.dst != session.client:
            what += f", destination → {session.client}:{session.client_port}"
    frame = _lb_frame(vpc, eni, after)
    steps = (
        Step("nat", what, before=packet, after=after),
        Step("transmit", f"out of {eni.id}", after=frame),
    )
    journey.hops.append(Hop(where, eni.id, eni.id, steps, packet, frame))
    return _Fabric(eni.id, frame)


def _load_balancer_sends(journey: _Journey, position: _LoadBalancerSends) -> _Outcome:
    vpc = journey.state.vpc
    balancer, node, eni = _lb_node(vpc, position.eni_id)
    frame = _lb_frame(vpc, eni, position.packet)
    steps = (
        Step(
            "originate",
            f"{position.what}: {position.packet.five_tuple()}",
            after=position.packet,
            chosen=position.chosen,
        ),
        Step("transmit", f"out of {eni.id}", after=frame),
    )
    journey.hops.append(Hop(_lb_where(balancer, node), None, eni.id, steps, None, frame))
    return _Fabric(eni.id, frame)


def health_probe(state: DataplaneState) -> load_balancing.Probe:
    """The load balancers' health checks in this state (probes walked, cached)."""
    return _probe_with(state)


def target_health(
    state: DataplaneState, balancer: LoadBalancer, group: TargetGroup
) -> tuple[load_balancing.TargetHealth, ...]:
    """Each target's health as the load balancer's checks find it (probes walked through the
    state, `_probe`)."""
    probe = _probe_with(state)
    return tuple(probe(balancer, group, target) for target in group.targets)


PROBE_PORT = 40000
"""The source port of a health-check probe (any: it only has to be the load balancer's)."""
_HEALTH: dict[tuple[int, str, str, str], tuple[DataplaneState, load_balancing.TargetHealth]] = {}


def _probe_with(state: DataplaneState) -> load_balancing.Probe:
    def probe(
        balancer: LoadBalancer, group: TargetGroup, target: LbTarget
    ) -> load_balancing.TargetHealth:
        key = (id(state), balancer.name, group.id, target.id)
        known = _HEALTH.get(key)
        if known is not None and known[0] is state:
            return known[1]
        health = _probe(state, balancer, group, target)
        if len(_HEALTH) > 4096:
            _HEALTH.clear()
        _HEALTH[key] = (state, health)
        return health

    return probe


def _probe(
    state: DataplaneState, balancer: LoadBalancer, group: TargetGroup, target: LbTarget
) -> load_balancing.TargetHealth:
    """The target group's health check of one target, walked from the load balancer node of
    the target's AZ (or its first node): every way the probe can go must reach a socket; an
    HTTP check of kube-proxy's health server (a `healthCheckNodePort`) then answers 200 only
    where the node has a local ready endpoint (§3)."""
    node = balancer.node_in(target.az) or balancer.nodes[0]
    check = group.health_check
    port = check.port if check.port is not None else target.port
    packet = Packet(
        src=node.private_ip, dst=target.address, proto="tcp", sport=PROBE_PORT, dport=port,
        tcp_flags="S", ttl=DEFAULT_TTL,
    )  # fmt: skip
    eni = state.vpc.eni(node.eni)
    endings: list[Disposition] = []
    pending: list[tuple[int, ...]] = [()]
    while pending:
        choices = _Choices(pending.pop(0))
        journey = _Journey(state=state, labels={}, destination=None, choices=choices)
        try:
            endings.append(
                _run(journey, _Fabric(eni.id, _lb_frame(state.vpc, eni, packet))).disposition
            )
        except _Split as split:
            pending[0:0] = [(*choices.script, index) for index in range(split.count)]
    failed = [d for d in endings if d.kind != "delivered"]
    if failed:
        return load_balancing.TargetHealth(
            target, False, f"{check.protocol} probe: {failed[0].reason}"
        )
    if check.protocol == "HTTP" and group.local_only and check.port is not None:
        count = group.local_count(target.node)
        if count == 0:
            return load_balancing.TargetHealth(
                target,
                False,
                f"kube-proxy's health server on :{port} answers 503: no local endpoint",
            )
        return load_balancing.TargetHealth(
            target,
            True,
            f"kube-proxy's health server on :{port} answers 200: {count} local endpoint(s)",
        )
    return load_balancing.TargetHealth(target, True, f"{check.protocol} probe to :{port} delivered")


# --- endpoints --------------------------------------------------------------------------------


def _balanced_destination(
    state: DataplaneState,
    target: Target,
    *,
    az: str | None,
    host: str | None,
    path: str | None,
    outside: bool,
    proto: Protocol,
    dport: int | None,
) -> tuple[Endpoint, int | None, load_balancing.HttpRequest | None, str | None]:
    """A load balancer as a destination: the address the client sends to (its node in `az`,
    by default the first; public from the internet, private from inside the VPC), the
    listener's port, the HTTP request an ALB reads, and what a DNS lookup answered."""
    vpc = state.vpc
    resolved: str | None = None
    default_host: str | None = None
    if target.kind == "dns":
        record = next((r for r in state.dns if r.name == target.name), None)
        if record is None:
            names = ", ".join(r.name for r in state.dns) or "none"
            raise InputError(
                f"dns/{target.name}: the spec's dns has no such name", fix=f"one of: {names}"
            )
        alias = record.alias or ""
        kind, _, rest = alias.partition("/")
        owner = f"{kind}/{rest if '/' in rest else f'default/{rest}'}".replace("svc/", "service/")
        balancer = vpc.load_balancer(owner) if alias else None
        default_host = record.name
        answers = list(record.answers)
        if balancer is None:
            raise NotModelled(f"dns/{target.name}: a name that is no load balancer's alias")
        nodes = [n for n in balancer.nodes if (n.public_ip if outside else n.private_ip) in answers]
        # an NLB's AZ with no healthy target is removed from DNS (aws-load-balancers.md §2.2)
        empty = _zones_without_targets(state, balancer) if balancer.kind == "nlb" else set()
        left_out = [n for n in nodes if n.az in empty]
        if az is not None and any(n.az == az for n in left_out):
            raise InputError(
                f"dns/{target.name}: {az} has no healthy target of {balancer.name}, so DNS does "
                "not answer its address",
                fix="pick another --az",
            )
        nodes = [n for n in nodes if n.az not in empty]
        node = _node_in(balancer, nodes, az, f"dns/{target.name}")
        address = node.public_ip if outside else node.private_ip
        assert address is not None
        shown = ", ".join(str(n.public_ip if outside else n.private_ip) for n in nodes)
        resolved = (
            f"{record.name} A → {shown} (an alias to {balancer.name}); the client uses {address}"
        )
        if left_out:
            dropped = ", ".join(str(n.public_ip if outside else n.private_ip) for n in left_out)
            resolved += f"; {dropped} left out: no healthy target in its AZ"
    else:
        namespace, name = target.name.split("/")
        owner = f"{'service' if target.kind == 'lb' else 'ingress'}/{namespace}/{name}"
        balancer = vpc.load_balancer(owner)
        if balancer is None:
            raise _no_balancer(state, target, owner)
        node = _node_in(balancer, list(balancer.nodes), az, target.spec())
        if outside and node.public_ip is None:
            if balancer.scheme == "internal":
                raise InputError(
                    f"{target.spec()} is internal: it has no public address the internet can reach",
                    fix="walk from a pod or node, or make it internet-facing",
                )
            raise InputError(
                f"{target.spec()}: the spec pins no public address for its node in {node.az}",
                fix="pin it under loadBalancers (ips: {ZONE: [PRIVATE, PUBLIC]}), or walk from "
                "inside the VPC",
            )
        address = node.public_ip if outside and node.public_ip else node.private_ip
        if balancer.kind == "alb":
            first = next((r.host for r in balancer.listeners[0].rules if r.host), None)
            default_host = first
    ports = [item.port for item in balancer.listeners]
    if proto == "icmp" or (dport is not None and dport not in ports):
        raise InputError(
            f"{balancer.name} listens on {', '.join(map(str, ports))}, not "
            f"{proto}{'' if dport is None else f' {dport}'}",
            fix="pick one of its listeners with --port",
        )
    dport = dport if dport is not None else ports[0]
    request: load_balancing.HttpRequest | None = None
    if balancer.kind == "alb":
        request = load_balancing.HttpRequest(host or default_host, path or "/")
    elif host is not None or path is not None:
        raise InputError(
            f"--host and --path are an HTTP request's: {balancer.name} is a "
            f"{balancer.kind.upper()} (TCP)",
            fix="drop them, or walk to an Ingress's ALB",
        )
    return Endpoint(target.kind, target.name, address), dport, request, resolved


def _zones_without_targets(state: DataplaneState, balancer: LoadBalancer) -> set[str]:
    """The AZs whose node has no eligible target on the first listener (health as the probes
    find it; fail-open leaves every AZ in)."""
    listener = balancer.listeners[0]
    if listener.target_group is None:
        return set()
    group = balancer.target_group(listener.target_group)
    probe = _probe_with(state)
    return {
        node.az
        for node in balancer.nodes
        if not load_balancing.eligible(balancer, node, group, probe).targets
    }


def _node_in(balancer: LoadBalancer, nodes: list[LbNode], az: str | None, what: str) -> LbNode:
    if not nodes:
        raise NotModelled(f"{what}: none of its addresses is a node of {balancer.name}")
    if az is None:
        return nodes[0]
    for node in nodes:
        if node.az == az:
            return node
    raise InputError(
        f"{what} has no node in {az}", fix=f"--az one of: {', '.join(n.az for n in nodes)}"
    )


def _no_balancer(state: DataplaneState, target: Target, owner: str) -> Exception:
    if target.kind == "lb":
        service = resolve_service(state, Target("svc", target.name))
        if service.type != "LoadBalancer":
            return InputError(
                f"{target.spec()}: svc/{service.key} is of type {service.type}, not LoadBalancer",
                fix="walk to svc/NAMESPACE/NAME, or make it a LoadBalancer Service",
            )
    return no_load_balancer(state, owner)


def no_load_balancer(state: DataplaneState, owner: str) -> Exception:
    """The error for a load balancer nobody builds, saying why (the controllers' reason)."""
    why = dict(state.vpc.unbuilt_load_balancers).get(owner)
    if why is None:
        return NotModelled(f"the load balancer of {owner}: no controller builds one for it")
    return InputError(
        f"{owner} has no load balancer: {why}",
        fix="walk to a load balancer a controller builds (eksnet exec lb/NS/SVC -- describe "
        "shows one)",
    )


def _endpoint(state: DataplaneState, target: Target, *, role: str) -> Endpoint:
    if target.kind == "ip":
        return Endpoint("ip", target.name, IPv4Address(target.name))
    if target.kind == "svc":
        if role == "source":
            raise InputError(
                f"source {target.spec()}: a Service sends nothing, its pods do",
                fix="start the walk at one of its pods (pod/NAMESPACE/NAME)",
            )
        service = resolve_service(state, target)
        if service.cluster_ip is None:
            raise NotModelled(f"walks to a Service without a ClusterIP ({target.spec()})")
        return Endpoint("svc", target.name, service.cluster_ip)
    namespace = resolve_namespace(state, target)
    if namespace.kind == "pod":
        for address in namespace.addresses:
            if address.family == 4 and address.scope == "global":
                return Endpoint("pod", target.name, IPv4Address(str(address.interface.ip)))
        raise InputError(f"{role} {target.spec()} has no IPv4 address")
    eni = next(
        (e for e in state.vpc.enis if e.node == namespace.name and e.device_number == 0), None
    )
    if eni is None:
        raise InputError(f"{role} {target.spec()} has no ENI")
    return Endpoint("node", target.name, eni.primary_ip)


def _service_port(service: Service, proto: Protocol, dport: int | None) -> int | None:
    """The port a walk to `service` is sent to: `--port` when it is one of the Service's ports
    for the protocol, the only such port when `--port` is not given."""
    if proto == "icmp":
        return None
    ports = [port.port for port in service.ports if port.protocol == proto]
    offered = ", ".join(f"{p.port}/{p.protocol}" for p in service.ports) or "none"
    if dport is None and len(ports) == 1:
        return ports[0]
    if dport is None or dport not in ports:
        asked = f"port {dport}/{proto}" if dport is not None else f"a single {proto} port"
        raise InputError(
            f"svc/{service.key} has no {asked} (its ports: {offered})",
            fix="pick one with --port N (and --proto) of the Service's ports",
        )
    return dport


def _untranslated_service(state: DataplaneState, packet: Packet) -> Service | None:
    """The Service whose ClusterIP the packet still carries as it leaves a node: no rule on
    the node translated it (a ClusterIP exists only in kube-proxy's rules, never on the wire)."""
    for service in state.services:
        if service.cluster_ip == packet.dst:
            return service
    return None


def _namespace_of_endpoint(state: DataplaneState, endpoint: Endpoint) -> str | None:
    """The namespace that owns the endpoint's address: a pod's eth0 or a node's ENI."""
    if endpoint.kind in ("pod", "node"):
        return state.namespace_of_owner(endpoint.name).name
    return namespace_owning(state, endpoint.address)


def namespace_owning(state: DataplaneState, address: IPv4Address) -> str | None:
    """The namespace with `address` on one of its interfaces (not loopback), if any: where a
    socket bound to it lives."""
    for namespace in state.namespaces:
        for item in namespace.addresses:
            ip = item.interface.ip
            if item.family == 4 and ip == address and not ip.is_loopback:
                return namespace.name
    return None


# --- the internet gateway and the internet -----------------------------------------------------


def _at_gateway(journey: _Journey, position: _Gateway) -> _Outcome:
    """The internet gateway's 1:1 NAT (`vpc.igw`): outbound the source becomes public, inbound
    the destination private again. It keeps ports and TTL (see `vpc.igw` on why the TTL)."""
    vpc = journey.state.vpc
    packet = position.packet
    where = Where("vpc", position.gateway, "internet gateway")
    if position.outbound:
        translation = igw.outbound(vpc, position.gateway, packet.src)
        iif, oif = vpc.id, INTERNET
    else:
        translation = igw.inbound(vpc, position.gateway, packet.dst)
        iif, oif = INTERNET, vpc.id
    decided = (Decision("vpc", translation.decision()),)
    if translation.after is None:
        assert translation.code is not None
        journey.hops.append(
            Hop(where, iif, None, (Step("drop", translation.reason, decided),), packet, None)
        )
        return _End(
            Disposition("dropped", where, translation.reason, decided, code=translation.code)
        )
    if position.outbound:
        after = packet.but(src=translation.after)
        onward = f"out to the internet: {after.dst} is outside the VPC"
    else:
        after = packet.but(dst=translation.after)
        onward = f"into {vpc.id}: {after.dst} is a private address of the VPC"
    steps = (
        Step(
            "nat",
            translation.reason,
            decided_by=decided,
            before=packet,
            after=after,
            details=(
                f"TTL {after.ttl} unchanged: the internet gateway is no IP hop",
                "MTU 1500 beyond the gateway (9001 inside the VPC, vpc-fabric.md §1.8): the "
                "walk's first packet fits; larger ones would be fragmented or, with DF, "
                "answered by the subnet router with ICMP fragmentation needed",
            ),
        ),
        Step("vpc-deliver", onward, after=after),
    )
    journey.hops.append(Hop(where, iif, oif, steps, packet, after))
    if position.outbound:
        return _Internet(position.gateway, after)
    return _FromGateway(position.gateway, after)


def _host_where(host: ExternalHost) -> Where:
    return Where("external", host.name, f"{host.name} ({host.address})")


def _on_internet(journey: _Journey, position: _Internet) -> _Outcome:
    """The internet delivers to the external host at the destination, the only part of the
    internet a state holds: its routers are not modelled (no TTL is spent between the gateway
    and the host, as in the lab, whose internet is one namespace)."""
    packet = position.packet
    host = journey.state.external_host(packet.dst)
    if host is None:
        where = Where("external", str(packet.dst), f"{packet.dst} (on the internet)")
        mapping = journey.state.vpc.private_ip_of(packet.dst)
        if mapping is not None:
            reason = (
                f"{packet.dst} is the public IPv4 address of {mapping.eni} ({mapping.private_ip}): "
                "traffic between the VPC's own public addresses (out through the internet "
                "gateway and back in) is not modelled yet"
            )
        else:
            reason = f"no external host {packet.dst}; declare it under externalHosts"
        journey.hops.append(
            Hop(where, INTERNET, None, (Step("not-modelled", reason),), packet, None)
        )
        return _End(Disposition("not-modelled", where, reason))
    where = _host_where(host)
    socket = f"{packet.dst}" + (f":{packet.dport}" if packet.dport is not None else "")
    steps = (
        Step(
            "receive",
            f"the internet carries it from {position.gateway} to {host.name} ({host.address})",
            after=packet,
        ),
        Step("deliver", f"delivered to {host.name}'s socket {socket}", after=packet),
    )
    journey.hops.append(Hop(where, INTERNET, None, steps, packet, None))
    return _End(
        Disposition("delivered", where, f"delivered to {host.name} ({socket})"),
        delivered_packet=packet,
    )


def _sent_from(
    state: DataplaneState,
    start: str | None,
    client: ExternalHost | None,
    flow: Flow,
    resolved: str | None,
    *,
    later: bool = False,
) -> _Position:
    """Where the flow's first packet (or, `later`, its later packet) starts: the namespace
    `start` of a pod or node, else the external host `client`."""
    packet = flow.later_packet() if later else flow.first_packet()
    if start is not None:
        return _Origin(start, packet)
    assert client is not None, "walk() refuses a source that is neither"
    return _from_the_internet(state, client, packet, resolved)


def _from_the_internet(
    state: DataplaneState, host: ExternalHost, packet: Packet, resolved: str | None = None
) -> _Host:
    """A client on the internet sends the flow's packet: it can only address the
    destination's public IPv4 (the internet gateway translates it to the private one), so a
    destination with a public address is sent to that; any other address is sent as asked (and
    the internet gateway will have nothing to say about it)."""
    public = state.vpc.public_ip_of(packet.dst)
    if public is not None:
        packet = packet.but(dst=public.public_ip)
    return _Host(host, packet, resolved)


def _from_host(journey: _Journey, position: _Host) -> _Outcome:
    """An external host answers: the internet carries the packet to the internet gateway that
    has its destination (a public IPv4 of the VPC; the gateway decides what becomes of it)."""
    host, packet = position.host, position.packet
    where = _host_where(host)
    gateway = journey.state.vpc.internet_gateway
    steps = [Step("dns", position.resolved)] if position.resolved else []
    steps.append(Step("originate", f"{host.name} sends {packet.five_tuple()}", after=packet))
    if gateway is None:
        reason = f"{journey.state.vpc.id} has no internet gateway: the internet cannot reach it"
        steps.append(Step("not-modelled", reason))
        journey.hops.append(Hop(where, None, None, tuple(steps), None, None))
        return _End(Disposition("not-modelled", where, reason))
    steps.append(
        Step("transmit", f"the internet carries it to {gateway}, the VPC's gateway", after=packet)
    )
    journey.hops.append(Hop(where, None, INTERNET, tuple(steps), None, packet))
    return _Gateway(gateway, packet, outbound=False)


def _into_vpc(journey: _Journey, position: _FromGateway) -> _Outcome:
    """The VPC delivers what the internet gateway let in to the ENI owning the (private)
    destination, as its router delivers any routed packet (the receiver sees the router MAC of
    its own subnet as the source, vpc-fabric.md §1.7), through the entering stages of the
    pipeline: the owner subnet's NACL inbound, its security groups, its flow log."""
    vpc = journey.state.vpc
    packet = position.packet
    carry = _Carry(journey, packet, None, position.gateway)
    delivery = fabric.deliver_from_gateway(vpc, position.gateway, packet.dst)
    carry.delivery = delivery
    if delivery.kind == "dropped":
        assert delivery.code is not None
        return carry.end(delivery.reason, delivery.code, (Decision("vpc", delivery.decision),))
    owner = delivery.to
    assert owner is not None
    carry.steps.append(
        Step(
            "vpc-owner",
            f"{packet.dst} is owned by {owner.id}"
            + (f" ({owner.device} of {owner.node})" if owner.node else ""),
            decided_by=(
                Decision("vpc", f"{owner.id} owns {', '.join(map(str, owner.addresses()))}"),
            ),
        )
    )
    carry.steps.append(
        Step(
            "vpc-deliver",
            f"the subnet router: {delivery.reason}",
            decided_by=(Decision("vpc", delivery.decision),),
        )
    )
    return _run_stages(carry, pipeline.ENTERING)
