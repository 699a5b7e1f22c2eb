"""`eksnet exec NS -- CMD...`: run a Linux command line against the simulated state.

`run_command` accepts the command forms the views in `eksnet.render.linux` render, spelled the
way the real tools accept them, and returns what the tool would print on stdout. `ip`
objects and verbs may be abbreviated exactly as iproute2 6.1 allows: a word selects the first
keyword of iproute2's own table that it is a prefix of, so `ip a`, `ip ro sh`, `ip ru l` work,
while `ip link s` is `ip link set` (not supported) just as on a real host.

Anything else raises `UnsupportedCommand` naming what was asked and what is supported; a
command that fails on a real host (unknown device, missing table) raises `CommandFailed` with
the tool's stderr text and exit status.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from eksnet.dataplane.state import TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, DataplaneState, Namespace
from eksnet.errors import CommandFailed, UnsupportedCommand
from eksnet.render.linux.address import ip_address, ip_link
from eksnet.render.linux.arp import arp_numeric
from eksnet.render.linux.iptables_save import iptables_save
from eksnet.render.linux.neigh import ip_neigh
from eksnet.render.linux.route import TableSelector, ip_route
from eksnet.render.linux.rule import ip_rule
from eksnet.render.linux.sysctl import sysctl_read
from eksnet.render.route_get import ip_route_get

SUPPORTED = (
    "ip addr|a|address [show [dev] DEV]",
    "ip link [show [DEV]]",
    "ip route|r [show] [table N|main|local|all]",
    "ip route get …",
    "ip rule|ru [show|list]",
    "ip neigh|n [show]",
    "arp -n",
    "iptables-save [-t TABLE]",
    "sysctl [-n] KEY",
)

IP_OBJECTS = (
    "address", "addrlabel", "maddress", "route", "rule", "neighbor", "neighbour", "ntable",
    "ntbl", "link", "l2tp", "fou", "ila", "macsec", "tunnel", "tunl", "tuntap", "tap", "token",
    "tcpmetrics", "tcp_metrics", "monitor", "xfrm", "mroute", "mrule", "netns", "netconf",
    "vrf", "sr", "nexthop", "mptcp", "ioam", "help", "stats",
)  # fmt: skip
"""`ip`'s object table in iproute2 6.1's order (`ip/ip.c`): the order decides abbreviations."""

IP_VERBS: dict[str, tuple[str, ...]] = {
    "address": ("add", "change", "chg", "replace", "delete", "list", "show", "lst", "flush",
                "save", "showdump", "restore", "help"),
    "link": ("add", "set", "change", "replace", "delete", "show", "lst", "list", "xstats",
             "afstats", "property", "help"),
    "route": ("add", "change", "chg", "replace", "prepend", "append", "test", "delete", "list",
              "show", "lst", "get", "flush", "save", "restore", "showdump", "help"),
    "rule": ("list", "lst", "show", "save", "restore", "add", "delete", "flush", "help"),
    "neighbor": ("add", "change", "chg", "replace", "delete", "get", "show", "lst", "list",
                 "flush", "help"),
}  # fmt: skip
"""Each object's verbs in the order its `do_ip*` function tests them."""

SHOW_VERBS = frozenset({"show", "list", "lst"})

ADDRESS_FILTERS = frozenset({
    "to", "scope", "up", "label", "dynamic", "permanent", "temporary", "secondary", "primary",
    "tentative", "deprecated", "dadfailed", "home", "nodad", "mngtmpaddr", "noprefixroute",
    "autojoin", "type", "master", "vrf", "nomaster", "proto", "group", "help",
})  # fmt: skip
"""Words `ip addr show` / `ip link show` read as filters, not as a device name."""

TABLE_IDS = {"local": TABLE_LOCAL, "main": TABLE_MAIN, "default": TABLE_DEFAULT, "unspec": 0}
"""`/etc/iproute2/rt_tables` as shipped; `unspec` (0) means every table."""

RT_TABLE_MAX = 0xFFFFFFFF
INCOMPLETE = 'Command line is not complete. Try option "help"'


def unsupported(argv: Sequence[str]) -> UnsupportedCommand:
    asked = shlex.join(argv) if argv else "(nothing)"
    return UnsupportedCommand(f"eksnet exec supports: {', '.join(SUPPORTED)}; not: {asked}")


def matches(word: str, keyword: str) -> bool:
    """iproute2's `matches()`: a non-empty prefix of the keyword."""
    return bool(word) and keyword.startswith(word)


def first_match(word: str, keywords: Sequence[str]) -> str | None:
    """The keyword a (possibly abbreviated) word selects, as iproute2 resolves it."""
    return next((keyword for keyword in keywords if matches(word, keyword)), None)


def strtoul(text: str) -> int | None:
    """C `strtoul(text, &end, 0)` accepting only a whole number: hex `0x..`, octal `0..`."""
    try:
        if text.lower().startswith("0x"):
            return int(text[2:], 16)
        if text.startswith("0") and len(text) > 1:
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


def table_selector(word: str) -> TableSelector:
    """`ip route show table WORD`: a name, a number, or `all` (0 / `unspec` also mean all)."""
    table = TABLE_IDS.get(word)
    if table is None:
        table = strtoul(word)
    if table is None and word == "all":
        return "all"
    if table is None or table > RT_TABLE_MAX:
        raise CommandFailed(f'Error: argument "{word}" is wrong: table id value is invalid', 255)
    return "all" if table == 0 else table


def device_argument(args: Sequence[str], argv: Sequence[str]) -> str | None:
    """The one device of `ip addr show [dev] DEV` / `ip link show [dev] DEV`, if any."""
    device: str | None = None
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "dev":
            if not words:
                raise CommandFailed(INCOMPLETE, 255)
            word = words.pop(0)
        elif word in ADDRESS_FILTERS:
            raise unsupported(argv)
        if device is not None:
            raise CommandFailed(f'Error: either "dev" is duplicate, or "{word}" is a garbage.', 255)
        device = word
    return device


def route_show(ns: Namespace, args: Sequence[str], argv: Sequence[str]) -> str:
    table: TableSelector = TABLE_MAIN
    words = list(args)
    while words:
        word = words.pop(0)
        if not matches(word, "table"):
            raise unsupported(argv)
        if not words:
            raise CommandFailed(INCOMPLETE, 255)
        table = table_selector(words.pop(0))
    return ip_route(ns, table)


def ip_command(ns: Namespace, argv: Sequence[str]) -> str:
    """`ip OBJECT [VERB [ARGS]]`."""
    if len(argv) < 2:
        raise unsupported(argv)
    obj = first_match(argv[1], IP_OBJECTS)
    obj = "neighbor" if obj == "neighbour" else obj
    if obj not in IP_VERBS:
        raise unsupported(argv)
    verb = "show" if len(argv) == 2 else first_match(argv[2], IP_VERBS[obj])
    args = argv[3:]
    if obj == "route" and verb == "get":
        return ip_route_get(ns, args)
    if verb not in SHOW_VERBS:
        raise unsupported(argv)
    if obj == "address":
        return ip_address(ns, device_argument(args, argv))
    if obj == "link":
        return ip_link(ns, device_argument(args, argv))
    if obj == "route":
        return route_show(ns, args, argv)
    if args:
        raise unsupported(argv)
    return ip_rule(ns) if obj == "rule" else ip_neigh(ns)


def iptables_save_command(ns: Namespace, argv: Sequence[str]) -> str:
    """`iptables-save`, `iptables-save -t TABLE` (also `--table TABLE`, `--table=TABLE`)."""
    args = list(argv[1:])
    if not args:
        return iptables_save(ns)
    if len(args) == 2 and args[0] in ("-t", "--table"):
        return iptables_save(ns, args[1])
    if len(args) == 1 and args[0].startswith("--table="):
        return iptables_save(ns, args[0].removeprefix("--table="))
    raise unsupported(argv)


def sysctl_command(ns: Namespace, argv: Sequence[str]) -> str:
    """`sysctl KEY` or `sysctl -n KEY` (reading one key; writes are not commands of a view)."""
    args = list(argv[1:])
    value_only = bool(args) and args[0] == "-n"
    keys = args[1:] if value_only else args
    if len(keys) != 1 or keys[0].startswith("-") or "=" in keys[0]:
        raise unsupported(argv)
    return sysctl_read(ns, keys[0], value_only=value_only)


def run_command(state: DataplaneState, ns: Namespace, argv: Sequence[str]) -> str:
    """What `argv` prints on stdout when run inside `ns`.

    `state` is the whole data plane the namespace belongs to; the views supported today need
    only `ns`, but a command is always run in the context of its cluster.
    """
    if not argv:
        raise unsupported(argv)
    tool = argv[0]
    if tool == "ip":
        return ip_command(ns, argv)
    if tool == "arp" and list(argv[1:]) == ["-n"]:
        return arp_numeric(ns)
    if tool == "iptables-save":
        return iptables_save_command(ns, argv)
    if tool == "sysctl":
        return sysctl_command(ns, argv)
    raise unsupported(argv)
