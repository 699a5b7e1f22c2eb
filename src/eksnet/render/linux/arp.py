"""`arp -n` (net-tools) as it prints `/proc/net/arp` [meas, net-tools 2.10 on 6.18].

Fixed-width columns: address 23 + 2 spaces, hardware type 8, hardware address 20, flags 6,
mask 16, then the interface. Flags: `C` complete, `M` permanent (so a PERMANENT entry is `CM`,
the "manual" entry of the talk's pod slide). The header is printed before the first entry only,
so an empty table prints nothing. NOARP entries are not in `/proc/net/arp`. Lines keep the
order of `ip neigh` (see `neigh`).
"""

from __future__ import annotations

from eksnet.dataplane.state import Namespace, Neighbour
from eksnet.render.linux.neigh import shown

HEADER = ("Address", "HWtype", "HWaddress", "Flags", "Mask", "Iface")


def columns(address: str, hwtype: str, hwaddress: str, flags: str, mask: str, iface: str) -> str:
    """One line in net-tools' fixed columns (values longer than a column are cut, as there)."""
    return f"{address:<23.23}  {hwtype:<8.8}{hwaddress:<20.20}{flags:<6.6}{mask:<16.16}{iface}"


def arp_flags(neighbour: Neighbour) -> str:
    """`ATF_COM` for every resolved entry, plus `ATF_PERM` for a permanent one."""
    return "CM" if neighbour.state == "PERMANENT" else "C"


def arp_line(neighbour: Neighbour) -> str:
    return columns(
        str(neighbour.dst), "ether", neighbour.lladdr, arp_flags(neighbour), "", neighbour.dev
    )


def arp_numeric(ns: Namespace) -> str:
    """`arp -n` in `ns`."""
    entries = [arp_line(n) for n in ns.neighbours if shown(n)]
    if not entries:
        return ""
    return "".join(line + "\n" for line in (columns(*HEADER), *entries))
