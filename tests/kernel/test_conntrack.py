"""Conntrack entries, the conntrack hook, NAT bindings and `conntrack -L` lines (§6)."""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Address
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eksnet.kernel.conntrack import (
    NAT_MANIP,
    ConntrackEntry,
    ConntrackTable,
    CtTimeouts,
    NatRequest,
    TcpState,
    Tuple,
    TupleTaken,
    apply_nat,
    choose_nat_port,
    conntrack_in,
    conntrack_list_line,
    nat_rewrite,
    nat_rewrite_at,
    null_binding,
    related_lookup,
    tcp_flag_class,
)
from eksnet.kernel.hooks import Hook

A = IPv4Address
SYN = frozenset({"SYN"})
SYNACK = frozenset({"SYN", "ACK"})
ACK = frozenset({"ACK"})
FINACK = frozenset({"FIN", "ACK"})


def tcp(src: str, dst: str, sport: int, dport: int) -> Tuple:
    return Tuple(A(src), A(dst), "tcp", sport, dport)


def udp(src: str, dst: str, sport: int, dport: int) -> Tuple:
    return Tuple(A(src), A(dst), "udp", sport, dport)


def echo(src: str, dst: str, ident: int) -> Tuple:
    return Tuple(A(src), A(dst), "icmp", icmp_type=8, icmp_code=0, icmp_id=ident)


def new_entry(tuple_: Tuple, flags: frozenset[str] = SYN) -> ConntrackEntry:
    entry = ConntrackTable().create(tuple_, tcp_flags=flags)
    assert entry is not None
    return entry


# --- tuples ------------------------------------------------------------------------------


def test_inverting_tuples() -> None:
    assert tcp("1.1.1.1", "2.2.2.2", 10, 20).inverted() == tcp("2.2.2.2", "1.1.1.1", 20, 10)
    assert echo("1.1.1.1", "2.2.2.2", 7).inverted() == Tuple(
        A("2.2.2.2"), A("1.1.1.1"), "icmp", icmp_type=0, icmp_code=0, icmp_id=7
    )
    unreachable = Tuple(A("1.1.1.1"), A("2.2.2.2"), "icmp", icmp_type=3, icmp_code=3)
    with pytest.raises(ValueError, match="not a query"):
        unreachable.inverted()
    with pytest.raises(ValueError):
        Tuple(A("1.1.1.1"), A("2.2.2.2"), "udp", 1)
    with pytest.raises(ValueError):
        Tuple(A("1.1.1.1"), A("2.2.2.2"), "icmp", 1, 2, icmp_type=8, icmp_code=0)


def test_nat_request_validation() -> None:
    with pytest.raises(ValueError):
        NatRequest("MASQUERADE", A("1.1.1.1"))
    with pytest.raises(ValueError):
        NatRequest("SNAT")
    with pytest.raises(ValueError):
        NatRequest("DNAT", A("1.1.1.1"), random_fully=True)
    assert NatRequest("DNAT", A("10.0.1.23"), to_ports=(8080, 8080)).describe() == (
        "DNAT to 10.0.1.23:8080"
    )
    assert NatRequest("MASQUERADE", to_ports=(1000, 2000), random=True).describe() == (
        "MASQUERADE to ports 1000-2000 random"
    )


# --- the conntrack hook --------------------------------------------------------------------


def test_tcp_lifecycle_as_measured() -> None:
    """§6.8: NEW SYN_SENT 120 → SYN_RECV 60 → ESTABLISHED 432000 [ASSURED] → FIN_WAIT 120 →
    LAST_ACK 30 → TIME_WAIT 120."""
    client = tcp("10.0.1.23", "10.0.1.57", 41684, 8080)
    server = client.inverted()
    table = ConntrackTable()
    table, seen = conntrack_in(table, client, tcp_flags=SYN)
    assert (seen.ctstate, seen.direction, seen.confirmed) == ("NEW", "ORIGINAL", False)
    assert len(table) == 0  # not confirmed yet
    assert seen.entry is not None
    table = table.confirm(seen.entry)
    entry = next(iter(table))
    assert (entry.tcp_state, entry.timeout, entry.confirmed) == ("SYN_SENT", 120, True)
    history = []
    for tuple_, flags in ((server, SYNACK), (client, ACK), (client, FINACK), (server, FINACK),
                          (client, ACK)):  # fmt: skip
        table, seen = conntrack_in(table, tuple_, tcp_flags=flags)
        assert seen.entry is not None
        history.append((seen.ctstate, seen.entry.tcp_state, seen.entry.timeout, seen.entry.assured))
    assert history == [
        ("ESTABLISHED", "SYN_RECV", 60, False),
        ("ESTABLISHED", "ESTABLISHED", 432000, True),
        ("ESTABLISHED", "FIN_WAIT", 120, True),
        ("ESTABLISHED", "LAST_ACK", 30, True),
        ("ESTABLISHED", "TIME_WAIT", 120, True),
    ]
    assert next(iter(table)).seen_reply


def test_tcp_invalid_and_picked_up_segments() -> None:
    table = ConntrackTable()
    _, seen = conntrack_in(table, tcp("1.1.1.1", "2.2.2.2", 1, 2), tcp_flags=frozenset({"RST"}))
    assert (seen.ctstate, seen.entry) == ("INVALID", None)
    _, seen = conntrack_in(table, tcp("1.1.1.1", "2.2.2.2", 1, 2), tcp_flags=ACK)
    assert seen.entry is not None and seen.entry.tcp_state == "ESTABLISHED"  # tcp_loose=1
    table = table.confirm(new_entry(tcp("1.1.1.1", "2.2.2.2", 1, 2)))
    _, seen = conntrack_in(table, tcp("1.1.1.1", "2.2.2.2", 1, 2), tcp_flags=ACK)
    assert seen.ctstate == "INVALID"  # an ACK before any SYN-ACK
    assert tcp_flag_class(frozenset({"SYN", "RST"})) == "rst"


def test_udp_becomes_assured_after_two_seconds_of_replies() -> None:
    """§6.2 [meas]: 29 → 29 → 119 [ASSURED] after ~2.6 s."""
    request = udp("10.0.1.23", "10.0.1.57", 40000, 53)
    table, seen = conntrack_in(ConntrackTable(), request)
    assert seen.entry is not None
    table = table.confirm(seen.entry)
    table, seen = conntrack_in(table, request.inverted(), elapsed=0.1)
    assert seen.entry is not None
    assert (seen.ctstate, seen.entry.timeout, seen.entry.assured) == ("ESTABLISHED", 30, False)
    table, seen = conntrack_in(table, request, elapsed=2.6)
    assert seen.entry is not None
    assert (seen.ctstate, seen.entry.timeout, seen.entry.assured) == ("ESTABLISHED", 120, True)
    custom = CtTimeouts(udp=10)
    _, seen = conntrack_in(ConntrackTable(), request, timeouts=custom)
    assert seen.entry is not None and seen.entry.timeout == 10


def test_icmp_answer_without_query_is_invalid_and_errors_are_related() -> None:
    _, seen = conntrack_in(ConntrackTable(), echo("1.1.1.1", "2.2.2.2", 5).inverted())
    assert seen.ctstate == "INVALID"
    flow = udp("10.0.1.23", "172.20.0.54", 40002, 53)
    entry = apply_nat(new_entry(flow), NatRequest("DNAT", A("10.0.1.57")), A("10.0.1.57"), 5353)
    table = ConntrackTable().confirm(entry)
    # pod B's port unreachable embeds the packet it got: 10.0.1.23:40002 > 10.0.1.57:5353
    found = related_lookup(table, udp("10.0.1.23", "10.0.1.57", 40002, 5353))
    assert found is not None
    assert found[1] == "REPLY"


def test_confirm_clash_and_update() -> None:
    entry = new_entry(tcp("1.1.1.1", "2.2.2.2", 1, 2))
    table = ConntrackTable().confirm(entry)
    with pytest.raises(TupleTaken):
        table.confirm(new_entry(tcp("2.2.2.2", "1.1.1.1", 2, 1)))
    with pytest.raises(ValueError):
        table.create(entry.original)
    marked = table.update(entry.with_mark(0x80))
    assert next(iter(marked)).mark == 0x80
    assert len(marked.remove(entry)) == 0


# --- NAT ---------------------------------------------------------------------------------


def test_hairpin_dnat_and_masquerade_render_like_conntrack_events() -> None:
    """§6.4/§9.3 [meas]: the NEW event of a hairpinned connection."""
    entry = new_entry(tcp("10.0.1.23", "172.20.0.10", 49554, 80))
    dnat = NatRequest("DNAT", A("10.0.1.23"), to_ports=(8080, 8080))
    entry = apply_nat(entry, dnat, A("10.0.1.23"), 8080)
    assert entry.nat_done("DST") and not entry.nat_done("SRC")
    entry = apply_nat(entry, NatRequest("MASQUERADE", random_fully=True), A("10.0.1.5"), 3406)
    assert entry.snat and entry.dnat
    assert conntrack_list_line(entry) == (
        "tcp      6 120 SYN_SENT src=10.0.1.23 dst=172.20.0.10 sport=49554 dport=80 [UNREPLIED] "
        "src=10.0.1.23 dst=10.0.1.5 sport=8080 dport=3406 mark=0 use=1"
    )
    with pytest.raises(ValueError, match="already set up"):
        apply_nat(entry, dnat, A("10.0.1.23"), 8080)
    confirmed = ConntrackTable().confirm(entry)
    with pytest.raises(ValueError, match="unconfirmed"):
        apply_nat(next(iter(confirmed)), dnat, A("10.0.1.1"), None)


@pytest.mark.parametrize(
    "line",
    [
        # §6.7 [meas], reproduced from entries
        "tcp      6 118 TIME_WAIT src=10.0.1.23 dst=172.20.0.10 sport=49542 dport=80 src=10.0.1.57 "
        "dst=10.0.1.23 sport=8080 dport=49542 [ASSURED] mark=0 use=1",
        "tcp      6 118 TIME_WAIT src=10.0.1.23 dst=203.0.113.10 sport=52450 dport=80 "
        "src=203.0.113.10 dst=10.0.1.5 sport=80 dport=47454 [ASSURED] mark=128 use=1",
        "udp      17 28 src=10.0.1.23 dst=203.0.113.10 sport=40001 dport=9999 [UNREPLIED] "
        "src=203.0.113.10 dst=10.0.1.5 sport=9999 dport=22738 mark=128 use=1",
        "tcp      6 117 SYN_SENT src=10.0.1.23 dst=203.0.113.10 sport=36976 dport=80 [UNREPLIED] "
        "src=203.0.113.10 dst=10.0.1.5 sport=80 dport=44347 mark=0 zone=7 use=1",
        "icmp     1 29 src=10.0.1.23 dst=203.0.113.10 type=8 code=0 id=19396 src=203.0.113.10 "
        "dst=10.0.1.5 type=0 code=0 id=11161 mark=128 use=1",
    ],
)
def test_conntrack_list_lines(line: str) -> None:
    words = line.split()
    proto, timeout = words[0], int(words[2])
    fields = [w for w in words if "=" in w]
    orig = dict(f.split("=") for f in fields[: len(fields) // 2 - 1])
    reply = dict(f.split("=") for f in fields[len(fields) // 2 - 1 : -2 - ("zone=7" in line)])
    if proto == "icmp":
        original = echo(orig["src"], orig["dst"], int(orig["id"]))
        new_source = (A(reply["dst"]), int(reply["id"]))
    else:
        maker = tcp if proto == "tcp" else udp
        original = maker(orig["src"], orig["dst"], int(orig["sport"]), int(orig["dport"]))
        new_source = (A(reply["dst"]), int(reply["dport"]))
    entry = ConntrackTable().create(original, tcp_flags=SYN, zone=7 if "zone=7" in line else 0)
    assert entry is not None
    if A(reply["src"]) != original.dst:
        entry = apply_nat(entry, NatRequest("DNAT", A(reply["src"])), A(reply["src"]),
                          int(reply["sport"]))  # fmt: skip
    if new_source != (original.src, original.source_port):
        entry = apply_nat(entry, NatRequest("SNAT", new_source[0]), *new_source)
    state = cast(TcpState, words[3]) if proto == "tcp" else None
    status = set(entry.status)
    if "[UNREPLIED]" not in line:
        status.add("SEEN_REPLY")
    if "[ASSURED]" in line:
        status.add("ASSURED")
    mark = int(line.split("mark=")[1].split()[0])
    entry = replace(entry, timeout=timeout, tcp_state=state, status=frozenset(status), mark=mark)
    assert conntrack_list_line(entry) == line


def test_nat_rewrites_per_hook() -> None:
    """§1.4: DNAT rewrites the destination at PREROUTING/OUTPUT and the reply's source at
    POSTROUTING/INPUT; SNAT the source at POSTROUTING and the reply's destination at
    PREROUTING; FORWARD changes nothing."""
    flow = tcp("10.0.1.23", "172.20.0.10", 41000, 80)
    entry = apply_nat(new_entry(flow), NatRequest("DNAT", A("10.0.1.57")), A("10.0.1.57"), 8080)
    entry = apply_nat(entry, NatRequest("SNAT", A("10.0.1.5")), A("10.0.1.5"), 5000)
    at_pre = nat_rewrite_at(Hook.PREROUTING, flow, entry, "ORIGINAL")
    assert at_pre == tcp("10.0.1.23", "10.0.1.57", 41000, 8080)
    assert nat_rewrite_at(Hook.FORWARD, at_pre, entry, "ORIGINAL") == at_pre
    at_post = nat_rewrite_at(Hook.POSTROUTING, at_pre, entry, "ORIGINAL")
    assert at_post == tcp("10.0.1.5", "10.0.1.57", 5000, 8080) == entry.reply.inverted()
    reply = entry.reply
    assert nat_rewrite_at(Hook.PREROUTING, reply, entry, "REPLY") == tcp(
        "10.0.1.57", "10.0.1.23", 8080, 41000
    )
    back = nat_rewrite_at(
        Hook.POSTROUTING, nat_rewrite_at(Hook.PREROUTING, reply, entry, "REPLY"), entry, "REPLY"
    )
    assert back == flow.inverted()
    assert NAT_MANIP[Hook.INPUT] == "SRC" and Hook.FORWARD not in NAT_MANIP


def test_icmp_ids_are_rewritten_both_ways() -> None:
    query = echo("10.0.1.23", "203.0.113.10", 19396)
    entry = apply_nat(new_entry(query), NatRequest("SNAT", A("10.0.1.5")), A("10.0.1.5"), 11161)
    out = nat_rewrite(query, entry, "ORIGINAL", "SRC")
    assert (out.src, out.icmp_id) == (A("10.0.1.5"), 11161)
    back = nat_rewrite(entry.reply, entry, "REPLY", "DST")
    assert (back.dst, back.icmp_id, back.icmp_type) == (A("10.0.1.23"), 19396, 0)


def test_null_binding_is_recorded_once() -> None:
    entry = null_binding(new_entry(tcp("1.1.1.1", "2.2.2.2", 1, 2)), "SRC")
    assert entry.nat_done("SRC") and not entry.snat
    assert null_binding(entry, "SRC") is entry
    assert nat_rewrite(entry.original, entry, "ORIGINAL", "SRC") == entry.original


def fixed(*ports: int):  # type: ignore[no-untyped-def]
    queue = list(ports)

    def chooser(low: int, high: int) -> int:
        return queue.pop(0)

    return chooser


def test_port_choice() -> None:
    first = new_entry(udp("10.0.1.23", "203.0.113.10", 45000, 53))
    snat = NatRequest("SNAT", A("10.0.1.5"))
    # the original port is kept when free and no random flag is given
    assert choose_nat_port(ConntrackTable(), first, snat, A("10.0.1.5"), fixed()) == 45000
    table = ConntrackTable().confirm(apply_nat(first, snat, A("10.0.1.5"), 45000))
    # another pod with the same source port clashes and gets a port from the chooser
    second = new_entry(udp("10.0.1.57", "203.0.113.10", 45000, 53))
    assert choose_nat_port(table, second, snat, A("10.0.1.5"), fixed(45000, 46967)) == 46967
    # --random-fully never keeps the port
    fully = NatRequest("SNAT", A("10.0.1.5"), random_fully=True)
    assert choose_nat_port(ConntrackTable(), first, fully, A("10.0.1.5"), fixed(3406)) == 3406
    # ports below 1024 stay in their class
    seen: list[tuple[int, int]] = []

    def record(low: int, high: int) -> int:
        seen.append((low, high))
        return low

    low = new_entry(udp("10.0.1.23", "203.0.113.10", 700, 53))
    choose_nat_port(ConntrackTable(), low, fully, A("10.0.1.5"), record)
    assert seen == [(600, 1023)]
    dnat = NatRequest("DNAT", A("10.0.1.57"))
    assert choose_nat_port(ConntrackTable(), first, dnat, A("10.0.1.57"), fixed()) is None
    with pytest.raises(ValueError, match="outside"):
        choose_nat_port(ConntrackTable(), first, fully, A("10.0.1.5"), fixed(80))
    with pytest.raises(ValueError, match="no free port"):
        choose_nat_port(table, second, snat, A("10.0.1.5"), fixed(45000, 45000), attempts=2)


addresses = st.integers(0x0A000001, 0x0A0000FE).map(IPv4Address)
ports = st.integers(1, 65535)


@given(addresses, addresses, ports, ports, addresses, ports, addresses, ports, st.booleans(),
       st.booleans())  # fmt: skip
def test_bindings_round_trip(
    src: IPv4Address,
    dst: IPv4Address,
    sport: int,
    dport: int,
    to_dst: IPv4Address,
    to_dport: int,
    to_src: IPv4Address,
    to_sport: int,
    dnat: bool,
    snat: bool,
) -> None:
    """Whatever the bindings, original packets end as the inverse of the reply tuple and
    replies as the inverse of the original, each hook rewriting only its side."""
    flow = udp(str(src), str(dst), sport, dport)
    entry = new_entry(flow)
    if dnat:
        entry = apply_nat(entry, NatRequest("DNAT", to_dst), to_dst, to_dport)
    if snat:
        entry = apply_nat(entry, NatRequest("SNAT", to_src), to_src, to_sport)
    forward = nat_rewrite(nat_rewrite(flow, entry, "ORIGINAL", "DST"), entry, "ORIGINAL", "SRC")
    assert forward == entry.reply.inverted()
    back = nat_rewrite(nat_rewrite(entry.reply, entry, "REPLY", "DST"), entry, "REPLY", "SRC")
    assert back == flow.inverted()


@given(st.randoms(use_true_random=False))
def test_seeded_chooser_is_reproducible(rng: random.Random) -> None:
    entry = new_entry(udp("10.0.1.23", "203.0.113.10", 40000, 53))
    fully = NatRequest("SNAT", A("10.0.1.5"), random_fully=True)
    seed = rng.random()
    one = choose_nat_port(
        ConntrackTable(), entry, fully, A("10.0.1.5"), random.Random(seed).randint
    )
    two = choose_nat_port(
        ConntrackTable(), entry, fully, A("10.0.1.5"), random.Random(seed).randint
    )
    assert one == two
    assert one is not None and 1024 <= one <= 65535
