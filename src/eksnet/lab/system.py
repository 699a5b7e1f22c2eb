"""Running the real tools: the only module of the lab that starts processes (`inside.py` only
replaces `lab exec`'s own process with the user's command; `netlink.py` starts none).

Every command is an argv list (never a shell string), fed its batch on stdin, and a failure raises
`LabError` with the tool's own stderr and the batch line it names, so a broken plan is reported
as the kernel saw it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from eksnet.errors import EksnetError

T = TypeVar("T")
R = TypeVar("R")


class LabError(EksnetError):
    """The lab could not do what it was asked (a tool failed, a capability is missing)."""

    exit_code = 4


@dataclass(frozen=True, slots=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float | None = 60,
) -> Result:
    """Run one command; with `check`, a non-zero exit raises `LabError` with its stderr."""
    completed = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    result = Result(tuple(argv), completed.returncode, completed.stdout, completed.stderr)
    if check and completed.returncode != 0:
        raise LabError(_failure(result, stdin))
    return result


def _failure(result: Result, stdin: str | None) -> str:
    text = result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
    where = ""
    if stdin:
        # ip/bridge/tc -batch say "Command failed -:N"; show that line of the batch.
        for token in text.split():
            if token.startswith("-:") and token[2:].isdigit():
                lines = stdin.splitlines()
                index = int(token[2:]) - 1
                if 0 <= index < len(lines):
                    where = f" (batch line {index + 1}: {lines[index]!r})"
    return f"{' '.join(result.argv[:6])}: {text}{where}"


def start(argv: Sequence[str], *, stdin: bool = False) -> subprocess.Popen[str]:
    """Start one long-running command (a server the lab keeps up while it works) with its
    stdout piped as text, stderr piped, stdin piped when asked (else /dev/null). The caller
    stops it with `stop`."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str], timeout: float = 5) -> tuple[str, str]:
    """Stop a process `start` started (SIGTERM, then SIGKILL if it lingers) and return what it
    printed: its stdout and stderr."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out or "", err or ""


def parallel(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = None,
    on_done: Callable[[T], None] | None = None,
) -> list[R]:
    """Apply `func` to every item on a thread pool (each call mostly waits on the kernel or a
    child process);
    the first exception is re-raised after the pool stops taking new work."""
    todo = list(items)
    if not todo:
        return []
    count = workers or min(32, max(4, 4 * (os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(func, item) for item in todo]
        results: list[R] = []
        try:
            for item, future in zip(todo, futures, strict=True):
                results.append(future.result())
                if on_done is not None:
                    on_done(item)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def ip_batch(netns: str | None, lines: Sequence[str]) -> None:
    """`ip [-n NETNS] -batch -` with the given lines; nothing to do for an empty batch."""
    if not lines:
        return
    argv = ["ip", *(("-n", netns) if netns else ()), "-batch", "-"]
    run(argv, stdin="\n".join(lines) + "\n")


def netns_exec(netns: str, argv: Sequence[str], **kwargs: object) -> Result:
    return run(["ip", "netns", "exec", netns, *argv], **kwargs)  # type: ignore[arg-type]


def list_netns() -> tuple[str, ...]:
    """Names under /run/netns (`ip netns list` without its id decoration)."""
    try:
        return tuple(sorted(os.listdir("/run/netns")))
    except FileNotFoundError:
        return ()


def netns_pids(netns: Iterable[str], run_dir: str = "/run/netns") -> tuple[int, ...]:
    """Every process whose network namespace is one of these (`ip netns pids`, for many
    namespaces in one pass over /proc instead of one `ip` per namespace)."""
    wanted: set[tuple[int, int]] = set()
    for name in netns:
        with contextlib.suppress(OSError):
            info = os.stat(os.path.join(run_dir, name))
            wanted.add((info.st_dev, info.st_ino))
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            info = os.stat(f"/proc/{entry}/ns/net")
            if (info.st_dev, info.st_ino) in wanted:
                pids.append(int(entry))
    return tuple(pids)


# --- capabilities -------------------------------------------------------------------------------

TOOLS: tuple[tuple[str, str], ...] = (
    ("ip", "iproute2"),
    ("bridge", "iproute2"),
    ("tc", "iproute2"),
    ("nft", "nftables"),
    ("iptables-legacy-restore", "iptables"),
    ("iptables-nft-restore", "iptables"),
    ("iptables-legacy-save", "iptables"),
    ("iptables-nft-save", "iptables"),
    ("tcpdump", "tcpdump"),
    ("conntrack", "conntrack"),
    ("xtables-monitor", "iptables"),
    ("nfacct", "nfacct"),
)


def missing_capabilities() -> tuple[str, ...]:
    """What this machine lacks for the lab, each said exactly (empty when all is there)."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("root: the lab creates network namespaces (run as uid 0)")
    for tool, package in TOOLS:
        if shutil.which(tool) is None:
            missing.append(f"command {tool!r} (Debian package {package})")
    if not os.path.isdir("/proc/sys/net"):
        missing.append("/proc/sys/net (procfs with network sysctls)")
    return tuple(missing)


def require_capabilities() -> None:
    missing = missing_capabilities()
    if missing:
        raise LabError("the lab cannot run here; missing: " + "; ".join(missing))
