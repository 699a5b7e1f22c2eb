"""Security groups, NACLs, prefix lists, NAT gateways and IMDS options in a spec: each mistake is
one error on its line with a fix, and what is right reaches the state as AWS holds it."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from eksnet.controllers import build_state
from eksnet.controllers.vpc_filters import DEFAULT_NACL
from eksnet.errors import InputError
from eksnet.model import parse_cluster
from eksnet.model.load import demo_text

DEMO, SOURCE = demo_text()
NODE_PORT_RULE = (
    '        - {protocol: tcp, ports: "30080", source: 0.0.0.0/0, description: user-added for the '
    "NodePort walk}\n"
)


def edit(old: str, new: str, text: str = DEMO) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        build_state(parse_cluster(text, SOURCE))
    return caught.value


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


@pytest.mark.parametrize(
    "rule, says",
    [
        ('{protocol: tcp, ports: "80-70", source: 0.0.0.0/0}', "not a range within 0–65535"),
        ('{protocol: all, ports: "80", source: 0.0.0.0/0}', "a rule for all traffic has no ports"),
        ('{protocol: icmp, ports: "x", source: 0.0.0.0/0}', "ICMP rules give a type"),
        ('{protocol: tcp, ports: "80", source: sg-nowhere}', "not a CIDR, a declared prefix list"),
        ('{protocol: tcp, ports: "80", destination: 0.0.0.0/0}', "has a source, not a destination"),
        ('{protocol: gre, ports: "80", source: 0.0.0.0/0}', "is not a protocol"),
    ],
)
def test_a_bad_security_group_rule_is_named_on_its_line(rule: str, says: str) -> None:
    text = edit(NODE_PORT_RULE, f"        - {rule}\n")
    error = error_of(text)
    assert error.line == line_of(text, rule) and says in str(error), str(error)


def test_an_eni_without_a_group_is_refused_once_groups_are_declared() -> None:
    old = "primaryIp: 192.168.2.100, secondaryIps: [], securityGroups: [sg-cluster]}"
    text = edit(old, "primaryIp: 192.168.2.100, secondaryIps: []}")
    error = error_of(text)
    assert "eni-01a00000000000100 has no security group" in str(error)


NACLS = """\
  networkAcls:
    acl-a:
      subnets: [public-a]
      inbound: [{rule: 100, action: allow, protocol: all, cidr: 0.0.0.0/0}]
      outbound: [{rule: 100, action: allow, protocol: all, cidr: 0.0.0.0/0}]
    acl-b:
      subnets: [SUBNETS]
      inbound: [{rule: 100, action: deny, protocol: tcp, ports: "22", cidr: 0.0.0.0/0}, RULE]
  flowLogs:
"""


def with_nacls(
    subnets: str = "public-b",
    rule: str = "{rule: 200, action: allow, protocol: all, cidr: 0.0.0.0/0}",
) -> str:
    return edit("  flowLogs:\n", NACLS.replace("SUBNETS", subnets).replace("RULE", rule))


def test_nacls_reach_the_state_with_their_star_entries_and_the_default_for_the_rest() -> None:
    state = build_state(parse_cluster(with_nacls(), SOURCE))
    vpc = state.vpc
    assert vpc.network_acl("public-a").id == "acl-a"  # type: ignore[union-attr]
    guard_b = vpc.network_acl("public-b")
    assert guard_b is not None and guard_b.id == "acl-b"
    inbound = [(e.number, e.action, e.protocol, e.from_port) for e in guard_b.ordered(egress=False)]
    assert inbound == [(100, "deny", 6, 22), (200, "allow", -1, None), (32767, "deny", -1, None)]
    # acl-b lists no outbound rule: only `*`, a custom NACL denies what it does not allow
    assert [e.number for e in guard_b.ordered(egress=True)] == [32767]
    default = vpc.network_acl("public-c")
    assert default is not None and default.id == DEFAULT_NACL and default.default


def test_a_subnet_in_two_nacls_is_refused() -> None:
    text = with_nacls(subnets="public-a")
    error = error_of(text)
    assert "already guarded by NACL acl-a" in str(error)


def test_two_nacl_rules_with_one_number_are_refused() -> None:
    text = with_nacls(rule="{rule: 100, action: allow, protocol: all, cidr: 0.0.0.0/0}")
    assert "two inbound rules numbered 100" in str(error_of(text))


def test_a_prefix_list_route_expands_to_its_cidrs() -> None:
    text = edit(
        "  flowLogs:\n",
        "  prefixLists:\n    pl-0a11c0ffee0000001: [198.51.100.0/24, 203.0.113.0/24]\n  flowLogs:\n",
    )
    text = edit(
        "      - {dst: 0.0.0.0/0, target: igw-0a11c0ffee0000001}\n    rtb-private-a:",
        "      - {dst: 0.0.0.0/0, target: igw-0a11c0ffee0000001}\n"
        "      - {dst: pl-0a11c0ffee0000001, target: igw-0a11c0ffee0000001}\n    rtb-private-a:",
        text,
    )
    table = build_state(parse_cluster(text, SOURCE)).vpc.route_table("rtb-public")
    listed = [(str(r.destination), r.prefix_list) for r in table.routes if r.prefix_list]
    assert listed == [
        ("198.51.100.0/24", "pl-0a11c0ffee0000001"),
        ("203.0.113.0/24", "pl-0a11c0ffee0000001"),
    ]


def test_an_undeclared_prefix_list_route_is_refused() -> None:
    text = edit(
        "      - {dst: 0.0.0.0/0, target: igw-0a11c0ffee0000001}\n    rtb-private-a:",
        "      - {dst: 0.0.0.0/0, target: igw-0a11c0ffee0000001}\n"
        "      - {dst: pl-0bad, target: igw-0a11c0ffee0000001}\n    rtb-private-a:",
    )
    assert "prefix list pl-0bad is not declared" in str(error_of(text))


def test_the_nat_gateway_and_its_eni_reach_the_state() -> None:
    state = build_state(parse_cluster(DEMO, SOURCE, variant="nat"))
    gateway = state.vpc.nat_gateway("nat-0a11c0ffee0000001")
    assert gateway is not None and gateway.private_ip == IPv4Address("192.168.0.10")
    eni = state.vpc.eni("eni-0a11c0ffee00000a0")
    assert (eni.interface_type, eni.source_dest_check, eni.security_groups) == (
        "nat_gateway",
        False,
        (),
    )
    assert eni.primary_ip == IPv4Address("192.168.0.10") and eni.subnet == "nat-a"
    assert state.vpc.public_ip_of(IPv4Address("192.168.0.10")).public_ip == IPv4Address(
        "192.0.2.10"
    )  # type: ignore[union-attr]


def test_a_public_nat_gateway_needs_an_eip() -> None:
    text = edit("privateIp: 192.168.0.10, publicIp: 192.0.2.10,", "privateIp: 192.168.0.10,")
    assert "a public NAT gateway needs an elastic IP" in str(error_of(text))


def test_imds_options_default_from_node_defaults() -> None:
    state = build_state(parse_cluster(DEMO, SOURCE))
    assert {(i.http_tokens, i.hop_limit) for i in state.vpc.instances} == {("required", 1)}
    text = edit(
        "    instanceId: i-0a11c0ffee0000050\n",
        "    instanceId: i-0a11c0ffee0000050\n    imds: {hopLimit: 2}\n",
    )
    instance = build_state(parse_cluster(text, SOURCE)).vpc.instance(
        "ip-192-168-1-50.eu-west-2.compute.internal"
    )
    # a node's own imds overrides the defaults field by field
    assert instance is not None and (instance.http_tokens, instance.hop_limit) == ("required", 2)


def test_a_hop_limit_outside_1_to_64_is_refused() -> None:
    text = edit(
        "imds: {httpTokens: required, hopLimit: 1}", "imds: {httpTokens: required, hopLimit: 65}"
    )
    error = error_of(text)
    assert error.line == line_of(text, "hopLimit: 65") and "64" in str(error)


def test_vpc_route_state_blackhole_for_the_missing_nat_gateway() -> None:
    table = build_state(parse_cluster(DEMO, SOURCE)).vpc.route_table("rtb-private-a")
    route = next(r for r in table.routes if r.destination == IPv4Network("0.0.0.0/0"))
    assert route.state == "blackhole"


@pytest.mark.parametrize(
    "eip, says",
    [
        ("{privateIp: 192.168.1.99, publicIp: 192.0.2.61}", "not one of its private IPs"),
        ("{privateIp: 192.168.1.61, publicIp: 192.168.9.9}", "inside the VPC"),
        ("{privateIp: 192.168.1.61, publicIp: 192.0.2.50}", "used twice"),
    ],
)
def test_a_bad_elastic_ip_is_named_on_its_line(eip: str, says: str) -> None:
    text = edit(
        "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: [sg-cluster]}",
        "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: [sg-cluster],\n"
        f"         elasticIps: [{eip}]}}",
    )
    error = error_of(text)
    assert error.line == line_of(text, "elasticIps") and says in str(error), str(error)


def test_an_elastic_ip_on_the_auto_assigned_address_is_refused() -> None:
    text = edit(
        "primaryIp: 192.168.1.50, secondaryIps: [192.168.1.51], securityGroups: [sg-cluster]}",
        "primaryIp: 192.168.1.50, secondaryIps: [192.168.1.51], securityGroups: [sg-cluster],\n"
        "         elasticIps: [{privateIp: 192.168.1.50, publicIp: 192.0.2.150}]}",
    )
    assert "EC2 releases the first for the second" in str(error_of(text))


def test_a_bad_flow_log_format_in_the_spec_names_its_line() -> None:
    text = edit("${log-status} ${pkt-srcaddr}", "${log-status} ${pkt-srcadr}")
    error = error_of(text)
    assert error.line == line_of(text, "${pkt-srcadr}") and "did you mean pkt-srcaddr" in str(error)
