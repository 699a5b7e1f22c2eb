"""`-m recent` (xt_recent): per-namespace lists of recently seen addresses, as a value.

kube-proxy's ClientIP session affinity is built on it (kube-proxy.md §3.2 step 10, §4): each
endpoint chain has a list named after it; the SEP chain's DNAT rule `--set`s the client's
address, and the SVC chain's `--rcheck --seconds S --reap` rules, tried before the random
ones, send a client seen within S seconds back to the same endpoint.

Why a value: the lists are state that outlives a packet, exactly like conntrack's table. The
kernel keeps them per network namespace (`recent_pernet`), changes them while a rule is
evaluated (a `--set` happens even if a later match of the rule fails), and never reads a clock
the model cannot supply: here time is an input (`now`, seconds on the namespace's clock) and
every operation returns new `RecentTables`. A walk carries one `RecentTables` per namespace
across hooks and namespaces; a second connection from the same client, started with the first
connection's tables, sticks to the first connection's endpoint.

Semantics follow `net/netfilter/xt_recent.c` (torvalds/linux, `recent_mt`, `recent_entry_init`,
`recent_entry_update`, `recent_entry_reap` with the 2020 fix "Fix attempt to update deleted
entry", `recent_mt_check`), and were measured on Linux 6.18 in throw-away namespaces through
`/proc/net/xt_recent/NAME` and rule counters (tests/kernel/test_netfilter_recent_lab.py):

* a list is one per name per namespace (two namespaces with the same rules have separate
  lists [meas]); its address mask is the mask of the first rule that named it (the kernel
  creates the table when that rule is loaded; later rules only take a reference), and each
  address keeps a ring of timestamps, 32 by default (`ip_pkt_list_tot` 0 → 32, or the next
  power of two of the largest `--hitcount`; the ring size is a u8 mask, so 256 at most);
* the packet's source (`--rsource`, default) or destination (`--rdest`) is ANDed with the
  list's mask before lookup (`--mask 255.255.255.0` stored `src=10.2.0.0` [meas]);
* `--set`: add the address (or refresh it: a new timestamp, moved to the tail of the LRU
  order) and match. A full list (`ip_list_tot`, 100 by default [meas: /sys/module]) first
  drops its least recently *updated* address: after 100 `--set`s and a refresh of the first,
  the 101st evicted the second; an `--rcheck` does not count as an update [meas];
* `--rcheck`: match when the address is present and, with `--seconds S`, one of its timestamps
  is not older than now − S (strictly older is stale: `time_after`), with `--hitcount H` at
  least H such timestamps; `--update` is `--rcheck` that also refreshes the address when the
  rule's result (after `!`) is a match; `--remove` removes it and matches; an absent address
  never matches (`!` inverts every result);
* `--reap` (needs `--seconds`): after such a check of a *present* address, the list's head
  (least recently updated address) is removed if its newest timestamp is stale — one address
  per evaluation, not all stale ones [meas: two stale addresses needed two reaping checks];
* `--rttl`: the address also needs the same TTL as when it was set (a TTL of 0 on either side
  matches anything), the TTL "as seen before forwarding": +1 on a forwarded packet [meas: set
  with TTL 10, rcheck with 10 matched, with 11 not].

The kernel's timestamps are jiffies; here they are seconds, compared the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Literal

from eksnet.errors import NotModelled

IP_LIST_TOT = 100
"""`xt_recent.ip_list_tot`: addresses remembered per list (module parameter, default 100)."""

DEFAULT_STAMPS = 32
"""Timestamps kept per address when no rule asks for more (`nstamp_mask = 32 - 1`)."""

MAX_STAMPS_MODELLED = 128
"""The kernel keeps the ring's write position in a u8 that a 256-stamp ring overflows; such
lists (a `--hitcount` above 128) are not modelled."""

RecentAction = Literal["set", "rcheck", "update", "remove"]
RecentSide = Literal["source", "dest"]


@dataclass(frozen=True, slots=True)
class RecentSpec:
    """What the kernel fixes for a list when the ruleset is loaded: the address mask (of the
    first rule naming it) and the timestamps kept per address (the largest any rule needs)."""

    mask: int = 0xFFFFFFFF
    stamps: int = DEFAULT_STAMPS


def stamps_needed(hitcount: int) -> int:
    """Timestamps per address one rule needs (`recent_mt_check` with `ip_pkt_list_tot` 0):
    32, or the next power of two of `--hitcount`, capped by the u8 mask at 256."""
    if hitcount == 0:
        return DEFAULT_STAMPS
    size = 1
    while size < hitcount:
        size <<= 1
    return min(size, 256)


@dataclass(frozen=True, slots=True)
class RecentEntry:
    """One remembered address (`struct recent_entry`).

    `stamps` is the kernel's ring in slot order and `index` its write position as the kernel
    keeps it (1 after the first packet; the newest timestamp is `stamps[index - 1]`), which is
    also what `/proc/net/xt_recent/NAME` prints as `oldest_pkt`.
    """

    address: IPv4Address
    ttl: int
    stamps: tuple[float, ...]
    index: int

    @property
    def last_seen(self) -> float:
        return self.stamps[self.index - 1]

    def updated(self, now: float, ring: int, ttl: int) -> RecentEntry:
        """`recent_entry_update` (plus the new TTL `recent_mt` stores): write `now` at the
        ring's next slot."""
        slot = self.index % ring
        stamps = list(self.stamps)
        if slot == len(stamps):
            stamps.append(now)
        else:
            stamps[slot] = now
        return RecentEntry(self.address, ttl, tuple(stamps), slot + 1)

    def proc_line(self, jiffies: int, hz: int, at: float) -> str:
        """The entry as `/proc/net/xt_recent/NAME` prints it, given the clock: `jiffies` at
        time `at` and `hz` ticks per second (e.g. `src=10.2.0.1 ttl: 64 last_seen: 4297112886
        oldest_pkt: 1 4297112886`)."""

        def tick(stamp: float) -> int:
            return jiffies + round((stamp - at) * hz)

        stamps = ", ".join(str(tick(stamp)) for stamp in self.stamps)
        return (
            f"src={self.address} ttl: {self.ttl} last_seen: {tick(self.last_seen)} "
            f"oldest_pkt: {self.index} {stamps}"
        )


@dataclass(frozen=True, slots=True)
class RecentList:
    """One list (`struct recent_table`): its entries in LRU order, the head being the address
    updated longest ago (evicted by a full list, looked at by `--reap`)."""

    name: str
    spec: RecentSpec
    entries: tuple[RecentEntry, ...] = ()

    def find(self, address: IPv4Address, ttl: int) -> int | None:
        """`recent_entry_lookup`: the position of `address` (already masked); with a TTL, only
        an entry set with the same TTL (0 on either side matches any)."""
        for position, entry in enumerate(self.entries):
            if entry.address == address and (ttl == entry.ttl or ttl == 0 or entry.ttl == 0):
                return position
        return None

    def addresses(self) -> frozenset[IPv4Address]:
        return frozenset(entry.address for entry in self.entries)


@dataclass(frozen=True, slots=True)
class RecentTables:
    """All `recent` lists of one namespace, by name (a list nobody added to is empty and
    absent). `capacity` is `ip_list_tot`, the module parameter shared by every list."""

    lists: tuple[RecentList, ...] = ()
    capacity: int = IP_LIST_TOT

    def __post_init__(self) -> None:
        names = [lst.name for lst in self.lists]
        if names != sorted(set(names)):
            raise ValueError("recent lists are kept sorted by name, each name once")
        if self.capacity < 1:
            raise ValueError("ip_list_tot must be at least 1")

    def get(self, name: str) -> RecentList | None:
        for lst in self.lists:
            if lst.name == name:
                return lst
        return None

    def addresses(self, name: str) -> frozenset[IPv4Address]:
        """The addresses list `name` holds (what `/proc/net/xt_recent/NAME` lists)."""
        found = self.get(name)
        return frozenset() if found is None else found.addresses()

    def with_list(self, updated: RecentList) -> RecentTables:
        others = [lst for lst in self.lists if lst.name != updated.name]
        kept = [*others, updated] if updated.entries else others
        return replace(self, lists=tuple(sorted(kept, key=lambda lst: lst.name)))


EMPTY_RECENT = RecentTables()


@dataclass(frozen=True, slots=True)
class RecentCheck:
    """What one `-m recent` match asks (`struct xt_recent_mtinfo_v1`), without the mask: the
    list's mask is the list's (`RecentSpec`), as in the kernel."""

    action: RecentAction
    name: str
    seconds: int = 0
    reap: bool = False
    hitcount: int = 0
    rttl: bool = False
    side: RecentSide = "source"
    invert: bool = False


def recent_match(
    tables: RecentTables,
    check: RecentCheck,
    spec: RecentSpec,
    *,
    src: IPv4Address,
    dst: IPv4Address,
    ttl: int,
    now: float,
) -> tuple[bool, RecentTables]:
    """`recent_mt` for one packet: whether the match holds, and the lists after it.

    `ttl` is the TTL as the kernel reads it for `--rttl` (already +1 for a forwarded packet);
    `now` the namespace's clock in seconds.
    """
    if spec.stamps > MAX_STAMPS_MODELLED:
        raise NotModelled(f"recent list {check.name} keeping {spec.stamps} stamps per address")
    chosen = dst if check.side == "dest" else src
    address = IPv4Address(int(chosen) & spec.mask)
    current = tables.get(check.name) or RecentList(check.name, spec)
    entries = list(current.entries)
    position = current.find(address, ttl if check.rttl else 0)
    result = check.invert
    if position is None:
        if check.action != "set":
            return result, tables
        if len(entries) >= tables.capacity:
            del entries[0]  # the least recently updated address makes room
        entries.append(RecentEntry(address, ttl, (now,), 1))
        return not result, tables.with_list(replace(current, entries=tuple(entries)))
    entry = entries[position]
    update = False
    if check.action == "set":
        result = not result
        update = True
    elif check.action == "remove":
        del entries[position]
        return not result, tables.with_list(replace(current, entries=tuple(entries)))
    else:
        oldest = now - check.seconds
        hits = 0
        for stamp in entry.stamps:
            if check.seconds and stamp < oldest:
                continue
            hits += 1
            if not check.hitcount or hits >= check.hitcount:
                result = not result
                break
        update = check.action == "update" and result
        if check.reap:
            head = entries[0]
            if not (head is entry and update) and head.last_seen < oldest:
                del entries[0]
                if head is entry:
                    position = None
                else:
                    position -= 1
    if update and position is not None:
        del entries[position]
        entries.append(entry.updated(now, spec.stamps, ttl))
    return result, tables.with_list(replace(current, entries=tuple(entries)))
