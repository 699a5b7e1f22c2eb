"""A namespace's links and addresses from `ip addr`, `ip -j addr` or net-tools' `ifconfig`.

`ip addr` text is the inverse of `render/linux/address.py` (iproute2 6.1): the header
(`N: NAME[@PEER]: <FLAGS> mtu … qdisc … state … group default [qlen N]`), the link-layer line
(`link/ether MAC brd … [link-netns NAME | link-netnsid N]`), then `inet`/`inet6` lines each with
its lifetime line. `ip -j addr` carries the same facts as JSON. What they show but the state
derives is read and not kept: `LOWER_UP`/`NO-CARRIER`/`M-DOWN` and the operstate follow from the
`up` bits (`kernel/device.py`), lifetimes are always `forever` in a state.

What the printed form cannot say, and is therefore assumed (and listed in `LinkDump.assumed`):

* the name of a veth's peer in another namespace: `@ifN` gives only its ifindex, so the peer's
  name is left empty (`LinkPeer.name == ""`);
* whether the kernel generates the IPv6 link-local (`Link.ipv6_addrgen`): taken as off exactly
  when the link shows a link-local address and none of them is the EUI-64 of its MAC.

`ifconfig` (net-tools, the only link view eks-log-collector.sh writes) says much less: no
ifindex (numbered here in printed order), no qdisc, no veth peer (every non-loopback link is
taken for a device), no IPv4 scope (host for 127/8, else global), only the first IPv4 address
of a device, and no secondary flag. Each such guess is listed in `assumed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface, ip_interface
from typing import Any, get_args

from eksnet.dataplane.state import Address, Link, LinkPeer, Scope
from eksnet.errors import InputError
from eksnet.importers._lines import Cursor, ipv4_address, parse_json

SCOPES: frozenset[str] = frozenset(get_args(Scope))
UNKNOWN_PEER = ""
"""`LinkPeer.name` of a peer in another namespace: `ip addr` shows its ifindex only."""

_HEADER = re.compile(r"^(\d+): ([^:@\s]+)(?:@([^:\s]+))?: <([^>]*)> (.*)$")
_LIFETIMES = re.compile(r"^valid_lft \S+ preferred_lft \S+$")


@dataclass(frozen=True, slots=True)
class LinkDump:
    """Links (ifindex order as printed) and their addresses (in the order shown), plus what the
    view could not say and was assumed (one sentence each)."""

    links: tuple[Link, ...]
    addresses: tuple[Address, ...]
    assumed: tuple[str, ...] = ()


# --- ip addr (text) -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    cursor: Cursor
    ifindex: int
    name: str
    peer: str | None
    flags: frozenset[str]
    mtu: int
    qdisc: str
    qlen: int | None
    kind: str = "device"
    mac: str | None = None
    netns: str | None = None
    netnsid: int | None = None


def parse_ip_addr(text: str, source: str, namespace: str) -> LinkDump:
    """`ip addr show` text of the namespace called `namespace` (a peer `NAME@PEER` in the same
    namespace names it) → links and addresses."""
    pending: list[_Pending] = []
    addresses: list[Address] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        cursor = Cursor(source, number)
        if not line.strip():
            continue
        if not line.startswith(" "):
            pending.append(_header(cursor, line))
            continue
        if not pending:
            cursor.fail("an address line before any link header: the text is truncated")
        words = line.split()
        current = pending[-1]
        if words[0].startswith("link/"):
            _link_layer(cursor, current, words)
        elif words[0] == "inet":
            addresses.append(_inet(cursor, current.name, words))
        elif words[0] == "inet6":
            addresses.append(_inet6(cursor, current.name, words))
        elif not _LIFETIMES.match(line.strip()):
            cursor.fail(f"unexpected line in `ip addr`: {line.strip()!r}")
    if pending and pending[-1].mac is None:
        Cursor(source, len(lines)).fail(
            f"link {pending[-1].name} has no link/… line: the text is truncated"
        )
    return _links(pending, tuple(addresses), namespace)


def _header(cursor: Cursor, line: str) -> _Pending:
    match = _HEADER.match(line.strip())
    if match is None:
        cursor.fail(f"not an `ip addr` link header: {line.strip()!r}")
    ifindex, name, peer, flags, rest = match.groups()
    words = rest.split()
    fields: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if index + 1 >= len(words):
            cursor.fail(f"`{word}` without its value: the header is truncated")
        if word not in ("mtu", "qdisc", "state", "mode", "group", "qlen"):
            cursor.fail(f"`{word}` in a link header is not modelled by eksnet")
        fields[word] = words[index + 1]
        index += 2
    if "mtu" not in fields or "qdisc" not in fields:
        cursor.fail("link header without mtu or qdisc: the line is truncated")
    return _Pending(
        cursor=cursor,
        ifindex=int(ifindex),
        name=name,
        peer=peer,
        flags=frozenset(flags.split(",")) if flags else frozenset(),
        mtu=_int(cursor, fields["mtu"]),
        qdisc=fields["qdisc"],
        qlen=_int(cursor, fields["qlen"]) if "qlen" in fields else None,
    )


def _link_layer(cursor: Cursor, link: _Pending, words: Sequence[str]) -> None:
    kind = words[0]
    if kind not in ("link/loopback", "link/ether") or len(words) < 4 or words[2] != "brd":
        cursor.fail(f"link type {kind} (or a truncated link line) is not modelled by eksnet")
    link.kind = "loopback" if kind == "link/loopback" else "device"
    link.mac = words[1]
    tail = list(words[4:])
    if tail[:1] == ["link-netns"] and len(tail) == 2:
        link.netns = tail[1]
    elif tail[:1] == ["link-netnsid"] and len(tail) == 2:
        link.netnsid = _int(cursor, tail[1])
    elif tail:
        cursor.fail(f"`{' '.join(tail)}` after the link address is not modelled by eksnet")


def _inet(cursor: Cursor, dev: str, words: Sequence[str]) -> Address:
    """`inet A/L [brd B] scope S [secondary] LABEL`."""
    if len(words) < 5:
        cursor.fail("`inet` line is truncated")
    interface = _interface(cursor, words[1], IPv4Interface)
    broadcast: IPv4Address | None = None
    index = 2
    if words[index] == "brd":
        broadcast = ipv4_address(cursor, words[index + 1])
        index += 2
    scope = _scope(cursor, words, index)
    index += 2
    secondary = index < len(words) and words[index] == "secondary"
    index += int(secondary)
    if words[index:] != [dev]:
        cursor.fail(
            f"`{' '.join(words[index:])}` where the label {dev} belongs is not modelled by eksnet",
            fix="labels other than the device name, `dynamic` and the like are not modelled",
        )
    return Address(dev, interface, scope, broadcast, secondary)  # type: ignore[arg-type]


def _inet6(cursor: Cursor, dev: str, words: Sequence[str]) -> Address:
    """`inet6 A/L scope S` (no label; flags such as `nodad` are not modelled)."""
    if len(words) != 4:
        cursor.fail(f"`inet6` line is truncated or has flags eksnet does not model: {words}")
    interface = _interface(cursor, words[1], IPv6Interface)
    return Address(dev, interface, _scope(cursor, words, 2))  # type: ignore[arg-type]


def _links(pending: Sequence[_Pending], addresses: tuple[Address, ...], ns: str) -> LinkDump:
    by_name = {item.name: item for item in pending}
    links: list[Link] = []
    for item in pending:
        peer: LinkPeer | None = None
        if item.peer is not None:
            peer = _peer(item, by_name, ns)
        kind = "veth" if peer is not None else item.kind
        link = Link(
            ifindex=item.ifindex,
            name=item.name,
            kind=kind,  # type: ignore[arg-type]
            mac=item.mac or "",
            mtu=item.mtu,
            qdisc=item.qdisc,
            up="UP" in item.flags,
            peer=peer,
            qlen=item.qlen,
        )
        links.append(replace(link, ipv6_addrgen=_addrgen(link, addresses)))
    assumed: tuple[str, ...] = ()
    if any(link.peer is not None and link.peer.name == UNKNOWN_PEER for link in links):
        assumed = ("veth peers in other namespaces: only their ifindex is shown, names unknown",)
    return LinkDump(tuple(links), addresses, assumed)


def _peer(item: _Pending, by_name: Mapping[str, _Pending], ns: str) -> LinkPeer:
    assert item.peer is not None
    if item.peer.startswith("if") and item.peer[2:].isdigit():
        if item.netns is None and item.netnsid is None:
            item.cursor.fail(f"{item.name}@{item.peer} without link-netns or link-netnsid")
        return LinkPeer(int(item.peer[2:]), UNKNOWN_PEER, item.netns, item.netnsid)
    other = by_name.get(item.peer)
    if other is None:
        item.cursor.fail(f"{item.name}'s peer {item.peer} is not listed: the text is truncated")
    return LinkPeer(other.ifindex, other.name, netns=ns)


# --- ip -j addr -----------------------------------------------------------------------------------


def parse_ip_addr_json(text: str, source: str, namespace: str) -> LinkDump:
    """`ip -j addr show` → links and addresses; a peer in the same namespace (`"link"`) is
    named, one elsewhere (`"link_index"` with `"link_netnsid"`/`"link_netns"`) is not."""
    entries = _json_list(text, source)
    links: list[Link] = []
    addresses: list[Address] = []
    by_name = {str(entry.get("ifname")): entry for entry in entries}
    for position, entry in enumerate(entries):
        where = f"entry {position} ({entry.get('ifname', '?')})"
        try:
            link, owned = _json_link(entry, by_name, namespace)
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                f"{where}: {type(error).__name__} {error}: not what `ip -j addr` prints",
                source=source,
            ) from None
        links.append(link)
        addresses += owned
    fixed = tuple(replace(link, ipv6_addrgen=_addrgen(link, addresses)) for link in links)
    assumed: tuple[str, ...] = ()
    if any(link.peer is not None and link.peer.name == UNKNOWN_PEER for link in fixed):
        assumed = ("veth peers in other namespaces: only their ifindex is shown, names unknown",)
    return LinkDump(fixed, tuple(addresses), assumed)


def _json_list(text: str, source: str) -> list[dict[str, Any]]:
    data = parse_json(text, source)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise InputError("`ip -j addr` prints a JSON list of links", source=source, line=1)
    return data


def _json_link(
    entry: Mapping[str, Any], by_name: Mapping[str, Mapping[str, Any]], ns: str
) -> tuple[Link, list[Address]]:
    name = str(entry["ifname"])
    link_type = entry["link_type"]
    if link_type not in ("loopback", "ether"):
        raise ValueError(f"link type {link_type} is not modelled")
    info = entry.get("linkinfo", {}).get("info_kind")
    if info not in (None, "veth"):
        raise ValueError(f"link kind {info} is not modelled")
    peer: LinkPeer | None = None
    if "link" in entry:
        other = by_name[str(entry["link"])]
        peer = LinkPeer(int(other["ifindex"]), str(other["ifname"]), netns=ns)
    elif "link_index" in entry:
        netns = entry.get("link_netns")
        netnsid = entry.get("link_netnsid")
        if netns is None and netnsid is None:
            raise ValueError("link_index without link_netns or link_netnsid")
        peer = LinkPeer(int(entry["link_index"]), UNKNOWN_PEER, netns, netnsid)
    kind = "loopback" if link_type == "loopback" else ("veth" if peer else "device")
    link = Link(
        ifindex=int(entry["ifindex"]),
        name=name,
        kind=kind,  # type: ignore[arg-type]
        mac=str(entry["address"]),
        mtu=int(entry["mtu"]),
        qdisc=str(entry["qdisc"]),
        up="UP" in entry["flags"],
        peer=peer,
        qlen=int(entry["txqlen"]) if entry.get("txqlen") else None,
    )
    owned: list[Address] = []
    for item in entry.get("addr_info", []):
        family = item["family"]
        if family not in ("inet", "inet6"):
            raise ValueError(f"address family {family}")
        scope = str(item["scope"])
        if scope not in SCOPES:
            raise ValueError(f"scope {scope}")
        interface = ip_interface(f"{item['local']}/{item['prefixlen']}")
        broadcast = IPv4Address(item["broadcast"]) if "broadcast" in item else None
        label = item.get("label", name)
        if label != name:
            raise ValueError(f"label {label} other than the device name")
        owned.append(
            Address(name, interface, scope, broadcast, bool(item.get("secondary", False)))  # type: ignore[arg-type]
        )
    return link, owned


# --- ifconfig -------------------------------------------------------------------------------------

_IFCONFIG_HEADER = re.compile(r"^([^\s:]+(?::\d+)?): flags=\d+<([^>]*)>\s+mtu (\d+)$")
IFCONFIG_ASSUMED = (
    "ifconfig shows no ifindex: links are numbered in the order ifconfig prints them",
    "ifconfig shows no qdisc: `noqueue` is assumed",
    "ifconfig shows no veth peer: every link but the loopback is taken for a device",
    "ifconfig shows no IPv4 scope: host for 127.0.0.0/8, global otherwise",
    "ifconfig shows only the first IPv4 address of a device, and no secondary flag",
)


def parse_ifconfig(text: str, source: str) -> LinkDump:
    """`ifconfig` (net-tools 2.x, as eks-log-collector.sh runs it) → links and addresses, with
    `IFCONFIG_ASSUMED` for what it does not show."""
    links: list[Link] = []
    addresses: list[Address] = []
    current: dict[str, Any] | None = None
    lines = text.splitlines()

    def close() -> None:
        if current is None:
            return
        if current.get("mac") is None:
            current["cursor"].fail(
                f"link {current['name']} has no ether/loop line: the text is truncated"
            )
        link = Link(
            ifindex=len(links) + 1,
            name=current["name"],
            kind="loopback" if current["loopback"] else "device",
            mac=current["mac"],
            mtu=current["mtu"],
            up="UP" in current["flags"],
            qlen=current["qlen"] or None,
        )
        links.append(link)

    for number, line in enumerate(lines, start=1):
        cursor = Cursor(source, number)
        if not line.strip():
            continue
        if not line[0].isspace():
            close()
            match = _IFCONFIG_HEADER.match(line.strip())
            if match is None:
                cursor.fail(f"not an ifconfig header: {line.strip()!r}")
            name, flags, mtu = match.groups()
            if ":" in name:
                cursor.fail(f"alias {name} (a labelled address) is not modelled by eksnet")
            current = {
                "cursor": cursor,
                "name": name,
                "flags": frozenset(flags.split(",")),
                "loopback": "LOOPBACK" in flags.split(","),
                "mtu": int(mtu),
                "mac": None,
                "qlen": 0,
            }
            continue
        if current is None:
            cursor.fail("a detail line before any interface header: the text is truncated")
        words = line.split()
        if words[0] == "inet":
            addresses.append(_ifconfig_inet(cursor, current["name"], words))
        elif words[0] == "inet6":
            addresses.append(_ifconfig_inet6(cursor, current["name"], words))
        elif words[0] in ("ether", "loop"):
            current["mac"] = words[1] if words[0] == "ether" else "00:00:00:00:00:00"
            if "txqueuelen" in words:
                current["qlen"] = _int(cursor, _after(cursor, words, "txqueuelen"))
        elif words[0] in ("RX", "TX", "device", "unspec"):
            continue
        else:
            cursor.fail(f"unexpected ifconfig line: {line.strip()!r}")
    close()
    fixed = tuple(replace(link, ipv6_addrgen=_addrgen(link, addresses)) for link in links)
    return LinkDump(fixed, tuple(addresses), IFCONFIG_ASSUMED if links else ())


def _ifconfig_inet(cursor: Cursor, dev: str, words: Sequence[str]) -> Address:
    """`inet A  netmask M  [broadcast B]` (`destination` on point-to-point links)."""
    if len(words) < 4 or words[2] != "netmask":
        cursor.fail("`inet` line is truncated")
    try:
        interface = IPv4Interface(f"{words[1]}/{words[3]}")
    except ValueError:
        cursor.fail(f"{words[1]} netmask {words[3]} is not an IPv4 address and mask")
    broadcast = (
        ipv4_address(cursor, _after(cursor, words, "broadcast")) if "broadcast" in words else None
    )
    scope = "host" if interface.ip.is_loopback else "global"
    return Address(dev, interface, scope, broadcast)  # type: ignore[arg-type]


def _ifconfig_inet6(cursor: Cursor, dev: str, words: Sequence[str]) -> Address:
    """`inet6 A  prefixlen L  scopeid 0xNN<scope>`."""
    prefixlen = _after(cursor, words, "prefixlen")
    scope_word = _after(cursor, words, "scopeid")
    scope = {"global": "global", "link": "link", "host": "host"}.get(
        scope_word.partition("<")[2].rstrip(">"), ""
    )
    if not scope:
        cursor.fail(f"IPv6 scope {scope_word} is not modelled by eksnet")
    interface = _interface(cursor, f"{words[1]}/{prefixlen}", IPv6Interface)
    return Address(dev, interface, scope)  # type: ignore[arg-type]


# --- shared ---------------------------------------------------------------------------------------


def eui64(mac: str) -> IPv6Interface | None:
    """The EUI-64 link-local of `mac` (RFC 4291 appendix A), None for a malformed MAC."""
    try:
        octets = [int(part, 16) for part in mac.split(":")]
    except ValueError:
        return None
    if len(octets) != 6:
        return None
    octets[0] ^= 0x02
    identifier = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{identifier[i] << 8 | identifier[i + 1]:x}" for i in range(0, 8, 2)]
    return IPv6Interface("fe80::" + ":".join(groups) + "/64")


def _addrgen(link: Link, addresses: Sequence[Address]) -> bool:
    """Off when the link shows link-local addresses and none is its MAC's EUI-64 (pinned)."""
    local = [a.interface for a in addresses if a.dev == link.name and a.scope == "link"]
    local6 = [i for i in local if isinstance(i, IPv6Interface)]
    return not local6 or eui64(link.mac) in local6


def _after(cursor: Cursor, words: Sequence[str], key: str) -> str:
    index = list(words).index(key) if key in words else -1
    if index < 0 or index + 1 >= len(words):
        cursor.fail(f"`{key}` without its value: the line is truncated")
    return words[index + 1]


def _scope(cursor: Cursor, words: Sequence[str], index: int) -> str:
    if index + 1 >= len(words) or words[index] != "scope":
        cursor.fail("address line without `scope`: the line is truncated")
    scope = words[index + 1]
    if scope not in SCOPES:
        cursor.fail(f"scope {scope} is not modelled by eksnet")
    return scope


def _interface(cursor: Cursor, text: str, kind: type[IPv4Interface] | type[IPv6Interface]) -> Any:
    try:
        return kind(text)
    except ValueError:
        cursor.fail(f"{text!r} is not an address with a prefix length")


def _int(cursor: Cursor, text: str) -> int:
    if not text.isdigit():
        cursor.fail(f"{text!r} is not a number")
    return int(text)


__all__ = [
    "LinkDump",
    "eui64",
    "parse_ifconfig",
    "parse_ip_addr",
    "parse_ip_addr_json",
]
