"""A walk as text for a terminal: one line per hop with the decisive rule; `-v` for every step.

Rendered with rich so hops, rewrites and dispositions stand out; the same text prints plainly
when the output is not a terminal.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from eksnet.walk.model import Hop, Packet, Step, Walk

_DISPOSITION_STYLE = {
    "delivered": "bold green",
    "dropped": "bold red",
    "not-modelled": "bold yellow",
}


def _frame(packet: Packet | None) -> str:
    if packet is None:
        return ""
    macs = f"{packet.src_mac} > {packet.dst_mac} " if packet.src_mac else ""
    return f"{macs}{packet.five_tuple()}"


def _hop_title(index: int, hop: Hop) -> Text:
    name = hop.where.label or f"{hop.where.kind} {hop.where.name}"
    # The VPC's hops and external hosts are named by their label alone (`VPC`, `internet
    # gateway`, `web (198.51.100.20)`); the ids show as the hops' in → out.
    shown = hop.where.label and hop.where.kind not in ("vpc", "external")
    detail = f" ({hop.where.name})" if shown else ""
    path = f"{hop.iif or '·'} → {hop.oif or '·'}"
    text = Text(f"  {index}. ", style="bold")
    text.append(f"{name}", style="bold cyan")
    text.append(f"{detail}", style="cyan")
    text.append(f"  {path}")
    return text


def _step_line(step: Step, indent: str = "       ") -> list[Text]:
    lines = [Text(f"{indent}{step.kind}: {step.summary}")]
    for decision in step.decided_by:
        lines.append(Text(f"{indent}    ← {decision.text}", style="dim"))
    if step.rewrote:
        lines.append(
            Text(
                f"{indent}    rewrite: {_frame(step.before)}  ⇒  {_frame(step.after)}",
                style="magenta",
            )
        )
    return lines


_TELLING = (
    "-j DNAT",
    "-j SNAT",
    "-j MASQUERADE",
    "-j KUBE-MARK-MASQ",
    "--probability",
    "--rcheck",
    "--set-xmark 0x80/0x80",
)
"""What makes a matched rule worth a line without `-v`: it picks an endpoint, remembers or
recalls a client, marks for masquerade or the connection for rule 1024, or rewrites the
packet. Everything else (jumps, RETURNs, restores) waits for `-v`."""


def _hop_lines(index: int, hop: Hop, verbose: bool) -> list[Text]:
    lines = [_hop_title(index, hop)]
    if verbose:
        for step in hop.steps:
            lines += _step_line(step)
            lines += [Text(f"           {detail}", style="dim") for detail in step.details]
    else:
        decisive = hop.decisive()
        lines.append(Text(f"       {decisive.summary}"))
        for decision in decisive.decided_by:
            lines.append(Text(f"         ← {decision.text}", style="dim"))
        for step in hop.steps:
            if step.kind == "netfilter":
                telling = [d for d in step.decided_by if any(t in d.text for t in _TELLING)]
                lines += [Text(f"       rule: {d.text}", style="cyan") for d in telling]
            shown = ("security-group", "nacl", "host-served", "load-balancer", "dns")
            if step.kind in shown and step is not decisive:
                lines.append(Text(f"       {step.kind}: {step.summary}", style="cyan"))
            if step.kind in ("nat", "netfilter") and step.rewrote:
                lines += _step_line(step)
    if hop.packet_out is not None:
        lines.append(Text(f"       out: {_frame(hop.packet_out)}", style="dim"))
    return lines


def walk_lines(
    walk: Walk, *, verbose: bool = False, title: str | None = None, shared: int = 0
) -> list[Text]:
    """The walk's hops (after the first `shared`, which a branch has in common with the walk
    it splits from and which were printed there), disposition, conntrack, branches, reply."""
    heading = title or f"{walk.flow.src.spec()} → {walk.flow.dst.spec()}"
    direction = "forward" if walk.direction == "forward" else "return"
    lines = [Text(f"{heading} [{direction}]", style="bold underline")]
    for index, hop in enumerate(walk.hops[shared:], start=shared + 1):
        lines += _hop_lines(index, hop, verbose)
    if walk.disposition is not None:
        style = _DISPOSITION_STYLE[walk.disposition.kind]
        lines.append(Text(f"  ⇒ {walk.disposition.kind}: {walk.disposition.reason}", style=style))
    for record in walk.conntrack:
        lines.append(Text(f"  conntrack {record.namespace}: {record.text}", style="dim"))
    for note in walk.notes:
        lines.append(Text(f"  note: {note}", style="yellow"))
    for branch in walk.branches:
        lines.append(Text(f"  branch {branch.label} (p={branch.probability:.4f}):", style="bold"))
        lines += walk_lines(
            branch.walk,
            verbose=verbose,
            title=f"  {heading} · {branch.label}",
            shared=len(walk.hops),
        )
    if walk.reply is not None:
        lines.append(Text(""))
        lines += walk_lines(walk.reply, verbose=verbose, title=f"{heading} (return)")
    if walk.later is not None:
        lines.append(Text(""))
        sent = walk.later.flow.later_packet()
        flags = f" [{sent.tcp_flags}]" if sent.tcp_flags else ""
        lines += walk_lines(
            walk.later, verbose=verbose, title=f"{heading} · its later packet{flags}"
        )
    if walk.backend is not None:
        lines.append(Text(""))
        opened = walk.backend.flow.first_packet().five_tuple()
        lines += walk_lines(
            walk.backend, verbose=verbose, title=f"{heading} · the proxy's connection {opened}"
        )
    if walk.then is not None:
        lines.append(Text(""))
        following = walk.then.flow.first_packet().five_tuple()
        lines += walk_lines(walk.then, verbose=verbose, title=f"{heading} · then {following}")
    return lines


def walk_renderable(walk: Walk, *, verbose: bool = False, title: str | None = None) -> Group:
    return Group(*walk_lines(walk, verbose=verbose, title=title))
