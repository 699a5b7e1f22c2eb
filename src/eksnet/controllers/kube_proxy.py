"""kube-proxy in iptables mode: from Services and their endpoints to the rules one node holds.

Follows `syncProxyRules` (kube-proxy.md §1–§5, read at @531be81) for one full sync: the fixed
chains (§1.3), then per Service port the capture rules in KUBE-SERVICES / KUBE-NODEPORTS and the
filter chains, and the per-Service chains (EXT, FW, SVC, SVL, SEP; §3.2), all in the form the
kernel prints back (`controllers.iptables_text`). Endpoints are split into cluster and local sets
as `CategorizeEndpoints` does (§3.1, topology hints included).

Real kube-proxy walks its Services in Go map order, so the order of Services inside KUBE-SERVICES
and KUBE-NODEPORTS changes between syncs. Here it is the order of kube-proxy's own test
normalizer (`sortIPTablesRules`, §9): rules stably sorted by the Service name in their comment
(up to the first space or colon), the "must be the last rule" rule last; Service ports are
generated in the order of their `namespace/name:port` names, so every other chain is
deterministic too.

`apply` replays what kube-proxy does to a node's tables (`iptables_text.Tables`): its canaries,
the jump rules it inserts at the top of the built-in chains if absent (§1.2, so they land above
kubelet's and the VPC CNI's), then the restore, whose chain lines flush and rewrite each of its
chains.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field, replace
from functools import cache
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from eksnet.controllers.endpoint_slices import Endpoint, SliceSource, port_endpoints
from eksnet.controllers.iptables_text import (
    REJECT,
    Module,
    Tables,
    XRule,
    comment_module,
    go_probability,
    mark_or,
    mark_xor,
    nfacct,
    recent_check,
    recent_set,
    statistic,
)
from eksnet.controllers.kube_proxy_version import ProxierSettings
from eksnet.model.cluster import Cluster, NodeSpec
from eksnet.model.kubernetes import KubePort, KubeService, source_range

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"

INVALID_COUNTER = "ct_state_invalid_dropped_pkts"
LOCALHOST_COUNTER = "localhost_nps_accepted_pkts"

LARGE_CLUSTER_ENDPOINTS = 1000
"""Above this many endpoints in all, kube-proxy drops the per-endpoint comments
(`largeClusterEndpointsThreshold`, kube-proxy.md §7 item 6)."""

NODEPORTS_COMMENT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"

LOCALNET_RULE = XRule(
    KUBE_FIREWALL,
    (
        comment_module("block incoming localnet connections"),
        Module("conntrack", "! --ctstate RELATED,ESTABLISHED,DNAT"),
    ),
    "DROP",
    src="127.0.0.0/8",
    src_invert=True,
    dst="127.0.0.0/8",
).text()
"""The rule kubelet and kube-proxy both write into KUBE-FIREWALL (CVE-2020-8558's mitigation)."""

TableName = Literal["filter", "nat"]


@cache
def _hash(text: str) -> str:
    """The 16 base32 characters kube-proxy names chains with (kube-proxy.md §2); remembered,
    as every node of a cluster names the same chains."""
    # 16 base32 characters are 80 bits: the first 10 bytes of the digest, encoded alone.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def service_chain_suffix(port_name: str, protocol: str) -> str:
    """`portProtoHash`: the suffix of a port's SVC, SVL, EXT and FW chains."""
    return _hash(port_name + protocol)


def endpoint_chain(port_name: str, protocol: str, endpoint: str) -> str:
    """`servicePortEndpointChainName`: `KUBE-SEP-` + hash of name, protocol and `ip:port`."""
    return "KUBE-SEP-" + _hash(port_name + protocol + endpoint)


def port_name(service: KubeService, port: KubePort) -> str:
    """`ServicePortName.String()`: `namespace/name`, plus `:port` when the port is named."""
    return f"{service.key}:{port.name}" if port.name else service.key


NEW = Module("conntrack", "--ctstate NEW")
LOCALHOST = "127.0.0.0/8"
"""Where `iptables.localhostNodePorts` makes node ports answer too (kube-proxy.md §3.2)."""


def _jump(chain: str, text: str | None, target: str, *, new: bool) -> str:
    """One jump rule from a built-in chain, as printed (`-m conntrack` first, then the
    comment: the order kube-proxy passes them)."""
    modules = ((NEW,) if new else ()) + ((comment_module(text),) if text else ())
    return XRule(chain, modules, target).text()


EXTERNAL = "kubernetes externally-visible service portals"
PORTALS = "kubernetes service portals"
LB_FIREWALL = "kubernetes load balancer firewall"

JUMPS: tuple[tuple[TableName, str], ...] = (
    ("filter", _jump("INPUT", EXTERNAL, KUBE_EXTERNAL_SERVICES, new=True)),
    ("filter", _jump("FORWARD", EXTERNAL, KUBE_EXTERNAL_SERVICES, new=True)),
    ("filter", _jump("INPUT", "kubernetes health check service ports", KUBE_NODEPORTS, new=False)),
    ("filter", _jump("FORWARD", PORTALS, KUBE_SERVICES, new=True)),
    ("filter", _jump("OUTPUT", PORTALS, KUBE_SERVICES, new=True)),
    ("filter", _jump("FORWARD", "kubernetes forwarding rules", KUBE_FORWARD, new=False)),
    ("filter", _jump("INPUT", LB_FIREWALL, KUBE_PROXY_FIREWALL, new=True)),
    ("filter", _jump("OUTPUT", LB_FIREWALL, KUBE_PROXY_FIREWALL, new=True)),
    ("filter", _jump("FORWARD", LB_FIREWALL, KUBE_PROXY_FIREWALL, new=True)),
    ("nat", _jump("OUTPUT", PORTALS, KUBE_SERVICES, new=False)),
    ("nat", _jump("PREROUTING", PORTALS, KUBE_SERVICES, new=False)),
    ("nat", _jump("POSTROUTING", "kubernetes postrouting rules", KUBE_POSTROUTING, new=False)),
    # iptablesKubeletJumpChains: kubelet's own jumps, ensured again (no comment, no match).
    ("filter", _jump("INPUT", None, KUBE_FIREWALL, new=False)),
    ("filter", _jump("OUTPUT", None, KUBE_FIREWALL, new=False)),
)
"""kube-proxy's jump rules in the order it ensures them, each inserted at the top of its
built-in chain if absent (`iptablesJumpChains` then `iptablesKubeletJumpChains`, §1.2)."""

FILTER_CHAINS = (
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_PROXY_FIREWALL,
)
NAT_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)
"""The top-level chains every restore declares (and so flushes), in its order (§7)."""


@dataclass(frozen=True, slots=True)
class KubeProxyRules:
    """What one node's kube-proxy writes: every chain of its restore with its rules (printed
    form), the nfacct counters it created, and the sysctls it set at start-up."""

    filter: tuple[tuple[str, tuple[str, ...]], ...]
    nat: tuple[tuple[str, tuple[str, ...]], ...]
    nfacct: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]

    def chain(self, table: TableName, name: str) -> tuple[str, ...]:
        """The rules of one chain kube-proxy restores; KeyError if it does not declare it."""
        return dict(self.filter if table == "filter" else self.nat)[name]

    def chains(self, table: TableName) -> tuple[str, ...]:
        return tuple(name for name, _ in (self.filter if table == "filter" else self.nat))


@dataclass(slots=True)
class _Writer:
    """The restore being written: top-level rules with their normalizer keys, per-Service
    chains in declaration order."""

    large: bool
    filter_top: dict[str, list[tuple[str, XRule]]] = field(
        default_factory=lambda: {chain: [] for chain in FILTER_CHAINS}
    )
    nat_top: dict[str, list[tuple[str, XRule]]] = field(
        default_factory=lambda: {chain: [] for chain in NAT_CHAINS}
    )
    nat_chains: dict[str, list[XRule]] = field(default_factory=dict)

    def filter(self, key: str, rule: XRule) -> None:
        self.filter_top[rule.chain].append((key, rule))

    def nat(self, key: str, rule: XRule) -> None:
        if rule.chain in self.nat_top:
            self.nat_top[rule.chain].append((key, rule))
        else:
            self.nat_chains[rule.chain].append(rule)

    def declare(self, chain: str) -> None:
        self.nat_chains.setdefault(chain, [])

    def comment(self, text: str) -> tuple[Module, ...]:
        """A per-endpoint comment, left out in large-cluster mode."""
        return () if self.large else (comment_module(text),)


def _sorted(rules: list[tuple[str, XRule]], chain: str) -> tuple[str, ...]:
    """Rules of KUBE-SERVICES/KUBE-NODEPORTS in the test normalizer's order (stable by Service
    name); other chains as written."""
    if chain in (KUBE_SERVICES, KUBE_NODEPORTS):
        rules = sorted(rules, key=lambda item: item[0])
    return tuple(rule.text() for _, rule in rules)


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """One Service port as `syncProxyRules` sees it."""

    service: KubeService
    port: KubePort
    name: str
    protocol: str
    suffix: str
    lb_vips: tuple[IPv4Address, ...]
    source_ranges: tuple[IPv4Network, ...]
    endpoints: tuple[Endpoint, ...]

    @property
    def key(self) -> str:
        """The normalizer's key: the Service name, up to the first space or colon."""
        return self.service.key

    @property
    def externally_accessible(self) -> bool:
        return self.port.node_port is not None or bool(self.service.external_ips or self.lb_vips)

    @property
    def external_policy_local(self) -> bool:
        accessible = self.service.type in ("NodePort", "LoadBalancer") or bool(
            self.service.external_ips
        )
        return accessible and self.service.external_traffic_policy == "Local"

    @property
    def internal_policy_local(self) -> bool:
        return self.service.internal_traffic_policy == "Local"

    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or self.externally_accessible

    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (
            self.external_policy_local and self.externally_accessible
        )


def service_ports(cluster: Cluster, settings: ProxierSettings) -> tuple[ServicePortInfo, ...]:
    """Every Service port kube-proxy programs (not headless, not ExternalName), sorted by its
    name, with its endpoints."""
    ports: list[ServicePortInfo] = []
    source = SliceSource(cluster)
    for service in cluster.kube_services():
        if service.cluster_ip is None:
            continue
        slices = source.slices(service)
        vips = tuple(
            ingress.ip
            for ingress in service.ingress
            if ingress.ip is not None
            and not (settings.features.lb_ip_mode_proxy and ingress.ip_mode == "Proxy")
        )
        ranges = tuple(r for text in service.source_ranges if (r := source_range(text)))
        for port in service.ports:
            name = port_name(service, port)
            protocol = port.protocol.lower()
            ports.append(
                ServicePortInfo(
                    service=service,
                    port=port,
                    name=name,
                    protocol=protocol,
                    suffix=service_chain_suffix(name, protocol),
                    lb_vips=vips,
                    source_ranges=ranges,
                    endpoints=port_endpoints(slices, port),
                )
            )
    return tuple(sorted(ports, key=lambda p: (p.name, p.protocol)))


@dataclass(frozen=True, slots=True)
class Categorized:
    """`CategorizeEndpoints`' answer for one port on one node."""

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]
    has_any: bool


def categorize(
    port: ServicePortInfo, node: str, zone: str, settings: ProxierSettings
) -> Categorized:
    """Cluster endpoints (ready, narrowed by topology hints; else serving∧terminating), local
    endpoints (local ready; else local serving∧terminating), and whether any usable endpoint
    exists anywhere (kube-proxy.md §3.1; `topology.go`)."""
    endpoints = port.endpoints
    cluster: tuple[Endpoint, ...] = ()
    local: tuple[Endpoint, ...] = ()
    has_any = False
    mode = ""
    if port.uses_cluster_endpoints():
        mode = _topology_mode(endpoints, node, zone, settings)
        cluster = tuple(e for e in endpoints if e.ready and _available(e, mode, node, zone))
        if not cluster:
            cluster = tuple(e for e in endpoints if e.serving and e.terminating)
        has_any = bool(cluster)
    if not port.uses_local_endpoints():
        return Categorized(cluster, (), cluster, has_any)
    local_ready = any(e.ready and e.node == node for e in endpoints)
    local_serving = any(
        not e.ready and e.serving and e.terminating and e.node == node for e in endpoints
    )
    has_any = has_any or any(e.ready or (e.serving and e.terminating) for e in endpoints)
    if local_ready:
        local = tuple(e for e in endpoints if e.node == node and e.ready)
    elif local_serving:
        local = tuple(e for e in endpoints if e.node == node and e.serving and e.terminating)
    if not port.uses_cluster_endpoints():
        return Categorized((), local, local, has_any)
    if mode == "" and not (not local_ready and local_serving):
        return Categorized(cluster, local, cluster, has_any)
    merged = {e.text: e for e in (*cluster, *local)}
    return Categorized(cluster, local, tuple(merged[t] for t in sorted(merged)), has_any)


def _topology_mode(
    endpoints: tuple[Endpoint, ...], node: str, zone: str, settings: ProxierSettings
) -> str:
    """`topologyModeFromHints`: PreferSameNode when every ready endpoint has a node hint and
    one names this node (versions that honour node hints), else PreferSameZone likewise for
    zones, else no filtering."""
    ready = [e for e in endpoints if e.ready]
    if not ready:
        return ""
    node_hinted = all(e.node_hints for e in ready) and any(node in e.node_hints for e in ready)
    if settings.features.node_hints and node_hinted:
        return "PreferSameNode"
    if all(e.zone_hints for e in ready) and any(zone in e.zone_hints for e in ready):
        return "PreferSameZone"
    return ""


def _available(endpoint: Endpoint, mode: str, node: str, zone: str) -> bool:
    if mode == "PreferSameNode":
        return node in endpoint.node_hints
    if mode == "PreferSameZone":
        return zone in endpoint.zone_hints
    return True


def node_ips(cluster: Cluster, node: NodeSpec) -> tuple[IPv4Address, ...]:
    """The node's addresses in interface order (`lo` first, then the ENIs by ifindex)."""
    enis = sorted(node.enis, key=lambda eni: eni.ifindex)
    return (IPv4Address("127.0.0.1"), *(eni.primary_ip for eni in enis))


def proxy_rules(
    cluster: Cluster,
    node: NodeSpec,
    settings: ProxierSettings,
    ports: tuple[ServicePortInfo, ...] | None = None,
) -> KubeProxyRules:
    """Everything kube-proxy's first full sync writes on `node` (`ports`: the cluster's
    Service ports, when the caller has them already: they are the same on every node)."""
    if ports is None:
        ports = service_ports(cluster, settings)
    total = sum(len(port.endpoints) for port in ports)
    writer = _Writer(large=total > LARGE_CLUSTER_ENDPOINTS)
    counters = _counters(settings)
    mark = settings.mark
    marked = f"{mark:#x}/{mark:#x}"
    masq = f"MASQUERADE{' --random-fully' if settings.random_fully else ''}"
    snat = comment_module("kubernetes service traffic requiring SNAT")
    writer.nat("", XRule(KUBE_POSTROUTING, (Module("mark", f"! --mark {marked}"),), "RETURN"))
    writer.nat("", XRule(KUBE_POSTROUTING, (), mark_xor(mark)))
    writer.nat("", XRule(KUBE_POSTROUTING, (snat,), masq))
    writer.nat("", XRule(KUBE_MARK_MASQ, (), mark_or(mark)))
    zone = cluster.subnet(node.subnet).az
    primary = next(eni.primary_ip for eni in node.enis if eni.device == 0)
    for port in ports:
        found = categorize(port, node.name, zone, settings)
        _write_port(writer, port, found, settings, counters, primary)
    _write_nodeports_jump(writer, cluster, node, settings)
    if not (settings.features.invalid_drop_unless_be_liberal and settings.tcp_be_liberal):
        counted = (nfacct(INVALID_COUNTER),) if INVALID_COUNTER in counters else ()
        invalid = Module("conntrack", "--ctstate INVALID")
        writer.filter("", XRule(KUBE_FORWARD, (invalid, *counted), "DROP"))
    forwarding = comment_module("kubernetes forwarding rules")
    writer.filter(
        "", XRule(KUBE_FORWARD, (forwarding, Module("mark", f"--mark {marked}")), "ACCEPT")
    )
    tracked = comment_module("kubernetes forwarding conntrack rule")
    established = Module("conntrack", "--ctstate RELATED,ESTABLISHED")
    writer.filter("", XRule(KUBE_FORWARD, (tracked, established), "ACCEPT"))
    filter_chains = [(chain, _sorted(rules, chain)) for chain, rules in writer.filter_top.items()]
    if settings.localhost_node_ports:
        filter_chains.append((KUBE_FIREWALL, (LOCALNET_RULE,)))
    nat_chains = [(chain, _sorted(rules, chain)) for chain, rules in writer.nat_top.items()]
    nat_chains += [
        (chain, tuple(rule.text() for rule in rules)) for chain, rules in writer.nat_chains.items()
    ]
    sysctls = list(settings.conntrack_sysctls)
    if settings.localhost_node_ports:
        sysctls.insert(0, ("net.ipv4.conf.all.route_localnet", "1"))
    return KubeProxyRules(
        filter=tuple(filter_chains),
        nat=tuple(nat_chains),
        nfacct=counters,
        sysctls=tuple(sysctls),
    )


def _counters(settings: ProxierSettings) -> tuple[str, ...]:
    """The nfacct objects kube-proxy creates on a node whose kernel lets it (its version's)."""
    if not settings.nfacct:
        return ()
    wanted = (
        (INVALID_COUNTER, settings.features.nfacct_invalid_drop),
        (LOCALHOST_COUNTER, settings.features.nfacct_localhost_node_ports),
    )
    return tuple(name for name, present in wanted if present)


def _write_nodeports_jump(
    writer: _Writer, cluster: Cluster, node: NodeSpec, settings: ProxierSettings
) -> None:
    """The last rule of nat KUBE-SERVICES: any local address, or each node IP inside
    `nodePortAddresses` (kube-proxy.md §1.3)."""
    note = comment_module(NODEPORTS_COMMENT)
    local = Module("addrtype", "--dst-type LOCAL")
    if settings.node_port_addresses is None:
        rule = XRule(KUBE_SERVICES, (note, local), KUBE_NODEPORTS)
        if not settings.localhost_node_ports:
            rule = _replace(rule, dst="127.0.0.0/8", dst_invert=True)
        writer.nat("\uffff", rule)
        return
    for ip in node_ips(cluster, node):
        if not any(ip in cidr for cidr in settings.node_port_addresses):
            continue
        if ip.is_loopback and not settings.localhost_node_ports:
            continue
        writer.nat("\uffff", XRule(KUBE_SERVICES, (note,), KUBE_NODEPORTS, dst=str(ip)))


def _write_port(
    writer: _Writer,
    port: ServicePortInfo,
    found: Categorized,
    settings: ProxierSettings,
    counters: tuple[str, ...],
    primary: IPv4Address,
) -> None:
    """§3.2 steps 1–11 for one Service port."""
    name, proto, key = port.name, port.protocol, port.key
    svc_chain, svl_chain = f"KUBE-SVC-{port.suffix}", f"KUBE-SVL-{port.suffix}"
    ext_chain, fw_chain = f"KUBE-EXT-{port.suffix}", f"KUBE-FW-{port.suffix}"
    has_endpoints = found.has_any
    uses_cluster_chain = bool(found.cluster) and port.uses_cluster_endpoints()
    uses_local_chain = bool(found.local) and port.uses_local_endpoints()
    internal_chain, has_internal = svc_chain, has_endpoints
    if port.internal_policy_local:
        internal_chain = svl_chain
        has_internal = has_internal and bool(found.local)
    external_policy_chain, has_external = svc_chain, has_endpoints
    if port.external_policy_local:
        external_policy_chain = svl_chain
        has_external = has_external and bool(found.local)
    uses_ext_chain = has_endpoints and port.externally_accessible
    uses_fw_chain = has_endpoints and bool(port.lb_vips) and bool(port.source_ranges)
    lb_chain = fw_chain if uses_fw_chain else ext_chain
    if not has_endpoints:
        internal_target = external_target = REJECT
        internal_comment = external_comment = f"{name} has no endpoints"
    else:
        internal_target = external_target = "DROP"
        internal_comment = external_comment = f"{name} has no local endpoints"
    drop = external_target
    cluster_ip = str(port.service.cluster_ip)
    number = port.port.port
    dport = Module(proto, f"--dport {number}")

    def capture(chain: str, text: str, target: str, dst: object) -> XRule:
        return XRule(chain, (comment_module(text), dport), target, dst=str(dst), protocol=proto)

    if has_internal:
        writer.nat(key, capture(KUBE_SERVICES, f"{name} cluster IP", internal_chain, cluster_ip))
    else:
        writer.filter(key, capture(KUBE_SERVICES, internal_comment, internal_target, cluster_ip))
    for ip in port.service.external_ips:
        if has_endpoints:
            writer.nat(key, capture(KUBE_SERVICES, f"{name} external IP", ext_chain, ip))
        if not has_external:
            writer.filter(key, capture(KUBE_EXTERNAL_SERVICES, external_comment, drop, ip))
    for ip in port.lb_vips:
        if has_endpoints:
            writer.nat(key, capture(KUBE_SERVICES, f"{name} loadbalancer IP", lb_chain, ip))
        if uses_fw_chain:
            text = f"{name} traffic not accepted by {fw_chain}"
            writer.filter(key, capture(KUBE_PROXY_FIREWALL, text, "DROP", ip))
    if not has_external:
        for ip in port.lb_vips:
            writer.filter(key, capture(KUBE_EXTERNAL_SERVICES, external_comment, drop, ip))
    node_port = port.port.node_port
    if node_port is not None:
        by_node_port = Module(proto, f"--dport {node_port}")
        plain = XRule(
            KUBE_NODEPORTS, (comment_module(name), by_node_port), ext_chain, protocol=proto
        )
        if has_endpoints:
            if settings.localhost_node_ports and LOCALHOST_COUNTER in counters:
                counted = (*plain.modules, nfacct(LOCALHOST_COUNTER))
                localhost = XRule(KUBE_NODEPORTS, counted, ext_chain, dst=LOCALHOST, protocol=proto)
                writer.nat(key, localhost)
            writer.nat(key, plain)
        if not has_external:
            local = Module("addrtype", "--dst-type LOCAL")
            modules = (comment_module(external_comment), local, by_node_port)
            writer.filter(key, XRule(KUBE_EXTERNAL_SERVICES, modules, drop, protocol=proto))
    hcnp = port.service.health_check_node_port
    if hcnp is not None:
        health = comment_module(f"{name} health check node port")
        accept = XRule(KUBE_NODEPORTS, (health, Module("tcp", f"--dport {hcnp}")), "ACCEPT")
        writer.filter(key, _replace(accept, protocol="tcp"))

    detector = settings.detector
    if has_internal:
        masq = capture(internal_chain, f"{name} cluster IP", KUBE_MARK_MASQ, cluster_ip)
        if settings.masquerade_all:
            writer.declare(internal_chain)
            writer.nat(key, masq)
        elif detector.kind == "cidr":
            writer.declare(internal_chain)
            writer.nat(key, _replace(masq, src=detector.value, src_invert=True))
        elif detector.kind == "interface":
            writer.declare(internal_chain)
            writer.nat(key, _replace(masq, in_interface=detector.value, in_invert=True))
    if uses_ext_chain:
        writer.declare(ext_chain)
        destinations = f"{name} external destinations"
        if not port.external_policy_local:
            masq_all = comment_module(f"masquerade traffic for {destinations}")
            writer.nat(key, XRule(ext_chain, (masq_all,), KUBE_MARK_MASQ))
        else:
            if detector.kind != "none":
                pod = XRule(
                    ext_chain, (comment_module(f"pod traffic for {destinations}"),), svc_chain
                )
                if detector.kind == "cidr":
                    pod = _replace(pod, src=detector.value)
                else:
                    pod = _replace(pod, in_interface=detector.value)
                writer.nat(key, pod)
            src_local = Module("addrtype", "--src-type LOCAL")
            masq_local = comment_module(f"masquerade LOCAL traffic for {destinations}")
            route_local = comment_module(f"route LOCAL traffic for {destinations}")
            writer.nat(key, XRule(ext_chain, (masq_local, src_local), KUBE_MARK_MASQ))
            writer.nat(key, XRule(ext_chain, (route_local, src_local), svc_chain))
        if has_external:
            writer.nat(key, XRule(ext_chain, (), external_policy_chain))
    if uses_fw_chain:
        writer.declare(fw_chain)
        note = (comment_module(f"{name} loadbalancer IP"),)
        allow_node = False
        for cidr in port.source_ranges:
            writer.nat(key, XRule(fw_chain, note, ext_chain, src=str(cidr)))
            allow_node = allow_node or primary in cidr
        if allow_node:
            for ip in port.lb_vips:
                writer.nat(key, XRule(fw_chain, note, ext_chain, src=str(ip)))
        text = f"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"
        writer.nat(key, XRule(fw_chain, (comment_module(text),), None))
    if uses_cluster_chain:
        writer.declare(svc_chain)
        _dispatch(writer, port, svc_chain, found.cluster)
    if uses_local_chain:
        writer.declare(svl_chain)
        _dispatch(writer, port, svl_chain, found.local)
    for endpoint in found.reachable:
        chain = endpoint_chain(name, proto, endpoint.text)
        writer.declare(chain)
        writer.nat(key, XRule(chain, writer.comment(name), KUBE_MARK_MASQ, src=endpoint.address))
        affinity = (recent_set(chain),) if port.service.affinity_timeout is not None else ()
        dnat = f"DNAT --to-destination {endpoint.text}"
        modules = (*writer.comment(name), *affinity, Module(proto))
        writer.nat(key, XRule(chain, modules, dnat, protocol=proto))


def _dispatch(
    writer: _Writer, port: ServicePortInfo, chain: str, endpoints: tuple[Endpoint, ...]
) -> None:
    """`writeServiceToEndpointRules`: affinity checks first, then 1/(n−i) per endpoint, the
    last without a statistic match (§3.2 step 10, §4)."""
    timeout = port.service.affinity_timeout
    if timeout is not None:
        for endpoint in endpoints:
            sep = endpoint_chain(port.name, port.protocol, endpoint.text)
            text = f"{port.name} -> {endpoint.text}"
            check = recent_check(sep, timeout)
            writer.nat(port.key, XRule(chain, (*writer.comment(text), check), sep))
    count = len(endpoints)
    for index, endpoint in enumerate(endpoints):
        sep = endpoint_chain(port.name, port.protocol, endpoint.text)
        text = f"{port.name} -> {endpoint.text}"
        chance = (statistic(go_probability(count - index)),) if index < count - 1 else ()
        writer.nat(port.key, XRule(chain, (*writer.comment(text), *chance), sep))


def _replace(rule: XRule, **changes: object) -> XRule:
    return replace(rule, **changes)  # type: ignore[arg-type]


def apply(tables: Tables, rules: KubeProxyRules) -> None:
    """kube-proxy on a node: its canaries (`ipt.Monitor` in mangle, nat, filter), its jump
    rules ensured at the top of the built-in chains in list order, then the restore: each
    chain line flushes its chain, the rules follow."""
    for table in ("mangle", "nat", "filter"):
        tables.declare(table, KUBE_PROXY_CANARY)
    for table, line in JUMPS:
        tables.declare(table, line.rsplit(" ", 1)[1])
        tables.ensure_first(table, line)
    for table_name, chains in (("filter", rules.filter), ("nat", rules.nat)):
        for chain, lines in chains:
            tables.flush(table_name, chain)
            for line in lines:
                tables.append(table_name, line)
