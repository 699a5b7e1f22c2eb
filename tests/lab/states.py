"""Data-plane states for the verifier's own tests: the demo with a few rules added.

A verifier test needs walks the demo alone does not have (a load-balanced split before the
Services issue lands); the lab and the simulator both get the same modified state, so the test
is still one state, two executors.
"""

from __future__ import annotations

from dataclasses import replace

from eksnet.dataplane.state import DataplaneState

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"

SPLIT_VIP = "10.100.200.10"
SPLIT_RULES = (
    f"-A PREROUTING -d {SPLIT_VIP}/32 -p tcp -m tcp --dport 80 -m statistic --mode random "
    "--probability 0.50000000000 -j DNAT --to-destination 192.168.1.71:80",
    f"-A PREROUTING -d {SPLIT_VIP}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination "
    "192.168.1.81:80",
)
"""Half the connections to the VIP go to pod 71, the other half to pod 81: kube-proxy's shape
(a `statistic` draw, then the last endpoint), in front of the VPC CNI's nat rules."""


def with_rules(
    state: DataplaneState, namespace: str, table: str, rules: tuple[str, ...]
) -> DataplaneState:
    """`state` with `rules` (`-A …` lines) placed first in `table` of `namespace`."""
    changed = []
    for item in state.namespaces:
        if item.name == namespace:
            assert item.iptables is not None
            lines = item.iptables.save.splitlines()
            start = lines.index(f"*{table}")
            end = next(
                i
                for i in range(start, len(lines))
                if lines[i].startswith("-A") or lines[i] == "COMMIT"
            )
            lines[end:end] = list(rules)
            item = replace(item, iptables=replace(item.iptables, save="\n".join(lines) + "\n"))
        changed.append(item)
    return replace(state, namespaces=tuple(changed))


def split_state(state: DataplaneState) -> DataplaneState:
    return with_rules(state, NODE_1, "nat", SPLIT_RULES)


NODE_3 = "ip-192-168-2-90.eu-west-2.compute.internal"


def with_sysctl(state: DataplaneState, namespace: str, key: str, value: str) -> DataplaneState:
    """`state` with one more sysctl written last in `namespace`."""
    changed = tuple(
        replace(item, sysctls=(*item.sysctls, (key, value))) if item.name == namespace else item
        for item in state.namespaces
    )
    return replace(state, namespaces=changed)


def loose_state(state: DataplaneState) -> DataplaneState:
    """Node 3 with loose rp_filter on eth1: a packet to its eth1 address from another subnet
    gets in, and the answer, routed out of eth0 by the main table with eth1's address as its
    source, meets the VPC's source/destination check (the check is what decides this walk)."""
    return with_sysctl(state, NODE_3, "net.ipv4.conf.eth1.rp_filter", "2")


MARK_RULES = ("-A PREROUTING -i eni+ -j MARK --set-xmark 0x4000/0x4000",)
"""A mark bit outside the VPC CNI's 0x80, set on every packet from a pod before M2 restores
0x80: traffic to the internet then carries mark 0x4080, which only a masked compare of
`fwmark 0x80/0x80` (rule 1024) matches."""


def marked_state(state: DataplaneState) -> DataplaneState:
    return with_rules(state, NODE_1, "mangle", MARK_RULES)


UNSERVED_VIP = "10.100.200.99"
REJECT_RULES = (
    f"-A FORWARD -d {UNSERVED_VIP}/32 -p tcp -m comment --comment "
    '"default/gone has no endpoints" -m tcp --dport 80 -j REJECT --reject-with '
    "icmp-port-unreachable",
)
"""kube-proxy's shape for a ClusterIP without endpoints (its filter KUBE-SERVICES rule, here
straight in FORWARD): the client's SYN is answered with an ICMP port unreachable."""


def reject_state(state: DataplaneState) -> DataplaneState:
    return with_rules(state, NODE_1, "filter", REJECT_RULES)
