"""Which kube-proxy behaviours a version has, and the settings its configuration selects.

What kube-proxy writes changed across releases (kube-proxy.md §0.1); the table below is that
history as data, each row with the release that brought it and where that is known from, so a
cluster pinned to a version gets that version's rules. Versions before 1.28 are not modelled:
until `IPTablesOwnershipCleanup` went GA, kubelet owned `KUBE-MARK-DROP`, `KUBE-MARK-MASQ` and
`KUBE-POSTROUTING`, and the Local-policy chains were `KUBE-XLB-*` before 1.24.

`settings` reads the KubeProxyConfiguration fields of the spec the way kube-proxy defaults them
(kube-proxy.md §8.3: EKS's ConfigMap sets no clusterCIDR, so the ClusterCIDR detector is a no-op;
`localhostNodePorts` unset means true; `minSyncPeriod: 0s` means 1 s, which changes no rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Literal

from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import Cluster, NodeSpec

Version = tuple[int, int]

OLDEST_MODELLED: Version = (1, 28)


def parse_version(text: str) -> Version:
    """`v1.31`, `1.31.2`, `v1.31.2-eksbuild.3` → (1, 31)."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)(\.\d+)?([-+][0-9A-Za-z.-]+)?", text)
    if match is None:
        raise InputError(
            f"kube-proxy version {text!r} is not like v1.31",
            fix="write vMAJOR.MINOR, e.g. v1.31 or v1.31.2-eksbuild.3",
            path=("kubeProxy", "version"),
        )
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True, slots=True)
class KubeProxyFeatures:
    """Version-dependent behaviour of kube-proxy's iptables mode, each with its release."""

    version: Version
    invalid_drop_unless_be_liberal: bool
    """1.29 (PR #120412): the `--ctstate INVALID -j DROP` rule is left out when the kernel's
    `nf_conntrack_tcp_be_liberal` is non-zero (before: always written)."""
    nfacct_invalid_drop: bool
    """1.30 (PR #122812, merged January 2024): the INVALID drop counts into the nfacct object
    `ct_state_invalid_dropped_pkts`."""
    nfacct_localhost_node_ports: bool
    """1.31 (PR #125015, merged mid 2024): each NodePort gets a first `-d 127.0.0.0/8` rule that
    counts into `localhost_nps_accepted_pkts`."""
    lb_ip_mode_proxy: bool
    """1.30: `LoadBalancerIPMode` beta, on by default: an ingress with `ipMode: Proxy` gets no
    load-balancer-IP rules (1.29: alpha, off)."""
    node_hints: bool
    """1.34: `PreferSameTrafficDistribution` beta, on by default: endpoint `forNodes` hints
    (trafficDistribution PreferSameNode) narrow the cluster endpoints to this node's."""
    always_random_fully: bool
    """After 1.37 [inf]: master commit 6ee779e (May 2026) writes `--random-fully` without asking
    iptables; every release before asks (`HasRandomFully`: iptables ≥ 1.6.2)."""


FEATURE_VERSIONS: dict[str, Version] = {
    "invalid_drop_unless_be_liberal": (1, 29),
    "nfacct_invalid_drop": (1, 30),
    "nfacct_localhost_node_ports": (1, 31),
    "lb_ip_mode_proxy": (1, 30),
    "node_hints": (1, 34),
    "always_random_fully": (1, 38),
}
"""The first release with each behaviour (the docstrings of `KubeProxyFeatures` say why)."""


def features(version_text: str) -> KubeProxyFeatures:
    version = parse_version(version_text)
    if version < OLDEST_MODELLED:
        raise NotModelled(
            f"kube-proxy {version_text}: releases before 1.28 (kubelet-owned KUBE-MARK-DROP, "
            "KUBE-MARK-MASQ and KUBE-POSTROUTING; KUBE-XLB chains before 1.24)"
        )
    flags = {name: version >= first for name, first in FEATURE_VERSIONS.items()}
    return KubeProxyFeatures(version=version, **flags)


DetectorKind = Literal["none", "cidr", "interface"]


@dataclass(frozen=True, slots=True)
class LocalDetector:
    """The local-traffic detector (`localdetector.go`): how a rule says "from a pod of this
    node" (`if_local`) and "not from one" (`if_not_local`); `none` writes neither rule."""

    kind: DetectorKind
    value: str = ""
    """The CIDR (`-s`) or the interface with its `+` wildcard (`-i`)."""


@dataclass(frozen=True, slots=True)
class ProxierSettings:
    """Everything one node's kube-proxy needs beyond the Services: version behaviour, the
    configuration after kube-proxy's defaulting, and the node facts it probes."""

    features: KubeProxyFeatures
    mark: int
    masquerade_all: bool
    detector: LocalDetector
    localhost_node_ports: bool
    node_port_addresses: tuple[IPv4Network, ...] | None
    """None: every local address (`--dst-type LOCAL`); else the CIDRs to match node IPs in."""
    random_fully: bool
    nfacct: bool
    """kube-proxy could create its nfacct counters on this node (the kernel has nfnetlink_acct)."""
    tcp_be_liberal: bool
    conntrack_sysctls: tuple[tuple[str, str], ...]


EKS_CONNTRACK = {"tcp_established_timeout": "24h0m0s", "tcp_close_wait_timeout": "1h0m0s"}
"""EKS's `conntrack:` values (kube-proxy.md §8.3), used where the spec leaves them out."""


def _duration_seconds(text: str, path: tuple[str | int, ...]) -> int:
    """A Go duration (`24h0m0s`, `1h`, `90s`, `0s`) in whole seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or match is None:
        raise InputError(
            f"kubeProxy.{'.'.join(map(str, path[1:]))}: {text!r} is not a duration",
            fix="write a Go duration like 24h0m0s",
            path=path,
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _iptables_version(text: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in text.split("."))
    return major, minor, patch


def settings(cluster: Cluster, node: NodeSpec) -> ProxierSettings:
    """kube-proxy's effective settings on `node`; a mode other than iptables is not modelled."""
    proxy = cluster.kube_proxy
    if proxy.mode not in ("iptables", ""):
        raise NotModelled(f"kube-proxy mode {proxy.mode} (only iptables mode is modelled)")
    found = features(proxy.version)
    bit = proxy.iptables.masquerade_bit
    bit = proxy.masquerade_bit if bit is None else bit
    masquerade_all = proxy.iptables.masquerade_all
    masquerade_all = proxy.masquerade_all if masquerade_all is None else masquerade_all
    addresses = None
    if proxy.node_port_addresses:
        cidrs = [ip_network(text) for text in proxy.node_port_addresses if text != "primary"]
        if "primary" in proxy.node_port_addresses:
            raise NotModelled("kubeProxy.nodePortAddresses: primary")
        v4 = [cidr for cidr in cidrs if isinstance(cidr, IPv4Network)]
        if not any(cidr.prefixlen == 0 for cidr in v4):
            addresses = tuple(v4)
    localhost = proxy.iptables.localhost_node_ports is not False
    if addresses is not None and not any(IPv4Address("127.0.0.1") in c for c in addresses):
        localhost = False  # kube-proxy forces it off (kube-proxy.md §1.3)
    be_liberal = proxy.conntrack.tcp_be_liberal or _sysctl_set(
        cluster, "net.netfilter.nf_conntrack_tcp_be_liberal"
    )
    return ProxierSettings(
        features=found,
        mark=1 << (14 if bit is None else bit),
        masquerade_all=bool(masquerade_all),
        detector=_detector(cluster, node),
        localhost_node_ports=localhost,
        node_port_addresses=addresses,
        random_fully=found.always_random_fully
        or _iptables_version(cluster.node_defaults.iptables_version) >= (1, 6, 2),
        nfacct=cluster.node_defaults.nfacct,
        tcp_be_liberal=be_liberal,
        conntrack_sysctls=_conntrack_sysctls(cluster),
    )


def _sysctl_set(cluster: Cluster, key: str) -> bool:
    value = cluster.node_defaults.sysctls.get(key)
    return value is not None and str(value).strip() not in ("", "0")


def _detector(cluster: Cluster, node: NodeSpec) -> LocalDetector:
    """`detectLocalMode` (default ClusterCIDR) and where each mode reads its value; a mode whose
    value is empty is the no-op detector, as EKS's empty clusterCIDR is."""
    proxy = cluster.kube_proxy
    mode = proxy.detect_local_mode or "ClusterCIDR"
    if mode == "ClusterCIDR":
        cidrs = [part.strip() for part in proxy.cluster_cidr.split(",") if part.strip()]
        v4 = [cidr for cidr in cidrs if ":" not in cidr]
        return LocalDetector("cidr", str(ip_network(v4[0]))) if v4 else LocalDetector("none")
    if mode == "NodeCIDR":
        return (
            LocalDetector("cidr", str(node.pod_cidrs[0]))
            if node.pod_cidrs
            else LocalDetector("none")
        )
    if mode == "BridgeInterface":
        bridge = proxy.detect_local.bridge_interface
        if not bridge:
            raise InputError(
                "kubeProxy.detectLocalMode BridgeInterface needs detectLocal.bridgeInterface",
                fix="name the bridge, e.g. detectLocal: {bridgeInterface: cbr0}",
                path=("kubeProxy", "detectLocalMode"),
            )
        return LocalDetector("interface", bridge)
    prefix = proxy.detect_local.interface_name_prefix
    if not prefix:
        raise InputError(
            "kubeProxy.detectLocalMode InterfaceNamePrefix needs detectLocal.interfaceNamePrefix",
            fix="name the prefix, e.g. detectLocal: {interfaceNamePrefix: eni}",
            path=("kubeProxy", "detectLocalMode"),
        )
    return LocalDetector("interface", prefix + "+")


def _conntrack_sysctls(cluster: Cluster) -> tuple[tuple[str, str], ...]:
    """The per-namespace conntrack sysctls kube-proxy writes (kube-proxy.md §8.1).

    `nf_conntrack_max` and the `hashsize` module parameter are left out: the kernel lets only
    the initial namespace write them (a lab node is not one) and the value depends on the CPU
    count."""
    conntrack = cluster.kube_proxy.conntrack
    written: list[tuple[str, str]] = []
    for field, key in (
        ("tcp_established_timeout", "nf_conntrack_tcp_timeout_established"),
        ("tcp_close_wait_timeout", "nf_conntrack_tcp_timeout_close_wait"),
        ("udp_timeout", "nf_conntrack_udp_timeout"),
        ("udp_stream_timeout", "nf_conntrack_udp_timeout_stream"),
    ):
        text = getattr(conntrack, field) or EKS_CONNTRACK.get(field)
        if text is None:
            continue
        seconds = _duration_seconds(text, ("kubeProxy", "conntrack", _camel(field)))
        if seconds > 0:
            written.append((f"net.netfilter.{key}", str(seconds)))
    if conntrack.tcp_be_liberal:
        written.append(("net.netfilter.nf_conntrack_tcp_be_liberal", "1"))
    return tuple(written)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)
