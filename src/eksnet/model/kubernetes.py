"""Services and EndpointSlices as the Kubernetes API writes them, and the demo's shorthand.

A spec's `services:` list takes either a manifest exactly as `kubectl get svc -o yaml` prints it
(`apiVersion: v1`, `kind: Service`, `metadata`, `spec`, `status`) or the shorthand the demo uses
(the `spec` fields at the top level beside `name`, `namespace`, `labels`, `annotations`);
`endpointSlices:` takes EndpointSlice manifests (`discovery.k8s.io/v1`). Both become one
`KubeService` / `KubeEndpointSlice` with what the API server defaults filled in and nothing else:
`protocol: TCP`, `targetPort` = `port`, `sessionAffinity: None` (timeout 10800 s with ClientIP),
`externalTrafficPolicy: Cluster` for NodePort and LoadBalancer Services (and Services with
external IPs), `internalTrafficPolicy: Cluster`. A Service without a `nodePort` has none (the API
server would allocate one at random; a spec that wants one writes it), and the ClusterIP is the
one the spec writes, because the allocator's choice is random too.

Fields that only describe the object (uid, resourceVersion, managedFields, conditions …) are
accepted so a pasted manifest loads, and ignored; every other unknown field is an error, as
everywhere in a spec. Checks that need the whole cluster (ClusterIP inside the service CIDR,
duplicates, node ports in range, endpoints on declared nodes and pods) are in `model.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, StrictBool, Tag

from eksnet.model.cluster import IPv4, Port, Spec, invalid
from eksnet.model.source import shown

Protocol = Literal["TCP", "UDP", "SCTP"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
TrafficPolicy = Literal["Cluster", "Local"]
TrafficDistribution = Literal["PreferClose", "PreferSameZone", "PreferSameNode"]

DEFAULT_AFFINITY_TIMEOUT = 10800
"""`sessionAffinityConfig.clientIP.timeoutSeconds` when the Service does not say (API default)."""


class ObjectMeta(Spec):
    """`metadata`: the name, namespace, labels and annotations; the bookkeeping fields the API
    server adds are accepted so `kubectl get -o yaml` output pastes in, and ignored."""

    name: str
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: Any = None
    resource_version: Any = None
    creation_timestamp: Any = None
    deletion_timestamp: Any = None
    deletion_grace_period_seconds: Any = None
    generation: Any = None
    generate_name: Any = None
    managed_fields: Any = None
    owner_references: Any = None
    finalizers: Any = None
    self_link: Any = None


def _target_port(value: object) -> object:
    """A port number or an IANA_SVC_NAME (a container port's name)."""
    if isinstance(value, str) and not (0 < len(value) <= 15 and value.replace("-", "").isalnum()):
        raise invalid(
            f"targetPort {shown(value)} is neither a port number nor a port name",
            fix="write a number 1-65535 or the name of a container port (at most 15 characters)",
        )
    return value


class ServicePortSpec(Spec):
    name: str = ""
    protocol: Protocol = "TCP"
    port: Port
    target_port: Annotated[Port | str, AfterValidator(_target_port)] | None = None
    node_port: Port | None = None
    app_protocol: str | None = None


class ClientIPConfig(Spec):
    timeout_seconds: Annotated[int, Field(ge=1, le=86400, strict=True)] = DEFAULT_AFFINITY_TIMEOUT


class SessionAffinityConfig(Spec):
    client_ip: ClientIPConfig = Field(default_factory=ClientIPConfig, alias="clientIP")


class LoadBalancerIngress(Spec):
    """One `status.loadBalancer.ingress[]` entry: AWS load balancers give a `hostname` only."""

    ip: IPv4 | None = None
    hostname: str | None = None
    ip_mode: Literal["VIP", "Proxy"] | None = None
    ports: Any = None


class LoadBalancerStatus(Spec):
    ingress: list[LoadBalancerIngress] = Field(default_factory=list)


class ServiceStatus(Spec):
    load_balancer: LoadBalancerStatus = Field(default_factory=LoadBalancerStatus)
    conditions: Any = None


class ServiceSpecFields(Spec):
    """The fields of a Service's `spec` kube-proxy or the API server's validation reads."""

    type: ServiceType = "ClusterIP"
    cluster_ip: str | None = Field(None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(None, alias="clusterIPs")
    ports: list[ServicePortSpec] = Field(default_factory=list)
    selector: dict[str, str] | None = None
    external_ips: list[IPv4] = Field(default_factory=list, alias="externalIPs")
    external_traffic_policy: TrafficPolicy | None = None
    internal_traffic_policy: TrafficPolicy | None = None
    health_check_node_port: Port | None = None
    session_affinity: Literal["None", "ClientIP"] = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    load_balancer_source_ranges: list[str] = Field(default_factory=list)
    load_balancer_ip: str | None = Field(None, alias="loadBalancerIP")
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: StrictBool | None = None
    ip_families: list[Literal["IPv4", "IPv6"]] | None = None
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    publish_not_ready_addresses: StrictBool = False
    traffic_distribution: TrafficDistribution | None = None
    external_name: str | None = None


class ServiceManifest(Spec):
    """A Service as the API prints it."""

    api_version: Literal["v1"]
    kind: Literal["Service"]
    metadata: ObjectMeta
    spec: ServiceSpecFields = Field(default_factory=ServiceSpecFields)
    status: ServiceStatus = Field(default_factory=ServiceStatus)


class ServiceShorthand(ServiceSpecFields):
    """The demo's compact form: the `spec` fields beside the object's name."""

    name: str
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    status: ServiceStatus = Field(default_factory=ServiceStatus)


def _service_form(value: object) -> str:
    return (
        "manifest"
        if isinstance(value, dict) and ("apiVersion" in value or "kind" in value)
        else "short"
    )


ServiceEntry = Annotated[
    Annotated[ServiceManifest, Tag("manifest")] | Annotated[ServiceShorthand, Tag("short")],
    Discriminator(_service_form),
]
"""One item of `services:`: a manifest when it has `apiVersion`/`kind`, else the shorthand."""


class EndpointConditions(Spec):
    ready: StrictBool | None = None
    serving: StrictBool | None = None
    terminating: StrictBool | None = None


class ForZone(Spec):
    name: str


class ForNode(Spec):
    name: str


class EndpointHints(Spec):
    for_zones: list[ForZone] = Field(default_factory=list)
    for_nodes: list[ForNode] = Field(default_factory=list)


class ObjectReference(Spec):
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: Any = None
    api_version: Any = None
    resource_version: Any = None
    field_path: Any = None


class EndpointSpec(Spec):
    addresses: list[str] = Field(min_length=1, max_length=100)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    hints: EndpointHints | None = None
    target_ref: ObjectReference | None = None
    deprecated_topology: Any = None


class EndpointPortSpec(Spec):
    name: str | None = None
    protocol: Protocol = "TCP"
    port: Port | None = None
    app_protocol: str | None = None


class EndpointSliceManifest(Spec):
    """An EndpointSlice as the API prints it (`discovery.k8s.io/v1`)."""

    api_version: Literal["discovery.k8s.io/v1"]
    kind: Literal["EndpointSlice"]
    metadata: ObjectMeta
    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: list[EndpointSpec] | None = None
    ports: list[EndpointPortSpec] | None = None


# --- the normalized objects the controllers read ------------------------------------------------


@dataclass(frozen=True, slots=True)
class KubePort:
    """One Service port with the API server's defaults applied."""

    name: str
    protocol: Protocol
    port: int
    target_port: int | str
    node_port: int | None


@dataclass(frozen=True, slots=True)
class KubeService:
    """A Service as kube-proxy and the EndpointSlice controller read it; `index` is its place in
    the spec's `services:` list (for errors), `manifest` whether it was written as one (the
    field paths differ)."""

    namespace: str
    name: str
    type: ServiceType
    cluster_ip: IPv4Address | None
    """None for a headless Service (`None`) and an ExternalName one: kube-proxy skips both."""
    ports: tuple[KubePort, ...]
    selector: tuple[tuple[str, str], ...] | None
    external_ips: tuple[IPv4Address, ...]
    external_traffic_policy: TrafficPolicy | None
    internal_traffic_policy: TrafficPolicy
    health_check_node_port: int | None
    affinity_timeout: int | None
    """`ClientIP` affinity's timeout in seconds, None without affinity."""
    source_ranges: tuple[str, ...]
    """`loadBalancerSourceRanges` as written (kube-proxy trims whitespace when it reads them)."""
    ingress: tuple[LoadBalancerIngress, ...]
    traffic_distribution: TrafficDistribution | None
    publish_not_ready_addresses: bool
    annotations: tuple[tuple[str, str], ...]
    index: int
    manifest: bool
    load_balancer_class: str | None = None
    """`spec.loadBalancerClass`: which controller may build its load balancer."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def spec_path(self, *rest: str | int) -> tuple[str | int, ...]:
        """Where a `spec` field of this Service is in the cluster spec."""
        return ("services", self.index, *(("spec",) if self.manifest else ()), *rest)


def normalize_service(entry: ServiceManifest | ServiceShorthand, index: int) -> KubeService:
    """The Service with the API server's defaults, and nothing else, filled in."""
    if isinstance(entry, ServiceManifest):
        spec: ServiceSpecFields = entry.spec
        meta = entry.metadata
        namespace, name, annotations = meta.namespace, meta.name, meta.annotations
        status = entry.status
    else:
        spec, status = entry, entry.status
        namespace, name, annotations = entry.namespace, entry.name, entry.annotations
    ports = tuple(
        KubePort(
            name=port.name,
            protocol=port.protocol,
            port=port.port,
            target_port=port.target_port if port.target_port is not None else port.port,
            node_port=port.node_port,
        )
        for port in spec.ports
    )
    cluster_ip = None
    if spec.type != "ExternalName" and spec.cluster_ip not in (None, "", "None"):
        cluster_ip = IPv4Address(spec.cluster_ip)
    external_policy = spec.external_traffic_policy
    if external_policy is None and (spec.type in ("NodePort", "LoadBalancer") or spec.external_ips):
        external_policy = "Cluster"
    timeout = None
    if spec.session_affinity == "ClientIP":
        config = spec.session_affinity_config
        timeout = config.client_ip.timeout_seconds if config else DEFAULT_AFFINITY_TIMEOUT
    return KubeService(
        namespace=namespace,
        name=name,
        type=spec.type,
        cluster_ip=cluster_ip,
        ports=ports,
        selector=tuple(sorted(spec.selector.items())) if spec.selector else None,
        external_ips=tuple(spec.external_ips),
        external_traffic_policy=external_policy,
        internal_traffic_policy=spec.internal_traffic_policy or "Cluster",
        health_check_node_port=spec.health_check_node_port,
        affinity_timeout=timeout,
        source_ranges=tuple(spec.load_balancer_source_ranges),
        ingress=tuple(status.load_balancer.ingress),
        traffic_distribution=spec.traffic_distribution,
        publish_not_ready_addresses=spec.publish_not_ready_addresses,
        annotations=tuple(sorted(annotations.items())),
        index=index,
        manifest=isinstance(entry, ServiceManifest),
        load_balancer_class=spec.load_balancer_class,
    )


@dataclass(frozen=True, slots=True)
class KubeEndpoint:
    """One endpoint of a slice, its conditions as written (None: unset)."""

    addresses: tuple[IPv4Address, ...]
    ready: bool | None
    serving: bool | None
    terminating: bool | None
    node_name: str | None
    zone: str | None
    zone_hints: tuple[str, ...]
    node_hints: tuple[str, ...]
    pod: str | None
    """`targetRef` of kind Pod: its `namespace/name`."""


@dataclass(frozen=True, slots=True)
class KubeEndpointPort:
    name: str
    protocol: Protocol
    port: int | None


@dataclass(frozen=True, slots=True)
class KubeEndpointSlice:
    """An IPv4 EndpointSlice (`index`: its place in `endpointSlices:`, None when derived)."""

    namespace: str
    name: str
    service: str | None
    """The `kubernetes.io/service-name` label: the Service it belongs to."""
    endpoints: tuple[KubeEndpoint, ...]
    ports: tuple[KubeEndpointPort, ...]
    index: int | None


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def normalize_slice(entry: EndpointSliceManifest, index: int) -> KubeEndpointSlice:
    meta = entry.metadata
    endpoints = tuple(
        KubeEndpoint(
            addresses=tuple(IPv4Address(a) for a in endpoint.addresses),
            ready=endpoint.conditions.ready,
            serving=endpoint.conditions.serving,
            terminating=endpoint.conditions.terminating,
            node_name=endpoint.node_name,
            zone=endpoint.zone,
            zone_hints=tuple(z.name for z in endpoint.hints.for_zones) if endpoint.hints else (),
            node_hints=tuple(n.name for n in endpoint.hints.for_nodes) if endpoint.hints else (),
            pod=(
                f"{endpoint.target_ref.namespace or meta.namespace}/{endpoint.target_ref.name}"
                if endpoint.target_ref is not None and endpoint.target_ref.kind == "Pod"
                else None
            ),
        )
        for endpoint in entry.endpoints or ()
    )
    ports = tuple(
        KubeEndpointPort(port.name or "", port.protocol, port.port) for port in entry.ports or ()
    )
    return KubeEndpointSlice(
        namespace=meta.namespace,
        name=meta.name,
        service=meta.labels.get(SERVICE_NAME_LABEL),
        endpoints=endpoints,
        ports=ports,
        index=index,
    )


def source_range(text: str) -> IPv4Network | None:
    """A `loadBalancerSourceRanges` entry as kube-proxy reads it (whitespace trimmed); None for
    an IPv6 range, which the IPv4 proxier filters out."""
    trimmed = text.strip()
    if ":" in trimmed:
        return None
    return IPv4Network(trimmed, strict=False)
