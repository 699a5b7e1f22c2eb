"""ipamd's node-level setup: rule 1024, one route table per secondary ENI, the iptables rules.

Follows `pkg/networkutils/network.go` as summarised in vpc-cni.md §2 (SetupHostNetwork,
SetupENINetwork, the SNAT/connmark rule builders). The iptables rules come out as
`iptables-save` text in the order ipamd leaves them on a fresh node: RETURN rules are inserted at
position 1 (so they end up in reverse input order), the action rule is appended last.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from eksnet.controllers.vpc_cni_version import CniFeatures, CniSettings
from eksnet.dataplane.state import TABLE_MAIN, Route, Rule

NODE_PORT_RULE_PRIORITY = 1024
ENI_PRIMARY_IP_RULE_PRIORITY = 32765


def route_table_id(device: int) -> int:
    """Card 0: the primary ENI (device 0) uses main; device d ≥ 1 uses table d + 1."""
    return TABLE_MAIN if device == 0 else device + 1


def host_network_rules(features: CniFeatures, settings: CniSettings) -> tuple[Rule, ...]:
    """Rule 1024 steers marked traffic (NodePort replies, SNATed egress) through main → eth0.

    Present iff NodePort support is on or the node SNATs (vpc-cni.md §2.2 step 2); before
    v1.12.1 only with NodePort support on.
    """
    if not _restores_marks(features, settings):
        return ()
    mark = settings.connmark
    return (Rule(NODE_PORT_RULE_PRIORITY, table=TABLE_MAIN, fwmark=mark, fwmask=mark),)


@dataclass(frozen=True, slots=True)
class EniSetup:
    """What SetupENINetwork leaves for one secondary ENI."""

    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]


def eni_network(
    features: CniFeatures,
    *,
    device: int,
    linux: str,
    primary_ip: IPv4Address,
    subnet: IPv4Network,
) -> EniSetup:
    """Table d+1 holds only the gateway (scope link) and a default via it: no connected route,
    so even same-subnet destinations go to the router's MAC (vpc-cni.md §2.3)."""
    table = route_table_id(device)
    gateway = subnet.network_address + 1
    routes = (
        Route(table, IPv4Network(f"{gateway}/32"), dev=linux, scope="link"),
        Route(table, IPv4Network("0.0.0.0/0"), gateway=gateway, dev=linux),
    )
    rules: tuple[Rule, ...] = ()
    if features.eni_primary_ip_rule:
        rules = (
            Rule(ENI_PRIMARY_IP_RULE_PRIORITY, table=table, src=IPv4Network(f"{primary_ip}/32")),
        )
    return EniSetup(routes=routes, rules=rules)


def _restores_marks(features: CniFeatures, settings: CniSettings) -> bool:
    """Whether rule 1024 and the veth restore (M2) exist: they carry NodePort replies and,
    since v1.12.1, SNATed egress marked by the nat table's connmark chain."""
    if settings.node_port_support:
        return True
    return features.host_rule_without_node_port and not settings.external_snat


def _mark(value: int) -> str:
    return f"0x{value:x}"


def _cidr(network: IPv4Network) -> str:
    """iptables-save omits a /0 destination entirely (vpc-cni.md §7 gotcha 5)."""
    return "" if network.prefixlen == 0 else f"-d {network} "


def _snat_flag(features: CniFeatures, settings: CniSettings) -> str:
    """The SNAT rule's port randomisation: the env's, else the version's default (`prng` since
    v1.7.0, `hashrandom` before); an unknown value is the default, as aws-node reads it."""
    default = "prng" if features.vlan_rules else "hashrandom"
    chosen = settings.randomize_snat or default
    flags = {"prng": " --random-fully", "hashrandom": " --random", "none": ""}
    return flags.get(chosen, flags[default])


@dataclass(frozen=True, slots=True)
class IptablesRules:
    """ipamd's rules per table, each a list of `-A` lines in saved order, plus its user chains."""

    mangle: tuple[str, ...]
    nat_chains: tuple[str, ...]
    nat: tuple[str, ...]


def iptables_rules(
    features: CniFeatures,
    settings: CniSettings,
    *,
    primary_interface: str,
    primary_ip: IPv4Address,
    vpc_cidrs: tuple[IPv4Network, ...],
) -> IptablesRules:
    """The mangle (M1–M3) and nat (C1–C4, S1–S4) rules of vpc-cni.md §2.4–2.5 for this version."""
    mark = _mark(settings.connmark)
    mangle: list[str] = []
    if settings.node_port_support:
        marked = primary_interface if features.primary_interface_by_mac else "eth0"
        mangle.append(
            f'-A PREROUTING -i {marked} -m comment --comment "AWS, primary ENI" '
            f"-m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark {mark}/{mark}"
        )
    if _restores_marks(features, settings):
        veths = settings.veth_prefix if features.veth_prefix_restore else "eni"
        mangle.append(
            f'-A PREROUTING -i {veths}+ -m comment --comment "AWS, primary ENI" '
            f"-j CONNMARK --restore-mark --nfmask {mark} --ctmask {mark}"
        )
    if settings.node_port_support and features.vlan_rules:
        mangle.append(
            '-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" '
            f"-j CONNMARK --restore-mark --nfmask {mark} --ctmask {mark}"
        )
    chains = ["AWS-SNAT-CHAIN-0"]
    nat: list[str] = []
    if settings.external_snat:
        return IptablesRules(tuple(mangle), tuple(chains), ())
    exempt = list(vpc_cidrs)
    connmark_chains, connmark_rules = _connmark(features, settings, exempt)
    chains += connmark_chains
    if features.nat_connmark:
        # `-m state --state NEW` until v1.12.1: always true in the nat table, which sees only
        # a connection's first packet.
        new_only = "" if features.host_rule_without_node_port else "-m state --state NEW "
        nat.append(
            f"-A PREROUTING -i {settings.veth_prefix}+ -m comment --comment "
            f'"AWS, outbound connections" {new_only}-j AWS-CONNMARK-CHAIN-0'
        )
        nat.append(
            '-A PREROUTING -m comment --comment "AWS, CONNMARK" '
            f"-j CONNMARK --restore-mark --nfmask {mark} --ctmask {mark}"
        )
    nat.append(
        f'-A POSTROUTING -m comment --comment "{features.snat_chain_comment}" -j AWS-SNAT-CHAIN-0'
    )
    nat += connmark_rules
    snat_chains, snat_rules = _snat(features, settings, primary_ip, list(vpc_cidrs))
    chains += snat_chains
    nat += snat_rules
    return IptablesRules(tuple(mangle), tuple(dict.fromkeys(chains)), tuple(nat))


def _connmark(
    features: CniFeatures, settings: CniSettings, vpc_cidrs: list[IPv4Network]
) -> tuple[list[str], list[str]]:
    if not features.nat_connmark:
        return [], []
    mark = _mark(settings.connmark)
    action = f'-m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark {mark}/{mark}'
    exempt = [(cidr, "VPC CIDR") for cidr in vpc_cidrs]
    exempt += [(cidr, "EXCLUDED CIDR") for cidr in settings.exclude_snat_cidrs]
    commented = [
        (
            cidr,
            "AWS CONNMARK CHAIN"
            if features.plain_connmark_comment
            else f"AWS CONNMARK CHAIN, {kind}",
        )
        for cidr, kind in exempt
    ]
    if not features.single_chain_layout:
        return _chained("AWS-CONNMARK-CHAIN", commented, action)
    rules = []
    for cidr, comment in reversed(commented):  # each RETURN was inserted at position 1
        rules.append(
            f'-A AWS-CONNMARK-CHAIN-0 {_cidr(cidr)}-m comment --comment "{comment}" -j RETURN'
        )
    rules.append(f"-A AWS-CONNMARK-CHAIN-0 {action}")
    return ["AWS-CONNMARK-CHAIN-0"], rules


def _snat(
    features: CniFeatures,
    settings: CniSettings,
    primary_ip: IPv4Address,
    vpc_cidrs: list[IPv4Network],
) -> tuple[list[str], list[str]]:
    action = (
        ("! -o vlan+ " if features.vlan_rules else "")
        + '-m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL '
        f"-j SNAT --to-source {primary_ip}{_snat_flag(features, settings)}"
    )
    exempt = [(cidr, features.snat_chain_comment) for cidr in vpc_cidrs]
    exempt += [(cidr, "AWS SNAT CHAIN EXCLUSION") for cidr in settings.exclude_snat_cidrs]
    if not features.single_chain_layout:
        return _chained("AWS-SNAT-CHAIN", exempt, action)
    rules = []
    for cidr, comment in reversed(exempt):
        rules.append(f'-A AWS-SNAT-CHAIN-0 {_cidr(cidr)}-m comment --comment "{comment}" -j RETURN')
    rules.append(f"-A AWS-SNAT-CHAIN-0 {action}")
    return ["AWS-SNAT-CHAIN-0"], rules


def _chained(
    prefix: str, cidrs: list[tuple[IPv4Network, str]], action: str
) -> tuple[list[str], list[str]]:
    """The pre-v1.16.2 layout: chain N jumps to N+1 for destinations outside CIDR N, the last
    chain holds the action (vpc-cni.md §2.7 variants). Each CIDR keeps its own comment
    (`…, VPC CIDR` / `…, EXCLUDED CIDR`; `AWS SNAT CHAIN` / `… EXCLUSION`)."""
    chains = [f"{prefix}-{index}" for index in range(len(cidrs) + 1)]
    rules = [
        f'-A {chains[index]} ! -d {cidr} -m comment --comment "{comment}" -j {chains[index + 1]}'
        for index, (cidr, comment) in enumerate(cidrs)
    ]
    rules.append(f"-A {chains[-1]} {action}")
    return chains, rules
