"""The host namespace is byte-identical across lab up, verify and down."""

from __future__ import annotations

import pytest
from tests.lab.scratch import Scratch
from tests.lab.walks import w1

from eksnet.dataplane.state import DataplaneState
from eksnet.lab import hygiene, lifecycle
from eksnet.lab.verify import verify_walk

pytestmark = pytest.mark.lab


def test_host_namespace_unchanged(scratch: Scratch, demo_state: DataplaneState) -> None:
    names = scratch.names("hygiene")
    before = hygiene.snapshot()
    try:
        lifecycle.up(demo_state, names)
        lifecycle.settle(names)
        verdict = verify_walk(demo_state, w1(), names)
        assert verdict.agree, verdict.differences
        during = hygiene.snapshot()
    finally:
        lifecycle.down(names)
    after = hygiene.snapshot()
    assert hygiene.compare(before, during) == []
    assert hygiene.compare(before, after) == []
    assert lifecycle.lab_netns(names) == ()
