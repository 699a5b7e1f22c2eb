"""What the kernel reports about a device beyond what the state stores: whether it has a carrier.

The state stores only whether a link is administratively up. Whether it has a carrier follows
from the `up` bits of the two ends of a veth, measured on 6.18 with iproute2 6.1:

    ip link add d1 type veth peer name d2; ip link set d1 up
    4: d1@d2: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> ... state LOWERLAYERDOWN
    3: d2@d1: <BROADCAST,MULTICAST> ... state DOWN

A veth whose peer lives in another namespace is taken to have a carrier when it is up: from one
namespace the state cannot see the other end, and the VPC CNI always brings both ends up.
"""

from __future__ import annotations

from eksnet.dataplane.state import Link, Namespace


def same_namespace_peer(ns: Namespace, link: Link) -> Link | None:
    """The other end of a veth when both ends are in `ns` (its `LinkPeer.netns` is `ns.name`).

    iproute2 names such a peer (`d1@d2`) instead of printing its ifindex (`eth0@if39`).
    """
    if link.peer is None or link.peer.netns != ns.name:
        return None
    try:
        return ns.link_by_index(link.peer.ifindex)
    except KeyError:
        return None


def has_carrier(ns: Namespace, link: Link) -> bool:
    """Whether the kernel reports a carrier (`LOWER_UP`): a veth needs both ends up."""
    if not link.up:
        return False
    peer = same_namespace_peer(ns, link)
    return peer is None or peer.up
