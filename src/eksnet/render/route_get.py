"""`ip route get`: the arguments iproute2 6.1 accepts, and exactly what it prints.

The lookup itself is `kernel.fib`; this module only does what `ip` does around the kernel's
`RTM_GETROUTE`: parse the words (with iproute2's unique-prefix abbreviations: `f` is `from`,
`fi` is `fibmatch`, `d` is `dsfield`), resolve device names, and print the kernel's answer as
`print_route` would (linux-dataplane.md §2.10). Output lines carry no trailing spaces (the real
`ip` leaves one at the end of each line). Kernel errors become `CommandFailed` with `ip`'s
stderr; options eksnet does not render become `UnsupportedCommand`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address

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


def _parse_address(text: str, *, destination: bool) -> IPv4Address:
    bare = text.removesuffix("/32") if destination else text
    try:
        return IPv4Address(bare)
    except AddressValueError:
        if ":" in text:
            raise UnsupportedCommand(f"ip route get: IPv6 is not modelled ({text})") from None
        if destination:
            message = f'Error: any valid prefix is expected rather than "{text}".'
        else:
            message = f'Error: inet prefix is expected rather than "{text}".'
        raise UnsupportedCommand(message) from None


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
    words = list(args)
    index = 0

    def value() -> str:
        nonlocal index
        index += 1
        if index >= len(words):
            raise UnsupportedCommand('Command line is not complete. Try option "help"')
        return words[index]

    while index < len(words):
        word = words[index]
        if word == "tos" or _matches(word, "dsfield"):
            raise UnsupportedCommand("ip route get: tos/dsfield is not rendered")
        if _matches(word, "from"):
            src = _parse_address(value(), destination=False)
        elif _matches(word, "iif"):
            iif = value()
        elif _matches(word, "mark"):
            text = value()
            parsed = _parse_unsigned(text)
            if parsed is None:
                raise UnsupportedCommand(f'Error: argument "{text}" is wrong: invalid mark value')
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
            dst = _parse_address(word, destination=True)
        index += 1
    if dst is None:
        raise UnsupportedCommand("need at least a destination address")
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
