"""`eksnet walk … --explain`: the first decision that made a walk drop, misroute or rewrite
where its controllers' state would not, what would have happened instead, and the fix.

The same walk is walked twice: on the state as imported (the nodes' dumps laid over them) and
on the state the controllers derive from the spec. Where they end differently, the first hop
where they part names the decision that did it (the `ip rule`, route, iptables rule, security
group or sysctl, in its tool's words), the derived walk says what would have happened, and the
drift findings of the nodes on the way (`drift`) that make the imported walk end as the derived
one, tried one by one, are its cause and carry its fix. Where both end alike, the walk is what
the cluster's configuration does; a drop is then explained by its own deciding step.
"""

from __future__ import annotations

from collections.abc import Callable

from eksnet.dataplane.state import DataplaneState
from eksnet.diagnose.drift import Finding, differences, outcome, put_right_in
from eksnet.errors import EksnetError
from eksnet.render.facts import visited_nodes
from eksnet.walk.model import Hop, Walk


def _one_line(text: str) -> str:
    return text.replace("\t", " ")


def _describe_end(result: Walk) -> str:
    endings = []
    for probability, label, leaf in result.leaves():
        ending = leaf.disposition
        assert ending is not None
        text = f"{ending.kind} in {ending.where.label or ending.where.name}: {ending.reason}"
        if leaf.reply is not None:
            text += "; the reply: " + _describe_end(leaf.reply)
        if leaf.later is not None:
            text += "; its later packet: " + _describe_end(leaf.later)
        endings.append(f"{label} ({probability:.0%}) {text}" if label else text)
    return " | ".join(endings)


def _path_key(hop: Hop) -> tuple[object, ...]:
    """Where a hop took the packet, and as what: the place, in, out, the headers that left."""
    return (hop.where.name, hop.iif, hop.oif, hop.packet_out)


def _ways(result: Walk) -> dict[str, Walk]:
    return {label: leaf for _, label, leaf in result.leaves()}


def _sequence(leaf: Walk) -> list[Hop]:
    """A way's hops, its reply's and its later packet's, in order."""
    hops = list(leaf.hops)
    if leaf.reply is not None:
        _, _, back = next(iter(leaf.reply.leaves()))
        hops += _sequence(back)
    if leaf.later is not None:
        hops += _sequence(leaf.later)
    return hops


def first_difference(imported: Walk, derived: Walk) -> tuple[Hop, Hop | None] | None:
    """In the first way (by label) that ends otherwise imported than derived, the first hop
    that takes the packet elsewhere (or as something else), and the derived way's hop there;
    None when no way's path differs."""
    ours, theirs = _ways(imported), _ways(derived)
    for label, leaf in ours.items():
        other_leaf = theirs.get(label)
        if other_leaf is not None and outcome(leaf) == outcome(other_leaf):
            continue
        mine = _sequence(leaf)
        other = _sequence(other_leaf) if other_leaf is not None else []
        for index, hop in enumerate(mine):
            there = other[index] if index < len(other) else None
            if there is None or _path_key(hop) != _path_key(there):
                return hop, there
        if mine:
            return mine[-1], other[len(mine) - 1] if len(other) >= len(mine) else None
    return None


def _different_steps(hop: Hop, other: Hop | None) -> list[str]:
    """The steps of `hop` decided otherwise than in `other` (all its deciding steps without
    one), each as its summary and what decided it."""
    theirs = set()
    if other is not None:
        theirs = {(s.summary, tuple(d.text for d in s.decided_by)) for s in other.steps}
    found = []
    for step in hop.steps:
        if not step.decided_by or (step.summary, tuple(d.text for d in step.decided_by)) in theirs:
            continue
        decided = "; ".join(_one_line(d.text) for d in step.decided_by)
        found.append(f"{step.summary} (by {decided})")
    return found


def _decision_text(hop: Hop) -> str:
    step = hop.decisive()
    decided = "; ".join(d.text.replace("\t", " ") for d in step.decided_by)
    return f"{step.summary}" + (f" (by {decided})" if decided else "")


def causes(
    run: Callable[[DataplaneState], Walk],
    imported: Walk,
    derived_state: DataplaneState,
    observed_state: DataplaneState,
) -> list[Finding]:
    """The drift findings on the walk's nodes that, put right one at a time, change how the
    imported walk ends."""
    nodes = set(visited_nodes(imported))
    found = [f for f in differences(derived_state, observed_state) if f.node in nodes]
    before = outcome(imported)
    explaining: list[Finding] = []
    for finding in found:
        state = put_right_in(finding, derived_state, observed_state)
        try:
            after = outcome(run(state))
        except EksnetError:
            continue
        if after != before:
            explaining.append(finding)
    return explaining


def explain(
    run: Callable[[DataplaneState], Walk],
    imported: Walk,
    derived_state: DataplaneState,
    observed_state: DataplaneState,
) -> list[str]:
    """The explanation in lines (see the module docstring)."""
    lines = ["explain:"]
    derived = run(derived_state)
    crossed = {record.namespace for record in observed_state.observed if record.parts}
    on_way = [name for name in visited_nodes(imported) if name in crossed]
    if outcome(derived) != outcome(imported):
        parted = first_difference(imported, derived)
        if parted is not None:
            hop, other = parted
            place = hop.where.label or hop.where.name
            lines.append(f"  the first decisions that made it so, in {place}:")
            lines += [
                f"    {step}" for step in _different_steps(hop, other) or [_decision_text(hop)]
            ]
            if other is not None:
                lines.append("  where the controllers' state decides instead:")
                lines += [
                    f"    {step}"
                    for step in _different_steps(other, hop) or [_decision_text(other)]
                ]
        lines.append(f"  as imported: {_describe_end(imported)}")
        lines.append(f"  with what the controllers would write: {_describe_end(derived)}")
        found = causes(run, imported, derived_state, observed_state)
        if not found:
            lines.append(
                "  no single difference on the way explains it alone: see `eksnet check` for "
                "every difference of " + ", ".join(on_way)
            )
        for finding in found:
            lines.append(
                f"  cause: {finding.node}: {finding.kind} `{_one_line(finding.object)}` is "
                f"{finding.difference} ({finding.detail}); "
                + ("written by " if finding.difference == "missing" else "from ")
                + finding.owner
            )
            lines += [f"    fix: {command}" for command in finding.fix]
        return lines
    if on_way:
        lines.append(
            "  the imported nodes on the way (" + ", ".join(on_way) + ") decide this walk as "
            "their controllers would: it is what the cluster's configuration does"
        )
    else:
        lines.append(
            "  every fact on the way is derived by the controllers (no dump): it is what the "
            "cluster's configuration does"
        )
    for _, label, leaf in imported.leaves():
        for part in (leaf, leaf.reply, leaf.later):
            if part is None or part.disposition is None or part.disposition.kind != "dropped":
                continue
            hop = part.hops[-1]
            place = hop.where.label or hop.where.name
            prefix = f"{label}: " if label else ""
            lines.append(
                f"  {prefix}dropped in {place} ({part.direction}): {part.disposition.reason}"
            )
            decided = "; ".join(d.text.replace("\t", " ") for d in part.disposition.decided_by)
            if decided:
                lines.append(f"    decided by: {decided}")
    return lines
