"""`run_command`: the command forms it accepts, how it abbreviates, and how it fails."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from eksnet.dataplane.state import Namespace
from eksnet.errors import CommandFailed, UnsupportedCommand
from eksnet.render import exec as exec_view
from eksnet.render.exec import run_command, strtoul, table_selector
from eksnet.render.linux import ip_address, ip_link, ip_neigh, ip_route, ip_rule, iptables_save

from .fixtures import node1, pod61, talk_state


def run(argv: Sequence[str], ns: Namespace | None = None) -> str:
    state = talk_state()
    return run_command(state, ns if ns is not None else state.nodes()[0], argv)


@pytest.mark.parametrize(
    "argv",
    [
        "ip addr",
        "ip a",
        "ip address",
        "ip ad show",
        "ip a s",
        "ip addr list",
        "ip addr lst",
    ],
)
def test_ip_address_forms(argv: str) -> None:
    assert run(argv.split()) == ip_address(node1())


@pytest.mark.parametrize("argv", ["ip addr show eth0", "ip addr show dev eth0", "ip a s dev eth0"])
def test_ip_address_of_one_device(argv: str) -> None:
    assert run(argv.split()) == ip_address(node1(), "eth0")


def test_a_device_is_not_a_verb() -> None:
    with pytest.raises(UnsupportedCommand):
        run(["ip", "a", "eth0"])  # iproute2: Command "eth0" is unknown


@pytest.mark.parametrize("argv", ["ip link", "ip l", "ip link show", "ip li sh", "ip link list"])
def test_ip_link_forms(argv: str) -> None:
    assert run(argv.split()) == ip_link(node1())


def test_ip_link_of_one_device() -> None:
    assert run(["ip", "link", "show", "eth1"]) == ip_link(node1(), "eth1")
    assert run(["ip", "link", "show", "dev", "eth1"]) == ip_link(node1(), "eth1")


def test_ip_link_s_is_set_as_in_iproute2() -> None:
    with pytest.raises(UnsupportedCommand):
        run(["ip", "link", "s"])


@pytest.mark.parametrize(
    ("argv", "table"),
    [
        ("ip route", 254),
        ("ip r", 254),
        ("ip ro sh", 254),
        ("ip route list", 254),
        ("ip route show table main", 254),
        ("ip r s t 2", 2),
        ("ip route show table 0x2", 2),
        ("ip route show tab 254", 254),
    ],
)
def test_ip_route_forms(argv: str, table: int) -> None:
    assert run(argv.split()) == ip_route(node1(), table)


@pytest.mark.parametrize("word", ["all", "0", "unspec"])
def test_every_table(word: str) -> None:
    assert table_selector(word) == "all"


def test_table_names_and_numbers() -> None:
    assert [table_selector(w) for w in ("local", "main", "default", "2", "010")] == [
        255,
        254,
        253,
        2,
        8,
    ]
    assert strtoul("08") is None


def test_invalid_table_fails_like_ip() -> None:
    with pytest.raises(CommandFailed) as failure:
        run(["ip", "route", "show", "table", "nosuch"])
    assert failure.value.stderr == 'Error: argument "nosuch" is wrong: table id value is invalid'
    assert failure.value.exit_code == 255


def test_missing_table_fails_like_ip() -> None:
    with pytest.raises(CommandFailed) as failure:
        run(["ip", "route", "show", "table", "3"])
    assert failure.value.exit_code == 2


@pytest.mark.parametrize("argv", ["ip rule", "ip ru", "ip rule show", "ip ru l", "ip rule list"])
def test_ip_rule_forms(argv: str) -> None:
    assert run(argv.split()) == ip_rule(node1())


@pytest.mark.parametrize("argv", ["ip neigh", "ip n", "ip n s", "ip neighbour show", "ip neighbor"])
def test_ip_neigh_forms(argv: str) -> None:
    pod = pod61()
    assert run(argv.split(), pod) == ip_neigh(pod)


def test_iptables_save_forms() -> None:
    assert run(["iptables-save"]) == iptables_save(node1())
    assert run(["iptables-save", "-t", "nat"]) == iptables_save(node1(), "nat")
    assert run(["iptables-save", "--table=nat"]) == iptables_save(node1(), "nat")


def test_sysctl_forms() -> None:
    assert run(["sysctl", "net.ipv4.ip_forward"]) == "net.ipv4.ip_forward = 1\n"
    assert run(["sysctl", "-n", "net.ipv4.ip_forward"]) == "1\n"
    assert run(["sysctl", "net/ipv4/conf/eth0/rp_filter"]) == "net.ipv4.conf.eth0.rp_filter = 2\n"


def test_sysctl_of_an_unknown_device_fails_like_sysctl() -> None:
    with pytest.raises(CommandFailed) as failure:
        run(["sysctl", "net.ipv4.conf.nosuch.rp_filter"])
    expected = (
        "sysctl: cannot stat /proc/sys/net/ipv4/conf/nosuch/rp_filter: No such file or directory"
    )
    assert failure.value.stderr == expected


def test_ip_route_get_is_delegated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The route-get view is another module; a stand-in records what it is given."""
    seen: list[tuple[str, list[str]]] = []

    def ip_route_get(ns: Namespace, args: Sequence[str]) -> str:
        seen.append((ns.name, list(args)))
        return "answer\n"

    monkeypatch.setattr(exec_view, "ip_route_get", ip_route_get)
    assert (
        run(["ip", "ro", "get", "8.8.8.8", "from", "192.168.1.61", "iif", "eni69e05c2a0e5"])
        == "answer\n"
    )
    assert seen == [(node1().name, ["8.8.8.8", "from", "192.168.1.61", "iif", "eni69e05c2a0e5"])]


def test_ip_route_get_answers_from_the_fib() -> None:
    argv = ["ip", "route", "get", "192.168.1.71", "from", "192.168.1.61", "iif", "eni69e05c2a0e5"]
    assert run(argv).splitlines()[0].split() == [
        "192.168.1.71", "from", "192.168.1.61", "via", "192.168.1.1", "dev", "eth1", "table", "2"
    ]  # fmt: skip


@pytest.mark.parametrize("dev", ["nosuch", "eth9"])
@pytest.mark.parametrize("verb", ["ip addr show", "ip addr show dev", "ip link show"])
def test_unknown_device(verb: str, dev: str) -> None:
    with pytest.raises(CommandFailed) as failure:
        run([*verb.split(), dev])
    assert failure.value.stderr == f'Device "{dev}" does not exist.'
    assert failure.value.exit_code == 1


def test_two_devices_fail_like_ip() -> None:
    with pytest.raises(CommandFailed) as failure:
        run(["ip", "addr", "show", "dev", "eth0", "dev", "eth1"])
    assert failure.value.stderr == 'Error: either "dev" is duplicate, or "eth1" is a garbage.'


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["ip"],
        ["ip", "monitor"],
        ["ip", "addrlabel"],
        ["ip", "route", "add", "10.0.0.0/8", "dev", "eth0"],
        ["ip", "route", "show", "dev", "eth0"],
        ["ip", "rule", "show", "table", "main"],
        ["ip", "-4", "addr"],
        ["ip", "addr", "show", "up"],
        ["arp"],
        ["arp", "-a"],
        ["iptables", "-L"],
        ["iptables-save", "-c"],
        ["sysctl", "-w", "net.ipv4.ip_forward=1"],
        ["sysctl", "net.ipv4.ip_forward=1"],
        ["sysctl", "-a"],
        ["conntrack", "-L"],
    ],
)
def test_unsupported_commands_say_what_is_supported(argv: list[str]) -> None:
    with pytest.raises(UnsupportedCommand) as failure:
        run(argv)
    message = str(failure.value)
    assert message.startswith("eksnet exec supports: ip addr")
    assert message.endswith("; not: " + (" ".join(argv) or "(nothing)"))
