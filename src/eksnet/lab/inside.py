"""Run a command inside a lab namespace, seeing what a real node or pod sees.

`ip netns exec eksnet-lab-NODE ip link` prints the lab's artefacts: iproute2 names a veth's
peer namespace by looking through `/run/netns` for a file with the same netns id, so the host
veth of a pod prints `link-netns eksnet-lab-cni-04b6218d-…` where the slide (and a real EKS
node, whose `/run/netns` holds containerd's `cni-…` files) prints `link-netns cni-04b6218d-…`,
and a pod's `eth0` prints `link-netns eksnet-lab-ip-192-…` where a real pod, which has no
`/run/netns` entry for its node's root namespace, prints `link-netnsid 0`.

So the command runs in a private mount namespace where:

* `/run/netns` is a fresh tmpfs holding exactly the names the state says this namespace can name
  (`LinkPeer.netns`), each a bind mount of the lab's own namespace file;
* `/sys` is remounted for the namespace, as `ip netns exec` does;
* the `iptables*` commands run the backend the node pins (`Iptables.backend`), as on the node:
  the lab restored the node's rules with that backend, and the host's default `iptables-save`
  (say nft) would print nothing but `# Warning: iptables-legacy tables present` on a legacy
  node. Both backends are multi-call binaries that pick the tool by `argv[0]`'s name, so the
  pinned one is bind-mounted over the binary the plain names resolve to; the other backend's
  own names (`iptables-nft-save`, `xtables-monitor` on a legacy node) then no longer work there.

Nothing propagates back (the mount namespace is a slave of the host's, and it dies with the
command), so the host's mount table is unchanged.

This module is also run as a plain script, `python3 -I -S inside.py [--xtables BACKEND] NETNS
[NAME=LABNETNS]... -- CMD...`, so it uses the standard library only and imports nothing from
eksnet; `eksnet lab exec` calls `exec_inside` in its own process (no extra process start).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

RUN_DIR = "/run/netns"
BACKENDS = ("legacy", "nft")
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
MNT_DETACH = 0x2
READ = os.O_RDONLY | os.O_CLOEXEC
EXEC_FAILED = 255
"""`ip netns exec`'s exit status when the command cannot be started (or the namespace entered)."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)


@dataclass(frozen=True, slots=True)
class Inside:
    """Where a command runs: the lab namespace, the `/run/netns` names it sees (each `(name,
    lab namespace)`), and the iptables backend its `iptables*` commands use (None: the host's)."""

    netns: str
    shown: tuple[tuple[str, str], ...] = ()
    xtables: str | None = None

    def __post_init__(self) -> None:
        for name in (self.netns, *(n for pair in self.shown for n in pair)):
            if not name or "/" in name or "=" in name or name in (".", ".."):
                raise ValueError(f"not a namespace file name: {name!r}")
        if self.xtables is not None and self.xtables not in BACKENDS:
            raise ValueError(f"unknown iptables backend {self.xtables!r}")

    def script_argv(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` here through this module run as a script."""
        backend = ["--xtables", self.xtables] if self.xtables else []
        shown = [f"{name}={lab}" for name, lab in self.shown]
        script = os.path.abspath(__file__)
        return [sys.executable, "-I", "-S", script, *backend, self.netns, *shown, "--", *argv]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def setns(fd: int, nstype: int) -> None:
    """setns(2): move the calling thread into the namespace open at `fd`."""
    _check(_libc.setns(fd, nstype), "setns")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    encoded = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(
        _libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]),
        f"mount {source or ''} on {target}",
    )


def enter(inside: Inside, run_dir: str = RUN_DIR) -> None:
    """Move this process into the lab namespace with its own view of `/run/netns`, `/sys` and
    iptables. Irreversible: call it only in a process that is about to exec the command."""
    target = os.open(os.path.join(run_dir, inside.netns), READ)
    # Opened before the tmpfs hides them; bound below through /proc/self/fd.
    sources = [(name, os.open(os.path.join(run_dir, lab), READ)) for name, lab in inside.shown]
    setns(target, CLONE_NEWNET)
    os.close(target)
    _check(_libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    _mount(None, "/", None, MS_SLAVE | MS_REC, "")  # nothing propagates back to the host
    _remount_sys(inside.netns)
    _mount("tmpfs", run_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755")
    for name, fd in sources:
        path = os.path.join(run_dir, name)
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND, "")
        os.close(fd)
    if inside.xtables is not None:
        _pin_xtables(inside.xtables)


def _remount_sys(netns: str) -> None:
    """A `/sys` describing the entered namespace's devices, as `ip netns exec` mounts it."""
    flags = MS_RDONLY if os.statvfs("/sys").f_flag & os.ST_RDONLY else 0
    _libc.umount2(b"/sys", MNT_DETACH)  # fails harmlessly when no sysfs was mounted
    _mount(netns, "/sys", "sysfs", flags, "")


def _pin_xtables(backend: str) -> None:
    """Make the plain `iptables*` names run `backend` (see the module docstring)."""
    plain, pinned = shutil.which("iptables-save"), shutil.which(f"iptables-{backend}-save")
    if plain is None or pinned is None:
        raise OSError(f"iptables-save or iptables-{backend}-save is not installed")
    current, wanted = os.path.realpath(plain), os.path.realpath(pinned)
    if current != wanted:
        _mount(wanted, current, None, MS_BIND, "")


def exec_inside(inside: Inside, argv: Sequence[str]) -> NoReturn:
    """`enter`, then replace this process with `argv`; failures are reported as `ip netns exec`
    reports them (a message on stderr, exit status 255)."""
    try:
        enter(inside)
    except OSError as error:
        sys.stderr.write(f"cannot enter {inside.netns}: {error}\n")
        sys.exit(EXEC_FAILED)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], list(argv))
    except OSError as error:
        sys.stderr.write(f'exec of "{argv[0]}" failed: {error.strerror}\n')
    sys.exit(EXEC_FAILED)


def parse_args(args: Sequence[str]) -> tuple[Inside, list[str]]:
    """`[--xtables BACKEND] NETNS [NAME=LABNETNS]... -- CMD...`"""
    words = list(args)
    xtables = None
    if words[:1] == ["--xtables"] and len(words) > 1:
        xtables, words = words[1], words[2:]
    if "--" not in words or words.index("--") == 0 or words[-1] == "--":
        raise ValueError("usage: inside.py [--xtables BACKEND] NETNS [NAME=LABNETNS]... -- CMD...")
    split = words.index("--")
    pairs = [word.split("=", 1) for word in words[1:split]]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError("each namespace shown is NAME=LABNETNS")
    shown = tuple((pair[0], pair[1]) for pair in pairs)
    return Inside(words[0], shown, xtables), words[split + 1 :]


def main(args: Sequence[str]) -> NoReturn:
    try:
        inside, argv = parse_args(args)
    except ValueError as error:
        sys.stderr.write(f"inside.py: {error}\n")
        sys.exit(2)
    exec_inside(inside, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
