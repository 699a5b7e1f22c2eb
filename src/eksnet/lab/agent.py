"""The traffic agent the lab runs inside a namespace: `listen` for one flow, or `send` one.

Run as a plain script (`python3 -I -S agent.py ...` under `ip netns exec`), so it must use the
standard library only and import nothing from eksnet: it starts in a few milliseconds and sees
exactly the namespace's sockets. It prints JSON lines: `{"ready": true}` when listening, then
`{"received": ..., "peer": ..., "at": ...}` when the flow's first packet reached the socket, and
the sender `{"ok": ..., "error": ..., "at": ...}` when it has the answer (or gave up).

A walk is one packet each way, so the exchange is kept to exactly that (the verifier counts the
rules those two packets matched):

* TCP: the server listens; the first packet reaching it is the SYN, and the kernel answers with
  the SYN-ACK at once. Its arrival shows as a request socket in `SYN_RECV` in the namespace's
  `/proc/net/tcp` (the client's ACK never comes: the verifier drops everything after the SYN in
  the sender's namespace, before any hook the walk models), and as a copy on a raw TCP socket,
  which sees what local delivery hands TCP (`raw_local_deliver`, after INPUT): the request
  socket may be gone before it is looked at (an ICMP time exceeded answering the SYN-ACK
  aborts it, `tcp_req_err`). The client binds the walk's source
  address and port and connects; a SYN-ACK completes `connect()`.
* UDP: one datagram each way on a connected socket; the server answers from the address it was
  asked on (linux-dataplane §10.13: a wildcard-bound server would answer from the
  routing-chosen source).
* ICMP: one echo request with the walk's identifier on a raw socket, waiting for the echo reply
  with that identifier (the kernel of the destination answers it; nothing listens there).

`at` is `time.time()`, the clock tcpdump stamps frames with, so the verifier can tell a UDP
request's frames (before the server received it) from the reply's (after).

A TCP sender also reports the sequence numbers its ACK would carry (`next_seq`, `next_ack`,
read from the SYN-ACK a raw socket copied), and `ack` sends that ACK later, on its own, as the
connection's later packet (`walk --later`): a bare ACK segment from a raw socket, marked so the
verifier's probe lets it through, which the kernel routes and sends like any locally made
packet.
"""

from __future__ import annotations

import argparse
import errno
import json
import select
import socket
import struct
import sys
import time
from collections.abc import Iterator

_TCP_SYN_RECV = "03"


def _emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _hex_endpoint(address: str, port: int) -> str:
    """An address:port as /proc/net/tcp prints it (little-endian address, hex port)."""
    packed = socket.inet_aton(address)
    return f"{struct.unpack('<I', packed)[0]:08X}:{port:04X}"


def _syn_received(local: str) -> str | None:
    """The peer of a request socket in SYN_RECV on `local`, if one exists."""
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == local and fields[3] == _TCP_SYN_RECV:
                address, port = fields[2].split(":")
                peer = socket.inet_ntoa(struct.pack("<I", int(address, 16)))
                return f"{peer}:{int(port, 16)}"
    return None


def _wait_stop() -> None:
    """Keep the socket open until the verifier closes our stdin (it reads counters first)."""
    sys.stdin.read()


def _asked_to_report(wait: float) -> bool:
    """Whether the verifier asked for the verdict (a line on stdin, or stdin closed) within
    `wait` seconds: it asks once the sender has its answer, so however slowly the namespaces'
    processes start on a loaded machine, the listener never stops looking before the packet
    could have arrived."""
    if not select.select([sys.stdin], [], [], wait)[0]:
        return False
    sys.stdin.readline()
    return True


def _tcp_copies(
    raw: socket.socket,
) -> Iterator[tuple[bytes, bytes, int, int, int, int, int]]:
    """The TCP segments the raw socket has copied so far (without waiting): each one's source
    and destination addresses (packed), ports, sequence and acknowledgement numbers and flags
    byte."""
    while select.select([raw], [], [], 0)[0]:
        packet = raw.recv(65535)
        header = (packet[0] & 0x0F) * 4
        if len(packet) < header + 20:
            continue
        sport, dport, seq, ack = struct.unpack("!HHII", packet[header : header + 12])
        yield packet[12:16], packet[16:20], sport, dport, seq, ack, packet[header + 13]


def _syn_copied(raw: socket.socket, address: str, port: int) -> str | None:
    """The peer of a SYN to `address:port` among the segments the raw socket has copied."""
    wanted = socket.inet_aton(address)
    for source, destination, sport, dport, _, _, flags in _tcp_copies(raw):
        if (destination, dport) == (wanted, port) and flags & 0x12 == 0x02:  # SYN, no ACK
            return f"{socket.inet_ntoa(source)}:{sport}"
    return None


def listen(proto: str, address: str, port: int, timeout: float) -> None:
    """Listen until the flow's first packet arrives or the verifier asks for the verdict
    (`timeout`: a last resort, should the verifier never ask)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        raw = None
        if proto == "tcp":
            server.listen(16)
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        _emit(ready=True)
        deadline = time.monotonic() + timeout
        local = _hex_endpoint(address, port)
        while True:
            if raw is not None:
                peer = _syn_received(local) or _syn_copied(raw, address, port)
                if peer is not None:
                    _emit(received=True, peer=peer, at=time.time())
                    break
            elif select.select([server], [], [], 0)[0]:
                data, source = server.recvfrom(2048)
                _emit(received=True, peer=f"{source[0]}:{source[1]}", at=time.time())
                server.sendto(data, source)
                break
            if _asked_to_report(0.002) or time.monotonic() > deadline:
                # One last look: the packet may have arrived while we were asked.
                peer = None
                if raw is not None:
                    peer = _syn_received(local) or _syn_copied(raw, address, port)
                if peer is not None:
                    _emit(received=True, peer=peer, at=time.time())
                else:
                    _emit(received=False)
                break
        _wait_stop()


def _syn_ack_numbers(raw: socket.socket, dst: str, dport: int, sport: int) -> dict[str, int]:
    """The ACK's numbers from the SYN-ACK of `dst:dport` to our `sport` the raw socket copied:
    its sequence is the SYN-ACK's acknowledgement, its acknowledgement the SYN-ACK's sequence
    plus one (RFC 9293 §3.5)."""
    wanted = socket.inet_aton(dst)
    for source, _, source_port, port, seq, ack, flags in _tcp_copies(raw):
        if (source, source_port, port) == (wanted, dport, sport) and flags & 0x12 == 0x12:
            return {"next_seq": ack, "next_ack": (seq + 1) & 0xFFFFFFFF}
    return {}


def send(
    proto: str, src: str, sport: int, dst: str, dport: int, icmp_id: int, timeout: float
) -> None:
    sent = time.time()
    if proto == "icmp":
        _emit(at=sent, **ping(src, dst, icmp_id, timeout))
        return
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        client.settimeout(timeout)
        try:
            client.bind((src, sport))
            if proto == "tcp":
                with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as raw:
                    client.connect((dst, dport))
                    numbers = _syn_ack_numbers(raw, dst, dport, sport)
                # Close with a RST (no FIN, no TIME_WAIT); the verifier's probe drops it.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                _emit(ok=True, peer=f"{dst}:{dport}", at=sent, **numbers)
            else:
                # Connected, as a resolver's socket is: an ICMP error answering the datagram
                # is then reported to it (ECONNREFUSED for a port unreachable).
                client.connect((dst, dport))
                client.send(b"eksnet")
                client.recv(2048)
                _emit(ok=True, peer=f"{dst}:{dport}", at=sent)
        except OSError as error:
            code = errno.errorcode.get(error.errno or 0, "")
            _emit(ok=False, error=str(error) or type(error).__name__, errno=code, at=sent)


def ack(src: str, sport: int, dst: str, dport: int, seq: int, acked: int, mark: int) -> None:
    """Send one bare ACK segment (`[.]`, no options) from `src:sport` to `dst:dport`, marked
    `mark` (the verifier's probe lets that mark through and clears it)."""
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20)
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, acked, 5 << 4, 0x10, 502, 0, 0)
    segment = header[:16] + struct.pack("!H", _checksum(pseudo + header)) + header[18:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        sock.bind((src, 0))
        try:
            sock.sendto(segment, (dst, 0))
        except OSError as error:
            _emit(ok=False, error=str(error), at=time.time())
            return
    _emit(ok=True, at=time.time())


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(src: str, dst: str, ident: int, timeout: float) -> dict[str, object]:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"eksnet-lab"
    packet = header[:2] + struct.pack("!H", _checksum(header)) + header[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        if src:
            sock.bind((src, 0))
        try:
            sock.sendto(packet, (dst, 0))
        except OSError as error:
            return {"ok": False, "error": str(error)}
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            data, peer = sock.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4 :]
            if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return {"ok": True, "peer": peer[0]}
    return {"ok": False, "error": "no echo reply"}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="eksnet-lab-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    lis = sub.add_parser("listen")
    lis.add_argument("--proto", choices=("tcp", "udp"), required=True)
    lis.add_argument("--addr", required=True)
    lis.add_argument("--port", type=int, required=True)
    lis.add_argument("--timeout", type=float, default=5.0)
    snd = sub.add_parser("send")
    snd.add_argument("--proto", choices=("tcp", "udp", "icmp"), required=True)
    snd.add_argument("--src", default="")
    snd.add_argument("--sport", type=int, default=0)
    snd.add_argument("--dst", required=True)
    snd.add_argument("--dport", type=int, default=0)
    snd.add_argument("--icmp-id", type=int, default=0)
    snd.add_argument("--timeout", type=float, default=2.0)
    later = sub.add_parser("ack")
    later.add_argument("--src", required=True)
    later.add_argument("--sport", type=int, required=True)
    later.add_argument("--dst", required=True)
    later.add_argument("--dport", type=int, required=True)
    later.add_argument("--seq", type=int, required=True)
    later.add_argument("--ack", type=int, required=True)
    later.add_argument("--mark", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "listen":
        listen(args.proto, args.addr, args.port, args.timeout)
    elif args.command == "ack":
        ack(args.src, args.sport, args.dst, args.dport, args.seq, args.ack, args.mark)
    else:
        send(args.proto, args.src, args.sport, args.dst, args.dport, args.icmp_id, args.timeout)


if __name__ == "__main__":
    main(sys.argv[1:])
