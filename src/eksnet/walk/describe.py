"""Turn the kernel model's routing answers into walk steps, in `ip`'s own words.

The decisive rule and route are quoted exactly as `ip rule show` and `ip route show table N`
print them, so a user can find them on a real node; the rules that missed are listed for `-v`.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from eksnet.dataplane.state import TABLE_LOCAL, Namespace
from eksnet.kernel.fib import FibError, FibResult, InputRoute, select_source
from eksnet.kernel.iproute_text import route_line, rule_line, table_name
from eksnet.walk.model import Decision, Packet, Step


def _decisions(namespace: Namespace, result: FibResult | FibError) -> tuple[Decision, ...]:
    decisions: list[Decision] = []
    if result.rule is not None:
        decisions.append(
            Decision(
                "rule",
                rule_line(result.rule, namespace),
                priority=result.rule.priority,
                table=table_name(result.rule.table) if result.rule.table is not None else None,
            )
        )
    if result.route is not None:
        table = result.route.table
        decisions.append(
            Decision(
                "route",
                route_line(namespace, result.route, show_table=False).rstrip(),
                table=table_name(table),
            )
        )
    return tuple(decisions)


def _missed(namespace: Namespace, result: FibResult | FibError) -> tuple[str, ...]:
    return tuple(
        f"{rule_line(visit.rule, namespace).rstrip()}  → {visit.outcome}" for visit in result.trace
    )


def route_step(
    namespace: Namespace, result: FibResult | FibError, packet: Packet, *, output: bool
) -> Step:
    """The routing decision as one step: rule → table → route, or the error."""
    kind = "output" if output else "input"
    if isinstance(result, FibError):
        return Step(
            "route",
            f"{kind} route lookup for {packet.dst}: {result.message}",
            decided_by=_decisions(namespace, result),
            details=_missed(namespace, result),
        )
    decisions = _decisions(namespace, result)
    rule = f"rule {result.rule.priority}" if result.rule is not None else "no rule"
    where = "local" if result.type == "local" else f"{result.dev}"
    via = f" via {result.gateway}" if result.gateway is not None else ""
    table = table_name(result.table) if result.route.table != TABLE_LOCAL else "local"
    summary = f"{kind} route: {rule} → table {table} → {where}{via}"
    if output and result.prefsrc is not None:
        summary += f", source {result.prefsrc}"
    return Step("route", summary, decided_by=decisions, details=_missed(namespace, result))


def input_route_steps(namespace: Namespace, decision: InputRoute, packet: Packet) -> list[Step]:
    """rp_filter (when it ran) and the routing decision of a received packet."""
    steps: list[Step] = []
    check = decision.rp_filter
    if check is not None:
        steps.append(
            Step(
                "rp_filter",
                ("passes " if check.passed else "fails ") + check.why.removeprefix("rp_filter "),
                decided_by=(
                    Decision(
                        "sysctl",
                        f"net.ipv4.conf.{check.dev}.rp_filter = {check.dev_value}, "
                        f"net.ipv4.conf.all.rp_filter = {check.all_value}",
                    ),
                ),
            )
        )
    if decision.fib is not None:
        steps.append(route_step(namespace, decision.fib, packet, output=False))
    if decision.kind == "drop":
        steps.append(Step("drop", decision.reason or "dropped by the input route lookup"))
    return steps


def arp_sender(namespace: Namespace, dev: str, packet: Packet) -> IPv4Address | None:
    """The sender address of an ARP request (linux-dataplane.md §4.1, arp_announce 0): the
    packet's source if it is ours, else what source selection picks on the device."""
    own = {a.interface.ip for a in namespace.addresses if a.family == 4}
    if packet.src in own:
        return packet.src
    return select_source(namespace, dev, packet.dst, "link")
