"""Security groups, network ACLs and prefix lists: from the spec to the VPC state.

A spec writes rules as people do (`{protocol: tcp, ports: "30080", source: 0.0.0.0/0}`); the
state holds them as AWS does (`model.vpc_filters` reads the words): one `SgRule` per peer with
an IANA protocol number, NACL entries by number with the `*` entries (32767, deny all) that
every NACL ends with. A VPC always has a default NACL (a new VPC's allows everything both ways
as rule 100); a spec that names none gets it for every subnet no declared NACL guards
(vpc-fabric.md §3).
"""

from __future__ import annotations

from ipaddress import IPv4Network

from eksnet.dataplane.security import (
    ALL_PROTOCOLS,
    NACL_DEFAULT_DENY,
    NaclEntry,
    NetworkAcl,
    PrefixList,
    SecurityGroup,
    SgRule,
)
from eksnet.model.cluster import Cluster, NaclRuleSpec, SgRuleSpec
from eksnet.model.vpc_filters import ICMP, port_range, protocol_number

DEFAULT_NACL = "acl-default"
"""The id the state gives the VPC's default NACL when the spec declares none (AWS's id is
`acl-` and a random suffix the spec does not know)."""
ANYWHERE = IPv4Network("0.0.0.0/0")


def security_groups(cluster: Cluster) -> tuple[SecurityGroup, ...]:
    groups: list[SecurityGroup] = []
    for name, spec in cluster.vpc.security_groups.items():
        rules = [
            _sg_rule(rule, "ingress", index, rule.source) for index, rule in enumerate(spec.inbound)
        ]
        rules += [
            _sg_rule(rule, "egress", index, rule.destination)
            for index, rule in enumerate(spec.outbound)
        ]
        groups.append(SecurityGroup(name, tuple(rules), spec.description))
    return tuple(groups)


def _sg_rule(rule: SgRuleSpec, direction: str, index: int, peer: str | None) -> SgRule:
    assert peer is not None  # model.validate: every rule has its direction's peer
    protocol = protocol_number(rule.protocol)
    low, high = port_range(rule.ports, protocol)
    cidr = prefix_list = group = None
    if peer.startswith("pl-"):
        prefix_list = peer
    elif "/" in peer or peer[:1].isdigit():
        cidr = IPv4Network(peer)
    else:
        group = peer
    return SgRule(
        "ingress" if direction == "ingress" else "egress",
        protocol,
        low,
        high,
        cidr=cidr,
        prefix_list=prefix_list,
        group=group,
        description=rule.description,
        index=index,
    )


def network_acls(cluster: Cluster) -> tuple[NetworkAcl, ...]:
    acls: list[NetworkAcl] = []
    guarded: set[str] = set()
    for name, spec in cluster.vpc.network_acls.items():
        entries = [_nacl_entry(rule, egress=False) for rule in spec.inbound]
        entries += [_nacl_entry(rule, egress=True) for rule in spec.outbound]
        entries += _star_entries()
        acls.append(NetworkAcl(name, tuple(spec.subnets), tuple(entries), default=spec.default))
        guarded.update(spec.subnets)
    if not any(acl.default for acl in acls):
        allow_all = [
            NaclEntry(100, egress, "allow", ALL_PROTOCOLS, ANYWHERE) for egress in (False, True)
        ]
        others = tuple(s.name for s in cluster.vpc.subnets if s.name not in guarded)
        acls.append(NetworkAcl(DEFAULT_NACL, others, (*allow_all, *_star_entries()), default=True))
    return tuple(acls)


def _star_entries() -> list[NaclEntry]:
    return [
        NaclEntry(NACL_DEFAULT_DENY, egress, "deny", ALL_PROTOCOLS, ANYWHERE)
        for egress in (False, True)
    ]


def _nacl_entry(rule: NaclRuleSpec, *, egress: bool) -> NaclEntry:
    protocol = protocol_number(rule.protocol)
    low, high = port_range(rule.ports, protocol)
    if protocol in ICMP:
        return NaclEntry(
            rule.rule, egress, rule.action, protocol, rule.cidr, icmp_type=low, icmp_code=high
        )
    return NaclEntry(rule.rule, egress, rule.action, protocol, rule.cidr, low, high)


def prefix_lists(cluster: Cluster) -> tuple[PrefixList, ...]:
    return tuple(PrefixList(name, tuple(cidrs)) for name, cidrs in cluster.vpc.prefix_lists.items())
