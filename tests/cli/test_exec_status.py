"""`eksnet exec` of a simulated tool, through the installed command: the tool's own stderr,
unprefixed, and its own exit status, exactly as on the real host.

The expected texts and statuses were measured on this machine, in the demo cluster built by
`eksnet lab up` (prefix eksnet-lab-scratch2-, via `eksnet lab exec`) and in a scratch network
namespace (`ip netns add eksnet-lab-scratch1`): iproute2 6.1.0, procps-ng 4.0.2, iptables 1.8.9,
kernel 6.18. Before this, eksnet printed `sysctl`'s line with status 255 and `ip route get
garbage` as `eksnet: Error: …` with status 2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.entry_point import eksnet_command

NODE1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
RULES = """\
0:\tfrom all lookup local
512:\tfrom all to 192.168.1.51 lookup main
512:\tfrom all to 192.168.1.61 lookup main
1024:\tfrom all fwmark 0x80/0x80 lookup main
1536:\tfrom 192.168.1.61 lookup 2
32766:\tfrom all lookup main
32767:\tfrom all lookup default
"""


def exec_(*command: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*eksnet_command(), "exec", NODE1, "--", *command],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "stderr", "status"),
    [
        (
            "sysctl net.nonexistent",
            "sysctl: cannot stat /proc/sys/net/nonexistent: No such file or directory\n",
            1,
        ),
        (
            "sysctl net.ipv4.conf.eth9.rp_filter",
            "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth9/rp_filter: No such file or directory\n",
            1,
        ),
        ("ip route get garbage", 'Error: any valid prefix is expected rather than "garbage".\n', 1),
        ("ip route get 8.8.8.8 oif eth9", 'Cannot find device "eth9"\n', 1),
        ("ip route show table 99", "Error: ipv4: FIB table does not exist.\nDump terminated\n", 2),
        (
            "ip route show table garbage",
            'Error: argument "garbage" is wrong: table id value is invalid\n\n',
            255,
        ),
        ("ip addr show eth9", 'Device "eth9" does not exist.\n', 1),
        ("ip garbage", 'Object "garbage" is unknown, try "ip help".\n', 1),
        (
            "iptables-save -t garbage",
            "iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist "
            "(do you need to insmod?)\n",
            1,
        ),
    ],
)
def test_a_failing_tool_fails_as_the_real_one(
    tmp_path: Path, command: str, stderr: str, status: int
) -> None:
    result = exec_(*command.split(), cwd=tmp_path)
    assert (result.stdout, result.stderr, result.returncode) == ("", stderr, status)


def test_a_batch_from_stdin(tmp_path: Path) -> None:
    result = exec_("ip", "-batch", "-", cwd=tmp_path, stdin="rule show\naddr show nosuch\n")
    assert (result.stdout, result.stderr, result.returncode) == (
        RULES,
        'Device "nosuch" does not exist.\nCommand failed -:2\n',
        1,
    )


def test_a_forced_batch_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "cmds").write_text("# rules twice\nrule\n\nroute show table 99\nru s\n")
    result = exec_("ip", "-force", "-batch", "cmds", cwd=tmp_path)
    assert (result.stdout, result.stderr, result.returncode) == (RULES + RULES, "", 0)


def test_a_batch_file_that_is_not_there(tmp_path: Path) -> None:
    result = exec_("ip", "-batch", "nope", cwd=tmp_path)
    assert (result.stdout, result.stderr, result.returncode) == (
        "",
        'Cannot open file "nope" for reading: No such file or directory\n',
        1,
    )


def test_what_eksnet_does_not_render_is_eksnets_own_line(tmp_path: Path) -> None:
    result = exec_("ip", "xfrm", "state", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("eksnet: eksnet exec supports: ")
    assert result.stderr.count("\n") == 1
