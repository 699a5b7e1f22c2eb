"""The talk's walks W0–W2 through `eksnet walk --json`, checked against talk-walks.md §3 and the
assertions of §4.4. Expected values are the spec's; nothing here was copied from eksnet output."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from eksnet.cli import app

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
POD_71 = "pod/default/app1-5f7d9c6b8-w7r2n"
POD_81 = "pod/default/app1-5f7d9c6b8-z8h4k"
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "ip-192-168-1-70.eu-west-2.compute.internal"
ROUTER_A = "02:00:c0:a8:01:01"  # talk-walks §2.2: router MAC of 192.168.1.0/24

Json = dict[str, Any]


def walk_json(src: str, dst: str, *args: str) -> Json:
    result = CliRunner().invoke(app, ["walk", src, dst, "--json", *args])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "eksnet.walk/1"
    walk: Json = document["walk"]
    return walk


def hop_in(walk: Json, namespace: str) -> Json:
    hops = [hop for hop in walk["hops"] if hop["where"]["name"] == namespace]
    assert len(hops) == 1, [hop["where"]["name"] for hop in walk["hops"]]
    return hops[0]


def decisions(hop: Json, kind: str) -> list[str]:
    return [
        decision["text"]
        for step in hop["steps"]
        if step["kind"] == "route"
        for decision in step["decided_by"]
        if decision["kind"] == kind
    ]


def path(walk: Json) -> list[tuple[str, str | None, str | None]]:
    return [(hop["where"]["kind"], hop["iif"], hop["oif"]) for hop in walk["hops"]]


def assert_no_nat(walk: Json) -> None:
    first = walk["hops"][0]["packet_out"]
    for hop in walk["hops"]:
        assert not [step for step in hop["steps"] if step["kind"] == "nat"]
        for packet in (hop["packet_in"], hop["packet_out"]):
            if packet is not None:
                assert (packet["src"], packet["dst"], packet["sport"], packet["dport"]) == (
                    first["src"],
                    first["dst"],
                    first["sport"],
                    first["dport"],
                )


@pytest.fixture(scope="module")
def w0() -> Json:
    return walk_json(POD_61, POD_71, "--port", "80", "--sport", "42000")


@pytest.fixture(scope="module")
def w1() -> Json:
    return walk_json(POD_51, POD_61, "--port", "80")


@pytest.fixture(scope="module")
def w2() -> Json:
    return walk_json(POD_51, POD_81, "--port", "80")


def test_w0_node1_uses_rule_1536_table_2_via_router_on_eth1(w0: Json) -> None:
    node1 = hop_in(w0, NODE_1)
    assert decisions(node1, "rule") == ["1536:\tfrom 192.168.1.61 lookup 2"]
    assert decisions(node1, "route") == ["default via 192.168.1.1 dev eth1"]
    assert node1["oif"] == "eth1"
    # via the router even though .71 is in 192.168.1.0/24
    assert node1["packet_out"]["dst_mac"] == ROUTER_A
    assert node1["packet_out"]["src_mac"] == "02:00:c0:a8:01:3c"


def test_w0_node2_delivers_with_rule_512(w0: Json) -> None:
    node2 = hop_in(w0, NODE_2)
    assert node2["iif"] == "eth0"
    assert decisions(node2, "rule") == ["512:\tfrom all to 192.168.1.71 lookup main"]
    assert node2["oif"] == "eni724343586e6"
    # routed by the VPC router: the router's MAC arrives as source (talk-walks §3 W0 hop 4)
    assert node2["packet_in"]["src_mac"] == ROUTER_A
    assert w0["disposition"]["kind"] == "delivered"


def test_w0_reply_direct_on_l2_into_node1_eth1(w0: Json) -> None:
    reply = w0["reply"]
    node2 = hop_in(reply, NODE_2)
    assert node2["oif"] == "eth0"
    assert decisions(node2, "rule") == ["32766:\tfrom all lookup main"]
    assert node2["packet_out"]["dst_mac"] == "02:00:c0:a8:01:3c"
    node1 = hop_in(reply, NODE_1)
    assert node1["iif"] == "eth1"
    assert decisions(node1, "rule") == ["512:\tfrom all to 192.168.1.61 lookup main"]
    assert reply["disposition"]["kind"] == "delivered"


def test_w0_no_nat_and_conntrack_mark_0_on_both_nodes(w0: Json) -> None:
    assert_no_nat(w0)
    assert_no_nat(w0["reply"])
    records = w0["conntrack"]
    assert sorted(record["namespace"] for record in records) == [NODE_1, NODE_2]
    for record in records:
        assert record["mark"] == 0 and not record["nat"]
        assert "src=192.168.1.61 dst=192.168.1.71 sport=42000 dport=80" in record["text"]
        assert "src=192.168.1.71 dst=192.168.1.61 sport=80 dport=42000" in record["text"]


def test_w1_hops_stay_on_node1(w1: Json) -> None:
    assert path(w1) == [
        ("pod", None, "eth0"),
        ("node", "enib9b00b57dd4", "eni69e05c2a0e5"),
        ("pod", "eth0", None),
    ]
    frames = [(hop["packet_out"] or {}) for hop in w1["hops"][:2]]
    assert (frames[0]["src_mac"], frames[0]["dst_mac"]) == (
        "2a:00:c0:a8:01:33",
        "2e:00:c0:a8:01:33",
    )
    assert (frames[1]["src_mac"], frames[1]["dst_mac"]) == (
        "06:5e:c8:ae:85:be",
        "6a:40:16:85:c3:34",
    )
    assert not [hop for hop in w1["hops"] if hop["where"]["kind"] == "vpc"]


def test_w1_rules_512_both_ways_and_one_entry(w1: Json) -> None:
    node1 = hop_in(w1, NODE_1)
    assert decisions(node1, "rule") == ["512:\tfrom all to 192.168.1.61 lookup main"]
    reply_node1 = hop_in(w1["reply"], NODE_1)
    # 512 for .51 wins over 1536 from .61 (priority 512 < 1536)
    assert decisions(reply_node1, "rule") == ["512:\tfrom all to 192.168.1.51 lookup main"]
    assert reply_node1["oif"] == "enib9b00b57dd4"
    assert_no_nat(w1)
    assert [(r["namespace"], r["mark"], r["nat"]) for r in w1["conntrack"]] == [(NODE_1, 0, False)]


def test_w2_forward(w2: Json) -> None:
    node1 = hop_in(w2, NODE_1)
    assert decisions(node1, "rule") == ["32766:\tfrom all lookup main"]
    assert decisions(node1, "route") == [
        "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.50"
    ]
    assert node1["oif"] == "eth0"
    assert node1["packet_out"]["dst_mac"] == "02:00:c0:a8:01:50"  # node 2's eth1
    node2 = hop_in(w2, NODE_2)
    assert node2["iif"] == "eth1"
    assert decisions(node2, "rule") == ["512:\tfrom all to 192.168.1.81 lookup main"]
    pod81 = w2["hops"][-1]
    assert pod81["where"]["kind"] == "pod" and pod81["packet_in"]["ttl"] == 62
    assert_no_nat(w2)


def test_w2_return_via_table_2_and_the_router(w2: Json) -> None:
    reply = w2["reply"]
    node2 = hop_in(reply, NODE_2)
    assert decisions(node2, "rule") == ["1536:\tfrom 192.168.1.81 lookup 2"]
    assert decisions(node2, "route") == ["default via 192.168.1.1 dev eth1"]
    assert node2["oif"] == "eth1"
    assert node2["packet_out"]["dst_mac"] == ROUTER_A
    node1 = hop_in(reply, NODE_1)
    assert node1["iif"] == "eth0"
    assert decisions(node1, "rule") == ["512:\tfrom all to 192.168.1.51 lookup main"]
    assert reply["disposition"]["kind"] == "delivered"
    assert_no_nat(reply)


def test_walk_text_names_every_hop() -> None:
    result = CliRunner().invoke(app, ["walk", POD_51, POD_81, "--port", "80"])
    assert result.exit_code == 0, result.output
    for expected in (  # rich expands the tab after the priority; the rest is ip's text
        "32766:",
        "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.50",
        "from all to 192.168.1.81 lookup main",
        "1536:",
        "from 192.168.1.81 lookup 2",
        "default via 192.168.1.1 dev eth1",
        "from all to 192.168.1.51 lookup main",
        "delivered",
    ):
        assert expected in result.stdout


def test_tour_shows_w0_to_w2() -> None:
    result = CliRunner().invoke(app, ["tour"])
    assert result.exit_code == 0, result.output
    for walk_id in ("W0", "W1", "W2"):
        assert f"{walk_id} —" in result.stdout
    assert "1536:\tfrom 192.168.1.61 lookup 2" in result.stdout  # the slide's ip rule show
