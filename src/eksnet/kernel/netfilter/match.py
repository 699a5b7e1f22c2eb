"""Whether a rule's matches hold for one packet (linux-dataplane.md §8), as pure functions.

A match is a predicate except:

* `statistic --mode random`, a fresh draw each time it is evaluated: its result here is the
  exact probability of matching, so the traversal can split into weighted branches instead of
  drawing;
* `recent`, which reads and changes the namespace's recent lists (`recent.py`): state goes in
  and comes out, like conntrack's table;
* `nfacct`, which counts the packet into a named object whenever it is evaluated.

`rule_branches` evaluates a rule's matches in order, stopping at the first that fails (so a
`recent --set` after a failing match does not run, one before it does), and says every way it
can come out. What needs the namespace's routing (`addrtype`), history (`statistic --mode
nth`) or clock (`recent --seconds`) comes in through `NfEnv`, so this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from ipaddress import IPv4Address
from typing import Any

from eksnet.errors import NotModelled
from eksnet.kernel.conntrack import (
    PROTO_NUMBERS,
    SCTP_INIT,
    ConntrackEntry,
    ConntrackTable,
    CtState,
    CtStatus,
    Direction,
    Proto,
    SctpChunk,
    Tuple,
)
from eksnet.kernel.netfilter.recent import RecentSpec, RecentTables, recent_match
from eksnet.kernel.netfilter.ruleset import (
    AddressMatch,
    AddrtypeMatch,
    CommentMatch,
    ConnmarkMatch,
    ConntrackMatch,
    CtAddressCondition,
    CtDirCondition,
    CtExpireCondition,
    CtPortCondition,
    CtProtoCondition,
    CtStateCondition,
    CtStatusCondition,
    FragmentMatch,
    IcmpMatch,
    InterfaceMatch,
    MarkMatch,
    Match,
    MultiportMatch,
    NfacctMatch,
    PortMatch,
    ProtocolMatch,
    RecentMatch,
    Rule,
    SctpChunkMatch,
    SctpMatch,
    StatisticMatch,
    UnmodelledMatch,
)

AddrTypeLookup = Callable[[IPv4Address, str | None], str]
"""(address, device or None) → route type name (`LOCAL`, `UNICAST`, `BROADCAST`, …) as the
namespace's routing sees it; with a device, only that device's addresses count as LOCAL
(`--limit-iface-in/out`)."""

NthCount = Callable[[str, str, int], int]
"""(table, chain, position) → how many packets evaluated that rule's `statistic --mode nth`
match before this one (its shared counter)."""


def _no_history(table: str, chain: str, position: int) -> int:
    del table, chain, position
    return 0


DEFAULT_NOW = 0.0
"""The time a walk happens at unless told otherwise (seconds on the namespace's clock): only
differences matter (`recent --seconds`)."""


@dataclass(frozen=True, slots=True)
class NfEnv:
    """What evaluating rules needs from outside the packet: the namespace's address types, the
    history of `nth` counters (default: no packet evaluated any rule before) and the time now
    (`recent`; nothing here reads a clock)."""

    addr_type: AddrTypeLookup
    nth_count: NthCount = _no_history
    now: float = DEFAULT_NOW


@dataclass(frozen=True, slots=True)
class NfPacket:
    """A packet as netfilter sees it at one hook.

    `iif`/`oif` are the hook's in and out devices (None where the hook has none: no `iif` in
    OUTPUT/POSTROUTING for local traffic, no `oif` in PREROUTING/INPUT). `ct` is the conntrack
    entry attached at the conntrack stage (None for INVALID or UNTRACKED packets), `ctstate` and
    `ct_direction` what that stage decided. TCP `tcp_flags` are names (`SYN`, `ACK`, …).
    `ttl` is the IP header's; `sctp_chunks` an SCTP packet's (type, flags) chunks, None when the
    caller does not know them (then `-m sctp --chunk-types` is not modelled for it).
    """

    src: IPv4Address
    dst: IPv4Address
    proto: Proto
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    tcp_flags: frozenset[str] = frozenset()
    iif: str | None = None
    oif: str | None = None
    mark: int = 0
    ctstate: CtState = "NEW"
    ct: ConntrackEntry | None = None
    ct_direction: Direction = "ORIGINAL"
    ttl: int = 64
    sctp_chunks: tuple[SctpChunk, ...] | None = None

    def __post_init__(self) -> None:
        tracked = self.ctstate in ("NEW", "ESTABLISHED", "RELATED")
        if tracked and self.ct is None:
            raise ValueError(f"a {self.ctstate} packet needs its conntrack entry (ct)")
        if not tracked and self.ct is not None:
            raise ValueError(f"an {self.ctstate} packet has no conntrack entry")
        if not 0 <= self.mark <= 0xFFFFFFFF:
            raise ValueError(f"mark {self.mark:#x} is not 32 bits")
        if self.proto == "icmp" or self.sport is None or self.dport is None:
            self.tuple  # noqa: B018 - validates the ICMP fields (or refuses missing ports)
        elif not (0 <= self.sport <= 65535 and 0 <= self.dport <= 65535) or (
            self.icmp_type is not None or self.icmp_code is not None or self.icmp_id is not None
        ):
            self.tuple  # noqa: B018 - Tuple says what is wrong

    @classmethod
    def new_connection(
        cls,
        src: IPv4Address,
        dst: IPv4Address,
        proto: Proto,
        sport: int | None = None,
        dport: int | None = None,
        *,
        icmp_type: int | None = None,
        icmp_code: int | None = None,
        icmp_id: int | None = None,
        tcp_flags: frozenset[str] | None = None,
        iif: str | None = None,
        oif: str | None = None,
        mark: int = 0,
        ttl: int = 64,
        sctp_chunks: tuple[SctpChunk, ...] | None = None,
    ) -> NfPacket:
        """The first packet of a connection with its fresh unconfirmed entry (ctstate NEW), as
        the conntrack stage attaches it; a TCP first packet is a SYN and an SCTP one an INIT
        unless told otherwise."""
        flags = tcp_flags if tcp_flags is not None else frozenset({"SYN"} if proto == "tcp" else ())
        chunks = (sctp_chunks or (SCTP_INIT,)) if proto == "sctp" else None
        tuple_ = Tuple(src, dst, proto, sport, dport, icmp_type, icmp_code, icmp_id)
        entry = ConntrackTable().create(tuple_, tcp_flags=flags, sctp_chunks=chunks or ())
        if entry is None:
            raise ValueError(f"{tuple_} cannot start a connection")
        return cls(
            src, dst, proto, sport, dport, icmp_type, icmp_code, icmp_id,
            tcp_flags=flags, iif=iif, oif=oif, mark=mark, ctstate="NEW", ct=entry, ttl=ttl,
            sctp_chunks=chunks,
        )  # fmt: skip

    @property
    def tuple(self) -> Tuple:
        """The packet's conntrack tuple (its addresses and ports as they are now)."""
        return Tuple(
            self.src, self.dst, self.proto, self.sport, self.dport,
            self.icmp_type, self.icmp_code, self.icmp_id,
        )  # fmt: skip

    def with_tuple(self, tuple_: Tuple) -> NfPacket:
        """This packet with addresses and ports rewritten (a NAT stage's result)."""
        return replace(
            self,
            src=tuple_.src,
            dst=tuple_.dst,
            sport=tuple_.sport,
            dport=tuple_.dport,
            icmp_id=tuple_.icmp_id,
        )

    @property
    def ct_mark(self) -> int:
        """The connection's mark (0 without an entry; the CONNMARK targets then do nothing)."""
        return 0 if self.ct is None else self.ct.mark

    @property
    def ct_original(self) -> Tuple | None:
        return None if self.ct is None else self.ct.original

    @property
    def ct_reply(self) -> Tuple | None:
        return None if self.ct is None else self.ct.reply

    @property
    def ct_status(self) -> frozenset[CtStatus]:
        return frozenset() if self.ct is None else self.ct.status


ONE = Fraction(1)
ZERO = Fraction(0)

RecentSpecs = Callable[[str], RecentSpec]
"""A ruleset's `recent_spec`: the mask and ring size of a list, by name."""


def _default_specs(name: str) -> RecentSpec:
    del name
    return RecentSpec()


STATEFUL_MATCHES: tuple[type, ...] = (RecentMatch, NfacctMatch)
"""Matches that change state when evaluated (the recent lists, an nfacct counter)."""


def is_plain(rule: Rule) -> bool:
    """Whether `rule`'s matches are plain predicates: no random draw and no state they change,
    so the rule either matches or not (`rule_holds`). Other rules go through `rule_branches`."""
    return not any(
        isinstance(match, STATEFUL_MATCHES)
        or (isinstance(match, StatisticMatch) and match.mode == "random")
        for match in rule.matches
    )


def rule_holds(rule: Rule, packet: NfPacket, env: NfEnv) -> bool:
    """Whether a plain rule (`is_plain`) matches: all matches hold, tried in order."""
    checks = _CHECKS
    for match in rule.matches:  # noqa: SIM110 - the plain loop is the hot path of a walk
        if not checks[type(match)](match, packet, env, rule):
            return False
    return True


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One way evaluating a rule's matches can come out: with what probability, whether the rule
    matched, and the state after the matches that ran (recent lists, nfacct counts)."""

    probability: Fraction
    matched: bool
    recent: RecentTables
    nfacct: tuple[str, ...]


def rule_branches(
    rule: Rule,
    packet: NfPacket,
    env: NfEnv,
    recent: RecentTables,
    nfacct: tuple[str, ...] = (),
    specs: RecentSpecs = _default_specs,
) -> tuple[RuleOutcome, ...]:
    """Every way `rule`'s matches can come out for `packet`, starting from the state
    (`recent`, `nfacct`) the packet has so far; the probabilities sum to 1.

    The matches run in order and stop at the first that fails. A random `statistic` match splits:
    with its probability the evaluation goes on, otherwise the rule fails right there (with the
    state as it was then). Ways that fail with the same state are one outcome (nothing tells them
    apart), so a rule without state or draws comes out exactly once. The matched way, if any,
    comes first.
    """
    probability = ONE
    failed: dict[tuple[RecentTables, tuple[str, ...]], Fraction] = {}
    for match in rule.matches:
        if isinstance(match, StatisticMatch) and match.mode == "random":
            chance = match.probability
            if chance < 1:
                key = (recent, nfacct)
                miss = 1 - chance
                missed = miss if probability is ONE else probability * miss
                failed[key] = failed[key] + missed if key in failed else missed
                probability = chance if probability is ONE else probability * chance
                if chance == 0:
                    break
            continue
        if isinstance(match, NfacctMatch):
            nfacct = (*nfacct, match.name)
            continue
        if isinstance(match, RecentMatch):
            hit, recent = recent_match(
                recent,
                match.check,
                specs(match.check.name),
                src=packet.src,
                dst=packet.dst,
                ttl=_ttl_seen(packet),
                now=env.now,
            )
        else:
            hit = match_holds(match, packet, env, rule)
        if not hit:
            key = (recent, nfacct)
            failed[key] = failed[key] + probability if key in failed else probability
            probability = ZERO
            break
    outcomes = [RuleOutcome(probability, True, recent, nfacct)] if probability else []
    outcomes += [RuleOutcome(p, False, r, n) for (r, n), p in failed.items() if p]
    return tuple(outcomes)


def _ttl_seen(packet: NfPacket) -> int:
    """The TTL `recent --rttl` compares: "as seen before forwarding", i.e. +1 on a packet that
    came in on one device and leaves on another without a local socket (`recent_mt`; u8)."""
    forwarded = packet.iif is not None and packet.oif is not None
    return (packet.ttl + 1) & 0xFF if forwarded else packet.ttl


def rule_match_probability(rule: Rule, packet: NfPacket, env: NfEnv) -> Fraction:
    """The probability that all of `rule`'s matches hold (0 or 1 unless a `statistic --mode
    random` match is reached), with empty `recent` lists. Matches are tried in order and
    evaluation stops at the first that fails, so an unmodelled match after a failing one is
    never reached."""
    if is_plain(rule):
        return ONE if rule_holds(rule, packet, env) else ZERO
    return sum(
        (o.probability for o in rule_branches(rule, packet, env, RecentTables()) if o.matched),
        ZERO,
    )


def match_probability(match: Match, packet: NfPacket, env: NfEnv, rule: Rule) -> Fraction:
    """The probability that one stateless match holds (0 or 1 for every deterministic match)."""
    if isinstance(match, StatisticMatch) and match.mode == "random":
        return match.probability
    return ONE if match_holds(match, packet, env, rule) else ZERO


def match_holds(match: Match, packet: NfPacket, env: NfEnv, rule: Rule) -> bool:
    """Whether one deterministic match holds (`nth` reads its counter from `env`; an `nfacct`
    match holds, its count is `rule_branches`' business). Raises NotModelled for an unmodelled
    match, ValueError for the random and `recent` matches, which are not predicates."""
    return _CHECKS[type(match)](match, packet, env, rule)


def _holds(match: Match, packet: NfPacket, env: NfEnv) -> bool:
    """A stateless match without the rule (`nth` needs it: use `match_holds`)."""
    return _CHECKS[type(match)](match, packet, env, None)


def _statistic(match: StatisticMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    if match.mode == "random":
        raise ValueError("statistic --mode random is a draw, not a predicate")
    assert rule is not None
    seen = env.nth_count(rule.table, rule.chain, rule.position)
    return ((seen % match.every) == match.packet) != match.invert


def _unmodelled(match: UnmodelledMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    raise NotModelled(f"iptables match -m {match.module}")


def _stateful(match: RecentMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    raise ValueError("recent reads and changes state: use rule_branches")


def _address(match: AddressMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    address = packet.src if match.field == "src" else packet.dst
    return match.contains(address) != match.invert


def _interface(match: InterfaceMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    return match.matches_name(packet.iif if match.field == "in" else packet.oif)


def _protocol(match: ProtocolMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    return (PROTO_NUMBERS[packet.proto] == match.number) != match.invert


def _fragment(match: FragmentMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    return match.invert  # the model has no fragments


def _always(match: Match, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    return True  # comment; nfacct (its count is rule_branches' business)


def _mark(match: MarkMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    return ((packet.mark & match.mask) == match.value) != match.invert


def _connmark(match: ConnmarkMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    if packet.ct is None:
        return False  # xt_connmark: no entry, no match (even inverted)
    return ((packet.ct.mark & match.mask) == match.value) != match.invert


def _icmp(match: IcmpMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    if packet.proto != "icmp":
        return False
    hit = match.icmp_type is None or (
        packet.icmp_type == match.icmp_type
        and packet.icmp_code is not None
        and match.code_low <= packet.icmp_code <= match.code_high
    )
    return hit != match.invert


def _multiport(match: MultiportMatch, packet: NfPacket, env: NfEnv, rule: Rule | None) -> bool:
    if packet.proto == "icmp":
        return False
    if match.which == "src":
        ports: tuple[int | None, ...] = (packet.sport,)
    elif match.which == "dst":
        ports = (packet.dport,)
    else:
        ports = (packet.sport, packet.dport)
    hit = any(port in r for port in ports for r in match.ports)
    return hit != match.invert


def _addrtype(match: AddrtypeMatch, packet: NfPacket, env: NfEnv) -> bool:
    device = packet.iif if match.limit_iface_in else packet.oif if match.limit_iface_out else None
    if match.src_types is not None:
        kind = env.addr_type(packet.src, device)
        if (kind in match.src_types) == match.src_invert:
            return False
    if match.dst_types is not None:
        kind = env.addr_type(packet.dst, device)
        if (kind in match.dst_types) == match.dst_invert:
            return False
    return True


def ctstate_bits(packet: NfPacket) -> frozenset[str]:
    """The state bits `-m conntrack --ctstate` tests: the packet's ctstate, plus SNAT/DNAT when
    the entry's tuples show that translation (§6.2)."""
    bits: set[str] = {packet.ctstate}
    if packet.ct is not None:
        if packet.ct.snat:
            bits.add("SNAT")
        if packet.ct.dnat:
            bits.add("DNAT")
    return frozenset(bits)


def _conntrack(match: ConntrackMatch, packet: NfPacket) -> bool:
    """xt_conntrack: the state test first; without an entry only a state test can match."""
    conditions = match.conditions
    states = [c for c in conditions if isinstance(c, CtStateCondition)]
    for state in states:
        bits = ctstate_bits(packet) if match.module == "conntrack" else frozenset({packet.ctstate})
        if bool(state.states & bits) == state.invert:
            return False
    entry = packet.ct
    if entry is None:
        return bool(states)
    for condition in conditions:
        if isinstance(condition, CtStateCondition):
            continue
        if _ct_condition(condition, entry, packet) == condition.invert:
            return False
    return True


def _ct_condition(
    condition: CtProtoCondition
    | CtAddressCondition
    | CtPortCondition
    | CtStatusCondition
    | CtExpireCondition
    | CtDirCondition,
    entry: ConntrackEntry,
    packet: NfPacket,
) -> bool:
    """One non-state condition, before inversion."""
    if isinstance(condition, CtProtoCondition):
        return PROTO_NUMBERS[entry.original.proto] == condition.number
    if isinstance(condition, CtAddressCondition):
        tuple_ = entry.original if condition.which.startswith("orig") else entry.reply
        address = tuple_.src if condition.which.endswith("src") else tuple_.dst
        return (int(address) ^ int(condition.address)) & condition.mask == 0
    if isinstance(condition, CtPortCondition):
        tuple_ = entry.original if condition.which.startswith("orig") else entry.reply
        port = tuple_.source_port if "src" in condition.which else tuple_.destination_port
        return port in condition.ports
    if isinstance(condition, CtStatusCondition):
        return bool(condition.flags & entry.status)
    if isinstance(condition, CtExpireCondition):
        return condition.low <= entry.timeout <= condition.high
    return packet.ct_direction == condition.direction


def _ports(match: PortMatch, packet: NfPacket) -> bool:
    if packet.proto != match.proto:
        return False
    if match.sport is not None and (packet.sport in match.sport) == match.sport_invert:
        return False
    if match.dport is not None and (packet.dport in match.dport) == match.dport_invert:
        return False
    if match.tcp_flags is not None:
        mask, compare = match.tcp_flags
        if ((packet.tcp_flags & mask) == compare) == match.tcp_flags_invert:
            return False
    return True


def _sctp(match: SctpMatch, packet: NfPacket) -> bool:
    """xt_sctp's `sctp_mt`: each given condition XOR its `!` (`SCCHECK`), ports first."""
    if packet.proto != "sctp":
        return False
    if match.sport is not None and (packet.sport in match.sport) == match.sport_invert:
        return False
    if match.dport is not None and (packet.dport in match.dport) == match.dport_invert:
        return False
    if match.chunks is not None:
        if packet.sctp_chunks is None:
            raise NotModelled(
                "iptables match -m sctp --chunk-types for a packet whose chunks are unknown"
            )
        if _chunks_match(match.chunks, packet.sctp_chunks) == match.chunks_invert:
            return False
    return True


def _chunks_match(spec: SctpChunkMatch, chunks: tuple[SctpChunk, ...]) -> bool:
    """xt_sctp's `match_packet` over the packet's chunks in order (`match_flags`: a chunk type
    with a flag condition must carry exactly those flag bits under the mask)."""

    def flags_ok(kind: int, flags: int) -> bool:
        for condition_kind, flag, mask in spec.flags:
            if condition_kind == kind:
                return (flags & mask) == flag
        return True

    missing = set(spec.types) if spec.mode == "all" else set()
    for kind, flags in chunks:
        if kind in spec.types:
            if spec.mode == "any" and flags_ok(kind, flags):
                return True
            if spec.mode == "all" and flags_ok(kind, flags):
                missing.discard(kind)
            if spec.mode == "only" and not flags_ok(kind, flags):
                return False
        elif spec.mode == "only":
            return False
    if spec.mode == "all":
        return not missing
    return spec.mode == "only"


_CHECKS: dict[type, Callable[[Any, NfPacket, NfEnv, Rule | None], bool]] = {
    AddressMatch: _address,
    InterfaceMatch: _interface,
    ProtocolMatch: _protocol,
    FragmentMatch: _fragment,
    CommentMatch: _always,
    NfacctMatch: _always,
    AddrtypeMatch: lambda match, packet, env, rule: _addrtype(match, packet, env),
    MarkMatch: _mark,
    ConnmarkMatch: _connmark,
    ConntrackMatch: lambda match, packet, env, rule: _conntrack(match, packet),
    PortMatch: lambda match, packet, env, rule: _ports(match, packet),
    IcmpMatch: _icmp,
    SctpMatch: lambda match, packet, env, rule: _sctp(match, packet),
    MultiportMatch: _multiport,
    StatisticMatch: _statistic,
    RecentMatch: _stateful,
    UnmodelledMatch: _unmodelled,
}
"""How each match type is checked, by type (one lookup instead of a chain of isinstance)."""
