"""The talk's load balancer walks W5–W9 on the demo, forward and return.

Every expected value is talk-walks.md §3 (W5, W5b, W6, W7, W8, W9 and their tables) or
aws-load-balancers.md §2–§4: who picks which target, what is rewritten where, which rule the
reply takes, what the client sees. Ports a load balancer or a MASQUERADE picks are the walk's
chosen values (`<P1>`, `<P2>`, `<P3>` in the spec) and are not pinned here.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from eksnet.controllers import build_state
from eksnet.dataplane.flow_log_format import parse_format
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError
from eksnet.model import load_cluster
from eksnet.render.flow_logs import records
from eksnet.walk.engine import walk
from eksnet.walk.model import Hop, Packet, Walk

CLIENT = "ip/203.0.113.10"
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "ip-192-168-1-70.eu-west-2.compute.internal"
POD_61 = "cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935"
POD_71 = "cni-7a0e9d14-2c6b-4f3a-9b85-1d2e3f4a5b71"


@pytest.fixture(scope="module")
def demo() -> DataplaneState:
    return build_state(load_cluster())


def leaves(result: Walk) -> dict[str, tuple[float, Walk]]:
    return {label: (p, leaf) for p, label, leaf in result.leaves()}


def leaf(result: Walk, *parts: str) -> Walk:
    found = [w for label, (_, w) in leaves(result).items() if all(p in label for p in parts)]
    assert len(found) == 1, list(leaves(result))
    return found[0]


def hop(result: Walk, name: str) -> Hop:
    found = [h for h in result.hops if h.where.name == name]
    assert found, [h.where.name for h in result.hops]
    return found[0]


def lb_hop(result: Walk) -> Hop:
    (found,) = [h for h in result.hops if h.where.name.startswith("lb:")]
    return found


def ends(packet: Packet | None) -> tuple[str, int | None, str, int | None]:
    assert packet is not None
    return (str(packet.src), packet.sport, str(packet.dst), packet.dport)


def client_sees(result: Walk) -> tuple[str, int | None]:
    assert result.reply is not None and result.reply.disposition is not None
    assert result.reply.disposition.kind == "delivered"
    last = result.reply.hops[-1].packet_in
    assert last is not None and str(last.dst) == "203.0.113.10"
    return (str(last.src), last.sport)


def test_w5_nlb_instance_targets(demo: DataplaneState) -> None:
    result = walk(demo, CLIENT, "lb/default/app1-nlb", dport=80, az="eu-west-2a")
    ways = leaves(result)
    # AZ a, cross-zone off: node 1 or node 2 (1/2), then KUBE-SVC's three endpoints (1/3)
    assert len(ways) == 6 and all(p == pytest.approx(1 / 6) for p, _ in ways.values())
    talk = leaf(result, "i-0a11c0ffee0000050", "192.168.1.71")
    nlb = lb_hop(talk)
    # only the destination is rewritten: the client's address is preserved
    assert ends(nlb.packet_out) == ("203.0.113.10", 51000, "192.168.1.50", 30081)
    node_1 = hop(talk, NODE_1)
    assert ends(node_1.packet_in) == ("203.0.113.10", 51000, "192.168.1.50", 30081)
    # node 1's entry after the reply (talk-walks.md W5: both NATs, connmark 0x80)
    assert talk.reply is not None
    (entry,) = [r.text for r in talk.reply.conntrack if r.namespace == NODE_1]
    assert "src=203.0.113.10 dst=192.168.1.50 sport=51000 dport=30081 src=192.168.1.71 " in entry
    assert "dst=192.168.1.50 sport=80 dport=" in entry and "mark=128" in entry
    # the reply leaves node 1 for the client and is steered back through the NLB node
    assert talk.reply is not None
    steering = [s for h in talk.reply.hops for s in h.steps if s.summary.startswith("steered")]
    assert steering
    assert client_sees(talk) == ("192.0.2.101", 80)


def test_w5_flow_logs_on_the_nlb_eni_front_and_back(demo: DataplaneState) -> None:
    """aws-load-balancers.md §4.7: every connection twice on the NLB ENI."""
    result = leaf(
        walk(demo, CLIENT, "lb/default/app1-nlb", dport=80, az="eu-west-2a"),
        "i-0a11c0ffee0000050",
        "192.168.1.71",
    )
    fmt = parse_format("${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr}")
    logged = [r.line for r in records(result, demo.vpc, fmt) if r.eni == "eni-0e1bc0a80165"]
    # front end: client ↔ NLB; back end: NLB ↔ target, the client's address only in
    # pkt-srcaddr (vpc-fabric.md §6.4: srcaddr is the logging ENI's own primary IP)
    assert logged == [
        "eni-0e1bc0a80165 203.0.113.10 192.168.1.101 51000 80 203.0.113.10",
        "eni-0e1bc0a80165 192.168.1.101 192.168.1.50 51000 30081 203.0.113.10",
        "eni-0e1bc0a80165 192.168.1.50 192.168.1.101 30081 51000 192.168.1.50",
        "eni-0e1bc0a80165 192.168.1.101 203.0.113.10 80 51000 192.168.1.101",
    ]


def opened(result: Walk) -> Walk:
    """The proxy's own connection (`Walk.backend`): the client's ends at the proxy."""
    assert result.backend is not None
    assert result.disposition is not None and "proxy" in result.disposition.reason
    return result.backend


def test_w5b_the_clb_is_a_proxy(demo: DataplaneState) -> None:
    result = walk(demo, CLIENT, "lb/default/app1-clb", dport=80, az="eu-west-2a")
    talk = leaf(result, "i-0a11c0ffee0000050", "192.168.1.71")
    src, _, dst, dport = ends(opened(talk).hops[0].packet_out)
    assert (src, dst, dport) == ("192.168.1.131", "192.168.1.50", 30083)
    (entry,) = [r.text for r in opened(talk).conntrack if r.namespace == NODE_1]
    assert "src=192.168.1.131 dst=192.168.1.50" in entry and "dport=30083" in entry
    assert client_sees(talk) == ("192.0.2.131", 80)


def test_w6_etp_local_only_node_2_no_snat(demo: DataplaneState) -> None:
    result = walk(demo, CLIENT, "lb/default/app1-nlb-local", dport=80, az="eu-west-2a")
    ways = leaves(result)
    # node 1 is unhealthy (kube-proxy's health server: 503) and never chosen: node 2 only,
    # then KUBE-SVL's two local endpoints
    assert len(ways) == 2 and all(p == pytest.approx(1 / 2) for p, _ in ways.values())
    talk = leaf(result, "192.168.1.71")
    health = next(s for s in lb_hop(talk).steps if s.summary.startswith("health check"))
    assert "i-0a11c0ffee0000050:30082 unhealthy" in health.summary and "503" in health.summary
    assert "i-0a11c0ffee0000070:30082 healthy" in health.summary
    assert ends(lb_hop(talk).packet_out) == ("203.0.113.10", 51000, "192.168.1.70", 30082)
    # DNAT only: pod 71 sees the client
    assert ends(hop(talk, POD_71).packet_in) == ("203.0.113.10", 51000, "192.168.1.71", 80)
    assert talk.reply is not None
    node_2 = hop(talk.reply, NODE_2)
    assert node_2.oif == "eth0"
    assert ends(node_2.packet_out) == ("192.168.1.70", 30082, "203.0.113.10", 51000)
    assert any("1024:" in d.text for s in node_2.steps for d in s.decided_by)
    assert client_sees(talk) == ("192.0.2.111", 80)
    # the case rule 1024 exists for: pod 81's reply leaves eth0 too
    other = leaf(result, "192.168.1.81")
    assert other.reply is not None and hop(other.reply, NODE_2).oif == "eth0"


def test_w7_target_type_ip_skips_the_nodes_nat(demo: DataplaneState) -> None:
    result = walk(demo, CLIENT, "lb/default/app1-nlb-ip", dport=80, az="eu-west-2a")
    assert set(leaves(result)) == {"NLB → 192.168.1.71:80", "NLB → 192.168.1.81:80"}
    talk = leaf(result, "192.168.1.71")
    src, _, dst, dport = ends(lb_hop(talk).packet_out)
    assert (src, dst, dport) == ("192.168.1.121", "192.168.1.71", 80)
    node_2 = hop(talk, NODE_2)
    assert node_2.packet_in is not None
    assert (node_2.packet_in.src_mac, node_2.packet_in.dst_mac) == (
        "02:00:c0:a8:01:79",
        "02:00:c0:a8:01:46",
    )
    (entry,) = [r.text for r in talk.conntrack if r.namespace == NODE_2]
    assert "src=192.168.1.121 dst=192.168.1.71" in entry and entry.endswith("mark=0 use=1")
    assert client_sees(talk) == ("192.0.2.121", 80)
    via_eth1 = leaf(result, "192.168.1.81")
    assert via_eth1.reply is not None
    reply_node = hop(via_eth1.reply, NODE_2)
    assert reply_node.oif == "eth1"
    assert any(d.text.startswith("1536:") for s in reply_node.steps for d in s.decided_by)


def test_w8_order_and_rating_and_404(demo: DataplaneState) -> None:
    order = walk(
        demo, CLIENT, "ingress/default/myingress", dport=80, host="www.example.com", path="/order"
    )
    # cross-zone on: all three order pods, 1/3 each
    assert len(leaves(order)) == 3
    talk = leaf(order, "192.168.1.71")
    rule = next(s for s in lb_hop(talk).steps if s.summary.startswith("listener"))
    assert "priority 2" in rule.summary
    rating = walk(
        demo, CLIENT, "ingress/default/myingress", dport=80, host="www.example.com", path="/rating"
    )
    alb = lb_hop(rating)
    assert "priority 1" in next(s.summary for s in alb.steps if s.summary.startswith("listener"))
    backend = opened(rating)
    src, _, dst, dport = ends(backend.hops[0].packet_out)
    assert (src, dst, dport) == ("192.168.1.141", "192.168.1.61", 80)
    assert any("X-Forwarded-For: 203.0.113.10" in s.summary for s in alb.steps)
    assert hop(backend, NODE_1).iif == "eth1"
    assert hop(backend, POD_61).packet_in is not None
    assert backend.reply is not None
    back = hop(backend.reply, NODE_1)
    assert back.oif == "eth1"
    assert any(d.text.startswith("1536:") for s in back.steps for d in s.decided_by)
    assert client_sees(rating) == ("192.0.2.141", 80)
    nope = walk(
        demo, CLIENT, "ingress/default/myingress", dport=80, host="www.example.com", path="/nope"
    )
    assert nope.disposition is not None and "fixed-response 404" in nope.disposition.reason
    assert not [h for h in nope.hops if h.where.kind in ("node", "pod")]
    assert nope.backend is None
    assert client_sees(nope) == ("192.0.2.141", 80)


def test_w9_dns_the_alb_in_az_c_cross_zone(demo: DataplaneState) -> None:
    result = walk(demo, CLIENT, "dns/www.example.com", dport=80, az="eu-west-2c", path="/order")
    talk = leaf(result, "192.168.1.71")
    first = talk.hops[0] if talk.hops else result.hops[0]
    dns = next(s for s in first.steps if s.kind == "dns")
    assert "192.0.2.141, 192.0.2.142, 192.0.2.143" in dns.summary and "192.0.2.143" in dns.summary
    gateway = next(h for h in result.hops + talk.hops if h.where.kind == "vpc" and h.packet_out)
    assert gateway.packet_out is not None and str(gateway.packet_out.dst) == "192.168.3.141"
    src, _, dst, _ = ends(opened(talk).hops[0].packet_out)
    assert (src, dst) == ("192.168.3.141", "192.168.1.71")
    node_2 = hop(opened(talk), NODE_2)
    assert node_2.packet_in is not None
    # from subnet c to subnet a: through the router
    assert (node_2.packet_in.src_mac, node_2.packet_in.dst_mac) == (
        "02:00:c0:a8:01:01",
        "02:00:c0:a8:01:46",
    )
    assert client_sees(talk) == ("192.0.2.143", 80)


def test_bad_load_balancer_questions_are_input_errors(demo: DataplaneState) -> None:
    with pytest.raises(InputError, match="no node in eu-west-2z"):
        walk(demo, CLIENT, "lb/default/app1-nlb", dport=80, az="eu-west-2z")
    with pytest.raises(InputError, match="not LoadBalancer"):
        walk(demo, CLIENT, "lb/default/app1", dport=80)
    with pytest.raises(InputError, match="HTTP request"):
        walk(demo, CLIENT, "lb/default/app1-nlb", dport=80, path="/x")
    with pytest.raises(InputError, match="listens on 80"):
        walk(demo, CLIENT, "lb/default/app1-nlb", dport=443)
    with pytest.raises(InputError, match="--az, --host and --path"):
        walk(demo, CLIENT, "pod/default/app1-5f7d9c6b8-w7r2n", dport=80, az="eu-west-2a")
    assert IPv4Address("192.0.2.101") in {p.public_ip for p in demo.vpc.public_ips}


def test_an_nlb_zone_without_a_healthy_target_leaves_dns(tmp_path: Path) -> None:
    """aws-load-balancers.md §2.2: app1-nlb-local has no node in eu-west-2c (cross-zone off), so
    its AZ-c address is not answered."""
    from eksnet.model.load import demo_text

    text, _ = demo_text()
    record = "  - {name: www.example.com,"
    extra = (
        "  - {name: local.example.com, type: A, alias: service/app1-nlb-local, "
        "answers: [192.0.2.111, 192.0.2.112, 192.0.2.113]}\n"
    )
    assert text.count(record) == 1
    path = tmp_path / "dns.yaml"
    path.write_text(text.replace(record, extra + record))
    state = build_state(load_cluster(str(path)))
    result = walk(state, CLIENT, "dns/local.example.com", dport=80)
    first = result.hops[0] if result.hops else next(iter(result.leaves()))[2].hops[0]
    dns = next(s for s in first.steps if s.kind == "dns")
    assert "192.0.2.113 left out: no healthy target in its AZ" in dns.summary
    with pytest.raises(InputError, match="eu-west-2c has no healthy target"):
        walk(state, CLIENT, "dns/local.example.com", dport=80, az="eu-west-2c")


def test_an_nlbs_own_eni_tracks_every_flow(demo: DataplaneState) -> None:
    """vpc-fabric.md §2.3: NLB connections are tracked automatically, though the NLB's frontend
    group (inbound tcp 80 from 0.0.0.0/0, outbound all) would leave a plain ENI's flow
    untracked; so its reply passes the NLB's ENI as the reply of a tracked flow."""
    (_, leaf), *_ = leaves(
        walk(demo, CLIENT, "lb/default/app1-nlb-ip", dport=80, az="eu-west-2a")
    ).values()
    assert leaf.reply is not None

    def verdicts(part: Walk) -> list[str]:
        return [
            step.summary
            for hop in part.hops
            for step in hop.steps
            if step.kind == "security-group" and "on eni-0e1b" in step.summary
        ]

    there, back = verdicts(leaf), verdicts(leaf.reply)
    assert there and back
    assert all(summary.endswith("; tracked") for summary in there), there
    assert all(summary.endswith("; tracked reply") for summary in back), back
