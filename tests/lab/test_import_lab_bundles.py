"""Issue 12's done-when, through the installed binary: `eksnet lab collect` on each demo node,
`eksnet import` of those bundles, and every tour walk as on the demo; a `512` rule deleted from
one bundle's `iprule.txt` reported by `eksnet check` (with the walk it breaks and the fix) and
named by `eksnet walk … --explain`.

Expected values: the rule is the VPC CNI plugin's `512: from all to <pod IP> lookup main`
(vpc-cni.md §2.5) for pod 61 (192.168.1.61, on node 1's eth1); X6 is the walk that needs it
(pod 61 to its own Service: without it, rule 1536 sends the hairpinned packet out of eth1).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.entry_point import run_eksnet

from eksnet.lab.names import LabNames

NODES = (
    "ip-192-168-1-50.eu-west-2.compute.internal",
    "ip-192-168-1-70.eu-west-2.compute.internal",
    "ip-192-168-2-90.eu-west-2.compute.internal",
)
RULE = "512:\tfrom all to 192.168.1.61 lookup main\n"


eksnet = run_eksnet


def without_rule(bundle: Path) -> None:
    """The bundle with the pod's 512 rule deleted from `networking/iprule.txt`."""
    with tarfile.open(bundle) as archive:
        members = [
            (m, archive.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in archive.getmembers()
        ]
    with tarfile.open(bundle, "w:gz") as archive:
        for member, data in members:
            if member.name.endswith("networking/iprule.txt") and data is not None:
                text = data.decode()
                assert RULE in text
                data = text.replace(RULE, "").encode()
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data) if data is not None else None)


def test_collect_import_tour_check_explain(
    demo_lab: LabNames, lab_env: dict[str, str], tmp_path: Path
) -> None:
    bundles = []
    for node in NODES:
        bundle = tmp_path / f"{node}.tar.gz"
        result = eksnet("lab", "collect", f"node/{node}", "--output", str(bundle), env=lab_env)
        assert result.returncode == 0, result.stderr
        bundles.append(str(bundle))
    spec = tmp_path / "imported.yaml"
    result = eksnet("import", *bundles, "--output", str(spec))
    assert result.returncode == 0, result.stderr
    demo = eksnet("tour")
    imported = eksnet("tour", "--cluster", str(spec))
    assert demo.returncode == imported.returncode == 0, imported.stderr
    facts = [line for line in imported.stdout.splitlines() if line.startswith("facts of ")]
    assert facts and all("observed in" in line or "all derived" in line for line in facts)
    assert [line for line in imported.stdout.splitlines() if not line.startswith("facts of ")] == (
        demo.stdout.splitlines()
    )
    healthy = eksnet("check", "--cluster", str(spec))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.count("as its controllers write it") == 3

    without_rule(Path(bundles[0]))
    check = eksnet("check", "--cluster", str(spec))
    assert check.returncode == 1, check.stdout + check.stderr
    assert "ERROR rule missing: 512: from all to 192.168.1.61 lookup main" in check.stdout
    assert "breaks: X6 (pod/default/rating-6d8b7c9f5-q6m4t → svc/default/rating:80)" in check.stdout
    assert "fix: ip rule add from all to 192.168.1.61 lookup main pref 512" in check.stdout
    explained = eksnet(
        "walk", "pod/default/rating-6d8b7c9f5-q6m4t", "svc/default/rating", "--port", "80",
        "--cluster", str(spec), "--explain",
    )  # fmt: skip
    assert explained.returncode == 0, explained.stderr
    causes = [line for line in explained.stdout.splitlines() if line.startswith("  cause: ")]
    assert len(causes) == 1 and "512: from all to 192.168.1.61 lookup main" in causes[0]
    assert "    fix: ip rule add from all to 192.168.1.61 lookup main pref 512" in explained.stdout
