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

Each request is the one `ip`/`tc` sends for the operation's text (`ops.py`): the same message
type, header fields, attributes and flags, so the kernel ends up in the same state. pyroute2's
message classes (`ifinfmsg`, `ifaddrmsg`, `rtmsg`, `fibmsg`, `ndmsg`, `tcmsg`) lay out the bytes
and its `Marshal` reads the answers; this module only says which fields an operation sets. A
failure raises `LabError` with the kernel's error, its extended-ack message and the operation's
`ip` line; `tests/lab/test_netlink.py` checks the outcome against `ip`'s own, and
`tests/lab/test_same_answer.py` against the simulator.

Why message objects on a plain socket rather than `IPRoute().route("add", …)`: measured here,
one `IPRoute` request costs about 430 µs of Python (argument filters, an asyncio round trip, an
ACK per request) against about 50 µs to build and encode the message, and `IPRoute(netns=…)`
forks a helper process per socket (13 ms, against 0.6 ms for `IPRoute()` after `setns`). The
benchmark sends about 10,000 requests into 1,051 namespaces, so the request API alone would add
four seconds to a `lab up` of two; the messages, sent `BATCH` to a `sendall` with one ACK, keep
one round trip per batch.

What pyroute2 still costs there: its encoder is generic Python, about 50 µs a message where
`struct.pack` took 2, so configuring the benchmark's namespaces keeps the worker busy about 2.0 s
instead of 1.2 s, and `lab up` takes about 2.4 s instead of 2.2 s (1.47× the bare build instead
of 1.32×, medians of 16 runs each). `encode` caches what repeats from pod to pod. Encoding on a
thread of its own, ahead of the worker, did not help: the GIL it holds delays the thread that
runs `ip -batch` about as much as it relieves the worker.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from pyroute2.netlink import (
    NETLINK_EXT_ACK,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOL_NETLINK,
    nlmsg,
)
from pyroute2.netlink.marshal import Marshal
from pyroute2.netlink.rt_files import RtProtosFile
from pyroute2.netlink.rtnl import (
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWQDISC,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    TC_H_ROOT,
    rt_scope,
    rt_type,
)
from pyroute2.netlink.rtnl.fibmsg import (
    FR_ACT_BLACKHOLE,
    FR_ACT_GOTO,
    FR_ACT_NOP,
    FR_ACT_PROHIBIT,
    FR_ACT_TO_TBL,
    FR_ACT_UNREACHABLE,
    fibmsg,
)
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_TENTATIVE, ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.ndmsg import NUD_NOARP, NUD_PERMANENT, NUD_REACHABLE, NUD_STALE, ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import tcmsg

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

SCOPES = {"global": rt_scope["universe"], "link": rt_scope["link"], "host": rt_scope["host"]}
"""The state's scope names (`ip`'s: universe prints as `global`)."""
RULE_ACTIONS = {
    "lookup": FR_ACT_TO_TBL,
    "goto": FR_ACT_GOTO,
    "nop": FR_ACT_NOP,
    "blackhole": FR_ACT_BLACKHOLE,
    "unreachable": FR_ACT_UNREACHABLE,
    "prohibit": FR_ACT_PROHIBIT,
}
NUD_STATES = {
    "PERMANENT": NUD_PERMANENT,
    "REACHABLE": NUD_REACHABLE,
    "STALE": NUD_STALE,
    "NOARP": NUD_NOARP,
}
IN6_ADDR_GEN_MODE_NONE = 1
FIB_RULE_INVERT = 0x2
"""linux/if_link.h and fib_rules.h values that pyroute2 does not name."""
CREATE = NLM_F_CREATE | NLM_F_EXCL
"""`ip … add`: create, fail if it exists."""
REPLACE = NLM_F_CREATE | NLM_F_REPLACE
"""`ip neigh replace`, `tc qdisc replace`."""

BATCH = 64
"""Requests per `sendall` (a few kilobytes; their answers at most about a hundred)."""


# --- entering a namespace -----------------------------------------------------------------------


@contextlib.contextmanager
def entered(netns: str, run_dir: str = inside.RUN_DIR) -> Iterator[None]:
    """This thread (only this one) inside lab namespace `netns`, back in its own afterwards.

    Not `pyroute2.netns.setns`/`pushns`: they keep the namespace to return to in one
    process-wide stack (the settle check enters namespaces from several threads at once), and
    by default create a namespace that does not exist."""
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


# --- the request of each operation --------------------------------------------------------------


def _message(
    message: nlmsg, kind: int, flags: int, fields: dict[str, Any], attrs: list[tuple[str, Any]]
) -> nlmsg:
    """`message` (a fresh pyroute2 message) with its header, fields and attributes set."""
    message["header"]["type"] = kind
    message["header"]["flags"] = flags | NLM_F_REQUEST
    for name, value in fields.items():
        message[name] = value
    message["attrs"] = attrs
    return message


@functools.cache
def _protocols() -> RtProtosFile:
    """`rt_protos`, read where and as `ip` reads it (`/etc/iproute2`, else `/usr/share`)."""
    return RtProtosFile()


def _proto(name: str) -> int:
    """A route protocol's number: `ip route … proto NAME` (a number is taken as is)."""
    try:
        return int(_protocols().get_rt_id(name))
    except KeyError:
        raise LabError(f"route protocol {name!r} is not in rt_protos") from None


def _table(table: int, attr: str) -> tuple[int, list[tuple[str, Any]]]:
    """`ip`'s table encoding: in the header when it fits a byte, else as attribute `attr`
    (RTA_TABLE, FRA_TABLE) with the header's table unspecified."""
    return (table, []) if table < 256 else (0, [(attr, table)])


def _link(
    kind: int, index: int, attrs: list[tuple[str, Any]] | None = None, **fields: Any
) -> nlmsg:
    return _message(ifinfmsg(), kind, 0, {"index": index, **fields}, attrs or [])


def _link_up(op: LinkUp) -> nlmsg:
    return _link(RTM_NEWLINK, op.link.ifindex, flags=IFF_UP, change=IFF_UP)


def _link_sync(op: LinkUp) -> nlmsg:
    """`ip link show dev NAME` right after the link came up.

    RTM_GETLINK of one link runs its pending linkwatch event at once (`linkwatch_sync_dev`):
    the carrier turns the operstate up, and IPv6 autoconfiguration adds the link's `fe80::/64`
    and `ff00::/8` routes now, before the next link comes up. Left to the linkwatch worker,
    which runs whenever it gets the RTNL lock while other namespaces are configured in
    parallel, they come out in any order, and `ip -6 route` lists them in that order."""
    return _link(RTM_GETLINK, op.link.ifindex)


def _addrgen_none(op: LinkAddrGenNone) -> nlmsg:
    mode = {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE)]}
    return _link(RTM_NEWLINK, op.link.ifindex, [("IFLA_AF_SPEC", {"attrs": [("AF_INET6", mode)]})])


def _address(op: AddressAdd) -> nlmsg:
    interface = op.address.interface
    ip = str(interface.ip)
    attrs = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
    if op.address.broadcast is not None:
        attrs.append(("IFA_BROADCAST", str(op.address.broadcast)))
    fields = {
        "family": socket.AF_INET if interface.version == 4 else socket.AF_INET6,
        "prefixlen": interface.network.prefixlen,
        "scope": SCOPES[op.address.scope],
        "index": op.ifindex,
    }
    return _message(ifaddrmsg(), RTM_NEWADDR, CREATE, fields, attrs)


def _route_add(op: RouteAdd) -> nlmsg:
    route = op.route
    table, attrs = _table(route.table, "RTA_TABLE")
    if route.dst.prefixlen:
        attrs.append(("RTA_DST", str(route.dst.network_address)))
    if route.gateway is not None:
        attrs.append(("RTA_GATEWAY", str(route.gateway)))
    if op.ifindex is not None:
        attrs.append(("RTA_OIF", op.ifindex))
    if route.src is not None:
        attrs.append(("RTA_PREFSRC", str(route.src)))
    if route.metric is not None:
        attrs.append(("RTA_PRIORITY", route.metric))
    fields = {
        "family": socket.AF_INET,
        "dst_len": route.dst.prefixlen,
        "table": table,
        "proto": _proto(route.proto),
        "scope": SCOPES[route.scope],
        "type": rt_type[route.type],
    }
    return _message(rtmsg(), RTM_NEWROUTE, CREATE, fields, attrs)


def _route_delete(op: KernelRouteDelete) -> nlmsg:
    """`ip route del`: type and scope left open (any), the protocol given."""
    route = op.route
    table, attrs = _table(route.table, "RTA_TABLE")
    if route.dst.prefixlen:
        attrs.append(("RTA_DST", str(route.dst.network_address)))
    attrs.append(("RTA_OIF", op.ifindex))
    fields = {
        "family": socket.AF_INET,
        "dst_len": route.dst.prefixlen,
        "table": table,
        "proto": _proto(route.proto),
        "scope": rt_scope["nowhere"],
        "type": rt_type["unspec"],
    }
    return _message(rtmsg(), RTM_DELROUTE, 0, fields, attrs)


def _rule(op: RuleAdd | RuleDelete) -> nlmsg:
    rule = op.rule
    table, table_attr = _table(rule.table or 0, "FRA_TABLE")
    attrs: list[tuple[str, Any]] = [("FRA_PRIORITY", rule.priority), *table_attr]
    if rule.src is not None:
        attrs.append(("FRA_SRC", str(rule.src.network_address)))
    if rule.dst is not None:
        attrs.append(("FRA_DST", str(rule.dst.network_address)))
    if rule.fwmark is not None:
        attrs.append(("FRA_FWMARK", rule.fwmark))
    if rule.fwmask is not None:
        attrs.append(("FRA_FWMASK", rule.fwmask))
    if rule.iif is not None:
        attrs.append(("FRA_IIFNAME", rule.iif))
    if rule.oif is not None:
        attrs.append(("FRA_OIFNAME", rule.oif))
    if rule.goto is not None:
        attrs.append(("FRA_GOTO", rule.goto))
    fields = {
        "family": socket.AF_INET,
        "dst_len": rule.dst.prefixlen if rule.dst is not None else 0,
        "src_len": rule.src.prefixlen if rule.src is not None else 0,
        "table": table,
        "action": RULE_ACTIONS[rule.action],
        "flags": FIB_RULE_INVERT if rule.invert else 0,
    }
    if isinstance(op, RuleAdd):
        return _message(fibmsg(), RTM_NEWRULE, CREATE, fields, attrs)
    return _message(fibmsg(), RTM_DELRULE, 0, fields, attrs)


def _neighbour(op: NeighbourReplace) -> nlmsg:
    n = op.neighbour
    fields = {"family": socket.AF_INET, "ifindex": op.ifindex, "state": NUD_STATES[n.state]}
    attrs = [("NDA_DST", str(n.dst)), ("NDA_LLADDR", n.lladdr)]
    return _message(ndmsg(), RTM_NEWNEIGH, REPLACE, fields, attrs)


def _qdisc(op: QdiscReplace) -> nlmsg:
    fields = {"index": op.link.ifindex, "parent": TC_H_ROOT}
    return _message(tcmsg(), RTM_NEWQDISC, REPLACE, fields, [("TCA_KIND", op.link.qdisc)])


def requests(op: Op) -> list[nlmsg]:
    """The rtnetlink request `ip`/`tc` sends for `op.ip_line()` (for `LinkUp` of a link with a
    carrier, followed by the RTM_GETLINK of `_link_sync`), without sequence number or ACK."""
    if isinstance(op, LinkUp):
        if op.link.kind == "loopback":  # lo has no carrier to wait for
            return [_link_up(op)]
        return [_link_up(op), _link_sync(op)]
    if isinstance(op, LinkAddrGenNone):
        return [_addrgen_none(op)]
    if isinstance(op, AddressAdd):
        return [_address(op)]
    if isinstance(op, RouteAdd):
        return [_route_add(op)]
    if isinstance(op, KernelRouteDelete):
        return [_route_delete(op)]
    if isinstance(op, RuleAdd | RuleDelete):
        return [_rule(op)]
    if isinstance(op, NeighbourReplace):
        return [_neighbour(op)]
    return [_qdisc(op)]


@functools.lru_cache(maxsize=4096)
def encode(op: Op, seq: int, *, ack: bool = False) -> bytes:
    """`requests(op)` as bytes, numbered `seq`; with `ack`, the last asks for an ACK.

    Cached: the bytes depend on nothing else, and pyroute2 takes about 50 µs of Python to encode
    a message, more than the kernel takes to carry most of them out. Every pod brings up its
    `lo` and adds its two routes at the same place in its list, so on the benchmark a third of
    the requests are ones already encoded."""
    messages = requests(op)
    data = bytearray()
    for number, message in enumerate(messages, start=1):
        message["header"]["sequence_number"] = seq
        if ack and number == len(messages):
            message["header"]["flags"] |= NLM_F_ACK
        message.encode()
        data += message.data
    return bytes(data)


# --- sending ------------------------------------------------------------------------------------


def _socket() -> socket.socket:
    """A NETLINK_ROUTE socket in the calling thread's namespace whose error answers carry the
    kernel's extended-ack message (and, as pyroute2's decoder expects, the whole request)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    sock.bind((0, 0))
    return sock


def _answers(sock: socket.socket, marshal: Marshal) -> Iterator[nlmsg]:
    """Every message the kernel sends back, decoded by `marshal`, one datagram at a time."""
    while True:
        yield from marshal.parse(sock.recv(1 << 16))


def apply(ops: Sequence[Op], netns: str) -> None:
    """Send every operation, in order, in the calling thread's namespace (named `netns` for
    messages), `BATCH` at a time. Only the last of a batch asks for an ACK: the kernel answers
    every failure anyway, so one round trip covers the batch, and a batch's answers (each
    `_link_sync` gets a whole link back) stay well within the socket's receive buffer. The
    first failure raises.

    The answers are read with pyroute2's generic `Marshal`, which decodes an error answer in
    full and only the header of anything else (the links `_link_sync` gets back are not read)."""
    failures: list[tuple[int, int, str]] = []
    marshal = Marshal()
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
                for answer in _answers(sock, marshal):
                    if answer["header"]["type"] != NLMSG_ERROR:
                        continue
                    seq = answer["header"]["sequence_number"]
                    if answer["error"]:
                        message = answer.get_attr("NLMSGERR_ATTR_MSG") or ""
                        failures.append((seq, -answer["error"], message))
                    if seq == last:
                        break
    except OSError as error:
        raise LabError(f"{netns}: rtnetlink: {error.strerror or error}") from None
    if failures:
        seq, code, message = failures[0]
        detail = f": {message}" if message else ""
        raise LabError(
            f"{netns}: {ops[seq - 1].ip_line()}: {os.strerror(code)}{detail}"
            + (f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else "")
        )


# --- reading ------------------------------------------------------------------------------------


def tentative_addresses() -> int:
    """How many IPv6 addresses of the calling thread's namespace are still `tentative` (duplicate
    address detection running): `ip -6 addr show tentative`, counted."""
    request = _message(ifaddrmsg(), RTM_GETADDR, NLM_F_DUMP, {"family": socket.AF_INET6}, [])
    request["header"]["sequence_number"] = 1
    request.encode()
    count = 0
    with _socket() as sock:
        sock.sendall(request.data)
        for answer in _answers(sock, MarshalRtnl()):
            kind = answer["header"]["type"]
            if kind == NLMSG_DONE:
                break
            if kind == NLMSG_ERROR:
                code = -answer["error"] or errno.EIO
                raise LabError(f"dumping IPv6 addresses: {os.strerror(code)}")
            if kind == RTM_NEWADDR and answer.get("IFA_FLAGS", answer["flags"]) & IFA_F_TENTATIVE:
                count += 1
    return count
