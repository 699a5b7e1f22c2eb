"""Connection tracking and NAT bindings of one network namespace, as values (linux-dataplane.md §6).

Why it is shaped like this: the kernel attaches a conntrack entry to a packet at the conntrack
hook (-200) — found, or created *unconfirmed* — and only inserts it into the table (confirms it)
when the packet survives to the confirm hook (INT_MAX). NAT rules run only while the entry is
unconfirmed and its binding for that manipulation (source or destination) is not set up yet; every
later packet, in either direction, just gets the stored binding applied. So the model keeps:

* `Tuple`: what identifies a flow in one direction;
* `ConntrackEntry`: original and reply tuples (NAT changes the reply tuple), ct mark, status bits,
  the L4 state (TCP's, or SCTP's from its chunks) and the seconds left;
* `ConntrackTable`: the confirmed entries; every operation returns a new table;
* `conntrack_in`: the conntrack hook as a pure function (lookup or create, ctstate, L4 state);
* `apply_nat` / `null_binding` / `nat_rewrite`: setting up a binding and applying it at a hook.
* `conntrack_list_line`: an entry as `conntrack -L` prints it (the walk quotes it).

Randomness and time are inputs: a NAT port is chosen by a caller-supplied `PortChooser`, and the
age of a flow is passed as `elapsed` seconds. Nothing here reads a clock or a random generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Literal, get_args

from eksnet.kernel.hooks import Hook

Proto = Literal["tcp", "udp", "icmp", "sctp"]
PROTO_NUMBERS: Mapping[str, int] = MappingProxyType({"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132})
"""IP protocol numbers (`/etc/protocols`) of the protocols conntrack tracks in the model."""

PORT_PROTOS = frozenset({"tcp", "udp", "sctp"})
"""Protocols whose tuples carry ports (`nf_ct_port_*`): TCP, UDP and SCTP."""

Direction = Literal["ORIGINAL", "REPLY"]
CtState = Literal["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"]
"""The state a packet has at the conntrack match (`ctinfo` mapped to iptables' names, §6.2)."""

CtStatus = Literal[
    "EXPECTED",
    "SEEN_REPLY",
    "ASSURED",
    "CONFIRMED",
    "SRC_NAT",
    "DST_NAT",
    "SRC_NAT_DONE",
    "DST_NAT_DONE",
]
"""Status bits of an entry (`enum ip_conntrack_status`), the ones the model uses."""

Manip = Literal["SRC", "DST"]
"""What a NAT hook rewrites: the source (SNAT, un-DNAT) or the destination (DNAT, un-SNAT)."""

NatKind = Literal["DNAT", "SNAT", "MASQUERADE"]

TcpState = Literal[
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
]
"""TCP conntrack states, named as `conntrack -L` prints them."""

SctpState = Literal[
    "NONE",
    "CLOSED",
    "COOKIE_WAIT",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECD",
    "SHUTDOWN_ACK_SENT",
    "HEARTBEAT_SENT",
]
"""SCTP conntrack states in the kernel's `enum sctp_conntrack` order, named as `conntrack -L`
prints them (`sctp_conntrack_names`; 6.x has no HEARTBEAT_ACKED any more)."""

SctpChunk = tuple[int, int]
"""One SCTP chunk as netfilter reads it: (chunk type, chunk flags)."""

SCTP_CHUNK_TYPES: Mapping[str, int] = MappingProxyType(
    {
        "DATA": 0,
        "INIT": 1,
        "INIT_ACK": 2,
        "SACK": 3,
        "HEARTBEAT": 4,
        "HEARTBEAT_ACK": 5,
        "ABORT": 6,
        "SHUTDOWN": 7,
        "SHUTDOWN_ACK": 8,
        "ERROR": 9,
        "COOKIE_ECHO": 10,
        "COOKIE_ACK": 11,
        "ECN_ECNE": 12,
        "ECN_CWR": 13,
        "SHUTDOWN_COMPLETE": 14,
        "I_DATA": 64,
        "ASCONF_ACK": 128,
        "RE_CONFIG": 130,
        "PAD": 132,
        "FORWARD_TSN": 192,
        "ASCONF": 193,
        "I_FORWARD_TSN": 194,
    }
)
"""Chunk type numbers by the names iptables' `sctp` match uses (`libxt_sctp.c`, RFC 9260)."""

SCTP_INIT: SctpChunk = (1, 0)
SCTP_INIT_ACK: SctpChunk = (2, 0)
SCTP_DATA: SctpChunk = (0, 0x03)
"""A DATA chunk carrying a whole message (flags B and E set)."""

PortChooser = Callable[[int, int], int]
"""Picks a port in the closed range [low, high]; the caller's (seeded) randomness, never ours."""

NAT_MANIP: Mapping[Hook, Manip] = MappingProxyType(
    {
        Hook.PREROUTING: "DST",
        Hook.OUTPUT: "DST",
        Hook.INPUT: "SRC",
        Hook.POSTROUTING: "SRC",
    }
)
"""Which manipulation the nat stage of each hook performs (kernel `HOOK2MANIP`, §1.4).

At PREROUTING/OUTPUT (-100) the destination is rewritten: DNAT of original-direction packets and
un-SNAT of replies. At INPUT/POSTROUTING (100) the source is rewritten: SNAT/MASQUERADE of
original-direction packets and un-DNAT of replies. FORWARD has no nat stage.
"""

ICMP_QUERY_REPLY: Mapping[int, int] = MappingProxyType(
    {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
)
"""ICMP types conntrack tracks as queries, and the type of the answer (kernel `invmap`):
echo 8 ↔ echo-reply 0, timestamp 13 ↔ 14, info 15 ↔ 16, address mask 17 ↔ 18."""

ICMP_NEW_TYPES = frozenset({8, 13, 15, 17})
"""Only these ICMP types may create an entry; an answer without a query is INVALID."""


@dataclass(frozen=True, slots=True)
class Tuple:
    """One direction of a flow as conntrack keys it (`struct nf_conntrack_tuple`).

    TCP and UDP use ports; ICMP uses type and code on the destination side and the query id on the
    source side (the id is what SNAT changes, like a source port).
    """

    src: IPv4Address
    dst: IPv4Address
    proto: Proto
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None

    def __post_init__(self) -> None:
        if self.proto == "icmp":
            if self.sport is not None or self.dport is not None:
                raise ValueError("an ICMP tuple has no ports")
            if self.icmp_type is None or self.icmp_code is None:
                raise ValueError("an ICMP tuple needs a type and a code")
        else:
            if self.sport is None or self.dport is None:
                raise ValueError(f"a {self.proto} tuple needs both ports")
            if self.icmp_type is not None or self.icmp_code is not None or self.icmp_id is not None:
                raise ValueError(f"a {self.proto} tuple has no ICMP fields")
            for port in (self.sport, self.dport):
                if not 0 <= port <= 65535:
                    raise ValueError(f"port {port} out of range")

    @property
    def source_port(self) -> int | None:
        """The source-side key a source NAT may change: the port, or the ICMP id."""
        return self.icmp_id if self.proto == "icmp" else self.sport

    @property
    def destination_port(self) -> int | None:
        """The destination-side key a destination NAT may change (None for ICMP)."""
        return None if self.proto == "icmp" else self.dport

    def inverted(self) -> Tuple:
        """The tuple of a packet going the other way (`nf_ct_invert_tuple`)."""
        if self.proto == "icmp":
            assert self.icmp_type is not None
            answer = ICMP_QUERY_REPLY.get(self.icmp_type)
            if answer is None:
                raise ValueError(f"ICMP type {self.icmp_type} is not a query conntrack can invert")
            return replace(self, src=self.dst, dst=self.src, icmp_type=answer)
        return Tuple(self.dst, self.src, self.proto, self.dport, self.sport)

    def with_source(self, address: IPv4Address, port: int | None) -> Tuple:
        """This tuple with its source side replaced (port None keeps the current one)."""
        if self.proto == "icmp":
            return replace(self, src=address, icmp_id=self.icmp_id if port is None else port)
        return Tuple(
            address, self.dst, self.proto, self.sport if port is None else port, self.dport
        )

    def with_destination(self, address: IPv4Address, port: int | None) -> Tuple:
        """This tuple with its destination side replaced (ICMP has no destination port)."""
        if self.proto == "icmp":
            return replace(self, dst=address)
        return Tuple(
            self.src, address, self.proto, self.sport, self.dport if port is None else port
        )


@dataclass(frozen=True, slots=True)
class NatRequest:
    """What a DNAT/SNAT/MASQUERADE target asks for (`struct nf_nat_range2`).

    `to_address` is None for MASQUERADE: its address depends on the route and is chosen by the
    caller (§6.5). `to_ports` is the port (or ICMP id) range, both ends included.
    """

    kind: NatKind
    to_address: IPv4Address | None = None
    to_address_max: IPv4Address | None = None
    to_ports: tuple[int, int] | None = None
    random: bool = False
    random_fully: bool = False
    persistent: bool = False

    def __post_init__(self) -> None:
        if self.kind == "MASQUERADE":
            if self.to_address is not None:
                raise ValueError("MASQUERADE takes no address; the caller picks it")
        elif self.to_address is None:
            raise ValueError(f"{self.kind} needs an address")
        if self.to_address_max is not None and (
            self.to_address is None or self.to_address_max < self.to_address
        ):
            raise ValueError("address range must run upwards")
        if self.to_ports is not None:
            low, high = self.to_ports
            if not 0 <= low <= high <= 65535:
                raise ValueError(f"bad port range {low}-{high}")
        if self.kind == "DNAT" and self.random_fully:
            raise ValueError("DNAT has no --random-fully")

    @property
    def manip(self) -> Manip:
        return "DST" if self.kind == "DNAT" else "SRC"

    @property
    def random_port(self) -> bool:
        """`--random` or `--random-fully`: the port is always chosen, never kept (§6.6)."""
        return self.random or self.random_fully

    def describe(self) -> str:
        """`DNAT to 10.0.1.23:8080`, `SNAT to 10.0.1.5 random-fully`, `MASQUERADE`."""
        text: str = self.kind
        if self.to_address is not None:
            address = str(self.to_address)
            if self.to_address_max is not None and self.to_address_max != self.to_address:
                address += f"-{self.to_address_max}"
            text += f" to {address}"
        if self.to_ports is not None:
            low, high = self.to_ports
            ports = str(low) if low == high else f"{low}-{high}"
            text += f":{ports}" if self.to_address is not None else f" to ports {ports}"
        for flag, name in (
            (self.random, "random"),
            (self.random_fully, "random-fully"),
            (self.persistent, "persistent"),
        ):
            if flag:
                text += f" {name}"
        return text


@dataclass(frozen=True, slots=True)
class CtTimeouts:
    """Conntrack timeouts in seconds; defaults are a fresh namespace's (§6.8), an input because
    kube-proxy and operators change them (`net.netfilter.nf_conntrack_*`)."""

    tcp_syn_sent: int = 120
    tcp_syn_recv: int = 60
    tcp_established: int = 432000
    tcp_fin_wait: int = 120
    tcp_close_wait: int = 60
    tcp_last_ack: int = 30
    tcp_time_wait: int = 120
    tcp_close: int = 10
    udp: int = 30
    udp_stream: int = 120
    icmp: int = 30
    sctp_closed: int = 10
    sctp_cookie_wait: int = 3
    sctp_cookie_echoed: int = 3
    sctp_established: int = 210
    sctp_shutdown_sent: int = 3
    sctp_shutdown_recd: int = 3
    sctp_shutdown_ack_sent: int = 3
    sctp_heartbeat_sent: int = 30

    def sctp(self, state: SctpState) -> int:
        """The timeout an SCTP entry gets in `state` (`sctp_timeouts`; NONE uses CLOSED's, as
        `nf_conntrack_sctp_init_net` sets it). Defaults measured in a fresh namespace on 6.18
        (`net.netfilter.nf_conntrack_sctp_timeout_*`): 10 3 3 210 3 3 3 30."""
        by_state: dict[SctpState, int] = {
            "NONE": self.sctp_closed,
            "CLOSED": self.sctp_closed,
            "COOKIE_WAIT": self.sctp_cookie_wait,
            "COOKIE_ECHOED": self.sctp_cookie_echoed,
            "ESTABLISHED": self.sctp_established,
            "SHUTDOWN_SENT": self.sctp_shutdown_sent,
            "SHUTDOWN_RECD": self.sctp_shutdown_recd,
            "SHUTDOWN_ACK_SENT": self.sctp_shutdown_ack_sent,
            "HEARTBEAT_SENT": self.sctp_heartbeat_sent,
        }
        return by_state[state]

    def tcp(self, state: TcpState) -> int:
        """The timeout a TCP entry gets when it enters `state` (SYN_SENT2 shares SYN_SENT's)."""
        by_state: dict[TcpState, int] = {
            "NONE": self.tcp_close,
            "SYN_SENT": self.tcp_syn_sent,
            "SYN_SENT2": self.tcp_syn_sent,
            "SYN_RECV": self.tcp_syn_recv,
            "ESTABLISHED": self.tcp_established,
            "FIN_WAIT": self.tcp_fin_wait,
            "CLOSE_WAIT": self.tcp_close_wait,
            "LAST_ACK": self.tcp_last_ack,
            "TIME_WAIT": self.tcp_time_wait,
            "CLOSE": self.tcp_close,
        }
        return by_state[state]


DEFAULT_TIMEOUTS = CtTimeouts()

UDP_STREAM_AFTER = 2.0
"""Seconds a replied UDP flow must last before it becomes ASSURED and gets the stream timeout
(kernel `stream_ts` = creation + 2 s; measured: 29 → 29 → 119 [ASSURED] after ~2.6 s)."""

TcpFlagClass = Literal["syn", "synack", "fin", "ack", "rst", "none"]

_TCP_STATE_ORDER: tuple[TcpState, ...] = get_args(TcpState)
"""The states in the kernel's `tcp_conntrack` enum order (the order of the Literal above)."""
_TCP_CODES: Mapping[str, TcpState | Literal["INVALID", "IGNORE"]] = MappingProxyType(
    {
        "SS": "SYN_SENT",
        "SR": "SYN_RECV",
        "ES": "ESTABLISHED",
        "FW": "FIN_WAIT",
        "CW": "CLOSE_WAIT",
        "LA": "LAST_ACK",
        "TW": "TIME_WAIT",
        "CL": "CLOSE",
        "S2": "SYN_SENT2",
        "IV": "INVALID",
        "IG": "IGNORE",
    }
)
# The kernel's TCP state transition table (`tcp_conntracks` in nf_conntrack_proto_tcp.c, read at
# linux 6.1, unchanged in structure since 2.6). Columns are the current state in the order
# NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE SYN_SENT2;
# rows are (direction, the packet's flag class). IV = the packet is INVALID (state unchanged),
# IG = ignored (state unchanged, packet passes). Window tracking is not modelled.
_TCP_ROWS: Mapping[tuple[Direction, TcpFlagClass], str] = MappingProxyType(
    {
        ("ORIGINAL", "syn"): "SS SS IG IG IG IG IG SS SS S2",
        ("ORIGINAL", "synack"): "IV IV SR IV IV IV IV IV IV SR",
        ("ORIGINAL", "fin"): "IV IV FW FW LA LA LA TW CL IV",
        ("ORIGINAL", "ack"): "ES IV ES ES CW CW TW TW CL IV",
        ("ORIGINAL", "rst"): "IV CL CL CL CL CL CL CL CL CL",
        ("ORIGINAL", "none"): "IV IV IV IV IV IV IV IV IV IV",
        ("REPLY", "syn"): "IV S2 IV IV IV IV IV SS IV S2",
        ("REPLY", "synack"): "IV SR IG IG IG IG IG IG IG SR",
        ("REPLY", "fin"): "IV IV FW FW LA LA LA TW CL IV",
        ("REPLY", "ack"): "IV IG SR ES CW CW TW TW CL IG",
        ("REPLY", "rst"): "IV CL CL CL CL CL CL CL CL CL",
        ("REPLY", "none"): "IV IV IV IV IV IV IV IV IV IV",
    }
)
TCP_TRANSITIONS: Mapping[
    tuple[Direction, TcpFlagClass, TcpState], TcpState | Literal["INVALID", "IGNORE"]
] = MappingProxyType(
    {
        (direction, flags, state): _TCP_CODES[code]
        for (direction, flags), row in _TCP_ROWS.items()
        for state, code in zip(_TCP_STATE_ORDER, row.split(), strict=True)
    }
)
"""(direction, flag class, current state) → next state, INVALID or IGNORE."""


def tcp_flag_class(flags: frozenset[str]) -> TcpFlagClass:
    """Which row of the transition table a segment uses (kernel `get_conntrack_index`):
    RST wins, then SYN (with ACK: SYN-ACK), then FIN, then ACK."""
    if "RST" in flags:
        return "rst"
    if "SYN" in flags:
        return "synack" if "ACK" in flags else "syn"
    if "FIN" in flags:
        return "fin"
    if "ACK" in flags:
        return "ack"
    return "none"


_SCTP_STATE_ORDER: tuple[SctpState, ...] = get_args(SctpState)
_SCTP_CODES: Mapping[str, SctpState | Literal["INVALID"]] = MappingProxyType(
    {
        "NO": "NONE",
        "CL": "CLOSED",
        "CW": "COOKIE_WAIT",
        "CE": "COOKIE_ECHOED",
        "ES": "ESTABLISHED",
        "SS": "SHUTDOWN_SENT",
        "SR": "SHUTDOWN_RECD",
        "SA": "SHUTDOWN_ACK_SENT",
        "HS": "HEARTBEAT_SENT",
        "IV": "INVALID",
    }
)
# The kernel's SCTP state transition table (`sctp_conntracks` in nf_conntrack_proto_sctp.c, read
# at torvalds/linux 00d35e6, the 6.x table without HEARTBEAT_ACKED). Columns are the current
# state in the order NONE CLOSED COOKIE_WAIT COOKIE_ECHOED ESTABLISHED SHUTDOWN_SENT
# SHUTDOWN_RECD SHUTDOWN_ACK_SENT HEARTBEAT_SENT; rows are (direction, chunk type). IV makes
# the packet INVALID. Other chunk types (DATA, SACK, …) keep the state (`sctp_new_state`).
# Measured on 6.18 through a forwarding namespace: INIT → CLOSED (10 s, [UNREPLIED]),
# INIT_ACK → COOKIE_WAIT (3 s), COOKIE_ECHO → COOKIE_ECHOED (3 s), COOKIE_ACK → ESTABLISHED
# (210 s, [ASSURED]); a DATA-only first packet is INVALID and creates no entry.
_SCTP_ROWS: Mapping[tuple[Direction, int], str] = MappingProxyType(
    {
        ("ORIGINAL", 1): "CL CL CW CE ES CL CL SA CW",
        ("ORIGINAL", 2): "CL CL CW CE ES SS SR SA CL",
        ("ORIGINAL", 6): "CL CL CL CL CL CL CL CL CL",
        ("ORIGINAL", 7): "CL CL CW CE SS SS SR SA CL",
        ("ORIGINAL", 8): "SA CL CW CE ES SA SA SA SA",
        ("ORIGINAL", 9): "CL CL CW CE ES SS SR SA CL",
        ("ORIGINAL", 10): "CL CL CE CE ES SS SR SA CL",
        ("ORIGINAL", 11): "CL CL CW ES ES SS SR SA CL",
        ("ORIGINAL", 14): "CL CL CW CE ES SS SR CL CL",
        ("ORIGINAL", 4): "HS CL CW CE ES SS SR SA HS",
        ("ORIGINAL", 5): "CL CL CW CE ES SS SR SA HS",
        ("REPLY", 1): "IV CL CW CE ES SS SR SA IV",
        ("REPLY", 2): "IV CW CW CE ES SS SR SA IV",
        ("REPLY", 6): "IV CL CL CL CL CL CL CL IV",
        ("REPLY", 7): "IV CL CW CE SR SS SR SA IV",
        ("REPLY", 8): "IV CL CW CE ES SA SA SA IV",
        ("REPLY", 9): "IV CL CW CL ES SS SR SA IV",
        ("REPLY", 10): "IV CL CE CE ES SS SR SA IV",
        ("REPLY", 11): "IV CL CW ES ES SS SR SA IV",
        ("REPLY", 14): "IV CL CW CE ES SS SR CL IV",
        ("REPLY", 4): "IV CL CW CE ES SS SR SA HS",
        ("REPLY", 5): "IV CL CW CE ES SS SR SA ES",
    }
)
SCTP_TRANSITIONS: Mapping[tuple[Direction, int, SctpState], SctpState | Literal["INVALID"]] = (
    MappingProxyType(
        {
            (direction, chunk, state): _SCTP_CODES[code]
            for (direction, chunk), row in _SCTP_ROWS.items()
            for state, code in zip(_SCTP_STATE_ORDER, row.split(), strict=True)
        }
    )
)
"""(direction, chunk type, current state) → next state or INVALID, for the chunk types that
move the state."""

_SCTP_ALONE = frozenset({1, 2, 14})
"""INIT, INIT_ACK and SHUTDOWN_COMPLETE must be the only chunk of their packet."""
_SCTP_FIRST = frozenset({10, 11})
"""COOKIE_ECHO and COOKIE_ACK must be the first chunk (`do_basic_checks`)."""
_SCTP_NOT_NEW = frozenset({6, 14, 11})
"""An out-of-the-blue packet with ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK creates no entry."""


def sctp_chunks_valid(chunks: Sequence[SctpChunk]) -> bool:
    """`do_basic_checks`: at least one chunk; INIT, INIT_ACK and SHUTDOWN_COMPLETE alone (no
    chunk may follow one); COOKIE_ECHO and COOKIE_ACK only first. (Chunk lengths are always
    valid here: a model chunk has no length to get wrong.)"""
    if not chunks:
        return False
    alone = False
    for count, (kind, _flags) in enumerate(chunks):
        alone = alone or kind in _SCTP_ALONE
        if count != 0 and (alone or kind in _SCTP_FIRST):
            return False
    return True


def _sctp_walk(
    state: SctpState, direction: Direction, chunks: Sequence[SctpChunk]
) -> tuple[SctpState, bool]:
    """Apply the chunks in order (`nf_conntrack_sctp_packet`'s loop); (state reached, valid).
    On an invalid chunk the state the earlier chunks reached is kept, as the kernel keeps it."""
    for kind, _flags in chunks:
        new = SCTP_TRANSITIONS.get((direction, kind, state), state)
        if new == "INVALID":
            return state, False
        state = new
    return state, True


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    """One tracked connection (`struct nf_conn`).

    `reply` starts as the inverse of `original` and is changed by NAT (DNAT changes its source,
    SNAT/MASQUERADE its destination). `timeout` is the seconds left as of the last packet (what
    `conntrack -L` prints right after it). `tcp_state` is None for UDP and ICMP.
    """

    original: Tuple
    reply: Tuple
    timeout: int
    tcp_state: TcpState | None = None
    status: frozenset[CtStatus] = frozenset()
    mark: int = 0
    zone: int = 0
    use: int = 1
    sctp_state: SctpState | None = None

    def __post_init__(self) -> None:
        if self.original.proto != self.reply.proto:
            raise ValueError("original and reply tuples must have the same protocol")
        if (self.tcp_state is None) != (self.original.proto != "tcp"):
            raise ValueError("a TCP entry (and only a TCP entry) has a TCP state")
        if (self.sctp_state is None) != (self.original.proto != "sctp"):
            raise ValueError("an SCTP entry (and only an SCTP entry) has an SCTP state")
        if not 0 <= self.mark <= 0xFFFFFFFF:
            raise ValueError(f"ct mark {self.mark:#x} is not 32 bits")

    @property
    def confirmed(self) -> bool:
        return "CONFIRMED" in self.status

    @property
    def seen_reply(self) -> bool:
        return "SEEN_REPLY" in self.status

    @property
    def assured(self) -> bool:
        return "ASSURED" in self.status

    def nat_done(self, manip: Manip) -> bool:
        """True once the binding of this manipulation is set up (a rule fired, or the null
        binding was recorded): from then on the nat chains are not traversed for it (§6.4)."""
        return ("SRC_NAT_DONE" if manip == "SRC" else "DST_NAT_DONE") in self.status

    @property
    def snat(self) -> bool:
        """The `SNAT` virtual ctstate: original source ≠ reply destination."""
        return "SRC_NAT" in self.status

    @property
    def dnat(self) -> bool:
        """The `DNAT` virtual ctstate: original destination ≠ reply source."""
        return "DST_NAT" in self.status

    def with_mark(self, mark: int) -> ConntrackEntry:
        return replace(self, mark=mark & 0xFFFFFFFF)

    def with_status(self, *bits: CtStatus) -> ConntrackEntry:
        status = self.status.union(bits)
        if status == self.status:
            return self
        return ConntrackEntry(
            self.original, self.reply, self.timeout, self.tcp_state, status, self.mark,
            self.zone, self.use, self.sctp_state,
        )  # fmt: skip

    def direction_of(self, tuple_: Tuple) -> Direction | None:
        if tuple_ == self.original:
            return "ORIGINAL"
        if tuple_ == self.reply:
            return "REPLY"
        return None


class TupleTaken(ValueError):
    """Confirming an entry whose tuple another entry already holds (the kernel drops the packet
    and counts `insert_failed`)."""


@dataclass(frozen=True, slots=True)
class ConntrackTable:
    """The confirmed entries of one namespace (`conntrack -L`), in insertion order."""

    entries: tuple[ConntrackEntry, ...] = ()
    _index: dict[tuple[int, Tuple], tuple[ConntrackEntry, Direction]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for entry in self.entries:
            if not entry.confirmed:
                raise ValueError("the table holds confirmed entries only")
            sides: tuple[tuple[Tuple, Direction], ...] = (
                (entry.original, "ORIGINAL"),
                (entry.reply, "REPLY"),
            )
            for tuple_, direction in sides:
                key = (entry.zone, tuple_)
                if key in self._index:
                    if self._index[key][0] is entry:
                        continue  # a flow to itself: both directions are the same tuple
                    raise TupleTaken(f"tuple {tuple_} is tracked twice")
                self._index[key] = (entry, direction)

    def __iter__(self) -> Iterator[ConntrackEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, tuple_: Tuple, *, zone: int = 0) -> tuple[ConntrackEntry, Direction] | None:
        """The entry holding `tuple_` in either direction, and which direction it is."""
        return self._index.get((zone, tuple_))

    def taken(self, tuple_: Tuple, *, ignore: ConntrackEntry | None = None, zone: int = 0) -> bool:
        """Whether another entry holds `tuple_` (kernel `nf_conntrack_tuple_taken`): a NAT
        binding whose new reply tuple is taken would clash."""
        found = self._index.get((zone, tuple_))
        if found is None:
            return False
        return ignore is None or found[0].original != ignore.original

    def create(
        self,
        original: Tuple,
        *,
        tcp_flags: frozenset[str] = frozenset(),
        sctp_chunks: Sequence[SctpChunk] = (SCTP_INIT,),
        zone: int = 0,
        timeouts: CtTimeouts = DEFAULT_TIMEOUTS,
    ) -> ConntrackEntry | None:
        """A new *unconfirmed* entry for the first packet `original`, or None when that packet
        cannot start a connection (a TCP segment that is not a SYN or a mid-stream ACK, an ICMP
        answer, an SCTP packet without a chunk that may open an association): such a packet is
        INVALID. The table itself does not change until `confirm`.

        SCTP (`nf_conntrack_sctp_packet` on an unconfirmed entry, then `sctp_new`): the chunks
        must pass the basic checks, ABORT/SHUTDOWN_COMPLETE/COOKIE_ACK never open one, and every
        chunk must move the state away from NONE (a DATA-only packet does not) [meas]. The
        verification tags the kernel also checks are not modelled: a walk's packets carry none.
        """
        if self.lookup(original, zone=zone) is not None:
            raise ValueError(f"{original} is already tracked")
        if original.proto == "sctp":
            return _sctp_new(original, sctp_chunks, zone, timeouts)
        if original.proto == "tcp":
            state = TCP_TRANSITIONS[("ORIGINAL", tcp_flag_class(tcp_flags), "NONE")]
            if state == "INVALID" or state == "IGNORE":
                return None
            return ConntrackEntry(
                original, original.inverted(), timeouts.tcp(state), tcp_state=state, zone=zone
            )
        if original.proto == "icmp":
            if original.icmp_type not in ICMP_NEW_TYPES:
                return None
            return ConntrackEntry(original, original.inverted(), timeouts.icmp, zone=zone)
        return ConntrackEntry(original, original.inverted(), timeouts.udp, zone=zone)

    def confirm(self, entry: ConntrackEntry) -> ConntrackTable:
        """Insert an unconfirmed entry (the confirm hook). Raises `TupleTaken` on a clash."""
        if entry.confirmed:
            raise ValueError("entry is already confirmed")
        for tuple_ in (entry.original, entry.reply):
            if self.lookup(tuple_, zone=entry.zone) is not None:
                raise TupleTaken(f"tuple {tuple_} is already tracked")
        return ConntrackTable((*self.entries, entry.with_status("CONFIRMED")))

    def update(self, entry: ConntrackEntry) -> ConntrackTable:
        """Replace the confirmed entry with the same original tuple and zone."""
        for index, existing in enumerate(self.entries):
            if existing.original == entry.original and existing.zone == entry.zone:
                entries = list(self.entries)
                entries[index] = entry.with_status("CONFIRMED")
                return ConntrackTable(tuple(entries))
        raise KeyError(entry.original)

    def remove(self, entry: ConntrackEntry) -> ConntrackTable:
        kept = tuple(
            e for e in self.entries if (e.original, e.zone) != (entry.original, entry.zone)
        )
        if len(kept) == len(self.entries):
            raise KeyError(entry.original)
        return ConntrackTable(kept)


@dataclass(frozen=True, slots=True)
class CtLookup:
    """What the conntrack hook attached to a packet.

    `entry` is None for INVALID (and UNTRACKED) packets. `confirmed` tells whether the entry is
    already in the table (False: it was created by this packet and must pass the confirm hook).
    """

    entry: ConntrackEntry | None
    direction: Direction
    ctstate: CtState

    @property
    def confirmed(self) -> bool:
        return self.entry is not None and self.entry.confirmed


def conntrack_in(
    table: ConntrackTable,
    packet: Tuple,
    *,
    tcp_flags: frozenset[str] = frozenset(),
    sctp_chunks: Sequence[SctpChunk] | None = None,
    elapsed: float = 0.0,
    zone: int = 0,
    timeouts: CtTimeouts = DEFAULT_TIMEOUTS,
) -> tuple[ConntrackTable, CtLookup]:
    """The conntrack hook (PREROUTING/OUTPUT at -200) for one packet, as a pure function.

    Finds the entry (either direction) or creates an unconfirmed one, derives the ctstate the
    way `resolve_normal_ct` does (reply direction → ESTABLISHED; original direction → ESTABLISHED
    once a reply was seen, else NEW), then updates the L4 state and timeout (TCP transition table,
    UDP stream rule, ICMP) and sets SEEN_REPLY on a reply. `elapsed` is the age of the flow in
    seconds (only UDP's ASSURED rule reads it). `sctp_chunks` are an SCTP packet's chunks; None
    stands for an INIT when the packet opens an association and a DATA chunk otherwise. Returns
    the table with a confirmed entry updated (unchanged for a new entry) and what was attached
    to the packet.
    """
    found = table.lookup(packet, zone=zone)
    if found is None:
        entry = table.create(
            packet,
            tcp_flags=tcp_flags,
            sctp_chunks=(SCTP_INIT,) if sctp_chunks is None else sctp_chunks,
            zone=zone,
            timeouts=timeouts,
        )
        if entry is None:
            return table, CtLookup(None, "ORIGINAL", "INVALID")
        return table, CtLookup(entry, "ORIGINAL", "NEW")
    entry, direction = found
    if direction == "REPLY" or entry.seen_reply:
        ctstate: CtState = "ESTABLISHED"
    else:
        ctstate = "RELATED" if "EXPECTED" in entry.status else "NEW"
    if entry.original.proto == "sctp":
        chunks = (SCTP_DATA,) if sctp_chunks is None else sctp_chunks
        moved, valid = _sctp_packet(entry, direction, chunks, timeouts)
        if not valid:
            if moved != entry and entry.confirmed:
                table = table.update(moved)
            return table, CtLookup(None, direction, "INVALID")
        updated: ConntrackEntry | None = moved
    else:
        updated = _l4_packet(entry, direction, tcp_flags, elapsed, timeouts)
    if updated is None:
        return table, CtLookup(None, direction, "INVALID")
    if direction == "REPLY":
        updated = updated.with_status("SEEN_REPLY")
    return table.update(updated), CtLookup(updated, direction, ctstate)


def _l4_packet(
    entry: ConntrackEntry,
    direction: Direction,
    tcp_flags: frozenset[str],
    elapsed: float,
    timeouts: CtTimeouts,
) -> ConntrackEntry | None:
    """The protocol's `packet()` step for a packet of an existing entry; None = INVALID."""
    if entry.original.proto == "tcp":
        assert entry.tcp_state is not None
        old = entry.tcp_state
        new = TCP_TRANSITIONS[(direction, tcp_flag_class(tcp_flags), old)]
        if new == "INVALID":
            return None
        if new == "IGNORE":
            return entry
        updated = replace(entry, tcp_state=new, timeout=timeouts.tcp(new))
        # ASSURED: a valid ACK in ESTABLISHED after SYN_RECV (the handshake completed), checked
        # only once a reply has been seen (kernel nf_conntrack_tcp_packet).
        if entry.seen_reply and old in ("SYN_RECV", "ESTABLISHED") and new == "ESTABLISHED":
            updated = updated.with_status("ASSURED")
        return updated
    if entry.original.proto == "udp":
        # The kernel reads SEEN_REPLY before this packet sets it: the first reply still gets the
        # short timeout; traffic after 2 s of a replied flow makes it a stream (ASSURED, 120 s).
        if entry.seen_reply and elapsed > UDP_STREAM_AFTER:
            return replace(entry, timeout=timeouts.udp_stream).with_status("ASSURED")
        return replace(entry, timeout=timeouts.udp)
    return replace(entry, timeout=timeouts.icmp)


def _sctp_new(
    original: Tuple, chunks: Sequence[SctpChunk], zone: int, timeouts: CtTimeouts
) -> ConntrackEntry | None:
    """The SCTP entry a first packet creates, or None (INVALID): see `ConntrackTable.create`."""
    if not sctp_chunks_valid(chunks) or any(kind in _SCTP_NOT_NEW for kind, _ in chunks):
        return None
    for kind, _flags in chunks:
        if SCTP_TRANSITIONS.get(("ORIGINAL", kind, "NONE"), "NONE") in ("NONE", "INVALID"):
            return None
    state, valid = _sctp_walk("NONE", "ORIGINAL", chunks)
    if not valid:
        return None
    return ConntrackEntry(
        original, original.inverted(), timeouts.sctp(state), zone=zone, sctp_state=state
    )


def _sctp_packet(
    entry: ConntrackEntry,
    direction: Direction,
    chunks: Sequence[SctpChunk],
    timeouts: CtTimeouts,
) -> tuple[ConntrackEntry, bool]:
    """`nf_conntrack_sctp_packet` for a packet of an existing entry: (entry after it, valid).

    The state follows the transition table chunk by chunk; entering ESTABLISHED sets ASSURED;
    the timeout becomes the new state's, except for an INIT retransmitted while CLOSED, which
    is let through without refreshing it (so port reuse cannot keep an entry alive)."""
    assert entry.sctp_state is not None
    if not sctp_chunks_valid(chunks):
        return entry, False
    old = entry.sctp_state
    state, valid = _sctp_walk(old, direction, chunks)
    moved = replace(entry, sctp_state=state)
    if state == "ESTABLISHED" and old != "ESTABLISHED":
        moved = moved.with_status("ASSURED")
    if not valid:
        return moved, False
    retransmitted_init = (
        any(kind == 1 for kind, _ in chunks)
        and old == "CLOSED"
        and state == "CLOSED"
        and entry.confirmed
    )
    if retransmitted_init:
        return moved, True
    return replace(moved, timeout=timeouts.sctp(state)), True


def related_lookup(
    table: ConntrackTable, inner: Tuple, *, zone: int = 0
) -> tuple[ConntrackEntry, Direction] | None:
    """The entry an ICMP error belongs to (RELATED, §6.2), from the header embedded in it.

    The embedded packet went the opposite way to the error, so its inverted tuple is the error's
    own direction of the connection (kernel `icmp_error_message`).
    """
    return table.lookup(inner.inverted(), zone=zone)


def apply_nat(
    entry: ConntrackEntry, request: NatRequest, address: IPv4Address, port: int | None
) -> ConntrackEntry:
    """Set up the binding a NAT target asked for (`nf_nat_setup_info`), on an unconfirmed entry.

    `address` is the chosen new address (the request's for DNAT/SNAT, the routing-chosen one for
    MASQUERADE, §6.5) and `port` the chosen port or ICMP id (None keeps it; see
    `choose_nat_port`). The original tuple never changes; the reply tuple becomes the inverse of
    what original-direction packets will look like after NAT, so DNAT changes the reply source and
    SNAT/MASQUERADE the reply destination.
    """
    manip = request.manip
    if entry.confirmed:
        raise ValueError("NAT is set up only on an unconfirmed entry (first packet)")
    if entry.nat_done(manip):
        raise ValueError(f"the {manip} binding of this entry is already set up")
    current = entry.reply.inverted()
    if manip == "DST":
        new = current.with_destination(address, port)
        changed: CtStatus = "DST_NAT"
        done: CtStatus = "DST_NAT_DONE"
    else:
        new = current.with_source(address, port)
        changed = "SRC_NAT"
        done = "SRC_NAT_DONE"
    bits: tuple[CtStatus, ...] = (done, changed) if new != current else (done,)
    return replace(entry, reply=new.inverted()).with_status(*bits)


def null_binding(entry: ConntrackEntry, manip: Manip) -> ConntrackEntry:
    """Record that no nat rule fired for this manipulation (`nf_nat_alloc_null_binding`), so
    later packets and later rule changes never run the nat chains for it again."""
    if entry.nat_done(manip):
        return entry
    return entry.with_status("SRC_NAT_DONE" if manip == "SRC" else "DST_NAT_DONE")


def nat_rewrite(packet: Tuple, entry: ConntrackEntry, direction: Direction, manip: Manip) -> Tuple:
    """The packet after a nat stage applied the entry's binding (`nf_nat_packet`).

    A packet in one direction must end up as the inverse of the other direction's tuple; the
    stage rewrites only its side (source or destination). The status bit consulted is the
    manipulation's own for original-direction packets and the opposite one for replies (an
    un-SNAT happens at a destination stage). ICMP query ids are rewritten by either stage.
    """
    wanted: CtStatus
    if direction == "ORIGINAL":
        wanted = "SRC_NAT" if manip == "SRC" else "DST_NAT"
    else:
        wanted = "DST_NAT" if manip == "SRC" else "SRC_NAT"
    if wanted not in entry.status:
        return packet
    target = (entry.reply if direction == "ORIGINAL" else entry.original).inverted()
    if manip == "SRC":
        rewritten = packet.with_source(target.src, target.source_port)
    else:
        rewritten = packet.with_destination(target.dst, target.destination_port)
    if packet.proto == "icmp":
        rewritten = replace(rewritten, icmp_id=target.icmp_id)
    return rewritten


def nat_rewrite_at(hook: Hook, packet: Tuple, entry: ConntrackEntry, direction: Direction) -> Tuple:
    """`nat_rewrite` for the nat stage of `hook` (FORWARD has none: the packet is unchanged)."""
    manip = NAT_MANIP.get(hook)
    return packet if manip is None else nat_rewrite(packet, entry, direction, manip)


def default_port_range(proto: Proto, port: int) -> tuple[int, int]:
    """Where a source NAT searches a new port when the rule gives none (§6.6): the class of the
    original port (1–511, 600–1023, 1024–65535); any id for ICMP."""
    if proto == "icmp":
        return (0, 65535)
    if port < 512:
        return (1, 511)
    if port < 1024:
        return (600, 1023)
    return (1024, 65535)


def choose_nat_port(
    table: ConntrackTable,
    entry: ConntrackEntry,
    request: NatRequest,
    address: IPv4Address,
    chooser: PortChooser,
    *,
    attempts: int = 128,
) -> int | None:
    """The port (or ICMP id) a NAT binding gets (kernel `get_unique_tuple`, §6.6).

    * A destination NAT without ports keeps the port (returns None = keep); with a single port
      uses it; with a range keeps the current port if it is in range and free, else searches.
    * A source NAT keeps the current port when it is in the allowed range (the rule's, or the
      class of the original port) and the resulting tuple is free, unless `--random` or
      `--random-fully` is given; otherwise it asks `chooser` up to `attempts` times for a port in
      the range whose resulting reply tuple no other entry holds.

    Raises ValueError when no free port was found (the kernel drops the packet).
    """
    current = entry.reply.inverted()
    manip = request.manip
    if manip == "DST":
        if request.to_ports is None:
            return None
        low, high = request.to_ports
        if low == high:
            return low
        now = current.destination_port
    else:
        now = current.source_port
        assert now is not None
        low, high = request.to_ports or default_port_range(current.proto, now)

    def free(port: int) -> bool:
        if manip == "DST":
            candidate = current.with_destination(address, port)
        else:
            candidate = current.with_source(address, port)
        return not table.taken(candidate.inverted(), ignore=entry, zone=entry.zone)

    may_keep = manip == "DST" or not request.random_port
    if may_keep and now is not None and low <= now <= high and free(now):
        return now
    for _ in range(attempts):
        port = chooser(low, high)
        if not low <= port <= high:
            raise ValueError(f"port chooser returned {port}, outside {low}-{high}")
        if free(port):
            return port
    raise ValueError(f"no free port in {low}-{high} after {attempts} attempts")


@lru_cache(maxsize=4096)
def conntrack_tuple_text(tuple_: Tuple) -> str:
    """`src=A dst=B sport=P dport=Q`, or `src=A dst=B type=T code=C id=I` for ICMP (kept for
    the tuples seen last: a walk prints the same entries again and again)."""
    if tuple_.proto == "icmp":
        return (
            f"src={tuple_.src} dst={tuple_.dst} type={tuple_.icmp_type} "
            f"code={tuple_.icmp_code} id={tuple_.icmp_id if tuple_.icmp_id is not None else 0}"
        )
    return f"src={tuple_.src} dst={tuple_.dst} sport={tuple_.sport} dport={tuple_.dport}"


def conntrack_list_line(entry: ConntrackEntry) -> str:
    """One entry exactly as `conntrack -L` prints it (linux-dataplane.md §6.7).

    The single implementation: the walk quotes it and a `conntrack -L` view would print it.
    Format [meas, conntrack-tools 1.4.7]: the protocol name left-aligned in 8 columns and a
    space, the protocol number, the seconds left, the TCP state (TCP only), the original tuple,
    `[UNREPLIED]` when no reply was seen, the reply tuple, `[ASSURED]`, `mark=<decimal>`,
    `zone=<n>` only when not 0, `use=<n>`, one entry per line, e.g. (wrapped here):

        tcp      6 118 TIME_WAIT src=10.0.1.23 dst=172.20.0.10 sport=49542 dport=80
            src=10.0.1.57 dst=10.0.1.23 sport=8080 dport=49542 [ASSURED] mark=0 use=1
    """
    proto = entry.original.proto
    words = [f"{proto:<8} {PROTO_NUMBERS[proto]} {entry.timeout}"]
    if entry.tcp_state is not None:
        words.append(entry.tcp_state)
    if entry.sctp_state is not None:
        words.append(entry.sctp_state)  # `sctp     132 9 CLOSED src=…` [meas]
    words.append(conntrack_tuple_text(entry.original))
    if not entry.seen_reply:
        words.append("[UNREPLIED]")
    words.append(conntrack_tuple_text(entry.reply))
    if entry.assured:
        words.append("[ASSURED]")
    words.append(f"mark={entry.mark}")
    if entry.zone:
        words.append(f"zone={entry.zone}")
    words.append(f"use={entry.use}")
    return " ".join(words)
