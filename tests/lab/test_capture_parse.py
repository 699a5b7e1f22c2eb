"""Parsing the kernel's tools into the walk vocabulary (pure, on measured sample lines)."""

from __future__ import annotations

from ipaddress import IPv4Address

from eksnet.lab.capture import (
    CaptureTarget,
    observations,
    parse_conntrack,
    parse_route_get,
    parse_tcpdump,
)

TCPDUMP = """\
1764489600.072790 a6:eb:d1:7b:97:24 > aa:98:ac:1d:83:3e, ethertype IPv4 (0x0800), length 74: (tos 0x0, ttl 64, id 60089, offset 0, flags [DF], proto TCP (6), length 60)
    10.0.1.23.41684 > 10.0.1.57.8080: Flags [S], cksum 0x1c2b (incorrect -> 0x8d2f), seq 1509398815, win 64240, length 0
1764489600.072801 aa:98:ac:1d:83:3e > a6:eb:d1:7b:97:24, ethertype IPv4 (0x0800), length 74: (tos 0x0, ttl 63, id 0, offset 0, flags [DF], proto TCP (6), length 60)
    10.0.1.57.8080 > 10.0.1.23.41684: Flags [S.], cksum 0x1c2b, seq 696890911, ack 1509398816, win 65160, length 0
1764489600.176809 a6:eb:d1:7b:97:24 > aa:98:ac:1d:83:3e, ethertype IPv4 (0x0800), length 98: (tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto ICMP (1), length 84)
    10.0.1.23 > 10.0.1.57: ICMP echo request, id 16208, seq 1, length 64
1764489600.268046 a6:eb:d1:7b:97:24 > aa:98:ac:1d:83:3e, ethertype IPv4 (0x0800), length 47: (tos 0x0, ttl 64, id 2, offset 0, flags [DF], proto UDP (17), length 33)
    10.0.1.23.40011 > 10.0.1.57.53: 0 [0q] (5)
"""


def test_tcpdump_frames_become_packets() -> None:
    frames = parse_tcpdump(TCPDUMP)
    packets = [f.packet for f in frames]
    assert all(packets)
    assert [p.proto for p in packets if p] == ["tcp", "tcp", "icmp", "udp"]
    syn, synack, ping, dns = (p for p in packets if p)
    assert (syn.src, syn.sport, syn.dst, syn.dport) == (
        IPv4Address("10.0.1.23"),
        41684,
        IPv4Address("10.0.1.57"),
        8080,
    )
    assert (syn.src_mac, syn.dst_mac, syn.tcp_flags, syn.ttl) == (
        "a6:eb:d1:7b:97:24",
        "aa:98:ac:1d:83:3e",
        "S",
        64,
    )
    assert synack.tcp_flags == "S." and synack.ttl == 63
    assert ping.sport is None and (ping.icmp_type, ping.icmp_id) == (8, 16208)
    assert dns.dport == 53  # decoded as DNS by tcpdump: keyed on addresses, not on "UDP"


def test_direction_comes_from_the_interface_mac() -> None:
    target = CaptureTarget("pod-a", "eksnet-x-pod-a", "eth0", "a6:eb:d1:7b:97:24")
    directions = [o.direction for o in observations(target, parse_tcpdump(TCPDUMP))]
    assert directions == ["out", "in", "out", "out"]


def test_route_get_forms() -> None:
    got = parse_route_get(
        "8.8.8.8 from 10.0.1.57 via 10.0.1.100 dev eth0 table 2\n    cache iif enib\n"
    )
    assert (got.type, got.dev, got.via, got.table) == ("unicast", "eth0", "10.0.1.100", "2")
    local = parse_route_get("local 10.0.1.5 dev lo table local src 10.0.1.5 uid 0\n    cache\n")
    assert (local.type, local.dev, local.table) == ("local", "lo", "local")
    main = parse_route_get("10.0.1.23 dev enia src 10.0.1.5 uid 0\n    cache\n")
    assert main.table == "main" and main.via is None
    error = parse_route_get("", "RTNETLINK answers: Invalid argument\n")
    assert error.error == "RTNETLINK answers: Invalid argument"


def test_conntrack_lines() -> None:
    (entry,) = parse_conntrack(
        "tcp      6 118 TIME_WAIT src=10.0.1.23 dst=203.0.113.10 sport=52450 dport=80 "
        "src=203.0.113.10 dst=10.0.1.5 sport=80 dport=47454 [ASSURED] mark=128 use=1\n"
    )
    assert entry.proto == "tcp" and entry.mark == 128
    assert dict(entry.original)["dst"] == "203.0.113.10"
    assert dict(entry.reply) == {
        "src": "203.0.113.10",
        "dst": "10.0.1.5",
        "sport": "80",
        "dport": "47454",
    }


ICMP_ERROR = """\
1796287455.508148 a2:72:54:36:89:34 > 5a:94:47:80:45:e2, ethertype IPv4 (0x0800), length 43: (tos 0x0, ttl 64, id 16887, offset 0, flags [DF], proto UDP (17), length 29)
    10.0.0.1.55411 > 10.0.0.2.9: UDP, length 1
1796287455.508485 5a:94:47:80:45:e2 > a2:72:54:36:89:34, ethertype IPv4 (0x0800), length 71: (tos 0xc0, ttl 64, id 53910, offset 0, flags [none], proto ICMP (1), length 57)
    10.0.0.2 > 10.0.0.1: ICMP 10.0.0.2 udp port 9 unreachable, length 37
\t(tos 0x0, ttl 64, id 16887, offset 0, flags [DF], proto UDP (17), length 29)
    10.0.0.1.55411 > 10.0.0.2.9: UDP, length 1
"""
"""Measured (tcpdump 4.99.3 here): a datagram to a closed port and the kernel's ICMP error, whose
quoted header is a tab-indented line followed by a body line like any other."""


def test_an_icmp_error_quotes_the_datagram_it_answers() -> None:
    """The kernel's own error (no REJECT rule: a closed UDP port) is a packet too."""
    datagram, error = parse_tcpdump(ICMP_ERROR)
    assert datagram.packet is not None and datagram.packet.dport == 9
    assert error.text == "10.0.0.2 > 10.0.0.1: ICMP 10.0.0.2 udp port 9 unreachable, length 37"
    assert error.packet is not None and error.packet.quoted is not None
    assert (error.packet.icmp_code, error.packet.quoted.sport) == (3, 55411)


def test_a_frame_no_walk_carries_is_kept_without_a_packet() -> None:
    """An IPv4 frame of a protocol walks do not carry is still a frame the kernel sent."""
    other = ICMP_ERROR.replace("proto UDP (17)", "proto GRE (47)", 1)
    frame = parse_tcpdump(other)[0]
    assert frame.packet is None and frame.text.startswith("10.0.0.1.55411 > 10.0.0.2.9")


def test_conntrack_events_and_states() -> None:
    from eksnet.lab.capture import parse_conntrack_events

    text = (
        "[1796286409.970585]\t    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=41000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=41000 mark=128\n"
        "[1796286409.970663]\t [UPDATE] tcp      6 60 SYN_RECV src=10.0.0.1 dst=10.0.0.2 sport=41000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=41000 mark=128\n"
        "[1796286853.178547]\t[DESTROY] udp      17 9 src=127.0.0.9 dst=127.0.0.9 sport=9 dport=9 src=127.0.0.9 dst=127.0.0.9 sport=9 dport=9 [USERSPACE] portid=2712013975 progname=conntrack\n"
    )
    new, update, destroy = parse_conntrack_events(text)
    assert (new.kind, new.entry.state, new.entry.flags, new.entry.mark) == (
        "NEW",
        "SYN_SENT",
        frozenset({"UNREPLIED"}),
        128,
    )
    assert (update.kind, update.entry.state, update.entry.flags) == (
        "UPDATE",
        "SYN_RECV",
        frozenset(),
    )
    assert new.timestamp == 1796286409.970585 and not new.userspace
    assert destroy.userspace


def test_netstat_counters() -> None:
    from eksnet.lab.capture import parse_netstat

    text = (
        "TcpExt: SyncookiesSent IPReversePathFilter\nTcpExt: 0 1\n"
        "Ip: Forwarding InReceives\nIp: 1 12\n"
    )
    assert parse_netstat(text) == {
        "TcpExt:SyncookiesSent": 0,
        "TcpExt:IPReversePathFilter": 1,
        "Ip:Forwarding": 1,
        "Ip:InReceives": 12,
    }


REJECTED = """\
1796291874.892956 0e:fa:0b:16:a5:bc > ea:57:24:d5:23:21, ethertype IPv4 (0x0800), length 102: (tos 0xc0, ttl 64, id 38736, offset 0, flags [none], proto ICMP (1), length 88)
    10.0.0.2 > 10.0.0.1: ICMP 10.0.0.2 tcp port 1003 unreachable, length 68
\t(tos 0x0, ttl 64, id 7275, offset 0, flags [DF], proto TCP (6), length 60)
    10.0.0.1.56802 > 10.0.0.2.1003: Flags [S], cksum 0x1431 (incorrect -> 0x96fe), seq 2003586848, win 64240, options [mss 1460,sackOK,TS val 4002876185 ecr 0,nop,wscale 10], length 0
1796291875.989099 0e:fa:0b:16:a5:bc > ea:57:24:d5:23:21, ethertype IPv4 (0x0800), length 54: (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto TCP (6), length 40)
    10.0.0.2.1008 > 10.0.0.1.38734: Flags [R.], cksum 0x141d (incorrect -> 0x32be), seq 0, ack 3549887034, win 0, length 0
"""
"""Measured (tcpdump 4.99.3, kernel 6.18): `REJECT --reject-with icmp-port-unreachable` and
`--reject-with tcp-reset` answering a SYN."""


def test_a_reject_answer_is_a_packet_quoting_what_it_answers() -> None:
    unreachable, reset = (frame.packet for frame in parse_tcpdump(REJECTED))
    assert unreachable is not None and reset is not None
    assert (unreachable.icmp_type, unreachable.icmp_code) == (3, 3)
    assert unreachable.quoted is not None
    assert (
        str(unreachable.quoted.dst),
        unreachable.quoted.dport,
        unreachable.quoted.tcp_flags,
    ) == (
        "10.0.0.2",
        1003,
        "S",
    )
    assert (reset.sport, reset.tcp_flags) == (1008, "R.")
