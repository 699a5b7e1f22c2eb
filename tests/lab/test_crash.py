"""`lab down` cleans up after `lab up` died anywhere; Ctrl-C cleans up by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from eksnet.lab import lifecycle
from eksnet.lab.lifecycle import CHECKPOINT_ENV
from eksnet.lab.names import PREFIX_ENV, LabNames

pytestmark = pytest.mark.lab


def start_up(names: LabNames, stop_at: str | None) -> subprocess.Popen[str]:
    env = dict(os.environ, **{PREFIX_ENV: names.prefix})
    if stop_at:
        env[CHECKPOINT_ENV] = stop_at
    return subprocess.Popen(
        [sys.executable, "-m", "eksnet.lab.cli", "up"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def wait_checkpoint(proc: subprocess.Popen[str], name: str) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        if f"eksnet-lab-checkpoint {name}" in line:
            return
        assert time.monotonic() < deadline
    raise AssertionError(f"`lab up` ended before checkpoint {name}")


@pytest.mark.parametrize("point", ["start", "links", "half-configured", "configured"])
def test_sigkill_then_down_leaves_nothing(capable: None, point: str) -> None:
    names = LabNames(f"eksnet-tx-kill-{point}-")
    lifecycle.down(names)
    proc = start_up(names, point)
    wait_checkpoint(proc, point)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if point != "start":
        assert lifecycle.lab_netns(names), "the crash should have left namespaces behind"
    lifecycle.down(names)
    assert lifecycle.lab_netns(names) == ()


@pytest.mark.parametrize("delay", [0.45, 0.6, 0.9])
def test_sigkill_at_arbitrary_moments(capable: None, delay: float) -> None:
    names = LabNames(f"eksnet-tx-killt{int(delay * 100)}-")
    lifecycle.down(names)
    proc = start_up(names, None)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lifecycle.down(names)
    assert lifecycle.lab_netns(names) == ()


@pytest.mark.parametrize("point", ["links", "half-configured"])
def test_ctrl_c_cleans_up_by_itself(capable: None, point: str) -> None:
    names = LabNames(f"eksnet-tx-int-{point}-")
    lifecycle.down(names)
    proc = start_up(names, point)
    wait_checkpoint(proc, point)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert lifecycle.lab_netns(names) == ()
