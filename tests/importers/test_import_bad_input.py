"""Truncated and garbled dumps are `InputError`s naming the file (inside the bundle) and line."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eksnet.errors import InputError
from eksnet.importers.bundle import observe, read_node
from eksnet.importers.conntrack_dump import conntrack_lines
from eksnet.importers.iproute_dump import parse_neighbours, parse_routes, parse_rules
from eksnet.importers.iptables_dump import parse_iptables_save
from eksnet.importers.link_dump import parse_ifconfig, parse_ip_addr, parse_ip_addr_json
from eksnet.importers.sysctl_dump import parse_sysctl_all

RULES = "0:\tfrom all lookup local\n512:\tfrom all to 192.168.1.51 lookup main\n"
ROUTES = "default via 192.168.1.1 dev eth0 \n169.254.169.254 dev eth0 \n"
ADDR = """1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP group default qlen 1000
    link/ether 02:00:c0:a8:01:32 brd ff:ff:ff:ff:ff:ff
    inet 192.168.1.50/24 brd 192.168.1.255 scope global eth0
       valid_lft forever preferred_lft forever
"""
IFCONFIG = """eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 9001
        inet 192.168.1.50  netmask 255.255.255.0  broadcast 192.168.1.255
        ether 02:00:c0:a8:01:32  txqueuelen 1000  (Ethernet)

lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536
        inet 127.0.0.1  netmask 255.0.0.0
        loop  txqueuelen 1000  (Local Loopback)
"""
CONNTRACK = (
    "*** Output of conntrack -S *** \n"
    "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 \n"
    "*** Output of conntrack -L ***\n"
    "tcp      6 431999 ESTABLISHED src=192.168.1.51 dst=10.100.0.10 sport=40000 dport=80 "
    "src=192.168.1.71 dst=192.168.1.51 sport=8080 dport=40000 [ASSURED] mark=0 use=1\n"
)
IPTABLES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


def fails_at(parse: Callable[[], Any], line: int | None, source: str = "f") -> InputError:
    with pytest.raises(InputError) as caught:
        parse()
    assert caught.value.source == source
    assert caught.value.line == line
    return caught.value


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (RULES + "1024:\tfrom all fwmark\n", 3),  # truncated: a key without its value
        (RULES + "1536:\tfrom 192.168.1.61 look", 3),  # truncated mid-word
        (RULES + "1536\tfrom all lookup main\n", 3),  # garbled: no colon
        ("0:\tfrom all lookup local\n9:\tfrom 300.1.1.1 lookup main\n", 2),
        ("0:\tfrom all uidrange 0-100 lookup main\n", 1),  # not modelled
        ("0:\tfrom all lookup custom\n", 1),  # a table name rt_tables would give
    ],
)
def test_bad_rules(text: str, line: int) -> None:
    fails_at(lambda: parse_rules(text, "f"), line)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (ROUTES + "192.168.1.0/24 dev\n", 3),
        (ROUTES + "default via\n", 3),
        (ROUTES + "192.168.1.0/33 dev eth0\n", 3),
        ("192.168.1.0/24 proto kernel scope link\n", 1),  # a unicast route without a device
        ("10.0.0.0/8 via 10.0.0.1 dev eth0 onlink \n", 1),
        ("local\n", 1),
    ],
)
def test_bad_routes(text: str, line: int) -> None:
    fails_at(lambda: parse_routes(text, "f"), line)


def test_ipv6_route_lines_are_counted_not_parsed() -> None:
    text = ROUTES + "fe80::/64 dev eth0 proto kernel metric 256 pref medium\n"
    assert parse_routes(text, "f").ipv6_lines == 1


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (ADDR.rsplit("\n", 4)[0] + "\n", 5),  # cut after the header: no link/ether line
        (ADDR.replace("mtu 9001 qdisc mq", "mtu 9001"), 5),
        (ADDR.replace("scope global eth0", "scope global"), 7),
        (ADDR.replace("192.168.1.50/24", "192.168.1.500/24"), 7),
        ("    inet 127.0.0.1/8 scope host lo\n", 1),
    ],
)
def test_bad_ip_addr(text: str, line: int) -> None:
    fails_at(lambda: parse_ip_addr(text, "f", "node"), line)


def test_truncated_ip_json() -> None:
    error = fails_at(lambda: parse_ip_addr_json('[{"ifindex": 1,\n "ifname": "lo",\n', "f", "n"), 3)
    assert "truncated" in error.message


def test_bad_ifconfig() -> None:
    fails_at(lambda: parse_ifconfig(IFCONFIG.replace("mtu 9001", "mt"), "f"), 1)
    fails_at(lambda: parse_ifconfig(IFCONFIG.split("\n        ether")[0], "f"), 1)
    fails_at(lambda: parse_ifconfig(IFCONFIG.replace("netmask 255.255.255.0", "netmask"), "f"), 2)


def test_bad_neighbours_sysctl_conntrack_iptables() -> None:
    fails_at(lambda: parse_neighbours("169.254.1.1 dev eth0 lladdr\n", "f"), 1)
    fails_at(lambda: parse_neighbours("169.254.1.1 dev eth0 FAILED x y\n", "f"), 1)
    fails_at(lambda: parse_sysctl_all("net.ipv4.ip_forward = 1\nnet.ipv4.conf.all\n", "f"), 2)
    assert parse_sysctl_all("kernel.domainname = \n", "f") == (("kernel.domainname", ""),)
    assert len(conntrack_lines(CONNTRACK, "f")) == 1
    fails_at(lambda: conntrack_lines(CONNTRACK[:-30], "f"), 4)
    fails_at(lambda: conntrack_lines(CONNTRACK + "garbage line\n", "f"), 5)
    fails_at(lambda: parse_iptables_save(IPTABLES[:-7], "f"), 5)  # no COMMIT: truncated
    fails_at(lambda: parse_iptables_save(IPTABLES.replace(":FORWARD", "FORWARD"), "f"), 3)


def tarball(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_bundle_error_names_the_file_inside_the_bundle(tmp_path: Path) -> None:
    bundle = tarball(
        tmp_path / "eks_i-1_2026-01-01_0000-UTC_0.7.9.tar.gz",
        {"networking/iprule.txt": RULES + "1024:\tfrom all fwmark 0x80/0x80 lookup\n"},
    )
    error = fails_at(lambda: read_node(bundle), 3, f"{bundle.name}:networking/iprule.txt")
    assert error.one_line().startswith(f"{bundle.name}:networking/iprule.txt:3: ")


def test_a_truncated_tarball_is_an_input_error(tmp_path: Path) -> None:
    whole = tarball(tmp_path / "whole.tar.gz", {"networking/iprule.txt": RULES * 2000})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[:200])
    fails_at(lambda: read_node(cut), None, "cut.tar.gz")


def test_bad_json_and_binary_members(tmp_path: Path) -> None:
    fails_at(lambda: observe({"ipamd/enis.json": '{"ENIs": {\n'}, "b"), 2, "b:ipamd/enis.json")
    folder = tmp_path / "dump"
    folder.mkdir()
    (folder / "ip-rule.txt").write_bytes(RULES.encode() + b"\xff\xfe\n")
    fails_at(lambda: read_node(folder), 3, "dump:ip-rule.txt")


def test_a_route_on_a_device_the_links_lack(tmp_path: Path) -> None:
    files = {
        "networking/ifconfig.txt": IFCONFIG,
        "networking/iproute.txt": ROUTES + "192.168.1.51 dev eni0 scope link \n",
    }
    fails_at(lambda: observe(files, "b"), 3, "b:networking/iproute.txt")
