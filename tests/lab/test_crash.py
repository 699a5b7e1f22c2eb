"""`lab down` cleans up after `lab up` died anywhere; Ctrl-C and SIGTERM clean up by themselves.

Every child `lab up` runs in a process group of its own under a prefix of this run; the `scratch`
fixture kills the group and takes the lab down in teardown, so even a failing test, or a child
that ignores SIGINT and SIGTERM, leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from tests.lab.scratch import Scratch, lab_size, wait_checkpoint

from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle, system

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("point", ["start", "links", "half-configured", "configured"])
def test_sigkill_then_down_leaves_nothing(scratch: Scratch, point: str) -> None:
    names = scratch.names(f"kill-{point}")
    proc = scratch.start_up(names, point)
    wait_checkpoint(proc, point)
    assert scratch.kill(proc) == -signal.SIGKILL
    assert os.path.exists(names.run_file), "the run file is written before anything is created"
    if point != "start":
        assert lifecycle.lab_netns(names), "the crash should have left namespaces behind"
    lifecycle.down(names)
    assert lifecycle.lab_netns(names) == ()
    assert not os.path.exists(names.run_file)


def test_crash_before_the_run_file_leaves_nothing(scratch: Scratch) -> None:
    """`up` dies after planning, before its run file: it has created nothing, so there is
    nothing for `down` to find, and no claim left to confuse another lab's `down`."""
    names = scratch.names("kill-planned")
    proc = scratch.start_up(names, "planned")
    wait_checkpoint(proc, "planned")
    scratch.kill(proc)
    assert not os.path.exists(names.run_file)
    assert lifecycle.lab_netns(names) == ()
    assert lifecycle.down(names) == 0


def test_a_run_file_left_by_a_crash_that_created_nothing_does_not_block_up(
    scratch: Scratch, demo_state: DataplaneState
) -> None:
    names = scratch.names("stale")
    proc = scratch.start_up(names, "start")
    wait_checkpoint(proc, "start")
    scratch.kill(proc)
    assert os.path.exists(names.run_file) and lifecycle.lab_netns(names) == ()
    lifecycle.up(demo_state, names)
    assert len(lifecycle.lab_netns(names)) == lab_size(demo_state)


@pytest.mark.parametrize("delay", [0.45, 0.6, 0.9])
def test_sigkill_at_arbitrary_moments(scratch: Scratch, delay: float) -> None:
    """The whole process group dies (`up` and any `ip`/`iptables-restore` it is running), so no
    orphaned child goes on creating namespaces after `down` looked."""
    names = scratch.names(f"killt{int(delay * 100)}")
    proc = scratch.start_up(names)
    time.sleep(delay)
    scratch.kill(proc)
    lifecycle.down(names)
    assert lifecycle.lab_netns(names) == ()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("point", ["links", "half-configured"])
def test_interrupt_cleans_up_by_itself(
    scratch: Scratch, point: str, signum: signal.Signals
) -> None:
    names = scratch.names(f"int-{signum.name}-{point}")
    proc = scratch.start_up(names, point)
    wait_checkpoint(proc, point)
    os.kill(proc.pid, signum)
    assert proc.wait(timeout=30) == 130
    assert lifecycle.lab_netns(names) == ()
    assert not os.path.exists(names.run_file)


def test_ignored_signals_then_the_tests_own_cleanup(scratch: Scratch) -> None:
    """A `lab up` started with SIGINT and SIGTERM ignored survives both (the premise); the
    teardown's SIGKILL of its process group and `down` still leave nothing."""
    names = scratch.names("ignoring")
    proc = scratch.start_up(names, "half-configured", ignore=(signal.SIGINT, signal.SIGTERM))
    wait_checkpoint(proc, "half-configured")
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)
    assert lifecycle.lab_netns(names)
    scratch.close()
    assert proc.returncode == -signal.SIGKILL
    assert lifecycle.lab_netns(names) == ()
    assert not os.path.exists(names.run_file)


def test_a_test_failing_mid_way_leaves_nothing(capable: None) -> None:
    """What the `scratch` fixture does for a failing test: the failure propagates, the child is
    dead, the namespaces are gone."""
    with pytest.raises(RuntimeError, match="the test failed here"), Scratch() as scratch:
        names = scratch.names("failing")
        proc = scratch.start_up(names, "half-configured")
        wait_checkpoint(proc, "half-configured")
        assert lifecycle.lab_netns(names)
        raise RuntimeError("the test failed here")
    assert proc.returncode == -signal.SIGKILL
    assert lifecycle.lab_netns(names) == ()
    assert not os.path.exists(names.run_file)


def test_a_crashed_nested_lab_survives_the_outer_labs_down(
    scratch: Scratch, demo_state: DataplaneState
) -> None:
    """A run file left by a crash still claims its lab: `down` of a lab whose prefix the
    crashed one extends removes its own namespaces and not one of the crashed lab's."""
    outer = scratch.names("outer")
    inner = scratch.extend(outer, "inner")
    proc = scratch.start_up(inner, "half-configured")
    wait_checkpoint(proc, "half-configured")
    scratch.kill(proc)
    crashed = set(lifecycle.lab_netns(inner))
    assert crashed and all(ns.startswith(outer.prefix) for ns in crashed)
    lifecycle.up(demo_state, outer)
    assert not crashed & set(lifecycle.lab_netns(outer))
    assert lifecycle.down(outer) == lab_size(demo_state)
    assert set(lifecycle.lab_netns(inner)) == crashed
    assert lifecycle.down(inner) == len(crashed)
    assert not {ns for ns in system.list_netns() if ns.startswith(outer.prefix)}
