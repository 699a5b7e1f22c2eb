"""The verifier's comparison itself, pure: a kernel that did exactly what the walk says agrees,
and each way a kernel can differ is named by the field it differs in.

`perfect(walk)` is what the lab's tools would report if the kernel did exactly what the walk
claims (frames, `ip route get`, conntrack events and entries, counters, listeners); every test
then breaks one observation and checks `judge` says so.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.lab.capture import (
    ConntrackEvent,
    Frame,
    RouteGet,
    Seen,
    parse_conntrack_line,
)
from eksnet.lab.verify import (
    Bindings,
    Listened,
    Observation,
    compare_route,
    connections_needed,
    delivered_at,
    directions,
    expected_rule_hits,
    judge,
    predicted_entries,
    route_questions,
    split_frames,
)
from eksnet.model import load_cluster
from eksnet.walk.engine import walk
from eksnet.walk.model import RouteAnswer, Walk

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
POD_81 = "pod/default/app1-5f7d9c6b8-z8h4k"
POD_91 = "pod/default/app1-5f7d9c6b8-b9v6s"
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "ip-192-168-1-70.eu-west-2.compute.internal"
NODE_3 = "ip-192-168-2-90.eu-west-2.compute.internal"


@pytest.fixture(scope="module")
def state() -> DataplaneState:
    return build_state(load_cluster())


def perfect(one: Walk) -> Observation:
    """What the lab would observe if the kernel did exactly what `one` (a complete walk) says."""
    frames: list[Seen] = []
    clock = 1000.0
    received = clock
    for direction, part in directions(one):
        if direction == "return":
            received = clock + 0.0005  # the server had the request between the two
        for item in part.wire():
            clock += 0.001
            text = f"{item.packet.five_tuple()} (simulated)"
            frame = Frame(
                clock, item.packet.src_mac or "", item.packet.dst_mac or "", text, item.packet
            )
            frames.append(Seen(item.namespace, item.interface, item.direction, frame))
    events: dict[str, tuple[ConntrackEvent, ...]] = {}
    final = {}
    for namespace, pairs in predicted_entries(one).items():
        events[namespace] = tuple(ConntrackEvent(None, "NEW", first, False) for first, _ in pairs)
        final[namespace] = tuple(last for _, last in pairs)
    routes = {}
    for key, _, step in route_questions(one):
        answer = step.route
        assert answer is not None
        if answer.type == "error":
            routes[key] = RouteGet("error", None, None, "", f"RTNETLINK answers: {answer.error}")
        else:
            via = str(answer.gateway) if answer.gateway is not None else None
            routes[key] = RouteGet(answer.type, answer.dev, via, answer.table or "main")
    counters: dict[str, dict[str, int]] = {}
    listened = []
    hop = delivered_at(one)
    if hop is not None:
        packet = hop.steps[-1].after
        assert packet is not None
        if one.flow.proto == "icmp":
            counters[hop.where.name] = {"Icmp:InEchos": 1}
        else:
            assert packet.dport is not None
            listened.append(
                Listened(hop.where.name, packet.dst, packet.dport, True, None, received)
            )
    for _, part in directions(one):
        end = part.disposition
        if end is not None and end.code == "rp-filter":
            counters.setdefault(end.where.name, {})["TcpExt:IPReversePathFilter"] = 1
    replied = one.reply is not None and delivered_at(one.reply) is not None
    return Observation(
        frames=tuple(frames),
        conntrack_events=events,
        conntrack_final=final,
        rule_hits=expected_rule_hits(one),
        counters=counters,
        fabric={},
        neighbours={},
        listened=tuple(listened),
        replied=replied,
        sender_error=None if replied else "timed out",
        sender_errno=None,
        routes=routes,
    )


def kinds(differences: object) -> set[str]:
    return {d.kind for d in differences}  # type: ignore[attr-defined]


def test_a_kernel_doing_what_the_walk_says_agrees(state: DataplaneState) -> None:
    for dst, proto, port in ((POD_81, "tcp", 80), (POD_91, "icmp", None), (POD_61, "udp", 53)):
        one = walk(state, POD_51, dst, proto=proto, dport=port)  # type: ignore[arg-type]
        assert judge(one, perfect(one)) == [], (dst, proto)


def test_a_different_mac_on_one_interface(state: DataplaneState) -> None:
    one = walk(state, POD_51, POD_81, dport=80)
    seen = perfect(one)
    frames = list(seen.frames)
    index = next(i for i, f in enumerate(frames) if f.namespace == NODE_2 and f.interface == "eth1")
    packet = frames[index].frame.packet
    assert packet is not None
    frames[index] = replace(
        frames[index],
        frame=replace(frames[index].frame, packet=packet.but(src_mac="02:00:c0:a8:01:01")),
    )
    differences = judge(one, replace(seen, frames=tuple(frames)))
    assert [(d.kind, d.where) for d in differences] == [("field:src_mac", f"{NODE_2} eth1 in")]


def test_a_missing_frame_an_extra_frame_and_an_icmp_error(state: DataplaneState) -> None:
    one = walk(state, POD_51, POD_81, dport=80)
    seen = perfect(one)
    dropped = tuple(f for f in seen.frames if not (f.namespace == NODE_2 and f.direction == "out"))
    error = Seen(
        NODE_1,
        "eth0",
        "in",
        Frame(2000.0, "a", "b", "192.168.1.70 > 192.168.1.51: ICMP host unreachable", None),
    )
    differences = judge(one, replace(seen, frames=(*dropped, error)))
    assert {"wire-missing", "wire-unexpected"} <= kinds(differences)
    assert any("ICMP host unreachable" in d.observed for d in differences)


def test_frames_in_another_order(state: DataplaneState) -> None:
    one = walk(state, POD_51, POD_81, dport=80)
    seen = perfect(one)
    forward = [f for f in seen.frames if f.frame.packet and f.frame.packet.tcp_flags == "S"]
    late = replace(forward[0], frame=replace(forward[0].frame, timestamp=1500.0))
    frames = tuple(late if f is forward[0] else f for f in seen.frames)
    assert "wire-order" in kinds(judge(one, replace(seen, frames=frames)))


def test_frames_with_one_timestamp_are_read_in_the_walks_order(state: DataplaneState) -> None:
    """Both ends of a veth can stamp a frame with the same microsecond: a tie (listed in the
    other order) is no order difference; one microsecond the wrong way is."""
    one = walk(state, POD_51, POD_81, dport=80)
    seen = perfect(one)
    forward = [f for f in seen.frames if f.frame.packet and f.frame.packet.tcp_flags == "S"]
    first, second = forward[0], forward[1]
    tied = replace(first, frame=replace(first.frame, timestamp=second.timestamp))
    others = [f for f in seen.frames if f is not first and f is not second]
    swapped = (*others, second, tied)
    assert "wire-order" not in kinds(judge(one, replace(seen, frames=swapped)))
    later = replace(first, frame=replace(first.frame, timestamp=second.timestamp + 1e-6))
    reordered = tuple(later if f is first else f for f in seen.frames)
    assert "wire-order" in kinds(judge(one, replace(seen, frames=reordered)))


def test_rule_counters_both_ways(state: DataplaneState) -> None:
    one = walk(state, POD_51, POD_81, dport=80)
    seen = perfect(one)
    hits = dict(seen.rule_hits)
    hits[NODE_1] = hits[NODE_1] - {("nat", "PREROUTING", 2)}
    hits[NODE_3] = frozenset({("mangle", "PREROUTING", 2)})
    differences = judge(one, replace(seen, rule_hits=hits))
    assert [d.where for d in differences] == [
        f"{NODE_1} iptables counters",
        f"{NODE_3} iptables counters",
    ]
    assert "missing nat/PREROUTING #2" in differences[0].observed
    assert "extra mangle/PREROUTING #2" in differences[1].observed


def test_conntrack_after_the_request_and_after_the_reply(state: DataplaneState) -> None:
    one = walk(state, "node/" + NODE_3, POD_51, dport=80)
    seen = perfect(one)
    assert judge(one, seen) == []
    # Node 3's entry: mark 0 after the request, 128 after the reply (M1 on eth0, to a local
    # address): the request's [NEW] event must show 0, `conntrack -L` 128.
    (first, last) = predicted_entries(one)[NODE_3][0]
    assert (first.mark, last.mark) == (0, 128)
    wrong_event = replace(first, mark=128)
    events = dict(seen.conntrack_events)
    events[NODE_3] = (ConntrackEvent(None, "NEW", wrong_event, False),)
    differences = judge(one, replace(seen, conntrack_events=events))
    assert [(d.kind, d.direction, d.expected, d.observed) for d in differences] == [
        ("conntrack:mark", "forward", "0", "128")
    ]
    stray = parse_conntrack_line(
        "udp 17 30 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 src=5.6.7.8 dst=1.2.3.4 sport=2 dport=1 mark=0"
    )
    assert stray is not None
    final = dict(seen.conntrack_final)
    final[NODE_2] = (stray,)
    assert [d.kind for d in judge(one, replace(seen, conntrack_final=final))] == ["conntrack"]


def test_routes_compared_as_ip_route_get_answers(state: DataplaneState) -> None:
    want = RouteAnswer("unicast", dev="eth1", gateway=IPv4Address("192.168.1.1"), table="2")
    assert compare_route("return", "x", want, RouteGet("unicast", "eth1", "192.168.1.1", "2")) == []
    assert compare_route("return", "x", want, RouteGet("unicast", "eth0", "192.168.1.1", "main"))
    error = RouteAnswer("error", error="Invalid argument", iif="eth1")
    assert (
        compare_route(
            "forward",
            "x",
            error,
            RouteGet("error", None, None, "", "RTNETLINK answers: Invalid argument"),
        )
        == []
    )
    assert compare_route("forward", "x", error, RouteGet("unicast", "eth0", None, "main"))


def test_the_drop_needs_the_kernels_evidence(state: DataplaneState) -> None:
    one = walk(state, POD_51, "ip/192.168.2.100", dport=443)
    assert one.disposition is not None and one.disposition.code == "rp-filter"
    seen = perfect(one)
    assert judge(one, seen) == []
    differences = judge(one, replace(seen, counters={}))
    assert [d.kind for d in differences] == ["drop:rp-filter"]
    elsewhere = replace(seen, counters={NODE_2: {"TcpExt:IPReversePathFilter": 1}})
    assert {"drop:rp-filter", "drop:unexpected"} <= kinds(judge(one, elsewhere))


def test_delivery_to_the_right_socket(state: DataplaneState) -> None:
    one = walk(state, POD_51, POD_81, dport=80)
    seen = perfect(one)
    assert "delivery" in kinds(judge(one, replace(seen, listened=())))
    assert "delivery" in kinds(judge(one, replace(seen, replied=False)))


def test_chosen_ports_are_variables_bound_once() -> None:
    bindings = Bindings(frozenset({3442}))
    assert bindings.same(3442, 51234) and bindings.same(3442, 51234)
    assert not bindings.same(3442, 51235)
    assert bindings.same(80, 80) and not bindings.same(80, 81)
    other = Bindings(frozenset({1111, 2222}))
    assert other.same(1111, 5000) and not other.same(2222, 5000)


def test_udp_frames_split_by_when_the_server_had_the_request(state: DataplaneState) -> None:
    one = walk(state, POD_51, POD_61, proto="udp", dport=53)
    seen = perfect(one)
    split, others = split_frames(one, seen.frames, seen.listened)
    assert len(split["forward"]) == len(list(one.wire()))
    assert one.reply is not None and len(split["return"]) == len(list(one.reply.wire()))
    assert others == []


def test_connections_needed_for_branches() -> None:
    assert connections_needed([1.0]) == 1
    assert connections_needed([0.5, 0.5]) == 21
    assert connections_needed([1 / 3] * 3) == 37
