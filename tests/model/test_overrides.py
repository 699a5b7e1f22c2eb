"""`--set KEY=VALUE`: one scalar of the spec overridden without editing it, judged exactly as if
the file said it; mistakes are one line naming the `--set`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eksnet.controllers import build_state
from eksnet.errors import InputError
from eksnet.model import load_cluster

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"


def test_a_string_setting_stays_a_string() -> None:
    cluster = load_cluster(overrides=["cni.env.AWS_VPC_K8S_CNI_EXTERNALSNAT=true"])
    assert cluster.cni.env["AWS_VPC_K8S_CNI_EXTERNALSNAT"] == "true"


def test_a_field_the_file_does_not_spell_out_is_set_through_the_schema() -> None:
    cluster = load_cluster(overrides=[f"nodes.{NODE_1}.imds.hopLimit=2"])
    instance = build_state(cluster).vpc.instance(NODE_1)
    assert instance is not None and (instance.hop_limit, instance.http_tokens) == (2, "required")


def test_overrides_apply_after_the_variant_and_in_order() -> None:
    cluster = load_cluster(
        variant="nat",
        overrides=["vpc.subnets.public-a.routeTable=rtb-public", "kubeProxy.masqueradeAll=true"],
    )
    assert cluster.subnet("public-a").route_table == "rtb-public"  # the variant said private
    assert cluster.kube_proxy.masquerade_all is True


def test_a_free_mapping_key_may_hold_dots() -> None:
    cluster = load_cluster(overrides=["nodeDefaults.sysctls.net.ipv4.conf.all.rp_filter=2"])
    assert cluster.node_defaults.sysctls["net.ipv4.conf.all.rp_filter"] == 2


@pytest.mark.parametrize(
    "setting, says",
    [
        ("nodeDefaults.imds.hopLimt=2", "did you mean hopLimit?"),
        ("nodes.ip-192-168-1-5.imds.hopLimit=2", f"did you mean {NODE_1}?"),
        ("nodeDefaults.imds=2", "imds holds a mapping"),
        ("vpc.securityGroups.sg-cluster.inbound=3", "inbound holds a list"),
        ("nodeDefaults.imds.hopLimit", "not KEY=VALUE"),
        ("nodeDefaults.imds.hopLimit=0", "greater than or equal to 1"),
        ("vpc.subnets.public-a.routeTable=rtb-nowhere", "unknown route table"),
    ],
)
def test_a_bad_override_is_one_error_naming_it(setting: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        build_state(load_cluster(overrides=[setting]))
    line = caught.value.one_line()
    assert line.startswith(f"--set {setting.partition('=')[0]}") and says in line, line
    assert "\n" not in line


def run(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("eksnet")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


def test_exec_answers_for_the_overridden_cluster(tmp_path: Path) -> None:
    node = f"node/{NODE_1}"
    plain = run("exec", node, "--", "iptables-save", "-t", "nat")
    snat = run(
        "exec",
        node,
        "--set",
        "cni.env.AWS_VPC_K8S_CNI_EXTERNALSNAT=true",
        "--",
        "iptables-save",
        "-t",
        "nat",
    )
    assert plain.returncode == snat.returncode == 0
    assert '"AWS, SNAT"' in plain.stdout and '"AWS, SNAT"' not in snat.stdout
    # the state cache keys on the overrides: asking again without them answers as before
    again = run("exec", node, "--", "iptables-save", "-t", "nat")
    assert again.stdout == plain.stdout


def test_walk_with_a_set_turns_the_imds_drop_into_a_delivery() -> None:
    args = ("walk", "pod/default/app2-7c9f8d6b5-k5x2p", "ip/169.254.169.254", "--port", "80")
    dropped = run(*args)
    delivered = run(*args, "--set", "nodeDefaults.imds.hopLimit=2")
    assert "⇒ dropped: TTL exceeded" in dropped.stdout
    assert delivered.stdout.count("⇒ delivered") == 2


def test_a_bad_set_on_the_command_line_exits_2_with_one_line() -> None:
    result = run(
        "walk",
        "pod/default/app2-7c9f8d6b5-k5x2p",
        "ip/198.51.100.20",
        "--port",
        "443",
        "--set",
        "cni.evn.X=1",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("eksnet: --set cni.evn.X=1:") and result.stderr.count("\n") == 1
    assert "did you mean env?" in result.stderr
