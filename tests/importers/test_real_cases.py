"""Real cases from public bug reports, each a folder of `cases/`: a node's dumps as the reporter
posted them (completed only where a consistent node needed it; `source.md` says which lines are
whose), a cluster spec of that node, and the verdict the maintainers confirmed (`expected.yaml`).

For now each case is checked for consistency only: the spec loads and the controllers build it,
every dump file parses, and every expected finding's line is where the verdict says: a `missing`
line is in the healthy state and not in the dump, an `extra` line in the dump and not in the
healthy state, a `changed` line in the dump while the healthy state holds the same key with
another value. Lines are compared as `ip`, `iptables-save` and `sysctl` print them: the healthy
state through `render/linux`, the dump's rules re-rendered after parsing (a paste's spaces
become `ip`'s tab). `eksnet check` and `walk --explain` will later be held to the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from eksnet.controllers.cluster import build_state
from eksnet.dataplane.state import Namespace
from eksnet.importers.bundle import PLAIN_FILES, ObservedNode, observe
from eksnet.model.load import load_cluster
from eksnet.render.linux import ip_neigh, ip_route, ip_rule, iptables_save, sysctl_read

CASES = Path(__file__).parent / "cases"
KINDS = ("rule", "route", "table", "iptables", "sysctl", "neighbour")
DIFFERENCES = ("missing", "extra", "changed")


@dataclass(frozen=True)
class Case:
    folder: Path
    expected: dict[str, Any]
    healthy: Namespace
    observed: ObservedNode
    files: dict[str, str]


@cache
def load_case(slug: str) -> Case:
    folder = CASES / slug
    expected = yaml.safe_load((folder / "expected.yaml").read_text())
    node = expected["node"]
    state = build_state(load_cluster(folder / "cluster.yaml"))
    healthy = next(ns for ns in state.namespaces if ns.name == node)
    files = {name: (folder / name).read_text() for name in PLAIN_FILES if (folder / name).is_file()}
    return Case(folder, expected, healthy, observe(files, str(folder), node), files)


def sysctl_pairs(text: str) -> dict[str, str]:
    """`KEY = VALUE` lines as procps prints them."""
    pairs = (line.partition(" = ") for line in text.splitlines() if " = " in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


def healthy_lines(ns: Namespace, kind: str, obj: str) -> set[str]:
    """The lines of `kind` the controllers' state prints (what a healthy node holds)."""
    if kind == "rule":
        return set(ip_rule(ns).splitlines())
    if kind in ("route", "table"):
        return {line.rstrip() for line in ip_route(ns, "all").splitlines()}
    if kind == "iptables":
        return set(iptables_save(ns).splitlines())
    if kind == "neighbour":
        return set(ip_neigh(ns).splitlines())
    key = obj.partition(" = ")[0]
    return set(sysctl_read(ns, key).splitlines())


def dump_lines(case: Case, kind: str) -> set[str]:
    """The lines of `kind` the dump shows (rules and routes as eksnet prints what it parsed)."""
    ns = case.observed.namespace
    if kind == "rule":
        assert case.observed.observed("rules")
        return set(ip_rule(ns).splitlines())
    if kind in ("route", "table"):
        assert case.observed.observed("routes")
        return {line.rstrip() for line in ip_route(ns, "all").splitlines()}
    if kind == "iptables":
        assert ns.iptables is not None and case.observed.observed("iptables")
        return set(ns.iptables.save.splitlines())
    if kind == "neighbour":
        assert case.observed.observed("neighbours")
        return set(ip_neigh(ns).splitlines())
    assert case.observed.observed("sysctls")
    return {f"{key} = {value}" for key, value in sysctl_pairs(case.files["sysctl.txt"]).items()}


def check_case(slug: str) -> None:
    check(load_case(slug), slug)


def check(case: Case, slug: str) -> None:
    expected = case.expected
    assert case.files, f"{slug}: no dump file of {sorted(PLAIN_FILES)}"
    for name in case.files:
        part, _ = PLAIN_FILES[name]
        assert case.observed.source(part) is not None, f"{slug}: {name} not read"
    if expected.get("cause") == "controllers":
        # the fault is the reported version's own rules: the dump's AWS rules are its rules
        assert not expected["findings"] and expected["fixed_in"], slug
        dumped = {line for line in dump_lines(case, "iptables") if "AWS" in line}
        healthy = {line for line in iptables_save(case.healthy).splitlines() if "AWS" in line}
        assert dumped == healthy, (slug, dumped ^ healthy)
    else:
        assert expected["findings"], f"{slug}: no finding"
    for finding in expected["findings"]:
        kind, obj, difference = finding["kind"], finding["object"], finding["difference"]
        assert kind in KINDS and difference in DIFFERENCES, finding
        healthy = healthy_lines(case.healthy, kind, obj)
        dumped = dump_lines(case, kind)
        if difference == "missing":
            assert obj in healthy, f"{slug}: a healthy node would not hold {obj!r}"
            assert obj not in dumped, f"{slug}: the dump holds {obj!r}"
        else:
            assert obj in dumped, f"{slug}: the dump does not hold {obj!r}"
            assert obj not in healthy, f"{slug}: a healthy node holds {obj!r} too"
        if difference == "changed":
            key = obj.partition(" = ")[0] if kind == "sysctl" else obj.split()[0]
            assert any(line.startswith(key) for line in healthy), (
                f"{slug}: a healthy node has no {key!r} to differ from"
            )
    walk = expected["walk"]
    assert walk["from"] and walk["to"] and isinstance(walk["port"], int)
    assert expected["explanation"].strip()
    source = (case.folder / "source.md").read_text()
    assert expected["source"] in source, f"{slug}: source.md does not cite {expected['source']}"


def test_systemd_networkd_deletes_pod_rules() -> None:
    """systemd-networkd removes the VPC CNI's rules 512/1536 of a pod on eth1 (and rule 1024).

    https://github.com/aws/amazon-vpc-cni-k8s/issues/1600
    """
    check_case("systemd-networkd-deletes-pod-rules")


def test_cni_v154_missing_pod_rules() -> None:
    """VPC CNI v1.5.4 leaves five pods without their `512: to POD lookup main` rule.

    https://github.com/aws/amazon-vpc-cni-k8s/issues/705 (dump), cause confirmed in
    https://github.com/aws/amazon-vpc-cni-k8s/issues/641 and
    https://github.com/aws/amazon-vpc-cni-k8s/pull/670
    """
    check_case("cni-v1.5.4-missing-pod-rules")


def test_ip_forward_off_stig_hardening() -> None:
    """A hardened AMI's STIG control leaves `net.ipv4.ip_forward = 0` on containerd nodes.

    https://github.com/aws-samples/amazon-eks-custom-amis/issues/45
    """
    check_case("ip-forward-off-stig-hardening")


def test_calico_mangle_accept_skips_connmark_restore() -> None:
    """Calico's cali-PREROUTING ACCEPTs before the VPC CNI's mangle connmark restore.

    https://github.com/aws/amazon-vpc-cni-k8s/pull/263 (with
    https://github.com/projectcalico/felix/issues/1840 for the chain's rules)
    """
    check_case("calico-mangle-accept-skips-connmark-restore")


def test_nodeport_support_off_no_mangle_restore() -> None:
    """NODE_PORT_SUPPORT=false on v1.10.1: no rule 1024, no `-i eni+` restore-mark rule in
    mangle, so node SNAT of secondary-ENI pods breaks; the version's own rules (fixed in v1.12.1).

    https://github.com/aws/amazon-vpc-cni-k8s/issues/2025, fixed by
    https://github.com/aws/amazon-vpc-cni-k8s/pull/2026
    """
    check_case("nodeport-support-off-no-mangle-restore")


def test_every_case_has_its_test() -> None:
    """Each folder of `cases/` is checked by a test of this module, and cites its source."""
    tested = {
        "systemd-networkd-deletes-pod-rules",
        "cni-v1.5.4-missing-pod-rules",
        "ip-forward-off-stig-hardening",
        "calico-mangle-accept-skips-connmark-restore",
        "nodeport-support-off-no-mangle-restore",
    }
    folders = {path.name for path in CASES.iterdir() if path.is_dir()}
    assert folders == tested
    for slug in folders:
        assert {"source.md", "cluster.yaml", "expected.yaml"} <= {
            path.name for path in (CASES / slug).iterdir()
        }


def iptables_table(ns: Namespace, line: str) -> str:
    """The table (`mangle`, `nat` …) whose `iptables-save` section holds `line`."""
    tables = [row[1:] for row in iptables_save(ns).splitlines() if row.startswith("*")]
    return next(table for table in tables if line in iptables_save(ns, table).splitlines())


def with_healthy_line(case: Case, finding: dict[str, Any]) -> dict[str, str]:
    """The dump as it would be had the node held, in the finding's place, what a healthy node
    holds: the missing line added, the extra line gone, the changed line at its healthy value."""
    kind, obj, difference = finding["kind"], finding["object"], finding["difference"]
    files = dict(case.files)
    if kind == "rule" and difference == "missing":
        files["ip-rule.txt"] += obj + "\n"
    elif kind == "sysctl" and difference == "changed":
        (healthy,) = healthy_lines(case.healthy, kind, obj)
        files["sysctl.txt"] = files["sysctl.txt"].replace(obj, healthy)
    elif kind == "iptables" and difference == "missing":
        text = files["iptables-save.txt"]
        at = text.index("COMMIT", text.index("*" + iptables_table(case.healthy, obj)))
        files["iptables-save.txt"] = text[:at] + obj + "\n" + text[at:]
    elif kind == "iptables" and difference == "extra":
        files["iptables-save.txt"] = files["iptables-save.txt"].replace(obj + "\n", "")
    else:
        raise AssertionError(f"no healthy counterpart written for a {difference} {kind}")
    return files


@pytest.mark.parametrize("slug", sorted(path.name for path in CASES.iterdir() if path.is_dir()))
def test_check_can_fail(slug: str) -> None:
    """Each case's check fails once the dump holds what a healthy node holds in place of any
    one finding: the consistency test is not vacuous."""
    case = load_case(slug)
    for finding in case.expected["findings"]:
        files = with_healthy_line(case, finding)
        broken = Case(
            case.folder, case.expected, case.healthy, observe(files, "broken", "n"), files
        )
        with pytest.raises(AssertionError):
            check(broken, slug)
