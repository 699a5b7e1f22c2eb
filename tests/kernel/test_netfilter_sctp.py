"""SCTP: `-p sctp`, `-m sctp --sport/--dport/--chunk-types` as iptables-save prints them, the
`sctp_mt` semantics, and SCTP in conntrack (states, timeouts, `conntrack -L` lines) — measured
on 6.18 (the lab test replays them: test_netfilter_sctp_lab.py)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from eksnet.errors import InputError, NotModelled
from eksnet.kernel.conntrack import (
    SCTP_DATA,
    SCTP_INIT,
    SCTP_INIT_ACK,
    ConntrackTable,
    SctpChunk,
    Tuple,
    conntrack_in,
    conntrack_list_line,
)
from eksnet.kernel.netfilter import NfEnv, NfPacket, parse_ruleset, traverse
from eksnet.kernel.netfilter.ruleset import PortRange, SctpChunkMatch, SctpMatch

A = IPv4Address
NO_LOCAL = NfEnv(addr_type=lambda address, device: "UNICAST")


def sctp_match(options: str) -> SctpMatch:
    ruleset = parse_ruleset(f"*filter\n-A INPUT -p sctp {options}\nCOMMIT\n")
    match = ruleset.rule("filter", "INPUT", 1).matches[1]
    assert isinstance(match, SctpMatch)
    return match


def test_save_forms() -> None:
    """Each printed back this way by iptables-save 1.8.9 [meas]."""
    assert sctp_match("-m sctp --dport 80") == SctpMatch(dport=PortRange(80, 80))
    assert sctp_match("--dport 80") == SctpMatch(dport=PortRange(80, 80))  # implicit -m sctp
    assert sctp_match("-m sctp ! --sport 1000:2000 --dport 80") == SctpMatch(
        sport=PortRange(1000, 2000), sport_invert=True, dport=PortRange(80, 80)
    )
    assert sctp_match("-m sctp --sport 1:65535 --dport 80").sport == PortRange(1, 65535)
    assert sctp_match("-m sctp --chunk-types any INIT,COOKIE_ECHO").chunks == SctpChunkMatch(
        "any", frozenset({1, 10})
    )
    # DATA:Be = B set, e clear (bits: I 0x08, U 0x04, B 0x02, E 0x01)
    assert sctp_match("-m sctp --chunk-types only DATA:Be").chunks == SctpChunkMatch(
        "only", frozenset({0}), ((0, 0x02, 0x03),)
    )
    negated = sctp_match("-m sctp ! --chunk-types any ABORT:T")
    assert negated.chunks_invert and negated.chunks == SctpChunkMatch(
        "any", frozenset({6}), ((6, 1, 1),)
    )
    assert sctp_match("-m sctp --chunk-types any ALL").chunks == SctpChunkMatch(
        "any", frozenset(range(256))
    )
    assert sctp_match("-m sctp --chunk-types all NONE").chunks == SctpChunkMatch("all", frozenset())
    # I_DATA's flags are filed under libxt_sctp's table position (15), not its type: ignored
    quirk = sctp_match("-m sctp --chunk-types any I_DATA:B").chunks
    assert quirk is not None and quirk.types == {64} and quirk.flags == ((15, 2, 2),)
    # kube-proxy writes `-m sctp -p sctp -d <ip> --dport <port>`
    rule = parse_ruleset(
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n"
        '-A KUBE-SERVICES -d 172.20.0.5/32 -p sctp -m comment --comment "ns/s:p cluster IP" '
        "-m sctp --dport 9000 -j KUBE-SVC-X\nCOMMIT\n"
    ).rule("nat", "KUBE-SERVICES", 1)
    assert rule.matches[-1] == SctpMatch(dport=PortRange(9000, 9000))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("-m sctp --dport 80", "requires '-p sctp'"),  # RULE_APPEND failed [meas]
        ("-p udp -m sctp --dport 80", "requires '-p sctp'"),
        ("-p sctp -m sctp --chunk-types bogus INIT", "match type"),
        ("-p sctp -m sctp --chunk-types any INIT:B", "invalid flags"),
        ("-p sctp -m sctp --chunk-types any WHAT", "unknown chunk type"),
        ("-p sctp -m sctp --chunk-types any", "requires an argument"),
        ("-p sctp -m sctp --chunk-types any -j ACCEPT", "requires two args|bad argument"),
        ("-p sctp -m sctp --dport 80 --destination-port 81", "only one"),
        (
            "-p sctp -m sctp --chunk-types any DATA:B,ABORT:T,SHUTDOWN_COMPLETE:T,I_DATA:E,INIT_ACK",
            None,
        ),
    ],
)
def test_what_iptables_refuses(rule: str, message: str | None) -> None:
    text = f"*filter\n-A INPUT {rule}\nCOMMIT\n"
    if message is None:
        parse_ruleset(text)  # four chunk types with flags is the limit, not more
        return
    with pytest.raises(InputError, match=message):
        parse_ruleset(text)


def packet(chunks: tuple[SctpChunk, ...] | None, dport: int = 9100) -> NfPacket:
    first = NfPacket.new_connection(A("10.9.1.2"), A("10.9.2.2"), "sctp", 40000, dport)
    return replace(first, sctp_chunks=chunks)


CHUNK_RULES = """\
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p sctp -m sctp --dport 9100
-A INPUT -p sctp -m sctp --sport 9100
-A INPUT -p sctp -m sctp --chunk-types any INIT
-A INPUT -p sctp -m sctp --chunk-types only INIT
-A INPUT -p sctp -m sctp --chunk-types any INIT_ACK
-A INPUT -p sctp -m sctp --chunk-types any DATA:E
-A INPUT -p sctp -m sctp --chunk-types all DATA:Be
-A INPUT -p sctp -m sctp ! --chunk-types any COOKIE_ECHO,COOKIE_ACK
-A INPUT -p sctp -m multiport --dports 9100,9000
-A INPUT -p sctp -m sctp --chunk-types all INIT,DATA
COMMIT
"""


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ((SCTP_INIT,), [1, 3, 4, 8, 9]),
        ((SCTP_INIT_ACK,), [1, 5, 8, 9]),
        (((10, 0),), [1, 9]),  # COOKIE_ECHO
        ((SCTP_DATA,), [1, 6, 8, 9]),  # DATA with B and E: E set, but not "B set, e clear"
        (((0, 0x02),), [1, 7, 8, 9]),  # DATA with only B: all DATA:Be
        (((0, 0x01), (1, 0)), [1, 3, 6, 8, 9, 10]),  # two chunks (not valid for conntrack)
    ],
)
def test_chunk_types(chunks: tuple[SctpChunk, ...], expected: list[int]) -> None:
    """`match_packet`'s any/all/only over the chunks (the lab checked the same rules' counters
    for INIT, INIT_ACK, COOKIE_ECHO and DATA:BE)."""
    (outcome,) = traverse(parse_ruleset(CHUNK_RULES), "filter", "INPUT", packet(chunks), NO_LOCAL)
    assert [position for _, _, position in outcome.matched()] == expected


def test_unknown_chunks_are_not_modelled_and_other_protocols_never_match() -> None:
    with pytest.raises(NotModelled, match="--chunk-types"):
        traverse(parse_ruleset(CHUNK_RULES), "filter", "INPUT", packet(None), NO_LOCAL)
    udp = NfPacket.new_connection(A("10.9.1.2"), A("10.9.2.2"), "udp", 40000, 9100)
    (outcome,) = traverse(parse_ruleset(CHUNK_RULES), "filter", "INPUT", udp, NO_LOCAL)
    assert outcome.matched() == ()  # -p sctp fails first: no chunk is ever looked at


# --- conntrack ----------------------------------------------------------------------------

ORIGINAL = Tuple(A("10.9.1.2"), A("172.20.0.5"), "sctp", 40000, 9000)


def test_the_handshake_through_conntrack() -> None:
    """[meas, 6.18, through a forwarding namespace] INIT → CLOSED 10 s [UNREPLIED]; INIT_ACK →
    COOKIE_WAIT 3 s; COOKIE_ECHO → COOKIE_ECHOED 3 s; COOKIE_ACK → ESTABLISHED 210 s [ASSURED];
    a DATA chunk keeps the state and refreshes the timeout."""
    table, new = conntrack_in(ConntrackTable(), ORIGINAL, sctp_chunks=(SCTP_INIT,))
    assert new.ctstate == "NEW" and new.entry is not None
    assert (new.entry.sctp_state, new.entry.timeout) == ("CLOSED", 10)
    table = table.confirm(new.entry)
    assert conntrack_list_line(next(iter(table))) == (
        "sctp     132 10 CLOSED src=10.9.1.2 dst=172.20.0.5 sport=40000 dport=9000 [UNREPLIED] "
        "src=172.20.0.5 dst=10.9.1.2 sport=9000 dport=40000 mark=0 use=1"
    )
    states = []
    for tuple_, chunks in (
        (ORIGINAL.inverted(), (SCTP_INIT_ACK,)),
        (ORIGINAL, ((10, 0),)),
        (ORIGINAL.inverted(), ((11, 0),)),
        (ORIGINAL, (SCTP_DATA,)),
    ):
        table, seen = conntrack_in(table, tuple_, sctp_chunks=chunks)
        assert seen.entry is not None
        states.append((seen.ctstate, seen.entry.sctp_state, seen.entry.timeout, seen.entry.assured))
    assert states == [
        ("ESTABLISHED", "COOKIE_WAIT", 3, False),
        ("ESTABLISHED", "COOKIE_ECHOED", 3, False),
        ("ESTABLISHED", "ESTABLISHED", 210, True),
        ("ESTABLISHED", "ESTABLISHED", 210, True),
    ]
    assert "[ASSURED]" in conntrack_list_line(next(iter(table)))


@pytest.mark.parametrize(
    "chunks",
    [
        (SCTP_DATA,),  # DATA alone does not open an association [meas: INVALID, no entry]
        ((6, 0),),  # ABORT
        ((11, 0),),  # COOKIE_ACK
        ((14, 0),),  # SHUTDOWN_COMPLETE
        (SCTP_INIT, SCTP_DATA),  # INIT must be alone
        (),
    ],
)
def test_packets_that_cannot_open_an_association_are_invalid(chunks: tuple[SctpChunk, ...]) -> None:
    table, seen = conntrack_in(ConntrackTable(), ORIGINAL, sctp_chunks=chunks)
    assert (seen.ctstate, seen.entry, len(table)) == ("INVALID", None, 0)


def test_an_init_ack_in_the_original_direction_or_unknown_state_changes() -> None:
    table, new = conntrack_in(ConntrackTable(), ORIGINAL, sctp_chunks=(SCTP_INIT,))
    assert new.entry is not None
    table = table.confirm(new.entry)
    # a retransmitted INIT while CLOSED passes without refreshing the timeout
    aged = table.update(replace(next(iter(table)), timeout=4))
    _, again = conntrack_in(aged, ORIGINAL, sctp_chunks=(SCTP_INIT,))
    assert again.entry is not None and (again.entry.sctp_state, again.entry.timeout) == (
        "CLOSED",
        4,
    )
    # INIT in the reply direction before anything: the table's "IV" for NONE is not reachable;
    # from CLOSED it stays CLOSED
    _, reply_init = conntrack_in(table, ORIGINAL.inverted(), sctp_chunks=(SCTP_INIT,))
    assert reply_init.entry is not None and reply_init.entry.sctp_state == "CLOSED"
    # without chunks: INIT for a new association, DATA for a known one
    _, guessed = conntrack_in(ConntrackTable(), ORIGINAL)
    assert guessed.entry is not None and guessed.entry.sctp_state == "CLOSED"


def test_sctp_through_nat() -> None:
    """kube-proxy's SCTP Service shape: DNAT with a port (ports are SCTP's)."""
    text = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -d 172.20.0.5/32 -p sctp -m sctp --dport 9000 "
        "-j DNAT --to-destination 10.9.2.2:9100\nCOMMIT\n"
    )
    first = NfPacket.new_connection(A("10.9.1.2"), A("172.20.0.5"), "sctp", 40000, 9000)
    assert first.sctp_chunks == (SCTP_INIT,)
    (outcome,) = traverse(parse_ruleset(text), "nat", "PREROUTING", first, NO_LOCAL)
    assert outcome.nat is not None and outcome.nat.describe() == "DNAT to 10.9.2.2:9100"
