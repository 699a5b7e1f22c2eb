"""`ip rule`, `ip route show table all` and `ip neigh` text back into the state's types.

These are the inverses of what `kernel/iproute_text.py` and `render/linux/{rule,route,neigh}.py`
print (iproute2 6.1), so a dump from a real node and a state built by the controllers meet in
the same values. What a line carries that the state derives instead is kept apart, not
dropped silently:

* `table local`'s `local`/`broadcast` entries: the kernel makes them from the addresses and the
  state never stores them (`kernel.fib.local_table`), so a dump's are returned separately
  (`RouteDump.local`) to be checked against what the addresses imply.
* IPv6 lines of `table all` (the kernel-derived `fe80::/64`, `ff00::/8`, `::1` …): eksnet
  models IPv4 routing, so they are skipped and counted (`RouteDump.ipv6_lines`).
* `linkdown` and `[detached]`/`[unresolved]`: the kernel's judgement of a device or a `goto`,
  derived from the rest of the namespace, so read and not kept.

Anything else a line says that the state has no place for (`onlink`, `nexthop`, `mtu`, `pref`
on an IPv4 route, `uidrange`, `suppress_prefixlength` …) is an `InputError` at its line: the
import would otherwise claim facts it did not carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import NoReturn, get_args

from eksnet.dataplane.state import (
    TABLE_LOCAL,
    TABLE_MAIN,
    TABLE_NAMES,
    Neighbour,
    NeighbourState,
    Route,
    RouteType,
    Rule,
    RuleAction,
    Scope,
)
from eksnet.importers._lines import Cursor, ipv4_address, numbered

TABLE_IDS = {name: table for table, name in TABLE_NAMES.items()}
"""`local`, `main`, `default` → 255, 254, 253 (`/etc/iproute2/rt_tables`); other tables are
printed by number on EKS nodes (ipamd's `2`, `3` …)."""

ROUTE_TYPES: frozenset[str] = frozenset(get_args(RouteType))
RULE_ACTIONS: frozenset[str] = frozenset(get_args(RuleAction)) - {"lookup", "goto"}
SCOPES: frozenset[str] = frozenset(get_args(Scope))
NEIGHBOUR_STATES: frozenset[str] = frozenset(get_args(NeighbourState))
DERIVED_LOCAL_TYPES = frozenset({"local", "broadcast"})
"""Entries of table local the kernel makes from addresses (`kernel.fib.local_table`)."""
IPV6_ONLY_TYPES = frozenset({"multicast", "anycast"})


# --- rules ----------------------------------------------------------------------------------------


def parse_rules(text: str, source: str) -> tuple[Rule, ...]:
    """`ip rule show` → rules in the printed order (by priority, insertion order among equals)."""
    return tuple(_rule(cursor, line) for cursor, line in numbered(text, source))


def _rule(cursor: Cursor, line: str) -> Rule:
    head, sep, rest = line.partition(":")
    if not sep or not head.strip().isdigit():
        cursor.fail(f"not an `ip rule` line: {line.strip()!r}", fix="lines start with PRIO:")
    words = [w for w in rest.split() if w not in ("[detached]", "[unresolved]")]
    fields: dict[str, object] = {}
    invert = False
    action: str | None = None
    index = 0
    if words[:1] == ["not"]:
        invert, index = True, 1
    while index < len(words):
        word = words[index]
        if word in RULE_ACTIONS:
            action = word
            index += 1
            continue
        value = _value(cursor, words, index)
        if word == "from":
            fields["src"] = None if value == "all" else _network(cursor, value)
        elif word == "to":
            fields["dst"] = _network(cursor, value)
        elif word == "fwmark":
            mark, _, mask = value.partition("/")
            fields["fwmark"] = _number(cursor, mark)
            if mask:
                fields["fwmask"] = _number(cursor, mask)
        elif word in ("iif", "oif"):
            fields[word] = value
        elif word == "lookup":
            fields["table"] = _table(cursor, value)
        elif word == "goto":
            fields["goto"] = _number(cursor, value)
            action = "goto"
        else:
            _not_modelled(cursor, word, "rule")
        index += 2
    if "src" not in fields:
        cursor.fail("rule without `from`: the line is truncated", fix="iproute2 prints `from`")
    if action is None:
        if "table" not in fields:
            cursor.fail("rule without `lookup` or an action: the line is truncated")
        action = "lookup"
    try:
        return Rule(int(head), action=action, invert=invert, **fields)  # type: ignore[arg-type]
    except ValueError as error:
        cursor.fail(str(error))


# --- routes ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteDump:
    """One `ip route show table all` dump, split as the state splits it.

    `routes` are the IPv4 routes the state stores (every table, table local's unicast ones
    too), `route_lines` the line each came from; `local` the `local`/`broadcast` entries of
    table local, which the kernel derives from addresses; `ipv6_lines` how many IPv6 lines were
    skipped.
    """

    routes: tuple[Route, ...] = ()
    route_lines: tuple[int, ...] = ()
    local: tuple[Route, ...] = ()
    ipv6_lines: int = 0


def parse_routes(text: str, source: str) -> RouteDump:
    """`ip route show [table all]` text → a `RouteDump` (tables by name or number)."""
    routes: list[Route] = []
    lines: list[int] = []
    local: list[Route] = []
    ipv6 = 0
    for cursor, line in numbered(text, source):
        words = line.split()
        if _is_ipv6(words):
            ipv6 += 1
            continue
        route = _route(cursor, words)
        if route.table == TABLE_LOCAL and route.type in DERIVED_LOCAL_TYPES:
            local.append(route)
        else:
            routes.append(route)
            lines.append(cursor.line)
    return RouteDump(tuple(routes), tuple(lines), tuple(local), ipv6)


def _is_ipv6(words: Sequence[str]) -> bool:
    """An IPv6 line: its destination or an address in it has a colon, or it ends with the
    `pref` every IPv6 route prints (an IPv4 line never does)."""
    if len(words) >= 2 and words[-2] == "pref":
        return True
    start = 1 if words and words[0] in ROUTE_TYPES | IPV6_ONLY_TYPES | {"unicast"} else 0
    if len(words) > start and ":" in words[start]:
        return True
    return any(words[i - 1] in ("via", "src") and ":" in words[i] for i in range(1, len(words)))


def _route(cursor: Cursor, words: Sequence[str]) -> Route:
    index = 0
    kind = "unicast"
    if words[0] in ROUTE_TYPES or words[0] in IPV6_ONLY_TYPES or words[0] == "nat":
        kind = words[0]
        index = 1
        if kind not in ROUTE_TYPES:
            _not_modelled(cursor, kind, "IPv4 route")
    if index >= len(words):
        cursor.fail("route without a destination: the line is truncated")
    dst_word = words[index]
    dst = IPv4Network("0.0.0.0/0") if dst_word == "default" else _network(cursor, dst_word)
    fields: dict[str, object] = {"table": TABLE_MAIN}
    index += 1
    while index < len(words):
        word = words[index]
        if word == "linkdown":
            index += 1
            continue
        value = _value(cursor, words, index)
        if word == "via":
            fields["gateway"] = ipv4_address(cursor, value)
        elif word == "dev":
            fields["dev"] = value
        elif word == "table":
            fields["table"] = _table(cursor, value)
        elif word == "proto":
            fields["proto"] = value
        elif word == "scope":
            if value not in SCOPES:
                _not_modelled(cursor, f"scope {value}", "route")
            fields["scope"] = value
        elif word == "src":
            fields["src"] = ipv4_address(cursor, value)
        elif word == "metric":
            fields["metric"] = _number(cursor, value)
        else:
            _not_modelled(cursor, word, "route")
        index += 2
    try:
        return Route(dst=dst, type=kind, **fields)  # type: ignore[arg-type]
    except ValueError as error:
        cursor.fail(f"{error}: the line is truncated or garbled")


def local_table_differences(dumped: Iterable[Route], derived: Iterable[Route]) -> tuple[str, ...]:
    """What the dump's table local says that the addresses do not imply, and the reverse, each
    in words (empty when they agree). Compared as sets: the order is the kernel's trie walk."""
    have, want = set(dumped), set(derived)
    extra = [f"dumped but not derived: {_route_words(r)}" for r in dumped if r not in want]
    missing = [f"derived but not dumped: {_route_words(r)}" for r in derived if r not in have]
    return tuple(extra + missing)


def _route_words(route: Route) -> str:
    return f"{route.type} {route.dst} dev {route.dev} src {route.src}"


# --- neighbours -----------------------------------------------------------------------------------


def parse_neighbours(text: str, source: str) -> tuple[Neighbour, ...]:
    """`ip neigh show` → the entries (`DST dev D lladdr L STATE`), in printed order."""
    found: list[Neighbour] = []
    for cursor, line in numbered(text, source):
        words = line.split()
        if len(words) != 6 or words[1] != "dev" or words[3] != "lladdr":
            if ":" in words[0]:
                continue  # an IPv6 neighbour (`ip neigh` lists both families)
            cursor.fail(
                f"not a resolved `ip neigh` entry: {line.strip()!r}",
                fix="expected DST dev DEV lladdr MAC STATE (FAILED/INCOMPLETE are not modelled)",
            )
        if words[5] not in NEIGHBOUR_STATES:
            _not_modelled(cursor, words[5], "neighbour state")
        found.append(
            Neighbour(ipv4_address(cursor, words[0]), words[2], words[4], words[5])  # type: ignore[arg-type]
        )
    return tuple(found)


# --- words ----------------------------------------------------------------------------------------


def _value(cursor: Cursor, words: Sequence[str], index: int) -> str:
    if index + 1 >= len(words):
        cursor.fail(f"`{words[index]}` without its value: the line is truncated")
    return words[index + 1]


def _network(cursor: Cursor, text: str) -> IPv4Network:
    try:
        return IPv4Network(text)
    except ValueError:
        cursor.fail(f"{text!r} is not an IPv4 prefix")


def _number(cursor: Cursor, text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        cursor.fail(f"{text!r} is not a number")


def _table(cursor: Cursor, text: str) -> int:
    if text in TABLE_IDS:
        return TABLE_IDS[text]
    if text.isdigit():
        return int(text)
    cursor.fail(
        f"table {text!r} is named by this node's /etc/iproute2/rt_tables, which the dump lacks",
        fix="replace the name by the table's number",
    )


def _not_modelled(cursor: Cursor, word: str, what: str) -> NoReturn:
    cursor.fail(
        f"`{word}` ({what}) is not modelled by eksnet",
        fix="remove it from the dump if it does not matter for the question",
    )
