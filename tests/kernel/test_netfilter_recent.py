"""`-m recent`: parsing every option as iptables-save prints it, the kernel's semantics
(`xt_recent.c`, measured: see kernel/netfilter/recent.py), and kube-proxy's ClientIP affinity
carried across connections.

The lab test (test_netfilter_recent_lab.py) replays the same packets on the real kernel.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eksnet.errors import InputError
from eksnet.kernel.netfilter import (
    EMPTY_RECENT,
    NfEnv,
    NfOutcome,
    NfPacket,
    RecentTables,
    parse_ruleset,
    traverse,
)
from eksnet.kernel.netfilter.recent import (
    RecentCheck,
    RecentEntry,
    RecentSpec,
    recent_match,
    stamps_needed,
)
from eksnet.kernel.netfilter.ruleset import RecentMatch

A = IPv4Address
NO_LOCAL = NfEnv(addr_type=lambda address, device: "UNICAST")


def one_match(options: str) -> RecentMatch:
    ruleset = parse_ruleset(f"*filter\n-A INPUT -m recent {options}\nCOMMIT\n")
    match = ruleset.rule("filter", "INPUT", 1).matches[0]
    assert isinstance(match, RecentMatch)
    return match


# --- parsing: every option, the printed forms [meas: iptables 1.8.9 save output] ------------


def test_save_forms_parse_to_what_they_say() -> None:
    kube = one_match(
        "--rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 --rsource"
    )
    assert kube == RecentMatch(
        RecentCheck("rcheck", "KUBE-SEP-X", seconds=10800, reap=True, side="source"), 0xFFFFFFFF
    )
    assert one_match("--set --name KUBE-SEP-X --mask 255.255.255.255 --rsource").check == (
        RecentCheck("set", "KUBE-SEP-X")
    )
    every = one_match(
        "! --rcheck --seconds 10 --reap --hitcount 3 --rttl --name FOO --mask 255.255.255.255 --rdest"
    )
    assert every.check == RecentCheck(
        "rcheck", "FOO", seconds=10, reap=True, hitcount=3, rttl=True, side="dest", invert=True
    )
    assert one_match("--update --name A --mask 255.255.0.0 --rsource").mask == 0xFFFF0000
    assert one_match("--remove --name A --mask 255.255.255.255 --rdest").check.action == "remove"
    # defaults (`--set` alone prints as `--set --name DEFAULT --mask 255.255.255.255 --rsource`)
    assert one_match("--set") == RecentMatch(RecentCheck("set", "DEFAULT"), 0xFFFFFFFF)
    # `--mask` is read as inet_aton reads it: `24` is 0.0.0.24, `1.2.3` is 1.2.0.3 [meas]
    assert one_match("--rcheck --mask 24").mask == 24
    assert one_match("--rcheck --mask 1.2.3").mask == 0x01020003
    # the last of --rsource/--rdest wins; a long name is cut to 199 characters [meas]
    assert one_match("--remove --name A --rsource --rdest").check.side == "dest"
    assert one_match(f"--rcheck --name {'b' * 200}").check.name == "b" * 199


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--name X", "you must specify one of"),
        ("--rcheck --set", '"--set" cannot be used together with "--rcheck"'),
        ("--set --rttl", '"--rttl" cannot be used together with "--set"'),
        ("--rcheck --reap", '"--reap" also requires "--seconds"'),
        ("--rcheck --seconds 0", "--seconds"),
        ("--set --seconds 5", "--set takes no --seconds"),
        ("--remove --reap --seconds 5", "--remove takes no --seconds"),
        ("--rcheck ! --rttl", "cannot be negated"),
        ("--rcheck --seconds 10 --seconds 20", "given twice"),
        ("--rcheck --name a/b", "list name"),
        ("--rcheck --name ..", "list name"),
        ("--rcheck --mask 1.2.3.4.5", "bad --mask"),
    ],
)
def test_what_iptables_or_the_kernel_refuses(options: str, message: str) -> None:
    """Each refused by iptables-restore on 6.18 (userspace message or RULE_APPEND EINVAL)."""
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as caught:
        one_match(options)
    assert caught.value.line == 2


def test_hitcounts_the_kernel_accepts_size_the_ring() -> None:
    """`recent_mt_check` with `ip_pkt_list_tot` 0: 32 stamps, or the next power of two of the
    hitcount (the kernel accepted --hitcount 1000 on 6.18 [meas]); the list takes the largest."""
    assert [stamps_needed(h) for h in (0, 1, 3, 32, 33, 100, 1000)] == [32, 1, 4, 32, 64, 128, 256]
    ruleset = parse_ruleset(
        "*filter\n"
        "-A INPUT -m recent --set --name L --mask 255.255.255.0\n"
        "-A INPUT -m recent --rcheck --hitcount 40 --name L --mask 255.255.255.255\n"
        "COMMIT\n"
    )
    assert ruleset.recent_spec("L") == RecentSpec(0xFFFFFF00, 64)  # mask of the first rule
    assert ruleset.recent_spec("OTHER") == RecentSpec()


# --- semantics ----------------------------------------------------------------------------

SET = RecentCheck("set", "L")
RCHECK = RecentCheck("rcheck", "L")
SPEC = RecentSpec()


def run(tables: RecentTables, check: RecentCheck, src: str, now: float, *, ttl: int = 64,
        spec: RecentSpec = SPEC) -> tuple[bool, RecentTables]:  # fmt: skip
    return recent_match(tables, check, spec, src=A(src), dst=A("127.0.0.1"), ttl=ttl, now=now)


def test_set_records_and_rcheck_finds_within_seconds() -> None:
    """[meas] set, rcheck of the same and of another address; `--seconds 1` matches until more
    than a second passed (strictly older is stale)."""
    hit, tables = run(EMPTY_RECENT, SET, "10.2.0.1", 0.0)
    assert hit and tables.addresses("L") == {A("10.2.0.1")}
    assert run(tables, RCHECK, "10.2.0.1", 100.0) == (True, tables)  # rcheck changes nothing
    assert run(tables, RCHECK, "10.2.0.2", 100.0) == (False, tables)
    fresh = replace(RCHECK, seconds=1)
    assert run(tables, fresh, "10.2.0.1", 1.0)[0]
    assert not run(tables, fresh, "10.2.0.1", 1.3)[0]
    # a second --set appends a stamp: /proc shows `oldest_pkt: 2` and both stamps [meas]
    _, twice = run(tables, SET, "10.2.0.1", 0.5)
    entry = twice.lists[0].entries[0]
    assert (entry.stamps, entry.index, entry.last_seen) == ((0.0, 0.5), 2, 0.5)
    assert entry.proc_line(4297112886, 250, 0.0) == (
        "src=10.2.0.1 ttl: 64 last_seen: 4297113011 oldest_pkt: 2 4297112886, 4297113011"
    )


def test_reap_removes_only_the_least_recently_updated_stale_address() -> None:
    """[meas] .1 and .2 set, then 2.5 s later `--rcheck --seconds 2 --reap` from .2: no match,
    .1 (the LRU head) is reaped; the same again reaps .2 itself. Checks of an absent address
    reap nothing."""
    reap = RecentCheck("rcheck", "L", seconds=2, reap=True)
    _, tables = run(EMPTY_RECENT, SET, "10.2.0.1", 0.0)
    _, tables = run(tables, SET, "10.2.0.2", 0.1)
    assert run(tables, reap, "10.2.0.9", 2.5) == (False, tables)
    hit, tables = run(tables, reap, "10.2.0.2", 2.5)
    assert not hit and tables.addresses("L") == {A("10.2.0.2")}
    hit, tables = run(tables, reap, "10.2.0.2", 2.5)
    assert not hit and tables == EMPTY_RECENT


def test_update_with_reap_never_reaps_the_entry_it_refreshes() -> None:
    """The 2020 fix ("Fix attempt to update deleted entry"): the head is spared when it is the
    entry a matching `--update` refreshes."""
    update = RecentCheck("update", "L", seconds=10, reap=True)
    _, tables = run(EMPTY_RECENT, SET, "10.2.0.1", 0.0)
    hit, tables = run(tables, update, "10.2.0.1", 5.0)
    assert hit and tables.lists[0].entries[0].stamps == (0.0, 5.0)


def test_a_full_list_evicts_the_least_recently_updated() -> None:
    """[meas, ip_list_tot 100] 100 sets, a refresh of .1, then .101 evicts .2; an rcheck of .3
    does not count as an update, so .102 evicts .3."""
    tables = EMPTY_RECENT
    for i in range(1, 101):
        _, tables = run(tables, SET, f"10.2.0.{i}", float(i))
    _, tables = run(tables, SET, "10.2.0.1", 200.0)
    _, tables = run(tables, SET, "10.2.0.101", 201.0)
    assert len(tables.addresses("L")) == 100 and A("10.2.0.2") not in tables.addresses("L")
    assert run(tables, RCHECK, "10.2.0.3", 202.0)[0]
    _, tables = run(tables, SET, "10.2.0.102", 203.0)
    assert A("10.2.0.3") not in tables.addresses("L") and A("10.2.0.4") in tables.addresses("L")
    small = RecentTables(capacity=2)
    for i in range(1, 4):
        _, small = run(small, SET, f"10.0.0.{i}", float(i))
    assert small.addresses("L") == {A("10.0.0.2"), A("10.0.0.3")}


def test_hitcount_mask_rdest_rttl_remove_and_invert() -> None:
    """[meas] hitcount 3 needs 3 stamps; mask 255.255.255.0 stores 10.2.0.0 for .3 and .77;
    --rdest keeps the destination; --rttl needs the TTL of the --set; --remove removes;
    `! --update` on a stale entry matches and refreshes it, on a fresh one does not."""
    hits = RecentCheck("rcheck", "L", seconds=100, hitcount=3)
    tables = EMPTY_RECENT
    for now in (0.0, 0.1):
        _, tables = run(tables, SET, "10.2.0.3", now)
    assert not run(tables, hits, "10.2.0.3", 1.0)[0]
    _, tables = run(tables, SET, "10.2.0.3", 0.2)
    assert run(tables, hits, "10.2.0.3", 1.0)[0]

    masked = RecentSpec(0xFFFFFF00)
    _, net = run(EMPTY_RECENT, SET, "10.2.0.3", 0.0, spec=masked)
    _, net = run(net, SET, "10.2.0.77", 0.0, spec=masked)
    assert net.addresses("L") == {A("10.2.0.0")}
    assert net.lists[0].entries[0].index == 2

    dest = replace(SET, side="dest")
    assert run(EMPTY_RECENT, dest, "10.2.0.3", 0.0)[1].addresses("L") == {A("127.0.0.1")}

    _, ttl = run(EMPTY_RECENT, SET, "10.2.0.5", 0.0, ttl=10)
    rttl = replace(RCHECK, rttl=True)
    assert run(ttl, rttl, "10.2.0.5", 1.0, ttl=10)[0]
    assert not run(ttl, rttl, "10.2.0.5", 1.0, ttl=11)[0]
    assert run(ttl, RCHECK, "10.2.0.5", 1.0, ttl=11)[0]  # without --rttl any TTL

    remove = RecentCheck("remove", "L")
    assert run(ttl, remove, "10.2.0.5", 1.0) == (True, EMPTY_RECENT)
    assert run(ttl, remove, "10.2.0.6", 1.0) == (False, ttl)

    not_update = RecentCheck("update", "L", seconds=1, invert=True)
    _, six = run(EMPTY_RECENT, SET, "10.2.0.6", 0.0)
    hit, six = run(six, not_update, "10.2.0.6", 1.3)
    assert hit and six.lists[0].entries[0].stamps == (0.0, 1.3)
    assert run(six, not_update, "10.2.0.6", 1.4) == (False, six)
    assert run(six, not_update, "10.2.0.77", 1.4) == (True, six)  # absent: match, nothing added


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "rcheck", "update", "remove"]),
            st.integers(0, 5),  # source .0-.5
            st.sampled_from([0, 1, 3]),  # seconds
            st.booleans(),  # reap (with seconds)
            st.sampled_from([0, 2]),  # hitcount
            st.floats(0, 2, allow_nan=False),  # time step
        ),
        max_size=40,
    ),
    st.integers(1, 4),
)
def test_lists_stay_well_formed(
    steps: list[tuple[str, int, int, bool, int, float]], cap: int
) -> None:
    """Whatever happens: at most `capacity` addresses, each once, rings no larger than the
    list's, LRU order = order of the newest stamp."""
    tables = RecentTables(capacity=cap)
    now = 0.0
    spec = RecentSpec(stamps=4)
    for action, host, seconds, reap, hitcount, step in steps:
        now += step
        modifies = action in ("set", "remove")
        check = RecentCheck(
            action,  # type: ignore[arg-type]
            "L",
            seconds=0 if modifies else seconds,
            reap=reap and seconds > 0 and not modifies,
            hitcount=0 if modifies else hitcount,
        )
        _, tables = run(tables, check, f"10.0.0.{host}", now, spec=spec)
        found = tables.get("L")
        if found is None:
            continue
        addresses = [entry.address for entry in found.entries]
        assert len(addresses) == len(set(addresses)) <= cap
        assert all(1 <= len(entry.stamps) <= 4 and 1 <= entry.index <= 4 for entry in found.entries)
        newest = [entry.last_seen for entry in found.entries]
        assert newest == sorted(newest)


# --- kube-proxy ClientIP affinity through traverse ------------------------------------------

AFFINITY = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-A -s 10.0.1.23/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-A -p tcp -m comment --comment "default/web:http" -m recent --set --name KUBE-SEP-A --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.0.1.23:8080
-A KUBE-SEP-B -s 10.0.2.57/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-B -p tcp -m comment --comment "default/web:http" -m recent --set --name KUBE-SEP-B --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.0.2.57:8080
-A KUBE-SERVICES -d 172.20.10.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
-A KUBE-SVC-X -m comment --comment "default/web:http -> 10.0.1.23:8080" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j KUBE-SEP-A
-A KUBE-SVC-X -m comment --comment "default/web:http -> 10.0.2.57:8080" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-B --mask 255.255.255.255 --rsource -j KUBE-SEP-B
-A KUBE-SVC-X -m comment --comment "default/web:http -> 10.0.1.23:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A
-A KUBE-SVC-X -m comment --comment "default/web:http -> 10.0.2.57:8080" -j KUBE-SEP-B
COMMIT
"""
"""kube-proxy.md §3.2 step 10–11 for `default/web` with ClientIP affinity (save form §7)."""


def connect(
    ruleset_text: str, sport: int, recent: RecentTables, now: float
) -> tuple[NfOutcome, ...]:
    packet = NfPacket.new_connection(
        A("10.0.3.30"), A("172.20.10.10"), "tcp", sport, 80, iif="eth0"
    )
    env = replace(NO_LOCAL, now=now)
    return traverse(parse_ruleset(ruleset_text), "nat", "PREROUTING", packet, env, recent=recent)


def test_a_second_connection_sticks_to_the_first_ones_endpoint() -> None:
    first = connect(AFFINITY, 40000, EMPTY_RECENT, now=0.0)
    assert [(o.probability, o.nat.to_address if o.nat else None) for o in first] == [
        (Fraction(1, 2), A("10.0.1.23")),
        (Fraction(1, 2), A("10.0.2.57")),
    ]
    for outcome, name in zip(first, ("KUBE-SEP-A", "KUBE-SEP-B"), strict=True):
        assert outcome.recent.addresses(name) == {A("10.0.3.30")}  # the DNAT rule's --set
        assert len(outcome.recent.lists) == 1
        second = connect(AFFINITY, 40001, outcome.recent, now=3600.0)
        assert len(second) == 1 and second[0].nat == outcome.nat
        assert second[0].trace[2].position in (1, 2)  # an rcheck rule sent it, not the draw
        # after the 3 h timeout the client is forgotten (reaped) and load balanced again
        later = connect(AFFINITY, 40002, outcome.recent, now=10800.0 + 1)
        assert len(later) == 2
        for again, went in zip(later, ("KUBE-SEP-A", "KUBE-SEP-B"), strict=True):
            assert [lst.name for lst in again.recent.lists] == [went]  # the stale one reaped


def test_recent_state_is_never_shared_between_branches() -> None:
    """Each way through the table carries its own lists: the branch that went to B did not
    see A's --set."""
    first = connect(AFFINITY, 40000, EMPTY_RECENT, now=0.0)
    assert first[0].recent.addresses("KUBE-SEP-B") == frozenset()
    assert first[1].recent.addresses("KUBE-SEP-A") == frozenset()


def test_a_set_before_a_failing_match_happens_and_after_it_does_not() -> None:
    """Matches run left to right and stop at the first that fails (linux-dataplane.md §8)."""
    text = (
        "*filter\n"
        "-A INPUT -m recent --set --name BEFORE -p tcp -m tcp --dport 1 -j DROP\n"
        "-A INPUT -p tcp -m tcp --dport 1 -m recent --set --name AFTER -j DROP\n"
        "COMMIT\n"
    )
    packet = NfPacket.new_connection(A("10.0.0.1"), A("10.0.0.2"), "tcp", 1000, 2)
    (outcome,) = traverse(parse_ruleset(text), "filter", "INPUT", packet, NO_LOCAL)
    assert outcome.verdict == "ACCEPT"
    assert outcome.recent.addresses("BEFORE") == {A("10.0.0.1")}
    assert outcome.recent.addresses("AFTER") == frozenset()


def test_recent_entry_ring_overwrites_the_oldest_stamp() -> None:
    entry = RecentEntry(A("10.0.0.1"), 64, (0.0,), 1)
    for now in (1.0, 2.0, 3.0, 4.0):
        entry = entry.updated(now, 4, 64)
    assert (entry.stamps, entry.index, entry.last_seen) == ((4.0, 1.0, 2.0, 3.0), 1, 4.0)
