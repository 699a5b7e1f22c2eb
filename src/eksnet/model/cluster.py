"""The declarative cluster: what the user (or the demo) says exists.

Validated, immutable intent: the VPC and its subnets, nodes with their ENIs, pods, the VPC CNI and
kube-proxy settings, and the Kubernetes objects later controllers use (Services, EndpointSlices,
Ingresses, load balancers). Field names are the YAML's (camelCase); each model forbids unknown
fields so a typo is an error, not a silently ignored setting. Cross-object checks (overlaps,
ownership, limits) live in `model.validate`, which knows where each value came from.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from pydantic.alias_generators import to_camel

from eksnet.errors import InputError
from eksnet.model.source import SourceDocument

MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class Spec(BaseModel):
    """Base of every spec type: frozen, camelCase in YAML, unknown fields rejected."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


def _mac(value: str) -> str:
    if not MAC_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a MAC address like 02:00:c0:a8:01:32 (lowercase hex)")
    return value


class Kubernetes(Spec):
    version: str = "1.31"
    service_cidr: IPv4Network | None = None


class SubnetSpec(Spec):
    name: str
    az: str
    cidr: IPv4Network
    route_table: str
    map_public_ip: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    router_mac: str | None = None
    variant: str | list[str] | None = None
    """Present only when one of these variants is selected (`--variant NAME`)."""

    _check_mac = field_validator("router_mac")(lambda v: None if v is None else _mac(v))


class RouteSpec(Spec):
    dst: IPv4Network
    target: str


class NatGatewaySpec(Spec):
    id: str
    subnet: str
    private_ip: IPv4Address
    public_ip: IPv4Address
    variant: str | list[str] | None = None


class VpcSpec(Spec):
    id: str
    cidrs: list[IPv4Network] = Field(min_length=1)
    internet_gateway: str | None = None
    router_mac: str = "02:00:00:00:{x}:01"
    """Template of the subnet router's MAC; `{x}` is the subnet's third octet in hex."""
    subnets: list[SubnetSpec] = Field(min_length=1)
    route_tables: dict[str, list[RouteSpec]] = Field(default_factory=dict)
    nat_gateways: list[NatGatewaySpec] = Field(default_factory=list)
    security_groups: dict[str, Any] = Field(default_factory=dict)
    flow_logs: dict[str, Any] = Field(default_factory=dict)


class CniSpec(Spec):
    name: Literal["amazon-vpc-cni"] = "amazon-vpc-cni"
    version: str = "v1.19.2"
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"^v\d+\.\d+\.\d+", value):
            raise ValueError(f"{value!r} is not a VPC CNI version like v1.19.2")
        return value


class KubeProxySpec(Spec):
    version: str = "v1.31"
    mode: Literal["iptables"] = "iptables"
    cluster_cidr: str = Field("", alias="clusterCIDR")
    masquerade_bit: int = 14
    node_port_addresses: list[str] | None = None


class NodeDefaults(Spec):
    ami: Literal["al2", "al2023"] = "al2"
    instance_type: str = "m5.large"
    kernel: str = "5.10"
    iptables: Literal["legacy", "nft"] = "legacy"
    sysctls: dict[str, int | str] = Field(default_factory=dict)


class EniSpec(Spec):
    linux: str
    ifindex: int = Field(ge=2)
    id: str
    device: int = Field(ge=0)
    mac: str
    primary_ip: IPv4Address
    secondary_ips: list[IPv4Address] = Field(default_factory=list)
    prefixes: list[IPv4Network] = Field(default_factory=list)
    security_groups: list[str] = Field(default_factory=list)
    subnet: str | None = None
    """Defaults to the node's subnet (custom networking puts ENIs elsewhere)."""

    _check_mac = field_validator("mac")(_mac)


class NodeSpec(Spec):
    name: str
    talk_name: str | None = None
    subnet: str
    public_ip: IPv4Address | None = None
    instance_type: str | None = None
    iptables: Literal["legacy", "nft"] | None = None
    enis: list[EniSpec] = Field(min_length=1)


class PodPin(Spec):
    """Values the VPC CNI or the kernel would choose, fixed because a slide shows them."""

    host_veth: str | None = None
    host_veth_ifindex: int | None = Field(None, ge=2)
    host_veth_mac: str | None = None
    pod_mac: str | None = None
    pod_link_local: IPv6Address | None = None
    netns: str | None = None

    _check_macs = field_validator("host_veth_mac", "pod_mac")(
        lambda v: None if v is None else _mac(v)
    )


class PodSpec(Spec):
    namespace: str = "default"
    name: str
    talk_name: str | None = None
    node: str
    eni: str
    ip: IPv4Address
    labels: dict[str, str] = Field(default_factory=dict)
    ports: list[int] = Field(default_factory=list)
    pin: PodPin = Field(default_factory=PodPin)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class ExternalHost(Spec):
    name: str
    ip: IPv4Address
    source_port: int | None = None
    port: int | None = None


class Cluster(Spec):
    """A whole cluster spec (examples/talk.yaml is the reference)."""

    name: str
    source: str | None = None
    region: str
    account_id: str = "111122223333"
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    vpc: VpcSpec
    cni: CniSpec = Field(default_factory=CniSpec)
    kube_proxy: KubeProxySpec = Field(default_factory=KubeProxySpec)
    node_defaults: NodeDefaults = Field(default_factory=NodeDefaults)
    nodes: list[NodeSpec] = Field(min_length=1)
    pods: list[PodSpec] = Field(default_factory=list)
    services: list[dict[str, Any]] = Field(default_factory=list)
    """Compact Service specs or plain Kubernetes manifests; used by the kube-proxy issue."""
    endpoint_slices: list[dict[str, Any]] = Field(default_factory=list)
    ingresses: list[dict[str, Any]] = Field(default_factory=list)
    load_balancers: list[dict[str, Any]] = Field(default_factory=list)
    external_hosts: list[ExternalHost] = Field(default_factory=list)
    dns: list[dict[str, Any]] = Field(default_factory=list)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    _document: SourceDocument | None = PrivateAttr(default=None)

    def locate(self, error: InputError) -> InputError:
        """An error found after loading (by a controller), pointed at the spec's file and line
        through its `path`."""
        if self._document is None or error.path is None or error.source is not None:
            return error
        return self._document.error(error.path, error.message, fix=error.fix or "correct it")

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def iptables_backend(self, node: NodeSpec) -> Literal["legacy", "nft"]:
        return node.iptables or self.node_defaults.iptables

    def instance_type(self, node: NodeSpec) -> str:
        return node.instance_type or self.node_defaults.instance_type

    def subnet(self, name: str) -> SubnetSpec:
        for subnet in self.vpc.subnets:
            if subnet.name == name:
                return subnet
        raise KeyError(name)

    def router_mac(self, subnet: SubnetSpec) -> str:
        if subnet.router_mac is not None:
            return subnet.router_mac
        octet = int(subnet.cidr.network_address.packed[2])
        return self.vpc.router_mac.replace("{x}", f"{octet:02x}")
