"""Cross-object checks of a cluster spec, each failure one line with file, line and fix.

Pydantic checks each value's shape; these check what only the whole cluster can say: subnets
inside the VPC and not overlapping, every address inside its subnet and used once, ENI counts and
addresses within the instance type's limits, pods on existing nodes and ENIs with an address that
ENI owns, names unique. The checks run in the order a person would fix things (VPC, then nodes,
then pods) and stop at the first failure.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from eksnet.model.cluster import Cluster, EniSpec, NodeSpec
from eksnet.model.instance_types import INSTANCE_LIMITS
from eksnet.model.source import Path, SourceDocument


def check_cluster(cluster: Cluster, document: SourceDocument) -> None:
    _check_subnets(cluster, document)
    owners = _check_nodes(cluster, document)
    _check_pods(cluster, document, owners)
    _check_pins(cluster, document)


def _check_subnets(cluster: Cluster, document: SourceDocument) -> None:
    seen: dict[str, int] = {}
    subnets = cluster.vpc.subnets
    for index, subnet in enumerate(subnets):
        path: Path = ("vpc", "subnets", index)
        if subnet.name in seen:
            raise document.error(
                (*path, "name"), f"duplicate subnet {subnet.name!r}", fix="name each subnet once"
            )
        seen[subnet.name] = index
        if not any(subnet.cidr.subnet_of(cidr) for cidr in cluster.vpc.cidrs):
            cidrs = ", ".join(map(str, cluster.vpc.cidrs))
            raise document.error(
                (*path, "cidr"),
                f"subnet {subnet.name} {subnet.cidr} is outside the VPC CIDRs ({cidrs})",
                fix="pick a CIDR inside the VPC or add the VPC CIDR",
            )
        for earlier in subnets[:index]:
            if subnet.cidr.overlaps(earlier.cidr):
                raise document.error(
                    (*path, "cidr"),
                    f"subnet {subnet.name} {subnet.cidr} overlaps subnet {earlier.name} "
                    f"{earlier.cidr}",
                    fix="give the subnets disjoint CIDRs",
                )
        if subnet.route_table not in cluster.vpc.route_tables and cluster.vpc.route_tables:
            known = ", ".join(cluster.vpc.route_tables)
            raise document.error(
                (*path, "routeTable"),
                f"subnet {subnet.name} uses unknown route table {subnet.route_table!r}",
                fix=f"use one of: {known}",
            )


def _check_nodes(cluster: Cluster, document: SourceDocument) -> dict[IPv4Address, Path]:
    """Check nodes and ENIs; return who claims each address (for the pod checks)."""
    owners: dict[IPv4Address, Path] = {}
    names: set[str] = set()
    eni_ids: set[str] = set()
    macs: set[str] = set()
    subnet_names = {subnet.name for subnet in cluster.vpc.subnets}
    for node_index, node in enumerate(cluster.nodes):
        path: Path = ("nodes", node_index)
        if node.name in names:
            raise document.error(
                (*path, "name"), f"duplicate node {node.name!r}", fix="name each node once"
            )
        names.add(node.name)
        if node.subnet not in subnet_names:
            raise document.error(
                (*path, "subnet"),
                f"node {node.name}: unknown subnet {node.subnet!r}",
                fix=f"use one of: {', '.join(sorted(subnet_names))}",
            )
        _check_eni_limits(cluster, document, node, path)
        for eni_index, eni in enumerate(node.enis):
            eni_path: Path = (*path, "enis", eni_index)
            for value, kind, seen in ((eni.id, "ENI id", eni_ids), (eni.mac, "MAC", macs)):
                if value in seen:
                    field = "id" if kind == "ENI id" else "mac"
                    raise document.error(
                        (*eni_path, field), f"duplicate {kind} {value}", fix="make it unique"
                    )
                seen.add(value)
            _check_eni_addresses(cluster, document, node, eni, eni_path, owners)
    return owners


def _check_eni_limits(
    cluster: Cluster, document: SourceDocument, node: NodeSpec, path: Path
) -> None:
    instance_type = cluster.instance_type(node)
    limits = INSTANCE_LIMITS.get(instance_type)
    if limits is None:
        # Name the line that holds the type: the node's own, or the defaults it inherits.
        written = node.instance_type is not None
        raise document.error(
            (*path, "instanceType") if written else ("nodeDefaults", "instanceType"),
            f"node {node.name}: instance type {instance_type!r} is not in eksnet's limits table",
            fix=f"use one of: {', '.join(sorted(INSTANCE_LIMITS))}",
        )
    if len(node.enis) > limits.enis:
        raise document.error(
            (*path, "enis"),
            f"node {node.name}: {len(node.enis)} ENIs, but {instance_type} allows {limits.enis}",
            fix="remove ENIs or pick a larger instance type",
        )
    seen_devices: set[int] = set()
    seen_linux: set[str] = set()
    seen_ifindex: set[int] = set()
    for eni_index, eni in enumerate(node.enis):
        eni_path: Path = (*path, "enis", eni_index)
        used = len(eni.secondary_ips) + len(eni.prefixes)
        if used > limits.ipv4_per_eni - 1:
            raise document.error(
                (*eni_path, "secondaryIps"),
                f"ENI {eni.id}: {used} secondary IPs/prefixes, but {instance_type} allows "
                f"{limits.ipv4_per_eni - 1} per ENI (plus the primary)",
                fix="move addresses to another ENI or pick a larger instance type",
            )
        for value, seen, field in (
            (eni.device, seen_devices, "device"),
            (eni.linux, seen_linux, "linux"),
            (eni.ifindex, seen_ifindex, "ifindex"),
        ):
            if value in seen:
                raise document.error(
                    (*eni_path, field),
                    f"node {node.name}: two ENIs with {field} {value}",
                    fix="make it unique on the node",
                )
            seen.add(value)  # type: ignore[arg-type]
    if 0 not in seen_devices:
        raise document.error(
            (*path, "enis"),
            f"node {node.name} has no primary ENI (device 0)",
            fix="give the first ENI device: 0",
        )


def _check_eni_addresses(
    cluster: Cluster,
    document: SourceDocument,
    node: NodeSpec,
    eni: EniSpec,
    path: Path,
    owners: dict[IPv4Address, Path],
) -> None:
    subnet_name = eni.subnet or node.subnet
    try:
        subnet = cluster.subnet(subnet_name)
    except KeyError:
        raise document.error(
            (*path, "subnet"), f"ENI {eni.id}: unknown subnet {subnet_name!r}", fix="fix the name"
        ) from None
    reserved = {
        subnet.cidr.network_address,
        subnet.cidr.network_address + 1,
        subnet.cidr.network_address + 2,
        subnet.cidr.network_address + 3,
        subnet.cidr.broadcast_address,
    }
    addresses: list[tuple[IPv4Address, Path]] = [(eni.primary_ip, (*path, "primaryIp"))]
    addresses += [(ip, (*path, "secondaryIps", i)) for i, ip in enumerate(eni.secondary_ips)]
    for i, prefix in enumerate(eni.prefixes):
        if not prefix.subnet_of(subnet.cidr):
            raise document.error(
                (*path, "prefixes", i),
                f"ENI {eni.id}: prefix {prefix} is outside subnet {subnet.name} {subnet.cidr}",
                fix="pick a prefix inside the ENI's subnet",
            )
        addresses += [(ip, (*path, "prefixes", i)) for ip in prefix]
    for address, where in addresses:
        if address not in subnet.cidr:
            raise document.error(
                where,
                f"ENI {eni.id}: {address} is outside subnet {subnet.name} {subnet.cidr}",
                fix="use an address inside the ENI's subnet",
            )
        if address in reserved:
            raise document.error(
                where,
                f"ENI {eni.id}: {address} is reserved by AWS in subnet {subnet.cidr}",
                fix="the first four and the last address of a subnet cannot be assigned",
            )
        if address in owners:
            line = document.line_of(owners[address])
            raise document.error(
                where,
                f"{address} is used twice (also at line {line})",
                fix="give every ENI address to one ENI only",
            )
        owners[address] = where


def _check_pods(
    cluster: Cluster, document: SourceDocument, owners: dict[IPv4Address, Path]
) -> None:
    keys: set[str] = set()
    pod_ips: dict[IPv4Address, int] = {}
    for index, pod in enumerate(cluster.pods):
        path: Path = ("pods", index)
        if pod.key in keys:
            raise document.error(
                (*path, "name"), f"duplicate pod {pod.key}", fix="name each pod once per namespace"
            )
        keys.add(pod.key)
        try:
            node = cluster.node(pod.node)
        except KeyError:
            known = ", ".join(node.name for node in cluster.nodes)
            raise document.error(
                (*path, "node"), f"pod {pod.key}: unknown node {pod.node!r}", fix=f"one of: {known}"
            ) from None
        enis = {eni.linux: eni for eni in node.enis}
        eni = enis.get(pod.eni)
        if eni is None:
            raise document.error(
                (*path, "eni"),
                f"pod {pod.key}: node {node.name} has no ENI {pod.eni!r}",
                fix=f"one of: {', '.join(enis)}",
            )
        owned = pod.ip in eni.secondary_ips or any(pod.ip in p for p in eni.prefixes)
        if not owned:
            raise document.error(
                (*path, "ip"),
                f"pod {pod.key}: {pod.ip} is not a secondary IP or prefix address of "
                f"{node.name} {pod.eni} ({eni.id})",
                fix=f"add {pod.ip} to that ENI's secondaryIps, or use one of its addresses",
            )
        if pod.ip in pod_ips:
            raise document.error(
                (*path, "ip"),
                f"pod {pod.key}: {pod.ip} is already used by {cluster.pods[pod_ips[pod.ip]].key}",
                fix="give every pod its own address",
            )
        pod_ips[pod.ip] = index


def _check_pins(cluster: Cluster, document: SourceDocument) -> None:
    """Pinned host-veth names and ifindexes are free on their node (not `lo`, an ENI or another
    pin), and pinned netns names are unique (a node's namespace is named after the node)."""
    names = {node.name: {"lo", *(eni.linux for eni in node.enis)} for node in cluster.nodes}
    indexes = {node.name: {1, *(eni.ifindex for eni in node.enis)} for node in cluster.nodes}
    namespaces = {node.name for node in cluster.nodes}
    for index, pod in enumerate(cluster.pods):
        pin = pod.pin
        path: Path = ("pods", index, "pin")
        if pin.host_veth is not None:
            if pin.host_veth in names[pod.node]:
                raise document.error(
                    (*path, "hostVeth"),
                    f"pod {pod.key}: host veth name {pin.host_veth!r} is already used on "
                    f"{pod.node}",
                    fix="pin another hostVeth or drop the pin",
                )
            names[pod.node].add(pin.host_veth)
        if pin.host_veth_ifindex is not None:
            if pin.host_veth_ifindex in indexes[pod.node]:
                raise document.error(
                    (*path, "hostVethIfindex"),
                    f"pod {pod.key}: host veth ifindex {pin.host_veth_ifindex} is already used "
                    f"on {pod.node}",
                    fix="pin another hostVethIfindex or drop the pin",
                )
            indexes[pod.node].add(pin.host_veth_ifindex)
        if pin.netns is not None:
            if pin.netns in namespaces:
                raise document.error(
                    (*path, "netns"),
                    f"pod {pod.key}: network namespace name {pin.netns!r} is already used",
                    fix="give every pod its own netns",
                )
            namespaces.add(pin.netns)
