"""The operations that configure one lab namespace, as data (pure: no I/O here).

`plan.py` turns a state namespace into these; `netlink.py` sends each as the one rtnetlink
request that `ip`/`tc` would send for its text (`ip_line`), from inside the namespace and without
starting a process. The text is kept because it is how a human (and a failure message, and the
plan's unit tests) reads the plan: `ip -batch` accepts every `ip_line` as written, `tc -batch`
every `QdiscReplace` line.

Each operation carries the state's own object (`Route`, `Rule`, …) and the ifindex of the
device it names (known from the state: the lab creates every link with the state's ifindex).
"""

from __future__ import annotations

from dataclasses import dataclass

from eksnet.dataplane.state import Address, Link, Neighbour, Route, Rule


@dataclass(frozen=True, slots=True)
class LinkAddrGenNone:
    """No EUI-64 link-local for this link (its pinned one is added as an address)."""

    link: Link

    def ip_line(self) -> str:
        return f"link set dev {self.link.name} addrgenmode none"


@dataclass(frozen=True, slots=True)
class LinkUp:
    link: Link

    def ip_line(self) -> str:
        return f"link set dev {self.link.name} up"


@dataclass(frozen=True, slots=True)
class AddressAdd:
    address: Address
    ifindex: int

    def ip_line(self) -> str:
        address = self.address
        brd = f" broadcast {address.broadcast}" if address.broadcast is not None else ""
        return f"addr add {address.interface}{brd} scope {address.scope} dev {address.dev}"


@dataclass(frozen=True, slots=True)
class KernelRouteDelete:
    """Delete a connected route the kernel made for an address (ipamd does, on a secondary
    ENI): matched by prefix, device, table and `proto kernel`, whatever its scope."""

    route: Route
    ifindex: int

    def ip_line(self) -> str:
        route = self.route
        return f"route del {route.dst} dev {route.dev} table {route.table} proto {route.proto}"


@dataclass(frozen=True, slots=True)
class RouteAdd:
    route: Route
    ifindex: int | None

    def ip_line(self) -> str:
        route = self.route
        parts = ["route add"]
        if route.type != "unicast":
            parts.append(route.type)
        parts.append(str(route.dst))
        if route.gateway is not None:
            parts.append(f"via {route.gateway}")
        if route.dev is not None:
            parts.append(f"dev {route.dev}")
        parts.append(f"table {route.table} proto {route.proto} scope {route.scope}")
        if route.src is not None:
            parts.append(f"src {route.src}")
        if route.metric is not None:
            parts.append(f"metric {route.metric}")
        return " ".join(parts)


def rule_spec(rule: Rule) -> str:
    """A rule as `ip rule add|del` takes it."""
    parts = [f"pref {rule.priority}"]
    if rule.invert:
        parts.append("not")
    if rule.src is not None:
        parts.append(f"from {rule.src}")
    if rule.dst is not None:
        parts.append(f"to {rule.dst}")
    if rule.fwmark is not None:
        mask = f"/{rule.fwmask:#x}" if rule.fwmask is not None else ""
        parts.append(f"fwmark {rule.fwmark:#x}{mask}")
    if rule.iif is not None:
        parts.append(f"iif {rule.iif}")
    if rule.oif is not None:
        parts.append(f"oif {rule.oif}")
    if rule.action == "lookup":
        parts.append(f"lookup {rule.table}")
    elif rule.action == "goto":
        parts.append(f"goto {rule.goto}")
    else:
        parts.append(rule.action)
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class RuleAdd:
    rule: Rule

    def ip_line(self) -> str:
        return f"rule add {rule_spec(self.rule)}"


@dataclass(frozen=True, slots=True)
class RuleDelete:
    rule: Rule

    def ip_line(self) -> str:
        return f"rule del {rule_spec(self.rule)}"


@dataclass(frozen=True, slots=True)
class NeighbourReplace:
    neighbour: Neighbour
    ifindex: int

    def ip_line(self) -> str:
        n = self.neighbour
        return f"neigh replace {n.dst} lladdr {n.lladdr} dev {n.dev} nud {n.state.lower()}"


@dataclass(frozen=True, slots=True)
class QdiscReplace:
    """The root qdisc the state gives a link (a `tc` command, not an `ip` one)."""

    link: Link

    def ip_line(self) -> str:
        return f"qdisc replace dev {self.link.name} root {self.link.qdisc}"


Op = (
    LinkAddrGenNone
    | LinkUp
    | AddressAdd
    | KernelRouteDelete
    | RouteAdd
    | RuleAdd
    | RuleDelete
    | NeighbourReplace
    | QdiscReplace
)
