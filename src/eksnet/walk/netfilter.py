"""One packet's passage through a namespace's netfilter hooks, as walk steps.

The kernel model evaluates (`kernel.netfilter.traverse` for one table, `kernel.conntrack` for
entries and NAT bindings); this module strings the stages together in `kernel.hooks.HOOK_ORDER`
for one namespace visit and says what happened in walk vocabulary: which rules matched (with
table, chain, position and their `-A` text), which conntrack entry was created or matched, which
NAT binding rewrote the packet. A `Passage` lives for one visit of one namespace: conntrack
attaches the entry at PREROUTING/OUTPUT and confirms it at INPUT/POSTROUTING.

Conntrack runs only where something registered it, as in the kernel (since 4.x hooks register
on demand): a namespace with a nat table or rules using connection state. A pod with no
iptables rules has none.

State that outlives the packet is carried by the caller, per namespace, and handed to every
`Passage`: the conntrack tables (`conntrack`) and the `recent` lists (`recent`, kube-proxy's
ClientIP session affinity). Both dicts are updated in place as the packet goes, so the walk's
journey holds them after the walk. Time is an input: `now`, seconds on the namespaces' clocks
(`kernel.netfilter.DEFAULT_NOW` unless given).

A second connection that sticks: the engine keeps, after a walk, the `recent` dict its journey
carried (per branch: each load-balanced way set a different endpoint's list) and starts the
second connection's walk with a copy of it, and `now` advanced by the time between the two
connections (`--rcheck --seconds S` lets a client stick while less than S seconds passed;
`--reap` forgets it afterwards). The first connection's conntrack entries may be carried too
or not (a new source port makes a new connection either way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network

from eksnet.dataplane.state import Namespace
from eksnet.errors import InputError, NotModelled
from eksnet.kernel.conntrack import (
    NAT_MANIP,
    SCTP_INIT,
    SCTP_INIT_ACK,
    ConntrackEntry,
    ConntrackTable,
    CtLookup,
    SctpChunk,
    Tuple,
    apply_nat,
    choose_nat_port,
    conntrack_in,
    conntrack_list_line,
    conntrack_tuple_text,
    nat_rewrite_at,
    null_binding,
)
from eksnet.kernel.fib import is_local_address, local_table, select_source
from eksnet.kernel.hooks import HOOK_ORDER, Hook, StageKind
from eksnet.kernel.netfilter import (
    DEFAULT_NOW,
    EMPTY_RECENT,
    NfEnv,
    NfOutcome,
    NfPacket,
    RecentTables,
    RuleHit,
    Ruleset,
    parse_ruleset,
    traverse,
)
from eksnet.walk.model import ConntrackRecord, Decision, Packet, Step

_TCP_FLAGS = {"S": frozenset({"SYN"}), "S.": frozenset({"SYN", "ACK"}), ".": frozenset({"ACK"})}

Choose = Callable[[str, Sequence[NfOutcome]], NfOutcome]
"""Picks one of a table's weighted outcomes where a `statistic` match splits the walk (the
engine enumerates every outcome by replaying the walk with each choice)."""


def only_outcome(where: str, outcomes: Sequence[NfOutcome]) -> NfOutcome:
    """The `Choose` of a caller that cannot branch: one outcome, or say what is missing."""
    if len(outcomes) != 1:
        raise NotModelled(f"{where} splits into {len(outcomes)} load-balanced branches here")
    return outcomes[0]


@lru_cache(maxsize=256)
def _ruleset(save: str, source: str) -> Ruleset:
    return parse_ruleset(save, source=source)


def ruleset_of(namespace: Namespace) -> Ruleset | None:
    if namespace.iptables is None:
        return None
    return _ruleset(namespace.iptables.save, f"iptables of {namespace.name}")


def conntrack_active(namespace: Namespace) -> bool:
    """Whether conntrack hooks are registered here: a nat table, or a rule that reads or writes
    connection state."""
    if namespace.iptables is None:
        return False
    save = namespace.iptables.save
    return "*nat" in save or any(
        word in save for word in ("CONNMARK", "connmark", "conntrack", "-m state")
    )


@dataclass(frozen=True, slots=True)
class HookResult:
    """What one hook did: its steps, the packet after it, or why it dropped the packet."""

    steps: tuple[Step, ...]
    packet: Packet
    dropped: str | None = None
    records: tuple[ConntrackRecord, ...] = ()
    reroute: bool = False
    """OUTPUT changed the mark or the destination: the kernel looks the route up again."""
    rejected_with: str | None = None
    """A REJECT dropped the packet and answers the sender with this (`icmp-port-unreachable`,
    `tcp-reset`, … as `iptables-save` names it)."""


def _tuple(packet: Packet) -> Tuple:
    if packet.proto == "icmp":
        return Tuple(
            packet.src,
            packet.dst,
            "icmp",
            icmp_type=packet.icmp_type,
            icmp_code=packet.icmp_code or 0,
            icmp_id=packet.icmp_id,
        )
    if packet.sport is None or packet.dport is None:
        raise InputError(
            f"a {packet.proto} packet needs both ports to be tracked", fix="add --port N"
        )
    return Tuple(packet.src, packet.dst, packet.proto, packet.sport, packet.dport)


def _from_tuple(packet: Packet, tuple_: Tuple) -> Packet:
    if packet.proto == "icmp":
        return packet.but(src=tuple_.src, dst=tuple_.dst, icmp_id=tuple_.icmp_id)
    return packet.but(src=tuple_.src, dst=tuple_.dst, sport=tuple_.sport, dport=tuple_.dport)


def _port_chooser(flow: Tuple) -> Callable[[int, int], int]:
    """A reproducible stand-in for the kernel's random port: a hash of the flow (time and
    randomness are inputs; a walk must give the same answer twice). The flow is only spelled
    out when a port is drawn (most bindings keep theirs)."""
    counter = [0]

    def choose(low: int, high: int) -> int:
        counter[0] += 1
        digest = hashlib.sha256(f"{flow}/{counter[0]}".encode()).digest()
        return low + int.from_bytes(digest[:4], "big") % (high - low + 1)

    return choose


def _chosen(manip: str, random_port: bool, original: Tuple, port: int | None) -> tuple[int, ...]:
    """The port (or ICMP id) a source NAT picked at random: with `--random`/`--random-fully`, or
    when the original one was not free (§6.6). A destination NAT's port is the rule's own."""
    if manip != "SRC" or port is None:
        return ()
    kept = original.icmp_id if original.proto == "icmp" else original.source_port
    return (port,) if random_port or port != kept else ()


_ZERO_NET = IPv4Network("0.0.0.0/8")
_LIMITED_BROADCAST = IPv4Address("255.255.255.255")


def _sctp_chunks_of(table: ConntrackTable, tuple_: Tuple) -> tuple[SctpChunk, ...] | None:
    """Which chunk a walk's SCTP packet carries. A walk's packets are the first packet of an
    association and the first answer to it, which the kernel sees as an INIT and its INIT_ACK;
    conntrack tells them apart (no entry yet: the INIT; the reply to an entry still CLOSED:
    the INIT_ACK). Anything else is unknown (None): `-m sctp --chunk-types` is then not
    modelled, and conntrack treats the packet as a DATA chunk."""
    found = table.lookup(tuple_)
    if found is None:
        return (SCTP_INIT,)
    entry, direction = found
    if direction == "REPLY" and entry.sctp_state == "CLOSED":
        return (SCTP_INIT_ACK,)
    return None


@lru_cache(maxsize=8192)
def _said(hit: RuleHit) -> tuple[Decision, str, str]:
    """What a walk step says about a matched rule: the decision (the rule's `-A` line and
    place), the detail line and the summary's part (kept: a walk meets the same rules again)."""
    decision = Decision(
        "iptables", hit.text, table=hit.table, chain=hit.chain, position=hit.position
    )
    detail = f"{hit.table}/{hit.chain} #{hit.position}: {hit.effect}"
    return decision, detail, f"{hit.chain} #{hit.position} {hit.effect}"


def _recent_changes(before: RecentTables, after: RecentTables) -> tuple[str, ...]:
    """What a table's rules did to the `recent` lists, in words (one line per changed list)."""
    lines = []
    for name in sorted({lst.name for lst in (*before.lists, *after.lists)}):
        old, new = before.addresses(name), after.addresses(name)
        old_list, new_list = before.get(name), after.get(name)
        if old_list == new_list:
            continue
        added = ", ".join(str(a) for a in sorted(new - old))
        removed = ", ".join(str(a) for a in sorted(old - new))
        if added:
            lines.append(f"recent list {name}: remembers {added}")
        if removed:
            lines.append(f"recent list {name}: forgot {removed}")
        if not added and not removed:
            lines.append(f"recent list {name}: refreshed {', '.join(str(a) for a in sorted(new))}")
    return tuple(lines)


@dataclass(slots=True)
class Passage:
    """One visit of one namespace by one packet.

    `conntrack` and `recent` are the caller's per-namespace state, read and updated here (see
    the module doc); `now` is the time of the visit."""

    conntrack: dict[str, ConntrackTable]
    namespace: Namespace
    choose: Choose = only_outcome
    recent: dict[str, RecentTables] = field(default_factory=dict)
    now: float = DEFAULT_NOW
    ruleset: Ruleset | None = None
    active: bool = False
    lookup: CtLookup | None = None
    entry: ConntrackEntry | None = None
    _env: NfEnv | None = field(default=None, repr=False)
    _sctp_chunks: tuple[SctpChunk, ...] | None = field(default=None, repr=False)
    """An SCTP packet's chunks, as far as conntrack tells them (None: unknown)."""
    _address_types: dict[tuple[IPv4Address, str | None], str] = field(
        default_factory=dict, repr=False
    )
    """`-m addrtype` answers already given in this visit: the namespace's addresses do not
    change while a packet passes, and computing the local table per rule is what made a
    ruleset with `addrtype` in POSTROUTING slow."""

    def __post_init__(self) -> None:
        self.ruleset = ruleset_of(self.namespace)
        self.active = conntrack_active(self.namespace)
        self._env = NfEnv(addr_type=self._addr_type, now=self.now)

    # --- the hooks --------------------------------------------------------------------------

    def prerouting(self, packet: Packet, *, iif: str) -> HookResult:
        return self._hook(Hook.PREROUTING, packet, iif=iif, oif=None)

    def input(self, packet: Packet, *, iif: str) -> HookResult:
        return self._hook(Hook.INPUT, packet, iif=iif, oif=None)

    def output(self, packet: Packet, *, oif: str) -> HookResult:
        return self._hook(Hook.OUTPUT, packet, iif=None, oif=oif)

    def forward(self, packet: Packet, *, iif: str, oif: str) -> HookResult:
        return self._hook(Hook.FORWARD, packet, iif=iif, oif=oif)

    def postrouting(
        self, packet: Packet, *, iif: str | None, oif: str, nexthop: IPv4Address | None
    ) -> HookResult:
        return self._hook(Hook.POSTROUTING, packet, iif=iif, oif=oif, nexthop=nexthop)

    # --- machinery --------------------------------------------------------------------------

    def _hook(
        self,
        hook: Hook,
        packet: Packet,
        *,
        iif: str | None,
        oif: str | None,
        nexthop: IPv4Address | None = None,
    ) -> HookResult:
        steps: list[Step] = []
        records: list[ConntrackRecord] = []
        start = packet
        for stage in HOOK_ORDER[hook]:
            if stage.kind == StageKind.CONNTRACK:
                if self.active:
                    steps.append(self._conntrack_in(packet))
            elif stage.kind == StageKind.CONFIRM:
                record = self._confirm()
                if record is not None:
                    records.append(record)
                    steps.append(Step("conntrack", f"confirmed: {record.text}"))
            elif stage.table is not None and self.ruleset is not None:
                if self.ruleset.table(stage.table) is None:
                    continue
                nat_stage = stage.kind in (StageKind.NAT_DST, StageKind.NAT_SRC)
                if nat_stage and not self.active:
                    continue
                outcome, step = self._table(hook, stage.table, packet, iif, oif, nat_stage)
                if step is not None:
                    steps.append(step)
                if outcome.packet.mark != packet.mark:
                    packet = packet.but(mark=outcome.packet.mark)
                if outcome.verdict != "ACCEPT":
                    reason = self._drop_reason(outcome)
                    return HookResult(
                        tuple(steps), packet, reason, (), rejected_with=outcome.reject_with
                    )
                if nat_stage:
                    packet, nat_step = self._nat(hook, packet, outcome, oif, nexthop)
                    if nat_step is not None:
                        steps.append(nat_step)
        reroute = hook == Hook.OUTPUT and (packet.dst != start.dst or packet.mark != start.mark)
        return HookResult(tuple(steps), packet, None, tuple(records), reroute)

    def _table(
        self,
        hook: Hook,
        table: str,
        packet: Packet,
        iif: str | None,
        oif: str | None,
        nat_stage: bool,
    ) -> tuple[NfOutcome, Step | None]:
        assert self.ruleset is not None and self._env is not None
        if nat_stage and (self.entry is None or self.entry.nat_done(NAT_MANIP[hook])):
            # nat chains see only the first packet of a connection (§6.4).
            passthrough = NfOutcome(
                probability=Fraction(1),
                verdict="ACCEPT",
                packet=self._nf_packet(packet, iif, oif),
                nat=None,
                trace=(),
            )
            return passthrough, None
        before = self.recent.get(self.namespace.name, EMPTY_RECENT)
        outcomes = traverse(
            self.ruleset,
            table,
            hook.value,
            self._nf_packet(packet, iif, oif),
            self._env,
            recent=before,
        )
        outcome = self.choose(f"{table}/{hook.value} in {self.namespace.name}", outcomes)
        if outcome.recent is not before and outcome.recent != before:
            self.recent[self.namespace.name] = outcome.recent
        ct = outcome.packet.ct
        if ct is not None and self.entry is not None and ct.mark != self.entry.mark:
            self.entry = replace(self.entry, mark=ct.mark)
        said = [_said(hit) for hit in outcome.trace if not hit.is_policy]
        decisions = tuple(decision for decision, _, _ in said)
        details = tuple(detail for _, detail, _ in said)
        if outcome.recent is not before:
            details += _recent_changes(before, outcome.recent)
        details += tuple(f"nfacct {name}: counted" for name in outcome.nfacct)
        if said:
            summary = f"{table}/{hook.value}: " + "; ".join(short for _, _, short in said)
        else:
            summary = f"{table}/{hook.value}: no rule matched, policy {outcome.verdict}"
        marks = (
            f" (mark {packet.mark:#x} → {outcome.packet.mark:#x})"
            if (outcome.packet.mark != packet.mark)
            else ""
        )
        return outcome, Step("netfilter", summary + marks, decided_by=decisions, details=details)

    def _nf_packet(self, packet: Packet, iif: str | None, oif: str | None) -> NfPacket:
        ctstate = self.lookup.ctstate if self.lookup is not None else "UNTRACKED"
        entry = self.entry if ctstate in ("NEW", "ESTABLISHED", "RELATED") else None
        if entry is None and ctstate in ("NEW", "ESTABLISHED", "RELATED"):
            ctstate = "UNTRACKED"
        direction = self.lookup.direction if self.lookup is not None else "ORIGINAL"
        icmp = packet.proto == "icmp"
        chunks = self._sctp_chunks if packet.proto == "sctp" else None
        return NfPacket(
            src=packet.src,
            dst=packet.dst,
            proto=packet.proto,
            sport=packet.sport,
            dport=packet.dport,
            icmp_type=packet.icmp_type if icmp else None,
            icmp_code=(packet.icmp_code or 0) if icmp else None,
            icmp_id=packet.icmp_id if icmp else None,
            tcp_flags=_TCP_FLAGS.get(packet.tcp_flags or "", frozenset()),
            iif=iif,
            oif=oif,
            mark=packet.mark,
            ctstate=ctstate,
            ct=entry,
            ct_direction=direction,
            ttl=packet.ttl,
            sctp_chunks=chunks,
        )

    def _conntrack_in(self, packet: Packet) -> Step:
        table = self.conntrack.get(self.namespace.name, ConntrackTable())
        flags = _TCP_FLAGS.get(packet.tcp_flags or "", frozenset())
        if packet.proto == "sctp":
            self._sctp_chunks = _sctp_chunks_of(table, _tuple(packet))
        table, lookup = conntrack_in(
            table, _tuple(packet), tcp_flags=flags, sctp_chunks=self._sctp_chunks
        )
        self.conntrack[self.namespace.name] = table
        self.lookup = lookup
        self.entry = lookup.entry
        if lookup.entry is None:
            return Step("conntrack", f"conntrack: {lookup.ctstate} packet, no entry")
        if lookup.ctstate == "NEW" and not lookup.confirmed:
            return Step("conntrack", f"conntrack: new entry for {packet.five_tuple()} (NEW)")
        return Step(
            "conntrack",
            f"conntrack: matches {conntrack_list_line(lookup.entry)} "
            f"({lookup.direction.lower()} direction, {lookup.ctstate})",
            decided_by=(Decision("conntrack", conntrack_list_line(lookup.entry)),),
        )

    def _nat(
        self,
        hook: Hook,
        packet: Packet,
        outcome: NfOutcome,
        oif: str | None,
        nexthop: IPv4Address | None,
    ) -> tuple[Packet, Step | None]:
        if self.entry is None or self.lookup is None:
            return packet, None
        manip = NAT_MANIP[hook]
        entry = self.entry
        chosen: tuple[int, ...] = ()
        if not entry.confirmed and not entry.nat_done(manip):
            request = outcome.nat
            if request is None:
                entry = null_binding(entry, manip)
            else:
                address = request.to_address
                if address is None:  # MASQUERADE: the outgoing device's address (§6.5)
                    assert oif is not None
                    address = select_source(self.namespace, oif, nexthop)
                    if address is None:
                        raise NotModelled(f"MASQUERADE on {oif} without any IPv4 address")
                table = self.conntrack.get(self.namespace.name, ConntrackTable())
                port = choose_nat_port(
                    table, entry, request, address, _port_chooser(entry.original)
                )
                entry = apply_nat(entry, request, address, port)
                chosen = _chosen(manip, request.random_port, entry.original, port)
            self.entry = entry
            self.lookup = replace(self.lookup, entry=entry)
        before = _tuple(packet)
        after = nat_rewrite_at(hook, before, entry, self.lookup.direction)
        if after == before:
            return packet, None
        rewritten = _from_tuple(packet, after)
        what = "source" if manip == "SRC" else "destination"
        undo = (
            " (the reply undoes the original's binding)"
            if (self.lookup.direction == "REPLY")
            else ""
        )
        return rewritten, Step(
            "nat",
            f"NAT rewrites the {what}: {packet.five_tuple()} → {rewritten.five_tuple()}{undo}",
            before=packet,
            after=rewritten,
            chosen=chosen,
        )

    def persisted(self) -> ConntrackRecord | None:
        """The entry of a packet dropped after conntrack saw it: `nf_conntrack_in` updates a
        confirmed entry in place (the TCP state, the reply seen), so it keeps what this packet
        changed whatever happens to the packet later; a new entry is never confirmed and goes
        with its packet."""
        if not self.active or self.entry is None or not self.entry.confirmed:
            return None
        return self._confirm()

    def _confirm(self) -> ConntrackRecord | None:
        if not self.active or self.entry is None:
            return None
        table = self.conntrack.get(self.namespace.name, ConntrackTable())
        confirmed = self.entry.confirmed
        table = table.update(self.entry) if confirmed else table.confirm(self.entry)
        self.conntrack[self.namespace.name] = table
        stored = next(e for e in table if e.original == self.entry.original)
        self.entry = stored
        text = conntrack_list_line(stored)
        return ConntrackRecord(
            self.namespace.name,
            text,
            stored.mark,
            stored.snat or stored.dnat,
            conntrack_tuple_text(stored.original),
        )

    def _addr_type(self, address: IPv4Address, dev: str | None) -> str:
        """`inet_dev_addr_type` as `-m addrtype` asks it: 0.0.0.0/8 and 255.255.255.255 are
        BROADCAST, 224/4 MULTICAST; else the type of the local table's route for the address
        (LOCAL, BROADCAST), UNICAST without one. With a device (`--limit-iface-in/out`) the
        route must be through that device, or the answer is UNICAST."""
        known = self._address_types.get((address, dev))
        if known is None:
            known = self._address_types[(address, dev)] = self._type_of(address, dev)
        return known

    def _type_of(self, address: IPv4Address, dev: str | None) -> str:
        if address in _ZERO_NET or address == _LIMITED_BROADCAST:
            return "BROADCAST"
        if address.is_multicast:
            return "MULTICAST"
        if dev is None and is_local_address(self.namespace, address):
            return "LOCAL"
        best = None
        for route in local_table(self.namespace):
            if address in route.dst and (best is None or route.dst.prefixlen > best.dst.prefixlen):
                best = route
        if best is None or (dev is not None and best.dev != dev):
            return "UNICAST"
        return best.type.upper() if best.type in ("local", "broadcast") else "UNICAST"

    def _drop_reason(self, outcome: NfOutcome) -> str:
        last = outcome.trace[-1] if outcome.trace else None
        if last is None:
            return f"netfilter verdict {outcome.verdict}"
        where = f"{last.table}/{last.chain}"
        if last.position is not None:
            where += f" #{last.position}: {last.text}"
        return f"{outcome.verdict} by {where}"
