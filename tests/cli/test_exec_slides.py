"""The talk's slide outputs, byte for byte (trailing whitespace aside), through `eksnet exec` on
the built-in demo cluster. Expected text: talk-walks.md §4.1 and §4.2 (the slides, with formats
measured on a real kernel); none of it was produced by eksnet."""

from __future__ import annotations

import subprocess

import pytest
from tests.entry_point import eksnet_command
from typer.testing import CliRunner

from eksnet.cli import app

NODE_1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "node/ip-192-168-1-70.eu-west-2.compute.internal"
NODE_3 = "node/ip-192-168-2-90.eu-west-2.compute.internal"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"

SLIDES: list[tuple[str, str, str]] = [
    (
        NODE_1,
        "ip rule show",
        """\
0:\tfrom all lookup local
512:\tfrom all to 192.168.1.51 lookup main
512:\tfrom all to 192.168.1.61 lookup main
1024:\tfrom all fwmark 0x80/0x80 lookup main
1536:\tfrom 192.168.1.61 lookup 2
32766:\tfrom all lookup main
32767:\tfrom all lookup default
""",
    ),
    (
        NODE_1,
        "ip route show table main",
        """\
default via 192.168.1.1 dev eth0
169.254.169.254 dev eth0
192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.50
192.168.1.51 dev enib9b00b57dd4 scope link
192.168.1.61 dev eni69e05c2a0e5 scope link
""",
    ),
    (
        NODE_1,
        "ip route show table 2",
        """\
default via 192.168.1.1 dev eth1
192.168.1.1 dev eth1 scope link
""",
    ),
    (
        NODE_1,
        "ip addr show eni69e05c2a0e5",
        """\
39: eni69e05c2a0e5@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc noqueue state UP group default
    link/ether 06:5e:c8:ae:85:be brd ff:ff:ff:ff:ff:ff link-netns cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935
    inet6 fe80::45e:c8ff:feae:85be/64 scope link
       valid_lft forever preferred_lft forever
""",
    ),
    (
        POD_61,
        "ip a",
        """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet6 ::1/128 scope host
       valid_lft forever preferred_lft forever
3: eth0@if39: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc noqueue state UP group default
    link/ether 6a:40:16:85:c3:34 brd ff:ff:ff:ff:ff:ff link-netnsid 0
    inet 192.168.1.61/32 scope global eth0
       valid_lft forever preferred_lft forever
    inet6 fe80::6a40:16ff:fe85:c334/64 scope link
       valid_lft forever preferred_lft forever
""",
    ),
    (
        POD_61,
        "ip route",
        """\
default via 169.254.1.1 dev eth0
169.254.1.1 dev eth0 scope link
""",
    ),
    (
        POD_61,
        "arp -n",
        """\
Address                  HWtype  HWaddress           Flags Mask            Iface
169.254.1.1              ether   06:5e:c8:ae:85:be   CM                    eth0
""",
    ),
    (POD_61, "ip neigh", "169.254.1.1 dev eth0 lladdr 06:5e:c8:ae:85:be PERMANENT\n"),
    (
        NODE_2,
        "ip rule show",
        """\
0:\tfrom all lookup local
512:\tfrom all to 192.168.1.71 lookup main
512:\tfrom all to 192.168.1.81 lookup main
1024:\tfrom all fwmark 0x80/0x80 lookup main
1536:\tfrom 192.168.1.81 lookup 2
32766:\tfrom all lookup main
32767:\tfrom all lookup default
""",
    ),
    (
        NODE_2,
        "ip route show table main",
        """\
default via 192.168.1.1 dev eth0
169.254.169.254 dev eth0
192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.70
192.168.1.71 dev eni724343586e6 scope link
192.168.1.81 dev eni584ab165f98 scope link
""",
    ),
    (
        NODE_2,
        "ip route show table 2",
        "default via 192.168.1.1 dev eth1\n192.168.1.1 dev eth1 scope link\n",
    ),
    (
        NODE_3,
        "ip rule show",
        """\
0:\tfrom all lookup local
512:\tfrom all to 192.168.2.91 lookup main
1024:\tfrom all fwmark 0x80/0x80 lookup main
32766:\tfrom all lookup main
32767:\tfrom all lookup default
""",
    ),
    (
        NODE_3,
        "ip route show table main",
        """\
default via 192.168.2.1 dev eth0
169.254.169.254 dev eth0
192.168.2.0/24 dev eth0 proto kernel scope link src 192.168.2.90
192.168.2.91 dev enif549030a0c3 scope link
""",
    ),
    (
        NODE_3,
        "ip route show table 2",
        "default via 192.168.2.1 dev eth1\n192.168.2.1 dev eth1 scope link\n",
    ),
]


def stripped(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize(
    ("target", "command", "expected"),
    SLIDES,
    ids=[f"{t.split('/')[-1][:14]} {c}" for t, c, _ in SLIDES],
)
def test_exec_prints_the_slide(target: str, command: str, expected: str) -> None:
    result = CliRunner().invoke(app, ["exec", target, "--", *command.split()])
    assert result.exit_code == 0, result.output
    assert stripped(result.stdout) == stripped(expected)


def test_exec_through_the_installed_command() -> None:
    """The entry point a user types, in a fresh process."""
    completed = subprocess.run(
        [*eksnet_command(), "exec", NODE_1, "--", "ip", "rule", "show"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert stripped(completed.stdout) == stripped(SLIDES[0][2])
    assert completed.stderr == ""


def test_exec_node1_iptables_has_the_aws_rules_of_the_pinned_version() -> None:
    """talk-walks.md §4.3: the VPC CNI v1.19.2 lines on node 1 (the kube-proxy ones come with
    the Services issue)."""
    result = CliRunner().invoke(app, ["exec", NODE_1, "--", "iptables-save"])
    assert result.exit_code == 0, result.output
    lines = set(result.stdout.splitlines())
    for rule in (
        '-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80',
        '-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80',
        '-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80',
        '-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0',
        '-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80',
        '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0',
        '-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN',
        '-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80',
        '-A AWS-SNAT-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN',
        '-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 192.168.1.50 --random-fully',
    ):
        assert rule in lines
