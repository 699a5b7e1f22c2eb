"""The pictures through the installed `eksnet`: `walk --svg/--html/--diagram`, `tour --html`."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from tests.cli.test_errors import assert_one_error_line
from tests.entry_point import run_eksnet

from eksnet.walk.tour import TOUR

W2 = (
    "walk",
    "pod/default/app2-7c9f8d6b5-k5x2p",
    "pod/default/app1-5f7d9c6b8-z8h4k",
    "--port",
    "80",
)


eksnet = run_eksnet


def test_walk_svg_html_and_diagram(tmp_path: Path) -> None:
    svg, html = tmp_path / "w2.svg", tmp_path / "w2.html"
    result = eksnet(*W2, "--svg", str(svg), "--html", str(html), "--diagram")
    assert result.returncode == 0, result.stderr
    root = ElementTree.fromstring(svg.read_text(encoding="utf-8"))
    assert root.get("viewBox", "").startswith("0 0 ")
    texts = [e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "node 1" in texts and "node 2" in texts
    assert any("rule 32766" in t for t in texts) and any("rule 1536 → table 2" in t for t in texts)
    assert "<svg" in html.read_text(encoding="utf-8")
    assert "node 1          pod 51          VPC             node 2          pod 81" in result.stdout


def test_a_split_walk_draws_its_first_way_and_says_so(tmp_path: Path) -> None:
    svg = tmp_path / "w3.svg"
    result = eksnet("walk", "pod/default/app2-7c9f8d6b5-k5x2p", "svc/default/app1", "--port", "80",
                    "--svg", str(svg))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "(1 of 3 ways)" in svg.read_text(encoding="utf-8")


def test_tour_html_writes_the_report(tmp_path: Path) -> None:
    result = eksnet("tour", "--html", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    pages = sorted(p.stem for p in (tmp_path / "report").glob("*.html"))
    assert pages == sorted([t.id for t in TOUR] + ["index"])


def test_an_unwritable_picture_is_one_line(tmp_path: Path) -> None:
    result = eksnet(*W2, "--svg", str(tmp_path / "missing" / "w2.svg"))
    assert_one_error_line(result, "eksnet: cannot write", "w2.svg")
