"""Which facts of a walk were observed on a node and which the controllers derived.

On an imported cluster a node's rules, routes, neighbours, sysctls and iptables rules may come
from a dump taken on it (`importers.overlay`); everything else, and every node without a dump,
is what the controllers derive from the spec. A walk through such a cluster says, for every
node it crosses, which was which: an answer built on derived facts is a prediction, one built
on observed facts is what the node does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eksnet.dataplane.state import Observed
from eksnet.walk.model import Walk

DERIVED_ALWAYS = ("links", "addresses")
"""Parts a dump never replaces (the overlay's docstring says why)."""
ALL_PARTS = ("rules", "routes", "neighbours", "sysctls", "iptables")


def visited_nodes(walk: Walk) -> list[str]:
    """The node namespaces a walk (its branches, reply, next connection and linked backend
    connection too) passes through, in first-visit order."""
    seen: dict[str, None] = {}

    def visit(part: Walk | None) -> Iterator[str]:
        if part is None:
            return
        for hop in part.hops:
            if hop.where.kind == "node":
                yield hop.where.name
        for branch in part.branches:
            yield from visit(branch.walk)
        for follow in (part.reply, part.then, part.backend):
            yield from visit(follow)

    for name in visit(walk):
        seen.setdefault(name, None)
    return list(seen)


def facts(walk: Walk, observed: tuple[Observed, ...]) -> list[dict[str, Any]]:
    """Per node the walk crosses: the dump and the parts it supplied (with their files), and
    the parts derived. Empty when the state has no dumps (every fact is derived)."""
    if not observed:
        return []
    by_name = {record.namespace: record for record in observed}
    found: list[dict[str, Any]] = []
    for name in visited_nodes(walk):
        record = by_name.get(name)
        parts = dict(record.parts) if record is not None else {}
        found.append(
            {
                "namespace": name,
                "dump": record.dump if record is not None else None,
                "observed": parts,
                "derived": [p for p in (*ALL_PARTS, *DERIVED_ALWAYS) if p not in parts],
                "assumed": list(record.assumed) if record is not None else [],
            }
        )
    return found


def facts_lines(walk: Walk, observed: tuple[Observed, ...]) -> list[str]:
    """`facts` in words, one line per node."""
    lines: list[str] = []
    for item in facts(walk, observed):
        if item["dump"] is None:
            lines.append(f"facts of {item['namespace']}: all derived by the controllers (no dump)")
            continue
        if not item["observed"]:
            reasons = "; ".join(item["assumed"]) or "the dump supplied nothing"
            lines.append(f"facts of {item['namespace']}: all derived: {reasons}")
            continue
        seen = ", ".join(f"{part} ({file})" for part, file in item["observed"].items())
        lines.append(
            f"facts of {item['namespace']}: observed in {item['dump']}: {seen}; derived: "
            + ", ".join(item["derived"])
        )
    return lines
