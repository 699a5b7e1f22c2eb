"""The VPC CNI plugin's ADD for one pod: the veth pair, the pod's routes and neighbour, and the
host's route and rules (vpc-cni.md §1.3–1.4, `driver.go`).

Values the plugin or the kernel would pick at random (MACs, the netns name) are derived from a
seed of the pod's name so the state is a pure function of the model; the spec may pin them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface

from eksnet.controllers.ipamd import route_table_id
from eksnet.controllers.vpc_cni_version import CniFeatures, CniSettings
from eksnet.dataplane.state import TABLE_MAIN, Address, Link, LinkPeer, Neighbour, Route, Rule
from eksnet.model.cluster import PodSpec

POD_GATEWAY = IPv4Address("169.254.1.1")
TO_POD_RULE_PRIORITY = 512
FROM_POD_RULE_PRIORITY = 1536
_NETNS_NAMESPACE = uuid.UUID("5f0a3c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b")


def host_veth_name(namespace: str, name: str, prefix: str = "eni") -> str:
    """`eni` + the first 11 hex digits of SHA-1("<namespace>.<pod>").

    As `pkg/networkutils/names.go` of the VPC CNI does it; the separator is a dot."""
    digest = hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()
    return f"{prefix}{digest[:11]}"


def seeded_mac(seed: str) -> str:
    """A locally administered unicast MAC from a seed: what the kernel's random MAC would be,
    made reproducible."""
    octets = bytearray(hashlib.sha256(seed.encode()).digest()[:6])
    octets[0] = (octets[0] | 0x02) & 0xFE
    return ":".join(f"{octet:02x}" for octet in octets)


def seeded_netns(pod: PodSpec) -> str:
    """containerd names pod namespaces `cni-<uuid>`; ours is a UUID derived from the pod."""
    return f"cni-{uuid.uuid5(_NETNS_NAMESPACE, pod.key)}"


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """Both sides of one pod's network setup."""

    netns: str
    pod_links: tuple[Link, ...]
    pod_addresses: tuple[Address, ...]
    pod_routes: tuple[Route, ...]
    pod_neighbours: tuple[Neighbour, ...]
    host_link: Link
    host_route: Route
    host_rules: tuple[Rule, ...]


def pod_network(
    pod: PodSpec,
    *,
    features: CniFeatures,
    settings: CniSettings,
    node_netns_name: str,
    host_ifindex: int,
    eni_device: int,
    vpc_cidrs: tuple[IPv4Network, ...],
) -> PodNetwork:
    """What CNI ADD leaves in the pod's namespace and on the host for `pod`."""
    netns = pod.pin.netns or seeded_netns(pod)
    host_name = pod.pin.host_veth or host_veth_name(pod.namespace, pod.name, settings.veth_prefix)
    host_mac = pod.pin.host_veth_mac or seeded_mac(f"host-veth:{pod.key}")
    pod_mac = pod.pin.pod_mac or seeded_mac(f"pod-eth0:{pod.key}")
    # v1.19 makes the pair inside the pod netns (peer registered first → 2, eth0 → 3) and moves
    # the host end out; v1.23 creates the host end straight in the host netns (eth0 → 2).
    pod_ifindex = 2 if features.pod_veth_created_in_host else 3
    pinned_link_local = pod.pin.pod_link_local
    pod_eth0 = Link(
        ifindex=pod_ifindex,
        name="eth0",
        kind="veth",
        mac=pod_mac,
        mtu=settings.pod_mtu,
        # A pod cannot name the node's root namespace, so `ip` prints `link-netnsid 0`.
        peer=LinkPeer(ifindex=host_ifindex, name=host_name, netnsid=0),
        ipv6_addrgen=pinned_link_local is None,
    )
    host_link = Link(
        ifindex=host_ifindex,
        name=host_name,
        kind="veth",
        mac=host_mac,
        mtu=settings.pod_mtu,
        peer=LinkPeer(ifindex=pod_ifindex, name="eth0", netns=netns),
    )
    addresses = [Address("eth0", IPv4Interface(f"{pod.ip}/32"))]
    if pinned_link_local is not None:
        addresses.append(Address("eth0", IPv6Interface(f"{pinned_link_local}/64"), scope="link"))
    pod_routes = (
        Route(TABLE_MAIN, IPv4Network(f"{POD_GATEWAY}/32"), dev="eth0", scope="link"),
        Route(TABLE_MAIN, IPv4Network("0.0.0.0/0"), gateway=POD_GATEWAY, dev="eth0"),
    )
    pod_host = IPv4Network(f"{pod.ip}/32")
    rules = [Rule(TO_POD_RULE_PRIORITY, table=TABLE_MAIN, dst=pod_host)]
    table = route_table_id(eni_device)
    if table != TABLE_MAIN:
        if features.single_from_rule or settings.external_snat:
            rules.append(Rule(FROM_POD_RULE_PRIORITY, table=table, src=pod_host))
        else:  # ≤ v1.7: one rule per VPC CIDR; other traffic falls through to main
            rules += [
                Rule(FROM_POD_RULE_PRIORITY, table=table, src=pod_host, dst=cidr)
                for cidr in vpc_cidrs
            ]
    return PodNetwork(
        netns=netns,
        pod_links=(_loopback(), pod_eth0),
        pod_addresses=(*loopback_addresses(), *addresses),
        pod_routes=pod_routes,
        pod_neighbours=(Neighbour(POD_GATEWAY, "eth0", host_mac),),
        host_link=host_link,
        host_route=Route(TABLE_MAIN, pod_host, dev=host_name, scope="link"),
        host_rules=tuple(rules),
    )


def _loopback() -> Link:
    return Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536, qlen=1000)


def loopback_link() -> Link:
    """`lo` as every namespace has it."""
    return _loopback()


def loopback_addresses() -> tuple[Address, ...]:
    return (
        Address("lo", IPv4Interface("127.0.0.1/8"), scope="host"),
        Address("lo", IPv6Interface("::1/128"), scope="host"),
    )
