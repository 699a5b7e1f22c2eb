"""kubelet's own iptables rules (1.28+, `pkg/kubelet/kubelet_network_linux.go`, kube-proxy.md §1.1).

Since `IPTablesOwnershipCleanup` kubelet writes only three things: the empty mangle chain
`KUBE-IPTABLES-HINT` (it tells `iptables-wrapper` which back end kubelet used), the canary
`KUBE-KUBELET-CANARY` in mangle, nat and filter (kubelet re-creates its rules when it vanishes),
and for IPv4 the `KUBE-FIREWALL` chain with the localnet DROP rule, jumped to from INPUT and
OUTPUT (each jump inserted at the top if absent). kubelet starts before kube-proxy on a node, so
kube-proxy's later insertions land above its jumps.

The order of these calls decides which table legacy iptables creates first (and so prints last):
the hint (mangle), the canaries (mangle, nat, filter), then KUBE-FIREWALL [inf: kubelet runs its
canary monitor and its rule sync concurrently; the hint always comes first].
"""

from __future__ import annotations

from eksnet.controllers.iptables_text import Tables, XRule
from eksnet.controllers.kube_proxy import KUBE_FIREWALL, LOCALNET_RULE

KUBE_IPTABLES_HINT = "KUBE-IPTABLES-HINT"
KUBE_KUBELET_CANARY = "KUBE-KUBELET-CANARY"


def apply(tables: Tables) -> None:
    """kubelet's rules on a fresh node's tables."""
    tables.declare("mangle", KUBE_IPTABLES_HINT)
    for table in ("mangle", "nat", "filter"):
        tables.declare(table, KUBE_KUBELET_CANARY)
    tables.declare("filter", KUBE_FIREWALL)
    tables.ensure_last("filter", LOCALNET_RULE)
    for chain in ("OUTPUT", "INPUT"):
        tables.ensure_first("filter", XRule(chain, (), KUBE_FIREWALL).text())
