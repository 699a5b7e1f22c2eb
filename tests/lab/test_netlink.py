"""`netlink.py` sends what `ip`/`tc` send: the same plan applied both ways, the same kernel state.

One namespace exercising every kind of operation and every field its requests set (pinned
link-local, broadcast, route types, tables above 255, metrics, preferred sources, kernel-route
deletion, inverted/iif/oif/fwmark/goto/action rules, each neighbour state, a qdisc) is built
twice: once from `ip -batch`/`tc -batch` of the operations' own text, once from the rtnetlink
requests. `ip -d` and `tc` dumps of both must be identical.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface

import pytest
from tests.lab.scratch import run_names

from eksnet.dataplane.state import (
    Address,
    DataplaneState,
    Eni,
    Link,
    Namespace,
    Neighbour,
    Route,
    Rule,
    Subnet,
    VpcState,
)
from eksnet.lab import lifecycle, netlink, system
from eksnet.lab.ops import QdiscReplace
from eksnet.lab.plan import build_plan
from eksnet.lab.system import LabError

pytestmark = pytest.mark.lab

A, N = IPv4Address, IPv4Network
NS = "every-op"


def every_op_namespace() -> Namespace:
    lo = Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536, qlen=1000)
    d0 = Link(2, "d0", "device", "02:00:00:00:00:02", 9001, qdisc="mq", qlen=1000)
    d1 = Link(3, "d1", "device", "02:00:00:00:00:03", 1500, qlen=1000, ipv6_addrgen=False)
    return Namespace(
        name=NS,
        kind="node",
        owner=NS,
        links=(lo, d0, d1),
        addresses=(
            Address("lo", IPv4Interface("127.0.0.1/8"), scope="host"),
            Address("d0", IPv4Interface("10.0.1.5/24"), broadcast=A("10.0.1.255")),
            Address("d0", IPv4Interface("10.0.1.6/24"), broadcast=A("10.0.1.255"), secondary=True),
            Address("d1", IPv4Interface("10.0.2.5/24"), broadcast=A("10.0.2.255")),
            Address("d1", IPv4Interface("192.0.2.9/32")),
            Address("d1", IPv6Interface("fe80::1:2:3:4/64"), scope="link"),
        ),
        routes=(
            Route(254, N("10.0.1.0/24"), dev="d0", proto="kernel", scope="link", src=A("10.0.1.5")),
            Route(254, N("0.0.0.0/0"), gateway=A("10.0.1.1"), dev="d0", metric=100),
            Route(254, N("198.51.100.0/24"), gateway=A("10.0.1.1"), dev="d0", proto="static"),
            Route(254, N("203.0.113.7/32"), dev="d1", scope="link", src=A("192.0.2.9")),
            Route(254, N("203.0.113.0/24"), type="blackhole"),
            Route(254, N("203.0.114.0/24"), type="unreachable"),
            Route(254, N("203.0.115.0/24"), type="prohibit"),
            Route(2, N("10.0.2.1/32"), dev="d1", scope="link"),
            Route(2, N("0.0.0.0/0"), gateway=A("10.0.2.1"), dev="d1"),
            Route(2, N("10.9.0.0/16"), type="throw"),
            Route(1000, N("0.0.0.0/0"), gateway=A("10.0.1.1"), dev="d0", proto="dhcp"),
        ),  # 10.0.2.0/24 dev d1 proto kernel is not stated: deleted
        rules=(
            Rule(0, table=255),
            Rule(100, table=254, dst=N("10.0.1.23/32")),
            Rule(200, table=2, src=N("10.0.2.0/24"), invert=True),
            Rule(300, table=254, fwmark=0x80, fwmask=0x80),
            Rule(301, table=1000, fwmark=0x4),
            Rule(400, action="goto", goto=500, iif="d0"),
            Rule(450, action="blackhole", oif="d1"),
            Rule(460, action="unreachable", src=N("192.0.2.0/24")),
            Rule(470, action="prohibit", dst=N("198.51.100.7/32")),
            Rule(500, action="nop"),
            Rule(32766, table=254),
            Rule(32767, table=253),
        ),
        neighbours=(
            Neighbour(A("10.0.1.1"), "d0", "02:00:00:00:01:01"),
            Neighbour(A("10.0.1.2"), "d0", "02:00:00:00:01:02", state="REACHABLE"),
            Neighbour(A("10.0.1.3"), "d0", "02:00:00:00:01:03", state="STALE"),
            Neighbour(A("10.0.2.1"), "d1", "02:00:00:00:02:01", state="NOARP"),
        ),
        sysctls=(("net.ipv4.conf.all.rp_filter", "1"), ("net.ipv4.conf.d0.rp_filter", "2")),
    )


SUBNET = Subnet("a", N("10.0.0.0/16"), "az-a", "02:00:0a:00:00:01", "rtb")
VPC = VpcState(
    "vpc",
    (SUBNET.cidr,),
    (SUBNET,),
    (
        Eni("eni-0", "a", "02:00:00:00:00:02", A("10.0.1.5"), node=NS, device="d0"),
        Eni("eni-1", "a", "02:00:00:00:00:03", A("10.0.2.5"), node=NS, device="d1"),
    ),
)
"""The devices are ENIs, so the lab makes them veths into its fabric (a `dummy` would need a
kernel module that is not everywhere)."""

DUMPS = (
    ("ip", "-d", "link", "show"),
    ("ip", "-d", "addr", "show"),
    ("ip", "-d", "route", "show", "table", "all"),
    ("ip", "-d", "-6", "route", "show", "table", "all"),
    ("ip", "-d", "rule", "show"),
    ("ip", "-d", "neigh", "show"),
    ("tc", "qdisc", "show"),
    ("sysctl", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.d0.rp_filter"),
)


def dumps(netns: str, prefix: str) -> dict[str, str]:
    """Each view, made neutral where two namespaces differ whatever built them: the lab prefix
    (in `link-netns` names), qdisc handles the kernel numbers as it likes, and the neighbour
    table's order (a hash with a random seed per namespace)."""
    views = {}
    for argv in DUMPS:
        text = system.netns_exec(netns, argv).stdout.replace(prefix, "PREFIX-")
        if argv[0] == "tc":
            text = re.sub(r"\b[0-9a-f]+:", "H:", text)
        if "neigh" in argv:
            text = "\n".join(sorted(text.splitlines()))
        views[" ".join(argv)] = text
    return views


@pytest.fixture()
def built_both_ways(capable: None) -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    state = DataplaneState((every_op_namespace(),), VPC)
    by_ip, by_netlink = run_names("ip"), run_names("netlink")
    plans = [build_plan(state, names) for names in (by_ip, by_netlink)]
    try:
        for names, plan in zip((by_ip, by_netlink), plans, strict=True):
            lifecycle.write_run_file(names, plan)
            system.ip_batch(None, plan.host_batch)
        ns = plans[0].namespaces[0]
        netlink_ns = plans[1].namespaces[0]
        system.netns_exec(ns.netns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in ns.sysctls)])
        qdiscs = [op.ip_line() for op in ns.ops if isinstance(op, QdiscReplace)]
        system.run(["tc", "-n", ns.netns, "-batch", "-"], stdin="\n".join(qdiscs) + "\n")
        lines = [op.ip_line() for op in ns.ops if not isinstance(op, QdiscReplace)]
        system.ip_batch(ns.netns, lines)
        with netlink.entered(netlink_ns.netns):
            netlink.write_sysctls(netlink_ns.sysctls)
            netlink.apply(netlink_ns.ops, netlink_ns.netns)
        yield (ns.netns, by_ip.prefix), (netlink_ns.netns, by_netlink.prefix)
    finally:
        for names in (by_ip, by_netlink):
            lifecycle.down(names)


def test_netlink_builds_what_ip_builds(
    built_both_ways: tuple[tuple[str, str], tuple[str, str]],
) -> None:
    by_ip, by_netlink = (dumps(netns, prefix) for netns, prefix in built_both_ways)
    assert "blackhole 203.0.113.0/24" in by_ip["ip -d route show table all"]
    assert "goto 500" in by_ip["ip -d rule show"]
    differing = {
        view: "\n".join(
            difflib.unified_diff(text.splitlines(), by_netlink[view].splitlines(), "ip", "netlink")
        )
        for view, text in by_ip.items()
        if by_netlink[view] != text
    }
    assert not differing, "\n".join(f"{view}:\n{diff}" for view, diff in differing.items())


def test_a_failing_request_names_its_ip_line(capable: None) -> None:
    """Only the last request of a batch asks for an ACK; a failure before it is still matched to
    its own operation by sequence number, and the kernel's reason comes with it."""
    names = run_names("netlink-error")
    namespace = every_op_namespace()
    broken = Namespace(
        NS,
        "node",
        NS,
        links=namespace.links,
        routes=(
            Route(254, N("0.0.0.0/0"), gateway=A("10.7.7.7"), dev="d0"),
            Route(2, N("0.0.0.0/0"), gateway=A("10.7.7.8"), dev="d1"),
        ),
        neighbours=(Neighbour(A("10.0.1.1"), "d0", "02:00:00:00:01:01"),),
    )
    plan = build_plan(DataplaneState((broken,), VPC), names)
    try:
        lifecycle.write_run_file(names, plan)
        system.ip_batch(None, plan.host_batch)
        netns = plan.namespaces[0].netns
        with (
            pytest.raises(
                LabError,
                match=r"route add 0\.0\.0\.0/0 via 10\.7\.7\.7 dev d0 .*: Network is unreachable"
                r".* \(and 1 more failures\)$",
            ),
            netlink.entered(netns),
        ):
            netlink.apply(plan.namespaces[0].ops, netns)
    finally:
        lifecycle.down(names)
