"""The VPC CNI controllers (ipamd, the CNI plugin) against the spec.

The demo cluster's data plane (`build_state(load_cluster())`) must show what talk-walks.md §4.1-4.3
lists for nodes 1-3 and pod 61, with the veth names of §2.4; the same cluster pinned to other VPC
CNI versions must show the changes of vpc-cni.md §0 / §2.7 and talk-walks.md §2.9. Expected
values are quoted from the spec (section in a comment next to each), never from what the code
prints. `ip` texts are produced with `eksnet exec`'s renderer and compared with trailing
whitespace stripped (talk-walks.md §4: iproute2 ends route lines with a space).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.spec_texts import VPC_CNI_MANGLE

from eksnet.controllers import build_state
from eksnet.dataplane.state import TABLE_MAIN, DataplaneState, Namespace, Neighbour, Route, Rule
from eksnet.errors import InputError, NotModelled
from eksnet.model import Cluster, load_cluster, parse_cluster
from eksnet.model.cluster import PodPin
from eksnet.render.exec import run_command

NODE1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE2 = "ip-192-168-1-70.eu-west-2.compute.internal"
NODE3 = "ip-192-168-2-90.eu-west-2.compute.internal"
POD51 = "default/app2-7c9f8d6b5-k5x2p"
POD61 = "default/rating-6d8b7c9f5-q6m4t"
POD71 = "default/app1-5f7d9c6b8-w7r2n"
POD81 = "default/app1-5f7d9c6b8-z8h4k"
POD91 = "default/app1-5f7d9c6b8-b9v6s"

DEMO = load_cluster()
STATE = build_state(DEMO)


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


def with_cni(cluster: Cluster, *, version: str | None = None, **env: str) -> Cluster:
    """`cluster` with another VPC CNI version and/or extra aws-node environment variables."""
    cni = cluster.cni.model_copy(
        update={
            "version": version or cluster.cni.version,
            "env": {**cluster.cni.env, **env},
        }
    )
    return cluster.model_copy(update={"cni": cni})


def show(state: DataplaneState, owner: str, command: str) -> list[str]:
    """What `command` prints in the namespace of `owner` (node name or `ns/pod`)."""
    namespace = state.namespace_of_owner(owner)
    return [line.rstrip() for line in run_command(state, namespace, command.split()).splitlines()]


def lines(text: str) -> list[str]:
    return text.strip("\n").splitlines()


def node(state: DataplaneState, name: str) -> Namespace:
    return state.namespace_of_owner(name)


def pod(state: DataplaneState, key: str) -> Namespace:
    return state.namespace_of_owner(key)


def table(namespace: Namespace, number: int) -> list[Route]:
    return [route for route in namespace.routes if route.table == number]


def saved_rules(save: str) -> dict[tuple[str, str], list[str]]:
    """`-A` lines of an iptables-save text per (table, chain), in saved order."""
    rules: dict[tuple[str, str], list[str]] = defaultdict(list)
    current = ""
    for line in save.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif line.startswith("-A "):
            rules[(current, line.split()[1])].append(line)
    return dict(rules)


def aws_rules(save: str) -> dict[tuple[str, str], list[str]]:
    """Only the VPC CNI's rules (kube-proxy's are another controller's)."""
    return {
        key: [rule for rule in rules if "AWS" in rule]
        for key, rules in saved_rules(save).items()
        if any("AWS" in rule for rule in rules)
    }


def declared_chains(save: str, table_name: str) -> list[str]:
    chains: list[str] = []
    current = ""
    for line in save.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif line.startswith(":") and current == table_name:
            chains.append(line[1:].split()[0])
    return chains


def iptables_of(state: DataplaneState, name: str) -> str:
    iptables = node(state, name).iptables
    assert iptables is not None
    return iptables.save


# talk-walks.md §4.1 ------------------------------------------------------------------------------

# talk-walks.md §4.1, node 1 `ip rule show` [slide].
NODE1_RULES = """
0:	from all lookup local
512:	from all to 192.168.1.51 lookup main
512:	from all to 192.168.1.61 lookup main
1024:	from all fwmark 0x80/0x80 lookup main
1536:	from 192.168.1.61 lookup 2
32766:	from all lookup main
32767:	from all lookup default
"""

# talk-walks.md §4.1, node 2 [inf, derived].
NODE2_RULES = """
0:	from all lookup local
512:	from all to 192.168.1.71 lookup main
512:	from all to 192.168.1.81 lookup main
1024:	from all fwmark 0x80/0x80 lookup main
1536:	from 192.168.1.81 lookup 2
32766:	from all lookup main
32767:	from all lookup default
"""

# talk-walks.md §4.1, node 3 [inf, derived]: warm eth1, so no 1536 rule.
NODE3_RULES = """
0:	from all lookup local
512:	from all to 192.168.2.91 lookup main
1024:	from all fwmark 0x80/0x80 lookup main
32766:	from all lookup main
32767:	from all lookup default
"""

NODE1_MAIN = """
default via 192.168.1.1 dev eth0
169.254.169.254 dev eth0
192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.50
192.168.1.51 dev enib9b00b57dd4 scope link
192.168.1.61 dev eni69e05c2a0e5 scope link
"""

NODE2_MAIN = """
default via 192.168.1.1 dev eth0
169.254.169.254 dev eth0
192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.70
192.168.1.71 dev eni724343586e6 scope link
192.168.1.81 dev eni584ab165f98 scope link
"""

NODE3_MAIN = """
default via 192.168.2.1 dev eth0
169.254.169.254 dev eth0
192.168.2.0/24 dev eth0 proto kernel scope link src 192.168.2.90
192.168.2.91 dev enif549030a0c3 scope link
"""

TABLE2_A = """
default via 192.168.1.1 dev eth1
192.168.1.1 dev eth1 scope link
"""

TABLE2_B = """
default via 192.168.2.1 dev eth1
192.168.2.1 dev eth1 scope link
"""


@pytest.mark.parametrize(
    ("name", "rules", "main", "table_2"),
    [
        (NODE1, NODE1_RULES, NODE1_MAIN, TABLE2_A),
        (NODE2, NODE2_RULES, NODE2_MAIN, TABLE2_A),
        (NODE3, NODE3_RULES, NODE3_MAIN, TABLE2_B),
    ],
    ids=["node1", "node2", "node3"],
)
def test_demo_nodes_policy_routing_as_in_the_spec(
    name: str, rules: str, main: str, table_2: str
) -> None:
    assert show(STATE, name, "ip rule show") == lines(rules)
    assert show(STATE, name, "ip route show table main") == lines(main)
    assert show(STATE, name, "ip route show table 2") == lines(table_2)


def test_node1_rules_as_state() -> None:
    # talk-walks.md §4.1: the two 512 rules in pod creation order (.51 before .61, §2.1), rule
    # 1024 `fwmark 0x80/0x80 lookup main` (vpc-cni.md §2.2), `1536: from 192.168.1.61 lookup 2`.
    assert node(STATE, NODE1).sorted_rules() == (
        Rule(0, table=255),
        Rule(512, table=TABLE_MAIN, dst=net("192.168.1.51/32")),
        Rule(512, table=TABLE_MAIN, dst=net("192.168.1.61/32")),
        Rule(1024, table=TABLE_MAIN, fwmark=0x80, fwmask=0x80),
        Rule(1536, table=2, src=net("192.168.1.61/32")),
        Rule(32766, table=TABLE_MAIN),
        Rule(32767, table=253),
    )


def test_pod_creation_order_decides_the_order_of_the_512_rules() -> None:
    # talk-walks.md §2.1: "equal-priority rules print in insertion order".
    pods = list(DEMO.pods)
    pods[0], pods[1] = pods[1], pods[0]
    state = build_state(DEMO.model_copy(update={"pods": pods}))
    assert show(state, NODE1, "ip rule show")[1:3] == [
        "512:\tfrom all to 192.168.1.61 lookup main",
        "512:\tfrom all to 192.168.1.51 lookup main",
    ]


@pytest.mark.parametrize("name", [NODE1, NODE2, NODE3])
def test_no_connected_route_for_eth1_in_main(name: str) -> None:
    # vpc-cni.md §2.3 step 4: ipamd deletes the secondary ENI's connected route from main.
    main = table(node(STATE, name), TABLE_MAIN)
    assert [route for route in main if route.dev == "eth1"] == []
    connected = [route for route in main if route.proto == "kernel"]
    assert [(route.dst, route.dev) for route in connected] == [
        (DEMO.subnet(DEMO.node(name).subnet).cidr, "eth0")
    ]


def test_node3_warm_eni_has_a_table_but_no_from_rule() -> None:
    # talk-walks.md §4.1 node 3: "eth1 is a warm ENI without pods, so no 1536 rule, but its
    # table 2 exists".
    namespace = node(STATE, NODE3)
    assert [rule for rule in namespace.rules if rule.priority == 1536] == []
    assert table(namespace, 2) != []
    assert all(route.dev == "eth1" for route in table(namespace, 2))


# talk-walks.md §2.4, §4.2 -------------------------------------------------------------------------


def test_pod61_routes_and_permanent_neighbour() -> None:
    # talk-walks.md §4.2 (`ip route`, `ip neigh`) [slide].
    assert show(STATE, POD61, "ip route") == [
        "default via 169.254.1.1 dev eth0",
        "169.254.1.1 dev eth0 scope link",
    ]
    assert show(STATE, POD61, "ip neigh") == [
        "169.254.1.1 dev eth0 lladdr 06:5e:c8:ae:85:be PERMANENT"
    ]


@pytest.mark.parametrize(
    ("key", "host_mac"),
    [
        # talk-walks.md §2.4: the neighbour is the host veth's MAC.
        (POD51, "2e:00:c0:a8:01:33"),
        (POD61, "06:5e:c8:ae:85:be"),
        (POD71, "2e:00:c0:a8:01:47"),
        (POD81, "2e:00:c0:a8:01:51"),
        (POD91, "2e:00:c0:a8:02:5b"),
    ],
)
def test_every_pod_has_the_two_routes_and_a_permanent_gateway_neighbour(
    key: str, host_mac: str
) -> None:
    # vpc-cni.md §1.3: `169.254.1.1 dev eth0 scope link`, `default via 169.254.1.1 dev eth0`,
    # and `169.254.1.1 dev eth0 lladdr <host-veth MAC> PERMANENT`; address <podIP>/32.
    namespace = pod(STATE, key)
    gateway = IPv4Address("169.254.1.1")
    assert set(namespace.routes) == {
        Route(TABLE_MAIN, net("169.254.1.1/32"), dev="eth0", scope="link"),
        Route(TABLE_MAIN, net("0.0.0.0/0"), gateway=gateway, dev="eth0"),
    }
    assert namespace.neighbours == (Neighbour(gateway, "eth0", host_mac, "PERMANENT"),)
    pod_ip = next(spec.ip for spec in DEMO.pods if spec.key == key)
    v4 = [a.interface for a in namespace.addresses_of("eth0") if a.family == 4]
    assert [str(interface) for interface in v4] == [f"{pod_ip}/32"]


@pytest.mark.parametrize(
    ("pod_name", "suffix"),
    [
        # talk-walks.md §4.4 static checks and §2.4.
        ("app1-5f7d9c6b8-w7r2n", "724343586e6"),
        ("app1-5f7d9c6b8-z8h4k", "584ab165f98"),
        ("app1-5f7d9c6b8-b9v6s", "f549030a0c3"),
        # talk-walks.md §2.4: what pods 51/61 would get without their pins.
        ("app2-7c9f8d6b5-k5x2p", "13aa84997b7"),
        ("rating-6d8b7c9f5-q6m4t", "9da49c8ee9d"),
        # vpc-cni.md running example.
        ("web-a", "a150d993dd4"),
        ("web-b", "ddeaa362342"),
    ],
)
def test_sha1_of_namespace_dot_pod_reproduces_the_spec(pod_name: str, suffix: str) -> None:
    # vpc-cni.md §1.2: prefix + first 11 hex digits of SHA-1("<namespace>.<podname>").
    assert hashlib.sha1(f"default.{pod_name}".encode()).hexdigest()[:11] == suffix


@pytest.mark.parametrize(
    ("key", "veth", "ifindex"),
    [
        # talk-walks.md §2.4: pods 71/81/91 computed names, ifindexes pinned.
        (POD71, "eni724343586e6", 8),
        (POD81, "eni584ab165f98", 9),
        (POD91, "enif549030a0c3", 7),
        # Pods 51/61: the slide's names are pins that override the computed ones.
        (POD51, "enib9b00b57dd4", 37),
        (POD61, "eni69e05c2a0e5", 39),
    ],
)
def test_host_veth_names_and_the_pod_eth0_peer(key: str, veth: str, ifindex: int) -> None:
    node_name = next(spec.node for spec in DEMO.pods if spec.key == key)
    host = node(STATE, node_name).link(veth)
    assert host.ifindex == ifindex
    assert host.kind == "veth"
    eth0 = pod(STATE, key).link("eth0")
    # talk-walks.md §2.4: "Pod eth0 ifindex is 3 on every pod" (v1.19); §4.2 `3: eth0@if39`.
    assert eth0.ifindex == 3
    assert eth0.peer is not None
    assert (eth0.peer.ifindex, eth0.peer.name, eth0.peer.netnsid) == (ifindex, veth, 0)
    assert host.peer is not None
    assert (host.peer.ifindex, host.peer.name) == (3, "eth0")
    assert host.peer.netns == pod(STATE, key).name
    # talk-walks.md §2.3: MTU 9001 on ENIs and veths; vpc-cni.md §7.20 both ends.
    assert host.mtu == eth0.mtu == 9001


def test_pod61_slide_values() -> None:
    # talk-walks.md §4.1 `39: eni69e05c2a0e5@if3 … link/ether 06:5e:c8:ae:85:be … link-netns
    # cni-04b6218d-…` and §4.2 `3: eth0@if39 … link/ether 6a:40:16:85:c3:34`.
    namespace = pod(STATE, POD61)
    assert namespace.name == "cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935"
    assert namespace.link("eth0").mac == "6a:40:16:85:c3:34"
    assert node(STATE, NODE1).link("eni69e05c2a0e5").mac == "06:5e:c8:ae:85:be"


def test_unpinned_pods_get_the_computed_name() -> None:
    # talk-walks.md §4.4: without the pins, pods 51 and 61 get eni13aa84997b7 / eni9da49c8ee9d.
    pods = [spec.model_copy(update={"pin": PodPin()}) for spec in DEMO.pods]
    state = build_state(DEMO.model_copy(update={"pods": pods}))
    names = {link.name for link in node(state, NODE1).links if link.kind == "veth"}
    assert names == {"eni13aa84997b7", "eni9da49c8ee9d"}


def test_pinned_veth_name_overrides_the_computed_one() -> None:
    pods = [
        spec.model_copy(update={"pin": PodPin(host_veth="enipinned0001")})
        if spec.key == POD71
        else spec
        for spec in DEMO.pods
    ]
    state = build_state(DEMO.model_copy(update={"pods": pods}))
    assert "192.168.1.71 dev enipinned0001 scope link" in show(state, NODE2, "ip route")
    assert pod(state, POD71).link("eth0").peer.name == "enipinned0001"  # type: ignore[union-attr]


def test_veth_prefix_setting_changes_computed_names() -> None:
    # vpc-cni.md §1.2 / §2.4: names and the `-i eni+` match use AWS_VPC_K8S_CNI_VETHPREFIX.
    state = build_state(with_cni(DEMO, AWS_VPC_K8S_CNI_VETHPREFIX="pod"))
    assert "192.168.1.71 dev pod724343586e6 scope link" in show(state, NODE2, "ip route")
    assert "-i pod+ " in iptables_of(state, NODE2)


# iptables: talk-walks.md §4.3 and vpc-cni.md §2.7 ------------------------------------------------

# talk-walks.md §4.3, the AWS lines of node 1 (VPC CNI v1.19.2, legacy), per chain in order.
NODE1_AWS = {
    ("mangle", "PREROUTING"): [
        '-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80',
        '-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80',
        '-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80',
    ],
    ("nat", "PREROUTING"): [
        '-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0',
        '-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80',
    ],
    ("nat", "POSTROUTING"): [
        '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0',
    ],
    ("nat", "AWS-CONNMARK-CHAIN-0"): [
        '-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN',
        '-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80',
    ],
    ("nat", "AWS-SNAT-CHAIN-0"): [
        '-A AWS-SNAT-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN',
        '-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 192.168.1.50 --random-fully',
    ],
}


def test_node1_aws_iptables_lines_as_in_the_talk() -> None:
    assert aws_rules(iptables_of(STATE, NODE1)) == NODE1_AWS


@pytest.mark.parametrize(("name", "primary"), [(NODE2, "192.168.1.70"), (NODE3, "192.168.2.90")])
def test_other_nodes_snat_to_their_own_primary_ip(name: str, primary: str) -> None:
    # talk-walks.md §4.3 note: "Node 2's S4 uses --to-source 192.168.1.70, node 3's 192.168.2.90".
    expected = {
        key: [rule.replace("--to-source 192.168.1.50", f"--to-source {primary}") for rule in rules]
        for key, rules in NODE1_AWS.items()
    }
    assert aws_rules(iptables_of(STATE, name)) == expected


def test_filter_table_is_the_amis_accept_everything() -> None:
    # talk-walks.md §2.3 / vpc-cni.md §2.1: filter FORWARD policy ACCEPT, not set by the CNI.
    save = iptables_of(STATE, NODE1)
    assert ":FORWARD ACCEPT [0:0]" in save.split("*filter", 1)[1]
    assert not any(table_name == "filter" for table_name, _ in aws_rules(save))


# vpc-cni.md §2.7, the representative iptables-save, with the kube-proxy lines left out.
SECTION_2_7 = (
    "\n"
    + VPC_CNI_MANGLE
    + """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:AWS-CONNMARK-CHAIN-0 - [0:0]
:AWS-SNAT-CHAIN-0 - [0:0]
-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0
-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0
-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -d 100.64.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -d 10.0.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80
-A AWS-SNAT-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN
-A AWS-SNAT-CHAIN-0 -d 100.64.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 -d 10.0.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 10.0.1.5 --random-fully
COMMIT
"""
)

# vpc-cni.md's running example: VPC CIDRs 10.0.0.0/16 + 100.64.0.0/16, node subnet 10.0.0.0/19,
# eth0 10.0.1.5 (device 0), eth1 10.0.2.20 (device 1), pods web-a 10.0.1.23 on eth0 and web-b
# 10.0.2.57 on eth1; §2.7 adds the exclusion 192.168.0.0/16. HEAD is v1.23.1.
EXAMPLE_YAML = """\
name: example
region: eu-west-1
vpc:
  id: vpc-example
  cidrs: [10.0.0.0/16, 100.64.0.0/16]
  subnets:
    - {name: nodes, az: eu-west-1a, cidr: 10.0.0.0/19, routeTable: rtb-main}
cni:
  version: v1.23.1
  env: {AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: "192.168.0.0/16"}
nodes:
  - name: node-a
    subnet: nodes
    enis:
      - {linux: eth0, ifindex: 2, id: eni-a, device: 0, mac: "02:00:0a:00:01:05",
         primaryIp: 10.0.1.5, secondaryIps: [10.0.1.23]}
      - {linux: eth1, ifindex: 3, id: eni-b, device: 1, mac: "02:00:0a:00:02:14",
         primaryIp: 10.0.2.20, secondaryIps: [10.0.2.57]}
pods:
  - {name: web-a, node: node-a, eni: eth0, ip: 10.0.1.23}
  - {name: web-b, node: node-a, eni: eth1, ip: 10.0.2.57}
"""


def example() -> Cluster:
    return parse_cluster(EXAMPLE_YAML, "example.yaml")


def without_filter(save: str) -> list[str]:
    """The mangle and nat sections of a save text, in the order they appear, without kubelet's
    and kube-proxy's chains and rules (§2.7 abbreviates them; tests/controllers/test_kube_proxy.py
    holds them to kube-proxy.md)."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in save.splitlines():
        if line.startswith("*"):
            current = line[1:]
            sections[current] = []
        if current is not None and "KUBE-" not in line:
            sections[current].append(line)
    return sections["mangle"] + sections["nat"]


def test_iptables_save_of_the_vpc_cni_spec_example() -> None:
    state = build_state(example())
    assert without_filter(iptables_of(state, "node-a")) == lines(SECTION_2_7)


def test_policy_routing_of_the_vpc_cni_spec_example() -> None:
    # vpc-cni.md §2.9 (v1.20+: 32765 for eth1's primary IP).
    state = build_state(example())
    assert show(state, "node-a", "ip rule") == [
        "0:\tfrom all lookup local",
        "512:\tfrom all to 10.0.1.23 lookup main",
        "512:\tfrom all to 10.0.2.57 lookup main",
        "1024:\tfrom all fwmark 0x80/0x80 lookup main",
        "1536:\tfrom 10.0.2.57 lookup 2",
        "32765:\tfrom 10.0.2.20 lookup 2",
        "32766:\tfrom all lookup main",
        "32767:\tfrom all lookup default",
    ]
    main = show(state, "node-a", "ip route")
    for line in (
        "default via 10.0.0.1 dev eth0",
        "10.0.0.0/19 dev eth0 proto kernel scope link src 10.0.1.5",
        "10.0.1.23 dev enia150d993dd4 scope link",
        "10.0.2.57 dev eniddeaa362342 scope link",
    ):
        assert line in main
    assert show(state, "node-a", "ip route show table 2") == [
        "default via 10.0.0.1 dev eth1",
        "10.0.0.1 dev eth1 scope link",
    ]
    # vpc-cni.md §7.12 / §2.3 step 2: the secondary ENI's primary IP with the subnet mask.
    eth1 = [str(a.interface) for a in node(state, "node-a").addresses_of("eth1")]
    assert eth1 == ["10.0.2.20/19"]


def test_exclusion_comments_before_v1_23() -> None:
    # vpc-cni.md §2.7 variants: v1.8 - v1.22 `AWS CONNMARK CHAIN, VPC CIDR` / `…, EXCLUDED CIDR`.
    state = build_state(with_cni(example(), version="v1.19.2"))
    assert aws_rules(iptables_of(state, "node-a"))[("nat", "AWS-CONNMARK-CHAIN-0")][:3] == [
        '-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, EXCLUDED CIDR" -j RETURN',
        '-A AWS-CONNMARK-CHAIN-0 -d 100.64.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN',
        '-A AWS-CONNMARK-CHAIN-0 -d 10.0.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN',
    ]


def test_exclusion_of_everything_is_written_without_d() -> None:
    # vpc-cni.md §2.4 S3 / §7.5: `0.0.0.0/0` is written without `-d`.
    state = build_state(with_cni(example(), AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS="0.0.0.0/0"))
    snat = aws_rules(iptables_of(state, "node-a"))[("nat", "AWS-SNAT-CHAIN-0")]
    assert (
        snat[0] == '-A AWS-SNAT-CHAIN-0 -m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN'
    )


@pytest.mark.parametrize(
    ("value", "flag"),
    # vpc-cni.md §2.4 notes: prng → --random-fully, hashrandom → --random, none → no flag.
    [("prng", " --random-fully"), ("hashrandom", " --random"), ("none", "")],
)
def test_randomize_snat(value: str, flag: str) -> None:
    state = build_state(with_cni(DEMO, AWS_VPC_K8S_CNI_RANDOMIZESNAT=value))
    snat = aws_rules(iptables_of(state, NODE1))[("nat", "AWS-SNAT-CHAIN-0")]
    assert snat[-1].endswith(f"-j SNAT --to-source 192.168.1.50{flag}")


# The version table: vpc-cni.md §0, talk-walks.md §2.9 ---------------------------------------------


def test_v1_20_adds_a_32765_rule_for_every_secondary_eni() -> None:
    # vpc-cni.md §0 v1.20.0 / §2.3 step 5: `32765: from <ENI primary IP> lookup <T>`; talk-walks.md
    # §2.9: its absence on the slide is why the demo pins < v1.20.0.
    state = build_state(with_cni(DEMO, version="v1.20.0"))
    eth1_primaries = [(NODE1, "192.168.1.60"), (NODE2, "192.168.1.80"), (NODE3, "192.168.2.100")]
    for name, eth1_primary in eth1_primaries:
        rules = show(state, name, "ip rule")
        assert f"32765:\tfrom {eth1_primary} lookup 2" in rules
        assert rules.index(f"32765:\tfrom {eth1_primary} lookup 2") == len(rules) - 3
    assert "32765:\tfrom 192.168.1.60 lookup 2" not in show(STATE, NODE1, "ip rule")


def test_v1_7_writes_one_from_rule_per_vpc_cidr_and_no_nat_connmark() -> None:
    # vpc-cni.md §0 ≤ v1.7.x: `from <podIP> to <vpcCIDR> lookup <table>` (prio 1536) when SNAT
    # is on; no nat-table connmark. talk-walks.md §2.9: `1536: from 192.168.1.61 lookup 2` ⇒ ≥ v1.8.
    state = build_state(with_cni(DEMO, version="v1.7.10"))
    rules = show(state, NODE1, "ip rule")
    assert "1536:\tfrom 192.168.1.61 to 192.168.0.0/16 lookup 2" in rules
    assert "1536:\tfrom 192.168.1.61 lookup 2" not in rules
    save = iptables_of(state, NODE1)
    assert "CONNMARK-CHAIN" not in save
    assert '"AWS, outbound connections"' not in save
    assert '"AWS, CONNMARK"' not in save


def test_v1_7_with_external_snat_writes_a_single_from_rule() -> None:
    # vpc-cni.md §0 ≤ v1.7.x: "a single `from <podIP> lookup <table>` only with external SNAT".
    state = build_state(with_cni(DEMO, version="v1.7.10", AWS_VPC_K8S_CNI_EXTERNALSNAT="true"))
    assert "1536:\tfrom 192.168.1.61 lookup 2" in show(state, NODE1, "ip rule")


def test_v1_7_one_from_rule_per_vpc_cidr_with_two_cidrs() -> None:
    state = build_state(with_cni(example(), version="v1.7.10"))
    rules = show(state, "node-a", "ip rule")
    assert [rule for rule in rules if rule.startswith("1536:")] == [
        "1536:\tfrom 10.0.2.57 to 10.0.0.0/16 lookup 2",
        "1536:\tfrom 10.0.2.57 to 100.64.0.0/16 lookup 2",
    ]


def test_v1_16_0_uses_chains_of_chains() -> None:
    # vpc-cni.md §0 (v1.16.0 still chained) and §2.7 variants: "`-A AWS-SNAT-CHAIN-0 ! -d
    # 10.0.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-1`, then `-A
    # AWS-SNAT-CHAIN-1 ! -o vlan+ … -j SNAT …`; same pattern for AWS-CONNMARK-CHAIN-0/1"; the
    # connmark comment of v1.8 - v1.22 is `AWS CONNMARK CHAIN, VPC CIDR`.
    state = build_state(with_cni(DEMO, version="v1.16.0"))
    save = iptables_of(state, NODE1)
    rules = aws_rules(save)
    assert rules[("nat", "AWS-SNAT-CHAIN-0")] == [
        '-A AWS-SNAT-CHAIN-0 ! -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-1'
    ]
    assert rules[("nat", "AWS-SNAT-CHAIN-1")] == [
        '-A AWS-SNAT-CHAIN-1 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 192.168.1.50 --random-fully'
    ]
    assert rules[("nat", "AWS-CONNMARK-CHAIN-0")] == [
        '-A AWS-CONNMARK-CHAIN-0 ! -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j AWS-CONNMARK-CHAIN-1'
    ]
    assert rules[("nat", "AWS-CONNMARK-CHAIN-1")] == [
        '-A AWS-CONNMARK-CHAIN-1 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80'
    ]
    chains = [
        "AWS-CONNMARK-CHAIN-0",
        "AWS-CONNMARK-CHAIN-1",
        "AWS-SNAT-CHAIN-0",
        "AWS-SNAT-CHAIN-1",
    ]
    assert [c for c in declared_chains(save, "nat") if c.startswith("AWS")] == chains
    # The 1536 rule is the single-rule form since v1.8.0.
    assert "1536:\tfrom 192.168.1.61 lookup 2" in show(state, NODE1, "ip rule")


def test_v1_16_0_chain_per_cidr_keeps_each_cidrs_comment() -> None:
    # Exempt list = VPC CIDRs then exclusions (vpc-cni.md §2.5); exclusions are `… EXCLUSION`
    # (§2.4 S3) and `AWS CONNMARK CHAIN, EXCLUDED CIDR` (§2.7 variants).
    state = build_state(with_cni(example(), version="v1.16.0"))
    rules = aws_rules(iptables_of(state, "node-a"))
    assert rules[("nat", "AWS-SNAT-CHAIN-2")] == [
        '-A AWS-SNAT-CHAIN-2 ! -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN EXCLUSION" -j AWS-SNAT-CHAIN-3'
    ]
    assert rules[("nat", "AWS-CONNMARK-CHAIN-1")] == [
        '-A AWS-CONNMARK-CHAIN-1 ! -d 100.64.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j AWS-CONNMARK-CHAIN-2'
    ]
    assert rules[("nat", "AWS-CONNMARK-CHAIN-2")] == [
        '-A AWS-CONNMARK-CHAIN-2 ! -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, EXCLUDED CIDR" -j AWS-CONNMARK-CHAIN-3'
    ]


def test_v1_16_2_is_the_single_chain_layout() -> None:
    # vpc-cni.md §0: "v1.16.2+ single chain".
    save = iptables_of(build_state(with_cni(DEMO, version="v1.16.2")), NODE1)
    assert aws_rules(save) == NODE1_AWS


def test_v1_23_plain_connmark_comment_and_pod_eth0_ifindex_2() -> None:
    # vpc-cni.md §0 v1.23.0: connmark RETURN comment becomes plain `AWS CONNMARK CHAIN`; the veth
    # host end is created straight in the host netns, so pod eth0 is ifindex 2 (talk-walks.md
    # §2.9: `3: eth0@if39` means ≤ v1.22.x).
    state = build_state(with_cni(DEMO, version="v1.23.0"))
    connmark = aws_rules(iptables_of(state, NODE1))[("nat", "AWS-CONNMARK-CHAIN-0")]
    assert connmark[0] == (
        '-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN'
    )
    for key in (POD51, POD61, POD71, POD81, POD91):
        eth0 = pod(state, key).link("eth0")
        assert eth0.ifindex == 2
        assert eth0.peer is not None
        node_name = next(spec.node for spec in DEMO.pods if spec.key == key)
        host = node(state, node_name).link_by_index(eth0.peer.ifindex)
        assert host.peer is not None
        assert (host.peer.ifindex, host.peer.name) == (2, "eth0")
    assert show(state, POD61, "ip link")[2].startswith("2: eth0@if39:")


def test_v1_22_still_creates_the_pair_in_the_pod() -> None:
    state = build_state(with_cni(DEMO, version="v1.22.9"))
    assert pod(state, POD61).link("eth0").ifindex == 3


def test_v1_23_on_nf_tables_is_not_modelled() -> None:
    # vpc-cni.md §2.6: v1.23+ with an nf_tables iptables keeps connmark rules in nftables.
    defaults = DEMO.node_defaults.model_copy(update={"iptables": "nft"})
    cluster = with_cni(DEMO.model_copy(update={"node_defaults": defaults}), version="v1.23.0")
    with pytest.raises(NotModelled, match="nftables"):
        build_state(cluster)


# Settings: external SNAT, NodePort support, unmodelled features ------------------------------------


def test_external_snat_variant_drops_snat_and_connmark_but_keeps_the_empty_chain() -> None:
    # vpc-cni.md §2.4 reconciliation / §2.7 variants: "EXTERNALSNAT=true, NODE_PORT_SUPPORT=true:
    # only `:AWS-SNAT-CHAIN-0` (empty) in nat and M1-M3 in mangle"; rule 1024 stays (§2.2 step 2).
    state = build_state(load_cluster(variant="externalSnat"))
    for name in (NODE1, NODE2, NODE3):
        save = iptables_of(state, name)
        assert aws_rules(save) == {("mangle", "PREROUTING"): NODE1_AWS[("mangle", "PREROUTING")]}
        assert [c for c in declared_chains(save, "nat") if c.startswith("AWS")] == [
            "AWS-SNAT-CHAIN-0"
        ]
        assert "1024:\tfrom all fwmark 0x80/0x80 lookup main" in show(state, name, "ip rule")
    # talk-walks.md §4.4 W10d: pod 61 still leaves eth1 (its 1536 rule stays).
    assert "1536:\tfrom 192.168.1.61 lookup 2" in show(state, NODE1, "ip rule")


def test_node_port_support_off_with_node_snat_keeps_only_m2_in_mangle() -> None:
    # vpc-cni.md §2.7: "EXTERNALSNAT=false, NODE_PORT_SUPPORT=false: S1-S4, C1-C4 and only M2".
    state = build_state(with_cni(DEMO, AWS_VPC_CNI_NODE_PORT_SUPPORT="false"))
    rules = aws_rules(iptables_of(state, NODE1))
    assert rules[("mangle", "PREROUTING")] == [NODE1_AWS[("mangle", "PREROUTING")][1]]
    assert {key: value for key, value in rules.items() if key[0] == "nat"} == {
        key: value for key, value in NODE1_AWS.items() if key[0] == "nat"
    }
    assert "1024:\tfrom all fwmark 0x80/0x80 lookup main" in show(state, NODE1, "ip rule")


def test_node_port_support_off_with_external_snat_removes_rule_1024() -> None:
    # vpc-cni.md §2.2 step 2 and §2.7: "EXTERNALSNAT=true, NODE_PORT_SUPPORT=false: no AWS rules
    # except the empty chain, and no rule 1024".
    state = build_state(
        with_cni(DEMO, AWS_VPC_K8S_CNI_EXTERNALSNAT="true", AWS_VPC_CNI_NODE_PORT_SUPPORT="false")
    )
    for name in (NODE1, NODE2, NODE3):
        save = iptables_of(state, name)
        assert aws_rules(save) == {}
        assert "AWS-SNAT-CHAIN-0" in declared_chains(save, "nat")
        assert not any(rule.startswith("1024:") for rule in show(state, name, "ip rule"))


def test_connmark_setting_changes_the_mark_everywhere() -> None:
    # vpc-cni.md §2.2: mark value from AWS_VPC_K8S_CNI_CONNMARK (mask = value).
    state = build_state(with_cni(DEMO, AWS_VPC_K8S_CNI_CONNMARK="0x100"))
    assert "1024:\tfrom all fwmark 0x100/0x100 lookup main" in show(state, NODE1, "ip rule")
    save = iptables_of(state, NODE1)
    assert "0x80" not in save
    assert "--set-xmark 0x100/0x100" in save


@pytest.mark.parametrize(
    "variable",
    ["ENABLE_POD_ENI", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "ENABLE_IPv6", "ENABLE_MULTI_NIC"],
)
def test_unmodelled_features_say_so(variable: str) -> None:
    # v1.20.0 reads all four (ENABLE_MULTI_NIC is its own)
    with pytest.raises(NotModelled) as info:
        build_state(with_cni(DEMO, version="v1.20.0", **{variable: "true"}))
    assert info.value.one_line().startswith("not modelled yet: ")


def test_pod_eni_false_is_fine() -> None:
    assert build_state(with_cni(DEMO, ENABLE_POD_ENI="false")) == STATE


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AWS_VPC_K8S_CNI_EXTERNALSNAT", "yes"),
        ("AWS_VPC_K8S_CNI_CONNMARK", "mark"),
        ("AWS_VPC_K8S_CNI_VETHPREFIX", "eth"),
        ("AWS_VPC_K8S_CNI_VETHPREFIX", "toolong"),
    ],
)
def test_bad_env_values_are_input_errors(variable: str, value: str) -> None:
    with pytest.raises(InputError) as info:
        build_state(with_cni(DEMO, **{variable: value}))
    assert variable in info.value.one_line()
    assert info.value.fix


# Determinism -------------------------------------------------------------------------------------


def test_build_state_is_a_pure_function() -> None:
    assert build_state(DEMO) == build_state(DEMO) == STATE
    assert build_state(load_cluster()) == STATE
    assert [ns.name for ns in build_state(DEMO).namespaces] == [ns.name for ns in STATE.namespaces]


def unpinned(cluster: Cluster) -> Cluster:
    """Pods without pins: names, MACs, netns and host ifindexes all computed."""
    pods = [spec.model_copy(update={"pin": PodPin()}) for spec in cluster.pods]
    return cluster.model_copy(update={"pods": pods})


def node_and_its_pods(state: DataplaneState, cluster: Cluster, name: str) -> list[Namespace]:
    keys = [spec.key for spec in cluster.pods if spec.node == name]
    return [node(state, name), *(pod(state, key) for key in keys)]


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(len(DEMO.pods))),
    name=st.sampled_from([NODE1, NODE2, NODE3]),
    pinned=st.booleans(),
)
def test_other_nodes_pod_order_does_not_change_a_node(
    order: list[int], name: str, pinned: bool
) -> None:
    """Shuffle the pod list, keeping only `name`'s own pods in their creation order."""
    cluster = DEMO if pinned else unpinned(DEMO)
    pods = list(cluster.pods)
    shuffled = [pods[index] for index in order]
    own = iter(spec for spec in pods if spec.node == name)
    reordered = [next(own) if spec.node == name else spec for spec in shuffled]
    baseline = build_state(cluster)
    state = build_state(cluster.model_copy(update={"pods": reordered}))
    assert node_and_its_pods(state, cluster, name) == node_and_its_pods(baseline, cluster, name)
    assert state.vpc == baseline.vpc


def test_unpinned_host_ifindexes_follow_creation_order_on_each_node() -> None:
    # Without pins the host ends take the next free ifindexes (lo 1, eth0 2, eth1 3) in pod
    # creation order, per node.
    state = build_state(unpinned(DEMO))
    assert node(state, NODE1).link("eni13aa84997b7").ifindex == 4
    assert node(state, NODE1).link("eni9da49c8ee9d").ifindex == 5
    assert node(state, NODE2).link("eni724343586e6").ifindex == 4
    assert node(state, NODE2).link("eni584ab165f98").ifindex == 5
    assert node(state, NODE3).link("enif549030a0c3").ifindex == 4


def test_pinned_veth_name_that_another_pod_computes_is_an_input_error() -> None:
    # Pod 81's computed name is eni584ab165f98 (talk-walks.md §2.4); pinning it on pod 71 would
    # give node 2 two links of that name.
    pods = [
        spec.model_copy(update={"pin": spec.pin.model_copy(update={"host_veth": "eni584ab165f98"})})
        if spec.key == POD71
        else spec
        for spec in DEMO.pods
    ]
    with pytest.raises(InputError, match="eni584ab165f98 is already used"):
        build_state(DEMO.model_copy(update={"pods": pods}))


def test_before_v1_7_no_vlan_rules_and_hashrandom_snat() -> None:
    # amazon-vpc-cni-k8s pkg/networkutils/network.go: v1.6.3 has no `connmark restore for
    # primary ENI from vlan` rule, its SNAT rule has no `! -o vlan+`, and typeOfSNAT defaults
    # to hashrandom (`--random`); v1.7.0 adds both vlan rules and defaults to prng.
    old = build_state(with_cni(DEMO, version="v1.6.3"))
    rules = aws_rules(iptables_of(old, NODE1))
    assert not any("vlan+" in line for chain in rules.values() for line in chain)
    # before v1.16.2 the action is the last chain's (one chain per VPC CIDR before it)
    assert rules[("nat", "AWS-SNAT-CHAIN-1")][-1] == (
        '-A AWS-SNAT-CHAIN-1 -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL '
        "-j SNAT --to-source 192.168.1.50 --random"
    )
    new = aws_rules(iptables_of(build_state(with_cni(DEMO, version="v1.7.0")), NODE1))
    assert any("-i vlan+" in line for line in new[("mangle", "PREROUTING")])
    assert new[("nat", "AWS-SNAT-CHAIN-1")][-1].startswith("-A AWS-SNAT-CHAIN-1 ! -o vlan+ ")
    assert new[("nat", "AWS-SNAT-CHAIN-1")][-1].endswith(" --random-fully")


# amazon-vpc-cni-k8s pkg/networkutils/network.go and cmd/routed-eni-cni-plugin at the tags named;
# each boundary is the first release whose code differs.


def _primary_renamed(cluster: Cluster, name: str) -> Cluster:
    """`cluster` with node 1's primary ENI called `name` in Linux (an AL2023 `ens5`)."""
    nodes = []
    for spec in cluster.nodes:
        if spec.name == NODE1:
            enis = [
                eni.model_copy(update={"linux": name}) if eni.device == 0 else eni
                for eni in spec.enis
            ]
            spec = spec.model_copy(update={"enis": enis})
        nodes.append(spec)
    pods = [
        spec.model_copy(update={"eni": name}) if spec.node == NODE1 and spec.eni == "eth0" else spec
        for spec in cluster.pods
    ]
    return cluster.model_copy(update={"nodes": nodes, "pods": pods})


def test_before_v1_6_the_snat_comment_is_aws_snat_chan() -> None:
    # v1.5.4: `"-m", "comment", "--comment", "AWS SNAT CHAN"` on the POSTROUTING jump and on
    # every `! -d CIDR -j NEXT` rule; v1.6.0 spells it "AWS SNAT CHAIN". The last chain's
    # action keeps "AWS, SNAT".
    old = aws_rules(iptables_of(build_state(with_cni(DEMO, version="v1.5.4")), NODE1))
    assert (
        '-A POSTROUTING -m comment --comment "AWS SNAT CHAN" -j AWS-SNAT-CHAIN-0'
        in (old[("nat", "POSTROUTING")])
    )
    assert old[("nat", "AWS-SNAT-CHAIN-0")] == [
        '-A AWS-SNAT-CHAIN-0 ! -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAN" '
        "-j AWS-SNAT-CHAIN-1"
    ]
    new = aws_rules(iptables_of(build_state(with_cni(DEMO, version="v1.6.0")), NODE1))
    assert (
        '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0'
        in (new[("nat", "POSTROUTING")])
    )


def test_before_v1_6_mtu_and_snat_exclusions_are_not_read() -> None:
    # AWS_VPC_ENI_MTU and AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS first appear in v1.6.0; v1.5.x sets
    # `ethernetMTU = 9001` on secondary ENIs and veths and exempts only the VPC CIDRs.
    env = {"AWS_VPC_ENI_MTU": "1500", "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": "10.0.0.0/8"}
    for version, mtu, excluded in (("v1.5.4", 9001, False), ("v1.6.0", 1500, True)):
        state = build_state(with_cni(DEMO, version=version, **env))
        eth1 = next(link for link in node(state, NODE1).links if link.name == "eth1")
        assert eth1.mtu == mtu, version
        veth = next(link for link in pod(state, POD61).links if link.name == "eth0")
        assert veth.mtu == mtu, version
        save = iptables_of(state, NODE1)
        assert ("! -d 10.0.0.0/8" in save) is excluded, version


def test_before_v1_4_no_snat_port_randomisation() -> None:
    # v1.3.x's SNAT rule ends at `--to-source primaryAddr` whatever the env says;
    # AWS_VPC_K8S_CNI_RANDOMIZESNAT arrives in v1.4.0 (`prng` → `--random-fully`).
    for version, ending in (("v1.3.4", "--to-source 192.168.1.50"), ("v1.4.0", "--random-fully")):
        cluster = with_cni(DEMO, version=version, AWS_VPC_K8S_CNI_RANDOMIZESNAT="prng")
        rules = aws_rules(iptables_of(build_state(cluster), NODE1))
        assert rules[("nat", "AWS-SNAT-CHAIN-1")][-1].endswith(ending), version


def test_before_v1_4_the_nodeport_mark_rule_names_eth0() -> None:
    # v1.3.x writes `"-i", "eth0"` in the "connmark for primary ENI" rule; v1.4.0 writes the
    # interface it found by the primary ENI's MAC (`"-i", primaryIntf`).
    renamed = _primary_renamed(DEMO, "ens5")
    for version, interface in (("v1.3.4", "eth0"), ("v1.4.0", "ens5")):
        mangle = aws_rules(iptables_of(build_state(with_cni(renamed, version=version)), NODE1))[
            ("mangle", "PREROUTING")
        ]
        assert mangle[0].startswith(f"-A PREROUTING -i {interface} "), version


def test_before_v1_8_the_restore_rule_names_eni_whatever_the_veth_prefix() -> None:
    # v1.7.5: `"-i", "eni+"` in "connmark restore for primary ENI"; v1.8.0: `n.vethPrefix + "+"`.
    for version, interface in (("v1.7.5", "eni+"), ("v1.8.0", "cali+")):
        state = build_state(with_cni(DEMO, version=version, AWS_VPC_K8S_CNI_VETHPREFIX="cali"))
        mangle = aws_rules(iptables_of(state, NODE1))[("mangle", "PREROUTING")]
        assert any(
            line.startswith(f"-A PREROUTING -i {interface} ") and "--restore-mark" in line
            for line in mangle
        ), version


def test_before_v1_12_1_rule_1024_and_restore_need_nodeport_support() -> None:
    # v1.12.0: `if n.nodePortSupportEnabled { RuleAdd(mainENIRule) }` and the restore rule's
    # `shouldExist: n.nodePortSupportEnabled`; v1.12.1: `nodePortSupportEnabled ||
    # !useExternalSNAT` for both.
    off = {"AWS_VPC_CNI_NODE_PORT_SUPPORT": "false"}
    for version, present in (("v1.12.0", False), ("v1.12.1", True)):
        state = build_state(with_cni(DEMO, version=version, **off))
        assert any(rule.priority == 1024 for rule in node(state, NODE1).rules) is present
        mangle = aws_rules(iptables_of(state, NODE1)).get(("mangle", "PREROUTING"), [])
        assert any("--restore-mark" in line for line in mangle) is present, version


def test_before_v1_7_rp_filter_only_with_nodeport_support() -> None:
    # v1.6.3's SetupHostNetwork writes rp_filter=2 inside `if n.nodePortSupportEnabled`; from
    # v1.7.0 the init container (scripts/init.sh) sets it on every node.
    off = {"AWS_VPC_CNI_NODE_PORT_SUPPORT": "false"}
    for version, present in (("v1.6.3", False), ("v1.7.0", True)):
        sysctls = dict(node(build_state(with_cni(DEMO, version=version, **off)), NODE1).sysctls)
        assert (sysctls.get("net.ipv4.conf.eth0.rp_filter") == "2") is present, version


def test_before_v1_16_4_pods_get_the_eni_mtu() -> None:
    # POD_MTU is read from v1.16.4; before, the plugin's MTU is the conflist's, AWS_VPC_ENI_MTU.
    env = {"AWS_VPC_ENI_MTU": "1500", "POD_MTU": "1400"}
    for version, mtu in (("v1.16.3", 1500), ("v1.16.4", 1400)):
        state = build_state(with_cni(DEMO, version=version, **env))
        veth = next(link for link in pod(state, POD61).links if link.name == "eth0")
        assert veth.mtu == mtu, version


def test_before_v1_3_is_not_modelled() -> None:
    with pytest.raises(NotModelled, match=r"v1\.2\.1"):
        build_state(with_cni(DEMO, version="v1.2.1"))


def test_before_v1_12_1_the_outbound_connections_rule_matches_state_new() -> None:
    # v1.12.0: `"-i", n.vethPrefix + "+", "-m", "comment", "--comment", "AWS, outbound
    # connections", "-m", "state", "--state", "NEW", "-j", "AWS-CONNMARK-CHAIN-0"`; v1.12.1
    # deletes that rule and writes it without the state match.
    for version, state_new in (("v1.12.0", True), ("v1.12.1", False)):
        prerouting = aws_rules(iptables_of(build_state(with_cni(DEMO, version=version)), NODE1))[
            ("nat", "PREROUTING")
        ]
        wanted = (
            '-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" '
            + ("-m state --state NEW " if state_new else "")
            + "-j AWS-CONNMARK-CHAIN-0"
        )
        assert wanted in prerouting, version


def test_a_switch_older_releases_do_not_read_is_ignored() -> None:
    # ENABLE_POD_ENI is first read in v1.7.0 (security groups for pods): v1.6.3's aws-node
    # ignores it, so the node is v1.6.3's as if it were unset; v1.7.0 refuses as not modelled.
    assert build_state(with_cni(DEMO, version="v1.6.3", ENABLE_POD_ENI="true")) == build_state(
        with_cni(DEMO, version="v1.6.3")
    )
    with pytest.raises(NotModelled, match="security groups for pods"):
        build_state(with_cni(DEMO, version="v1.7.0", ENABLE_POD_ENI="true"))
