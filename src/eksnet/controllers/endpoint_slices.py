"""Endpoints: the EndpointSlices of each Service, and the endpoint list kube-proxy reads from them.

A Service with a selector and no EndpointSlice in the spec gets the slices the EndpointSlice
controller would write from the pods: every pod of the Service's namespace whose labels match,
with its IP, its node and that node's zone; `ready` = the pod is ready and not terminating (or
the Service publishes not-ready addresses), `serving` = the pod is ready, `terminating` = the
pod is being deleted. A named targetPort resolves through each pod's container port of that
name and protocol; a pod without it is not an endpoint of that port. `trafficDistribution`
becomes hints as the controller writes them (PreferClose/PreferSameZone: the endpoint's zone;
PreferSameNode: its node and its zone).

kube-proxy's view of one Service port (`endpointslicecache.go`): the slice ports with that port's
name and protocol, the first address of each endpoint, one entry per `ip:port` (the first slice,
in name order, wins), sorted by the string `ip:port` in byte order (kube-proxy.md §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from eksnet.model.cluster import Cluster, PodPort, PodSpec
from eksnet.model.kubernetes import (
    KubeEndpoint,
    KubeEndpointPort,
    KubeEndpointSlice,
    KubePort,
    KubeService,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of one Service port as kube-proxy holds it."""

    ip: IPv4Address
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node: str | None
    zone_hints: frozenset[str]
    node_hints: frozenset[str]
    address: str = field(init=False, compare=False, repr=False)
    """The address as rules print it (kept: printing an address is slow and every node's
    rules print it several times)."""
    text: str = field(init=False, compare=False, repr=False)
    """`net.JoinHostPort(ip, port)`: the string SEP names hash and endpoints sort by."""

    def __post_init__(self) -> None:
        address = str(self.ip)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "text", f"{address}:{self.port}")


class SliceSource:
    """The cluster's EndpointSlices and pods, indexed once per build: slices by their Service,
    pods by namespace and by each label they carry. A node of a 10,000-Service cluster asks for
    every Service's slices; scanning all slices and pods per Service would make building the
    state quadratic."""

    def __init__(self, cluster: Cluster) -> None:
        self._zones = {node.name: cluster.subnet(node.subnet).az for node in cluster.nodes}
        self._given: dict[tuple[str, str], list[KubeEndpointSlice]] = {}
        for item in cluster.kube_endpoint_slices():
            self._given.setdefault((item.namespace, item.service or ""), []).append(item)
        self._by_namespace: dict[str, list[PodSpec]] = {}
        self._by_label: dict[tuple[str, str, str], list[PodSpec]] = {}
        for pod in cluster.pods:
            self._by_namespace.setdefault(pod.namespace, []).append(pod)
            for key, value in pod.labels.items():
                self._by_label.setdefault((pod.namespace, key, value), []).append(pod)

    def slices(self, service: KubeService) -> tuple[KubeEndpointSlice, ...]:
        """The Service's EndpointSlices: the spec's (in name order), else derived from its
        selector."""
        given = self._given.get((service.namespace, service.name), [])
        if given or service.selector is None:
            return tuple(sorted(given, key=lambda item: item.name))
        return self._derived(service)

    def _selected(self, service: KubeService) -> list[PodSpec]:
        """The pods of the Service's namespace whose labels match its selector, in spec
        order. An empty selector selects every pod of the namespace (as the API does)."""
        assert service.selector is not None
        if not service.selector:
            return self._by_namespace.get(service.namespace, [])
        key, value = service.selector[0]
        candidates = self._by_label.get((service.namespace, key, value), [])
        return [
            pod
            for pod in candidates
            if all(pod.labels.get(k) == v for k, v in service.selector[1:])
        ]

    def _derived(self, service: KubeService) -> tuple[KubeEndpointSlice, ...]:
        """The slices the EndpointSlice controller writes for a selector Service: one per set
        of resolved ports (pods that resolve a named targetPort differently land in different
        slices)."""
        groups: dict[tuple[KubeEndpointPort, ...], list[KubeEndpoint]] = {}
        for pod in self._selected(service):
            ports = tuple(
                KubeEndpointPort(port.name, port.protocol, resolved)
                for port in service.ports
                if (resolved := _resolve(port, pod)) is not None
            )
            zone = self._zones.get(pod.node)
            ready = (pod.ready and not pod.terminating) or service.publish_not_ready_addresses
            distribution = service.traffic_distribution
            groups.setdefault(ports, []).append(
                KubeEndpoint(
                    addresses=(pod.ip,),
                    ready=ready,
                    serving=pod.ready or service.publish_not_ready_addresses,
                    terminating=pod.terminating,
                    node_name=pod.node,
                    zone=zone,
                    zone_hints=(zone,) if distribution is not None and zone is not None else (),
                    node_hints=(pod.node,) if distribution == "PreferSameNode" else (),
                    pod=pod.key,
                )
            )
        return tuple(
            KubeEndpointSlice(
                namespace=service.namespace,
                name=f"{service.name}-{number}",
                service=service.name,
                endpoints=tuple(endpoints),
                ports=ports,
                index=None,
            )
            for number, (ports, endpoints) in enumerate(groups.items())
        )


def _resolve(port: KubePort, pod: PodSpec) -> int | None:
    """The pod's port for a Service port: the targetPort number, or the container port named
    so (with the Service port's protocol); None when the pod has no such port."""
    if isinstance(port.target_port, int):
        return port.target_port
    for container in pod.ports:
        if (
            isinstance(container, PodPort)
            and container.name == port.target_port
            and container.protocol == port.protocol
        ):
            return container.container_port
    return None


def port_endpoints(slices: tuple[KubeEndpointSlice, ...], port: KubePort) -> tuple[Endpoint, ...]:
    """kube-proxy's endpoint list for one Service port, sorted by `ip:port`."""
    found: dict[str, Endpoint] = {}
    for item in slices:
        for slice_port in item.ports:
            if slice_port.name != port.name or slice_port.protocol != port.protocol:
                continue
            if slice_port.port is None:
                continue
            for endpoint in item.endpoints:
                entry = Endpoint(
                    ip=endpoint.addresses[0],
                    port=slice_port.port,
                    ready=endpoint.ready is not False,
                    serving=endpoint.serving is not False,
                    terminating=endpoint.terminating is True,
                    node=endpoint.node_name,
                    zone_hints=frozenset(endpoint.zone_hints),
                    node_hints=frozenset(endpoint.node_hints),
                )
                found.setdefault(entry.text, entry)
    return tuple(found[text] for text in sorted(found))
