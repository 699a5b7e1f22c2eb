"""Fidelity against kube-proxy's own expectations (kube-proxy.md §9): upstream's proxier tests
described in our spec format with the same proxier settings, the expected rules written by hand
in the form the kernel prints them (§7: `/32`, option order, quoted comments, `--set-xmark`,
REJECT's default, `recent` defaults, two spaces after `--nfacct-name`). What kube-proxy writes
is compared chain by chain (`KubeProxyRules`); tests/lab/test_kube_proxy_lab.py loads the same
clusters into the kernel and reads them back.
"""

from __future__ import annotations

import pytest
from tests.kube_proxy_specs import OVERALL, SHAPES

from eksnet.controllers import kube_proxy, kube_proxy_version
from eksnet.controllers.kube_proxy import KubeProxyRules, endpoint_chain
from eksnet.model import Cluster, parse_cluster


def rules_of(text: str, node: str, variant: str | None = None) -> KubeProxyRules:
    cluster = parse_cluster(text, "test.yaml", variant=variant)
    return proxy(cluster, node)


def proxy(cluster: Cluster, node: str) -> KubeProxyRules:
    spec = cluster.node(node)
    return kube_proxy.proxy_rules(cluster, spec, kube_proxy_version.settings(cluster, spec))


OVERALL_RULES = rules_of(OVERALL, "test-node")

OVERALL_FILTER = {
    "KUBE-NODEPORTS": [
        '-A KUBE-NODEPORTS -p tcp -m comment --comment "ns2/svc2:p80 health check node port" -m tcp --dport 30000 -j ACCEPT',
    ],
    "KUBE-SERVICES": [
        '-A KUBE-SERVICES -d 172.30.0.46/32 -p tcp -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable',
    ],
    "KUBE-EXTERNAL-SERVICES": [
        '-A KUBE-EXTERNAL-SERVICES -d 192.168.99.22/32 -p tcp -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp --dport 80 -j DROP',
        '-A KUBE-EXTERNAL-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp --dport 80 -j DROP',
        '-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 3001 -j DROP',
    ],
    "KUBE-FIREWALL": [
        '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    ],
    "KUBE-FORWARD": [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ],
    "KUBE-PROXY-FIREWALL": [
        '-A KUBE-PROXY-FIREWALL -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp --dport 80 -j DROP',
    ],
}  # fmt: skip
"""TestOverallIPTablesRules' filter table (kube-proxy.md §9), in printed form."""

OVERALL_NAT = {
    "KUBE-NODEPORTS": [
        '-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "ns2/svc2:p80" -m tcp --dport 3001 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT',
        '-A KUBE-NODEPORTS -p tcp -m comment --comment "ns2/svc2:p80" -m tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT',
        '-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "ns3/svc3:p80" -m tcp --dport 3003 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK',
        '-A KUBE-NODEPORTS -p tcp -m comment --comment "ns3/svc3:p80" -m tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK',
        '-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "ns5/svc5:p80" -m tcp --dport 3002 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C',
        '-A KUBE-NODEPORTS -p tcp -m comment --comment "ns5/svc5:p80" -m tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C',
    ],
    "KUBE-SERVICES": [
        '-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
        '-A KUBE-SERVICES -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT',
        '-A KUBE-SERVICES -d 192.168.99.22/32 -p tcp -m comment --comment "ns2/svc2:p80 external IP" -m tcp --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT',
        '-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT',
        '-A KUBE-SERVICES -d 172.30.0.43/32 -p tcp -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK',
        '-A KUBE-SERVICES -d 172.30.0.44/32 -p tcp -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK',
        '-A KUBE-SERVICES -d 192.168.99.33/32 -p tcp -m comment --comment "ns4/svc4:p80 external IP" -m tcp --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK',
        '-A KUBE-SERVICES -d 172.30.0.45/32 -p tcp -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C',
        '-A KUBE-SERVICES -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C',
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ],
    "KUBE-EXT-GNZBNJ2PO5MGZ6GT": [
        '-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -s 10.0.0.0/8 -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -j KUBE-SVC-GNZBNJ2PO5MGZ6GT',
        '-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
        '-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT',
    ],
    "KUBE-FW-NUKIZ6OKUXPJNT4C": [
        '-A KUBE-FW-NUKIZ6OKUXPJNT4C -s 203.0.113.0/25 -m comment --comment "ns5/svc5:p80 loadbalancer IP" -j KUBE-EXT-NUKIZ6OKUXPJNT4C',
        '-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ],
    "KUBE-MARK-MASQ": ["-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"],
    "KUBE-POSTROUTING": [
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
    ],
    "KUBE-SEP-I77PXRDZVX7PMWMN": [
        '-A KUBE-SEP-I77PXRDZVX7PMWMN -s 10.180.0.3/32 -m comment --comment "ns5/svc5:p80" -j KUBE-MARK-MASQ',
        '-A KUBE-SEP-I77PXRDZVX7PMWMN -p tcp -m comment --comment "ns5/svc5:p80" -m recent --set --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.180.0.3:80',
    ],
    "KUBE-SVC-4SW47YFZTEDKD3PK": [
        '-A KUBE-SVC-4SW47YFZTEDKD3PK ! -s 10.0.0.0/8 -d 172.30.0.44/32 -p tcp -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ',
        '-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC',
        '-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ',
    ],
    "KUBE-SVC-NUKIZ6OKUXPJNT4C": [
        '-A KUBE-SVC-NUKIZ6OKUXPJNT4C ! -s 10.0.0.0/8 -d 172.30.0.45/32 -p tcp -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ',
        '-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource -j KUBE-SEP-I77PXRDZVX7PMWMN',
        '-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN',
    ],
}  # fmt: skip
"""Chains of TestOverallIPTablesRules' nat table, in printed form."""

OVERALL_NAT_CHAINS = {
    "KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
    "KUBE-EXT-4SW47YFZTEDKD3PK", "KUBE-EXT-GNZBNJ2PO5MGZ6GT", "KUBE-EXT-NUKIZ6OKUXPJNT4C",
    "KUBE-EXT-X27LE4BHSL4DOUIK", "KUBE-FW-NUKIZ6OKUXPJNT4C", "KUBE-SEP-C6EBXVWJJZMIWKLZ",
    "KUBE-SEP-I77PXRDZVX7PMWMN", "KUBE-SEP-OYPFS5VJICHGATKP", "KUBE-SEP-RS4RBKLTHTF2IUXJ",
    "KUBE-SEP-SXIVWICOYRO3J4NJ", "KUBE-SEP-UKSFD7AGPMPPLUHC", "KUBE-SVC-4SW47YFZTEDKD3PK",
    "KUBE-SVC-GNZBNJ2PO5MGZ6GT", "KUBE-SVC-NUKIZ6OKUXPJNT4C", "KUBE-SVC-X27LE4BHSL4DOUIK",
    "KUBE-SVC-XPGD46QRK7WJZT7O",
}  # fmt: skip


def test_overall_filter_table() -> None:
    assert set(OVERALL_RULES.chains("filter")) == set(OVERALL_FILTER)
    for chain, rules in OVERALL_FILTER.items():
        assert list(OVERALL_RULES.chain("filter", chain)) == rules, chain


def test_overall_nat_chains() -> None:
    assert set(OVERALL_RULES.chains("nat")) == OVERALL_NAT_CHAINS
    for chain, rules in OVERALL_NAT.items():
        assert list(OVERALL_RULES.chain("nat", chain)) == rules, chain


def test_overall_svc2_has_no_local_policy_chain() -> None:
    """svc2 (eTP=Local, endpoint without nodeName): the EXT chain has no final jump, no SVL."""
    assert "KUBE-SVL-GNZBNJ2PO5MGZ6GT" not in OVERALL_RULES.chains("nat")


# --- chain-level oracles (TestMasqueradeRule, TestDropInvalidRule, TestNodePorts) -----------------


def test_masquerade_rule_with_and_without_random_fully() -> None:
    """TestMasqueradeRule: MASQUERADE gains `--random-fully` when iptables has it (≥ 1.6.2)."""
    newer = OVERALL.replace("nodeDefaults: {iptablesVersion: 1.6.1}", "nodeDefaults: {}")
    last = rules_of(newer, "test-node").chain("nat", "KUBE-POSTROUTING")[-1]
    assert last.endswith("-j MASQUERADE --random-fully")
    assert OVERALL_RULES.chain("nat", "KUBE-POSTROUTING")[-1].endswith("-j MASQUERADE")


def test_drop_invalid_rule() -> None:
    """TestDropInvalidRule: nfacct when the counter exists, plain without, none when
    nf_conntrack_tcp_be_liberal is set."""
    plain = OVERALL.replace("{iptablesVersion: 1.6.1}", "{iptablesVersion: 1.6.1, nfacct: false}")
    assert rules_of(plain, "test-node").chain("filter", "KUBE-FORWARD")[0] == (
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
    )
    liberal = OVERALL.replace(
        "clusterCIDR: 10.0.0.0/8}", "clusterCIDR: 10.0.0.0/8, conntrack: {tcpBeLiberal: true}}"
    )
    forward = rules_of(liberal, "test-node").chain("filter", "KUBE-FORWARD")
    assert not any("INVALID" in rule for rule in forward) and len(forward) == 2


@pytest.mark.parametrize(
    ("proxy", "firewall", "tail"),
    [
        ("{version: v1.31}", True, "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"),
        ("{version: v1.31, iptables: {localhostNodePorts: false}}", False,
         "! -d 127.0.0.0/8 -m comment"),
        ("{version: v1.31, nodePortAddresses: [192.168.0.0/24]}", False, "-d 192.168.0.10/32 -m"),
        ("{version: v1.31, nodePortAddresses: [127.0.0.0/8, 192.168.0.0/24]}", True,
         "-d 127.0.0.1/32 -m"),
    ],
)  # fmt: skip
def test_node_ports_firewall_cases(proxy: str, firewall: bool, tail: str) -> None:
    """TestNodePorts' KUBE-FIREWALL cases: kube-proxy writes the localnet rule only with
    localhost NodePorts (off when nodePortAddresses leaves out 127.0.0.1), and the last
    KUBE-SERVICES rule changes with it."""
    text = OVERALL.replace(
        "kubeProxy: {version: v1.31, clusterCIDR: 10.0.0.0/8}", f"kubeProxy: {proxy}"
    )
    rules = rules_of(text, "test-node")
    assert ("KUBE-FIREWALL" in rules.chains("filter")) is firewall
    jumps = [r for r in rules.chain("nat", "KUBE-SERVICES") if r.endswith("-j KUBE-NODEPORTS")]
    assert any(tail in rule for rule in jumps), jumps
    has_localhost_rule = any("127.0.0.0/8" in r for r in rules.chain("nat", "KUBE-NODEPORTS"))
    assert has_localhost_rule is firewall
    sysctls = dict(rules.sysctls)
    assert (sysctls.get("net.ipv4.conf.all.route_localnet") == "1") is firewall


# --- large clusters, ipMode Proxy, endpoint order, terminating endpoints --------------------------


def test_large_cluster_mode_drops_per_endpoint_comments() -> None:
    """TestSyncProxyRulesLargeClusterMode: more than 1000 endpoints → no comments in SVC/SEP
    chains; VIP rules keep theirs. The API caps a slice at 100 endpoints, so 1000 come in 10."""
    text = OVERALL
    for part in range(10):
        endpoints = ", ".join(f"{{addresses: [10.9.{part}.{i}]}}" for i in range(1, 101))
        text += f"""\
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {{name: svc6-{part}, namespace: ns6, labels: {{kubernetes.io/service-name: svc6}}}}
    addressType: IPv4
    endpoints: [{endpoints}]
    ports: [{{name: p80, port: 80, protocol: TCP}}]
"""
    rules = rules_of(text, "test-node")
    sep = endpoint_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80")
    assert rules.chain("nat", sep) == (
        f"-A {sep} -s 10.180.0.1/32 -j KUBE-MARK-MASQ",
        f"-A {sep} -p tcp -m tcp -j DNAT --to-destination 10.180.0.1:80",
    )
    assert rules.chain("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")[-1] == (
        f"-A KUBE-SVC-XPGD46QRK7WJZT7O -j {sep}"
    )
    assert "cluster IP" in rules.chain("nat", "KUBE-SERVICES")[0]
    small = rules_of(OVERALL, "test-node").chain("nat", sep)
    assert all("--comment" in rule for rule in small)


def test_ip_mode_proxy_ingress_gets_no_load_balancer_rules() -> None:
    """TestLoadBalancerIngressRouteTypeProxy: an ingress with `ipMode: Proxy` is no VIP (1.30+)."""
    proxy = OVERALL.replace("ingress: [{ip: 5.6.7.8}]", "ingress: [{ip: 5.6.7.8, ipMode: Proxy}]")
    rules = rules_of(proxy, "test-node")
    assert not any("5.6.7.8" in rule for rule in rules.chain("nat", "KUBE-SERVICES"))
    assert rules.chain("filter", "KUBE-PROXY-FIREWALL") == ()
    older = proxy.replace("kubeProxy: {version: v1.31", "kubeProxy: {version: v1.29")
    assert any("5.6.7.8" in r for r in rules_of(older, "test-node").chain("nat", "KUBE-SERVICES"))


def test_endpoints_sort_as_strings() -> None:
    """TestUpdateEndpointsMap / §3.1: `10.1.1.11:11` sorts before `10.1.1.1:11`."""
    text = OVERALL.replace(
        "{addresses: [10.180.0.1]}", "{addresses: [10.1.1.1]}, {addresses: [10.1.1.11]}"
    )
    rules = rules_of(text, "test-node").chain("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")
    assert [rule.split('"')[1] for rule in rules[1:]] == [
        "ns1/svc1:p80 -> 10.1.1.11:80",
        "ns1/svc1:p80 -> 10.1.1.1:80",
    ]


SHAPES_A = rules_of(SHAPES, "node-a")
SHAPES_B = rules_of(SHAPES, "node-b")


def test_terminating_endpoints_are_used_only_without_ready_ones() -> None:
    """TestTerminatingEndpointsTrafficPolicyCluster: no ready endpoint → the serving and
    terminating one (old-1); the not-serving one (old-2) never."""
    svc = next(r for r in SHAPES_A.chain("nat", "KUBE-SERVICES") if "default/terminating" in r)
    chain = svc.rsplit(" ", 1)[1]
    assert [r.split('"')[1] for r in SHAPES_A.chain("nat", chain)[1:]] == [
        "default/terminating -> 10.0.1.23:80"
    ]
    manual = next(r for r in SHAPES_A.chain("nat", "KUBE-SERVICES") if "default/manual" in r)
    targets = [r.split('"')[1] for r in SHAPES_A.chain("nat", manual.rsplit(" ", 1)[1])[1:]]
    assert targets == [
        "default/manual:http -> 10.0.1.98:8080",
        "default/manual:http -> 10.0.2.99:8080",
    ]


def test_not_ready_only_endpoints_reject() -> None:
    assert any(
        '"default/not-ready has no endpoints"' in r
        for r in SHAPES_A.chain("filter", "KUBE-SERVICES")
    )


def test_internal_traffic_policy_local() -> None:
    """TestInternalTrafficPolicy: a local endpoint → the ClusterIP goes to SVL; none → DROP (the
    Service's one endpoint, a ready db-1, is on node-a only)."""
    text = SHAPES.replace("labels: {app: db}, ready: false", "labels: {app: db}").replace(
        "internalTrafficPolicy: Local, selector: {app: web}",
        "internalTrafficPolicy: Local, selector: {app: db}",
    )
    node_a, node_b = rules_of(text, "node-a"), rules_of(text, "node-b")
    captured = [r for r in node_a.chain("nat", "KUBE-SERVICES") if "itp-local cluster IP" in r]
    assert len(captured) == 1 and "-j KUBE-SVL-" in captured[0]
    assert not any("itp-local" in r for r in node_b.chain("nat", "KUBE-SERVICES"))
    drop = [r for r in node_b.chain("filter", "KUBE-SERVICES") if "itp-local" in r]
    assert drop == [
        '-A KUBE-SERVICES -d 10.96.0.15/32 -p tcp -m comment --comment "default/itp-local has no local endpoints" -m tcp --dport 80 -j DROP'
    ]


def test_health_check_node_port_regardless_of_local_endpoints() -> None:
    """TestHealthCheckNodePort(WhenTerminating): the ACCEPT rule exists on every node."""
    rule = '-A KUBE-NODEPORTS -p tcp -m comment --comment "default/lb-local health check node port" -m tcp --dport 32013 -j ACCEPT'
    assert rule in SHAPES_A.chain("filter", "KUBE-NODEPORTS")
    assert rule in SHAPES_B.chain("filter", "KUBE-NODEPORTS")


def test_prefer_same_node_narrows_cluster_endpoints() -> None:
    """trafficDistribution PreferSameNode (GA 1.35; kube-proxy.md §3.1 topology)."""
    for rules, ip in ((SHAPES_A, "10.0.1.24"), (SHAPES_B, "10.0.2.33")):
        svc = next(r for r in rules.chain("nat", "KUBE-SERVICES") if "default/zonal" in r)
        chain = rules.chain("nat", svc.rsplit(" ", 1)[1])
        assert [r.split('"')[1] for r in chain[1:]] == [f"default/zonal -> {ip}:80"]


def test_interface_prefix_detector() -> None:
    """detectLocalMode InterfaceNamePrefix (kube-proxy.md §6.4: `! -i eni+` after `-d`)."""
    rules = rules_of(SHAPES, "node-a", "interfaces")
    svc = next(r for r in rules.chain("nat", "KUBE-SERVICES") if "default/ext-ip cluster IP" in r)
    assert rules.chain("nat", svc.rsplit(" ", 1)[1])[0] == (
        f"-A {svc.rsplit(' ', 1)[1]} -d 10.96.0.14/32 ! -i eni+ -p tcp -m comment --comment "
        '"default/ext-ip cluster IP" -m tcp --dport 8080 -j KUBE-MARK-MASQ'
    )


def test_eks_has_no_detector() -> None:
    """§5: EKS's empty clusterCIDR → no ClusterIP masquerade and no pod short-circuit."""
    from tests.kube_proxy_specs import REFERENCE

    rules = rules_of(REFERENCE, "ip-10-0-1-10.ec2.internal")
    assert not any("! -s" in r for chain in rules.chains("nat") for r in rules.chain("nat", chain))
