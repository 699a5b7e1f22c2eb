"""Hand-built namespaces for the renderer tests.

`node1()` and `pod61()` are the talk's node 1 and pod 61 (talk-walks.md §2.3-2.4), built from the
spec's tables and not by the controllers, so the expected texts of §4.1-4.2 test the renderers
alone. `lab_node()` / `lab_pod()` are a smaller pair the real-kernel test builds with `ip -batch`
and compares with the renderers; their namespace names are chosen per run.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    TABLE_MAIN,
    Address,
    DataplaneState,
    Iptables,
    Link,
    LinkPeer,
    Namespace,
    Neighbour,
    Route,
    Rule,
    Subnet,
    VpcState,
)

NODE1 = "ip-192-168-1-50.eu-west-2.compute.internal"
POD51_NETNS = "cni-3f1c2b7e-9a4d-4c60-8e21-5b7d0a9c4f51"
POD61_NETNS = "cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935"
LOOPBACK_MAC = "00:00:00:00:00:00"


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def loopback(qlen: int | None = 1000) -> Link:
    return Link(1, "lo", "loopback", LOOPBACK_MAC, 65536, qlen=qlen)


def loopback_address() -> Address:
    return Address("lo", IPv4Interface("127.0.0.1/8"), scope="host")


NODE1_IPTABLES = """\
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80
-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:AWS-SNAT-CHAIN-0 - [0:0]
:AWS-CONNMARK-CHAIN-0 - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SVC-4QFXEAV27BCWXK5E - [0:0]
:KUBE-SEP-CGDVTEPNP2RHKNBA - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0
-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0
-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80
-A AWS-SNAT-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 192.168.1.50 --random-fully
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SERVICES -d 10.100.200.10/32 -p tcp -m comment --comment "default/app1 cluster IP" -m tcp --dport 80 -j KUBE-SVC-4QFXEAV27BCWXK5E
-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.1.71:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-CGDVTEPNP2RHKNBA
-A KUBE-SEP-CGDVTEPNP2RHKNBA -s 192.168.1.71/32 -m comment --comment "default/app1" -j KUBE-MARK-MASQ
-A KUBE-SEP-CGDVTEPNP2RHKNBA -p tcp -m comment --comment "default/app1" -m tcp -j DNAT --to-destination 192.168.1.71:80
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
*filter
:KUBE-FORWARD - [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
"""
"""Node 1's rules (talk-walks.md §4.3, abridged), deliberately not in `iptables-save` order."""


def node1() -> Namespace:
    """The talk's node 1 (talk-walks.md §2.3, §4.1)."""
    pod51_veth = LinkPeer(3, "eth0", netns=POD51_NETNS)
    pod61_veth = LinkPeer(3, "eth0", netns=POD61_NETNS)
    links = (
        loopback(),
        Link(2, "eth0", "device", "02:00:c0:a8:01:32", 9001, qdisc="mq", qlen=1000),
        Link(3, "eth1", "device", "02:00:c0:a8:01:3c", 9001, qdisc="mq", qlen=1000),
        Link(37, "enib9b00b57dd4", "veth", "2e:00:c0:a8:01:33", 9001, peer=pod51_veth),
        Link(39, "eni69e05c2a0e5", "veth", "06:5e:c8:ae:85:be", 9001, peer=pod61_veth),
    )
    addresses = (
        loopback_address(),
        Address("eth0", IPv4Interface("192.168.1.50/24"), broadcast=ip("192.168.1.255")),
        Address("eth1", IPv4Interface("192.168.1.60/24"), broadcast=ip("192.168.1.255")),
    )
    routes = (
        Route(TABLE_MAIN, net("0.0.0.0/0"), gateway=ip("192.168.1.1"), dev="eth0"),
        Route(TABLE_MAIN, net("169.254.169.254/32"), dev="eth0"),
        Route(
            TABLE_MAIN,
            net("192.168.1.0/24"),
            dev="eth0",
            proto="kernel",
            scope="link",
            src=ip("192.168.1.50"),
        ),
        Route(TABLE_MAIN, net("192.168.1.51/32"), dev="enib9b00b57dd4", scope="link"),
        Route(TABLE_MAIN, net("192.168.1.61/32"), dev="eni69e05c2a0e5", scope="link"),
        Route(2, net("192.168.1.1/32"), dev="eth1", scope="link"),
        Route(2, net("0.0.0.0/0"), gateway=ip("192.168.1.1"), dev="eth1"),
    )
    rules = (
        *DEFAULT_RULES,
        Rule(1024, table=TABLE_MAIN, fwmark=0x80, fwmask=0x80),
        Rule(512, table=TABLE_MAIN, dst=net("192.168.1.51/32")),
        Rule(512, table=TABLE_MAIN, dst=net("192.168.1.61/32")),
        Rule(1536, table=2, src=net("192.168.1.61/32")),
    )
    return Namespace(
        name=NODE1,
        kind="node",
        owner=NODE1,
        links=links,
        addresses=addresses,
        routes=routes,
        rules=rules,
        sysctls=(("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.eth0.rp_filter", "2")),
        iptables=Iptables("legacy", NODE1_IPTABLES),
    )


def pod61() -> Namespace:
    """The talk's pod 61 (talk-walks.md §2.4, §4.2), with the slide's pinned link-local."""
    eth0 = Link(
        3,
        "eth0",
        "veth",
        "6a:40:16:85:c3:34",
        9001,
        peer=LinkPeer(39, "eni69e05c2a0e5", netnsid=0),
        ipv6_addrgen=False,
    )
    return Namespace(
        name=POD61_NETNS,
        kind="pod",
        owner="default/rating-6d8b7c9f5-q6m4t",
        links=(loopback(), eth0),
        addresses=(
            loopback_address(),
            Address("eth0", IPv4Interface("192.168.1.61/32")),
            Address("eth0", IPv6Interface("fe80::6a40:16ff:fe85:c334/64"), scope="link"),
        ),
        routes=(
            Route(TABLE_MAIN, net("169.254.1.1/32"), dev="eth0", scope="link"),
            Route(TABLE_MAIN, net("0.0.0.0/0"), gateway=ip("169.254.1.1"), dev="eth0"),
        ),
        neighbours=(Neighbour(ip("169.254.1.1"), "eth0", "06:5e:c8:ae:85:be"),),
    )


def talk_vpc() -> VpcState:
    subnet = Subnet("public-a", net("192.168.1.0/24"), "eu-west-2a", "02:00:c0:a8:01:01", "rtb")
    return VpcState("vpc-0a11c0ffee0000001", (net("192.168.0.0/16"),), (subnet,), ())


def talk_state() -> DataplaneState:
    return DataplaneState((node1(), pod61()), talk_vpc())


LAB_POD_IPTABLES = """\
*filter
:INPUT DROP [0:0]
:ZETA - [0:0]
:ALPHA - [0:0]
-A ZETA -j RETURN
-A INPUT -j ZETA
-A INPUT -j ALPHA
-A ALPHA -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
*raw
-A PREROUTING -j CT --notrack
COMMIT
*mangle
:BETA - [0:0]
-A POSTROUTING -j BETA
COMMIT
"""
"""Out of order on purpose: nf_tables prints mangle, raw, filter and sorts the user chains."""


def lab_node(name: str, pod: str) -> Namespace:
    """A node-like namespace with every feature the views print.

    eth0/eth1 are one veth pair inside the namespace (`eth0@eth1`); spare0/spare1 another whose
    second end stays down (`NO-CARRIER`, `M-DOWN`, `linkdown`); the pod's veth is the end of a
    pair whose other end is in `pod`.
    """
    links = (
        loopback(),
        Link(2, "eth0", "veth", "02:00:c0:a8:01:32", 9001, peer=LinkPeer(3, "eth1", netns=name),
             qlen=1000),
        Link(3, "eth1", "veth", "02:00:c0:a8:01:3c", 9001, peer=LinkPeer(2, "eth0", netns=name),
             qlen=1000),
        Link(5, "spare0", "veth", "0a:00:00:00:00:05", 1500,
             peer=LinkPeer(6, "spare1", netns=name), qlen=1000),
        Link(6, "spare1", "veth", "0a:00:00:00:00:06", 1500,
             peer=LinkPeer(5, "spare0", netns=name), qdisc="noop", up=False, qlen=1000),
        Link(39, "eni69e05c2a0e5", "veth", "06:5e:c8:ae:85:be", 9001,
             peer=LinkPeer(3, "eth0", netns=pod), qlen=1000),
    )  # fmt: skip
    addresses = (
        loopback_address(),
        Address("eth0", IPv4Interface("192.168.1.50/24"), broadcast=ip("192.168.1.255")),
        Address("eth0", IPv4Interface("192.168.1.52/24"), secondary=True),
        Address("eth0", IPv4Interface("198.51.100.7/32")),
        Address("eth1", IPv4Interface("192.168.1.60/24"), broadcast=ip("192.168.1.255")),
        Address("spare0", IPv4Interface("10.99.0.1/24")),
    )
    routes = (
        Route(TABLE_MAIN, net("0.0.0.0/0"), gateway=ip("192.168.1.1"), dev="eth0"),
        Route(TABLE_MAIN, net("169.254.169.254/32"), dev="eth0"),
        Route(TABLE_MAIN, net("192.168.1.0/24"), dev="eth0", proto="kernel", scope="link",
              src=ip("192.168.1.50")),
        Route(TABLE_MAIN, net("10.99.0.0/24"), dev="spare0", proto="kernel", scope="link",
              src=ip("10.99.0.1")),
        Route(TABLE_MAIN, net("192.168.1.61/32"), dev="eni69e05c2a0e5", scope="link"),
        Route(TABLE_MAIN, net("10.0.0.0/8"), dev="eth0", scope="link", metric=100),
        Route(TABLE_MAIN, net("10.0.0.0/16"), gateway=ip("192.168.1.1"), dev="eth0",
              proto="static", src=ip("192.168.1.50")),
        Route(TABLE_MAIN, net("10.98.0.0/16"), dev="spare0", scope="link"),
        Route(TABLE_MAIN, net("203.0.113.0/24"), type="blackhole"),
        Route(2, net("192.168.1.1/32"), dev="eth1", scope="link"),
        Route(2, net("0.0.0.0/0"), gateway=ip("192.168.1.1"), dev="eth1"),
        Route(2, net("10.96.0.0/12"), type="unreachable", metric=7),
        Route(300, net("192.168.1.0/24"), dev="eth1", scope="link"),
        Route(44, net("192.168.1.0/24"), dev="eth0", scope="link"),
    )  # fmt: skip
    rules = (
        *DEFAULT_RULES,
        Rule(512, table=TABLE_MAIN, dst=net("192.168.1.61/32")),
        Rule(1024, table=TABLE_MAIN, fwmark=0x80, fwmask=0x80),
        Rule(1025, table=44, fwmark=0x4000),
        Rule(1536, table=2, src=net("192.168.1.61/32")),
        Rule(1600, table=300, src=net("10.0.0.0/8"), dst=net("10.1.0.0/16"), iif="eth0",
             oif="eth1", invert=True),
        Rule(1700, action="goto", goto=1800),
        Rule(1900, action="blackhole", iif="gone0"),
        Rule(2000, table=253, dst=net("192.0.2.0/24")),
    )  # fmt: skip
    return Namespace(
        name=name,
        kind="node",
        owner=name,
        links=links,
        addresses=addresses,
        routes=routes,
        rules=rules,
        neighbours=(Neighbour(ip("192.168.1.1"), "eth0", "02:00:c0:a8:01:01"),),
        iptables=Iptables("legacy", NODE1_IPTABLES),
    )


def lab_pod(name: str) -> Namespace:
    """A pod as the VPC CNI leaves it, seen from inside (`link-netnsid 0`), link-local pinned."""
    eth0 = Link(
        3,
        "eth0",
        "veth",
        "6a:40:16:85:c3:34",
        9001,
        peer=LinkPeer(39, "eni69e05c2a0e5", netnsid=0),
        ipv6_addrgen=False,
    )
    return Namespace(
        name=name,
        kind="pod",
        owner="default/rating",
        links=(loopback(), eth0),
        addresses=(
            loopback_address(),
            Address("lo", IPv6Interface("::1/128"), scope="host"),
            Address("eth0", IPv4Interface("192.168.1.61/32")),
            Address("eth0", IPv6Interface("fe80::6a40:16ff:fe85:c334/64"), scope="link"),
        ),
        routes=(
            Route(TABLE_MAIN, net("169.254.1.1/32"), dev="eth0", scope="link"),
            Route(TABLE_MAIN, net("0.0.0.0/0"), gateway=ip("169.254.1.1"), dev="eth0"),
        ),
        neighbours=(Neighbour(ip("169.254.1.1"), "eth0", "06:5e:c8:ae:85:be"),),
        iptables=Iptables("nft", LAB_POD_IPTABLES),
    )
