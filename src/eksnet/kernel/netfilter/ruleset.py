"""The parsed form of an `iptables-save` text: tables → chains → rules → matches and a target.

Every type is a small frozen value named after what iptables and the kernel call it. A rule keeps
the exact text it was parsed from (what traces print) and its 1-based position in its chain (what
`iptables -L --line-numbers` and the counters of `iptables-save -c` are keyed by).

Matches are kept in the order the kernel evaluates them: the IP header checks (`-s -d -i -o -p
-f`, `ip_packet_match`) first, then the match modules left to right as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network
from typing import Literal, Self

from eksnet.kernel.conntrack import NatRequest
from eksnet.kernel.hooks import TABLE_CHAINS, TableName
from eksnet.kernel.netfilter.recent import RecentCheck, RecentSpec, stamps_needed

STATISTIC_SCALE = 1 << 31
"""`statistic --probability p` is stored as the 31-bit threshold round(p·2^31) (§7.3)."""


@dataclass(frozen=True, slots=True)
class PortRange:
    """A closed port range `low:high` (a single port has low == high)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 65535:
            raise ValueError(f"bad port range {self.low}:{self.high}")

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high


# --- matches -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """`[!] -s` / `[!] -d A/L`: the packet's source or destination is inside the network.

    Kept as integers (the network address with host bits cleared, and the prefix length): a
    60k-rule ruleset has tens of thousands of them, and the kernel compares integers too
    (`(addr & mask) == net` in `ip_packet_match`).
    """

    field: Literal["src", "dst"]
    address: int
    prefixlen: int
    invert: bool = False

    @classmethod
    def of(cls, field: Literal["src", "dst"], network: IPv4Network, invert: bool = False) -> Self:
        return cls(field, int(network.network_address), network.prefixlen, invert)

    @property
    def network(self) -> IPv4Network:
        return IPv4Network((self.address, self.prefixlen))

    @property
    def mask(self) -> int:
        return (0xFFFFFFFF << (32 - self.prefixlen)) & 0xFFFFFFFF

    def contains(self, address: IPv4Address) -> bool:
        """Whether `address` is inside the network (before `!`)."""
        return int(address) & self.mask == self.address


@dataclass(frozen=True, slots=True)
class InterfaceMatch:
    """`[!] -i` / `[!] -o NAME`: the in/out device name; a trailing `+` matches by prefix."""

    field: Literal["in", "out"]
    name: str
    invert: bool = False

    def matches_name(self, device: str | None) -> bool:
        """The kernel compares against "" when the hook has no such device (e.g. `-i` in OUTPUT)."""
        name = device or ""
        wildcard = self.name.endswith("+")
        found = name.startswith(self.name[:-1]) if wildcard else name == self.name
        return found != self.invert


@dataclass(frozen=True, slots=True)
class ProtocolMatch:
    """`[!] -p P`: the IP protocol number (0 = all, which iptables-save omits)."""

    number: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class FragmentMatch:
    """`[!] -f`: second and later fragments; the model has no fragments."""

    invert: bool = False


@dataclass(frozen=True, slots=True)
class CommentMatch:
    """`-m comment --comment TEXT`: always matches; carries the text only."""

    text: str


@dataclass(frozen=True, slots=True)
class AddrtypeMatch:
    """`-m addrtype [!] --src-type T,… [!] --dst-type T,… [--limit-iface-in|out]`.

    The address type comes from the namespace's routing (`NfEnv.addr_type`); with a limit the
    type is computed for the in (or out) device only.
    """

    src_types: frozenset[str] | None = None
    src_invert: bool = False
    dst_types: frozenset[str] | None = None
    dst_invert: bool = False
    limit_iface_in: bool = False
    limit_iface_out: bool = False


@dataclass(frozen=True, slots=True)
class MarkMatch:
    """`-m mark [!] --mark V[/M]`: (packet mark AND M) == V."""

    value: int
    mask: int = 0xFFFFFFFF
    invert: bool = False


@dataclass(frozen=True, slots=True)
class ConnmarkMatch:
    """`-m connmark [!] --mark V[/M]`: (ct mark AND M) == V."""

    value: int
    mask: int = 0xFFFFFFFF
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtStateCondition:
    """`[!] --ctstate S,…` (also `-m state --state`): INVALID NEW ESTABLISHED RELATED UNTRACKED,
    plus the virtual SNAT and DNAT for `--ctstate`."""

    states: frozenset[str]
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtProtoCondition:
    """`[!] --ctproto P`: the protocol of the entry's original tuple."""

    number: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtAddressCondition:
    """`[!] --ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst A[/M]`; compared under the mask,
    the address kept as typed (iptables prints it unmasked)."""

    which: Literal["origsrc", "origdst", "replsrc", "repldst"]
    address: IPv4Address
    mask: int = 0xFFFFFFFF
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtPortCondition:
    """`[!] --ctorigsrcport/--ctorigdstport/--ctreplsrcport/--ctrepldstport P[:P]`."""

    which: Literal["origsrcport", "origdstport", "replsrcport", "repldstport"]
    ports: PortRange
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtStatusCondition:
    """`[!] --ctstatus S,…`: matches when any listed status bit is set (NONE = no bit)."""

    flags: frozenset[str]
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtExpireCondition:
    """`[!] --ctexpire A[:B]`: seconds left on the entry."""

    low: int
    high: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtDirCondition:
    """`--ctdir ORIGINAL|REPLY`: the packet's direction within its connection."""

    direction: Literal["ORIGINAL", "REPLY"]
    invert: bool = False


CtCondition = (
    CtStateCondition
    | CtProtoCondition
    | CtAddressCondition
    | CtPortCondition
    | CtStatusCondition
    | CtExpireCondition
    | CtDirCondition
)


@dataclass(frozen=True, slots=True)
class ConntrackMatch:
    """`-m conntrack …`: all conditions must hold (`-m state` is one state condition)."""

    conditions: tuple[CtCondition, ...]
    module: Literal["conntrack", "state"] = "conntrack"


@dataclass(frozen=True, slots=True)
class PortMatch:
    """`-m tcp|udp [!] --sport P[:P] [!] --dport P[:P]` (`tcp`: `[!] --tcp-flags MASK COMP`)."""

    proto: Literal["tcp", "udp"]
    sport: PortRange | None = None
    sport_invert: bool = False
    dport: PortRange | None = None
    dport_invert: bool = False
    tcp_flags: tuple[frozenset[str], frozenset[str]] | None = None
    tcp_flags_invert: bool = False


@dataclass(frozen=True, slots=True)
class IcmpMatch:
    """`-m icmp [!] --icmp-type T[/C]`; `icmp_type` None is `any`."""

    icmp_type: int | None
    code_low: int = 0
    code_high: int = 255
    invert: bool = False


@dataclass(frozen=True, slots=True)
class MultiportMatch:
    """`-m multiport [!] --sports|--dports|--ports LIST` (up to 15 ports, a range counts 2)."""

    which: Literal["src", "dst", "any"]
    ports: tuple[PortRange, ...]
    invert: bool = False


@dataclass(frozen=True, slots=True)
class StatisticMatch:
    """`-m statistic --mode random [!] --probability p` or `--mode nth [!] --every n --packet p`.

    random: one independent draw per evaluation, matching with threshold/2^31 (quantized value,
    §7.3). nth: the k-th evaluation of this rule (k counted from 0) matches when
    k mod every == packet [meas: every 3 / packet 0 matched the 1st and 4th packet].
    """

    mode: Literal["random", "nth"]
    threshold: int = 0
    every: int = 0
    packet: int = 0
    invert: bool = False

    @property
    def probability(self) -> Fraction:
        """Exact probability that a random-mode evaluation matches (inversion included)."""
        p = Fraction(self.threshold, STATISTIC_SCALE)
        return 1 - p if self.invert else p

    @property
    def printed_probability(self) -> str:
        """How iptables-save prints the stored value: `0.33333333349`."""
        return f"{self.threshold / STATISTIC_SCALE:.11f}"


@dataclass(frozen=True, slots=True)
class NfacctMatch:
    """`-m nfacct --nfacct-name NAME`: counts the packet into the named accounting object
    whenever it is evaluated (even when a later match of the rule fails [meas]) and matches.

    xt_nfacct's `nfacct_mt` returns "over quota" for objects with a quota; kube-proxy's and
    `nfacct add NAME` objects have none, so it always matches (quota objects: not modelled).
    """

    name: str


@dataclass(frozen=True, slots=True)
class RecentMatch:
    """`-m recent [!] --set|--rcheck|--update|--remove [--seconds S] [--reap] [--hitcount H]
    [--rttl] --name N --mask M --rsource|--rdest` (kernel semantics: `recent.py`).

    `mask` is the rule's own `--mask` as printed; the kernel masks with the list's mask, the
    one of the first rule that named the list (`Ruleset.recent_spec`).
    """

    check: RecentCheck
    mask: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SctpChunkMatch:
    """`--chunk-types any|all|only TYPE[:FLAGS],…` of `-m sctp` (`match_packet` in xt_sctp.c).

    `types` are the chunk types listed (ALL lists all 256, NONE none); `flags` are (chunk type,
    flag bits that must be set, flag mask) for the types given with flags (`DATA:Be`: B set,
    E clear). any: some chunk of a listed type (with its flags) is present; all: every listed
    type is present with its flags; only: every chunk is of a listed type with its flags.
    """

    mode: Literal["any", "all", "only"]
    types: frozenset[int]
    flags: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class SctpMatch:
    """`-m sctp [!] --sport P[:P] [!] --dport P[:P] [!] --chunk-types MODE TYPES`."""

    sport: PortRange | None = None
    sport_invert: bool = False
    dport: PortRange | None = None
    dport_invert: bool = False
    chunks: SctpChunkMatch | None = None
    chunks_invert: bool = False


@dataclass(frozen=True, slots=True)
class UnmodelledMatch:
    """A real match module eksnet does not model (`recent`, `limit`, `set`…): evaluating it raises
    `NotModelled`; parsing keeps its words so the rest of the ruleset stays usable."""

    module: str
    args: tuple[str, ...]


Match = (
    AddressMatch
    | InterfaceMatch
    | ProtocolMatch
    | FragmentMatch
    | CommentMatch
    | AddrtypeMatch
    | MarkMatch
    | ConnmarkMatch
    | ConntrackMatch
    | PortMatch
    | IcmpMatch
    | MultiportMatch
    | StatisticMatch
    | NfacctMatch
    | RecentMatch
    | SctpMatch
    | UnmodelledMatch
)

# --- targets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StandardTarget:
    """`-j ACCEPT`, `-j DROP`, `-j RETURN`."""

    verdict: Literal["ACCEPT", "DROP", "RETURN"]


@dataclass(frozen=True, slots=True)
class RejectTarget:
    """`-j REJECT --reject-with T` (filter table only); the packet is dropped and an error sent."""

    reject_with: str = "icmp-port-unreachable"


@dataclass(frozen=True, slots=True)
class JumpTarget:
    """`-j CHAIN` (push a return point) or `-g CHAIN` (goto: no return point)."""

    chain: str
    goto: bool = False


@dataclass(frozen=True, slots=True)
class MarkTarget:
    """`-j MARK --set-xmark V/M`: mark = (mark AND NOT M) XOR V (all MARK forms reduce to it)."""

    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class ConnmarkSetTarget:
    """`-j CONNMARK --set-xmark V/M`: ctmark = (ctmark AND NOT M) XOR V."""

    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class ConnmarkSaveTarget:
    """`-j CONNMARK --save-mark --nfmask N --ctmask C`: ctmark = (ctmark AND NOT C) XOR
    (mark AND N)."""

    nfmask: int = 0xFFFFFFFF
    ctmask: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ConnmarkRestoreTarget:
    """`-j CONNMARK --restore-mark --nfmask N --ctmask C`: mark = (mark AND NOT N) XOR
    (ctmark AND C)."""

    nfmask: int = 0xFFFFFFFF
    ctmask: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class NatTarget:
    """`-j DNAT`, `-j SNAT`, `-j MASQUERADE`: set up the binding and end the nat table."""

    request: NatRequest


@dataclass(frozen=True, slots=True)
class NoopTarget:
    """`-j LOG`, `-j NFLOG`, `-j TRACE`: observation only; traversal continues."""

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UnmodelledTarget:
    """A real target eksnet does not model (`CT`, `REDIRECT`…): reaching it raises NotModelled."""

    name: str
    args: tuple[str, ...]


Target = (
    StandardTarget
    | RejectTarget
    | JumpTarget
    | MarkTarget
    | ConnmarkSetTarget
    | ConnmarkSaveTarget
    | ConnmarkRestoreTarget
    | NatTarget
    | NoopTarget
    | UnmodelledTarget
)

# --- structure -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """One `-A CHAIN …` line.

    `text` is the line as written, without a `[pkts:bytes]` prefix; `position` is 1-based within
    the chain; `line` is the line number in the parsed text; `counters` are the prefix's
    (packets, bytes) when the text came from `iptables-save -c`.
    """

    table: TableName
    chain: str
    position: int
    text: str
    line: int
    matches: tuple[Match, ...]
    target: Target | None
    counters: tuple[int, int] | None = None

    def unmodelled(self) -> tuple[str, ...]:
        """What in this rule would raise NotModelled when evaluated."""
        found = [
            f"iptables match -m {m.module}" for m in self.matches if isinstance(m, UnmodelledMatch)
        ]
        if isinstance(self.target, UnmodelledTarget):
            found.append(f"iptables target -j {self.target.name}")
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain: built-in (with a policy) or user-defined (policy None)."""

    name: str
    policy: Literal["ACCEPT", "DROP"] | None
    rules: tuple[Rule, ...] = ()
    line: int | None = None
    counters: tuple[int, int] | None = None
    memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    """What the evaluator derives from the rules once and keeps (its per-chain index)."""

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass(frozen=True, slots=True)
class Table:
    """One `*table` … `COMMIT` block: built-in chains first (kernel order), then user chains."""

    name: TableName
    chains: tuple[Chain, ...]
    line: int | None = None
    _by_name: dict[str, Chain] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for chain in self.chains:
            if chain.name in self._by_name:
                raise ValueError(f"table {self.name}: chain {chain.name} twice")
            self._by_name[chain.name] = chain
        for hook in TABLE_CHAINS[self.name]:
            if hook.value not in self._by_name or not self._by_name[hook.value].builtin:
                raise ValueError(f"table {self.name} lacks built-in chain {hook.value}")

    def chain(self, name: str) -> Chain:
        return self._by_name[name]

    def has_chain(self, name: str) -> bool:
        return name in self._by_name


@dataclass(frozen=True, slots=True)
class Ruleset:
    """All tables of one namespace's rules, as parsed from one `iptables-save` text."""

    tables: tuple[Table, ...]
    source: str = "<iptables-save>"
    _recent: list[dict[str, RecentSpec]] = field(default_factory=list, compare=False, repr=False)

    def recent_spec(self, name: str) -> RecentSpec:
        """The mask and ring size of `recent` list `name` (defaults when no rule names it), as
        loading the rules fixes them in the kernel (`recent_mt_check`): the first rule naming a
        list creates it with its mask; the ring grows to what the most demanding rule needs.
        Worked out on first use and kept."""
        if not self._recent:
            specs: dict[str, RecentSpec] = {}
            for rule in self.rules():
                for match in rule.matches:
                    if isinstance(match, RecentMatch):
                        stamps = stamps_needed(match.check.hitcount)
                        known = specs.get(match.check.name)
                        if known is None:
                            specs[match.check.name] = RecentSpec(match.mask, stamps)
                        elif stamps > known.stamps:
                            specs[match.check.name] = RecentSpec(known.mask, stamps)
            self._recent.append(specs)
        return self._recent[0].get(name) or RecentSpec()

    def table(self, name: str) -> Table | None:
        """The table, or None when the text has no such table (its hooks then accept all)."""
        for table in self.tables:
            if table.name == name:
                return table
        return None

    def rule(self, table: str, chain: str, position: int) -> Rule:
        found = self.table(table)
        if found is None:
            raise KeyError(table)
        return found.chain(chain).rules[position - 1]

    def rules(self) -> tuple[Rule, ...]:
        """Every rule, table by table, chain by chain."""
        return tuple(
            rule for table in self.tables for chain in table.chains for rule in chain.rules
        )

    def unmodelled(self) -> tuple[tuple[Rule, str], ...]:
        """Every rule that uses something eksnet does not model, with what it is."""
        return tuple((rule, what) for rule in self.rules() for what in rule.unmodelled())
