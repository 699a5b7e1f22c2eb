"""What a node's dump shows, laid over what the controllers derive for it.

An imported cluster's spec says what the cluster is (nodes, ENIs, pods, Services, the VPC);
from it the controllers derive what every node *should* hold. A dump taken on a node says what
it *does* hold, and for a walk the node's own facts win: the policy rules, the routes of every
table but local (which the kernel derives from the addresses), the neighbours, the sysctls
and the iptables rules the dump shows replace the derived ones, part by part, and only the parts
the dump has. Links and addresses stay derived: the dump's views of them (`ifconfig` without
ifindexes, a veth's peer it cannot name) cannot stand in for the pairs the state wires between
namespaces, so `eksnet check` compares them instead. The state records which parts of which
namespace were observed (`DataplaneState.observed`), so every walk can say which of its facts
came from a dump.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from eksnet.dataplane.state import DataplaneState, Namespace, Observed
from eksnet.errors import InputError
from eksnet.importers.bundle import ObservedNode, Part
from eksnet.importers.iptables_dump import merged
from eksnet.kernel.sysctl import FRESH_CONF, FRESH_OTHER, IP_FORWARD, parse_conf_key

OVERLAID: tuple[Part, ...] = ("rules", "routes", "neighbours", "sysctls", "iptables")
"""The parts a dump replaces, in the order `Observed.parts` lists them."""


def observed_namespace(derived: Namespace, dump: ObservedNode) -> tuple[Namespace, list[str]]:
    """The node's namespace with the dump's parts in place of the derived ones, and what was
    kept derived within a part (tables an iptables dump does not hold)."""
    seen = dump.namespace
    changes: dict[str, object] = {}
    notes: list[str] = []
    if dump.observed("rules"):
        changes["rules"] = seen.rules
    if dump.observed("routes"):
        changes["routes"] = seen.routes
    if dump.observed("neighbours"):
        changes["neighbours"] = seen.neighbours
    if dump.observed("sysctls"):
        changes["sysctls"] = modelled_sysctls(seen.sysctls, derived)
    if dump.observed("iptables") and seen.iptables is not None:
        rules, kept = merged(seen.iptables, derived.iptables, dump.origin)
        changes["iptables"] = rules
        if kept:
            notes.append(
                f"the iptables dump holds no table {', '.join(kept)}: derived by the controllers"
            )
    try:
        return replace(derived, **changes), notes  # type: ignore[arg-type]
    except ValueError as error:
        # a route on a device the node does not have (by the spec): the dump is of another node
        raise InputError(
            f"{error} (node {derived.name} has {', '.join(link.name for link in derived.links)})",
            source=dump.origin,
            fix="check that the dump was taken on this node",
        ) from None


def modelled_sysctls(
    pairs: Sequence[tuple[str, str]], derived: Namespace
) -> tuple[tuple[str, str], ...]:
    """The dumped sysctls the kernel model reads, in an order that replays to the dumped
    values: `all` and `default` first (and `ip_forward`, whose write touches every device),
    then each device's own value (a dump shows every device's effective value)."""
    devices = {link.name for link in derived.links}
    first: list[tuple[str, str]] = []
    last: list[tuple[str, str]] = []
    for key, value in pairs:
        if key == IP_FORWARD or key in FRESH_OTHER:
            first.append((key, value))
            continue
        parsed = parse_conf_key(key)
        if parsed is None or parsed[1] not in FRESH_CONF:
            continue
        scope, _ = parsed
        if scope in ("all", "default"):
            first.append((key, value))
        elif scope in devices:
            last.append((key, value))
    forward = [pair for pair in first if pair[0] == IP_FORWARD]
    others = [pair for pair in first if pair[0] != IP_FORWARD]
    return (*others, *forward, *last)


def overlay(
    state: DataplaneState,
    dumps: Mapping[str, tuple[str, ObservedNode]],
    kept_derived: Mapping[str, str] | None = None,
) -> DataplaneState:
    """`state` with each node's dump laid over it. `dumps`: node name → (the dump's path as
    the spec gives it, what it shows); `kept_derived`: nodes whose dump is not laid, and why
    (the walk says so)."""
    if not dumps:
        return state
    namespaces: list[Namespace] = []
    records: list[Observed] = []
    for namespace in state.namespaces:
        found = dumps.get(namespace.name)
        if found is None or namespace.kind != "node":
            namespaces.append(namespace)
            continue
        path, dump = found
        why = (kept_derived or {}).get(namespace.name)
        if why is not None:
            namespaces.append(namespace)
            records.append(Observed(namespace.name, path, (), (why,)))
            continue
        laid, notes = observed_namespace(namespace, dump)
        namespaces.append(laid)
        parts = tuple((part, dump.source(part) or "") for part in OVERLAID if dump.observed(part))
        seen = None
        if dump.observed("links"):
            seen = tuple(
                (a.dev, str(a.interface))
                for a in dump.namespace.addresses
                if a.family == 4 and a.scope == "global"
            )
        records.append(
            Observed(
                namespace.name, path, parts, (*dump.assumed, *notes), seen,
                first_address_only=(dump.source("links") or "").endswith("ifconfig.txt"),
            )
        )  # fmt: skip
    return replace(state, namespaces=tuple(namespaces), observed=tuple(records))
