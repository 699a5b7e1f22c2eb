"""Each view against outputs measured with iproute2 6.1 / net-tools / iptables 1.8.9 on 6.18.

The expected texts below were printed by the real tools in throw-away namespaces built with the
same links, addresses, routes and rules (see the report of this module's author); trailing spaces
are part of them where the tools print one.
"""

# ruff: noqa: W291 - tool output is quoted verbatim: long lines, trailing spaces

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface

import pytest

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    TABLE_LOCAL,
    TABLE_MAIN,
    Address,
    Iptables,
    Link,
    LinkPeer,
    Namespace,
    Neighbour,
    Route,
    Rule,
)
from eksnet.errors import CommandFailed
from eksnet.render.linux import (
    arp_numeric,
    ip_address,
    ip_link,
    ip_neigh,
    ip_route,
    ip_rule,
    iptables_save,
)
from eksnet.render.linux import route as route_view
from eksnet.render.linux.addrconf import eui64_link_local
from eksnet.render.linux.devinet import kernel_order

from .fixtures import ip, loopback, net, pod61


def namespace(**fields: object) -> Namespace:
    base: dict[str, object] = {"name": "t", "kind": "node", "owner": "t", "links": (loopback(),)}
    base.update(fields)
    return Namespace(**base)  # type: ignore[arg-type]


def eth(ifindex: int, name: str, mac: str, **fields: object) -> Link:
    return Link(ifindex, name, "device", mac, 1500, qlen=1000, **fields)  # type: ignore[arg-type]


# --- ip addr / ip link ------------------------------------------------------------------------


def test_kernel_orders_a_new_primary_before_the_secondaries() -> None:
    first = Address("eth0", IPv4Interface("10.0.1.5/24"))
    second = Address("eth0", IPv4Interface("10.0.1.6/24"), secondary=True)
    third = Address("eth0", IPv4Interface("10.9.9.9/32"))
    assert kernel_order([first, second, third]) == (first, third, second)


@pytest.mark.parametrize(
    ("mac", "link_local"),
    [
        ("06:5e:c8:ae:85:be", "fe80::45e:c8ff:feae:85be/64"),
        ("6a:40:16:85:c3:34", "fe80::6840:16ff:fe85:c334/64"),
        ("6e:eb:cb:5f:de:b2", "fe80::6ceb:cbff:fe5f:deb2/64"),
        ("0a:c0:d6:23:62:f3", "fe80::8c0:d6ff:fe23:62f3/64"),
    ],
)
def test_eui64_link_local_is_what_the_kernel_generates(mac: str, link_local: str) -> None:
    assert eui64_link_local(mac) == IPv6Interface(link_local)


def same_namespace_pair(*, d1_up: bool, d2_up: bool) -> Namespace:
    d2 = Link(
        3,
        "d2",
        "veth",
        "0a:c0:d6:23:62:f3",
        1500,
        up=d2_up,
        qlen=1000,
        qdisc="noqueue" if d2_up else "noop",
        peer=LinkPeer(4, "d1", netns="t"),
    )
    d1 = Link(
        4,
        "d1",
        "veth",
        "6a:e1:88:a8:bd:52",
        1500,
        up=d1_up,
        qlen=1000,
        peer=LinkPeer(3, "d2", netns="t"),
    )
    return namespace(links=(loopback(), d2, d1))  # fmt: skip


def test_ip_link_with_a_veth_pair_whose_one_end_is_down() -> None:
    expected = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
3: d2@d1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000
    link/ether 0a:c0:d6:23:62:f3 brd ff:ff:ff:ff:ff:ff
4: d1@d2: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN mode DEFAULT group default qlen 1000
    link/ether 6a:e1:88:a8:bd:52 brd ff:ff:ff:ff:ff:ff
"""
    assert ip_link(same_namespace_pair(d1_up=True, d2_up=False)) == expected


def test_ip_link_with_both_ends_up_has_carrier_and_ipv6() -> None:
    ns = same_namespace_pair(d1_up=True, d2_up=True)
    assert ip_address(ns, "d1") == (
        "4: d1@d2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default"
        " qlen 1000\n"
        "    link/ether 6a:e1:88:a8:bd:52 brd ff:ff:ff:ff:ff:ff\n"
        "    inet6 fe80::68e1:88ff:fea8:bd52/64 scope link \n"
        "       valid_lft forever preferred_lft forever\n"
    )


def test_ip_addr_prints_primaries_then_secondaries_and_lo_gets_its_address() -> None:
    eth0 = Link(2, "eth0", "veth", "6e:eb:cb:5f:de:b2", 1500, qlen=1000,
                peer=LinkPeer(2, "veth1", netns="eksnet-probe-b"))  # fmt: skip
    ns = namespace(
        links=(loopback(), eth0),
        addresses=(
            Address("eth0", IPv4Interface("10.0.1.5/24")),
            Address("eth0", IPv4Interface("10.0.1.6/24"), secondary=True),
            Address("eth0", IPv4Interface("10.9.9.9/32")),
        ),
    )
    expected = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet6 ::1/128 scope host 
       valid_lft forever preferred_lft forever
2: eth0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000
    link/ether 6e:eb:cb:5f:de:b2 brd ff:ff:ff:ff:ff:ff link-netns eksnet-probe-b
    inet 10.0.1.5/24 scope global eth0
       valid_lft forever preferred_lft forever
    inet 10.9.9.9/32 scope global eth0
       valid_lft forever preferred_lft forever
    inet 10.0.1.6/24 scope global secondary eth0
       valid_lft forever preferred_lft forever
    inet6 fe80::6ceb:cbff:fe5f:deb2/64 scope link 
       valid_lft forever preferred_lft forever
"""
    assert ip_address(ns) == expected


def test_a_down_lo_keeps_no_ipv6_and_gets_no_derived_address() -> None:
    lo = Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536, qdisc="noop", up=False, qlen=1000)
    assert ip_address(namespace(links=(lo,))) == (
        "1: lo: <LOOPBACK> mtu 65536 qdisc noop state DOWN group default qlen 1000\n"
        "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
    )


def test_disable_ipv6_removes_the_link_local() -> None:
    ns = namespace(
        links=(loopback(), eth(2, "eth0", "02:00:00:00:00:02")),
        sysctls=(("net.ipv6.conf.all.disable_ipv6", "1"),),
    )
    assert "inet6" not in ip_address(ns)


def test_a_link_without_qlen_ends_its_header_with_a_space() -> None:
    header = ip_address(pod61(), "eth0").splitlines()[0]
    assert header.endswith("group default ")


def test_unknown_device_fails_like_ip() -> None:
    with pytest.raises(CommandFailed) as failure:
        ip_address(pod61(), "nosuch")
    assert (failure.value.stderr, failure.value.exit_code) == ('Device "nosuch" does not exist.', 1)
    with pytest.raises(CommandFailed):
        ip_link(pod61(), "nosuch")


# --- ip route ----------------------------------------------------------------------------------


def probe_routes() -> Namespace:
    """The routes measured in namespace `eksnet-probe-a` (iproute2 6.1, kernel 6.18)."""
    gw = ip("10.0.1.1")
    routes = (
        Route(TABLE_MAIN, net("10.0.0.0/8"), dev="eth0", scope="link"),
        Route(TABLE_MAIN, net("10.0.0.0/16"), dev="eth0", scope="link"),
        Route(TABLE_MAIN, net("10.0.1.0/25"), gateway=ip("10.0.1.100"), dev="eth0"),
        Route(TABLE_MAIN, net("0.0.0.0/0"), gateway=gw, dev="eth0"),
        Route(TABLE_MAIN, net("169.254.169.254/32"), dev="eth0"),
        Route(TABLE_MAIN, net("10.0.0.0/16"), dev="eth0", scope="link", metric=100),
        Route(TABLE_MAIN, net("10.5.0.0/16"), type="blackhole"),
        Route(TABLE_MAIN, net("10.6.0.0/16"), type="unreachable"),
        Route(TABLE_MAIN, net("10.7.0.0/16"), type="prohibit", metric=5),
        Route(2, net("10.8.0.0/16"), type="throw"),
        Route(2, net("0.0.0.0/0"), gateway=gw, dev="eth0"),
        Route(2, net("10.0.1.1/32"), dev="eth0", scope="link"),
        Route(1000, net("10.0.1.1/32"), dev="eth0", scope="link"),
        Route(300, net("10.0.1.1/32"), dev="eth0", scope="link"),
        Route(44, net("10.0.1.1/32"), dev="eth0", scope="link"),
        Route(253, net("10.0.1.2/32"), dev="eth0", scope="link"),
        Route(TABLE_MAIN, net("10.0.1.3/32"), dev="eth0", proto="static", scope="link",
              src=ip("10.0.1.5"), metric=7),
        Route(TABLE_MAIN, net("10.0.1.4/32"), gateway=ip("10.0.1.100"), dev="eth0",
              proto="openr"),
        Route(TABLE_MAIN, net("10.0.1.7/32"), dev="eth0", proto="dhcp", scope="link"),
        Route(44, net("10.0.0.0/8"), dev="eth0", scope="link"),
        Route(556, net("10.0.0.0/8"), dev="eth0", scope="link"),
        Route(TABLE_MAIN, net("10.0.1.0/24"), dev="eth0", proto="kernel", scope="link",
              src=ip("10.0.1.5")),
    )  # fmt: skip
    eth0 = eth(2, "eth0", "6e:eb:cb:5f:de:b2")
    return namespace(
        links=(loopback(), eth0),
        addresses=(Address("eth0", IPv4Interface("10.0.1.5/24")),),
        routes=routes,
        sysctls=(("net.ipv6.conf.eth0.disable_ipv6", "1"), ("net.ipv6.conf.lo.disable_ipv6", "1")),
    )


PROBE_MAIN = """\
default via 10.0.1.1 dev eth0 
10.0.0.0/16 dev eth0 scope link 
10.0.0.0/16 dev eth0 scope link metric 100 
10.0.0.0/8 dev eth0 scope link 
10.0.1.0/25 via 10.0.1.100 dev eth0 
10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.5 
10.0.1.3 dev eth0 proto static scope link src 10.0.1.5 metric 7 
10.0.1.4 via 10.0.1.100 dev eth0 proto openr 
10.0.1.7 dev eth0 proto dhcp scope link 
blackhole 10.5.0.0/16 
unreachable 10.6.0.0/16 
prohibit 10.7.0.0/16 metric 5 
169.254.169.254 dev eth0 
"""

PROBE_ALL = (
    """\
default via 10.0.1.1 dev eth0 table 2 
10.0.1.1 dev eth0 table 2 scope link 
throw 10.8.0.0/16 table 2 
10.0.0.0/8 dev eth0 table 556 scope link 
10.0.0.0/8 dev eth0 table 44 scope link 
10.0.1.1 dev eth0 table 44 scope link 
10.0.1.1 dev eth0 table 300 scope link 
10.0.1.1 dev eth0 table 1000 scope link 
10.0.1.2 dev eth0 table default scope link 
"""
    + PROBE_MAIN
    + """\
local 10.0.1.5 dev eth0 table local proto kernel scope host src 10.0.1.5 
broadcast 10.0.1.255 dev eth0 table local proto kernel scope link src 10.0.1.5 
"""
)


def fake_local_table(ns: Namespace) -> tuple[Route, ...]:
    """A stand-in for `kernel.fib.local_table` with the measured entries of one /24."""
    src = ip("10.0.1.5")
    return (
        Route(TABLE_LOCAL, net("10.0.1.255/32"), type="broadcast", dev="eth0", proto="kernel",
              scope="link", src=src),
        Route(TABLE_LOCAL, net("10.0.1.5/32"), type="local", dev="eth0", proto="kernel",
              scope="host", src=src),
    )  # fmt: skip


def test_ip_route_prints_main_in_trie_order() -> None:
    assert ip_route(probe_routes()) == PROBE_MAIN


def test_ip_route_table_all_walks_the_table_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route_view, "local_table", fake_local_table)
    assert ip_route(probe_routes(), "all") == PROBE_ALL


def test_ip_route_table_local_has_no_table_word(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route_view, "local_table", fake_local_table)
    assert ip_route(probe_routes(), TABLE_LOCAL) == (
        "local 10.0.1.5 dev eth0 proto kernel scope host src 10.0.1.5 \n"
        "broadcast 10.0.1.255 dev eth0 proto kernel scope link src 10.0.1.5 \n"
    )


def test_a_table_without_routes_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route_view, "local_table", lambda ns: ())
    for table in (7, TABLE_LOCAL, 253):
        with pytest.raises(CommandFailed) as failure:
            ip_route(pod61(), table)
        assert failure.value.stderr == "Error: ipv4: FIB table does not exist.\nDump terminated"
        assert failure.value.exit_code == 2
    assert ip_route(namespace(), TABLE_MAIN) == ""


def test_table_all_adds_the_kernels_ipv6_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured in a pod-like namespace with the link-local pinned (`addrgenmode none`)."""
    src = ip("127.0.0.1")
    local = (
        Route(TABLE_LOCAL, net("127.0.0.0/8"), type="local", dev="lo", proto="kernel",
              scope="host", src=src),
        Route(TABLE_LOCAL, net("127.0.0.1/32"), type="local", dev="lo", proto="kernel",
              scope="host", src=src),
        Route(TABLE_LOCAL, net("127.255.255.255/32"), type="broadcast", dev="lo",
              proto="kernel", scope="link", src=src),
        Route(TABLE_LOCAL, net("192.168.1.61/32"), type="local", dev="eth0", proto="kernel",
              scope="host", src=ip("192.168.1.61")),
    )  # fmt: skip
    monkeypatch.setattr(route_view, "local_table", lambda ns: local)
    assert (
        ip_route(pod61(), "all")
        == """\
default via 169.254.1.1 dev eth0 
169.254.1.1 dev eth0 scope link 
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1 
local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 
broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1 
local 192.168.1.61 dev eth0 table local proto kernel scope host src 192.168.1.61 
fe80::/64 dev eth0 proto kernel metric 256 pref medium
local ::1 dev lo table local proto kernel metric 0 pref medium
local fe80::6a40:16ff:fe85:c334 dev eth0 table local proto kernel metric 0 pref medium
multicast ff00::/8 dev eth0 table local proto kernel metric 256 pref medium
"""
    )


def test_routes_through_a_device_without_carrier_are_linkdown() -> None:
    ns = same_namespace_pair(d1_up=True, d2_up=False)
    ns = namespace(links=ns.links, routes=(Route(TABLE_MAIN, net("10.77.0.0/16"), dev="d1",
                                                 scope="link"),))  # fmt: skip
    assert ip_route(ns) == "10.77.0.0/16 dev d1 scope link linkdown \n"


# --- ip rule -----------------------------------------------------------------------------------


def test_ip_rule_prints_selectors_in_iproute2_order() -> None:
    links = (loopback(), eth(2, "eth0", "02:00:00:00:00:02"), eth(3, "d1", "02:00:00:00:00:03"))
    rules = (
        *DEFAULT_RULES,
        Rule(512, table=TABLE_MAIN, dst=net("192.168.1.51/32")),
        Rule(512, table=TABLE_MAIN, dst=net("192.168.1.61/32")),
        Rule(1024, table=TABLE_MAIN, fwmark=0x80, fwmask=0x80),
        Rule(1025, table=TABLE_MAIN, fwmark=0x80),
        Rule(1026, table=TABLE_MAIN, fwmark=0x80, fwmask=0xFFFFFFFF),
        Rule(1027, table=TABLE_MAIN, fwmark=0),
        Rule(1028, table=TABLE_MAIN, fwmark=0, fwmask=0xFF),
        Rule(1536, table=2, src=net("192.168.1.61/32")),
        Rule(1537, table=300, src=net("10.0.0.0/8"), dst=net("10.1.0.0/16"), iif="eth0",
             oif="d1", invert=True),
        Rule(1538, table=2, iif="lo"),
        Rule(1539, action="goto", goto=1600),
        Rule(1540, action="blackhole"),
        Rule(1541, action="unreachable"),
        Rule(1542, action="prohibit"),
        Rule(1543, action="nop"),
        Rule(1544, table=253, dst=net("10.0.0.0/8")),
        Rule(1545, table=255, src=net("10.1.2.3/32")),
        Rule(1546, table=7, iif="nosuchdev"),
        Rule(1547, table=7, oif="nosuchdev"),
        Rule(1548, table=7, fwmark=0x1, invert=True),
        Rule(1549, table=7, src=net("0.0.0.0/0"), dst=net("0.0.0.0/0")),
        Rule(1550, table=7, iif="eth0", fwmark=0x5, invert=True),
        Rule(1600, table=1000),
        Rule(1700, action="goto", goto=1800),
    )  # fmt: skip
    assert (
        ip_rule(namespace(links=links, rules=rules))
        == """\
0:	from all lookup local
512:	from all to 192.168.1.51 lookup main
512:	from all to 192.168.1.61 lookup main
1024:	from all fwmark 0x80/0x80 lookup main
1025:	from all fwmark 0x80 lookup main
1026:	from all fwmark 0x80 lookup main
1027:	from all lookup main
1028:	from all fwmark 0/0xff lookup main
1536:	from 192.168.1.61 lookup 2
1537:	not from 10.0.0.0/8 to 10.1.0.0/16 iif eth0 oif d1 lookup 300
1538:	from all iif lo lookup 2
1539:	from all goto 1600
1540:	from all blackhole
1541:	from all unreachable
1542:	from all prohibit
1543:	from all nop
1544:	from all to 10.0.0.0/8 lookup default
1545:	from 10.1.2.3 lookup local
1546:	from all iif nosuchdev [detached] lookup 7
1547:	from all oif nosuchdev [detached] lookup 7
1548:	not from all fwmark 0x1 lookup 7
1549:	from all lookup 7
1550:	not from all fwmark 0x5 iif eth0 lookup 7
1600:	from all lookup 1000
1700:	from all goto 1800 [unresolved]
32766:	from all lookup main
32767:	from all lookup default
"""
    )


# --- ip neigh / arp -n -------------------------------------------------------------------------


def neighbours() -> Namespace:
    eth0 = eth(2, "eth0", "02:00:00:00:00:02")
    entries = (
        Neighbour(ip("10.0.1.100"), "eth0", "d6:e1:50:cb:f9:82", "REACHABLE"),
        Neighbour(ip("10.0.1.101"), "eth0", "d6:e1:50:cb:f9:83", "STALE"),
        Neighbour(ip("10.0.1.102"), "eth0", "d6:e1:50:cb:f9:84", "NOARP"),
        Neighbour(ip("169.254.1.1"), "eth0", "06:5e:c8:ae:85:be", "PERMANENT"),
    )
    return namespace(links=(loopback(), eth0), neighbours=entries)


def test_ip_neigh_hides_noarp_entries() -> None:
    assert ip_neigh(neighbours()) == (
        "10.0.1.100 dev eth0 lladdr d6:e1:50:cb:f9:82 REACHABLE \n"
        "10.0.1.101 dev eth0 lladdr d6:e1:50:cb:f9:83 STALE \n"
        "169.254.1.1 dev eth0 lladdr 06:5e:c8:ae:85:be PERMANENT \n"
    )


def test_arp_n_flags_permanent_entries_cm() -> None:
    assert arp_numeric(neighbours()) == (
        "Address                  HWtype  HWaddress           Flags Mask            Iface\n"
        "10.0.1.100               ether   d6:e1:50:cb:f9:82   C                     eth0\n"
        "10.0.1.101               ether   d6:e1:50:cb:f9:83   C                     eth0\n"
        "169.254.1.1              ether   06:5e:c8:ae:85:be   CM                    eth0\n"
    )


def test_arp_n_prints_nothing_for_an_empty_table() -> None:
    assert arp_numeric(namespace()) == ""


# --- iptables-save -----------------------------------------------------------------------------

RESTORED = """\
*raw
:PREROUTING ACCEPT [0:0]
COMMIT
*mangle
:POSTROUTING ACCEPT [0:0]
:ZED - [0:0]
:ABC - [0:0]
-A ZED -j RETURN
-A POSTROUTING -j ZED
-A POSTROUTING -j ABC
-A ABC -j RETURN
COMMIT
*nat
:KUBE-b - [0:0]
:KUBE-B - [0:0]
:KUBE-a - [0:0]
-A POSTROUTING -j KUBE-b
-A KUBE-a -j RETURN
COMMIT
*filter
:FORWARD DROP [5:7]
COMMIT
"""

SAVED_MANGLE = """\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ABC - [0:0]
:ZED - [0:0]
-A POSTROUTING -j ZED
-A POSTROUTING -j ABC
-A ABC -j RETURN
-A ZED -j RETURN
COMMIT
"""
SAVED_RAW = """\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""
SAVED_FILTER = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""
SAVED_NAT = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-B - [0:0]
:KUBE-a - [0:0]
:KUBE-b - [0:0]
-A POSTROUTING -j KUBE-b
-A KUBE-a -j RETURN
COMMIT
"""


def test_iptables_save_nft_order() -> None:
    ns = namespace(iptables=Iptables("nft", RESTORED))
    assert iptables_save(ns) == SAVED_MANGLE + SAVED_RAW + SAVED_FILTER + SAVED_NAT


def test_iptables_save_legacy_prints_the_newest_table_first() -> None:
    ns = namespace(iptables=Iptables("legacy", RESTORED))
    assert iptables_save(ns) == SAVED_FILTER + SAVED_NAT + SAVED_MANGLE + SAVED_RAW


def test_iptables_save_one_table_even_if_absent() -> None:
    ns = namespace(iptables=Iptables("legacy", RESTORED))
    assert iptables_save(ns, "nat") == SAVED_NAT
    assert iptables_save(namespace(), "raw") == SAVED_RAW
    assert iptables_save(namespace()) == ""


@pytest.mark.parametrize(
    ("backend", "stderr"),
    [
        ("nft", "Table `bogus' does not exist"),
        (
            "legacy",
            "iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist "
            "(do you need to insmod?)",
        ),
    ],
)
def test_iptables_save_unknown_table(backend: str, stderr: str) -> None:
    ns = namespace(iptables=Iptables(backend, RESTORED))  # type: ignore[arg-type]
    with pytest.raises(CommandFailed) as failure:
        iptables_save(ns, "bogus")
    assert (failure.value.stderr, failure.value.exit_code) == (stderr, 1)
