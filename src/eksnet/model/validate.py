"""Cross-object checks of a cluster spec, each failure one line with file, line and fix.

Pydantic checks each value's shape; these check what only the whole cluster can say: VPC CIDRs
disjoint, subnets inside the VPC and not overlapping, every address inside its subnet and used
once, ENI counts, device indexes and addresses within the instance type's limits, MACs a device
can have, pods on existing nodes and ENIs with an address that ENI owns, names unique, and every
reference (route table, security group, NAT gateway subnet, Service, Ingress) naming something
the spec declares. The checks run in the order a person would fix things (VPC, then nodes, then
pods, then the Kubernetes objects) and stop at the first failure.

What routes send where (targets, blackholes, the local route) and the external hosts are the
controllers' (`controllers.cluster`): they check them when they build the state, for every
declared variant too (`build_state`).

`services`, `ingresses`, `loadBalancers`, `dns` and `vpc.securityGroups` are kept as written for
later issues; here they are read defensively (any shape may arrive) and only what they refer to
is checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any

from pydantic_core import PydanticCustomError

from eksnet.model.cluster import Cluster, EniSpec, NodeSpec, check_mac
from eksnet.model.instance_types import INSTANCE_LIMITS
from eksnet.model.source import Path, SourceDocument, shown
from eksnet.model.validate_services import check_endpoint_slices, check_kube_proxy, check_services
from eksnet.model.vpc_filters import RuleProblem, port_range, protocol_number

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
"""Namespaces are DNS-1123 labels."""
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
"""What a namespace or an object name in a reference (`service/NS/NAME`) may look like."""


def check_cluster(cluster: Cluster, document: SourceDocument) -> None:
    _check_vpc_cidrs(cluster, document)
    _check_sysctls(cluster, document)
    _check_subnets(cluster, document)
    _check_router_macs(cluster, document)
    groups = _check_security_groups(cluster, document)
    _check_nat_gateways(cluster, document)
    _check_network_acls(cluster, document)
    _check_prefix_list_routes(cluster, document)
    owners = _check_nodes(cluster, document, groups)
    _check_nat_addresses(cluster, document, owners)
    _check_pods(cluster, document, owners)
    _check_pins(cluster, document)
    _check_kubernetes_objects(cluster, document)


def _check_sysctls(cluster: Cluster, document: SourceDocument) -> None:
    """`net.ipv4.ip_forward` and the `net.ipv4.conf.*.*` settings are C ints in the kernel
    (devinet.c, `proc_dointvec`): `sysctl -w` refuses anything else, so a spec may not say it."""
    for key, value in cluster.node_defaults.sysctls.items():
        dotted = key.replace("/", ".").strip(".")
        if dotted != "net.ipv4.ip_forward" and not dotted.startswith("net.ipv4.conf."):
            continue
        try:
            number = int(value) if isinstance(value, int) else int(value.strip())
        except ValueError:
            number = None
        if number is None or not -(2**31) <= number < 2**31:
            raise document.error(
                ("nodeDefaults", "sysctls", key),
                f"sysctl {key} = {shown(value)}: the kernel holds it as a 32-bit integer",
                fix="write a number like 0, 1 or 2",
            )


def _check_vpc_cidrs(cluster: Cluster, document: SourceDocument) -> None:
    """AWS refuses to associate a CIDR that overlaps one the VPC already has."""
    cidrs = cluster.vpc.cidrs
    for index, cidr in enumerate(cidrs):
        for earlier in cidrs[:index]:
            if cidr.overlaps(earlier):
                what = "repeats" if cidr == earlier else "overlaps"
                raise document.error(
                    ("vpc", "cidrs", index),
                    f"VPC CIDR {cidr} {what} VPC CIDR {earlier}",
                    fix="give the VPC disjoint CIDRs",
                )


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
        if not subnet.az.startswith(cluster.region):
            raise document.error(
                (*path, "az"),
                f"subnet {subnet.name}: availability zone {subnet.az!r} is not in region "
                f"{cluster.region}",
                fix=f"use a zone of {cluster.region}, e.g. {cluster.region}a",
            )
        if subnet.route_table not in cluster.vpc.route_tables and cluster.vpc.route_tables:
            known = ", ".join(cluster.vpc.route_tables)
            raise document.error(
                (*path, "routeTable"),
                f"subnet {subnet.name} uses unknown route table {subnet.route_table!r}",
                fix=f"use one of: {known}",
            )


def _check_nodes(
    cluster: Cluster, document: SourceDocument, groups: set[str]
) -> dict[IPv4Address, Path]:
    """Check nodes and ENIs; return who claims each address (for the pod checks)."""
    owners: dict[IPv4Address, Path] = {}
    names: set[str] = set()
    eni_ids: set[str] = set()
    macs: set[str] = set()
    router_macs = {cluster.router_mac(subnet): subnet.name for subnet in cluster.vpc.subnets}
    public_ips: dict[IPv4Address, Path] = {}
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
        if node.public_ip is not None:
            _claim_public_ip(document, node.public_ip, (*path, "publicIp"), public_ips)
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
            if eni.mac in router_macs:
                raise document.error(
                    (*eni_path, "mac"),
                    f"ENI {eni.id}: MAC {eni.mac} is the router MAC of subnet "
                    f"{router_macs[eni.mac]}",
                    fix="give the ENI a MAC of its own",
                )
            _check_eni_groups(document, eni, eni_path, groups)
            _check_eni_addresses(cluster, document, node, eni, eni_path, owners)
            _check_elastic_ips(cluster, document, node, eni, eni_path, public_ips)
    for index, gateway in enumerate(cluster.vpc.nat_gateways):
        if gateway.public_ip is not None:
            _claim_public_ip(
                document, gateway.public_ip, ("vpc", "natGateways", index, "publicIp"), public_ips
            )
    return owners


def _check_elastic_ips(
    cluster: Cluster,
    document: SourceDocument,
    node: NodeSpec,
    eni: EniSpec,
    path: Path,
    public_ips: dict[IPv4Address, Path],
) -> None:
    """An EIP sits on an address of its ENI, one per address, outside the VPC; the node's
    auto-assigned public IP is released when an EIP goes on the primary ENI's primary IP
    (vpc-fabric.md §4), so a spec cannot have both."""
    taken: set[IPv4Address] = set()
    for index, eip in enumerate(eni.elastic_ips):
        where: Path = (*path, "elasticIps", index)
        if eip.private_ip != eni.primary_ip and eip.private_ip not in eni.secondary_ips:
            raise document.error(
                (*where, "privateIp"),
                f"ENI {eni.id}: {eip.private_ip} is not one of its private IPs",
                fix="associate the elastic IP with the ENI's primary or a secondary IP",
            )
        if eip.private_ip in taken:
            raise document.error(
                (*where, "privateIp"),
                f"ENI {eni.id}: {eip.private_ip} has two elastic IPs",
                fix="one public IPv4 per private address",
            )
        taken.add(eip.private_ip)
        if any(eip.public_ip in cidr for cidr in cluster.vpc.cidrs):
            raise document.error(
                (*where, "publicIp"),
                f"elastic IP {eip.public_ip} is inside the VPC",
                fix="an elastic IP comes from outside the VPC's CIDRs",
            )
        if node.public_ip is not None and eni.device == 0 and eip.private_ip == eni.primary_ip:
            raise document.error(
                where,
                f"node {node.name} has an auto-assigned public IP {node.public_ip} and an elastic "
                f"IP on the same address {eip.private_ip}; EC2 releases the first for the second",
                fix="keep one: drop the node's publicIp or this elastic IP",
            )
        _claim_public_ip(document, eip.public_ip, (*where, "publicIp"), public_ips)


def _claim_public_ip(
    document: SourceDocument, address: IPv4Address, where: Path, seen: dict[IPv4Address, Path]
) -> None:
    """A public (elastic) IP belongs to one instance or NAT gateway at a time."""
    if address in seen:
        raise document.error(
            where,
            f"public IP {address} is used twice (also at line {document.line_of(seen[address])})",
            fix="give each node and NAT gateway its own public IP",
        )
    seen[address] = where


def _check_eni_groups(document: SourceDocument, eni: EniSpec, path: Path, groups: set[str]) -> None:
    """An ENI's groups are declared ones, once the spec declares any."""
    if not groups:
        return
    if not eni.security_groups:
        raise document.error(
            path,
            f"ENI {eni.id} has no security group; every ENI has at least one once the VPC "
            "declares them",
            fix=f"add securityGroups: [{sorted(groups)[0]}] (or the groups it has)",
        )
    for index, group in enumerate(eni.security_groups):
        if group not in groups:
            raise document.error(
                (*path, "securityGroups", index),
                f"ENI {eni.id}: security group {group!r} is not declared in vpc.securityGroups",
                fix=f"use one of: {', '.join(sorted(groups))}",
            )


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
        if eni.device >= limits.enis:
            raise document.error(
                (*eni_path, "device"),
                f"ENI {eni.id}: device index {eni.device}, but {instance_type} has "
                f"{limits.enis} ENI slots (device 0 to {limits.enis - 1})",
                fix="use a free device index below the limit or pick a larger instance type",
            )
        if eni.linux == "lo":
            raise document.error(
                (*eni_path, "linux"),
                f"ENI {eni.id}: 'lo' is the loopback device's name",
                fix="name ENIs eth0, eth1, …",
            )
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
    node_az = cluster.subnet(node.subnet).az
    if subnet.az != node_az:
        raise document.error(
            (*path, "subnet"),
            f"ENI {eni.id}: subnet {subnet.name} is in {subnet.az}, but node {node.name} is in "
            f"{node_az}",
            fix="an instance attaches ENIs of its own availability zone only",
        )
    reserved = _reserved(subnet.cidr)
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


def _mac_problem(mac: str) -> str | None:
    """Why `mac` cannot be a device's MAC (the rules of `cluster.check_mac`), or None."""
    try:
        check_mac(mac)
    except PydanticCustomError as error:
        return str(error.context["message"]) if error.context else str(error)
    return None


def _check_router_macs(cluster: Cluster, document: SourceDocument) -> None:
    """Each subnet's router MAC, once the template's `{x}` is filled in, is a device MAC."""
    for index, subnet in enumerate(cluster.vpc.subnets):
        mac = cluster.router_mac(subnet)
        problem = _mac_problem(mac)
        if problem is None:
            continue
        written = subnet.router_mac is not None
        raise document.error(
            ("vpc", "subnets", index, "routerMac") if written else ("vpc", "routerMac"),
            f"subnet {subnet.name}: router MAC {problem}",
            fix="pick a unicast router MAC (first octet even, e.g. 02:…)"
            if written
            else "change the template so that every subnet's MAC is unicast and not zero",
        )


def _check_security_groups(cluster: Cluster, document: SourceDocument) -> set[str]:
    """Each rule has the one peer its direction takes (`source` inbound, `destination`
    outbound): a CIDR, a declared prefix list or a declared group; its protocol and ports read
    as AWS reads them (`model.vpc_filters`). Returns the declared groups."""
    groups = cluster.vpc.security_groups
    for name, group in groups.items():
        path: Path = ("vpc", "securityGroups", name)
        for direction, peer, other in (
            ("inbound", "source", "destination"),
            ("outbound", "destination", "source"),
        ):
            for index, rule in enumerate(getattr(group, direction)):
                rule_path: Path = (*path, direction, index)
                if getattr(rule, other) is not None:
                    raise document.error(
                        (*rule_path, other),
                        f"security group {name}: an {direction} rule has a {peer}, not a {other}",
                        fix=f"write `{peer}: …`",
                    )
                value = getattr(rule, peer)
                if value is None:
                    raise document.error(
                        rule_path,
                        f"security group {name}: {direction} rule without a {peer}",
                        fix=f"add `{peer}:` (a CIDR, a prefix list or a security group)",
                    )
                if not _is_group_peer(value, groups, cluster.vpc.prefix_lists):
                    raise document.error(
                        (*rule_path, peer),
                        f"security group {name}: {peer} {shown(value)} is not a CIDR, a declared "
                        "prefix list or a declared security group",
                        fix=f"use a CIDR like 0.0.0.0/0 or one of: {', '.join(sorted(groups))}",
                    )
                _check_rule_ports(document, rule_path, rule.protocol, rule.ports)
    return set(groups)


def _check_rule_ports(
    document: SourceDocument, path: Path, protocol: str, ports: str | int | None
) -> None:
    try:
        port_range(ports, protocol_number(protocol))
    except RuleProblem as problem:
        raise document.error((*path, "ports"), str(problem), fix=problem.fix) from None


def _check_network_acls(cluster: Cluster, document: SourceDocument) -> None:
    """NACLs guard declared subnets, one NACL per subnet, at most one default; rule numbers
    are unique per direction."""
    guarded: dict[str, str] = {}
    subnets = {subnet.name for subnet in cluster.vpc.subnets}
    defaults = [name for name, acl in cluster.vpc.network_acls.items() if acl.default]
    if len(defaults) > 1:
        raise document.error(
            ("vpc", "networkAcls", defaults[1], "default"),
            f"NACLs {defaults[0]} and {defaults[1]} are both the VPC's default",
            fix="a VPC has one default NACL: keep `default: true` on one",
        )
    for name, acl in cluster.vpc.network_acls.items():
        path: Path = ("vpc", "networkAcls", name)
        for index, subnet in enumerate(acl.subnets):
            if subnet not in subnets:
                raise document.error(
                    (*path, "subnets", index),
                    f"NACL {name}: unknown subnet {subnet!r}",
                    fix=f"use one of: {', '.join(sorted(subnets))}",
                )
            if subnet in guarded:
                raise document.error(
                    (*path, "subnets", index),
                    f"subnet {subnet} is already guarded by NACL {guarded[subnet]}",
                    fix="a subnet has exactly one network ACL",
                )
            guarded[subnet] = name
        for direction in ("inbound", "outbound"):
            seen: set[int] = set()
            for index, entry in enumerate(getattr(acl, direction)):
                entry_path: Path = (*path, direction, index)
                if entry.rule in seen:
                    raise document.error(
                        (*entry_path, "rule"),
                        f"NACL {name}: two {direction} rules numbered {entry.rule}",
                        fix="number each rule of a direction once",
                    )
                seen.add(entry.rule)
                _check_rule_ports(document, entry_path, entry.protocol, entry.ports)


def _check_prefix_list_routes(cluster: Cluster, document: SourceDocument) -> None:
    """A route to a prefix list names a declared one."""
    for name, routes in cluster.vpc.route_tables.items():
        for index, route in enumerate(routes):
            if isinstance(route.dst, str) and route.dst not in cluster.vpc.prefix_lists:
                known = ", ".join(sorted(cluster.vpc.prefix_lists)) or "none are declared"
                raise document.error(
                    ("vpc", "routeTables", name, index, "dst"),
                    f"route table {name}: prefix list {route.dst} is not declared",
                    fix=f"declare it under vpc.prefixLists ({known})",
                )


def _is_group_peer(value: str, groups: Mapping[str, Any], lists: Mapping[str, Any]) -> bool:
    if value in groups or value in lists:
        return True
    try:
        ip_network(value)
    except ValueError:
        return False
    return True


def _reserved(cidr: IPv4Network) -> set[IPv4Address]:
    """The addresses AWS keeps in every subnet: the first four and the last (vpc-fabric.md
    §1.1)."""
    base = cidr.network_address
    return {base, base + 1, base + 2, base + 3, cidr.broadcast_address}


def _check_nat_gateways(cluster: Cluster, document: SourceDocument) -> None:
    """A NAT gateway has a unique id and lives in a declared subnet, on an address of it."""
    ids: set[str] = set()
    for index, gateway in enumerate(cluster.vpc.nat_gateways):
        path: Path = ("vpc", "natGateways", index)
        if gateway.id in ids:
            raise document.error(
                (*path, "id"), f"duplicate NAT gateway {gateway.id}", fix="make it unique"
            )
        ids.add(gateway.id)
        try:
            subnet = cluster.subnet(gateway.subnet)
        except KeyError:
            known = ", ".join(subnet.name for subnet in cluster.vpc.subnets)
            raise document.error(
                (*path, "subnet"),
                f"NAT gateway {gateway.id}: unknown subnet {gateway.subnet!r}",
                fix=f"use one of: {known}",
            ) from None
        if (gateway.public_ip is None) != (gateway.connectivity == "private"):
            raise document.error(
                (*path, "publicIp"),
                f"NAT gateway {gateway.id}: a {gateway.connectivity} NAT gateway "
                + ("has no" if gateway.connectivity == "private" else "needs an")
                + " elastic IP",
                fix="give a public NAT gateway publicIp, a private one none",
            )
        if gateway.private_ip not in subnet.cidr or gateway.private_ip in _reserved(subnet.cidr):
            raise document.error(
                (*path, "privateIp"),
                f"NAT gateway {gateway.id}: {gateway.private_ip} is not an assignable address "
                f"of subnet {subnet.name} {subnet.cidr}",
                fix="use an address inside the subnet, not its first four or its last",
            )


def _check_nat_addresses(
    cluster: Cluster, document: SourceDocument, owners: dict[IPv4Address, Path]
) -> None:
    """A NAT gateway's private address is its own ENI's: no node ENI may hold it too."""
    for index, gateway in enumerate(cluster.vpc.nat_gateways):
        if gateway.private_ip in owners:
            line = document.line_of(owners[gateway.private_ip])
            raise document.error(
                ("vpc", "natGateways", index, "privateIp"),
                f"NAT gateway {gateway.id}: {gateway.private_ip} is also an ENI's (line {line})",
                fix="give the NAT gateway an address no ENI has",
            )


# Kubernetes objects ------------------------------------------------------------------------------

ObjectKey = tuple[str, str]
"""(namespace, name) of a Service or Ingress."""


def _check_kubernetes_objects(cluster: Cluster, document: SourceDocument) -> None:
    check_kube_proxy(cluster, document)
    services = check_services(cluster, document)
    ingresses = _declared_objects(document, "ingresses", cluster.ingresses)
    for index, ingress in enumerate(cluster.ingresses):
        namespace = _namespace_of(ingress)
        for path, name in _ingress_backends(document, ("ingresses", index), ingress):
            if (namespace, name) not in services:
                raise document.error(
                    path,
                    f"ingress {_name_of(ingress)}: backend service {name!r} is not declared in "
                    f"namespace {namespace}",
                    fix=_one_of("service", services),
                )
    check_endpoint_slices(cluster, document, services)
    declared = {"service": services, "ingress": ingresses}
    for index, balancer in enumerate(cluster.load_balancers):
        _check_reference(document, ("loadBalancers", index, "for"), balancer.get("for"), declared)
        ips = balancer.get("ips", {})
        zones = {subnet.az for subnet in cluster.vpc.subnets}
        if not isinstance(ips, dict):
            raise document.error(
                ("loadBalancers", index, "ips"),
                f"load balancer ips is {_kind(ips)}, not a mapping of zone → addresses",
                fix="write `ips: {ZONE: [PRIVATE-IP, PUBLIC-IP]}`",
            )
        for zone, addresses in ips.items():
            where: Path = ("loadBalancers", index, "ips", zone)
            if zone not in zones:
                raise document.error(
                    where,
                    f"load balancer zone {zone!r} has no subnet",
                    fix=f"use one of: {', '.join(sorted(zones))}",
                )
            _check_addresses(document, where, addresses)
    for index, record in enumerate(cluster.dns):
        if "alias" in record:
            _check_reference(document, ("dns", index, "alias"), record["alias"], declared)
        if "answers" in record:
            _check_addresses(document, ("dns", index, "answers"), record["answers"])


def _declared_objects(
    document: SourceDocument, section: str, items: list[dict[str, Any]]
) -> set[ObjectKey]:
    """The (namespace, name) of each Ingress, written compactly (`name:`) or as a manifest
    (`metadata.name`); each named validly and once."""
    keys: set[ObjectKey] = set()
    for index, item in enumerate(items):
        path: Path = (section, index)
        name_path: Path = (*path, "name") if "name" in item else (*path, "metadata", "name")
        name = _name_of(item)
        if not isinstance(name, str) or len(name) > 63 or not _OBJECT_NAME.fullmatch(name):
            raise document.error(
                name_path,
                f"ingress name {shown(name)} is not a valid Kubernetes name (DNS-1123 subdomain)",
                fix="give it `name:` (or metadata.name) of lowercase letters, digits and '-'",
            )
        namespace = _namespace_of(item)
        if not _NAMESPACE.fullmatch(namespace):
            raise document.error(
                path,
                f"ingress {name}: namespace {shown(namespace)} is not a valid Kubernetes name "
                "(DNS-1123 label)",
                fix="lowercase letters, digits and '-', at most 63 characters",
            )
        key = (namespace, name)
        if key in keys:
            raise document.error(
                name_path, f"duplicate ingress {key[0]}/{name}", fix="name each ingress once"
            )
        keys.add(key)
    return keys


def _name_of(item: Mapping[str, Any]) -> object:
    if "name" in item:
        return item["name"]
    metadata = item.get("metadata")
    return metadata.get("name") if isinstance(metadata, dict) else None


def _namespace_of(item: Mapping[str, Any]) -> str:
    metadata = item.get("metadata")
    namespace = item.get("namespace") or (
        metadata.get("namespace") if isinstance(metadata, dict) else None
    )
    return namespace if isinstance(namespace, str) else "default"


def _field(document: SourceDocument, path: Path, value: object, *keys: str) -> object:
    """`value[keys[0]][keys[1]]…`, or None where a key is absent; a value on the way that is
    not a mapping is an error at its line."""
    for key in keys:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise document.error(
                path,
                f"{'.'.join(str(part) for part in path)} is {_kind(value)}, not a mapping",
                fix="write it as a Kubernetes manifest writes it",
            )
        value = value.get(key)
        path = (*path, key)
    return value


def _ingress_backends(
    document: SourceDocument, path: Path, ingress: dict[str, Any]
) -> Iterator[tuple[Path, str]]:
    """Where each backend service name of an Ingress is, and the name."""
    found: list[tuple[Path, object]] = []
    default = _field(document, path, ingress, "spec", "defaultBackend")
    if default is not None:
        found.append(((*path, "spec", "defaultBackend"), default))
    rules = _field(document, path, ingress, "spec", "rules") or []
    if not isinstance(rules, list):
        raise document.error(
            (*path, "spec", "rules"), "ingress spec.rules is not a list", fix="write a list"
        )
    for index, rule in enumerate(rules):
        rule_path: Path = (*path, "spec", "rules", index)
        paths = _field(document, rule_path, rule, "http", "paths") or []
        if not isinstance(paths, list):
            raise document.error(
                (*rule_path, "http", "paths"), "ingress http.paths is not a list", fix="a list"
            )
        for number, entry in enumerate(paths):
            entry_path: Path = (*rule_path, "http", "paths", number)
            backend = _field(document, entry_path, entry, "backend")
            if backend is not None:
                found.append(((*entry_path, "backend"), backend))
    for backend_path, backend in found:
        name = _field(document, backend_path, backend, "service", "name")
        if name is None:
            continue
        if not isinstance(name, str):
            raise document.error(
                (*backend_path, "service", "name"),
                f"ingress backend service name {shown(name)} is not a name",
                fix="write the Service's name",
            )
        yield (*backend_path, "service", "name"), name


def _check_reference(
    document: SourceDocument,
    path: Path,
    reference: object,
    declared: Mapping[str, set[ObjectKey]],
) -> None:
    """`service/NAME`, `service/NAMESPACE/NAME`, `ingress/…`: a declared object."""
    parts = reference.split("/") if isinstance(reference, str) else []
    names = parts[1:]
    well_formed = len(names) in (1, 2) and all(_OBJECT_NAME.fullmatch(name) for name in names)
    if not well_formed or parts[0] not in declared:
        raise document.error(
            path,
            f"{shown(reference)} does not name a service or ingress",
            fix="write service/NAME or ingress/NAME (or KIND/NAMESPACE/NAME)",
        )
    kind, *rest = parts
    key = (rest[0], rest[1]) if len(rest) == 2 else ("default", rest[0])
    if key not in declared[kind]:
        raise document.error(
            path, f"{kind} {key[0]}/{key[1]} is not declared", fix=_one_of(kind, declared[kind])
        )


def _check_addresses(document: SourceDocument, path: Path, addresses: object) -> None:
    if not isinstance(addresses, list):
        raise document.error(
            path, f"{_kind(addresses)}, not a list of addresses", fix="write [A.B.C.D, …]"
        )
    for index, address in enumerate(addresses):
        try:
            IPv4Address(address if isinstance(address, str) else "")
        except ValueError:
            raise document.error(
                (*path, index),
                f"{shown(address)} is not an IPv4 address",
                fix="write an address like 192.0.2.10",
            ) from None


def _one_of(kind: str, keys: set[ObjectKey]) -> str:
    names = ", ".join(f"{namespace}/{name}" for namespace, name in sorted(keys))
    plural = f"{kind}es" if kind.endswith("s") else f"{kind}s"
    return f"use one of the declared {plural}: {names}" if names else f"declare the {kind} first"


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"the {type(value).__name__} {shown(value)}"
