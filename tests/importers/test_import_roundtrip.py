"""The dump parsers are the exact inverse of what `eksnet exec` prints.

Every namespace of the demo state is rendered with `render/linux/*` and parsed back; then
hypothesis builds namespaces of random rules and routes and does the same. What `ip` prints
but cannot say (a peer's name in another namespace) or says in derived form (the local table,
IPv6, the loopback's addresses) is compared in that form, nothing is left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eksnet.controllers.cluster import build_state
from eksnet.dataplane.state import (
    TABLE_LOCAL,
    Address,
    DataplaneState,
    Link,
    Namespace,
    Route,
    Rule,
)
from eksnet.errors import NotModelled
from eksnet.importers.iproute_dump import parse_neighbours, parse_routes, parse_rules
from eksnet.importers.iptables_dump import parse_iptables_save, rule_view
from eksnet.importers.link_dump import UNKNOWN_PEER, parse_ip_addr
from eksnet.importers.sysctl_dump import parse_sysctl_all
from eksnet.kernel.device import same_namespace_peer
from eksnet.kernel.fib import local_table
from eksnet.model.load import load_cluster
from eksnet.render.linux import ip_address, ip_neigh, ip_route, ip_rule, iptables_save, sysctl_read
from eksnet.render.linux.addrconf import inet6_addresses
from eksnet.render.linux.devinet import inet_addresses

DEMO: DataplaneState = build_state(load_cluster(None))
NAMESPACES = {ns.name: ns for ns in DEMO.namespaces}
ALL_ONES = 0xFFFFFFFF


def shown_link(ns: Namespace, link: Link) -> Link:
    """The link as `ip addr` can tell it: a peer in another namespace without its name."""
    if link.peer is None or same_namespace_peer(ns, link) is not None:
        return link
    return replace(link, peer=replace(link.peer, name=UNKNOWN_PEER))


def shown_addresses(ns: Namespace) -> tuple[Address, ...]:
    """Every address `ip addr` prints, in its order (kernel-derived ones included)."""
    return tuple(
        address
        for link in sorted(ns.links, key=lambda link: link.ifindex)
        for address in (*inet_addresses(ns, link), *inet6_addresses(ns, link))
    )


def kernel_rule(rule: Rule) -> Rule:
    """A rule as the kernel reports it back: an all-ones mark mask is the default one."""
    return replace(rule, fwmask=None) if rule.fwmask == ALL_ONES else rule


def sysctl_line(ns: Namespace, key: str, value: str) -> str:
    """`sysctl KEY` as eksnet prints it; where eksnet does not know the directory
    (`net/netfilter`), the same `KEY = VALUE` form procps prints."""
    try:
        return sysctl_read(ns, key)
    except NotModelled:
        return f"{key} = {value}\n"


def stored_routes(ns: Namespace) -> Counter[Route]:
    return Counter(route for route in ns.routes if route.table != TABLE_LOCAL)


@pytest.mark.parametrize("name", sorted(NAMESPACES))
def test_demo_namespace_round_trips(name: str) -> None:
    ns = NAMESPACES[name]
    assert parse_rules(ip_rule(ns), "ip rule") == tuple(map(kernel_rule, ns.sorted_rules()))

    dump = parse_routes(ip_route(ns, "all"), "ip route")
    assert Counter(dump.routes) == stored_routes(ns)
    assert set(dump.local) == set(local_table(ns))
    assert dump.ipv6_lines == ip_route(ns, "all").count("pref medium")

    links = parse_ip_addr(ip_address(ns), "ip addr", ns.name)
    assert links.links == tuple(
        shown_link(ns, link) for link in sorted(ns.links, key=lambda x: x.ifindex)
    )
    assert links.addresses == shown_addresses(ns)

    assert parse_neighbours(ip_neigh(ns), "ip neigh") == ns.neighbours

    text = "".join(sysctl_line(ns, key, value) for key, value in ns.sysctls)
    assert dict(parse_sysctl_all(text, "sysctl")) == dict(ns.sysctls)

    if ns.iptables is not None:
        saved = parse_iptables_save(iptables_save(ns), "iptables-save")
        assert saved.iptables is not None
        assert rule_view(saved.iptables.save, "dump") == rule_view(ns.iptables.save, "state")


# --- generated rules and routes -------------------------------------------------------------------

DEVICES = ("eth0", "eth1")
LINKS = (
    Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536, qlen=1000),
    Link(2, "eth0", "device", "02:00:c0:a8:01:32", 9001, qdisc="mq", qlen=1000),
    Link(3, "eth1", "device", "02:00:c0:a8:01:3c", 9001, qdisc="mq", qlen=1000),
)
networks = st.builds(
    lambda address, length: IPv4Network((address, length), strict=False),
    st.integers(0, ALL_ONES),
    st.integers(1, 32),
)
addresses = st.integers(1, ALL_ONES - 1).map(IPv4Address)
tables = st.sampled_from((2, 3, 100, 253, 254, 255, 1000))


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    priority = draw(st.integers(0, 32000))
    action = draw(st.sampled_from(("lookup", "lookup", "goto", "nop", "blackhole", "prohibit")))
    mark = draw(st.none() | st.integers(1, ALL_ONES))
    mask = draw(st.none() | st.integers(1, ALL_ONES - 1)) if mark is not None else None
    return Rule(
        priority,
        action=action,  # type: ignore[arg-type]
        table=draw(tables) if action == "lookup" else None,
        src=draw(st.none() | networks),
        dst=draw(st.none() | networks),
        fwmark=mark,
        fwmask=mask,
        iif=draw(st.none() | st.sampled_from(("lo", "eth0", "gone0"))),
        oif=draw(st.none() | st.sampled_from(("eth1", "gone1"))),
        goto=priority + draw(st.integers(1, 500)) if action == "goto" else None,
        invert=draw(st.booleans()),
    )


@st.composite
def routes(draw: st.DrawFn) -> Route:
    kind = draw(st.sampled_from(("unicast", "unicast", "blackhole", "unreachable", "throw")))
    scope = draw(st.sampled_from(("global", "link", "host")))
    gateway = draw(st.none() | addresses) if kind == "unicast" and scope == "global" else None
    table = draw(tables.filter(lambda t: t != TABLE_LOCAL))
    return Route(
        table=table,
        dst=draw(networks | st.just(IPv4Network("0.0.0.0/0"))),
        type=kind,  # type: ignore[arg-type]
        gateway=gateway,
        dev=draw(st.sampled_from(DEVICES)) if kind == "unicast" else None,
        proto=draw(st.sampled_from(("boot", "kernel", "static", "dhcp"))),
        scope=scope,  # type: ignore[arg-type]
        src=draw(st.none() | addresses),
        metric=draw(st.none() | st.integers(1, 2**31)),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(rules(), max_size=12), st.lists(routes(), max_size=12))
def test_generated_rules_and_routes_round_trip(drawn_rules: list[Rule], drawn: list[Route]) -> None:
    ns = Namespace(
        "generated",
        "node",
        "generated",
        LINKS,
        addresses=(Address("eth0", IPv4Interface("192.168.1.50/24")),),
        routes=tuple(drawn),
        rules=tuple(drawn_rules),
    )
    assert parse_rules(ip_rule(ns), "ip rule") == tuple(map(kernel_rule, ns.sorted_rules()))
    assert Counter(parse_routes(ip_route(ns, "all"), "ip route").routes) == stored_routes(ns)
