"""Which VPC CNI behaviours a version has, and the settings its environment variables select.

The data plane the VPC CNI writes changed across releases (vpc-cni.md §0, talk-walks.md §2.9);
the table below is that history as data, each row with the release that introduced it, so a
cluster pinned to a version gets exactly that version's rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Network, NetmaskValueError

from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import interface_name_problem
from eksnet.model.source import shown

Version = tuple[int, int, int]


def parse_version(text: str) -> Version:
    match = re.match(r"^v(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise InputError(
            f"VPC CNI version {text!r} is not like v1.19.2",
            fix="write vMAJOR.MINOR.PATCH",
            path=("cni", "version"),
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(frozen=True, slots=True)
class CniFeatures:
    """Version-dependent behaviour, each flag with the release that brought it."""

    version: Version
    vlan_rules: bool
    """v1.7.0 (security groups for pods): the mangle restore on `vlan+` (M3) and SNAT's
    `! -o vlan+`; also the SNAT's default port randomisation became `prng` (`--random-fully`),
    `hashrandom` (`--random`) before (`pkg/networkutils/network.go` at v1.6.3 and v1.7.0)."""
    single_from_rule: bool
    """v1.8.0: one `1536: from POD lookup T` per pod (before: one rule per VPC CIDR)."""
    nat_connmark: bool
    """v1.8.0: AWS-CONNMARK-CHAIN-* in the nat table marks pod traffic leaving the VPC."""
    single_chain_layout: bool
    """v1.16.2: one AWS-SNAT-CHAIN-0 / AWS-CONNMARK-CHAIN-0 with RETURN rules (before: chains of
    chains, `! -d CIDR -j NEXT`)."""
    eni_primary_ip_rule: bool
    """v1.20.0: `32765: from ENI-PRIMARY-IP lookup T` for every secondary ENI."""
    plain_connmark_comment: bool
    """v1.23.0: connmark RETURN comment `AWS CONNMARK CHAIN` (before: `…, VPC CIDR`)."""
    pod_veth_created_in_host: bool
    """v1.23.0: the veth's host end is created straight in the host netns, so the pod's eth0 is
    ifindex 2 (before: the pair was made in the pod netns, eth0 = 3, host end moved out)."""
    nftables_connmark: bool
    """v1.23.0: with an nf_tables iptables, connmark rules live in nftables `table ip aws-cni`."""


def features(version_text: str) -> CniFeatures:
    version = parse_version(version_text)
    return CniFeatures(
        version=version,
        vlan_rules=version >= (1, 7, 0),
        single_from_rule=version >= (1, 8, 0),
        nat_connmark=version >= (1, 8, 0),
        single_chain_layout=version >= (1, 16, 2),
        eni_primary_ip_rule=version >= (1, 20, 0),
        plain_connmark_comment=version >= (1, 23, 0),
        pod_veth_created_in_host=version >= (1, 23, 0),
        nftables_connmark=version >= (1, 23, 0),
    )


@dataclass(frozen=True, slots=True)
class CniSettings:
    """The environment variables with a data-plane effect (vpc-cni.md §4), with their defaults."""

    external_snat: bool
    node_port_support: bool
    connmark: int
    randomize_snat: str
    """`AWS_VPC_K8S_CNI_RANDOMIZESNAT`; empty: the version's default (`CniFeatures.vlan_rules`)."""
    veth_prefix: str
    eni_mtu: int
    pod_mtu: int
    exclude_snat_cidrs: tuple[IPv4Network, ...]


_NOT_MODELLED_WHEN_TRUE = {
    "ENABLE_POD_ENI": "security groups for pods (ENABLE_POD_ENI: trunk/branch ENIs, VLAN tables)",
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "VPC CNI custom networking (ENIConfig subnets)",
    "ENABLE_IPv6": "IPv6 clusters",
    "ENABLE_V6_EGRESS": "IPv6 egress (egress-cni v6if0)",
    "ENABLE_V4_EGRESS": "IPv4 egress for IPv6 clusters (egress-cni v4if0)",
    "ENABLE_MULTI_NIC": "multi-NIC pods",
}


def _flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    value = env.get(key)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise InputError(
            f"cni.env.{key}: {value!r} is not true or false",
            fix='write "true" or "false"',
            path=("cni", "env", key),
        )
    return lowered == "true"


def settings(env: Mapping[str, str]) -> CniSettings:
    """Read the env vars the way aws-node does, defaults included; unmodelled features say so."""
    for key, what in _NOT_MODELLED_WHEN_TRUE.items():
        if _flag(env, key, False):
            raise NotModelled(what)
    try:
        connmark = int(env.get("AWS_VPC_K8S_CNI_CONNMARK", "0x80"), 0)
    except ValueError:
        raise InputError(
            f"cni.env.AWS_VPC_K8S_CNI_CONNMARK: {env['AWS_VPC_K8S_CNI_CONNMARK']!r} "
            "is not a number",
            fix="write a mark like 0x80",
            path=("cni", "env", "AWS_VPC_K8S_CNI_CONNMARK"),
        ) from None
    if not 0 < connmark <= 0xFFFFFFFF:
        # aws-node's getConnmark logs "out of range" and uses 0x80; a spec that says otherwise
        # would show a mark no node has (and an iptables line iptables-restore refuses).
        raise InputError(
            f"cni.env.AWS_VPC_K8S_CNI_CONNMARK: {shown(env['AWS_VPC_K8S_CNI_CONNMARK'])} is "
            "outside 0x1..0xffffffff (aws-node would ignore it and use 0x80)",
            fix="write a mark like 0x80",
            path=("cni", "env", "AWS_VPC_K8S_CNI_CONNMARK"),
        )
    prefix = env.get("AWS_VPC_K8S_CNI_VETHPREFIX", "eni")
    if len(prefix) > 4 or prefix in ("eth", "vlan", "lo"):
        raise InputError(
            f"cni.env.AWS_VPC_K8S_CNI_VETHPREFIX: {prefix!r} is rejected by aws-node",
            fix="at most 4 characters and not eth, vlan or lo",
            path=("cni", "env", "AWS_VPC_K8S_CNI_VETHPREFIX"),
        )
    problem = interface_name_problem(prefix + "0" * 11) if prefix else None
    if problem is not None:
        # Host veth names are the prefix and 11 hex digits; the kernel would refuse them.
        raise InputError(
            f"cni.env.AWS_VPC_K8S_CNI_VETHPREFIX: {prefix!r} makes host veth names that "
            f"Linux refuses (the name {problem})",
            fix="letters and digits, at most 4, e.g. eni",
            path=("cni", "env", "AWS_VPC_K8S_CNI_VETHPREFIX"),
        )
    exclusions: list[IPv4Network] = []
    for item in filter(
        None,
        (part.strip() for part in env.get("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "").split(",")),
    ):
        try:
            exclusions.append(IPv4Network(item))
        except (AddressValueError, NetmaskValueError, ValueError):
            continue  # aws-node skips invalid and IPv6 entries (vpc-cni.md §2.4)
    return CniSettings(
        external_snat=_flag(env, "AWS_VPC_K8S_CNI_EXTERNALSNAT", False),
        node_port_support=_flag(env, "AWS_VPC_CNI_NODE_PORT_SUPPORT", True),
        connmark=connmark,
        randomize_snat=env.get("AWS_VPC_K8S_CNI_RANDOMIZESNAT", ""),
        veth_prefix=prefix,
        eni_mtu=_mtu(env.get("AWS_VPC_ENI_MTU")),
        pod_mtu=_mtu(env.get("POD_MTU", env.get("AWS_VPC_ENI_MTU"))),
        exclude_snat_cidrs=tuple(exclusions),
    )


def _mtu(value: str | None) -> int:
    """Non-numeric or outside 576..9001 means 9001, as `GetPodMTU` does."""
    try:
        mtu = int(value) if value is not None else 9001
    except ValueError:
        return 9001
    return mtu if 576 <= mtu <= 9001 else 9001
