"""`eksnet tour --lab --html DIR`: the report carries the kernel's verdict on each walk."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.entry_point import eksnet_command

from eksnet.lab.names import LabNames

pytestmark = pytest.mark.lab


def test_the_report_says_what_the_kernel_said(
    demo_lab: LabNames, lab_env: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "report"
    result = subprocess.run(
        [*eksnet_command(), "tour", "--lab", "--walk", "W1", "--walk", "X12",
         "--html", str(report)],
        capture_output=True, text=True, timeout=300, check=False, env=lab_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for walk_id, ending in (("W1", "endings: delivered, delivered"), ("X12", "delivered, ttl")):
        page = (report / f"{walk_id}.html").read_text(encoding="utf-8")
        assert "<h2>On the kernel: agree</h2>" in page
        assert ending in page
