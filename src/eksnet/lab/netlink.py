"""Configure a lab namespace from this process: rtnetlink requests and `/proc/sys` writes.

Why not `ip -n NS -batch` per namespace: on the 50-node, 1,000-pod benchmark, starting processes
(`ip netns exec … sysctl`, `ip -n … -batch`, `tc -n … -batch`: about three per namespace, 1 to 2
ms each on a small VM) was most of `lab up`, while the kernel's own work is a few hundred
microseconds per pod. `ip -batch` cannot switch namespaces between its lines, so with `ip` one
process per namespace was the floor.

How: `setns(2)` moves only the calling thread; a NETLINK_ROUTE socket stays bound to the
namespace it was opened in; `/proc/sys/net` resolves in the calling thread's namespace; and a
process the thread starts is born there. So a worker thread enters a namespace (`entered`),
writes its sysctls, sends all its requests (`apply`; the kernel handles them in order and answers
only failures, plus one final ACK), starts `iptables-restore` if the node has rules, and returns
to its own namespace.

Each request is the one `ip`/`tc` sends for the operation's text (`ops.py`): the same header
fields, attributes and flags, so the kernel ends up in the same state. A failure raises `LabError`
with the kernel's error, its extended-ack message and the operation's `ip` line;
`tests/lab/test_same_answer.py` compares the outcome with the simulator.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from eksnet.lab import inside
from eksnet.lab.ops import (
    AddressAdd,
    KernelRouteDelete,
    LinkAddrGenNone,
    LinkUp,
    NeighbourReplace,
    Op,
    QdiscReplace,
    RouteAdd,
    RuleAdd,
    RuleDelete,
)
from eksnet.lab.system import LabError

# --- netlink and rtnetlink constants (linux/netlink.h, rtnetlink.h, fib_rules.h, …) -----------

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH = 24, 25, 28
RTM_NEWRULE, RTM_DELRULE, RTM_NEWQDISC = 32, 33, 36
IFF_UP = 0x1
IFLA_AF_SPEC = 26
IFLA_INET6_ADDR_GEN_MODE = 8
IN6_ADDR_GEN_MODE_NONE = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_TENTATIVE = 0x40
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
RT_SCOPE_NOWHERE = 255
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_GOTO, FRA_PRIORITY = 1, 2, 3, 4, 6
FRA_FWMARK, FRA_TABLE, FRA_FWMASK, FRA_OIFNAME = 10, 15, 16, 17
FIB_RULE_INVERT = 0x2
NDA_DST, NDA_LLADDR = 1, 2
TCA_KIND = 1
TC_H_ROOT = 0xFFFFFFFF

SCOPES = {"global": 0, "link": 253, "host": 254}
ROUTE_TYPES = {
    "unicast": 1,
    "local": 2,
    "broadcast": 3,
    "blackhole": 6,
    "unreachable": 7,
    "prohibit": 8,
    "throw": 9,
}
RULE_ACTIONS = {"lookup": 1, "goto": 2, "nop": 3, "blackhole": 6, "unreachable": 7, "prohibit": 8}
NUD_STATES = {"REACHABLE": 0x02, "STALE": 0x04, "NOARP": 0x40, "PERMANENT": 0x80}
RT_PROTOS = {
    "unspec": 0,
    "redirect": 1,
    "kernel": 2,
    "boot": 3,
    "static": 4,
    "ra": 9,
    "dhcp": 16,
    "keepalived": 18,
    "bgp": 186,
}
"""`/etc/iproute2/rt_protos` names the state may use (a number is taken as is)."""

BATCH = 64
"""Requests per `sendmsg` (a few kilobytes; their answers at most about a hundred)."""


# --- entering a namespace -----------------------------------------------------------------------


@contextlib.contextmanager
def entered(netns: str, run_dir: str = inside.RUN_DIR) -> Iterator[None]:
    """This thread (only this one) inside lab namespace `netns`, back in its own afterwards."""
    home = os.open("/proc/thread-self/ns/net", inside.READ)
    try:
        target = os.open(os.path.join(run_dir, netns), inside.READ)
        try:
            _setns(target, netns)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home, "this thread's own namespace")
    finally:
        os.close(home)


def _setns(fd: int, what: str) -> None:
    try:
        inside.setns(fd, inside.CLONE_NEWNET)
    except OSError as error:
        raise LabError(f"setns into {what}: {error.strerror}") from None


_SYSCTL_PATH = str.maketrans("./", "/.")
"""`sysctl`'s key to path: dots are separators, a slash stands for a dot in a device name."""


def write_sysctls(sysctls: Sequence[tuple[str, str]], *, ignore_missing: bool = False) -> None:
    """`sysctl -w` of each key in order, in the calling thread's namespace (`-e` semantics with
    `ignore_missing`: a key the kernel does not have is skipped)."""
    for key, value in sysctls:
        path = "/proc/sys/" + key.translate(_SYSCTL_PATH)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except FileNotFoundError:
            if not ignore_missing:
                raise LabError(f"sysctl {key}: no such key") from None
        except OSError as error:
            raise LabError(f"sysctl {key}={value}: {error.strerror}") from None


# --- encoding -----------------------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _ip(kind: int, address: IPv4Address | IPv6Address) -> bytes:
    return _attr(kind, address.packed)


def _string(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _message(kind: int, flags: int, body: bytes, seq: int) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags | NLM_F_REQUEST, seq, 0) + body


def _proto(name: str) -> int:
    if name.isdigit():
        return int(name)
    if name not in RT_PROTOS:
        raise LabError(f"route protocol {name!r} is not in the lab's rt_protos table")
    return RT_PROTOS[name]


def _table(table: int, attr: int) -> tuple[int, bytes]:
    """`ip`'s table encoding: in the header when it fits a byte, else as attribute `attr`
    (RTA_TABLE, FRA_TABLE) with the header's table unspecified."""
    return (table, b"") if table < 256 else (0, _u32(attr, table))


def _link_up(op: LinkUp) -> tuple[int, int, bytes]:
    return RTM_NEWLINK, 0, struct.pack("=BxHiII", 0, 0, op.link.ifindex, IFF_UP, IFF_UP)


def _link_sync(op: LinkUp, seq: int, *, ack: bool) -> bytes:
    """`ip link show dev NAME` right after the link came up.

    RTM_GETLINK of one link runs its pending linkwatch event at once (`linkwatch_sync_dev`):
    the carrier turns the operstate up, and IPv6 autoconfiguration adds the link's `fe80::/64`
    and `ff00::/8` routes now, before the next link comes up. Left to the linkwatch worker,
    which runs whenever it gets the RTNL lock while other namespaces are configured in
    parallel, they come out in any order, and `ip -6 route` lists them in that order."""
    body = struct.pack("=BxHiII", 0, 0, op.link.ifindex, 0, 0)
    return _message(RTM_GETLINK, NLM_F_ACK if ack else 0, body, seq)


def _addrgen_none(op: LinkAddrGenNone) -> tuple[int, int, bytes]:
    mode = _attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_NONE]))
    spec = _attr(IFLA_AF_SPEC, _attr(socket.AF_INET6, mode))
    return RTM_NEWLINK, 0, struct.pack("=BxHiII", 0, 0, op.link.ifindex, 0, 0) + spec


def _address(op: AddressAdd) -> tuple[int, int, bytes]:
    interface = op.address.interface
    family = socket.AF_INET if interface.version == 4 else socket.AF_INET6
    header = struct.pack(
        "=BBBBI",
        family,
        interface.network.prefixlen,
        0,
        SCOPES[op.address.scope],
        op.ifindex,
    )
    attrs = _ip(IFA_LOCAL, interface.ip) + _ip(IFA_ADDRESS, interface.ip)
    if op.address.broadcast is not None:
        attrs += _ip(IFA_BROADCAST, op.address.broadcast)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, header + attrs


def _rtmsg(dst: IPv4Network, table: int, proto: int, scope: int, kind: int) -> bytes:
    return struct.pack(
        "=BBBBBBBBI", socket.AF_INET, dst.prefixlen, 0, 0, table, proto, scope, kind, 0
    )


def _dst(dst: IPv4Network) -> bytes:
    return _ip(RTA_DST, dst.network_address) if dst.prefixlen else b""


def _route_add(op: RouteAdd) -> tuple[int, int, bytes]:
    route = op.route
    table, table_attr = _table(route.table, RTA_TABLE)
    header = _rtmsg(
        route.dst, table, _proto(route.proto), SCOPES[route.scope], ROUTE_TYPES[route.type]
    )
    attrs = table_attr + _dst(route.dst)
    if route.gateway is not None:
        attrs += _ip(RTA_GATEWAY, route.gateway)
    if op.ifindex is not None:
        attrs += _u32(RTA_OIF, op.ifindex)
    if route.src is not None:
        attrs += _ip(RTA_PREFSRC, route.src)
    if route.metric is not None:
        attrs += _u32(RTA_PRIORITY, route.metric)
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, header + attrs


def _route_delete(op: KernelRouteDelete) -> tuple[int, int, bytes]:
    """`ip route del`: type and scope left open (any), the protocol given."""
    route = op.route
    table, table_attr = _table(route.table, RTA_TABLE)
    header = _rtmsg(route.dst, table, _proto(route.proto), RT_SCOPE_NOWHERE, 0)
    attrs = table_attr + _dst(route.dst) + _u32(RTA_OIF, op.ifindex)
    return RTM_DELROUTE, 0, header + attrs


def _rule(op: RuleAdd | RuleDelete) -> tuple[int, int, bytes]:
    rule = op.rule
    table, table_attr = _table(rule.table or 0, FRA_TABLE)
    src_len = rule.src.prefixlen if rule.src is not None else 0
    dst_len = rule.dst.prefixlen if rule.dst is not None else 0
    flags = FIB_RULE_INVERT if rule.invert else 0
    header = struct.pack(
        "=BBBBBBBBI",
        socket.AF_INET,
        dst_len,
        src_len,
        0,
        table,
        0,
        0,
        RULE_ACTIONS[rule.action],
        flags,
    )
    attrs = _u32(FRA_PRIORITY, rule.priority) + table_attr
    if rule.src is not None:
        attrs += _ip(FRA_SRC, rule.src.network_address)
    if rule.dst is not None:
        attrs += _ip(FRA_DST, rule.dst.network_address)
    if rule.fwmark is not None:
        attrs += _u32(FRA_FWMARK, rule.fwmark)
    if rule.fwmask is not None:
        attrs += _u32(FRA_FWMASK, rule.fwmask)
    if rule.iif is not None:
        attrs += _string(FRA_IIFNAME, rule.iif)
    if rule.oif is not None:
        attrs += _string(FRA_OIFNAME, rule.oif)
    if rule.goto is not None:
        attrs += _u32(FRA_GOTO, rule.goto)
    if isinstance(op, RuleAdd):
        return RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, header + attrs
    return RTM_DELRULE, 0, header + attrs


def _neighbour(op: NeighbourReplace) -> tuple[int, int, bytes]:
    n = op.neighbour
    header = struct.pack("=BxxxiHBB", socket.AF_INET, op.ifindex, NUD_STATES[n.state], 0, 0)
    lladdr = bytes.fromhex(n.lladdr.replace(":", ""))
    attrs = _ip(NDA_DST, n.dst) + _attr(NDA_LLADDR, lladdr)
    return RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, header + attrs


def _qdisc(op: QdiscReplace) -> tuple[int, int, bytes]:
    header = struct.pack("=BxxxiIII", 0, op.link.ifindex, 0, TC_H_ROOT, 0)
    return RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, header + _string(TCA_KIND, op.link.qdisc)


def encode(op: Op, seq: int, *, ack: bool = False) -> bytes:
    """The rtnetlink request `ip`/`tc` sends for `op.ip_line()` (for `LinkUp` of a link with a
    carrier, followed by the RTM_GETLINK of `_link_sync`)."""
    if isinstance(op, LinkUp) and op.link.kind != "loopback":  # lo has no carrier to wait for
        kind, flags, body = _link_up(op)
        return _message(kind, flags, body, seq) + _link_sync(op, seq, ack=ack)
    if isinstance(op, LinkUp):
        kind, flags, body = _link_up(op)
    elif isinstance(op, LinkAddrGenNone):
        kind, flags, body = _addrgen_none(op)
    elif isinstance(op, AddressAdd):
        kind, flags, body = _address(op)
    elif isinstance(op, RouteAdd):
        kind, flags, body = _route_add(op)
    elif isinstance(op, KernelRouteDelete):
        kind, flags, body = _route_delete(op)
    elif isinstance(op, RuleAdd | RuleDelete):
        kind, flags, body = _rule(op)
    elif isinstance(op, NeighbourReplace):
        kind, flags, body = _neighbour(op)
    else:
        kind, flags, body = _qdisc(op)
    return _message(kind, flags | (NLM_F_ACK if ack else 0), body, seq)


# --- sending ------------------------------------------------------------------------------------


def _socket() -> socket.socket:
    """A NETLINK_ROUTE socket in the calling thread's namespace, with short ACKs carrying the
    kernel's extended error message."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    sock.bind((0, 0))
    return sock


def apply(ops: Sequence[Op], netns: str) -> None:
    """Send every operation, in order, in the calling thread's namespace (named `netns` for
    messages), `BATCH` at a time. Only the last of a batch asks for an ACK: the kernel answers
    every failure anyway, so one round trip covers the batch, and a batch's answers (each
    `_link_sync` gets a whole link back) stay well within the socket's receive buffer. The
    first failure raises."""
    failures: list[tuple[int, int, str]] = []
    try:
        with _socket() as sock:
            for first in range(0, len(ops), BATCH):
                last = min(first + BATCH, len(ops))
                sock.sendall(
                    b"".join(
                        encode(ops[seq - 1], seq, ack=seq == last)
                        for seq in range(first + 1, last + 1)
                    )
                )
                failures += _read_until(sock, last)
    except OSError as error:
        raise LabError(f"{netns}: rtnetlink: {error.strerror or error}") from None
    if failures:
        seq, code, message = failures[0]
        detail = f": {message}" if message else ""
        raise LabError(
            f"{netns}: {ops[seq - 1].ip_line()}: {os.strerror(code)}{detail}"
            + (f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else "")
        )


def _read_until(sock: socket.socket, last: int) -> list[tuple[int, int, str]]:
    """Read answers until the one for `last`; every error as (seq, errno, extack message)."""
    failures: list[tuple[int, int, str]] = []
    while True:
        data = sock.recv(1 << 16)
        for kind, flags, seq, payload in _messages(data):
            if kind != NLMSG_ERROR:
                continue
            code = -struct.unpack_from("=i", payload)[0]
            if code:
                failures.append((seq, code, _extack(flags, payload)))
            if seq == last:
                return failures


def _messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    offset = 0
    while offset + 16 <= len(data):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        yield kind, flags, seq, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def _extack(flags: int, payload: bytes) -> str:
    """NLMSGERR_ATTR_MSG of an error answer (after the error code and the echoed header)."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    offset = 4 + 16  # errno, then the request's header (NETLINK_CAP_ACK: header only)
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        if kind == NLMSGERR_ATTR_MSG:
            return payload[offset + 4 : offset + length].rstrip(b"\0").decode(errors="replace")
        offset += (length + 3) & ~3
    return ""


# --- reading ------------------------------------------------------------------------------------


def tentative_addresses() -> int:
    """How many IPv6 addresses of the calling thread's namespace are still `tentative` (duplicate
    address detection running): `ip -6 addr show tentative`, counted."""
    request = _message(
        RTM_GETADDR, NLM_F_DUMP, struct.pack("=BBBBI", socket.AF_INET6, 0, 0, 0, 0), 1
    )
    count = 0
    with _socket() as sock:
        sock.sendall(request)
        while True:
            for kind, _, _, payload in _messages(sock.recv(1 << 16)):
                if kind == NLMSG_DONE:
                    return count
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    raise LabError(f"dumping IPv6 addresses: {os.strerror(code or errno.EIO)}")
                if kind == RTM_NEWADDR and _address_flags(payload) & IFA_F_TENTATIVE:
                    count += 1


def _address_flags(payload: bytes) -> int:
    """An address's flags: IFA_FLAGS when present (32 bits), else the header's 8."""
    flags: int = payload[2]
    offset = 8
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        if kind == IFA_FLAGS:
            flags = int(struct.unpack_from("=I", payload, offset + 4)[0])
        offset += (length + 3) & ~3
    return flags
