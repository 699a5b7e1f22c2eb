"""`ip route get`: the arguments iproute2 6.1 accepts, and exactly what it prints.

The lookup itself is `kernel.fib`; this module only does what `ip` does around the kernel's
`RTM_GETROUTE`: parse the words (with iproute2's unique-prefix abbreviations: `f` is `from`,
`fi` is `fibmatch`, `d` is `dsfield`), resolve device names, and print the kernel's answer as
`print_route` would (linux-dataplane.md §2.10). Output lines carry no trailing spaces (the real
`ip` leaves one at the end of each line). Options eksnet does not render become
`UnsupportedCommand`; everything the real `ip` refuses fails with `ip`'s own stderr and exit
status [meas iproute2 6.1]: a bad argument as `IpExit` (iproute2 exits on the spot: a malformed
address is status 1, a bad number or a missing value 255), an unknown device, a missing
destination or the kernel's refusal as `CommandFailed` (the command returns its failure: 1, or
2 for `RTNETLINK answers: …`). The difference shows in `ip -batch` (`eksnet.render.exec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from eksnet.dataplane.state import TABLE_MAIN, Namespace, Route
from eksnet.errors import CommandFailed, UnsupportedCommand
from eksnet.kernel.fib import FibError, FibResult, InputRoute, input_route, output_route
from eksnet.kernel.iproute_text import table_name

_ANY = IPv4Address(0)
_UNRENDERED_KEYWORDS = ("notify", "connected", "vrf", "uid")
"""Keywords iproute2 tests between `oif` and `fibmatch`: accepted by `ip`, not rendered here."""


@dataclass(frozen=True, slots=True)
class RouteGetRequest:
    """The parsed arguments of one `ip route get`."""

    dst: IPv4Address
    src: IPv4Address | None = None
    iif: str | None = None
    oif: str | None = None
    mark: int = 0
    fibmatch: bool = False


def _matches(word: str, keyword: str) -> bool:
    """iproute2's `matches()`: `word` is a non-empty prefix of `keyword`."""
    return bool(word) and keyword.startswith(word)


def _parse_unsigned(text: str) -> int | None:
    """`get_unsigned(..., 0)`: C `strtoul` with base 0 (0x hex, leading 0 octal), 32 bits."""
    digits, base = text, 10
    if text[:2].lower() == "0x":
        digits, base = text[2:], 16
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    try:
        value = int(digits, base) if digits and digits.isalnum() else None
    except ValueError:
        return None
    if value is None or value > 0xFFFFFFFF:
        return None
    return value


class IpExit(CommandFailed):
    """`ip` failing by exiting the process, as iproute2 does for a bad argument (`invarg`,
    `get_prefix`, `incomplete_command`, an unknown verb). In `ip -batch` it ends the batch on the
    spot with its own status, without a `Command failed FILE:LINE` line and even under `-force`;
    a plain `CommandFailed` is a command that returned its failure, which a batch reports and
    `-force` goes past."""


INCOMPLETE = 'Command line is not complete. Try option "help"'
"""`incomplete_command()`: a keyword without its value (exit status 255)."""

AddressFamily = Literal["unspec", "inet", "inet6"]
_VERBOSE: dict[AddressFamily, str] = {"unspec": "any valid", "inet": "inet", "inet6": "inet6"}
"""`family_name_verbose()`, as `get_prefix` names the family it expected."""
_BITS: dict[AddressFamily, int] = {"unspec": 0, "inet": 32, "inet6": 128}
_SPACE = " \t\n\v\f\r"


def incomplete() -> IpExit:
    return IpExit(INCOMPLETE, 255)


@dataclass(frozen=True, slots=True)
class InetPrefix:
    """What iproute2's `get_prefix` read from one word."""

    family: AddressFamily
    address: IPv4Address | IPv6Address | None
    """None for `default`, `all` and `any`."""
    prefixlen: int | None
    """The `/N` written after the address, else None."""


def c_strtoul(text: str) -> tuple[int, int]:
    """C `strtoul(text, &end, 0)`: (value, characters read); 0 characters when there is no
    number. Leading blanks and a sign are read, `0x` is hex, a leading 0 octal, and a value
    that does not fit 64 bits is ULONG_MAX, as glibc does."""
    index = len(text) - len(text.lstrip(_SPACE))
    negative = text[index : index + 1] == "-"
    if text[index : index + 1] in ("+", "-"):
        index += 1
    base, digits = 10, "0123456789"
    if text[index : index + 2].lower() == "0x" and text[index + 2 : index + 3].lower() in set(
        "0123456789abcdef"
    ):
        base, digits = 16, "0123456789abcdefABCDEF"
        index += 2
    elif text[index : index + 1] == "0":
        base, digits = 8, "01234567"
    start = index
    while index < len(text) and text[index] in digits:
        index += 1
    if index == start:
        return 0, 0
    value = min(int(text[start:index], base), 2**64 - 1)
    return ((-value) % 2**64 if negative else value), index


def _ipv4(text: str) -> IPv4Address | None:
    """`get_addr_ipv4`: one to four dot-separated numbers (each `strtoul` base 0, at most 255),
    missing trailing octets zero: `10.1` is 10.1.0.0 and `010.0.0.1` is 8.0.0.1."""
    octets: list[int] = []
    rest = text
    for position in range(4):
        value, used = c_strtoul(rest)
        if used == 0 or value > 255:
            return None
        octets.append(value)
        rest = rest[used:]
        if not rest:
            return IPv4Address(bytes(octets + [0] * (4 - len(octets))))
        if position == 3 or rest[0] != ".":
            return None
        rest = rest[1:]
    return None


def _netmask(text: str) -> int | None:
    """`get_netmask`: a prefix length (`strtoul` base 0, the whole word) or a dotted mask."""
    value, used = c_strtoul(text)
    if used and used == len(text) and value <= 0xFFFFFFFF:
        return value
    mask = _ipv4(text)
    if mask is None:
        return None
    bits = int(mask)
    ones = bin(bits).count("1")
    return ones if bits == (0xFFFFFFFF << (32 - ones)) & 0xFFFFFFFF else None


def get_prefix(text: str, family: AddressFamily) -> InetPrefix:
    """iproute2's `get_prefix(text, family)`: an address with an optional `/LEN`, or fail as
    `ip` does: `Error: any valid prefix is expected rather than "TEXT".` (exit status 1), with
    `inet` instead of `any valid` once the command's family is known."""
    word, slash, length = text.partition("/")
    found: AddressFamily = family
    address: IPv4Address | IPv6Address | None = None
    ok = True
    if word in ("default", "all", "any"):
        ok = not slash
    elif ":" in word:
        found = "inet6"
        try:
            address = IPv6Address(word) if "%" not in word else None
        except ValueError:
            address = None
        ok = family in ("unspec", "inet6") and address is not None
    else:
        found = "inet"
        address = _ipv4(word)
        ok = family in ("unspec", "inet") and address is not None
    prefixlen = _netmask(length) if slash and ok else None
    if slash and (prefixlen is None or prefixlen > _BITS[found]):
        ok = False
    if not ok:
        message = f'Error: {_VERBOSE[family]} prefix is expected rather than "{text}".'
        raise IpExit(message, 1)
    return InetPrefix(found, address, prefixlen)


def _parse_address(
    text: str, family: AddressFamily, *, destination: bool
) -> tuple[IPv4Address, AddressFamily]:
    """An IPv4 address for `to`/`from`, and the command's family after it (the first address
    decides it, so a later malformed one is reported as not an `inet` prefix)."""
    prefix = get_prefix(text, family)
    if prefix.family == "inet6":
        raise UnsupportedCommand(f"ip route get: IPv6 is not modelled ({text})")
    if not isinstance(prefix.address, IPv4Address):
        raise UnsupportedCommand(f"ip route get: {text!r} as an address is not rendered")
    if prefix.prefixlen is not None and (not destination or prefix.prefixlen != 32):
        # `ip` warns that only /32 is supported and looks up the address: not rendered here.
        raise UnsupportedCommand(f"ip route get: a prefix ({text}) is not rendered")
    return prefix.address, "inet"


def parse_route_get(args: Sequence[str]) -> RouteGetRequest:
    """Parse `ip route get` arguments in iproute2 6.1's order of keyword tests.

    Repeated options keep the last value, as the kernel reads the last attribute.
    """
    dst: IPv4Address | None = None
    src: IPv4Address | None = None
    iif: str | None = None
    oif: str | None = None
    mark = 0
    fibmatch = False
    family: AddressFamily = "unspec"
    words = list(args)
    index = 0

    def value() -> str:
        nonlocal index
        index += 1
        if index >= len(words):
            raise incomplete()
        return words[index]

    while index < len(words):
        word = words[index]
        if word == "tos" or _matches(word, "dsfield"):
            raise UnsupportedCommand("ip route get: tos/dsfield is not rendered")
        if _matches(word, "from"):
            src, family = _parse_address(value(), family, destination=False)
        elif _matches(word, "iif"):
            iif = value()
        elif _matches(word, "mark"):
            text = value()
            parsed = _parse_unsigned(text)
            if parsed is None:
                raise IpExit(f'Error: argument "{text}" is wrong: invalid mark value', 255)
            mark = parsed
        elif _matches(word, "oif") or word == "dev":
            oif = value()
        elif any(_matches(word, keyword) for keyword in _UNRENDERED_KEYWORDS):
            raise UnsupportedCommand(f"ip route get: option {word!r} is not rendered")
        elif _matches(word, "fibmatch"):
            fibmatch = True
        elif word in ("as", "sport", "dport") or _matches(word, "ipproto"):
            raise UnsupportedCommand(f"ip route get: option {word!r} is not rendered")
        else:
            if word == "to":
                word = value()
            if _matches(word, "help"):
                raise UnsupportedCommand("ip route get: help is not rendered")
            dst, family = _parse_address(word, family, destination=True)
        index += 1
    if dst is None:
        raise CommandFailed("need at least a destination address", 1)
    return RouteGetRequest(dst, src, iif, oif, mark, fibmatch)


def _mark(mark: int) -> str:
    return f"mark {mark}" if mark < 16 else f"mark {mark:#x}"


def _rtnetlink(message: str) -> CommandFailed:
    return CommandFailed(f"RTNETLINK answers: {message}", 2)


def format_fib_entry(result: FibResult) -> str:
    """The matched FIB entry as `ip route get ... fibmatch` prints it (`ip route show` style)."""
    route: Route = result.route
    words: list[str] = []
    if result.type != "unicast":
        words.append(result.type)
    dst = route.dst
    if dst.prefixlen == 0:
        words.append("default")
    elif dst.prefixlen == 32:
        words.append(str(dst.network_address))
    else:
        words.append(str(dst))
    if route.gateway is not None:
        words.append(f"via {route.gateway}")
    if route.dev is not None:
        words.append(f"dev {route.dev}")
    if result.table and result.table != TABLE_MAIN:
        words.append(f"table {table_name(result.table)}")
    if route.proto != "boot":
        words.append(f"proto {route.proto}")
    if route.scope != "global":
        words.append(f"scope {route.scope}")
    if route.src is not None:
        words.append(f"src {route.src}")
    if route.metric:
        words.append(f"metric {route.metric}")
    return " ".join(words) + "\n"


def _cache_line(flags: list[str], iif: str | None) -> str:
    words = ["    cache"]
    if flags:
        words.append("<" + ",".join(flags) + ">")
    if iif is not None:
        words.append(f"iif {iif}")
    return " ".join(words)


def _first_line(
    result: FibResult, request: RouteGetRequest, *, prefsrc: IPv4Address | None
) -> list[str]:
    words: list[str] = []
    if result.type != "unicast":
        words.append(result.type)
    words.append(str(request.dst))
    if request.src is not None and request.src != _ANY:
        words.append(f"from {request.src}")
    if result.gateway is not None:
        words.append(f"via {result.gateway}")
    words.append(f"dev {result.dev}")
    if result.table and result.table != TABLE_MAIN:
        words.append(f"table {table_name(result.table)}")
    if prefsrc is not None:
        words.append(f"src {prefsrc}")
    if request.mark:
        words.append(_mark(request.mark))
    return words


def _render_input(ns: Namespace, request: RouteGetRequest, iif: str) -> str:
    decided: InputRoute = input_route(
        ns, src=request.src or _ANY, dst=request.dst, iif=iif, mark=request.mark
    )
    if decided.kind == "drop" or not isinstance(decided.fib, FibResult):
        raise _rtnetlink(decided.message or "Invalid argument")
    result = decided.fib
    if request.fibmatch:
        return format_fib_entry(result)
    flags: list[str] = []
    if result.type == "local":
        flags.append("local")
    elif result.type == "broadcast":
        flags += ["local", "brd"]
    if decided.redirect:
        flags.append("redirect")
    first = " ".join(_first_line(result, request, prefsrc=None))
    return f"{first}\n{_cache_line(flags, iif)}\n"


def _render_output(ns: Namespace, request: RouteGetRequest) -> str:
    src = request.src if request.src != _ANY else None
    found: FibResult | FibError = output_route(
        ns, request.dst, src=src, oif=request.oif, mark=request.mark, connect=False
    )
    if isinstance(found, FibError):
        raise _rtnetlink(found.message)
    if request.fibmatch:
        if found.rule is None:
            raise _rtnetlink("No route to host")
        return format_fib_entry(found)
    # The kernel reports the chosen source only when it differs from the one asked for.
    prefsrc = found.prefsrc if src is None else None
    words = _first_line(found, request, prefsrc=prefsrc)
    words.append("uid 0")
    flags: list[str] = []
    if found.type == "broadcast":
        flags += ["local", "brd"]
    elif found.type == "local" or ns.link(found.dev).kind == "loopback":
        flags.append("local")
    return f"{' '.join(words)}\n{_cache_line(flags, None)}\n"


def ip_route_get(ns: Namespace, args: Sequence[str]) -> str:
    """What `ip route get ARGS` prints in namespace `ns` (stdout), or the failure it reports."""
    request = parse_route_get(args)
    names = {link.name for link in ns.links}
    for dev in (request.iif, request.oif):
        if dev is not None and dev not in names:
            raise CommandFailed(f'Cannot find device "{dev}"', 1)
    if request.iif is not None:
        return _render_input(ns, request, request.iif)
    return _render_output(ns, request)
