"""From a `DataplaneState` to the exact commands that build the lab (pure: no I/O here).

The plan is data: one `ip -batch` for the host (it only creates namespaces and creates every link
straight inside its namespace, with the state's ifindex, name, MAC, MTU and queue length on both
ends; nothing is ever configured in the host namespace), then per namespace the sysctls, one
`ip -batch` (addresses, routes, rules, neighbours), one `tc -batch` where a qdisc differs from the
kernel's default, and the iptables text for `iptables-restore` of the pinned backend. Keeping it
pure lets unit tests check the commands without root, and the benchmark build the same
namespaces bare.

What the plan leaves to the kernel, as the state does (state.py: "anything the kernel derives"):
the local table, connected routes of addresses (`proto kernel` routes in the state are the
kernel's own; those the state lacks are deleted, as ipamd does for a secondary ENI), `lo`'s
addresses, and the EUI-64 IPv6 link-local of every link whose address generation is on. A link
with a pinned link-local gets `addrgenmode none` before it comes up, then the state's address.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    TABLE_MAIN,
    Address,
    DataplaneState,
    Iptables,
    Link,
    Namespace,
    Route,
    Rule,
)
from eksnet.lab.fabric import FabricPlan, attached_ports, plan_fabric
from eksnet.lab.names import LabNames

KERNEL_DEFAULT_QDISCS = frozenset({"noqueue", "noop"})
"""Qdiscs a new veth/loopback already has; anything else is set with tc."""


class PlanError(ValueError):
    """The state cannot be realized as given (an unpaired veth, a peer that does not point back)."""


@dataclass(frozen=True, slots=True)
class LinkEnd:
    namespace: str
    """The state namespace name."""
    link: Link


@dataclass(frozen=True, slots=True)
class NamespacePlan:
    """Everything applied inside one lab namespace, in this order."""

    state_name: str
    netns: str
    kind: str
    sysctls: tuple[tuple[str, str], ...]
    ip_batch: tuple[str, ...]
    tc_batch: tuple[str, ...]
    iptables: Iptables | None


@dataclass(frozen=True, slots=True)
class LabPlan:
    names: LabNames
    host_batch: tuple[str, ...]
    """`netns add` for every namespace, then `link add` for every pair, in ifindex order."""
    namespaces: tuple[NamespacePlan, ...]
    fabric: FabricPlan

    def netns_names(self) -> tuple[str, ...]:
        return (*(ns.netns for ns in self.namespaces), self.fabric.netns)


def build_plan(state: DataplaneState, names: LabNames) -> LabPlan:
    fabric = plan_fabric(state, names.fabric)
    return LabPlan(
        names=names,
        host_batch=host_batch(state, names, fabric),
        namespaces=tuple(namespace_plan(ns, names) for ns in state.namespaces),
        fabric=fabric,
    )


# --- links --------------------------------------------------------------------------------------


def veth_pairs(state: DataplaneState) -> tuple[tuple[LinkEnd, LinkEnd], ...]:
    """Every veth pair once, found from the end that can name its peer's namespace.

    A pod's end names its peer by netnsid only (it cannot name the node's namespace), so pairs
    are found from the node's side; every veth must be covered by exactly one pair.
    """
    pairs: dict[frozenset[tuple[str, str]], tuple[LinkEnd, LinkEnd]] = {}
    for namespace in state.namespaces:
        for link in namespace.links:
            if link.kind != "veth" or link.peer is None or link.peer.netns is None:
                continue
            try:
                peer_ns = state.namespace(link.peer.netns)
                peer = peer_ns.link(link.peer.name)
            except KeyError:
                raise PlanError(
                    f"{namespace.name}/{link.name}: peer {link.peer.netns}/{link.peer.name} "
                    "does not exist"
                ) from None
            if (
                peer.ifindex != link.peer.ifindex
                or peer.peer is None
                or (peer.peer.name != link.name or peer.peer.ifindex != link.ifindex)
            ):
                raise PlanError(f"{namespace.name}/{link.name} and its peer disagree")
            key = frozenset({(namespace.name, link.name), (peer_ns.name, peer.name)})
            ends = sorted(
                [LinkEnd(namespace.name, link), LinkEnd(peer_ns.name, peer)],
                key=lambda end: (state.namespace(end.namespace).kind != "node", end.link.ifindex),
            )
            pairs.setdefault(key, (ends[0], ends[1]))
    covered = {end for key in pairs for end in key}
    for namespace in state.namespaces:
        for link in namespace.links:
            if link.kind == "veth" and (namespace.name, link.name) not in covered:
                raise PlanError(
                    f"{namespace.name}/{link.name}: no namespace names this veth's peer"
                )
    return tuple(sorted(pairs.values(), key=lambda pair: pair[0].link.ifindex))


def _link_spec(link: Link, netns: str) -> str:
    qlen = link.qlen if link.qlen is not None else 0
    return (
        f"{link.name} index {link.ifindex} address {link.mac} mtu {link.mtu} "
        f"txqueuelen {qlen} netns {netns}"
    )


def host_batch(state: DataplaneState, names: LabNames, fabric: FabricPlan) -> tuple[str, ...]:
    """Namespaces, then links straight into them (`netns` on both ends: nothing in the host)."""
    lines = [f"netns add {names.netns(ns.name)}" for ns in state.namespaces]
    lines.append(f"netns add {fabric.netns}")
    creations: list[tuple[int, str]] = []
    for a, b in veth_pairs(state):
        creations.append(
            (
                a.link.ifindex,
                f"link add {_link_spec(a.link, names.netns(a.namespace))} type veth peer name "
                f"{_link_spec(b.link, names.netns(b.namespace))}",
            )
        )
    wired = {(port.node, port.device): port for port in attached_ports(state)}
    for namespace in state.namespaces:
        for link in namespace.links:
            if link.kind != "device":
                continue
            spec = _link_spec(link, names.netns(namespace.name))
            port = wired.get((namespace.name, link.name))
            if port is None:
                creations.append((link.ifindex, f"link add {spec} type dummy"))
                continue
            queues = " numtxqueues 2 numrxqueues 2" if link.qdisc == "mq" else ""
            creations.append(
                (
                    link.ifindex,
                    f"link add {spec}{queues} type veth peer name {port.port} mtu {port.mtu} "
                    f"netns {fabric.netns}",
                )
            )
    creations.sort(key=lambda item: item[0])
    return (*lines, *(line for _, line in creations))


# --- one namespace ------------------------------------------------------------------------------


def namespace_plan(namespace: Namespace, names: LabNames) -> NamespacePlan:
    return NamespacePlan(
        state_name=namespace.name,
        netns=names.netns(namespace.name),
        kind=namespace.kind,
        sysctls=namespace.sysctls,
        ip_batch=ip_batch(namespace),
        tc_batch=tc_batch(namespace),
        iptables=namespace.iptables,
    )


def ip_batch(namespace: Namespace) -> tuple[str, ...]:
    """Links up, addresses, routes, rules, neighbours: in the order the kernel needs them."""
    lines: list[str] = []
    for link in namespace.links:
        if not link.ipv6_addrgen:
            lines.append(f"link set dev {link.name} addrgenmode none")
    ordered = sorted(namespace.links, key=lambda link: (link.kind != "loopback", link.ifindex))
    lines += [f"link set dev {link.name} up" for link in ordered if link.up]
    lines += [_address(a) for a in namespace.addresses if not _kernel_made_address(namespace, a)]
    lines += _routes(namespace)
    lines += _rules(namespace)
    lines += [
        f"neigh replace {n.dst} lladdr {n.lladdr} dev {n.dev} nud {n.state.lower()}"
        for n in namespace.neighbours
    ]
    return tuple(lines)


def tc_batch(namespace: Namespace) -> tuple[str, ...]:
    return tuple(
        f"qdisc replace dev {link.name} root {link.qdisc}"
        for link in namespace.links
        if link.kind != "loopback" and link.qdisc not in KERNEL_DEFAULT_QDISCS
    )


def eui64_link_local(mac: str) -> IPv6Interface:
    """The link-local the kernel generates from a MAC (U/L bit flipped, ff:fe in the middle)."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 255, 254, *octets[3:]]
    groups = [f"{(eui[i] << 8) | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return IPv6Interface(f"fe80::{':'.join(groups)}/64")


def _kernel_made_address(namespace: Namespace, address: Address) -> bool:
    link = namespace.link(address.dev)
    if link.kind == "loopback":
        return str(address.interface) in ("127.0.0.1/8", "::1/128")
    if isinstance(address.interface, IPv6Interface) and link.ipv6_addrgen:
        return address.interface == eui64_link_local(link.mac)
    return False


def _address(address: Address) -> str:
    brd = f" broadcast {address.broadcast}" if address.broadcast is not None else ""
    return f"addr add {address.interface}{brd} scope {address.scope} dev {address.dev}"


def kernel_connected_routes(namespace: Namespace) -> tuple[tuple[IPv4Network, str], ...]:
    """(prefix, device) of the main-table routes the kernel adds for the state's addresses:
    one per primary IPv4 address shorter than /32 on a non-loopback link (linux-dataplane §2.6)."""
    seen: list[tuple[IPv4Network, str]] = []
    for address in namespace.addresses:
        if (
            not isinstance(address.interface, IPv4Interface)
            or address.interface.network.prefixlen == 32
        ):
            continue
        if namespace.link(address.dev).kind == "loopback":
            continue
        key = (address.interface.network, address.dev)
        if key not in seen:
            seen.append(key)
    return tuple(seen)


def _is_kernel_route(route: Route, kernel: tuple[tuple[IPv4Network, str], ...]) -> bool:
    return (
        route.proto == "kernel"
        and route.table == TABLE_MAIN
        and route.type == "unicast"
        and route.gateway is None
        and (route.dst, route.dev or "") in kernel
    )


def _routes(namespace: Namespace) -> list[str]:
    kernel = kernel_connected_routes(namespace)
    lines: list[str] = []
    stated = {(r.dst, r.dev) for r in namespace.routes if _is_kernel_route(r, kernel)}
    for dst, dev in kernel:
        if (dst, dev) not in stated:
            lines.append(f"route del {dst} dev {dev} table {TABLE_MAIN} proto kernel")
    to_add = [r for r in namespace.routes if not _is_kernel_route(r, kernel)]
    # A gateway must be reachable through an existing on-link route when its route is added.
    to_add.sort(key=lambda route: route.gateway is not None)
    lines += [_route(route) for route in to_add]
    return lines


def _route(route: Route) -> str:
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


def _rules(namespace: Namespace) -> list[str]:
    """Delete the three default rules the state does not keep as they are, then add the rest in
    the kernel's order (equal priorities keep insertion order because `add` appends)."""
    wanted = list(namespace.sorted_rules())
    lines: list[str] = []
    kept_local = bool(wanted) and wanted[0] == DEFAULT_RULES[0]
    for default in DEFAULT_RULES:
        if default == DEFAULT_RULES[0] and kept_local:
            continue
        lines.append(f"rule del {_rule_spec(default)}")
    if kept_local:
        wanted = wanted[1:]
    lines += [f"rule add {_rule_spec(rule)}" for rule in wanted]
    return lines


def _rule_spec(rule: Rule) -> str:
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
