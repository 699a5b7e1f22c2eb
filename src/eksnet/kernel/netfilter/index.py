"""A per-chain index of the rules a packet can match, so a long chain is not scanned rule by rule.

Why: kube-proxy's nat `KUBE-SERVICES` holds one rule per Service port (10,000 Services, 10,000
rules) and the kernel tries them in order for the first packet of every connection. Almost every
one of them asks for an exact destination, protocol and port (`-d 172.20.0.10/32 -p tcp -m tcp
--dport 80`). Here each rule that requires such exact values is filed under them once, and a
packet only looks at the rules filed under its own values plus the rules that require none of
them, in chain order.

Why the result is exactly the linear scan's: a rule is filed under a value only when the match
requiring it is reached without anything before it in the rule that could have an effect or
fail to be decided — every earlier match is a plain predicate (no `statistic --mode random`
draw, no `recent` or `nfacct` state, nothing unmodelled). So for a packet with other values the
linear scan evaluates that rule to "no match", with no effect and no exception, which is what
skipping it gives. The packet's destination, protocol and port do not change while one table
is traversed (only MARK/CONNMARK targets change the packet, and a NAT target ends the table),
so the candidates of a chain are fixed for a traversal. `tests/kernel/test_netfilter_index.py`
checks outcome-for-outcome equality with the linear scan on random rulesets and packets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from heapq import merge
from typing import cast

from eksnet.kernel.netfilter.ruleset import (
    AddressMatch,
    AddrtypeMatch,
    Chain,
    CommentMatch,
    ConnmarkMatch,
    ConntrackMatch,
    FragmentMatch,
    IcmpMatch,
    InterfaceMatch,
    MarkMatch,
    Match,
    MultiportMatch,
    PortMatch,
    ProtocolMatch,
    Rule,
    SctpMatch,
    StatisticMatch,
)

INDEX_MIN_RULES = 16
"""Chains shorter than this are scanned: an index would cost more than it saves."""

Key = tuple[int | None, int | None, int | None]
"""What a rule requires exactly: (destination address, IP protocol number, destination port);
None where it requires nothing exact."""

_PLAIN_TYPES: frozenset[type] = frozenset({
    AddressMatch, InterfaceMatch, ProtocolMatch, FragmentMatch, CommentMatch, AddrtypeMatch,
    MarkMatch, ConnmarkMatch, ConntrackMatch, PortMatch, IcmpMatch, MultiportMatch,
})  # fmt: skip
"""Predicates that, when evaluated, have no effect, no draw and cannot raise."""


def _plain(match: Match) -> bool:
    kind = type(match)
    if kind in _PLAIN_TYPES:
        return True
    if isinstance(match, StatisticMatch):
        return match.mode == "nth"
    if isinstance(match, SctpMatch):
        return match.chunks is None  # --chunk-types may be unknown for a packet: NotModelled
    return False


def rule_key(rule: Rule) -> Key:
    """The exact values `rule` requires that are safe to index on (see the module doc)."""
    dst: int | None = None
    proto: int | None = None
    dport: int | None = None
    for match in rule.matches:
        kind = type(match)
        if kind is AddressMatch:
            address = cast(AddressMatch, match)
            if address.field == "dst" and not address.invert and address.prefixlen == 32:
                dst = address.address if dst is None else dst
        elif kind is ProtocolMatch:
            protocol = cast(ProtocolMatch, match)
            if not protocol.invert and proto is None:
                proto = protocol.number
        elif kind is PortMatch or kind is SctpMatch:
            port = cast(PortMatch | SctpMatch, match)
            ports = port.dport
            exact = ports is not None and ports.low == ports.high and not port.dport_invert
            if dport is None and exact:
                dport = ports.low  # type: ignore[union-attr]
        if kind not in _PLAIN_TYPES and not _plain(match):
            break  # what follows may be decided by a draw or have an effect: not indexable
    return (dst, proto, dport)


@dataclass(slots=True)
class ChainIndex:
    """Rule positions (0-based) by the exact values they require, and the packet keys seen."""

    by_key: dict[Key, list[int]]
    shapes: tuple[tuple[bool, bool, bool], ...]
    """Which of (destination, protocol, port) the filed keys use, each combination once."""
    seen: dict[Key, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, chain: Chain) -> ChainIndex:
        by_key: dict[Key, list[int]] = {}
        for position, rule in enumerate(chain.rules):
            by_key.setdefault(rule_key(rule), []).append(position)
        shapes = {
            (dst is not None, proto is not None, port is not None) for dst, proto, port in by_key
        }
        return cls(by_key, tuple(sorted(shapes)))

    def candidates(self, dst: int, proto: int, dport: int | None) -> list[int]:
        """The positions of the rules a packet with these values can match, in chain order."""
        key = (dst, proto, dport)
        found = self.seen.get(key)
        if found is not None:
            return found
        lists = []
        for has_dst, has_proto, has_port in self.shapes:
            if has_port and dport is None:
                continue
            filed = self.by_key.get(
                (
                    dst if has_dst else None,
                    proto if has_proto else None,
                    dport if has_port else None,
                )
            )
            if filed:
                lists.append(filed)
        found = lists[0] if len(lists) == 1 else list(merge(*lists))
        if len(self.seen) < 4096:
            self.seen[key] = found
        return found


def chain_index(chain: Chain) -> ChainIndex | None:
    """The chain's index, built on first use and kept on the chain; None for a short chain."""
    if len(chain.rules) < INDEX_MIN_RULES:
        return None
    found = chain.memo.get("index")
    if not isinstance(found, ChainIndex):
        found = ChainIndex.build(chain)
        chain.memo["index"] = found
    return found
