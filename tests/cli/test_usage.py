"""A malformed command line, through the installed `eksnet`: one line `eksnet: …` naming what is
wrong and the fix, exit status 2, never typer's usage box or a traceback; `--help` still works.

Also the shared checks of `eksnet tour`: an unknown walk id (`--walk`), and a running lab that
holds another cluster than the one asked about (`--lab`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.cli.test_errors import BAD_INPUT, assert_one_error_line, run
from tests.entry_point import eksnet_command
from typer.testing import CliRunner

POD51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD61 = "pod/default/rating-6d8b7c9f5-q6m4t"
NODE1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
BOX = ("╭", "╰", "│", "Usage:", "Try '")
"""What typer's error box and click's usage text are made of: never in an error here."""


def assert_usage_error(result: subprocess.CompletedProcess[str], *says: str) -> str:
    line = assert_one_error_line(result, *says, "(fix: ", code=BAD_INPUT)
    for piece in BOX:
        assert piece not in line, line
    return line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), ["missing command", "one of walk, exec, import, check, tour, lab"]),
        (("bogus",), ["no such command 'bogus'", "one of walk, exec, import, check, tour, lab"]),
        (("--bogus",), ["no such option: --bogus"]),
        (("walk",), ["missing argument 'SRC'", "eksnet walk [OPTIONS] SRC DST"]),
        (("walk", POD51), ["missing argument 'DST'", "eksnet walk --help"]),
        (("walk", POD51, POD61, "--bogus"), ["no such option: --bogus", "eksnet walk --help"]),
        (("walk", POD51, POD61, "--port"), ["'--port' requires an argument", "1 to 65535"]),
        (("walk", POD51, POD61, "a", "b"), ["unexpected extra argument"]),
        (("exec",), ["missing argument 'TARGET'", "eksnet exec [OPTIONS] TARGET CMD"]),
        (("exec", NODE1), ["missing argument 'CMD'"]),
        (("exec", "--cluster"), ["'--cluster' requires an argument"]),
        (("tour", "--bogus"), ["no such option: --bogus", "eksnet tour --help"]),
        (("lab",), ["missing command", "one of up, down, status, exec, collect, verify"]),
        (("lab", "bogus"), ["no such command 'bogus'", "eksnet lab --help"]),
        (("lab", "exec"), ["missing argument 'TARGET'", "eksnet lab exec"]),
        (("lab", "up", "--bogus"), ["no such option: --bogus"]),
        (("lab", "verify", "--proto", "sctp"), ["'sctp' is not one of 'tcp', 'udp', 'icmp'"]),
        (("lab", "verify", "a/b", "c/d", "--port", "0"), ["'--port'", "'0'", "1 to 65535"]),
        (("lab", "verify", "a/b", "c/d", "--sport", "x"), ["'--sport'", "'x'", "1 to 65535"]),
        (("lab", "verify", "W1", "--port", "80"), ["apply to one SRC DST walk"]),
    ],
)
def test_malformed_command_line(tmp_path: Path, args: tuple[str, ...], says: list[str]) -> None:
    assert_usage_error(run(*args, cwd=tmp_path), *says)


@pytest.mark.parametrize("option", ["--port", "--sport"])
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("abc", "valid integer"),
        ("65536", "less than or equal to 65535"),
        ("-1", "greater than or equal to 1"),
        ("0", "greater than or equal to 1"),
        ("80.5", "valid integer"),
    ],
)
def test_a_port_is_1_to_65535(tmp_path: Path, option: str, value: str, says: str) -> None:
    for spelled in ([option, value], [f"{option}={value}"]):
        result = run("walk", POD51, POD61, *spelled, cwd=tmp_path)
        assert_usage_error(result, f"'{option}'", says, f"(got {value!r})", "1 to 65535")


@pytest.mark.parametrize("port", ["1", "65535"])
def test_the_ends_of_the_port_range_are_accepted(tmp_path: Path, port: str) -> None:
    result = run("walk", POD51, POD61, "--port", port, "--sport", port, "--json", cwd=tmp_path)
    assert result.returncode in (0, 3), result.stderr
    flow = json.loads(result.stdout)["walk"]["flow"]
    assert (flow["dport"], flow["sport"]) == (int(port), int(port))


@pytest.mark.parametrize(
    "args",
    [("--help",), ("walk", "--help"), ("exec", "--help"), ("tour", "--help"), ("lab", "--help")],
)
def test_help_still_works(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"Usage: eksnet {' '.join(args[:-1])}".rstrip() + " ")
    assert "╭" not in result.stdout


def test_help_lists_the_lab_without_importing_it() -> None:
    probe = (
        "import sys; from eksnet.cli import main\n"
        "status = main(['--help'])\n"
        "assert status == 0, status\n"
        "heavy = [m for m in sys.modules if m.startswith(('eksnet.lab', 'rich', 'pydantic'))]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "  lab " in completed.stdout


def test_plain_exec_does_not_build_the_typer_app() -> None:
    probe = (
        "import sys; from eksnet.cli import main\n"
        f"status = main(['exec', '{NODE1}', '--', 'ip', 'rule'])\n"
        "assert status == 0, status\n"
        "heavy = [m for m in sys.modules if m.startswith(('typer', 'rich', 'eksnet.lab'))]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("0:\tfrom all lookup local\n")


@pytest.mark.parametrize(
    "args",
    [
        ("exec", NODE1, "--", "ip", "rule"),
        ("exec", NODE1, "ip", "rule"),
        ("exec", "--cluster=" + "{demo}", NODE1, "--", "ip", "rule"),
        ("exec", NODE1, "--variant", "none", "--", "ip", "rule"),
    ],
)
def test_the_fast_path_reads_exec_as_typer_does(tmp_path: Path, args: tuple[str, ...]) -> None:
    """The same command line through `main()` (fast path) and typer's CliRunner (no fast path)."""
    from eksnet.cli import app, plain_exec
    from eksnet.model.load import demo_text

    demo = tmp_path / "demo.yaml"
    demo.write_text(demo_text()[0], encoding="utf-8")
    argv = [arg.replace("{demo}", str(demo)) for arg in args]
    assert plain_exec(argv) is not None
    fast = run(*argv, cwd=tmp_path)
    slow = CliRunner().invoke(app, argv)
    assert (fast.returncode, fast.stdout) == (slow.exit_code, slow.stdout)


def test_exec_fast_path_leaves_odd_command_lines_to_typer() -> None:
    from eksnet.cli import plain_exec

    assert plain_exec(["exec", NODE1, "--help"]) is None
    assert plain_exec(["exec", NODE1, "-x", "ip"]) is None
    assert plain_exec(["exec", NODE1]) is None
    assert plain_exec(["exec", NODE1, "--cluster"]) is None
    line = plain_exec(["exec", "--variant=v", NODE1, "--", "ip", "--cluster", "x"])
    assert line is not None
    assert (line.target, line.command, line.variant) == (NODE1, ["ip", "--cluster", "x"], "v")


# --- tour ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("walks", "unknown"), [(["W99"], "W99"), (["W1", "W42", "X"], "W42, X")])
def test_tour_with_an_unknown_walk(tmp_path: Path, walks: list[str], unknown: str) -> None:
    args = [arg for walk in walks for arg in ("--walk", walk)]
    result = run("tour", *args, cwd=tmp_path)
    line = assert_one_error_line(result, f"unknown walk {unknown}")
    from eksnet.walk.tour import KNOWN

    assert [t.id for t in KNOWN][:3] == ["W0", "W1", "W2"]
    assert line.endswith(f"(fix: one of {', '.join(t.id for t in KNOWN)})"), line


def test_tour_of_one_known_walk(tmp_path: Path) -> None:
    result = run("tour", "--walk", "W1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "W1 — " in result.stdout
    assert "W0 — " not in result.stdout and "W2 — " not in result.stdout


def write_run_file(run_dir: Path, prefix: str, cluster: str | None) -> None:
    """A lab's run file as `lifecycle.write_run_file` writes it (see `lifecycle._load`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"prefix": prefix, "cluster": cluster, "namespaces": {}, "fabric": prefix + "vpc"}
    (run_dir / f"lab-{prefix}.json").write_text(json.dumps(record), encoding="utf-8")


@pytest.mark.parametrize(
    ("held", "asked", "says"),
    [
        ("/somewhere/other.yaml", None, "the lab up holds /somewhere/other.yaml, not the demo"),
        (None, "mine.yaml", "the lab up holds the demo, not mine.yaml"),
        ("/somewhere/other.yaml", "mine.yaml", "not mine.yaml"),
    ],
)
def test_tour_lab_refuses_a_lab_of_another_cluster(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    held: str | None,
    asked: str | None,
    says: str,
) -> None:
    from eksnet.cli import app
    from eksnet.lab import lifecycle
    from eksnet.lab.names import LabNames
    from eksnet.model.load import demo_text

    names = LabNames("eksnet-lab-t-cli-", run_dir=str(tmp_path / "run"))
    write_run_file(tmp_path / "run", names.prefix, held)
    assert names.run_file == str(tmp_path / "run" / f"lab-{names.prefix}.json")
    monkeypatch.setattr(LabNames, "from_env", classmethod(lambda cls: names))
    monkeypatch.setattr(lifecycle, "lab_netns", lambda _: (names.prefix + "x",))
    built: list[object] = []
    monkeypatch.setattr(lifecycle, "up", lambda *a, **k: built.append(a))
    monkeypatch.chdir(tmp_path)
    if asked is not None:
        (tmp_path / asked).write_text(demo_text()[0], encoding="utf-8")
    args = ["tour", "--lab", "--walk", "W1", *(["--cluster", asked] if asked else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == BAD_INPUT, result.output
    assert says in result.stderr
    assert result.stderr.startswith("eksnet: ") and result.stderr.count("\n") == 1
    assert "(fix: run `eksnet lab down` first)" in result.stderr
    assert built == []
    assert "W1 — " not in result.stdout


def test_tour_lab_accepts_the_lab_of_its_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the check: the walk is rendered and handed to the kernel check (stubbed here)."""
    from eksnet.cli import app
    from eksnet.lab import cli as lab_cli
    from eksnet.lab import lifecycle
    from eksnet.lab.names import LabNames

    names = LabNames("eksnet-lab-t-cli-", run_dir=str(tmp_path / "run"))
    write_run_file(tmp_path / "run", names.prefix, None)
    monkeypatch.setattr(LabNames, "from_env", classmethod(lambda cls: names))
    monkeypatch.setattr(lifecycle, "lab_netns", lambda _: (names.prefix + "x",))
    checked: list[str] = []

    def verify_walk(state: object, walk: object, lab: object, label: str) -> object:
        checked.append(label)
        raise KeyboardInterrupt

    monkeypatch.setattr(lab_cli, "verify_walk", verify_walk)
    result = CliRunner().invoke(app, ["tour", "--lab", "--walk", "W1"])
    assert checked == ["W1 on the kernel"]
    assert result.exit_code == 130
    assert result.stderr == "eksnet: interrupted\n"


# --- interrupt ----------------------------------------------------------------------------------


def _reading_stdin(pid: int) -> bool:
    """Whether the process sits in read(0, …) (x86-64 and arm64 syscall numbers)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] in ("0", "63") and int(fields[1], 16) == 0


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs /proc/PID/syscall")
def test_an_interrupt_is_one_line_and_status_130() -> None:
    """`ip -batch -` waits on stdin; Ctrl-C there ends eksnet with one line, like a shell tool."""
    process = subprocess.Popen(
        [*eksnet_command(), "exec", NODE1, "--", "ip", "-batch", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while not _reading_stdin(process.pid):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "eksnet never read its stdin"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (process.returncode, stdout, stderr) == (130, "", "eksnet: interrupted\n")
