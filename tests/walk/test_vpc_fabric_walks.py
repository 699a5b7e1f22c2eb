"""The VPC fabric on the demo: W10c and W10d through the NAT gateway, W4's client through the
internet gateway and security group, a pod reaching IMDS, and the negative walks that name the
security group, the NACL rule and the route that dropped them.

Expected values are the specs': talk-walks.md §2.2 (addresses, the NAT gateway 192.168.0.10 and
its EIP 192.0.2.10, `sg-cluster`'s rules), §3 W4 and W10c/d, §4.4; vpc-fabric.md §1.3 (the
pipeline and its drop codes), §2 (security groups), §3 (NACLs), §5 (NAT gateway: SNAT to its
private IP, the internet gateway maps it to the EIP, TTL decremented), §8.4 (IMDS: token
responses carry TTL = the hop limit; the node's forward into the pod decrements it). Ports a NAT
picks are variables, the same wherever they appear.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eksnet.cli import app
from eksnet.model.load import demo_text

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
WEB = "ip/198.51.100.20"
CLIENT = "ip/203.0.113.10"
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NAT_GW = "nat-0a11c0ffee0000001"
NAT_ENI = "eni-0a11c0ffee00000a0"
NODE_1_ETH0 = "eni-01a00000000000050"
NODE_1_ETH1 = "eni-01a00000000000060"
IMDS = "ip/169.254.169.254"

Json = dict[str, Any]


def walk_json(src: str, dst: str, *args: str, status: int = 0) -> Json:
    result = CliRunner().invoke(app, ["walk", src, dst, "--json", *args])
    assert result.exit_code == status, result.output
    walk: Json = json.loads(result.stdout)["walk"]
    return walk


def hop_named(walk: Json, name: str) -> Json:
    found = [hop for hop in walk["hops"] if hop["where"]["name"] == name]
    assert len(found) == 1, [hop["where"]["name"] for hop in walk["hops"]]
    return found[0]


def packet(item: Json) -> tuple[str, int | None, str, int | None]:
    return (item["src"], item["sport"], item["dst"], item["dport"])


def flow_logs(walk: Json) -> list[tuple[str, str, str, str, str]]:
    """(ENI, direction, action, src, dst) of every flow-log record the walk's steps carry."""
    return [
        (
            seen["eni"],
            seen["direction"],
            seen["action"],
            seen["packet"]["src"],
            seen["packet"]["dst"],
        )
        for hop in walk["hops"]
        for step in hop["steps"]
        if (seen := step.get("seen_by")) is not None
    ]


def spec_with(tmp_path: Path, *edits: tuple[str, str]) -> str:
    text, _ = demo_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "talk.yaml"
    path.write_text(text)
    return str(path)


# --- W10c: node SNAT, then the NAT gateway ------------------------------------------------------


@pytest.fixture(scope="module")
def w10c() -> Json:
    return walk_json(POD_51, WEB, "--port", "443", "--variant", "nat")


def test_w10c_two_translations(w10c: Json) -> None:
    assert w10c["disposition"]["kind"] == "delivered"
    node = hop_named(w10c, NODE_1)["packet_out"]
    p1 = node["sport"]
    assert (node["src"], node["dst"], node["dport"]) == ("192.168.1.50", "198.51.100.20", 443)
    nat = hop_named(w10c, NAT_GW)
    assert packet(nat["packet_in"]) == ("192.168.1.50", p1, "198.51.100.20", 443)
    p4 = nat["packet_out"]["sport"]
    assert 1024 <= p4 <= 65535
    assert packet(nat["packet_out"]) == ("192.168.0.10", p4, "198.51.100.20", 443)
    assert nat["packet_out"]["ttl"] == nat["packet_in"]["ttl"] - 1  # the NAT gateway is a hop
    web = hop_named(w10c, "web")["packet_in"]
    assert packet(web) == ("192.0.2.10", p4, "198.51.100.20", 443)


def test_w10c_reply_undoes_both(w10c: Json) -> None:
    reply = w10c["reply"]
    assert reply["disposition"]["kind"] == "delivered"
    node = hop_named(w10c, NODE_1)["packet_out"]
    nat = hop_named(reply, NAT_GW)
    assert nat["packet_out"]["dst"] == "192.168.1.50"
    assert nat["packet_out"]["dport"] == node["sport"]
    pod = reply["hops"][-1]["packet_in"]
    assert (pod["dst"], pod["dport"]) == ("192.168.1.51", 41000)


def test_w10c_flow_logs_on_the_nat_eni(w10c: Json) -> None:
    # vpc-fabric.md §5.2/§6.4: the NAT ENI logs the node's .50 coming in and its own private
    # IP going out, never the EIP.
    records = flow_logs(w10c)
    assert (NAT_ENI, "ingress", "ACCEPT", "192.168.1.50", "198.51.100.20") in records
    assert (NAT_ENI, "egress", "ACCEPT", "192.168.0.10", "198.51.100.20") in records
    assert (NODE_1_ETH0, "egress", "ACCEPT", "192.168.1.50", "198.51.100.20") in records
    assert not any("192.0.2.10" in (src, dst) for _, _, _, src, dst in records)


# --- W10d: external SNAT, the NAT gateway the only translation -----------------------------


def test_w10d_pod_61_leaves_eth1_with_its_own_ip() -> None:
    walk = walk_json(POD_61, WEB, "--port", "443", "--variant", "externalSnat")
    assert walk["disposition"]["kind"] == "delivered"
    node = hop_named(walk, NODE_1)
    assert node["oif"] == "eth1"
    assert packet(node["packet_out"]) == ("192.168.1.61", 41000, "198.51.100.20", 443)
    assert hop_named(walk, "web")["packet_in"]["src"] == "192.0.2.10"
    # replies come back to the ENI that owns the pod's IP
    reply = walk["reply"]
    assert (NODE_1_ETH1, "ingress", "ACCEPT", "198.51.100.20", "192.168.1.61") in flow_logs(reply)
    assert reply["disposition"]["kind"] == "delivered"


def test_w10d_pod_51_leaves_eth0_with_its_own_ip() -> None:
    walk = walk_json(POD_51, WEB, "--port", "443", "--variant", "externalSnat")
    node = hop_named(walk, NODE_1)
    assert node["oif"] == "eth0"
    assert node["packet_out"]["src"] == "192.168.1.51"
    assert hop_named(walk, "web")["packet_in"]["src"] == "192.0.2.10"


# --- W4's client through the internet gateway and sg-cluster --------------------------------


def test_w4_client_enters_through_the_gateway_and_the_nodeport_rule() -> None:
    walk = walk_json(CLIENT, f"node/{NODE_1}", "--port", "30080", "--seed", "0")
    vpc = walk["hops"][2]
    assert vpc["where"]["kind"] == "vpc"
    assert packet(vpc["packet_in"]) == ("203.0.113.10", 51000, "192.168.1.50", 30080)
    texts = [d["text"] for step in vpc["steps"] for d in step["decided_by"]]
    assert any("sg-cluster" in text and "tcp 30080 from 0.0.0.0/0" in text for text in texts)
    assert (NODE_1_ETH0, "ingress", "ACCEPT", "203.0.113.10", "192.168.1.50") in flow_logs(walk)


# --- IMDS from a pod ----------------------------------------------------------------------


def test_imds_token_response_dies_at_the_nodes_forward_with_hop_limit_1() -> None:
    walk = walk_json(POD_51, IMDS, "--port", "80")
    assert walk["disposition"]["kind"] == "delivered"  # IMDS got the request (SNATed to .50)
    served = walk["hops"][-1]
    assert served["packet_in"]["src"] == "192.168.1.50"
    assert not flow_logs(walk)  # never logged, no SG or NACL
    reply = walk["reply"]
    assert reply["hops"][0]["packet_out"]["ttl"] == 1
    end = reply["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "ttl")
    assert end["where"]["name"] == NODE_1


def test_imds_with_hop_limit_2_arrives(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        ("imds: {httpTokens: required, hopLimit: 1}", "imds: {httpTokens: required, hopLimit: 2}"),
    )
    walk = walk_json(POD_51, IMDS, "--port", "80", "--cluster", spec)
    reply = walk["reply"]
    assert reply["disposition"]["kind"] == "delivered"
    arrived = reply["hops"][-1]["packet_in"]
    assert (arrived["dst"], arrived["ttl"]) == ("192.168.1.51", 1)


# --- negative walks -------------------------------------------------------------------------


def test_without_the_nodeport_rule_sg_cluster_drops_at_node_1s_eni(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        (
            '        - {protocol: tcp, ports: "30080", source: 0.0.0.0/0, description: user-added '
            "for the NodePort walk}\n",
            "",
        ),
    )
    walk = walk_json(CLIENT, f"node/{NODE_1}", "--port", "30080", "--cluster", spec)
    end = walk["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "sg-ingress")
    assert "sg-cluster" in end["reason"] and NODE_1_ETH0 in end["reason"]
    assert (NODE_1_ETH0, "ingress", "REJECT", "203.0.113.10", "192.168.1.50") in flow_logs(walk)
    assert walk["reply"] is None


NACL = """\
  networkAcls:
    acl-0a11c0ffee0000001:
      subnets: [public-a]
      inbound:
        - {rule: 90, action: deny, protocol: tcp, ports: "30080", cidr: 0.0.0.0/0}
        - {rule: 100, action: allow, protocol: all, cidr: 0.0.0.0/0}
      outbound:
        - {rule: 100, action: allow, protocol: all, cidr: 0.0.0.0/0}
  flowLogs:
"""


def test_a_nacl_deny_names_its_rule_number(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, ("  flowLogs:\n", NACL))
    walk = walk_json(CLIENT, f"node/{NODE_1}", "--port", "30080", "--cluster", spec)
    end = walk["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "nacl-ingress")
    assert "acl-0a11c0ffee0000001" in end["reason"] and "rule 90" in end["reason"]
    # the inbound deny is logged REJECT on the ENI whose traffic it is (vpc-fabric.md §1.3)
    assert (NODE_1_ETH0, "ingress", "REJECT", "203.0.113.10", "192.168.1.50") in flow_logs(walk)


def test_the_nacl_leaves_other_ports_alone(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, ("  flowLogs:\n", NACL))
    walk = walk_json(POD_51, WEB, "--port", "443", "--cluster", spec)
    assert walk["disposition"]["kind"] == "delivered"
    texts = [d["text"] for h in walk["hops"] for s in h["steps"] for d in s["decided_by"]]
    assert (
        "acl-0a11c0ffee0000001 (public-a) outbound: rule 100 allow all traffic to 0.0.0.0/0"
        in texts
    )


def test_a_route_to_a_deleted_nat_gateway_is_a_blackhole(tmp_path: Path) -> None:
    # rtb-private-a routes 0.0.0.0/0 to the NAT gateway, which exists only under the nat
    # variants: without them the route is a blackhole (AWS's State: blackhole).
    spec = spec_with(
        tmp_path,
        (
            "{name: public-a, az: eu-west-2a, azId: euw2-az2, cidr: 192.168.1.0/24, routeTable: rtb-public,",
            "{name: public-a, az: eu-west-2a, azId: euw2-az2, cidr: 192.168.1.0/24, routeTable: rtb-private-a,",
        ),
    )
    walk = walk_json(POD_51, WEB, "--port", "443", "--cluster", spec)
    end = walk["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "vpc-blackhole")
    assert "rtb-private-a" in end["reason"] and NAT_GW in end["reason"]


def test_a_private_ip_without_a_public_one_is_dropped_at_the_gateway(tmp_path: Path) -> None:
    # external SNAT in a public subnet: pod 61 leaves eth1 with its own IP, which has no public
    # IPv4 (vpc-fabric.md §9 gotcha 10).
    spec = spec_with(
        tmp_path,
        (
            'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false"}',
            'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "true"}',
        ),
    )
    walk = walk_json(POD_61, WEB, "--port", "443", "--cluster", spec)
    end = walk["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "igw-no-public-ip")
    assert "192.168.1.61" in end["reason"]


def test_the_nat_gateway_drops_what_comes_from_outside_without_a_session() -> None:
    walk = walk_json(CLIENT, "ip/192.0.2.10", "--port", "443", "--variant", "nat")
    end = walk["disposition"]
    assert (end["kind"], end["code"]) == ("dropped", "natgw-no-session")
    assert end["where"]["name"] == NAT_GW


def test_an_elastic_ip_on_a_secondary_ip_takes_a_pod_out_with_external_snat(tmp_path: Path) -> None:
    # vpc-fabric.md §4: an EIP may sit on any private IP of any ENI; with external SNAT pod 61
    # leaves eth1 with its own IP, and the internet gateway maps it to the EIP.
    spec = spec_with(
        tmp_path,
        (
            'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false"}',
            'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "true"}',
        ),
        (
            "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: [sg-cluster]}",
            "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: [sg-cluster],\n"
            "         elasticIps: [{privateIp: 192.168.1.61, publicIp: 192.0.2.61}]}",
        ),
    )
    walk = walk_json(POD_61, WEB, "--port", "443", "--cluster", spec)
    assert walk["disposition"]["kind"] == "delivered"
    assert hop_named(walk, "web")["packet_in"]["src"] == "192.0.2.61"
    assert walk["reply"]["disposition"]["kind"] == "delivered"
