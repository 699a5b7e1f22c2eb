"""The security groups the load balancer controllers create and the rules they add to the
nodes' group, against aws-load-balancers.md §1.7 and gotchas 22–25 (every expected value is
the spec's; the demo's nodes carry one group, sg-cluster, tagged for the cluster)."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from eksnet.controllers import build_state
from eksnet.dataplane.security import ALL_PROTOCOLS, SecurityGroup, SgRule
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError
from eksnet.model import load_cluster
from eksnet.model.load import demo_text
from eksnet.walk.engine import walk

TCP, ICMP = 6, 1
ANYWHERE = IPv4Network("0.0.0.0/0")


def spec(tmp_path: Path, *edits: tuple[str, str]) -> DataplaneState:
    text, _ = demo_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return build_state(load_cluster(str(path)))


@pytest.fixture(scope="module")
def demo() -> DataplaneState:
    return build_state(load_cluster())


def groups_of(state: DataplaneState, owner: str) -> list[SecurityGroup]:
    balancer = state.vpc.load_balancer(owner)
    assert balancer is not None
    return [state.vpc.security_group(g) for g in balancer.security_groups]


def added(state: DataplaneState) -> list[SgRule]:
    """sg-cluster's rules beyond the two the spec writes."""
    return list(state.vpc.security_group("sg-cluster").direction("ingress"))[2:]


def lb_name(state: DataplaneState, owner: str) -> str:
    balancer = state.vpc.load_balancer(owner)
    assert balancer is not None
    return balancer.name


def test_the_in_tree_nlbs_open_the_node_ports(demo: DataplaneState) -> None:
    """CPA NLB: no group of its own; the node's group gets the node port from the clients
    (0.0.0.0/0), ICMP 3/4 from them, and the health-check port from the NLB's subnets only
    where the client rule does not already cover it (eTP Local's healthCheckNodePort)."""
    assert groups_of(demo, "service/default/app1-nlb") == []
    nlb = lb_name(demo, "service/default/app1-nlb")
    local = lb_name(demo, "service/default/app1-nlb-local")
    rules = {(r.protocol, r.from_port, r.to_port, str(r.cidr), r.description) for r in added(demo)}
    assert (TCP, 30081, 30081, "0.0.0.0/0", f"kubernetes.io/rule/nlb/client={nlb}") in rules
    assert (ICMP, 3, 4, "0.0.0.0/0", f"kubernetes.io/rule/nlb/mtu={nlb}") in rules
    assert not any(d == f"kubernetes.io/rule/nlb/health={nlb}" for *_, d in rules)
    assert (TCP, 30082, 30082, "0.0.0.0/0", f"kubernetes.io/rule/nlb/client={local}") in rules
    health = sorted(c for p, f, t, c, d in rules if d == f"kubernetes.io/rule/nlb/health={local}")
    assert health == ["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"]
    assert all(f == 32082 for p, f, t, c, d in rules if d.endswith(f"health={local}"))


def test_the_in_tree_clb_gets_its_group_and_the_node_all_from_it(demo: DataplaneState) -> None:
    """CPA CLB: `k8s-elb-<name>` with the listener port and ICMP 3/4 from 0.0.0.0/0; the
    node's group opens every protocol and port to it (gotcha 25)."""
    name = lb_name(demo, "service/default/app1-clb")
    (group,) = groups_of(demo, "service/default/app1-clb")
    assert group.name == f"k8s-elb-{name}"
    assert group.id.startswith("sg-") and len(group.id) == 20
    assert [(r.protocol, r.from_port, r.to_port, r.cidr) for r in group.direction("ingress")] == [
        (TCP, 80, 80, ANYWHERE), (ICMP, 3, 4, ANYWHERE),
    ]  # fmt: skip
    assert [(r.protocol, r.cidr) for r in group.direction("egress")] == [(ALL_PROTOCOLS, ANYWHERE)]
    assert any(r.protocol == ALL_PROTOCOLS and r.group == group.id for r in added(demo))


def test_the_lbcs_frontend_and_shared_backend_groups(demo: DataplaneState) -> None:
    """LBC NLB (v2.6.0+) and ALB: a frontend group each (listener port from 0.0.0.0/0), one
    backend group for the cluster on both; the node's group open to the backend group on
    the target port, merged across load balancers into one rule."""
    nlb = groups_of(demo, "service/default/app1-nlb-ip")
    alb = groups_of(demo, "ingress/default/myingress")
    assert [g.description for g in nlb] == [
        "[k8s] Managed SecurityGroup for LoadBalancer",
        "[k8s] Shared Backend SecurityGroup for LoadBalancer",
    ]
    assert nlb[1] == alb[1] and nlb[0] != alb[0]
    assert nlb[0].name.startswith("k8s-default-app1nlbi-")
    assert alb[0].name.startswith("k8s-default-myingres-")
    backend = nlb[1].id
    from_backend = [r for r in added(demo) if r.group == backend]
    assert [(r.protocol, r.from_port, r.to_port) for r in from_backend] == [(TCP, 80, 80)]


def test_the_lbc_merges_node_rules_into_one_range(tmp_path: Path) -> None:
    """Gotcha 24: a health check on another port widens the one rule to min…max."""
    state = spec(
        tmp_path,
        ("        alb.ingress.kubernetes.io/scheme: internet-facing\n",
         "        alb.ingress.kubernetes.io/scheme: internet-facing\n"
         "        alb.ingress.kubernetes.io/healthcheck-port: '8080'\n"),
    )  # fmt: skip
    backend = groups_of(state, "ingress/default/myingress")[1].id
    from_backend = [r for r in added(state) if r.group == backend]
    assert [(r.protocol, r.from_port, r.to_port) for r in from_backend] == [(TCP, 80, 8080)]


def test_an_nlb_before_v2_6_has_no_groups_and_cidr_node_rules(tmp_path: Path) -> None:
    """Before NLB security groups: CIDR rules on the target's group; ip targets over TCP do not
    preserve the client, so the clients are the NLB's subnets."""
    state = spec(
        tmp_path,
        ("loadBalancerController: {version: v2.13.0, serviceMutatorWebhook: false}",
         "loadBalancerController: {version: v2.5.0, serviceMutatorWebhook: false}"),
    )  # fmt: skip
    assert groups_of(state, "service/default/app1-nlb-ip") == []
    cidrs = sorted(
        str(r.cidr) for r in added(state)
        if r.description == "elbv2.k8s.aws/targetGroupBinding=shared" and r.cidr is not None
    )  # fmt: skip
    assert cidrs == ["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"]


def test_user_groups_get_no_controller_rules(tmp_path: Path) -> None:
    """Pinned groups are the user's (`…-security-groups`): nothing is created, and the
    node's group is not opened to them (manage-backend-security-group-rules is off)."""
    state = spec(
        tmp_path,
        ("  - {for: service/app1-clb, kind: clb,",
         "  - {for: service/app1-clb, kind: clb, securityGroups: [sg-cluster],"),
    )  # fmt: skip
    assert [g.id for g in groups_of(state, "service/default/app1-clb")] == ["sg-cluster"]
    assert not any(g.name.startswith("k8s-elb-") for g in state.vpc.security_groups)


def test_source_ranges_close_the_clb_to_other_clients(tmp_path: Path) -> None:
    """`loadBalancerSourceRanges` become the CLB group's only sources: W5b's client
    203.0.113.10 is then dropped by that group at the CLB's ENI."""
    state = spec(
        tmp_path,
        ("  - {name: app1-clb, type: LoadBalancer,",
         "  - {name: app1-clb, type: LoadBalancer, loadBalancerSourceRanges: [198.51.100.0/24],"),
    )  # fmt: skip
    (group,) = groups_of(state, "service/default/app1-clb")
    assert {str(r.cidr) for r in group.direction("ingress")} == {"198.51.100.0/24"}
    result = walk(state, "ip/203.0.113.10", "lb/default/app1-clb", dport=80)
    endings = [leaf.disposition for _, _, leaf in result.leaves()]
    assert endings and all(d is not None and d.kind == "dropped" for d in endings)
    assert all(group.id in (d.reason if d else "") for d in endings)


def test_two_tagged_groups_on_a_target_are_the_controllers_error(tmp_path: Path) -> None:
    text = "primaryIp: 192.168.1.70, secondaryIps: [192.168.1.71], securityGroups: [sg-cluster]"
    with pytest.raises(InputError, match="cannot choose"):
        spec(
            tmp_path,
            (text, text.replace("[sg-cluster]", "[sg-cluster, sg-two]")),
            ("  flowLogs:", "    sg-two:\n      tags: {kubernetes.io/cluster/talk: owned}\n"
                           "  flowLogs:"),
        )  # fmt: skip
