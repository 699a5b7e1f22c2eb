"""The kernel's order of work at each IPv4 netfilter hook, as one table of data.

Why a table: the order in which raw, conntrack, mangle, nat, filter, security and the conntrack
confirm step run is fixed by the kernel (every one of them registers a hook function with a
priority, and the hook runs them by ascending priority). Writing it down once as data lets the
walker, the lab and the docs agree on it, and lets a test check it against the spec.

Why it is right (linux-dataplane.md §1.1, [src] `include/uapi/linux/netfilter_ipv4.h`, confirmed by
traces [meas]):

* priorities are the kernel's `NF_IP_PRI_*` values; iptables-legacy tables and the base chains
  iptables-nft creates use the same numbers (`nft list table ip raw` prints `priority raw`);
* `nat_dst` (-100) is where DNAT and un-SNAT happen, `nat_src` (100) where SNAT/MASQUERADE and
  un-DNAT happen; their chain *rules* run only for the first packet of a connection (§6.4), later
  packets only get the stored binding applied (see `kernel.conntrack.NAT_MANIP`);
* conntrack looks up or creates the entry at -200 on PREROUTING (`conntrack_in`) and OUTPUT
  (`conntrack_out`), before mangle, so mangle already sees `ctstate`; the entry is inserted
  (confirmed) at INT_MAX on INPUT and POSTROUTING, after everything else;
* FORWARD has no nat and no conntrack stage: forwarded packets were tracked in PREROUTING and are
  confirmed in POSTROUTING;
* `defrag` (-400) and `helper` (300) are listed because the kernel runs them, but they do nothing in
  the model (no fragments, no conntrack helpers); they carry no iptables table.

Which iptables table has which chain (§1.1): raw {PREROUTING, OUTPUT}; mangle {all five};
nat {PREROUTING, INPUT, OUTPUT, POSTROUTING}; filter and security {INPUT, FORWARD, OUTPUT}. Every
stage that runs a table runs that table's chain named after the hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

TableName = Literal["raw", "mangle", "nat", "filter", "security"]
"""The iptables tables of the IPv4 family that the model knows."""


class Hook(StrEnum):
    """The five IPv4 netfilter hooks; the value is the built-in chain name iptables uses."""

    PREROUTING = "PREROUTING"
    INPUT = "INPUT"
    FORWARD = "FORWARD"
    OUTPUT = "OUTPUT"
    POSTROUTING = "POSTROUTING"


class StageKind(StrEnum):
    """What runs at one priority of a hook."""

    DEFRAG = "defrag"
    RAW = "raw"
    CONNTRACK = "conntrack"
    MANGLE = "mangle"
    NAT_DST = "nat_dst"
    FILTER = "filter"
    SECURITY = "security"
    NAT_SRC = "nat_src"
    HELPER = "helper"
    CONFIRM = "confirm"


# The kernel's hook priorities (`enum nf_ip_hook_priorities`). Lower runs first.
NF_IP_PRI_CONNTRACK_DEFRAG = -400
NF_IP_PRI_RAW = -300
NF_IP_PRI_SELINUX_FIRST = -225
NF_IP_PRI_CONNTRACK = -200
NF_IP_PRI_MANGLE = -150
NF_IP_PRI_NAT_DST = -100
NF_IP_PRI_FILTER = 0
NF_IP_PRI_SECURITY = 50
NF_IP_PRI_NAT_SRC = 100
NF_IP_PRI_SELINUX_LAST = 225
NF_IP_PRI_CONNTRACK_HELPER = 300
NF_IP_PRI_CONNTRACK_CONFIRM = 2147483647


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a hook: what runs, at which priority, and which iptables chain it evaluates.

    `table` is None for the steps that are not iptables tables (conntrack lookup, confirm, defrag,
    helpers). When `table` is set, the chain evaluated is the hook's built-in chain (`chain`).
    """

    hook: Hook
    kind: StageKind
    priority: int
    table: TableName | None

    @property
    def chain(self) -> str | None:
        """The built-in chain this stage evaluates (`nat` + PREROUTING → `PREROUTING`)."""
        return None if self.table is None else self.hook.value

    @property
    def runs_rules_once_per_connection(self) -> bool:
        """True for the nat stages: their rules see only the first packet of a connection."""
        return self.kind in (StageKind.NAT_DST, StageKind.NAT_SRC)


def _stages(hook: Hook, *steps: tuple[StageKind, int, TableName | None]) -> tuple[Stage, ...]:
    stages = tuple(Stage(hook, kind, priority, table) for kind, priority, table in steps)
    priorities = [stage.priority for stage in stages]
    if priorities != sorted(priorities):
        raise AssertionError(f"{hook}: stages must be listed in priority order")
    return stages


_DEFRAG = (StageKind.DEFRAG, NF_IP_PRI_CONNTRACK_DEFRAG, None)
_RAW: tuple[StageKind, int, TableName | None] = (StageKind.RAW, NF_IP_PRI_RAW, "raw")
_CONNTRACK = (StageKind.CONNTRACK, NF_IP_PRI_CONNTRACK, None)
_MANGLE: tuple[StageKind, int, TableName | None] = (StageKind.MANGLE, NF_IP_PRI_MANGLE, "mangle")
_NAT_DST: tuple[StageKind, int, TableName | None] = (StageKind.NAT_DST, NF_IP_PRI_NAT_DST, "nat")
_FILTER: tuple[StageKind, int, TableName | None] = (StageKind.FILTER, NF_IP_PRI_FILTER, "filter")
_SECURITY: tuple[StageKind, int, TableName | None] = (
    StageKind.SECURITY,
    NF_IP_PRI_SECURITY,
    "security",
)
_NAT_SRC: tuple[StageKind, int, TableName | None] = (StageKind.NAT_SRC, NF_IP_PRI_NAT_SRC, "nat")
_HELPER = (StageKind.HELPER, NF_IP_PRI_CONNTRACK_HELPER, None)
_CONFIRM = (StageKind.CONFIRM, NF_IP_PRI_CONNTRACK_CONFIRM, None)

HOOK_ORDER: Mapping[Hook, tuple[Stage, ...]] = MappingProxyType(
    {
        # A3: packet received, before the routing decision.
        Hook.PREROUTING: _stages(Hook.PREROUTING, _DEFRAG, _RAW, _CONNTRACK, _MANGLE, _NAT_DST),
        # A5a: delivered locally; the entry is confirmed last.
        Hook.INPUT: _stages(Hook.INPUT, _MANGLE, _FILTER, _SECURITY, _NAT_SRC, _HELPER, _CONFIRM),
        # A6: forwarded; no conntrack and no nat here.
        Hook.FORWARD: _stages(Hook.FORWARD, _MANGLE, _FILTER, _SECURITY),
        # L2: locally generated, after the first route lookup.
        Hook.OUTPUT: _stages(
            Hook.OUTPUT, _DEFRAG, _RAW, _CONNTRACK, _MANGLE, _NAT_DST, _FILTER, _SECURITY
        ),
        # A7/L3: leaving through a device; the entry is confirmed last.
        Hook.POSTROUTING: _stages(Hook.POSTROUTING, _MANGLE, _NAT_SRC, _HELPER, _CONFIRM),
    }
)
"""Per hook, the stages the kernel runs, in order (linux-dataplane.md §1.1 YAML block)."""

TABLE_CHAINS: Mapping[TableName, tuple[Hook, ...]] = MappingProxyType(
    {
        "raw": (Hook.PREROUTING, Hook.OUTPUT),
        "mangle": (Hook.PREROUTING, Hook.INPUT, Hook.FORWARD, Hook.OUTPUT, Hook.POSTROUTING),
        "nat": (Hook.PREROUTING, Hook.INPUT, Hook.OUTPUT, Hook.POSTROUTING),
        "filter": (Hook.INPUT, Hook.FORWARD, Hook.OUTPUT),
        "security": (Hook.INPUT, Hook.FORWARD, Hook.OUTPUT),
    }
)
"""The built-in chains of each table, in the kernel's (and `iptables-save`'s) order."""


def stages_with_table(hook: Hook) -> tuple[Stage, ...]:
    """The stages of `hook` that evaluate an iptables chain, in order."""
    return tuple(stage for stage in HOOK_ORDER[hook] if stage.table is not None)


def hooks_of_table(table: str) -> tuple[Hook, ...]:
    """The built-in chains of `table`; empty for a name that is not an iptables table."""
    for name, hooks in TABLE_CHAINS.items():
        if name == table:
            return hooks
    return ()
