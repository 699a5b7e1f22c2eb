"""A cluster of the user's own (not the demo): the running example of vpc-cni.md (node 10.0.1.5,
pods default/web-a on eth0 and default/web-b on eth1), with nothing pinned and no sysctls given.
Expected values are that spec's: veth names from SHA-1 (§0 table), `ip rule` of §2.9, table 2 of
§2.3; and the EKS AMI's ip_forward=1 (§2.1) must make the node forward."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from eksnet.cli import app

CLUSTER = """\
name: example
region: us-east-1
vpc:
  id: vpc-1
  cidrs: [10.0.0.0/16, 100.64.0.0/16]
  routerMac: "02:00:0a:00:{x}:01"
  subnets:
    - {name: a, az: us-east-1a, cidr: 10.0.0.0/19, routeTable: main}
  routeTables:
    main: [{dst: 10.0.0.0/16, target: local}]
cni: {version: v1.20.0}
nodes:
  - name: node-a
    subnet: a
    enis:
      - {linux: eth0, ifindex: 2, id: eni-a0, device: 0, mac: "02:00:0a:00:01:05", primaryIp: 10.0.1.5, secondaryIps: [10.0.1.23]}
      - {linux: eth1, ifindex: 3, id: eni-a1, device: 1, mac: "02:00:0a:00:02:14", primaryIp: 10.0.2.20, secondaryIps: [10.0.2.57]}
pods:
  - {name: web-a, node: node-a, eni: eth0, ip: 10.0.1.23}
  - {name: web-b, node: node-a, eni: eth1, ip: 10.0.2.57}
"""


def run(tmp_path: Path, *args: str) -> str:
    path = tmp_path / "example.yaml"
    path.write_text(CLUSTER)
    command, *rest = args  # options go before `--`: after it everything is the command
    result = CliRunner().invoke(app, [command, "--cluster", str(path), *rest])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ip_rule_is_the_spec_s_default_node(tmp_path: Path) -> None:
    # vpc-cni.md §2.9 (v1.20+: the 32765 rule for eth1's primary address)
    assert run(tmp_path, "exec", "node/node-a", "--", "ip", "rule", "show").splitlines() == [
        "0:\tfrom all lookup local",
        "512:\tfrom all to 10.0.1.23 lookup main",
        "512:\tfrom all to 10.0.2.57 lookup main",
        "1024:\tfrom all fwmark 0x80/0x80 lookup main",
        "1536:\tfrom 10.0.2.57 lookup 2",
        "32765:\tfrom 10.0.2.20 lookup 2",
        "32766:\tfrom all lookup main",
        "32767:\tfrom all lookup default",
    ]


def test_veth_names_come_from_sha1_of_namespace_dot_pod(tmp_path: Path) -> None:
    main = run(tmp_path, "exec", "node/node-a", "--", "ip", "route", "show", "table", "main")
    assert "10.0.1.23 dev enia150d993dd4 scope link" in main  # vpc-cni.md §0
    assert "10.0.2.57 dev eniddeaa362342 scope link" in main
    table2 = run(tmp_path, "exec", "node/node-a", "--", "ip", "route", "show", "table", "2")
    assert [line.rstrip() for line in table2.splitlines()] == [
        "default via 10.0.0.1 dev eth1",
        "10.0.0.1 dev eth1 scope link",
    ]


def test_the_node_forwards_between_its_pods(tmp_path: Path) -> None:
    walk = json.loads(
        run(tmp_path, "walk", "pod/default/web-b", "pod/default/web-a", "--port", "80", "--json")
    )["walk"]
    assert walk["disposition"]["kind"] == "delivered"
    node = walk["hops"][1]
    assert (node["iif"], node["oif"]) == ("eniddeaa362342", "enia150d993dd4")
    assert walk["reply"]["disposition"]["kind"] == "delivered"
