"""The lab's security groups, NACLs, NAT gateway and IMDS as planned (pure: no root needed).

Expected lines come from the specs the demo encodes (talk-walks.md §2.2: sg-cluster's rules, the
NAT gateway 192.168.0.10 in nat-a; vpc-fabric.md §2, §3, §5, §8.4) and from nft's own syntax;
that the kernel then does what the lines say is `test_vpc_fabric_lab.py`'s business.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from eksnet.controllers import build_state
from eksnet.dataplane.security import NaclEntry, NetworkAcl, SgRule
from eksnet.dataplane.state import DataplaneState
from eksnet.lab import filters
from eksnet.lab.attachments import attachments
from eksnet.lab.names import LabNames
from eksnet.lab.plan import build_plan
from eksnet.model import load_cluster

NAMES = LabNames("eksnet-unit-")
NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NAT = "nat-0a11c0ffee0000001"


def lines_of(state: DataplaneState) -> list[str]:
    return [line.strip() for line in build_plan(state, NAMES).fabric.nft.splitlines()]


def chain(lines: list[str], name: str) -> list[str]:
    start = lines.index(f"chain {name} {{")
    return lines[start + 1 : lines.index("}", start)]


def test_an_enis_groups_become_its_chain_with_the_counted_drop_last() -> None:
    lines = lines_of(build_state(load_cluster()))
    ingress = chain(lines, "sg_x0_ingress")
    # a reply of a tracked flow passes first (one set per protocol, one for the rest)
    assert ingress[0] == (
        "meta l4proto tcp oif . ip daddr . th dport . ip saddr . th sport @sg_tracked_tcp return"
    )
    assert "meta l4proto 6 th dport 30080 ip saddr { 0.0.0.0/0 } goto sg_allowed_ingress" in ingress
    # `from sg-cluster`: every private address of every ENI in the group, merged
    members = next(line for line in ingress if line.startswith("ip saddr { 192.168.1.50/31"))
    assert members.endswith("192.168.2.100/32 } goto sg_allowed_ingress")
    assert ingress[-1] == 'counter drop comment "security group, inbound"'
    egress = chain(lines, "sg_x0_egress")
    assert "ip daddr { 0.0.0.0/0 } goto sg_allowed_egress" in egress  # all traffic out
    assert egress[-1] == 'counter drop comment "security group, outbound"'
    assert (
        "add @sg_tracked_tcp { iif . ip saddr . th sport . ip daddr . th dport } return"
        in " ".join(chain(lines, "sg_allowed_egress"))
    )


def test_icmp_rules_carry_type_and_code() -> None:
    echo = SgRule("ingress", 1, 8, -1, cidr=IPv4Network("10.0.0.0/8"))
    any_icmp = SgRule("ingress", 1, -1, -1, cidr=IPv4Network("10.0.0.0/8"))
    vpc = build_state(load_cluster()).vpc
    assert filters._sg_match(vpc, echo) == "meta l4proto 1 icmp type 8 ip saddr { 10.0.0.0/8 }"
    assert filters._sg_match(vpc, any_icmp) == "meta l4proto 1 ip saddr { 10.0.0.0/8 }"


def test_a_nacl_is_its_entries_in_number_order() -> None:
    anywhere = IPv4Network("0.0.0.0/0")
    acl = NetworkAcl(
        "acl-1",
        ("a",),
        (
            NaclEntry(100, False, "allow", -1, anywhere),
            NaclEntry(90, False, "deny", 6, anywhere, 30080, 30080),
            NaclEntry(32767, False, "deny", -1, anywhere),
            NaclEntry(100, True, "allow", -1, anywhere),
            NaclEntry(32767, True, "deny", -1, anywhere),
        ),
    )
    lines = [line.strip() for line in filters.nacl_chains([acl])]
    assert chain(lines, "nacl_acl_1_ingress") == [
        'meta l4proto 6 th dport 30080 ip saddr 0.0.0.0/0 counter drop comment "network ACL, '
        'inbound"',
        "ip saddr 0.0.0.0/0 return",
        'ip saddr 0.0.0.0/0 counter drop comment "network ACL, inbound"',
    ]
    assert chain(lines, "nacl_acl_1_egress")[0] == "ip daddr 0.0.0.0/0 return"


def test_nacls_apply_where_the_frame_crosses_a_subnet() -> None:
    lines = lines_of(build_state(load_cluster()))
    assert "meta mark set iifname map @port_subnet" in lines
    post = chain(lines, "postrouting")
    assert post[2:4] == [
        "ether type ip meta mark != 0 oifname . meta mark != @in_subnet meta mark vmap "
        "@nacl_egress",
        "ether type ip oifname . meta mark != @in_subnet oifname vmap @nacl_ingress",
    ]
    assert post[-1] == "ether type ip oifname vmap @sg_ingress"


def test_the_nat_gateway_is_a_port_and_a_namespace() -> None:
    state = build_state(load_cluster(variant="nat"))
    plan = build_plan(state, NAMES)
    (gateway,) = [item for item in attachments(state) if item.kind == "nat-gateway"]
    assert gateway.place == NAT and gateway.device.mac == "02:00:c0:a8:00:0a"
    (port,) = [p for p in plan.fabric.ports if p.node == NAT]
    assert port.eni.id == "eni-0a11c0ffee00000a0" and not port.eni.source_dest_check
    namespace = next(ns for ns in plan.attachments if ns.state_name == NAT)
    assert namespace.netns == f"eksnet-unit-{NAT}"
    ops = [op.ip_line() for op in namespace.ops]
    assert "addr add 192.168.0.10/24 broadcast 192.168.0.255 scope global dev eth0" in ops
    assert "route add 0.0.0.0/0 via 192.168.0.1 dev eth0 table 254 proto boot scope global" in ops
    assert "neigh replace 192.168.0.1 lladdr 02:00:c0:a8:00:01 dev eth0 nud permanent" in ops
    assert ("net.ipv4.ip_forward", "1") in namespace.sysctls
    assert ("net.ipv4.conf.all.send_redirects", "0") in namespace.sysctls
    assert "snat to 192.168.0.10:1024-65535 fully-random" in namespace.nft
    assert 'ct state new counter drop comment "NAT gateway: no session"' in namespace.nft
    lines = lines_of(state)
    assert chain(lines, "to_nat_0a11c0ffee0000001") == [
        "ether saddr set 02:00:c0:a8:00:01 ether daddr set 02:00:c0:a8:00:0a counter accept "
        f'comment "to {NAT}"'
    ]
    route_table = next(line for line in lines if line.startswith("map route_table"))
    assert '"x0" . 0.0.0.0-192.167.255.255 : goto to_nat_0a11c0ffee0000001' in route_table
    assert any(line.startswith("link add eth0 index 2 address 02:00:c0:a8:00:0a") and
               f"peer name {port.port} " in line for line in plan.wires)  # fmt: skip


def test_the_imds_answers_with_each_instances_hop_limit() -> None:
    node = f"nodes.{NODE_1}.imds.hopLimit=2"
    for overrides, node_1_limit in (((), 1), ((node,), 2)):
        state = build_state(load_cluster(overrides=overrides))
        (imds,) = [item for item in attachments(state) if item.kind == "imds"]
        rule = next(line for line in imds.nft.splitlines() if "i-0a11c0ffee0000050" in line)
        assert rule.strip() == (
            "ip daddr { 192.168.1.50/32, 192.168.1.51/32, 192.168.1.60/32, 192.168.1.61/32 } "
            f'ip ttl set {node_1_limit} comment "hop limit of i-0a11c0ffee0000050"'
        )
    lines = lines_of(build_state(load_cluster()))
    prerouting = chain(lines, "prerouting")
    answer = prerouting[1]
    assert answer.startswith("iifname @instance_ports arp operation request arp daddr ip 169.254.")
    assert "ether daddr set ether saddr ether saddr set iifname map @port_router_mac" in answer
    source_check = next(i for i, line in enumerate(prerouting) if 'egress"' in line)
    to_imds = prerouting.index(
        "ether type ip ether daddr @routers ip daddr 169.254.169.254 iifname @instance_ports "
        "goto to_imds"
    )
    groups = prerouting.index("ether type ip iifname vmap @sg_egress")
    assert source_check < to_imds < groups  # §1.3: source check, host-served, then groups


def test_an_nlb_node_is_a_netdev_ingress_hook() -> None:
    """aws-load-balancers.md §2.2 on the demo's app1-nlb-local in AZ a: only node 2 is
    eligible (node 1's health server answers 503, node 3 is in AZ b with cross-zone off), its
    destination rewritten, the client kept; the answer gets the listener back."""
    state = build_state(load_cluster())
    balancer = state.vpc.load_balancer("service/default/app1-nlb-local")
    assert balancer is not None
    (node,) = [item for item in attachments(state) if item.place.endswith(
        f"{balancer.name}-eu-west-2a")]  # fmt: skip
    assert node.kind == "nlb" and node.device.mac == "02:00:c0:a8:01:6f"
    lines = [line.strip() for line in node.nft.splitlines()]
    assert "ip daddr 192.168.1.111 tcp dport 80 goto to_tcp80_0" in lines
    assert "ip daddr set 192.168.1.70 tcp dport set 30082 goto out" in lines
    assert (
        "ip saddr 192.168.1.70 tcp sport 30082 ip daddr != 192.168.1.111 ip saddr set "
        "192.168.1.111 tcp sport set 80 goto out"
    ) in lines
    fabric = lines_of(state)
    port = next(p for p in build_plan(state, NAMES).fabric.ports if p.eni.id == node.device.name
                or p.node == node.place)  # fmt: skip
    assert any(f"update @steer_{port.port}" in line for line in fabric)
    assert any(
        f"@steer_{port.port} ether saddr set 02:00:c0:a8:01:01 ether daddr set 02:00:c0:a8:01:6f"
        in line
        for line in fabric
    )


def test_an_nlb_node_holds_each_flow_on_the_target_it_drew() -> None:
    """aws-load-balancers.md §2.2: an NLB keeps a flow on its target. app1-nlb in AZ a has two
    eligible targets (nodes 1 and 2 on 30081): a client's first packet draws one and the draw
    is kept per client address and port, which a later packet looks up first."""
    state = build_state(load_cluster())
    balancer = state.vpc.load_balancer("service/default/app1-nlb")
    assert balancer is not None
    (node,) = [item for item in attachments(state) if item.place.endswith(
        f"{balancer.name}-eu-west-2a")]  # fmt: skip
    lines = [line.strip() for line in node.nft.splitlines()]
    assert (
        "map flows_tcp80 { type ipv4_addr . inet_service : mark; flags dynamic,timeout; "
        "timeout 1h; }"
    ) in lines
    choose = "meta mark vmap { 0 : goto to_tcp80_0, 1 : goto to_tcp80_1 }"
    held = f"ip daddr 192.168.1.101 tcp dport 80 meta mark set ip saddr . tcp sport map @flows_tcp80 {choose}"
    drawn = (
        "ip daddr 192.168.1.101 tcp dport 80 meta mark set numgen random mod 2 update "
        f"@flows_tcp80 {{ ip saddr . tcp sport : meta mark }} {choose}"
    )
    assert lines.index(held) + 1 == lines.index(drawn)
    assert "meta mark set 0x0 ip daddr set 192.168.1.50 tcp dport set 30081 goto out" in lines
