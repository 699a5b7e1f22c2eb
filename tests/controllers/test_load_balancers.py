"""The load balancer controllers against aws-load-balancers.md §1 and the demo's load balancers
of talk-walks.md §2.7–2.8 (every expected value is the specs')."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from eksnet.controllers import build_state
from eksnet.controllers.lbc_version import features
from eksnet.controllers.load_balancers import controller_for, dns_name, path_patterns
from eksnet.dataplane.load_balancers import Listener, ListenerRule, LoadBalancer
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError
from eksnet.model import load_cluster
from eksnet.model.kubernetes import KubeService
from eksnet.walk.engine import walk
from eksnet.walk.load_balancing import HttpRequest, rule_for

TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
TARGET = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"


@pytest.fixture(scope="module")
def demo() -> DataplaneState:
    return build_state(load_cluster())


def balancer(state: DataplaneState, owner: str) -> LoadBalancer:
    found = state.vpc.load_balancer(owner)
    assert found is not None, owner
    return found


def service(annotations: dict[str, str]) -> KubeService:
    return KubeService(
        "default", "web", "LoadBalancer", IPv4Address("10.100.0.5"), (), None, (), "Cluster",
        "Cluster", None, None, (), (), None, False, tuple(sorted(annotations.items())), 0, False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("annotations", "klass", "expected"),
    [
        ({}, None, ("in-tree", "clb", "instance")),
        ({TYPE: "nlb"}, None, ("in-tree", "nlb", "instance")),
        ({TYPE: "external", TARGET: "ip"}, None, ("lbc", "nlb", "ip")),
        ({TYPE: "external", TARGET: "instance"}, None, ("lbc", "nlb", "instance")),
        ({TYPE: "external"}, None, (None, None, None)),  # gotcha 1: nobody
        ({TYPE: "nlb-ip"}, None, ("lbc", "nlb", "ip")),
        ({}, "service.k8s.aws/nlb", ("lbc", "nlb", "instance")),
        ({TARGET: "ip"}, "service.k8s.aws/nlb", ("lbc", "nlb", "ip")),
        ({}, "example.com/other", (None, None, None)),
    ],
)
def test_which_controller_acts(
    annotations: dict[str, str], klass: str | None, expected: tuple[object, ...]
) -> None:
    """aws-load-balancers.md §1.1's table, row by row; without the LBC installed its rows
    build nothing, and the CPA's are untouched."""
    from eksnet.controllers.lbc_version import LbcSettings

    lbc = LbcSettings(features("v2.13.0"), False, "alb", True, "instance", "internal",
                      "internal", True, True)  # fmt: skip
    assert controller_for(service(annotations), klass, lbc) == expected
    alone = controller_for(service(annotations), klass, None)
    assert alone == (expected if expected[0] == "in-tree" else (None, None, None))


def test_the_demos_load_balancers(demo: DataplaneState) -> None:
    """talk-walks.md §2.7: who builds what, listener → targets, health check, preservation."""
    nlb = balancer(demo, "service/default/app1-nlb")
    assert (nlb.kind, nlb.controller, nlb.scheme, nlb.cross_zone) == (
        "nlb", "in-tree", "internet-facing", False,
    )  # fmt: skip
    (group,) = nlb.target_groups
    assert (group.target_type, group.port, group.preserve_client_ip) == ("instance", 30081, True)
    # instance targets: every node's primary ENI's primary IP on the nodePort (gotcha 7)
    assert [(str(t.address), t.port) for t in group.targets] == [
        ("192.168.1.50", 30081), ("192.168.1.70", 30081), ("192.168.2.90", 30081),
    ]  # fmt: skip
    assert group.health_check.text() == (
        "TCP:traffic-port, every 30 s, healthy after 3, unhealthy after 3"
    )
    local = balancer(demo, "service/default/app1-nlb-local").target_groups[0]
    assert local.health_check.text() == (
        "HTTP:32082/healthz, every 10 s, healthy after 2, unhealthy after 2"
    )
    assert local.local_endpoints == (
        ("ip-192-168-1-70.eu-west-2.compute.internal", 2),
        ("ip-192-168-2-90.eu-west-2.compute.internal", 1),
    )
    clb = balancer(demo, "service/default/app1-clb")
    assert (clb.kind, clb.controller, clb.target_groups[0].port) == ("clb", "in-tree", 30083)
    ip = balancer(demo, "service/default/app1-nlb-ip")
    (ip_group,) = ip.target_groups
    assert (ip.controller, ip_group.target_type, ip_group.preserve_client_ip) == (
        "lbc", "ip", False,
    )  # fmt: skip
    assert [str(t.address) for t in ip_group.targets] == [
        "192.168.1.71", "192.168.1.81", "192.168.2.91",
    ]  # fmt: skip
    assert ip.name.startswith("k8s-default-app1nlbi-")


def test_the_albs_rules_in_lbc_order(demo: DataplaneState) -> None:
    """talk-walks.md §2.8: priority 1 /rating (the longer Prefix), 2 /order, default 404."""
    alb = balancer(demo, "ingress/default/myingress")
    assert (alb.kind, alb.cross_zone, alb.scheme) == ("alb", True, "internet-facing")
    (listener,) = alb.listeners
    assert [(r.priority, r.host, r.paths, r.action()) for r in listener.rules] == [
        (1, "www.example.com", ("/rating", "/rating/*"), "forward → default/myingress-rating:80"),
        (2, "www.example.com", ("/order", "/order/*"), "forward → default/myingress-order:80"),
        (None, None, (), "fixed-response 404"),
    ]
    rating = alb.target_group("default/myingress-rating:80")
    assert [(str(t.address), t.port) for t in rating.targets] == [("192.168.1.61", 80)]
    assert rating.health_check.text() == (
        "HTTP:traffic-port/, every 15 s, healthy after 2, unhealthy after 2"
    )


def test_nodes_enis_and_public_ips(demo: DataplaneState) -> None:
    alb = balancer(demo, "ingress/default/myingress")
    node = alb.node_in("eu-west-2c")
    assert node is not None
    assert (str(node.private_ip), str(node.public_ip), node.subnet) == (
        "192.168.3.141", "192.0.2.143", "public-c",
    )  # fmt: skip
    eni = demo.vpc.eni(node.eni)
    # talk-walks.md §2.7: an LB ENI's MAC is 02:00 + its IP in hex
    assert eni.mac == "02:00:c0:a8:03:8d"
    # the LBC's frontend group for the ALB and the cluster's shared backend group (§1.7)
    names = [demo.vpc.security_group(g).name for g in eni.security_groups]
    assert [name.rsplit("-", 1)[0] for name in names] == [
        "k8s-default-myingres", "k8s-traffic-talk",
    ]  # fmt: skip
    assert not eni.source_dest_check
    mapping = demo.vpc.private_ip_of(IPv4Address("192.0.2.143"))
    assert mapping is not None and mapping.private_ip == node.private_ip


@pytest.mark.parametrize(
    ("path", "kind", "patterns"),
    [
        ("/order", "Prefix", ("/order", "/order/*")),
        ("/order/", "Prefix", ("/order", "/order/*")),
        ("/", "Prefix", ("/*",)),
        ("/order", "Exact", ("/order",)),
        ("/order", "ImplementationSpecific", ("/order",)),
    ],
)
def test_path_patterns(path: str, kind: str, patterns: tuple[str, ...]) -> None:
    """aws-load-balancers.md §1.4 step 2."""
    assert path_patterns(path, kind) == patterns


LISTENER = Listener(
    "HTTP",
    80,
    None,
    (
        ListenerRule(1, "www.example.com", ("/rating", "/rating/*"), "rating"),
        ListenerRule(2, "*.example.com", ("/order", "/order/*"), "order"),
        ListenerRule(None, None, (), None, fixed_response=404),
    ),
)


@pytest.mark.parametrize(
    ("host", "path", "chosen"),
    [
        ("www.example.com", "/rating", 1),
        ("WWW.Example.COM", "/rating/5", 1),  # hosts are case-insensitive
        ("www.example.com", "/Rating", None),  # paths are not
        ("api.example.com", "/order/1?x=1", 2),  # a wildcard host; the query is not the path
        ("example.com", "/order", None),  # *.example.com needs one more label
        ("www.example.com", "/orders", None),  # gotcha 13
        (None, "/order", None),
    ],
)
def test_alb_rule_matching(host: str | None, path: str, chosen: int | None) -> None:
    assert rule_for(LISTENER, HttpRequest(host, path)).priority == chosen


def test_dns_names_have_awss_shape() -> None:
    """§1.8: NLBs `<name>-<id>.elb.<region>.amazonaws.com`; CLBs and ALBs
    `<name>-<id>.<region>.elb.amazonaws.com`; internal ones start `internal-`."""
    assert dns_name("web", "nlb", "internet-facing", "eu-west-2").endswith(
        ".elb.eu-west-2.amazonaws.com"
    )
    assert dns_name("web", "alb", "internal", "eu-west-2").startswith("internal-web-")
    assert dns_name("web", "clb", "internet-facing", "eu-west-2").endswith(
        ".eu-west-2.elb.amazonaws.com"
    )


def test_unpinned_load_balancers_find_their_subnets_and_addresses(tmp_path: Path) -> None:
    """§1.5: with no `loadBalancers` entry, the nodes go to the role-tagged subnets, one per AZ
    (the demo's public-a/b/c carry `kubernetes.io/role/elb: "1"`), each on the highest free
    address (.255 is AWS's, the broadcast); no public address is made up."""
    from eksnet.model.load import demo_text

    text, _ = demo_text()
    start = text.index("loadBalancers:")
    end = text.index("externalHosts:")
    path = tmp_path / "unpinned.yaml"
    path.write_text(text[:start] + text[end:])
    state = build_state(load_cluster(str(path)))
    nlb = balancer(state, "service/default/app1-nlb")
    assert [(n.subnet, str(n.private_ip), n.public_ip) for n in nlb.nodes] == [
        ("public-a", "192.168.1.254", None),
        ("public-b", "192.168.2.254", None),
        ("public-c", "192.168.3.254", None),
    ]
    local = balancer(state, "service/default/app1-nlb-local")
    assert str(local.nodes[0].private_ip) == "192.168.1.253"  # the next free one
    assert balancer(state, "ingress/default/myingress").kind == "alb"
    # reachable from inside the VPC; from the internet it needs a pinned public address
    inside = walk(state, "pod/default/app2-7c9f8d6b5-k5x2p", "lb/default/app1-nlb", dport=80)
    assert all(leaf.disposition is not None for _, _, leaf in inside.leaves())
    with pytest.raises(InputError, match="pins no public address"):
        walk(state, "ip/203.0.113.10", "lb/default/app1-nlb", dport=80)


@pytest.mark.parametrize(
    ("value", "in_tree", "lbc"),
    [("true", True, True), ("", True, True), ("false", False, True), ("0", False, True)],
)
def test_the_exclusion_label(tmp_path: Path, value: str, in_tree: bool, lbc: bool) -> None:
    """Gotcha 6 (§1.2, §1.6): `node.kubernetes.io/exclude-from-external-load-balancers` keeps a
    node out of the LBC's targets whatever its value, out of the in-tree controller's unless
    it parses as false."""
    from eksnet.model.load import demo_text

    text, _ = demo_text()
    node = "    instanceId: i-0a11c0ffee0000050\n"
    label = f'    labels: {{node.kubernetes.io/exclude-from-external-load-balancers: "{value}"}}\n'
    assert text.count(node) == 1
    path = tmp_path / "labelled.yaml"
    path.write_text(text.replace(node, node + label))
    state = build_state(load_cluster(str(path)))
    node_1 = "i-0a11c0ffee0000050"
    in_tree_targets = balancer(state, "service/default/app1-nlb").target_groups[0].targets
    assert (node_1 not in [t.id for t in in_tree_targets]) == in_tree
    # the LBC's app1-nlb-ip has ip targets; an instance one of the LBC's would drop node 1
    from eksnet.controllers.load_balancers import excluded

    labels = {"node.kubernetes.io/exclude-from-external-load-balancers": value}
    assert excluded(labels, "lbc") == lbc
    assert excluded(labels, "in-tree") == in_tree
