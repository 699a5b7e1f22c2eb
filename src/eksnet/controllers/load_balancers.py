"""The AWS load balancer controllers: from Services of type LoadBalancer and Ingresses to load
balancers, as the legacy in-tree controller (cloud-provider-aws, "CPA") and the AWS Load
Balancer Controller ("LBC") build them (aws-load-balancers.md §1).

Which controller acts is §1.1's table (`controller_for`); what it builds is §1.2 (CPA: a CLB by
default, an NLB with instance targets for `aws-load-balancer-type: nlb`), §1.3 (LBC: an NLB,
instance or ip targets) and §1.4 (LBC: an ALB per Ingress group, its listener rules in LBC's
order). The load balancer's nodes (one per AZ, its ENI, private and public IP) are pinned in
the spec's `loadBalancers:` where it knows them (AWS allocates them); where it does not, they
are found as the controller finds its subnets (§1.5) and given the highest free address there,
with no public address (`Allocator`). Everything else is derived here.

Names need the objects' UIDs, which a spec does not hold: the in-tree name is `a` + 31 hex
characters of a hash of `NS/NAME`, the LBC's `k8s-<ns8>-<name8>-<10 hex>` of a hash of cluster,
`NS/NAME` and scheme, the DNS names follow §1.8. They are stable and have AWS's shape, not its
values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from eksnet.controllers.endpoint_slices import SliceSource, port_endpoints
from eksnet.controllers.lb_security_groups import SgInputs, plan
from eksnet.controllers.lbc_version import INGRESS_CLASS_CONTROLLER, LbcSettings, settings
from eksnet.dataplane.load_balancers import (
    Controller,
    DnsRecord,
    HealthCheck,
    LbKind,
    LbNode,
    Listener,
    ListenerRule,
    LoadBalancer,
    Scheme,
    Target,
    TargetGroup,
    TargetType,
)
from eksnet.dataplane.security import SecurityGroup, SgRule
from eksnet.dataplane.state import Eni, PublicIp
from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import Cluster
from eksnet.model.kubernetes import KubePort, KubeService

SERVICE = "service.beta.kubernetes.io/"
ALB = "alb.ingress.kubernetes.io/"
LBC_CLASS = "service.k8s.aws/nlb"

# Health checks as each builder sets them (aws-load-balancers.md §1.2, §1.6): the data is the
# spec's table, one row per (builder, case).
CPA_NLB_CLUSTER = HealthCheck("TCP", None, None, 30, None, 3, 3)
CPA_NLB_LOCAL = HealthCheck("HTTP", None, "/healthz", 10, None, 2, 2)
CPA_CLB_CLUSTER = HealthCheck("TCP", None, None, 10, 5, 2, 6)
CPA_CLB_LOCAL = HealthCheck("HTTP", None, "/healthz", 10, 5, 2, 6)
LBC_NLB = HealthCheck("TCP", None, None, 10, 10, 3, 3)
LBC_NLB_LOCAL = HealthCheck("HTTP", None, "/healthz", 10, 6, 2, 2, "200-399")
LBC_ALB = HealthCheck("HTTP", None, "/", 15, 5, 2, 2, "200")


@dataclass(frozen=True, slots=True)
class Built:
    """What the controllers add to the VPC: the load balancers, their ENIs and public IPs."""

    load_balancers: tuple[LoadBalancer, ...]
    enis: tuple[Eni, ...]
    public_ips: tuple[PublicIp, ...]
    unbuilt: tuple[tuple[str, str], ...] = ()
    """(owner, why no controller builds it) for each LoadBalancer Service and Ingress left
    without a load balancer."""
    security_groups: tuple[SecurityGroup, ...] = ()
    """The groups the controllers create (`lb_security_groups`)."""
    node_rules: tuple[tuple[str, tuple[SgRule, ...]], ...] = ()
    """(existing group, the rules the controllers add to it)."""


def controller_for(
    service: KubeService, load_balancer_class: str | None, lbc: LbcSettings | None
) -> tuple[Controller | None, LbKind | None, TargetType | None]:
    """Who reconciles a LoadBalancer Service and what it builds (§1.1's table); (None, None,
    None) when nobody does. `lbc` is the installed LBC (None: not installed, so its rows of
    the table build nothing)."""
    annotations = dict(service.annotations)
    kind = annotations.get(f"{SERVICE}aws-load-balancer-type")
    target = annotations.get(f"{SERVICE}aws-load-balancer-nlb-target-type")
    if load_balancer_class is not None:
        if load_balancer_class != LBC_CLASS or lbc is None:
            return None, None, None
        if kind == "nlb-ip" or target == "ip":
            return "lbc", "nlb", "ip"
        return "lbc", "nlb", "instance" if target == "instance" else lbc.default_target_type
    if kind == "nlb-ip":
        return ("lbc", "nlb", "ip") if lbc is not None else (None, None, None)
    if kind == "external":
        if target in ("ip", "instance") and lbc is not None:
            return "lbc", "nlb", target  # type: ignore[return-value]
        return None, None, None  # gotcha 1: nobody acts
    if kind == "nlb":
        return "in-tree", "nlb", "instance"
    return "in-tree", "clb", "instance"


def _why_nobody(service: KubeService, lbc: LbcSettings | None) -> str:
    """Why §1.1's table leaves a LoadBalancer Service without a load balancer."""
    klass = load_balancer_class(service, lbc)
    annotations = dict(service.annotations)
    kind = annotations.get(f"{SERVICE}aws-load-balancer-type")
    if klass is not None and klass != LBC_CLASS:
        return f"its loadBalancerClass {klass} is neither AWS controller's"
    if lbc is None:
        return (
            "only the AWS Load Balancer Controller acts on it, and the spec installs none "
            "(loadBalancerController)"
        )
    if kind == "external":
        return (
            "aws-load-balancer-type: external without aws-load-balancer-nlb-target-type: no "
            "controller acts (aws-load-balancers.md gotcha 1)"
        )
    return "no controller acts on it"


def load_balancer_class(service: KubeService, lbc: LbcSettings | None) -> str | None:
    """The Service's class as its controllers see it: the LBC's service mutator webhook gives
    a LoadBalancer Service created without one the class `service.k8s.aws/nlb` (§1.1 step 1,
    gotcha 2). A spec's Service is the object as created; one imported from a cluster already
    carries whatever class the webhook gave it."""
    if service.load_balancer_class:
        return service.load_balancer_class
    if lbc is not None and lbc.webhook and service.type == "LoadBalancer":
        return LBC_CLASS
    return None


def _hex(*parts: str, length: int) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _trim(text: str, length: int) -> str:
    return "".join(c for c in text if c.isalnum())[:length]


def _name(controller: Controller, cluster: Cluster, namespace: str, name: str, scheme: str) -> str:
    if controller == "in-tree":
        return "a" + _hex(namespace, name, length=31)
    return _k8s_name(namespace, name, cluster.name, namespace, name, scheme)


def _k8s_name(namespace: str, name: str, *hashed: str) -> str:
    """LBC's `k8s-<ns ≤8>-<name ≤8>-<10 hex>` (§1.3, §1.4)."""
    return f"k8s-{_trim(namespace, 8)}-{_trim(name, 8)}-{_hex(*hashed, length=10)}"


def dns_name(name: str, kind: LbKind, scheme: Scheme, region: str) -> str:
    """§1.8: CLB and ALB `<name>-<id>.<region>.elb.amazonaws.com`, NLB
    `<name>-<id>.elb.<region>.amazonaws.com`; `internal-` first when internal."""
    number = int(_hex(name, length=8), 16) % 10**10
    prefix = "internal-" if scheme == "internal" else ""
    if kind == "nlb":
        return f"{prefix}{name}-{_hex(name, 'id', length=16)}.elb.{region}.amazonaws.com"
    return f"{prefix}{name}-{number}.{region}.elb.amazonaws.com"


def _truthy_internal(value: str | None) -> bool:
    """CPA: `aws-load-balancer-internal` with any non-empty value but `"false"` (gotcha 3)."""
    return value is not None and value != "" and value != "false"


def build(cluster: Cluster) -> Built:
    """Every load balancer the controllers build, with its ENIs and public IPs: its nodes where
    the spec pins them, else found (`Allocator`)."""
    pins = _pins(cluster)
    lbc = settings(cluster)
    source = SliceSource(cluster)
    allocator = Allocator(cluster, pins)
    built: list[tuple[LoadBalancer, SgInputs]] = []
    unbuilt: list[tuple[str, str]] = []
    services = cluster.kube_services()
    by_key = {service.key: service for service in services}
    for service in services:
        if service.type != "LoadBalancer":
            continue
        pin = pins.get(("service", service.namespace, service.name)) or _UNPINNED
        balancer = _for_service(cluster, service, pin, source, lbc, allocator)
        if balancer is not None:
            built.append((balancer, _service_sg_inputs(service, pin)))
        else:
            unbuilt.append((f"service/{service.key}", _why_nobody(service, lbc)))
    for ingress in cluster.ingresses:
        meta = ingress.get("metadata", {})
        key = ("ingress", meta.get("namespace", "default"), meta.get("name", ""))
        pin = pins.get(key) or _UNPINNED
        served, params = classify_ingress(cluster, ingress, lbc)
        if served:
            assert lbc is not None
            built.append(
                (
                    _for_ingress(cluster, ingress, params, pin, source, by_key, lbc, allocator),
                    _ingress_sg_inputs(ingress, params, pin),
                )
            )
        else:
            why = (
                "the spec installs no AWS Load Balancer Controller (loadBalancerController)"
                if lbc is None
                else "its ingress class is not the AWS Load Balancer Controller's"
            )
            unbuilt.append(("/".join(key), why))
    groups, attached = plan(cluster, lbc, built, _target_enis(cluster))
    balancers = [replace(b, security_groups=attached[b.owner]) for b, _ in built]
    enis: list[Eni] = []
    public: list[PublicIp] = []
    for balancer in balancers:
        for node in balancer.nodes:
            enis.append(
                Eni(
                    id=node.eni,
                    subnet=node.subnet,
                    mac=_mac(node.private_ip),
                    primary_ip=node.private_ip,
                    security_groups=balancer.security_groups,
                    # requester-managed: an NLB sends with the client's address (§2.2)
                    source_dest_check=False,
                    interface_type="load_balancer",
                )
            )
            if node.public_ip is not None:
                public.append(PublicIp(node.private_ip, node.public_ip, node.eni))
    return Built(
        tuple(balancers),
        tuple(enis),
        tuple(public),
        tuple(unbuilt),
        tuple(groups.groups.values()),
        tuple((group, tuple(rules)) for group, rules in groups.node_rules.items()),
    )


def _target_enis(cluster: Cluster) -> dict[IPv4Address, tuple[str, ...]]:
    """Every address of the nodes' ENIs → that ENI's groups (a target's address finds the
    group a controller opens)."""
    found: dict[IPv4Address, tuple[str, ...]] = {}
    for node in cluster.nodes:
        for eni in node.enis:
            groups = tuple(eni.security_groups)
            for address in (eni.primary_ip, *eni.secondary_ips):
                found[address] = groups
            for prefix in eni.prefixes:
                for address in prefix:
                    found[address] = groups
    return found


def _cidrs(text: str, owner: str) -> tuple[IPv4Network, ...]:
    found: list[IPv4Network] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            found.append(IPv4Network(item))
        except ValueError:
            raise InputError(
                f"{owner}: source range {item!r} is not an IPv4 CIDR",
                fix="write CIDRs like 203.0.113.0/24, separated by commas",
            ) from None
    return tuple(found)


def _service_sg_inputs(service: KubeService, pin: _Pin) -> SgInputs:
    annotations = dict(service.annotations)
    owner = f"service/{service.key}"
    ranges = _cidrs(",".join(service.source_ranges), owner) or _cidrs(
        annotations.get(f"{SERVICE}load-balancer-source-ranges", ""), owner
    )
    return SgInputs(
        source_ranges=ranges,
        user_groups=bool(pin.security_groups),
        nlb_groups_disabled=_go_bool(
            annotations.get(f"{SERVICE}aws-load-balancer-disable-nlb-sg", "false")
        )
        is True,
        icmp_for_pmtu=annotations.get(f"{SERVICE}aws-load-balancer-enable-icmp-for-path-mtu-"
                                      "discovery") == "on",
    )  # fmt: skip


def _ingress_sg_inputs(
    ingress: Mapping[str, Any], params: Mapping[str, Any] | None, pin: _Pin
) -> SgInputs:
    """An ALB's clients: IngressClassParams' `inboundCIDRs`, else `inbound-cidrs`."""
    meta = ingress.get("metadata", {})
    owner = f"ingress/{meta.get('namespace', 'default')}/{meta.get('name', '')}"
    wanted = ((params or {}).get("spec", {}) or {}).get("inboundCIDRs")
    text = (
        ",".join(wanted)
        if wanted
        else (meta.get("annotations", {}) or {}).get(f"{ALB}inbound-cidrs", "")
    )
    return SgInputs(source_ranges=_cidrs(text, owner), user_groups=bool(pin.security_groups))


def _mac(address: IPv4Address) -> str:
    """talk-walks.md §2.7: an LB ENI's MAC follows the ENI scheme, `02:00:` + the IP in hex."""
    return "02:00:" + ":".join(f"{octet:02x}" for octet in address.packed)


@dataclass(frozen=True, slots=True)
class _Pin:
    index: int
    kind: str
    ips: Mapping[str, Sequence[str]]
    name: str | None
    security_groups: tuple[str, ...]


def _pins(cluster: Cluster) -> dict[tuple[str, str, str], _Pin]:
    found: dict[tuple[str, str, str], _Pin] = {}
    for index, entry in enumerate(cluster.load_balancers):
        kind, _, rest = str(entry.get("for", "")).partition("/")
        namespace, _, name = rest.rpartition("/")
        found[(kind, namespace or "default", name)] = _Pin(
            index,
            str(entry.get("kind", "")),
            entry.get("ips", {}),
            entry.get("name"),
            tuple(entry.get("securityGroups", ())),
        )
    return found


_UNPINNED = _Pin(-1, "", {}, None, ())
"""What a load balancer the spec pins nothing for has: its nodes are found (`Allocator`)."""

ROLE_TAG = {
    "internet-facing": "kubernetes.io/role/elb",
    "internal": "kubernetes.io/role/internal-elb",
}
CLUSTER_TAG = "kubernetes.io/cluster/"


class Allocator:
    """The nodes of a load balancer the spec pins no addresses for: one subnet per AZ found as
    its controller finds them (aws-load-balancers.md §1.5), and in each the highest free
    address (AWS allocates them; any free one is as good, this one is stable). Such a load
    balancer has no public address: an internet-facing one is reached from the internet only
    once the spec pins it (`loadBalancers`)."""

    def __init__(self, cluster: Cluster, pins: Mapping[tuple[str, str, str], _Pin]) -> None:
        self.cluster = cluster
        self.used: set[IPv4Address] = set()
        for node in cluster.nodes:
            for eni in node.enis:
                self.used.add(eni.primary_ip)
                self.used.update(eni.secondary_ips)
        for gateway in cluster.vpc.nat_gateways:
            self.used.add(gateway.private_ip)
        for pin in pins.values():
            for addresses in pin.ips.values():
                self.used.add(IPv4Address(addresses[0]))

    def nodes(
        self, controller: Controller, kind: LbKind, scheme: Scheme, owner: str
    ) -> tuple[LbNode, ...]:
        chosen = self.subnets(controller, scheme)
        if kind == "alb" and len(chosen) < 2:
            raise InputError(
                f"{owner}: an ALB needs subnets in two AZs at least; the LBC finds "
                f"{len(chosen)} ({', '.join(s.name for s in chosen) or 'none'})",
                fix=f'tag a subnet per AZ {ROLE_TAG[scheme]}: "1", or pin the ALB under '
                "loadBalancers",
            )
        nodes = []
        for subnet in chosen:
            address = self._free(subnet.cidr)
            eni = "eni-0e1b" + "".join(f"{octet:02x}" for octet in address.packed)
            nodes.append(LbNode(subnet.az, subnet.name, eni, address, None))
        return tuple(nodes)

    def subnets(self, controller: Controller, scheme: Scheme) -> list[Any]:
        """§1.5: role-tagged subnets (LBC; then by reachability), not another cluster's, one per
        AZ: this cluster's tag first, then the lowest id; CPA: this cluster's or untagged ones,
        public for internet-facing, per AZ the role tag, then the cluster tag, then the id."""
        mine = f"{CLUSTER_TAG}{self.cluster.name}"
        role = ROLE_TAG[scheme]
        subnets = [s for s in self.cluster.vpc.subnets if s.variant is None]

        def others_only(subnet: Any) -> bool:
            tags = [t for t in subnet.tags if t.startswith(CLUSTER_TAG)]
            return bool(tags) and mine not in tags

        def public(subnet: Any) -> bool:
            routes = self.cluster.vpc.route_tables.get(subnet.route_table, [])
            return any(str(r.dst) == "0.0.0.0/0" and r.target.startswith("igw-") for r in routes)

        if controller == "lbc":
            candidates = [s for s in subnets if s.tags.get(role) in ("", "1")]
            if not candidates:
                candidates = [s for s in subnets if public(s) == (scheme == "internet-facing")]
            candidates = [s for s in candidates if not others_only(s)]

            def rank(s: Any) -> tuple[int, str]:
                return (0 if mine in s.tags else 1, s.name)
        else:
            candidates = [s for s in subnets if not others_only(s)]
            if scheme == "internet-facing":
                candidates = [s for s in candidates if public(s)]

            def rank(s: Any) -> tuple[int, str]:
                return (0 if role in s.tags else 1 if mine in s.tags else 2, s.name)

        per_zone: dict[str, Any] = {}
        for subnet in sorted(candidates, key=rank):
            per_zone.setdefault(subnet.az, subnet)
        return [per_zone[zone] for zone in sorted(per_zone)]

    def _free(self, cidr: Any) -> IPv4Address:
        # AWS keeps the first four addresses and the last of every subnet
        for value in range(int(cidr.broadcast_address) - 1, int(cidr.network_address) + 3, -1):
            address = IPv4Address(value)
            if address not in self.used:
                self.used.add(address)
                return address
        raise InputError(f"subnet {cidr} has no free address for a load balancer")


def _nodes(
    cluster: Cluster,
    pin: _Pin,
    scheme: Scheme,
    allocator: Allocator | None = None,
    controller: Controller = "lbc",
    kind: LbKind = "nlb",
    owner: str = "",
) -> tuple[LbNode, ...]:
    if not pin.ips and allocator is not None:
        return allocator.nodes(controller, kind, scheme, owner)
    nodes: list[LbNode] = []
    for az, addresses in sorted(pin.ips.items()):
        private = IPv4Address(addresses[0])
        public = IPv4Address(addresses[1]) if len(addresses) > 1 else None
        subnet = next((s for s in cluster.vpc.subnets if private in s.cidr), None)
        if subnet is None or subnet.az != az:
            raise InputError(
                f"load balancer address {private} is in no subnet of {az}",
                fix=f"pin an address of a subnet in {az}",
                path=("loadBalancers", pin.index, "ips", az),
            )
        if scheme == "internal":
            public = None
        eni = "eni-0e1b" + "".join(f"{octet:02x}" for octet in private.packed)
        nodes.append(LbNode(az, subnet.name, eni, private, public))
    return tuple(nodes)


def _check_kind(pin: _Pin, kind: LbKind, owner: str) -> None:
    if pin.kind and pin.kind != kind:
        raise InputError(
            f"{owner} gets a{'n' if kind != 'clb' else ''} {kind.upper()} from its controller, "
            f"but its loadBalancers entry says {pin.kind}",
            fix=f"write kind: {kind}",
            path=("loadBalancers", pin.index, "kind"),
        )


EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


def excluded(labels: Mapping[str, str], controller: Controller) -> bool:
    """Whether a node's labels keep it out of a load balancer's targets (gotcha 6): the LBC
    excludes it whatever the label's value, the in-tree controller unless the value parses as
    false (`strconv.ParseBool`: 0, f, F, false, FALSE, False)."""
    if EXCLUDE_LABEL not in labels:
        return False
    if controller == "lbc":
        return True
    return labels[EXCLUDE_LABEL] not in ("0", "f", "F", "false", "FALSE", "False")


def _node_targets(cluster: Cluster, port: int, controller: Controller) -> tuple[Target, ...]:
    """Instance targets: every node its controller does not exclude by label, on its primary
    ENI's primary IP (gotcha 7); where its pods run does not matter (§1.6). (Taints, readiness
    and `target-node-labels` are not modelled.)"""
    targets: list[Target] = []
    for node in cluster.nodes:
        if excluded(node.labels, controller):
            continue
        primary = next((eni for eni in node.enis if eni.device == 0), None)
        if primary is None:
            continue
        az = cluster.subnet(node.subnet).az
        targets.append(
            Target(node.instance_id or node.name, primary.primary_ip, port, az, node.name)
        )
    return tuple(targets)


def _ip_targets(
    cluster: Cluster, service: KubeService, port: KubePort, source: SliceSource
) -> tuple[Target, ...]:
    """ip targets: the port's ready endpoints (LBC `ResolvePodEndpoints`), each in its node's AZ."""
    zones = {node.name: cluster.subnet(node.subnet).az for node in cluster.nodes}
    return tuple(
        Target(
            str(endpoint.ip),
            endpoint.ip,
            endpoint.port,
            zones.get(endpoint.node or "", "all"),
            endpoint.node,
        )
        for endpoint in port_endpoints(source.slices(service), port)
        if endpoint.ready
    )


def _for_service(
    cluster: Cluster,
    service: KubeService,
    pin: _Pin,
    source: SliceSource,
    lbc: LbcSettings | None,
    allocator: Allocator | None = None,
) -> LoadBalancer | None:
    owner = f"service/{service.key}"
    controller, kind, target_type = controller_for(service, load_balancer_class(service, lbc), lbc)
    if controller is None or kind is None or target_type is None:
        return None
    _check_kind(pin, kind, owner)
    annotations = dict(service.annotations)
    _check_service_annotations(service, controller)
    if controller == "in-tree":
        scheme: Scheme = (
            "internal"
            if _truthy_internal(annotations.get(f"{SERVICE}aws-load-balancer-internal"))
            else "internet-facing"
        )
    else:
        assert lbc is not None
        scheme = _lbc_nlb_scheme(service, lbc)
    name = (
        pin.name
        or (annotations.get(f"{SERVICE}aws-load-balancer-name") if controller == "lbc" else None)
        or _name(controller, cluster, service.namespace, service.name, scheme)
    )
    local = service.external_traffic_policy == "Local"
    preserve_wanted = _target_group_attribute(service, "preserve_client_ip.enabled")
    listeners: list[Listener] = []
    groups: list[TargetGroup] = []
    for port in service.ports:
        group_id = f"{service.key}:{port.port}"
        if target_type == "ip":
            if not isinstance(port.target_port, int):
                raise NotModelled(f"{owner}: ip targets of a named targetPort")
            targets = _ip_targets(cluster, service, port, source)
            check = LBC_NLB
            preserve = port.protocol != "TCP"
            tg_port = port.target_port
        else:
            if port.node_port is None:
                raise NotModelled(f"{owner}: instance targets without a nodePort")
            targets = _node_targets(cluster, port.node_port, controller)
            tg_port = port.node_port
            preserve = True
            if kind == "clb":
                check = CPA_CLB_LOCAL if local else CPA_CLB_CLUSTER
            elif controller == "in-tree":
                check = CPA_NLB_LOCAL if local else CPA_NLB_CLUSTER
            else:
                check = LBC_NLB_LOCAL if local else LBC_NLB
            if local and check.protocol == "HTTP":
                check = replace(check, port=service.health_check_node_port)
        if controller == "lbc":
            check = _annotated_check(
                check, annotations, SERVICE + "aws-load-balancer-healthcheck-", _SERVICE_CHECK,
                lambda key: _annotation_path(service, key),
                lambda name: _named_port(service, name, target_type),
            )  # fmt: skip
            if preserve_wanted is not None:
                preserve = preserve_wanted
        counts: dict[str, int] = {}
        for endpoint in port_endpoints(source.slices(service), port):
            if endpoint.ready and endpoint.node is not None:
                counts[endpoint.node] = counts.get(endpoint.node, 0) + 1
        groups.append(
            TargetGroup(
                local_endpoints=tuple(sorted(counts.items())),
                id=group_id,
                name=_k8s_name(service.namespace, service.name, group_id),
                target_type=target_type,
                protocol=port.protocol,
                port=tg_port,
                targets=targets,
                health_check=check,
                preserve_client_ip=preserve and kind == "nlb",
                service=service.key,
                local_only=local and target_type == "instance",
            )
        )
        listeners.append(Listener(port.protocol, port.port, group_id))
    return LoadBalancer(
        name=name,
        kind=kind,
        controller=controller,
        scheme=scheme,
        owner=owner,
        dns_name=dns_name(name, kind, scheme, cluster.region),
        nodes=_nodes(cluster, pin, scheme, allocator, controller, kind, owner),
        listeners=tuple(listeners),
        target_groups=tuple(groups),
        cross_zone=_service_cross_zone(service, controller),
        security_groups=pin.security_groups,
        proxy_protocol=annotations.get(f"{SERVICE}aws-load-balancer-proxy-protocol") == "*",
    )


def _annotation_path(service: KubeService, key: str) -> tuple[str | int, ...]:
    """Where one of a Service's annotations is in the spec (a manifest keeps them under
    `metadata`)."""
    return ("services", service.index, *(("metadata",) if service.manifest else ()),
            "annotations", key)  # fmt: skip


def _lbc_nlb_scheme(service: KubeService, lbc: LbcSettings) -> Scheme:
    """§1.3: `aws-load-balancer-scheme`, then the legacy `aws-load-balancer-internal` (a bool),
    then the controller's default (the flag's; internet-facing before v2.2.0)."""
    annotations = dict(service.annotations)
    key = f"{SERVICE}aws-load-balancer-scheme"
    if key in annotations:
        value = annotations[key]
        if value not in ("internet-facing", "internal"):
            raise InputError(
                f"service {service.key}: unknown scheme {value!r}",
                fix="write internet-facing or internal",
                path=_annotation_path(service, key),
            )
        return "internet-facing" if value == "internet-facing" else "internal"
    key = f"{SERVICE}aws-load-balancer-internal"
    if key in annotations:
        internal = _go_bool(annotations[key])
        if internal is None:
            raise InputError(
                f"service {service.key}: {annotations[key]!r} is not a boolean (the LBC "
                "parses this annotation with strconv.ParseBool)",
                fix='write "true" or "false"',
                path=_annotation_path(service, key),
            )
        return "internal" if internal else "internet-facing"
    return lbc.nlb_default_scheme


def _go_bool(text: str) -> bool | None:
    """Go's `strconv.ParseBool`: what the controllers read a boolean annotation with."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None


def _attributes(text: str) -> dict[str, str]:
    """`key=value,key=value`, as the controllers read an attributes annotation."""
    found: dict[str, str] = {}
    for item in text.split(","):
        key, _, value = item.strip().partition("=")
        if key:
            found[key.strip()] = value.strip()
    return found


def _target_group_attribute(service: KubeService, name: str) -> bool | None:
    annotations = dict(service.annotations)
    key = f"{SERVICE}aws-load-balancer-target-group-attributes"
    attributes = _attributes(annotations.get(key, ""))
    for attribute in attributes:
        if attribute not in ("preserve_client_ip.enabled", "deregistration_delay.timeout_seconds"):
            raise NotModelled(f"service {service.key}: the target group attribute {attribute}")
    if name not in attributes:
        return None
    value = _go_bool(attributes[name])
    if value is None:
        raise InputError(
            f"service {service.key}: {name}={attributes[name]} is not a boolean",
            fix=f"write {name}=true or {name}=false",
            path=_annotation_path(service, key),
        )
    return value


def _service_cross_zone(service: KubeService, controller: Controller) -> bool:
    """Cross-zone load balancing: off for an NLB (AWS's default) and for the in-tree CLB (CPA
    sets it false) unless `aws-load-balancer-attributes` turns it on
    (`load_balancing.cross_zone.enabled`) or the deprecated
    `aws-load-balancer-cross-zone-load-balancing-enabled` does (§1.2, §1.3)."""
    annotations = dict(service.annotations)
    attributes = _attributes(annotations.get(f"{SERVICE}aws-load-balancer-attributes", ""))
    for attribute in attributes:
        if attribute not in ("load_balancing.cross_zone.enabled", "deletion_protection.enabled"):
            raise NotModelled(f"service {service.key}: the load balancer attribute {attribute}")
    value = attributes.get("load_balancing.cross_zone.enabled")
    if value is None:
        value = annotations.get(f"{SERVICE}aws-load-balancer-cross-zone-load-balancing-enabled")
    return value is not None and _go_bool(value) is True


SERVICE_ANNOTATIONS = frozenset(
    {
        "aws-load-balancer-type", "aws-load-balancer-nlb-target-type", "aws-load-balancer-name",
        "aws-load-balancer-scheme", "aws-load-balancer-internal",
        "aws-load-balancer-proxy-protocol", "aws-load-balancer-target-group-attributes",
        "aws-load-balancer-attributes", "aws-load-balancer-cross-zone-load-balancing-enabled",
        "load-balancer-source-ranges", "aws-load-balancer-security-groups",
        "aws-load-balancer-manage-backend-security-group-rules",
        "aws-load-balancer-disable-nlb-sg",
        "aws-load-balancer-enable-icmp-for-path-mtu-discovery",
        # no packet meets these: tags and access logs
        "aws-load-balancer-additional-resource-tags", "aws-load-balancer-access-log-enabled",
        "aws-load-balancer-access-log-s3-bucket-name",
        "aws-load-balancer-access-log-s3-bucket-prefix",
        "aws-load-balancer-access-log-emit-interval",
    }
)  # fmt: skip
"""The `service.beta.kubernetes.io/` annotations of load balancers that are honoured (or
change nothing a packet meets); any other `aws-load-balancer-*` one is reported not
modelled, never silently ignored."""
_SERVICE_CHECK = {
    "protocol": "protocol", "port": "port", "path": "path", "interval": "interval",
    "timeout": "timeout", "healthy-threshold": "healthy_threshold",
    "unhealthy-threshold": "unhealthy_threshold", "success-codes": "matcher",
}  # fmt: skip
"""The LBC's `aws-load-balancer-healthcheck-<suffix>` annotations → the check's fields."""


def _check_service_annotations(service: KubeService, controller: Controller) -> None:
    for key, _ in service.annotations:
        if not key.startswith(SERVICE):
            continue
        suffix = key[len(SERVICE) :]
        if suffix.startswith("aws-load-balancer-healthcheck-"):
            if controller == "in-tree":
                raise NotModelled(f"service {service.key}: {key} read by the in-tree controller")
            if suffix[len("aws-load-balancer-healthcheck-") :] not in _SERVICE_CHECK:
                raise NotModelled(f"service {service.key}: the annotation {key}")
            continue
        if (
            suffix.startswith(("aws-load-balancer-", "load-balancer-"))
            and suffix not in SERVICE_ANNOTATIONS
        ):
            raise NotModelled(f"service {service.key}: the annotation {key}")


def _named_port(service: KubeService, name: str, target_type: TargetType) -> int | None:
    """A health-check port given by a Service port's name: its nodePort (instance) or its
    numeric targetPort (ip) (§1.6)."""
    port = next((p for p in service.ports if p.name == name), None)
    if port is None:
        return None
    chosen = port.node_port if target_type == "instance" else port.target_port
    return chosen if isinstance(chosen, int) else None


def _annotated_check(
    check: HealthCheck,
    annotations: Mapping[str, str],
    prefix: str,
    fields: Mapping[str, str],
    path: Callable[[str], tuple[str | int, ...]],
    named_port: Callable[[str], int | None],
    http_matcher: str = "200-399",
) -> HealthCheck:
    """A health check with its annotations applied (LBC: `…healthcheck-<field>`), each value
    checked as the controller checks it."""
    changes: dict[str, Any] = {}
    for suffix, field_name in fields.items():
        key = prefix + suffix
        if key not in annotations:
            continue
        value = annotations[key].strip()
        if field_name == "protocol":
            upper = value.upper()
            if upper == "HTTPS":
                raise NotModelled(f"{key}: HTTPS health checks")
            if upper not in ("TCP", "HTTP"):
                raise InputError(f"{key}: unknown protocol {value!r}", fix="write TCP or HTTP",
                                 path=path(key))  # fmt: skip
            changes["protocol"] = upper
        elif field_name == "port":
            if value == "traffic-port":
                changes["port"] = None
            elif value.isdigit():
                changes["port"] = int(value)
            else:
                number = named_port(value)
                if number is None:
                    raise InputError(
                        f"{key}: {value!r} is neither traffic-port, a number nor a port's name",
                        fix="write traffic-port, a port number or a Service port's name",
                        path=path(key),
                    )
                changes["port"] = number
        elif field_name in ("path", "matcher"):
            changes[field_name] = value
        else:
            if not value.isdigit():
                raise InputError(
                    f"{key}: {value!r} is not a whole number",
                    fix="write a number of seconds or a count",
                    path=path(key),
                )
            changes[field_name] = int(value)
    updated = replace(check, **changes)
    if updated.protocol == "TCP":
        updated = replace(updated, path=None, matcher=None)
    else:
        updated = replace(
            updated, path=updated.path or "/", matcher=updated.matcher or http_matcher
        )
    return updated


# --- Ingress → ALB -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Path:
    host: str | None
    path: str | None
    path_type: str
    service: str
    port: int
    order: int


def _ingress_paths(ingress: Mapping[str, Any]) -> list[_Path]:
    """The Ingress's paths in LBC's order (§1.4 step 1): per rule in manifest order, `Exact`
    first, then `Prefix` longest first (stable), then the rest in manifest order."""
    found: list[_Path] = []
    for rule in ingress.get("spec", {}).get("rules", []) or []:
        host = rule.get("host")
        paths = []
        for order, entry in enumerate(rule.get("http", {}).get("paths", []) or []):
            backend = entry.get("backend", {}).get("service", {})
            number = backend.get("port", {}).get("number")
            if number is None:
                raise NotModelled("an Ingress backend port by name")
            paths.append(
                _Path(host, entry.get("path"), entry.get("pathType", "ImplementationSpecific"),
                      backend.get("name", ""), int(number), order)
            )  # fmt: skip
        exact = [p for p in paths if p.path_type == "Exact"]
        prefix = sorted(
            (p for p in paths if p.path_type == "Prefix"), key=lambda p: -len(p.path or "")
        )
        rest = [p for p in paths if p.path_type not in ("Exact", "Prefix")]
        found += exact + prefix + rest
    return found


def path_patterns(path: str | None, path_type: str) -> tuple[str, ...]:
    """§1.4 step 2: `Exact /p` → `/p`; `Prefix /` → `/*`; `Prefix /p` → `/p`, `/p/*`;
    `ImplementationSpecific /p` → `/p` as an ALB glob."""
    if path is None:
        return ()
    if "*" in path and path_type in ("Exact", "Prefix"):
        raise InputError(f"Ingress path {path!r}: wildcards are not allowed in {path_type} paths")
    if path_type == "Prefix":
        if path == "/":
            return ("/*",)
        stem = path.rstrip("/")
        return (stem, f"{stem}/*")
    return (path,)


def _for_ingress(
    cluster: Cluster,
    ingress: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    pin: _Pin,
    source: SliceSource,
    services: Mapping[str, KubeService],
    lbc: LbcSettings,
    allocator: Allocator | None = None,
) -> LoadBalancer:
    meta = ingress.get("metadata", {})
    namespace, name = meta.get("namespace", "default"), meta.get("name", "")
    owner = f"ingress/{namespace}/{name}"
    index = _ingress_index(cluster, ingress)
    _check_kind(pin, "alb", owner)
    annotations: dict[str, str] = meta.get("annotations", {}) or {}
    for key in annotations:
        if key.startswith(ALB) and key[len(ALB) :] not in INGRESS_ANNOTATIONS:
            raise NotModelled(f"{owner}: the annotation {key}")
    spec = (params or {}).get("spec", {}) or {}
    for key in spec:
        if key not in CLASS_PARAMS:
            raise NotModelled(f"IngressClassParams {params_name(params)}: spec.{key}")
    if annotations.get(f"{ALB}listen-ports", '[{"HTTP":80}]').replace(" ", "") != '[{"HTTP":80}]':
        raise NotModelled(f"{owner}: listen-ports other than HTTP:80")
    scheme = _alb_scheme(owner, annotations, spec, lbc, index)
    groups: dict[str, TargetGroup] = {}
    rules: list[ListenerRule] = []
    for priority, item in enumerate(_ingress_paths(ingress), start=1):
        service = services[f"{namespace}/{item.service}"]
        port = next((p for p in service.ports if p.port == item.port), None)
        if port is None:
            raise InputError(f"{owner}: service {item.service} has no port {item.port}")
        group_id = f"{namespace}/{name}-{item.service}:{item.port}"
        if group_id in groups:
            rules.append(
                ListenerRule(priority, item.host, path_patterns(item.path, item.path_type),
                             group_id)
            )  # fmt: skip
            continue
        # backend settings: the Service's annotations beat the Ingress's (§1.4)
        merged = {**annotations, **{k: v for k, v in service.annotations if k.startswith(ALB)}}
        target_type = _alb_target_type(owner, merged, spec, lbc, index)
        if target_type == "ip":
            targets = _ip_targets(cluster, service, port, source)
            tg_port = port.target_port if isinstance(port.target_port, int) else 1
        else:
            if port.node_port is None:
                raise NotModelled(
                    f"{owner}: instance targets need a NodePort Service; {item.service} has none"
                )
            targets = _node_targets(cluster, port.node_port, "lbc")
            tg_port = port.node_port
        check = _annotated_check(
            LBC_ALB, merged, ALB, _INGRESS_CHECK,
            lambda key: ("ingresses", index, "metadata", "annotations", key),
            lambda port_name: _named_port(service, port_name, target_type),  # noqa: B023
            http_matcher="200",
        )  # fmt: skip
        groups[group_id] = TargetGroup(
            id=group_id,
            name=_k8s_name(namespace, item.service, group_id),
            target_type=target_type,
            protocol="HTTP",
            port=int(tg_port),
            targets=targets,
            health_check=check,
            preserve_client_ip=False,
            service=service.key,
        )
        rules.append(
            ListenerRule(priority, item.host, path_patterns(item.path, item.path_type), group_id)
        )
    rules.append(ListenerRule(None, None, (), None, fixed_response=404))
    lb_name = pin.name or _name("lbc", cluster, namespace, name, scheme)
    return LoadBalancer(
        name=lb_name,
        kind="alb",
        controller="lbc",
        scheme=scheme,
        owner=owner,
        dns_name=dns_name(lb_name, "alb", scheme, cluster.region),
        nodes=_nodes(cluster, pin, scheme, allocator, "lbc", "alb", owner),
        listeners=(Listener("HTTP", 80, None, tuple(rules)),),
        target_groups=tuple(groups.values()),
        cross_zone=True,  # ALB: always on at the LB level (§2.1)
        security_groups=pin.security_groups,
    )


def _ingress_index(cluster: Cluster, ingress: Mapping[str, Any]) -> int:
    return next(i for i, entry in enumerate(cluster.ingresses) if entry is ingress)


def _alb_scheme(
    owner: str,
    annotations: Mapping[str, str],
    spec: Mapping[str, Any],
    lbc: LbcSettings,
    index: int,
) -> Scheme:
    """§1.4: IngressClassParams' `scheme` beats the annotation, which beats the default."""
    value = spec.get("scheme")
    where: tuple[str | int, ...] = ("ingressClassParams",)
    if value is None:
        value = annotations.get(f"{ALB}scheme")
        where = ("ingresses", index, "metadata", "annotations", f"{ALB}scheme")
    if value is None:
        return lbc.alb_default_scheme
    if value not in ("internet-facing", "internal"):
        raise InputError(f"{owner}: unknown scheme {value!r}",
                         fix="write internet-facing or internal", path=where)  # fmt: skip
    return "internet-facing" if value == "internet-facing" else "internal"


def _alb_target_type(
    owner: str,
    annotations: Mapping[str, str],
    spec: Mapping[str, Any],
    lbc: LbcSettings,
    index: int,
) -> TargetType:
    """§1.4: IngressClassParams' `targetType`, else the annotation (the Service's first), else
    the controller's `--default-target-type`."""
    value = spec.get("targetType") or annotations.get(f"{ALB}target-type")
    if value is None:
        return lbc.default_target_type
    if value not in ("instance", "ip"):
        raise InputError(f"{owner}: unknown targetType {value!r}", fix="write instance or ip",
                         path=("ingresses", index, "metadata", "annotations",
                               f"{ALB}target-type"))  # fmt: skip
    return "ip" if value == "ip" else "instance"


def params_name(params: Mapping[str, Any] | None) -> str:
    return str((params or {}).get("metadata", {}).get("name", ""))


def ingress_classes(cluster: Cluster, lbc: LbcSettings | None) -> dict[str, Mapping[str, Any]]:
    """The cluster's IngressClasses by name: the spec's, and the one the LBC's chart creates
    (`ingressClass`, controller `ingress.k8s.aws/alb`, no parameters) unless the spec has it."""
    found: dict[str, Mapping[str, Any]] = {}
    if lbc is not None and lbc.chart_ingress_class and lbc.ingress_class:
        found[lbc.ingress_class] = {
            "metadata": {"name": lbc.ingress_class},
            "spec": {"controller": INGRESS_CLASS_CONTROLLER},
        }
    for manifest in cluster.ingress_classes:
        found[str(manifest.get("metadata", {}).get("name", ""))] = manifest
    return found


def classify_ingress(
    cluster: Cluster, ingress: Mapping[str, Any], lbc: LbcSettings | None
) -> tuple[bool, Mapping[str, Any] | None]:
    """Whether the LBC serves an Ingress, and its IngressClassParams (LBC `classifyIngress`,
    §1.4): the annotation `kubernetes.io/ingress.class` wins and must equal `--ingress-class`
    (or be `alb` when that flag is empty); else `spec.ingressClassName`, or the IngressClass
    annotated default, must name an IngressClass whose controller is `ingress.k8s.aws/alb`;
    an Ingress of no class is served only when `--ingress-class` is empty. A class that names
    no IngressClass, or parameters that name none, is the LBC's error for that Ingress."""
    if lbc is None:
        return False, None
    meta = ingress.get("metadata", {})
    owner = f"ingress/{meta.get('namespace', 'default')}/{meta.get('name', '')}"
    index = _ingress_index(cluster, ingress)
    annotations = meta.get("annotations", {}) or {}
    if "kubernetes.io/ingress.class" in annotations:
        value = annotations["kubernetes.io/ingress.class"]
        return value == lbc.ingress_class or (lbc.ingress_class == "" and value == "alb"), None
    classes = ingress_classes(cluster, lbc)
    name = ingress.get("spec", {}).get("ingressClassName")
    if name is None:
        defaults = [
            key for key, manifest in classes.items()
            if (manifest.get("metadata", {}).get("annotations", {}) or {}).get(
                "ingressclass.kubernetes.io/is-default-class") == "true"
        ]  # fmt: skip
        if len(defaults) > 1:
            raise InputError(
                f"{owner}: multiple default IngressClasses ({', '.join(defaults)}): the LBC "
                "refuses the Ingress",
                fix="annotate one IngressClass is-default-class, or name one",
                path=("ingressClasses",),
            )
        if not defaults:
            return lbc.ingress_class == "", None
        name = defaults[0]
    chosen = classes.get(str(name))
    if chosen is None:
        raise InputError(
            f"{owner}: its IngressClass {name} does not exist, so the LBC refuses it",
            fix=f"declare IngressClass {name} under ingressClasses, or name one that exists "
            f"({', '.join(classes) or 'none'})",
            path=("ingresses", index, "spec", "ingressClassName"),
        )
    spec = chosen.get("spec", {}) or {}
    if spec.get("controller") != INGRESS_CLASS_CONTROLLER:
        return False, None
    parameters = spec.get("parameters")
    if not parameters:
        return True, None
    if parameters.get("apiGroup") != "elbv2.k8s.aws" or parameters.get("kind") != (
        "IngressClassParams"
    ):
        raise InputError(
            f"IngressClass {name} references unknown parameters",
            fix="name an IngressClassParams of apiGroup elbv2.k8s.aws",
            path=("ingressClasses",),
        )
    wanted = parameters.get("name")
    params = next((p for p in cluster.ingress_class_params if params_name(p) == wanted), None)
    if params is None:
        raise InputError(
            f"IngressClass {name} names IngressClassParams {wanted}, which does not exist, so "
            f"the LBC refuses {owner}",
            fix=f"declare IngressClassParams {wanted} under ingressClassParams",
            path=("ingressClasses",),
        )
    return True, params


INGRESS_ANNOTATIONS = frozenset(
    {
        "scheme", "target-type", "listen-ports", "inbound-cidrs",
        "healthcheck-protocol", "healthcheck-port", "healthcheck-path",
        "healthcheck-interval-seconds", "healthcheck-timeout-seconds",
        "healthy-threshold-count", "unhealthy-threshold-count", "success-codes",
        # no packet meets these: tags
        "tags",
    }
)  # fmt: skip
"""The `alb.ingress.kubernetes.io/` annotations honoured; any other (`group.name`,
`ssl-redirect`, `certificate-arn` …) is reported not modelled, never silently ignored."""
_INGRESS_CHECK = {
    "healthcheck-protocol": "protocol", "healthcheck-port": "port",
    "healthcheck-path": "path", "healthcheck-interval-seconds": "interval",
    "healthcheck-timeout-seconds": "timeout", "healthy-threshold-count": "healthy_threshold",
    "unhealthy-threshold-count": "unhealthy_threshold", "success-codes": "matcher",
}  # fmt: skip
CLASS_PARAMS = frozenset({"scheme", "targetType", "inboundCIDRs"})
"""The IngressClassParams fields honoured; any other (`group`, `namespaceSelector`,
`subnets` …) is reported not modelled."""


def dns_records(cluster: Cluster) -> tuple[DnsRecord, ...]:
    return tuple(
        DnsRecord(
            str(entry.get("name", "")),
            tuple(IPv4Address(a) for a in entry.get("answers", [])),
            entry.get("alias"),
        )
        for entry in cluster.dns
    )
