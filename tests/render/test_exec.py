"""`run_command`: the command forms it accepts, how it abbreviates, and how it fails."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence

import pytest

from eksnet.dataplane.state import DataplaneState, Namespace
from eksnet.errors import CommandFailed, NotModelled, UnsupportedCommand
from eksnet.render import exec as exec_view
from eksnet.render.exec import CommandOutput, execute, run_command, strtoul, table_selector
from eksnet.render.linux import ip_address, ip_link, ip_neigh, ip_route, ip_rule, iptables_save
from eksnet.render.route_get import IpExit

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
    # iproute2 6.1 (measured): `ip a eth0` exits 255 with this line.
    with pytest.raises(IpExit) as failure:
        run(["ip", "a", "eth0"])
    assert failure.value.stderr == 'Command "eth0" is unknown, try "ip address help".'
    assert failure.value.exit_code == 255


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
    # iproute2 6.1 (measured) ends this message with an empty line: `invarg`'s text has its own
    # newline. `stderr` leaves out only the final newline of what the tool prints.
    with pytest.raises(CommandFailed) as failure:
        run(["ip", "route", "show", "table", "nosuch"])
    assert failure.value.stderr == 'Error: argument "nosuch" is wrong: table id value is invalid\n'
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


# --- the real tools' failures, measured ---------------------------------------------------------
#
# Every stderr text and exit status below was measured on this machine's tools, in the talk's
# demo cluster built by `eksnet lab up` (prefix eksnet-lab-scratch2-) and in a scratch network
# namespace: iproute2 6.1.0 (`ip utility, iproute2-6.1.0, libbpf 1.1.2`), procps-ng 4.0.2
# (`sysctl`), iptables 1.8.9 (node 1's backend is legacy), kernel 6.18. `execute` must print
# exactly that: the text unprefixed, the status the tool's.

NODE_FAILURES: list[tuple[str, str, int]] = [
    # sysctl: a key that is not under /proc/sys is a failed stat(2), status 1.
    ("sysctl net.nonexistent", "sysctl: cannot stat /proc/sys/net/nonexistent: No such file or directory\n", 1),
    ("sysctl -n net.nonexistent", "sysctl: cannot stat /proc/sys/net/nonexistent: No such file or directory\n", 1),
    ("sysctl nonexistent", "sysctl: cannot stat /proc/sys/nonexistent: No such file or directory\n", 1),
    ("sysctl net.ipv4.conf.eth9.rp_filter", "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth9/rp_filter: No such file or directory\n", 1),
    ("sysctl net/ipv4/conf/eth9/rp_filter", "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth9/rp_filter: No such file or directory\n", 1),
    ("sysctl net.ipv4.conf.eth0.nonexistent", "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth0/nonexistent: No such file or directory\n", 1),
    ("sysctl net.ipv4.neigh.eth9.app_solicit", "sysctl: cannot stat /proc/sys/net/ipv4/neigh/eth9/app_solicit: No such file or directory\n", 1),
    ("sysctl net.ipv4.ip_forward.x", "sysctl: cannot stat /proc/sys/net/ipv4/ip_forward/x: Not a directory\n", 1),
    ("sysctl -n", "sysctl: no variables specified\nTry `sysctl --help' for more information.\n", 1),
    # ip route get: a malformed address makes `ip` exit 1; the family is named once known.
    ("ip route get garbage", 'Error: any valid prefix is expected rather than "garbage".\n', 1),
    ("ip route get 300.1.1.1", 'Error: any valid prefix is expected rather than "300.1.1.1".\n', 1),
    ("ip route get from garbage 8.8.8.8", 'Error: any valid prefix is expected rather than "garbage".\n', 1),
    ("ip route get 8.8.8.8 from garbage", 'Error: inet prefix is expected rather than "garbage".\n', 1),
    ("ip route get 8.8.8.8 de d0", 'Error: inet prefix is expected rather than "de".\n', 1),
    ("ip route get 8.8.8.8 oif eth9", 'Cannot find device "eth9"\n', 1),
    ("ip route get 8.8.8.8 iif eth9", 'Cannot find device "eth9"\n', 1),
    ("ip route get 8.8.8.8 mark zz", 'Error: argument "zz" is wrong: invalid mark value\n', 255),
    ("ip route get", "need at least a destination address\n", 1),
    ("ip route get 8.8.8.8 from", 'Command line is not complete. Try option "help"\n', 255),
    ("ip route get to", 'Command line is not complete. Try option "help"\n', 255),
    ("ip route get foo", 'Error: any valid prefix is expected rather than "foo".\n', 1),
    ("ip route get 8.8.8.8 mark -1", 'Error: argument "-1" is wrong: invalid mark value\n', 255),
    ("ip route get 8.8.8.8 mark 0x100000000", 'Error: argument "0x100000000" is wrong: invalid mark value\n', 255),
    # ip route show: unknown table (the kernel's, status 2), bad table id, bad filters.
    ("ip route show table 99", "Error: ipv4: FIB table does not exist.\nDump terminated\n", 2),
    ("ip route show table garbage", 'Error: argument "garbage" is wrong: table id value is invalid\n\n', 255),
    ("ip route show table 4294967296", 'Error: argument "4294967296" is wrong: table id value is invalid\n\n', 255),
    ("ip route show table", 'Command line is not complete. Try option "help"\n', 255),
    ("ip route show garbage", 'Error: any valid prefix is expected rather than "garbage".\n', 1),
    ("ip route show table 2 garbage", 'Error: any valid prefix is expected rather than "garbage".\n', 1),
    ("ip route show dev eth9", 'Cannot find device "eth9"\n', 1),
    ("ip route show to", 'Command line is not complete. Try option "help"\n', 255),
    # ip addr / link / rule / neigh.
    ("ip addr show eth9", 'Device "eth9" does not exist.\n', 1),
    ("ip addr show dev eth9", 'Device "eth9" does not exist.\n', 1),
    ("ip addr show dev", 'Command line is not complete. Try option "help"\n', 255),
    ("ip link show eth9", 'Device "eth9" does not exist.\n', 1),
    ("ip link show eth0 eth1", 'Error: either "dev" is duplicate, or "eth1" is a garbage.\n', 255),
    ("ip rule show garbage", 'Error: inet prefix is expected rather than "garbage".\n', 1),
    ("ip rule show dev", 'Command line is not complete. Try option "help"\n', 255),
    ("ip neigh show garbage", 'Error: any valid prefix is expected rather than "garbage".\n', 1),
    ("ip neigh show dev eth9", 'Cannot find device "eth9"\n', 1),
    ("ip neigh show dev eth0 dev eth1", 'Error: duplicate "dev": "eth1" is the second value.\n', 255),
    # ip: unknown object, verb, option.
    ("ip garbage", 'Object "garbage" is unknown, try "ip help".\n', 1),
    ("ip route garbage", 'Command "garbage" is unknown, try "ip route help".\n', 255),
    ("ip rule garbage", 'Command "garbage" is unknown, try "ip rule help".\n', 255),
    ("ip addr garbage", 'Command "garbage" is unknown, try "ip address help".\n', 255),
    ("ip link garbage", 'Command "garbage" is unknown, try "ip link help".\n', 255),
    ("ip neigh garbage", 'Command "garbage" is unknown, try "ip neigh help".\n', 255),
    ("ip -x rule", 'Option "-x" is unknown, try "ip -help".\n', 255),
    ("ip --xyz rule", 'Option "-xyz" is unknown, try "ip -help".\n', 255),
    # iptables-save: node 1 is a legacy node; options read by getopt_long.
    ("iptables-save -t garbage", "iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)\n", 1),
    ("iptables-save --table=garbage", "iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)\n", 1),
    ("iptables-save -x", "iptables-save: invalid option -- 'x'\nLook at manual page `iptables-save.8' for more information.\n", 1),
    ("iptables-save -t", "iptables-save: option requires an argument -- 't'\nLook at manual page `iptables-save.8' for more information.\n", 1),
    ("iptables-save --table", "iptables-save: option '--table' requires an argument\nLook at manual page `iptables-save.8' for more information.\n", 1),
    ("iptables-save --foo", "iptables-save: unrecognized option '--foo'\nLook at manual page `iptables-save.8' for more information.\n", 1),
    ("iptables-save --counters=1", "iptables-save: option '--counters' doesn't allow an argument\nLook at manual page `iptables-save.8' for more information.\n", 1),
    ("iptables-save extra", "Unknown arguments found on commandline\n", 1),
    ("iptables-save -t nat extra", "Unknown arguments found on commandline\n", 1),
]  # fmt: skip

IP_USAGE = """\
Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }
       ip [ -force ] -batch filename
where  OBJECT := { address | addrlabel | amt | fou | help | ila | ioam | l2tp |
                   link | macsec | maddress | monitor | mptcp | mroute | mrule |
                   neighbor | neighbour | netconf | netns | nexthop | ntable |
                   ntbl | route | rule | sr | tap | tcpmetrics |
                   token | tunnel | tuntap | vrf | xfrm }
       OPTIONS := { -V[ersion] | -s[tatistics] | -d[etails] | -r[esolve] |
                    -h[uman-readable] | -iec | -j[son] | -p[retty] |
                    -f[amily] { inet | inet6 | mpls | bridge | link } |
                    -4 | -6 | -M | -B | -0 |
                    -l[oops] { maximum-addr-flush-attempts } | -br[ief] |
                    -o[neline] | -t[imestamp] | -ts[hort] | -b[atch] [filename] |
                    -rc[vbuf] [size] | -n[etns] name | -N[umeric] | -a[ll] |
                    -c[olor]}
"""
"""`ip` (no object), `ip help` and `ip -batch` (no file): stderr, status 255, iproute2 6.1."""


@functools.cache
def demo_node() -> tuple[DataplaneState, Namespace]:
    """The demo's node 1, built by the controllers: the namespace the lab measurements ran in."""
    from eksnet.controllers import build_state
    from eksnet.model import load_cluster

    state = build_state(load_cluster())
    return state, state.namespace("ip-192-168-1-50.eu-west-2.compute.internal")


def run_demo(argv: Sequence[str], files: dict[str, str] | None = None) -> CommandOutput:
    state, ns = demo_node()
    given = files or {}

    def read_input(name: str) -> str:
        if name not in given:
            raise FileNotFoundError(2, "No such file or directory", name)
        return given[name]

    return execute(state, ns, argv, read_input)


@pytest.mark.parametrize(("command", "stderr", "status"), NODE_FAILURES)
def test_failures_print_what_the_real_tool_prints(command: str, stderr: str, status: int) -> None:
    assert run_demo(shlex.split(command)) == CommandOutput("", stderr, status)


@pytest.mark.parametrize("command", ["ip", "ip help", "ip h", "ip -batch", "ip -help"])
def test_ip_usage(command: str) -> None:
    assert run_demo(command.split()) == CommandOutput("", IP_USAGE, 255)


def test_run_command_raises_the_tools_failure() -> None:
    state, ns = demo_node()
    with pytest.raises(CommandFailed) as failure:
        run_command(state, ns, ["sysctl", "net.nonexistent"])
    assert failure.value.exit_code == 1
    assert "eksnet" not in failure.value.stderr


@pytest.mark.parametrize(
    ("command", "stdout"),
    [
        # Accepted by the real tools as written (measured): abbreviations and odd spellings.
        ("sysctl net.ipv4.ip_forward -n", "1\n"),
        ("ip -force rule show", None),
        ("ip --force rule show", None),
        ("iptables-save -tnat", None),
        ("iptables-save -t garbage -t nat", None),
    ],
)
def test_what_the_real_tools_accept(command: str, stdout: str | None) -> None:
    result = run_demo(shlex.split(command))
    assert (result.stderr, result.status) == ("", 0)
    if stdout is not None:
        assert result.stdout == stdout


def test_the_last_table_option_wins_as_in_getopt() -> None:
    assert (
        run_demo(["iptables-save", "-t", "garbage", "-t", "nat"]).stdout
        == run_demo(["iptables-save", "-t", "nat"]).stdout
    )


def test_ip_route_get_reads_addresses_as_iproute2_does() -> None:
    # `010.1.1.1` is 8.1.1.1 and `10.1` is 10.1.0.0 to iproute2's get_addr_ipv4 (measured).
    assert run_demo(["ip", "route", "get", "010.1.1.1"]).stdout.startswith("8.1.1.1 via ")
    assert run_demo(["ip", "route", "get", "192.168.1"]).stdout.startswith("192.168.1.0 dev ")


@pytest.mark.parametrize(
    "command",
    [
        "sysctl kernel.nonexistent",  # eksnet does not know which keys /proc/sys/kernel has
        "sysctl net.core.somaxconn",
    ],
)
def test_keys_eksnet_cannot_vouch_for_are_not_modelled(command: str) -> None:
    with pytest.raises(NotModelled):
        run_demo(command.split())


def test_a_pod_has_no_init_namespace_keys() -> None:
    # Measured: a pod's namespace has no net.ipv4.tcp_mem; the host's (a node's) has.
    state, node = demo_node()
    pod = state.namespace(state.pods()[0].name)
    assert execute(state, pod, ["sysctl", "net.ipv4.tcp_mem"]) == CommandOutput(
        "", "sysctl: cannot stat /proc/sys/net/ipv4/tcp_mem: No such file or directory\n", 1
    )
    with pytest.raises(NotModelled):
        execute(state, node, ["sysctl", "net.ipv4.tcp_mem"])


# --- ip -batch, measured ------------------------------------------------------------------------

RULES = """\
0:\tfrom all lookup local
512:\tfrom all to 192.168.1.51 lookup main
512:\tfrom all to 192.168.1.61 lookup main
1024:\tfrom all fwmark 0x80/0x80 lookup main
1536:\tfrom 192.168.1.61 lookup 2
32766:\tfrom all lookup main
32767:\tfrom all lookup default
"""
LO = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
"""

BATCHES: list[tuple[str, str, str, CommandOutput]] = [
    # (name, flags, input, what `ip [flags] -batch NAME` printed on node 1 of the demo lab)
    (
        "ok.txt", "",
        "rule show\nroute show table main\n\n# a comment\nroute show table 2   # trailing comment\nneigh show\n",
        CommandOutput(
            RULES
            + "default via 192.168.1.1 dev eth0 \n169.254.169.254 dev eth0 \n"
            "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.50 \n"
            "192.168.1.51 dev enib9b00b57dd4 scope link \n192.168.1.61 dev eni69e05c2a0e5 scope link \n"
            "default via 192.168.1.1 dev eth1 \n192.168.1.1 dev eth1 scope link \n",
        ),
    ),
    (
        "fail1.txt", "", "rule show\naddr show nosuch\nlink show lo\n",
        CommandOutput(RULES, 'Device "nosuch" does not exist.\nCommand failed fail1.txt:2\n', 1),
    ),
    (
        "fail1.txt", "-force", "rule show\naddr show nosuch\nlink show lo\n",
        CommandOutput(RULES + LO, 'Device "nosuch" does not exist.\nCommand failed fail1.txt:2\n', 1),
    ),
    (
        # A table that does not exist is no error in a batch: `ip` asks for no strict dump there.
        "fail2.txt", "-force",
        "rule\nroute get 192.168.1.71 from 192.168.1.61 iif nosuch\nroute show table 99\n"
        "route show table 77\nlink show lo\naddr show nosuch2\nrule show\n",
        CommandOutput(
            RULES + LO + RULES,
            'Cannot find device "nosuch"\nCommand failed fail2.txt:2\n'
            'Device "nosuch2" does not exist.\nCommand failed fail2.txt:6\n',
            1,
        ),
    ),
    (
        # A malformed argument makes `ip` exit: no `Command failed`, and -force does not help.
        "exit1.txt", "-force", "rule\nroute show table garbage\nrule\n",
        CommandOutput(RULES, 'Error: argument "garbage" is wrong: table id value is invalid\n\n', 255),
    ),
    (
        "exit2.txt", "-force", "rule\nroute get garbage\nrule\n",
        CommandOutput(RULES, 'Error: any valid prefix is expected rather than "garbage".\n', 1),
    ),
    (
        # A backslash continues the line; the failure names the line it is on.
        "cont.txt", "-force", "rule \\\nshow\nbogus\nlink sh lo\n",
        CommandOutput(RULES + LO, 'Object "bogus" is unknown, try "ip help".\nCommand failed cont.txt:3\n', 1),
    ),
    (
        "quote.txt", "", "rule show\n\"link\" \"show\" lo\nlink show 'lo\n",
        CommandOutput(RULES + LO, "Unterminated quoted string\n", 1),
    ),
    # A backslash before the end of the input continues nothing: the line is cut short (0);
    # without a newline after it, it is a word of its own (measured both ways).
    ("missing2.txt", "", "rule\nrule show \\\n", CommandOutput(RULES, "Missing continuation line\n", 0)),
    ("missing.txt", "", "rule\nrule show \\", CommandOutput(RULES, 'Error: inet prefix is expected rather than "\\".\n', 1)),
    ("help.txt", "", "help\n", CommandOutput("", IP_USAGE, 255)),
    ("-", "", "rule show\naddr show nosuch\n", CommandOutput(RULES, 'Device "nosuch" does not exist.\nCommand failed -:2\n', 1)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "flags", "text", "expected"), BATCHES)
def test_ip_batch_as_measured(name: str, flags: str, text: str, expected: CommandOutput) -> None:
    argv = ["ip", *flags.split(), "-batch", name]
    assert run_demo(argv, {name: text}) == expected


def test_ip_batch_answers_each_line_as_the_single_command_would() -> None:
    lines = ["rule show", "route show table all", "addr", "link show eth1", "neigh", "r s t 2"]
    single = "".join(run_demo(["ip", *line.split()]).stdout for line in lines)
    assert run_demo(["ip", "-b", "f"], {"f": "\n".join(lines)}).stdout == single


def test_ip_batch_of_a_missing_file() -> None:
    # Measured: `ip -b /tmp/meas/batch/nonexistent.txt`.
    assert run_demo(["ip", "-b", "/nonexistent"]) == CommandOutput(
        "", 'Cannot open file "/nonexistent" for reading: No such file or directory\n', 1
    )


def test_ip_batch_needs_its_input_from_the_caller() -> None:
    state, ns = demo_node()
    with pytest.raises(UnsupportedCommand):
        execute(state, ns, ["ip", "-batch", "f"])
    with pytest.raises(UnsupportedCommand):
        run_command(state, ns, ["ip", "-batch", "f"])


def test_an_unsupported_line_in_a_batch_names_its_line() -> None:
    with pytest.raises(UnsupportedCommand) as refusal:
        run_demo(["ip", "-batch", "f"], {"f": "rule\n\nxfrm state\n"})
    assert str(refusal.value).endswith("not: ip xfrm state (ip -batch f, line 3)")
