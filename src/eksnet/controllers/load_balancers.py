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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from eksnet.controllers.endpoint_slices import SliceSource, port_endpoints
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
from eksnet.dataplane.state import Eni, PublicIp
from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import Cluster
from eksnet.model.kubernetes import KubePort, KubeService

SERVICE = "service.beta.kubernetes.io/"
ALB = "alb.ingress.kubernetes.io/"
LBC_CLASS = "service.k8s.aws/nlb"
INGRESS_CLASS = "alb"

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


def controller_for(
    service: KubeService, load_balancer_class: str | None
) -> tuple[Controller | None, LbKind | None, TargetType | None]:
    """Who reconciles a LoadBalancer Service and what it builds (§1.1's table); (None, None,
    None) when nobody does."""
    annotations = dict(service.annotations)
    kind = annotations.get(f"{SERVICE}aws-load-balancer-type")
    target = annotations.get(f"{SERVICE}aws-load-balancer-nlb-target-type")
    if load_balancer_class is not None:
        if load_balancer_class != LBC_CLASS:
            return None, None, None
        return "lbc", "nlb", "ip" if kind == "nlb-ip" or target == "ip" else "instance"
    if kind == "nlb-ip":
        return "lbc", "nlb", "ip"
    if kind == "external":
        if target in ("ip", "instance"):
            return "lbc", "nlb", target  # type: ignore[return-value]
        return None, None, None  # gotcha 1: nobody acts
    if kind == "nlb":
        return "in-tree", "nlb", "instance"
    return "in-tree", "clb", "instance"


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
    source = SliceSource(cluster)
    allocator = Allocator(cluster, pins)
    built: list[LoadBalancer] = []
    services = cluster.kube_services()
    by_key = {service.key: service for service in services}
    for service in services:
        if service.type != "LoadBalancer":
            continue
        pin = pins.get(("service", service.namespace, service.name)) or _UNPINNED
        balancer = _for_service(cluster, service, pin, source, allocator)
        if balancer is not None:
            built.append(balancer)
    for ingress in cluster.ingresses:
        meta = ingress.get("metadata", {})
        key = ("ingress", meta.get("namespace", "default"), meta.get("name", ""))
        pin = pins.get(key) or _UNPINNED
        if ingress_class(ingress) == INGRESS_CLASS:
            built.append(_for_ingress(cluster, ingress, pin, source, by_key, allocator))
    enis: list[Eni] = []
    public: list[PublicIp] = []
    for balancer in built:
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
    return Built(tuple(built), tuple(enis), tuple(public))


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
    allocator: Allocator | None = None,
) -> LoadBalancer | None:
    owner = f"service/{service.key}"
    controller, kind, target_type = controller_for(service, service.load_balancer_class)
    if controller is None or kind is None or target_type is None:
        return None
    _check_kind(pin, kind, owner)
    annotations = dict(service.annotations)
    if controller == "in-tree":
        scheme: Scheme = (
            "internal"
            if _truthy_internal(annotations.get(f"{SERVICE}aws-load-balancer-internal"))
            else "internet-facing"
        )
    else:
        wanted = annotations.get(f"{SERVICE}aws-load-balancer-scheme")
        scheme = "internet-facing" if wanted == "internet-facing" else "internal"
    name = pin.name or _name(controller, cluster, service.namespace, service.name, scheme)
    local = service.external_traffic_policy == "Local"
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
                check = HealthCheck(
                    check.protocol,
                    service.health_check_node_port,
                    check.path,
                    check.interval,
                    check.timeout,
                    check.healthy_threshold,
                    check.unhealthy_threshold,
                    check.matcher,
                )
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
        cross_zone=False,  # NLB: AWS's default; CLB: CPA sets it false (§1.2, §1.3)
        security_groups=pin.security_groups,
        proxy_protocol=annotations.get(f"{SERVICE}aws-load-balancer-proxy-protocol") == "*",
    )


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
    pin: _Pin,
    source: SliceSource,
    services: Mapping[str, KubeService],
    allocator: Allocator | None = None,
) -> LoadBalancer:
    meta = ingress.get("metadata", {})
    namespace, name = meta.get("namespace", "default"), meta.get("name", "")
    owner = f"ingress/{namespace}/{name}"
    _check_kind(pin, "alb", owner)
    annotations: dict[str, str] = meta.get("annotations", {}) or {}
    for key in annotations:
        if key.startswith(ALB) and key[len(ALB) :] not in KNOWN_INGRESS_ANNOTATIONS:
            raise NotModelled(f"{owner}: the annotation {key}")
    if "group.name" in [k[len(ALB) :] for k in annotations]:
        raise NotModelled(f"{owner}: Ingress groups (alb.ingress.kubernetes.io/group.name)")
    if annotations.get(f"{ALB}listen-ports", '[{"HTTP":80}]').replace(" ", "") != '[{"HTTP":80}]':
        raise NotModelled(f"{owner}: listen-ports other than HTTP:80")
    scheme: Scheme = (
        "internet-facing" if annotations.get(f"{ALB}scheme") == "internet-facing" else "internal"
    )
    target_type: TargetType = "ip" if annotations.get(f"{ALB}target-type") == "ip" else "instance"
    groups: dict[str, TargetGroup] = {}
    rules: list[ListenerRule] = []
    for priority, item in enumerate(_ingress_paths(ingress), start=1):
        service = services[f"{namespace}/{item.service}"]
        port = next((p for p in service.ports if p.port == item.port), None)
        if port is None:
            raise InputError(f"{owner}: service {item.service} has no port {item.port}")
        group_id = f"{namespace}/{name}-{item.service}:{item.port}"
        if group_id not in groups:
            if target_type == "ip":
                targets = _ip_targets(cluster, service, port, source)
                tg_port = port.target_port if isinstance(port.target_port, int) else 1
            else:
                if port.node_port is None:
                    raise NotModelled(
                        f"{owner}: instance targets need a NodePort Service; "
                        f"{item.service} has none"
                    )
                targets = _node_targets(cluster, port.node_port, "lbc")
                tg_port = port.node_port
            groups[group_id] = TargetGroup(
                id=group_id,
                name=_k8s_name(namespace, item.service, group_id),
                target_type=target_type,
                protocol="HTTP",
                port=int(tg_port),
                targets=targets,
                health_check=LBC_ALB,
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


def ingress_class(ingress: Mapping[str, Any]) -> str | None:
    """§1.4: the annotation `kubernetes.io/ingress.class` wins, else `spec.ingressClassName`.
    The LBC manages the class `alb` (its flag `--ingress-class`; an IngressClass naming the
    controller `ingress.k8s.aws/alb` is assumed for it, the spec holds no IngressClass
    objects); an Ingress of another class, or of none, gets no ALB."""
    annotations = ingress.get("metadata", {}).get("annotations", {}) or {}
    chosen = annotations.get("kubernetes.io/ingress.class")
    chosen = chosen or ingress.get("spec", {}).get("ingressClassName")
    return str(chosen) if chosen is not None else None


KNOWN_INGRESS_ANNOTATIONS = frozenset({"scheme", "target-type", "listen-ports"})
"""The `alb.ingress.kubernetes.io/` annotations honoured; any other is reported not modelled,
never silently ignored."""


def dns_records(cluster: Cluster) -> tuple[DnsRecord, ...]:
    return tuple(
        DnsRecord(
            str(entry.get("name", "")),
            tuple(IPv4Address(a) for a in entry.get("answers", [])),
            entry.get("alias"),
        )
        for entry in cluster.dns
    )
