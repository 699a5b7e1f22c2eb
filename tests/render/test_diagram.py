"""The walk's pictures: SVG, HTML page and terminal sketch (issue 11's renderer).

What the pictures must show comes from the walks themselves and the talk (talk-walks.md §3:
W2 leaves node 1 by rule 32766 and comes back by rule 1536 and table 2 on node 2; the ENIs
with their MACs of §2.3); the geometry checks hold every tour walk's SVG to "no text over
text, nothing outside the view box" and are shown to fail on a layout that breaks them.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ElementTree

import pytest

from eksnet import state_cache
from eksnet.dataplane.state import DataplaneState
from eksnet.render import diagram
from eksnet.render.diagram import TextBox, render_html, render_svg, render_terminal, text_boxes
from eksnet.state_cache import Built
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk
from eksnet.walk.tour import KNOWN, TourWalk

SVG = "{http://www.w3.org/2000/svg}"
POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_81 = "pod/default/app1-5f7d9c6b8-z8h4k"


@pytest.fixture(scope="module")
def built() -> Built:
    return state_cache.build(None, None)


@pytest.fixture(scope="module")
def demo(built: Built) -> DataplaneState:
    return built.state


@pytest.fixture(scope="module")
def labels(built: Built) -> dict[str, str]:
    return built.labels


def first_way(result: Walk) -> Walk:
    return next(iter(result.leaves()))[2]


def overlaps(boxes: list[TextBox]) -> list[tuple[str, str]]:
    found = []
    for a, b in itertools.combinations(boxes, 2):
        if (
            a.x < b.x + b.width
            and b.x < a.x + a.width
            and a.y < b.y + b.height
            and b.y < (a.y + a.height)
        ):
            found.append((a.text, b.text))
    return found


def outside(svg: str, boxes: list[TextBox]) -> list[str]:
    root = ElementTree.fromstring(svg)
    _, _, width, height = (float(v) for v in root.get("viewBox", "").split())
    return [
        b.text
        for b in boxes
        if b.x < 0 or b.y < 0 or b.x + b.width > width or b.y + b.height > height
    ]


def test_w2_draws_both_nodes_their_enis_and_the_rules(
    demo: DataplaneState, labels: dict[str, str]
) -> None:
    """Issue 11's done-when: node 1 and node 2, the ENIs with their MACs, rule 32766 on the way
    out and rule 1536 with table 2 on the way back."""
    svg = render_svg(demo, walk(demo, POD_51, POD_81, dport=80, labels=labels), title="W2")
    root = ElementTree.fromstring(svg)
    texts = [element.text or "" for element in root.iter(f"{SVG}text")]
    joined = "\n".join(texts)
    assert "node 1" in texts and "node 2" in texts
    for mac in ("02:00:c0:a8:01:32", "02:00:c0:a8:01:3c", "02:00:c0:a8:01:46", "02:00:c0:a8:01:50"):
        assert mac in joined
    assert "1. pod 51: output route: rule 32766 → table main → eth0 via 169.254.1.1" in joined
    back = next(t for t in texts if t.startswith("7. node 2"))
    assert "rule 1536 → table 2 → eth1" in back
    numbers = [g.get("data-number") for g in root.iter(f"{SVG}g") if g.get("class") == "hop"]
    assert numbers == [str(n) for n in range(1, 11)]
    assert all(g.find(f"{SVG}title") is not None for g in root.iter(f"{SVG}g"))


def texts_of(svg: str) -> list[str]:
    return [element.text or "" for element in ElementTree.fromstring(svg).iter(f"{SVG}text")]


def test_every_rewrite_is_labelled(demo: DataplaneState) -> None:
    svg = "\n".join(
        texts_of(render_svg(demo, first_way(walk(demo, POD_51, "svc/default/app1", dport=80))))
    )
    assert (
        "DNAT: 192.168.1.51:41000 > 10.100.200.10:80 tcp → 192.168.1.51:41000 > 192.168.1.71:80 tcp"
        in svg
    )
    assert "un-NAT: 192.168.1.71:80 > 192.168.1.51:41000 tcp → 10.100.200.10:80 > " in svg


@pytest.mark.parametrize("tour_walk", KNOWN, ids=[t.id for t in KNOWN])
def test_no_text_overlaps_and_nothing_leaves_the_view(tour_walk: TourWalk) -> None:
    built = state_cache.build(None, tour_walk.variant)
    result = first_way(tour_walk.run(built.state, built.labels))
    svg = render_svg(built.state, result, title=tour_walk.title)
    boxes = text_boxes(svg)
    assert overlaps(boxes) == []
    assert outside(svg, boxes) == []
    assert render_svg(built.state, result, title=tour_walk.title) == svg


def test_the_geometry_check_fails_on_a_layout_that_overlaps(
    monkeypatch: pytest.MonkeyPatch, demo: DataplaneState
) -> None:
    monkeypatch.setattr(diagram, "LINE", 4)  # rows' lines now run into each other
    svg = render_svg(demo, walk(demo, POD_51, POD_81, dport=80))
    assert overlaps(text_boxes(svg))


def test_a_drop_is_marked(demo: DataplaneState) -> None:
    dropped = walk(demo, "ip/203.0.113.10", "node/ip-192-168-1-50.eu-west-2.compute.internal",
                   dport=30082)  # fmt: skip
    svg = render_svg(demo, first_way(dropped))
    assert 'class="drop"' in svg and "⇒ dropped:" in svg


def test_the_html_page_is_self_contained(demo: DataplaneState) -> None:
    page = render_html(demo, walk(demo, POD_51, POD_81, dport=80), title="W2", text="hops")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_the_terminal_sketch(demo: DataplaneState, labels: dict[str, str]) -> None:
    sketch = render_terminal(demo, walk(demo, POD_51, POD_81, dport=80, labels=labels))
    lines = sketch.splitlines()
    assert lines[0].split() == ["node", "1", "pod", "51", "VPC", "node", "2", "pod", "81"]
    drawn = [line[: 5 * 16] for line in lines[2:]]
    numbers = ["".join(c for c in part if c.isdigit()) for part in drawn]
    assert numbers == [str(n) for n in range(1, 11)]
