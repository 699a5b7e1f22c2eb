"""`eksnet exec NS -- CMD...`: run a Linux command line against the simulated state.

`execute` answers a command line the way the real tool would, as the whole outcome a shell sees:
stdout, stderr and exit status. `run_command` is the same for callers that only want stdout (the
tour's views): a failing command raises `CommandFailed` with the tool's stderr and status.

The command forms are those the views in `eksnet.render.linux` render, spelled the way the real
tools accept them. `ip` objects and verbs may be abbreviated exactly as iproute2 6.1 allows: a
word selects the first keyword of iproute2's own table that it is a prefix of, so `ip a`,
`ip ro sh`, `ip ru l` work, while `ip link s` is `ip link set` (not supported) just as on a real
host. `ip -batch FILE` (or `-` for stdin) runs one `ip` command per line on the same state, as
`ip -batch` does (see `ip_batch`).

Two kinds of failure are kept apart. A command the real tool refuses (an unknown device, table,
key or option, a malformed address) fails with that tool's own stderr and exit status, measured
on iproute2 6.1, procps-ng 4.0.2 and iptables 1.8.9: never an `eksnet:` line, because a user
comparing with a real node must see what the node prints. A command the real tool would answer
but eksnet does not render raises `UnsupportedCommand`, which names what is supported.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eksnet.dataplane.state import TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, DataplaneState, Namespace
from eksnet.errors import CommandFailed, UnsupportedCommand
from eksnet.render.route_get import AddressFamily, IpExit, get_prefix, incomplete, ip_route_get

if TYPE_CHECKING:
    from eksnet.render.linux.route import TableSelector

SUPPORTED = (
    "ip addr|a|address [show [dev] DEV]",
    "ip link [show [DEV]]",
    "ip route|r [show] [table N|main|local|all]",
    "ip route get …",
    "ip rule|ru [show|list]",
    "ip neigh|n [show]",
    "ip [-force] -batch FILE|-",
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

IP_HELP_NAMES = {
    "address": "ip address",
    "link": "ip link",
    "route": "ip route",
    "rule": "ip rule",
    "neighbor": "ip neigh",
}
"""How each object's `Command "X" is unknown, try "… help".` names it."""

IP_OPTIONS = (
    "-loops", "-family", "-4", "-6", "-0", "-M", "-B", "-human", "-human-readable", "-iec",
    "-stats", "-statistics", "-details", "-resolve", "-oneline", "-timestamp", "-tshort",
    "-Version", "-force", "-batch", "-brief", "-json", "-pretty", "-rcvbuf", "-color", "-help",
    "-netns", "-Numeric", "-all", "-echo",
)  # fmt: skip
"""`ip`'s global options in the order iproute2 6.1's `main()` tests them (the order decides
abbreviations: `-b` is `-batch`, `-br` `-brief`, `-f` `-family`, `-fo` `-force`)."""
IP_EXACT_OPTIONS = frozenset({"-4", "-6", "-0", "-M", "-B", "-echo"})
"""Options `main()` compares with `strcmp`: no abbreviation."""

IP_USAGE = """\
Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }
       ip [ -force ] -batch filename
where  OBJECT := { address | addrlabel | amt | fou | help | ila | ioam | l2tp |
                   link | macsec | maddress | monitor | mptcp | mroute | mrule |
                   neighbor | neighbour | netconf | netns | nexthop | ntable |
                   ntbl | route | rule | sr | tap | tcpmetrics |
                   token | tunnel | tuntap | vrf | xfrm }
       OPTIONS := { -V[ersion] | -s[tatistics] | -d[etails] | -r[esolve] |
                    -h[uman-readable] | -iec | -j[son] | -p[retty] |
                    -f[amily] { inet | inet6 | mpls | bridge | link } |
                    -4 | -6 | -M | -B | -0 |
                    -l[oops] { maximum-addr-flush-attempts } | -br[ief] |
                    -o[neline] | -t[imestamp] | -ts[hort] | -b[atch] [filename] |
                    -rc[vbuf] [size] | -n[etns] name | -N[umeric] | -a[ll] |
                    -c[olor]}"""
"""What `ip`, `ip help` and `ip -batch` (no file) print on stderr, exit status 255 [meas 6.1]."""

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

IPTABLES_SAVE_SHORT = {"b": False, "c": False, "d": False, "t": True, "M": True, "f": True,
                       "V": False}  # fmt: skip
"""iptables-save 1.8.9's `getopt` string `bcdt:M:f:V`: each option and whether it takes a value."""
IPTABLES_SAVE_LONG = {"counters": "c", "version": "V", "dump": "d", "table": "t",
                      "modprobe": "M", "file": "f"}  # fmt: skip
IPTABLES_SAVE_HINT = "Look at manual page `iptables-save.8' for more information."

ReadInput = Callable[[str], str]
"""Reads `ip -batch`'s input: `-` is stdin, anything else a file name; raises `OSError`."""


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """What one command line printed and its exit status, as a shell sees them."""

    stdout: str
    stderr: str = ""
    status: int = 0


def unsupported(argv: Sequence[str], where: str = "") -> UnsupportedCommand:
    asked = shlex.join(argv) if argv else "(nothing)"
    return UnsupportedCommand(f"eksnet exec supports: {', '.join(SUPPORTED)}; not: {asked}{where}")


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
        # `invarg("table id value is invalid\n", …)`: the message's own newline makes the
        # blank line `ip` prints after it.
        raise IpExit(f'Error: argument "{word}" is wrong: table id value is invalid\n', 255)
    return "all" if table == 0 else table


class _Words:
    """The arguments of one `ip` command, read left to right as iproute2's `NEXT_ARG` does."""

    def __init__(self, words: Sequence[str]) -> None:
        self.rest = list(words)

    def __bool__(self) -> bool:
        return bool(self.rest)

    def next(self) -> str:
        return self.rest.pop(0)

    def value(self) -> str:
        """The keyword's value; none left is `Command line is not complete` (exit 255)."""
        if not self.rest:
            raise incomplete()
        return self.rest.pop(0)


def no_such_device(name: str) -> CommandFailed:
    """`nodev()`: a filter naming a device the namespace does not have (returned, status 1)."""
    return CommandFailed(f'Cannot find device "{name}"', 1)


def device_argument(args: Sequence[str], argv: Sequence[str]) -> str | None:
    """The one device of `ip addr show [dev] DEV` / `ip link show [dev] DEV`, if any."""
    device: str | None = None
    words = _Words(args)
    while words:
        word = words.next()
        if word == "dev":
            word = words.value()
        elif word in ADDRESS_FILTERS:
            raise unsupported(argv)
        if device is not None:
            raise IpExit(f'Error: either "dev" is duplicate, or "{word}" is a garbage.', 255)
        device = word
    return device


def route_show(ns: Namespace, args: Sequence[str], argv: Sequence[str], *, batch: bool) -> str:
    """`ip route show [table T]`, reading every filter `iproute_list_flush_or_save` reads so that
    a malformed one fails as it does; a well-formed filter other than `table` is not rendered.

    In a batch, `ip` does not ask for a strict dump, so the kernel ignores the table and `ip`
    filters the dump itself: a table that does not exist prints nothing instead of failing."""
    table: TableSelector = TABLE_MAIN
    filtered = False
    devices: dict[str, str] = {}
    words = _Words(args)
    while words:
        word = words.next()
        if matches(word, "table"):
            value = words.value()
            if value in ("cache", "help"):
                raise unsupported(argv)
            table = table_selector(value)
        elif any(matches(word, k) for k in ("vrf", "protocol", "scope", "type", "realms")):
            words.value()
            filtered = True
        elif matches(word, "cached") or matches(word, "cloned"):
            filtered = True
        elif word in ("tos", "mark", "preference") or any(
            matches(word, k) for k in ("dsfield", "metric", "priority")
        ):
            words.value()
            filtered = True
        elif word in ("dev", "oif", "iif"):
            devices["iif" if word == "iif" else "oif"] = words.value()
        elif word in ("via", "src"):
            value = words.value()
            if word == "via" and value in ("inet", "inet6", "ipv4", "ipv6", "link", "mpls"):
                value = words.value()
            get_prefix(value, "unspec")
            filtered = True
        else:
            if matches(word, "from") or matches(word, "to"):
                word = words.value()
            if any(matches(word, k) for k in ("root", "match", "exact")):
                word = words.value()
            get_prefix(word, "unspec")
            filtered = True
    for dev in (devices.get("iif"), devices.get("oif")):
        if dev is not None and dev not in {link.name for link in ns.links}:
            raise no_such_device(dev)
    if filtered or devices:
        raise unsupported(argv)
    from eksnet.render.linux.route import ip_route, ipv4_tables

    if batch and table != "all" and table not in ipv4_tables(ns):
        return ""
    return ip_route(ns, table)


def rule_show(ns: Namespace, args: Sequence[str], argv: Sequence[str]) -> str:
    """`ip rule show`; its filters (`iprule_list_flush_or_save`) are read, not rendered. Rules
    are IPv4 here, so a malformed address is not an `inet` prefix."""
    words = _Words(args)
    filtered = False
    exact = ("tos", "fwmark", "dev", "iif", "oif", "uidrange", "ipproto", "sport", "dport")
    abbreviable = ("preference", "order", "priority", "tun_id", "lookup", "table", "protocol")
    while words:
        word = words.next()
        filtered = True
        if word in ("not", "l3mdev"):
            continue
        if word in exact or any(matches(word, k) for k in abbreviable):
            words.value()
        elif matches(word, "from") or matches(word, "src"):
            get_prefix(words.value(), "inet")
        else:
            if matches(word, "dst") or matches(word, "to"):
                word = words.value()
            get_prefix(word, "inet")
    if filtered:
        raise unsupported(argv)
    from eksnet.render.linux.rule import ip_rule

    return ip_rule(ns)


def neigh_show(ns: Namespace, args: Sequence[str], argv: Sequence[str]) -> str:
    """`ip neigh show`; its filters (`do_show_or_flush`) are read, not rendered."""
    words = _Words(args)
    dev: str | None = None
    family: AddressFamily = "unspec"
    while words:
        word = words.next()
        if word == "dev":
            value = words.value()
            if dev is not None:
                raise IpExit(f'Error: duplicate "dev": "{value}" is the second value.', 255)
            dev = value
        elif word in ("master", "vrf", "nud") or matches(word, "protocol"):
            words.value()
        elif word in ("unused", "proxy"):
            pass
        else:
            if word == "to":
                word = words.value()
            if matches(word, "help"):
                raise unsupported(argv)
            prefix = get_prefix(word, family)
            family = prefix.family if family == "unspec" else family
    if dev is not None and dev not in {link.name for link in ns.links}:
        raise no_such_device(dev)
    if args:
        raise unsupported(argv)
    from eksnet.render.linux.neigh import ip_neigh

    return ip_neigh(ns)


def ip_object(
    ns: Namespace, words: Sequence[str], argv: Sequence[str], *, batch: bool = False
) -> str:
    """`OBJECT [VERB [ARGS]]`: what `ip` does after its options (`do_cmd`), also for one line
    of a batch. `argv` is the command line as the user wrote it, for messages."""
    obj = first_match(words[0], IP_OBJECTS)
    if obj is None:
        raise CommandFailed(f'Object "{words[0]}" is unknown, try "ip help".', 1)
    if obj == "help":
        raise IpExit(IP_USAGE, 255)
    obj = "neighbor" if obj == "neighbour" else obj
    if obj not in IP_VERBS:
        raise unsupported(argv)
    verb = "show" if len(words) == 1 else first_match(words[1], IP_VERBS[obj])
    if verb is None:
        help_name = IP_HELP_NAMES[obj]
        raise IpExit(f'Command "{words[1]}" is unknown, try "{help_name} help".', 255)
    args = words[2:]
    if obj == "route" and verb == "get":
        return ip_route_get(ns, args)
    if verb not in SHOW_VERBS:
        raise unsupported(argv)
    if obj in ("address", "link"):
        from eksnet.render.linux.address import ip_address, ip_link

        show = ip_address if obj == "address" else ip_link
        return show(ns, device_argument(args, argv))
    if obj == "route":
        return route_show(ns, args, argv, batch=batch)
    if obj == "rule":
        return rule_show(ns, args, argv)
    return neigh_show(ns, args, argv)


@dataclass(frozen=True, slots=True)
class IpOptions:
    """`ip`'s global options, as far as eksnet renders them, and the words after them."""

    words: list[str]
    batch: str | None = None
    force: bool = False


def ip_option(word: str) -> str | None:
    """The global option a word selects (`--x` is `-x`), as iproute2's `main()` tests them."""
    option = word[1:] if word.startswith("--") else word
    for name in IP_OPTIONS:
        if name in IP_EXACT_OPTIONS:
            if option == name:
                return name
        elif matches(option.partition("=")[0] if name == "-color" else option, name):
            return name
    return None


def ip_options(argv: Sequence[str]) -> IpOptions:
    """Read `ip`'s global options: `-force` and `-batch FILE` are rendered, an unknown option
    fails as `ip` fails, any other is not rendered."""
    words = list(argv[1:])
    batch: str | None = None
    force = False
    while words and words[0].startswith("-"):
        word = words.pop(0)
        if word == "--":
            break
        option = ip_option(word)
        if option is None:
            shown = word[1:] if word.startswith("--") else word
            raise IpExit(f'Option "{shown}" is unknown, try "ip -help".', 255)
        if option == "-force":
            force = True
        elif option == "-batch":
            if not words:
                raise IpExit(IP_USAGE, 255)
            batch = words.pop(0)
        elif option == "-help":
            raise IpExit(IP_USAGE, 255)
        else:
            raise unsupported(argv)
    return IpOptions(words, batch, force)


def ip_command(ns: Namespace, argv: Sequence[str]) -> str:
    """`ip [OPTIONS] OBJECT [VERB [ARGS]]` (a batch needs its input: see `execute`)."""
    options = ip_options(argv)
    if options.batch is not None:
        raise unsupported(argv)
    if not options.words:
        raise IpExit(IP_USAGE, 255)
    return ip_object(ns, options.words, argv)


@dataclass(frozen=True, slots=True)
class BatchEnd:
    """The end of a batch before its input ends: what `ip` prints, and the status it exits with
    (None: it stops reading, as at the end of the input)."""

    stderr: str
    status: int | None


def batch_words(line: str) -> list[str] | BatchEnd:
    """iproute2's `makeargs`: words split at blanks, a word opened by `'` or `"` runs to the
    same quote; an unclosed quote makes `ip` exit with status 1."""
    blanks = " \t\r\n"
    words: list[str] = []
    index = 0
    while index < len(line):
        while index < len(line) and line[index] in blanks:
            index += 1
        if index >= len(line):
            break
        if line[index] in "'\"":
            end = line.find(line[index], index + 1)
            if end < 0:
                return BatchEnd("Unterminated quoted string\n", 1)
            words.append(line[index + 1 : end])
        else:
            end = index
            while end < len(line) and line[end] not in blanks:
                end += 1
            words.append(line[index:end])
        index = end + 1
    return words


def batch_commands(text: str) -> Iterator[tuple[int, list[str]] | BatchEnd]:
    """The commands of a batch, each with the line number `ip` reports for it (iproute2's
    `getcmdline`): `#` starts a comment anywhere on a line, a line ending in a backslash goes
    on on the next one (the number is that of its last line), blank lines are skipped."""
    chunks = text.split("\n")
    lines = [chunk + "\n" for chunk in chunks[:-1]] + ([chunks[-1]] if chunks[-1] else [])

    def cut(line: str) -> str:
        # C strings end at a NUL; the comment runs to the end of the line, newline included.
        return line.partition("\x00")[0].partition("#")[0]

    number = 0
    index = 0
    while index < len(lines):
        line = cut(lines[index])
        index += 1
        number += 1
        while "\\\n" in line:
            if index >= len(lines):
                yield BatchEnd("Missing continuation line\n", None)
                return
            line = line[: line.index("\\\n")] + cut(lines[index])
            index += 1
            number += 1
        words = batch_words(line)
        if isinstance(words, BatchEnd):
            yield words
            return
        if words:
            yield number, words


def ip_batch(ns: Namespace, text: str, name: str, *, force: bool) -> CommandOutput:
    """`ip [-force] -batch NAME` with `text` as its input, answered from one state.

    As iproute2's `do_batch` [meas 6.1]: each line's output in turn; a command that returns a
    failure prints its error and `Command failed NAME:LINE` and ends the batch with status 1
    (with `-force` the batch goes on, and still ends with status 1); a command that makes `ip`
    exit (a malformed argument, an unknown verb, `help`) ends everything with its own status and
    no `Command failed` line, `-force` or not."""
    out: list[str] = []
    err: list[str] = []
    status = 0
    for command in batch_commands(text):
        if isinstance(command, BatchEnd):
            err.append(command.stderr)
            if command.status is not None:
                return CommandOutput("".join(out), "".join(err), command.status)
            break
        number, words = command
        try:
            out.append(ip_object(ns, words, ["ip", *words], batch=True))
        except IpExit as failure:
            err.append(failure.stderr + "\n")
            return CommandOutput("".join(out), "".join(err), failure.exit_code)
        except CommandFailed as failure:
            err.append(f"{failure.stderr}\nCommand failed {name}:{number}\n")
            status = 1
            if not force:
                break
        except UnsupportedCommand as refusal:
            raise UnsupportedCommand(f"{refusal} (ip -batch {name}, line {number})") from None
    return CommandOutput("".join(out), "".join(err), status)


def iptables_save_command(ns: Namespace, argv: Sequence[str]) -> str:
    """`iptables-save [-t TABLE]` (also `--table TABLE`, `--table=TABLE`, `-tTABLE`), its
    options read as glibc's `getopt_long` reads them, so a bad one fails as iptables-save does."""
    program = argv[0]
    options: list[tuple[str, str | None]] = []
    positional: list[str] = []
    words = list(argv[1:])

    def refused(message: str) -> CommandFailed:
        return CommandFailed(f"{program}: {message}\n{IPTABLES_SAVE_HINT}", 1)

    while words:
        word = words.pop(0)
        if word == "--":
            positional += words
            break
        if word.startswith("--"):
            name, equals, value = word[2:].partition("=")
            found = [long for long in IPTABLES_SAVE_LONG if long.startswith(name)]
            if name in IPTABLES_SAVE_LONG:
                found = [name]
            if len(found) != 1:
                raise refused(f"unrecognized option '{word}'")
            short = IPTABLES_SAVE_LONG[found[0]]
            if IPTABLES_SAVE_SHORT[short] and not equals:
                if not words:
                    raise refused(f"option '--{found[0]}' requires an argument")
                value = words.pop(0)
            elif equals and not IPTABLES_SAVE_SHORT[short]:
                raise refused(f"option '--{found[0]}' doesn't allow an argument")
            options.append((short, value if IPTABLES_SAVE_SHORT[short] else None))
        elif word.startswith("-") and word != "-":
            letters = word[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                if letter not in IPTABLES_SAVE_SHORT:
                    raise refused(f"invalid option -- '{letter}'")
                if not IPTABLES_SAVE_SHORT[letter]:
                    options.append((letter, None))
                    continue
                if not letters and not words:
                    raise refused(f"option requires an argument -- '{letter}'")
                options.append((letter, letters or words.pop(0)))
                letters = ""
        else:
            positional.append(word)
    if positional:
        raise CommandFailed("Unknown arguments found on commandline", 1)
    if any(option != "t" for option, _ in options):
        raise unsupported(argv)
    tables = [value for _, value in options]
    from eksnet.render.linux.iptables import iptables_save

    return iptables_save(ns, tables[-1] if tables else None)


def sysctl_command(ns: Namespace, argv: Sequence[str]) -> str:
    """`sysctl [-n] KEY` (reading one key; writes are not commands of a view)."""
    value_only = False
    keys: list[str] = []
    for word in argv[1:]:
        if word in ("-n", "--values"):
            value_only = True
        elif word.startswith("-"):
            raise unsupported(argv)
        else:
            keys.append(word)
    if not keys and value_only:
        message = "sysctl: no variables specified\nTry `sysctl --help' for more information."
        raise CommandFailed(message, 1)
    if len(keys) != 1 or "=" in keys[0]:
        raise unsupported(argv)
    from eksnet.render.linux.sysctl import sysctl_read

    return sysctl_read(ns, keys[0], value_only=value_only)


def run_command(state: DataplaneState, ns: Namespace, argv: Sequence[str]) -> str:
    """What `argv` prints on stdout when run inside `ns`; a failure raises `CommandFailed`.

    `state` is the whole data plane the namespace belongs to; the views supported today need
    only `ns`, but a command is always run in the context of its cluster.
    """
    if not argv:
        raise unsupported(argv)
    tool = argv[0]
    if tool == "ip":
        return ip_command(ns, argv)
    if tool == "arp" and list(argv[1:]) == ["-n"]:
        from eksnet.render.linux.arp import arp_numeric

        return arp_numeric(ns)
    if tool == "iptables-save":
        return iptables_save_command(ns, argv)
    if tool == "sysctl":
        return sysctl_command(ns, argv)
    raise unsupported(argv)


def execute(
    state: DataplaneState,
    ns: Namespace,
    argv: Sequence[str],
    read_input: ReadInput | None = None,
) -> CommandOutput:
    """`argv` run inside `ns`: stdout, stderr and exit status, exactly as on a real host.

    `read_input` gives `ip -batch` its input (the core does no I/O of its own); without it a
    batch is not supported. `UnsupportedCommand` and `NotModelled` are eksnet's own answers and
    are raised, not turned into output.
    """
    try:
        if argv and argv[0] == "ip":
            options = ip_options(argv)
            if options.batch is not None:
                if read_input is None:
                    raise unsupported(argv)
                try:
                    text = read_input(options.batch)
                except OSError as error:
                    reason = error.strerror or str(error)
                    message = f'Cannot open file "{options.batch}" for reading: {reason}'
                    return CommandOutput("", message + "\n", 1)
                return ip_batch(ns, text, options.batch, force=options.force)
        return CommandOutput(run_command(state, ns, argv))
    except CommandFailed as failure:
        return CommandOutput("", failure.stderr + "\n", failure.exit_code)
