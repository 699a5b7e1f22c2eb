"""`eksnet check` and `walk --explain` held to the real cases' confirmed verdicts.

Each folder of `cases/` (see test_real_cases.py and each `source.md` for the public report, its
URL and what was completed) is imported as a cluster whose node has the reporter's dumps: the
check must report every finding the maintainers confirmed, and the failing walk the report
describes must end otherwise on the imported node than on a healthy one, with `--explain`
naming one of those findings as the cause and its fix. A case whose fault is the controllers'
own rules at the reported version (`cause: controllers`, with the release that fixed it) has no
drift to find: its node's rules of that controller must be as the version writes them, its walk
must end the same way (dropped as `drop` says) on the imported and the derived state, and the
fixing release must deliver it, its reply and its later packet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.diagnose.drift import Finding, differences, outcome
from eksnet.diagnose.explain import explain
from eksnet.model import load_cluster
from eksnet.state_cache import build
from eksnet.walk.engine import walk

CASES = Path(__file__).parent / "cases"
SLUGS = sorted(p.name for p in CASES.iterdir() if (p / "expected.yaml").is_file())


def imported(slug: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    folder = CASES / slug
    expected = yaml.safe_load((folder / "expected.yaml").read_text())
    spec = (folder / "cluster.yaml").read_text()
    spec += f"\nobserved:\n  - {{node: {expected['node']}, dump: {folder}}}\n"
    path = tmp_path / "cluster.yaml"
    path.write_text(spec)
    return path, expected


def fixed_state(path: Path, version: str) -> DataplaneState:
    """The case's cluster as the fixing release of the VPC CNI would write it (no dumps)."""
    return build_state(load_cluster(path, overrides=[f"cni.version={version}"]))


def matches(finding: Finding, wanted: dict[str, Any]) -> bool:
    shown = finding.object
    if finding.kind == "iptables":
        shown = shown.split(" ", 2)[2]  # drop `-t TABLE`
    return (finding.kind, shown, finding.difference) == (
        wanted["kind"], wanted["object"], wanted["difference"],
    )  # fmt: skip


@pytest.mark.parametrize("slug", SLUGS)
def test_check_reports_the_confirmed_findings(slug: str, tmp_path: Path) -> None:
    path, expected = imported(slug, tmp_path)
    observed = build(path, None).state
    derived = build_state(load_cluster(path))
    found = differences(derived, observed)
    for wanted in expected["findings"]:
        assert any(matches(f, wanted) for f in found), (wanted, [f.object for f in found])
    if expected.get("cause") == "controllers":
        ours = [f.object for f in found if f.kind == "iptables" and "AWS" in f.object]
        ours += [f.object for f in found if f.kind == "rule"]
        assert not ours, ours


@pytest.mark.parametrize("slug", SLUGS)
def test_explain_names_a_confirmed_cause(slug: str, tmp_path: Path) -> None:
    path, expected = imported(slug, tmp_path)
    observed = build(path, None).state
    derived = build_state(load_cluster(path))
    spec = expected["walk"]

    def run(state: Any) -> Any:
        return walk(state, spec["from"], spec["to"], dport=spec.get("port"))

    result = run(observed)
    if expected.get("cause") == "controllers":
        assert outcome(result) == outcome(run(derived))
        assert result.disposition is not None and result.disposition.kind == "dropped"
        assert result.disposition.reason.startswith(expected["drop"]), result.disposition
        fixed = fixed_state(path, expected["fixed_in"])
        mended = walk(fixed, spec["from"], spec["to"], dport=spec.get("port"), later=True)
        assert mended.disposition is not None and mended.disposition.kind == "delivered"
        assert mended.later is not None and mended.later.disposition is not None
        assert mended.later.disposition.kind == "delivered", mended.later.disposition
        return
    assert outcome(result) != outcome(run(derived)), "the imported node must fail the walk"
    lines = explain(run, result, derived, observed)
    causes = [line for line in lines if line.startswith("  cause: ")]
    assert causes, lines
    objects = [w["object"].replace("\t", " ") for w in expected["findings"]]
    assert any(any(o in line for o in objects) for line in causes), (causes, objects)
    assert any(line.startswith("    fix: ") for line in lines)
