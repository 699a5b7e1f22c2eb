"""`eksnet lab collect node/X`: what eks-log-collector.sh would bundle on that node, run for real.

The layout is data (`LAYOUT`): each bundle path and what the collector writes there, in its
order, as eks-log-collector.sh 0.7.9 (awslabs/amazon-eks-ami, `log-collector-script/linux/`,
unchanged for these files since 0.7.8 of 2024-12-17) does it: literal header lines, and commands
whose stdout is appended (stderr dropped, each under the script's `timeout 75`). The commands run
inside the lab's node namespace exactly as `eksnet lab exec` runs them (`inside.py`: the node's
`/run/netns` names and its iptables backend), through `system.run`.

Not collected: what needs a node's daemons or files the lab does not have (ipamd's introspection
on localhost:61679, `/var/log`, kubelet, containerd …); the collector creates their folders
anyway, and so does this. `system/instance-id.txt` is the state's instance id, the collector's
copy of cloud-init's file. The tarball packs the folder's contents (`./networking/…`, no folder
of its own) and is named as the collector names it, from the time given (`bundle_name`).
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from eksnet.lab import system
from eksnet.lab.inside import Inside

COLLECTOR_VERSION = "0.7.9"
"""`PROGRAM_VERSION` of the script this layout follows."""
TIMEOUT = 75
"""The collector runs each networking command under `timeout 75`."""

DIRECTORIES = (
    "kernel", "modinfo", "system", "docker", "containerd", "storage", "var_log", "networking",
    "sandbox-image", "ipamd", "sysctls", "kubelet", "nodeadm", "cni", "gpu",
)  # fmt: skip
"""`COMMON_DIRECTORIES`: created before anything is collected, so they are in every bundle."""

INSTANCE_ID = object()
"""A part standing for the node's instance id (the collector copies cloud-init's file)."""

Piece = str | tuple[str, ...] | object
"""Literal text, a command's argv (its stdout appended), or `INSTANCE_ID`."""


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file of the bundle: its pieces in order, the tool it needs (the collector skips the
    file when `command -v TOOL` fails, as 0.7.8 from 2024-12-17 on does), and why."""

    path: str
    pieces: tuple[Piece, ...]
    needs: str | None = None
    why: str = ""


LAYOUT: tuple[BundleFile, ...] = (
    BundleFile(
        "system/instance-id.txt",
        (INSTANCE_ID, "\n"),
        why="get_instance_id: `cp /var/lib/cloud/data/instance-id` (the state's instance id)",
    ),
    BundleFile(
        "networking/iptables-save.txt",
        (("iptables-save",),),
        needs="iptables",
        why="get_iptables_info: `iptables-save >` (the node's default backend), all versions",
    ),
    BundleFile(
        "networking/ip6tables-save.txt",
        (("ip6tables-save",),),
        needs="iptables",
        why="get_iptables_info: `ip6tables-save >`, since 2024-03-04 (0.7.6)",
    ),
    BundleFile(
        "sysctls/sysctl_all.txt",
        (("sysctl", "--all"),),
        why="get_sysctls_info: `sysctl --all >> … 2> /dev/null`, all versions",
    ),
    BundleFile(
        "networking/conntrack.txt",
        (
            "*** Output of conntrack -S *** \n",
            ("conntrack", "-S"),
            "*** Output of conntrack -L ***\n",
            ("conntrack", "-L"),
        ),
        needs="conntrack",
        why="get_networking_info: `echo` headers (the first with a trailing space) and "
        "`conntrack -S`, `conntrack -L` appended; only with conntrack installed since 2024-12-17",
    ),
    BundleFile(
        "networking/conntrack6.txt",
        ("*** Output of conntrack -L -f ipv6 ***\n", ("conntrack", "-L", "-f", "ipv6")),
        needs="conntrack",
        why="get_networking_info: since 2024-03-04 (0.7.6)",
    ),
    BundleFile(
        "networking/ifconfig.txt",
        (("ifconfig",),),
        needs="ifconfig",
        why="get_networking_info: `ifconfig >`; only with net-tools installed since 2024-12-17",
    ),
    BundleFile(
        "networking/iprule.txt",
        (("ip", "rule", "show"),),
        why="get_networking_info: `ip rule show >`, all versions",
    ),
    BundleFile(
        "networking/ip6rule.txt",
        (("ip", "-6", "rule", "show"),),
        why="get_networking_info: `ip -6 rule show >`, since 2024-03-04 (0.7.6)",
    ),
    BundleFile(
        "networking/iproute.txt",
        (("ip", "route", "show", "table", "all"),),
        why="get_networking_info: `ip route show table all >>`, all versions",
    ),
    BundleFile(
        "networking/ip6route.txt",
        (("ip", "-6", "route", "show", "table", "all"),),
        why="get_networking_info: `ip -6 route show table all >>`, since 2024-03-04 (0.7.6)",
    ),
)
"""The bundle's networking and sysctl files, in the order the collector writes them."""


@dataclass(frozen=True, slots=True)
class Collected:
    """The bundle's files (path, text) and the commands that failed (their stderr), which the
    collector ignores too but a lab user should hear about."""

    files: tuple[tuple[str, str], ...]
    failures: tuple[str, ...] = ()


def bundle_name(instance_id: str, now: datetime, version: str = COLLECTOR_VERSION) -> str:
    """`eks_<instance>_<%Y-%m-%d_%H%M-UTC>_<version>.tar.gz`, as the collector names it (`date
    --utc +%Y-%m-%d_%H%M-%Z`)."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d_%H%M")
    return f"eks_{instance_id}_{stamp}-UTC_{version}.tar.gz"


def collect(inside: Inside, instance_id: str, layout: Sequence[BundleFile] = LAYOUT) -> Collected:
    """Run every command of `layout` in the node namespace `inside` and assemble the files."""
    files: list[tuple[str, str]] = []
    failures: list[str] = []
    for item in layout:
        if item.needs is not None and shutil.which(item.needs) is None:
            continue
        text = ""
        for piece in item.pieces:
            if piece is INSTANCE_ID:
                text += instance_id
            elif isinstance(piece, str):
                text += piece
            elif isinstance(piece, tuple):
                argv = inside.script_argv([str(word) for word in piece])
                result = system.run(argv, check=False, timeout=TIMEOUT)
                if result.returncode != 0:
                    failures.append(f"{' '.join(piece)}: {result.stderr.strip()}")
                text += result.stdout
        files.append((item.path, text))
    return Collected(tuple(files), tuple(failures))


def write_tarball(collected: Collected, output: str, now: datetime) -> None:
    """Write the bundle as `tar --create --gzip --directory=DIR .` lays it out: `./`, every
    directory of `DIRECTORIES`, then the files, all owned by root, stamped `now`."""
    stamp = now.timestamp()
    with tarfile.open(output, "w:gz") as archive:
        folders = ["."] + [f"./{name}" for name in DIRECTORIES]
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, stamp
            archive.addfile(info)
        for path, text in collected.files:
            data = text.encode()
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, stamp
            archive.addfile(info, io.BytesIO(data))
