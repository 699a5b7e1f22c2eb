"""Per-run lab prefixes and a teardown that removes a test's labs and processes whatever happened.

Every lab a test builds gets the prefix `RUN_PREFIX + tag + "-"`. `RUN_PREFIX` is
`eksnet-lab-t<pid>-<random>-`: it carries the lab's `eksnet-lab-` prefix like everything the lab
creates, the pid tells a reader which pytest made it, and the random part keeps two suites apart
even when they run in different pid namespaces over one /run/netns. Each such lab writes its run
file before creating anything, so a user's `eksnet lab down` (prefix `eksnet-lab-`) leaves it
alone, and this run's `down`s never reach another run's or the user's namespaces.

`Scratch.close` is what a test's teardown does, also after a failure mid-way: SIGKILL the process
group of every child it started (a child ignoring SIGINT/SIGTERM included), then `lifecycle.down`
of every lab it named, then check nothing of them is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from types import TracebackType

from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle, system
from eksnet.lab.lifecycle import CHECKPOINT_ENV
from eksnet.lab.names import PREFIX_ENV, LabNames
from eksnet.lab.plan import build_plan

RUN_PREFIX = f"eksnet-lab-t{os.getpid()}-{secrets.token_hex(2)}-"
_TAGS: set[str] = set()
"""Tags handed out in this run: two tests sharing a prefix would take each other's labs down."""

_PR_SET_PDEATHSIG = 1


def lab_size(state: DataplaneState) -> int:
    """How many namespaces a lab of `state` has: one per node and pod, the fabric, and the
    internet when the state has an internet gateway (what the plan creates)."""
    return len(build_plan(state, LabNames("eksnet-lab-size-")).netns_names())


def run_names(tag: str) -> LabNames:
    """A prefix of this run for `tag`; each tag once per run."""
    if tag in _TAGS:
        raise ValueError(f"lab tag {tag!r} used twice in this test run")
    _TAGS.add(tag)
    return LabNames(f"{RUN_PREFIX}{tag}-")


def _die_with_parent_ignoring(ignored: tuple[signal.Signals, ...]) -> None:
    """In the child before exec: SIGKILL it when pytest dies (so a killed test run leaves no
    `lab up` asleep at a checkpoint), and ignore `ignored` as a nohup-like parent would."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    for signum in ignored:
        signal.signal(signum, signal.SIG_IGN)


class Scratch:
    """The labs and child processes of one test, all removed by `close`."""

    def __init__(self) -> None:
        self.labs: list[LabNames] = []
        self.children: list[subprocess.Popen[bytes]] = []

    def names(self, tag: str) -> LabNames:
        names = run_names(tag)
        self.labs.append(names)
        return names

    def extend(self, names: LabNames, tag: str) -> LabNames:
        """A lab whose prefix extends `names`' prefix (the nested-prefix cases)."""
        nested = LabNames(f"{names.prefix}{tag}-")
        self.labs.append(nested)
        return nested

    def start_up(
        self,
        names: LabNames,
        stop_at: str | None = None,
        *,
        ignore: Iterable[signal.Signals] = (),
    ) -> subprocess.Popen[bytes]:
        """`eksnet lab up` as a child in a process group of its own (so teardown can SIGKILL it
        with every `ip`/`iptables-restore` it started), stopped at checkpoint `stop_at`."""
        env = dict(os.environ, **{PREFIX_ENV: names.prefix})
        env.pop(CHECKPOINT_ENV, None)
        if stop_at:
            env[CHECKPOINT_ENV] = stop_at
        ignored = tuple(ignore)
        proc = subprocess.Popen(
            [sys.executable, "-m", "eksnet.lab.cli", "up"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _die_with_parent_ignoring(ignored),
        )
        self.children.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGKILL `proc`'s whole process group and reap it; its exit status. Only while `proc`
        is not yet reaped: until then its pid, which is the group's id, cannot name anyone else's
        process group."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)

    def close(self) -> None:
        """Kill every child, take every lab down, and fail if anything of them is left."""
        problems: list[str] = []
        for proc in self.children:
            try:
                self.kill(proc)
            except subprocess.TimeoutExpired:
                problems.append(f"child {proc.pid} survived SIGKILL")
            if proc.stderr is not None:
                proc.stderr.close()
        for names in reversed(self.labs):
            try:
                lifecycle.down(names)
            except Exception as error:  # report every lab, not only the first failure
                problems.append(f"down {names.prefix}: {error}")
        left = [ns for names in self.labs for ns in lifecycle.lab_netns(names)]
        left += [names.run_file for names in self.labs if os.path.exists(names.run_file)]
        if left:
            problems.append(f"left behind: {', '.join(left)}")
        if problems:
            raise AssertionError("; ".join(problems))

    def __enter__(self) -> Scratch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def wait_checkpoint(proc: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
    """Wait until `lab up` reports checkpoint `name` on stderr; fail, with what it printed, if
    it ends first or takes longer than `timeout` (a hung child never hangs the test)."""
    assert proc.stderr is not None
    marker = f"eksnet-lab-checkpoint {name}".encode()
    seen = b""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while marker not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no checkpoint {name} in {timeout} s: {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                status = proc.wait(timeout=30)
                raise AssertionError(
                    f"`lab up` ended (status {status}) before checkpoint {name}: {seen[-2000:]!r}"
                )
            seen += chunk


def run_leftovers() -> list[str]:
    """Everything of this run still on the machine: namespaces and run files."""
    run_dir = LabNames(RUN_PREFIX).run_dir
    try:
        files = [f for f in os.listdir(run_dir) if f.startswith(f"lab-{RUN_PREFIX}")]
    except FileNotFoundError:
        files = []
    namespaces = [ns for ns in system.list_netns() if ns.startswith(RUN_PREFIX)]
    return namespaces + [os.path.join(run_dir, f) for f in files]


def sweep_run() -> None:
    """Take down every lab of this run: each claimed one by its own prefix, then unclaimed
    leftovers by the run prefix (a `down` of the run prefix alone would spare the claimed ones,
    which is the point of claims)."""
    for claim in lifecycle.claims(LabNames(RUN_PREFIX)):
        if claim.prefix.startswith(RUN_PREFIX):
            lifecycle.down(LabNames(claim.prefix))
    lifecycle.down(LabNames(RUN_PREFIX))
