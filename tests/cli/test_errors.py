"""Errors through the installed `eksnet` command: one line on stderr, a non-zero exit, no traceback.

Every failure the user can cause (a bad cluster file, an unknown pod or node, a command `eksnet
exec` does not render, a bad option value, a missing file) is reported as exactly one line
starting `eksnet: `, with exit status 2 for bad input and 3 for what is not modelled yet
(`eksnet.cli` module docstring; `errors.py`). The real entry point is run in a subprocess, so a
traceback or a stray second line would show.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.entry_point import eksnet_command

from eksnet.model.load import demo_text

NODE1 = "ip-192-168-1-50.eu-west-2.compute.internal"
POD51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD61 = "pod/default/rating-6d8b7c9f5-q6m4t"
DEMO = demo_text()[0]

BAD_INPUT = 2
NOT_MODELLED = 3


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*eksnet_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_error_line(
    result: subprocess.CompletedProcess[str], *says: str, code: int = BAD_INPUT
) -> str:
    """Exactly one stderr line `eksnet: …` holding each of `says`, nothing on stdout."""
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.endswith("\n"), repr(stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("eksnet: "), line
    for part in says:
        assert part in line, f"{part!r} not in {line!r}"
    assert result.stdout == "", result.stdout
    assert result.returncode == code, (result.returncode, line)
    return line


def edited(old: str, new: str) -> str:
    assert DEMO.count(old) == 1, old
    return DEMO.replace(old, new)


def line_number(text: str, fragment: str) -> int:
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(found) == 1, (fragment, found)
    return found[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_command_prints_nothing_on_stderr(tmp_path: Path) -> None:
    result = run("exec", f"node/{NODE1}", "--", "ip", "rule", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # talk-walks.md §4.1, node 1 `ip rule show`, first and last lines.
    assert result.stdout.startswith("0:\tfrom all lookup local\n")
    assert result.stdout.endswith("32767:\tfrom all lookup default\n")


# A bad cluster file ----------------------------------------------------------------------------


def test_walk_with_a_yaml_syntax_error_in_the_cluster_file(tmp_path: Path) -> None:
    text = edited("region: eu-west-2\n", "region: eu-west-2: oops\n")
    path = write(tmp_path, "bad.yaml", text)
    result = run("walk", POD51, POD61, "--port", "80", "--cluster", str(path), cwd=tmp_path)
    line = line_number(text, "eu-west-2: oops")
    assert_one_error_line(result, f"{path}:{line}: ", "YAML syntax error", "(fix: ")


def test_walk_with_overlapping_subnets_in_the_cluster_file(tmp_path: Path) -> None:
    text = edited("cidr: 192.168.3.0/24", "cidr: 192.168.1.128/25")
    path = write(tmp_path, "bad.yaml", text)
    result = run("walk", POD51, POD61, "--port", "80", "--cluster", str(path), cwd=tmp_path)
    line = line_number(text, "192.168.1.128/25")
    assert_one_error_line(result, f"{path}:{line}: ", "overlaps", "(fix: ")


def test_exec_with_an_unknown_field_in_the_cluster_file(tmp_path: Path) -> None:
    text = edited("kubeProxy: {", "kubeproxy: {")
    path = write(tmp_path, "bad.yaml", text)
    result = run("exec", f"node/{NODE1}", "--cluster", str(path), "--", "ip", "rule", cwd=tmp_path)
    line = line_number(text, "kubeproxy:")
    assert_one_error_line(result, f"{path}:{line}: ", "unknown field", "(fix: ")


def test_relative_cluster_path_is_named_as_given(tmp_path: Path) -> None:
    text = edited('mac: "02:00:c0:a8:01:32"', 'mac: "02:00:c0:a8:01"')
    write(tmp_path, "bad.yaml", text)
    result = run("exec", f"node/{NODE1}", "--cluster", "bad.yaml", "--", "ip", "rule", cwd=tmp_path)
    line = line_number(text, '"02:00:c0:a8:01"')
    assert_one_error_line(result, f"eksnet: bad.yaml:{line}: ", "not a MAC address")


def test_missing_cluster_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run("walk", POD51, POD61, "--port", "80", "--cluster", str(missing), cwd=tmp_path)
    assert_one_error_line(result, str(missing), "no such file", "(fix: ")


def test_unknown_variant(tmp_path: Path) -> None:
    result = run("walk", POD51, POD61, "--port", "80", "--variant", "nats", cwd=tmp_path)
    assert_one_error_line(result, "unknown variant 'nats'", "externalSnat", "nat")


def test_not_modelled_feature_exits_3(tmp_path: Path) -> None:
    # vpc-cni.md §4.2: security groups for pods (ENABLE_POD_ENI) is outside the demo's model.
    text = edited(
        'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false"}',
        'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false", ENABLE_POD_ENI: "true"}',
    )
    path = write(tmp_path, "sgp.yaml", text)
    result = run("exec", f"node/{NODE1}", "--cluster", str(path), "--", "ip", "rule", cwd=tmp_path)
    assert_one_error_line(result, "not modelled yet", "ENABLE_POD_ENI", code=NOT_MODELLED)


# Unknown places --------------------------------------------------------------------------------


def test_exec_on_an_unknown_node(tmp_path: Path) -> None:
    result = run("exec", "node/nope", "--", "ip", "rule", cwd=tmp_path)
    assert_one_error_line(result, "unknown node 'nope'", f"node/{NODE1}")


def test_exec_on_an_unknown_pod(tmp_path: Path) -> None:
    result = run("exec", "pod/default/nope", "--", "ip", "a", cwd=tmp_path)
    assert_one_error_line(result, "unknown pod 'default/nope'", POD61)


def test_walk_from_an_unknown_pod(tmp_path: Path) -> None:
    result = run("walk", "pod/default/nope", POD61, "--port", "80", cwd=tmp_path)
    assert_one_error_line(result, "default/nope")


def test_walk_to_an_unknown_node(tmp_path: Path) -> None:
    result = run("walk", POD51, "node/nope", "--port", "80", cwd=tmp_path)
    assert_one_error_line(result, "nope")


@pytest.mark.parametrize(
    ("target", "says"),
    [
        (
            "nodes/x",
            "is not node/NAME, pod/NAMESPACE/NAME, svc/NAMESPACE/NAME, lb/NAMESPACE/SERVICE, ingress/NAMESPACE/NAME, dns/NAME or ip/ADDRESS",
        ),
        (
            "pod/nope",
            "is not node/NAME, pod/NAMESPACE/NAME, svc/NAMESPACE/NAME, lb/NAMESPACE/SERVICE, ingress/NAMESPACE/NAME, dns/NAME or ip/ADDRESS",
        ),
        (
            "x",
            "is not node/NAME, pod/NAMESPACE/NAME, svc/NAMESPACE/NAME, lb/NAMESPACE/SERVICE, ingress/NAMESPACE/NAME, dns/NAME or ip/ADDRESS",
        ),
        ("ip/300.1.1.1", "'300.1.1.1' is not an IPv4 address"),
    ],
)
def test_malformed_exec_target(tmp_path: Path, target: str, says: str) -> None:
    result = run("exec", target, "--", "ip", "rule", cwd=tmp_path)
    assert_one_error_line(result, f"target {target!r}", says)


# What exec and walk accept ---------------------------------------------------------------------


def test_exec_of_an_unsupported_command(tmp_path: Path) -> None:
    result = run("exec", f"node/{NODE1}", "--", "ip", "xfrm", "state", cwd=tmp_path)
    line = assert_one_error_line(result, "ip xfrm state")
    # It says what is supported instead.
    assert "ip rule" in line


@pytest.mark.parametrize("proto", ["gre", "TCP", "6"])
def test_walk_with_a_bad_proto(tmp_path: Path, proto: str) -> None:
    result = run("walk", POD51, POD61, "--port", "80", "--proto", proto, cwd=tmp_path)
    assert_one_error_line(result, "'--proto'", f"{proto!r} is not one of", "(fix: --proto tcp")
