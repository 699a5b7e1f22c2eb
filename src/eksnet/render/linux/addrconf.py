"""The IPv6 side of a namespace that the kernel builds by itself (`net/ipv6/addrconf.c`).

eksnet models IPv4 clusters, but every namespace still has IPv6 on, and `ip addr` and
`ip route show table all` print what it derives [meas on 6.18, iproute2 6.1]:

* `lo` up: `inet6 ::1/128 scope host` (whether or not the state lists it) and, in table
  local, `local ::1 dev lo`.
* Any other device once it is up *with a carrier*: a `multicast ff00::/8` route in table local
  and, unless the link-local is pinned (`Link.ipv6_addrgen=False`, the lab sets
  `addrgenmode none`) or already listed in the state, the EUI-64 link-local of its MAC. Every
  IPv6 address then brings a `local ADDR` route (table local, metric 0) and its prefix
  (`fe80::/64`, metric 256, table main).
* A device that is down has no IPv6 addresses at all (the kernel drops them on `down`).
* `net.ipv6.conf.{all,DEV}.disable_ipv6 = 1` (the VPC CNI's DISABLE_POD_V6) removes all of it.

Routes of a device without a carrier carry `linkdown`, except `local` ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Interface, IPv6Network
from typing import Literal

from eksnet.dataplane.state import TABLE_LOCAL, TABLE_MAIN, Address, Link, Namespace
from eksnet.kernel.device import has_carrier

LOOPBACK6 = IPv6Interface("::1/128")
MULTICAST6 = IPv6Network("ff00::/8")
PREFIX_ROUTE_METRIC = 256
"""`IP6_RT_PRIO_ADDRCONF`: the metric of the prefix and multicast routes the kernel adds."""

_SRC_SCOPE = {"global": 0xE, "link": 0x2, "host": 0x1}
"""`ipv6_addr_src_scope` of the address classes we meet: the kernel keeps wider scopes first."""


@dataclass(frozen=True, slots=True)
class Route6:
    """One IPv6 route the kernel added by itself (`proto kernel`); never stored in the state."""

    table: int
    dst: IPv6Network
    dev: str
    metric: int
    type: Literal["unicast", "local", "multicast"] = "unicast"
    linkdown: bool = False


def eui64_link_local(mac: str) -> IPv6Interface:
    """`fe80::/64` plus the modified EUI-64 of `mac` (RFC 4291 appendix A: flip the U/L bit)."""
    octets = [int(part, 16) for part in mac.split(":")]
    if len(octets) != 6:
        raise ValueError(f"not a MAC address: {mac}")
    octets[0] ^= 0x02
    identifier = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{identifier[i] << 8 | identifier[i + 1]:x}" for i in range(0, 8, 2)]
    return IPv6Interface("fe80::" + ":".join(groups) + "/64")


def ipv6_disabled(ns: Namespace, dev: str) -> bool:
    """`disable_ipv6` for `dev`: the later of the writes to `all` (which the kernel copies to
    every device) and to `dev` wins; `default` counts only when neither was written."""
    value: str | None = None
    for key, written in ns.sysctls:
        if key in (f"net.ipv6.conf.{dev}.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"):
            value = written
    if value is None:
        value = ns.sysctl("net.ipv6.conf.default.disable_ipv6")
    return value == "1"


def addrconf_active(ns: Namespace, link: Link) -> bool:
    """Whether the kernel has configured IPv6 on `link` (up, carrier, IPv6 not disabled)."""
    return link.up and has_carrier(ns, link) and not ipv6_disabled(ns, link.name)


def inet6_addresses(ns: Namespace, link: Link) -> tuple[Address, ...]:
    """The IPv6 addresses of `link` in the kernel's order: wider scope first, and within one
    scope the newest first (`ipv6_link_dev_addr` inserts before the first address whose scope
    is not wider)."""
    if not link.up or ipv6_disabled(ns, link.name):
        return ()
    stated = [a for a in ns.addresses_of(link.name) if a.family == 6]
    if link.kind == "loopback":
        if not any(a.interface == LOOPBACK6 for a in stated):
            stated.insert(0, Address(dev=link.name, interface=LOOPBACK6, scope="host"))
    elif link.ipv6_addrgen and has_carrier(ns, link) and not any(a.scope == "link" for a in stated):
        stated.append(Address(dev=link.name, interface=eui64_link_local(link.mac), scope="link"))
    newest_first = list(reversed(stated))
    return tuple(sorted(newest_first, key=lambda a: -_SRC_SCOPE[a.scope]))


def routes6(ns: Namespace) -> tuple[Route6, ...]:
    """Every IPv6 route the kernel derived in `ns`, per table in insertion order.

    Devices are taken in ifindex order, the order in which the lab (and the CNI, one pod after
    another) gives them a carrier; the renderer sorts each table into the kernel's dump order.
    """
    routes: list[Route6] = []
    for link in sorted(ns.links, key=lambda link: link.ifindex):
        linkdown = not has_carrier(ns, link)
        addresses = inet6_addresses(ns, link)
        for address in addresses:
            if not isinstance(address.interface, IPv6Interface):
                continue
            host = IPv6Network(address.interface.ip)
            routes.append(Route6(TABLE_LOCAL, host, link.name, 0, "local"))
            prefix = address.interface.network
            if prefix.prefixlen < 128 and not _has_prefix_route(routes, prefix, link.name):
                routes.append(
                    Route6(TABLE_MAIN, prefix, link.name, PREFIX_ROUTE_METRIC, linkdown=linkdown)
                )
        if link.kind != "loopback" and addrconf_active(ns, link):
            routes.append(
                Route6(
                    TABLE_LOCAL,
                    MULTICAST6,
                    link.name,
                    PREFIX_ROUTE_METRIC,
                    "multicast",
                    linkdown=linkdown,
                )
            )
    return tuple(routes)


def _has_prefix_route(routes: list[Route6], prefix: IPv6Network, dev: str) -> bool:
    return any(r.table == TABLE_MAIN and r.dst == prefix and r.dev == dev for r in routes)
