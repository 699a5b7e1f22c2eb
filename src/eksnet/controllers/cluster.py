"""From the declarative cluster to the data-plane state: run every controller, in the order a
real node runs them.

A node boots from the AMI (links, the primary ENI's DHCP routes, sysctls, an empty filter table
with policy ACCEPT), the VPC CNI's init container sets rp_filter on the primary interface, ipamd
sets up the host network and each secondary ENI, then the CNI plugin adds pods in creation order.
kube-proxy (after kubelet) programs the Services; the load balancer controller joins in a later
issue. A pure function: the same cluster always gives the same state, byte for byte.

Each node's iptables are built the way its components fill them (`iptables_text.Tables`): kubelet
first (hint, canaries, KUBE-FIREWALL and its jumps), kube-proxy next (canaries, its jumps inserted
at the top of the built-in chains, its restore), the VPC CNI last (ipamd appends its jumps and
rules), so the built-in chains end up in a real node's order (kube-proxy.md §1.2, vpc-cni.md §2.4
"Ordering", talk-walks.md §4.3).
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Interface, IPv4Network

from eksnet.controllers import (
    ipamd,
    kube_proxy,
    kube_proxy_version,
    kubelet,
    load_balancers,
    vpc_filters,
)
from eksnet.controllers.cni_plugin import (
    loopback_addresses,
    loopback_link,
    pod_network,
)
from eksnet.controllers.iptables_text import Tables
from eksnet.controllers.vpc_cni_version import CniFeatures, CniSettings, features, settings
from eksnet.dataplane.flow_log_format import parse_format
from eksnet.dataplane.security import SecurityGroup
from eksnet.dataplane.state import (
    DEFAULT_RULES,
    LOCAL_TARGET,
    TABLE_MAIN,
    Address,
    DataplaneState,
    Eni,
    ExternalHost,
    Instance,
    Iptables,
    Link,
    Namespace,
    NatGateway,
    PublicIp,
    Route,
    RouteOrigin,
    RouteState,
    RouteTable,
    Rule,
    Service,
    ServicePort,
    Subnet,
    VpcRoute,
    VpcState,
)
from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import IFINDEX_MAX, Cluster, EniSpec, NodeSpec
from eksnet.model.load import in_configuration

METADATA_ROUTE = IPv4Network("169.254.169.254/32")


def build_state(cluster: Cluster) -> DataplaneState:
    """Every node's and pod's namespace, and the VPC fabric. Errors name the spec's line.

    The spec's other configurations (no variant, every other declared variant) are built too and
    thrown away, so that a variant the controllers would reject (a CNI env value, a veth name
    clash) is reported now rather than only once someone selects it. What is merely not modelled
    in another configuration does not stop this one.
    """
    try:
        state = _build_state(cluster)
    except InputError as error:
        raise cluster.locate(error) from None
    for variant, other in cluster.other_configurations():
        try:
            _build_state(other)
        except NotModelled:
            continue
        except InputError as error:
            raise in_configuration(variant, other.locate(error)) from None
    return state


def _build_state(cluster: Cluster) -> DataplaneState:
    cni_features = features(cluster.cni.version)
    cni_settings = settings(cluster.cni.env, cni_features)
    namespaces: list[Namespace] = []
    ports: tuple[kube_proxy.ServicePortInfo, ...] | None = None
    for node in cluster.nodes:
        proxier = kube_proxy_version.settings(cluster, node)
        if ports is None:
            ports = kube_proxy.service_ports(cluster, proxier)
        rules = kube_proxy.proxy_rules(cluster, node, proxier, ports)
        namespaces += _node_and_pods(cluster, node, cni_features, cni_settings, rules)
    return DataplaneState(
        namespaces=tuple(namespaces),
        vpc=vpc_state(cluster),
        external_hosts=external_hosts(cluster),
        services=services(cluster),
        dns=load_balancers.dns_records(cluster),
    )


def services(cluster: Cluster) -> tuple[Service, ...]:
    """The spec's Services as the data plane names them (for `svc/NS/NAME`)."""
    return tuple(
        Service(
            namespace=service.namespace,
            name=service.name,
            type=service.type,
            cluster_ip=service.cluster_ip,
            ports=tuple(
                ServicePort(
                    name=port.name,
                    protocol=port.protocol.lower(),  # type: ignore[arg-type]
                    port=port.port,
                    target_port=port.target_port,
                    node_port=port.node_port,
                )
                for port in service.ports
            ),
            external_ips=service.external_ips,
            external_traffic_policy=service.external_traffic_policy,
            internal_traffic_policy=service.internal_traffic_policy,
            health_check_node_port=service.health_check_node_port,
            affinity_timeout=service.affinity_timeout,
            load_balancer_ips=tuple(i.ip for i in service.ingress if i.ip is not None),
        )
        for service in cluster.kube_services()
    )


def vpc_state(cluster: Cluster) -> VpcState:
    subnets = tuple(
        Subnet(
            name=subnet.name,
            cidr=subnet.cidr,
            az=subnet.az,
            router_mac=cluster.router_mac(subnet),
            route_table=subnet.route_table,
            az_id=subnet.az_id,
        )
        for subnet in cluster.vpc.subnets
    )
    enis = tuple(
        Eni(
            id=eni.id,
            subnet=eni.subnet or node.subnet,
            mac=eni.mac,
            primary_ip=eni.primary_ip,
            secondary_ips=tuple(eni.secondary_ips),
            prefixes=tuple(eni.prefixes),
            security_groups=tuple(eni.security_groups),
            node=node.name,
            device=eni.linux,
            device_number=eni.device,
            instance_id=node.instance_id,
        )
        for node in cluster.nodes
        for eni in node.enis
    )
    gateways = nat_gateways(cluster)
    balancers = load_balancers.build(cluster)
    return VpcState(
        id=cluster.vpc.id,
        cidrs=tuple(cluster.vpc.cidrs),
        subnets=subnets,
        enis=enis
        + tuple(_nat_gateway_eni(cluster, gateway) for gateway in gateways)
        + balancers.enis,
        route_tables=route_tables(cluster),
        internet_gateway=cluster.vpc.internet_gateway,
        public_ips=public_ips(cluster)
        + tuple(
            PublicIp(gateway.private_ip, gateway.public_ip, gateway.eni)
            for gateway in gateways
            if gateway.public_ip is not None
        )
        + balancers.public_ips,
        security_groups=_with_controllers_groups(vpc_filters.security_groups(cluster), balancers),
        network_acls=vpc_filters.network_acls(cluster),
        prefix_lists=vpc_filters.prefix_lists(cluster),
        nat_gateways=gateways,
        instances=tuple(_instance(cluster, node) for node in cluster.nodes),
        account_id=cluster.account_id,
        region=cluster.region,
        flow_log_format=_flow_log_format(cluster),
        load_balancers=balancers.load_balancers,
        unbuilt_load_balancers=balancers.unbuilt,
    )


def _with_controllers_groups(
    groups: tuple[SecurityGroup, ...], balancers: load_balancers.Built
) -> tuple[SecurityGroup, ...]:
    """The spec's groups with the rules the load balancer controllers add to them (after the
    spec's own, numbered on), and the groups they create."""
    added = dict(balancers.node_rules)
    merged: list[SecurityGroup] = []
    for group in groups:
        rules = added.get(group.id, ())
        if rules:
            start = len(group.direction("ingress"))
            numbered = tuple(replace(rule, index=start + i) for i, rule in enumerate(rules))
            group = replace(group, rules=group.rules + numbered)
        merged.append(group)
    return (*merged, *balancers.security_groups)


def _flow_log_format(cluster: Cluster) -> str | None:
    """The spec's flow-log format, checked as AWS checks a `LogFormat` (a field after version 5
    is only reported when records are asked for)."""
    text = cluster.vpc.flow_logs.format
    try:
        parse_format(text)
    except InputError as error:
        raise InputError(error.message, fix=error.fix, path=("vpc", "flowLogs", "format")) from None
    except NotModelled:
        pass
    return text


def _instance(cluster: Cluster, node: NodeSpec) -> Instance:
    """The node's instance: its IMDS options are `nodeDefaults.imds` with what the node sets
    itself on top, field by field."""
    options = cluster.node_defaults.imds.model_dump()
    if node.imds is not None:
        options.update(node.imds.model_dump(include=node.imds.model_fields_set))
    return Instance(
        node.name,
        node.instance_id,
        http_tokens=options["http_tokens"],
        hop_limit=options["hop_limit"],
    )


def nat_gateways(cluster: Cluster) -> tuple[NatGateway, ...]:
    return tuple(
        NatGateway(
            id=gateway.id,
            subnet=gateway.subnet,
            eni=gateway.eni,
            private_ip=gateway.private_ip,
            public_ip=gateway.public_ip,
            connectivity=gateway.connectivity,
        )
        for gateway in cluster.vpc.nat_gateways
    )


def _nat_gateway_eni(cluster: Cluster, gateway: NatGateway) -> Eni:
    """A NAT gateway's ENI as `DescribeNetworkInterfaces` shows it (vpc-fabric.md §5.1):
    requester-managed, no groups, source/destination check off, attached to no instance. Its
    MAC is the spec's, else `02:00:` and the private IPv4's octets (AWS picks one; the lab needs
    one)."""
    spec = next(item for item in cluster.vpc.nat_gateways if item.id == gateway.id)
    mac = spec.mac or "02:00:" + ":".join(f"{octet:02x}" for octet in gateway.private_ip.packed)
    return Eni(
        id=gateway.eni,
        subnet=gateway.subnet,
        mac=mac,
        primary_ip=gateway.private_ip,
        source_dest_check=False,
        interface_type="nat_gateway",
    )


def route_tables(cluster: Cluster) -> tuple[RouteTable, ...]:
    """The spec's route tables as AWS holds them: the local route of every VPC CIDR first
    (AWS creates it with the table, so a spec may leave it out), then the spec's routes.

    A route to an internet gateway, NAT gateway or ENI the configuration does not have is a
    `blackhole` route, as AWS shows a route whose target was deleted or detached (vpc-fabric.md
    §1.4): a variant may drop the NAT gateway, and the demo's `rtb-private-a` names one that
    only its `nat` variants declare. A target that is no gateway id at all is an error."""
    tables: list[RouteTable] = []
    for name, routes in cluster.vpc.route_tables.items():
        listed: list[VpcRoute] = []
        for index, route in enumerate(routes):
            path = ("vpc", "routeTables", name, index)
            local = route.target == LOCAL_TARGET
            if isinstance(route.dst, str):
                if local:
                    raise InputError(
                        f"route table {name}: the local route's destination is a VPC CIDR, "
                        f"not a prefix list ({route.dst})",
                        fix="use one of: " + ", ".join(map(str, cluster.vpc.cidrs)),
                        path=(*path, "dst"),
                    )
                listed.extend(
                    VpcRoute(
                        cidr,
                        route.target,
                        state=_route_state(cluster, route.target),
                        prefix_list=route.dst,
                    )
                    for cidr in cluster.vpc.prefix_lists[route.dst]
                )
                continue
            if local and route.dst not in cluster.vpc.cidrs:
                raise InputError(
                    f"route table {name}: a local route's destination is a VPC CIDR, not "
                    f"{route.dst}",
                    fix="use one of: " + ", ".join(map(str, cluster.vpc.cidrs)),
                    path=(*path, "dst"),
                )
            if not local and not route.target.startswith(GATEWAY_PREFIXES):
                raise InputError(
                    f"route table {name}: {route.target!r} is not a route target",
                    fix="use local or a gateway id (" + ", ".join(GATEWAY_PREFIXES) + ")",
                    path=(*path, "target"),
                )
            if any(
                earlier.destination == route.dst and earlier.prefix_list is None
                for earlier in listed
            ):
                raise InputError(
                    f"route table {name}: two routes to {route.dst}",
                    fix="keep one route per destination (AWS refuses the second)",
                    path=(*path, "dst"),
                )
            origin: RouteOrigin = "CreateRouteTable" if local else "CreateRoute"
            state = _route_state(cluster, route.target)
            listed.append(VpcRoute(route.dst, route.target, state=state, origin=origin))
        implicit = [
            VpcRoute(cidr, LOCAL_TARGET, origin="CreateRouteTable")
            for cidr in cluster.vpc.cidrs
            if not any(route.destination == cidr for route in listed)
        ]
        tables.append(RouteTable(name, (*implicit, *listed)))
    return tuple(tables)


GATEWAY_PREFIXES = ("igw-", "nat-", "eni-", "vgw-", "tgw-", "pcx-", "vpce-", "lgw-", "cagw-")
"""The targets a route may name besides `local` (vpc-fabric.md §1.3 step 6), by id prefix."""


def _route_state(cluster: Cluster, target: str) -> RouteState:
    return "active" if _target_exists(cluster, target) else "blackhole"


def _target_exists(cluster: Cluster, target: str) -> bool:
    """Whether this configuration has the route's target. Gateways the spec cannot declare
    (virtual private, transit, peering …) are taken to exist: the walk says they are not
    modelled rather than pretending they were deleted."""
    if target.startswith("igw-"):
        return target == cluster.vpc.internet_gateway
    if target.startswith("nat-"):
        return any(gateway.id == target for gateway in cluster.vpc.nat_gateways)
    if target.startswith("eni-"):
        return any(eni.id == target for node in cluster.nodes for eni in node.enis)
    return True


def public_ips(cluster: Cluster) -> tuple[PublicIp, ...]:
    """A node's `publicIp` on the primary private IP of its primary ENI (device 0): where EC2
    puts an auto-assigned public IPv4 (vpc-fabric.md §4); then every elastic IP on the private
    address it was associated with."""
    found: list[PublicIp] = []
    for index, node in enumerate(cluster.nodes):
        if node.public_ip is None:
            continue
        primary = next((eni for eni in node.enis if eni.device == 0), None)
        if primary is None:
            raise InputError(
                f"node {node.name}: a public IP needs a primary ENI (device 0) to sit on",
                fix="give the node an ENI with device: 0",
                path=("nodes", index, "publicIp"),
            )
        if any(item.public_ip == node.public_ip for item in found):
            raise InputError(
                f"node {node.name}: public IP {node.public_ip} is already another node's",
                fix="give each node its own public IP",
                path=("nodes", index, "publicIp"),
            )
        if any(node.public_ip in cidr for cidr in cluster.vpc.cidrs):
            raise InputError(
                f"node {node.name}: public IP {node.public_ip} is inside the VPC",
                fix="a public IP comes from outside the VPC's CIDRs",
                path=("nodes", index, "publicIp"),
            )
        found.append(PublicIp(primary.primary_ip, node.public_ip, primary.id))
    found += [
        PublicIp(eip.private_ip, eip.public_ip, eni.id)
        for node in cluster.nodes
        for eni in node.enis
        for eip in eni.elastic_ips
    ]
    return tuple(found)


def external_hosts(cluster: Cluster) -> tuple[ExternalHost, ...]:
    """The spec's `externalHosts`: on the internet, so outside the VPC, and not one of the
    VPC's own public IPs (those lead back in through the internet gateway)."""
    hosts: list[ExternalHost] = []
    publics = {node.public_ip for node in cluster.nodes if node.public_ip is not None}
    publics |= {
        eip.public_ip for node in cluster.nodes for eni in node.enis for eip in eni.elastic_ips
    }
    for index, host in enumerate(cluster.external_hosts):
        path = ("externalHosts", index)
        problem = None
        if any(host.ip in cidr for cidr in cluster.vpc.cidrs):
            problem = "is inside the VPC"
        elif host.ip in publics:
            problem = "is a public IP of a node of the VPC"
        elif any(other.address == host.ip for other in hosts):
            problem = "is another external host's"
        if problem is not None:
            raise InputError(
                f"external host {host.name}: {host.ip} {problem}",
                fix="give each external host its own address on the internet",
                path=(*path, "ip"),
            )
        if any(other.name == host.name for other in hosts):
            raise InputError(
                f"duplicate external host {host.name!r}",
                fix="name each external host once",
                path=(*path, "name"),
            )
        hosts.append(ExternalHost(host.name, host.ip, host.source_port, host.port))
    return tuple(hosts)


def _node_and_pods(
    cluster: Cluster,
    node: NodeSpec,
    cni_features: CniFeatures,
    cni_settings: CniSettings,
    proxy_rules: kube_proxy.KubeProxyRules,
) -> list[Namespace]:
    backend = cluster.iptables_backend(node)
    if backend == "nft" and cni_features.nftables_connmark:
        raise NotModelled(
            f"node {node.name}: VPC CNI {cluster.cni.version} on an nf_tables iptables keeps its "
            "connmark rules in nftables (table ip aws-cni)"
        )
    enis = sorted(node.enis, key=lambda eni: eni.ifindex)
    primary = next(eni for eni in enis if eni.device == 0)
    subnet = cluster.subnet(primary.subnet or node.subnet).cidr
    gateway = subnet.network_address + 1

    links: list[Link] = [loopback_link()]
    addresses: list[Address] = list(loopback_addresses())
    routes: list[Route] = [
        # The AMI's DHCP client: default route and the instance metadata route, both via eth0.
        Route(TABLE_MAIN, IPv4Network("0.0.0.0/0"), gateway=gateway, dev=primary.linux),
        Route(TABLE_MAIN, METADATA_ROUTE, dev=primary.linux),
    ]
    rules: list[Rule] = [DEFAULT_RULES[0]]
    rules += ipamd.host_network_rules(cni_features, cni_settings)
    for eni in enis:
        eni_subnet = cluster.subnet(eni.subnet or node.subnet).cidr
        links.append(
            Link(
                eni.ifindex,
                eni.linux,
                "device",
                eni.mac,
                cni_settings.eni_mtu,
                qdisc="mq",
                qlen=1000,
            )
        )
        interface = IPv4Interface(f"{eni.primary_ip}/{eni_subnet.prefixlen}")
        broadcast = eni_subnet.broadcast_address if eni_subnet.prefixlen < 31 else None
        addresses.append(Address(eni.linux, interface, broadcast=broadcast))
        if eni.device == 0:
            # The kernel's connected route; ipamd leaves the primary ENI's alone.
            routes.append(
                Route(
                    TABLE_MAIN,
                    eni_subnet,
                    dev=eni.linux,
                    proto="kernel",
                    scope="link",
                    src=eni.primary_ip,
                )
            )
            continue
        # SetupENINetwork: own table, connected route deleted from main.
        setup = ipamd.eni_network(
            cni_features,
            device=eni.device,
            linux=eni.linux,
            primary_ip=eni.primary_ip,
            subnet=eni_subnet,
        )
        routes += setup.routes
        rules += setup.rules

    pods = [pod for pod in cluster.pods if pod.node == node.name]
    used_ifindexes = {link.ifindex for link in links}
    used_ifindexes |= {pod.pin.host_veth_ifindex for pod in pods if pod.pin.host_veth_ifindex}
    last_ifindex = max(used_ifindexes)
    pod_namespaces: list[Namespace] = []
    eni_devices = {eni.linux: eni.device for eni in enis}
    for pod in pods:
        ifindex = pod.pin.host_veth_ifindex
        if ifindex is None:
            ifindex = last_ifindex = _next_ifindex(last_ifindex, used_ifindexes)
            used_ifindexes.add(ifindex)
        if ifindex in {link.ifindex for link in links}:
            raise InputError(
                f"pod {pod.key}: host veth ifindex {ifindex} is already used on {node.name}",
                fix="pin another hostVethIfindex or drop the pin",
                path=("pods", cluster.pods.index(pod), "pin", "hostVethIfindex"),
            )
        network = pod_network(
            pod,
            features=cni_features,
            settings=cni_settings,
            node_netns_name=node.name,
            host_ifindex=ifindex,
            eni_device=eni_devices[pod.eni],
            vpc_cidrs=tuple(cluster.vpc.cidrs),
        )
        if network.host_link.name in {link.name for link in links}:
            raise InputError(
                f"pod {pod.key}: host veth name {network.host_link.name} is already used on "
                f"{node.name}",
                fix="pin another hostVeth or drop the pin",
                path=("pods", cluster.pods.index(pod), "pin", "hostVeth"),
            )
        links.append(network.host_link)
        routes.append(network.host_route)
        rules += network.host_rules
        pod_namespaces.append(
            Namespace(
                name=network.netns,
                kind="pod",
                owner=pod.key,
                links=network.pod_links,
                addresses=network.pod_addresses,
                routes=network.pod_routes,
                neighbours=network.pod_neighbours,
                sysctls=_inherited_sysctls(cluster),
            )
        )
    rules += DEFAULT_RULES[1:]
    node_namespace = Namespace(
        name=node.name,
        kind="node",
        owner=node.name,
        links=tuple(sorted(links, key=lambda link: link.ifindex)),
        addresses=tuple(addresses),
        routes=tuple(routes),
        rules=tuple(rules),
        sysctls=(
            *_inherited_sysctls(cluster),
            # The VPC CNI init container: loose rp_filter on the primary interface only
            # (before v1.7.0 ipamd, and only with NodePort support on).
            *_primary_rp_filter(primary, cni_features, cni_settings),
            # kube-proxy at start-up: route_localnet, conntrack timeouts (kube-proxy.md §8.1).
            *proxy_rules.sysctls,
        ),
        iptables=Iptables(
            backend=backend,
            save=_iptables_save(cluster, primary, cni_features, cni_settings, proxy_rules),
            nfacct=proxy_rules.nfacct,
        ),
    )
    return [node_namespace, *pod_namespaces]


def _next_ifindex(last: int, used: set[int]) -> int:
    """The index the kernel gives a new device: the one after the last it handed out, wrapping
    past the largest (2**31 - 1) and skipping those in use (`dev_index_reserve`), so a pin at the
    top of the range never yields an impossible 2**31."""
    candidate = last
    while True:
        candidate = candidate + 1 if candidate < IFINDEX_MAX else 1
        if candidate not in used:
            return candidate


AMI_SYSCTLS: dict[str, tuple[tuple[str, str], ...]] = {
    # EKS-optimized Amazon Linux 2: forwarding on (the CNI does not set it, vpc-cni.md §2.1),
    # strict rp_filter everywhere by default (talk-walks.md §2.3).
    "al2": (
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.conf.default.rp_filter", "1"),
    ),
    # AL2023: forwarding on as on every EKS AMI; rp_filter from systemd's 50-default.conf
    # (default 2, `all` left at the kernel's 0). An inference: not measured on a real node
    # (linux-dataplane.md §11); a spec can override it in nodeDefaults.sysctls.
    "al2023": (
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "2"),
    ),
}
"""What the node's AMI writes before anything of EKS runs, per AMI family."""


def _inherited_sysctls(cluster: Cluster) -> tuple[tuple[str, str], ...]:
    """The AMI's sysctls, then the spec's overrides. Pod namespaces get the same `all`/`default`
    values: with `devconf_inherit_init_net=0` a new namespace copies them from the initial one
    (linux-dataplane.md §3.4)."""
    values = dict(AMI_SYSCTLS[cluster.node_defaults.ami])
    values.update((key, str(value)) for key, value in cluster.node_defaults.sysctls.items())
    return tuple(values.items())


def _primary_rp_filter(
    primary: EniSpec, cni_features: CniFeatures, cni_settings: CniSettings
) -> tuple[tuple[str, str], ...]:
    if cni_features.rp_filter_always or cni_settings.node_port_support:
        return ((f"net.ipv4.conf.{primary.linux}.rp_filter", "2"),)
    return ()


def _iptables_save(
    cluster: Cluster,
    primary: EniSpec,
    cni_features: CniFeatures,
    cni_settings: CniSettings,
    proxy_rules: kube_proxy.KubeProxyRules,
) -> str:
    """The node's tables as kubelet, kube-proxy and then ipamd leave them. The filter table's
    policies are the EKS AMI's: ACCEPT everywhere (vpc-cni.md §2.1, not set by the CNI)."""
    tables = Tables()
    kubelet.apply(tables)
    kube_proxy.apply(tables, proxy_rules)
    rules = ipamd.iptables_rules(
        cni_features,
        cni_settings,
        primary_interface=primary.linux,
        primary_ip=primary.primary_ip,
        vpc_cidrs=tuple(cluster.vpc.cidrs),
    )
    for line in rules.mangle:
        tables.append("mangle", line)
    for chain in rules.nat_chains:
        tables.declare("nat", chain)
    for line in rules.nat:
        tables.append("nat", line)
    tables.table("filter")
    return tables.restore_text()
