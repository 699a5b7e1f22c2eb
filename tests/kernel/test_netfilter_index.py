"""The per-chain index gives exactly the linear scan's outcomes (kernel/netfilter/index.py).

Random rulesets: chains of rules mixing what the index files rules under (`-d A/32`, `-p`,
exact `--dport`) with what it must not (inverted matches, ranges, prefixes, statistic draws,
`recent` and `nfacct` state placed before or after the port, unmodelled matches, jumps, gotos,
returns, marks), and random packets with random `recent` lists. The indexed traversal and the
linear one must agree on everything: outcomes, probabilities, traces, packets, lists, counts —
or raise the same NotModelled. Then the same property is run against indexes broken on purpose
and must fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from eksnet.errors import InputError, NotModelled
from eksnet.kernel.netfilter import (
    EMPTY_RECENT,
    NfEnv,
    NfOutcome,
    NfPacket,
    parse_ruleset,
    traverse,
)
from eksnet.kernel.netfilter import index as index_module
from eksnet.kernel.netfilter.recent import RecentCheck, RecentSpec, recent_match
from eksnet.kernel.netfilter.ruleset import AddressMatch, ProtocolMatch, Rule

A = IPv4Address
ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.1.7")
PORTS = (80, 81, 1500, 9)


def addr_type(address: IPv4Address, device: str | None) -> str:
    return "LOCAL" if address == A("10.0.0.1") else "UNICAST"


ENV = NfEnv(addr_type=addr_type, now=50.0)

# --- random rulesets ----------------------------------------------------------------------


@st.composite
def rules(draw: st.DrawFn, chain: int, chains: int) -> str:
    """One `-A` line for chain `chain` (U0 is INPUT's callee …) that iptables would accept."""
    words: list[str] = []
    if draw(st.booleans()):
        words.append(f"{draw(st.sampled_from(['', '! ']))}-s {draw(st.sampled_from(ADDRESSES))}/32")
    if draw(st.integers(0, 3)):
        network = draw(st.sampled_from([*(f"{a}/32" for a in ADDRESSES), "10.0.0.0/24"]))
        words.append(f"{draw(st.sampled_from(['', '', '', '! ']))}-d {network}")
    proto = draw(st.sampled_from(["tcp", "tcp", "udp", "sctp", "icmp", None, "!tcp"]))
    if proto == "!tcp":
        words.append("! -p tcp")
    elif proto is not None:
        words.append(f"-p {proto}")
    modules: list[str] = []
    if proto in ("tcp", "udp", "sctp") and draw(st.integers(0, 3)):
        port = draw(st.sampled_from([*(str(p) for p in PORTS), "1000:2000"]))
        negated = draw(st.sampled_from(["", "", "! "]))
        side = draw(st.sampled_from(["--dport", "--dport", "--sport"]))
        modules.append(f"-m {proto} {negated}{side} {port}")
    if proto in ("tcp", "udp", "sctp") and draw(st.integers(0, 4)) == 0:
        modules.append("-m multiport --dports 80,81")
    extras = [
        "-m comment --comment x",
        "-m mark --mark 0x1/0x1",
        "-m mark ! --mark 0x1/0x1",
        "-m statistic --mode random --probability 0.50000000000",
        "-m recent --set --name R --mask 255.255.255.255 --rsource",
        "-m recent --rcheck --seconds 10 --reap --name R --mask 255.255.255.255 --rsource",
        "-m recent --update --name R2 --mask 255.255.255.0 --rdest",
        "-m nfacct --nfacct-name  N",
        "-m conntrack --ctstate NEW",
        "-m addrtype --dst-type LOCAL",
        "-m set --match-set X src",
    ]
    modules += draw(st.lists(st.sampled_from(extras), max_size=2))
    words += draw(st.permutations(modules))
    targets = ["-j ACCEPT", "-j DROP", "-j RETURN", "", "-j MARK --set-xmark 0x1/0x1",
               "-j LOG --log-prefix x"]  # fmt: skip
    if chain + 1 < chains:
        later = draw(st.integers(chain + 1, chains - 1))
        targets += [f"-j U{later}", f"-j U{later}", f"-g U{later}"]
    words.append(draw(st.sampled_from(targets)))
    name = "INPUT" if chain < 0 else f"U{chain}"
    return " ".join(["-A", name, *[w for w in words if w]])


@st.composite
def rulesets(draw: st.DrawFn) -> str:
    chains = draw(st.integers(1, 3))
    lines = ["*filter", ":INPUT DROP [0:0]", *(f":U{i} - [0:0]" for i in range(chains))]
    for chain in range(-1, chains):
        count = draw(st.integers(0, 24))
        lines += [draw(rules(chain, chains)) for _ in range(count)]
        if chain == -1:
            lines.append("-A INPUT -j U0")
    return "\n".join([*lines, "COMMIT", ""])


@st.composite
def packets(draw: st.DrawFn) -> NfPacket:
    proto = draw(st.sampled_from(["tcp", "udp", "sctp", "icmp"]))
    src = A(draw(st.sampled_from(ADDRESSES)))
    dst = A(draw(st.sampled_from(ADDRESSES)))
    if proto == "icmp":
        packet = NfPacket.new_connection(src, dst, "icmp", icmp_type=8, icmp_code=0, icmp_id=1)
    else:
        sport, dport = draw(st.sampled_from(PORTS)), draw(st.sampled_from(PORTS))
        packet = NfPacket.new_connection(src, dst, proto, sport, dport)  # type: ignore[arg-type]
    return replace(packet, mark=draw(st.sampled_from([0, 1])), iif="eth0")


@st.composite
def recents(draw: st.DrawFn) -> object:
    tables = EMPTY_RECENT
    for address in draw(st.lists(st.sampled_from(ADDRESSES), max_size=3)):
        when = draw(st.sampled_from([0.0, 45.0]))
        _, tables = recent_match(
            tables, RecentCheck("set", "R"), RecentSpec(), src=A(address), dst=A(address),
            ttl=64, now=when,
        )  # fmt: skip
    return tables


def run(
    text: str, packet: NfPacket, recent: object, *, linear: bool
) -> tuple[NfOutcome, ...] | str:
    try:
        return traverse(
            parse_ruleset(text),
            "filter",
            "INPUT",
            packet,
            ENV,
            recent=recent,
            linear=linear,  # type: ignore[arg-type]
        )
    except NotModelled as error:
        return f"not modelled: {error.what}"


def same_outcomes(text: str, packet: NfPacket, recent: object) -> None:
    """The property: indexed and linear traversal cannot be told apart."""
    try:
        parse_ruleset(text)
    except InputError:
        assume(False)
    linear = run(text, packet, recent, linear=True)
    indexed = run(text, packet, recent, linear=False)
    assert indexed == linear, f"\n{text}\n{packet}"
    if isinstance(linear, tuple):
        assert sum(o.probability for o in linear) == 1


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture()
def small_chains_indexed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Index every chain of two rules or more, so random rulesets exercise the index."""
    monkeypatch.setattr(index_module, "INDEX_MIN_RULES", 2)


@PROPERTY
@given(rulesets(), packets(), recents())
def test_the_index_gives_the_linear_scans_outcomes(
    text: str, packet: NfPacket, recent: object
) -> None:
    index_module.INDEX_MIN_RULES, saved = 2, index_module.INDEX_MIN_RULES
    try:
        same_outcomes(text, packet, recent)
    finally:
        index_module.INDEX_MIN_RULES = saved


def test_a_long_kube_proxy_chain_uses_its_index() -> None:
    """10,000 service rules: the candidates for one packet are its own rule and the
    catch-all NodePort rule, and the outcome is the linear scan's."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]",
             ":KUBE-SVC-X - [0:0]", "-A PREROUTING -j KUBE-SERVICES"]  # fmt: skip
    for i in range(10000):
        lines.append(
            f"-A KUBE-SERVICES -d 172.20.{i >> 8}.{i & 255}/32 -p tcp -m comment --comment "
            f'"default/s{i}:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-X'
        )
    lines += ["-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
              "-A KUBE-SVC-X -p tcp -j DNAT --to-destination 10.1.0.1:8080", "COMMIT", ""]  # fmt: skip
    ruleset = parse_ruleset("\n".join(lines))
    packet = NfPacket.new_connection(A("10.0.0.9"), A("172.20.39.15"), "tcp", 1, 80)
    indexed = traverse(ruleset, "nat", "PREROUTING", packet, ENV)
    assert indexed == traverse(ruleset, "nat", "PREROUTING", packet, ENV, linear=True)
    chain = ruleset.table("nat").chain("KUBE-SERVICES")  # type: ignore[union-attr]
    found = index_module.chain_index(chain)
    assert found is not None
    assert found.candidates(int(packet.dst), 6, 80) == [39 * 256 + 15, 10000]
    assert indexed[0].trace[1].position == 39 * 256 + 15 + 1


# --- the property catches broken indexes ---------------------------------------------------

RULE_KEY = index_module.rule_key


def broken_inverted_destinations(rule: Rule) -> index_module.Key:
    """Files `! -d A/32` rules under A, as if they required it."""
    dst, proto, dport = RULE_KEY(rule)
    for match in rule.matches:
        if isinstance(match, AddressMatch) and match.field == "dst" and match.prefixlen == 32:
            dst = match.address
    return (dst, proto, dport)


def broken_ports_after_effects(rule: Rule) -> index_module.Key:
    """Files a rule under its `--dport` even when a `recent`/`nfacct`/`statistic` match before
    the port acts on packets of other ports."""
    dst, proto, dport = RULE_KEY(rule)
    for match in rule.matches:
        port = getattr(match, "dport", None)
        if port is not None and port.low == port.high and not match.dport_invert:  # type: ignore[union-attr]
            return (dst, proto, dport if dport is not None else port.low)
    return (dst, proto, dport)


def broken_protocols(rule: Rule) -> index_module.Key:
    """Files `! -p tcp` rules under tcp."""
    dst, proto, dport = RULE_KEY(rule)
    for match in rule.matches:
        if isinstance(match, ProtocolMatch):
            proto = match.number
    return (dst, proto, dport)


@pytest.mark.parametrize(
    "broken", [broken_inverted_destinations, broken_ports_after_effects, broken_protocols]
)
def test_the_property_fails_for_a_broken_index(
    monkeypatch: pytest.MonkeyPatch, broken: Callable[[Rule], index_module.Key]
) -> None:
    monkeypatch.setattr(index_module, "INDEX_MIN_RULES", 2)
    monkeypatch.setattr(index_module, "rule_key", broken)

    @settings(max_examples=600, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])  # fmt: skip
    @given(rulesets(), packets(), recents())
    def property_under_test(text: str, packet: NfPacket, recent: object) -> None:
        same_outcomes(text, packet, recent)

    with pytest.raises(AssertionError):
        property_under_test()
