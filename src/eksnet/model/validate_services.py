"""Cross-object checks of Services, EndpointSlices and kube-proxy's configuration.

What the API server's validation would refuse, and what only the whole cluster can say: names
valid and unique, a ClusterIP for every Service that needs one, inside `kubernetes.serviceCidr`
and used once, port names and numbers unique per Service, node ports only where the type has
them, inside `kubernetes.serviceNodePortRange` and used once, a health-check node port only for
a LoadBalancer with `externalTrafficPolicy: Local`, source ranges that are CIDRs, and every
EndpointSlice owned by a declared Service with its endpoints on declared nodes and pods. Each
failure is one line with the file, the line and the fix, like every other check.
"""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address, ip_network

from eksnet.model.cluster import Cluster
from eksnet.model.kubernetes import KubeService, source_range
from eksnet.model.source import Path, SourceDocument, shown

_SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
"""Service names are DNS-1035 labels (at most 63 characters)."""
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
"""Namespaces and port names are DNS-1123 labels."""
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

ObjectKey = tuple[str, str]


def check_services(cluster: Cluster, document: SourceDocument) -> set[ObjectKey]:
    """Check every Service; return the declared (namespace, name) keys."""
    keys: set[ObjectKey] = set()
    cluster_ips: dict[IPv4Address, str] = {}
    node_ports: dict[tuple[int, str], str] = {}
    low, high = cluster.kubernetes.node_port_range()
    for service in cluster.kube_services():
        name_path = _name_path(cluster, service)
        if len(service.name) > 63 or not _SERVICE_NAME.fullmatch(service.name):
            raise document.error(
                name_path,
                f"service name {shown(service.name)} is not a valid Kubernetes name (DNS-1035 "
                "label)",
                fix="lowercase letters, digits and '-', starting with a letter, at most 63",
            )
        if len(service.namespace) > 63 or not _LABEL.fullmatch(service.namespace):
            raise document.error(
                name_path,
                f"service {service.name}: namespace {shown(service.namespace)} is not a valid "
                "Kubernetes name (DNS-1123 label)",
                fix="lowercase letters, digits and '-', at most 63 characters",
            )
        key = (service.namespace, service.name)
        if key in keys:
            raise document.error(
                name_path, f"duplicate service {service.key}", fix="name each service once"
            )
        keys.add(key)
        _check_cluster_ip(cluster, document, service, cluster_ips)
        _check_ports(document, service, node_ports, (low, high))
        _check_policies(document, service, node_ports, (low, high))
    return keys


def _name_path(cluster: Cluster, service: KubeService) -> Path:
    return ("services", service.index, *(("metadata",) if service.manifest else ()), "name")


def _check_cluster_ip(
    cluster: Cluster,
    document: SourceDocument,
    service: KubeService,
    seen: dict[IPv4Address, str],
) -> None:
    if service.type == "ExternalName":
        return
    entry = cluster.services[service.index]
    spec = entry.spec if service.manifest else entry  # type: ignore[union-attr]
    written = spec.cluster_ip  # type: ignore[union-attr]
    path = service.spec_path("clusterIP")
    if written in (None, ""):
        raise document.error(
            service.spec_path(),
            f"service {service.key}: no clusterIP (the API server allocates one at random)",
            fix="write the clusterIP the Service has (`kubectl get svc` shows it), or None for "
            "a headless Service",
        )
    if written == "None":
        if service.type != "ClusterIP":
            raise document.error(
                path,
                f"service {service.key}: a {service.type} Service cannot be headless",
                fix="give it a clusterIP",
            )
        return
    try:
        address = IPv4Address(written)
    except AddressValueError:
        raise document.error(
            path,
            f"service {service.key}: clusterIP {shown(written)} is not an IPv4 address",
            fix="write an address of the service CIDR like 10.100.200.10",
        ) from None
    cidr = cluster.kubernetes.service_cidr
    if cidr is not None and address not in cidr:
        raise document.error(
            path,
            f"service {service.key}: clusterIP {address} is outside the service CIDR {cidr}",
            fix=f"pick an address inside {cidr} (kubernetes.serviceCidr)",
        )
    if address in seen:
        raise document.error(
            path,
            f"service {service.key}: clusterIP {address} is already service {seen[address]}'s",
            fix="give each Service its own clusterIP",
        )
    seen[address] = service.key
    ips = spec.cluster_ips  # type: ignore[union-attr]
    if ips and ips[0] != written:
        raise document.error(
            service.spec_path("clusterIPs"),
            f"service {service.key}: clusterIPs[0] {shown(ips[0])} is not clusterIP {written}",
            fix="clusterIPs starts with clusterIP",
        )


def _check_ports(
    document: SourceDocument,
    service: KubeService,
    node_ports: dict[tuple[int, str], str],
    port_range: tuple[int, int],
) -> None:
    if service.type != "ExternalName" and service.cluster_ip is not None and not service.ports:
        raise document.error(
            service.spec_path(),
            f"service {service.key}: no ports",
            fix="list at least one port (`ports: [{port: 80}]`)",
        )
    names: set[str] = set()
    numbers: set[tuple[int, str]] = set()
    for index, port in enumerate(service.ports):
        path = service.spec_path("ports", index)
        if len(service.ports) > 1 and not port.name:
            raise document.error(
                path,
                f"service {service.key}: port {port.port} has no name; a Service with several "
                "ports names each",
                fix="add `name:` (e.g. http)",
            )
        if port.name and (len(port.name) > 63 or not _LABEL.fullmatch(port.name)):
            raise document.error(
                (*path, "name"),
                f"service {service.key}: port name {shown(port.name)} is not a DNS-1123 label",
                fix="lowercase letters, digits and '-'",
            )
        if port.name in names:
            raise document.error(
                (*path, "name"),
                f"service {service.key}: two ports named {port.name!r}",
                fix="name each port once",
            )
        names.add(port.name)
        if (port.port, port.protocol) in numbers:
            raise document.error(
                (*path, "port"),
                f"service {service.key}: port {port.port}/{port.protocol} is listed twice",
                fix="list each port and protocol once",
            )
        numbers.add((port.port, port.protocol))
        if port.node_port is None:
            continue
        if service.type not in ("NodePort", "LoadBalancer"):
            raise document.error(
                (*path, "nodePort"),
                f"service {service.key}: a {service.type} Service has no node ports",
                fix="remove nodePort or make the Service type NodePort or LoadBalancer",
            )
        _claim_node_port(
            document, service, (*path, "nodePort"), port.node_port, port.protocol, node_ports,
            port_range,
        )  # fmt: skip


def _claim_node_port(
    document: SourceDocument,
    service: KubeService,
    path: Path,
    number: int,
    protocol: str,
    node_ports: dict[tuple[int, str], str],
    port_range: tuple[int, int],
) -> None:
    low, high = port_range
    if not low <= number <= high:
        raise document.error(
            path,
            f"service {service.key}: node port {number} is outside the node port range "
            f"{low}-{high}",
            fix=f"pick a port in {low}-{high} (kubernetes.serviceNodePortRange)",
        )
    if (number, protocol) in node_ports:
        raise document.error(
            path,
            f"service {service.key}: node port {number}/{protocol} is already "
            f"{node_ports[(number, protocol)]}'s",
            fix="give each Service its own node port",
        )
    node_ports[(number, protocol)] = service.key


def _check_policies(
    document: SourceDocument,
    service: KubeService,
    node_ports: dict[tuple[int, str], str],
    port_range: tuple[int, int],
) -> None:
    external = service.type in ("NodePort", "LoadBalancer") or bool(service.external_ips)
    if service.external_traffic_policy is not None and not external:
        raise document.error(
            service.spec_path("externalTrafficPolicy"),
            f"service {service.key}: externalTrafficPolicy applies only to NodePort and "
            "LoadBalancer Services and Services with externalIPs",
            fix="remove it or change the Service's type",
        )
    if service.health_check_node_port is not None:
        if service.type != "LoadBalancer" or service.external_traffic_policy != "Local":
            raise document.error(
                service.spec_path("healthCheckNodePort"),
                f"service {service.key}: healthCheckNodePort is only for a LoadBalancer with "
                "externalTrafficPolicy: Local",
                fix="remove it, or make the Service such a LoadBalancer",
            )
        _claim_node_port(
            document, service, service.spec_path("healthCheckNodePort"),
            service.health_check_node_port, "TCP", node_ports, port_range,
        )  # fmt: skip
    for index, text in enumerate(service.source_ranges):
        path = service.spec_path("loadBalancerSourceRanges", index)
        if service.type != "LoadBalancer":
            raise document.error(
                path,
                f"service {service.key}: loadBalancerSourceRanges need type LoadBalancer",
                fix="remove them or make the Service a LoadBalancer",
            )
        try:
            source_range(text)
            ip_network(text.strip(), strict=False)
        except ValueError:
            raise document.error(
                path,
                f"service {service.key}: source range {shown(text)} is not a CIDR",
                fix="write a CIDR like 203.0.113.0/24",
            ) from None


def check_endpoint_slices(
    cluster: Cluster, document: SourceDocument, services: set[ObjectKey]
) -> None:
    """Each slice belongs to a declared Service; its endpoints sit on declared nodes and pods."""
    nodes = {node.name for node in cluster.nodes}
    pods = {pod.key for pod in cluster.pods}
    names: set[ObjectKey] = set()
    for item in cluster.kube_endpoint_slices():
        assert item.index is not None
        path: Path = ("endpointSlices", item.index)
        key = (item.namespace, item.name)
        if not _SUBDOMAIN.fullmatch(item.name) or len(item.name) > 253:
            raise document.error(
                (*path, "metadata", "name"),
                f"EndpointSlice name {shown(item.name)} is not a valid Kubernetes name",
                fix="lowercase letters, digits, '-' and '.'",
            )
        if key in names:
            raise document.error(
                (*path, "metadata", "name"),
                f"duplicate EndpointSlice {item.namespace}/{item.name}",
                fix="name each EndpointSlice once",
            )
        names.add(key)
        if item.service is None:
            raise document.error(
                (*path, "metadata", "labels"),
                f"EndpointSlice {item.name} has no kubernetes.io/service-name label",
                fix="label it with the Service it belongs to (kube-proxy ignores it otherwise)",
            )
        if (item.namespace, item.service) not in services:
            raise document.error(
                (*path, "metadata", "labels", "kubernetes.io/service-name"),
                f"EndpointSlice for service {shown(item.service)}, which is not declared in "
                f"namespace {item.namespace}",
                fix=_one_of(services),
            )
        entry = cluster.endpoint_slices[item.index]
        if entry.address_type != "IPv4":
            continue
        for number, endpoint in enumerate(item.endpoints):
            where: Path = (*path, "endpoints", number)
            for a, address in enumerate(entry.endpoints[number].addresses):  # type: ignore[index]
                try:
                    IPv4Address(address)
                except AddressValueError:
                    raise document.error(
                        (*where, "addresses", a),
                        f"{shown(address)} is not an IPv4 address (addressType IPv4)",
                        fix="write an address like 192.168.1.71",
                    ) from None
            if endpoint.node_name is not None and endpoint.node_name not in nodes:
                raise document.error(
                    (*where, "nodeName"),
                    f"endpoint on unknown node {shown(endpoint.node_name)}",
                    fix=f"one of: {', '.join(sorted(nodes))}",
                )
            if endpoint.pod is not None and endpoint.pod not in pods:
                raise document.error(
                    (*where, "targetRef"),
                    f"endpoint names pod {endpoint.pod}, which is not declared",
                    fix="declare the pod under pods:, or drop targetRef",
                )


def check_kube_proxy(cluster: Cluster, document: SourceDocument) -> None:
    """kube-proxy's CIDRs parse, and the two places for the masquerade settings agree."""
    proxy = cluster.kube_proxy
    for part in filter(None, (p.strip() for p in proxy.cluster_cidr.split(","))):
        try:
            ip_network(part)
        except ValueError:
            raise document.error(
                ("kubeProxy", "clusterCIDR"),
                f"clusterCIDR {shown(part)} is not a CIDR",
                fix='write a CIDR like 192.168.0.0/16, or "" as EKS does',
            ) from None
    for index, text in enumerate(proxy.node_port_addresses or ()):
        if text == "primary":
            continue
        try:
            ip_network(text)
        except ValueError:
            raise document.error(
                ("kubeProxy", "nodePortAddresses", index),
                f"nodePortAddresses entry {shown(text)} is not a CIDR",
                fix="write a CIDR like 192.168.0.0/16 (or primary)",
            ) from None
    for field in ("masqueradeBit", "masqueradeAll"):
        attribute = "masquerade_bit" if field == "masqueradeBit" else "masquerade_all"
        top, nested = getattr(proxy, attribute), getattr(proxy.iptables, attribute)
        if top is not None and nested is not None and top != nested:
            raise document.error(
                ("kubeProxy", field),
                f"kubeProxy.{field} {top} and kubeProxy.iptables.{field} {nested} disagree",
                fix="write it once, under iptables:",
            )


def _one_of(keys: set[ObjectKey]) -> str:
    names = ", ".join(f"{namespace}/{name}" for namespace, name in sorted(keys))
    return f"use one of the declared services: {names}" if names else "declare the service first"
