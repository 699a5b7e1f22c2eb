"""`ip rule [show]` as iproute2 6.1 prints it [src iprule.c `print_rule`; meas on 6.18].

`PRIO:<TAB>` then, in this order: `not`, `from P|all`, `to P`, `fwmark V[/M]`, `iif D`,
`oif D`, `lookup T`, then the action word (`goto N`, `nop`, `blackhole`, ...). Host prefixes
print without `/32`; a `/0` destination is not printed at all; `from` always is. A device
that does not exist in the namespace is marked `[detached]`, a `goto` whose target priority
has no rule `[unresolved]`. Lines have no trailing space.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from eksnet.dataplane.state import Namespace, Rule
from eksnet.render.linux.route import table_name

ALL_ONES = 0xFFFFFFFF


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


def ip_rule(ns: Namespace) -> str:
    """`ip rule show` in `ns`: rules by priority, insertion order among equals."""
    return "".join(rule_line(rule, ns) + "\n" for rule in ns.sorted_rules())
