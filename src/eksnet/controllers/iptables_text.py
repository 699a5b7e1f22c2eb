"""iptables rules in the form the kernel prints them back, and a node's tables as they fill up.

kube-proxy and kubelet hand `iptables-restore` rules in their own spelling (`-m comment --comment
"…" -m tcp -p tcp -d 10.0.0.1 --dport 80 -j X`); `iptables-save` prints them differently
(linux-dataplane.md §7.3, kube-proxy.md §7). The state holds the printed form, so each fact of
that form is implemented here, once:

* the IP-level options move to the front in the order `[!] -s`, `[!] -d`, `[!] -i`, `[!] -o`,
  `-p`, and an address without a prefix gains `/32` (`XRule.text`);
* each `-m` module keeps the place it was loaded at, with its options (`Module`);
* a comment is bare only if it is made of `[A-Za-z0-9_-]`, else double-quoted with `"`, `\\` and
  `'` escaped (`comment`);
* a statistic probability is stored as round(p·2³¹) and printed with 11 decimals
  (`probability`);
* `-m recent` prints its action, `--seconds`, `--reap`, then `--name`, `--mask
  255.255.255.255 --rsource` (`recent`); `-m nfacct` prints two spaces after `--nfacct-name`
  (`nfacct`); `MARK --or-mark M` prints `--set-xmark M/M` and `--xor-mark M` `--set-xmark M/0x0`
  (`mark_or`, `mark_xor`); `REJECT` prints its default `--reject-with icmp-port-unreachable`
  (`REJECT`).

`Tables` records a node's tables the way its components build them (chains declared, rules
appended or inserted at the top of a built-in chain) and writes the restore text the state
holds: per table the built-in chains, the user chains, then the rules chain by chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

STATISTIC_SCALE = 1 << 31
"""xt_statistic keeps a probability as a 31-bit threshold (libxt_statistic: lround(p·2³¹))."""

_BARE_COMMENT = re.compile(r"[A-Za-z0-9_-]+")
_QUOTED = re.compile(r"[\"\\']")
"""The characters xtables_save_string escapes with a backslash inside the quotes."""

REJECT = "REJECT --reject-with icmp-port-unreachable"
"""`-j REJECT` as printed: the default reply spelled out."""

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
"""The built-in chains of each table, in the order iptables-save lists them (hook order)."""


@lru_cache(maxsize=4096)
def comment(text: str) -> str:
    """`--comment TEXT` as iptables-save prints it (xtables_save_string)."""
    if _BARE_COMMENT.fullmatch(text):
        return text
    escaped = _QUOTED.sub(r"\\\g<0>", text)
    return f'"{escaped}"'


@lru_cache(maxsize=1024)
def go_probability(n: int) -> str:
    """kube-proxy's text for 1/n: Go's `%0.10f` (`computeProbability`)."""
    return f"{Decimal(1) / Decimal(n):.10f}"


@lru_cache(maxsize=1024)
def probability(given: str) -> str:
    """How the kernel prints a `--probability` it was given as `given` (11 decimals of the
    stored 31-bit threshold; round half away from zero, as lround does)."""
    threshold = int(
        (Decimal(given) * STATISTIC_SCALE + Decimal("0.5")).to_integral_value("ROUND_FLOOR")
    )
    printed = (Decimal(threshold) / STATISTIC_SCALE).quantize(
        Decimal("0.00000000001"), rounding=ROUND_HALF_EVEN
    )
    return f"{printed:.11f}"


def address(text: str) -> str:
    """An `-s`/`-d` value as printed: a host address gains `/32`."""
    return text if "/" in text else f"{text}/32"


def mark_or(mark: int) -> str:
    """`-j MARK --or-mark M` as printed."""
    return f"MARK --set-xmark {mark:#x}/{mark:#x}"


def mark_xor(mark: int) -> str:
    """`-j MARK --xor-mark M` as printed."""
    return f"MARK --set-xmark {mark:#x}/0x0"


@dataclass(frozen=True, slots=True)
class Module:
    """One `-m NAME options…` in a rule, options already in the module's printed order."""

    name: str
    options: str = ""

    def text(self) -> str:
        return f"-m {self.name} {self.options}".rstrip()


@lru_cache(maxsize=4096)
def comment_module(text: str) -> Module:
    return Module("comment", f"--comment {comment(text)}")


def recent_check(name: str, seconds: int) -> Module:
    """`-m recent --name N --rcheck --seconds S --reap` as printed."""
    return Module(
        "recent",
        f"--rcheck --seconds {seconds} --reap --name {name} --mask 255.255.255.255 --rsource",
    )


def recent_set(name: str) -> Module:
    """`-m recent --name N --set` as printed."""
    return Module("recent", f"--set --name {name} --mask 255.255.255.255 --rsource")


def nfacct(name: str) -> Module:
    """`-m nfacct --nfacct-name N` as printed (libxt_nfacct prints two spaces)."""
    return Module("nfacct", f"--nfacct-name  {name}")


def statistic(given: str) -> Module:
    return Module("statistic", f"--mode random --probability {probability(given)}")


@dataclass(frozen=True, slots=True)
class XRule:
    """One rule, held in its parts so it prints in the kernel's order."""

    chain: str
    modules: tuple[Module, ...] = ()
    target: str | None = None
    src: str | None = None
    src_invert: bool = False
    dst: str | None = None
    dst_invert: bool = False
    in_interface: str | None = None
    in_invert: bool = False
    protocol: str | None = None

    def text(self) -> str:
        parts = [f"-A {self.chain}"]
        if self.src is not None:
            parts.append(f"{'! ' if self.src_invert else ''}-s {address(self.src)}")
        if self.dst is not None:
            parts.append(f"{'! ' if self.dst_invert else ''}-d {address(self.dst)}")
        if self.in_interface is not None:
            parts.append(f"{'! ' if self.in_invert else ''}-i {self.in_interface}")
        if self.protocol is not None:
            parts.append(f"-p {self.protocol}")
        parts += [module.text() for module in self.modules]
        if self.target is not None:
            parts.append(f"-j {self.target}")
        return " ".join(parts)


@dataclass(slots=True)
class _Table:
    builtins: dict[str, list[str]]
    chains: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Tables:
    """A node's tables as its components build them, in the order each table was first used
    (legacy iptables-save prints the most recently created table first, so the order the
    restore text lists them in matters)."""

    tables: dict[str, _Table] = field(default_factory=dict)

    def table(self, name: str) -> _Table:
        if name not in self.tables:
            self.tables[name] = _Table({chain: [] for chain in BUILTIN_CHAINS[name]})
        return self.tables[name]

    def declare(self, table: str, chain: str) -> None:
        """`iptables -N` (or a `:CHAIN` line): the chain exists, rules kept if it did."""
        self.table(table).chains.setdefault(chain, [])

    def flush(self, table: str, chain: str) -> None:
        """A `:CHAIN` line in `iptables-restore --noflush`: the chain exists and is empty."""
        self.table(table).chains[chain] = []

    def _rules(self, table: str, chain: str) -> list[str]:
        tables = self.table(table)
        if chain in tables.builtins:
            return tables.builtins[chain]
        if chain not in tables.chains:
            raise ValueError(f"{table} chain {chain} is not declared")
        return tables.chains[chain]

    def append(self, table: str, line: str) -> None:
        """`iptables -A`: `line` is the printed `-A CHAIN …` text."""
        self._rules(table, line.split()[1]).append(line)

    def ensure_first(self, table: str, line: str) -> None:
        """kube-proxy's and kubelet's `EnsureRule(Prepend)`: `-C`, and `-I CHAIN 1` if absent;
        a rule already there keeps its place."""
        rules = self._rules(table, line.split()[1])
        if line not in rules:
            rules.insert(0, line)

    def ensure_last(self, table: str, line: str) -> None:
        """`EnsureRule(Append)`: `-C`, and `-A` if absent."""
        rules = self._rules(table, line.split()[1])
        if line not in rules:
            rules.append(line)

    def restore_text(self) -> str:
        """The text `iptables-restore` is given and `iptables-save` prints back (user chains
        and their rules sorted by chain name, as it prints them)."""
        lines: list[str] = []
        for name, table in self.tables.items():
            lines.append(f"*{name}")
            lines += [f":{chain} ACCEPT [0:0]" for chain in table.builtins]
            users = sorted(table.chains)
            lines += [f":{chain} - [0:0]" for chain in users]
            for chain in table.builtins:
                lines += table.builtins[chain]
            for chain in users:
                lines += table.chains[chain]
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"
