"""A device's flags and operstate as `ip link` prints them.

The state stores only whether a link is administratively up. `ip link` also prints whether it
has a carrier (`LOWER_UP`, or `NO-CARRIER` when up without one; `kernel/device.py` decides),
the operational state, and `M-DOWN` when the other end of a same-namespace veth is down. All of
it follows from the `up` bits of the two ends of a veth, measured on 6.18 with iproute2 6.1:

    ip link add d1 type veth peer name d2; ip link set d1 up
    4: d1@d2: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> ... state LOWERLAYERDOWN
    3: d2@d1: <BROADCAST,MULTICAST> ... state DOWN

A veth whose peer lives in another namespace is taken to have a carrier when it is up: from one
namespace the state cannot see the other end, and the VPC CNI always brings both ends up.
"""

from __future__ import annotations

from eksnet.dataplane.state import Link, Namespace
from eksnet.kernel.device import has_carrier, same_namespace_peer


def link_flags(ns: Namespace, link: Link) -> str:
    """The `<...>` flag list, in the order iproute2 prints the `IFF_*` bits."""
    words = ["LOOPBACK"] if link.kind == "loopback" else ["BROADCAST", "MULTICAST"]
    if link.up:
        words.append("UP")
        if has_carrier(ns, link):
            words.append("LOWER_UP")
        else:
            words.insert(0, "NO-CARRIER")
    peer = same_namespace_peer(ns, link)
    if peer is not None and not peer.up:
        words.append("M-DOWN")
    return "<" + ",".join(words) + ">"


def operstate(ns: Namespace, link: Link) -> str:
    """RFC 2863 operational state as `ip` prints it; `lo` never reports more than UNKNOWN."""
    if not link.up:
        return "DOWN"
    if link.kind == "loopback":
        return "UNKNOWN"
    return "UP" if has_carrier(ns, link) else "LOWERLAYERDOWN"
