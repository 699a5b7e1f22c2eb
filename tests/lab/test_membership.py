"""Which namespaces belong to which lab (`lifecycle.members`, `claims`, run files): pure, no root.

The end-to-end behaviour on real namespaces is in test_lab_lifecycle.py and test_crash.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle, system
from eksnet.lab.lifecycle import Claim, members
from eksnet.lab.names import LabNames, prefix_of_run_file
from eksnet.lab.plan import build_plan

DEFAULT = "eksnet-lab-"
TEST = "eksnet-lab-t42-"


def claim(prefix: str, *names: str) -> Claim:
    return Claim(prefix, frozenset(names))


def test_own_recorded_names_are_members_and_others_recorded_names_are_not() -> None:
    present = ["eksnet-lab-node", "eksnet-lab-vpc", "eksnet-lab-t42-node", "eksnet-lab-t42-vpc"]
    claims = [
        claim(DEFAULT, "eksnet-lab-node", "eksnet-lab-vpc"),
        claim(TEST, "eksnet-lab-t42-node"),
    ]
    assert members(DEFAULT, present, claims) == ("eksnet-lab-node", "eksnet-lab-vpc")
    # the test lab's unrecorded leftover is still the test lab's: its prefix is the longer one
    assert members(TEST, present, claims) == ("eksnet-lab-t42-node", "eksnet-lab-t42-vpc")


def test_the_default_lab_without_a_run_file_spares_a_claimed_test_lab() -> None:
    """`lab down` when the default lab's run file is missing: its own leftovers go, the test
    lab that extends its prefix stays, and so does anything without the prefix."""
    present = ["eksnet-lab-node", "eksnet-lab-t42-node", "eksnet-test-fib-1", "eksnet-labx"]
    claims = [claim(TEST, "eksnet-lab-t42-node")]
    assert members(DEFAULT, present, claims) == ("eksnet-lab-node",)


def test_a_name_the_shorter_prefix_recorded_stays_with_it() -> None:
    """The default lab's state may have a namespace whose lab name starts with a test prefix;
    the record decides, not the longer prefix."""
    present = ["eksnet-lab-t42-odd"]
    claims = [claim(DEFAULT, "eksnet-lab-t42-odd"), claim(TEST)]
    assert members(DEFAULT, present, claims) == ("eksnet-lab-t42-odd",)
    assert members(TEST, present, claims) == ()


def test_a_name_two_run_files_record_is_nobodys() -> None:
    present = ["eksnet-lab-t42-x"]
    claims = [claim(DEFAULT, "eksnet-lab-t42-x"), claim(TEST, "eksnet-lab-t42-x")]
    assert members(DEFAULT, present, claims) == ()
    assert members(TEST, present, claims) == ()


def test_without_any_run_file_the_prefix_decides() -> None:
    """Nothing claims the longer lab (it never wrote a run file, so `up` never created
    anything; these were made by hand or by `build_plan`): they are leftovers of both."""
    present = ["eksnet-lab-a", "eksnet-lab-t42-a"]
    assert members(DEFAULT, present, []) == ("eksnet-lab-a", "eksnet-lab-t42-a")
    assert members(TEST, present, []) == ("eksnet-lab-t42-a",)


def test_a_prefix_without_its_dash_is_another_lab() -> None:
    present = ["eksnet-lab-a", "eksnet-labx-a"]
    claims = [claim("eksnet-lab"), claim(DEFAULT)]
    assert members("eksnet-lab", present, claims) == ("eksnet-labx-a",)
    assert members(DEFAULT, present, claims) == ("eksnet-lab-a",)
    assert LabNames("eksnet-lab").run_file != LabNames(DEFAULT).run_file


_SEGMENT = st.sampled_from(["a-", "b-", "ab-", "t1-", "t12-"])
_PREFIXES = st.lists(_SEGMENT, min_size=0, max_size=3).map(lambda s: DEFAULT + "".join(s))


@given(
    prefixes=st.sets(_PREFIXES, min_size=1, max_size=4),
    tails=st.lists(st.lists(_SEGMENT, max_size=3).map("".join), max_size=6),
    recorded=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=6),
)
def test_labs_with_run_files_never_share_a_namespace(
    prefixes: set[str], tails: list[str], recorded: list[tuple[int, int]]
) -> None:
    """For labs that all have run files: no namespace is a member of two of them (so no `down`
    deletes another lab's namespace), and every namespace one of their prefixes matches and at
    most one of them records is a member of exactly one (so none is stranded)."""
    ordered = sorted(prefixes)
    present = sorted({p + tail + "vpc" for p in ordered for tail in tails} | {"eksnet-probe"})
    records: dict[str, set[str]] = {p: set() for p in ordered}
    for which, index in recorded:
        prefix = ordered[which % len(ordered)]
        mine = [ns for ns in present if ns.startswith(prefix)]
        if mine:
            records[prefix].add(mine[index % len(mine)])
    claims = [Claim(p, frozenset(names)) for p, names in records.items()]
    owners = {ns: [p for p in ordered if ns in members(p, present, claims)] for ns in present}
    for ns, labs in owners.items():
        assert len(labs) <= 1, (ns, labs)
        recorders = [p for p, names in records.items() if ns in names]
        matched = any(ns.startswith(p) for p in ordered)
        if matched and len(recorders) <= 1:
            assert len(labs) == 1, (ns, recorders)
        if len(recorders) == 1:
            assert labs == recorders


# --- run files -----------------------------------------------------------------------------------


@pytest.fixture()
def demo() -> DataplaneState:
    from eksnet.lab.cli import load_state

    return load_state(None)


def test_run_file_round_trip_and_claims(tmp_path: Path, demo: DataplaneState) -> None:
    names = LabNames(TEST, run_dir=str(tmp_path))
    plan = build_plan(demo, names)
    lifecycle.write_run_file(names, plan, "cluster.yaml")
    assert os.listdir(tmp_path) == ["lab-eksnet-lab-t42-.json"]
    assert prefix_of_run_file("lab-eksnet-lab-t42-.json") == TEST
    record = lifecycle.read_run_file(names)
    assert record.cluster == os.path.abspath("cluster.yaml")
    assert set(record.recorded) == set(lifecycle.planned_netns(plan))
    # one per node and pod, the fabric, and what the lab adds: the internet (the demo has an
    # internet gateway), the IMDS (it has instances) and each load balancer node (5 × 3 AZs)
    assert len(record.recorded) == len(demo.namespaces) + 3 + 15
    assert names.internet in record.recorded
    assert names.attachment("imds") in record.recorded
    assert lifecycle.claims(names) == (Claim(TEST, frozenset(record.recorded)),)


def test_a_damaged_run_file_still_claims_by_its_prefix(tmp_path: Path) -> None:
    (tmp_path / "lab-eksnet-lab-t42-.json").write_text('{"prefix": "eksnet-lab-t42-", "na')
    (tmp_path / "lab-eksnet-lab-t42-.json.77.tmp").write_text("{}")  # a crashed write
    (tmp_path / "notes.txt").write_text("not a run file")
    names = LabNames(DEFAULT, run_dir=str(tmp_path))
    assert lifecycle.claims(names) == (Claim(TEST, frozenset()),)
    with pytest.raises(system.LabError, match="not a lab run file"):
        lifecycle.read_run_file(LabNames(TEST, run_dir=str(tmp_path)))


def test_a_run_file_cannot_claim_outside_its_prefix(tmp_path: Path) -> None:
    record = {
        "prefix": TEST,
        "cluster": None,
        "created": 0,
        "namespaces": {"a": "eksnet-lab-t42-a", "host": "eksnet-probe"},
        "fabric": "eksnet-lab-t42-vpc",
    }
    (tmp_path / "lab-eksnet-lab-t42-.json").write_text(json.dumps(record))
    names = LabNames(TEST, run_dir=str(tmp_path))
    assert lifecycle.claims(names) == (
        Claim(TEST, frozenset({"eksnet-lab-t42-a", "eksnet-lab-t42-vpc"})),
    )


def test_lab_netns_reads_the_namespaces_then_the_run_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` writes its run file before its first namespace; `lab_netns` must look in that
    order's reverse, or it could see a new namespace whose claim it read too early."""
    order: list[str] = []
    real_claims = lifecycle.claims

    def list_netns() -> tuple[str, ...]:
        order.append("netns")
        return ("eksnet-lab-a", "eksnet-lab-t42-a")

    def claims(names: LabNames) -> tuple[Claim, ...]:
        order.append("claims")
        return real_claims(names)

    monkeypatch.setattr(system, "list_netns", list_netns)
    monkeypatch.setattr(lifecycle, "claims", claims)
    (tmp_path / "lab-eksnet-lab-t42-.json").write_text(
        json.dumps({"prefix": TEST, "cluster": None, "namespaces": {}, "fabric": "x"})
    )
    assert lifecycle.lab_netns(LabNames(DEFAULT, run_dir=str(tmp_path))) == ("eksnet-lab-a",)
    assert order == ["netns", "claims"]


def test_down_keeps_the_run_file_while_namespaces_are_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `down` that could not delete everything keeps the claim, so the survivors are not
    taken for a shorter prefix's leftovers."""
    names = LabNames(TEST, run_dir=str(tmp_path))
    run_file = tmp_path / "lab-eksnet-lab-t42-.json"
    run_file.write_text(
        json.dumps(
            {"prefix": TEST, "cluster": None, "namespaces": {}, "fabric": "eksnet-lab-t42-vpc"}
        )
    )
    monkeypatch.setattr(system, "list_netns", lambda: ("eksnet-lab-t42-vpc",))
    monkeypatch.setattr(system, "netns_pids", lambda netns: ())
    monkeypatch.setattr(system, "run", lambda *args, **kwargs: None)  # the delete "fails"
    with pytest.raises(system.LabError, match="could not delete: eksnet-lab-t42-vpc"):
        lifecycle.down(names)
    assert run_file.exists()
    monkeypatch.setattr(system, "list_netns", lambda: ())
    assert lifecycle.down(names) == 0
    assert not run_file.exists()
