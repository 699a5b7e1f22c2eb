"""Parse `iptables-save` text (the format `iptables-restore` reads) into a `Ruleset`.

What the parser accepts and rejects follows iptables 1.8.9 and the kernel, measured in throw-away
namespaces where the spec did not say (linux-dataplane.md §7):

* tokens: whitespace separates; a double quote opens a quoted part (also mid-word: `x"y z"` is
  `xy z`) in which a backslash escapes the next character; the closing quote ends the token;
  single quotes and backslashes outside quotes are ordinary; an unterminated quote runs to the end
  of the line (iptables-restore accepts that too) [meas];
* a table is `*name` … `COMMIT`; built-in chains exist without being declared; user chains must be
  declared (`:NAME - [0:0]`) before a rule is added to them or jumps to them;
* checks iptables and the kernel make at load time: option syntax, `-i` in OUTPUT/POSTROUTING and
  `-o` in PREROUTING/INPUT, protocol-specific matches without their `-p`, ports in NAT targets
  without a port protocol, targets in the wrong table (REJECT outside filter, NAT outside nat,
  TRACE outside raw), NAT targets and addrtype limits used from the wrong hook (through user
  chains too), and chain loops.

Bad input raises `InputError` with the line number. Something valid that eksnet does not model is
kept as `UnmodelledMatch`/`UnmodelledTarget` and raises `NotModelled` when a packet reaches it
(so one unusual rule does not make a whole node unusable); `strict=True` raises it at parse time
instead.

Speed (a node with 10,000 Services has ~90,000 rules): rules in iptables-save's own form take
`_fast_rule`, which reads each `-m` group and the target by their modules' option tables and
builds each distinct group of words once (kube-proxy repeats `-p tcp`, `-m tcp --dport 80`,
`-j KUBE-MARK-MASQ` thousands of times); anything else takes the general path
(`_split_words`), which is also the reference the fast path is tested against
(tests/kernel/test_netfilter_parse_fast.py). The jump graph is checked once per table at COMMIT;
the garbage collector is paused while the (acyclic) objects are made.
"""

from __future__ import annotations

import gc
import math
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from types import MappingProxyType
from typing import Literal, NoReturn

from eksnet.errors import InputError, NotModelled
from eksnet.kernel.conntrack import NatKind, NatRequest
from eksnet.kernel.hooks import TABLE_CHAINS, Hook, TableName
from eksnet.kernel.netfilter.recent import RecentCheck
from eksnet.kernel.netfilter.ruleset import (
    STATISTIC_SCALE,
    AddressMatch,
    AddrtypeMatch,
    Chain,
    CommentMatch,
    ConnmarkMatch,
    ConnmarkRestoreTarget,
    ConnmarkSaveTarget,
    ConnmarkSetTarget,
    ConntrackMatch,
    CtAddressCondition,
    CtCondition,
    CtDirCondition,
    CtExpireCondition,
    CtPortCondition,
    CtProtoCondition,
    CtStateCondition,
    CtStatusCondition,
    FragmentMatch,
    IcmpMatch,
    InterfaceMatch,
    JumpTarget,
    MarkMatch,
    MarkTarget,
    Match,
    MultiportMatch,
    NatTarget,
    NfacctMatch,
    NoopTarget,
    PortMatch,
    PortRange,
    ProtocolMatch,
    RecentMatch,
    RejectTarget,
    Rule,
    Ruleset,
    SctpChunkMatch,
    SctpMatch,
    StandardTarget,
    StatisticMatch,
    Table,
    Target,
    UnmodelledMatch,
    UnmodelledTarget,
)

# --- vocabulary (as data) --------------------------------------------------------------------

PROTOCOLS: Mapping[str, int] = MappingProxyType(
    {
        "all": 0,
        "icmp": 1,
        "igmp": 2,
        "ipencap": 4,
        "tcp": 6,
        "udp": 17,
        "gre": 47,
        "esp": 50,
        "ah": 51,
        "ospf": 89,
        "vrrp": 112,
        "sctp": 132,
        "udplite": 136,
        "dccp": 33,
    }
)
"""`-p` names iptables resolves through /etc/protocols (Debian's file); numbers also work."""

PORT_PROTOCOLS = frozenset({6, 17, 33, 132})
"""Protocols a NAT target may carry ports for ("Need TCP, UDP, SCTP or DCCP") [meas]."""

MULTIPORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})

ADDRTYPES = frozenset({
    "UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
    "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE",
})  # fmt: skip
"""Route types `-m addrtype` knows (`RTN_*`)."""

CTSTATES = frozenset({"INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT"})
STATES = frozenset({"INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED"})
CTSTATUS = frozenset({"NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"})
TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")

ICMP_TYPE_NAMES: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        "echo-reply": (0, 0, 255),
        "pong": (0, 0, 255),
        "destination-unreachable": (3, 0, 255),
        "network-unreachable": (3, 0, 0),
        "host-unreachable": (3, 1, 1),
        "protocol-unreachable": (3, 2, 2),
        "port-unreachable": (3, 3, 3),
        "fragmentation-needed": (3, 4, 4),
        "echo-request": (8, 0, 255),
        "ping": (8, 0, 255),
        "time-exceeded": (11, 0, 255),
        "ttl-exceeded": (11, 0, 255),
    }
)
"""The `--icmp-type` names eksnet resolves (type, code range); numbers work for all types."""

REJECT_WITH: Mapping[str, str] = MappingProxyType(
    {
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
)
"""`REJECT --reject-with` spellings → the name iptables-save prints."""

# Options per modelled match module: option → (number of values, may be negated with `!`).
_OptionSpec = Mapping[str, tuple[int, bool]]

MATCH_OPTIONS: Mapping[str, _OptionSpec] = MappingProxyType(
    {
        "comment": {"--comment": (1, False)},
        "addrtype": {
            "--src-type": (1, True),
            "--dst-type": (1, True),
            "--limit-iface-in": (0, False),
            "--limit-iface-out": (0, False),
        },
        "mark": {"--mark": (1, True)},
        "connmark": {"--mark": (1, True)},
        "conntrack": {
            name: (1, True)
            for name in (
                "--ctstate",
                "--ctproto",
                "--ctorigsrc",
                "--ctorigdst",
                "--ctreplsrc",
                "--ctrepldst",
                "--ctorigsrcport",
                "--ctorigdstport",
                "--ctreplsrcport",
                "--ctrepldstport",
                "--ctstatus",
                "--ctexpire",
            )
        }
        | {"--ctdir": (1, False)},
        "state": {"--state": (1, True)},
        "tcp": {
            "--sport": (1, True),
            "--source-port": (1, True),
            "--dport": (1, True),
            "--destination-port": (1, True),
            "--tcp-flags": (2, True),
            "--syn": (0, True),
            "--tcp-option": (1, True),
        },
        "udp": {
            "--sport": (1, True),
            "--source-port": (1, True),
            "--dport": (1, True),
            "--destination-port": (1, True),
        },
        "icmp": {"--icmp-type": (1, True)},
        "multiport": {
            "--sports": (1, True),
            "--source-ports": (1, True),
            "--dports": (1, True),
            "--destination-ports": (1, True),
            "--ports": (1, True),
        },
        "statistic": {
            "--mode": (1, False),
            "--probability": (1, True),
            "--every": (1, True),
            "--packet": (1, False),
        },
        "nfacct": {"--nfacct-name": (1, False)},
        "recent": {
            "--set": (0, True),
            "--rcheck": (0, True),
            "--update": (0, True),
            "--remove": (0, True),
            "--seconds": (1, False),
            "--reap": (0, False),
            "--hitcount": (1, False),
            "--rttl": (0, False),
            "--name": (1, False),
            "--rsource": (0, False),
            "--rdest": (0, False),
            "--mask": (1, False),
        },
        "sctp": {
            "--sport": (1, True),
            "--source-port": (1, True),
            "--dport": (1, True),
            "--destination-port": (1, True),
            "--chunk-types": (2, True),
        },
    }
)

_MATCH_LOOKUP: dict[str, _OptionSpec] = dict(MATCH_OPTIONS)

_PROTOCOL_MODULES = frozenset({"tcp", "udp", "icmp", "sctp"})
"""Matches named after a protocol: they need that `-p`, and `-p P --dport …` loads them."""

UNMODELLED_MATCHES = frozenset({
    "bpf", "cgroup", "cluster", "connbytes", "connlabel", "connlimit", "cpu", "devgroup",
    "dscp", "ecn", "hashlimit", "helper", "ipvs", "iprange", "length", "limit", "mac", "osf",
    "owner", "physdev", "pkttype", "policy", "quota", "rateest", "realm", "rpfilter", "dccp",
    "set", "socket", "string", "tcpmss", "time", "tos", "ttl", "u32", "esp", "ah",
})  # fmt: skip
"""Real iptables match modules eksnet does not evaluate (NotModelled when reached)."""

_MARK_SETTERS: _OptionSpec = {
    "--set-xmark": (1, False),
    "--set-mark": (1, False),
    "--or-mark": (1, False),
    "--and-mark": (1, False),
    "--xor-mark": (1, False),
}

TARGET_OPTIONS: Mapping[str, _OptionSpec] = MappingProxyType(
    {
        "ACCEPT": {},
        "DROP": {},
        "RETURN": {},
        "REJECT": {"--reject-with": (1, False)},
        "MARK": _MARK_SETTERS,
        "CONNMARK": {
            **_MARK_SETTERS,
            "--save-mark": (0, False),
            "--restore-mark": (0, False),
            "--nfmask": (1, False),
            "--ctmask": (1, False),
            "--mask": (1, False),
        },
        "DNAT": {
            "--to-destination": (1, False),
            "--random": (0, False),
            "--persistent": (0, False),
        },
        "SNAT": {
            "--to-source": (1, False),
            "--random": (0, False),
            "--random-fully": (0, False),
            "--persistent": (0, False),
        },
        "MASQUERADE": {
            "--to-ports": (1, False),
            "--random": (0, False),
            "--random-fully": (0, False),
        },
        "LOG": {
            "--log-level": (1, False),
            "--log-prefix": (1, False),
            "--log-tcp-sequence": (0, False),
            "--log-tcp-options": (0, False),
            "--log-ip-options": (0, False),
            "--log-uid": (0, False),
            "--log-macdecode": (0, False),
        },
        "NFLOG": {
            "--nflog-group": (1, False),
            "--nflog-prefix": (1, False),
            "--nflog-range": (1, False),
            "--nflog-size": (1, False),
            "--nflog-threshold": (1, False),
        },
        "TRACE": {},
    }
)

UNMODELLED_TARGETS = frozenset({
    "AUDIT", "CHECKSUM", "CLASSIFY", "CLUSTERIP", "CONNSECMARK", "CT", "DSCP", "ECN", "HMARK",
    "IDLETIMER", "LED", "NETMAP", "NFQUEUE", "NOTRACK", "QUEUE", "RATEEST", "REDIRECT",
    "SECMARK", "SET", "SYNPROXY", "TCPMSS", "TCPOPTSTRIP", "TEE", "TOS", "TPROXY", "TTL",
    "ULOG",
})  # fmt: skip
"""Real iptables targets eksnet does not evaluate (NotModelled when a packet reaches them)."""

TARGET_TABLES: Mapping[str, TableName] = MappingProxyType(
    {"REJECT": "filter", "DNAT": "nat", "SNAT": "nat", "MASQUERADE": "nat", "TRACE": "raw"}
)
"""Targets the kernel allows in one table only (`.table` of the xt_target) [meas for REJECT in
mangle: `RULE_APPEND failed (Invalid argument)`]."""

NAT_HOOKS: Mapping[NatKind, frozenset[Hook]] = MappingProxyType(
    {
        "DNAT": frozenset({Hook.PREROUTING, Hook.OUTPUT}),
        "SNAT": frozenset({Hook.POSTROUTING, Hook.INPUT}),
        "MASQUERADE": frozenset({Hook.POSTROUTING}),
    }
)
"""Hooks from which each NAT target may be reached (`.hooks` of the xt_target); checked for user
chains through every built-in chain that reaches them [meas: DNAT in a chain jumped to from
POSTROUTING fails to load]."""

ADDRTYPE_LIMIT_FORBIDDEN: Mapping[str, frozenset[Hook]] = MappingProxyType(
    {
        "--limit-iface-in": frozenset({Hook.OUTPUT, Hook.POSTROUTING}),
        "--limit-iface-out": frozenset({Hook.PREROUTING, Hook.INPUT}),
    }
)
"""`addrtype` rejects an in-device limit where there is no in device, and vice versa."""

INTERFACE_FORBIDDEN: Mapping[str, frozenset[str]] = MappingProxyType(
    {"in": frozenset({"OUTPUT", "POSTROUTING"}), "out": frozenset({"PREROUTING", "INPUT"})}
)
"""iptables refuses `-i` in OUTPUT/POSTROUTING and `-o` in PREROUTING/INPUT, by chain name
("Can't use -i with OUTPUT") [meas]; user chains are not checked."""

_CORE_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "-s": "src",
        "--source": "src",
        "--src": "src",
        "-d": "dst",
        "--destination": "dst",
        "--dst": "dst",
        "-i": "in",
        "--in-interface": "in",
        "-o": "out",
        "--out-interface": "out",
        "-p": "proto",
        "--protocol": "proto",
        "-f": "frag",
        "--fragment": "frag",
        "-m": "match",
        "--match": "match",
        "-j": "jump",
        "--jump": "jump",
        "-g": "goto",
        "--goto": "goto",
    }
)

_IP_OPTIONS = frozenset({"src", "dst", "in", "out", "proto", "frag"})
_CORE_LOOKUP: dict[str, str] = dict(_CORE_OPTIONS)
_IP_FLAGS: dict[str, str] = {
    flag: name for flag, name in _CORE_OPTIONS.items() if name in _IP_OPTIONS
}

_OTHER_COMMANDS = frozenset(
    {"-I", "--insert", "-D", "--delete", "-R", "--replace", "-N", "--new-chain", "-X",
     "--delete-chain", "-F", "--flush", "-Z", "--zero", "-P", "--policy", "-E", "--rename-chain"}
)  # fmt: skip

_MAX_CHAIN_NAME = 28
"""XT_EXTENSION_MAXNAMELEN (29) minus the terminating NUL."""

_MAX_IFNAME = 15
"""IFNAMSIZ (16) minus the terminating NUL."""

_BUILTIN_CHAINS: Mapping[str, frozenset[str]] = MappingProxyType(
    {name: frozenset(hook.value for hook in hooks) for name, hooks in TABLE_CHAINS.items()}
)

_PLAIN_CHAIN = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
"""A chain name that needs none of `_declare_chain`'s checks beyond its length and clashes."""

_CHAIN_LINE = re.compile(r"^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$")
_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]$")


# --- tokenizer -------------------------------------------------------------------------------


_PLAIN_WORD = re.compile(r"[^ \t\r\n\v\f]+")
_QUOTED_WORD = re.compile(r'([^ \t\r\n\v\f"]*)(?:"((?:[^"\\]|\\[\s\S])*)(?:"|\\?\Z))?')
_ANY_WORD = re.compile(r'[^ \t\r\n\v\f"]*"(?:[^"\\]|\\[\s\S])*(?:"|\\?\Z)|[^ \t\r\n\v\f"]+')
_ESCAPED = re.compile(r"\\([\s\S])")
_SPACE = frozenset(" \t\r\n\v\f")


def tokenize(line: str) -> list[str]:
    """Split one rule line into words the way iptables-restore does (`add_param_to_argv`).

    Whitespace separates words; a double quote opens a quoted part (also in the middle of a
    word: `x"y z"` is `xy z`) in which a backslash takes the next character literally; the
    closing quote ends the word; an unterminated quote runs to the end of the line (a trailing
    lone backslash is dropped); outside quotes, backslashes and single quotes are ordinary.
    Done with regular expressions: a 60k-rule `iptables-save` is mostly tokenizing.
    """
    if '"' not in line:
        return _PLAIN_WORD.findall(line)
    if "\\" not in line:
        # Without backslashes a quote always opens or closes: the pieces between quotes
        # alternate outside/inside.
        pieces = line.split('"')
        tokens = _PLAIN_WORD.findall(pieces[0])
        for index in range(1, len(pieces), 2):
            before = pieces[index - 1]
            if before and before[-1] not in _SPACE and tokens:
                tokens[-1] += pieces[index]  # `x"y z"`: the quoted part continues the word
            else:
                tokens.append(pieces[index])
            if index + 1 < len(pieces):
                tokens += _PLAIN_WORD.findall(pieces[index + 1])
        return tokens
    tokens = _ANY_WORD.findall(line)
    for position, word in enumerate(tokens):
        if '"' in word:
            found = _QUOTED_WORD.match(word)
            assert found is not None and found.group(2) is not None
            tokens[position] = found.group(1) + _ESCAPED.sub(r"\1", found.group(2))
    return tokens


# --- parsing ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    source: str
    line: int

    def error(self, message: str, fix: str | None = None) -> NoReturn:
        raise InputError(message, source=self.source, line=self.line, fix=fix)


@dataclass(slots=True)
class _ChainBuilder:
    name: str
    policy: Literal["ACCEPT", "DROP"] | None
    line: int | None
    counters: tuple[int, int] | None
    rules: list[Rule] = field(default_factory=list)


@dataclass(slots=True)
class _TableBuilder:
    name: TableName
    line: int
    chains: dict[str, _ChainBuilder]
    jumps: dict[str, list[str]] = field(default_factory=dict)
    """Per chain, the chains its rules jump or go to, in rule order (the graph
    `_check_hooks` walks)."""
    hooked: list[Rule] = field(default_factory=list)
    """Rules whose validity depends on the hooks they are reached from (NAT, addrtype limits)."""


@dataclass(slots=True)
class _Memo:
    """What one parse has already built, by the words it was built from. kube-proxy's tens of
    thousands of rules repeat the same few option groups (`-p tcp`, `-m tcp --dport 80`,
    `-j KUBE-MARK-MASQ`, the probabilities): each group is checked and built once, and the
    rules share the (immutable) result."""

    ip: dict[tuple[str, bool, str, str], Match | None] = field(default_factory=dict)
    protocols: dict[tuple[bool, str], int] = field(default_factory=dict)
    matches: dict[tuple[object, ...], Match] = field(default_factory=dict)
    targets: dict[tuple[object, ...], Target | None] = field(default_factory=dict)
    groups: dict[tuple[object, ...], Match] = field(default_factory=dict)
    ip_parts: dict[tuple[str, ...], tuple[tuple[Match, ...], int, bool]] = field(
        default_factory=dict
    )


def parse_ruleset(text: str, *, source: str = "<iptables-save>", strict: bool = False) -> Ruleset:
    """Parse `iptables-save` (or `iptables-save -c`) text.

    Raises `InputError` (with `source` and the line number) for text iptables-restore would
    refuse or that is truncated; with `strict`, raises `NotModelled` for the first rule that uses
    something eksnet does not model.
    """
    collecting = gc.isenabled()
    gc.disable()  # a big ruleset is hundreds of thousands of small objects, none of them garbage
    try:
        return _parse(text, source, strict)
    finally:
        if collecting:
            gc.enable()


def _parse(text: str, source: str, strict: bool) -> Ruleset:
    lines = text.splitlines()
    tables: list[Table] = []
    current: _TableBuilder | None = None
    memo = _Memo()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        ctx = _Context(source, number)
        if line[0] == "-" or line[0] == "[":
            if current is None:
                ctx.error("rule outside a table", fix="put rules between *table and COMMIT")
            _parse_rule_line(current, line, ctx, memo)
        elif line.startswith("*"):
            if current is not None:
                ctx.error(
                    f"table {line[1:]} starts before table {current.name} is committed",
                    fix=f"end table {current.name} with COMMIT",
                )
            name = line[1:].strip()
            if name not in TABLE_CHAINS:
                ctx.error(
                    f"table name {name!r} invalid",
                    fix="use raw, mangle, nat, filter or security",
                )
            if any(table.name == name for table in tables):
                ctx.error(f"table {name} appears twice", fix="merge the two blocks")
            current = _new_table(name, number)  # type: ignore[arg-type]
        elif line == "COMMIT":
            if current is None:
                ctx.error("COMMIT outside a table", fix="start the table with *name")
            tables.append(_commit(current, source))
            current = None
        elif line.startswith(":"):
            if current is None:
                ctx.error("chain declared outside a table", fix="start the table with *name")
            _declare_chain(current, line, ctx)
        else:
            ctx.error(f"unexpected line {line!r}", fix="iptables-save text has *, :, -A and COMMIT")
    if current is not None:
        _Context(source, len(lines) + 1).error(
            f"COMMIT expected: table {current.name} (line {current.line}) is not committed",
            fix="the text is truncated or lacks COMMIT",
        )
    ruleset = Ruleset(tuple(tables), source)
    if strict:
        for rule, what in ruleset.unmodelled():
            raise NotModelled(f"{what} ({source}:{rule.line})")
    return ruleset


def _new_table(name: TableName, line: int) -> _TableBuilder:
    chains = {
        hook.value: _ChainBuilder(hook.value, "ACCEPT", None, None) for hook in TABLE_CHAINS[name]
    }
    return _TableBuilder(name, line, chains)


def _declare_chain(table: _TableBuilder, line: str, ctx: _Context) -> None:
    if line.endswith(" - [0:0]"):  # a user chain as iptables-save prints it
        name = line[1:-8]
        if (
            name
            and name not in table.chains
            and len(name) <= _MAX_CHAIN_NAME
            and _PLAIN_CHAIN.fullmatch(name) is not None
            and name not in TARGET_OPTIONS
            and name not in UNMODELLED_TARGETS
        ):
            table.chains[name] = _ChainBuilder(name, None, ctx.line, (0, 0))
            return
    found = _CHAIN_LINE.match(line)
    if found is None:
        ctx.error(f"bad chain line {line!r}", fix="write :NAME POLICY [packets:bytes]")
    name, policy = found.group(1), found.group(2)
    counters = None
    if found.group(3) is not None:
        counters = (int(found.group(3)), int(found.group(4)))
    if name in _BUILTIN_CHAINS[table.name]:
        chain = table.chains[name]
        if chain.line is not None:
            ctx.error(f"chain {name} declared twice")
        if policy not in ("ACCEPT", "DROP", "-"):
            ctx.error(f"bad policy {policy!r} for built-in chain {name}", fix="ACCEPT or DROP")
        chain.policy = "DROP" if policy == "DROP" else "ACCEPT"
        chain.line, chain.counters = ctx.line, counters
        return
    if name in table.chains:
        ctx.error(f"chain {name} declared twice")
    if policy != "-":
        ctx.error(
            f"can't set policy {policy!r} on user chain {name}",
            fix="user chains are declared with '-' as policy",
        )
    if len(name) > _MAX_CHAIN_NAME:
        ctx.error(f"chain name {name!r} longer than {_MAX_CHAIN_NAME} characters")
    if name in TARGET_OPTIONS or name in UNMODELLED_TARGETS or name.startswith(("-", "!")):
        ctx.error(f"invalid chain name {name!r}")
    table.chains[name] = _ChainBuilder(name, None, ctx.line, counters)


def _commit(table: _TableBuilder, source: str) -> Table:
    chains = tuple(
        Chain(b.name, b.policy, tuple(b.rules), b.line, b.counters) for b in table.chains.values()
    )
    built = Table(table.name, chains, table.line)
    _check_hooks(built, source, table.jumps, table.hooked)
    return built


# --- one rule --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Section:
    """The words of one `-m module` (or `-j TARGET`) and the options given to it."""

    name: str
    spec: _OptionSpec | None  # None: an unmodelled extension, any --option accepted
    options: list[tuple[bool, str, tuple[str, ...]]] = field(default_factory=list)
    implicit: bool = False

    def accepts(self, option: str) -> bool:
        return option.startswith("--") if self.spec is None else option in self.spec


@dataclass(slots=True)
class _RuleWords:
    ip: dict[str, tuple[bool, str]] = field(default_factory=dict)
    modules: list[_Section] = field(default_factory=list)
    target: _Section | None = None
    jump: tuple[str, bool] | None = None  # chain, goto


_SEEN: dict[tuple[str, str], tuple[str, tuple[Match, ...], Target | None]] = {}
"""Rules already read, in any ruleset of this process, by (table, text): their chain, matches
and target. A cluster's nodes hold mostly the same rules (kube-proxy's chains are named by a
hash of the Service and endpoint, the CNI's are fixed), so importing twenty nodes' dumps reads
each distinct rule once. What depends on the ruleset around a rule is checked again on every
use: its chain must be declared, a jump's chain too (else the rule is read anew and refused
with the reader's own error); everything else of a rule depends on its table and text alone."""
_SEEN_MAX = 400_000


def forget_rules() -> None:
    """Forget every rule read so far (`_SEEN`): what a benchmark of a first read needs."""
    _SEEN.clear()


def _seen(table: _TableBuilder, text: str) -> tuple[str, tuple[Match, ...], Target | None] | None:
    known = _SEEN.get((table.name, text))
    if known is None:
        return None
    chain, _, target = known
    if chain not in table.chains:
        return None
    if type(target) is JumpTarget:
        declared = table.chains.get(target.chain)
        if declared is None or declared.policy is not None:
            return None
    return known


def _parse_rule_line(table: _TableBuilder, line: str, ctx: _Context, memo: _Memo) -> Rule:
    counters = None
    text = line
    if line.startswith("["):
        head, _, rest = line.partition(" ")
        found = _COUNTERS.match(head)
        if found is None:
            ctx.error(f"bad counters {head!r}", fix="write [packets:bytes]")
        counters = (int(found.group(1)), int(found.group(2)))
        text = rest.strip()
    known = _seen(table, text)
    if known is not None:
        chain, seen_matches, seen_target = known
        return _new_rule(table, chain, text, ctx, list(seen_matches), seen_target, counters, ())
    rule = _read_rule_line(table, text, counters, ctx, memo)
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    _SEEN[(table.name, text)] = (rule.chain, rule.matches, rule.target)
    return rule


def _read_rule_line(
    table: _TableBuilder,
    text: str,
    counters: tuple[int, int] | None,
    ctx: _Context,
    memo: _Memo,
) -> Rule:
    """A rule not read before: its words checked and built (`_fast_rule`, else the general
    path)."""
    tokens = tokenize(text)
    if not tokens:
        ctx.error("empty rule after counters")
    command = tokens[0]
    if command in _OTHER_COMMANDS:
        raise NotModelled(
            f"iptables-restore command {command} ({ctx.source}:{ctx.line}); "
            "only iptables-save text (-A) is read"
        )
    if command not in ("-A", "--append"):
        ctx.error(f"rule must start with -A, not {command!r}")
    if len(tokens) < 2:
        ctx.error("-A needs a chain name")
    chain = tokens[1]
    if chain not in table.chains:
        ctx.error(
            f"rule in undeclared chain {chain!r} of table {table.name}",
            fix=f"declare it with ':{chain} - [0:0]' before its rules",
        )
    fast = _fast_rule(tokens, table, chain, ctx, memo)
    if fast is not None:
        matches, target = fast
        return _new_rule(table, chain, text, ctx, matches, target, counters, tokens)
    words = _split_words(tokens, ctx)
    matches, proto, proto_invert = _build_ip_matches(words.ip, chain, ctx, memo)
    for section in words.modules:
        key = (section.name, *section.options, proto, proto_invert)
        built = memo.matches.get(key)
        if built is None:
            built = memo.matches[key] = _build_match(section, proto, proto_invert, ctx)
        matches.append(built)
    if words.jump is not None:
        target_key: tuple[object, ...] = (table.name, words.jump)
    elif words.target is not None:
        target_key = (words.target.name, *words.target.options, proto, proto_invert)
    else:
        target_key = ()
    if target_key in memo.targets:
        target = memo.targets[target_key]
    else:
        target = _build_target(words, table, chain, proto, proto_invert, ctx)
        if words.target is None or words.target.name not in TARGET_TABLES:
            memo.targets[target_key] = target  # table-specific targets are checked per rule
    return _new_rule(table, chain, text, ctx, matches, target, counters, tokens)


def _new_rule(
    table: _TableBuilder,
    chain: str,
    text: str,
    ctx: _Context,
    matches: list[Match],
    target: Target | None,
    counters: tuple[int, int] | None,
    tokens: Sequence[str],
) -> Rule:
    """The rule, appended to its chain, and noted for the checks made at COMMIT."""
    rules = table.chains[chain].rules
    rule = Rule(table.name, chain, len(rules) + 1, text, ctx.line, tuple(matches), target, counters)
    rules.append(rule)
    if type(target) is JumpTarget:
        jumps = table.jumps.get(chain)
        if jumps is None:
            table.jumps[chain] = [target.chain]
        else:
            jumps.append(target.chain)
    elif type(target) is NatTarget:
        table.hooked.append(rule)
    if "addrtype" in text and any(
        type(m) is AddrtypeMatch and (m.limit_iface_in or m.limit_iface_out) for m in matches
    ):
        table.hooked.append(rule)
    return rule


_MODULE = frozenset({"-m", "--match"})
_TARGET = frozenset({"-j", "--jump", "-g", "--goto"})
_BOUNDARY = _MODULE | _TARGET


def _fast_rule(
    tokens: list[str], table: _TableBuilder, chain: str, ctx: _Context, memo: _Memo
) -> tuple[list[Match], Target | None] | None:
    """The matches and target of a rule in the form iptables-save prints (IP options, then
    `-m MODULE` groups whose options are all the module's own, then `-j`/`-g`), or None for
    anything else, which `_split_words` and the builders handle.

    Same result as the general path by construction: every option here is one its own module
    accepts, which is the owner the general path gives it too, and each group is built by the
    same builder — once per distinct group of words (`_Memo.groups`).
    """
    count = len(tokens)
    index = 2
    ip: dict[str, tuple[bool, str]] = {}
    ip_flags = _IP_FLAGS
    while index < count:
        token = tokens[index]
        invert = token == "!"
        step = 2 if invert else 1
        if invert:
            if index + 1 >= count:
                return None
            token = tokens[index + 1]
        name = ip_flags.get(token)
        if name is None or name in ip:
            break
        if name == "frag":
            ip[name] = (invert, "")
            index += step
        else:
            if index + step >= count:
                return None
            ip[name] = (invert, tokens[index + step])
            index += step + 1
    if index < count and tokens[index] == "!":
        return None
    ip_end = index
    # First find every group's words (any misfit: the general path reads the rule), then build
    # in the general path's order, so both refuse a bad rule with the same first error.
    groups_found: list[tuple[int, int, str, _OptionSpec]] = []
    while index < count and tokens[index] in _MODULE:
        if index + 1 >= count:
            return None
        name = tokens[index + 1]
        spec = _MATCH_LOOKUP.get(name)
        if spec is None:
            return None
        end = _group_end(tokens, index + 2, spec)
        if end < 0:
            return None
        groups_found.append((index, end, name, spec))
        index = end
    target_name: str | None = None
    goto = False
    target_spec: _OptionSpec | None = None
    if index < count:
        if tokens[index] not in _TARGET or index + 1 >= count:
            return None
        target_name = tokens[index + 1]
        goto = tokens[index] in ("-g", "--goto")
        if goto or (target_name not in TARGET_OPTIONS and target_name not in UNMODELLED_TARGETS):
            if index + 2 != count:
                return None
        else:
            target_spec = TARGET_OPTIONS.get(target_name)
            if target_spec is None or _group_end(tokens, index + 2, target_spec) != count:
                return None

    ip_key = (*tokens[2:ip_end], chain) if ("in" in ip or "out" in ip) else tuple(tokens[2:ip_end])
    known = memo.ip_parts.get(ip_key)
    if known is None:
        built_ip = _build_ip_matches(ip, chain, ctx, memo)
        known = memo.ip_parts[ip_key] = (tuple(built_ip[0]), built_ip[1], built_ip[2])
    ip_matches, proto, proto_invert = known
    matches: list[Match] = list(ip_matches)
    groups = memo.groups
    for start, end, name, spec in groups_found:
        key = (*tokens[start:end], proto, proto_invert)
        built = groups.get(key)
        if built is None:
            section = _Section(name, spec, _group_options(tokens, start + 2, end, spec))
            built = groups[key] = _build_match(section, proto, proto_invert, ctx)
        matches.append(built)
    if target_name is None:
        return matches, None
    if target_spec is None:
        declared = table.chains.get(target_name)
        if declared is not None and declared.policy is None:
            return matches, JumpTarget(target_name, goto)
        return matches, _build_target(  # raises the general path's error
            _RuleWords(jump=(target_name, goto)), table, chain, proto, proto_invert, ctx
        )
    target_key = (*tokens[index:count], proto, proto_invert)
    if target_key in memo.targets:
        return matches, memo.targets[target_key]
    options = _group_options(tokens, index + 2, count, target_spec)
    section = _Section(target_name, target_spec, options)
    target = _build_target(_RuleWords(target=section), table, chain, proto, proto_invert, ctx)
    if target_name not in TARGET_TABLES:
        memo.targets[target_key] = target  # table-specific targets are checked per rule
    return matches, target


def _group_end(tokens: Sequence[str], index: int, spec: _OptionSpec) -> int:
    """Where a module's (or target's) group of options starting at `index` ends: at the next
    `-m`/`-j`/`-g` or the end of the rule; -1 when a word in it is not the module's own option
    (or a `!` before one it cannot negate), which the general path sorts out."""
    count = len(tokens)
    while index < count:
        token = tokens[index]
        if token == "!":
            if index + 1 >= count:
                return -1
            found = spec.get(tokens[index + 1])
            if found is None or not found[1]:
                return -1
            index += 2 + found[0]
            continue
        found = spec.get(token)
        if found is None:
            return index if token in _BOUNDARY else -1
        index += 1 + found[0]
    return index if index == count else -1


def _group_options(
    tokens: Sequence[str], index: int, end: int, spec: _OptionSpec
) -> list[tuple[bool, str, tuple[str, ...]]]:
    """The (negated, option, values) of a group `_group_end` accepted."""
    options: list[tuple[bool, str, tuple[str, ...]]] = []
    while index < end:
        invert = tokens[index] == "!"
        if invert:
            index += 1
        option = tokens[index]
        arity = spec[option][0]
        options.append((invert, option, tuple(tokens[index + 1 : index + 1 + arity])))
        index += 1 + arity
    return options


def _split_words(tokens: Sequence[str], ctx: _Context) -> _RuleWords:
    """Group a rule's words (after `-A CHAIN`) by owner: IP options, each match module, the
    target."""
    words = _RuleWords()
    current: _Section | None = None
    invert = False
    index = 2
    count = len(tokens)
    core_options = _CORE_LOOKUP
    while index < count:
        token = tokens[index]
        index += 1
        if token == "!":
            if invert:
                ctx.error("multiple '!' flags not allowed")
            invert = True
            continue
        core = core_options.get(token)
        if core is not None and core in _IP_OPTIONS:
            if core in words.ip:
                ctx.error(f"multiple {token} flags not allowed")
            if core == "frag":
                words.ip[core] = (invert, "")
            else:
                if index >= count:
                    ctx.error(f"option {token!r} requires an argument")
                words.ip[core] = (invert, tokens[index])
                index += 1
            invert = False
        elif core == "match":
            if invert:
                ctx.error("'!' cannot precede -m")
            if index >= count:
                ctx.error(f"option {token!r} requires an argument")
            name = tokens[index]
            index += 1
            spec = _MATCH_LOOKUP.get(name)
            if spec is None and name not in UNMODELLED_MATCHES:
                ctx.error(f"couldn't load match {name!r}", fix="check the module name")
            current = _Section(name, spec)
            words.modules.append(current)
        elif core == "jump" or core == "goto":
            if invert:
                ctx.error(f"'!' cannot precede {token}")
            if words.target is not None or words.jump is not None:
                ctx.error("multiple -j/-g flags not allowed")
            if index >= count:
                ctx.error(f"option {token!r} requires an argument")
            name = tokens[index]
            index += 1
            if core == "goto":
                words.jump = (name, True)
                current = None
            elif name in TARGET_OPTIONS or name in UNMODELLED_TARGETS:
                words.target = _Section(name, TARGET_OPTIONS.get(name))
                current = words.target
            else:
                words.jump = (name, False)
                current = None
        elif token[:1] == "-" and token != "-":
            if current is not None and current.spec is not None and token in current.spec:
                owner: _Section | None = current
            else:
                owner = _owner_of(token, current, words)
            if owner is None:
                ctx.error(f"unknown option {token!r}")
            current = owner
            if owner.spec is None:
                # An unmodelled extension: its option's values are the words up to the next
                # option (or '!' before one).
                start = index
                while index < count and not tokens[index].startswith("-"):
                    if tokens[index] == "!":
                        break
                    index += 1
                values = tuple(tokens[start:index])
            else:
                arity, negatable = owner.spec[token]
                if invert and not negatable:
                    ctx.error(f"option {token!r} cannot be negated")
                if index + arity > count:
                    ctx.error(f"option {token!r} requires an argument")
                values = tuple(tokens[index : index + arity])
                index += arity
            owner.options.append((invert, token, values))
            invert = False
        else:
            ctx.error(f"bad argument {token!r}")
    if invert:
        ctx.error("'!' at the end of the rule")
    return words


def _owner_of(option: str, current: _Section | None, words: _RuleWords) -> _Section | None:
    """Who takes an option: the section being read, else any earlier module or the target
    (iptables offers unknown options to every loaded extension), else an implicitly loaded
    protocol module (`-p tcp --dport 80` loads `tcp`)."""
    if current is not None and current.accepts(option):
        return current
    for section in (*words.modules, *([words.target] if words.target else [])):
        if section.spec is not None and option in section.spec:
            return section
    proto = words.ip.get("proto")
    if proto is not None and not proto[0]:
        name = proto[1].lower()
        if _digits(name):
            name = next((n for n, v in PROTOCOLS.items() if v == int(name)), name)
        spec = MATCH_OPTIONS.get(name) if name in _PROTOCOL_MODULES else None
        if spec is not None and option in spec:
            implicit = _Section(name, spec, implicit=True)
            words.modules.append(implicit)
            return implicit
    return None


def _build_ip_matches(
    ip: Mapping[str, tuple[bool, str]], chain: str, ctx: _Context, memo: _Memo
) -> tuple[list[Match], int, bool]:
    matches: list[Match] = []
    proto, proto_invert = 0, False
    for name in ("src", "dst", "in", "out", "proto", "frag"):
        if name not in ip:
            continue
        invert, value = ip[name]
        if name == "proto":
            key = (invert, value)
            if key not in memo.protocols:
                number = _protocol(value, ctx)
                if number == 0 and invert:
                    ctx.error("rule would never match: ! -p all")
                memo.protocols[key] = number
            proto, proto_invert = memo.protocols[key], invert
            if proto != 0:
                matches.append(ProtocolMatch(proto, invert))
            continue
        ip_key = (name, invert, value, chain if name in ("in", "out") else "")
        if ip_key in memo.ip:
            found = memo.ip[ip_key]
        else:
            found = memo.ip[ip_key] = _ip_match(name, invert, value, chain, ctx)
        if found is not None:
            matches.append(found)
    return matches, proto, proto_invert


def _ip_match(name: str, invert: bool, value: str, chain: str, ctx: _Context) -> Match | None:
    """One of `-s -d -i -o -f` (None: `-s/-d` of a /0 network, which iptables-save omits)."""
    if name in ("src", "dst"):
        address, prefixlen = _network(value, ctx)
        if prefixlen == 0 and not invert:
            return None  # iptables-save omits a /0 address: it matches everything
        return AddressMatch(name, address, prefixlen, invert)  # type: ignore[arg-type]
    if name in ("in", "out"):
        if chain in INTERFACE_FORBIDDEN[name]:
            flag = "-i" if name == "in" else "-o"
            ctx.error(f"can't use {flag} with {chain}")
        if not value or len(value) > _MAX_IFNAME:
            ctx.error(f"bad interface name {value!r}", fix="at most 15 characters")
        return InterfaceMatch(name, value, invert)  # type: ignore[arg-type]
    return FragmentMatch(invert)


# --- match modules ---------------------------------------------------------------------------


def _build_match(section: _Section, proto: int, proto_invert: bool, ctx: _Context) -> Match:
    name = section.name
    if section.spec is None:
        words = tuple(
            word
            for invert, option, values in section.options
            for word in (("!",) if invert else ()) + (option, *values)
        )
        return UnmodelledMatch(name, words)
    if len({option for _, option, _ in section.options}) != len(section.options):
        ctx.error(f"{name}: an option is given twice")
    options = {option: (invert, values) for invert, option, values in section.options}
    if name in _PROTOCOL_MODULES and (proto != PROTOCOLS[name] or proto_invert):
        ctx.error(f"{name} match requires '-p {name}'", fix=f"add -p {name} to the rule")
    if name == "comment":
        return CommentMatch(options["--comment"][1][0] if "--comment" in options else "")
    if name == "addrtype":
        return _addrtype(options, ctx)
    if name in ("mark", "connmark"):
        if "--mark" not in options:
            ctx.error(f"{name}: --mark is required")
        invert, values = options["--mark"]
        value, mask = _value_mask(values[0], ctx)
        cls = MarkMatch if name == "mark" else ConnmarkMatch
        return cls(value, 0xFFFFFFFF if mask is None else mask, invert)
    if name == "conntrack":
        return ConntrackMatch(tuple(_ct_condition(i, o, v[0], ctx) for i, o, v in section.options))
    if name == "state":
        if "--state" not in options:
            ctx.error("state: --state is required")
        invert, values = options["--state"]
        states = _word_set(values[0], STATES, "state", ctx)
        return ConntrackMatch((CtStateCondition(states, invert),), module="state")
    if name in ("tcp", "udp"):
        return _port_match(name, options, ctx)  # type: ignore[arg-type]
    if name == "icmp":
        return _icmp(options, ctx)
    if name == "multiport":
        if proto not in MULTIPORT_PROTOCOLS or proto_invert:
            ctx.error(
                "multiport needs '-p tcp', '-p udp', '-p udplite', '-p sctp' or '-p dccp'",
                fix="add the protocol to the rule",
            )
        return _multiport(section.options, ctx)
    if name == "statistic":
        return _statistic(options, ctx)
    if name == "nfacct":
        return NfacctMatch(options["--nfacct-name"][1][0] if "--nfacct-name" in options else "")
    if name == "recent":
        return _recent(section.options, ctx)
    if name == "sctp":
        return _sctp(options, ctx)
    raise AssertionError(name)


_RECENT_ACTIONS = ("--set", "--rcheck", "--update", "--remove")
_RECENT_NAME_MAX = 199
"""XT_RECENT_NAME_LEN (200) minus the NUL: a longer `--name` is cut to 199 characters [meas]."""


def _recent(options: Sequence[tuple[bool, str, tuple[str, ...]]], ctx: _Context) -> RecentMatch:
    """`-m recent` as libxt_recent parses it and `recent_mt_check` accepts it [meas]."""
    given = {option: (invert, values) for invert, option, values in options}
    actions = [option for option in _RECENT_ACTIONS if option in given]
    if not actions:
        ctx.error("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")
    if len(actions) > 1:
        ctx.error(f'recent: option "{actions[0]}" cannot be used together with "{actions[1]}"')
    action = actions[0]
    if "--rttl" in given and action in ("--set", "--remove"):
        ctx.error(f'recent: option "--rttl" cannot be used together with "{action}"')
    if "--reap" in given and "--seconds" not in given:
        ctx.error('recent: option "--reap" also requires "--seconds"')
    seconds = 0
    if "--seconds" in given:
        text = given["--seconds"][1][0]
        if not _digits(text) or not 1 <= int(text) <= 0xFFFFFFFF:
            ctx.error('recent: bad value for option "--seconds", or out of range (1-4294967295)')
        seconds = int(text)
    hitcount = 0
    if "--hitcount" in given:
        text = given["--hitcount"][1][0]
        if not _digits(text) or int(text) > 0xFFFFFFFF:
            ctx.error('recent: bad value for option "--hitcount", or out of range')
        hitcount = int(text)
    if action in ("--set", "--remove") and (seconds or hitcount):
        ctx.error(
            f"recent: {action} takes no --seconds or --hitcount",
            fix="the kernel refuses the rule (RULE_APPEND failed: Invalid argument)",
        )
    name = given["--name"][1][0][:_RECENT_NAME_MAX] if "--name" in given else "DEFAULT"
    if name in ("", ".", "..") or "/" in name:
        ctx.error(f"recent: the kernel refuses the list name {name!r} (it names a /proc file)")
    mask = 0xFFFFFFFF
    if "--mask" in given:
        try:  # xtables reads it as inet_aton does: `24` is 0.0.0.24 [meas]
            mask = int.from_bytes(socket.inet_aton(given["--mask"][1][0]), "big")
        except OSError:
            ctx.error(f"recent: bad --mask {given['--mask'][1][0]!r}")
    side: Literal["source", "dest"] = "source"
    for _, option, _ in options:
        if option in ("--rsource", "--rdest"):
            side = "source" if option == "--rsource" else "dest"  # the last one given wins
    check = RecentCheck(
        action=action[2:],  # type: ignore[arg-type]
        name=name,
        seconds=seconds,
        reap="--reap" in given,
        hitcount=hitcount,
        rttl="--rttl" in given,
        side=side,
        invert=given[action][0],
    )
    return RecentMatch(check, mask)


_SCTP_CHUNK_NAMES: tuple[tuple[str, int, str], ...] = (
    ("DATA", 0, "----IUBE"),
    ("INIT", 1, "--------"),
    ("INIT_ACK", 2, "--------"),
    ("SACK", 3, "--------"),
    ("HEARTBEAT", 4, "--------"),
    ("HEARTBEAT_ACK", 5, "--------"),
    ("ABORT", 6, "-------T"),
    ("SHUTDOWN", 7, "--------"),
    ("SHUTDOWN_ACK", 8, "--------"),
    ("ERROR", 9, "--------"),
    ("COOKIE_ECHO", 10, "--------"),
    ("COOKIE_ACK", 11, "--------"),
    ("ECN_ECNE", 12, "--------"),
    ("ECN_CWR", 13, "--------"),
    ("SHUTDOWN_COMPLETE", 14, "-------T"),
    ("I_DATA", 64, "----IUBE"),
    ("RE_CONFIG", 130, "--------"),
    ("PAD", 132, "--------"),
    ("ASCONF", 193, "--------"),
    ("ASCONF_ACK", 128, "--------"),
    ("FORWARD_TSN", 192, "--------"),
    ("I_FORWARD_TSN", 194, "--------"),
)
"""libxt_sctp's chunk table: name, chunk type, the flag letters by bit (7 … 0). Its position
in this table is what libxt_sctp stores as the chunk type of a flag condition (a quirk: for
I_DATA that is 15, so I_DATA's flags never apply), and the model keeps that."""

_SCTP_FLAG_SLOTS = 4
"""XT_NUM_SCTP_FLAGS: at most four chunk types with flags per rule."""


def _ports(
    options: Mapping[str, tuple[bool, tuple[str, ...]]],
    names: tuple[str, str],
    ctx: _Context,
    both_given: str,
) -> tuple[PortRange | None, bool]:
    """A port option given by its short or long name (`--sport`/`--source-port`), with its
    `!`; both at once is the module's own error, `both_given`."""
    given = [options[name] for name in names if name in options]
    if len(given) > 1:
        ctx.error(both_given)
    if not given:
        return None, False
    invert, values = given[0]
    return _port_range(values[0], ":", ctx), invert


def _sctp(options: Mapping[str, tuple[bool, tuple[str, ...]]], ctx: _Context) -> SctpMatch:
    """`-m sctp` as libxt_sctp parses it: ports like tcp's, `--chunk-types MODE LIST`."""
    source, destination = ("--sport", "--source-port"), ("--dport", "--destination-port")
    sport, sport_invert = _ports(options, source, ctx, "sctp: only one `--source-port' allowed")
    dport, dport_invert = _ports(
        options, destination, ctx, "sctp: only one `--destination-port' allowed"
    )
    chunks: SctpChunkMatch | None = None
    chunks_invert = False
    if "--chunk-types" in options:
        chunks_invert, (mode, listed) = options["--chunk-types"]
        if listed.startswith(("-", "!")):
            ctx.error("sctp: --chunk-types requires two args")
        chunks = _sctp_chunks(mode, listed, ctx)
    return SctpMatch(sport, sport_invert, dport, dport_invert, chunks, chunks_invert)


def _sctp_chunks(mode: str, listed: str, ctx: _Context) -> SctpChunkMatch:
    if mode.lower() not in ("any", "all", "only"):
        ctx.error('sctp: match type has to be one of "ALL", "ANY" or "ONLY"')
    kind: Literal["any", "all", "only"] = mode.lower()  # type: ignore[assignment]
    if listed.upper() == "ALL":
        return SctpChunkMatch(kind, frozenset(range(256)))
    if listed.upper() == "NONE":
        return SctpChunkMatch(kind, frozenset())
    types: set[int] = set()
    flags: dict[int, tuple[int, int]] = {}  # table position -> (flag, mask)
    for item in listed.split(","):
        if not item:
            continue
        chunk_name, colon, letters = item.partition(":")
        position = next(
            (i for i, (n, _, _) in enumerate(_SCTP_CHUNK_NAMES) if n == chunk_name.upper()), None
        )
        if position is None:
            ctx.error(f"sctp: unknown chunk type {chunk_name!r}")
        _, number, valid = _SCTP_CHUNK_NAMES[position]
        types.add(number)
        for letter in letters if colon else "":
            if letter.upper() not in valid or letter == "-":
                ctx.error(f"sctp: invalid flags for chunk type {position}")
            bit = 1 << (7 - valid.index(letter.upper()))
            if position not in flags and len(flags) == _SCTP_FLAG_SLOTS:
                ctx.error("sctp: more than four chunk types with flags")
            flag, mask = flags.get(position, (0, 0))
            flags[position] = (flag | (bit if letter.isupper() else 0), mask | bit)
    conditions = tuple((position, flag, mask) for position, (flag, mask) in flags.items())
    return SctpChunkMatch(kind, frozenset(types), conditions)


def _addrtype(options: Mapping[str, tuple[bool, tuple[str, ...]]], ctx: _Context) -> AddrtypeMatch:
    src = options.get("--src-type")
    dst = options.get("--dst-type")
    if src is None and dst is None:
        ctx.error("addrtype: you must specify --src-type or --dst-type")
    limit_in = "--limit-iface-in" in options
    limit_out = "--limit-iface-out" in options
    if limit_in and limit_out:
        ctx.error("addrtype: you can't specify both --limit-iface-in and --limit-iface-out")
    return AddrtypeMatch(
        src_types=None if src is None else _word_set(src[1][0], ADDRTYPES, "address type", ctx),
        src_invert=src is not None and src[0],
        dst_types=None if dst is None else _word_set(dst[1][0], ADDRTYPES, "address type", ctx),
        dst_invert=dst is not None and dst[0],
        limit_iface_in=limit_in,
        limit_iface_out=limit_out,
    )


def _ct_condition(invert: bool, option: str, value: str, ctx: _Context) -> CtCondition:
    if option == "--ctstate":
        return CtStateCondition(_word_set(value, CTSTATES, "ctstate", ctx), invert)
    if option == "--ctproto":
        return CtProtoCondition(_protocol(value, ctx), invert)
    if option in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
        address, mask = _address_mask(value, ctx)
        return CtAddressCondition(option[4:], address, mask, invert)  # type: ignore[arg-type]
    if option in ("--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport"):
        return CtPortCondition(option[4:], _port_range(value, ":", ctx), invert)  # type: ignore[arg-type]
    if option == "--ctstatus":
        return CtStatusCondition(_word_set(value, CTSTATUS, "ctstatus", ctx), invert)
    if option == "--ctexpire":
        low, high = _number_range(value, ctx)
        return CtExpireCondition(low, high, invert)
    if option == "--ctdir":
        if value.upper() not in ("ORIGINAL", "REPLY"):
            ctx.error(f"bad --ctdir {value!r}", fix="ORIGINAL or REPLY")
        return CtDirCondition(value.upper(), invert)  # type: ignore[arg-type]
    raise AssertionError(option)


def _port_match(
    proto: Literal["tcp", "udp"],
    options: Mapping[str, tuple[bool, tuple[str, ...]]],
    ctx: _Context,
) -> PortMatch:
    source, destination = ("--sport", "--source-port"), ("--dport", "--destination-port")
    sport, sport_invert = _ports(
        options, source, ctx, f"{proto}: multiple --sport flags not allowed"
    )
    dport, dport_invert = _ports(
        options, destination, ctx, f"{proto}: multiple --dport flags not allowed"
    )
    flags: tuple[frozenset[str], frozenset[str]] | None = None
    flags_invert = False
    if "--tcp-option" in options:
        raise NotModelled(f"iptables match -m tcp --tcp-option ({ctx.source}:{ctx.line})")
    if "--tcp-flags" in options and "--syn" in options:
        ctx.error("tcp: --syn and --tcp-flags together")
    if "--tcp-flags" in options:
        flags_invert, values = options["--tcp-flags"]
        flags = (_tcp_flags(values[0], ctx), _tcp_flags(values[1], ctx))
    elif "--syn" in options:
        flags_invert = options["--syn"][0]
        flags = (frozenset({"FIN", "SYN", "RST", "ACK"}), frozenset({"SYN"}))
    return PortMatch(proto, sport, sport_invert, dport, dport_invert, flags, flags_invert)


def _tcp_flags(text: str, ctx: _Context) -> frozenset[str]:
    words = {word.upper() for word in text.split(",")}
    if words == {"ALL"}:
        return frozenset(TCP_FLAGS)
    if words == {"NONE"}:
        return frozenset()
    unknown = words - set(TCP_FLAGS)
    if unknown:
        ctx.error(f"unknown TCP flag {sorted(unknown)[0]!r}")
    return frozenset(words)


def _icmp(options: Mapping[str, tuple[bool, tuple[str, ...]]], ctx: _Context) -> IcmpMatch:
    if "--icmp-type" not in options:
        return IcmpMatch(None)
    invert, values = options["--icmp-type"]
    text = values[0]
    if text == "any":
        return IcmpMatch(None, invert=invert)
    if text in ICMP_TYPE_NAMES:
        icmp_type, low, high = ICMP_TYPE_NAMES[text]
        return IcmpMatch(icmp_type, low, high, invert)
    kind, _, code = text.partition("/")
    if not _digits(kind) or (code and not _digits(code)):
        raise NotModelled(f"ICMP type name {text!r} ({ctx.source}:{ctx.line}); use numbers")
    icmp_type = int(kind)
    if icmp_type > 255 or (code and int(code) > 255):
        ctx.error(f"bad ICMP type {text!r}")
    if code:
        return IcmpMatch(icmp_type, int(code), int(code), invert)
    return IcmpMatch(icmp_type, 0, 255, invert)


def _multiport(
    options: Sequence[tuple[bool, str, tuple[str, ...]]], ctx: _Context
) -> MultiportMatch:
    if len(options) != 1:
        ctx.error("multiport: give exactly one of --sports, --dports, --ports")
    invert, option, values = options[0]
    which: Literal["src", "dst", "any"] = (
        "src" if option in ("--sports", "--source-ports") else
        "dst" if option in ("--dports", "--destination-ports") else "any"
    )  # fmt: skip
    ranges = tuple(_port_range(part, ":", ctx) for part in values[0].split(","))
    if sum(1 if r.low == r.high else 2 for r in ranges) > 15:
        ctx.error("multiport: too many ports specified", fix="at most 15 (a range counts 2)")
    return MultiportMatch(which, ranges, invert)


def _statistic(
    options: Mapping[str, tuple[bool, tuple[str, ...]]], ctx: _Context
) -> StatisticMatch:
    mode = options.get("--mode", (False, ("",)))[1][0]
    if mode == "random":
        if "--probability" not in options:
            ctx.error("statistic: --mode random needs --probability")
        if "--every" in options or "--packet" in options:
            ctx.error("statistic: --every/--packet only with --mode nth")
        invert, values = options["--probability"]
        try:
            probability = float(values[0])
        except ValueError:
            ctx.error(f"bad --probability {values[0]!r}")
        if not 0.0 <= probability <= 1.0 or math.isnan(probability):
            ctx.error("--probability must be between 0 and 1")
        # libxt_statistic stores lround(2^31 · p): round half away from zero.
        threshold = math.floor(probability * STATISTIC_SCALE + 0.5)
        return StatisticMatch("random", threshold=threshold, invert=invert)
    if mode == "nth":
        if "--every" not in options:
            ctx.error("statistic: --mode nth needs --every")
        if "--probability" in options:
            ctx.error("statistic: --probability only with --mode random")
        invert, values = options["--every"]
        every = _unsigned(values[0], ctx)
        packet = _unsigned(options["--packet"][1][0], ctx) if "--packet" in options else 0
        if every == 0 or packet >= every:
            ctx.error("statistic: --every must be ≥ 1 and --packet below it")
        return StatisticMatch("nth", every=every, packet=packet, invert=invert)
    ctx.error(f"statistic: bad --mode {mode!r}", fix="random or nth")


# --- targets ---------------------------------------------------------------------------------


def _build_target(
    words: _RuleWords,
    table: _TableBuilder,
    chain: str,
    proto: int,
    proto_invert: bool,
    ctx: _Context,
) -> Target | None:
    if words.jump is not None:
        name, goto = words.jump
        if name in table.chains and table.chains[name].policy is None:
            return JumpTarget(name, goto)
        if name in table.chains:
            ctx.error(f"cannot jump to built-in chain {name}")
        ctx.error(
            f"jump to missing chain {name!r} in table {table.name}",
            fix=f"declare it with ':{name} - [0:0]' before this rule",
        )
    section = words.target
    if section is None:
        return None
    name = section.name
    required_table = TARGET_TABLES.get(name)
    if required_table is not None and required_table != table.name:
        ctx.error(f"{name} target is only valid in the {required_table} table, not {table.name}")
    if section.spec is None:
        words_ = tuple(w for _, option, values in section.options for w in (option, *values))
        return UnmodelledTarget(name, words_)
    if len({option for _, option, _ in section.options}) != len(section.options):
        ctx.error(f"{name}: an option is given twice")
    options = {option: values for _, option, values in section.options}
    if name in ("ACCEPT", "DROP", "RETURN"):
        return StandardTarget(name)  # type: ignore[arg-type]
    if name == "REJECT":
        given = options.get("--reject-with", ("icmp-port-unreachable",))[0]
        if given not in REJECT_WITH:
            ctx.error(f"unknown reject type {given!r}")
        kind = REJECT_WITH[given]
        if kind == "tcp-reset" and (proto != 6 or proto_invert):
            ctx.error("can only use --reject-with tcp-reset with -p tcp")
        return RejectTarget(kind)
    if name == "MARK":
        value, mask = _mark_setter(options, "MARK", ctx)
        return MarkTarget(value, mask)
    if name == "CONNMARK":
        return _connmark(options, ctx)
    if name in ("DNAT", "SNAT", "MASQUERADE"):
        return NatTarget(_nat_request(name, options, proto, proto_invert, ctx))  # type: ignore[arg-type]
    if name in ("LOG", "NFLOG", "TRACE"):
        return NoopTarget(name, tuple(w for o, v in options.items() for w in (o, *v)))
    raise AssertionError(name)


def _mark_setter(
    options: Mapping[str, tuple[str, ...]], target: str, ctx: _Context
) -> tuple[int, int]:
    """Reduce MARK/CONNMARK setters to xmark value/mask, as iptables stores them (§6.9)."""
    setters = [option for option in _MARK_SETTERS if option in options]
    if len(setters) != 1:
        ctx.error(f"{target}: give exactly one of {', '.join(_MARK_SETTERS)}")
    option = setters[0]
    text = options[option][0]
    if option in ("--set-xmark", "--set-mark"):
        value, mask = _value_mask(text, ctx)
        if option == "--set-xmark":
            return value, 0xFFFFFFFF if mask is None else mask
        return value, (0xFFFFFFFF if mask is None else mask) | value
    value = _unsigned(text, ctx, limit=0xFFFFFFFF)
    if option == "--or-mark":
        return value, value
    if option == "--xor-mark":
        return value, 0
    return 0, ~value & 0xFFFFFFFF  # --and-mark


def _connmark(options: Mapping[str, tuple[str, ...]], ctx: _Context) -> Target:
    modes = [m for m in ("--save-mark", "--restore-mark") if m in options]
    if any(option in options for option in _MARK_SETTERS):
        if modes or any(m in options for m in ("--nfmask", "--ctmask", "--mask")):
            ctx.error("CONNMARK: a set operation takes no save/restore options")
        value, mask = _mark_setter(options, "CONNMARK", ctx)
        return ConnmarkSetTarget(value, mask)
    if len(modes) != 1:
        ctx.error("CONNMARK: give --set-xmark, --save-mark or --restore-mark")
    both = _unsigned(options["--mask"][0], ctx, limit=0xFFFFFFFF) if "--mask" in options else None
    nfmask = ctmask = 0xFFFFFFFF if both is None else both
    if "--nfmask" in options:
        nfmask = _unsigned(options["--nfmask"][0], ctx, limit=0xFFFFFFFF)
    if "--ctmask" in options:
        ctmask = _unsigned(options["--ctmask"][0], ctx, limit=0xFFFFFFFF)
    if modes[0] == "--save-mark":
        return ConnmarkSaveTarget(nfmask, ctmask)
    return ConnmarkRestoreTarget(nfmask, ctmask)


def _nat_request(
    kind: NatKind,
    options: Mapping[str, tuple[str, ...]],
    proto: int,
    proto_invert: bool,
    ctx: _Context,
) -> NatRequest:
    address: IPv4Address | None = None
    address_max: IPv4Address | None = None
    ports: tuple[int, int] | None = None
    if kind == "MASQUERADE":
        if "--to-ports" in options:
            ports = _nat_ports(options["--to-ports"][0], ctx)
    else:
        option = "--to-destination" if kind == "DNAT" else "--to-source"
        if option not in options:
            ctx.error(f"{kind}: {option} is required")
        address, address_max, ports = _nat_range(options[option][0], ctx)
    if ports is not None and (proto not in PORT_PROTOCOLS or proto_invert):
        ctx.error("need TCP, UDP, SCTP or DCCP with port specification", fix="add -p tcp or -p udp")
    return NatRequest(
        kind,
        to_address=address,
        to_address_max=address_max,
        to_ports=ports,
        random="--random" in options,
        random_fully="--random-fully" in options,
        persistent="--persistent" in options,
    )


def _nat_range(
    text: str, ctx: _Context
) -> tuple[IPv4Address, IPv4Address | None, tuple[int, int] | None]:
    """`A[-B][:P[-Q]]` of `--to-destination` / `--to-source`."""
    addresses, _, port_text = text.partition(":")
    first, _, last = addresses.partition("-")
    if not first:
        ctx.error(f"NAT range {text!r} has no address")
    low = _address(first, ctx)
    high = _address(last, ctx) if last else None
    if high is not None and high < low:
        ctx.error(f"bad address range {addresses!r}")
    ports = _nat_ports(port_text, ctx) if port_text else None
    return low, high, ports


def _nat_ports(text: str, ctx: _Context) -> tuple[int, int]:
    if _digits(text) and int(text) <= 65535:
        return int(text), int(text)
    ports = _port_range(text, "-", ctx)
    return ports.low, ports.high


# --- hooks and loops -------------------------------------------------------------------------


def _check_hooks(
    table: Table, source: str, jumps: Mapping[str, Sequence[str]], hooked: Sequence[Rule]
) -> None:
    """Kernel load-time checks that depend on the hooks a chain is reached from: chain loops,
    NAT targets and addrtype limits used from hooks where they are invalid.

    `jumps` (per chain, the chains it jumps to) and `hooked` (the NAT and addrtype-limit
    rules) are what the parser collected, so a 60k-rule table costs one walk of its jump graph:
    a depth-first search from the built-in chains finds loops and an order in which every
    chain comes after all chains that jump to it; the hooks then flow along that order. A loop
    is reported by `_walk`, which meets it in the order the kernel's check does.
    """
    hooks = TABLE_CHAINS[table.name]
    order = _topological(tuple(hook.value for hook in hooks), jumps)
    if order is None:
        found: dict[str, set[Hook]] = {chain.name: set() for chain in table.chains}
        for hook in hooks:
            _walk(table, hook, table.chain(hook.value), found, [], source)
        raise AssertionError("a jump loop was found but not reported")  # pragma: no cover
    bits: dict[str, int] = {hook.value: 1 << position for position, hook in enumerate(hooks)}
    for name in order:
        mask = bits.get(name, 0)
        for target in jumps.get(name, ()):
            bits[target] = bits.get(target, 0) | mask
    usable_bits = {
        kind: sum(1 << position for position, hook in enumerate(hooks) if hook in usable)
        for kind, usable in NAT_HOOKS.items()
    }
    for rule in hooked:
        mask = bits.get(rule.chain, 0)
        nat = rule.target
        fine = isinstance(nat, NatTarget) and not mask & ~usable_bits[nat.request.kind]
        if fine and "addrtype" not in rule.text:
            continue  # the common case: a NAT target reached only from its own hooks
        reached = {hook for position, hook in enumerate(hooks) if mask >> position & 1}
        ctx = _Context(source, rule.line)
        if isinstance(rule.target, NatTarget):
            kind = rule.target.request.kind
            wrong = reached - NAT_HOOKS[kind]
            if wrong:
                allowed = "/".join(sorted(h.value for h in NAT_HOOKS[kind]))
                ctx.error(
                    f"{kind} target used from {'/'.join(sorted(h.value for h in wrong))}, "
                    f"but only usable from {allowed}",
                    fix=f"jump to chain {rule.chain} only from {allowed}",
                )
        for match in rule.matches:
            if not isinstance(match, AddrtypeMatch):
                continue
            for limit, flag in (
                ("--limit-iface-in", match.limit_iface_in),
                ("--limit-iface-out", match.limit_iface_out),
            ):
                wrong = reached & ADDRTYPE_LIMIT_FORBIDDEN[limit] if flag else set()
                if wrong:
                    ctx.error(
                        f"addrtype {limit} used from {'/'.join(sorted(h.value for h in wrong))}"
                    )


def _topological(roots: Sequence[str], jumps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The chains reachable from `roots`, each after every reachable chain that jumps to it
    (reverse post-order of an iterative depth-first search); None when the jumps loop."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    post: list[str] = []
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(jumps.get(root, ())))]
        while stack:
            name, targets = stack[-1]
            for target in targets:
                seen = state.get(target)
                if seen == 1:
                    return None
                if seen is None:
                    state[target] = 1
                    stack.append((target, iter(jumps.get(target, ()))))
                    break
            else:
                state[name] = 2
                post.append(name)
                stack.pop()
    post.reverse()
    return post


def _walk(
    table: Table,
    hook: Hook,
    chain: Chain,
    reached: dict[str, set[Hook]],
    path: list[str],
    source: str,
) -> None:
    """Depth-first from a built-in chain: record the hook on every chain reached; a jump back
    into a chain on the current path is a loop (the kernel refuses it: ELOOP)."""
    if hook in reached[chain.name] and chain.name not in path:
        return
    reached[chain.name].add(hook)
    path.append(chain.name)
    for rule in chain.rules:
        if not isinstance(rule.target, JumpTarget):
            continue
        target = rule.target.chain
        if target in path:
            loop = " -> ".join([*path[path.index(target) :], target])
            _Context(source, rule.line).error(
                f"chain loop {loop}", fix=f"remove the jump to {target} from {chain.name}"
            )
        _walk(table, hook, table.chain(target), reached, path, source)
    path.pop()


# --- values ----------------------------------------------------------------------------------


def _digits(text: str) -> bool:
    """Only ASCII decimal digits (`str.isdigit` also takes `²`, which `int` refuses)."""
    return text.isascii() and text.isdigit()


def _unsigned(text: str, ctx: _Context, *, limit: int = 0xFFFFFFFF) -> int:
    """A number the way `strtoul(…, 0)` reads it: 0x hex, leading-0 octal, else decimal."""
    try:
        if text.lower().startswith("0x"):
            value = int(text[2:], 16)
        elif len(text) > 1 and text.startswith("0"):
            value = int(text[1:], 8)
        else:
            value = int(text, 10)
    except ValueError:
        ctx.error(f"bad number {text!r}")
    if not 0 <= value <= limit:
        ctx.error(f"number {text!r} out of range")
    return value


def _value_mask(text: str, ctx: _Context) -> tuple[int, int | None]:
    value, slash, mask = text.partition("/")
    return _unsigned(value, ctx), (_unsigned(mask, ctx) if slash else None)


def _word_set(text: str, allowed: frozenset[str], what: str, ctx: _Context) -> frozenset[str]:
    words = frozenset(word.upper() for word in text.split(","))
    unknown = words - allowed
    if unknown or not text:
        ctx.error(f"bad {what} {text!r}", fix=f"one of {', '.join(sorted(allowed))}")
    return words


def _protocol(text: str, ctx: _Context) -> int:
    if _digits(text):
        number = int(text)
        if number > 255:
            ctx.error(f"bad protocol {text!r}")
        return number
    name = text.lower()
    if name not in PROTOCOLS:
        ctx.error(f"unknown protocol {text!r}", fix="use a name from /etc/protocols or a number")
    return PROTOCOLS[name]


def _address(text: str, ctx: _Context) -> IPv4Address:
    dotted = _DOTTED.match(text)
    if dotted is not None and dotted.group(5) is None:
        a, b, c, d = (int(part) for part in dotted.group(1, 2, 3, 4))
        if max(a, b, c, d) <= 255:
            return IPv4Address((a << 24) | (b << 16) | (c << 8) | d)
    return _address_slow(text, ctx)


def _address_slow(text: str, ctx: _Context) -> IPv4Address:
    try:
        return IPv4Address(text)
    except AddressValueError:
        ctx.error(f"{text!r} is not an IPv4 address")


_DOTTED = re.compile(
    r"(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})(?:/(\d{1,2}))?\Z"
)
"""A dotted quad without leading zeros (those, like everything else, go through `ipaddress`)."""


def _network(text: str, ctx: _Context) -> tuple[int, int]:
    """`-s`/`-d` A[/L] as (network address with host bits cleared, prefix length): the plain
    dotted forms (all of kube-proxy's) without `ipaddress`, every other form through it."""
    dotted = _DOTTED.match(text)
    if dotted is not None:
        a, b, c, d, prefix_text = dotted.groups()
        value = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
        prefix = 32 if prefix_text is None else int(prefix_text)
        if value <= 0xFFFFFFFF and max(int(a), int(b), int(c), int(d)) <= 255 and prefix <= 32:
            return value & ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF), prefix
    network = _network_slow(text, ctx)
    return int(network.network_address), network.prefixlen


def _network_slow(text: str, ctx: _Context) -> IPv4Network:
    if "," in text:
        raise NotModelled(
            f"address lists in -s/-d ({ctx.source}:{ctx.line}); "
            "iptables expands them into one rule per address"
        )
    try:
        return IPv4Network(text, strict=False)  # iptables clears host bits [meas]
    except (AddressValueError, NetmaskValueError, ValueError):
        ctx.error(f"{text!r} is not an IPv4 address or network")


def _address_mask(text: str, ctx: _Context) -> tuple[IPv4Address, int]:
    address_text, slash, mask_text = text.partition("/")
    address = _address(address_text, ctx)
    if not slash:
        return address, 0xFFFFFFFF
    if _digits(mask_text) and int(mask_text) <= 32:
        bits = int(mask_text)
        return address, (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    return address, int(_address(mask_text, ctx))


def _port(text: str, ctx: _Context, *, limit: int = 65535) -> int:
    if not _digits(text):
        if text.replace("-", "").isalnum():
            raise NotModelled(f"service name {text!r} as a port ({ctx.source}:{ctx.line})")
        ctx.error(f"bad port {text!r}")
    value = int(text)
    if value > limit:
        ctx.error(f"port {text!r} out of range")
    return value


def _port_range(text: str, separator: str, ctx: _Context) -> PortRange:
    """`P`, `P:Q`, `:Q` (from 0), `P:` (to 65535) with `separator` between the ends."""
    low, high = _number_range(text, ctx, separator=separator, limit=65535)
    return PortRange(low, high)


def _number_range(
    text: str, ctx: _Context, *, separator: str = ":", limit: int = 0xFFFFFFFF
) -> tuple[int, int]:
    low_text, sep, high_text = text.partition(separator)
    low = _port(low_text, ctx, limit=limit) if low_text else 0
    high = (_port(high_text, ctx, limit=limit) if high_text else limit) if sep else low
    if low > high:
        ctx.error(f"bad range {text!r}: start above end")
    return low, high
