"""`ip route [show] [table N|main|local|all]` as iproute2 6.1 prints it.

Order [meas on 6.18; src fib_trie.c, ip_fib.h]:

* Inside a table the kernel dumps its trie: by destination address, and for one address the
  longer prefix first (`10.0.0.0/16` before `10.0.0.0/8`), then by metric. Routes the kernel
  cannot tell apart keep the state's order (the sort is stable).
* `table all` walks the table hash: buckets by `id mod 256` ascending (2, 44, 253 default,
  254 main, 255 local) and, inside one bucket, the most recently created table first
  (556 before 44 before 300). Tables are taken as created in this order: main, local, then
  each table at its first route in `Namespace.routes`.
* `table all` asks for every family, so after the IPv4 tables come the IPv6 routes the kernel
  derived (see `addrconf`), main before local.

Words [src iproute.c `print_route`]: the type only when not unicast, `default` for 0/0, host
routes without `/32`, then `via`, `dev`, `table` (only in `table all`, never for main),
`proto` unless `boot`, `scope` unless global, `src`, `metric` unless 0, `linkdown` when the
device has no carrier (never on a `local` entry). iproute2 ends every IPv4 line with a space
(kept here); an IPv6 line ends with `pref medium`.

A table that holds no route does not exist in the kernel, except main, and asking for it fails
as `ip` does. (A table whose routes were all deleted still exists in the kernel; the state
cannot tell, so it is reported missing.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from eksnet.dataplane.state import TABLE_LOCAL, TABLE_MAIN, TABLE_NAMES, Namespace, Route
from eksnet.errors import CommandFailed
from eksnet.kernel.fib import local_table
from eksnet.render.linux.addrconf import Route6, routes6
from eksnet.render.linux.device import has_carrier

TableSelector = int | Literal["all"]
"""What `ip route show table X` selects: one table id, or every table of every family."""

NO_SUCH_TABLE = "Error: ipv4: FIB table does not exist.\nDump terminated"
TABLE_HASH_SIZE = 256
"""`FIB_TABLE_HASHSZ` with policy routing compiled in."""


def table_name(table: int) -> str:
    """The name iproute2 prints for a table id (`/etc/iproute2/rt_tables`), else the number."""
    return TABLE_NAMES.get(table, str(table))


def destination(dst: IPv4Network | IPv6Network) -> str:
    """`default` for the zero prefix, a bare address for a host route, else `A/L`."""
    if dst.prefixlen == 0:
        return "default"
    if dst.prefixlen == dst.max_prefixlen:
        return str(dst.network_address)
    return str(dst)


def trie_key(dst: IPv4Network | IPv6Network, metric: int | None) -> tuple[int, int, int]:
    """Sort key of the kernel's dump order inside one table."""
    return (int(dst.network_address), -dst.prefixlen, metric or 0)


def ipv4_tables(ns: Namespace) -> dict[int, tuple[Route, ...]]:
    """Every IPv4 table that exists, in creation order, each with its routes in state order."""
    tables: dict[int, list[Route]] = {TABLE_MAIN: []}
    derived = local_table(ns)
    if derived:
        tables[TABLE_LOCAL] = list(derived)
    for route in ns.routes:
        if route.table == TABLE_LOCAL and route in derived:
            continue
        tables.setdefault(route.table, []).append(route)
    return {table: tuple(routes) for table, routes in tables.items()}


def dump_order(created: Sequence[int]) -> tuple[int, ...]:
    """Table ids in the order a `table all` dump visits them, given their creation order."""
    age = {table: position for position, table in enumerate(created)}
    return tuple(sorted(created, key=lambda t: (t % TABLE_HASH_SIZE, -age[t])))


def route_line(ns: Namespace, route: Route, *, show_table: bool) -> str:
    """One IPv4 route as `ip route` prints it, trailing space included."""
    words: list[str] = []
    if route.type != "unicast":
        words.append(route.type)
    words.append(destination(route.dst))
    if route.gateway is not None:
        words += ["via", str(route.gateway)]
    if route.dev is not None:
        words += ["dev", route.dev]
    if show_table and route.table != TABLE_MAIN:
        words += ["table", table_name(route.table)]
    if route.proto != "boot":
        words += ["proto", route.proto]
    if route.scope != "global":
        words += ["scope", route.scope]
    if route.src is not None:
        words += ["src", str(route.src)]
    if route.metric:
        words += ["metric", str(route.metric)]
    if route.type != "local" and _without_carrier(ns, route.dev):
        words.append("linkdown")
    return " ".join(words) + " "


def route6_line(route: Route6, *, show_table: bool) -> str:
    """One kernel-derived IPv6 route as `ip route show table all` prints it."""
    words: list[str] = []
    if route.type != "unicast":
        words.append(route.type)
    words += [destination(route.dst), "dev", route.dev]
    if show_table and route.table != TABLE_MAIN:
        words += ["table", table_name(route.table)]
    words += ["proto", "kernel", "metric", str(route.metric)]
    if route.linkdown:
        words.append("linkdown")
    words += ["pref", "medium"]
    return " ".join(words)


def ip_route(ns: Namespace, table: TableSelector = TABLE_MAIN) -> str:
    """`ip route show [table X]` in `ns`."""
    if table == "all":
        return _lines(_all_tables(ns))
    tables = ipv4_tables(ns)
    if table not in tables:
        raise CommandFailed(NO_SUCH_TABLE, 2)
    return _lines(route_line(ns, r, show_table=False) for r in _sorted(tables[table]))


def _all_tables(ns: Namespace) -> Iterable[str]:
    tables = ipv4_tables(ns)
    for table in dump_order(list(tables)):
        for route in _sorted(tables[table]):
            yield route_line(ns, route, show_table=True)
    derived = routes6(ns)
    for table in dump_order(list(dict.fromkeys(r.table for r in derived))):
        in_table = [r for r in derived if r.table == table]
        for route6 in sorted(in_table, key=lambda r: trie_key(r.dst, r.metric)):
            yield route6_line(route6, show_table=True)


def _sorted(routes: Iterable[Route]) -> list[Route]:
    return sorted(routes, key=lambda r: trie_key(r.dst, r.metric))


def _without_carrier(ns: Namespace, dev: str | None) -> bool:
    if dev is None:
        return False
    try:
        return not has_carrier(ns, ns.link(dev))
    except KeyError:
        return False


def _lines(lines: Iterable[str]) -> str:
    return "".join(line + "\n" for line in lines)
