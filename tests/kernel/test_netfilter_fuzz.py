"""No crash, no silent pass: every match and target the parser knows, with random options and
random packets, either parses (or is refused with a line-numbered InputError, or is
NotModelled) and then evaluates (or stops the walk with NotModelled) — never another
exception.

The options come from the parser's own tables (MATCH_OPTIONS, TARGET_OPTIONS, the unmodelled
names), so a module added there is fuzzed without touching this file; the values mix what the
options take (ports, ranges, marks, addresses, states, chunk types, names) with garbage.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eksnet.errors import InputError, NotModelled
from eksnet.kernel.conntrack import SCTP_CHUNK_TYPES
from eksnet.kernel.hooks import TABLE_CHAINS
from eksnet.kernel.netfilter import NfEnv, NfPacket, RecentTables, parse_ruleset, traverse
from eksnet.kernel.netfilter.parse import (
    MATCH_OPTIONS,
    TARGET_OPTIONS,
    TARGET_TABLES,
    UNMODELLED_MATCHES,
    UNMODELLED_TARGETS,
)
from eksnet.kernel.netfilter.recent import RecentCheck, RecentSpec, recent_match

A = IPv4Address

VALUES = st.sampled_from([
    "80", "0", "65535", "65536", "1000:2000", ":22", "22:", "2000:1000", "http", "-1", "²",
    "0x4000", "0x4000/0x4000", "0xffffffff", "7/3", "0x", "1.5",
    "10.0.0.1", "10.0.0.0/8", "10.0.0.1/255.255.0.0", "10.0.0.300", "255.255.255.0", "24",
    "NEW", "ESTABLISHED,RELATED", "INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT", "BOGUS",
    "ASSURED", "SEEN_REPLY,CONFIRMED", "ORIGINAL", "REPLY", "tcp", "udp", "sctp", "icmp",
    "LOCAL", "UNICAST,LOCAL", "BROADCAST", "random", "nth", "0.5", "0.50000000000", "2", "3",
    "8", "8/0", "echo-request", "any", "all", "only", "INIT", "DATA:Be", "INIT,COOKIE_ECHO",
    "ABORT:T", "ALL", "NONE", "SYN,ACK", "FIN,SYN,RST,ACK", "ALL", "KUBE-SEP-X", "DEFAULT",
    "a/b", "x" * 30, "53,5353:5360", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16",
    "10.0.1.23:8080", "10.0.1.1-10.0.1.3:80-90", "icmp-port-unreachable", "tcp-reset",
    "echo-reply", "",
])  # fmt: skip


PLAUSIBLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "--comment": (("x",), ("a b",)),
    "--src-type": (("LOCAL",), ("UNICAST,LOCAL",), ("BROADCAST",)),
    "--dst-type": (("LOCAL",), ("UNICAST",)),
    "--mark": (("0x4000/0x4000",), ("0x80",), ("7",)),
    "--ctstate": (("NEW",), ("RELATED,ESTABLISHED",), ("INVALID",), ("DNAT",), ("SNAT,NEW",)),
    "--ctproto": (("tcp",), ("17",)),
    "--ctorigsrc": (("10.0.0.1",), ("10.0.0.0/8",)),
    "--ctorigdst": (("10.0.1.23",),),
    "--ctreplsrc": (("10.0.1.23/255.255.255.0",),),
    "--ctrepldst": (("127.0.0.1",),),
    "--ctorigsrcport": (("80",), ("1000:2000",)),
    "--ctorigdstport": (("80",),),
    "--ctreplsrcport": (("8080",),),
    "--ctrepldstport": ((":1024",),),
    "--ctstatus": (("ASSURED",), ("SEEN_REPLY,CONFIRMED",), ("NONE",)),
    "--ctexpire": (("10",), ("5:100",)),
    "--ctdir": (("ORIGINAL",), ("REPLY",)),
    "--state": (("NEW",), ("ESTABLISHED,RELATED",)),
    "--sport": (("80",), ("1000:2000",), (":22",)),
    "--dport": (("80",), ("53",), ("1000:2000",)),
    "--source-port": (("22",),),
    "--destination-port": (("8080",),),
    "--tcp-flags": (("SYN,ACK", "SYN"), ("ALL", "NONE"), ("FIN,SYN,RST,ACK", "SYN")),
    "--tcp-option": (("2",),),
    "--icmp-type": (("8",), ("echo-request",), ("3/3",), ("any",)),
    "--dports": (("53,5353:5360",), ("80",)),
    "--sports": (("80,443",),),
    "--ports": (("22,80",),),
    "--mode": (("random",), ("nth",)),
    "--probability": (("0.5",), ("0.33333333349",), ("1",)),
    "--every": (("3",),),
    "--packet": (("1",),),
    "--nfacct-name": (("N",),),
    "--seconds": (("10",), ("1",)),
    "--hitcount": (("2",), ("200",)),
    "--name": (("KUBE-SEP-X",), ("L",)),
    "--mask": (("255.255.255.0",), ("255.255.255.255",)),
    "--chunk-types": (("any", "INIT"), ("only", "DATA:Be"), ("all", "INIT,DATA"), ("any", "ALL")),
    "--reject-with": (("icmp-port-unreachable",), ("tcp-reset",), ("icmp-host-prohibited",)),
    "--set-xmark": (("0x1/0x1",), ("0x4000/0x0",)),
    "--set-mark": (("0x1",), ("0x1/0x3",)),
    "--or-mark": (("0x80",),),
    "--and-mark": (("0xff",),),
    "--xor-mark": (("0x4000",),),
    "--nfmask": (("0x80",),),
    "--ctmask": (("0x80",),),
    "--to-destination": (("10.0.1.23:8080",), ("10.0.1.23",), ("10.0.1.1-10.0.1.3:80-90",)),
    "--to-source": (("10.0.0.5",), ("10.0.0.5:1024-2000",)),
    "--to-ports": (("1024-2000",),),
    "--log-prefix": (("x",),),
    "--log-level": (("4",),),
    "--nflog-group": (("1",),),
}
"""Values an option takes (the fuzzer mixes them with garbage)."""


@st.composite
def option_words(draw: st.DrawFn, spec: dict[str, tuple[int, bool]] | None) -> list[str]:
    """Some of a module's (or target's) options, each with its number of values (mostly
    plausible ones), some negated; sometimes an option it does not have."""
    words: list[str] = []
    names = sorted(spec) if spec is not None else ["--foo", "--match-set", "--name"]
    least = 1 if names else 0
    for name in draw(st.lists(st.sampled_from(names or ["-"]), min_size=least, max_size=3 * least,
                              unique=True)):  # fmt: skip
        arity = spec[name][0] if spec is not None else draw(st.integers(0, 2))
        if draw(st.integers(0, 8)) == 8:
            words.append("!")
        words.append(name)
        plausible = [v for v in PLAUSIBLE.get(name, ()) if len(v) == arity]
        if plausible and draw(st.integers(0, 5)) < 5:
            words += draw(st.sampled_from(plausible))
        else:
            words += [draw(VALUES) for _ in range(arity)]
    if draw(st.integers(0, 12)) == 12:
        words.append(draw(st.sampled_from(["--bogus", "!", "stray"])))
    return words


NAT_CHAINS = {"DNAT": ("PREROUTING", "OUTPUT"), "SNAT": ("POSTROUTING", "INPUT"),
              "MASQUERADE": ("POSTROUTING",)}  # fmt: skip
PROTOCOL_MODULES = ("tcp", "udp", "sctp", "icmp")


@st.composite
def rule_texts(draw: st.DrawFn) -> tuple[str, str, str]:
    """(table, built-in chain, iptables-save text with one rule in that chain)."""
    modelled_target = st.sampled_from([*sorted(TARGET_OPTIONS), ""])
    target = draw(st.one_of(*[modelled_target] * 4, st.sampled_from(sorted(UNMODELLED_TARGETS))))
    table = TARGET_TABLES.get(target) or draw(st.sampled_from(sorted(TABLE_CHAINS)))
    chains = [hook.value for hook in TABLE_CHAINS[table]]
    if target in NAT_CHAINS and draw(st.integers(0, 4)) < 4:
        chains = list(NAT_CHAINS[target])
    chain = draw(st.sampled_from(chains))
    modelled = st.sampled_from(sorted(MATCH_OPTIONS))
    modules = st.one_of(*[modelled] * 6, st.sampled_from(sorted(UNMODELLED_MATCHES)))
    chosen = draw(st.lists(modules, max_size=2))
    wanted = next((m for m in chosen if m in PROTOCOL_MODULES), None)
    if wanted is None and target in ("DNAT", "SNAT", "MASQUERADE", "REJECT"):
        wanted = "tcp"
    if wanted is not None and draw(st.integers(0, 5)) < 5:
        proto = wanted
    else:
        proto = draw(st.sampled_from(["tcp", "udp", "sctp", "icmp", "", "", "! tcp", "all", "6"]))
    words: list[str] = []
    if proto:
        words += ["!", "-p", proto[2:]] if proto.startswith("!") else ["-p", proto]
    for flag in ("-s", "-d"):
        if draw(st.integers(0, 3)) == 3:
            address = st.sampled_from(["10.0.0.1", "10.0.0.0/8", "127.0.0.0/8", "10.0.1.23/32"])
            words += [flag, draw(address) if draw(st.integers(0, 5)) < 5 else draw(VALUES)]
    for module in chosen:
        words += ["-m", module, *draw(option_words(MATCH_OPTIONS.get(module)))]  # type: ignore[arg-type]
    if target:
        words += ["-j", target, *draw(option_words(TARGET_OPTIONS.get(target)))]  # type: ignore[arg-type]
    line = " ".join(f'"{w}"' if w == "" else w for w in ["-A", chain, *words])
    return table, chain, f"*{table}\n{line}\nCOMMIT\n"


@st.composite
def nf_packets(draw: st.DrawFn) -> NfPacket:
    proto = draw(st.sampled_from(["tcp", "udp", "sctp", "icmp"]))
    src, dst = (A(draw(st.sampled_from(["10.0.0.1", "10.0.1.23", "127.0.0.1"]))) for _ in "ab")
    if proto == "icmp":
        packet = NfPacket.new_connection(src, dst, "icmp", icmp_type=8, icmp_code=0, icmp_id=3)
    else:
        ports = st.sampled_from([22, 53, 80, 1500, 8080])
        packet = NfPacket.new_connection(src, dst, proto, draw(ports), draw(ports))  # type: ignore[arg-type]
    state = draw(st.sampled_from(["NEW", "ESTABLISHED", "INVALID", "UNTRACKED"]))
    if state in ("INVALID", "UNTRACKED"):
        packet = replace(packet, ctstate=state, ct=None)
    else:
        packet = replace(
            packet, ctstate=state, ct_direction=draw(st.sampled_from(["ORIGINAL", "REPLY"]))
        )
    if proto == "sctp":
        chunks = draw(st.sampled_from([None, ((1, 0),), ((0, 3),), ((0, 1), (3, 0))]))
        packet = replace(packet, sctp_chunks=chunks)
    return replace(
        packet,
        mark=draw(st.sampled_from([0, 0x4000, 0x80])),
        iif=draw(st.sampled_from([None, "eth0", "eni1"])),
        oif=draw(st.sampled_from([None, "eth0", "vlan.1"])),
        ttl=draw(st.sampled_from([1, 64, 255])),
    )


def addr_type(address: IPv4Address, device: str | None) -> str:
    return "LOCAL" if address in (A("10.0.0.1"), A("127.0.0.1")) else "UNICAST"


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_texts(), st.lists(nf_packets(), min_size=1, max_size=3), st.booleans())
def test_every_known_match_and_target_parses_or_refuses_and_never_crashes(
    rule: tuple[str, str, str], packets: list[NfPacket], remembered: bool
) -> None:
    table, chain, text = rule
    try:
        ruleset = parse_ruleset(text)
    except (InputError, NotModelled):
        return
    recent = RecentTables()
    for packet in packets:
        if remembered:
            _, recent = recent_match(
                recent, RecentCheck("set", "KUBE-SEP-X"), RecentSpec(), src=packet.src,
                dst=packet.dst, ttl=64, now=0.0,
            )  # fmt: skip
        try:
            outcomes = traverse(
                ruleset, table, chain, packet, NfEnv(addr_type, now=5.0), recent=recent
            )
        except NotModelled:
            continue
        assert outcomes and sum(o.probability for o in outcomes) == 1


def test_the_fuzzer_reaches_every_module_and_target() -> None:
    """A guard for the test above: every module and target name is drawn from the parser."""
    assert {"recent", "sctp", "nfacct", "conntrack", "statistic"} <= set(MATCH_OPTIONS)
    assert "recent" not in UNMODELLED_MATCHES and "sctp" not in UNMODELLED_MATCHES
    assert set(SCTP_CHUNK_TYPES) >= {"INIT", "INIT_ACK", "DATA", "COOKIE_ECHO"}
