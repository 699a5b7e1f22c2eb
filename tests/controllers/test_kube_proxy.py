"""kube-proxy (iptables mode) and kubelet's rules against kube-proxy.md and talk-walks.md.

Expected values are written from the specs (kube-proxy.md §2, §4, §6.3, §7; talk-walks.md §2.6,
§4.3), never from what the code printed: the reference cluster of §6.1 in our spec format must
give node 1 exactly the `iptables-save` of §6.3, the demo must hold the rules of §4.3 in their
order, chain names and probabilities must be the spec's tables.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from tests.kube_proxy_specs import REFERENCE, REFERENCE_NODE_1, SHAPES
from tests.spec_texts import KUBE_PROXY_6_3, TALK_4_3

from eksnet.controllers import build_state
from eksnet.controllers.iptables_text import comment, go_probability, probability
from eksnet.controllers.kube_proxy import endpoint_chain, service_chain_suffix
from eksnet.controllers.kube_proxy_version import features, parse_version
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import NotModelled
from eksnet.model import load_cluster, parse_cluster
from eksnet.render.linux.iptables import iptables_save

NODE1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE2 = "ip-192-168-1-70.eu-west-2.compute.internal"
NODE3 = "ip-192-168-2-90.eu-west-2.compute.internal"

DEMO = build_state(load_cluster())


def chain_rules(save: str) -> dict[tuple[str, str], list[str]]:
    """`-A` lines per (table, chain), in order."""
    table = ""
    chains: dict[tuple[str, str], list[str]] = {}
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].split()[0]
        elif line.startswith("-A "):
            chains.setdefault((table, line.split()[1]), []).append(line)
    return chains


def is_subsequence(wanted: list[str], have: list[str]) -> bool:
    rest = iter(have)
    return all(line in rest for line in wanted)


def save_of(state: DataplaneState, node: str) -> str:
    return iptables_save(state.namespace(node))


# --- the reference cluster (kube-proxy.md §6) ---------------------------------------------------


def test_reference_node1_prints_section_6_3() -> None:
    """§6.3 is node 1 without the VPC CNI's rules (§6.3: "The VPC CNI's own chains and jumps
    would interleave"); everything else byte for byte, in nf_tables' table order."""
    state = build_state(parse_cluster(REFERENCE, "reference.yaml"))
    printed = [line for line in save_of(state, REFERENCE_NODE_1).splitlines() if "AWS" not in line]
    assert printed == KUBE_PROXY_6_3.splitlines()


def test_reference_node2_local_chain_points_at_its_own_endpoint() -> None:
    """§6.3: "On node 2 the same services give a KUBE-SVL-YBRHFGZD3TRL7I6I that points at
    10.0.2.59's SEP instead"."""
    state = build_state(parse_cluster(REFERENCE, "reference.yaml"))
    chains = chain_rules(save_of(state, "ip-10-0-2-20.ec2.internal"))
    sep = endpoint_chain("default/shop:https", "tcp", "10.0.2.59:8443")
    assert chains[("nat", "KUBE-SVL-YBRHFGZD3TRL7I6I")] == [
        '-A KUBE-SVL-YBRHFGZD3TRL7I6I -m comment --comment "default/shop:https -> '
        f'10.0.2.59:8443" -j {sep}'
    ]
    assert ("filter", "KUBE-EXTERNAL-SERVICES") not in chains


# --- the demo (talk-walks.md §2.6, §4.3) --------------------------------------------------------


def test_demo_node1_holds_the_rules_of_section_4_3_in_order() -> None:
    have = chain_rules(save_of(DEMO, NODE1))
    for key, wanted in chain_rules(TALK_4_3).items():
        assert key in have, key
        assert is_subsequence(wanted, have[key]), (key, wanted, have[key])


def test_demo_nodeports_rule_is_last_of_nat_kube_services() -> None:
    services = chain_rules(save_of(DEMO, NODE1))[("nat", "KUBE-SERVICES")]
    assert services[-1] == (
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
        'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )


CHAIN_NAMES = {
    # talk-walks.md §2.6: Service → (SVC/EXT/SVL suffix, SEPs for .71, .81, .91)
    "app1": ("4QFXEAV27BCWXK5E", "CGDVTEPNP2RHKNBA", "F7EOZMC462Z6LNNA", "KRMQ4J6TVND77YH7"),
    "app1-nodeport": ("J3KDY2YMAWFNLSIG", "F3TDPLX74CV44RW3", "JHNGFEQO6KQMKAYB", "323SXKU2I6DGJCMN"),
    "app1-nlb": ("4522TT4ZLYVVDNXB", "LA6AXT2MY5CDWKO3", "LFSMSZZ26H4TDOJU", "AIPQCTHXU7GBBW2K"),
    "app1-nlb-local": ("U6DUQYH3K73AFEIO", "6A6DAJO7EMKD4LNB", "MEL7OXIRKSVFI5KJ", "ZNFO7Z6Q24HM3JQ7"),
    "app1-clb": ("TZZ45D5HZVOHC4ON", "HN4QL6MRIU5F3MQ4", "D2VP3MX7PWWTEHJI", "2KTCBPQMA2XQOVMA"),
    "app1-nlb-ip": ("QWXBINHF4QRXJJWK", "ZZRUPSWUIKJRIHSR", "HXZII7GCUXFY54CB", "SDRHCKZZYE4RATDE"),
    "order": ("7IOUNCBL3UVHTL3S", "U7UUGJP3JSANEPX7", "A5ZZ7CAFAOY542WY", "NZ7HIQHGD7477QHE"),
}  # fmt: skip


@pytest.mark.parametrize("service", sorted(CHAIN_NAMES))
def test_demo_chain_names_are_the_table_of_section_2_6(service: str) -> None:
    suffix, *seps = CHAIN_NAMES[service]
    chains = {chain for _, chain in chain_rules(save_of(DEMO, NODE1))}
    assert f"KUBE-SVC-{suffix}" in chains
    assert {f"KUBE-SEP-{sep}" for sep in seps} <= chains
    rules = chain_rules(save_of(DEMO, NODE1))[("nat", f"KUBE-SVC-{suffix}")]
    assert [rule.rsplit(" ", 1)[1] for rule in rules] == [f"KUBE-SEP-{sep}" for sep in seps]


def test_demo_rating_chains() -> None:
    rules = chain_rules(save_of(DEMO, NODE1))[("nat", "KUBE-SVC-4LOUOZ7LKRS2SRFD")]
    assert rules == [
        '-A KUBE-SVC-4LOUOZ7LKRS2SRFD -m comment --comment "default/rating -> 192.168.1.61:80" '
        "-j KUBE-SEP-YTRFSOR74MESN2BE"
    ]


LOCAL_EXT = "KUBE-EXT-U6DUQYH3K73AFEIO"
DROP_30082 = (
    '-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/app1-nlb-local has no local '
    'endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30082 -j DROP'
)


def test_demo_nodes_2_and_3_route_etp_local_to_their_own_endpoints() -> None:
    """§4.3 notes: on nodes 2/3 the EXT chain ends with `-j KUBE-SVL-U6DU…`, whose rules list only
    local endpoints (node 2: .71 with 0.5, then .81; node 3: .91), and the DROP is absent."""
    svl = "KUBE-SVL-U6DUQYH3K73AFEIO"
    expected = {
        NODE2: [
            f'-A {svl} -m comment --comment "default/app1-nlb-local -> 192.168.1.71:80" -m '
            "statistic --mode random --probability 0.50000000000 -j KUBE-SEP-6A6DAJO7EMKD4LNB",
            f'-A {svl} -m comment --comment "default/app1-nlb-local -> 192.168.1.81:80" '
            "-j KUBE-SEP-MEL7OXIRKSVFI5KJ",
        ],
        NODE3: [
            f'-A {svl} -m comment --comment "default/app1-nlb-local -> 192.168.2.91:80" '
            "-j KUBE-SEP-ZNFO7Z6Q24HM3JQ7"
        ],
    }
    for node, rules in expected.items():
        chains = chain_rules(save_of(DEMO, node))
        assert chains[("nat", svl)] == rules
        assert chains[("nat", LOCAL_EXT)][-1] == f"-A {LOCAL_EXT} -j {svl}"
        assert DROP_30082 not in chains.get(("filter", "KUBE-EXTERNAL-SERVICES"), [])
    node1 = chain_rules(save_of(DEMO, NODE1))
    assert ("nat", svl) not in node1
    assert DROP_30082 in node1[("filter", "KUBE-EXTERNAL-SERVICES")]


def test_built_in_chains_in_a_real_nodes_order() -> None:
    """kube-proxy's jumps above kubelet's and the VPC CNI's (kube-proxy.md §1.2, vpc-cni.md §2.4
    "Ordering", talk-walks.md §4.3)."""
    chains = chain_rules(save_of(DEMO, NODE1))
    targets = {
        key: [rule.split(" -j ")[1].split()[0] for rule in rules] for key, rules in chains.items()
    }
    assert targets[("filter", "INPUT")] == [
        "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
    ]  # fmt: skip
    assert targets[("filter", "FORWARD")] == [
        "KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES",
    ]  # fmt: skip
    assert targets[("filter", "OUTPUT")] == [
        "KUBE-PROXY-FIREWALL",
        "KUBE-SERVICES",
        "KUBE-FIREWALL",
    ]
    assert targets[("nat", "PREROUTING")] == ["KUBE-SERVICES", "AWS-CONNMARK-CHAIN-0", "CONNMARK"]
    assert targets[("nat", "POSTROUTING")] == ["KUBE-POSTROUTING", "AWS-SNAT-CHAIN-0"]


def test_kubelet_and_kube_proxy_chains_and_canaries() -> None:
    save = save_of(DEMO, NODE1)
    declared: dict[str, set[str]] = {}
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            declared.setdefault(table, set()).add(line[1:].split()[0])
    assert {"KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"} <= declared["mangle"]
    for name in ("nat", "filter"):
        assert {"KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"} <= declared[name]
    assert "KUBE-MARK-DROP" not in save  # gone since 1.28 (kube-proxy.md §1.1)


def test_sysctls_and_counters_of_a_node() -> None:
    node = DEMO.namespace(NODE1)
    assert node.sysctl("net.ipv4.conf.all.route_localnet") == "1"
    assert node.sysctl("net.netfilter.nf_conntrack_tcp_timeout_established") == "86400"
    assert node.sysctl("net.netfilter.nf_conntrack_tcp_timeout_close_wait") == "3600"
    assert node.iptables is not None
    assert node.iptables.nfacct == ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts")
    for pod in DEMO.pods():
        assert pod.iptables is None


def test_services_in_the_state() -> None:
    by_key = {service.key: service for service in DEMO.services}
    assert str(by_key["default/app1"].cluster_ip) == "10.100.200.10"
    local = by_key["default/app1-nlb-local"]
    assert (local.external_traffic_policy, local.health_check_node_port) == ("Local", 32082)
    assert [(p.protocol, p.port, p.node_port) for p in local.ports] == [("tcp", 80, 30082)]


# --- chain names and probabilities (kube-proxy.md §2, §4) ---------------------------------------

HASHES = [
    # kube-proxy.md §2 worked examples: (svcPortName, protocol, endpoint or None, name)
    ("ns1/svc1:p80", "tcp", None, "KUBE-SVC-XPGD46QRK7WJZT7O"),
    ("ns1/svc1:p80", "tcp", "10.180.0.1:80", "KUBE-SEP-SXIVWICOYRO3J4NJ"),
    ("ns2/svc2:p80", "tcp", None, "KUBE-SVC-GNZBNJ2PO5MGZ6GT"),
    ("ns4/svc4:p8082", "tcp", None, "KUBE-SVC-EBDQOQU5SJFXRIL3"),
    ("ns4/svc4:p8082", "tcp", "10.4.0.1:8082", "KUBE-SEP-SU5STNODRYEWJAUF"),
    ("ns5/svc5:p80", "tcp", "10.180.0.3:80", "KUBE-SEP-I77PXRDZVX7PMWMN"),
    ("default/web:http", "tcp", None, "KUBE-SVC-CDGGSHYLG3RE2FKL"),
    ("default/web:http", "tcp", "10.0.1.23:8080", "KUBE-SEP-USWHGSCEYDC5RTRW"),
    ("default/shop:https", "tcp", None, "KUBE-SVC-YBRHFGZD3TRL7I6I"),
]


@pytest.mark.parametrize(("name", "protocol", "endpoint", "chain"), HASHES)
def test_chain_names_of_section_2(
    name: str, protocol: str, endpoint: str | None, chain: str
) -> None:
    if endpoint is None:
        assert f"KUBE-SVC-{service_chain_suffix(name, protocol)}" == chain
    else:
        assert endpoint_chain(name, protocol, endpoint) == chain


def test_chain_names_follow_the_specs_recipe() -> None:
    """§2: base32(sha256(name + protocol))[:16], the spec's own two-line Python."""
    for name in ("default/app1", "kube-system/kube-dns:dns", "a/b:c"):
        digest = base64.b32encode(hashlib.sha256(f"{name}udp".encode()).digest()).decode()
        assert service_chain_suffix(name, "udp") == digest[:16]


PRINTED = {
    # kube-proxy.md §4: n → what iptables-save prints for 1/n
    2: "0.50000000000", 3: "0.33333333349", 4: "0.25000000000", 5: "0.20000000019",
    6: "0.16666666651", 7: "0.14285714272", 10: "0.10000000009", 100: "0.00999999978",
    1000: "0.00100000016",
}  # fmt: skip


@pytest.mark.parametrize("n", sorted(PRINTED))
def test_probabilities_as_the_kernel_prints_them(n: int) -> None:
    assert probability(go_probability(n)) == PRINTED[n]


def test_compute_probability_of_kube_proxy() -> None:
    """TestComputeProbability (kube-proxy.md §4): Go's `%0.10f` of 1/n."""
    assert go_probability(1) == "1.0000000000"
    assert go_probability(3) == "0.3333333333"
    assert go_probability(100001) == "0.0000099999"


@pytest.mark.parametrize(
    ("given", "printed"),
    [("0.333333", "0.33333300008"), ("0.0001", "0.00009999983"), ("0.99", "0.99000000022"),
     ("1", "1.00000000000")],
)  # fmt: skip
def test_probabilities_of_linux_dataplane_7_3(given: str, printed: str) -> None:
    assert probability(given) == printed


@pytest.mark.parametrize(
    ("text", "printed"),
    [("c1", "c1"), ("plain_word", "plain_word"), ("default/app1", '"default/app1"'),
     ('dq "inner" sp', '"dq \\"inner\\" sp"')],
)  # fmt: skip
def test_comment_quoting_of_linux_dataplane_7_3(text: str, printed: str) -> None:
    assert comment(text) == printed


# --- versions ------------------------------------------------------------------------------------


def test_version_table() -> None:
    assert parse_version("v1.31.2-eksbuild.3") == (1, 31)
    v129, v130, v131 = features("v1.29"), features("1.30"), features("v1.31")
    assert (v129.nfacct_invalid_drop, v130.nfacct_invalid_drop) == (False, True)
    assert (v130.nfacct_localhost_node_ports, v131.nfacct_localhost_node_ports) == (False, True)
    assert not v131.node_hints and features("v1.34").node_hints
    with pytest.raises(NotModelled, match=r"before 1\.28"):
        features("v1.27")


def with_proxy(version: str) -> DataplaneState:
    text = SHAPES.replace("kubeProxy: {version: v1.35,", f"kubeProxy: {{version: {version},")
    return build_state(parse_cluster(text, "shapes.yaml"))


def test_v1_29_has_no_counters() -> None:
    node = with_proxy("v1.29").namespace("node-a")
    assert node.iptables is not None and node.iptables.nfacct == ()
    assert "nfacct" not in node.iptables.save


def test_older_kube_proxy_is_not_modelled() -> None:
    with pytest.raises(NotModelled):
        with_proxy("v1.26")


def test_other_modes_are_not_modelled() -> None:
    text = SHAPES.replace("kubeProxy: {version: v1.35,", "kubeProxy: {version: v1.35, mode: ipvs,")
    with pytest.raises(NotModelled, match="ipvs"):
        build_state(parse_cluster(text, "shapes.yaml"))
