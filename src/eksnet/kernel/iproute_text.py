"""The text iproute2 6.1 prints for one rule or one route: the single implementation.

Both the walk (which quotes the decisive rule and route in its steps) and the `ip rule` /
`ip route` views in `render/linux/` print these lines, so they live here, below both. A line
needs its namespace only to look things up (does a device exist, does it have a carrier, does a
`goto` target exist); the order of lines in a dump stays with the views.

`ip rule` [src iprule.c `print_rule`; meas on 6.18]: `PRIO:<TAB>` then, in this order: `not`,
`from P|all`, `to P`, `fwmark V[/M]`, `iif D`, `oif D`, `lookup T`, then the action word
(`goto N`, `nop`, `blackhole`, ...). Host prefixes print without `/32`; a `/0` destination is
not printed at all; `from` always is. A device that does not exist in the namespace is marked
`[detached]`, a `goto` whose target priority has no rule `[unresolved]`. Lines have no trailing
space.

`ip route` [src iproute.c `print_route`]: the type only when not unicast, `default` for 0/0,
host routes without `/32`, then `via`, `dev`, `table` (only in `table all`, never for main),
`proto` unless `boot`, `scope` unless global, `src`, `metric` unless 0, `linkdown` when the
device has no carrier (never on a `local` entry). iproute2 ends every IPv4 line with a space
(kept here).
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from eksnet.dataplane.state import TABLE_MAIN, TABLE_NAMES, Namespace, Route, Rule
from eksnet.kernel.device import has_carrier

ALL_ONES = 0xFFFFFFFF


def table_name(table: int) -> str:
    """The name iproute2 prints for a table id (`/etc/iproute2/rt_tables`), else the number."""
    return TABLE_NAMES.get(table, str(table))


def c_hex(value: int) -> str:
    """C's `%#x`: `0x80`, but a bare `0` for zero (so `fwmark 0/0xff`)."""
    return f"{value:#x}" if value else "0"


def prefix(network: IPv4Network) -> str:
    """A rule prefix: the bare address for a host, else `A/L`."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def fwmark_words(rule: Rule) -> list[str]:
    """`fwmark V[/M]` as the kernel reports it back.

    Without a mask the kernel stores all ones for a non-zero mark and nothing for mark 0, so
    `fwmark 0` alone vanishes; an all-ones mask is not printed.
    """
    if rule.fwmark is None:
        return []
    mask = rule.fwmask if rule.fwmask is not None else (ALL_ONES if rule.fwmark else 0)
    if not rule.fwmark and not mask:
        return []
    if mask == ALL_ONES:
        return ["fwmark", c_hex(rule.fwmark)]
    return ["fwmark", f"{c_hex(rule.fwmark)}/{c_hex(mask)}"]


def device_words(keyword: str, dev: str | None, ns: Namespace) -> list[str]:
    """`iif D` / `oif D`, with `[detached]` when no such device exists in `ns`."""
    if dev is None:
        return []
    known = any(link.name == dev for link in ns.links)
    return [keyword, dev] if known else [keyword, dev, "[detached]"]


def action_words(rule: Rule, ns: Namespace) -> list[str]:
    """`lookup T` and the action; `lookup` is implied by a table, not printed as an action."""
    words = ["lookup", table_name(rule.table)] if rule.table else []
    if rule.action == "goto":
        words += ["goto", str(rule.goto)]
        if not any(other.priority == rule.goto for other in ns.rules):
            words.append("[unresolved]")
    elif rule.action != "lookup":
        words.append(rule.action)
    return words


def rule_line(rule: Rule, ns: Namespace) -> str:
    """One rule as `ip rule` prints it."""
    words = ["not"] if rule.invert else []
    source = rule.src if rule.src is not None and rule.src.prefixlen else None
    words += ["from", prefix(source) if source is not None else "all"]
    if rule.dst is not None and rule.dst.prefixlen:
        words += ["to", prefix(rule.dst)]
    words += fwmark_words(rule)
    words += device_words("iif", rule.iif, ns)
    words += device_words("oif", rule.oif, ns)
    words += action_words(rule, ns)
    return f"{rule.priority}:\t" + " ".join(words)


def destination(dst: IPv4Network | IPv6Network) -> str:
    """`default` for the zero prefix, a bare address for a host route, else `A/L`."""
    if dst.prefixlen == 0:
        return "default"
    if dst.prefixlen == dst.max_prefixlen:
        return str(dst.network_address)
    return str(dst)


def route_line(ns: Namespace, route: Route, *, show_table: bool) -> str:
    """One IPv4 route as `ip route` prints it, trailing space included."""
    words: list[str] = []
    if route.type != "unicast":
        words.append(route.type)
    words.append(destination(route.dst))
    if route.gateway is not None:
        words += ["via", str(route.gateway)]
    if route.dev is not None:
        words += ["dev", route.dev]
    if show_table and route.table != TABLE_MAIN:
        words += ["table", table_name(route.table)]
    if route.proto != "boot":
        words += ["proto", route.proto]
    if route.scope != "global":
        words += ["scope", route.scope]
    if route.src is not None:
        words += ["src", str(route.src)]
    if route.metric:
        words += ["metric", str(route.metric)]
    if route.type != "local" and _without_carrier(ns, route.dev):
        words.append("linkdown")
    return " ".join(words) + " "


def _without_carrier(ns: Namespace, dev: str | None) -> bool:
    if dev is None:
        return False
    try:
        return not has_carrier(ns, ns.link(dev))
    except KeyError:
        return False
