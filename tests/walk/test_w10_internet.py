"""Walk W10 (pod 51 → the internet server `web` 198.51.100.20:443 with VPC CNI SNAT) and W10b
(pod 61 → the same), through `eksnet walk --json`, checked against talk-walks.md §3 W10 and the
W10 assertions of §4.4. Expected values are the spec's (addresses, MACs, rule texts of §4.3,
the route table and internet gateway of §2.2), never copied from eksnet output; the port SNAT
chooses is the variable <P1>: 1024 ≤ P1 ≤ 65535 and the same wherever it appears.

Then the internet gateway's drops on small clusters of their own: a node without a public IP
(vpc-fabric.md §4, `igw-no-public-ip`), a table without a default route (§1.3 step 5,
`no-route`), and destinations the state does not hold. (A blackhole route cannot be written in
a spec whose tables must name declared targets: tests/vpc holds it to the state.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eksnet.cli import app

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
WEB = "ip/198.51.100.20"
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
IGW = "igw-0a11c0ffee0000001"
VPC = "vpc-0a11c0ffee0000001"
ROUTER_A = "02:00:c0:a8:01:01"  # §2.2: router MAC of 192.168.1.0/24
NODE_1_ETH0 = "02:00:c0:a8:01:32"  # §2.3
NODE_1_PUBLIC = "192.0.2.50"  # §2.3
# §4.3, node 1's nat table: the VPC CNI's connmark and SNAT rules
CONNMARK_R1 = (
    '-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR"'
    " -j RETURN"
)
CONNMARK_R2 = (
    '-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80'
)
C4 = (
    '-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80'
    " --ctmask 0x80"
)
S4 = (
    '-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL'
    " -j SNAT --to-source 192.168.1.50 --random-fully"
)
M1 = (
    '-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL'
    " --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80"
)

Json = dict[str, Any]


NOT_MODELLED = 3
"""`eksnet walk`'s exit status when the walk ends not modelled (errors.NotModelled)."""


def walk_json(src: str, dst: str, *args: str, status: int = 0) -> Json:
    result = CliRunner().invoke(app, ["walk", src, dst, "--json", *args])
    assert result.exit_code == status, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "eksnet.walk/1"
    walk: Json = document["walk"]
    return walk


def hops_in(walk: Json, kind: str, name: str) -> list[Json]:
    return [h for h in walk["hops"] if h["where"]["kind"] == kind and h["where"]["name"] == name]


def hop_in(walk: Json, kind: str, name: str) -> Json:
    found = hops_in(walk, kind, name)
    assert len(found) == 1, [(h["where"]["kind"], h["where"]["name"]) for h in walk["hops"]]
    return found[0]


def iptables(hop: Json, table: str) -> list[tuple[str, int, str]]:
    """(chain, position, text) of every rule the hop's `table` traversal quotes, in order."""
    return [
        (decision["chain"], decision["position"], decision["text"])
        for step in hop["steps"]
        if step["kind"] == "netfilter" and step["summary"].startswith(f"{table}/")
        for decision in step["decided_by"]
        if decision["kind"] == "iptables"
    ]


def route_decisions(hop: Json, kind: str) -> list[str]:
    return [
        decision["text"]
        for step in hop["steps"]
        if step["kind"] == "route"
        for decision in step["decided_by"]
        if decision["kind"] == kind
    ]


def vpc_decisions(hop: Json) -> list[str]:
    return [d["text"] for step in hop["steps"] for d in step["decided_by"] if d["kind"] == "vpc"]


def addresses(packet: Json) -> tuple[str, int, str, int]:
    return (packet["src"], packet["sport"], packet["dst"], packet["dport"])


def macs(packet: Json) -> tuple[str, str]:
    return (packet["src_mac"], packet["dst_mac"])


@pytest.fixture(scope="module")
def w10() -> Json:
    return walk_json(POD_51, WEB, "--port", "443", "--sport", "41000")


@pytest.fixture(scope="module")
def p1(w10: Json) -> int:
    """<P1>: the port node 1's SNAT chose (read where the spec puts it: node 1's eth0 frame)."""
    port: int = hop_in(w10, "node", NODE_1)["packet_out"]["sport"]
    assert 1024 <= port <= 65535
    return port


def test_w10_path_pod_node_vpc_gateway_web(w10: Json) -> None:
    assert [(h["where"]["kind"], h["where"]["name"]) for h in w10["hops"][1:]] == [
        ("node", NODE_1),
        ("vpc", VPC),
        ("vpc", IGW),
        ("external", "web"),
    ]
    assert w10["hops"][0]["where"]["kind"] == "pod"
    assert w10["disposition"]["kind"] == "delivered"
    assert w10["disposition"]["where"]["name"] == "web"
    assert w10["reply"]["disposition"]["kind"] == "delivered"


def test_w10_pod_51_frame_on_the_veth(w10: Json) -> None:
    pod = w10["hops"][0]
    assert pod["oif"] == "eth0"
    assert macs(pod["packet_out"]) == ("2a:00:c0:a8:01:33", "2e:00:c0:a8:01:33")
    assert addresses(pod["packet_out"]) == ("192.168.1.51", 41000, "198.51.100.20", 443)
    assert pod["packet_out"]["tcp_flags"] == "S"


def test_w10_node1_nat_prerouting_connmark_path(w10: Json) -> None:
    node1 = hop_in(w10, "node", NODE_1)
    assert node1["iif"] == "enib9b00b57dd4"
    nat = iptables(node1, "nat")
    pre = [rule for rule in nat if rule[0] != "POSTROUTING" and "SNAT" not in rule[2]]
    # KUBE-SERVICES, where present, does not match: nothing DNATs the destination
    assert not [r for r in pre if r[0].startswith("KUBE-") and "DNAT" in r[2]]
    # → AWS-CONNMARK-CHAIN-0 r2 (the VPC-CIDR RETURN r1 does not match) → C4
    assert ("AWS-CONNMARK-CHAIN-0", 2, CONNMARK_R2) in pre
    assert not [r for r in pre if r[2] == CONNMARK_R1]
    assert pre.index(("AWS-CONNMARK-CHAIN-0", 2, CONNMARK_R2)) < [r[2] for r in pre].index(C4)
    for step in node1["steps"]:
        assert not (step["kind"] == "nat" and step["before"]["dst"] != step["after"]["dst"])


def test_w10_node1_routes_by_rule_1024_with_mark_0x80(w10: Json) -> None:
    node1 = hop_in(w10, "node", NODE_1)
    assert route_decisions(node1, "rule") == ["1024:\tfrom all fwmark 0x80/0x80 lookup main"]
    assert route_decisions(node1, "route") == ["default via 192.168.1.1 dev eth0"]
    routed = next(step for step in node1["steps"] if step["kind"] == "route")
    assert routed["before"]["mark"] == 0x80  # C4 restored it from the ct mark
    assert node1["oif"] == "eth0"


def test_w10_node1_snat_by_the_last_rule_of_aws_snat_chain(w10: Json, p1: int) -> None:
    node1 = hop_in(w10, "node", NODE_1)
    post = [rule for rule in iptables(node1, "nat") if rule[0] == "AWS-SNAT-CHAIN-0"]
    # §4.3: AWS-SNAT-CHAIN-0 holds the VPC-CIDR RETURN, then S4; S4 (rule 2, the last) SNATs
    assert post == [("AWS-SNAT-CHAIN-0", 2, S4)]
    out = node1["packet_out"]
    assert addresses(out) == ("192.168.1.50", p1, "198.51.100.20", 443)
    assert macs(out) == (NODE_1_ETH0, ROUTER_A)
    snat = [s for s in node1["steps"] if s["kind"] == "nat"]
    assert len(snat) == 1 and snat[0]["chosen"] == [p1]


def test_w10_vpc_route_table_sends_it_to_the_internet_gateway(w10: Json) -> None:
    vpc = hop_in(w10, "vpc", VPC)
    assert (vpc["iif"], vpc["oif"]) == ("eni-01a00000000000050", IGW)
    assert f"rtb-public: 0.0.0.0/0 → {IGW}" in vpc_decisions(vpc)
    # the VPC router keeps the TTL (vpc-fabric.md §1.8): 63 after node 1's forwarding
    assert vpc["packet_out"]["ttl"] == vpc["packet_in"]["ttl"] == 63


def test_w10_gateway_translates_the_source_keeping_the_port(w10: Json, p1: int) -> None:
    gateway = hop_in(w10, "vpc", IGW)
    assert gateway["where"]["label"] == "internet gateway"
    assert addresses(gateway["packet_in"]) == ("192.168.1.50", p1, "198.51.100.20", 443)
    assert addresses(gateway["packet_out"]) == (NODE_1_PUBLIC, p1, "198.51.100.20", 443)
    nat = next(step for step in gateway["steps"] if step["kind"] == "nat")
    assert (nat["before"]["src"], nat["after"]["src"]) == ("192.168.1.50", NODE_1_PUBLIC)


def test_w10_the_internet_server_sees_the_public_ip(w10: Json, p1: int) -> None:
    web = hop_in(w10, "external", "web")
    assert "198.51.100.20" in web["where"]["label"]
    assert addresses(web["packet_in"]) == (NODE_1_PUBLIC, p1, "198.51.100.20", 443)
    assert web["oif"] is None


def test_w10_conntrack_on_node_1(w10: Json, p1: int) -> None:
    records = w10["conntrack"] + w10["reply"]["conntrack"]
    assert {record["namespace"] for record in records} == {NODE_1}  # the gateway keeps no state
    for record in records:
        text = record["text"]
        original = "src=192.168.1.51 dst=198.51.100.20 sport=41000 dport=443"
        reply = f"src=198.51.100.20 dst=192.168.1.50 sport=443 dport={p1}"
        assert f"{original} " in text and text.index(original) < text.index(reply)
        assert "mark=128" in text and record["mark"] == 128 and record["nat"]


def test_w10_return_through_the_gateway_to_pod_51(w10: Json, p1: int) -> None:
    reply = w10["reply"]
    assert [(h["where"]["kind"], h["where"]["name"]) for h in reply["hops"][:4]] == [
        ("external", "web"),
        ("vpc", IGW),
        ("vpc", VPC),
        ("node", NODE_1),
    ]
    web = reply["hops"][0]
    assert addresses(web["packet_out"]) == ("198.51.100.20", 443, NODE_1_PUBLIC, p1)
    gateway = hop_in(reply, "vpc", IGW)
    assert addresses(gateway["packet_out"]) == ("198.51.100.20", 443, "192.168.1.50", p1)
    # delivered by the VPC router to node 1's eth0: router MAC → the ENI's MAC
    node1 = hop_in(reply, "node", NODE_1)
    assert node1["iif"] == "eth0"
    assert macs(node1["packet_in"]) == (ROUTER_A, NODE_1_ETH0)
    assert addresses(node1["packet_in"]) == ("198.51.100.20", 443, "192.168.1.50", p1)
    # M1 (destination local) keeps the ct mark 0x80; un-SNAT; rule 512 to .51
    assert ("PREROUTING", 1, M1) in iptables(node1, "mangle")
    assert route_decisions(node1, "rule") == ["512:\tfrom all to 192.168.1.51 lookup main"]
    assert node1["oif"] == "enib9b00b57dd4"
    out = node1["packet_out"]
    assert macs(out) == ("2e:00:c0:a8:01:33", "2a:00:c0:a8:01:33")
    assert addresses(out) == ("198.51.100.20", 443, "192.168.1.51", 41000)
    assert out["tcp_flags"] == "S."
    assert reply["hops"][-1]["where"]["kind"] == "pod"


def test_w10_p1_is_the_same_everywhere(w10: Json, p1: int) -> None:
    """Every packet carrying node 1's or its public address carries <P1> as its port."""
    ours = {"192.168.1.50", NODE_1_PUBLIC}
    seen: set[int] = set()
    for walk, field, port in ((w10, "src", "sport"), (w10["reply"], "dst", "dport")):
        for hop in walk["hops"]:
            for packet in (hop["packet_in"], hop["packet_out"]):
                if packet is not None and packet[field] in ours:
                    seen.add(packet[port])
    assert seen == {p1}


def test_w10b_pod_61_leaves_eth0_by_rule_1024_with_source_50() -> None:
    walk = walk_json(POD_61, WEB, "--port", "443", "--sport", "42000")
    node1 = hop_in(walk, "node", NODE_1)
    assert node1["iif"] == "eni69e05c2a0e5"
    # 1024 beats `1536: from 192.168.1.61 lookup 2`
    assert route_decisions(node1, "rule") == ["1024:\tfrom all fwmark 0x80/0x80 lookup main"]
    assert node1["oif"] == "eth0"
    port = node1["packet_out"]["sport"]
    assert 1024 <= port <= 65535
    assert addresses(node1["packet_out"]) == ("192.168.1.50", port, "198.51.100.20", 443)
    assert macs(node1["packet_out"]) == (NODE_1_ETH0, ROUTER_A)
    web = hop_in(walk, "external", "web")
    assert addresses(web["packet_in"]) == (NODE_1_PUBLIC, port, "198.51.100.20", 443)
    # return: in on eth0 (rp_filter 2 lets it in), un-SNAT to .61, rule 512 to .61
    back = hop_in(walk["reply"], "node", NODE_1)
    assert back["iif"] == "eth0"
    assert route_decisions(back, "rule") == ["512:\tfrom all to 192.168.1.61 lookup main"]
    assert back["oif"] == "eni69e05c2a0e5"
    assert addresses(back["packet_out"]) == ("198.51.100.20", 443, "192.168.1.61", 42000)
    assert walk["reply"]["disposition"]["kind"] == "delivered"


def test_tour_ends_with_w10_and_its_variants() -> None:
    from eksnet.walk.tour import TOUR

    w10 = next(walk for walk in TOUR if walk.id == "W10")
    assert (w10.src, w10.dst, w10.dport, w10.sport, w10.variant) == (POD_51, WEB, 443, 41000, None)
    assert [walk.id for walk in TOUR][-4:] == ["W10", "W10b", "W10c", "W10d"]
    assert [walk.variant for walk in TOUR][-2:] == ["nat", "externalSnat"]


# --- drops and what is not modelled, on clusters of their own ----------------------------------

CLUSTER = """\
name: edge
region: eu-west-2
vpc:
  id: vpc-0e0000000000000001
  cidrs: [10.1.0.0/16]
  internetGateway: igw-0e0000000000000001
  routerMac: "02:00:0a:01:{x}:01"
  subnets:
    - {name: a, az: eu-west-2a, cidr: 10.1.1.0/24, routeTable: TABLE}
  routeTables:
    public:
      - {dst: 10.1.0.0/16, target: local}
      - {dst: 0.0.0.0/0, target: igw-0e0000000000000001}
    closed:
      - {dst: 10.1.0.0/16, target: local}
nodes:
  - name: node-a
    subnet: a
    PUBLIC
    enis:
      - {linux: eth0, ifindex: 2, id: eni-0a, device: 0, mac: "02:00:0a:01:01:0a", primaryIp: 10.1.1.10, secondaryIps: [10.1.1.11]}
pods:
  - {name: client, node: node-a, eni: eth0, ip: 10.1.1.11}
externalHosts:
  - {name: web, ip: 198.51.100.20, port: 443}
"""


def edge_walk(
    tmp_path: Path, dst: str, *, table: str = "public", public: bool = True, status: int = 0
) -> Json:
    text = CLUSTER.replace("TABLE", table)
    text = text.replace("PUBLIC", "publicIp: 192.0.2.10" if public else "talkName: private")
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    args = ("--port", "443", "--cluster", str(path))
    return walk_json("pod/default/client", dst, *args, status=status)


def test_edge_cluster_reaches_the_internet(tmp_path: Path) -> None:
    """The control: the same cluster with a public IP and the default route gets there."""
    walk = edge_walk(tmp_path, WEB)
    assert walk["disposition"]["kind"] == "delivered"
    assert hop_in(walk, "external", "web")["packet_in"]["src"] == "192.0.2.10"


def test_a_node_without_a_public_ip_is_dropped_by_the_gateway(tmp_path: Path) -> None:
    walk = edge_walk(tmp_path, WEB, public=False)
    end = walk["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "igw-no-public-ip")
    assert (end["where"]["kind"], end["where"]["name"]) == ("vpc", "igw-0e0000000000000001")
    assert walk["hops"][-1]["packet_in"]["src"] == "10.1.1.10"  # node SNAT happened, then the IGW
    assert "10.1.1.10" in end["decided_by"][0]["text"]
    assert walk["reply"] is None


def test_a_table_without_a_default_route_drops_in_the_vpc(tmp_path: Path) -> None:
    walk = edge_walk(tmp_path, WEB, table="closed")
    end = walk["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "vpc-no-route")
    assert end["where"]["kind"] == "vpc" and end["where"]["name"] == "vpc-0e0000000000000001"
    assert [d["text"] for d in end["decided_by"]] == ["closed: no route to 198.51.100.20"]
    assert not hops_in(walk, "vpc", "igw-0e0000000000000001")


def test_an_address_no_external_host_has_is_not_modelled(tmp_path: Path) -> None:
    walk = edge_walk(tmp_path, "ip/203.0.113.99", status=NOT_MODELLED)
    end = walk["disposition"]
    assert end["kind"] == "not-modelled"
    assert "203.0.113.99" in end["reason"] and "externalHosts" in end["reason"]
    # it did leave through the gateway: what is missing is the host, not the way
    assert hop_in(walk, "vpc", "igw-0e0000000000000001")["packet_out"]["src"] == "192.0.2.10"
