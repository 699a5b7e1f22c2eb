"""The tour's report in a real browser: headless Chromium (Debian's `chromium`, which setup.sh
installs) opens every page; a script the test adds to a copy of the page reads the browser's
own layout (`getBBox` of every SVG text) and the test asserts from it that no two texts
overlap, every text lies inside the view box, the hop numbers run 1…n in order, and every
rewrite of the drawn walk is labelled. A screenshot of each page is written to a folder of the
test's (its path is printed), so a person can look.

A machine without Chromium fails these tests saying so; they never pass by skipping.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.entry_point import eksnet_command

from eksnet import state_cache
from eksnet.walk.tour import TOUR, TourWalk

CHECK = """
<script>
const svg = document.querySelector('svg');
const box = svg.viewBox.baseVal;
const texts = [...svg.querySelectorAll('text')].map(t => {
  const b = t.getBBox(); return [b.x, b.y, b.width, b.height, t.textContent];
});
const hops = [...svg.querySelectorAll('g.hop')].map(g => g.dataset.number);
const rects = [...svg.querySelectorAll('rect.place, rect.node-frame')].map(r => {
  const b = r.getBBox(); return [b.x, b.y, b.width, b.height];
});
const out = document.createElement('pre'); out.id = 'eksnet-layout';
out.textContent = JSON.stringify({view: [box.x, box.y, box.width, box.height], texts, hops,
                                  rects});
document.body.appendChild(out);
</script>
"""
TOLERANCE = 0.5
"""Pixels two boxes may share (anti-aliased glyph edges)."""


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("the browser tests need Debian's chromium (setup.sh installs it)")
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report")
    result = subprocess.run(
        [*eksnet_command(), "tour", "--html", str(directory)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("screenshots")
    print(f"screenshots of the report's pages: {directory}")
    return directory


def layout(page: Path) -> dict[str, object]:
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"))
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         probe.as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    found = re.search(r'<pre id="eksnet-layout">(.*?)</pre>', dom, re.S)
    assert found is not None, dom[-2000:]
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    data: dict[str, object] = json.loads(text)
    return data


def crossing(texts: list[list[object]], rects: list[list[float]]) -> list[str]:
    """Texts that cross a box's edge: partly inside a place's box or a node's frame."""
    found = []
    for text in texts:
        tx, ty, tw, th = (float(v) for v in text[:4])  # type: ignore[arg-type]
        for rx, ry, rw, rh in rects:
            overlap = min(tx + tw, rx + rw) - max(tx, rx) > TOLERANCE and (
                min(ty + th, ry + rh) - max(ty, ry) > TOLERANCE
            )
            inside = (
                tx >= rx - TOLERANCE
                and ty >= ry - TOLERANCE
                and tx + tw <= rx + rw + TOLERANCE
                and ty + th <= ry + rh + TOLERANCE
            )
            if overlap and not inside:
                found.append(str(text[4]))
    return found


def overlapping(texts: list[list[object]]) -> list[tuple[object, object]]:
    found = []
    for a, b in itertools.combinations(texts, 2):
        ax, ay, aw, ah = (float(v) for v in a[:4])  # type: ignore[arg-type]
        bx, by, bw, bh = (float(v) for v in b[:4])  # type: ignore[arg-type]
        if min(ax + aw, bx + bw) - max(ax, bx) > TOLERANCE and (
            min(ay + ah, by + bh) - max(ay, by) > TOLERANCE
        ):
            found.append((a[4], b[4]))
    return found


@pytest.mark.parametrize("tour_walk", TOUR, ids=[t.id for t in TOUR])
def test_each_page_in_chromium(report: Path, screenshots: Path, tour_walk: TourWalk) -> None:
    page = report / f"{tour_walk.id}.html"
    data = layout(page)
    texts: list[list[object]] = data["texts"]  # type: ignore[assignment]
    x, y, width, height = (float(v) for v in data["view"])  # type: ignore[union-attr]
    assert overlapping(texts) == []
    assert crossing(texts, data["rects"]) == []  # type: ignore[arg-type]
    outside = [
        t[4] for t in texts
        if float(t[0]) < x - TOLERANCE or float(t[1]) < y - TOLERANCE  # type: ignore[arg-type]
        or float(t[0]) + float(t[2]) > x + width + TOLERANCE  # type: ignore[arg-type]
        or float(t[1]) + float(t[3]) > y + height + TOLERANCE  # type: ignore[arg-type]
    ]  # fmt: skip
    assert outside == []
    hops: list[str] = data["hops"]  # type: ignore[assignment]
    assert hops == [str(n) for n in range(1, len(hops) + 1)] and hops
    built = state_cache.build(None, tour_walk.variant)
    first = next(iter(tour_walk.run(built.state, built.labels).leaves()))[2]
    rewrites = [
        step
        for one in (first, first.reply)
        if one is not None
        for hop in one.hops
        for step in hop.steps
        if step.rewrote and step.before is not None and step.after is not None
        and step.before.five_tuple() != step.after.five_tuple()
    ]  # fmt: skip
    labelled = [str(t[4]) for t in texts if " → " in str(t[4]) and str(t[4]).startswith("   ")]
    for step in rewrites:
        assert step.before is not None and step.after is not None
        wanted = f"{step.before.five_tuple()} → {step.after.five_tuple()}"
        assert any(wanted[:60] in label for label in labelled), wanted
    subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={screenshots / (tour_walk.id + '.png')}", "--window-size=1600,1400",
         page.as_uri()],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (screenshots / f"{tour_walk.id}.png").stat().st_size > 0


def test_the_index_lists_the_tour_in_order(report: Path) -> None:
    index = (report / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)\.html"', index)
    assert links == [t.id for t in TOUR]
    for page in report.glob("*.html"):
        text = page.read_text(encoding="utf-8").replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http://" not in text and "https://" not in text, page.name


def test_the_layout_checks_can_fail() -> None:
    """The checks above, on boxes that break them: text over text, text across an edge."""
    assert overlapping([[0, 0, 50, 14, "a"], [40, 5, 50, 14, "b"]]) == [("a", "b")]
    assert crossing([[90, 10, 30, 14, "spills"]], [[0, 0, 100, 100]]) == ["spills"]
    assert crossing([[10, 10, 30, 14, "inside"]], [[0, 0, 100, 100]]) == []
