"""Whether a rule's matches hold for one packet (linux-dataplane.md §8), as pure functions.

A match is a predicate except `statistic --mode random`, which is a fresh draw each time it is
evaluated: its result here is the exact probability of matching, so the traversal can split into
weighted branches instead of drawing. What needs the namespace's routing (`addrtype`) or history
(`statistic --mode nth`) comes in through `NfEnv`, so this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from ipaddress import IPv4Address

from eksnet.errors import NotModelled
from eksnet.kernel.conntrack import (
    PROTO_NUMBERS,
    ConntrackEntry,
    ConntrackTable,
    CtState,
    CtStatus,
    Direction,
    Proto,
    Tuple,
)
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
    Rule,
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


@dataclass(frozen=True, slots=True)
class NfEnv:
    """What evaluating rules needs from outside the packet: the namespace's address types and
    the history of `nth` counters (default: no packet evaluated any rule before)."""

    addr_type: AddrTypeLookup
    nth_count: NthCount = _no_history


@dataclass(frozen=True, slots=True)
class NfPacket:
    """A packet as netfilter sees it at one hook.

    `iif`/`oif` are the hook's in and out devices (None where the hook has none: no `iif` in
    OUTPUT/POSTROUTING for local traffic, no `oif` in PREROUTING/INPUT). `ct` is the conntrack
    entry attached at the conntrack stage (None for INVALID or UNTRACKED packets), `ctstate` and
    `ct_direction` what that stage decided. TCP `tcp_flags` are names (`SYN`, `ACK`, …).
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

    def __post_init__(self) -> None:
        tracked = self.ctstate in ("NEW", "ESTABLISHED", "RELATED")
        if tracked and self.ct is None:
            raise ValueError(f"a {self.ctstate} packet needs its conntrack entry (ct)")
        if not tracked and self.ct is not None:
            raise ValueError(f"an {self.ctstate} packet has no conntrack entry")
        if not 0 <= self.mark <= 0xFFFFFFFF:
            raise ValueError(f"mark {self.mark:#x} is not 32 bits")
        self.tuple  # noqa: B018 - validates ports/ICMP fields through Tuple

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
    ) -> NfPacket:
        """The first packet of a connection with its fresh unconfirmed entry (ctstate NEW), as
        the conntrack stage attaches it; a TCP first packet is a SYN unless told otherwise."""
        flags = tcp_flags if tcp_flags is not None else frozenset({"SYN"} if proto == "tcp" else ())
        tuple_ = Tuple(src, dst, proto, sport, dport, icmp_type, icmp_code, icmp_id)
        entry = ConntrackTable().create(tuple_, tcp_flags=flags)
        if entry is None:
            raise ValueError(f"{tuple_} cannot start a connection")
        return cls(
            src, dst, proto, sport, dport, icmp_type, icmp_code, icmp_id,
            tcp_flags=flags, iif=iif, oif=oif, mark=mark, ctstate="NEW", ct=entry,
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


def rule_match_probability(rule: Rule, packet: NfPacket, env: NfEnv) -> Fraction:
    """The probability that all of `rule`'s matches hold for `packet` (0 or 1 unless a
    `statistic --mode random` match is reached). Matches are tried in order and evaluation stops
    at the first that fails, so an unmodelled match after a failing one is never reached."""
    probability = ONE
    for match in rule.matches:
        probability *= match_probability(match, packet, env, rule)
        if probability == 0:
            return ZERO
    return probability


def match_probability(match: Match, packet: NfPacket, env: NfEnv, rule: Rule) -> Fraction:
    """The probability that one match holds (0 or 1 for every deterministic match)."""
    if isinstance(match, StatisticMatch):
        if match.mode == "random":
            return match.probability
        seen = env.nth_count(rule.table, rule.chain, rule.position)
        return ONE if ((seen % match.every) == match.packet) != match.invert else ZERO
    if isinstance(match, UnmodelledMatch):
        raise NotModelled(f"iptables match -m {match.module}")
    return ONE if _holds(match, packet, env) else ZERO


def _holds(match: Match, packet: NfPacket, env: NfEnv) -> bool:
    if isinstance(match, AddressMatch):
        address = packet.src if match.field == "src" else packet.dst
        return (address in match.network) != match.invert
    if isinstance(match, InterfaceMatch):
        return match.matches_name(packet.iif if match.field == "in" else packet.oif)
    if isinstance(match, ProtocolMatch):
        return (PROTO_NUMBERS[packet.proto] == match.number) != match.invert
    if isinstance(match, FragmentMatch):
        return match.invert  # the model has no fragments
    if isinstance(match, CommentMatch | NfacctMatch):
        return True
    if isinstance(match, AddrtypeMatch):
        return _addrtype(match, packet, env)
    if isinstance(match, MarkMatch):
        return ((packet.mark & match.mask) == match.value) != match.invert
    if isinstance(match, ConnmarkMatch):
        if packet.ct is None:
            return False  # xt_connmark: no entry, no match (even inverted)
        return ((packet.ct.mark & match.mask) == match.value) != match.invert
    if isinstance(match, ConntrackMatch):
        return _conntrack(match, packet)
    if isinstance(match, PortMatch):
        return _ports(match, packet)
    if isinstance(match, IcmpMatch):
        if packet.proto != "icmp":
            return False
        hit = match.icmp_type is None or (
            packet.icmp_type == match.icmp_type
            and packet.icmp_code is not None
            and match.code_low <= packet.icmp_code <= match.code_high
        )
        return hit != match.invert
    if isinstance(match, MultiportMatch):
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
    raise AssertionError(f"unhandled match {match!r}")


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
