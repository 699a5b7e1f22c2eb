"""The declarative cluster: what the user (or the demo) says exists.

Validated, immutable intent: the VPC and its subnets, nodes with their ENIs, pods, the VPC CNI and
kube-proxy settings, and the Kubernetes objects later controllers use (Services, EndpointSlices,
Ingresses, load balancers). Field names are the YAML's (camelCase); each model forbids unknown
fields so a typo is an error, not a silently ignored setting. Cross-object checks (overlaps,
ownership, limits) live in `model.validate`, which knows where each value came from.

Values are strict wherever YAML or pydantic's coercion would print an impossible value as if it
were real: integers are never booleans, floats or text (`ifindex: true` is not 1), addresses are
written as text (the YAML integer 10 is not 0.0.0.10), and every name and id follows the rules
of the system that owns it: interface names the kernel's `dev_valid_name`, namespace pins
iproute2's netns names, node, pod and namespace names Kubernetes' DNS-1123 rules, ENI and VPC
ids AWS's shape, MACs unicast and not zero, ifindexes the kernel's positive int, CIDRs AWS's
/16-/28 and prefixes its /28. Each check raises `invalid(message, fix)`, so the one error line
carries its own fix.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    StrictBool,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from eksnet.errors import InputError
from eksnet.model.source import SourceDocument, shown

MAC_PATTERN = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
"""Six lowercase hex octets, as `ip link` prints them (matched whole, with `fullmatch`)."""

IFINDEX_MAX = 2**31 - 1
"""The kernel's ifindex is a positive `int`; 1 is always `lo`, so a device's is 2..2**31-1."""

IFNAMSIZ = 16
"""Linux interface names are at most IFNAMSIZ - 1 = 15 bytes (the last byte is the NUL)."""

NAME_MAX = 255
"""Longest file name (a network namespace is a file under /run/netns)."""

_KERNEL_SPACE = b" \t\n\v\f\r\xa0"
"""Bytes the kernel's `isspace()` accepts (lib/ctype.c: 0xA0 is a space in its Latin-1 table)."""

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL.pattern}(\.{_DNS1123_LABEL.pattern})*")


class Spec(BaseModel):
    """Base of every spec type: frozen, camelCase in YAML, unknown fields rejected."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


def invalid(message: str, fix: str) -> PydanticCustomError:
    """A validation error that carries its own fix (`load._input_error` prints it)."""
    return PydanticCustomError("eksnet", "{message}", {"message": message, "fix": fix})


def check_mac(value: str) -> str:
    """A MAC a device can have: six lowercase octets, unicast, not all zero."""
    if not MAC_PATTERN.fullmatch(value):
        raise invalid(
            f"{shown(value)} is not a MAC address like 02:00:c0:a8:01:32 (lowercase hex)",
            fix='write six lowercase hex octets separated by ":" and quote it',
        )
    if int(value[:2], 16) & 1:
        raise invalid(
            f"{value} is a multicast MAC (low bit of the first octet set); a device's MAC is "
            "unicast",
            fix=f"clear that bit, e.g. {int(value[:2], 16) & 0xFE:02x}{value[2:]}",
        )
    if value == "00:00:00:00:00:00":
        raise invalid(
            "00:00:00:00:00:00 is not a device's MAC (all zero)",
            fix="use a locally administered MAC like 02:00:c0:a8:01:32",
        )
    return value


def _router_mac_template(value: str) -> str:
    """`vpc.routerMac`: a MAC whose octets may be `{x}` (the subnet's third octet in hex). Each
    subnet's MAC is checked as a MAC in `validate`, once `{x}` is known."""
    if not MAC_PATTERN.fullmatch(value.replace("{x}", "00")):
        raise invalid(
            f"{shown(value)} is not a router MAC template like 02:00:c0:a8:{{x}}:01",
            fix="six lowercase hex octets; an octet may be {x}, the subnet's third octet",
        )
    return value


IFNAME_FIX = "at most 15 bytes, no '/', ':', '%' or whitespace, not '.' or '..' (e.g. eth1)"


def interface_name_problem(value: str) -> str | None:
    """Why the kernel would refuse `value` as an interface name, or None. The rules of its
    `dev_valid_name` (net/core/dev.c), and no `%`: the kernel reads `eth%d` as a template and
    picks the number itself, so the device would not have this name (checked with `ip link add`
    in a scratch namespace)."""
    encoded = value.encode()
    if not value:
        return "is empty"
    if len(encoded) >= IFNAMSIZ:
        return f"is {len(encoded)} bytes; Linux allows {IFNAMSIZ - 1}"
    if value in (".", ".."):
        return "is reserved"
    for char in "/:%":
        if char in value:
            return f"holds {char!r}"
    if any(byte in _KERNEL_SPACE for byte in encoded) or any(c.isspace() for c in value):
        return "holds whitespace (the kernel counts byte 0xA0 as a space too)"
    return None


def _ifname(value: str) -> str:
    problem = interface_name_problem(value)
    if problem is not None:
        raise invalid(f"interface name {shown(value)} {problem}", fix=IFNAME_FIX)
    return value


def _netns_name(value: str) -> str:
    """A name `ip netns` accepts (iproute2's `invalid_name`: a file name under /run/netns), and
    no whitespace: `ip netns list` separates its columns with spaces."""
    fix = "a file name: not empty, no '/' or whitespace, not '.' or '..', at most 255 bytes"
    if (
        not value
        or value in (".", "..")
        or "/" in value
        or any(c.isspace() for c in value)
        or len(value.encode()) > NAME_MAX
    ):
        raise invalid(f"{shown(value)} is not a network namespace name", fix=fix)
    return value


def _dns1123_subdomain(what: str) -> Any:
    def check(value: str) -> str:
        if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
            raise invalid(
                f"{what} is empty"
                if not value
                else f"{what} {shown(value)} is not a valid Kubernetes name (DNS-1123 subdomain)",
                fix="lowercase letters, digits, '-' and '.', starting and ending with a letter "
                "or digit, at most 253 characters",
            )
        return value

    return AfterValidator(check)


def _dns1123_label(what: str) -> Any:
    def check(value: str) -> str:
        if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
            raise invalid(
                f"{what} is empty"
                if not value
                else f"{what} {shown(value)} is not a valid Kubernetes name (DNS-1123 label)",
                fix="lowercase letters, digits and '-', starting and ending with a letter or "
                "digit, at most 63 characters",
            )
        return value

    return AfterValidator(check)


def _pattern(regex: str, what: str, example: str) -> Any:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise invalid(f"{shown(value)} is not {what}", fix=f"write it like {example}")
        return value

    return AfterValidator(check)


def _pattern_or_int(regex: str, what: str, example: str) -> Any:
    """A value YAML may give as text or as a plain integer (`protocol: 6`), kept as text."""
    compiled = re.compile(regex)

    def check(value: object) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise invalid(f"{shown(value)} is not {what}", fix=f"write one of: {example}")
        return value

    return BeforeValidator(check)


def _name(value: str) -> str:
    """A name the spec uses to refer to something (subnet, route table, group, AZ …)."""
    if not value or any(c.isspace() for c in value):
        raise invalid(
            f"{shown(value)} is not a name" + (" (empty)" if not value else " (whitespace)"),
            fix="write a non-empty name without spaces",
        )
    return value


def _text_only(what: str, example: str) -> Any:
    """Addresses come as text: pydantic would turn the YAML integer 10 into 0.0.0.10."""

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise invalid(
                f"{what} must be written as text, not {type(value).__name__} {shown(value)}",
                fix=f"write {what} like {example}",
            )
        return value

    return BeforeValidator(check)


def _block_size(value: IPv4Network) -> IPv4Network:
    """AWS: VPC and subnet IPv4 CIDRs are between /16 and /28."""
    if not 16 <= value.prefixlen <= 28:
        raise invalid(
            f"{value} is a /{value.prefixlen}; AWS allows VPC and subnet CIDRs from /16 to /28",
            fix="use a prefix length between 16 and 28",
        )
    return value


def _prefix28(value: IPv4Network) -> IPv4Network:
    """Prefix delegation assigns /28s to an ENI, nothing else (vpc-cni.md §3.1)."""
    if value.prefixlen != 28:
        raise invalid(
            f"{value} is a /{value.prefixlen}; ENI prefixes are /28s (prefix delegation)",
            fix=f"write a /28 like {value.network_address}/28",
        )
    return value


def _link_local(value: IPv6Address) -> IPv6Address:
    if not value.is_link_local:
        raise invalid(
            f"{value} is not an IPv6 link-local address", fix="write an fe80::/10 address"
        )
    return value


def _label(value: str) -> str:
    """A talk name labels a node or pod in printed walks: one line."""
    if any(char in value for char in "\t\n\r"):
        raise invalid(f"{shown(value)} is not one line", fix="write the label on one line")
    return value


Name = Annotated[str, AfterValidator(_name)]
Label = Annotated[str, AfterValidator(_label)]
IPv4 = Annotated[IPv4Address, _text_only("an IPv4 address", "192.168.1.50")]
IPv4Net = Annotated[IPv4Network, _text_only("a CIDR", "192.168.1.0/24")]
IPv6 = Annotated[IPv6Address, _text_only("an IPv6 address", "fe80::1")]
BlockCidr = Annotated[IPv4Net, AfterValidator(_block_size)]
Prefix28 = Annotated[IPv4Net, AfterValidator(_prefix28)]
Mac = Annotated[str, AfterValidator(check_mac)]
IfName = Annotated[str, AfterValidator(_ifname)]
NetnsName = Annotated[str, AfterValidator(_netns_name)]
Ifindex = Annotated[int, Strict(), Field(ge=2, le=IFINDEX_MAX)]
"""A device's ifindex: never a bool or 2.0, never 1 (`lo`), never past the kernel's int."""
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
NodeName = Annotated[str, _dns1123_subdomain("node name")]
PodName = Annotated[str, _dns1123_subdomain("pod name")]
NamespaceName = Annotated[str, _dns1123_label("namespace")]
EniId = Annotated[str, _pattern(r"eni-[0-9a-f]+", "an ENI id", "eni-01a00000000000050")]
VpcId = Annotated[str, _pattern(r"vpc-[0-9a-z]+", "a VPC id", "vpc-0a11c0ffee0000001")]
"""Real VPC ids are hex; lowercase letters are allowed so a documentation example may say
`vpc-example`."""
AccountId = Annotated[str, _pattern(r"[0-9]{12}", "an AWS account id", '"111122223333"')]


class Kubernetes(Spec):
    version: str = "1.31"
    service_cidr: IPv4Net | None = None
    service_node_port_range: Annotated[
        str, _pattern(r"\d+-\d+", "a port range", '"30000-32767"')
    ] = "30000-32767"
    """The API server's `--service-node-port-range`: every nodePort and healthCheckNodePort
    lies in it."""

    def node_port_range(self) -> tuple[int, int]:
        low, high = self.service_node_port_range.split("-")
        return int(low), int(high)


class SubnetSpec(Spec):
    name: Name
    az: Name
    cidr: BlockCidr
    route_table: Name
    map_public_ip: StrictBool = False
    tags: dict[str, str] = Field(default_factory=dict)
    router_mac: Mac | None = None
    az_id: Annotated[str, _pattern(r"[a-z]{2,5}[0-9]-az[0-9]+", "an AZ id", "euw2-az2")] | None = (
        None
    )
    """The zone's id (`DescribeSubnets` `AvailabilityZoneId`): flow logs' `az-id`."""
    variant: str | list[str] | None = None
    """Present only when one of these variants is selected (`--variant NAME`)."""


PrefixListId = Annotated[str, _pattern(r"pl-[0-9a-f]+", "a prefix list id", "pl-0a11c0ffee0000001")]


class RouteSpec(Spec):
    dst: IPv4Net | PrefixListId
    """A CIDR, or a prefix list (`DestinationPrefixListId`) declared in `vpc.prefixLists`."""
    target: Name


class NatGatewaySpec(Spec):
    id: Name
    subnet: Name
    private_ip: IPv4
    public_ip: IPv4 | None = None
    """The EIP of a public NAT gateway; a private one has none."""
    connectivity: Literal["public", "private"] = "public"
    eni: EniId
    """Its network interface (`NatGatewayAddresses[].NetworkInterfaceId`)."""
    mac: Mac | None = None
    """Its ENI's MAC; AWS picks one, the lab needs one: by default `02:00:` and the private
    IPv4's four octets."""
    variant: str | list[str] | None = None


Protocol = Annotated[
    str,
    _pattern_or_int(
        r"all|tcp|udp|icmp|icmpv6|sctp|-1|[0-9]{1,3}", "a protocol", "tcp, udp, icmp, all or 6"
    ),
]


class SgRuleSpec(Spec):
    """One security group rule: protocol, destination ports (`"80"`, `"1024-65535"`; for ICMP
    `"TYPE"` or `"TYPE:CODE"`), and one peer."""

    protocol: Protocol
    ports: str | int | None = None
    source: str | None = None
    destination: str | None = None
    description: str = ""


class SecurityGroupSpec(Spec):
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    inbound: list[SgRuleSpec] = Field(default_factory=list)
    outbound: list[SgRuleSpec] = Field(default_factory=list)


class NaclRuleSpec(Spec):
    """One numbered NACL entry; ports as for security groups (destination ports)."""

    rule: Annotated[int, Strict(), Field(ge=1, le=32766)]
    action: Literal["allow", "deny"]
    protocol: Protocol
    ports: str | int | None = None
    cidr: IPv4Net


class NetworkAclSpec(Spec):
    subnets: list[Name] = Field(default_factory=list)
    default: StrictBool = False
    """The VPC's default NACL: it guards every subnet no other NACL names."""
    inbound: list[NaclRuleSpec] = Field(default_factory=list)
    outbound: list[NaclRuleSpec] = Field(default_factory=list)


class FlowLogSpec(Spec):
    format: str | None = None
    """The `LogFormat` (`${version} ${account-id} …`); absent: AWS's default format."""


class VpcSpec(Spec):
    id: VpcId
    cidrs: list[BlockCidr] = Field(min_length=1)
    internet_gateway: Name | None = None
    router_mac: Annotated[str, AfterValidator(_router_mac_template)] = "02:00:00:00:{x}:01"
    """Template of the subnet router's MAC; `{x}` is the subnet's third octet in hex."""
    subnets: list[SubnetSpec] = Field(min_length=1)
    route_tables: dict[Name, list[RouteSpec]] = Field(default_factory=dict)
    nat_gateways: list[NatGatewaySpec] = Field(default_factory=list)
    security_groups: dict[Name, SecurityGroupSpec] = Field(default_factory=dict)
    """Group id → `{inbound: [rule…], outbound: [rule…]}`; peers are checked in `validate`."""
    network_acls: dict[Name, NetworkAclSpec] = Field(default_factory=dict)
    """NACL id → its subnets and numbered rules; without any, the VPC's default NACL (rule 100
    allows everything both ways) guards every subnet, as in a new VPC."""
    prefix_lists: dict[PrefixListId, list[IPv4Net]] = Field(default_factory=dict)
    flow_logs: FlowLogSpec = Field(default_factory=FlowLogSpec)


class CniSpec(Spec):
    name: Literal["amazon-vpc-cni"] = "amazon-vpc-cni"
    version: str = "v1.19.2"
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"v\d+\.\d+\.\d+", value):
            raise invalid(
                f"{shown(value)} is not a VPC CNI version like v1.19.2",
                fix="write vMAJOR.MINOR.PATCH, e.g. v1.19.2 or v1.19.2-eksbuild.1",
            )
        return value


class ObservedSpec(Spec):
    """A node's state as dumped on the node (`eksnet import` writes these): an eks-log-collector
    bundle (`.tar.gz` or its unpacked folder) or a folder of plain dumps, its path relative to
    the spec's file. What the dump shows wins over what the controllers derive
    (`importers.overlay`)."""

    node: Name
    dump: str


class LoadBalancerControllerSpec(Spec):
    """The AWS Load Balancer Controller as installed: its version and the Helm values and flags
    that change what it builds (aws-load-balancers.md §1.1, §1.3, §1.4, §1.7). A spec without
    this section has no LBC: only the in-tree controller acts (EKS installs no LBC itself)."""

    version: str = "v3.5.0"
    service_mutator_webhook: StrictBool | None = None
    """Helm `enableServiceMutatorWebhook`; absent: the chart's default, on wherever the version
    has the webhook (v2.5.0 and later)."""
    ingress_class: str = "alb"
    """Helm `ingressClass` (flag `--ingress-class`); empty: it also manages Ingresses of no
    class."""
    create_ingress_class_resource: StrictBool = True
    """Helm `createIngressClassResource`: the chart creates the IngressClass `ingressClass`
    (controller `ingress.k8s.aws/alb`, no parameters)."""
    default_target_type: Literal["instance", "ip"] = "instance"
    """Helm `defaultTargetType` (flag `--default-target-type`, v2.5.0 and later)."""
    default_load_balancer_scheme: Literal["internal", "internet-facing"] | None = None
    """Helm `defaultLoadBalancerScheme` (flag `--default-load-balancer-scheme`, v2.11.0 and
    later); absent: internal."""
    enable_backend_security_group: StrictBool = True
    """Helm `enableBackendSecurityGroup` (v2.3.0 and later): one shared backend group."""
    disable_restricted_security_group_rules: StrictBool = False
    """Helm `disableRestrictedSecurityGroupRules`: node rules open every port."""

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"v\d+\.\d+\.\d+", value):
            raise invalid(
                f"{shown(value)} is not an AWS Load Balancer Controller version like v2.13.0",
                fix="write vMAJOR.MINOR.PATCH, e.g. v2.13.0 or v3.5.0",
            )
        return value


class DetectLocal(Spec):
    """`detectLocal`: the bridge or interface prefix the local-traffic detector reads."""

    bridge_interface: str = ""
    interface_name_prefix: str = ""


class KubeProxyIptables(Spec):
    """`iptables:` of KubeProxyConfiguration."""

    masquerade_all: StrictBool | None = None
    masquerade_bit: Annotated[int, Strict(), Field(ge=0, le=31)] | None = None
    localhost_node_ports: StrictBool | None = None
    sync_period: str | None = None
    min_sync_period: str | None = None


class KubeProxyConntrack(Spec):
    """`conntrack:` of KubeProxyConfiguration: what kube-proxy writes to the conntrack sysctls
    (kube-proxy.md §8.1). Durations are Go durations (`24h0m0s`); 0 or absent leaves the
    kernel's value."""

    max_per_core: Annotated[int, Strict(), Field(ge=0)] | None = None
    min: Annotated[int, Strict(), Field(ge=0)] | None = None
    tcp_established_timeout: str | None = None
    tcp_close_wait_timeout: str | None = None
    tcp_be_liberal: StrictBool = False
    udp_timeout: str | None = None
    udp_stream_timeout: str | None = None


class KubeProxySpec(Spec):
    """kube-proxy: its version and the fields of its KubeProxyConfiguration that shape the data
    plane, with EKS's values as the defaults (kube-proxy.md §8.3: no clusterCIDR, so the no-op
    local-traffic detector; localhost NodePorts on; `nodePortAddresses: null`).

    `masqueradeBit`/`masqueradeAll` are read under `iptables:` as KubeProxyConfiguration has
    them, or at the top level (the demo's older form); both at once must agree. The other
    configuration fields an EKS ConfigMap holds (bind addresses, client connection, ipvs …) are
    accepted so it pastes in, and change no rule."""

    version: str = "v1.31"
    mode: Literal["iptables", "ipvs", "nftables", ""] = "iptables"
    cluster_cidr: str = Field("", alias="clusterCIDR")
    detect_local_mode: (
        Literal["", "ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"] | None
    ) = None
    detect_local: DetectLocal = Field(default_factory=DetectLocal)
    masquerade_bit: Annotated[int, Strict(), Field(ge=0, le=31)] | None = None
    masquerade_all: StrictBool | None = None
    node_port_addresses: list[str] | None = None
    iptables: KubeProxyIptables = Field(default_factory=KubeProxyIptables)
    conntrack: KubeProxyConntrack = Field(default_factory=KubeProxyConntrack)
    api_version: Literal["kubeproxy.config.k8s.io/v1alpha1"] | None = None
    kind: Literal["KubeProxyConfiguration"] | None = None
    bind_address: Any = None
    bind_address_hard_fail: Any = None
    client_connection: Any = None
    config_sync_period: Any = None
    enable_profiling: Any = None
    healthz_bind_address: Any = None
    hostname_override: Any = None
    ipvs: Any = None
    nftables: Any = None
    metrics_bind_address: Any = None
    oom_score_adj: Any = None
    port_range: Any = None
    udp_idle_timeout: Any = None
    feature_gates: Any = None
    logging: Any = None
    show_hidden_metrics_for_version: Any = None
    winkernel: Any = None


class ImdsSpec(Spec):
    """An instance's metadata options (`ModifyInstanceMetadataOptions`): EC2's defaults for a
    new instance are IMDSv1 allowed and a hop limit of 1."""

    http_tokens: Literal["required", "optional"] = "optional"
    hop_limit: Annotated[int, Strict(), Field(ge=1, le=64)] = 1
    """`HttpPutResponseHopLimit`: the IP TTL of IMDSv2 token responses."""


class NodeDefaults(Spec):
    ami: Literal["al2", "al2023"] = "al2"
    instance_type: str = "m5.large"
    kernel: str = "5.10"
    iptables: Literal["legacy", "nft"] = "legacy"
    iptables_version: Annotated[str, _pattern(r"\d+\.\d+\.\d+", "an iptables version", "1.8.9")] = (
        "1.8.9"
    )
    """The node's iptables binary: kube-proxy writes `--random-fully` only if it is at least
    1.6.2 (kube-proxy.md §0.1)."""
    nfacct: StrictBool = True
    """Whether the node's kernel has nfnetlink_acct, so kube-proxy can create its nfacct
    counters and write the rules that count into them (kube-proxy.md §1.3)."""
    sysctls: dict[Name, Annotated[int, Strict()] | str] = Field(default_factory=dict)
    imds: ImdsSpec = Field(default_factory=lambda: ImdsSpec())
    """The instances' metadata options, unless a node says otherwise."""


class ElasticIpSpec(Spec):
    private_ip: IPv4
    public_ip: IPv4


class EniSpec(Spec):
    linux: IfName
    ifindex: Ifindex
    id: EniId
    device: Annotated[int, Strict(), Field(ge=0)]
    """The attachment's device index; below the instance type's ENI count (`validate`)."""
    mac: Mac
    primary_ip: IPv4
    secondary_ips: list[IPv4] = Field(default_factory=list)
    prefixes: list[Prefix28] = Field(default_factory=list)
    security_groups: list[Name] = Field(default_factory=list)
    subnet: Name | None = None
    """Defaults to the node's subnet (custom networking puts ENIs elsewhere)."""
    elastic_ips: list[ElasticIpSpec] = Field(default_factory=list)
    """Elastic IPs associated with private addresses of this ENI (any of them, secondary ones
    too: vpc-fabric.md §4)."""


class NodeSpec(Spec):
    name: NodeName
    talk_name: Label | None = None
    subnet: Name
    public_ip: IPv4 | None = None
    instance_type: str | None = None
    iptables: Literal["legacy", "nft"] | None = None
    pod_cidrs: list[IPv4Net] = Field(default_factory=list, alias="podCIDRs")
    """The Node's `spec.podCIDRs` (the NodeCIDR local-traffic detector reads the first)."""
    instance_id: (
        Annotated[str, _pattern(r"i-[0-9a-f]+", "an instance id", "i-0a11c0ffee0000050")] | None
    ) = None
    imds: ImdsSpec | None = None
    """This instance's metadata options (default: `nodeDefaults.imds`)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """The Node's labels (the load balancer controllers read
    `node.kubernetes.io/exclude-from-external-load-balancers`)."""
    enis: list[EniSpec] = Field(min_length=1)


class PodPin(Spec):
    """Values the VPC CNI or the kernel would choose, fixed because a slide shows them."""

    host_veth: IfName | None = None
    host_veth_ifindex: Ifindex | None = None
    host_veth_mac: Mac | None = None
    pod_mac: Mac | None = None
    pod_link_local: Annotated[IPv6, AfterValidator(_link_local)] | None = None
    netns: NetnsName | None = None


class PodPort(Spec):
    """A named container port (`spec.containers[].ports[]`)."""

    name: str | None = None
    container_port: Port
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class PodSpec(Spec):
    namespace: NamespaceName = "default"
    name: PodName
    talk_name: Label | None = None
    node: str
    eni: str
    ip: IPv4
    labels: dict[str, str] = Field(default_factory=dict)
    ports: list[Port | PodPort] = Field(default_factory=list)
    """Container ports: a number, or `{name, containerPort, protocol}` (a Service's named
    targetPort resolves through the name)."""
    ready: StrictBool = True
    """The pod's Ready condition: a pod that is not ready is a not-ready endpoint."""
    terminating: StrictBool = False
    """The pod is being deleted (its endpoints are terminating; serving while still ready)."""
    pin: PodPin = Field(default_factory=PodPin)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class ExternalHost(Spec):
    name: Name
    ip: IPv4
    source_port: Port | None = None
    port: Port | None = None


# Services and EndpointSlices are typed in their own module, which builds on the types above.
from eksnet.model.kubernetes import (  # noqa: E402
    EndpointSliceManifest,
    KubeEndpointSlice,
    KubeService,
    ServiceEntry,
    normalize_service,
    normalize_slice,
)


class Cluster(Spec):
    """A whole cluster spec (examples/talk.yaml is the reference)."""

    name: Name
    source: str | None = None
    region: Name
    account_id: AccountId = "111122223333"
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    vpc: VpcSpec
    cni: CniSpec = Field(default_factory=CniSpec)
    kube_proxy: KubeProxySpec = Field(default_factory=KubeProxySpec)
    node_defaults: NodeDefaults = Field(default_factory=NodeDefaults)
    nodes: list[NodeSpec] = Field(min_length=1)
    pods: list[PodSpec] = Field(default_factory=list)
    services: list[ServiceEntry] = Field(default_factory=list)
    """Service manifests (`kubectl get svc -o yaml`) or the demo's shorthand
    (`model.kubernetes`)."""
    endpoint_slices: list[EndpointSliceManifest] = Field(default_factory=list)
    """EndpointSlice manifests; a Service with a selector and none gets them derived from the
    pods (`controllers.endpoint_slices`)."""
    ingresses: list[dict[str, Any]] = Field(default_factory=list)
    ingress_classes: list[dict[str, Any]] = Field(default_factory=list)
    """IngressClass manifests (`kubectl get ingressclasses -o yaml`), beside the one the LBC's
    chart creates (`loadBalancerController.createIngressClassResource`)."""
    ingress_class_params: list[dict[str, Any]] = Field(default_factory=list)
    """IngressClassParams manifests (`elbv2.k8s.aws/v1beta1`) an IngressClass may name."""
    load_balancer_controller: LoadBalancerControllerSpec | None = None
    observed: list[ObservedSpec] = Field(default_factory=list)
    """Nodes whose state comes from dumps taken on them."""
    load_balancers: list[dict[str, Any]] = Field(default_factory=list)
    external_hosts: list[ExternalHost] = Field(default_factory=list)
    dns: list[dict[str, Any]] = Field(default_factory=list)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    _document: SourceDocument | None = PrivateAttr(default=None)
    _others: tuple[tuple[str | None, Cluster], ...] = PrivateAttr(default=())

    def other_configurations(self) -> tuple[tuple[str | None, Cluster], ...]:
        """The spec's other declared configurations (`None`: no variant; else a variant's
        name), each validated at load. The controllers build them too, so that a variant broken
        in a way only they can see is reported whichever variant is selected."""
        return self._others

    def locate(self, error: InputError) -> InputError:
        """An error found after loading (by a controller), pointed at the spec's file and line
        through its `path`."""
        if self._document is None or error.path is None or error.source is not None:
            return error
        return self._document.error(error.path, error.message, fix=error.fix or "correct it")

    def kube_services(self) -> tuple[KubeService, ...]:
        """The Services with the API server's defaults applied (`model.kubernetes`)."""
        return tuple(normalize_service(entry, index) for index, entry in enumerate(self.services))

    def kube_endpoint_slices(self) -> tuple[KubeEndpointSlice, ...]:
        """The spec's IPv4 EndpointSlices (kube-proxy's IPv4 proxier reads no other)."""
        return tuple(
            normalize_slice(entry, index)
            for index, entry in enumerate(self.endpoint_slices)
            if entry.address_type == "IPv4"
        )

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
