"""`lab verify`: send a walk's packets for real and hold the kernel to every claim of the walk.

A walk says, for one packet each way: which frames cross which interfaces with which headers,
what each routing decision answers, which iptables rules match in every namespace, which
conntrack entries exist after the request and after the reply, where the packet is delivered or
why and where it is dropped. The lab builds the same state in namespaces, sends exactly that
exchange, observes the kernel with its own tools and compares, data against data, both ways
(everything predicted must be observed, everything observed must be predicted):

* **frames** — tcpdump on every interface of every namespace any way of the walk touches and on
  every node's ENIs (a packet straying from the path leaves a touched namespace by one of those):
  the predicted frames, in order, with the same MACs, addresses, ports, ICMP identifier, TTL and
  TCP flags, and no other IPv4 frame (an ICMP error, a RST, a packet on another path);
* **routing** — `ip route get` for every routing decision, asked with the packet as that decision
  saw it (after PREROUTING's DNAT, with its mark and ingress device): same device, gateway and
  table, or the same error;
* **netfilter** — in every namespace with iptables rules, the rules whose packet counters moved
  are exactly the rules the walk says matched (none, where the walk claims no netfilter step);
* **conntrack** — `conntrack -E` in those namespaces: each entry's `[NEW]` event (the state after
  the request) against the forward walk's record, and `conntrack -L` after the reply against the
  last record; both tuples, the TCP state, `[UNREPLIED]`/`[ASSURED]` and the mark; no entry the
  walk does not predict;
* **the ending** — a delivery is the listener (or, for ICMP, the kernel's echo counter) in the
  namespace the walk names; a drop is the kernel's own evidence for the walk's drop code at that
  hop (the rp_filter counter, the DROP rule's counter, the fabric's counter for a VPC check, an
  unresolved neighbour, the route error) and nothing leaving after it.

Values the kernel picks at random (a `--random-fully` port, a NAT'd ICMP identifier) are
variables: the first observation binds the walk's stand-in to the kernel's value and every other
appearance must agree. A walk that load balancing splits is verified by sending connections until
every branch has been seen (at most `connections_needed` of them), each checked in full against
the branch it took.

The exchange is kept to the walk's two packets: the sender's namespace drops its own TCP packets
after the SYN (an nft table at output priority −400, before every hook a walk models), so the
handshake's ACK and the closing RST never reach a rule counter.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Literal

from eksnet.dataplane.state import DataplaneState, Namespace
from eksnet.lab import system
from eksnet.lab.attachments import DEVICE, NAT_DROPS, NAT_TABLE, NLB_TABLE, attachments
from eksnet.lab.capture import (
    Capture,
    CaptureTarget,
    ConntrackEntry,
    ConntrackEvent,
    ConntrackWatch,
    RouteGet,
    Seen,
    parse_conntrack,
    parse_conntrack_line,
    parse_netstat,
    parse_nft_counters,
    parse_route_get,
)
from eksnet.lab.fabric import (
    DROP_COMMENTS,
    NFT_TABLE,
    attached_ports,
    dynamic_sets,
    nlb_place,
)
from eksnet.lab.names import LabNames
from eksnet.lab.system import LabError
from eksnet.vpc.fabric import IMDS
from eksnet.walk.model import (
    ERROR_ERRNO,
    Branch,
    Direction,
    Hop,
    Packet,
    RouteAnswer,
    Step,
    Walk,
    WireObservation,
)

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent.py")
HTTP_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_agent.py")
PROBE_TABLE = "eksnet_lab_probe"
ANSWER_WAIT = 0.6
"""Seconds the sender waits for the answer: far beyond a lab round trip, and short of the
kernel's first SYN retransmission (1 s), so a lost SYN is never sent twice."""
LISTEN_LIMIT = 30.0
"""Seconds a listener waits at most for the verifier to ask for its report (it asks as soon as
the sender has its answer)."""
LATER_MARK = 0x2000000
"""The mark the agent's later ACK carries so the probe lets it through (and clears it): bit 25,
which no rule of the VPC CNI (0x80), kube-proxy (0x4000, 0x8000) or the lab touches, so the
route the kernel looks up for it before the probe is the unmarked packet's."""
LATER_WAIT = 0.3
"""Seconds the later ACK is given to cross the lab before its capture stops (a lab crossing
takes well under a millisecond)."""
MISS_PROBABILITY = 1e-6
"""How unlikely it may be that a correct walk's branch is never seen (`connections_needed`)."""

RuleKey = tuple[str, str, int]
"""(table, chain, position) of one iptables rule."""

_IPTABLES = {"legacy": "iptables-legacy", "nft": "iptables-nft"}

Status = Literal["agree", "differs", "not verified"]


@dataclass(frozen=True, slots=True)
class Difference:
    """One claim of the walk the kernel did not bear out (or something it did that the walk did
    not claim). `kind` names the field: `wire-missing`, `wire-unexpected`, `wire-order`,
    `wire-repeated`, `field:<name>`, `route`, `conntrack`, `conntrack:<field>`, `netfilter`,
    `drop:<code>`, `delivery`, `branch`, `health` (a load balancer's target: `expected` the
    simulator's health, `observed` what the lab's real checks found)."""

    direction: Direction
    kind: str
    where: str
    expected: str
    observed: str


@dataclass(frozen=True, slots=True)
class BranchSeen:
    label: str
    probability: float
    connections: int


@dataclass(frozen=True, slots=True)
class Verdict:
    label: str
    flow: str
    status: Status
    differences: tuple[Difference, ...] = ()
    why: str = ""
    """For `not verified`: what stops the lab from sending this walk."""
    connections: int = 0
    branches: tuple[BranchSeen, ...] = ()
    checked: str = ""
    """What was held against the kernel, in numbers (frames, routing decisions, …)."""

    @property
    def agree(self) -> bool:
        return self.status == "agree"


# --- values the kernel chooses -------------------------------------------------------------------


@dataclass(slots=True)
class Bindings:
    """The walk's stand-ins for values the kernel picks at random, bound to the kernel's picks.

    `same(expected, observed)` holds for a fixed value when the two are equal; for a variable
    when it is unbound (it binds it) or bound to `observed`. Two variables never bind to one
    value, so a kernel that reused one port for two choices is caught too."""

    variables: frozenset[int]
    bound: dict[int, int] = field(default_factory=dict)

    def same(self, expected: int | None, observed: int | None) -> bool:
        if expected is None or observed is None or expected not in self.variables:
            return expected == observed
        if expected in self.bound:
            return self.bound[expected] == observed
        if observed in self.bound.values():
            return False
        self.bound[expected] = observed
        return True

    def show(self, value: int | None) -> str:
        if value is not None and value in self.variables:
            return f"<chosen {value}>"
        return str(value)


# --- what the walk predicts ----------------------------------------------------------------------


def directions(walk: Walk) -> list[tuple[Direction, Walk]]:
    result: list[tuple[Direction, Walk]] = [("forward", walk)]
    if walk.reply is not None:
        result.append(("return", walk.reply))
    return result


INTERNET = "internet"
"""What the lab calls the namespace that stands for the internet (`lab/attachments.py`)."""
IMDS_PLACE = "imds"
"""What the lab calls the namespace that answers for the IMDS (`lab/attachments.py`)."""


def delivered_at(walk: Walk) -> Hop | None:
    """The hop that delivered the walk's packet to a socket (a pod, a node, an external host on
    the internet, the IMDS), if any."""
    if walk.disposition is None or walk.disposition.kind != "delivered":
        return None
    last = walk.hops[-1]
    return last if lab_place(last) is not None and not _is_nat_gateway(last) else None


def lab_netns(names: LabNames, place: str) -> str:
    """The lab namespace of a place of the walk: a state namespace's, or an attachment's."""
    if place in (INTERNET, IMDS_PLACE) or place.startswith(("nat-", "elb-")):
        return names.attachment(place)
    return names.netns(place)


def _is_imds(hop: Hop) -> bool:
    """A hop of the instance's host answering for the IMDS (the engine's `host:` hops)."""
    if hop.where.kind != "vpc" or not hop.where.name.startswith("host:"):
        return False
    packet = hop.packet_in or hop.packet_out
    return packet is not None and IMDS in (packet.src, packet.dst)


def _is_nat_gateway(hop: Hop) -> bool:
    return hop.where.kind == "vpc" and hop.where.name.startswith("nat-")


def _lb_place(hop: Hop) -> str | None:
    """A load balancer node's hop (`lb:<name>:<az>`) as the lab's namespace for it."""
    if hop.where.kind != "vpc" or not hop.where.name.startswith("lb:"):
        return None
    _, name, az = hop.where.name.split(":", 2)
    return nlb_place(name, az)


def lab_place(hop: Hop) -> str | None:
    """The lab namespace a hop happens in: its own (a pod, a node), the internet's for an
    external host, the IMDS's, a NAT gateway's; None where the lab has no namespace (the
    fabric's bridge, the internet gateway, other host-served addresses)."""
    if hop.where.kind in ("pod", "node"):
        return hop.where.name
    if hop.where.kind == "external":
        return INTERNET
    if _is_imds(hop):
        return IMDS_PLACE
    if _is_nat_gateway(hop):
        return hop.where.name
    return _lb_place(hop)


def expected_wire(walk: Walk) -> list[WireObservation]:
    """`Walk.wire()`, and the frames the lab's attachments see: on the internet's `eth0` where
    the walk reaches or leaves an external host, on the IMDS's where it asks or answers (the
    MACs there are the lab's own, so those are not predicted), on a NAT gateway's `eth0` with
    the gateway's ENI's MACs as the walk has them."""
    frames: list[WireObservation] = []
    for hop in walk.hops:
        place = lab_place(hop)
        if place is None:
            continue
        iif, oif = hop.iif, hop.oif
        if hop.where.kind not in ("pod", "node"):
            iif = DEVICE if iif is not None else None
            oif = DEVICE if oif is not None else None
        lab_macs = hop.where.kind == "external" or place == IMDS_PLACE
        if iif is not None and hop.packet_in is not None:
            packet = hop.packet_in.but(src_mac=None, dst_mac=None) if lab_macs else hop.packet_in
            frames.append(WireObservation(place, iif, "in", packet))
        if oif is not None and hop.packet_out is not None:
            packet = hop.packet_out.but(src_mac=None, dst_mac=None) if lab_macs else hop.packet_out
            frames.append(WireObservation(place, oif, "out", packet))
    return frames


def expected_rule_hits(walk: Walk) -> dict[str, frozenset[RuleKey]]:
    """The rules the walk (forward and return) says matched, per namespace."""
    hits: dict[str, set[RuleKey]] = {}
    for _, one in directions(walk):
        for hop in one.hops:
            found = hits.setdefault(hop.where.name, set())
            for step in hop.steps:
                for decision in step.decided_by:
                    if (
                        decision.kind == "iptables"
                        and decision.table is not None
                        and decision.chain is not None
                        and decision.position is not None
                    ):
                        found.add((decision.table, decision.chain, decision.position))
    return {name: frozenset(keys) for name, keys in hits.items()}


def touched(walk: Walk) -> set[str]:
    """The lab namespaces any way of the walk (every branch, forward and return) is in."""
    names: set[str] = set()
    for _, _, leaf in [*walk.leaves(), *_next_connections(walk)]:
        for _, one in directions(leaf):
            names |= {place for hop in one.hops if (place := lab_place(hop)) is not None}
    return names


def connections_needed(probabilities: Sequence[float], miss: float = MISS_PROBABILITY) -> int:
    """How many connections make it unlikely (below `miss`, over all branches) that a branch the
    walk gives probability p is never taken: (1 − p)^n ≤ miss / k for the least likely of k
    branches. Three equal branches need 37; a walk that does not split needs 1."""
    if len(probabilities) <= 1:
        return 1
    least = min(probabilities)
    if least >= 1:
        return 1
    return math.ceil(math.log(miss / len(probabilities)) / math.log(1 - least))


# --- what the kernel did in one exchange ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listened:
    """What a listener (one per place the walk may deliver to) saw."""

    namespace: str
    address: IPv4Address
    port: int
    received: bool
    peer: str | None = None
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the kernel showed for one exchange, parsed into walk vocabulary."""

    frames: tuple[Seen, ...]
    conntrack_events: Mapping[str, tuple[ConntrackEvent, ...]]
    conntrack_final: Mapping[str, tuple[ConntrackEntry, ...]]
    rule_hits: Mapping[str, frozenset[RuleKey]]
    counters: Mapping[str, Mapping[str, int]]
    """Per namespace, the `/proc/net/{netstat,snmp}` counters that moved (deltas)."""
    fabric: Mapping[str, int]
    """The fabric's commented nft rules that counted packets (deltas)."""
    neighbours: Mapping[tuple[str, str, str], str]
    """(namespace, device, address) → the neighbour entry's state after the exchange."""
    listened: tuple[Listened, ...]
    replied: bool
    """The sender got the answer (SYN-ACK, datagram, echo reply)."""
    sender_error: str | None
    sender_errno: str | None
    routes: Mapping[tuple[Direction, int, int], RouteGet]
    """`ip route get` per (direction, hop index, step index) of the walk's routing decisions."""
    excused: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    """Chains whose counts belong to an ICMP error the kernel sent as a drop's evidence
    (`error_paths`)."""
    later: Observation | None = None
    """What the connection's later packet (the client's ACK, `Walk.later`) did, sent apart
    once the exchange was recorded: its frames, counters and the fabric's drops."""


# --- judging (pure) ------------------------------------------------------------------------------


def judge(walk: Walk, seen: Observation) -> list[Difference]:
    """Every difference between one complete walk (no branches) and one exchange."""
    bindings = Bindings(walk.chosen_values())
    differences = compare_frames(walk, seen.frames, seen.listened, bindings)
    differences += compare_routes(walk, seen.routes)
    differences += compare_conntrack(walk, seen.conntrack_events, seen.conntrack_final, bindings)
    differences += compare_rule_hits(walk, seen.rule_hits, seen.excused)
    differences += compare_ending(walk, seen)
    if walk.later is not None:
        differences += judge_later(walk.later, seen.later, bindings)
    return differences


def judge_later(later: Walk, seen: Observation | None, bindings: Bindings) -> list[Difference]:
    """The later packet against what the kernel did with the ACK: its frames (only `[.]` ones:
    a SYN-ACK the server sends again is the handshake's), the drop's evidence, and no drop the
    walk does not make. Bindings are the exchange's: conntrack keeps the first packet's ports."""
    where = "the later packet"
    if seen is None:
        return [Difference("forward", "later", where, "sent", "not sent (no ACK numbers)")]
    acks = [
        item
        for item in seen.frames
        if item.frame.packet is not None
        and item.frame.packet.proto == "tcp"
        and item.frame.packet.tcp_flags == "."
    ]
    found = compare_wire("forward", expected_wire(later), acks, bindings)
    end = later.disposition
    assert end is not None
    if end.kind == "dropped" and end.code is not None:
        found += _drop_evidence("forward", later, seen)
    predicted = FABRIC_DROPS.get(end.code or "") if end.kind == "dropped" else None
    for comment, packets in sorted(seen.fabric.items()):
        if comment in FABRIC_DROPS.values() and packets and comment != predicted:
            found.append(Difference("forward", "drop:unexpected", "VPC fabric", "no drop", comment))
    return [replace(d, where=f"{d.where} ({where})") for d in found]


WIRE_FIELDS = (
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "icmp_type",
    "icmp_code",
    "icmp_id",
    "src_mac",
    "dst_mac",
    "ttl",
    "tcp_flags",
)
_CHOSEN_FIELDS = frozenset({"sport", "dport", "icmp_id"})
_LAB_FIELDS = frozenset({"src_mac", "dst_mac"})
"""Fields a walk leaves unset where only the lab decides them (the MACs of the internet)."""


def split_frames(
    walk: Walk, frames: Iterable[Seen], listened: Iterable[Listened]
) -> tuple[dict[Direction, list[Seen]], list[Seen]]:
    """The exchange's frames by direction, and every other IPv4 frame the kernel sent.

    TCP frames are told apart by their flags (SYN; SYN-ACK or RST), ICMP by type (an echo
    request; an echo reply or an error answering the flow's packet), UDP by time: the request's
    frames all precede the moment the server had it (`Listened.at`), the answer's all follow
    it."""
    received = [item.at for item in listened if item.received and item.at is not None]
    until = min(received) if received else None
    split: dict[Direction, list[Seen]] = {"forward": [], "return": []}
    others: list[Seen] = []
    for item in frames:
        packet = item.frame.packet
        direction: Direction | None = None
        answers = packet is not None and packet.is_icmp_error and packet.quoted is not None
        if answers and packet is not None and packet.quoted is not None:
            if packet.quoted.proto == walk.flow.proto:
                direction = "return"
        elif packet is not None and packet.proto == walk.flow.proto:
            if packet.proto == "tcp":
                direction = {"S": "forward", "S.": "return", "R.": "return"}.get(  # type: ignore[assignment]
                    packet.tcp_flags or ""
                )
            elif packet.proto == "icmp":
                direction = "forward" if packet.icmp_type == 8 else "return"
            else:
                direction = "forward" if until is None or item.timestamp <= until else "return"
        if direction is None:
            others.append(item)
        else:
            split[direction].append(item)
    return split, others


TIME_EXCEEDED = 11


def ttl_drops(walk: Walk) -> list[tuple[Direction, Hop]]:
    """The hops where a way of the walk runs out of TTL while forwarding."""
    found: list[tuple[Direction, Hop]] = []
    for direction, one in directions(walk):
        end = one.disposition
        if end is not None and end.code == "ttl" and one.hops:
            found.append((direction, one.hops[-1]))
    return found


def _answers_drop(item: Seen, hop: Hop) -> bool:
    """Whether a frame is the ICMP time exceeded the kernel sends for the packet `hop` drops
    (quoting it as it arrived, or as conntrack translates it back on the way out)."""
    packet = item.frame.packet
    arrived = hop.packet_in
    if packet is None or packet.icmp_type != TIME_EXCEEDED or packet.quoted is None:
        return False
    return arrived is not None and packet.quoted.src == arrived.src


def time_exceeded_evidence(
    walk: Walk, frames: Sequence[Seen]
) -> tuple[list[Seen], list[Difference]]:
    """A forward that runs out of TTL answers the source with ICMP time exceeded (RFC 1812;
    `ip_forward`): those frames are the drop's evidence, not frames of the walk. The frames
    left, and a difference where the dropping namespace sent none."""
    drops = ttl_drops(walk)
    if not drops:
        return list(frames), []
    kept: list[Seen] = []
    sent: set[str] = set()
    for item in frames:
        hop = next((hop for _, hop in drops if _answers_drop(item, hop)), None)
        if hop is None:
            kept.append(item)
        elif item.where.endswith(" out"):
            sent.add(item.where.split(" ", 1)[0])
    differences = [
        Difference(
            direction,
            "drop:ttl",
            hop.where.name,
            "an ICMP time exceeded sent back",
            "none",
        )
        for direction, hop in drops
        if hop.where.name not in sent
    ]
    return kept, differences


def compare_frames(
    walk: Walk, frames: Sequence[Seen], listened: Sequence[Listened], bindings: Bindings
) -> list[Difference]:
    frames, evidence = time_exceeded_evidence(walk, frames)
    split, others = split_frames(walk, frames, listened)
    differences = compare_wire("forward", expected_wire(walk), split["forward"], bindings)
    reply = expected_wire(walk.reply) if walk.reply is not None else []
    differences += compare_wire("return", reply, split["return"], bindings)
    differences += evidence
    for item in others:
        differences.append(
            Difference("forward", "wire-unexpected", item.where, "no such frame", item.frame.text)
        )
    return differences


def compare_wire(
    direction: Direction,
    expected: Sequence[WireObservation],
    observed: Sequence[Seen],
    bindings: Bindings,
) -> list[Difference]:
    """Same interfaces, same order, same headers; nothing more, nothing repeated."""

    def key(item: WireObservation) -> str:
        return f"{item.namespace} {item.interface} {item.direction}"

    wanted = {key(item): item for item in expected}
    rank = {where: index for index, where in enumerate(wanted)}
    # Frames on both ends of a veth can carry one timestamp (tcpdump's microseconds): a tie says
    # nothing about the order, so it is read in the walk's.
    ordered = sorted(observed, key=lambda item: (item.timestamp, rank.get(item.where, len(rank))))
    first: dict[str, Seen] = {}
    differences: list[Difference] = []
    for item in ordered:
        if item.where in first:
            differences.append(
                Difference(direction, "wire-repeated", item.where, "one frame", item.frame.text)
            )
        else:
            first[item.where] = item
    for where, want in wanted.items():
        if where not in first:
            differences.append(
                Difference(direction, "wire-missing", where, packet_text(want.packet), "none")
            )
    for where, item in first.items():
        if where not in wanted:
            differences.append(
                Difference(direction, "wire-unexpected", where, "no frame here", item.frame.text)
            )
    common_expected = [where for where in wanted if where in first]
    common_observed = [where for where in first if where in wanted]
    if common_expected != common_observed:
        differences.append(
            Difference(
                direction,
                "wire-order",
                "interfaces",
                " → ".join(common_expected),
                " → ".join(common_observed),
            )
        )
    for where in common_expected:
        got = first[where].frame.packet
        if got is None:
            continue
        differences += compare_packet(direction, where, wanted[where].packet, got, bindings)
    return differences


QUOTED_FIELDS = ("src", "dst", "proto", "sport", "dport", "ttl", "tcp_flags")
"""What an ICMP error's quoted header is compared by (it has no MACs)."""


def compare_packet(
    direction: Direction, where: str, expected: Packet, observed: Packet, bindings: Bindings
) -> list[Difference]:
    differences = []
    if expected.quoted is not None and observed.quoted is not None:
        for name in QUOTED_FIELDS:
            want, got = getattr(expected.quoted, name), getattr(observed.quoted, name)
            same = bindings.same(want, got) if name in _CHOSEN_FIELDS else want == got
            if not same:
                kind = f"field:quoted.{name}"
                differences.append(Difference(direction, kind, where, str(want), str(got)))
    for name in WIRE_FIELDS:
        want, got = getattr(expected, name), getattr(observed, name)
        if name in _CHOSEN_FIELDS:
            if bindings.same(want, got):
                continue
            shown = bindings.show(want)
        elif want == got or (want is None and name in _LAB_FIELDS):
            continue
        else:
            shown = str(want)
        differences.append(Difference(direction, f"field:{name}", where, shown, str(got)))
    return differences


def packet_text(packet: Packet) -> str:
    macs = f"{packet.src_mac} > {packet.dst_mac} " if packet.src_mac else ""
    flags = f" [{packet.tcp_flags}]" if packet.tcp_flags else ""
    return f"{macs}{packet.five_tuple()}{flags} ttl {packet.ttl}"


# routing


def route_questions(walk: Walk) -> Iterator[tuple[tuple[Direction, int, int], Hop, Step]]:
    """Every routing decision of the walk in a pod or node: (direction, hop, step) index."""
    for direction, one in directions(walk):
        for hop_index, hop in enumerate(one.hops):
            if hop.where.kind not in ("pod", "node"):
                continue
            for step_index, step in enumerate(hop.steps):
                if step.route is not None and step.before is not None:
                    yield (direction, hop_index, step_index), hop, step


def route_get_argv(netns: str, step: Step) -> list[str]:
    """`ip route get` for the packet as the decision saw it (its ingress device and mark)."""
    assert step.route is not None and step.before is not None
    packet = step.before
    argv = ["ip", "-n", netns, "route", "get", str(packet.dst), "from", str(packet.src)]
    if step.route.iif is not None:
        argv += ["iif", step.route.iif]
    if packet.mark:
        argv += ["mark", f"{packet.mark:#x}"]
    return argv


def compare_route(
    direction: Direction, where: str, want: RouteAnswer, got: RouteGet
) -> list[Difference]:
    if want.type == "error":
        if got.error is not None and want.error is not None and want.error in got.error:
            return []
        return [Difference(direction, "route", where, f"error {want.error}", _route_text(got))]
    if got.error is not None:
        return [Difference(direction, "route", where, _answer_text(want), got.error)]
    same = (
        got.type == want.type
        and got.dev == want.dev
        and got.via == (str(want.gateway) if want.gateway is not None else None)
        and got.table == want.table
    )
    if same:
        return []
    return [Difference(direction, "route", where, _answer_text(want), _route_text(got))]


def _answer_text(answer: RouteAnswer) -> str:
    via = f" via {answer.gateway}" if answer.gateway is not None else ""
    return f"{answer.type} dev {answer.dev}{via} table {answer.table}"


def _route_text(got: RouteGet) -> str:
    if got.error is not None:
        return got.error
    via = f" via {got.via}" if got.via is not None else ""
    return f"{got.type} dev {got.dev}{via} table {got.table}"


def compare_routes(
    walk: Walk, routes: Mapping[tuple[Direction, int, int], RouteGet]
) -> list[Difference]:
    differences: list[Difference] = []
    for key, hop, step in route_questions(walk):
        got = routes.get(key)
        assert step.route is not None
        if got is None:
            continue
        where = f"{hop.where.name} route for {step.before.dst if step.before else '?'}"
        differences += compare_route(key[0], where, step.route, got)
    return differences


# conntrack


def _same_tuple(
    want: Sequence[tuple[str, str]], got: Sequence[tuple[str, str]], bindings: Bindings
) -> bool:
    if [k for k, _ in want] != [k for k, _ in got]:
        return False
    for (name, expected), (_, observed) in zip(want, got, strict=True):
        if name in ("sport", "dport", "id"):
            if not bindings.same(int(expected), int(observed)):
                return False
        elif expected != observed:
            return False
    return True


def _find(
    want: ConntrackEntry, entries: Iterable[ConntrackEntry], bindings: Bindings
) -> ConntrackEntry | None:
    for entry in entries:
        trial = Bindings(bindings.variables, dict(bindings.bound))
        if entry.proto == want.proto and _same_tuple(want.original, entry.original, trial):
            bindings.bound.update(trial.bound)
            return entry
    return None


def compare_entry(
    direction: Direction,
    where: str,
    want: ConntrackEntry,
    got: ConntrackEntry,
    bindings: Bindings,
) -> list[Difference]:
    differences = []
    if not _same_tuple(want.reply, got.reply, bindings):
        differences.append(Difference(direction, "conntrack:reply", where, want.text, got.text))
    for name in ("state", "flags", "mark"):
        expected, observed = getattr(want, name), getattr(got, name)
        if expected != observed:
            shown = ", ".join(sorted(expected)) if name == "flags" else str(expected)
            seen = ", ".join(sorted(observed)) if name == "flags" else str(observed)
            differences.append(
                Difference(direction, f"conntrack:{name}", where, shown or "none", seen or "none")
            )
    return differences


def predicted_entries(walk: Walk) -> dict[str, list[tuple[ConntrackEntry, ConntrackEntry]]]:
    """Per namespace: each entry the walk makes, as (after the request, after the reply)."""
    result: dict[str, list[tuple[ConntrackEntry, ConntrackEntry]]] = {}
    for _, one in directions(walk):
        for record in one.conntrack:
            entry = parse_conntrack_line(record.text)
            if entry is None:
                continue
            entries = result.setdefault(record.namespace, [])
            for index, (first, _) in enumerate(entries):
                if first.original == entry.original:
                    entries[index] = (first, entry)
                    break
            else:
                entries.append((entry, entry))
    return result


def compare_conntrack(
    walk: Walk,
    events: Mapping[str, tuple[ConntrackEvent, ...]],
    final: Mapping[str, tuple[ConntrackEntry, ...]],
    bindings: Bindings,
) -> list[Difference]:
    """The `[NEW]` event against the state after the request, `conntrack -L` against the state
    after the reply, and no entry the walk did not predict."""
    differences: list[Difference] = []
    predicted = predicted_entries(walk)
    for namespace in sorted(set(events) | set(final) | set(predicted)):
        where = f"{namespace} conntrack"
        news = [event.entry for event in events.get(namespace, ()) if event.kind == "NEW"]
        now = list(final.get(namespace, ()))
        for after_request, after_reply in predicted.get(namespace, []):
            new = _find(after_request, news, bindings)
            if new is None:
                differences.append(
                    Difference("forward", "conntrack", where, after_request.text, "no such entry")
                )
            else:
                news.remove(new)
                differences += compare_entry("forward", where, after_request, new, bindings)
            last = _find(after_reply, now, bindings)
            if last is None:
                differences.append(
                    Difference("return", "conntrack", where, after_reply.text, "no such entry")
                )
            else:
                now.remove(last)
                differences += compare_entry("return", where, after_reply, last, bindings)
        for stray in [*news, *now]:
            differences.append(Difference("forward", "conntrack", where, "no entry", stray.text))
    return differences


# netfilter


LOCAL_OUT_CHAINS = frozenset(
    {("raw", "OUTPUT"), ("mangle", "OUTPUT"), ("filter", "OUTPUT"), ("mangle", "POSTROUTING")}
)
"""The chains an ICMP error the kernel sends itself traverses (a RELATED packet of a NATed
connection skips the nat table: its bindings exist)."""


def error_paths(state: DataplaneState | None, walk: Walk) -> dict[str, frozenset[tuple[str, str]]]:
    """Per namespace that drops a way of the walk for its TTL, the chains its ICMP time
    exceeded may count in: `LOCAL_OUT_CHAINS` and every chain they jump or go to. The walk does
    not follow that error (`time_exceeded_evidence` holds its frames), so rules it counts there
    are the evidence's, not the walk's."""
    from eksnet.kernel.netfilter import parse_ruleset
    from eksnet.kernel.netfilter.ruleset import JumpTarget

    found: dict[str, frozenset[tuple[str, str]]] = {}
    dropping = [hop for _, _, leaf in walk.leaves() for _, hop in ttl_drops(leaf)]
    for hop in dropping:
        name = hop.where.name
        if state is None or hop.where.kind not in ("pod", "node"):
            continue
        iptables = state.namespace(name).iptables
        if iptables is None:
            continue
        ruleset = parse_ruleset(iptables.save, source=f"iptables of {name}")
        reached = set(LOCAL_OUT_CHAINS)
        pending = list(reached)
        while pending:
            table, chain = pending.pop()
            for rule in ruleset.rules():
                if (rule.table, rule.chain) == (table, chain) and isinstance(
                    rule.target, JumpTarget
                ):
                    key = (table, rule.target.chain)
                    if key not in reached:
                        reached.add(key)
                        pending.append(key)
        found[name] = frozenset(reached)
    return found


def compare_rule_hits(
    walk: Walk,
    hits: Mapping[str, frozenset[RuleKey]],
    excused: Mapping[str, frozenset[tuple[str, str]]] | None = None,
) -> list[Difference]:
    """Rules the kernel counted but the walk did not match, and the other way round, in every
    namespace the kernel's counters were read in (beyond the walk: what an ICMP error the
    kernel sent as a drop's evidence counted, `error_paths`)."""
    differences: list[Difference] = []
    expected = expected_rule_hits(walk)
    excused = excused or {}

    def show(keys: Iterable[RuleKey]) -> str:
        return ", ".join(f"{t}/{c} #{p}" for t, c, p in sorted(keys)) or "none"

    for namespace, counted in sorted(hits.items()):
        want = expected.get(namespace, frozenset())
        chains = excused.get(namespace, frozenset())
        seen = frozenset(key for key in counted if key in want or key[:2] not in chains)
        if want == seen:
            continue
        differences.append(
            Difference(
                "forward",
                "netfilter",
                f"{namespace} iptables counters",
                f"matched {show(want)}",
                f"counted {show(seen)} (missing {show(want - seen)}, extra {show(seen - want)})",
            )
        )
    return differences


# the ending

FABRIC_DROPS: Mapping[str, str] = {**DROP_COMMENTS, **NAT_DROPS}
"""Which commented nft rule counts each VPC drop: the fabric's (lab/fabric.py, lab/filters.py)
and the NAT gateways' (lab/attachments.py)."""

KERNEL_DROPS: Mapping[str, str] = {
    "rp-filter": "TcpExt:IPReversePathFilter",
    "ttl": "Ip:InHdrErrors",
}
"""The per-namespace counter the kernel moves for a drop (linux-dataplane.md §9.5; the
rp_filter one measured: `ip_rcv_finish_core` counts LINUX_MIB_IPRPFILTER; `ip_forward` counts
IPSTATS_MIB_INHDRERRORS for a packet whose TTL runs out)."""

_DROP_COUNTERS = (
    "TcpExt:IPReversePathFilter",
    "IpExt:InNoRoutes",
    "Ip:InAddrErrors",
    "Ip:InHdrErrors",
)
"""Counters that move only when the kernel drops: any of them moving where the walk claims no
such drop is a difference."""


def compare_ending(walk: Walk, seen: Observation) -> list[Difference]:
    """Delivery and drops, forward and return, each to the kernel's own evidence."""
    differences: list[Difference] = []
    expected_drops: set[tuple[str, str]] = set()
    for direction, one in directions(walk):
        end = one.disposition
        assert end is not None
        if end.kind == "dropped" and end.code is not None:
            differences += _drop_evidence(direction, one, seen)
            counter = KERNEL_DROPS.get(end.code)
            if counter is not None:
                expected_drops.add((end.where.name, counter))
    differences += _delivery(walk, seen)
    for namespace, moved in sorted(seen.counters.items()):
        for counter in _DROP_COUNTERS:
            if moved.get(counter) and (namespace, counter) not in expected_drops:
                differences.append(
                    Difference(
                        "forward",
                        "drop:unexpected",
                        namespace,
                        f"{counter} unchanged",
                        f"{counter} +{moved[counter]}",
                    )
                )
    predicted_fabric = {
        FABRIC_DROPS[one.disposition.code]
        for _, one in directions(walk)
        if one.disposition is not None
        and one.disposition.code is not None
        and one.disposition.code in FABRIC_DROPS
    }
    for comment, packets in sorted(seen.fabric.items()):
        if comment in FABRIC_DROPS.values() and packets and comment not in predicted_fabric:
            differences.append(
                Difference("forward", "drop:unexpected", "VPC fabric", "no drop", comment)
            )
    return differences


def _drop_evidence(direction: Direction, one: Walk, seen: Observation) -> list[Difference]:
    end = one.disposition
    assert end is not None and end.code is not None
    where = end.where.name
    kind = f"drop:{end.code}"
    counter = KERNEL_DROPS.get(end.code)
    if counter is not None:
        moved = seen.counters.get(where, {}).get(counter, 0)
        if moved < 1:
            return [Difference(direction, kind, where, f"{counter} +1", f"{counter} +{moved}")]
        return []
    if end.code in FABRIC_DROPS:
        comment = FABRIC_DROPS[end.code]
        if seen.fabric.get(comment, 0) < 1:
            return [Difference(direction, kind, "VPC fabric", f"'{comment}' counts it", "no count")]
        return []
    if end.code == "netfilter":
        rule = next((d for d in reversed(end.decided_by) if d.kind == "iptables"), None)
        key = (rule.table, rule.chain, rule.position) if rule is not None else None
        if key is not None and key not in seen.rule_hits.get(where, frozenset()):
            return [
                Difference(
                    direction, kind, where, f"{rule.text if rule else ''} counts it", "no count"
                )
            ]
        return []
    if end.code == "neighbour":
        last = one.hops[-1]
        route = next((s.route for s in reversed(last.steps) if s.route is not None), None)
        packet = next((s.before for s in reversed(last.steps) if s.route is not None), None)
        if route is None or packet is None or route.dev is None:
            return []
        nexthop = str(route.gateway or packet.dst)
        state = seen.neighbours.get((where, route.dev, nexthop), "none")
        if state not in ("INCOMPLETE", "FAILED"):
            return [Difference(direction, kind, where, f"{nexthop} INCOMPLETE or FAILED", state)]
        return []
    failed = seen.sender_error is not None and "unreachable" in seen.sender_error
    locally = end.code in ("no-route", "socket") and bool(one.hops) and one.hops[-1].iif is None
    if locally and direction == "forward" and not failed:
        expected = "the sender's socket fails"
        return [Difference(direction, kind, where, expected, seen.sender_error or "no error")]
    return []


def _delivery(walk: Walk, seen: Observation) -> list[Difference]:
    differences: list[Difference] = []
    hop = delivered_at(walk)
    received = [item for item in seen.listened if item.received]
    where = (lab_place(hop) or "nowhere") if hop is not None else "nowhere"
    if walk.flow.proto == "icmp":
        echoed = sorted(ns for ns, moved in seen.counters.items() if moved.get("Icmp:InEchos"))
        if echoed != ([where] if hop is not None else []):
            differences.append(
                Difference(
                    "forward", "delivery", "echo request", where, ", ".join(echoed) or "nowhere"
                )
            )
    else:
        got = sorted(item.namespace for item in received)
        if got != ([where] if hop is not None else []):
            differences.append(
                Difference("forward", "delivery", "listener", where, ", ".join(got) or "nowhere")
            )
    expected = _sender_outcome(walk)
    observed = "answered" if seen.replied else (seen.sender_errno or "no answer")
    if expected != observed:
        shown = observed if seen.replied else f"{observed} ({seen.sender_error or 'none'})"
        differences.append(Difference("return", "delivery", "sender", expected, shown))
    return differences


def _sender_outcome(walk: Walk) -> str:
    """What the sender must report: `answered`, the errno of the error or RST that reaches it,
    or `no answer`."""
    reply = walk.reply
    if reply is None or delivered_at(reply) is None:
        end = walk.disposition
        # A REJECT in the sender's own OUTPUT: its socket gets the error at once.
        own = bool(walk.hops) and walk.hops[-1].iif is None
        if end is not None and end.rejected_with is not None and own:
            return REJECT_ERRNO.get(end.rejected_with, "no answer")
        return "no answer"
    first = reply.hops[0].packet_out if reply.hops else None
    if first is not None and first.is_icmp_error:
        return ERROR_ERRNO.get(first.icmp_code or 0, "no answer")
    if first is not None and first.tcp_flags == "R.":
        return "ECONNREFUSED"
    return "answered"


REJECT_ERRNO: Mapping[str, str] = {
    "icmp-net-unreachable": "ENETUNREACH",
    "icmp-host-unreachable": "EHOSTUNREACH",
    "icmp-proto-unreachable": "ENOPROTOOPT",
    "icmp-port-unreachable": "ECONNREFUSED",
    "icmp-net-prohibited": "ENETUNREACH",
    "icmp-host-prohibited": "EHOSTUNREACH",
    "tcp-reset": "ECONNREFUSED",
}


# --- the real run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    """A socket address a way of the walk delivers to, in a namespace of the state."""

    namespace: str
    address: IPv4Address
    port: int


def listen_places(state: DataplaneState, walk: Walk) -> tuple[Place, ...]:
    """Where listeners run: every address a branch delivers to, and the flow's own destination
    when a namespace owns it (so a walk predicted to drop could be seen delivered)."""
    if walk.flow.proto == "icmp":
        return ()
    places: dict[Place, None] = {}
    for _, _, leaf in walk.leaves():
        hop = delivered_at(leaf)
        place = lab_place(hop) if hop is not None else None
        if hop is None or place is None:
            continue
        # in a pod or node, the socket's address is the packet's after the input hooks' DNAT
        packet = hop.steps[-1].after if hop.where.kind in ("pod", "node") else hop.packet_in
        if packet is not None and packet.dport is not None:
            places[Place(place, packet.dst, packet.dport)] = None
    owner = _owner(state, walk.flow.dst.address)
    if owner is not None and walk.flow.dport is not None:
        places[Place(owner, walk.flow.dst.address, walk.flow.dport)] = None
    return tuple(places)


def lab_namespaces(state: DataplaneState) -> tuple[Namespace, ...]:
    """The namespaces the lab builds with an address: the state's, and its attachments' (named
    by their place: `internet`, `imds`, a NAT gateway's id)."""
    return (*state.namespaces, *(item.namespace for item in attachments(state)))


def _owner(state: DataplaneState, address: IPv4Address) -> str | None:
    for namespace in lab_namespaces(state):
        for item in namespace.addresses:
            if item.family == 4 and item.interface.ip == address and item.dev != "lo":
                return namespace.name
    return None


def capture_targets(state: DataplaneState, names: LabNames, walk: Walk) -> list[CaptureTarget]:
    """Every interface of every namespace a way of the walk (either direction) is in, and the
    ENI devices of every other node. A packet straying from the predicted path either stays in a
    touched namespace (all of whose interfaces, host veths included, are captured) or leaves a
    node by an ENI and enters another node by one of its ENIs, so any divergent path is seen."""
    inside = touched(walk) | {place.namespace for place in listen_places(state, walk)}
    targets = []
    for namespace in lab_namespaces(state):
        full = namespace.name in inside
        if not full and namespace.kind != "node":
            continue
        for link in namespace.links:
            if link.kind == "loopback" or (not full and link.kind != "device"):
                continue
            targets.append(
                CaptureTarget(namespace.name, lab_netns(names, namespace.name), link.name, link.mac)
            )
    return targets


def _agent(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-I", "-S", AGENT, *args]


def _ask_for_report(proc: subprocess.Popen[str]) -> None:
    """Tell a listener the sender has its answer: it reports what reached it now."""
    assert proc.stdin is not None
    try:
        proc.stdin.write("report\n")
        proc.stdin.flush()
    except BrokenPipeError:
        pass  # it has reported and exited already


def _read_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, object]:
    assert proc.stdout is not None
    poller = select.poll()
    poller.register(proc.stdout, select.POLLIN)
    line = proc.stdout.readline() if poller.poll(int(timeout * 1000)) else ""
    if not line:
        return {}
    result: dict[str, object] = json.loads(line)
    return result


def not_verified(label: str, walk: Walk, why: str) -> Verdict:
    return Verdict(label, walk.flow.first_packet().five_tuple(), "not verified", why=why)


def unverifiable(walk: Walk) -> str | None:
    """Why the lab cannot send this walk, or None."""
    for _, label, leaf in walk.leaves():
        if leaf.later is not None and (walk.flow.proto != "tcp" or leaf.backend is not None):
            return (
                "the lab sends a later packet (an ACK) for TCP connections it sends end to end, "
                f"not for {'a proxied one' if leaf.backend is not None else walk.flow.proto}"
            )
        first = leaf.hops[0]
        branch = f" (branch {label})" if label else ""
        if first.where.kind not in ("pod", "node", "external") and _lb_place(first) is None:
            return f"the walk starts in {first.where.kind} {first.where.name}"
        for _, one in directions(leaf):
            end = one.disposition
            if end is not None and end.kind == "not-modelled":
                return f"the walk ends not modelled{branch}: {end.reason}"
            for hop in one.hops:
                if hop.where.name.startswith("host:") and not _is_imds(hop):
                    return (
                        f"the walk reaches {hop.where.label}{branch}: of the addresses the "
                        "instance's host answers, the lab answers only the IMDS"
                    )
    return None


def verify_walk(
    state: DataplaneState, walk: Walk, names: LabNames | None = None, label: str = ""
) -> Verdict:
    """Send `walk`'s exchange in the lab built from `state` and hold the kernel to it; a split
    walk is sent until every branch was seen (see `connections_needed`). Through a proxy, the
    client's connection and the proxy's own (`Walk.backend`) are each sent and judged: the
    lab's proxy node accepts the client, and the verifier opens the proxy's connection from it
    to each target the walk's ways choose (which target is the proxy's decision, the
    simulator's: the lab holds the two connections' packets to the walk, not the choice)."""
    names = names or LabNames.from_env()
    label = label or walk.flow.first_packet().five_tuple()
    flow = walk.flow.first_packet().five_tuple()
    why = unverifiable(walk)
    if why is not None:
        return not_verified(label, walk, why)
    health = health_differences(state, names, walk)
    leaves = list(walk.leaves())
    if any(leaf.backend is not None for _, _, leaf in leaves):
        verdict = _verify_proxied(state, names, walk, label, leaves)
        if not health:
            return verdict
        return replace(verdict, status="differs", differences=(*verdict.differences, *health))
    differences, sent, seen_count = _send_until_seen(state, names, walk, leaves)
    differences += health
    if not differences:
        differences += http_check(state, names, walk)
    branches = tuple(
        BranchSeen(branch_label, probability, seen_count[index])
        for index, (probability, branch_label, _) in enumerate(leaves)
        if len(leaves) > 1
    )
    status: Status = "differs" if differences else "agree"
    return Verdict(
        label,
        flow,
        status,
        tuple(differences),
        connections=sent,
        branches=branches,
        checked=checked_summary(walk),
    )


def health_differences(state: DataplaneState, names: LabNames, walk: Walk) -> list[Difference]:
    """For a walk through load balancers: their targets' health as the lab's real checks find
    it against the simulator's (`lab/health.py`, checked once per state and lab), each target
    on which the two disagree a `health` difference. Asked before the walk is sent: it also
    gives the lab's NLB nodes the eligible targets its checks found."""
    reached = {
        hop.where.name.split(":", 2)[1]
        for _, _, leaf in walk.leaves()
        for hop in leaf.hops
        if _lb_place(hop) is not None
    }
    if not reached:
        return []
    from eksnet.lab.health import check_health

    report = check_health(state, names)
    return [
        Difference(
            "forward",
            "health",
            f"{verdict.owner} {verdict.group} {row.target.id}",
            f"{'healthy' if row.simulated.healthy else 'unhealthy'} ({row.simulated.reason})",
            f"{'healthy' if row.lab.healthy else 'unhealthy'} ({row.lab.reason})",
        )
        for name in sorted(reached)
        for verdict in report.for_balancer(name)
        for row in verdict.rows
        if not row.agree
    ]


def _send_until_seen(
    state: DataplaneState,
    names: LabNames,
    walk: Walk,
    leaves: Sequence[tuple[float, str, Walk]],
    prefix: str = "",
) -> tuple[list[Difference], int, list[int]]:
    """Send `walk`'s exchange until every way (`leaves`) was seen, or one differed: the
    differences, how many connections, how often each way was taken."""
    needed = connections_needed([probability for probability, _, _ in leaves])
    seen_count = [0] * len(leaves)
    routes = {index: _route_gets(leaf, names) for index, (_, _, leaf) in enumerate(leaves)}
    differences: list[Difference] = []
    sent = 0
    while sent == 0 or (sent < needed and not all(seen_count)):
        # The walk starts with no `recent` lists (nothing remembered of earlier clients), no
        # flow tracked by a security group, no NAT gateway session.
        _forget_recent(state, names)
        _forget_vpc_state(state, names)
        best, judged = _closest(leaves, exchange(state, names, walk), routes)
        sent += 1
        seen_count[best] += 1
        branch = prefix + (f" (as branch {leaves[best][1]})" if len(leaves) > 1 else "")
        following = leaves[best][2].then
        if not judged and following is not None:
            # The same client's next connection, with the kernel's `recent` lists as the first
            # left them: it must go where the simulator says (a sticky Service: the same way).
            then_leaves = list(following.leaves())
            then_routes = {
                i: _route_gets(leaf, names) for i, (_, _, leaf) in enumerate(then_leaves)
            }
            _, judged = _closest(then_leaves, exchange(state, names, following), then_routes)
            branch += ", its next connection"
            sent += 1
        if judged:
            differences += [
                Difference(d.direction, d.kind, d.where + branch, d.expected, d.observed)
                for d in judged
            ]
            break
    for index, (probability, branch_label, _) in enumerate(leaves):
        if len(leaves) > 1 and not seen_count[index] and not differences:
            differences.append(
                Difference(
                    "forward",
                    "branch",
                    prefix + branch_label,
                    f"taken with probability {probability:.4f}",
                    f"never taken in {sent} connections",
                )
            )
    return differences, sent, seen_count


def _verify_proxied(
    state: DataplaneState,
    names: LabNames,
    walk: Walk,
    label: str,
    leaves: Sequence[tuple[float, str, Walk]],
) -> Verdict:
    # every way's client side is the same connection, ending at the proxy
    client = replace(leaves[0][2], backend=None)
    differences, sent, _ = _send_until_seen(state, names, client, [(1.0, "", client)])
    # the proxy's own connections, one per target; kube-proxy on a target node may split one
    groups: dict[tuple[object, ...], list[tuple[float, str, Walk]]] = {}
    for probability, branch_label, leaf in leaves:
        assert leaf.backend is not None
        key = (leaf.backend.flow.dst.address, leaf.backend.flow.dport)
        groups.setdefault(key, []).append((probability, branch_label, leaf.backend))
    seen: dict[str, int] = {}
    for ways in groups.values():
        if differences:
            break
        total = sum(probability for probability, _, _ in ways)
        if len(ways) == 1:
            opened = ways[0][2]
        else:
            opened = Walk(
                flow=ways[0][2].flow,
                direction="forward",
                hops=(),
                disposition=None,
                branches=tuple(Branch(p / total, lab, one) for p, lab, one in ways),
            )
        parts = list(opened.leaves())
        found, count, taken = _send_until_seen(
            state, names, opened, parts, prefix=" (the proxy's connection)"
        )
        differences += found
        sent += count
        for (_, branch_label, _), times in zip(ways, taken, strict=True):
            seen[branch_label] = times
    if not differences:
        differences += http_check(state, names, walk)
    branches = tuple(
        BranchSeen(branch_label, probability, seen.get(branch_label, 0))
        for probability, branch_label, _ in leaves
        if len(leaves) > 1
    )
    status: Status = "differs" if differences else "agree"
    return Verdict(
        label,
        walk.flow.first_packet().five_tuple(),
        status,
        tuple(differences),
        connections=sent,
        branches=branches,
        checked=checked_summary(walk),
    )


def _closest(
    leaves: Sequence[tuple[float, str, Walk]],
    observation: Observation,
    routes: Mapping[int, Mapping[tuple[Direction, int, int], RouteGet]],
) -> tuple[int, list[Difference]]:
    """The leaf the kernel's exchange agrees with best (fewest differences), and those."""
    judged = [
        judge(leaf, _with_routes(observation, routes[index]))
        for index, (_, _, leaf) in enumerate(leaves)
    ]
    best = min(range(len(leaves)), key=lambda index: len(judged[index]))
    return best, judged[best]


def _forget_recent(state: DataplaneState, names: LabNames) -> None:
    """Empty every `-m recent` list of the lab (writing `/` to `/proc/net/xt_recent/NAME`, in
    the namespace that holds it), so a walk starts as the simulator's does: remembering no
    client. Only namespaces whose rules use `recent` are touched."""
    holders = [
        ns for ns in state.namespaces if ns.iptables is not None and "-m recent" in ns.iptables.save
    ]
    script = 'for f in /proc/net/xt_recent/*; do [ -e "$f" ] && echo / > "$f"; done; true'
    system.parallel(
        lambda ns: system.netns_exec(names.netns(ns.name), ["sh", "-c", script], check=False),
        holders,
    )


def _forget_vpc_state(state: DataplaneState, names: LabNames) -> None:
    """Empty the fabric's sets of flows security groups tracked and every NAT gateway's
    sessions: the simulator starts each walk with neither."""
    sets = dynamic_sets(state.vpc, attached_ports(state))
    flush = "".join(f"flush set bridge {NFT_TABLE} {name}\n" for name in sets)
    system.netns_exec(names.fabric, ["nft", "-f", "-"], stdin=flush, check=False)
    system.parallel(
        lambda netns: system.netns_exec(netns, ["conntrack", "-F"], check=False),
        _nat_gateway_netns(state, names),
    )
    # the NLB nodes' held flows (`attachments.nlb_attachment`): a walk's connection is new
    nlbs = [
        (names.attachment(item.place), re.findall(r"map (flows_\w+)", item.nft))
        for item in attachments(state)
        if item.kind == "nlb"
    ]
    system.parallel(
        lambda node: system.netns_exec(
            node[0],
            ["nft", "-f", "-"],
            stdin="".join(f"flush map netdev {NLB_TABLE} {name}\n" for name in node[1]),
            check=False,
        ),
        [node for node in nlbs if node[1]],
    )


def _nat_gateway_netns(state: DataplaneState, names: LabNames) -> list[str]:
    return [
        names.attachment(item.place) for item in attachments(state) if item.kind == "nat-gateway"
    ]


def checked_summary(walk: Walk) -> str:
    """What the comparison covers for this walk, counted over every way it can go."""
    frames = routes = rules = entries = 0
    endings: list[str] = []
    parts = [leaf for _, _, leaf in walk.leaves()]
    parts += [leaf.backend for leaf in parts if leaf.backend is not None]
    for leaf in parts:
        for _, one in directions(leaf):
            frames += len(expected_wire(one))
            end = one.disposition
            if end is not None:
                endings.append(end.code if end.kind == "dropped" and end.code else end.kind)
        routes += len(list(route_questions(leaf)))
        rules += sum(len(keys) for keys in expected_rule_hits(leaf).values())
        entries += sum(len(pairs) for pairs in predicted_entries(leaf).values())
    laters = [leaf.later for leaf in parts if leaf.later is not None]
    later = ""
    if laters:
        ends = [
            one.disposition.code
            if one.disposition is not None and one.disposition.kind == "dropped"
            else "delivered"
            for one in laters
        ]
        later = (
            f"; the later packet: {sum(len(expected_wire(one)) for one in laters)} frames, "
            f"endings: {', '.join(str(end) for end in ends)}"
        )
    return (
        f"{frames} frames, {routes} routing decisions, {rules} rule matches, "
        f"{entries} conntrack entries (twice each), endings: {', '.join(endings)}{later}"
    )


def _next_connections(walk: Walk) -> list[tuple[float, str, Walk]]:
    """The leaves of every leaf's next connection (`Walk.then`), if the walk has them."""
    return [
        item for _, _, leaf in walk.leaves() if leaf.then is not None for item in leaf.then.leaves()
    ]


def _with_routes(
    observation: Observation, routes: Mapping[tuple[Direction, int, int], RouteGet]
) -> Observation:
    return replace(observation, routes=routes)


def exchange(state: DataplaneState, names: LabNames, walk: Walk) -> Observation:
    """Send the walk's request once (the kernel answers it), recording everything; then, if
    the walk's ways have a later packet, that packet (`_exchange_later`) while the listeners
    still hold the connection."""
    flow = walk.flow
    first = (walk.hops or walk.branches[0].walk.hops)[0]
    source = lab_place(first)
    assert source is not None, "unverifiable() lets only pods, nodes and external hosts send"
    sent_packet = sent_by_source(walk)
    tables = [ns for ns in state.namespaces if ns.iptables is not None]
    watched = sorted(touched(walk) | {place.namespace for place in listen_places(state, walk)})
    laters = [leaf.later for _, _, leaf in walk.leaves() if leaf.later is not None]
    _zero_counters(tables, names)
    fabric_before = _fabric_counters(state, names)
    before = _netstat(watched, names)
    probe = flow.proto == "tcp"
    if probe:
        _forget_half_open({place.namespace for place in listen_places(state, walk)}, names)
        _install_probe(lab_netns(names, source), sent_packet)
    listeners: list[tuple[Place, subprocess.Popen[str]]] = []
    listened: list[Listened] = []
    try:
        try:
            with (
                ConntrackWatch([(ns.name, names.netns(ns.name)) for ns in tables]) as watch,
                Capture(capture_targets(state, names, walk)) as capture,
            ):
                for place in listen_places(state, walk):
                    proc = subprocess.Popen(
                        _agent(
                            lab_netns(names, place.namespace),
                            "listen",
                            "--proto",
                            flow.proto,
                            "--addr",
                            str(place.address),
                            "--port",
                            str(place.port),
                            "--timeout",
                            str(LISTEN_LIMIT),
                        ),
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    listeners.append((place, proc))
                    if not _read_json(proc, 5).get("ready"):
                        raise LabError(
                            f"listener in {place.namespace} on {place.address}:{place.port} "
                            "did not start"
                        )
                sent = _send(lab_netns(names, source), sent_packet)
                for _, proc in listeners:
                    _ask_for_report(proc)
                for place, proc in listeners:
                    heard = _read_json(proc, ANSWER_WAIT + 5)
                    listened.append(
                        Listened(
                            place.namespace,
                            place.address,
                            place.port,
                            bool(heard.get("received")),
                            _text(heard.get("peer")),
                            _number(heard.get("at")),
                        )
                    )
                time.sleep(0.02)
                frames = capture.stop()
                events = watch.stop()
            seen = _observed(
                state, names, walk, tables, watched, before, fabric_before, frames, events,
                listened, sent,
            )  # fmt: skip
            if laters:
                later = None
                if "next_seq" in sent and "next_ack" in sent:
                    later = _exchange_later(
                        state, names, laters, tables, lab_netns(names, source), sent_packet, sent
                    )
                seen = replace(seen, later=later)
            return seen
        finally:
            for _, proc in listeners:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=5)
    finally:
        if probe:
            _remove_probe(lab_netns(names, source))


def _observed(
    state: DataplaneState,
    names: LabNames,
    walk: Walk,
    tables: Sequence[Namespace],
    watched: Sequence[str],
    before: Mapping[str, Mapping[str, int]],
    fabric_before: Mapping[str, int],
    frames: Sequence[Seen],
    events: Mapping[str, tuple[ConntrackEvent, ...]],
    listened: Sequence[Listened],
    sent: Mapping[str, object],
) -> Observation:
    """The exchange's record, read once its packets are through: counters, conntrack, rules."""
    after = _netstat(watched, names)
    final = dict(
        zip(
            [ns.name for ns in tables],
            system.parallel(
                lambda ns: parse_conntrack(
                    system.netns_exec(names.netns(ns.name), ["conntrack", "-L"], check=False).stdout
                ),
                tables,
            ),
            strict=True,
        )
    )
    return Observation(
        frames=tuple(frames),
        conntrack_events=events,
        conntrack_final=final,
        rule_hits=_rule_hits(tables, names),
        counters={name: _moved(before[name], after[name]) for name in watched},
        fabric=_moved(fabric_before, _fabric_counters(state, names)),
        neighbours=_neighbours(walk, names),
        listened=tuple(listened),
        replied=bool(sent.get("ok")),
        sender_error=_text(sent.get("error")),
        sender_errno=_text(sent.get("errno")),
        routes={},
        excused=error_paths(state, walk),
    )


def _exchange_later(
    state: DataplaneState,
    names: LabNames,
    laters: Sequence[Walk],
    tables: Sequence[Namespace],
    source: str,
    sent_packet: Packet,
    sent: Mapping[str, object],
) -> Observation:
    """The client's ACK, sent by the agent with the numbers the SYN-ACK gave (its own kernel's
    ACK was dropped by the probe), with conntrack as the exchange left it: its frames on every
    interface any way's later packet crosses, the counters it moves, the fabric's drops."""
    targets = {
        (target.netns, target.interface): target
        for later in laters
        for target in capture_targets(state, names, later)
    }
    watched = sorted(set().union(*(touched(later) for later in laters)))
    _zero_counters(tables, names, flush=False)
    fabric_before = _fabric_counters(state, names)
    before = _netstat(watched, names)
    with Capture(list(targets.values())) as capture:
        answer = system.run(
            _agent(
                source, "ack",
                "--src", str(sent_packet.src), "--sport", str(sent_packet.sport or 0),
                "--dst", str(sent_packet.dst), "--dport", str(sent_packet.dport or 0),
                "--seq", str(sent["next_seq"]), "--ack", str(sent["next_ack"]),
                "--mark", str(LATER_MARK),
            ),
            check=False,
            timeout=10,
        )  # fmt: skip
        time.sleep(LATER_WAIT)
        frames = capture.stop()
    lines = answer.stdout.splitlines()
    result: dict[str, object] = json.loads(lines[-1]) if lines else {}
    if not result.get("ok"):
        raise LabError(f"the later ACK was not sent: {result.get('error') or answer.stderr}")
    after = _netstat(watched, names)
    return Observation(
        frames=tuple(frames),
        conntrack_events={},
        conntrack_final={},
        rule_hits={},
        counters={name: _moved(before[name], after[name]) for name in watched},
        fabric=_moved(fabric_before, _fabric_counters(state, names)),
        neighbours={},
        listened=(),
        replied=False,
        sender_error=None,
        sender_errno=None,
        routes={},
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def sent_by_source(walk: Walk) -> Packet:
    """The packet the source's socket sends (its originate step): addressed as the application
    addresses it (a ClusterIP, a node's public IPv4 from the internet), before any NAT."""
    first = (walk.hops or walk.branches[0].walk.hops)[0]
    packet = first.steps[0].after if first.steps and first.steps[0].kind == "originate" else None
    return packet or walk.flow.first_packet()


def _send(netns: str, packet: Packet) -> dict[str, object]:
    result = system.run(
        _agent(
            netns,
            "send",
            "--proto",
            packet.proto,
            "--src",
            str(packet.src),
            "--sport",
            str(packet.sport or 0),
            "--dst",
            str(packet.dst),
            "--dport",
            str(packet.dport or 0),
            "--icmp-id",
            str(packet.icmp_id or 0),
            "--timeout",
            str(ANSWER_WAIT),
        ),
        check=False,
        timeout=10,
    )
    lines = result.stdout.splitlines()
    if not lines:
        raise LabError(f"the sender in {netns} gave no answer: {result.stderr.strip()}")
    answer: dict[str, object] = json.loads(lines[-1])
    return answer


def _install_probe(netns: str, packet: Packet) -> None:
    """Drop the sender's own TCP packets after the SYN (the ACK, the RST), before any hook."""
    rules = "\n".join(
        [
            f"table ip {PROBE_TABLE} {{",
            "  chain output {",
            "    type filter hook output priority -400; policy accept;",
            # the later ACK the verifier sends on purpose passes, unmarked from here on
            f"    meta mark {LATER_MARK:#x} meta mark set 0x0 accept",
            f"    ip saddr {packet.src} tcp sport {packet.sport} tcp flags & syn == 0 drop",
            "  }",
            "}",
            "",
        ]
    )
    system.netns_exec(netns, ["nft", "-f", "-"], stdin=rules)


def _forget_half_open(namespaces: Iterable[str], names: LabNames) -> None:
    """Destroy request sockets an earlier exchange left in SYN_RECV (`ss -K`): the client never
    completes a handshake here, and a stale one would look like this exchange's SYN arriving."""
    system.parallel(
        lambda name: system.netns_exec(
            lab_netns(names, name), ["ss", "-K", "-t", "state", "syn-recv"], check=False
        ),
        sorted(namespaces),
    )


def _remove_probe(netns: str) -> None:
    system.netns_exec(netns, ["nft", "delete", "table", "ip", PROBE_TABLE], check=False)


def _zero_counters(tables: Sequence[Namespace], names: LabNames, *, flush: bool = True) -> None:
    """Zero every rule counter and flush conntrack (unless `flush` is off: a later packet needs
    its connection), so what moves afterwards is this exchange's (ARP and IPv6 never traverse
    the IPv4 tables)."""

    def zero(namespace: Namespace) -> None:
        assert namespace.iptables is not None
        netns = names.netns(namespace.name)
        binary = _IPTABLES[namespace.iptables.backend]
        for table in ("raw", "mangle", "nat", "filter"):
            if f"*{table}" in namespace.iptables.save:
                system.netns_exec(netns, [binary, "-w", "-t", table, "-Z"])
        if flush:
            system.netns_exec(netns, ["conntrack", "-F"], check=False)

    system.parallel(zero, tables)


def _rule_hits(tables: Sequence[Namespace], names: LabNames) -> dict[str, frozenset[RuleKey]]:
    """The rules whose packet counters moved, per namespace, read with `iptables-save -c`."""
    from eksnet.kernel.netfilter import parse_ruleset

    def read(namespace: Namespace) -> tuple[str, frozenset[RuleKey]]:
        assert namespace.iptables is not None
        binary = _IPTABLES[namespace.iptables.backend] + "-save"
        text = system.netns_exec(names.netns(namespace.name), [binary, "-c"]).stdout
        ruleset = parse_ruleset(text, source=f"{binary} -c in {namespace.name}")
        hit = frozenset(
            (rule.table, rule.chain, rule.position)
            for rule in ruleset.rules()
            if rule.counters is not None and rule.counters[0] > 0
        )
        return namespace.name, hit

    return dict(system.parallel(read, tables))


def _netstat(namespaces: Sequence[str], names: LabNames) -> dict[str, dict[str, int]]:
    def read(name: str) -> dict[str, int]:
        result = system.netns_exec(
            lab_netns(names, name), ["cat", "/proc/net/netstat", "/proc/net/snmp"]
        )
        return parse_netstat(result.stdout)

    return dict(zip(namespaces, system.parallel(read, namespaces), strict=True))


def _fabric_argv(names: LabNames, *verb: str) -> list[str]:
    return ["ip", "netns", "exec", names.fabric, "nft", *verb, "table", "bridge", NFT_TABLE]


def _fabric_counters(state: DataplaneState, names: LabNames) -> dict[str, int]:
    """Packets counted so far by each commented rule of the fabric and of the NAT gateways (an
    inline nft `counter` is not reset by `nft reset counters`, which resets named counters
    only: compare before and after instead)."""
    result = system.run(_fabric_argv(names, "-j", "list"), check=False)
    counted = parse_nft_counters(result.stdout)
    for netns in _nat_gateway_netns(state, names):
        listed = system.netns_exec(
            netns, ["nft", "-j", "list", "table", "ip", NAT_TABLE], check=False
        )
        for comment, packets in parse_nft_counters(listed.stdout).items():
            counted[comment] = counted.get(comment, 0) + packets
    return counted


def _moved(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """The counters that moved between two readings, by how much."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _neighbours(walk: Walk, names: LabNames) -> dict[tuple[str, str, str], str]:
    """The neighbour entries a neighbour drop of any branch is about, as the kernel holds them."""
    wanted: set[tuple[str, str, str]] = set()
    for _, _, leaf in walk.leaves():
        for _, one in directions(leaf):
            end = one.disposition
            if end is None or end.code != "neighbour" or not one.hops:
                continue
            last = one.hops[-1]
            for step in last.steps:
                if step.route is not None and step.route.dev and step.before is not None:
                    nexthop = str(step.route.gateway or step.before.dst)
                    wanted.add((end.where.name, step.route.dev, nexthop))
    found: dict[tuple[str, str, str], str] = {}
    for namespace, dev, address in sorted(wanted):
        text = system.run(
            ["ip", "-n", names.netns(namespace), "neigh", "show", address, "dev", dev],
            check=False,
        ).stdout.split()
        found[(namespace, dev, address)] = text[-1] if text else "none"
    return found


def _route_gets(walk: Walk, names: LabNames) -> dict[tuple[Direction, int, int], RouteGet]:
    """`ip route get` for every routing decision of the walk, as that decision saw the packet."""
    jobs = [
        (key, route_get_argv(names.netns(hop.where.name), step))
        for key, hop, step in route_questions(walk)
    ]
    results = system.parallel(lambda job: system.run(job[1], check=False), jobs)
    return {
        key: parse_route_get(result.stdout, result.stderr)
        for (key, _), result in zip(jobs, results, strict=True)
    }


# --- the application: an ALB's HTTP, for real ---------------------------------------------------


def _alb_hop(walk: Walk) -> Hop | None:
    """The ALB node's hop of the walk's client connection, if it goes to an ALB."""
    for _, _, leaf in walk.leaves():
        for hop in leaf.hops:
            if _lb_place(hop) is not None and hop.where.label.startswith("ALB"):
                return hop
    return None


def _http_agent(netns: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-I", "-S", HTTP_AGENT, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def http_check(state: DataplaneState, names: LabNames, walk: Walk) -> list[Difference]:
    """Through an ALB, the request itself: the lab's ALB node runs a real proxy
    (`http_agent.py`) with the listener's rules and the eligible targets the state gives each,
    every target runs a server, the client sends the walk's request. The walk's answer must
    hold: the status (200, or the default rule's 404 with no target reached), the one target
    reached among those the walk's ways choose, the proxy's address as the target's peer, and
    `X-Forwarded-For` with the client's address."""
    from eksnet.walk.engine import health_probe
    from eksnet.walk.load_balancing import eligible

    hop = _alb_hop(walk)
    if hop is None or hop.packet_in is None or walk.flow.http is None or hop.iif is None:
        return []
    balancer = state.vpc.load_balancer_of(hop.iif)
    place = _lb_place(hop)
    node = balancer.node_of(hop.iif) if balancer is not None else None
    listener = balancer.listener("HTTP", hop.packet_in.dport or 0) if balancer else None
    if balancer is None or node is None or listener is None or place is None:
        return []
    probe = health_probe(state)
    rules: list[dict[str, object]] = []
    servers: dict[tuple[str, int], str] = {}
    for rule in listener.rules:
        if rule.target_group is None:
            rules.append({"status": rule.fixed_response or 404})
            continue
        group = balancer.target_group(rule.target_group)
        targets = eligible(balancer, node, group, probe).targets
        rules.append(
            {
                "host": rule.host,
                "paths": list(rule.paths),
                "targets": [[str(t.address), t.port] for t in targets],
            }
        )
        for target in targets:
            owner = _owner(state, target.address)
            if owner is not None:
                servers[(str(target.address), target.port)] = owner
    chosen = {
        (str(leaf.backend.flow.dst.address), leaf.backend.flow.dport)
        for _, _, leaf in walk.leaves()
        if leaf.backend is not None
    }
    host, path = walk.flow.http
    sent = sent_by_source(walk)
    first = (walk.hops or walk.branches[0].walk.hops)[0]
    client = lab_place(first)
    if client is None:
        return []
    running: list[tuple[tuple[str, int], subprocess.Popen[str]]] = []
    differences: list[Difference] = []
    try:
        for (address, port), owner in servers.items():
            proc = _http_agent(lab_netns(names, owner), "serve", address, str(port))
            running.append(((address, port), proc))
            _read_json(proc, 5)
        proxy = _http_agent(
            names.attachment(place), "proxy", str(node.private_ip), str(listener.port),
            json.dumps(rules),
        )  # fmt: skip
        _read_json(proxy, 5)
        asked = system.run(
            ["ip", "netns", "exec", lab_netns(names, client), sys.executable, "-I", "-S",
             HTTP_AGENT, "get", str(sent.src), str(sent.dst), str(sent.dport), host or "",
             path],
            check=False, timeout=30,
        )  # fmt: skip
        answer = json.loads(asked.stdout.splitlines()[-1]) if asked.stdout.strip() else {}
        proxy.wait(timeout=15)
        reached = []
        for (address, port), proc in running:
            proc.terminate()
            out, _ = proc.communicate(timeout=5)
            lines = [json.loads(line) for line in out.splitlines() if line.strip()]
            got = next((item for item in lines if item.get("received")), None)
            if got is not None:
                reached.append(((address, port), got))
    finally:
        for _, proc in running:
            if proc.poll() is None:
                proc.kill()
    where = f"{place} HTTP"
    wanted_status = 200 if chosen else 404
    if answer.get("status") != wanted_status:
        differences.append(
            Difference("return", "http:status", where, str(wanted_status), str(answer))
        )
    got_targets = sorted(f"{a}:{p}" for (a, p), _ in reached)
    if not chosen and reached:
        differences.append(
            Difference("forward", "http:target", where, "none", ", ".join(got_targets))
        )
    if chosen:
        if len(reached) != 1 or (reached[0][0] not in chosen):
            wanted = " or ".join(sorted(f"{a}:{p}" for a, p in chosen))
            differences.append(
                Difference(
                    "forward", "http:target", where, wanted, ", ".join(got_targets) or "none"
                )
            )
        for _, got in reached:
            peer = str(got.get("peer", "")).split(":")[0]
            headers = got.get("headers", {})
            assert isinstance(headers, dict)
            if peer != str(node.private_ip):
                differences.append(
                    Difference("forward", "http:peer", where, str(node.private_ip), peer)
                )
            if headers.get("x-forwarded-for") != str(walk.flow.src.address):
                differences.append(
                    Difference(
                        "forward", "http:x-forwarded-for", where, str(walk.flow.src.address),
                        str(headers.get("x-forwarded-for")),
                    )
                )  # fmt: skip
    return differences
