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

Words [src iproute.c `print_route`]: an IPv4 line is `route_line` in `kernel/iproute_text.py`
(the walk quotes it too), ending with a space as iproute2's does; a kernel-derived IPv6 line has
the same words and ends with `pref medium`.

A table that holds no route does not exist in the kernel, except main, and asking for it fails
as `ip` does. (A table whose routes were all deleted still exists in the kernel; the state
cannot tell, so it is reported missing.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from eksnet.dataplane.state import TABLE_LOCAL, TABLE_MAIN, Namespace, Route
from eksnet.errors import CommandFailed
from eksnet.kernel.fib import local_table
from eksnet.kernel.iproute_text import destination, route_line, table_name
from eksnet.render.linux.addrconf import Route6, routes6

TableSelector = int | Literal["all"]
"""What `ip route show table X` selects: one table id, or every table of every family."""

NO_SUCH_TABLE = "Error: ipv4: FIB table does not exist.\nDump terminated"
TABLE_HASH_SIZE = 256
"""`FIB_TABLE_HASHSZ` with policy routing compiled in."""


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


def _lines(lines: Iterable[str]) -> str:
    return "".join(line + "\n" for line in lines)
