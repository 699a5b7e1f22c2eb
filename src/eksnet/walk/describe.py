"""Turn the kernel model's routing answers into walk steps, in `ip`'s own words.

The decisive rule and route are quoted exactly as `ip rule show` and `ip route show table N`
print them, so a user can find them on a real node; the rules that missed are listed for `-v`.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from eksnet.dataplane.state import TABLE_LOCAL, Namespace
from eksnet.kernel.fib import FibError, FibResult, InputRoute, select_source
from eksnet.kernel.iproute_text import route_line, rule_line, table_name
from eksnet.walk.model import Decision, Packet, RouteAnswer, Step


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
    namespace: Namespace,
    result: FibResult | FibError,
    packet: Packet,
    *,
    iif: str | None = None,
    answer: RouteAnswer | None = None,
) -> Step:
    """The routing decision as one step: rule → table → route, or the error. `before` is the
    packet as the decision saw it (after PREROUTING's DNAT, with its mark) and `route` what
    `ip route get` answers for it (from `iif`, or locally generated when None); `answer`
    overrides it where the decision is more than the lookup (an input route that rp_filter or
    the forwarding check rejects)."""
    kind = "output" if iif is None else "input"
    answer = answer or route_answer(result, iif)
    if isinstance(result, FibError):
        return Step(
            "route",
            f"{kind} route lookup for {packet.dst}: {result.message}",
            decided_by=_decisions(namespace, result),
            before=packet,
            details=_missed(namespace, result),
            route=answer,
        )
    decisions = _decisions(namespace, result)
    rule = f"rule {result.rule.priority}" if result.rule is not None else "no rule"
    where = "local" if result.type == "local" else f"{result.dev}"
    via = f" via {result.gateway}" if result.gateway is not None else ""
    table = table_name(result.table) if result.route.table != TABLE_LOCAL else "local"
    summary = f"{kind} route: {rule} → table {table} → {where}{via}"
    if iif is None and result.prefsrc is not None:
        summary += f", source {result.prefsrc}"
    return Step(
        "route",
        summary,
        decided_by=decisions,
        before=packet,
        details=_missed(namespace, result),
        route=answer,
    )


def route_answer(result: FibResult | FibError, iif: str | None) -> RouteAnswer:
    """What `ip route get` prints for a lookup's result: the error, or type, device, gateway
    and table as the kernel reports them."""
    if isinstance(result, FibError):
        return RouteAnswer("error", error=result.message, iif=iif)
    return RouteAnswer(
        result.type,
        dev=result.dev,
        gateway=result.gateway,
        table=table_name(result.table),
        iif=iif,
    )


def input_route_steps(
    namespace: Namespace, decision: InputRoute, packet: Packet, iif: str
) -> list[Step]:
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
        answer = None
        if decision.kind == "drop" and decision.message is not None:
            answer = RouteAnswer("error", error=decision.message, iif=iif)
        steps.append(route_step(namespace, decision.fib, packet, iif=iif, answer=answer))
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
