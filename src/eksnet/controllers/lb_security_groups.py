"""The security groups the load balancer controllers create, and the rules they add to the
nodes' groups (aws-load-balancers.md §1.7).

A load balancer reaches its targets only through rules a controller writes: the in-tree
controller opens the node's group to a CLB's group (every protocol and port) or, for an NLB,
to the clients' CIDRs on the node ports (and to the NLB's subnets for health checks); the LBC
gives an NLB (v2.6.0+) or an ALB a frontend group per load balancer and a backend group shared
by the cluster, and opens each target's group to the backend group on the target and
health-check ports, merged into one port range per (protocol, source group) (its networking
manager's `computeRestrictedIngressPermissionsPerSG`). Where the spec pins a load balancer's
groups (`loadBalancers[].securityGroups`, as the `…-security-groups` annotation would), they are
the user's: the controllers create none for it and touch no node group (the LBC's default,
`manage-backend-security-group-rules` off).

Groups get AWS's shape: an id `sg-` + 17 hex characters (a hash of the group's name, stable; AWS
draws it at random), the name and the description the controller gives them, and AWS's default
outbound rule (all traffic to 0.0.0.0/0), which the controllers keep.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from eksnet.controllers.lbc_version import LbcSettings
from eksnet.dataplane.load_balancers import LoadBalancer
from eksnet.dataplane.security import ALL_PROTOCOLS, PROTOCOL_NUMBERS, SecurityGroup, SgRule
from eksnet.errors import InputError
from eksnet.model.cluster import Cluster

ANYWHERE = IPv4Network("0.0.0.0/0")
ICMP = PROTOCOL_NUMBERS["icmp"]
CLUSTER_TAG = "kubernetes.io/cluster/"
SHARED = "elbv2.k8s.aws/targetGroupBinding=shared"
"""The description the LBC's networking manager gives the node rules it manages."""


@dataclass(frozen=True, slots=True)
class SgInputs:
    """What a load balancer's groups depend on beyond the load balancer itself."""

    source_ranges: tuple[IPv4Network, ...]
    """Client CIDRs (`loadBalancerSourceRanges`, the `load-balancer-source-ranges`
    annotation, an ALB's `inbound-cidrs`); empty: the controller's default."""
    user_groups: bool
    """The spec pins the load balancer's groups: the user's, not the controller's."""
    nlb_groups_disabled: bool = False
    """`aws-load-balancer-disable-nlb-sg: "true"`."""
    icmp_for_pmtu: bool = False
    """`aws-load-balancer-enable-icmp-for-path-mtu-discovery: "on"`."""


@dataclass(slots=True)
class Plan:
    """The groups the controllers create and the rules they add to existing groups."""

    groups: dict[str, SecurityGroup] = field(default_factory=dict)
    node_rules: dict[str, dict[SgRule, None]] = field(default_factory=dict)
    """Target group id → rules added, in the order the controllers add them (a rule added
    twice is one rule: AWS refuses a duplicate permission)."""
    merged: dict[tuple[str, str, int], tuple[int, int]] = field(default_factory=dict)
    """(target group, source group, protocol) → port range: the LBC's merged node rules."""


def group_id(name: str) -> str:
    return "sg-" + hashlib.sha256(name.encode()).hexdigest()[:17]


def _hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]


def _trim(text: str, length: int) -> str:
    return "".join(c for c in text if c.isalnum())[:length]


def _default_egress() -> SgRule:
    return SgRule("egress", ALL_PROTOCOLS, None, None, cidr=ANYWHERE)


def _group(name: str, description: str, inbound: Iterable[SgRule]) -> SecurityGroup:
    rules = [
        SgRule(r.direction, r.protocol, r.from_port, r.to_port, cidr=r.cidr, group=r.group,
               description=r.description, index=i)
        for i, r in enumerate(inbound)
    ]  # fmt: skip
    return SecurityGroup(group_id(name), (*rules, _default_egress()), description, name=name)


def target_group_of(cluster: Cluster, enis: Sequence[str], owner: str) -> str:
    """The group a controller opens on a target's ENI: its only group, or the one tagged
    `kubernetes.io/cluster/<cluster>` among several (LBC `resolveEndpointSGForENI`; the
    in-tree controller picks the same); none, or several tagged, is the controller's error."""
    tags = {name: spec.tags for name, spec in cluster.vpc.security_groups.items()}
    mine = f"{CLUSTER_TAG}{cluster.name}"
    if len(enis) == 1:
        return enis[0]
    tagged = [g for g in enis if mine in tags.get(g, {})]
    if len(tagged) != 1:
        raise InputError(
            f"{owner}: a target's ENI has {len(enis)} security groups and "
            f"{len(tagged)} of them tagged {mine}: the controller cannot choose where to open "
            "the target's ports",
            fix=f"tag exactly one of its groups {mine}",
        )
    return tagged[0]


def plan(
    cluster: Cluster,
    lbc: LbcSettings | None,
    built: Sequence[tuple[LoadBalancer, SgInputs]],
    target_enis: Mapping[IPv4Address, tuple[str, ...]],
) -> tuple[Plan, dict[str, tuple[str, ...]]]:
    """The groups and node rules for every load balancer built, and each load balancer's
    groups (owner → ids). `target_enis`: a target address → its ENI's groups."""
    result = Plan()
    attached: dict[str, tuple[str, ...]] = {}
    backend: str | None = None
    for balancer, inputs in built:
        if inputs.user_groups:
            attached[balancer.owner] = balancer.security_groups
            continue
        targets = _targets(cluster, balancer, target_enis)
        if balancer.controller == "in-tree" and balancer.kind == "clb":
            attached[balancer.owner] = _cpa_clb(result, balancer, inputs, targets)
        elif balancer.controller == "in-tree":
            attached[balancer.owner] = ()
            _cpa_nlb(cluster, result, balancer, inputs, targets)
        else:
            assert lbc is not None
            with_groups = balancer.kind == "alb" or (
                lbc.features.nlb_security_groups and not inputs.nlb_groups_disabled
            )
            if not with_groups:
                attached[balancer.owner] = ()
                _lbc_nlb_cidr_rules(cluster, result, balancer, inputs, targets)
                continue
            frontend = _lbc_frontend(result, cluster, balancer, inputs)
            if lbc.backend_security_group:
                if backend is None:
                    name = f"k8s-traffic-{_trim(cluster.name, 34)}-{_hash(cluster.name)}"
                    backend = _add(
                        result,
                        _group(name, "[k8s] Shared Backend SecurityGroup for LoadBalancer", ()),
                    )
                attached[balancer.owner] = (frontend, backend)
                source = backend
            else:
                attached[balancer.owner] = (frontend,)
                source = frontend
            _lbc_node_rules(result, balancer, targets, source, lbc.restricted_rules)
    for (target, source, protocol), (low, high) in result.merged.items():
        result.node_rules.setdefault(target, {})[
            SgRule("ingress", protocol, low, high, group=source,
                   description=SHARED)
        ] = None  # fmt: skip
    return result, attached


def _add(result: Plan, group: SecurityGroup) -> str:
    result.groups.setdefault(group.id, group)
    return group.id


@dataclass(frozen=True, slots=True)
class _Target:
    group: str
    """The group the controller opens (`target_group_of`)."""
    port: int
    health_port: int
    protocol: int


def _targets(
    cluster: Cluster,
    balancer: LoadBalancer,
    target_enis: Mapping[IPv4Address, tuple[str, ...]],
) -> list[_Target]:
    found: list[_Target] = []
    for tg in balancer.target_groups:
        protocol = PROTOCOL_NUMBERS.get(tg.protocol.lower(), PROTOCOL_NUMBERS["tcp"])
        if tg.protocol in ("HTTP", "HTTPS", "TLS"):
            protocol = PROTOCOL_NUMBERS["tcp"]
        for target in tg.targets:
            enis = target_enis.get(target.address)
            if not enis:
                continue  # a target outside the VPC's ENIs: nothing to open
            chosen = target_group_of(cluster, enis, balancer.owner)
            health = tg.health_check.port if tg.health_check.port is not None else target.port
            found.append(_Target(chosen, target.port, health, protocol))
    return found


def _ranges(inputs: SgInputs, default: Sequence[IPv4Network]) -> tuple[IPv4Network, ...]:
    return inputs.source_ranges or tuple(default)


def _node_rule(
    result: Plan, group: str, protocol: int, low: int | None, high: int | None,
    *, cidr: IPv4Network | None = None, source: str | None = None, description: str = "",
) -> None:  # fmt: skip
    rule = SgRule("ingress", protocol, low, high, cidr=cidr, group=source,
                  description=description)  # fmt: skip
    result.node_rules.setdefault(group, {})[rule] = None


def _cpa_clb(
    result: Plan, balancer: LoadBalancer, inputs: SgInputs, targets: list[_Target]
) -> tuple[str, ...]:
    """CPA's CLB: `k8s-elb-<name>` open on each listener port (TCP) and to ICMP 3/4 from the
    source ranges; the node's group open to it on every protocol and port."""
    service = balancer.owner.removeprefix("service/")
    ranges = _ranges(inputs, (ANYWHERE,))
    inbound = [
        SgRule("ingress", PROTOCOL_NUMBERS["tcp"], listener.port, listener.port, cidr=cidr)
        for listener in balancer.listeners
        for cidr in ranges
    ]
    inbound += [SgRule("ingress", ICMP, 3, 4, cidr=cidr) for cidr in ranges]
    name = f"k8s-elb-{balancer.name}"
    own = _add(
        result,
        _group(name, f"Security group for Kubernetes ELB {balancer.name} ({service})", inbound),
    )
    for target in targets:
        _node_rule(result, target.group, ALL_PROTOCOLS, None, None, source=own)
    return (own,)


def _subnet_cidrs(cluster: Cluster, balancer: LoadBalancer) -> list[IPv4Network]:
    names = {node.subnet for node in balancer.nodes}
    return [subnet.cidr for subnet in cluster.vpc.subnets if subnet.name in names]


def _cpa_nlb(
    cluster: Cluster,
    result: Plan,
    balancer: LoadBalancer,
    inputs: SgInputs,
    targets: list[_Target],
) -> None:
    """CPA's NLB has no group; the node's group gets the node ports from the client CIDRs
    (`kubernetes.io/rule/nlb/client=<name>`), the health-check ports from the NLB's subnets
    unless the client rule already covers them (`…/health=`), ICMP 3/4 from the clients
    (`…/mtu=`)."""
    clients = _ranges(inputs, (ANYWHERE,))
    for target in targets:
        for cidr in clients:
            _node_rule(result, target.group, target.protocol, target.port, target.port,
                       cidr=cidr,
                       description=f"kubernetes.io/rule/nlb/client={balancer.name}")  # fmt: skip
    for target in targets:
        covered = target.health_port == target.port and ANYWHERE in clients
        if covered:
            continue
        for cidr in _subnet_cidrs(cluster, balancer):
            _node_rule(result, target.group, PROTOCOL_NUMBERS["tcp"], target.health_port,
                       target.health_port, cidr=cidr,
                       description=f"kubernetes.io/rule/nlb/health={balancer.name}")  # fmt: skip
    for target in targets:
        for cidr in clients:
            _node_rule(result, target.group, ICMP, 3, 4, cidr=cidr,
                       description=f"kubernetes.io/rule/nlb/mtu={balancer.name}")  # fmt: skip


def _lbc_nlb_cidr_rules(
    cluster: Cluster,
    result: Plan,
    balancer: LoadBalancer,
    inputs: SgInputs,
    targets: list[_Target],
) -> None:
    """An LBC NLB without groups (before v2.6.0, or `disable-nlb-sg`): CIDR rules on the
    target's group. Client traffic from the source ranges when the client IP is preserved (or
    UDP) — by default 0.0.0.0/0, an internal NLB's the VPC's CIDRs — else from the NLB's
    subnets; health checks from the NLB's subnets unless already covered."""
    subnets = _subnet_cidrs(cluster, balancer)
    preserved = any(g.preserve_client_ip for g in balancer.target_groups)
    for target in targets:
        if preserved or target.protocol == PROTOCOL_NUMBERS["udp"]:
            default = [ANYWHERE] if balancer.scheme == "internet-facing" else cluster.vpc.cidrs
            clients: Sequence[IPv4Network] = _ranges(inputs, default)
        else:
            clients = subnets
        for cidr in clients:
            _node_rule(result, target.group, target.protocol, target.port, target.port,
                       cidr=cidr, description=SHARED)  # fmt: skip
        if target.health_port != target.port or not any(
            cidr.supernet_of(subnet) for cidr in clients for subnet in subnets
        ):
            for cidr in subnets:
                _node_rule(result, target.group, PROTOCOL_NUMBERS["tcp"], target.health_port,
                           target.health_port, cidr=cidr,
                           description=SHARED)  # fmt: skip


def _lbc_frontend(result: Plan, cluster: Cluster, balancer: LoadBalancer, inputs: SgInputs) -> str:
    """The LBC's frontend group: `k8s-<ns8>-<name8>-<10 hex>`, one rule per (listener port,
    CIDR), ICMP 3/4 where asked."""
    namespace, _, name = balancer.owner.partition("/")[2].partition("/")
    ranges = _ranges(inputs, (ANYWHERE,))
    inbound: list[SgRule] = []
    for listener in balancer.listeners:
        protocol = PROTOCOL_NUMBERS.get(listener.protocol.lower(), PROTOCOL_NUMBERS["tcp"])
        if listener.protocol in ("HTTP", "HTTPS", "TLS"):
            protocol = PROTOCOL_NUMBERS["tcp"]
        inbound += [SgRule("ingress", protocol, listener.port, listener.port, cidr=cidr)
                    for cidr in ranges]  # fmt: skip
    if inputs.icmp_for_pmtu:
        inbound += [SgRule("ingress", ICMP, 3, 4, cidr=cidr) for cidr in ranges]
    group_name = f"k8s-{_trim(namespace, 8)}-{_trim(name, 8)}-" + _hash(
        cluster.name, balancer.owner
    )
    return _add(result, _group(group_name, "[k8s] Managed SecurityGroup for LoadBalancer", inbound))


def _lbc_node_rules(
    result: Plan, balancer: LoadBalancer, targets: list[_Target], source: str, restricted: bool
) -> None:
    """The LBC's target rules from `source`: the target port and the health-check port (TCP),
    merged per (target group, source, protocol) into one range min…max (gotcha 24); all
    traffic with `disableRestrictedSecurityGroupRules`."""
    del balancer
    for target in targets:
        if not restricted:
            _node_rule(result, target.group, ALL_PROTOCOLS, None, None, source=source,
                       description=SHARED)  # fmt: skip
            continue
        for protocol, port in (
            (target.protocol, target.port),
            (PROTOCOL_NUMBERS["tcp"], target.health_port),
        ):
            key = (target.group, source, protocol)
            low, high = result.merged.get(key, (port, port))
            result.merged[key] = (min(low, port), max(high, port))
