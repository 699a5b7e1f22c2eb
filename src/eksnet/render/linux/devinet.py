"""The IPv4 addresses of a device in the order the kernel keeps (and `ip addr` prints) them.

Named after `net/ipv4/devinet.c`, which owns that list. Two kernel behaviours matter:

* Bringing `lo` up adds `127.0.0.1/8 scope host` by itself, so a state that leaves it out (it is
  derived, not configured) still shows it; a state that lists it is not shown it twice.
* The list is not in insertion order: a new primary address goes after the last primary whose
  scope is not narrower than its own, and a secondary goes to the end [src devinet.c
  `__inet_insert_ifa`; meas: 10.0.1.5/24, 10.0.1.6/24, 10.9.9.9/32 added in that order print as
  .5, .9.9.9, then `.6 ... secondary`]. The state lists addresses in the order they are added
  (the lab adds them in that order) and says which are secondary.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Interface

from eksnet.dataplane.state import Address, Link, Namespace, Scope

LOOPBACK_ADDRESS = IPv4Interface("127.0.0.1/8")

_SCOPE_NUMBER: dict[Scope, int] = {"global": 0, "link": 253, "host": 254}
"""`rtm_scope` values: a larger number is a narrower scope."""


def loopback_address() -> Address:
    """The address the kernel puts on `lo` when it comes up."""
    return Address(dev="lo", interface=LOOPBACK_ADDRESS, scope="host")


def configured_inet(ns: Namespace, link: Link) -> tuple[Address, ...]:
    """The IPv4 addresses on `link` in insertion order, including the derived loopback one."""
    stated = tuple(a for a in ns.addresses_of(link.name) if a.family == 4)
    if link.kind != "loopback" or not link.up:
        return stated
    if any(a.interface == LOOPBACK_ADDRESS for a in stated):
        return stated
    return (loopback_address(), *stated)


def kernel_order(addresses: Iterable[Address]) -> tuple[Address, ...]:
    """Replay the kernel's insertion of each address into the device's list."""
    placed: list[Address] = []
    for new in addresses:
        if new.secondary:
            placed.append(new)
            continue
        position = 0
        for index, old in enumerate(placed):
            if not old.secondary and _SCOPE_NUMBER[new.scope] <= _SCOPE_NUMBER[old.scope]:
                position = index + 1
        placed.insert(position, new)
    return tuple(placed)


def inet_addresses(ns: Namespace, link: Link) -> tuple[Address, ...]:
    """The IPv4 addresses of `link` as `ip addr` lists them."""
    return kernel_order(configured_inet(ns, link))
