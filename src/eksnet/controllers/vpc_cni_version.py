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
    primary_interface_by_mac: bool
    """v1.4.0: the NodePort mark rule (M1) names the interface found by the primary ENI's MAC
    (before: `-i eth0` written literally, whatever the interface is called)."""
    randomize_snat_env: bool
    """v1.4.0: `AWS_VPC_K8S_CNI_RANDOMIZESNAT` is read (before: the SNAT rule has no port
    randomisation flag)."""
    snat_chain_comment: str
    """The comment on the POSTROUTING jump and the chain rules: `AWS SNAT CHAN` (sic) before
    v1.6.0, `AWS SNAT CHAIN` since (`pkg/networkutils/network.go` at v1.5.4 and v1.6.0)."""
    mtu_and_exclusion_env: bool
    """v1.6.0: `AWS_VPC_ENI_MTU` and `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS` are read (before: MTU
    9001, no exclusions)."""
    rp_filter_always: bool
    """v1.7.0: the init container sets the primary interface's rp_filter to 2 on every node
    (`scripts/init.sh`); before, ipamd did so only with NodePort support on."""
    vlan_rules: bool
    """v1.7.0 (security groups for pods): the mangle restore on `vlan+` (M3) and SNAT's
    `! -o vlan+`; also the SNAT's default port randomisation became `prng` (`--random-fully`),
    `hashrandom` (`--random`) before (`pkg/networkutils/network.go` at v1.6.3 and v1.7.0)."""
    veth_prefix_restore: bool
    """v1.8.0: the connmark restore (M2) matches `-i PREFIX+` from `AWS_VPC_K8S_CNI_VETHPREFIX`
    (before: `-i eni+` written literally, so another prefix lost the restore)."""
    host_rule_without_node_port: bool
    """v1.12.1 (PR #2026, issue #2025): rule 1024 and the restore (M2) are also there when the
    node SNATs with NodePort support off (before: only with NodePort support on, so a pod on a
    secondary ENI lost the mark after its connection's first packet); the same change dropped
    `-m state --state NEW` from the nat table's `AWS, outbound connections` rule."""
    single_from_rule: bool
    """v1.8.0: one `1536: from POD lookup T` per pod (before: one rule per VPC CIDR)."""
    nat_connmark: bool
    """v1.8.0: AWS-CONNMARK-CHAIN-* in the nat table marks pod traffic leaving the VPC."""
    single_chain_layout: bool
    """v1.16.2: one AWS-SNAT-CHAIN-0 / AWS-CONNMARK-CHAIN-0 with RETURN rules (before: chains of
    chains, `! -d CIDR -j NEXT`)."""
    pod_mtu_env: bool
    """v1.16.4: `POD_MTU` is read (before: pods get the ENI MTU)."""
    eni_primary_ip_rule: bool
    """v1.20.0: `32765: from ENI-PRIMARY-IP lookup T` for every secondary ENI."""
    plain_connmark_comment: bool
    """v1.23.0: connmark RETURN comment `AWS CONNMARK CHAIN` (before: `…, VPC CIDR`)."""
    pod_veth_created_in_host: bool
    """v1.23.0: the veth's host end is created straight in the host netns, so the pod's eth0 is
    ifindex 2 (before: the pair was made in the pod netns, eth0 = 3, host end moved out)."""
    nftables_connmark: bool
    """v1.23.0: with an nf_tables iptables, connmark rules live in nftables `table ip aws-cni`."""


OLDEST_MODELLED: Version = (1, 3, 0)
"""v1.3.0 brought secondary VPC CIDRs and with them the rules later releases build on (the
AWS-SNAT-CHAIN chains, one `1536: from POD to VPC-CIDR` rule per CIDR); before it, a
`1024: not to VPC-CIDR lookup main` rule and one `! -d VPC-CIDR` SNAT rule were the design
(`pkg/networkutils/network.go` at v1.2.1), which is not modelled."""


def features(version_text: str) -> CniFeatures:
    version = parse_version(version_text)
    if version < OLDEST_MODELLED:
        raise NotModelled(
            f"VPC CNI {version_text} (releases before v1.3.0 used a different node design)"
        )
    return CniFeatures(
        version=version,
        primary_interface_by_mac=version >= (1, 4, 0),
        randomize_snat_env=version >= (1, 4, 0),
        snat_chain_comment="AWS SNAT CHAIN" if version >= (1, 6, 0) else "AWS SNAT CHAN",
        mtu_and_exclusion_env=version >= (1, 6, 0),
        rp_filter_always=version >= (1, 7, 0),
        veth_prefix_restore=version >= (1, 8, 0),
        host_rule_without_node_port=version >= (1, 12, 1),
        pod_mtu_env=version >= (1, 16, 4),
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
    """`AWS_VPC_K8S_CNI_RANDOMIZESNAT`; empty: the version's default (`CniFeatures.vlan_rules`);
    `none` before v1.4.0, which had no randomisation."""
    veth_prefix: str
    eni_mtu: int
    pod_mtu: int
    exclude_snat_cidrs: tuple[IPv4Network, ...]


_NOT_MODELLED_WHEN_TRUE: dict[str, tuple[Version, str]] = {
    # the release that first reads the variable (a `git grep` over the tags): before it,
    # aws-node ignores the variable and the node is what the rest of the spec says
    "ENABLE_POD_ENI": (
        (1, 7, 0),
        "security groups for pods (ENABLE_POD_ENI: trunk/branch ENIs, VLAN tables)",
    ),
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": (
        (1, 2, 0),
        "VPC CNI custom networking (ENIConfig subnets)",
    ),
    "ENABLE_IPv6": ((1, 10, 0), "IPv6 clusters"),
    "ENABLE_V6_EGRESS": ((1, 13, 0), "IPv6 egress (egress-cni v6if0)"),
    "ENABLE_V4_EGRESS": ((1, 15, 1), "IPv4 egress for IPv6 clusters (egress-cni v4if0)"),
    "ENABLE_MULTI_NIC": ((1, 20, 0), "multi-NIC pods"),
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


def settings(env: Mapping[str, str], found: CniFeatures) -> CniSettings:
    """Read the env vars the way this version's aws-node does, defaults included; unmodelled
    features say so. A variable the version does not read yet is ignored, as aws-node ignores
    it: a cluster imported with `AWS_VPC_ENI_MTU` set on v1.5 still runs at 9001."""
    for key, (since, what) in _NOT_MODELLED_WHEN_TRUE.items():
        if found.version >= since and _flag(env, key, False):
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
    excluded = (
        env.get("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "") if found.mtu_and_exclusion_env else ""
    )
    for item in filter(None, (part.strip() for part in excluded.split(","))):
        try:
            exclusions.append(IPv4Network(item))
        except (AddressValueError, NetmaskValueError, ValueError):
            continue  # aws-node skips invalid and IPv6 entries (vpc-cni.md §2.4)
    eni_mtu_text = env.get("AWS_VPC_ENI_MTU") if found.mtu_and_exclusion_env else None
    eni_mtu = _mtu(eni_mtu_text)
    return CniSettings(
        external_snat=_flag(env, "AWS_VPC_K8S_CNI_EXTERNALSNAT", False),
        node_port_support=_flag(env, "AWS_VPC_CNI_NODE_PORT_SUPPORT", True),
        connmark=connmark,
        randomize_snat=(
            env.get("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "") if found.randomize_snat_env else "none"
        ),
        veth_prefix=prefix,
        eni_mtu=eni_mtu,
        pod_mtu=_mtu(env.get("POD_MTU", eni_mtu_text)) if found.pod_mtu_env else eni_mtu,
        exclude_snat_cidrs=tuple(exclusions),
    )


def _mtu(value: str | None) -> int:
    """Non-numeric or outside 576..9001 means 9001, as `GetPodMTU` does."""
    try:
        mtu = int(value) if value is not None else 9001
    except ValueError:
        return 9001
    return mtu if 576 <= mtu <= 9001 else 9001
