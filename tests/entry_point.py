"""The project's own `eksnet` entry point, for tests that run the command in a fresh process.

Always the console script installed beside this interpreter (`.venv/bin/eksnet`), never one
found on `PATH`: from a clean shell `PATH` has none, and where some other `eksnet` is on `PATH`
a test would silently exercise that one instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def eksnet_command() -> list[str]:
    beside = Path(sys.executable).with_name("eksnet")
    assert beside.exists(), f"{beside} is missing: install the project (./setup.sh)"
    return [str(beside)]


def run_eksnet(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`eksnet ARGS…` in a fresh process, its output captured as text, never raising on a
    non-zero exit (the tests read `returncode`)."""
    return subprocess.run(
        [*eksnet_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
