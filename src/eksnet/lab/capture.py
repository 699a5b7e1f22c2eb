"""Recording what the kernel did: tcpdump per interface, `ip route get`, `conntrack -L`.

Parsing is pure (text in, walk vocabulary out) so it is unit-tested on the sample lines of
linux-dataplane.md §9; starting and stopping the tools is the `Capture` context manager.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from eksnet.lab.system import LabError
from eksnet.walk.model import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    ICMP_UNREACHABLE,
    Packet,
    Protocol,
    WireObservation,
)

# --- tcpdump -tt -n -e -v ------------------------------------------------------------------------

_HEADER = re.compile(
    r"^(?P<ts>\d+\.\d+) (?P<src_mac>[0-9a-f:]{17}) > (?P<dst_mac>[0-9a-f:]{17}), "
    r"ethertype IPv4 \(0x0800\), length \d+: \(tos 0x[0-9a-f]+, ttl (?P<ttl>\d+), .*"
    r"proto (?P<proto>\S+) \((?P<pnum>\d+)\), length \d+\)"
)
_BODY = re.compile(
    r"^\s+(?P<src>\d+\.\d+\.\d+\.\d+)(?:\.(?P<sport>\d+))? > "
    r"(?P<dst>\d+\.\d+\.\d+\.\d+)(?:\.(?P<dport>\d+))?: (?P<rest>.*)$"
)
_FLAGS = re.compile(r"Flags \[(?P<flags>[^\]]*)\]")
_ECHO = re.compile(r"^ICMP echo (?P<kind>request|reply), id (?P<id>\d+),")
_PROTOCOLS: dict[str, Protocol] = {"1": "icmp", "6": "tcp", "17": "udp"}


@dataclass(frozen=True, slots=True)
class Frame:
    """One IPv4 frame tcpdump printed: its capture time, its IP line, and the packet in walk
    vocabulary when it is one a walk carries (TCP, UDP, an ICMP echo); anything else (an ICMP
    error, another protocol) keeps `packet` None and is still a frame the kernel sent."""

    timestamp: float
    src_mac: str
    dst_mac: str
    text: str
    """The IP line as tcpdump printed it (`192.168.1.51.41000 > 192.168.1.61.80: Flags [S], …`)."""
    packet: Packet | None


def parse_tcpdump(text: str) -> tuple[Frame, ...]:
    """Frames from `tcpdump -tt -n -e -v` output: a header line, then the indented IP line
    (deeper-indented lines, such as the header an ICMP error quotes, belong to that frame)."""
    frames: list[Frame] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        head = _HEADER.match(line)
        if head is None or index + 1 >= len(lines):
            continue
        body = _BODY.match(lines[index + 1])
        if body is None:
            continue
        quoted = _quoted(lines[index + 2 : index + 4])
        frames.append(
            Frame(
                float(head["ts"]),
                head["src_mac"],
                head["dst_mac"],
                lines[index + 1].strip(),
                _packet(head, body, quoted),
            )
        )
    return tuple(frames)


_QUOTED_HEADER = re.compile(
    r"^\t\(tos 0x[0-9a-f]+, ttl (?P<ttl>\d+), .*proto \S+ \((?P<pnum>\d+)\)"
)
_UNREACHABLE = (
    (re.compile(r"^ICMP net \S+ unreachable - admin prohibited,"), 9),
    (re.compile(r"^ICMP host \S+ unreachable - admin prohibited filter,"), 13),
    (re.compile(r"^ICMP host \S+ unreachable - admin prohibited,"), 10),
    (re.compile(r"^ICMP net \S+ unreachable,"), 0),
    (re.compile(r"^ICMP host \S+ unreachable,"), 1),
    (re.compile(r"^ICMP \S+ protocol \d+ unreachable,"), 2),
    (re.compile(r"^ICMP \S+ (?:tcp |udp |sctp )?port \S+ unreachable,"), 3),
)
"""tcpdump's words for each destination-unreachable code (print-icmp.c; measured for every
`REJECT --reject-with icmp-…` in a lab namespace, tcpdump 4.99.3)."""
_TIME_EXCEEDED = (
    (re.compile(r"^ICMP time exceeded in-transit,"), 0),
    (re.compile(r"^ICMP ip reassembly time exceeded,"), 1),
)
"""tcpdump's words for ICMP time exceeded (print-icmp.c; the in-transit one measured: a forward
out of TTL in a lab node)."""


def _quoted(lines: Sequence[str]) -> Packet | None:
    """The packet an ICMP error quotes: tcpdump prints its IP header tab-indented, then its
    transport line like any frame's."""
    if len(lines) < 2:
        return None
    header, body = _QUOTED_HEADER.match(lines[0]), _BODY.match(lines[1])
    if header is None or body is None:
        return None
    proto = _PROTOCOLS.get(header["pnum"])
    if proto is None or proto == "icmp" or body["sport"] is None or body["dport"] is None:
        return None
    flags = _FLAGS.search(body["rest"])
    return Packet(
        src=IPv4Address(body["src"]),
        dst=IPv4Address(body["dst"]),
        proto=proto,
        sport=int(body["sport"]),
        dport=int(body["dport"]),
        ttl=int(header["ttl"]),
        tcp_flags=flags["flags"] if (flags and proto == "tcp") else None,
    )


def _packet(head: re.Match[str], body: re.Match[str], quoted: Packet | None) -> Packet | None:
    proto = _PROTOCOLS.get(head["pnum"])
    if proto is None:
        return None
    common = {
        "src": IPv4Address(body["src"]),
        "dst": IPv4Address(body["dst"]),
        "ttl": int(head["ttl"]),
        "src_mac": head["src_mac"],
        "dst_mac": head["dst_mac"],
    }
    if proto == "icmp":
        echo = _ECHO.match(body["rest"])
        if echo is None:
            kind = ICMP_UNREACHABLE
            code = next((c for pattern, c in _UNREACHABLE if pattern.match(body["rest"])), None)
            if code is None:
                kind = ICMP_TIME_EXCEEDED
                code = next((c for p, c in _TIME_EXCEEDED if p.match(body["rest"])), None)
            if code is None or quoted is None:
                return None
            return Packet(
                proto=proto,
                icmp_type=kind,
                icmp_code=code,
                quoted=quoted,
                **common,  # type: ignore[arg-type]
            )
        kind = ICMP_ECHO_REQUEST if echo["kind"] == "request" else ICMP_ECHO_REPLY
        return Packet(proto=proto, icmp_type=kind, icmp_id=int(echo["id"]), **common)  # type: ignore[arg-type]
    if body["sport"] is None or body["dport"] is None:
        return None
    flags = _FLAGS.search(body["rest"])
    return Packet(
        proto=proto,
        sport=int(body["sport"]),
        dport=int(body["dport"]),
        tcp_flags=flags["flags"] if (flags and proto == "tcp") else None,
        **common,  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class CaptureTarget:
    namespace: str
    """The state namespace name (what a Walk calls the place)."""
    netns: str
    interface: str
    mac: str


@dataclass(frozen=True, slots=True)
class Seen:
    """A frame on one interface of one namespace, and which way it went."""

    namespace: str
    interface: str
    direction: Literal["in", "out"]
    frame: Frame

    @property
    def timestamp(self) -> float:
        return self.frame.timestamp

    @property
    def where(self) -> str:
        return f"{self.namespace} {self.interface} {self.direction}"

    def wire(self) -> WireObservation | None:
        """As a walk would predict it, when the frame is one a walk carries."""
        if self.frame.packet is None:
            return None
        return WireObservation(self.namespace, self.interface, self.direction, self.frame.packet)


def observations(target: CaptureTarget, frames: Sequence[Frame]) -> list[Seen]:
    """Frames on one interface: a frame whose source MAC is the interface's own left through
    it, any other came in."""
    return [
        Seen(
            target.namespace,
            target.interface,
            "out" if frame.src_mac == target.mac else "in",
            frame,
        )
        for frame in frames
    ]


class Capture:
    """tcpdump on every target interface, started before the traffic and stopped after it."""

    def __init__(self, targets: Sequence[CaptureTarget], *, start_timeout: float = 5.0) -> None:
        self.targets = tuple(targets)
        self.start_timeout = start_timeout
        self._procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Capture:
        try:
            for target in self.targets:
                self._procs.append(
                    subprocess.Popen(
                        [
                            "ip",
                            "netns",
                            "exec",
                            target.netns,
                            "tcpdump",
                            "--immediate-mode",
                            "-tt",
                            "-n",
                            "-e",
                            "-v",
                            "-l",
                            "-s",
                            "160",
                            "-i",
                            target.interface,
                            "ip",
                        ],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            self._wait_listening()
        except BaseException:
            self._kill()
            raise
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        for target, proc in zip(self.targets, self._procs, strict=True):
            assert proc.stderr is not None
            seen = ""
            while "listening on" not in seen:
                left = deadline - time.monotonic()
                poller = select.poll()
                poller.register(proc.stderr, select.POLLIN)
                if not poller.poll(max(left, 0) * 1000):
                    raise LabError(f"tcpdump on {target.netns}/{target.interface} did not start")
                line = proc.stderr.readline()
                if not line:
                    raise LabError(
                        f"tcpdump on {target.netns}/{target.interface} exited: {seen.strip()}"
                    )
                seen += line

    def stop(self) -> list[Seen]:
        """Stop every tcpdump (SIGINT, so it flushes) and parse what each printed."""
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
        result: list[Seen] = []
        for target, proc in zip(self.targets, self._procs, strict=True):
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            result += observations(target, parse_tcpdump(out))
        self._procs = []
        return sorted(result, key=lambda item: item.timestamp)

    def _kill(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self._procs = []

    def __exit__(self, *exc: object) -> None:
        self._kill()


# --- ip route get -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteGet:
    """The parts of `ip route get` the walk's routing decision predicts."""

    type: str
    dev: str | None
    via: str | None
    table: str
    error: str | None = None


_ROUTE_WORDS = ("from", "via", "dev", "table", "src", "mark", "uid", "iif", "oif")


def parse_route_get(text: str, error: str = "") -> RouteGet:
    """`ip route get` output (first line) → type, dev, gateway, table (`main` when not printed)."""
    if not text.strip():
        return RouteGet("error", None, None, "", error.strip() or "no output")
    tokens = text.splitlines()[0].split()
    kind = "unicast"
    if tokens and tokens[0] in (
        "local",
        "broadcast",
        "unreachable",
        "prohibit",
        "blackhole",
        "multicast",
        "throw",
    ):
        kind = tokens[0]
    values: dict[str, str] = {}
    for word, value in itertools.pairwise(tokens):
        if word in _ROUTE_WORDS and word not in values:
            values[word] = value
    return RouteGet(kind, values.get("dev"), values.get("via"), values.get("table", "main"))


# --- conntrack -L and conntrack -E ---------------------------------------------------------------

_TUPLE = re.compile(r"\b(src|dst|sport|dport|type|code|id)=(\S+)")
_FLAG = re.compile(r"\[(UNREPLIED|ASSURED)\]")
_EVENT = re.compile(
    r"^(?:\[(?P<ts>\d+\.\d+)\]\s+)?\[(?P<kind>NEW|UPDATE|DESTROY)\]\s+(?P<rest>.*)$"
)
_TCP_STATES = frozenset(
    {
        "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
        "TIME_WAIT", "CLOSE", "SYN_SENT2",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    """One entry as `conntrack -L` (or an event of `conntrack -E`, or a walk's record) prints it:
    both tuples as (key, value) pairs, the TCP state, the status flags shown, the mark."""

    proto: str
    original: tuple[tuple[str, str], ...]
    reply: tuple[tuple[str, str], ...]
    mark: int
    text: str
    state: str | None = None
    flags: frozenset[str] = frozenset()


def parse_conntrack_line(line: str) -> ConntrackEntry | None:
    """One `conntrack -L` line (or a walk's ConntrackRecord text) split into its two tuples."""
    fields = line.split()
    if not fields:
        return None
    pairs = _TUPLE.findall(line)
    keys = [k for k, _ in pairs]
    half = len(pairs) // 2
    if half == 0 or keys[:half] != keys[half:]:
        return None
    mark = re.search(r"\bmark=(\d+)", line)
    state = next((word for word in fields[:5] if word in _TCP_STATES), None)
    return ConntrackEntry(
        proto=fields[0] if not fields[0].startswith("src=") else "",
        original=tuple(pairs[:half]),
        reply=tuple(pairs[half:]),
        mark=int(mark.group(1)) if mark else 0,
        text=line.strip(),
        state=state,
        flags=frozenset(_FLAG.findall(line)),
    )


def parse_conntrack(text: str) -> tuple[ConntrackEntry, ...]:
    entries = (parse_conntrack_line(line) for line in text.splitlines())
    return tuple(entry for entry in entries if entry is not None)


@dataclass(frozen=True, slots=True)
class ConntrackEvent:
    """One line of `conntrack -E -o timestamp`: what happened to an entry, and the entry as it
    was right after (`NEW` at confirmation, `UPDATE` when a later packet changed it)."""

    timestamp: float | None
    kind: Literal["NEW", "UPDATE", "DESTROY"]
    entry: ConntrackEntry
    userspace: bool
    """Made by a tool (`conntrack -I/-D/-F`), not by a packet."""


def parse_conntrack_events(text: str) -> tuple[ConntrackEvent, ...]:
    events: list[ConntrackEvent] = []
    for line in text.splitlines():
        match = _EVENT.match(line.strip())
        if match is None:
            continue
        entry = parse_conntrack_line(match["rest"])
        if entry is None:
            continue
        events.append(
            ConntrackEvent(
                float(match["ts"]) if match["ts"] else None,
                match["kind"],  # type: ignore[arg-type]
                entry,
                "[USERSPACE]" in match["rest"],
            )
        )
    return tuple(events)


_WATCH_PREFIX = ("ip", "netns", "exec")
_WATCH = ("stdbuf", "-oL", "conntrack", "-E", "-o", "timestamp")
"""Line-buffered, so each event reaches us as it happens."""


def _ready(attempt: int) -> tuple[str, ...]:
    """A throw-away entry `ConntrackWatch` inserts to see that its listener is subscribed."""
    return (
        *("-p", "udp", "-s", "127.0.0.9", "-d", "127.0.0.9"),
        *("--sport", str(attempt), "--dport", "9", "-t", "5"),
    )


class ConntrackWatch:
    """`conntrack -E -o timestamp` in each namespace for the length of one exchange.

    `conntrack -E` prints nothing when it has subscribed, so each watch is proven live by
    inserting a throw-away entry and waiting for its `[NEW]` line; then the tables are flushed
    (the flush's `[DESTROY]` lines and the throw-away's are ignored as made by userspace)."""

    def __init__(self, netns: Sequence[tuple[str, str]], *, start_timeout: float = 5.0) -> None:
        self.netns = tuple(netns)
        """(state name, lab netns) pairs."""
        self.start_timeout = start_timeout
        self._procs: list[subprocess.Popen[str]] = []
        self._seen: list[str] = []

    def __enter__(self) -> ConntrackWatch:
        try:
            for _, netns in self.netns:
                self._procs.append(
                    subprocess.Popen(
                        [*_WATCH_PREFIX, netns, *_WATCH],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    )
                )
            self._wait_subscribed()
        except BaseException:
            self._kill()
            raise
        return self

    def _wait_subscribed(self) -> None:
        """Insert a throw-away entry until its `[NEW]` line comes back (an entry inserted before
        the watch subscribed is never reported, so each attempt uses a new one)."""
        deadline = time.monotonic() + self.start_timeout
        for (name, netns), proc in zip(self.netns, self._procs, strict=True):
            assert proc.stdout is not None
            poller = select.poll()
            poller.register(proc.stdout, select.POLLIN)
            seen = ""
            attempt = 0
            while "127.0.0.9" not in seen:
                attempt += 1
                subprocess.run(
                    ["ip", "netns", "exec", netns, "conntrack", "-I", *_ready(attempt)],
                    capture_output=True,
                    check=False,
                )
                if poller.poll(50):
                    seen += proc.stdout.readline()
                elif time.monotonic() > deadline:
                    raise LabError(f"conntrack -E in {name} did not start")
            self._seen.append(seen)
            subprocess.run(
                ["ip", "netns", "exec", netns, "conntrack", "-F"], capture_output=True, check=False
            )

    def stop(self) -> dict[str, tuple[ConntrackEvent, ...]]:
        """Stop every watch and return the events packets made, per state namespace."""
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
        result: dict[str, tuple[ConntrackEvent, ...]] = {}
        for (name, _), proc, seen in zip(self.netns, self._procs, self._seen, strict=True):
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            events = parse_conntrack_events(seen + out)
            result[name] = tuple(e for e in events if not e.userspace and e.kind != "DESTROY")
        self._procs = []
        return result

    def _kill(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self._procs = []

    def __exit__(self, *exc: object) -> None:
        self._kill()


# --- counters the kernel keeps per namespace -----------------------------------------------------


def parse_netstat(text: str) -> dict[str, int]:
    """`/proc/net/netstat` and `/proc/net/snmp` (pairs of header and value lines) as
    `Group:Name` → value (`TcpExt:IPReversePathFilter`, `Icmp:InEchos`)."""
    counters: dict[str, int] = {}
    lines = text.splitlines()
    for names, values in itertools.pairwise(lines):
        keys, numbers = names.split(), values.split()
        if not keys or keys[0] != numbers[0] or not keys[0].endswith(":") or keys == numbers:
            continue
        for key, number in zip(keys[1:], numbers[1:], strict=False):
            with contextlib.suppress(ValueError):
                counters[keys[0] + key] = int(number)
    return counters


def parse_nft_counters(text: str) -> dict[str, int]:
    """Packets counted per commented rule of `nft -j list table …` (comment → packets)."""
    counted: dict[str, int] = {}
    document = json.loads(text) if text.strip() else {}
    for item in document.get("nftables", ()):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict) or "comment" not in rule:
            continue
        for expression in rule.get("expr", ()):
            if isinstance(expression, dict) and "counter" in expression:
                counter = expression["counter"]
                counted[rule["comment"]] = counted.get(rule["comment"], 0) + int(
                    counter.get("packets", 0)
                )
    return counted


@contextlib.contextmanager
def started(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
