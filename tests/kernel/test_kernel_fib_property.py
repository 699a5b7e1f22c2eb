"""`fib_lookup` against a brute-force reading of the spec, on generated rule and route sets.

The reference below does not walk a sorted list or a trie: it enumerates every rule and every
route and picks with the rules of linux-dataplane.md §2.2–2.7 stated as filters and minimums:

* a rule applies when all its selectors match (inverted by `not`); rules run by priority, ties in
  insertion order; `goto P` continues at the first rule whose priority is P (ignored if none);
* inside a table, of the routes whose prefix holds the destination, reject types and `throw`
  always qualify, other routes only with a live nexthop (device up, or host scope) on the
  pinned `oif`, if any; the winner is the longest prefix, then lowest metric, then first added;
* `throw`, a missing table or no qualifying route falls through; reject rules and routes stop;
* with only the three default rules, local and main form one table (longest prefix across both,
  local first on a tie) reported as main, then `default`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    Address,
    Link,
    Namespace,
    Route,
    RouteType,
    Rule,
    RuleAction,
    Scope,
)
from eksnet.kernel.fib import FibError, FibResult, FlowKey, fib_lookup, local_table

DEVICES = ("eth0", "eth1", "eth2")
PREFIXES = tuple(
    IPv4Network(p)
    for p in (
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.0.0.0/24",
        "10.0.0.128/25",
        "10.0.0.7/32",
        "10.1.0.0/16",
        "192.168.1.0/24",
        "127.0.0.0/8",
        "127.1.0.0/16",
    )
)
DESTINATIONS = tuple(
    IPv4Address(a)
    for a in (
        "10.0.0.7",
        "10.0.0.200",
        "10.0.0.255",
        "10.1.2.3",
        "192.168.1.1",
        "127.0.0.1",
        "127.1.0.9",
        "8.8.8.8",
        "10.0.0.5",
    )
)
TABLES = (253, 254, 255, 100, 101)
ROUTE_TABLES = (254, 254, 254, 100, 100, 101, 253, 255)
ROUTE_ERRNO = {"blackhole": "EINVAL", "unreachable": "EHOSTUNREACH", "prohibit": "EACCES"}
RULE_ERRNO = {"blackhole": "EINVAL", "unreachable": "ENETUNREACH", "prohibit": "EACCES"}


@st.composite
def routes(draw: st.DrawFn) -> Route:
    route_type: RouteType = draw(
        st.sampled_from(
            [
                "unicast",
                "unicast",
                "unicast",
                "unicast",
                "unicast",
                "local",
                "broadcast",
                "blackhole",
                "unreachable",
                "prohibit",
                "throw",
            ]
        )
    )
    table = draw(st.sampled_from(ROUTE_TABLES))
    dst = draw(st.sampled_from(PREFIXES))
    metric = draw(st.sampled_from([None, 0, 10, 20]))
    if route_type in ROUTE_ERRNO or route_type == "throw":
        return Route(table, dst, type=route_type, metric=metric)
    dev = draw(st.sampled_from((*DEVICES, "lo")))
    if route_type == "unicast" and draw(st.booleans()):
        return Route(table, dst, gateway=IPv4Address("10.0.0.1"), dev=dev, metric=metric)
    scope: Scope = draw(st.sampled_from(["global", "link", "host"]))
    return Route(table, dst, type=route_type, dev=dev, scope=scope, metric=metric)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    priority = draw(st.sampled_from([0, 100, 200, 300, 32765, 32766]))
    action: RuleAction = draw(
        st.sampled_from(
            ["lookup", "lookup", "lookup", "goto", "nop", "blackhole", "unreachable", "prohibit"]
        )
    )
    goto = None
    if action == "goto":
        later = [p for p in (150, 200, 300, 400, 32766) if p > priority]
        if not later:
            action = "nop"
        else:
            goto = draw(st.sampled_from(later))
    fwmark = draw(st.sampled_from([None, 0, 0x80, 0x80]))
    fwmask = draw(st.sampled_from([None, 0x80, 0xF0])) if fwmark is not None else None
    return Rule(
        priority,
        action=action,
        table=draw(st.sampled_from((100, 100, 101, *TABLES, 102))) if action == "lookup" else None,
        src=draw(
            st.sampled_from([None, None, IPv4Network("10.0.0.0/24"), IPv4Network("10.0.0.5/32")])
        ),
        dst=draw(st.sampled_from([None, None, *PREFIXES[1:5]])),
        fwmark=fwmark,
        fwmask=fwmask,
        iif=draw(st.sampled_from([None, None, "lo", "eth0"])),
        oif=draw(st.sampled_from([None, None, "eth1"])),
        goto=goto,
        invert=draw(st.booleans()) and draw(st.booleans()),
    )


@st.composite
def namespaces(draw: st.DrawFn) -> Namespace:
    eth1_up = draw(st.booleans())
    links = (
        Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536),
        Link(2, "eth0", "device", "02:00:00:00:00:02", 1500),
        Link(3, "eth1", "device", "02:00:00:00:00:03", 1500, up=eth1_up),
        Link(4, "eth2", "device", "02:00:00:00:00:04", 1500),
    )
    pool = (
        Address("lo", IPv4Interface("127.0.0.1/8"), scope="host"),
        Address("eth0", IPv4Interface("10.0.0.5/24")),
        Address("eth1", IPv4Interface("10.1.0.5/16")),
        Address("eth2", IPv4Interface("192.168.1.1/32")),
    )
    addresses = tuple(a for a in pool if draw(st.booleans()))
    extra = draw(st.lists(rules(), min_size=1, max_size=6)) if draw(st.integers(0, 4)) else []
    return Namespace(
        name="p",
        kind="pod",
        owner="p",
        links=links,
        addresses=addresses,
        routes=tuple(draw(st.lists(routes(), max_size=14))),
        rules=(*DEFAULT_RULES, *extra),
    )


@st.composite
def keys(draw: st.DrawFn) -> FlowKey:
    return FlowKey(
        dst=draw(st.sampled_from(DESTINATIONS)),
        src=draw(st.sampled_from([None, IPv4Address("10.0.0.5"), IPv4Address("10.0.0.9")])),
        iif=draw(st.sampled_from([None, "lo", "eth0", "eth1"])),
        oif=draw(st.sampled_from([None, None, "eth0", "eth1", "eth2"])),
        mark=draw(st.sampled_from([0, 0x80, 0x81])),
    )


# --- the reference -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What both implementations are compared on."""

    errno: str | None
    route: Route | None
    table: int | None


def ref_rule_applies(rule: Rule, key: FlowKey) -> bool:
    checks = [
        rule.iif is None or rule.iif == key.iif,
        rule.oif is None or rule.oif == key.oif,
        rule.src is None or (key.src or IPv4Address(0)) in rule.src,
        rule.dst is None or key.dst in rule.dst,
    ]
    if rule.fwmark is not None:
        mask = rule.fwmask if rule.fwmask is not None else 0 if rule.fwmark == 0 else 4294967295
        checks.append(key.mark & mask == rule.fwmark & mask)
    return all(checks) != rule.invert


def ref_qualifies(ns: Namespace, route: Route, key: FlowKey) -> bool:
    if key.dst not in route.dst:
        return False
    if route.type in ROUTE_ERRNO or route.type == "throw" or route.dev is None:
        return True
    up = {link.name: link.up for link in ns.links}[route.dev]
    alive = up or route.scope == "host"
    return alive and (key.oif is None or key.oif == route.dev)


def ref_best(ns: Namespace, table: list[tuple[int, Route]], key: FlowKey) -> Route | None:
    """Minimum over the qualifying (position, route) pairs of (-prefixlen, metric, position)."""
    qualifying = [(pos, r) for pos, r in table if ref_qualifies(ns, r, key)]
    if not qualifying:
        return None
    return min(qualifying, key=lambda pr: (-pr[1].dst.prefixlen, pr[1].metric or 0, pr[0]))[1]


def ref_table(ns: Namespace, table: int) -> list[tuple[int, Route]]:
    stored = [r for r in ns.routes if r.table == table]
    derived = list(local_table(ns)) if table == 255 else []
    return list(enumerate(derived + stored))


def ref_lookup(ns: Namespace, key: FlowKey) -> Answer:
    if sorted(ns.rules, key=lambda r: r.priority) == list(DEFAULT_RULES):
        merged = [(-r.table, pos, r) for pos, r in ref_table(ns, 255) + ref_table(ns, 254)]
        qualifying = [m for m in merged if ref_qualifies(ns, m[2], key)]
        if qualifying:
            best = min(
                qualifying, key=lambda m: (-m[2].dst.prefixlen, m[0], m[2].metric or 0, m[1])
            )
            route = best[2]
            if route.type in ROUTE_ERRNO:
                return Answer(ROUTE_ERRNO[route.type], route, None)
            if route.type != "throw":
                return Answer(None, route, 254)
        route_or_none = ref_best(ns, ref_table(ns, 253), key)
        if route_or_none is None or route_or_none.type == "throw":
            return Answer("ENETUNREACH", None, None)
        if route_or_none.type in ROUTE_ERRNO:
            return Answer(ROUTE_ERRNO[route_or_none.type], route_or_none, None)
        return Answer(None, route_or_none, 253)

    ordered = [
        rule for _, rule in sorted(enumerate(ns.rules), key=lambda ir: (ir[1].priority, ir[0]))
    ]
    position = 0
    while position < len(ordered):
        rule = ordered[position]
        position += 1
        if not ref_rule_applies(rule, key):
            continue
        if rule.action == "goto":
            targets = [i for i, r in enumerate(ordered) if r.priority == rule.goto]
            if targets:
                position = targets[0]
            continue
        if rule.action == "nop":
            continue
        if rule.action in RULE_ERRNO:
            return Answer(RULE_ERRNO[rule.action], None, None)
        table = rule.table or 254
        route = ref_best(ns, ref_table(ns, table), key)
        if route is None or route.type == "throw":
            continue
        if route.type in ROUTE_ERRNO:
            return Answer(ROUTE_ERRNO[route.type], route, None)
        return Answer(None, route, table)
    return Answer("ENETUNREACH", None, None)


def model_answer(found: FibResult | FibError) -> Answer:
    if isinstance(found, FibError):
        return Answer(found.errno, found.route, None)
    return Answer(None, found.route, found.table)


@settings(max_examples=400, deadline=None)
@given(namespaces(), st.lists(keys(), min_size=1, max_size=8))
def test_fib_lookup_matches_the_brute_force_reference(ns: Namespace, flows: list[FlowKey]) -> None:
    for key in flows:
        assert model_answer(fib_lookup(ns, key)) == ref_lookup(ns, key), key


@settings(max_examples=200, deadline=None)
@given(namespaces(), keys())
def test_trace_ends_at_the_deciding_rule(ns: Namespace, key: FlowKey) -> None:
    found = fib_lookup(ns, key)
    if isinstance(found, FibResult):
        assert found.trace and found.trace[-1].outcome == "matched"
        assert found.trace[-1].rule == found.rule
    elif found.rule is not None:
        assert found.trace[-1].outcome in ("rule-rejects", "route-rejects")
