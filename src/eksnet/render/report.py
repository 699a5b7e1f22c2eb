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
) -> str:
    ways = list(result.leaves())
    _, label, first = ways[0]
    title = f"{entry.id} — {entry.title}"
    svg = render_svg(state, first, title=f"{entry.id}" + (f" · {label}" if label else ""))
    listed = ""
    if len(ways) > 1:
        items = "".join(
            f"<li>{escape(way_label)} (p={probability:.4f})</li>"
            for probability, way_label, _ in ways
        )
        listed = f"<h2>{len(ways)} ways (the first is drawn)</h2><ul>{items}</ul>"
    shown = "".join(
        f"<h3>{escape(command)}</h3><pre>{escape(output)}</pre>" for command, output in views
    )
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
