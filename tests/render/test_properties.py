"""Properties the views keep for any state, not just the measured ones."""

from __future__ import annotations

from ipaddress import IPv4Network
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from eksnet.dataplane.state import DEFAULT_RULES, TABLE_MAIN, Iptables, Namespace, Route, Rule
from eksnet.render.linux import ip_route, ip_rule, iptables_save
from eksnet.render.linux.addrconf import eui64_link_local

from .fixtures import loopback

networks = st.builds(
    lambda address, length: IPv4Network((address, length), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
routes = st.lists(
    st.builds(
        lambda dst, metric: Route(TABLE_MAIN, dst, type="blackhole", metric=metric),
        networks,
        st.sampled_from([None, 5, 100]),
    ),
    unique_by=lambda route: (route.dst, route.metric or 0),
    max_size=12,
)


def namespace(**fields: object) -> Namespace:
    return Namespace("p", "node", "p", (loopback(),), **fields)  # type: ignore[arg-type]


@given(routes, st.randoms())
def test_route_order_does_not_depend_on_insertion_order(table: list[Route], random: Random) -> None:
    shuffled = list(table)
    random.shuffle(shuffled)
    assert ip_route(namespace(routes=tuple(table))) == ip_route(namespace(routes=tuple(shuffled)))


@given(routes)
def test_one_line_per_route(table: list[Route]) -> None:
    assert len(ip_route(namespace(routes=tuple(table))).splitlines()) == len(table)


rules = st.lists(
    st.builds(
        lambda priority, table, mark: Rule(priority, table=table, fwmark=mark),
        st.integers(1, 32765),
        st.integers(1, 2**32 - 1),
        st.sampled_from([None, 0, 0x80, 0x4000]),
    ),
    max_size=10,
)


@given(rules)
def test_rules_print_by_priority_with_a_tab(extra: list[Rule]) -> None:
    lines = ip_rule(namespace(rules=(*DEFAULT_RULES, *extra))).splitlines()
    priorities = [int(line.split(":\t", 1)[0]) for line in lines]
    assert priorities == sorted(priorities)
    assert len(lines) == len(extra) + len(DEFAULT_RULES)


chain_names = st.text(alphabet="ABCXYZ-_0123456789", min_size=1, max_size=8).filter(
    # iptables refuses chain names that start with "-" (they read as options)
    lambda name: name not in ("INPUT", "OUTPUT", "FORWARD") and not name.startswith("-")
)


@given(st.lists(st.tuples(chain_names, st.sampled_from(["-j RETURN", "-j ACCEPT"])), max_size=8))
def test_nft_save_is_a_fixpoint_of_restore(rules_in: list[tuple[str, str]]) -> None:
    """Restoring what `iptables-save` printed and saving again prints the same (nf_tables)."""
    chains = sorted({chain for chain, _ in rules_in})
    text = "*filter\n" + "".join(f":{c} - [0:0]\n" for c in chains)
    text += "".join(f"-A {c} {rule}\n" for c, rule in rules_in) + "COMMIT\n"
    once = iptables_save(namespace(iptables=Iptables("nft", text)))
    assert iptables_save(namespace(iptables=Iptables("nft", once))) == once


@given(st.lists(st.integers(0, 255), min_size=6, max_size=6))
def test_eui64_keeps_the_mac_with_the_local_bit_flipped(octets: list[int]) -> None:
    mac = ":".join(f"{octet:02x}" for octet in octets)
    identifier = eui64_link_local(mac).ip.packed[8:]
    assert identifier[3:5] == b"\xff\xfe"
    assert [identifier[0] ^ 0x02, *identifier[1:3], *identifier[5:]] == octets
