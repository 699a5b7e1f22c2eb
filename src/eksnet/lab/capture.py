"""Recording what the kernel did: tcpdump per interface, `ip route get`, `conntrack -L`.

Parsing is pure (text in, walk vocabulary out) so it is unit-tested on the sample lines of
linux-dataplane.md §9; starting and stopping the tools is the `Capture` context manager.
"""

from __future__ import annotations

import contextlib
import itertools
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
from eksnet.walk.model import Packet, Protocol, WireObservation

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
_PROTOCOLS: dict[str, Protocol] = {"1": "icmp", "6": "tcp", "17": "udp"}


@dataclass(frozen=True, slots=True)
class Frame:
    """One IPv4 frame tcpdump printed, with its capture time and the ICMP text if any."""

    timestamp: float
    packet: Packet
    summary: str


def parse_tcpdump(text: str) -> tuple[Frame, ...]:
    """Frames from `tcpdump -tt -n -e -v` output: a header line, then the indented IP line.
    Lines that are not IPv4 TCP/UDP/ICMP (ARP, embedded headers of ICMP errors) are skipped."""
    frames: list[Frame] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        head = _HEADER.match(line)
        if head is None or index + 1 >= len(lines):
            continue
        body = _BODY.match(lines[index + 1])
        proto = _PROTOCOLS.get(head["pnum"])
        if body is None or proto is None:
            continue
        flags = _FLAGS.search(body["rest"])
        ports = proto in ("tcp", "udp")
        if ports and (body["sport"] is None or body["dport"] is None):
            continue
        packet = Packet(
            src=IPv4Address(body["src"]),
            dst=IPv4Address(body["dst"]),
            proto=proto,
            sport=int(body["sport"]) if ports else None,
            dport=int(body["dport"]) if ports else None,
            ttl=int(head["ttl"]),
            src_mac=head["src_mac"],
            dst_mac=head["dst_mac"],
            tcp_flags=flags["flags"] if (flags and proto == "tcp") else None,
        )
        frames.append(Frame(float(head["ts"]), packet, body["rest"]))
    return tuple(frames)


@dataclass(frozen=True, slots=True)
class CaptureTarget:
    namespace: str
    """The state namespace name (what a Walk calls the place)."""
    netns: str
    interface: str
    mac: str


@dataclass(frozen=True, slots=True)
class TimedObservation:
    timestamp: float
    observation: WireObservation
    summary: str


def observations(target: CaptureTarget, frames: Sequence[Frame]) -> list[TimedObservation]:
    """Frames on one interface as walk observations: a frame whose source MAC is the
    interface's own left through it, any other came in."""
    result = []
    for frame in frames:
        direction: Literal["in", "out"] = "out" if frame.packet.src_mac == target.mac else "in"
        result.append(
            TimedObservation(
                frame.timestamp,
                WireObservation(target.namespace, target.interface, direction, frame.packet),
                frame.summary,
            )
        )
    return result


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

    def stop(self) -> list[TimedObservation]:
        """Stop every tcpdump (SIGINT, so it flushes) and parse what each printed."""
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
        result: list[TimedObservation] = []
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


# --- conntrack -L -------------------------------------------------------------------------------

_TUPLE = re.compile(r"(src|dst|sport|dport|type|code|id)=(\S+)")


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    proto: str
    original: tuple[tuple[str, str], ...]
    reply: tuple[tuple[str, str], ...]
    mark: int
    text: str


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
    return ConntrackEntry(
        proto=fields[0] if not fields[0].startswith("src=") else "",
        original=tuple(pairs[:half]),
        reply=tuple(pairs[half:]),
        mark=int(mark.group(1)) if mark else 0,
        text=line.strip(),
    )


def parse_conntrack(text: str) -> tuple[ConntrackEntry, ...]:
    entries = (parse_conntrack_line(line) for line in text.splitlines())
    return tuple(entry for entry in entries if entry is not None)


@contextlib.contextmanager
def started(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
