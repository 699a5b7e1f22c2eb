"""`--set KEY=VALUE` through the installed `eksnet`: the walk, `exec` (fast path and typer) and
the state cache answer for the overridden spec; a bad `--set` is one line `eksnet: --set …`,
exit 2, naming the `--set` rather than a line of the file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.cli.test_errors import assert_one_error_line
from tests.entry_point import eksnet_command
from typer.testing import CliRunner

NODE1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
POD51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD61 = "pod/default/rating-6d8b7c9f5-q6m4t"
EXTERNAL_SNAT = "cni.env.AWS_VPC_K8S_CNI_EXTERNALSNAT=true"
IPTABLES_NAT = ("--", "iptables-save", "-t", "nat")


def run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """`eksnet ARGS` with its state cache in `cache` (on, whatever the caller's environment)."""
    env = {key: value for key, value in os.environ.items() if key != "EKSNET_CACHE"}
    env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run(
        [*eksnet_command(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def cached(cache: Path) -> list[Path]:
    return sorted((cache / "eksnet").glob("*.pickle"))


def test_a_set_changes_what_exec_prints(tmp_path: Path) -> None:
    plain = run("exec", NODE1, *IPTABLES_NAT, cache=tmp_path)
    snat = run("exec", NODE1, "--set", EXTERNAL_SNAT, *IPTABLES_NAT, cache=tmp_path)
    assert (plain.returncode, snat.returncode) == (0, 0), (plain.stderr, snat.stderr)
    # with external SNAT, ipamd writes no SNAT rules: the NAT gateway translates instead
    assert '"AWS, SNAT"' in plain.stdout and '"AWS, SNAT"' not in snat.stdout
    assert "-j AWS-SNAT-CHAIN-0" in plain.stdout and "-j AWS-SNAT-CHAIN-0" not in snat.stdout


def test_the_cache_is_keyed_by_the_overrides(tmp_path: Path) -> None:
    """Same spec, another --set: another answer, cold and warm."""
    for _ in range(2):
        plain = run("exec", NODE1, *IPTABLES_NAT, cache=tmp_path)
        snat = run("exec", NODE1, f"--set={EXTERNAL_SNAT}", *IPTABLES_NAT, cache=tmp_path)
        off = run(
            "exec", NODE1, "--set", EXTERNAL_SNAT.replace("true", "false"), *IPTABLES_NAT,
            cache=tmp_path,
        )  # fmt: skip
        assert '"AWS, SNAT"' in plain.stdout and '"AWS, SNAT"' not in snat.stdout
        assert off.stdout == plain.stdout
        assert len(cached(tmp_path)) == 3


def test_typer_reads_set_as_the_fast_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eksnet.cli import app, plain_exec

    monkeypatch.setenv("EKSNET_CACHE", "off")
    argv = ["exec", NODE1, "--set", EXTERNAL_SNAT, "--set=kubeProxy.masqueradeAll=true"]
    line = plain_exec([*argv, *IPTABLES_NAT])
    assert line is not None
    assert line.overrides == (EXTERNAL_SNAT, "kubeProxy.masqueradeAll=true")
    fast = run(*argv, *IPTABLES_NAT, cache=tmp_path)
    slow = CliRunner().invoke(app, [*argv, *IPTABLES_NAT])
    assert (fast.returncode, fast.stdout) == (slow.exit_code, slow.stdout)
    assert "KUBE-MARK-MASQ" in fast.stdout


def test_set_composes_with_variant(tmp_path: Path) -> None:
    """`--variant nat --set …EXTERNALSNAT=true` is the spec's own `externalSnat` variant."""
    walk = ("walk", POD61, "ip/198.51.100.20", "--port", "443")
    declared = run(*walk, "--variant", "externalSnat", cache=tmp_path)
    composed = run(*walk, "--variant", "nat", "--set", EXTERNAL_SNAT, cache=tmp_path)
    nat_only = run(*walk, "--variant", "nat", cache=tmp_path)
    assert declared.returncode == composed.returncode == nat_only.returncode == 0
    assert composed.stdout == declared.stdout
    assert composed.stdout != nat_only.stdout
    # W10d: with external SNAT the pod's own address leaves the node
    assert "192.168.1.61:41000 > 198.51.100.20:443" in composed.stdout


def test_a_walk_to_imds_through_a_node_named_with_dots(tmp_path: Path) -> None:
    walk = ("walk", POD51, "ip/169.254.169.254", "--port", "80")
    dropped = run(*walk, cache=tmp_path)
    node = NODE1.removeprefix("node/")
    delivered = run(*walk, "--set", f"nodes.{node}.imds.hopLimit=2", cache=tmp_path)
    assert "⇒ dropped: TTL exceeded" in dropped.stdout
    assert delivered.stdout.count("⇒ delivered") == 2, delivered.stdout


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("kubeProxy.masqueradAll=true", "kubeProxy has no field 'masqueradAll'"),
        ("cni.evn.X=1", "did you mean env?"),
        ("nodes.ip-192-168-1-5.imds.hopLimit=2", "did you mean ip-192-168-1-50.eu-west-2"),
        ("nodeDefaults.imds=2", "imds holds a mapping; --set sets one value"),
        ("vpc.subnets=x", "subnets holds a list; --set sets one value"),
        ("nodeDefaults.imds.hopLimit=0", "hopLimit: Input should be greater than or equal to 1"),
        ("nodeDefaults.imds.httpTokens=maybe", "httpTokens: Input should be 'required'"),
        ("vpc.subnets.public-a.routeTable=rtb-nowhere", "unknown route table"),
        ("nodeDefaults.imds.hopLimit", "not KEY=VALUE"),
    ],
)
def test_a_bad_set_is_one_line_naming_it(tmp_path: Path, setting: str, says: str) -> None:
    result = run(
        "walk", POD51, "ip/198.51.100.20", "--port", "443", "--set", setting, cache=tmp_path
    )
    line = assert_one_error_line(result, f"eksnet: --set {setting}: ", says, "(fix: ")
    assert "talk.yaml" not in line
    assert cached(tmp_path) == []


def test_exec_fast_path_reports_a_bad_set_the_same_way(tmp_path: Path) -> None:
    result = run("exec", NODE1, "--set", "cni.env=x", "--", "ip", "rule", cache=tmp_path)
    assert_one_error_line(result, "eksnet: --set cni.env=x: env holds a mapping")


def test_a_string_setting_stays_a_string(tmp_path: Path) -> None:
    """`cni.env` values are text: `true` is set as "true", so the file's own checks pass."""
    result = run("exec", NODE1, "--set", EXTERNAL_SNAT, "--", "ip", "rule", cache=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
