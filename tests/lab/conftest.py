"""Fixtures for the lab tests: prefixes of this run, the capability check, the demo lab.

Lab tests run as root on the real kernel. A machine without a capability fails them with the
lab's own message naming exactly what is missing; they never pass by skipping. Every lab a test
builds has a prefix of this run (`scratch.RUN_PREFIX`), and the session ends by checking that
nothing of the run is left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.lab.scratch import Scratch, run_leftovers, run_names, sweep_run

from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle, system
from eksnet.lab.names import PREFIX_ENV, LabNames


@pytest.fixture(scope="session")
def capable() -> None:
    missing = system.missing_capabilities()
    if missing:
        pytest.fail("the lab cannot run on this machine; missing: " + "; ".join(missing))


@pytest.fixture(scope="session", autouse=True)
def nothing_of_the_run_left() -> Iterator[None]:
    """After the last lab test: no namespace or run file of this run exists. Whatever a test
    left is removed here too, and the session fails saying what it was."""
    yield
    left = run_leftovers()
    if left:
        sweep_run()
        pytest.fail(f"lab tests left behind: {', '.join(left)}")


@pytest.fixture(scope="session")
def names() -> LabNames:
    """The demo lab's prefix for this session: never a user's lab, nor another run's."""
    return run_names("demo")


@pytest.fixture()
def scratch(capable: None) -> Iterator[Scratch]:
    """Labs and `lab up` children of one test, killed and taken down in teardown even when the
    test fails mid-way; teardown fails if anything of them is left."""
    with Scratch() as made:
        yield made


@pytest.fixture(scope="session")
def demo_state() -> DataplaneState:
    from eksnet.lab.cli import load_state

    return load_state(None)


@pytest.fixture(scope="session")
def demo_lab(capable: None, names: LabNames, demo_state: DataplaneState) -> Iterator[LabNames]:
    """The demo cluster built once for the session, settled, and removed at the end."""
    try:
        lifecycle.up(demo_state, names)
        lifecycle.settle(names)
        yield names
    finally:
        lifecycle.down(names)
    assert lifecycle.lab_netns(names) == ()


@pytest.fixture()
def lab_env(names: LabNames) -> dict[str, str]:
    """Environment for running the CLI as a subprocess against the test's prefix."""
    return dict(os.environ, **{PREFIX_ENV: names.prefix})


def _built(tag: str, state: DataplaneState) -> Iterator[tuple[LabNames, DataplaneState]]:
    names = run_names(tag)
    try:
        lifecycle.up(state, names)
        lifecycle.settle(names)
        yield names, state
    finally:
        lifecycle.down(names)


@pytest.fixture(scope="session")
def split_lab(
    capable: None, demo_state: DataplaneState
) -> Iterator[tuple[LabNames, DataplaneState]]:
    """The demo with a 50/50 DNAT on node 1 (`states.split_state`), built once."""
    from tests.lab.states import split_state

    yield from _built("split", split_state(demo_state))


@pytest.fixture(scope="session")
def loose_lab(
    capable: None, demo_state: DataplaneState
) -> Iterator[tuple[LabNames, DataplaneState]]:
    """The demo with loose rp_filter on node 3's eth1 (`states.loose_state`), built once."""
    from tests.lab.states import loose_state

    yield from _built("loose", loose_state(demo_state))


@pytest.fixture(scope="session")
def marked_lab(
    capable: None, demo_state: DataplaneState
) -> Iterator[tuple[LabNames, DataplaneState]]:
    """The demo with mark 0x4000 set on node 1's pod traffic (`states.marked_state`)."""
    from tests.lab.states import marked_state

    yield from _built("marked", marked_state(demo_state))


@pytest.fixture(scope="session")
def reject_lab(
    capable: None, demo_state: DataplaneState
) -> Iterator[tuple[LabNames, DataplaneState]]:
    """The demo with a REJECT for an unserved ClusterIP on node 1 (`states.reject_state`)."""
    from tests.lab.states import reject_state

    yield from _built("reject", reject_state(demo_state))


@pytest.fixture(scope="session")
def no_node_port_lab(capable: None) -> Iterator[tuple[LabNames, DataplaneState]]:
    """The demo under its `noNodePortSupport` variant (no M1: NodePort connections are never
    marked 0x80), built once: W4b's reply from pod 81 then leaves eth1."""
    from eksnet.controllers import build_state
    from eksnet.model import load_cluster

    yield from _built("nonp", build_state(load_cluster(variant="noNodePortSupport")))
