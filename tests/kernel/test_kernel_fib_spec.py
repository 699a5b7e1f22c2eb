"""The FIB model against the measured examples of linux-dataplane.md §2–3 and vpc-cni.md §2.9.

Every expected value below is quoted from the spec (or from a measurement on 6.18 noted inline).
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    Address,
    Link,
    LinkPeer,
    Namespace,
    Route,
    Rule,
)
from eksnet.errors import CommandFailed
from eksnet.kernel.fib import (
    FibError,
    FibResult,
    FlowKey,
    fib_lookup,
    input_route,
    local_table,
    output_route,
    select_source,
)
from eksnet.render.route_get import ip_route_get

A = IPv4Address
N = IPv4Network


def veth(ifindex: int, name: str, peer: str) -> Link:
    return Link(
        ifindex,
        name,
        "veth",
        f"02:00:00:00:00:{ifindex:02x}",
        9001,
        peer=LinkPeer(2, peer, netns=f"pod-{name}"),
    )


LO = Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536)
LO_ADDRESS = Address("lo", IPv4Interface("127.0.0.1/8"), scope="host")


def spec_lab_node(sysctls: tuple[tuple[str, str], ...] = ()) -> Namespace:
    """`spec-lx-n` of linux-dataplane.md §0: the lab node the §2.10 and §3.2 measurements ran on."""
    return Namespace(
        name="spec-lx-n",
        kind="node",
        owner="spec-lx-n",
        links=(
            LO,
            Link(2, "eth0", "device", "02:00:00:00:01:05", 9001),
            veth(3, "enia", "eth0"),
            veth(4, "enib", "eth0"),
        ),
        addresses=(LO_ADDRESS, Address("eth0", IPv4Interface("10.0.1.5/24"))),
        routes=(
            Route(254, N("0.0.0.0/0"), gateway=A("10.0.1.100"), dev="eth0"),
            Route(
                254, N("10.0.1.0/24"), dev="eth0", proto="kernel", scope="link", src=A("10.0.1.5")
            ),
            Route(254, N("10.0.1.23/32"), dev="enia", scope="link"),
            Route(254, N("10.0.1.57/32"), dev="enib", scope="link"),
            Route(2, N("0.0.0.0/0"), gateway=A("10.0.1.100"), dev="eth0"),
        ),
        rules=(
            *DEFAULT_RULES,
            Rule(512, table=254, dst=N("10.0.1.23/32")),
            Rule(512, table=254, dst=N("10.0.1.57/32")),
            Rule(1024, table=254, fwmark=0x80, fwmask=0x80),
            Rule(1536, table=2, src=N("10.0.1.57/32")),
        ),
        sysctls=(("net.ipv4.ip_forward", "1"), *sysctls),
    )


def vpc_cni_node(sysctls: tuple[tuple[str, str], ...] = ()) -> Namespace:
    """The default node of vpc-cni.md §2.9: pod A (10.0.1.23) on eth0, pod B (10.0.2.57) on eth1."""
    return Namespace(
        name="ip-10-0-1-5",
        kind="node",
        owner="ip-10-0-1-5",
        links=(
            LO,
            Link(2, "eth0", "device", "02:00:00:00:01:05", 9001),
            Link(3, "eth1", "device", "02:00:00:00:02:14", 9001),
            veth(4, "enia150d993dd4", "eth0"),
            veth(5, "eniddeaa362342", "eth0"),
        ),
        addresses=(
            LO_ADDRESS,
            Address("eth0", IPv4Interface("10.0.1.5/19")),
            Address("eth1", IPv4Interface("10.0.2.20/19")),
        ),
        routes=(
            Route(254, N("0.0.0.0/0"), gateway=A("10.0.0.1"), dev="eth0"),
            Route(
                254, N("10.0.0.0/19"), dev="eth0", proto="kernel", scope="link", src=A("10.0.1.5")
            ),
            Route(254, N("10.0.1.23/32"), dev="enia150d993dd4", scope="link"),
            Route(254, N("10.0.2.57/32"), dev="eniddeaa362342", scope="link"),
            Route(2, N("0.0.0.0/0"), gateway=A("10.0.0.1"), dev="eth1"),
            Route(2, N("10.0.0.1/32"), dev="eth1", scope="link"),
        ),
        rules=(
            *DEFAULT_RULES,
            Rule(512, table=254, dst=N("10.0.1.23/32")),
            Rule(512, table=254, dst=N("10.0.2.57/32")),
            Rule(1024, table=254, fwmark=0x80, fwmask=0x80),
            Rule(1536, table=2, src=N("10.0.2.57/32")),
            Rule(32765, table=2, src=N("10.0.2.20/32")),
        ),
        sysctls=(
            ("net.ipv4.conf.eth0.rp_filter", "2"),
            ("net.ipv4.ip_forward", "1"),
            *sysctls,
        ),
    )


POD_A_VETH = "enia150d993dd4"
POD_B_VETH = "eniddeaa362342"


# --- §2.10: `ip route get` on the lab node -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("8.8.8.8", "8.8.8.8 via 10.0.1.100 dev eth0 src 10.0.1.5 uid 0\n    cache\n"),
        ("10.0.1.23", "10.0.1.23 dev enia src 10.0.1.5 uid 0\n    cache\n"),
        ("10.0.1.5", "local 10.0.1.5 dev lo table local src 10.0.1.5 uid 0\n    cache <local>\n"),
        (
            "10.0.1.255",
            "broadcast 10.0.1.255 dev eth0 table local src 10.0.1.5 uid 0\n    cache <local,brd>\n",
        ),
        (
            "8.8.8.8 from 10.0.1.57 iif enib",
            "8.8.8.8 from 10.0.1.57 via 10.0.1.100 dev eth0 table 2\n    cache iif enib\n",
        ),
        (
            "8.8.8.8 from 10.0.1.57 iif enib mark 0x80",
            "8.8.8.8 from 10.0.1.57 via 10.0.1.100 dev eth0 mark 0x80\n    cache iif enib\n",
        ),
        (
            "10.0.1.5 from 10.0.1.100 iif eth0",
            "local 10.0.1.5 from 10.0.1.100 dev lo table local\n    cache <local> iif eth0\n",
        ),
        ("10.0.1.57 fibmatch", "10.0.1.57 dev enib scope link\n"),
    ],
)
def test_route_get_matches_spec_examples(args: str, expected: str) -> None:
    assert ip_route_get(spec_lab_node(), args.split()) == expected


def test_output_lookup_with_foreign_source_is_unreachable() -> None:
    # §10.27: "Output lookups with a non-local `from` return ENETUNREACH".
    with pytest.raises(CommandFailed) as failed:
        ip_route_get(spec_lab_node(), ["8.8.8.8", "from", "10.0.1.57"])
    assert failed.value.stderr == "RTNETLINK answers: Network is unreachable"


@pytest.mark.parametrize(
    "args",
    [
        "8.8.8.8 from 127.0.0.1 iif eth0",  # 127/8 source from outside (§2.10)
        "8.8.8.8 from 10.0.1.5 iif eth0",  # own address as source (§2.10)
        "127.0.0.1 from 10.0.1.100 iif eth0",  # 127.0.0.1 as destination from outside
    ],
)
def test_martians_are_invalid_argument(args: str) -> None:
    with pytest.raises(CommandFailed) as failed:
        ip_route_get(spec_lab_node(), args.split())
    assert failed.value.stderr == "RTNETLINK answers: Invalid argument"


# --- §2.6: the local table ---------------------------------------------------------------------


def test_local_table_of_the_measured_node() -> None:
    shown = [(r.type, str(r.dst), r.dev, r.scope, str(r.src)) for r in local_table(spec_lab_node())]
    assert shown == [
        ("local", "10.0.1.5/32", "eth0", "host", "10.0.1.5"),
        ("broadcast", "10.0.1.255/32", "eth0", "link", "10.0.1.5"),
        ("local", "127.0.0.0/8", "lo", "host", "127.0.0.1"),
        ("local", "127.0.0.1/32", "lo", "host", "127.0.0.1"),
        ("broadcast", "127.255.255.255/32", "lo", "link", "127.0.0.1"),
    ]
    assert all(r.proto == "kernel" and r.table == 255 for r in local_table(spec_lab_node()))


def test_local_table_prefix_lengths_secondaries_and_down_devices() -> None:
    # Measured on 6.18: /31 and /32 get no broadcast; a secondary only its `local`, sourced from
    # the primary; an explicit `brd` adds its own entry; a down device keeps only `local`.
    ns = Namespace(
        name="t",
        kind="pod",
        owner="t",
        links=(
            LO,
            Link(2, "d0", "device", "02:00:00:00:00:02", 1500),
            Link(3, "d1", "device", "02:00:00:00:00:03", 1500, up=False),
        ),
        addresses=(
            Address("d0", IPv4Interface("10.1.0.1/24")),
            Address("d0", IPv4Interface("10.1.0.9/24"), secondary=True),
            Address("d0", IPv4Interface("10.3.0.1/31")),
            Address("d0", IPv4Interface("10.4.0.1/32")),
            Address("d0", IPv4Interface("10.7.0.1/24"), broadcast=A("10.7.0.200")),
            Address("d1", IPv4Interface("10.5.0.1/24")),
        ),
    )
    shown = [f"{r.type} {r.dst} {r.dev} src {r.src}" for r in local_table(ns)]
    assert shown == [
        "local 10.1.0.1/32 d0 src 10.1.0.1",
        "local 10.1.0.9/32 d0 src 10.1.0.1",
        "broadcast 10.1.0.255/32 d0 src 10.1.0.1",
        "local 10.3.0.1/32 d0 src 10.3.0.1",
        "local 10.4.0.1/32 d0 src 10.4.0.1",
        "local 10.5.0.1/32 d1 src 10.5.0.1",
        "local 10.7.0.1/32 d0 src 10.7.0.1",
        "broadcast 10.7.0.200/32 d0 src 10.7.0.1",
        "broadcast 10.7.0.255/32 d0 src 10.7.0.1",
    ]


# --- §2.2–2.5: the rule walk -------------------------------------------------------------------


def test_vpc_cni_pod_b_to_vpc_uses_table_2() -> None:
    ns = vpc_cni_node()
    found = fib_lookup(ns, FlowKey(dst=A("10.0.5.9"), src=A("10.0.2.57"), iif=POD_B_VETH))
    assert isinstance(found, FibResult)
    assert (found.table, found.dev, found.gateway) == (2, "eth1", A("10.0.0.1"))
    assert [(v.rule.priority, v.outcome) for v in found.trace] == [
        (0, "no-route-in-table"),
        (512, "no-match"),
        (512, "no-match"),
        (1024, "no-match"),
        (1536, "matched"),
    ]


def test_vpc_cni_pod_b_to_pod_a_uses_rule_512() -> None:
    found = fib_lookup(
        vpc_cni_node(), FlowKey(dst=A("10.0.1.23"), src=A("10.0.2.57"), iif=POD_B_VETH)
    )
    assert isinstance(found, FibResult)
    assert found.rule is not None and found.rule.priority == 512
    assert (found.table, found.dev) == (254, POD_A_VETH)


def test_vpc_cni_marked_pod_b_traffic_uses_main() -> None:
    found = fib_lookup(
        vpc_cni_node(), FlowKey(dst=A("8.8.8.8"), src=A("10.0.2.57"), iif=POD_B_VETH, mark=0x80)
    )
    assert isinstance(found, FibResult)
    assert found.rule is not None and found.rule.priority == 1024
    assert (found.table, found.dev, found.gateway) == (254, "eth0", A("10.0.0.1"))


def test_vpc_cni_unmarked_pod_b_egress_leaves_eth1() -> None:
    decided = input_route(vpc_cni_node(), src=A("10.0.2.57"), dst=A("8.8.8.8"), iif=POD_B_VETH)
    assert decided.kind == "forward"
    assert isinstance(decided.fib, FibResult) and decided.fib.dev == "eth1"


def test_vpc_cni_secondary_eni_address_uses_rule_32765() -> None:
    found = output_route(vpc_cni_node(), A("8.8.8.8"), src=A("10.0.2.20"))
    assert isinstance(found, FibResult)
    assert (found.table, found.dev) == (2, "eth1")


def test_connected_socket_second_lookup_sees_from_rules() -> None:
    # §2.3: the unconnected lookup has saddr 0 (rule 32765 cannot match); a connected socket
    # looks up again with the chosen source.
    ns = replace(
        vpc_cni_node(),
        routes=(
            *vpc_cni_node().routes,
            Route(
                254, N("10.0.64.0/19"), dev="eth1", proto="kernel", scope="link", src=A("10.0.2.20")
            ),
        ),
    )
    unconnected = output_route(ns, A("10.0.64.9"), connect=False)
    connected = output_route(ns, A("10.0.64.9"))
    assert isinstance(unconnected, FibResult) and isinstance(connected, FibResult)
    assert (unconnected.table, unconnected.prefsrc) == (254, A("10.0.2.20"))
    assert (connected.table, connected.dev, connected.prefsrc) == (2, "eth1", A("10.0.2.20"))


@pytest.mark.parametrize(
    ("action", "errno", "message"),
    [
        ("blackhole", "EINVAL", "Invalid argument"),
        ("unreachable", "ENETUNREACH", "Network is unreachable"),
        ("prohibit", "EACCES", "Permission denied"),
    ],
)
def test_rule_actions_give_their_errors(action: str, errno: str, message: str) -> None:
    ns = replace(
        spec_lab_node(),
        rules=(*spec_lab_node().rules, Rule(10, action=action, dst=N("198.51.100.0/24"))),
    )  # type: ignore[arg-type]
    found = fib_lookup(ns, FlowKey(dst=A("198.51.100.7"), iif="lo"))
    assert isinstance(found, FibError)
    assert (found.errno, found.message) == (errno, message)
    assert found.rule is not None and found.rule.priority == 10 and found.route is None


@pytest.mark.parametrize(
    ("type_", "errno"),
    [("blackhole", "EINVAL"), ("unreachable", "EHOSTUNREACH"), ("prohibit", "EACCES")],
)
def test_route_types_give_their_errors(type_: str, errno: str) -> None:
    route = Route(254, N("198.51.100.0/24"), type=type_)  # type: ignore[arg-type]
    ns = replace(spec_lab_node(), routes=(*spec_lab_node().routes, route))
    found = fib_lookup(ns, FlowKey(dst=A("198.51.100.7"), iif="lo"))
    assert isinstance(found, FibError)
    assert found.errno == errno and found.route == route


def test_throw_and_empty_tables_fall_through() -> None:
    base = spec_lab_node()
    ns = replace(
        base,
        routes=(*base.routes, Route(100, N("198.51.100.0/24"), type="throw")),
        rules=(*base.rules, Rule(100, table=100), Rule(101, table=77)),
    )
    found = fib_lookup(ns, FlowKey(dst=A("198.51.100.7"), iif="lo"))
    assert isinstance(found, FibResult) and found.table == 254
    outcomes = [(v.rule.priority, v.outcome) for v in found.trace]
    assert (100, "throw") in outcomes and (101, "table-missing") in outcomes


def test_goto_skips_rules_and_unresolved_goto_is_ignored() -> None:
    base = spec_lab_node()
    ns = replace(
        base,
        routes=(
            *base.routes,
            Route(250, N("198.51.100.0/24"), dev="enia", scope="link"),
            Route(251, N("198.51.100.0/24"), dev="enib", scope="link"),
        ),
        rules=(
            *base.rules,
            Rule(20, action="goto", goto=30),
            Rule(21, action="goto", goto=40),
            Rule(25, table=250),
            Rule(40, table=251),
        ),
    )
    found = fib_lookup(ns, FlowKey(dst=A("198.51.100.7"), iif="lo"))
    assert isinstance(found, FibResult) and (found.table, found.dev) == (251, "enib")
    assert [(v.rule.priority, v.outcome) for v in found.trace][:4] == [
        (0, "no-route-in-table"),
        (20, "goto-unresolved"),
        (21, "goto"),
        (40, "matched"),
    ]


def test_fwmark_mask_defaults() -> None:
    no_mask = Rule(10, table=254, fwmark=0x80)
    zero = Rule(10, table=254, fwmark=0)
    from eksnet.kernel.fib import rule_matches

    assert rule_matches(no_mask, FlowKey(dst=A("1.1.1.1"), mark=0x80))
    assert not rule_matches(no_mask, FlowKey(dst=A("1.1.1.1"), mark=0x81))  # mask 0xffffffff
    assert rule_matches(zero, FlowKey(dst=A("1.1.1.1"), mark=0x1234))  # `fwmark 0`: mask 0
    masked = Rule(10, table=254, fwmark=0x80, fwmask=0x80)
    assert rule_matches(masked, FlowKey(dst=A("1.1.1.1"), mark=0x81))


def test_from_rules_do_not_match_unbound_source_and_not_inverts() -> None:
    from eksnet.kernel.fib import rule_matches

    rule = Rule(10, table=2, src=N("10.0.1.57/32"))
    assert not rule_matches(rule, FlowKey(dst=A("8.8.8.8")))
    assert rule_matches(replace(rule, invert=True), FlowKey(dst=A("8.8.8.8")))
    assert rule_matches(Rule(10, table=2, iif="lo"), FlowKey(dst=A("8.8.8.8"), iif="lo"))
    assert not rule_matches(Rule(10, table=2, oif="eth0"), FlowKey(dst=A("8.8.8.8"), iif="eth1"))


def test_longest_prefix_then_lowest_metric_and_down_devices_are_skipped() -> None:
    # §2.7: `dev enib metric 50` beat `via ... metric 100`; a dead nexthop falls back to a
    # shorter prefix.
    base = spec_lab_node()
    ns = replace(
        base,
        routes=(
            *base.routes,
            Route(254, N("198.51.100.0/24"), gateway=A("10.0.1.100"), dev="eth0", metric=100),
            Route(254, N("198.51.100.0/24"), dev="enib", scope="link", metric=50),
            Route(254, N("198.51.100.0/25"), dev="enia", scope="link"),
        ),
    )
    found = fib_lookup(ns, FlowKey(dst=A("198.51.100.200"), iif="lo"))
    assert isinstance(found, FibResult) and found.dev == "enib"
    down = replace(ns, links=tuple(replace(link, up=link.name != "enia") for link in ns.links))
    found = fib_lookup(down, FlowKey(dst=A("198.51.100.7"), iif="lo"))
    assert isinstance(found, FibResult) and found.dev == "enib"


def test_default_rules_only_merge_local_and_main() -> None:
    # Measured on 6.18: with only the default rules, `local` and `main` are one trie, so a main
    # /16 inside 127/8 wins over the local /8 and a local result reports table main.
    base = replace(spec_lab_node(), rules=DEFAULT_RULES)
    ns = replace(
        base, routes=(*base.routes, Route(254, N("127.1.0.0/16"), dev="eth0", scope="link"))
    )
    assert ip_route_get(ns, ["127.1.0.5"]).startswith("127.1.0.5 dev eth0 src 10.0.1.5")
    assert ip_route_get(ns, ["10.0.1.5"]).startswith("local 10.0.1.5 dev lo src 10.0.1.5 uid 0")
    custom = replace(ns, rules=(*DEFAULT_RULES, Rule(100, table=100)))
    assert ip_route_get(custom, ["127.1.0.5"]).startswith("local 127.1.0.5 dev lo table local")


# --- §2.8: source selection --------------------------------------------------------------------


def test_address_less_device_borrows_the_node_address() -> None:
    ns = spec_lab_node()
    assert select_source(ns, "enia", None, "link") == A("10.0.1.5")
    assert select_source(ns, "lo", None, "host") == A("127.0.0.1")


def test_device_route_source_is_the_first_primary_not_the_destination_subnet() -> None:
    # Measured on 6.18 (the spec says "destination"): d0 has 10.1.0.1/24 and 10.2.0.1/24, a route
    # `10.2.0.128/25 dev d0` sources 10.2.0.200 from 10.1.0.1; a gateway picks its subnet.
    ns = Namespace(
        name="t",
        kind="pod",
        owner="t",
        links=(LO, Link(2, "d0", "device", "02:00:00:00:00:02", 1500)),
        addresses=(
            Address("d0", IPv4Interface("10.1.0.1/24")),
            Address("d0", IPv4Interface("10.2.0.1/24")),
            Address("d0", IPv4Interface("10.1.0.9/24"), secondary=True),
        ),
        routes=(Route(254, N("10.2.0.128/25"), dev="d0", scope="link"),),
    )
    found = output_route(ns, A("10.2.0.200"), connect=False)
    assert isinstance(found, FibResult) and found.prefsrc == A("10.1.0.1")
    assert select_source(ns, "d0", A("10.2.0.254")) == A("10.2.0.1")


def test_link_scope_addresses_are_skipped_for_global_routes() -> None:
    ns = Namespace(
        name="t",
        kind="pod",
        owner="t",
        links=(LO, Link(2, "d0", "device", "02:00:00:00:00:02", 1500)),
        addresses=(
            LO_ADDRESS,
            Address("d0", IPv4Interface("169.254.5.5/16"), scope="link"),
            Address("d0", IPv4Interface("10.3.0.1/31")),
        ),
    )
    assert select_source(ns, "d0", None, "link") == A("169.254.5.5")
    assert select_source(ns, "d0", None, "global") == A("10.3.0.1")


def test_borrowing_skips_link_scope_addresses_and_localnet_counts_only_on_the_device() -> None:
    # Measured on 6.18: with only 169.254.5.5/16 (scope link) on d0, `ip route get 8.8.8.8 oif d1`
    # (d1 has no address) prints no source; 127.0.0.9/8 on d3 sources it only with
    # d3.route_localnet = 1.
    links = (
        LO,
        Link(2, "d0", "device", "02:00:00:00:00:02", 1500),
        Link(3, "d1", "device", "02:00:00:00:00:03", 1500),
        Link(4, "d3", "device", "02:00:00:00:00:04", 1500),
    )
    ns = Namespace(
        name="t",
        kind="pod",
        owner="t",
        links=links,
        addresses=(
            LO_ADDRESS,
            Address("d0", IPv4Interface("169.254.5.5/16"), scope="link"),
            Address("d3", IPv4Interface("127.0.0.9/8"), scope="host"),
        ),
    )
    assert ip_route_get(ns, ["8.8.8.8", "oif", "d1"]) == "8.8.8.8 dev d1 uid 0\n    cache\n"
    assert select_source(ns, "d3", None, "link") is None
    localnet = replace(ns, sysctls=(("net.ipv4.conf.d3.route_localnet", "1"),))
    assert select_source(localnet, "d3", None, "link") == A("127.0.0.9")
    assert ip_route_get(localnet, ["8.8.8.8", "oif", "d3"]).startswith(
        "8.8.8.8 dev d3 src 127.0.0.9"
    )


def test_unicast_route_through_lo_is_flagged_local() -> None:
    # Measured on 6.18: `ip route add 10.50.0.0/16 dev lo`; `ip route get 10.50.0.1` ->
    # `10.50.0.1 dev lo src 10.1.0.1 uid 0` / `cache <local>`.
    ns = Namespace(
        name="t",
        kind="pod",
        owner="t",
        links=(LO, Link(2, "d0", "device", "02:00:00:00:00:02", 1500)),
        addresses=(LO_ADDRESS, Address("d0", IPv4Interface("10.1.0.1/24"))),
        routes=(Route(254, N("10.50.0.0/16"), dev="lo", scope="link"),),
    )
    assert (
        ip_route_get(ns, ["10.50.0.1"])
        == "10.50.0.1 dev lo src 10.1.0.1 uid 0\n    cache <local>\n"
    )


# --- §3.2: rp_filter ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("all_mode", "eth0_mode", "passes"),
    [(0, 0, True), (0, 1, False), (0, 2, True), (1, 0, False), (1, 2, True)],
)
def test_rp_filter_measured_matrix(all_mode: int, eth0_mode: int, passes: bool) -> None:
    ns = spec_lab_node(
        (
            ("net.ipv4.conf.all.rp_filter", str(all_mode)),
            ("net.ipv4.conf.eth0.rp_filter", str(eth0_mode)),
        )
    )
    decided = input_route(ns, src=A("10.0.1.23"), dst=A("10.0.1.57"), iif="eth0")
    assert decided.rp_filter is not None
    assert decided.rp_filter.passed is passes
    assert decided.rp_filter.mode == max(all_mode, eth0_mode)
    assert decided.kind == ("forward" if passes else "drop")
    if not passes:
        assert decided.errno == "EINVAL"
        assert decided.reason == (
            f"rp_filter (strict, mode 1 = max(all {all_mode}, eth0 {eth0_mode})): "
            "reverse route to 10.0.1.23 leaves via enia, not eth0"
        )


@pytest.mark.parametrize(
    ("writes", "passes"),
    [
        ((), False),
        ((("net.ipv4.conf.eth0.src_valid_mark", "1"),), True),
        ((("net.ipv4.conf.all.src_valid_mark", "1"),), True),
    ],
)
def test_rp_filter_uses_the_mark_only_with_src_valid_mark(
    writes: tuple[tuple[str, str], ...], passes: bool
) -> None:
    base = spec_lab_node((("net.ipv4.conf.eth0.rp_filter", "1"), *writes))
    ns = replace(
        base,
        links=(*base.links, Link(5, "eth1", "device", "02:00:00:00:01:06", 9001)),
        addresses=(*base.addresses, Address("eth1", IPv4Interface("192.168.1.1/24"))),
        routes=(
            *base.routes,
            Route(
                254,
                N("192.168.1.0/24"),
                dev="eth1",
                proto="kernel",
                scope="link",
                src=A("192.168.1.1"),
            ),
            Route(3, N("192.168.1.61/32"), gateway=A("10.0.1.100"), dev="eth0"),
        ),
        rules=(*base.rules, Rule(1000, table=3, fwmark=0x80, fwmask=0x80)),
    )
    decided = input_route(ns, src=A("192.168.1.61"), dst=A("10.0.1.5"), iif="eth0", mark=0x80)
    assert (decided.kind == "local") is passes
    if not passes:
        assert decided.reason == (
            "rp_filter (strict, mode 1 = max(all 0, eth0 1)): "
            "reverse route to 192.168.1.61 leaves via eth1, not eth0"
        )


def test_rp_filter_loose_drops_on_an_address_less_ingress_device() -> None:
    # §3.2: a pod-side source routed via eth0 arriving on an address-less veth drops in loose
    # mode; with an address on the veth loose passes and strict still drops.
    ns = spec_lab_node((("net.ipv4.conf.enib.rp_filter", "2"),))
    decided = input_route(ns, src=A("203.0.113.10"), dst=A("10.0.1.23"), iif="enib")
    assert decided.kind == "drop" and decided.errno == "EINVAL"
    assert decided.reason is not None and "enib has no IPv4 address" in decided.reason
    with_address = replace(
        ns, addresses=(*ns.addresses, Address("enib", IPv4Interface("169.254.99.1/32")))
    )
    assert (
        input_route(with_address, src=A("203.0.113.10"), dst=A("10.0.1.23"), iif="enib").kind
        == "forward"
    )
    strict = replace(
        with_address, sysctls=(*with_address.sysctls, ("net.ipv4.conf.enib.rp_filter", "1"))
    )
    assert input_route(strict, src=A("203.0.113.10"), dst=A("10.0.1.23"), iif="enib").kind == "drop"


def test_rp_filter_loose_needs_some_route_back() -> None:
    ns = spec_lab_node((("net.ipv4.conf.eth0.rp_filter", "2"),))
    assert input_route(ns, src=A("198.18.0.1"), dst=A("10.0.1.5"), iif="eth0").kind == "local"
    no_default = replace(ns, routes=tuple(r for r in ns.routes if r.dst.prefixlen))
    decided = input_route(no_default, src=A("198.18.0.1"), dst=A("10.0.1.5"), iif="eth0")
    assert decided.kind == "drop"
    assert decided.reason == (
        "rp_filter (loose, mode 2 = max(all 0, eth0 2)): "
        "no route back to 198.18.0.1 (Network is unreachable)"
    )


def test_rp_filter_policy_rules_steer_the_reverse_lookup() -> None:
    # §3.2: a packet from 198.18.0.1 to pod B passes with no route back in main, because the
    # reverse flow has saddr 10.0.1.57 and matches `from 10.0.1.57 lookup 2`.
    base = spec_lab_node((("net.ipv4.conf.eth0.rp_filter", "2"),))
    ns = replace(base, routes=tuple(r for r in base.routes if r.table != 254 or r.dst.prefixlen))
    decided = input_route(ns, src=A("198.18.0.1"), dst=A("10.0.1.57"), iif="eth0")
    assert decided.kind == "forward"
    assert decided.rp_filter is not None and isinstance(decided.rp_filter.reverse, FibResult)
    assert decided.rp_filter.reverse.table == 2


def test_vpc_cni_replies_for_pod_b_need_loose_mode_on_eth0() -> None:
    # vpc-cni.md §2.8: the reverse lookup for pod B's address answers "via eth1"; loose passes.
    ns = vpc_cni_node()
    assert input_route(ns, src=A("8.8.8.8"), dst=A("10.0.2.57"), iif="eth0").kind == "forward"
    strict = vpc_cni_node((("net.ipv4.conf.eth0.rp_filter", "1"),))
    decided = input_route(strict, src=A("8.8.8.8"), dst=A("10.0.2.57"), iif="eth0")
    assert decided.kind == "drop"
    assert decided.reason is not None and "leaves via eth1, not eth0" in decided.reason


def test_forwarded_reverse_lookup_uses_the_egress_device_as_iif() -> None:
    # Measured on 6.18 (the spec says iif = lo): for a forwarded packet the reverse lookup runs
    # with iif = the egress device, so an `iif <egress>` rule steers it; local delivery uses lo.
    base = spec_lab_node((("net.ipv4.conf.all.rp_filter", "1"),))
    ns = replace(
        base,
        routes=(
            *base.routes,
            Route(200, N("203.0.113.0/24"), dev="enia", scope="link"),
            Route(254, N("203.0.113.0/24"), gateway=A("10.0.1.100"), dev="eth0"),
        ),
        rules=(*base.rules, Rule(50, table=200, iif="enib")),
    )
    forwarded = input_route(ns, src=A("203.0.113.9"), dst=A("10.0.1.57"), iif="eth0")
    assert forwarded.kind == "drop"
    assert forwarded.reason is not None and "leaves via enia, not eth0" in forwarded.reason
    delivered = input_route(ns, src=A("203.0.113.9"), dst=A("10.0.1.5"), iif="eth0")
    assert delivered.kind == "local"


def test_forwarding_is_decided_by_the_ingress_device() -> None:
    ns = spec_lab_node((("net.ipv4.conf.enib.forwarding", "0"),))
    decided = input_route(ns, src=A("10.0.1.57"), dst=A("8.8.8.8"), iif="enib")
    assert (decided.kind, decided.errno) == ("drop", "EHOSTUNREACH")
    assert decided.reason == (
        "8.8.8.8 is not local and forwarding is off on enib (net.ipv4.conf.enib.forwarding = 0)"
    )
    assert input_route(ns, src=A("10.0.1.23"), dst=A("10.0.1.57"), iif="enia").kind == "forward"


def test_forwarding_back_out_of_the_ingress_device_is_a_redirect() -> None:
    # Measured on 6.18: `ip route get 10.1.0.77 from 10.1.0.50 iif d0` -> `cache <redirect>`.
    out = ip_route_get(spec_lab_node(), ["10.0.1.77", "from", "10.0.1.50", "iif", "eth0"])
    assert out == "10.0.1.77 from 10.0.1.50 dev eth0\n    cache <redirect> iif eth0\n"
