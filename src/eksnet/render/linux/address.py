"""`ip address` and `ip link` as iproute2 6.1 prints them [src ipaddress.c; meas on 6.18].

Per link, in ifindex order (the header wrapped here):

    39: eni69e05c2a0e5@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc noqueue state UP
        group default qlen 1000
        link/ether 06:5e:c8:ae:85:be brd ff:ff:ff:ff:ff:ff link-netns cni-04b6218d-...

* `@ifN` names the peer's ifindex when the peer is in another namespace, `@NAME` when it is in
  the same one (then `M-DOWN` if that peer is down).
* `link-netns NAME` when the viewer can name the peer's namespace, `link-netnsid N` when it
  cannot: a pod cannot name the node's root namespace, so it prints `link-netnsid 0` (the first
  id the kernel allocates in the pod for another namespace); `ip -n POD` run from a host where
  the node namespace is named would print `link-netns` instead.
* `ip link` adds `mode DEFAULT` after the state; `ip addr` adds the addresses: IPv4 first (in
  the kernel's list order, see `devinet`), then IPv6 (see `addrconf`), each followed by the
  lifetime line. eksnet addresses are permanent, so lifetimes are always `forever`.
* `qlen N` is printed only when the link has a transmit queue length (`Link.qlen`): it depends
  on the kernel (veths have 1000 on 6.x and none on older ones), so the state says.

An IPv4 address line has no trailing space (it ends with the label), an IPv6 one has one, and
so does a link header without `qlen`; all are kept as iproute2 prints them.
"""

from __future__ import annotations

from collections.abc import Iterable

from eksnet.dataplane.state import Address, Link, Namespace
from eksnet.errors import CommandFailed
from eksnet.kernel.device import same_namespace_peer
from eksnet.render.linux.addrconf import inet6_addresses
from eksnet.render.linux.device import link_flags, operstate
from eksnet.render.linux.devinet import inet_addresses

ETHER_BROADCAST = "ff:ff:ff:ff:ff:ff"
LIFETIMES = "       valid_lft forever preferred_lft forever"


def no_such_device(name: str) -> CommandFailed:
    """How `ip` fails for an unknown device (stderr text, exit status 1)."""
    return CommandFailed(f'Device "{name}" does not exist.', 1)


def selected_links(ns: Namespace, dev: str | None) -> tuple[Link, ...]:
    """All links in ifindex order, or the one named `dev`."""
    if dev is None:
        return tuple(sorted(ns.links, key=lambda link: link.ifindex))
    try:
        return (ns.link(dev),)
    except KeyError:
        raise no_such_device(dev) from None


def ifname(ns: Namespace, link: Link) -> str:
    """`NAME`, `NAME@PEER` (same namespace) or `NAME@ifN` (peer elsewhere)."""
    if link.peer is None:
        return link.name
    if same_namespace_peer(ns, link) is not None:
        return f"{link.name}@{link.peer.name}"
    return f"{link.name}@if{link.peer.ifindex}"


def header_line(ns: Namespace, link: Link, *, show_mode: bool) -> str:
    """`N: NAME: <FLAGS> mtu .. qdisc .. state .. [mode DEFAULT] group default [qlen N]`."""
    words = [
        f"{link.ifindex}:",
        f"{ifname(ns, link)}:",
        link_flags(ns, link),
        f"mtu {link.mtu}",
        f"qdisc {link.qdisc}",
        f"state {operstate(ns, link)}",
    ]
    if show_mode:
        words.append("mode DEFAULT")
    words.append("group default")
    tail = f"qlen {link.qlen}" if link.qlen else ""
    return " ".join(words) + " " + tail


def link_layer_line(ns: Namespace, link: Link) -> str:
    """`link/ether MAC brd ff:..:ff [link-netns NAME | link-netnsid N]` or `link/loopback`."""
    if link.kind == "loopback":
        return f"    link/loopback {link.mac} brd {link.mac}"
    line = f"    link/ether {link.mac} brd {ETHER_BROADCAST}"
    if link.peer is None or same_namespace_peer(ns, link) is not None:
        return line
    if link.peer.netns is not None:
        return f"{line} link-netns {link.peer.netns}"
    return f"{line} link-netnsid {link.peer.netnsid}"


def inet_line(address: Address) -> str:
    """`inet A/L [brd B] scope S [secondary] LABEL`."""
    words = ["inet", f"{address.interface.ip}/{address.interface.network.prefixlen}"]
    if address.broadcast is not None:
        words += ["brd", str(address.broadcast)]
    words += ["scope", address.scope]
    if address.secondary:
        words.append("secondary")
    words.append(address.dev)
    return "    " + " ".join(words)


def inet6_line(address: Address) -> str:
    """`inet6 A/L scope S ` (IPv6 addresses carry no label; the line ends with a space)."""
    ip = address.interface.ip
    return f"    inet6 {ip}/{address.interface.network.prefixlen} scope {address.scope} "


def address_lines(ns: Namespace, link: Link) -> Iterable[str]:
    """Each address of `link` and its lifetime line, IPv4 before IPv6."""
    for address in inet_addresses(ns, link):
        yield inet_line(address)
        yield LIFETIMES
    for address in inet6_addresses(ns, link):
        yield inet6_line(address)
        yield LIFETIMES


def ip_link(ns: Namespace, dev: str | None = None) -> str:
    """`ip link show [DEV]` in `ns`."""
    lines: list[str] = []
    for link in selected_links(ns, dev):
        lines += [header_line(ns, link, show_mode=True), link_layer_line(ns, link)]
    return "".join(line + "\n" for line in lines)


def ip_address(ns: Namespace, dev: str | None = None) -> str:
    """`ip address show [dev DEV]` in `ns`."""
    lines: list[str] = []
    for link in selected_links(ns, dev):
        lines += [header_line(ns, link, show_mode=False), link_layer_line(ns, link)]
        lines += address_lines(ns, link)
    return "".join(line + "\n" for line in lines)
