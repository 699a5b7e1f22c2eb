"""`walk.netfilter.Passage` carries the `recent` lists like conntrack's tables: a second
connection from the same client, started with the first one's lists, sticks to its endpoint;
SCTP packets pass through the hooks with their chunks known to conntrack; `addrtype` asks the
namespace's local table as `inet_dev_addr_type` does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from tests.kernel.test_netfilter_recent import AFFINITY

from eksnet.controllers import build_state
from eksnet.dataplane.state import Iptables, Namespace
from eksnet.kernel.conntrack import ConntrackTable
from eksnet.kernel.netfilter import NfOutcome, RecentTables
from eksnet.model import load_cluster
from eksnet.walk.model import Packet
from eksnet.walk.netfilter import Passage, only_outcome

A = IPv4Address
NODE = "ip-192-168-1-50.eu-west-2.compute.internal"
CLIENT = A("203.0.113.10")


@pytest.fixture(scope="module")
def node() -> Namespace:
    state = build_state(load_cluster())
    found = next(ns for ns in state.namespaces if ns.name == NODE)
    return replace(found, iptables=Iptables("nft", AFFINITY))


def syn(sport: int) -> Packet:
    return Packet(CLIENT, A("172.20.10.10"), "tcp", sport, 80, tcp_flags="S")


def pick(index: int) -> object:
    def choose(where: str, outcomes: Sequence[NfOutcome]) -> NfOutcome:
        assert len(outcomes) == 2, where
        return outcomes[index]

    return choose


@pytest.mark.parametrize(("branch", "endpoint"), [(0, "10.0.1.23"), (1, "10.0.2.57")])
def test_the_second_connection_follows_the_first(
    node: Namespace, branch: int, endpoint: str
) -> None:
    conntrack: dict[str, ConntrackTable] = {}
    recent: dict[str, RecentTables] = {}
    first = Passage(conntrack, node, pick(branch), recent=recent, now=0.0)  # type: ignore[arg-type]
    result = first.prerouting(syn(40000), iif="eth0")
    assert result.packet.dst == A(endpoint)
    name = "KUBE-SEP-A" if branch == 0 else "KUBE-SEP-B"
    assert recent[NODE].addresses(name) == {CLIENT}
    assert any(
        f"recent list {name}: remembers {CLIENT}" in d for s in result.steps for d in s.details
    )

    # a new connection one hour later, with the first one's lists: no split, same endpoint
    again = Passage({}, node, only_outcome, recent=dict(recent), now=3600.0)
    second = again.prerouting(syn(40001), iif="eth0")
    assert second.packet.dst == A(endpoint)
    # without them, the walk would split again (only_outcome refuses to choose)
    with pytest.raises(Exception, match="load-balanced branches"):
        Passage({}, node, only_outcome, now=3600.0).prerouting(syn(40002), iif="eth0")


def test_sctp_through_the_hooks(node: Namespace) -> None:
    text = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -d 172.20.0.5/32 -p sctp -m sctp --dport 9000 -m sctp --chunk-types only "
        "INIT -j DNAT --to-destination 10.9.2.2:9100\nCOMMIT\n"
    )
    sctp_node = replace(node, iptables=Iptables("nft", text))
    conntrack: dict[str, ConntrackTable] = {}
    passage = Passage(conntrack, sctp_node)
    packet = Packet(A("192.168.1.51"), A("172.20.0.5"), "sctp", 40000, 9000)
    result = passage.prerouting(packet, iif="eni1")
    assert (result.packet.dst, result.packet.dport) == (A("10.9.2.2"), 9100)
    done = passage.postrouting(result.packet, iif="eni1", oif="eth0", nexthop=None)
    assert [r.text.split()[:4] for r in done.records] == [["sctp", "132", "10", "CLOSED"]]
    # the INIT_ACK coming back: conntrack knows it answers the INIT
    back = Passage(conntrack, sctp_node)
    answer = Packet(A("10.9.2.2"), A("192.168.1.51"), "sctp", 9100, 40000)
    replied = back.prerouting(answer, iif="eth0")
    assert (replied.packet.src, replied.packet.sport) != (A("172.20.0.5"), 9000)  # un-DNAT later
    finished = back.postrouting(replied.packet, iif="eth0", oif="eni1", nexthop=None)
    assert finished.packet.src == A("172.20.0.5") and finished.packet.sport == 9000
    assert finished.records[0].text.split()[3] == "COOKIE_WAIT"


def test_addrtype_as_the_kernel_answers(node: Namespace) -> None:
    passage = Passage({}, node)
    eth0 = next(a.interface.ip for a in node.addresses if a.dev == "eth0" and a.family == 4)
    assert passage._addr_type(eth0, None) == "LOCAL"
    assert passage._addr_type(eth0, "eth0") == "LOCAL"
    assert passage._addr_type(eth0, "lo") == "UNICAST"  # --limit-iface-in: not lo's
    assert passage._addr_type(A("127.0.0.9"), None) == "LOCAL"
    assert passage._addr_type(A("127.0.0.9"), "lo") == "LOCAL"
    assert passage._addr_type(A("0.0.0.0"), None) == "BROADCAST"
    assert passage._addr_type(A("255.255.255.255"), "eth0") == "BROADCAST"
    assert passage._addr_type(A("224.0.0.1"), None) == "MULTICAST"
    assert passage._addr_type(A("8.8.8.8"), None) == "UNICAST"
