"""The kernel's IPv4 routing decision for one namespace, as pure functions of a `Namespace`.

This is the part of `net/ipv4/route.c`, `fib_rules.c`, `fib_trie.c` and `fib_frontend.c` that
decides where a packet goes (linux-dataplane.md §2–3), written from the spec and from measurements
on a 6.18 kernel, not from kernel code:

* `fib_lookup` walks the policy rules and looks the flow up in each table they name;
* `output_route` is the lookup a local socket does (iif = lo, source chosen afterwards);
* `input_route` is the lookup a received packet gets: local, broadcast or forward, with the martian
  checks and the reverse-path filter (`rp_filter`) that come with it;
* `local_table` and `select_source` are what the kernel derives from the addresses by itself.

Every answer carries enough to explain itself: which rules were tried (`RuleVisit`), which route
won, which reverse lookup rp_filter did and why it passed or dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Literal

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    TABLE_DEFAULT,
    TABLE_LOCAL,
    TABLE_MAIN,
    Address,
    Namespace,
    Route,
    RouteType,
    Rule,
    RuleAction,
    Scope,
)
from eksnet.errors import NotModelled
from eksnet.kernel import sysctl

Errno = Literal["ENETUNREACH", "EHOSTUNREACH", "EACCES", "EINVAL"]

STRERROR: Mapping[Errno, str] = {
    "ENETUNREACH": "Network is unreachable",
    "EHOSTUNREACH": "No route to host",
    "EACCES": "Permission denied",
    "EINVAL": "Invalid argument",
}
"""The strerror text `ip` prints after `RTNETLINK answers: `."""

ResultType = Literal["unicast", "local", "broadcast"]

RuleOutcome = Literal[
    "no-match",
    "nop",
    "goto",
    "goto-unresolved",
    "table-missing",
    "no-route-in-table",
    "throw",
    "matched",
    "rule-rejects",
    "route-rejects",
]
"""What happened at one rule: its selectors did not match; it was a `nop`; it jumped (`goto`) or
named a priority no rule has (`goto-unresolved`, the kernel ignores it); its table does not exist
or has no route for the flow, or the route found was `throw` (all three fall through to the next
rule); a route `matched`; or the walk ended in an error from the rule's action (`rule-rejects`:
blackhole/unreachable/prohibit) or from the route's type (`route-rejects`)."""

RULE_ERRNO: Mapping[RuleAction, Errno] = {
    "blackhole": "EINVAL",
    "unreachable": "ENETUNREACH",
    "prohibit": "EACCES",
}
"""Errors of the reject actions of a rule (§2.4)."""

ROUTE_ERRNO: Mapping[RouteType, Errno] = {
    "blackhole": "EINVAL",
    "unreachable": "EHOSTUNREACH",
    "prohibit": "EACCES",
}
"""Errors of the reject types of a route (§2.5): `unreachable` differs from the rule action."""

_RESULT_TYPES: Mapping[RouteType, ResultType] = {
    "unicast": "unicast",
    "local": "local",
    "broadcast": "broadcast",
}

SCOPE_VALUE: Mapping[Scope, int] = {"global": 0, "link": 253, "host": 254}
"""The kernel's numeric scopes (`RT_SCOPE_*`): a larger number is a narrower scope."""

_ALL_ONES = 0xFFFFFFFF
_ANY = IPv4Address(0)
LIMITED_BROADCAST = IPv4Address("255.255.255.255")
LOOPBACK_NET = IPv4Network("127.0.0.0/8")
ZERO_NET = IPv4Network("0.0.0.0/8")
MULTICAST_NET = IPv4Network("224.0.0.0/4")


@dataclass(frozen=True, slots=True)
class FlowKey:
    """What a FIB lookup matches on (§2.1). `src` None is the unbound 0.0.0.0; `iif` is the
    ingress device (`lo` for locally generated traffic), `oif` a device the lookup is pinned to."""

    dst: IPv4Address
    src: IPv4Address | None = None
    iif: str | None = None
    oif: str | None = None
    mark: int = 0
    tos: int = 0


@dataclass(frozen=True, slots=True)
class RuleVisit:
    """One rule the walk considered and what came of it (in walk order)."""

    rule: Rule
    outcome: RuleOutcome
    route: Route | None = None
    """The route that decided the outcome (`throw`, `matched`, `route-rejects`)."""

    def __str__(self) -> str:
        return f"{self.rule.priority}: {self.outcome}"


@dataclass(frozen=True, slots=True)
class FibResult:
    """A successful routing decision.

    `table` is the table id the kernel reports (what `ip route get` prints as `table N`): in a
    namespace that still has only the three default rules the kernel keeps `local` and `main`
    merged in one table and reports main (254) for both. `dev` is where the packet goes: the
    route's device from `fib_lookup`, but `lo` for a local delivery from `output_route` or
    `input_route` (the kernel loops local traffic through lo). `prefsrc` is the route's `src`
    from `fib_lookup`, and the source the kernel chose from `output_route`. `rule` is None only
    for the kernel's "assume the destination is on link" answer to a lookup pinned to `oif`.
    """

    type: ResultType
    route: Route
    rule: Rule | None
    table: int
    dev: str
    gateway: IPv4Address | None
    prefsrc: IPv4Address | None
    trace: tuple[RuleVisit, ...] = ()


@dataclass(frozen=True, slots=True)
class FibError:
    """A failed routing decision: the errno `ip route get` reports, and what caused it."""

    errno: Errno
    message: str
    rule: Rule | None = None
    route: Route | None = None
    trace: tuple[RuleVisit, ...] = ()


def fib_error(
    errno: Errno,
    *,
    rule: Rule | None = None,
    route: Route | None = None,
    trace: tuple[RuleVisit, ...] = (),
) -> FibError:
    return FibError(errno, STRERROR[errno], rule, route, trace)


# --- what the kernel derives from the addresses ---------------------------------------------


def _ipv4(ns: Namespace) -> tuple[Address, ...]:
    return tuple(a for a in ns.addresses if isinstance(a.interface, IPv4Interface))


def _interface(address: Address) -> IPv4Interface:
    assert isinstance(address.interface, IPv4Interface)
    return address.interface


def _primary_for(addresses: tuple[Address, ...], address: Address) -> Address:
    """The primary address a secondary one hangs off (same device, same prefix)."""
    if not address.secondary:
        return address
    network = _interface(address).network
    for other in addresses:
        if (
            other.dev == address.dev
            and not other.secondary
            and _interface(other).network == network
        ):
            return other
    return address


def _kernel_route(
    type_: RouteType, dst: IPv4Network, dev: str, scope: Scope, src: IPv4Address
) -> Route:
    return Route(TABLE_LOCAL, dst, type=type_, dev=dev, proto="kernel", scope=scope, src=src)


@lru_cache(maxsize=256)
def local_table(ns: Namespace) -> tuple[Route, ...]:
    """Table 255 as the kernel fills it from the addresses (§2.6, measured on 6.18); derived
    once per namespace (a walk asks for it at every `-m addrtype` and every routing decision).

    Per IPv4 address A/L on device D: `local A` (always, also while D is down: it has host scope,
    so a device going down does not kill it); while D is up, a `broadcast` for an explicitly
    assigned broadcast address, and for a primary address with L < 32 whose prefix is not in
    0/8: on a loopback device `local <prefix>/L` (the 127.0.0.0/8 entry), and when L < 31
    `broadcast <last address>`. No subnet-zero broadcast on 6.x. The source of every entry is the
    primary address of the prefix. Ordered as `ip route show table local` prints them: by
    address, longer prefix first, then in the order they were added.
    """
    addresses = _ipv4(ns)
    up = {link.name: link.up for link in ns.links}
    loopback = {link.name for link in ns.links if link.kind == "loopback"}
    entries: list[Route] = []
    for address in addresses:
        interface = _interface(address)
        src = _interface(_primary_for(addresses, address)).ip
        dev = address.dev
        entries.append(_kernel_route("local", IPv4Network(interface.ip), dev, "host", src))
        if not up.get(dev, False):
            continue
        if address.broadcast is not None and address.broadcast != LIMITED_BROADCAST:
            entries.append(
                _kernel_route("broadcast", IPv4Network(address.broadcast), dev, "link", src)
            )
        network = interface.network
        if (
            network.prefixlen < 32
            and not address.secondary
            and network.network_address not in ZERO_NET
        ):
            if dev in loopback:
                entries.append(_kernel_route("local", network, dev, "host", src))
            if network.prefixlen < 31:
                brd = IPv4Network(network.broadcast_address)
                entries.append(_kernel_route("broadcast", brd, dev, "link", src))
    unique = list(dict.fromkeys(entries))
    return tuple(sorted(unique, key=lambda r: (int(r.dst.network_address), -r.dst.prefixlen)))


@lru_cache(maxsize=256)
def _tables(ns: Namespace) -> Mapping[int, tuple[Route, ...]]:
    """Every table's routes; the local table is the derived entries plus any stored ones."""
    tables: dict[int, list[Route]] = {TABLE_LOCAL: list(local_table(ns))}
    for route in ns.routes:
        tables.setdefault(route.table, []).append(route)
    return {table: tuple(routes) for table, routes in tables.items()}


def has_custom_rules(ns: Namespace) -> bool:
    """Whether the namespace has rules beyond the three defaults.

    The kernel notes this when the first rule is added (and never forgets; the state cannot say,
    so eksnet goes by the rules present). It changes two things: `local` and `main` stop being one
    merged table, and rp_filter mode 0 no longer takes its fast path.
    """
    return ns.sorted_rules() != DEFAULT_RULES


def has_custom_local_routes(ns: Namespace) -> bool:
    """Whether a `local` route was added by hand (any table): it disables rp_filter's fast path."""
    return any(route.type == "local" for route in ns.routes)


def loopback_name(ns: Namespace) -> str:
    for link in ns.links:
        if link.kind == "loopback":
            return link.name
    return "lo"


def is_local_address(ns: Namespace, address: IPv4Address) -> bool:
    """Whether `address` is ours: configured on any device (up or not), or covered by a `local`
    route of the local table (127.0.0.5 via 127.0.0.0/8) — the kernel's `__ip_dev_find`.

    While local and main are merged (only the default rules) that lookup sees main's routes too:
    measured on 6.18, `local 10.0.0.0/8 dev lo` added to main made 10.1.0.9 a valid `from`.
    """
    if any(_interface(a).ip == address for a in _ipv4(ns)):
        return True
    tables = _tables(ns)
    routes = tables.get(TABLE_LOCAL, ())
    if not has_custom_rules(ns):
        routes += tables.get(TABLE_MAIN, ())
    candidates = sorted(
        (r for r in routes if address in r.dst), key=lambda r: (-r.dst.prefixlen, -r.table)
    )
    route = _first_match(ns, candidates, FlowKey(dst=address))
    return route is not None and route.type == "local"


# --- rule and table matching -------------------------------------------------------------------


def _tos(item: Rule | Route) -> int:
    """The TOS selector of a rule or route; 0 means any.

    `state.Rule` and `state.Route` have no `tos` field yet, so this reads one only if a future
    state type (or a test's subclass) carries it.
    """
    value = getattr(item, "tos", 0)
    return int(value) if value else 0


def rule_matches(rule: Rule, key: FlowKey) -> bool:
    """All of the rule's selectors match the flow (§2.3), inverted as a whole by `not`."""
    matched = _selectors_match(rule, key)
    return not matched if rule.invert else matched


def _selectors_match(rule: Rule, key: FlowKey) -> bool:
    if rule.iif is not None and rule.iif != key.iif:
        return False
    if rule.oif is not None and rule.oif != key.oif:
        return False
    if rule.fwmark is not None:
        mask = rule.fwmask if rule.fwmask is not None else (_ALL_ONES if rule.fwmark else 0)
        if (rule.fwmark ^ key.mark) & mask:
            return False
    if rule.src is not None and (key.src or _ANY) not in rule.src:
        return False
    if rule.dst is not None and key.dst not in rule.dst:
        return False
    tos = _tos(rule)
    return not (tos and tos != key.tos)


def _nexthop_usable(ns: Namespace, route: Route, key: FlowKey) -> bool:
    """`fib_lookup_good_nhc`: the nexthop is alive and, for a pinned lookup, on the pinned device.

    A device going down kills the nexthops through it, except host-scope ones (the `local`
    entries), which is why an address on a down device still answers as local.
    """
    if route.dev is None:
        return True
    if route.scope != "host" and not ns.link(route.dev).up:
        return False
    return key.oif is None or route.dev == key.oif


def _lookup_order(route: Route) -> tuple[int, int, int]:
    return (-route.dst.prefixlen, -_tos(route), route.metric or 0)


def _first_match(ns: Namespace, routes: list[Route], key: FlowKey) -> Route | None:
    """The first usable route of an already ordered candidate list (`check_leaf`).

    Reject types and `throw` answer at once, before any nexthop check; unicast-like routes whose
    nexthop is unusable are skipped, so a shorter prefix can still match.
    """
    for route in routes:
        tos = _tos(route)
        if tos and tos != key.tos:
            continue
        if route.type in ROUTE_ERRNO or route.type == "throw":
            return route
        if _nexthop_usable(ns, route, key):
            return route
    return None


def _table_match(ns: Namespace, routes: tuple[Route, ...], key: FlowKey) -> Route | None:
    """Longest prefix; then a route with the flow's TOS before TOS 0; then lowest metric."""
    candidates = sorted((r for r in routes if key.dst in r.dst), key=_lookup_order)
    return _first_match(ns, candidates, key)


def _result(route: Route, rule: Rule | None, table: int, trace: list[RuleVisit]) -> FibResult:
    return FibResult(
        type=_RESULT_TYPES[route.type],
        route=route,
        rule=rule,
        table=table,
        dev=route.dev or "lo",
        gateway=route.gateway,
        prefsrc=route.src,
        trace=tuple(trace),
    )


def fib_lookup(ns: Namespace, key: FlowKey) -> FibResult | FibError:
    """Policy routing (§2.2): the rules in order, each selecting a table or an action.

    A rule whose table is missing, has no route for the flow, or answers `throw` falls through to
    the next rule; reject actions and reject route types end the walk with their (different)
    errors; a walk that runs out of rules is ENETUNREACH.
    """
    if not has_custom_rules(ns):
        return _merged_lookup(ns, key)
    tables = _tables(ns)
    rules = ns.sorted_rules()
    trace: list[RuleVisit] = []
    index = 0
    while index < len(rules):
        rule = rules[index]
        index += 1
        if not rule_matches(rule, key):
            trace.append(RuleVisit(rule, "no-match"))
            continue
        if rule.action == "goto":
            target = next((i for i, r in enumerate(rules) if r.priority == rule.goto), None)
            if target is None:
                trace.append(RuleVisit(rule, "goto-unresolved"))
                continue
            trace.append(RuleVisit(rule, "goto"))
            index = target
            continue
        if rule.action == "nop":
            trace.append(RuleVisit(rule, "nop"))
            continue
        if rule.action in RULE_ERRNO:
            trace.append(RuleVisit(rule, "rule-rejects"))
            return fib_error(RULE_ERRNO[rule.action], rule=rule, trace=tuple(trace))
        table = rule.table or TABLE_MAIN
        routes = tables.get(table, ())
        if not routes:
            trace.append(RuleVisit(rule, "table-missing"))
            continue
        route = _table_match(ns, routes, key)
        if route is None:
            trace.append(RuleVisit(rule, "no-route-in-table"))
            continue
        if route.type == "throw":
            trace.append(RuleVisit(rule, "throw", route))
            continue
        if route.type in ROUTE_ERRNO:
            trace.append(RuleVisit(rule, "route-rejects", route))
            return fib_error(ROUTE_ERRNO[route.type], rule=rule, route=route, trace=tuple(trace))
        trace.append(RuleVisit(rule, "matched", route))
        return _result(route, rule, table, trace)
    return fib_error("ENETUNREACH", trace=tuple(trace))


def _merged_lookup(ns: Namespace, key: FlowKey) -> FibResult | FibError:
    """The lookup of a namespace with only the default rules (measured on 6.18).

    The kernel then keeps `local` and `main` in one trie: one longest-prefix match over both (so a
    main /16 inside 127.0.0.0/8 beats the local /8), local entries first at an equal prefix, and
    the result reported as table main; `default` is tried only after that. The trace is written as
    the equivalent walk of rules 0 / 32766 / 32767.
    """
    tables = _tables(ns)
    by_table = {rule.table: rule for rule in ns.rules}
    local_rule, main_rule = by_table[TABLE_LOCAL], by_table[TABLE_MAIN]
    merged = tables.get(TABLE_LOCAL, ()) + tables.get(TABLE_MAIN, ())
    candidates = sorted(
        (r for r in merged if key.dst in r.dst),
        key=lambda r: (-r.dst.prefixlen, -r.table, -_tos(r), r.metric or 0),
    )
    route = _first_match(ns, candidates, key)
    trace: list[RuleVisit] = []
    if route is None or route.type == "throw":
        trace.append(RuleVisit(local_rule, "no-route-in-table"))
        trace.append(RuleVisit(main_rule, "throw" if route else "no-route-in-table", route))
    else:
        rule = local_rule if route.table == TABLE_LOCAL else main_rule
        if rule is main_rule:
            trace.append(RuleVisit(local_rule, "no-route-in-table"))
        if route.type in ROUTE_ERRNO:
            trace.append(RuleVisit(rule, "route-rejects", route))
            return fib_error(ROUTE_ERRNO[route.type], rule=rule, route=route, trace=tuple(trace))
        trace.append(RuleVisit(rule, "matched", route))
        return _result(route, rule, TABLE_MAIN, trace)
    default_rule = by_table[TABLE_DEFAULT]
    routes = tables.get(TABLE_DEFAULT, ())
    route = _table_match(ns, routes, key) if routes else None
    if route is None or route.type == "throw":
        outcome: RuleOutcome = "table-missing" if not routes else "no-route-in-table"
        trace.append(RuleVisit(default_rule, "throw" if route else outcome, route))
        return fib_error("ENETUNREACH", trace=tuple(trace))
    if route.type in ROUTE_ERRNO:
        trace.append(RuleVisit(default_rule, "route-rejects", route))
        return fib_error(
            ROUTE_ERRNO[route.type], rule=default_rule, route=route, trace=tuple(trace)
        )
    trace.append(RuleVisit(default_rule, "matched", route))
    return _result(route, default_rule, TABLE_DEFAULT, trace)


# --- source address selection ------------------------------------------------------------------


def _address_scope_ok(ns: Namespace, address: Address, limit: int) -> bool:
    """An address of the output device qualifies for a route of scope `limit` unless its own
    scope is narrower. With `route_localnet` on that device, host-scope addresses (127.0.0.9) count
    as link scope, so they can source link-scope traffic (measured on 6.18)."""
    localnet = (
        SCOPE_VALUE["link"] if sysctl.route_localnet(ns, address.dev) else SCOPE_VALUE["host"]
    )
    return min(SCOPE_VALUE[address.scope], localnet) <= limit


def select_source(
    ns: Namespace, dev: str, target: IPv4Address | None = None, scope: Scope = "global"
) -> IPv4Address | None:
    """The source the kernel picks for traffic leaving `dev` (§2.8, `inet_select_addr`).

    On `dev`: the first primary address of suitable scope whose subnet contains `target`, else
    the first primary of suitable scope. `target` is the route's gateway, or None for a device
    route — the kernel passes no destination there (measured: `10.2.0.128/25 dev d0` with
    10.1.0.1/24 and 10.2.0.1/24 on d0 sources 10.2.0.200 from 10.1.0.1). If `dev` has none, the
    first primary address of suitable scope of any device, scanning from lo: that is how an
    address-less veth sources packets from the node IP. Borrowed addresses are never link scope
    (a 169.254/16 address on another device is not used) and 127.0.0.1 is host scope, so it is
    skipped for link and global routes (measured on 6.18).
    """
    limit = SCOPE_VALUE[scope]
    primaries = [a for a in _ipv4(ns) if not a.secondary]
    first: IPv4Address | None = None
    for address in primaries:
        if address.dev != dev or not _address_scope_ok(ns, address, limit):
            continue
        interface = _interface(address)
        if target is None or target in interface.network:
            return interface.ip
        if first is None:
            first = interface.ip
    if first is not None:
        return first
    order = sorted(ns.links, key=lambda link: link.kind != "loopback")
    for link in order:
        for address in primaries:
            if (
                address.dev == link.name
                and address.scope != "link"
                and SCOPE_VALUE[address.scope] <= limit
            ):
                return _interface(address).ip
    return None


# --- output (locally generated) ----------------------------------------------------------------


def _not_modelled_destination(dst: IPv4Address) -> None:
    if dst in MULTICAST_NET:
        raise NotModelled(f"routing to the multicast address {dst}")
    if dst == LIMITED_BROADCAST:
        raise NotModelled("routing to the limited broadcast address 255.255.255.255")
    if dst in ZERO_NET:
        raise NotModelled(f"routing to {dst} (0.0.0.0/8)")


def _leaves_loopback_source(ns: Namespace, result: FibResult) -> bool:
    """`__mkroute_output`: a 127/8 source may only leave through a loopback device, unless
    `route_localnet` is on for the output device."""
    source = result.prefsrc
    if source is None or source not in LOOPBACK_NET:
        return False
    link = ns.link(result.dev)
    return link.kind != "loopback" and not sysctl.route_localnet(ns, result.dev)


def _route_output(
    ns: Namespace,
    dst: IPv4Address,
    src: IPv4Address | None,
    oif: str | None,
    mark: int,
    tos: int,
) -> FibResult | FibError:
    """One output lookup (`ip_route_output_key_hash_rcu`), as `ip route get` without `iif`."""
    _not_modelled_destination(dst)
    if src == _ANY:
        src = None
    if src is not None:
        if src in MULTICAST_NET or src == LIMITED_BROADCAST or src in ZERO_NET:
            return fib_error("EINVAL")
        if not is_local_address(ns, src):
            return fib_error("ENETUNREACH")
    if oif is not None and not ns.link(oif).up:
        return fib_error("ENETUNREACH")
    key = FlowKey(dst=dst, src=src, iif=loopback_name(ns), oif=oif, mark=mark, tos=tos)
    found = fib_lookup(ns, key)
    if isinstance(found, FibError):
        if oif is None:
            return found
        # "Apparently, routing tables are wrong. Assume, that the destination is on link."
        # Any failure of a pinned lookup, even a prohibit rule, ends here (measured).
        onlink = Route(table=0, dst=IPv4Network(dst), dev=oif, scope="link")
        chosen = src or select_source(ns, oif, None, "link")
        result = FibResult("unicast", onlink, None, 0, oif, None, chosen, found.trace)
    elif found.type == "local":
        chosen = src or found.route.src or dst
        result = replace(found, dev=loopback_name(ns), prefsrc=chosen)
    else:
        route = found.route
        chosen = src or route.src or select_source(ns, found.dev, found.gateway, route.scope)
        result = replace(found, prefsrc=chosen)
    if _leaves_loopback_source(ns, result):
        return fib_error("EINVAL", rule=result.rule, route=result.route, trace=result.trace)
    return result


def output_route(
    ns: Namespace,
    dst: IPv4Address,
    *,
    src: IPv4Address | None = None,
    oif: str | None = None,
    mark: int = 0,
    tos: int = 0,
    connect: bool = True,
) -> FibResult | FibError:
    """The route of a locally generated packet (§1.3 L1): iif = lo for the rules.

    With `src` None the kernel looks up with source 0.0.0.0 (so `from` rules do not match),
    chooses the source from the result (route `src`, else `select_source`), and — for a connected
    socket (`connect`, the default; TCP and connected UDP) — looks up once more with that source,
    so `from` rules do steer the final route (§2.3). `ip route get` is the unconnected single
    lookup (`connect=False`). A given `src` must be one of our addresses (else ENETUNREACH).
    """
    first = _route_output(ns, dst, src, oif, mark, tos)
    if not connect or src is not None or isinstance(first, FibError) or first.prefsrc is None:
        return first
    return _route_output(ns, dst, first.prefsrc, oif, mark, tos)


# --- input (received packets) ------------------------------------------------------------------


InputKind = Literal["local", "forward", "drop"]


@dataclass(frozen=True, slots=True)
class RpFilterCheck:
    """The source validation of one received packet (`fib_validate_source`, §3.2).

    `mode` = max(`all_value`, `dev_value`) of `rp_filter` on the ingress `dev`. `reverse` is the
    reverse lookup (to the packet's source, from its destination, iif = lo for local delivery but
    the *egress* device for a forwarded packet, mark only with `src_valid_mark`), or None when the
    kernel took the mode-0 fast path without one. `onlink` is the kernel's "the source is directly
    connected" answer that decides ICMP redirects.
    """

    dev: str
    mode: int
    all_value: int
    dev_value: int
    reverse: FibResult | FibError | None
    passed: bool
    why: str
    onlink: bool = False


@dataclass(frozen=True, slots=True)
class InputRoute:
    """The routing decision for a received packet (§1.2 A4/A5b).

    `kind`: `local` (delivered here, also broadcasts), `forward` or `drop`. For a drop, `errno`
    is what `ip route get ... iif DEV` reports and `reason` says why in words. `redirect` is set
    when the packet is forwarded back out of its ingress device to an on-link source (the kernel
    would send an ICMP redirect; `ip route get` prints `<redirect>`).
    """

    kind: InputKind
    fib: FibResult | FibError | None
    rp_filter: RpFilterCheck | None = None
    reason: str | None = None
    errno: Errno | None = None
    redirect: bool = False

    @property
    def message(self) -> str | None:
        return STRERROR[self.errno] if self.errno is not None else None


def _has_ipv4(ns: Namespace, dev: str) -> bool:
    return any(a.dev == dev for a in _ipv4(ns))


def _rp_header(mode: int, all_value: int, dev: str, dev_value: int) -> str:
    label = "off" if mode == 0 else "strict" if mode == 1 else "loose"
    return f"rp_filter ({label}, mode {mode} = max(all {all_value}, {dev} {dev_value}))"


def validate_source(
    ns: Namespace,
    *,
    src: IPv4Address,
    dst: IPv4Address | None,
    iif: str,
    oif: str | None,
    mark: int = 0,
    tos: int = 0,
) -> RpFilterCheck:
    """`fib_validate_source` for a packet from `src` to `dst` arriving on `iif` (§3.2).

    `oif` is the egress device of a forwarded packet (None for local delivery); `dst` is None for
    a broadcast (the kernel validates those with destination 0).
    """
    all_value, dev_value = sysctl.rp_filter_values(ns, iif)
    mode = max(all_value, dev_value)
    header = _rp_header(mode, all_value, iif, dev_value)

    def check(
        passed: bool, why: str, reverse: FibResult | FibError | None = None, onlink: bool = False
    ) -> RpFilterCheck:
        return RpFilterCheck(iif, mode, all_value, dev_value, reverse, passed, why, onlink)

    own_source = f"source {src} is an address of this namespace and accept_local is off on {iif}"
    fast = mode == 0 and (oif != iif or not sysctl.send_redirects(ns, iif))
    if fast and sysctl.accept_local(ns, iif):
        return check(True, f"{header}: source not checked")
    if fast and not (has_custom_rules(ns) or has_custom_local_routes(ns)):
        if any(_interface(a).ip == src for a in _ipv4(ns)):
            return check(False, f"martian source: {own_source}")
        return check(True, f"{header}: source not checked")

    use_mark = sysctl.src_valid_mark(ns, iif)
    reverse_key = FlowKey(
        dst=src, src=dst, iif=oif or loopback_name(ns), mark=mark if use_mark else 0, tos=tos
    )
    reverse = fib_lookup(ns, reverse_key)
    if isinstance(reverse, FibError):
        if mode:
            return check(False, f"{header}: no route back to {src} ({reverse.message})", reverse)
        return check(True, f"{header}: no route back to {src}, but the filter is off", reverse)
    if reverse.type == "broadcast":
        return check(False, f"martian source: {src} is a broadcast address here", reverse)
    if reverse.type == "local" and not sysctl.accept_local(ns, iif):
        return check(False, f"martian source: {own_source}", reverse)
    direct = reverse.gateway is None
    if reverse.dev == iif or (reverse.type == "local" and iif == loopback_name(ns)):
        return check(True, f"{header}: reverse route to {src} leaves via {iif}", reverse, direct)
    mismatch = f"reverse route to {src} leaves via {reverse.dev}, not {iif}"
    if not _has_ipv4(ns, iif):
        if mode:
            why = f"{header}: {mismatch}, and {iif} has no IPv4 address, so even loose mode drops"
            return check(False, why, reverse)
        return check(True, f"{header}: {mismatch}, but the filter is off", reverse)
    if mode == 1:
        return check(False, f"{header}: {mismatch}", reverse)
    pinned = fib_lookup(ns, replace(reverse_key, oif=iif))
    onlink = isinstance(pinned, FibResult) and pinned.type == "unicast" and pinned.gateway is None
    if mode == 0:
        return check(True, f"{header}: {mismatch}, but the filter is off", reverse, onlink)
    why = f"{header}: a route back to {src} exists (via {reverse.dev})"
    return check(True, why, reverse, onlink)


def _drop(
    errno: Errno,
    reason: str,
    fib: FibResult | FibError | None = None,
    rp_filter: RpFilterCheck | None = None,
) -> InputRoute:
    return InputRoute("drop", fib, rp_filter, reason, errno)


def _addr_onlink(ns: Namespace, dev: str, src: IPv4Address, gateway: IPv4Address | None) -> bool:
    for address in _ipv4(ns):
        network = _interface(address).network
        if address.dev == dev and src in network and (gateway is None or gateway in network):
            return True
    return False


def _describe_failure(error: FibError, dst: IPv4Address) -> str:
    if error.route is not None:
        where = f"route `{error.route.type} {error.route.dst}` in table {error.route.table}"
        return f"{where} rejects {dst} ({error.message})"
    if error.rule is not None:
        return f"rule {error.rule.priority} ({error.rule.action}) rejects {dst} ({error.message})"
    return f"no route to {dst} ({error.message})"


def input_route(
    ns: Namespace,
    *,
    src: IPv4Address,
    dst: IPv4Address,
    iif: str,
    mark: int = 0,
    tos: int = 0,
) -> InputRoute:
    """The input routing decision of a packet arriving on `iif` (§1.2 A4/A5b, §3).

    In the kernel's order: martian addresses; the rule walk with iif = the ingress device; a
    failed lookup drops (EHOSTUNREACH instead of the lookup's error when forwarding is off on
    `iif`); broadcast and local destinations are delivered after rp_filter; anything else needs
    `forwarding` on the *ingress* device, then passes rp_filter and is forwarded.
    """
    ingress = ns.link(iif)
    if dst in MULTICAST_NET:
        raise NotModelled(f"receiving multicast ({dst})")
    if dst == LIMITED_BROADCAST or (src == _ANY and dst == _ANY):
        raise NotModelled("receiving limited broadcasts (255.255.255.255)")
    if src in MULTICAST_NET or src == LIMITED_BROADCAST or src in ZERO_NET:
        return _drop("EINVAL", f"martian source {src}")
    if dst in ZERO_NET:
        return _drop("EINVAL", f"martian destination {dst}")
    localnet = sysctl.route_localnet(ns, ingress.name)
    if dst in LOOPBACK_NET and not localnet:
        why = f"martian destination {dst}: 127.0.0.0/8 arriving on {iif} needs route_localnet"
        return _drop("EINVAL", why)
    if dst not in LOOPBACK_NET and src in LOOPBACK_NET and not localnet:
        why = f"martian source {src}: 127.0.0.0/8 arriving on {iif} needs route_localnet"
        return _drop("EINVAL", why)

    found = fib_lookup(ns, FlowKey(dst=dst, src=src, iif=iif, mark=mark, tos=tos))
    can_forward = sysctl.forwarding(ns, iif)
    forwarding_off = f"forwarding is off on {iif} (net.ipv4.conf.{iif}.forwarding = 0)"
    if isinstance(found, FibError):
        failure = _describe_failure(found, dst)
        if not can_forward:
            return _drop("EHOSTUNREACH", f"{failure}; {forwarding_off}", found)
        return _drop(found.errno, failure, found)

    if found.type == "broadcast":
        if sysctl.bc_forwarding(ns, iif):
            raise NotModelled("forwarding directed broadcasts (bc_forwarding)")
        checked = validate_source(ns, src=src, dst=None, iif=iif, oif=None, mark=mark, tos=tos)
        if not checked.passed:
            return _drop("EINVAL", checked.why, found, checked)
        return InputRoute("local", replace(found, dev=loopback_name(ns)), checked)
    if found.type == "local":
        checked = validate_source(ns, src=src, dst=dst, iif=iif, oif=None, mark=mark, tos=tos)
        if not checked.passed:
            return _drop("EINVAL", checked.why, found, checked)
        return InputRoute("local", replace(found, dev=loopback_name(ns)), checked)
    if not can_forward:
        return _drop("EHOSTUNREACH", f"{dst} is not local and {forwarding_off}", found)
    checked = validate_source(ns, src=src, dst=dst, iif=iif, oif=found.dev, mark=mark, tos=tos)
    if not checked.passed:
        return _drop("EINVAL", checked.why, found, checked)
    redirect = (
        found.dev == iif
        and checked.onlink
        and sysctl.send_redirects(ns, iif)
        and (sysctl.shared_media(ns, iif) or _addr_onlink(ns, iif, src, found.gateway))
    )
    return InputRoute("forward", found, checked, redirect=redirect)
