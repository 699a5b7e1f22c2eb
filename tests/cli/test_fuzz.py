"""Hostile input through the whole command line, generated: mutated cluster specs and random
command lines must never crash, hang or balloon, and must fail the documented way.

The contract (`eksnet.cli` docstring, `errors.py`): exit 0 on success; 2 for bad input (a bad
spec, target, option or command line), 3 for what eksnet does not model yet; either failure is
exactly one stderr line starting `eksnet:` (a walk that reached something not modelled prints the
walk on stdout, then that line). One documented exception: `eksnet exec` passes on a simulated
tool's own failure (its stderr text, unprefixed, and the real tool's status: 1, 2 or 255 for
iproute2, procps `sysctl` and iptables). Never a traceback; each run
within `TIME_LIMIT` seconds and `MEMORY_LIMIT` bytes of Python allocations (tracemalloc peak).

Specs are the demo (`examples/talk.yaml`) mutated: keys deleted, values replaced by values of
another type or odd ones, list items duplicated (sometimes as YAML aliases), values swapped,
a random variant added and selected, and the text itself truncated, with control characters,
YAML syntax or lines inserted or removed. Command lines are `walk`, `exec` and `tour` with
random targets, ports, protocols, options and commands (never `--lab` or `eksnet lab`, which
need root and create namespaces).

Runs in-process through `eksnet.cli.main` (the console script's function, where a click usage
error becomes eksnet's one line) inside typer's `CliRunner` isolation, for speed. Set
`EKSNET_FUZZ_EXAMPLES` for a longer run.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from eksnet import cli
from eksnet.model.load import demo_text

DEMO = demo_text()[0]
DEMO_DATA: dict[str, Any] = yaml.safe_load(DEMO)

TIME_LIMIT = 5.0
"""Seconds one command may take (the demo's slowest, `tour`, takes well under one)."""
MEMORY_LIMIT = 256 * 1024 * 1024
"""Peak bytes of Python allocations one command may make (the demo's runs stay under 40 MiB)."""
TOOL_STATUSES = frozenset({1, 2, 255})
"""Exit statuses of the real tools `eksnet exec` simulates (iproute2, sysctl, iptables)."""
EXAMPLES = int(os.environ.get("EKSNET_FUZZ_EXAMPLES", "120"))

NODE1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE2 = "ip-192-168-1-70.eu-west-2.compute.internal"
POD51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD61 = "pod/default/rating-6d8b7c9f5-q6m4t"
POD71 = "pod/default/app1-5f7d9c6b8-w7r2n"
TARGETS = (
    f"node/{NODE1}",
    f"node/{NODE2}",
    POD51,
    POD61,
    POD71,
    "ip/192.168.1.51",
    "ip/192.168.2.91",
    "ip/203.0.113.10",
    "ip/198.51.100.20",
    "ip/10.100.200.10",
    "ip/192.0.2.101",
    "ip/8.8.8.8",
    "ip/127.0.0.1",
    "ip/169.254.169.254",
    "ip/224.0.0.1",
    "ip/255.255.255.255",
    "ip/0.0.0.0",
    "ip/192.168.1.255",
    "node/",
    "pod//",
    "pod/default/",
    "ip/",
    "ip/1.2.3",
    "ip/::1",
    "nodes/x",
    "x",
    "",
)
EXEC_COMMANDS = (
    ["ip", "rule"],
    ["ip", "a"],
    ["ip", "-4", "addr", "show", "dev", "eth0"],
    ["ip", "link"],
    ["ip", "link", "show", "nope"],
    ["ip", "route"],
    ["ip", "route", "show", "table", "all"],
    ["ip", "route", "show", "table", "99"],
    ["ip", "route", "get", "8.8.8.8"],
    ["ip", "route", "get", "192.168.1.61", "from", "192.168.1.51", "iif", "eth0"],
    ["ip", "route", "get"],
    ["ip", "neigh"],
    ["ip", "xfrm", "state"],
    ["ip", "-batch", "-"],
    ["ip", "-force", "-batch", "-"],
    ["arp", "-n"],
    ["iptables-save"],
    ["iptables-save", "-t", "nat"],
    ["iptables-save", "-t", "bogus"],
    ["sysctl", "net.ipv4.ip_forward"],
    ["sysctl", "-n", "net.ipv4.conf.eth0.rp_filter"],
    ["sysctl", "net.ipv4.nope"],
    ["conntrack", "-L"],
    ["bash"],
    [],
)
ODD_VALUES: tuple[object, ...] = (
    None,
    True,
    False,
    0,
    1,
    2,
    3,
    -1,
    2**31,
    2**63,
    10**40,
    1.5,
    float("inf"),
    "",
    " ",
    "a b",
    "x" * 300,
    "a/b",
    "eth0:1",
    "eth%d",
    "..",
    "lo",
    "02:00:00:00:00:00",
    "00:00:00:00:00:00",
    "ff:ff:ff:ff:ff:ff",
    "03:00:c0:a8:01:32",
    "banana",
    "0.0.0.0/0",
    "192.168.1.50",
    "192.168.1.16/28",
    "192.168.1.0/8",
    "::1",
    "fe80::1",
    "v1.2.3",
    "v0.0.1",
    "node/x",
    "sg-nope",
    "service/nope",
    "\u00e0",
    [],
    {},
    [None],
    {"a": 1},
    ["x", "x"],
)
TEXT_SNIPPETS = (
    "!custom ",
    "!!python/object/apply:os.system [echo] ",
    "!!binary ",
    "<<: *a\n",
    "&a ",
    "*a ",
    "*undefined ",
    "[" * 80,
    "{",
    "? ",
    "---\n",
    "%TAG ! tag:x,2000:\n",
    ": ",
    "- ",
    "'",
    '"',
    "\t",
    "#",
    "\\x01",
    '"\\0"',
    "\x00",
    "\x01",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
    "\r",
    "\ud800",
)
VARIANT_KEYS = (
    "subnets",
    "cni",
    "nodeDefaults",
    "kubeProxy",
    "kubernetes",
    "vpc",
    "nodes",
    "pods",
    "services",
    "bogus",
    "name",
    "variants",
)


# Running the command line in-process ------------------------------------------------------------


class _TooSlow(BaseException):
    """Raised by the alarm in the command's frame; a BaseException so no `except Exception` in
    the code under test can swallow it."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _TooSlow


@dataclass
class Outcome:
    args: list[str]
    status: int
    stdout: str
    stderr: str
    seconds: float
    peak: int
    crash: str | None = None
    spec: str = field(default="", repr=False)

    def describe(self) -> str:
        shown = self.stderr if len(self.stderr) < 2000 else self.stderr[:2000] + "…"
        return (
            f"eksnet {' '.join(map(repr, self.args))}\n"
            f"exit {self.status} after {self.seconds:.2f} s, peak {self.peak / 2**20:.1f} MiB\n"
            f"stderr: {shown!r}\n" + (f"crash:\n{self.crash}" if self.crash else "")
        )


def run_cli(args: list[str]) -> Outcome:
    """`eksnet ARGS` in this process, as the console script runs it (`cli.main`)."""
    crash: str | None = None
    status = 0
    pipe = signal.getsignal(signal.SIGPIPE)  # `main` resets SIGPIPE, as a CLI should
    alarm = signal.signal(signal.SIGALRM, _alarm)
    with CliRunner().isolation() as (out, err, _):
        tracemalloc.start()
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT * 3)
        try:
            status = cli.main(list(args))
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except _TooSlow:
            crash = f"still running after {TIME_LIMIT * 3} s"
        except BaseException:
            crash = traceback.format_exc()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            signal.signal(signal.SIGALRM, alarm)
            signal.signal(signal.SIGPIPE, pipe)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout = out.getvalue().decode("utf-8", errors="replace")
        stderr = err.getvalue().decode("utf-8", errors="replace")
    return Outcome(list(args), status, stdout, stderr, seconds, peak, crash)


def check(outcome: Outcome) -> None:
    """The contract of the module docstring."""
    about = outcome.describe()
    assert outcome.crash is None, about
    assert "Traceback" not in outcome.stderr, about
    assert outcome.seconds < TIME_LIMIT, about
    assert outcome.peak < MEMORY_LIMIT, about
    lines = outcome.stderr.splitlines()
    command = outcome.args[0] if outcome.args else ""
    ours = outcome.stderr.startswith("eksnet:")
    if outcome.status == 0:
        assert not any(line.startswith("eksnet:") for line in lines), about
    elif outcome.status in (2, 3) and ours:
        assert len(lines) == 1 and outcome.stderr.endswith("\n"), about
    elif command == "exec" and outcome.status in TOOL_STATUSES:
        pass  # the simulated tool's own failure, as the real tool prints it
    else:
        raise AssertionError("not one of the documented outcomes\n" + about)


# Strategies: specs ------------------------------------------------------------------------------

DataPath = tuple[str | int, ...]


def all_paths(data: object, path: DataPath = ()) -> list[DataPath]:
    """Every place in the data (not the root)."""
    found: list[DataPath] = []
    items: list[tuple[str | int, object]] = []
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = list(enumerate(data))
    for key, value in items:
        found.append((*path, key))
        found += all_paths(value, (*path, key))
    return found


def parent_of(data: Any, path: DataPath) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


odd_values = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
)


@st.composite
def mutated_data(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], str | None]:
    """The demo's data with a few structural mutations; the variant to select, if any."""
    data = copy.deepcopy(DEMO_DATA)
    done: list[str] = []
    select: str | None = None
    for kind in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        paths = all_paths(data)
        if kind == "variant":
            name = draw(st.one_of(st.sampled_from(["nat", "w", "what-if", "x y", ""]), st.text()))
            patch = draw(
                st.one_of(
                    odd_values,
                    st.dictionaries(
                        st.sampled_from(VARIANT_KEYS),
                        st.one_of(
                            odd_values,
                            st.dictionaries(
                                st.sampled_from(
                                    ["public-a", "nope", "env", "routeTable", "version", "ami"]
                                ),
                                st.one_of(
                                    odd_values,
                                    st.dictionaries(
                                        st.sampled_from(
                                            ["routeTable", "cidr", "AWS_VPC_K8S_CNI_EXTERNALSNAT"]
                                        ),
                                        odd_values,
                                        max_size=2,
                                    ),
                                ),
                                max_size=2,
                            ),
                        ),
                        max_size=3,
                    ),
                )
            )
            variants = data.get("variants")
            if not isinstance(variants, dict):
                variants = data["variants"] = {}
            variants[name] = patch = copy.deepcopy(patch)
            if draw(st.booleans()):
                select = name
            done.append(f"variant {name!r}: {patch!r}")
            continue
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        parent = parent_of(data, path)
        key = path[-1]
        if kind == "delete":
            del parent[key]
            done.append(f"delete {path}")
        elif kind == "replace":
            value = copy.deepcopy(draw(odd_values))  # ODD_VALUES' lists are shared
            parent[key] = value
            done.append(f"{path} = {value!r}")
        elif kind == "duplicate" and isinstance(parent, list):
            shared = draw(st.booleans())  # the same object twice dumps as an anchor and alias
            item = parent[key] if shared else copy.deepcopy(parent[key])
            parent.insert(int(key), item)
            done.append(f"duplicate {path}{' (alias)' if shared else ''}")
        elif kind == "swap":
            other = draw(st.sampled_from(paths))
            other_parent = parent_of(data, other)
            if other[: len(path)] == path or path[: len(other)] == other:
                continue
            # Copies: swapping parts of an aliased item with the item could make a cycle.
            mine, theirs = copy.deepcopy(parent[key]), copy.deepcopy(other_parent[other[-1]])
            parent[key], other_parent[other[-1]] = theirs, mine
            done.append(f"swap {path} {other}")
    return data, done, select


MUTATIONS = ("delete", "replace", "duplicate", "swap", "variant")


@st.composite
def mutated_spec(draw: st.DrawFn) -> tuple[bytes, list[str], str | None]:
    """A spec file's bytes: the demo's text or its mutated data, then text mutations."""
    if draw(st.booleans()):
        text, done, select = DEMO, ["demo text"], None
    else:
        data, done, select = draw(mutated_data())
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    for kind in draw(st.lists(st.sampled_from(TEXT_MUTATIONS), max_size=2)):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        if kind == "truncate":
            text = text[:at]
            done.append(f"truncate at {at}")
        elif kind == "insert":
            snippet = draw(st.sampled_from(TEXT_SNIPPETS))
            text = text[:at] + snippet + text[at:]
            done.append(f"insert {snippet!r} at {at}")
        else:
            lines = text.splitlines(keepends=True)
            if not lines:
                continue
            index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            if kind == "duplicate-line":
                lines.insert(index, lines[index])
            else:
                del lines[index]
            text = "".join(lines)
            done.append(f"{kind} {index + 1}")
    return text.encode("utf-8", errors="surrogatepass"), done, select


TEXT_MUTATIONS = ("truncate", "insert", "duplicate-line", "delete-line")


# Strategies: command lines ----------------------------------------------------------------------

targets = st.one_of(
    st.sampled_from(TARGETS),
    st.builds(
        lambda kind, rest: f"{kind}/{rest}",
        st.sampled_from(["node", "pod", "ip"]),
        st.text(max_size=20),
    ),
    st.text(max_size=12),
)
port_words = st.one_of(
    st.integers(min_value=-5, max_value=70000).map(str),
    st.sampled_from(["80", "0", "65535", "65536", "abc", "", "1e3", "0x50", " 80"]),
)
variant_words = st.sampled_from(["nat", "externalSnat", "nope", ""])


@st.composite
def walk_line(draw: st.DrawFn) -> list[str]:
    args = ["walk", draw(targets), draw(targets)]
    if draw(st.booleans()):
        args += ["--port", draw(port_words)]
    if draw(st.booleans()):
        args += ["--sport", draw(port_words)]
    if draw(st.booleans()):
        args += ["--proto", draw(st.sampled_from(["tcp", "udp", "icmp", "sctp", "TCP", ""]))]
    if draw(st.booleans()):
        args += ["--variant", draw(variant_words)]
    args += draw(st.lists(st.sampled_from(["--json", "-v", "--no-return"]), max_size=2))
    return args


@st.composite
def exec_line(draw: st.DrawFn) -> list[str]:
    args = ["exec", draw(targets)]
    if draw(st.booleans()):
        args += ["--variant", draw(variant_words)]
    command = list(draw(st.sampled_from(EXEC_COMMANDS)))
    if draw(st.booleans()):
        command.append(draw(st.sampled_from(["nope", "-x", "999", "eth0", "all", "table"])))
    return [*args, "--", *command]


@st.composite
def tour_line(draw: st.DrawFn) -> list[str]:
    args = ["tour", "--walk", draw(st.sampled_from(["W0", "W1", "W2", "W10", "X1", "nope", ""]))]
    return args + draw(st.lists(st.sampled_from(["-v", "--walk", "W2"]), max_size=2))


@st.composite
def junk_line(draw: st.DrawFn) -> list[str]:
    """Command lines click must refuse: unknown options and commands, missing arguments."""
    return draw(
        st.sampled_from(
            [
                ["walk"],
                ["walk", POD51],
                ["walk", POD51, POD61, "--port"],
                ["walk", POD51, POD61, "--bogus"],
                ["exec"],
                ["exec", f"node/{NODE1}"],
                ["tour", "--bogus"],
                ["bogus"],
                ["--bogus"],
                ["walk", POD51, POD61, "--port", "80", "extra"],
            ]
        )
    )


command_lines = st.one_of(walk_line(), exec_line(), tour_line(), junk_line())


def with_spec(path: Path, select: str | None) -> Callable[[list[str]], list[str]]:
    """Put `--cluster PATH [--variant NAME]` into a command line (before `--` for exec)."""

    def add(args: list[str]) -> list[str]:
        extra = ["--cluster", str(path)]
        if select is not None and args[0] != "tour":
            extra += ["--variant", select]
        if "--" in args:
            at = args.index("--")
            return [*args[:at], *extra, *args[at:]]
        return [*args, *extra]

    return add


SPEC_COMMANDS = (
    ["exec", f"node/{NODE1}", "--", "ip", "rule"],
    ["exec", POD61, "--", "ip", "route"],
    ["walk", POD51, POD61, "--port", "80"],
    ["walk", "ip/203.0.113.10", "ip/192.0.2.101", "--port", "80", "--json"],
    ["tour", "--walk", "W0"],
    ["tour", "--walk", "W2"],
)


# The tests --------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(spec=mutated_spec(), command=st.sampled_from(SPEC_COMMANDS))
def test_mutated_specs_fail_the_documented_way(
    spec: tuple[bytes, list[str], str | None], command: list[str]
) -> None:
    data, mutations, select = spec
    with tempfile.TemporaryDirectory(prefix="eksnet-fuzz-") as directory:
        path = Path(directory) / "spec.yaml"
        path.write_bytes(data)
        outcome = run_cli(with_spec(path, select)(list(command)))
        if outcome.crash or outcome.status not in (0, 2, 3) or "Traceback" in outcome.stderr:
            keep = Path(tempfile.gettempdir()) / "eksnet-fuzz-failure.yaml"
            keep.write_bytes(data)
            outcome.crash = (outcome.crash or "") + f"\nspec kept in {keep}; {mutations}"
        check(outcome)
        if outcome.status == 2 and outcome.stderr.startswith(f"eksnet: {path}"):
            # An error in the spec names the file, usually the line, and always the fix.
            assert re.match(rf"eksnet: {re.escape(str(path))}(:\d+)?: ", outcome.stderr)
            assert outcome.stderr.rstrip("\n").endswith(")"), outcome.describe()
            assert " (fix: " in outcome.stderr, outcome.describe()


@FUZZ
@given(args=command_lines)
def test_random_command_lines_fail_the_documented_way(args: list[str]) -> None:
    check(run_cli(args))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["walk", POD51, POD61, "--port", "abc"], "--port"),
        (["walk", POD51, POD61, "--port", "65536"], "--port"),
        (["walk", POD51, POD61, "--bogus"], "--bogus"),
        (["walk", POD51], "DST"),
        (["exec"], "TARGET"),
    ],
)
def test_click_usage_errors_are_one_eksnet_line(args: list[str], says: str) -> None:
    """The one-line contract holds for what click itself refuses too (`cli.usage_error_line`)."""
    outcome = run_cli(args)
    check(outcome)
    assert outcome.status == 2, outcome.describe()
    assert outcome.stderr.startswith("eksnet: ") and says in outcome.stderr, outcome.describe()
