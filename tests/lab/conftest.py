"""Fixtures for the lab tests: a prefix of their own, the capability check, the demo lab.

Lab tests run as root on the real kernel. A machine without a capability fails them with the
lab's own message naming exactly what is missing; they never pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle, system
from eksnet.lab.names import PREFIX_ENV, LabNames


@pytest.fixture(scope="session")
def capable() -> None:
    missing = system.missing_capabilities()
    if missing:
        pytest.fail("the lab cannot run on this machine; missing: " + "; ".join(missing))


@pytest.fixture(scope="session")
def names() -> LabNames:
    """A prefix per test session, so tests never touch a user's lab (or each other's)."""
    return LabNames(f"eksnet-t{os.getpid()}-")


@pytest.fixture(scope="session")
def demo_state() -> DataplaneState:
    from eksnet.lab.cli import load_state

    return load_state(None)


@pytest.fixture(scope="session")
def demo_lab(capable: None, names: LabNames, demo_state: DataplaneState) -> Iterator[LabNames]:
    """The demo cluster built once for the session, settled, and removed at the end."""
    lifecycle.down(names)
    lifecycle.up(demo_state, names)
    lifecycle.settle(names)
    yield names
    lifecycle.down(names)
    assert lifecycle.lab_netns(names) == ()


@pytest.fixture()
def lab_env(names: LabNames) -> dict[str, str]:
    """Environment for running the CLI as a subprocess against the test's prefix."""
    return dict(os.environ, **{PREFIX_ENV: names.prefix})
