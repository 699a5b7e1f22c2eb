"""`eksnet tour --html DIR`: the tour as a self-contained report, an index and a page per walk.

Each page holds the walk's diagram (its first way; a split walk lists every way with its
probability), the Linux views the talk shows before that walk (the command and what it prints),
and the walk as text. Everything is inline: the report opens from a file, with no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from eksnet.dataplane.state import DataplaneState
from eksnet.render.diagram import render_svg
from eksnet.walk.model import Walk

STYLE = (
    "body{font-family:DejaVu Sans Mono,monospace;margin:16px;color:#222;}"
    "pre{font-size:12px;background:#f7f7f7;padding:8px;overflow:auto;}"
    "svg{max-width:100%;height:auto;border:1px solid #ddd;}"
    "li{margin:4px 0;}"
)


@dataclass(frozen=True, slots=True)
class KernelSaid:
    """What `tour --lab` found for a walk (the lab's `Verdict`, as a page shows it: render
    does not import the lab): the status, what was checked or why not, and each difference as
    (way, what, where, walk, kernel)."""

    status: str
    said: str
    differences: tuple[tuple[str, str, str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """One walk of the report: its id, title, where it is in the talk, the command."""

    id: str
    title: str
    talk: str
    command: str


def walk_page(
    state: DataplaneState,
    entry: Entry,
    result: Walk,
    text: str,
    views: Sequence[tuple[str, str]] = (),
    verdict: KernelSaid | None = None,
) -> str:
    ways = list(result.leaves())
    _, label, first = ways[0]
    title = f"{entry.id} — {entry.title}"
    svg = render_svg(state, first, title=f"{entry.id}" + (f" · {label}" if label else ""))
    listed = ""
    if len(ways) > 1:
        # every other way drawn too, each opened by a click (no script: the page stays inert)
        items = "".join(
            f"<details><summary>{escape(way_label)} (p={probability:.4f})</summary>"
            f"{render_svg(state, leaf, title=f'{entry.id} · {way_label}')}</details>"
            for probability, way_label, leaf in ways[1:]
        )
        listed = (
            f"<h2>{len(ways)} ways: {escape(label)} (p={ways[0][0]:.4f}) is drawn above; "
            f"open another</h2>{items}"
        )
    shown = "".join(
        f"<h3>{escape(command)}</h3><pre>{escape(output)}</pre>" for command, output in views
    )
    shown += _matched_rules(first)
    if verdict is not None:
        shown += _verdict(verdict)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<p><a href="index.html">the tour</a></p><h1>{escape(title)}</h1>'
        f"<p>talk: {escape(entry.talk)}</p><p><code>{escape(entry.command)}</code></p>"
        f"{svg}{listed}{shown}<h2>The walk as text</h2><pre>{escape(text)}</pre>"
        "</body></html>\n"
    )


def index_page(entries: Sequence[Entry]) -> str:
    items = "".join(
        f'<li><a href="{escape(e.id)}.html">{escape(e.id)} — {escape(e.title)}</a></li>'
        for e in entries
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Life of a packet in Amazon EKS: the tour</title><style>{STYLE}</style></head>"
        f"<body><h1>Life of a packet in Amazon EKS: the tour</h1><ol>{items}</ol></body></html>\n"
    )


def _matched_rules(walk: Walk) -> str:
    """The iptables rules the drawn way matched, per namespace, as `iptables-save` lines."""
    found: dict[str, list[str]] = {}
    for one in (walk, walk.reply):
        if one is None:
            continue
        for hop in one.hops:
            lines = found.setdefault(hop.where.label or hop.where.name, [])
            for step in hop.steps:
                for decision in step.decided_by:
                    if decision.kind == "iptables" and decision.text not in lines:
                        lines.append(decision.text)
    blocks = "".join(
        f"<h3>{escape(place)}: iptables-save, the rules that matched</h3>"
        f"<pre>{escape(chr(10).join(lines))}</pre>"
        for place, lines in found.items()
        if lines
    )
    return f"<h2>The rules that matched</h2>{blocks}" if blocks else ""


def _verdict(verdict: KernelSaid) -> str:
    """`tour --lab --html`: what the kernel said of the walk, and where it differed."""
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in difference) + "</tr>"
        for difference in verdict.differences
    )
    table = (
        "<table><tr><th>way</th><th>what</th><th>where</th><th>walk</th><th>kernel</th></tr>"
        f"{rows}</table>"
        if rows
        else ""
    )
    return f"<h2>On the kernel: {escape(verdict.status)}</h2><p>{escape(verdict.said)}</p>{table}"
