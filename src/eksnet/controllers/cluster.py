"""From the declarative cluster to the data-plane state: run every controller, in the order a
real node runs them.

A node boots from the AMI (links, the primary ENI's DHCP routes, sysctls, an empty filter table
with policy ACCEPT), the VPC CNI's init container sets rp_filter on the primary interface, ipamd
sets up the host network and each secondary ENI, then the CNI plugin adds pods in creation order.
kube-proxy and the load balancer controller join here in later issues. A pure function: the same
cluster always gives the same state, byte for byte.
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network

from eksnet.controllers import ipamd
from eksnet.controllers.cni_plugin import (
    loopback_addresses,
    loopback_link,
    pod_network,
)
from eksnet.controllers.vpc_cni_version import CniFeatures, CniSettings, features, settings
from eksnet.dataplane.state import (
    DEFAULT_RULES,
    TABLE_MAIN,
    Address,
    DataplaneState,
    Eni,
    Iptables,
    Link,
    Namespace,
    Route,
    Rule,
    Subnet,
    VpcState,
)
from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import Cluster, EniSpec, NodeSpec

METADATA_ROUTE = IPv4Network("169.254.169.254/32")


def build_state(cluster: Cluster) -> DataplaneState:
    """Every node's and pod's namespace, and the VPC fabric. Errors name the spec's line."""
    try:
        return _build_state(cluster)
    except InputError as error:
        raise cluster.locate(error) from None


def _build_state(cluster: Cluster) -> DataplaneState:
    cni_features = features(cluster.cni.version)
    cni_settings = settings(cluster.cni.env)
    namespaces: list[Namespace] = []
    for node in cluster.nodes:
        namespaces += _node_and_pods(cluster, node, cni_features, cni_settings)
    return DataplaneState(namespaces=tuple(namespaces), vpc=vpc_state(cluster))


def vpc_state(cluster: Cluster) -> VpcState:
    subnets = tuple(
        Subnet(
            name=subnet.name,
            cidr=subnet.cidr,
            az=subnet.az,
            router_mac=cluster.router_mac(subnet),
            route_table=subnet.route_table,
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
        )
        for node in cluster.nodes
        for eni in node.enis
    )
    return VpcState(id=cluster.vpc.id, cidrs=tuple(cluster.vpc.cidrs), subnets=subnets, enis=enis)


def _node_and_pods(
    cluster: Cluster, node: NodeSpec, cni_features: CniFeatures, cni_settings: CniSettings
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
    rules += ipamd.host_network_rules(cni_settings)
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
    next_ifindex = max(used_ifindexes) + 1
    pod_namespaces: list[Namespace] = []
    eni_devices = {eni.linux: eni.device for eni in enis}
    for pod in pods:
        ifindex = pod.pin.host_veth_ifindex
        if ifindex is None:
            ifindex, next_ifindex = next_ifindex, next_ifindex + 1
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
            # The VPC CNI init container: loose rp_filter on the primary interface only.
            (f"net.ipv4.conf.{primary.linux}.rp_filter", "2"),
        ),
        iptables=Iptables(
            backend=backend, save=_iptables_save(cluster, primary, cni_features, cni_settings)
        ),
    )
    return [node_namespace, *pod_namespaces]


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


def _iptables_save(
    cluster: Cluster, primary: EniSpec, cni_features: CniFeatures, cni_settings: CniSettings
) -> str:
    rules = ipamd.iptables_rules(
        cni_features,
        cni_settings,
        primary_interface=primary.linux,
        primary_ip=primary.primary_ip,
        vpc_cidrs=tuple(cluster.vpc.cidrs),
    )
    lines = ["*mangle"]
    lines += [
        f":{chain} ACCEPT [0:0]"
        for chain in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
    ]
    lines += list(rules.mangle)
    lines.append("COMMIT")
    lines.append("*nat")
    lines += [
        f":{chain} ACCEPT [0:0]" for chain in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
    ]
    lines += [f":{chain} - [0:0]" for chain in sorted(rules.nat_chains)]
    lines += list(rules.nat)
    lines.append("COMMIT")
    # The EKS AMI: filter table with every policy ACCEPT (vpc-cni.md §2.1, "not set by the CNI").
    lines.append("*filter")
    lines += [f":{chain} ACCEPT [0:0]" for chain in ("INPUT", "FORWARD", "OUTPUT")]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
