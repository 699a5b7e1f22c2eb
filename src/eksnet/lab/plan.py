"""From a `DataplaneState` to the exact commands that build the lab (pure: no I/O here).

The plan is data: `ip -batch` lines for the host (they only create namespaces and create every
link straight inside its namespace, with the state's ifindex, name, MAC, MTU and queue length on
both ends; nothing is ever configured in the host namespace), cut into the steps of `lab up`'s
pipeline (`build_steps`), then per namespace the sysctls, the
operations of `ops.py` (links up, addresses, routes, rules, neighbours, and a qdisc where one
differs from the kernel's default; each the request of one `ip`/`tc` batch line), the nfacct
objects the rules count into (`nfacct add`), and the iptables text for `iptables-restore` of the
pinned backend. Keeping it pure lets unit tests
check the commands without root, and the benchmark build the same namespaces bare.

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
)
from eksnet.lab.attachments import attachments
from eksnet.lab.fabric import (
    GATEWAY_MAC,
    IMDS_MAC,
    IMDS_NEXT_HOP_MAC,
    INTERNET_MAC,
    FabricPlan,
    attached_ports,
    plan_fabric,
)
from eksnet.lab.names import LabNames
from eksnet.lab.ops import (
    AddressAdd,
    KernelRouteDelete,
    LinkAddrGenNone,
    LinkUp,
    NeighbourReplace,
    Op,
    QdiscReplace,
    RouteAdd,
    RuleAdd,
    RuleDelete,
)

KERNEL_DEFAULT_QDISCS = frozenset({"noqueue", "noop"})
"""Qdiscs a new veth/loopback already has; anything else is set (`QdiscReplace`)."""


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
    ops: tuple[Op, ...]
    iptables: Iptables | None
    nfacct: tuple[tuple[str, ...], ...] = ()
    """`nfacct add NAME` for each accounting object the iptables rules name, run in the
    namespace before `iptables-restore` (the kernel refuses a `-m nfacct` rule whose object
    does not exist, kube-proxy.md §10 item 14)."""
    nft: str = ""
    """An nftables ruleset for `nft -f` (the lab's attachments: a NAT gateway, the IMDS)."""


def nfacct_commands(iptables: Iptables | None) -> tuple[tuple[str, ...], ...]:
    """Debian's `nfacct` tool creating the namespace's accounting objects."""
    if iptables is None:
        return ()
    return tuple(("nfacct", "add", name) for name in iptables.nfacct)


@dataclass(frozen=True, slots=True)
class BuildStep:
    """One step of `lab up`'s pipeline: a host `ip -batch` that creates some namespaces and the
    links between existing ones, then the namespaces to configure once it has run, in order."""

    host_batch: tuple[str, ...]
    configure: tuple[NamespacePlan | FabricPlan, ...]


@dataclass(frozen=True, slots=True)
class LabPlan:
    names: LabNames
    host_batch: tuple[str, ...]
    """`netns add` for every namespace, then `link add` for every pair, in ifindex order: the
    whole build in one batch (the benchmark's bare build)."""
    namespaces: tuple[NamespacePlan, ...]
    fabric: FabricPlan
    steps: tuple[BuildStep, ...]
    """The same lines cut into `build_steps`, each with what to configure after it."""
    attachments: tuple[NamespacePlan, ...] = ()
    """What the lab adds to the state's namespaces (`lab/attachments.py`: the internet, the
    IMDS, NAT gateways): created, wired to the fabric's bridge and configured in the first
    step, with the fabric."""
    wires: tuple[str, ...] = ()
    """The host batch lines wiring each attachment to the bridge."""

    def netns_names(self) -> tuple[str, ...]:
        """Every namespace the plan creates."""
        return (
            *(ns.netns for ns in self.namespaces),
            self.fabric.netns,
            *(ns.netns for ns in self.attachments),
        )


def build_plan(state: DataplaneState, names: LabNames) -> LabPlan:
    fabric = plan_fabric(state, names.fabric)
    namespaces = tuple(namespace_plan(ns, names) for ns in state.namespaces)
    extra, wires = attachment_plans(state, names)
    creations = link_creations(state, names, fabric)
    every: tuple[NamespacePlan | FabricPlan, ...] = (*namespaces, fabric, *extra)
    return LabPlan(
        names=names,
        host_batch=(
            *(f"netns add {ns.netns}" for ns in every),
            *(c.line for c in sorted(creations, key=lambda c: c.ifindex)),
            *wires,
        ),
        namespaces=namespaces,
        fabric=fabric,
        steps=build_steps(state, namespaces, fabric, creations, extra, wires),
        attachments=extra,
        wires=wires,
    )


LAB_MACS = frozenset({GATEWAY_MAC, INTERNET_MAC, IMDS_MAC, IMDS_NEXT_HOP_MAC})
"""MACs the lab's own attachments use, which no ENI or router of the state may have."""


def attachment_plans(
    state: DataplaneState, names: LabNames
) -> tuple[tuple[NamespacePlan, ...], tuple[str, ...]]:
    """The attachments, configured like any namespace (sysctls, operations, then their nft
    ruleset), and the lines wiring them to the fabric. Their names are
    `LabNames.attachment`'s, which no state namespace may take (`LabNames.netns` refuses
    them)."""
    found = attachments(state)
    if not found:
        return (), ()
    macs = {eni.mac for eni in state.vpc.enis} | {s.router_mac for s in state.vpc.subnets}
    clash = sorted(macs & LAB_MACS)
    if clash:
        raise PlanError(f"MAC {clash[0]} of the state is one the lab's fabric uses itself")
    taken = {ns.name for ns in state.namespaces} & {item.place for item in found}
    if taken:
        raise PlanError(f"a namespace of the state is named like the lab's {sorted(taken)[0]}")
    plans = tuple(
        NamespacePlan(
            state_name=item.place,
            netns=names.attachment(item.place),
            kind=item.kind,
            sysctls=item.namespace.sysctls,
            ops=namespace_ops(item.namespace),
            iptables=None,
            nft=item.nft,
        )
        for item in found
    )
    wires = tuple(
        item.wire(plan.netns, names.fabric) for item, plan in zip(found, plans, strict=True)
    )
    return plans, wires


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


@dataclass(frozen=True, slots=True)
class LinkCreation:
    """One `link add` of the host batch and the namespaces (state names; None for the
    fabric) that must exist before it runs."""

    line: str
    ifindex: int
    namespaces: frozenset[str | None]


def link_creations(
    state: DataplaneState, names: LabNames, fabric: FabricPlan
) -> tuple[LinkCreation, ...]:
    """Every link, created straight into its namespaces (`netns` on both ends: nothing in the
    host): veth pairs, ENIs as veths into the fabric, other devices as dummies."""
    creations: list[LinkCreation] = []
    for a, b in veth_pairs(state):
        creations.append(
            LinkCreation(
                f"link add {_link_spec(a.link, names.netns(a.namespace))} type veth peer name "
                f"{_link_spec(b.link, names.netns(b.namespace))}",
                a.link.ifindex,
                frozenset({a.namespace, b.namespace}),
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
                line = f"link add {spec} type dummy"
                creations.append(LinkCreation(line, link.ifindex, frozenset({namespace.name})))
                continue
            queues = " numtxqueues 2 numrxqueues 2" if link.qdisc == "mq" else ""
            creations.append(
                LinkCreation(
                    f"link add {spec}{queues} type veth peer name {port.port} "
                    f"index {port.ifindex} mtu {port.mtu} netns {fabric.netns}",
                    link.ifindex,
                    frozenset({namespace.name, None}),
                )
            )
    return tuple(creations)


def build_steps(
    state: DataplaneState,
    namespaces: tuple[NamespacePlan, ...],
    fabric: FabricPlan,
    creations: tuple[LinkCreation, ...],
    attached: tuple[NamespacePlan, ...] = (),
    wires: tuple[str, ...] = (),
) -> tuple[BuildStep, ...]:
    """The build as a pipeline: while one step's namespaces are configured, the next step's are
    created (creating namespaces is most of the work, and much of it runs outside the RTNL
    lock that configuring takes).

    Step 0 creates the nodes, the fabric, every ENI and the pods no node is wired to, and
    configures the fabric and those pods; then one step per node creates its pods and their
    veths, and configures the pods, then the node. So every link's other end is up before the
    node brings its own end up: the node's links get their carrier, and with it their IPv6
    routes, in the order the node brings them up (`namespace_ops`), as on a real node. The
    attachments (internet, IMDS, NAT gateways) are created, wired to the fabric's bridge and
    configured in step 0, with the fabric."""
    nodes = [ns for ns in namespaces if ns.kind == "node"]
    step_of: dict[str | None, int] = {None: 0, **{node.state_name: 0 for node in nodes}}
    number_of = {node.state_name: number for number, node in enumerate(nodes, start=1)}
    for a, b in veth_pairs(state):
        if a.namespace in number_of and b.namespace not in step_of:
            step_of[b.namespace] = number_of[a.namespace]
    for ns in namespaces:
        step_of.setdefault(ns.state_name, 0)
    count = len(nodes) + 1
    adds: list[list[str]] = [[] for _ in range(count)]
    for ns in namespaces:
        adds[step_of[ns.state_name]].append(f"netns add {ns.netns}")
    adds[0].append(f"netns add {fabric.netns}")
    links: list[list[LinkCreation]] = [[] for _ in range(count)]
    for creation in creations:
        links[max(step_of[name] for name in creation.namespaces)].append(creation)
    configure: list[list[NamespacePlan | FabricPlan]] = [[fabric], *([] for _ in nodes)]
    for item in attached:
        adds[0].append(f"netns add {item.netns}")
        configure[0].append(item)
    for ns in namespaces:
        if ns.kind != "node":
            configure[step_of[ns.state_name]].append(ns)
    for number, node in enumerate(nodes, start=1):
        configure[number].append(node)
    return tuple(
        BuildStep(
            (
                *adds[i],
                *(c.line for c in sorted(links[i], key=lambda c: c.ifindex)),
                *(wires if i == 0 else ()),
            ),
            tuple(configure[i]),
        )
        for i in range(count)
    )


# --- one namespace ------------------------------------------------------------------------------


def namespace_plan(namespace: Namespace, names: LabNames) -> NamespacePlan:
    return NamespacePlan(
        state_name=namespace.name,
        netns=names.netns(namespace.name),
        kind=namespace.kind,
        sysctls=namespace.sysctls,
        ops=namespace_ops(namespace),
        iptables=namespace.iptables,
        nfacct=nfacct_commands(namespace.iptables),
    )


def namespace_ops(namespace: Namespace) -> tuple[Op, ...]:
    """Address generation and qdiscs, links up, addresses, routes, rules, neighbours: in the
    order the kernel needs them.

    The qdisc is set while the link is still down: replacing it on a running link detaches it
    for a moment, and IPv6 autoconfiguration that runs then (on the carrier event) finds no
    queue, waits for the next event and adds the link's `fe80::/64` route out of order."""
    ops: list[Op] = [LinkAddrGenNone(link) for link in namespace.links if not link.ipv6_addrgen]
    ops += [
        QdiscReplace(link)
        for link in namespace.links
        if link.kind != "loopback" and link.qdisc not in KERNEL_DEFAULT_QDISCS
    ]
    ordered = sorted(namespace.links, key=lambda link: (link.kind != "loopback", link.ifindex))
    ops += [LinkUp(link) for link in ordered if link.up]
    ops += [
        AddressAdd(a, namespace.link(a.dev).ifindex)
        for a in namespace.addresses
        if not _kernel_made_address(namespace, a)
    ]
    ops += _routes(namespace)
    ops += _rules(namespace)
    ops += [NeighbourReplace(n, namespace.link(n.dev).ifindex) for n in namespace.neighbours]
    return tuple(ops)


def ip_batch(namespace: Namespace) -> tuple[str, ...]:
    """The plan of one namespace as `ip -batch` lines (what the netlink requests stand for)."""
    ops = namespace_ops(namespace)
    return tuple(op.ip_line() for op in ops if not isinstance(op, QdiscReplace))


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


def _routes(namespace: Namespace) -> list[Op]:
    kernel = kernel_connected_routes(namespace)
    ops: list[Op] = []
    stated = {(r.dst, r.dev) for r in namespace.routes if _is_kernel_route(r, kernel)}
    for dst, dev in kernel:
        if (dst, dev) not in stated:
            made = Route(TABLE_MAIN, dst, dev=dev, proto="kernel", scope="link")
            ops.append(KernelRouteDelete(made, namespace.link(dev).ifindex))
    to_add = [r for r in namespace.routes if not _is_kernel_route(r, kernel)]
    # A gateway must be reachable through an existing on-link route when its route is added.
    to_add.sort(key=lambda route: route.gateway is not None)
    ops += [
        RouteAdd(r, namespace.link(r.dev).ifindex if r.dev is not None else None) for r in to_add
    ]
    return ops


def _rules(namespace: Namespace) -> list[Op]:
    """The state's rules from the three every namespace starts with, touching a default rule
    only where the state lacks it or puts another rule of its priority before it (`add`
    appends after the rules of equal priority).

    A namespace that keeps the defaults gets no rule command at all, as a real pod: the first
    rule added splits the kernel's merged local/main table for good (`fib_unmerge`), after which
    `ip route get` of a local address says `table local`, which a real pod does not."""
    wanted = namespace.sorted_rules()
    kept: set[int] = set()
    for default in DEFAULT_RULES:
        same = [i for i, rule in enumerate(wanted) if rule.priority == default.priority]
        if same and wanted[same[0]] == default:
            kept.add(same[0])
    kept_rules = [wanted[i] for i in kept]
    ops: list[Op] = [RuleDelete(d) for d in DEFAULT_RULES if d not in kept_rules]
    ops += [RuleAdd(rule) for i, rule in enumerate(wanted) if i not in kept]
    return ops
