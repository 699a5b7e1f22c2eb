"""A walk as a picture: SVG (`walk --svg`, `--html`) and a terminal sketch (`walk --diagram`).

Pure functions of a complete walk (one way of a split one; the others are listed with their
probabilities) and the data-plane state. The layout is the domain's, computed here, no general
graph layout:

* **places as columns** ("lifelines"), in the order the walk first reaches them: the internet's
  hosts, the internet gateway, load balancer and NAT gateway nodes, the VPC, and each node with
  its pods beside it inside the node's frame. A node's header lists its ENIs (device, IP, MAC);
  a pod's its IP and host veth; a VPC place its name.
* **hops as rows**, numbered 1…n forward, then the return's; the number sits on the hop's
  column, an arrow joins it to the next hop's (forward solid, return dashed). The row's text, in
  a column of its own left of the lifelines, says where, what decided (the rule or route as the
  tool prints it), the packet that leaves with its MACs, and every rewrite as before → after;
  each number's `<title>` holds the hop's full step list (hover).
* a drop is a red ✕ at its hop with the reason; the end of each direction is written under it.

Every text is placed by this module in a monospace font of known advance (`CHAR`), so its box
is known exactly: nothing overlaps and everything lies inside the view box by construction
(`text_boxes` lets tests hold the SVG to that). The same walk gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from eksnet.dataplane.state import DataplaneState
from eksnet.walk.model import Hop, Packet, Walk

FONT = 12
"""Pixels: the text size."""
CHAR = 7.2
"""Pixels: the advance of one character of the monospace font at `FONT` (0.6 em)."""
LINE = 18
PAD = 10
COLUMN = 170
"""Pixels between two lifelines."""
HEADER_LINES = 8
"""The most lines a place's heading shows (a node: name, and three ENIs' IP and MAC)."""
MAX_TEXT = 96
"""Characters a row's line may take before it is cut (the full text is in the title)."""


@dataclass(frozen=True, slots=True)
class Place:
    """One column: its key (a hop's place), its heading lines, and the node frame it is in."""

    key: str
    lines: tuple[str, ...]
    frame: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    number: int
    hop: Hop
    place: int
    lines: tuple[str, ...]
    direction: str
    dropped: str | None = None


def _place_key(hop: Hop) -> str:
    return f"{hop.where.kind}:{hop.where.name}"


def _short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _packet(packet: Packet | None, macs: bool = True) -> str:
    """The packet as a row shows it: its 5-tuple, and where it is a frame its MACs and TTL."""
    if packet is None:
        return ""
    text = packet.five_tuple()
    if macs and packet.src_mac and packet.dst_mac:
        text += f"  [{packet.src_mac} > {packet.dst_mac}] ttl {packet.ttl}"
    return text


def places(state: DataplaneState, walk: Walk) -> list[Place]:
    """The columns, in first-reached order over both directions; a pod right after its node."""
    order: list[str] = []
    hops: dict[str, Hop] = {}
    crossed: dict[str, list[str]] = {}
    for hop in _all_hops(walk):
        key = _place_key(hop)
        if key not in hops:
            hops[key] = hop
            order.append(key)
        subnets = crossed.setdefault(key, [])
        for eni_id in (hop.iif, hop.oif):
            if eni_id is not None and eni_id.startswith("eni-"):
                try:
                    subnet = state.vpc.subnet(state.vpc.eni(eni_id).subnet)
                except KeyError:
                    continue
                if subnet.name not in subnets:
                    subnets.append(subnet.name)
    nodes_of = {ns.name: _node_of(state, ns.name) for ns in state.namespaces if ns.kind == "pod"}
    # pods sit right after their node (the node joins the columns if the walk skipped it)
    arranged: list[str] = []
    for key in order:
        kind, name = key.split(":", 1)
        if kind == "pod":
            node = nodes_of.get(name)
            node_key = f"node:{node}"
            if node is not None and node_key not in arranged:
                arranged.append(node_key)
            if node is not None:
                index = arranged.index(node_key) + 1
                while (
                    index < len(arranged)
                    and arranged[index].startswith("pod:")
                    and (nodes_of.get(arranged[index].split(":", 1)[1]) == node)
                ):
                    index += 1
                arranged.insert(index, key)
                continue
        if key not in arranged:
            arranged.append(key)
    return [_place(state, key, hops.get(key), nodes_of, crossed.get(key, [])) for key in arranged]


def _node_of(state: DataplaneState, pod: str) -> str | None:
    namespace = state.namespace(pod)
    for link in namespace.links:
        if link.peer is not None and link.peer.netns is not None:
            return link.peer.netns
    for node in state.nodes():
        for link in node.links:
            if link.peer is not None and link.peer.netns == pod:
                return node.name
    return None


def _place(
    state: DataplaneState,
    key: str,
    hop: Hop | None,
    nodes_of: dict[str, str | None],
    subnets: Sequence[str] = (),
) -> Place:
    kind, name = key.split(":", 1)
    label = hop.where.label if hop is not None and hop.where.label else name
    if kind == "node":
        lines = [label or name, _short(name, 30)]
        for eni in state.vpc.enis:
            if eni.node == name and eni.device is not None:
                lines.append(f"{eni.device} {eni.primary_ip}")
                lines.append(f" {eni.mac}")
        return Place(key, tuple(lines[: 2 + 2 * 3]), frame=name)
    if kind == "pod":
        namespace = state.namespace(name)
        addresses = [
            str(a.interface.ip)
            for a in namespace.addresses
            if a.family == 4 and a.scope == "global"
        ]
        veths = [
            link.peer.name
            for link in namespace.links
            if link.peer is not None and link.peer.name is not None
        ]
        host_veth = next(
            (
                link.name
                for node in state.nodes()
                for link in node.links
                if link.peer is not None and link.peer.netns == name
            ),
            None,
        )
        lines = [label or name, *(addresses[:1]), f"veth {host_veth or (veths[:1] or ['?'])[0]}"]
        return Place(key, tuple(lines), frame=nodes_of.get(name))
    if kind == "vpc" and name == state.vpc.id:
        # the VPC's column names the subnets the walk crossed (with their AZs' zone ids)
        zoned = []
        for name_of in subnets:
            subnet = state.vpc.subnet(name_of)
            zoned += [f"{subnet.name} {subnet.az}", f" {subnet.cidr}"]
        return Place(key, (label or "VPC", _short(name, 20), *zoned[: HEADER_LINES - 2]))
    return Place(key, (_short(label or name, 20), _short(name, 20)))


def _parts(walk: Walk) -> list[tuple[str, Walk]]:
    """The walk's connections in the order they happen: the request, its answer, the source's
    later packet (`Walk.later`), and a proxy's own connection (`Walk.backend`) with its
    answer."""
    parts: list[tuple[str, Walk]] = [("forward", walk)]
    if walk.reply is not None:
        parts.append(("return", walk.reply))
    if walk.later is not None:
        parts.append(("later", walk.later))
    if walk.backend is not None:
        parts.append(("backend", walk.backend))
        if walk.backend.reply is not None:
            parts.append(("backend-return", walk.backend.reply))
    return parts


def _joined(row: Row, following: Row) -> bool:
    """An arrow joins the hops of one connection, and a request to its answer; a proxy's own
    connection starts afresh at the proxy."""
    answer = "return" if row.direction == "forward" else "backend-return"
    return following.direction in (row.direction, answer)


def _all_hops(walk: Walk) -> Iterator[Hop]:
    for _, part in _parts(walk):
        yield from part.hops


def rows(walk: Walk, columns: Sequence[Place]) -> list[Row]:
    index = {place.key: number for number, place in enumerate(columns)}
    found: list[Row] = []
    number = 0
    for direction, one in _parts(walk):
        for position, hop in enumerate(one.hops):
            number += 1
            decisive = hop.decisive()
            lines = [_short(f"{number}. {hop.where.label or hop.where.name}: {decisive.summary}")]
            for step in hop.steps:
                if step.rewrote and step.before is not None and step.after is not None:
                    before, after = _packet(step.before, False), _packet(step.after, False)
                    if before != after:
                        lines.append(
                            _short(f"   {_rewrite_kind(step.summary)}: {before} → {after}")
                        )
            if hop.packet_out is not None:
                lines.append(_short(f"   out: {_packet(hop.packet_out)}"))
            last = position == len(one.hops) - 1
            dropped = None
            if last and one.disposition is not None:
                end = one.disposition
                lines.append(_short(f"   ⇒ {end.kind}: {end.reason}"))
                if end.kind == "dropped":
                    dropped = end.reason
            found.append(Row(number, hop, index[_place_key(hop)], tuple(lines), direction, dropped))
    return found


def _rewrite_kind(summary: str) -> str:
    lowered = summary.lower()
    for word, name in (
        ("a new connection", "PROXY"),
        ("answers its client", "PROXY"),
        ("masquerade", "MASQUERADE"),
        ("un-nat", "un-NAT"),
        ("the reply undoes", "un-NAT"),
        ("1:1 nat", "IGW NAT"),
        ("snat", "SNAT"),
        ("destination", "DNAT"),
        ("source", "SNAT"),
    ):
        if word in lowered:
            return name
    return "rewrite"


@dataclass(frozen=True, slots=True)
class TextBox:
    x: float
    y: float
    width: float
    height: float
    text: str


def render_svg(state: DataplaneState, walk: Walk, *, title: str = "") -> str:
    """The walk (one complete way) as a standalone SVG document."""
    columns = places(state, walk)
    table = rows(walk, columns)
    text_width = max((len(line) for row in table for line in row.lines), default=20) * CHAR
    left = PAD + text_width + 2 * PAD
    lane_x = [left + COLUMN / 2 + i * COLUMN for i in range(len(columns))]
    header_top = PAD + (LINE + PAD if title else 0)
    shown_lines = min(HEADER_LINES, max((len(place.lines) for place in columns), default=1))
    header_height = shown_lines * LINE + 2 * PAD
    y = header_top + header_height + 3 * PAD
    row_y: list[float] = []
    for row in table:
        row_y.append(y)
        y += len(row.lines) * LINE + PAD
    height = y + PAD
    width = left + len(columns) * COLUMN + PAD
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" font-family="DejaVu Sans Mono, monospace" '
        f'font-size="{FONT}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>',
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="white"/>',
    ]
    if title:
        parts.append(_text(PAD, PAD + FONT, title, weight="bold"))
    # node frames around a node's column and its pods'
    frames: dict[str, list[int]] = {}
    for number, place in enumerate(columns):
        if place.frame is not None:
            frames.setdefault(place.frame, []).append(number)
    for _, members in sorted(frames.items()):
        x0 = lane_x[min(members)] - COLUMN / 2 + 3
        x1 = lane_x[max(members)] + COLUMN / 2 - 3
        parts.append(
            f'<rect class="node-frame" x="{x0:.1f}" y="{header_top - 4:.1f}" '
            f'width="{x1 - x0:.1f}" height="{height - header_top - PAD:.1f}" fill="#f4f8ff" '
            'stroke="#6b8cc7" stroke-dasharray="4 3"/>'
        )
    for number, place in enumerate(columns):
        x = lane_x[number]
        box_x = x - COLUMN / 2 + 8
        parts.append(
            f'<rect class="place" x="{box_x:.1f}" y="{header_top:.1f}" width="{COLUMN - 16}" '
            f'height="{header_height}" fill="white" stroke="#444" rx="4"/>'
        )
        chars = int((COLUMN - 16 - 2 * 4) / CHAR)
        for line_number, line in enumerate(place.lines[:HEADER_LINES]):
            weight = "bold" if line_number == 0 else None
            parts.append(
                _text(box_x + 4, header_top + PAD + FONT + line_number * LINE, _short(line, chars),
                      weight=weight)
            )  # fmt: skip
        parts.append(
            f'<line class="lifeline" x1="{x:.1f}" y1="{header_top + header_height:.1f}" '
            f'x2="{x:.1f}" y2="{height - PAD:.1f}" stroke="#999" stroke-dasharray="2 4"/>'
        )
    for position, row in enumerate(table):
        top = row_y[position]
        marker_y = top + LINE / 2
        if position + 1 < len(table):
            following = table[position + 1]
            x1, x2 = lane_x[row.place], lane_x[following.place]
            y2 = row_y[position + 1] + LINE / 2
            dashed = ' stroke-dasharray="6 4"' if following.direction.endswith("return") else ""
            if row.dropped is None and _joined(row, following):
                parts.append(
                    f'<line class="hop-arrow {following.direction}" x1="{x1:.1f}" '
                    f'y1="{marker_y + 9:.1f}" x2="{x2:.1f}" y2="{y2 - 10:.1f}" stroke="#333" '
                    f'stroke-width="1.5"{dashed} marker-end="url(#arrow)"/>'
                )
        for line_number, line in enumerate(row.lines):
            parts.append(_text(PAD, top + FONT + line_number * LINE, line, css="row-text"))
        x = lane_x[row.place]
        colours = {
            "forward": "#2c6fbb", "return": "#7a4fb0", "later": "#2c6fbb", "backend": "#1e8449"
        }  # fmt: skip
        fill = "#c0392b" if row.dropped else colours.get(row.direction, "#6c3483")
        steps = "\n".join(f"{step.kind}: {step.summary}" for step in row.hop.steps)
        parts.append(
            f'<g class="hop" data-number="{row.number}"><title>{escape(steps)}</title>'
            f'<circle cx="{x:.1f}" cy="{marker_y:.1f}" r="9" fill="{fill}"/>'
            + _text(x, marker_y + 4, str(row.number), anchor="middle", fill="white",
                    css="hop-number")
            + "</g>"
        )  # fmt: skip
        if row.dropped is not None:
            parts.append(
                f'<path class="drop" d="M {x + 12:.1f} {marker_y - 6:.1f} l 12 12 m 0 -12 '
                f'l -12 12" stroke="#c0392b" stroke-width="3"><title>{escape(row.dropped)}'
                "</title></path>"
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _text(
    x: float,
    y: float,
    text: str,
    *,
    weight: str | None = None,
    anchor: str | None = None,
    fill: str | None = None,
    css: str | None = None,
) -> str:
    attributes = [f'x="{x:.1f}"', f'y="{y:.1f}"']
    if weight:
        attributes.append(f'font-weight="{weight}"')
    if anchor:
        attributes.append(f'text-anchor="{anchor}"')
    if fill:
        attributes.append(f'fill="{fill}"')
    if css:
        attributes.append(f'class="{css}"')
    return f"<text {' '.join(attributes)}>{escape(text)}</text>"


def text_boxes(svg: str) -> list[TextBox]:
    """Every `<text>` of an SVG this module wrote, with the box its monospace advance gives."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.fromstring(svg)
    boxes: list[TextBox] = []
    for element in root.iter("{http://www.w3.org/2000/svg}text"):
        text = element.text or ""
        width = len(text) * CHAR
        x = float(element.get("x", "0"))
        if element.get("text-anchor") == "middle":
            x -= width / 2
        baseline = float(element.get("y", "0"))
        boxes.append(TextBox(x, baseline - FONT, width, FONT + 3, text))
    return boxes


def render_html(state: DataplaneState, walk: Walk, *, title: str, text: str) -> str:
    """A self-contained page: the diagram and the text walk beside it (no network)."""
    svg = render_svg(state, walk, title=title)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>"
        "body{font-family:DejaVu Sans Mono,monospace;margin:16px;}"
        "pre{font-size:12px;background:#f7f7f7;padding:8px;overflow:auto;}"
        "</style></head><body>"
        f"<h1>{escape(title)}</h1>{svg}<h2>The walk as text</h2><pre>{escape(text)}</pre>"
        "</body></html>\n"
    )


def render_terminal(state: DataplaneState, walk: Walk) -> str:
    """A compact picture for a terminal: places as columns, one line per hop, the hop's number
    on its column and an arrow towards the next hop's."""
    columns = places(state, walk)
    table = rows(walk, columns)
    width = 16
    heads = "".join(_short(place.lines[0], width - 2).ljust(width) for place in columns)
    lines = [heads.rstrip(), "".join("│".ljust(width) for _ in columns).rstrip()]
    for position, row in enumerate(table):
        cells = [" " * width for _ in columns]
        line = list("".join(cells))
        here = row.place * width
        mark = f"{row.number}" + ("✕" if row.dropped else "")
        for offset, char in enumerate(mark):
            line[here + offset] = char
        joined = position + 1 < len(table) and _joined(row, table[position + 1])
        if joined and row.dropped is None:
            there = table[position + 1].place * width
            dash = "╌" if table[position + 1].direction.endswith("return") else "─"
            if there > here:
                for x in range(here + len(mark), there):
                    line[x] = dash
                line[there - 1] = "▶"
            elif there < here:
                for x in range(there + 1, here):
                    line[x] = dash
                line[there + 1] = "◀"
        caption = row.lines[0].split(": ", 1)[-1]
        lines.append(
            "".join(line).rstrip().ljust(len(columns) * width) + "  " + _short(caption, 60)
        )
    return "\n".join(lines) + "\n"
