"""`ip neigh [show]` as iproute2 6.1 prints it [meas on 6.18].

`DST dev D lladdr L STATE` plus a trailing space. Without `nud all` iproute2 hides NOARP
entries. The kernel prints entries in the order of its neighbour hash, whose seed is random
per boot, so with more than one entry the real order cannot be predicted: the state's order is
printed, and a comparison with a real namespace must treat the lines as a set.
"""

from __future__ import annotations

from eksnet.dataplane.state import Namespace, Neighbour


def shown(neighbour: Neighbour) -> bool:
    """Whether `ip neigh` and `arp -n` list the entry (both skip NOARP ones)."""
    return neighbour.state != "NOARP"


def neigh_line(neighbour: Neighbour) -> str:
    """One neighbour entry, trailing space included."""
    return f"{neighbour.dst} dev {neighbour.dev} lladdr {neighbour.lladdr} {neighbour.state} "


def ip_neigh(ns: Namespace) -> str:
    """`ip neigh show` in `ns`."""
    return "".join(neigh_line(n) + "\n" for n in ns.neighbours if shown(n))
