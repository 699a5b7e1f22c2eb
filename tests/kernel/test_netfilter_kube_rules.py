"""What else kube-proxy and kubelet write: `nfacct` counting, REJECT's spellings, the
KUBE-FIREWALL `! --ctstate RELATED,ESTABLISHED,DNAT` rule, target-less rules, `! --mark`."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from eksnet.errors import InputError
from eksnet.kernel.conntrack import NatRequest, apply_nat
from eksnet.kernel.netfilter import NfEnv, NfPacket, parse_ruleset, traverse

A = IPv4Address
NO_LOCAL = NfEnv(addr_type=lambda address, device: "UNICAST")

REJECT_SPELLINGS = {
    "icmp-net-unreachable": "icmp-net-unreachable",
    "net-unreach": "icmp-net-unreachable",
    "icmp-host-unreachable": "icmp-host-unreachable",
    "host-unreach": "icmp-host-unreachable",
    "icmp-port-unreachable": "icmp-port-unreachable",
    "port-unreach": "icmp-port-unreachable",
    "icmp-proto-unreachable": "icmp-proto-unreachable",
    "proto-unreach": "icmp-proto-unreachable",
    "icmp-net-prohibited": "icmp-net-prohibited",
    "net-prohib": "icmp-net-prohibited",
    "icmp-host-prohibited": "icmp-host-prohibited",
    "host-prohib": "icmp-host-prohibited",
    "icmp-admin-prohibited": "icmp-admin-prohibited",
    "admin-prohib": "icmp-admin-prohibited",
    "tcp-reset": "tcp-reset",
    "tcp-rst": "tcp-reset",
}
"""Each spelling as iptables 1.8.9 (both back ends) printed it back, measured on 6.18."""


@pytest.mark.parametrize(("given", "printed"), sorted(REJECT_SPELLINGS.items()))
def test_every_reject_spelling_comes_out_as_printed(given: str, printed: str) -> None:
    ruleset = parse_ruleset(f"*filter\n-A INPUT -p tcp -j REJECT --reject-with {given}\nCOMMIT\n")
    packet = NfPacket.new_connection(A("10.0.0.1"), A("10.0.0.2"), "tcp", 1, 2)
    (outcome,) = traverse(ruleset, "filter", "INPUT", packet, NO_LOCAL)
    assert (outcome.verdict, outcome.reject_with) == ("REJECT", printed)


@pytest.mark.parametrize("given", ["echo-reply", "icmp-echo-reply", "bogus"])
def test_reject_types_iptables_refuses(given: str) -> None:
    with pytest.raises(InputError, match="unknown reject type"):
        parse_ruleset(f"*filter\n-A INPUT -p tcp -j REJECT --reject-with {given}\nCOMMIT\n")


def test_nfacct_counts_whenever_it_is_evaluated() -> None:
    """[meas] `-m nfacct --nfacct-name A -m mark --mark 0x1` on a mark-0 packet: A counted, the
    rule did not match; `-m mark --mark 0x1 -m nfacct --nfacct-name B`: B not counted (the
    mark failed first); a target-less `-m nfacct --nfacct-name B` counts B and the rule."""
    text = (
        "*filter\n"
        "-A OUTPUT -p udp -m nfacct --nfacct-name  A -m mark --mark 0x1 -j ACCEPT\n"
        "-A OUTPUT -p udp -m mark --mark 0x1 -m nfacct --nfacct-name  B -j ACCEPT\n"
        "-A OUTPUT -p udp -m nfacct --nfacct-name  B\n"
        "COMMIT\n"
    )
    packet = NfPacket.new_connection(A("127.0.0.1"), A("127.0.0.1"), "udp", 5000, 9)
    (outcome,) = traverse(parse_ruleset(text), "filter", "OUTPUT", packet, NO_LOCAL)
    assert outcome.nfacct == ("A", "B")
    assert outcome.matched() == (("filter", "OUTPUT", 3),)


KUBE_FIREWALL = """\
*filter
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FIREWALL -m mark ! --mark 0x4000/0x4000
COMMIT
"""


def test_kube_firewall_spares_dnated_localhost_traffic() -> None:
    """kubelet's rule (kube-proxy.md §8.2): a non-loopback source to 127/8 is dropped unless
    its connection was DNATed there (a localhost NodePort) or is established."""
    ruleset = parse_ruleset(KUBE_FIREWALL)
    first = NfPacket.new_connection(A("10.0.0.9"), A("127.0.0.1"), "tcp", 1, 30080, iif="eth0")
    (dropped,) = traverse(ruleset, "filter", "INPUT", first, NO_LOCAL)
    assert dropped.verdict == "DROP"
    bound = NfPacket.new_connection(A("10.0.0.9"), A("10.0.0.5"), "tcp", 1, 30080, iif="eth0")
    assert bound.ct is not None
    dnat = apply_nat(bound.ct, NatRequest("DNAT", A("127.0.0.1"), to_ports=(30080, 30080)),
                     A("127.0.0.1"), 30080)  # fmt: skip
    (kept,) = traverse(ruleset, "filter", "INPUT", replace(bound, dst=A("127.0.0.1"), ct=dnat),
                       NO_LOCAL)  # fmt: skip
    assert kept.verdict == "ACCEPT"
    # the target-less `! --mark` rule only counts, for an unmarked packet
    assert kept.matched() == (("filter", "INPUT", 1), ("filter", "KUBE-FIREWALL", 2))
    marked = replace(bound, dst=A("127.0.0.1"), ct=dnat, mark=0x4000)
    (counted,) = traverse(ruleset, "filter", "INPUT", marked, NO_LOCAL)
    assert counted.matched() == (("filter", "INPUT", 1),)
