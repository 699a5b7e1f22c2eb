"""`lab verify`: send a walk's packet for real and compare what the kernel did with the Walk.

Data against data: tcpdump lines, `ip route get` and `conntrack -L` are parsed into the walk's
own vocabulary (`WireObservation`, the route decision, conntrack tuples) and compared with the
simulated forward walk and its `reply`:

* the wire: the first packet of each direction (TCP `S` / `S.`, the UDP datagram and its answer,
  the ICMP echo request and reply) must appear on the same namespace interfaces, in the same
  order, with the same MACs, addresses, ports, TTL and TCP flags as `Walk.wire()` predicts, and
  on no other captured interface (see `capture_targets` for why a divergent path shows);
* routing: `ip route get` per hop, with the packet's source, ingress interface and mark, must
  leave by the hop's `oif`, via the predicted gateway, from the predicted table;
* conntrack: every entry the walk predicts exists in that node with the same tuples and mark;
* netfilter: the rules whose packet counters moved in each node (`iptables-save -c` of the
  node's backend, counters zeroed before the walk) are exactly the rules the simulated walk says
  matched, forward and return together — the kernel reveals which rules decided through its
  counters, on the legacy backend as on nft;
* the disposition: delivered means the listener got the connection or datagram.

The packet mark is not on the wire and is checked only through `ip route get`.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from eksnet.dataplane.state import DataplaneState, Namespace
from eksnet.lab import divergences, system
from eksnet.lab.capture import (
    Capture,
    CaptureTarget,
    ConntrackEntry,
    RouteGet,
    TimedObservation,
    parse_conntrack,
    parse_conntrack_line,
    parse_route_get,
)
from eksnet.lab.divergences import KnownDivergence
from eksnet.lab.names import LabNames
from eksnet.lab.system import LabError
from eksnet.walk.model import Direction, Hop, Packet, Walk, WireObservation

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent.py")
COMPARED_FIELDS = (
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "src_mac",
    "dst_mac",
    "ttl",
    "tcp_flags",
)


@dataclass(frozen=True, slots=True)
class Difference:
    direction: Direction
    kind: str
    """`wire-missing`, `wire-unexpected`, `wire-order`, `field:<name>`, `route`, `conntrack`,
    `netfilter`, `disposition` or `not-verifiable`."""
    where: str
    expected: str
    observed: str
    known: KnownDivergence | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    label: str
    flow: str
    differences: tuple[Difference, ...]
    observed: tuple[TimedObservation, ...] = ()
    verifiable: bool = True
    notes: tuple[str, ...] = field(default=())

    @property
    def agree(self) -> bool:
        return all(d.known is not None for d in self.differences)

    def unexplained(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.known is None)


# --- pure comparison -----------------------------------------------------------------------------


def _where(obs: WireObservation) -> str:
    return f"{obs.namespace} {obs.interface} {obs.direction}"


def classify(
    walk: Walk, observed: Iterable[TimedObservation]
) -> dict[Direction, list[TimedObservation]]:
    """Split captured frames into the forward and the return packet of the flow."""
    forward_pairs = {(o.packet.src, o.packet.dst) for o in walk.wire()}
    back_pairs = {(o.packet.src, o.packet.dst) for o in walk.reply.wire()} if walk.reply else set()
    result: dict[Direction, list[TimedObservation]] = {"forward": [], "return": []}
    for item in observed:
        packet = item.observation.packet
        direction: Direction | None = None
        if packet.proto != walk.flow.proto:
            continue
        if packet.proto == "tcp":
            direction = {"S": "forward", "S.": "return"}.get(packet.tcp_flags or "")  # type: ignore[assignment]
        elif packet.proto == "icmp":
            if "echo request" in item.summary:
                direction = "forward"
            elif "echo reply" in item.summary:
                direction = "return"
        elif (packet.src, packet.dst) in forward_pairs:
            direction = "forward"
        elif (packet.src, packet.dst) in back_pairs:
            direction = "return"
        if direction is not None:
            result[direction].append(item)
    return result


def first_per_interface(items: Sequence[TimedObservation]) -> list[TimedObservation]:
    """The first frame per (namespace, interface, direction): retransmissions are not hops."""
    seen: set[tuple[str, str, str]] = set()
    result = []
    for item in sorted(items, key=lambda i: i.timestamp):
        key = (item.observation.namespace, item.observation.interface, item.observation.direction)
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result


def compare_wire(
    direction: Direction,
    expected: Sequence[WireObservation],
    observed: Sequence[TimedObservation],
    *,
    nat_ports: bool = False,
) -> list[Difference]:
    """Same interfaces, same order, same headers."""
    wanted = {_where(o): (index, o) for index, o in enumerate(expected)}
    got = first_per_interface(observed)
    got.sort(key=lambda i: (i.timestamp, wanted.get(_where(i.observation), (len(wanted), None))[0]))
    got_keys = [_where(i.observation) for i in got]
    differences: list[Difference] = []
    for key, (_, obs) in wanted.items():
        if key not in got_keys:
            differences.append(
                Difference(
                    direction,
                    "wire-missing",
                    key,
                    _packet_text(obs.packet),
                    "no such frame captured",
                )
            )
    for item in got:
        key = _where(item.observation)
        if key not in wanted:
            differences.append(
                Difference(
                    direction,
                    "wire-unexpected",
                    key,
                    "no frame here",
                    _packet_text(item.observation.packet),
                )
            )
    common_expected = [k for k in wanted if k in got_keys]
    common_observed = [k for k in got_keys if k in wanted]
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
    for item in got:
        key = _where(item.observation)
        if key in wanted:
            differences += _compare_packet(
                direction, key, wanted[key][1].packet, item.observation.packet, nat_ports
            )
    return differences


def _compare_packet(
    direction: Direction, where: str, expected: Packet, observed: Packet, nat_ports: bool
) -> list[Difference]:
    differences = []
    for name in COMPARED_FIELDS:
        want, got = getattr(expected, name), getattr(observed, name)
        if want is None or want == got:
            continue
        kind = f"field:{name}"
        known = None
        if nat_ports and name in ("sport", "dport"):
            known = divergences.known(kind)[0]
        differences.append(Difference(direction, kind, where, str(want), str(got), known))
    return differences


def _packet_text(packet: Packet) -> str:
    macs = f"{packet.src_mac} > {packet.dst_mac} " if packet.src_mac else ""
    flags = f" [{packet.tcp_flags}]" if packet.tcp_flags else ""
    return f"{macs}{packet.five_tuple()}{flags} ttl {packet.ttl}"


def route_step_packet(hop: Hop) -> Packet | None:
    for step in hop.steps:
        if step.kind == "route":
            return step.before or hop.packet_in or hop.packet_out
    return None


def predicted_route(hop: Hop) -> tuple[str | None, str | None]:
    """(gateway, table) from the hop's route decision, as the simulator printed it."""
    for step in hop.steps:
        if step.kind != "route":
            continue
        for decision in step.decided_by:
            if decision.kind == "route":
                via = re.search(r"\bvia (\S+)", decision.text)
                return (via.group(1) if via else None, decision.table)
    return (None, None)


def compare_route(direction: Direction, hop: Hop, got: RouteGet) -> list[Difference]:
    where = f"{hop.where.name} route"
    if got.error:
        return [Difference(direction, "route", where, f"dev {hop.oif}", got.error)]
    via, table = predicted_route(hop)
    differences = []
    if hop.oif is not None and got.type == "unicast" and got.dev != hop.oif:
        differences.append(
            Difference(direction, "route", where, f"dev {hop.oif}", f"dev {got.dev}")
        )
    if via is not None and got.via != via:
        differences.append(Difference(direction, "route", where, f"via {via}", f"via {got.via}"))
    if table is not None and _table_name(table) != _table_name(got.table):
        differences.append(
            Difference(direction, "route", where, f"table {table}", f"table {got.table}")
        )
    return differences


def _table_name(table: str) -> str:
    return {"254": "main", "255": "local", "253": "default"}.get(table, table)


def compare_conntrack(
    walk: Walk, entries: dict[str, tuple[ConntrackEntry, ...]]
) -> list[Difference]:
    differences = []
    for record in walk.conntrack:
        want = parse_conntrack_line(record.text)
        if want is None:
            continue
        candidates = [e for e in entries.get(record.namespace, ()) if e.original == want.original]
        where = f"{record.namespace} conntrack"
        if not candidates:
            differences.append(
                Difference(
                    "forward", "conntrack", where, record.text, "no entry with this original tuple"
                )
            )
            continue
        got = candidates[0]
        if got.reply != want.reply and not record.nat:
            differences.append(Difference("forward", "conntrack", where, record.text, got.text))
        if got.mark != record.mark:
            differences.append(
                Difference("forward", "conntrack", where, f"mark={record.mark}", f"mark={got.mark}")
            )
    return differences


# --- the real run ------------------------------------------------------------------------------


def _namespace_of(state: DataplaneState, address: IPv4Address) -> Namespace | None:
    for namespace in state.namespaces:
        for item in namespace.addresses:
            if item.interface.ip == address and item.dev != "lo":
                return namespace
    return None


def _destination(state: DataplaneState, walk: Walk) -> tuple[Namespace, Packet] | None:
    """Where the listener runs and what it binds: the delivering hop's namespace and packet."""
    last = walk.hops[-1]
    if last.where.kind not in ("pod", "node") or last.packet_in is None:
        return None
    try:
        namespace = state.namespace(last.where.name)
    except KeyError:
        return None
    return namespace, last.packet_in


def capture_targets(state: DataplaneState, names: LabNames, walk: Walk) -> list[CaptureTarget]:
    """Every interface of every namespace a hop of the walk (either way) is in, and the ENI
    devices of every other node. A packet straying from the predicted path either stays in a
    touched node (all of whose interfaces, host veths included, are captured) or leaves it by an
    ENI and enters another node by one of its ENIs, so any divergent path is seen, with one
    tcpdump per interface that matters rather than one per veth of the cluster."""
    touched = {hop.where.name for hop in walk.hops}
    if walk.reply is not None:
        touched |= {hop.where.name for hop in walk.reply.hops}
    targets = []
    for namespace in state.namespaces:
        full = namespace.name in touched
        if not full and namespace.kind != "node":
            continue
        for link in namespace.links:
            if link.kind == "loopback" or (not full and link.kind != "device"):
                continue
            targets.append(
                CaptureTarget(namespace.name, names.netns(namespace.name), link.name, link.mac)
            )
    return targets


def _agent(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-I", "-S", AGENT, *args]


def _read_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, object]:
    assert proc.stdout is not None
    poller = select.poll()
    poller.register(proc.stdout, select.POLLIN)
    line = proc.stdout.readline() if poller.poll(timeout * 1000) else ""
    if not line:
        return {"ok": False, "error": "agent gave no answer"}
    result: dict[str, object] = json.loads(line)
    return result


def not_verifiable(label: str, walk: Walk, why: str) -> Verdict:
    known = divergences.known("not-verifiable")[0]
    return Verdict(
        label,
        walk.flow.first_packet().five_tuple(),
        (Difference("forward", "not-verifiable", "walk", why, "not sent", known),),
        verifiable=False,
    )


def verify_walk(
    state: DataplaneState, walk: Walk, names: LabNames | None = None, label: str = ""
) -> Verdict:
    """Send `walk`'s first packet in the lab built from `state` and compare (forward and return)."""
    names = names or LabNames.from_env()
    label = label or walk.flow.first_packet().five_tuple()
    if walk.branches:
        return not_verifiable(label, walk, "load-balanced walks (branches) are not verified yet")
    if any(hop.where.kind == "external" for hop in walk.hops):
        return not_verifiable(label, walk, "the walk crosses the internet")
    source = walk.hops[0]
    destination = _destination(state, walk)
    if source.where.kind not in ("pod", "node"):
        return not_verifiable(label, walk, f"the walk starts in {source.where.kind}")
    flow = walk.flow
    if (
        walk.disposition is not None
        and walk.disposition.kind == "delivered"
        and destination is None
    ):
        return not_verifiable(label, walk, "the destination is not a lab namespace")

    nodes = [names.netns(ns.name) for ns in state.nodes()]
    system.parallel(lambda netns: system.netns_exec(netns, ["conntrack", "-F"], check=False), nodes)
    _zero_counters(state, names)
    listener: subprocess.Popen[str] | None = None
    with Capture(capture_targets(state, names, walk)) as capture:
        try:
            if destination is not None and flow.proto != "icmp":
                namespace, packet = destination
                listener = subprocess.Popen(
                    _agent(
                        names.netns(namespace.name),
                        "listen",
                        "--proto",
                        flow.proto,
                        "--addr",
                        str(packet.dst),
                        "--port",
                        str(packet.dport),
                        "--timeout",
                        "3",
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                if not _read_json(listener, 5).get("ready"):
                    raise LabError(f"listener in {namespace.name} did not start")
            send = system.run(
                _agent(
                    names.netns(source.where.name),
                    "send",
                    "--proto",
                    flow.proto,
                    "--src",
                    str(flow.src.address),
                    "--sport",
                    str(flow.sport or 0),
                    "--dst",
                    str(flow.dst.address),
                    "--dport",
                    str(flow.dport or 0),
                    "--timeout",
                    "1.5",
                ),
                check=False,
                timeout=10,
            )
            sent = json.loads(send.stdout.splitlines()[-1]) if send.stdout else {"ok": False}
            received: dict[str, object] = {"ok": sent.get("ok", False)}
            if listener is not None:
                received = _read_json(listener, 4)
            time.sleep(0.05)
            observed = capture.stop()
        finally:
            if listener is not None:
                listener.kill()
                listener.wait()
    routes = _route_gets(walk, names)
    conntrack = {
        ns.name: parse_conntrack(
            system.netns_exec(names.netns(ns.name), ["conntrack", "-L"], check=False).stdout
        )
        for ns in state.nodes()
    }
    hits = _rule_hits(state, names)
    return judge(label, walk, observed, routes, conntrack, bool(received.get("ok")), hits)


RuleKey = tuple[str, str, int]
"""(table, chain, position) of one iptables rule."""

_IPTABLES = {"legacy": "iptables-legacy", "nft": "iptables-nft"}


def _zero_counters(state: DataplaneState, names: LabNames) -> None:
    """Zero every rule counter of every node, so what moves afterwards is this walk's traffic
    (ARP and IPv6 never traverse the IPv4 tables)."""

    def zero(namespace: Namespace) -> None:
        assert namespace.iptables is not None
        binary = _IPTABLES[namespace.iptables.backend]
        for table in ("raw", "mangle", "nat", "filter"):
            if f"*{table}" in namespace.iptables.save:
                system.netns_exec(names.netns(namespace.name), [binary, "-w", "-t", table, "-Z"])

    system.parallel(zero, [ns for ns in state.nodes() if ns.iptables is not None])


def _rule_hits(state: DataplaneState, names: LabNames) -> dict[str, frozenset[RuleKey]]:
    """The rules whose packet counters moved, per node, read with `iptables-save -c`."""
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

    return dict(system.parallel(read, [ns for ns in state.nodes() if ns.iptables is not None]))


def expected_rule_hits(walk: Walk) -> dict[str, frozenset[RuleKey]]:
    """The rules the simulated walk (forward and return) says matched, per node that the walk
    ran netfilter in (a walk that makes no claim about a node's rules is not held to one)."""
    hits: dict[str, set[RuleKey]] = {}
    for _, one in _directions(walk):
        for hop in one.hops:
            if hop.where.kind != "node" or not any(s.kind == "netfilter" for s in hop.steps):
                continue
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


def compare_rule_hits(walk: Walk, hits: dict[str, frozenset[RuleKey]]) -> list[Difference]:
    """Rules the kernel counted but the walk did not match, and the other way round."""
    differences: list[Difference] = []
    expected = expected_rule_hits(walk)
    for node, seen in sorted(hits.items()):
        want = expected.get(node)
        if want is None or want == seen:
            continue

        def show(keys: Iterable[RuleKey]) -> str:
            return ", ".join(f"{t}/{c} #{p}" for t, c, p in sorted(keys)) or "none"

        differences.append(
            Difference(
                "forward",
                "netfilter",
                f"{node} iptables counters",
                f"matched {show(want)}",
                f"counted {show(seen)} (missing {show(want - seen)}, extra {show(seen - want)})",
            )
        )
    return differences


def judge(
    label: str,
    walk: Walk,
    observed: Sequence[TimedObservation],
    routes: dict[tuple[Direction, int], RouteGet],
    conntrack: dict[str, tuple[ConntrackEntry, ...]],
    delivered: bool,
    rule_hits: dict[str, frozenset[RuleKey]] | None = None,
) -> Verdict:
    """The comparison itself, on parsed observations (pure, unit-tested)."""
    split = classify(walk, observed)
    nat = any(step.kind == "nat" and step.rewrote for hop in walk.hops for step in hop.steps)
    differences = compare_wire("forward", list(walk.wire()), split["forward"], nat_ports=nat)
    if walk.reply is not None:
        differences += compare_wire(
            "return", list(walk.reply.wire()), split["return"], nat_ports=nat
        )
    for direction, one in _directions(walk):
        for index, hop in enumerate(one.hops):
            got = routes.get((direction, index))
            if got is not None:
                differences += compare_route(direction, hop, got)
    differences += compare_conntrack(walk, conntrack)
    if rule_hits is not None:
        differences += compare_rule_hits(walk, rule_hits)
    expected_delivery = walk.disposition is not None and walk.disposition.kind == "delivered"
    if walk.reply is not None and walk.reply.disposition is not None:
        expected_delivery = expected_delivery and walk.reply.disposition.kind == "delivered"
    if expected_delivery != delivered:
        differences.append(
            Difference(
                "forward",
                "disposition",
                walk.disposition.where.name if walk.disposition else "walk",
                "delivered" if expected_delivery else "dropped",
                "delivered" if delivered else "not delivered",
            )
        )
    return Verdict(
        label, walk.flow.first_packet().five_tuple(), tuple(differences), tuple(observed)
    )


def _directions(walk: Walk) -> list[tuple[Direction, Walk]]:
    result: list[tuple[Direction, Walk]] = [("forward", walk)]
    if walk.reply is not None:
        result.append(("return", walk.reply))
    return result


def _route_gets(walk: Walk, names: LabNames) -> dict[tuple[Direction, int], RouteGet]:
    """`ip route get` for every pod/node hop that routed the packet, as that hop saw it."""
    jobs: list[tuple[tuple[Direction, int], list[str]]] = []
    for direction, one in _directions(walk):
        for index, hop in enumerate(one.hops):
            packet = route_step_packet(hop)
            if hop.where.kind not in ("pod", "node") or packet is None or hop.oif is None:
                continue
            argv = [
                "ip",
                "-n",
                names.netns(hop.where.name),
                "route",
                "get",
                str(packet.dst),
                "from",
                str(packet.src),
            ]
            if hop.iif is not None:
                argv += ["iif", hop.iif]
            if packet.mark:
                argv += ["mark", f"{packet.mark:#x}"]
            jobs.append(((direction, index), argv))
    results = system.parallel(lambda job: system.run(job[1], check=False), jobs)
    return {
        key: parse_route_get(r.stdout, r.stderr) for (key, _), r in zip(jobs, results, strict=True)
    }
