"""`eksnet import`: dumps matched to their nodes, laid over them, and the walks they give.

The dumps here are plain dump folders printed from the demo's own state by the same views
`eksnet exec` answers with (`ip rule show`, `ip route show table all`, `iptables-save`) and
`sysctl -a`'s `key = value` lines: a healthy node's dump. Imported over the demo, they must give
every tour walk exactly as the demo does; with one rule deleted from one dump, the walk that
needs it must change (a check that can fail). The lab's own bundles (`eksnet lab collect`) are
imported in tests/lab/test_collect.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.entry_point import run_eksnet

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError
from eksnet.importers.importing import run
from eksnet.model import load_cluster
from eksnet.model.load import demo_text
from eksnet.render.exec import execute
from eksnet.render.walk_text import walk_lines
from eksnet.state_cache import build
from eksnet.walk.tour import TOUR

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"


def write_dumps(state: DataplaneState, folder: Path) -> list[Path]:
    """A plain dump folder per node, printed from `state`."""
    folders = []
    for namespace in state.nodes():
        target = folder / namespace.name
        target.mkdir()
        for file, argv in (
            ("ip-rule.txt", ["ip", "rule", "show"]),
            ("ip-route.txt", ["ip", "route", "show", "table", "all"]),
            ("iptables-save.txt", ["iptables-save"]),
            ("ip-addr.txt", ["ip", "addr", "show"]),
        ):
            output = execute(state, namespace, argv)
            assert output.status == 0, output.stderr
            (target / file).write_text(output.stdout)
        (target / "sysctl.txt").write_text(
            "".join(f"{key} = {value}\n" for key, value in namespace.sysctls)
        )
        folders.append(target)
    return folders


def tour_text(state: DataplaneState) -> list[str]:
    lines: list[str] = []
    for tour_walk in TOUR:
        lines += walk_lines(tour_walk.run(state, {}))
    return lines


@pytest.fixture(scope="module")
def demo() -> DataplaneState:
    return build_state(load_cluster())


def imported(tmp_path: Path, folders: list[Path]) -> Path:
    text, name = demo_text()
    output = tmp_path / "cluster.yaml"
    report = run(folders, output, text, name)
    assert sorted(m.node for m in report.matched) == sorted(f.name for f in folders)
    return output


def test_healthy_dumps_give_every_tour_walk_as_the_demo(
    tmp_path: Path, demo: DataplaneState
) -> None:
    output = imported(tmp_path, write_dumps(demo, tmp_path))
    state = build(output, None).state
    assert {record.namespace for record in state.observed} == {n.name for n in demo.nodes()}
    assert all(dict(r.parts).keys() >= {"rules", "routes", "iptables"} for r in state.observed)
    assert tour_text(state) == tour_text(demo)


def test_a_deleted_512_rule_changes_the_walk_that_needs_it(
    tmp_path: Path, demo: DataplaneState
) -> None:
    """Without `512: from all to 192.168.1.61 lookup main` on node 1, W0's reply to pod 61 is
    no longer decided by rule 512: the imported dump, not the derived state, is walked."""
    folders = write_dumps(demo, tmp_path)
    rules = tmp_path / NODE_1 / "ip-rule.txt"
    text = rules.read_text()
    assert "512:\tfrom all to 192.168.1.61 lookup main\n" in text
    rules.write_text(text.replace("512:\tfrom all to 192.168.1.61 lookup main\n", ""))
    state = build(imported(tmp_path, folders), None).state
    w0 = next(w for w in TOUR if w.id == "W0")
    assert [str(x) for x in walk_lines(w0.run(state, {}))] != [
        str(x) for x in walk_lines(w0.run(demo, {}))
    ]


def test_a_dump_of_another_cluster_is_refused(tmp_path: Path, demo: DataplaneState) -> None:
    folder = tmp_path / "stranger"
    folder.mkdir()
    (folder / "ip-addr.txt").write_text(
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default "
        "qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
        "    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n"
        "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP group default "
        "qlen 1000\n    link/ether 02:11:22:33:44:55 brd ff:ff:ff:ff:ff:ff\n"
        "    inet 10.9.9.9/24 brd 10.9.9.255 scope global eth0\n"
        "       valid_lft forever preferred_lft forever\n"
    )
    text, name = demo_text()
    with pytest.raises(InputError, match="match no node of the spec"):
        run([folder], tmp_path / "out.yaml", text, name)


def test_the_command_writes_a_spec_every_command_reads(
    tmp_path: Path, demo: DataplaneState
) -> None:
    folders = write_dumps(demo, tmp_path)
    output = tmp_path / "imported.yaml"
    result = run_eksnet("import", *map(str, folders), "--output", str(output), timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{NODE_1}: " in result.stdout and "observed: rules, routes" in result.stdout
    walk = run_eksnet(
        "walk",
        "pod/default/app2-7c9f8d6b5-k5x2p",
        "pod/default/app1-5f7d9c6b8-z8h4k",
        "--port",
        "80",
        "--cluster",
        str(output),
        timeout=120,
    )
    assert walk.returncode == 0, walk.stderr
    assert f"facts of {NODE_1}: observed in {NODE_1}: rules (ip-rule.txt)" in walk.stdout


def test_a_missing_input_is_one_line(tmp_path: Path) -> None:
    result = run_eksnet(
        "import", str(tmp_path / "nope.tar.gz"), "--output", str(tmp_path / "o.yaml"), timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("eksnet: ") and result.stderr.count("\n") == 1
    assert "nope.tar.gz" in result.stderr


def test_check_json_and_its_exit_status(tmp_path: Path, demo: DataplaneState) -> None:
    """Healthy dumps: no finding, exit 0; node 1 without its pod 61 `512` rule: one error
    finding naming it, the walk it breaks (X6) and the fix, exit 1."""
    import json

    folders = write_dumps(demo, tmp_path)
    output = tmp_path / "imported.yaml"
    imported_ok = run_eksnet("import", *map(str, folders), "--output", str(output), timeout=120)
    assert imported_ok.returncode == 0, imported_ok.stderr
    healthy = run_eksnet("check", "--cluster", str(output), "--json", timeout=300)
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["findings"] == []
    rules = tmp_path / NODE_1 / "ip-rule.txt"
    rules.write_text(rules.read_text().replace("512:\tfrom all to 192.168.1.61 lookup main\n", ""))
    broken = run_eksnet("check", "--cluster", str(output), "--json", timeout=300)
    assert broken.returncode == 1, broken.stderr
    (finding,) = json.loads(broken.stdout)["findings"]
    assert finding["object"] == "512:\tfrom all to 192.168.1.61 lookup main"
    assert (finding["kind"], finding["difference"], finding["severity"]) == (
        "rule", "missing", "error",
    )  # fmt: skip
    assert [walk.split(" ")[0] for walk in finding["breaks"]] == ["X6"]
    assert finding["fix"] == ["ip rule add from all to 192.168.1.61 lookup main pref 512"]


def test_check_without_dumps_says_so() -> None:
    result = run_eksnet("check", timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("eksnet: this spec names no node dumps")


def test_check_reports_an_address_the_dump_lacks(tmp_path: Path, demo: DataplaneState) -> None:
    """Links stay derived, so a missing ENI address is found by comparing the dump's `ip addr`
    view: node 1's eth1 without 192.168.1.60/24 (ipamd's secondary ENI, vpc-cni.md §2.3)."""
    from eksnet.diagnose.drift import differences
    from eksnet.model import load_cluster as load

    folders = write_dumps(demo, tmp_path)
    view = tmp_path / NODE_1 / "ip-addr.txt"
    text = view.read_text()
    line = "    inet 192.168.1.60/24 brd 192.168.1.255 scope global eth1\n"
    assert line in text
    view.write_text(text.replace(line + "       valid_lft forever preferred_lft forever\n", ""))
    output = imported(tmp_path, folders)
    found = differences(build_state(load(output)), build(output, None).state)
    assert [(f.kind, f.object, f.difference, f.fix) for f in found] == [
        (
            "address",
            "192.168.1.60/24 dev eth1",
            "missing",
            ("ip addr add 192.168.1.60/24 dev eth1",),
        ),
    ]


def test_enis_take_the_names_their_dump_shows(tmp_path: Path, demo: DataplaneState) -> None:
    """AWS's JSON knows no Linux names; a node's `ip addr` does (AL2023 says `ens6` where AL2
    says `eth1`). Node 1's dump with eth1 renamed ens6: the imported spec names the ENI ens6 by
    its MAC, the walk leaves by ens6, and the node is as its controllers would write it."""
    from eksnet.diagnose.drift import differences
    from eksnet.model import load_cluster as load

    folders = write_dumps(demo, tmp_path)
    for file in (tmp_path / NODE_1).iterdir():
        file.write_text(file.read_text().replace("eth1", "ens6"))
    output = imported(tmp_path, folders)
    node = next(n for n in load(output).nodes if n.name == NODE_1)
    assert [eni.linux for eni in node.enis] == ["eth0", "ens6"]
    state = build(output, None).state
    assert differences(build_state(load(output)), state) == []
    w0 = next(w for w in TOUR if w.id == "W0")
    text = "\n".join(str(line) for line in walk_lines(w0.run(state, {})))
    assert "→ ens6" in text and "→ eth1" not in text.split("[return]")[0]


def test_a_finding_only_later_packets_meet_breaks_walks_too(
    tmp_path: Path, demo: DataplaneState
) -> None:
    """Node 1 without the VPC CNI's mangle restore (M2, vpc-cni.md §2.4: "M2 restores the mark
    for later packets"): pod 61's first packet to the internet still leaves by eth0 (the nat
    table's restore), its later packets take rule 1536 out of eth1 with node 1's address and
    the source/destination check drops them. `check` must name W10b among the walks the
    finding breaks, and `walk --later --explain` the finding as the cause, with its fix."""
    import json

    folders = write_dumps(demo, tmp_path)
    saved = tmp_path / NODE_1 / "iptables-save.txt"
    m2 = (
        '-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" '
        "-j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80\n"
    )
    assert m2 in saved.read_text()
    saved.write_text(saved.read_text().replace(m2, ""))
    output = imported(tmp_path, folders)
    checked = run_eksnet("check", "--cluster", str(output), "--json", timeout=300)
    assert checked.returncode == 1, checked.stderr
    (finding,) = json.loads(checked.stdout)["findings"]
    assert finding["object"] == "-t mangle " + m2.strip()
    assert finding["owner"] == "ipamd (aws-node)"
    assert "W10b" in [walk.split(" ")[0] for walk in finding["breaks"]]
    explained = run_eksnet(
        "walk", "pod/default/rating-6d8b7c9f5-q6m4t", "ip/198.51.100.20",
        "--port", "443", "--later", "--explain", "--cluster", str(output), timeout=300,
    )  # fmt: skip
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert "its later packet: dropped in VPC: source/destination check" in text
    assert "  cause: ip-192-168-1-50.eu-west-2.compute.internal: iptables `-t mangle " in text
    assert "    fix: iptables -t mangle -I PREROUTING" in text
