"""The measured outputs of talk-walks.md §4.1-4.3, reproduced from hand-built namespaces.

The spec's texts are copied verbatim; as the spec says, trailing whitespace is not compared
(iproute2 ends route lines with a space).
"""

from __future__ import annotations

import pytest

from eksnet.render.exec import run_command
from eksnet.render.linux import arp_numeric, ip_address, ip_neigh, ip_route, ip_rule
from eksnet.render.linux.iptables import iptables_save

from .fixtures import node1, pod61, talk_state


def stripped(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


NODE1_IP_RULE = """\
0:	from all lookup local
512:	from all to 192.168.1.51 lookup main
512:	from all to 192.168.1.61 lookup main
1024:	from all fwmark 0x80/0x80 lookup main
1536:	from 192.168.1.61 lookup 2
32766:	from all lookup main
32767:	from all lookup default
"""

NODE1_MAIN = """\
default via 192.168.1.1 dev eth0
169.254.169.254 dev eth0
192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.50
192.168.1.51 dev enib9b00b57dd4 scope link
192.168.1.61 dev eni69e05c2a0e5 scope link
"""

NODE1_TABLE_2 = """\
default via 192.168.1.1 dev eth1
192.168.1.1 dev eth1 scope link
"""

NODE1_ENI69 = """\
39: eni69e05c2a0e5@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc noqueue state UP group default
    link/ether 06:5e:c8:ae:85:be brd ff:ff:ff:ff:ff:ff link-netns cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935
    inet6 fe80::45e:c8ff:feae:85be/64 scope link
       valid_lft forever preferred_lft forever
"""

POD61_IP_A = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet6 ::1/128 scope host
       valid_lft forever preferred_lft forever
3: eth0@if39: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc noqueue state UP group default
    link/ether 6a:40:16:85:c3:34 brd ff:ff:ff:ff:ff:ff link-netnsid 0
    inet 192.168.1.61/32 scope global eth0
       valid_lft forever preferred_lft forever
    inet6 fe80::6a40:16ff:fe85:c334/64 scope link
       valid_lft forever preferred_lft forever
"""

POD61_ROUTE = """\
default via 169.254.1.1 dev eth0
169.254.1.1 dev eth0 scope link
"""

POD61_ARP = """\
Address                  HWtype  HWaddress           Flags Mask            Iface
169.254.1.1              ether   06:5e:c8:ae:85:be   CM                    eth0
"""

POD61_NEIGH = "169.254.1.1 dev eth0 lladdr 06:5e:c8:ae:85:be PERMANENT\n"


def test_node1_ip_rule_show() -> None:
    assert stripped(ip_rule(node1())) == stripped(NODE1_IP_RULE)


def test_node1_ip_route_show_table_main() -> None:
    assert stripped(ip_route(node1(), 254)) == stripped(NODE1_MAIN)


def test_node1_ip_route_show_table_2() -> None:
    assert stripped(ip_route(node1(), 2)) == stripped(NODE1_TABLE_2)


def test_node1_ip_addr_show_eni() -> None:
    assert stripped(ip_address(node1(), "eni69e05c2a0e5")) == stripped(NODE1_ENI69)


def test_pod61_ip_a() -> None:
    assert stripped(ip_address(pod61())) == stripped(POD61_IP_A)


def test_pod61_ip_route() -> None:
    assert stripped(ip_route(pod61())) == stripped(POD61_ROUTE)


def test_pod61_arp_n_is_byte_exact() -> None:
    assert arp_numeric(pod61()) == POD61_ARP


def test_pod61_ip_neigh() -> None:
    assert stripped(ip_neigh(pod61())) == stripped(POD61_NEIGH)


@pytest.mark.parametrize(
    ("namespace", "argv", "expected"),
    [
        ("node", ["ip", "rule", "show"], NODE1_IP_RULE),
        ("node", ["ip", "route", "show", "table", "main"], NODE1_MAIN),
        ("node", ["ip", "route", "show", "table", "2"], NODE1_TABLE_2),
        ("node", ["ip", "addr", "show", "eni69e05c2a0e5"], NODE1_ENI69),
        ("pod", ["ip", "a"], POD61_IP_A),
        ("pod", ["ip", "route"], POD61_ROUTE),
        ("pod", ["arp", "-n"], POD61_ARP),
    ],
)
def test_the_slides_through_run_command(namespace: str, argv: list[str], expected: str) -> None:
    state = talk_state()
    ns = state.nodes()[0] if namespace == "node" else state.pods()[0]
    assert stripped(run_command(state, ns, argv)) == stripped(expected)


def chain_rules(save: str) -> dict[tuple[str, str], list[str]]:
    """Rules per (table, chain), in order: what §4.3 says may be asserted."""
    table = ""
    chains: dict[tuple[str, str], list[str]] = {}
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].split()[0]
        elif line.startswith("-A "):
            chains.setdefault((table, line.split()[1]), []).append(line)
    return chains


def test_node1_iptables_save_keeps_every_rule_and_the_order_inside_each_chain() -> None:
    from .fixtures import NODE1_IPTABLES

    assert chain_rules(iptables_save(node1())) == chain_rules(NODE1_IPTABLES)


def test_node1_iptables_save_prints_in_legacy_order() -> None:
    lines = iptables_save(node1()).splitlines()
    assert [line for line in lines if line.startswith("*")] == ["*filter", "*nat", "*mangle"]
    nat = lines[lines.index("*nat") : lines.index("*mangle")]
    assert [line for line in nat if line.startswith(":")] == [
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":AWS-CONNMARK-CHAIN-0 - [0:0]",
        ":AWS-SNAT-CHAIN-0 - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-SEP-CGDVTEPNP2RHKNBA - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-SVC-4QFXEAV27BCWXK5E - [0:0]",
    ]
    services = [line for line in nat if line.startswith("-A KUBE-SERVICES")]
    assert services[-1].endswith("-j KUBE-NODEPORTS")
