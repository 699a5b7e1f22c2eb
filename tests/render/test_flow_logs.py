"""VPC flow-log records of walks, against vpc-fabric.md §6 and talk-walks.md.

Two kinds of test. Hand-built walks (a few `flow-log` steps, a small `VpcState`) test the
records alone against the specs' worked examples: the FL-EX NAT gateway and transit gateway
tables and the derived EKS cases of §6.4 (addresses of §7.13), the default-format record of
§6.6, the tcp-flags of §6.5. Walks the engine takes on the demo test that the walk's ENIs write
what talk-walks.md shows (W4, W10), and the flow-log shape of the NAT gateway variant.
Expected values are the specs' (and, for `bytes`, the lengths of what the lab's sender and
Linux put on the wire: `lab/agent.py`); ports a NAT chose are variables, read once and then
required everywhere.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

import pytest
from tests.entry_point import eksnet_command

from eksnet.controllers import build_state
from eksnet.dataplane.flow_log_format import DEFAULT_FORMAT, FIELDS, parse_format
from eksnet.dataplane.state import DataplaneState, Eni, Subnet, VpcState
from eksnet.errors import InputError, NotModelled
from eksnet.model import load_cluster
from eksnet.render.flow_logs import leaves, records, text
from eksnet.walk.engine import walk
from eksnet.walk.model import (
    Direction,
    Disposition,
    Endpoint,
    EniTraffic,
    Flow,
    FlowLogAction,
    Hop,
    Packet,
    Step,
    Walk,
    Where,
)

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
POD_71 = "pod/default/app1-5f7d9c6b8-w7r2n"
NODE_1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
WEB = "ip/198.51.100.20"
FIELDS_SHOWN = (
    "${interface-id} ${flow-direction} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${pkt-srcaddr} ${pkt-dstaddr} ${instance-id} ${action} ${tcp-flags} ${traffic-path}"
)
ADDRESSES = "${interface-id} ${flow-direction} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr}"


# --- hand-built walks -------------------------------------------------------------------------


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def subnet(name: str, cidr: str, az_id: str | None = "use1-az1") -> Subnet:
    return Subnet(name, IPv4Network(cidr), "us-east-1a", "02:00:00:00:00:01", "rtb-1", az_id=az_id)


def eni(
    eni_id: str,
    subnet_name: str,
    primary: str,
    *,
    instance: str | None = None,
    secondary: tuple[str, ...] = (),
    nat: bool = False,
) -> Eni:
    return Eni(
        eni_id,
        subnet_name,
        "02:00:00:00:00:02",
        ip(primary),
        secondary_ips=tuple(ip(address) for address in secondary),
        interface_type="nat_gateway" if nat else "interface",
        instance_id=instance,
    )


def vpc(*enis: Eni, subnets: tuple[Subnet, ...]) -> VpcState:
    return VpcState(
        "vpc-0e5c0000000000001",
        (IPv4Network("10.0.0.0/8"),),
        subnets,
        enis,
        account_id="111122223333",
        region="us-east-1",
    )


def tcp(src: str, sport: int, dst: str, dport: int, flags: str = "S") -> Packet:
    return Packet(ip(src), ip(dst), "tcp", sport, dport, tcp_flags=flags)


def echo(src: str, dst: str, icmp_type: int = 8) -> Packet:
    return Packet(ip(src), ip(dst), "icmp", icmp_type=icmp_type, icmp_id=7)


def at(
    eni_id: str,
    direction: Literal["ingress", "egress"],
    packet: Packet,
    action: FlowLogAction = "ACCEPT",
) -> EniTraffic:
    """What the engine's `flow-log` step says: `eni_id` saw `packet` (path 1 on egress)."""
    return EniTraffic(eni_id, direction, packet, action, 1 if direction == "egress" else None)


def _way(direction: Direction, flow: Flow, seen: Sequence[EniTraffic]) -> Walk:
    where = Where("vpc", "vpc-0e5c0000000000001")
    steps = tuple(Step("flow-log", f"flow log of {item.eni}", seen_by=item) for item in seen)
    hop = Hop(where, None, None, steps, None, None)
    return Walk(flow, direction, (hop,), Disposition("delivered", where, "delivered"))


def hand_walk(forward: Sequence[EniTraffic], back: Sequence[EniTraffic] = ()) -> Walk:
    """A walk whose VPC hop has these `flow-log` steps (and a reply whose hop has `back`)."""
    first = forward[0].packet
    flow = Flow(
        Endpoint("ip", str(first.src), first.src),
        Endpoint("ip", str(first.dst), first.dst),
        first.proto,
        first.sport,
        first.dport,
    )
    reply = _way("return", flow, back) if back else None
    return replace(_way("forward", flow, forward), reply=reply)


def fields(walked: Walk, state: VpcState, fmt: str = ADDRESSES) -> list[list[str]]:
    return [record.line.split(" ") for record in records(walked, state, parse_format(fmt))]


# FL-EX NAT gateway (vpc-fabric.md §6.4): instance 10.0.1.5, NAT ENI 10.0.0.220, host 203.0.113.5
FL_EX = vpc(
    eni("eni-instance", "private", "10.0.1.5", instance="i-0123456789abcdef0"),
    eni("eni-nat", "public", "10.0.0.220", nat=True),
    subnets=(subnet("private", "10.0.1.0/24"), subnet("public", "10.0.0.0/24")),
)


def test_the_fl_ex_nat_gateway_table() -> None:
    out = tcp("10.0.1.5", 41000, "203.0.113.5", 443)
    natted = tcp("10.0.0.220", 1024, "203.0.113.5", 443)
    answer = tcp("203.0.113.5", 443, "10.0.0.220", 1024, "S.")
    un_natted = tcp("203.0.113.5", 443, "10.0.1.5", 41000, "S.")
    walked = hand_walk(
        [
            at("eni-instance", "egress", out),
            at("eni-nat", "ingress", out),
            at("eni-nat", "egress", natted),
        ],
        [
            at("eni-nat", "ingress", answer),
            at("eni-nat", "egress", un_natted),
            at("eni-instance", "ingress", un_natted),
        ],
    )
    fmt = "${interface-id} ${flow-direction} ${instance-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr}"
    got = fields(walked, FL_EX, fmt)
    # The table's rows, in the order the packets pass the ENIs (instance-id `i-…`: the instance's).
    i = "i-0123456789abcdef0"
    assert got == [
        ["eni-instance", "egress", i, "10.0.1.5", "203.0.113.5", "10.0.1.5", "203.0.113.5"],
        ["eni-nat", "ingress", "-", "10.0.1.5", "10.0.0.220", "10.0.1.5", "203.0.113.5"],
        ["eni-nat", "egress", "-", "10.0.0.220", "203.0.113.5", "10.0.0.220", "203.0.113.5"],
        ["eni-nat", "ingress", "-", "203.0.113.5", "10.0.0.220", "203.0.113.5", "10.0.0.220"],
        ["eni-nat", "egress", "-", "10.0.0.220", "10.0.1.5", "203.0.113.5", "10.0.1.5"],
        ["eni-instance", "ingress", i, "203.0.113.5", "10.0.1.5", "203.0.113.5", "10.0.1.5"],
    ]


def test_the_fl_ex_transit_gateway_table_and_its_tcp_flags() -> None:
    # Client 10.20.33.164, server 10.40.2.236, TGW ENIs 10.40.1.175 / 10.40.2.31; the server ENI
    # shows client ↔ server unchanged, tcp-flags 3 for the request, 19 for the response.
    state = vpc(
        eni("eni-tgw-1", "tgw", "10.40.1.175"),
        eni("eni-tgw-2", "tgw", "10.40.2.31"),
        eni("eni-server", "tgw", "10.40.2.236", instance="i-0000000000000server"),
        subnets=(subnet("tgw", "10.40.0.0/16"),),
    )
    client, server = "10.20.33.164", "10.40.2.236"
    request = [tcp(client, 50000, server, 22, flags) for flags in ("S", ".", "F.")]
    response = [tcp(server, 22, client, 50000, flags) for flags in ("S.", "F.")]
    walked = hand_walk(
        [at("eni-tgw-1", "egress", request[0])]
        + [at("eni-server", "ingress", packet) for packet in request],
        [at("eni-server", "egress", packet) for packet in response]
        + [at("eni-tgw-2", "ingress", response[0])],
    )
    got = fields(walked, state, ADDRESSES + " ${instance-id} ${tcp-flags} ${packets}")
    assert got == [
        ["eni-tgw-1", "egress", "10.40.1.175", server, client, server, "-", "2", "1"],
        [
            "eni-server",
            "ingress",
            client,
            server,
            client,
            server,
            "i-0000000000000server",
            "3",
            "3",
        ],
        [
            "eni-server",
            "egress",
            server,
            client,
            server,
            client,
            "i-0000000000000server",
            "19",
            "2",
        ],
        ["eni-tgw-2", "ingress", server, "10.40.2.31", server, client, "-", "18", "1"],
    ]


# §7.13's VPC: node-1 eth0 10.0.1.5 (+ pod A 10.0.1.23), eth1 10.0.2.20 (+ pod B 10.0.2.57),
# node-2 eth0 10.0.3.8 (+ 10.0.3.16/28, pod C 10.0.3.18), NAT ENI 10.0.64.10, NLB ENI 10.0.64.20.
SUBNET_A, SUBNET_B = "subnet-0e5c00000000000a1", "subnet-0e5c00000000000b1"
EX = vpc(
    eni(
        "eni-0e5c0000000000e01",
        SUBNET_A,
        "10.0.1.5",
        instance="i-0e5c0000000000d01",
        secondary=("10.0.1.23",),
    ),
    eni(
        "eni-0e5c0000000000e02",
        SUBNET_A,
        "10.0.2.20",
        instance="i-0e5c0000000000d01",
        secondary=("10.0.2.57",),
    ),
    eni("eni-0e5c0000000000e03", SUBNET_A, "10.0.3.8", instance="i-0e5c0000000000d02"),
    eni("eni-0e5c0000000000b01", SUBNET_B, "10.0.64.10", nat=True),
    eni("eni-0e5c0000000000f01", SUBNET_B, "10.0.64.20"),
    subnets=(subnet(SUBNET_A, "10.0.0.0/19"), subnet(SUBNET_B, "10.0.64.0/24")),
)
E01, E02, E03 = "eni-0e5c0000000000e01", "eni-0e5c0000000000e02", "eni-0e5c0000000000e03"
NAT_ENI, NLB_ENI = "eni-0e5c0000000000b01", "eni-0e5c0000000000f01"


def test_the_derived_eks_cases() -> None:
    pod_to_pod = tcp("10.0.2.57", 43210, "10.0.3.18", 8080)
    node_snat = tcp("10.0.1.5", 43210, "93.184.216.34", 443)
    external_snat = tcp("10.0.2.57", 43210, "93.184.216.34", 443)
    to_nlb = tcp("203.0.113.9", 51000, "10.0.64.20", 80)
    to_pod_a = tcp("10.0.64.20", 2000, "10.0.1.23", 8080)
    cases = [
        (
            [at(E02, "egress", pod_to_pod), at(E03, "ingress", pod_to_pod)],
            [
                [E02, "egress", "10.0.2.20", "10.0.3.18", "10.0.2.57", "10.0.3.18"],
                [E03, "ingress", "10.0.2.57", "10.0.3.8", "10.0.2.57", "10.0.3.18"],
            ],
        ),
        (
            [at(E01, "egress", node_snat), at(NAT_ENI, "ingress", node_snat)],
            [
                [E01, "egress", "10.0.1.5", "93.184.216.34", "10.0.1.5", "93.184.216.34"],
                [NAT_ENI, "ingress", "10.0.1.5", "10.0.64.10", "10.0.1.5", "93.184.216.34"],
            ],
        ),
        (
            [at(E02, "egress", external_snat), at(NAT_ENI, "ingress", external_snat)],
            [
                [E02, "egress", "10.0.2.20", "93.184.216.34", "10.0.2.57", "93.184.216.34"],
                [NAT_ENI, "ingress", "10.0.2.57", "10.0.64.10", "10.0.2.57", "93.184.216.34"],
            ],
        ),
        (
            [
                at(NLB_ENI, "ingress", to_nlb),
                at(NLB_ENI, "egress", to_pod_a),
                at(E01, "ingress", to_pod_a),
            ],
            [
                [NLB_ENI, "ingress", "203.0.113.9", "10.0.64.20", "203.0.113.9", "10.0.64.20"],
                [NLB_ENI, "egress", "10.0.64.20", "10.0.1.23", "10.0.64.20", "10.0.1.23"],
                [E01, "ingress", "10.0.64.20", "10.0.1.5", "10.0.64.20", "10.0.1.23"],
            ],
        ),
    ]
    for seen, expected in cases:
        assert fields(hand_walk(seen), EX) == expected


def test_client_ip_preservation_shows_the_client_in_pkt_srcaddr() -> None:
    # §6.4: with preservation the NLB egress and target ingress rows carry 203.0.113.9 as
    # pkt-srcaddr, and the target ingress srcaddr is 203.0.113.9 (the NLB egress srcaddr stays
    # the NLB ENI's primary, §6.6).
    preserved = tcp("203.0.113.9", 51000, "10.0.1.23", 8080)
    got = fields(hand_walk([at(NLB_ENI, "egress", preserved), at(E01, "ingress", preserved)]), EX)
    assert got == [
        [NLB_ENI, "egress", "10.0.64.20", "10.0.1.23", "203.0.113.9", "10.0.1.23"],
        [E01, "ingress", "203.0.113.9", "10.0.1.5", "203.0.113.9", "10.0.1.23"],
    ]


def test_requester_managed_enis_have_no_instance_id() -> None:
    # §6.3: `-` for requester-managed ENIs (NAT gateway, NLB).
    packet = tcp("10.0.2.57", 43210, "93.184.216.34", 443)
    for owner in (NAT_ENI, NLB_ENI):
        assert fields(hand_walk([at(owner, "ingress", packet)]), EX, "${instance-id}") == [["-"]]
    assert fields(hand_walk([at(E02, "egress", packet)]), EX, "${instance-id}") == [
        ["i-0e5c0000000000d01"]
    ]
    # A NAT gateway's ENI is requester-managed whatever its attachment says.
    attached = vpc(
        eni("eni-nat", SUBNET_B, "10.0.64.10", nat=True, instance="i-x"), subnets=EX.subnets
    )
    assert fields(hand_walk([at("eni-nat", "ingress", packet)]), attached, "${instance-id}") == [
        ["-"]
    ]


SPEC_RECORD = "2 111122223333 eni-0e5c0000000000e03 10.0.2.57 10.0.3.8 43210 8080 6 10 1840 1718000000 1718000060 ACCEPT OK"
"""vpc-fabric.md §6.6: the default-format record of pod B → pod C, ingress on node-2 eth0
(10 packets, 1840 bytes: an aggregate of a longer exchange than a walk's one packet)."""


@pytest.mark.parametrize("action", ["ACCEPT", "REJECT"])
def test_the_default_format_record_of_section_6_6(action: FlowLogAction) -> None:
    syn = tcp("10.0.2.57", 43210, "10.0.3.18", 8080)
    walked = hand_walk([at(E03, "ingress", syn, action)])
    (record,) = records(walked, EX, parse_format(None))
    expected = SPEC_RECORD.split(" ")
    expected[8:10] = ["1", "60"]  # the walk's one SYN: 20 IP + 20 TCP + 20 options
    expected[12] = action  # "a rejected flow has the same shape ending `REJECT OK`"
    assert record.line.split(" ") == expected
    assert (record.eni, record.direction, record.action) == (E03, "ingress", action)


def test_the_nacl_example_accepts_the_ping_and_rejects_the_reply() -> None:
    # §6.6 (FL-EX): ping allowed in, reply denied by the NACL outbound → ACCEPT then REJECT on
    # the instance ENI; ICMP's ports are `0 0` and its protocol 1.
    walked = hand_walk(
        [at(E01, "ingress", echo("203.0.113.12", "10.0.1.5"))],
        [at(E01, "egress", echo("10.0.1.5", "203.0.113.12", icmp_type=0), "REJECT")],
    )
    got = fields(walked, EX, "${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${action}")
    assert got == [
        ["203.0.113.12", "10.0.1.5", "0", "0", "1", "ACCEPT"],
        ["10.0.1.5", "203.0.113.12", "0", "0", "1", "REJECT"],
    ]
    assert [record.action for record in records(walked, EX, parse_format(None))] == [
        "ACCEPT",
        "REJECT",
    ]


@pytest.mark.parametrize(
    "flags, value",
    [
        (["S"], "2"),
        (["S."], "18"),
        (["."], "0"),  # an ACK-only packet adds 0
        (["R."], "4"),
        (["SE"], "2"),  # SYN+ECE adds 2
        (["S", ".", "F."], "3"),  # a short connection, client → server
        (["S.", "F."], "19"),  # and back
        (["F."], "1"),  # a long one's closing interval
    ],
)
def test_tcp_flags_of_section_6_5(flags: list[str], value: str) -> None:
    walked = hand_walk(
        [at(E02, "egress", tcp("10.0.2.57", 43210, "10.0.3.18", 8080, flag)) for flag in flags]
    )
    assert fields(walked, EX, "${tcp-flags} ${packets}") == [[value, str(len(flags))]]


def test_no_tcp_no_flags() -> None:
    # Not TCP: FL-REC's "if no flags are sent, the TCP flag value is 0" (§6.5 "no flags → 0").
    udp = Packet(ip("10.0.2.57"), ip("10.0.3.18"), "udp", 43210, 53)
    for packet in (udp, echo("10.0.2.57", "10.0.3.18")):
        assert fields(hand_walk([at(E02, "egress", packet)]), EX, "${tcp-flags}") == [["0"]]


def test_bytes_are_what_the_lab_and_linux_send() -> None:
    # IPv4 total lengths: 20 IP header; TCP 20 + Linux's SYN/SYN-ACK options 20; the kernel's RST
    # none; the lab's UDP datagram `b"eksnet"` behind 8 bytes of UDP header; its echo request
    # 8 bytes of ICMP header + `b"eksnet-lab"`; an ICMP error 8 + the packet it quotes.
    syn = tcp("10.0.2.57", 43210, "10.0.3.18", 8080)
    udp = Packet(ip("10.0.2.57"), ip("10.0.3.18"), "udp", 43210, 53)
    cases = [
        (syn, 20 + 20 + 20),
        (tcp("10.0.3.18", 8080, "10.0.2.57", 43210, "S."), 20 + 20 + 20),
        (syn.reset(), 20 + 20),
        (udp, 20 + 8 + len(b"eksnet")),
        (echo("10.0.2.57", "10.0.3.18"), 20 + 8 + len(b"eksnet-lab")),
        (udp.unreachable(3, None), 20 + 8 + (20 + 8 + len(b"eksnet"))),
    ]
    for packet, length in cases:
        got = fields(hand_walk([at(E02, "egress", packet)]), EX, "${packets} ${bytes}")
        assert got == [["1", str(length)]], packet


def test_the_walk_falls_in_one_window_from_start() -> None:
    walked = hand_walk([at(E02, "egress", tcp("10.0.2.57", 43210, "10.0.3.18", 8080))])
    fmt = parse_format("${start} ${end}")
    assert records(walked, EX, fmt)[0].line == "1718000000 1718000060"
    assert records(walked, EX, fmt, start=1700000000)[0].line == "1700000000 1700000060"


def test_every_field_of_versions_2_to_5_renders() -> None:
    packet = tcp("10.0.2.57", 43210, "10.0.3.18", 8080)
    fmt = parse_format(" ".join(f"${{{name}}}" for name in FIELDS))
    (record,) = records(hand_walk([at(E02, "egress", packet)]), EX, fmt)
    got = dict(zip(FIELDS, record.line.split(" "), strict=True))
    assert got == {
        "version": "5",
        "account-id": "111122223333",
        "interface-id": E02,
        "srcaddr": "10.0.2.20",
        "dstaddr": "10.0.3.18",
        "srcport": "43210",
        "dstport": "8080",
        "protocol": "6",
        "packets": "1",
        "bytes": "60",
        "start": "1718000000",
        "end": "1718000060",
        "action": "ACCEPT",
        "log-status": "OK",
        "vpc-id": "vpc-0e5c0000000000001",
        "subnet-id": SUBNET_A,
        "instance-id": "i-0e5c0000000000d01",
        "tcp-flags": "2",
        "type": "IPv4",
        "pkt-srcaddr": "10.0.2.57",
        "pkt-dstaddr": "10.0.3.18",
        "region": "us-east-1",
        "az-id": "use1-az1",
        "sublocation-type": "-",
        "sublocation-id": "-",
        "pkt-src-aws-service": "-",
        "pkt-dst-aws-service": "-",
        "flow-direction": "egress",
        "traffic-path": "1",
    }
    ingress = records(hand_walk([at(E03, "ingress", packet)]), EX, parse_format("${traffic-path}"))
    assert ingress[0].line == "-"  # egress only


def test_an_az_id_needs_the_subnets_az_id() -> None:
    state = vpc(eni("eni-x", "bare", "10.0.2.20"), subnets=(subnet("bare", "10.0.2.0/24", None),))
    walked = hand_walk([at("eni-x", "egress", tcp("10.0.2.20", 1, "10.0.3.18", 2))])
    with pytest.raises(NotModelled, match="subnet bare has no azId"):
        records(walked, state, parse_format("${az-id}"))


def test_aws_service_of_a_public_address_is_not_modelled() -> None:
    walked = hand_walk([at(E01, "egress", tcp("10.0.1.5", 43210, "93.184.216.34", 443))])
    assert fields(walked, EX, "${pkt-src-aws-service}") == [["-"]]
    with pytest.raises(NotModelled, match=r"pkt-dst-aws-service for 93\.184\.216\.34"):
        records(walked, EX, parse_format("${pkt-dst-aws-service}"))
    documentation = hand_walk([at(E01, "egress", tcp("10.0.1.5", 43210, "203.0.113.9", 443))])
    assert fields(documentation, EX, "${pkt-dst-aws-service}") == [["-"]]


def test_a_split_walk_is_taken_one_way_at_a_time(demo: DataplaneState) -> None:
    whole = walk(demo, "ip/203.0.113.10", NODE_1, dport=30080)
    with pytest.raises(ValueError, match="leaves"):
        records(whole, demo.vpc, parse_format(None))


def test_every_way_of_the_next_connection_has_its_records(demo: DataplaneState) -> None:
    # NodePort 30080 (no affinity): 3 endpoints, and 3 again for the next connection of each.
    # Each connection's endpoint's ENI (talk-walks.md §2.3) writes two records: in and out.
    endpoint_eni = {
        "192.168.1.71": "eni-01a00000000000070",
        "192.168.1.81": "eni-01a00000000000080",
        "192.168.2.91": "eni-01a00000000000090",
    }
    whole = walk(demo, "ip/203.0.113.10", NODE_1, dport=30080, again=True)
    ways = list(leaves(whole))
    assert len(ways) == 9 and abs(sum(p for p, _, _ in ways) - 1) < 1e-9
    fmt = parse_format("${interface-id}")
    seen = set()
    for _, label, leaf in ways:
        assert leaf.then is not None and not leaf.then.branches
        first, following = (
            next(address for address in endpoint_eni if address in part)
            for part in label.split(" · then ")
        )
        seen.add((first, following))
        got = [record.line for record in records(leaf, demo.vpc, fmt)]
        for address in endpoint_eni:
            connections = (first, following).count(address)
            assert got.count(endpoint_eni[address]) == 2 * connections, label
    assert len(seen) == 9
    printed = text(whole, demo.vpc, fmt)
    assert printed.count("# branch ") == 9 and printed.count(" · then ") == 9


# --- the format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, version",
    [
        (DEFAULT_FORMAT, 2),
        ("${srcaddr} ${pkt-srcaddr}", 3),
        ("${az-id}", 4),
        ("${traffic-path} ${version}", 5),
        ("${region} ${interface-id} ${tcp-flags}", 4),
    ],
)
def test_the_version_is_the_highest_of_the_fields(fmt: str, version: int) -> None:
    assert parse_format(fmt).version == version


def test_the_default_format_is_version_2_in_its_order() -> None:
    fmt = parse_format(None)
    assert fmt.version == 2 and fmt.text() == DEFAULT_FORMAT
    assert fmt.fields == (
        "version",
        "account-id",
        "interface-id",
        "srcaddr",
        "dstaddr",
        "srcport",
        "dstport",
        "protocol",
        "packets",
        "bytes",
        "start",
        "end",
        "action",
        "log-status",
    )


@pytest.mark.parametrize(
    "fmt, says",
    [
        ("${srcadr}", "unknown field 'srcadr' (fix: did you mean srcaddr"),
        ("${pkt-srcadr} ${version}", "did you mean pkt-srcaddr"),
        ("${SRCADDR}", "did you mean srcaddr"),
        ("${srcaddr} ${srcaddr}", "srcaddr is listed twice"),
        ("srcaddr", "'srcaddr' is not a ${field} (fix: write ${srcaddr}"),
        ("${srcaddr},${dstaddr}", "is not a ${field}"),
        ("${srcaddr}  ${dstaddr}", "two spaces in a row"),
        ("${srcaddr} ", "an empty field"),
        ("${}", "unknown field ''"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_a_bad_format_says_why(fmt: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_format(fmt)
    assert says in str(caught.value)


@pytest.mark.parametrize("field", ["reject-reason", "ecs-cluster-arn", "ecs-task-id"])
def test_fields_after_version_5_are_not_modelled(field: str) -> None:
    with pytest.raises(NotModelled, match=field):
        parse_format(f"${{version}} ${{{field}}}")


# --- walks the engine takes on the demo -------------------------------------------------------


def lines(walked: Walk, state: DataplaneState, fmt: str = FIELDS_SHOWN) -> list[list[str]]:
    return [record.line.split() for record in records(walked, state.vpc, parse_format(fmt))]


@pytest.fixture(scope="module")
def demo() -> DataplaneState:
    return build_state(load_cluster())


@pytest.fixture(scope="module")
def nat() -> DataplaneState:
    return build_state(load_cluster(variant="nat"))


def test_the_nat_gateway_records_have_the_fl_ex_shape(nat: DataplaneState) -> None:
    got = lines(walk(nat, POD_51, WEB, dport=443), nat)
    p1 = next(r for r in got if r[0] == "eni-01a00000000000050")[4]  # the node's SNAT port
    p4 = next(r for r in got if r[0] == "eni-0a11c0ffee00000a0" and r[1] == "egress")[4]
    nat_eni = [r[:10] for r in got if r[0] == "eni-0a11c0ffee00000a0"]
    r, n, x = "198.51.100.20", "192.168.0.10", "192.168.1.50"
    assert nat_eni == [
        # in, from the instance: srcaddr X, dstaddr N, pkt X → R
        ["eni-0a11c0ffee00000a0", "ingress", x, n, p1, "443", x, r, "-", "ACCEPT"],
        # out, to the internet: N → R both ways of naming
        ["eni-0a11c0ffee00000a0", "egress", n, r, p4, "443", n, r, "-", "ACCEPT"],
        # in, the reply: R → N
        ["eni-0a11c0ffee00000a0", "ingress", r, n, "443", p4, r, n, "-", "ACCEPT"],
        # out, to the instance: srcaddr N, dstaddr X, pkt R → X
        ["eni-0a11c0ffee00000a0", "egress", n, x, "443", p1, r, x, "-", "ACCEPT"],
    ]
    assert not any("192.0.2.10" in record for record in got)  # never the EIP
    instance = [r[:9] for r in got if r[0] == "eni-01a00000000000050"]
    assert instance == [
        ["eni-01a00000000000050", "egress", x, r, p1, "443", x, r, "i-0a11c0ffee0000050"],
        ["eni-01a00000000000050", "ingress", r, x, "443", p1, r, x, "i-0a11c0ffee0000050"],
    ]


def test_w0_srcaddr_is_the_enis_primary_as_aws_documents(demo: DataplaneState) -> None:
    # talk-walks.md W0 shows `eni-…060 192.168.1.61 192.168.1.71 42000 80 | .61 .71`; AWS's
    # srcaddr of outgoing traffic is the ENI's primary private IPv4 (vpc-fabric.md §6.3/§6.4),
    # which wins: 192.168.1.60, the pod in pkt-srcaddr. The ingress record is the talk's.
    got = [r[:8] for r in lines(walk(demo, POD_61, POD_71, dport=80, sport=42000), demo)]
    assert got[:2] == [
        [
            "eni-01a00000000000060",
            "egress",
            "192.168.1.60",
            "192.168.1.71",
            "42000",
            "80",
            "192.168.1.61",
            "192.168.1.71",
        ],
        [
            "eni-01a00000000000070",
            "ingress",
            "192.168.1.61",
            "192.168.1.70",
            "42000",
            "80",
            "192.168.1.61",
            "192.168.1.71",
        ],
    ]


def test_w4_records_as_the_talk_shows_them(demo: DataplaneState) -> None:
    # talk-walks.md W4 (branch .71): `eni-…050 203.0.113.10 192.168.1.50 51000 30080`, then
    # `eni-…050 192.168.1.50 192.168.1.71 <P1> 80`, `eni-…070 192.168.1.50 192.168.1.70 <P1> 80
    # | .50 .71`; return `eni-…050 192.168.1.50 203.0.113.10 30080 51000`.
    whole = walk(demo, "ip/203.0.113.10", NODE_1, dport=30080)
    leaf = next(leaf for _, label, leaf in whole.leaves() if "192.168.1.71" in label)
    got = [r[:8] for r in lines(leaf, demo)]
    p1 = got[1][4]
    assert got[0][:6] == [
        "eni-01a00000000000050",
        "ingress",
        "203.0.113.10",
        "192.168.1.50",
        "51000",
        "30080",
    ]
    assert got[1][:6] == [
        "eni-01a00000000000050",
        "egress",
        "192.168.1.50",
        "192.168.1.71",
        p1,
        "80",
    ]
    assert got[2] == [
        "eni-01a00000000000070",
        "ingress",
        "192.168.1.50",
        "192.168.1.70",
        p1,
        "80",
        "192.168.1.50",
        "192.168.1.71",
    ]
    assert got[-1][:6] == [
        "eni-01a00000000000050",
        "egress",
        "192.168.1.50",
        "203.0.113.10",
        "30080",
        "51000",
    ]


def test_w10_record_and_tcp_flags(demo: DataplaneState) -> None:
    got = lines(walk(demo, POD_51, WEB, dport=443), demo)
    out, back = got
    assert out[:4] == ["eni-01a00000000000050", "egress", "192.168.1.50", "198.51.100.20"]
    assert (out[5], out[10], out[11]) == ("443", "2", "8")  # SYN; through the IGW from Nitro
    assert (back[1], back[10], back[11]) == ("ingress", "18", "-")  # SYN-ACK; no path inbound


def test_the_default_format_and_the_record_shape(demo: DataplaneState) -> None:
    # §6.2 and §6.6: 14 fields, version 2, `… 6 <packets> <bytes> <start> <end> ACCEPT OK`
    across = walk(demo, POD_51, "pod/default/app1-5f7d9c6b8-b9v6s", dport=80, sport=43210)
    first = records(across, demo.vpc, parse_format(None))[0].line.split()
    assert first == [
        "2",
        "111122223333",
        "eni-01a00000000000050",
        "192.168.1.50",
        "192.168.2.91",
        "43210",
        "80",
        "6",
        "1",
        "60",
        "1718000000",
        "1718000060",
        "ACCEPT",
        "OK",
    ]


def test_a_security_group_drop_is_a_reject_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from eksnet.model.load import demo_text

    spec, _ = demo_text()
    rule = '        - {protocol: tcp, ports: "30080", source: 0.0.0.0/0, description: user-added for the NodePort walk}\n'
    assert spec.count(rule) == 1
    path = tmp_path / "t.yaml"
    path.write_text(spec.replace(rule, ""))
    state = build_state(load_cluster(path))
    got = lines(walk(state, "ip/203.0.113.10", NODE_1, dport=30080), state)
    assert [[*r[:4], r[9]] for r in got] == [
        ["eni-01a00000000000050", "ingress", "203.0.113.10", "192.168.1.50", "REJECT"]
    ]


def test_icmp_has_ports_0_0(demo: DataplaneState) -> None:
    got = lines(walk(demo, POD_51, "pod/default/app1-5f7d9c6b8-b9v6s", proto="icmp"), demo)
    assert got and {(r[4], r[5]) for r in got} == {("0", "0")}


def test_a_walk_without_an_eni_writes_nothing(demo: DataplaneState) -> None:
    same_node = walk(demo, POD_51, POD_61, dport=80)
    printed = text(same_node, demo.vpc, parse_format(None))
    assert "no ENI on this walk writes a flow-log record" in printed


def test_imds_is_never_logged(demo: DataplaneState) -> None:
    assert lines(walk(demo, POD_51, "ip/169.254.169.254", dport=80), demo) == []


# --- the command line -------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*eksnet_command(), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "fmt, says",
    [
        ("${nope}", "--format: unknown field 'nope' (fix: "),
        ("${srcadr}", "did you mean srcaddr"),
        ("", "the flow-log format is empty"),
    ],
)
def test_a_bad_format_on_the_command_line_is_one_line(fmt: str, says: str) -> None:
    result = run_cli("walk", POD_51, WEB, "--port", "443", "--flow-logs", "--format", fmt)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("eksnet: ")
    assert says in result.stderr


def test_format_needs_flow_logs() -> None:
    alone = run_cli("walk", POD_51, WEB, "--port", "443", "--format", "${srcaddr}")
    assert alone.returncode == 2 and alone.stderr.count("\n") == 1 and "--flow-logs" in alone.stderr


def test_a_later_field_on_the_command_line_is_not_modelled() -> None:
    result = run_cli("walk", POD_51, WEB, "--flow-logs", "--format", "${reject-reason}")
    assert result.returncode == 3 and "reject-reason" in result.stderr
    assert result.stderr.count("\n") == 1


def test_walk_flow_logs_prints_the_w10_record() -> None:
    # talk-walks.md W10: `eni-…050 192.168.1.50 198.51.100.20 <P1> 443`, in the demo's format
    # (default v2 fields plus pkt-srcaddr pkt-dstaddr).
    result = run_cli("walk", POD_51, WEB, "--port", "443", "--flow-logs")
    assert result.returncode == 0, result.stderr
    record = next(
        line.split(" ")
        for line in result.stdout.splitlines()
        if line.startswith("3 111122223333 eni-01a00000000000050 192.168.1.50 198.51.100.20 ")
    )
    assert record[6] == "443" and record[12] == "ACCEPT"
    assert record[-2:] == ["192.168.1.50", "198.51.100.20"]


def test_walk_json_carries_the_flow_logs() -> None:
    fmt = "${interface-id} ${flow-direction} ${srcaddr} ${dstaddr}"
    result = run_cli("walk", POD_51, WEB, "--port", "443", "--json", "--flow-logs", "--format", fmt)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "eksnet.walk/1" and "walk" in document
    logs = document["flowLogs"]
    assert logs["format"] == fmt and logs["version"] == 5
    (way,) = logs["ways"]
    assert [r["line"] for r in way["records"]] == [
        "eni-01a00000000000050 egress 192.168.1.50 198.51.100.20",
        "eni-01a00000000000050 ingress 198.51.100.20 192.168.1.50",
    ]
    assert [(r["eni"], r["direction"], r["action"]) for r in way["records"]] == [
        ("eni-01a00000000000050", "egress", "ACCEPT"),
        ("eni-01a00000000000050", "ingress", "ACCEPT"),
    ]


def test_walk_without_flow_logs_has_no_flow_logs_key() -> None:
    result = run_cli("walk", POD_51, WEB, "--port", "443", "--json")
    assert result.returncode == 0, result.stderr
    assert "flowLogs" not in json.loads(result.stdout)
