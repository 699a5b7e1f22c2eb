"""Security groups and network ACLs judged against the examples of the AWS documentation that
vpc-fabric.md cites: EC2-CT's tracked/untracked worked example (§2.3), group references covering
every private address of member ENIs (§2.1), and the VPC-NACL custom ACL example (a 443 packet
allowed by rule 110, a 139 packet denied by `*`, §3). Expected values are the documentation's."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from eksnet.dataplane.security import (
    ALL_PROTOCOLS,
    NACL_DEFAULT_DENY,
    NaclEntry,
    NetworkAcl,
    PrefixList,
    SecurityGroup,
    SgRule,
)
from eksnet.dataplane.state import Eni, Subnet, VpcState
from eksnet.vpc import nacl
from eksnet.vpc.security_groups import Headers, Tracking, judge

A = IPv4Address
N = IPv4Network
TCP, ICMP = 6, 1
ANY = N("0.0.0.0/0")


def vpc(
    *groups: SecurityGroup, enis: tuple[Eni, ...] = (), lists: tuple[PrefixList, ...] = ()
) -> VpcState:
    return VpcState(
        "vpc-t",
        (N("10.0.0.0/16"),),
        (Subnet("a", N("10.0.1.0/24"), "az", "02:00:00:00:01:01", "rtb"),),
        enis,
        security_groups=groups,
        prefix_lists=lists,
    )


def eni(
    eni_id: str,
    primary: str,
    *groups: str,
    secondary: tuple[str, ...] = (),
    prefixes: tuple[str, ...] = (),
) -> Eni:
    return Eni(
        eni_id,
        "a",
        "02:00:00:00:01:" + primary.split(".")[-1].zfill(2)[-2:],
        A(primary),
        tuple(A(s) for s in secondary),
        tuple(N(p) for p in prefixes),
        security_groups=groups,
    )


def tcp(src: str, dst: str, dport: int, sport: int = 40000) -> Headers:
    return Headers(TCP, A(src), A(dst), sport, dport)


def reply(headers: Headers) -> Headers:
    return Headers(
        headers.protocol,
        headers.dst,
        headers.src,
        headers.dport,
        headers.sport,
        icmp_type=0 if headers.protocol == ICMP else None,
        icmp_code=0 if headers.protocol == ICMP else None,
        icmp_id=headers.icmp_id,
    )


# EC2-CT's example: inbound TCP 22 from 203.0.113.1/32, inbound TCP 80 from 0.0.0.0/0, inbound
# ICMP all from 0.0.0.0/0; outbound all to 0.0.0.0/0.
EXAMPLE = SecurityGroup(
    "sg-web",
    (
        SgRule("ingress", TCP, 22, 22, cidr=N("203.0.113.1/32")),
        SgRule("ingress", TCP, 80, 80, cidr=ANY),
        SgRule("ingress", ICMP, -1, -1, cidr=ANY),
        SgRule("egress", ALL_PROTOCOLS, None, None, cidr=ANY),
    ),
)
SERVER = eni("eni-s", "10.0.1.10", "sg-web")


def test_ssh_from_a_slash_32_is_tracked() -> None:
    state = vpc(EXAMPLE, enis=(SERVER,))
    verdict = judge(state, SERVER, "ingress", tcp("203.0.113.1", "10.0.1.10", 22), Tracking())
    assert verdict.allowed and verdict.rule is EXAMPLE.rules[0] and not verdict.untracked


def test_http_from_anywhere_with_outbound_all_is_untracked() -> None:
    state = vpc(EXAMPLE, enis=(SERVER,))
    verdict = judge(state, SERVER, "ingress", tcp("198.51.100.7", "10.0.1.10", 80), Tracking())
    assert verdict.allowed and verdict.untracked


def test_without_the_outbound_rule_every_flow_is_tracked_and_replies_pass_by_tracking() -> None:
    narrowed = SecurityGroup("sg-web", EXAMPLE.rules[:3])
    state = vpc(narrowed, enis=(SERVER,))
    request = tcp("198.51.100.7", "10.0.1.10", 80)
    verdict = judge(state, SERVER, "ingress", request, Tracking())
    assert verdict.allowed and not verdict.untracked
    # no outbound rule at all: only tracking lets the reply out
    assert not judge(state, SERVER, "egress", reply(request), Tracking()).allowed
    tracked = Tracking().with_flow(SERVER.id, request)
    out = judge(state, SERVER, "egress", reply(request), tracked)
    assert out.allowed and out.tracked


def test_a_tracked_flow_admits_its_later_packets_whatever_the_rules_say_now() -> None:
    # EC2-CT: "rule changes do not cut tracked flows" — an SSH session from the /32 goes on
    # after the inbound 22 rule is deleted.
    request = tcp("203.0.113.1", "10.0.1.10", 22)
    tracked = Tracking().with_flow(SERVER.id, request)
    without_22 = vpc(SecurityGroup("sg-web", EXAMPLE.rules[1:]), enis=(SERVER,))
    assert not judge(without_22, SERVER, "ingress", request, Tracking()).allowed
    later = judge(without_22, SERVER, "ingress", request, tracked)
    assert later.allowed and later.tracked and later.later
    assert "allowed as a later packet of a tracked flow" in later.text()


def test_the_reply_of_an_untracked_flow_is_judged_by_rules_and_stays_untracked() -> None:
    # vpc-fabric.md §2.3: an untracked flow's replies "are admitted by rules only"; the reply
    # is part of the same flow, so it does not start a tracked one.
    state = vpc(EXAMPLE, enis=(SERVER,))
    request = tcp("198.51.100.7", "10.0.1.10", 80)
    seen = Tracking().with_flow(SERVER.id, request, untracked=True)
    back = judge(state, SERVER, "egress", reply(request), seen)
    assert back.allowed and back.untracked and not back.tracked
    assert back.rule is EXAMPLE.rules[3]
    # without the memory of the untracked request, the reply alone looks like a new flow
    assert not judge(state, SERVER, "egress", reply(request), Tracking()).untracked


def test_icmp_is_always_tracked() -> None:
    state = vpc(EXAMPLE, enis=(SERVER,))
    ping = Headers(ICMP, A("198.51.100.7"), A("10.0.1.10"), icmp_type=8, icmp_code=0, icmp_id=7)
    assert not judge(state, SERVER, "ingress", ping, Tracking()).untracked


def test_an_unlisted_port_is_refused() -> None:
    state = vpc(EXAMPLE, enis=(SERVER,))
    verdict = judge(state, SERVER, "ingress", tcp("203.0.113.2", "10.0.1.10", 22), Tracking())
    assert not verdict.allowed and "no inbound rule" in verdict.text()


NODES = SecurityGroup("sg-nodes", (SgRule("ingress", ALL_PROTOCOLS, None, None, group="sg-nodes"),))


@pytest.mark.parametrize(
    "source, allowed",
    [
        ("10.0.1.20", True),  # a member's primary IP
        ("10.0.1.21", True),  # a member's secondary IP: a pod on the node
        ("10.0.1.40", True),  # inside a member's delegated /28 prefix
        ("10.0.1.99", False),  # no member owns it
    ],
)
def test_a_group_reference_is_every_private_address_of_its_members(
    source: str, allowed: bool
) -> None:
    member = eni(
        "eni-m", "10.0.1.20", "sg-nodes", secondary=("10.0.1.21",), prefixes=("10.0.1.32/28",)
    )
    target = eni("eni-t", "10.0.1.30", "sg-nodes")
    state = vpc(NODES, enis=(member, target))
    assert (
        judge(state, target, "ingress", tcp(source, "10.0.1.30", 443), Tracking()).allowed
        is allowed
    )


def test_a_prefix_list_peer_matches_any_of_its_cidrs() -> None:
    group = SecurityGroup("sg-pl", (SgRule("ingress", TCP, 443, 443, prefix_list="pl-1"),))
    server = eni("eni-s", "10.0.1.10", "sg-pl")
    state = vpc(
        group,
        enis=(server,),
        lists=(PrefixList("pl-1", (N("192.0.2.0/24"), N("198.51.100.0/24"))),),
    )
    assert judge(
        state, server, "ingress", tcp("198.51.100.9", "10.0.1.10", 443), Tracking()
    ).allowed
    assert not judge(
        state, server, "ingress", tcp("203.0.113.9", "10.0.1.10", 443), Tracking()
    ).allowed


# VPC-NACL's custom ACL example, inbound: 100 allow tcp 80, 110 allow tcp 443, 120 allow tcp 22
# from 192.0.2.0/24, 130 allow tcp 3389 from 192.0.2.0/24, 140 allow tcp 32768–65535, * deny.
CUSTOM = NetworkAcl(
    "acl-custom",
    ("a",),
    (
        NaclEntry(100, False, "allow", TCP, ANY, 80, 80),
        NaclEntry(110, False, "allow", TCP, ANY, 443, 443),
        NaclEntry(120, False, "allow", TCP, N("192.0.2.0/24"), 22, 22),
        NaclEntry(130, False, "allow", TCP, N("192.0.2.0/24"), 3389, 3389),
        NaclEntry(140, False, "allow", TCP, ANY, 32768, 65535),
        NaclEntry(NACL_DEFAULT_DENY, False, "deny", ALL_PROTOCOLS, ANY),
        NaclEntry(100, True, "allow", TCP, ANY, 80, 80),
        NaclEntry(NACL_DEFAULT_DENY, True, "deny", ALL_PROTOCOLS, ANY),
    ),
)


def test_the_documentations_443_packet_hits_rule_110() -> None:
    verdict = nacl.judge(CUSTOM, "a", egress=False, headers=tcp("198.51.100.7", "10.0.1.10", 443))
    assert verdict.allowed and verdict.entry.number == 110


def test_the_documentations_139_packet_hits_the_star_rule() -> None:
    verdict = nacl.judge(CUSTOM, "a", egress=False, headers=tcp("198.51.100.7", "10.0.1.10", 139))
    assert not verdict.allowed and verdict.entry.label() == "rule *"


def test_inbound_tests_the_source_outbound_the_destination() -> None:
    ssh = tcp("203.0.113.7", "10.0.1.10", 22)  # not from 192.0.2.0/24
    assert not nacl.judge(CUSTOM, "a", egress=False, headers=ssh).allowed
    out = tcp("10.0.1.10", "198.51.100.7", 80)
    assert nacl.judge(CUSTOM, "a", egress=True, headers=out).entry.number == 100


def test_a_reply_needs_its_own_ephemeral_allow() -> None:
    # stateless: the reply of an outbound connection comes back to an ephemeral port
    back = tcp("198.51.100.7", "10.0.1.10", 40000, sport=80)
    assert nacl.judge(CUSTOM, "a", egress=False, headers=back).entry.number == 140
    low = tcp("198.51.100.7", "10.0.1.10", 1025, sport=80)  # ELB/NAT-style port below 32768
    assert not nacl.judge(CUSTOM, "a", egress=False, headers=low).allowed


def test_a_nacl_without_its_star_entry_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\* entry"):
        NetworkAcl("acl-x", ("a",), (NaclEntry(100, False, "allow", TCP, ANY, 80, 80),))


def test_the_docs_page_holds_the_pipeline_table() -> None:
    from pathlib import Path

    from eksnet.vpc.pipeline import table

    page = Path(__file__).parents[2] / "docs" / "vpc-pipeline.md"
    assert table() in page.read_text()
