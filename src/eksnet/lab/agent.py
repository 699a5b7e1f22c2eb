"""The traffic agent the lab runs inside a namespace: `listen` for one flow, or `send` one.

Run as a plain script (`python3 -I -S agent.py ...` under `ip netns exec`), so it must use the
standard library only and import nothing from eksnet: it starts in a few milliseconds and sees
exactly the namespace's sockets. It prints one JSON line: `{"ready": true}` when listening, then
`{"ok": ..., "peer": ..., "error": ...}` when done.

* TCP: the client binds the walk's source address and port and connects; the server accepts one
  connection. The client closes with SO_LINGER 0 (a RST, no TIME_WAIT), so the same walk can be
  sent again at once with the same source port.
* UDP: one datagram each way; the server answers from the address it was asked on (linux-dataplane
  §10.13: a wildcard-bound server would answer from the routing-chosen source).
* ICMP: one echo request on a raw socket, waiting for the matching echo reply.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time


def _emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def listen(proto: str, address: str, port: int, timeout: float) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        if proto == "tcp":
            server.listen(16)
        _emit(ready=True)
        server.settimeout(timeout)
        try:
            if proto == "tcp":
                conn, peer = server.accept()
                conn.close()
            else:
                data, peer = server.recvfrom(2048)
                server.sendto(data, peer)
        except OSError as error:
            _emit(ok=False, error=str(error))
            return
        _emit(ok=True, peer=f"{peer[0]}:{peer[1]}")


def send(proto: str, src: str, sport: int, dst: str, dport: int, timeout: float) -> None:
    if proto == "icmp":
        _emit(**ping(src, dst, timeout))
        return
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        client.settimeout(timeout)
        try:
            client.bind((src, sport))
            if proto == "tcp":
                client.connect((dst, dport))
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                _emit(ok=True, peer=f"{dst}:{dport}")
            else:
                client.sendto(b"eksnet", (dst, dport))
                _, peer = client.recvfrom(2048)
                _emit(ok=True, peer=f"{peer[0]}:{peer[1]}")
        except OSError as error:
            _emit(ok=False, error=str(error) or type(error).__name__)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(src: str, dst: str, timeout: float) -> dict[str, object]:
    ident = os.getpid() & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"eksnet-lab"
    packet = header[:2] + struct.pack("!H", _checksum(header)) + header[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        if src:
            sock.bind((src, 0))
        sock.sendto(packet, (dst, 0))
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
    snd.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.command == "listen":
        listen(args.proto, args.addr, args.port, args.timeout)
    else:
        send(args.proto, args.src, args.sport, args.dst, args.dport, args.timeout)


if __name__ == "__main__":
    main(sys.argv[1:])
