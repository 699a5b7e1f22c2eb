"""The plan is pure: commands checked without root, on a small hand-built state."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface

import pytest

from eksnet.dataplane.state import (
    Address,
    DataplaneState,
    Eni,
    ExternalHost,
    Link,
    LinkPeer,
    Namespace,
    Neighbour,
    PublicIp,
    Route,
    RouteTable,
    Rule,
    Subnet,
    VpcRoute,
    VpcState,
)
from eksnet.errors import NotModelled
from eksnet.lab.fabric import DROP_COMMENTS
from eksnet.lab.names import LabNames
from eksnet.lab.plan import PlanError, build_plan, eui64_link_local, ip_batch

NODE = "node-a"
POD = "cni-pod-1"


def mini_state(*, pod_peer_back: bool = True) -> DataplaneState:
    """One node with two ENIs (eth1's connected route deleted, as ipamd does) and one pod."""
    lo = Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536, qlen=1000)
    node = Namespace(
        name=NODE,
        kind="node",
        owner=NODE,
        links=(
            lo,
            Link(2, "eth0", "device", "02:00:0a:00:01:05", 9001, qdisc="mq", qlen=1000),
            Link(3, "eth1", "device", "02:00:0a:00:01:06", 9001, qdisc="mq", qlen=1000),
            Link(
                12, "enia", "veth", "2e:00:00:00:00:01", 9001, peer=LinkPeer(3, "eth0", netns=POD)
            ),
        ),
        addresses=(
            Address("lo", IPv4Interface("127.0.0.1/8"), scope="host"),
            Address("eth0", IPv4Interface("10.0.1.5/24"), broadcast=IPv4Address("10.0.1.255")),
            Address("eth1", IPv4Interface("10.0.1.6/24"), broadcast=IPv4Address("10.0.1.255")),
        ),
        routes=(
            Route(254, IPv4Network("0.0.0.0/0"), gateway=IPv4Address("10.0.1.1"), dev="eth0"),
            Route(
                254,
                IPv4Network("10.0.1.0/24"),
                dev="eth0",
                proto="kernel",
                scope="link",
                src=IPv4Address("10.0.1.5"),
            ),
            Route(2, IPv4Network("0.0.0.0/0"), gateway=IPv4Address("10.0.1.1"), dev="eth1"),
            Route(2, IPv4Network("10.0.1.1/32"), dev="eth1", scope="link"),
            Route(254, IPv4Network("10.0.1.23/32"), dev="enia", scope="link"),
        ),
        rules=(
            Rule(0, table=255),
            Rule(512, table=254, dst=IPv4Network("10.0.1.23/32")),
            Rule(1024, table=254, fwmark=0x80, fwmask=0x80),
            Rule(32766, table=254),
            Rule(32767, table=253),
        ),
        sysctls=(("net.ipv4.ip_forward", "1"),),
    )
    pod_peer = LinkPeer(12, "enia", netnsid=0) if pod_peer_back else LinkPeer(99, "x", netnsid=0)
    pod = Namespace(
        name=POD,
        kind="pod",
        owner="default/pod-1",
        links=(
            lo,
            Link(3, "eth0", "veth", "2a:00:00:00:00:01", 9001, peer=pod_peer, ipv6_addrgen=False),
        ),
        addresses=(
            Address("eth0", IPv4Interface("10.0.1.23/32")),
            Address("eth0", IPv6Interface("fe80::1:2:3:4/64"), scope="link"),
        ),
        routes=(
            Route(254, IPv4Network("0.0.0.0/0"), gateway=IPv4Address("169.254.1.1"), dev="eth0"),
            Route(254, IPv4Network("169.254.1.1/32"), dev="eth0", scope="link"),
        ),
        neighbours=(Neighbour(IPv4Address("169.254.1.1"), "eth0", "2e:00:00:00:00:01"),),
    )
    vpc = VpcState(
        id="vpc-1",
        cidrs=(IPv4Network("10.0.0.0/16"),),
        subnets=(Subnet("a", IPv4Network("10.0.1.0/24"), "az-a", "02:00:0a:00:01:01", "rtb"),),
        enis=(
            Eni(
                "eni-5",
                "a",
                "02:00:0a:00:01:05",
                IPv4Address("10.0.1.5"),
                secondary_ips=(IPv4Address("10.0.1.23"),),
                node=NODE,
                device="eth0",
            ),
            Eni(
                "eni-6",
                "a",
                "02:00:0a:00:01:06",
                IPv4Address("10.0.1.6"),
                prefixes=(IPv4Network("10.0.1.32/28"),),
                node=NODE,
                device="eth1",
                source_dest_check=False,
            ),
        ),
    )
    return DataplaneState((node, pod), vpc)


NAMES = LabNames("eksnet-unit-")


def test_host_batch_creates_everything_inside_namespaces() -> None:
    plan = build_plan(mini_state(), NAMES)
    adds = [line for line in plan.host_batch if line.startswith("link add")]
    assert plan.host_batch[:3] == (
        "netns add eksnet-unit-node-a",
        "netns add eksnet-unit-cni-pod-1",
        "netns add eksnet-unit-vpc",
    )
    # ifindex order, both ends placed with `netns`, MAC/MTU/qlen on both ends
    assert adds == [
        "link add eth0 index 2 address 02:00:0a:00:01:05 mtu 9001 txqueuelen 1000 netns "
        "eksnet-unit-node-a numtxqueues 2 numrxqueues 2 type veth peer name x0 index 10000 mtu 9001 "
        "netns eksnet-unit-vpc",
        "link add eth1 index 3 address 02:00:0a:00:01:06 mtu 9001 txqueuelen 1000 netns "
        "eksnet-unit-node-a numtxqueues 2 numrxqueues 2 type veth peer name x1 index 10001 mtu 9001 "
        "netns eksnet-unit-vpc",
        "link add enia index 12 address 2e:00:00:00:00:01 mtu 9001 txqueuelen 0 netns "
        "eksnet-unit-node-a type veth peer name eth0 index 3 address 2a:00:00:00:00:01 "
        "mtu 9001 txqueuelen 0 netns eksnet-unit-cni-pod-1",
    ]
    assert all(" netns " in line for line in adds)


def test_node_batch_deletes_kernel_route_the_state_lacks_and_adds_rules() -> None:
    batch = ip_batch(mini_state().namespace(NODE))
    assert "route del 10.0.1.0/24 dev eth1 table 254 proto kernel" in batch
    assert not any(line.startswith("route add 10.0.1.0/24") for line in batch)
    assert not any("127.0.0.1" in line for line in batch)  # lo's address is the kernel's
    # device routes before gateway routes, so the gateway is reachable when added
    adds = [line for line in batch if line.startswith("route add")]
    assert adds.index("route add 10.0.1.1/32 dev eth1 table 2 proto boot scope link") < adds.index(
        "route add 0.0.0.0/0 via 10.0.1.1 dev eth1 table 2 proto boot scope global"
    )
    rules = [line for line in batch if line.startswith("rule")]
    # the kernel's default rules stay as they are: `add` puts each rule in priority order
    assert rules == [
        "rule add pref 512 to 10.0.1.23/32 lookup 254",
        "rule add pref 1024 fwmark 0x80/0x80 lookup 254",
    ]


def test_a_pod_with_the_default_rules_gets_no_rule_command() -> None:
    """Adding any rule unmerges the kernel's local/main table for good (`table local` in `ip
    route get`), which a real pod never has."""
    assert not [line for line in ip_batch(mini_state().namespace(POD)) if line.startswith("rule")]


def test_a_default_rule_is_replaced_only_where_the_state_changes_it() -> None:
    node = mini_state().namespace(NODE)
    rules = (
        Rule(0, table=255),
        Rule(32766, table=2, src=IPv4Network("10.0.1.0/24")),  # before main at its priority
        Rule(32766, table=254),
    )  # and no `default` rule
    batch = ip_batch(replace(node, rules=rules))
    assert [line for line in batch if line.startswith("rule")] == [
        "rule del pref 32766 lookup 254",
        "rule del pref 32767 lookup 253",
        "rule add pref 32766 from 10.0.1.0/24 lookup 2",
        "rule add pref 32766 lookup 254",
    ]


def test_steps_create_everything_once_and_configure_a_node_after_its_pods() -> None:
    plan = build_plan(mini_state(), NAMES)
    lines = [line for step in plan.steps for line in step.host_batch]
    assert sorted(lines) == sorted(plan.host_batch)
    first, second = plan.steps
    assert first.host_batch[:3] == (
        "netns add eksnet-unit-node-a",
        "netns add eksnet-unit-vpc",
        "link add eth0 index 2 address 02:00:0a:00:01:05 mtu 9001 txqueuelen 1000 netns "
        "eksnet-unit-node-a numtxqueues 2 numrxqueues 2 type veth peer name x0 index 10000 "
        "mtu 9001 netns eksnet-unit-vpc",
    )
    assert [getattr(ns, "state_name", "fabric") for ns in first.configure] == ["fabric"]
    assert second.host_batch[0] == "netns add eksnet-unit-cni-pod-1"
    assert [getattr(ns, "state_name", "fabric") for ns in second.configure] == [POD, NODE]


def test_qdisc_is_set_before_the_link_comes_up() -> None:
    batch = build_plan(mini_state(), NAMES).namespaces[0].ops
    lines = [op.ip_line() for op in batch]
    assert lines.index("qdisc replace dev eth0 root mq") < lines.index("link set dev eth0 up")


def test_pinned_link_local_turns_address_generation_off_before_the_link_is_up() -> None:
    batch = list(ip_batch(mini_state().namespace(POD)))
    assert batch.index("link set dev eth0 addrgenmode none") < batch.index("link set dev eth0 up")
    assert "addr add fe80::1:2:3:4/64 scope link dev eth0" in batch
    assert "neigh replace 169.254.1.1 lladdr 2e:00:00:00:00:01 dev eth0 nud permanent" in batch


def test_eui64() -> None:
    assert str(eui64_link_local("06:5e:c8:ae:85:be")) == "fe80::45e:c8ff:feae:85be/64"
    assert str(eui64_link_local("6a:40:16:85:c3:34")) == "fe80::6840:16ff:fe85:c334/64"


def test_fabric_owns_every_eni_address_and_honours_the_check_flag() -> None:
    plan = build_plan(mini_state(), NAMES).fabric
    assert '"x0" . 10.0.1.23/32' in plan.nft
    assert '"x1" . 10.0.1.32/28' in plan.nft
    assert 'set unchecked { type ifname; elements = { "x1" } }' in plan.nft
    neigh = [line for line in plan.ip_batch if line.startswith("neigh")]
    assert "neigh replace 10.0.1.1 lladdr 02:00:0a:00:01:01 dev vpc0 nud permanent" in neigh
    assert "neigh replace 10.0.1.23 lladdr 02:00:0a:00:01:05 dev vpc0 nud permanent" in neigh
    assert len(neigh) == 1 + 2 + 1 + 16  # gateway, eth0's two, eth1's primary and its /28


def test_unpaired_veth_is_refused() -> None:
    state = mini_state()
    pod = state.namespace(POD)
    lonely = Namespace(
        POD,
        "pod",
        "default/pod-1",
        links=(
            pod.links[0],
            Link(
                3, "eth0", "veth", "2a:00:00:00:00:01", 9001, peer=LinkPeer(5, "nowhere", netnsid=0)
            ),
        ),
    )
    node = state.namespace(NODE)
    bare = Namespace(NODE, "node", NODE, links=node.links[:3])
    with pytest.raises(PlanError, match="no namespace names this veth's peer"):
        build_plan(DataplaneState((bare, lonely), state.vpc), NAMES)


def test_names_stay_under_the_prefix() -> None:
    assert NAMES.netns("x") == "eksnet-unit-x"
    assert NAMES.is_lab("eksnet-unit-vpc") and not NAMES.is_lab("eksnet-probe-1")
    with pytest.raises(ValueError):
        LabNames("lab-")


# --- route tables, the internet gateway and the internet (vpc-fabric.md §1.4, §4) ----------------

IGW = "igw-1"


def internet_state(*extra: VpcRoute) -> DataplaneState:
    """`mini_state` with an internet gateway: eth0's primary IP has public IP 192.0.2.5, the
    subnet's table routes the internet to the gateway, and one external host."""
    state = mini_state()
    local = VpcRoute(IPv4Network("10.0.0.0/16"), "local", origin="CreateRouteTable")
    default = VpcRoute(IPv4Network("0.0.0.0/0"), IGW)
    vpc = replace(
        state.vpc,
        route_tables=(RouteTable("rtb", (local, default, *extra)),),
        internet_gateway=IGW,
        public_ips=(PublicIp(IPv4Address("10.0.1.5"), IPv4Address("192.0.2.5"), "eni-5"),),
    )
    web = ExternalHost("web", IPv4Address("198.51.100.20"))
    return DataplaneState(state.namespaces, vpc, external_hosts=(web,))


def nft_lines(state: DataplaneState) -> list[str]:
    return [line.strip() for line in build_plan(state, NAMES).fabric.nft.splitlines()]


def test_without_a_gateway_the_table_routes_only_inside_the_vpc() -> None:
    plan = build_plan(mini_state(), NAMES)
    assert not [item for item in plan.attachments if item.kind == "internet"]
    assert not plan.fabric.internet
    nft = plan.fabric.nft
    # the subnet names "rtb", which the state does not list: its local route alone
    assert (
        "map route_table { type ifname . ipv4_addr : verdict; flags interval; elements = { "
        '"x0" . 10.0.0.0-10.0.255.255 : goto vpc_local, '
        '"x1" . 10.0.0.0-10.0.255.255 : goto vpc_local } }'
    ) in nft
    assert "igw0" not in nft and "to_internet" not in nft
    assert not [line for line in plan.host_batch if "internet" in line]
    lines = nft_lines(mini_state())
    vmap = lines.index("ether type ip ether daddr @routers iifname . ip daddr vmap @route_table")
    assert lines[vmap + 1] == (
        "ether type ip ether daddr @routers counter drop comment "
        '"no route in the subnet\'s route table"'
    )


def test_route_table_is_compiled_into_disjoint_ranges_per_port() -> None:
    blackhole = VpcRoute(IPv4Network("198.51.100.0/24"), "nat-1", state="blackhole")
    peering = VpcRoute(IPv4Network("203.0.113.0/24"), "pcx-2")
    nft = build_plan(internet_state(blackhole, peering), NAMES).fabric.nft
    elements = nft.split("map route_table")[1].split("elements = { ")[1].split(" }")[0]
    x0 = [e for e in elements.split(", ") if e.startswith('"x0"')]
    assert x0 == [
        '"x0" . 0.0.0.0-9.255.255.255 : goto to_internet',
        '"x0" . 10.0.0.0-10.0.255.255 : goto vpc_local',
        '"x0" . 10.1.0.0-198.51.99.255 : goto to_internet',
        '"x0" . 198.51.100.0-198.51.100.255 : goto blackhole',
        '"x0" . 198.51.101.0-203.0.112.255 : goto to_internet',
        '"x0" . 203.0.113.0-203.0.113.255 : goto unmodelled_target',
        '"x0" . 203.0.114.0-255.255.255.255 : goto to_internet',
    ]
    assert len(elements.split(", ")) == 2 * len(x0)  # x1 is in the same subnet: the same table
    lines = nft_lines(internet_state())
    assert 'counter drop comment "blackhole route"' in lines
    assert (
        'counter drop comment "route target the lab does not build (an ENI, other gateways)"'
    ) in lines


def test_the_gateway_maps_and_chains() -> None:
    nft = build_plan(internet_state(), NAMES).fabric.nft
    for line in (
        "map public_ip { type ipv4_addr : ipv4_addr; elements = { 10.0.1.5 : 192.0.2.5 } }",
        "map private_ip { type ipv4_addr : ipv4_addr; elements = { 192.0.2.5 : 10.0.1.5 } }",
        "map public_owner_mac { type ipv4_addr : ether_addr; elements = { "
        "192.0.2.5 : 02:00:0a:00:01:05 } }",
        "map public_router_mac { type ipv4_addr : ether_addr; elements = { "
        "192.0.2.5 : 02:00:0a:00:01:01 } }",
    ):
        assert line in nft
    lines = nft_lines(internet_state())
    out = lines.index("chain to_internet {")
    assert lines[out + 1 : out + 3] == [
        "ip saddr set ip saddr map @public_ip ether saddr set 02:00:00:00:00:fe ether daddr set "
        '02:00:00:00:00:fd counter accept comment "internet gateway, outbound"',
        'counter drop comment "internet gateway: the source has no public IPv4 address"',
    ]
    inbound = lines.index("chain from_internet {")
    assert lines[inbound + 1 : inbound + 3] == [
        "ether saddr set ip daddr map @public_router_mac ether daddr set ip daddr map "
        "@public_owner_mac ip daddr set ip daddr map @private_ip counter accept comment "
        '"internet gateway, inbound"',
        'counter drop comment "internet gateway: no ENI has the destination public IPv4 address"',
    ]
    # frames from the internet port skip the ENI source check; to it, the destination check
    source_check = next(
        i for i, line in enumerate(lines) if "source/destination check, egress" in line
    )
    assert lines.index('iifname "igw0" ether type ip goto from_internet') < source_check
    post = lines.index("chain postrouting {")
    gateway = lines.index('oifname "igw0" accept', post)
    assert "source/destination check, ingress" in lines[gateway + 1]
    # the NACLs judge what goes to the gateway (outbound) before it is let out
    assert "vmap @nacl_egress" in lines[gateway - 2]
    assert (
        'ether daddr 02:00:00:00:00:fd counter drop comment "only the internet gateway sends to '
        'the internet"'
    ) in lines


def test_every_drop_rule_names_what_it_models() -> None:
    """The demo has security groups and (the default) NACLs: every drop code of the fabric has
    its counted rule."""
    from eksnet.lab.cli import load_state

    lines = nft_lines(load_state(None))
    drops = [line for line in lines if " drop" in line and "policy drop" not in line]
    assert drops and all('comment "' in line for line in drops)
    comments = {line.split('comment "')[1].rstrip('"') for line in drops}
    assert {DROP_COMMENTS[code] for code in DROP_COMMENTS} <= comments


def test_the_internet_namespace_is_wired_to_the_bridge_in_the_first_step() -> None:
    plan = build_plan(internet_state(), NAMES)
    wire = (
        "link add eth0 index 2 address 02:00:00:00:00:fd mtu 1500 txqueuelen 0 netns "
        "eksnet-unit-internet type veth peer name igw0 index 9999 mtu 1500 netns eksnet-unit-vpc"
    )
    first = plan.steps[0]
    assert first.host_batch.index("netns add eksnet-unit-internet") < first.host_batch.index(wire)
    assert first.host_batch.index("netns add eksnet-unit-vpc") < first.host_batch.index(wire)
    assert wire in plan.host_batch
    (internet,) = [item for item in plan.attachments if item.kind == "internet"]
    assert internet in first.configure
    assert "eksnet-unit-internet" in plan.netns_names()
    assert internet.sysctls == (
        ("net.ipv6.conf.all.disable_ipv6", "1"),
        ("net.ipv6.conf.default.disable_ipv6", "1"),
    )
    assert [op.ip_line() for op in internet.ops] == [
        "link set dev lo up",
        "link set dev eth0 up",
        "addr add 198.51.100.20/32 scope global dev eth0",
        "route add 169.254.0.1/32 dev eth0 table 254 proto boot scope link",
        "route add 0.0.0.0/0 via 169.254.0.1 dev eth0 table 254 proto boot scope global",
        "neigh replace 169.254.0.1 lladdr 02:00:00:00:00:fe dev eth0 nud permanent",
    ]
    fabric = plan.fabric
    assert "link set dev igw0 master vpc0" in fabric.ip_batch
    assert (
        "link set dev igw0 type bridge_slave learning off flood off mcast_flood off bcast_flood off"
    ) in fabric.ip_batch
    assert "fdb replace 02:00:00:00:00:fd dev igw0 master static" in fabric.bridge_batch


def test_a_state_namespace_cannot_take_the_internet_s_name() -> None:
    state = internet_state()
    node = state.namespace(NODE)
    clash = Namespace("internet", "node", "internet", links=node.links[:1])
    with pytest.raises(NotModelled, match="named 'internet'"):
        build_plan(DataplaneState((*state.namespaces, clash), state.vpc), NAMES)


def test_a_state_mac_cannot_be_the_gateway_s() -> None:
    state = internet_state()
    eni = replace(state.vpc.enis[0], mac="02:00:00:00:00:fe")
    vpc = replace(state.vpc, enis=(eni, *state.vpc.enis[1:]))
    with pytest.raises(PlanError, match="02:00:00:00:00:fe"):
        build_plan(DataplaneState(state.namespaces, vpc, state.external_hosts), NAMES)


def test_a_namespace_the_lab_cannot_name_is_not_modelled() -> None:
    """A node named like the lab's own namespaces, or too long for a file name once prefixed,
    is refused with one line (exit 3), never a traceback half-way through `lab up`."""
    names = LabNames("eksnet-lab-")
    for reserved in ("vpc", "internet"):
        with pytest.raises(NotModelled, match=f"named '{reserved}'"):
            names.netns(reserved)
    with pytest.raises(NotModelled, match="over 255 bytes"):
        names.netns("n" * 250)
    assert names.netns("n" * 244) == "eksnet-lab-" + "n" * 244
