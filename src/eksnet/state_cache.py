"""A cluster's data-plane state, built once and remembered between runs.

`eksnet exec` is meant to be asked hundreds of questions from a script. Loading a spec means
importing pydantic and validating the whole cluster, which costs several times what answering
`ip rule show` does. The state (and the talk's names for its namespaces) that a valid spec
builds is a pure function of three things, and the cache is keyed on exactly those:

* the spec's bytes (the built-in demo's, or the file's) and the variant asked for;
* eksnet's own code: every module and data file of the installed package, by path, size and
  modification time, so editing eksnet (an editable install) misses the cache;
* the Python version (pickles are not promised to move between versions).

A spec that fails to load is never cached: its errors always come from the loader, with their
file and line. What could be a stream or a device is never read here (the loader refuses it
with its own message). The cache is a directory of the user's own (`$XDG_CACHE_HOME/eksnet`,
else `~/.cache/eksnet`, mode 0700), each entry a pickle written atomically and read only when
this user owns it; `EKSNET_CACHE=off` turns it off, and a cache that cannot be written is
simply not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eksnet.dataplane.state import DataplaneState

if TYPE_CHECKING:
    from eksnet.model.cluster import Cluster

CACHE_ENV = "EKSNET_CACHE"
MAX_SPEC_BYTES = 4 * 1024 * 1024
"""Specs larger than this are not cached (the loader has its own, reported limit)."""
MAX_ENTRIES = 32
"""Entries kept; the least recently written go first."""
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Built:
    """What loading a spec gives every command: the state, and the talk's names of its
    namespaces (`node 1`, `pod 61`)."""

    state: DataplaneState
    labels: dict[str, str]


def load_built(path: Path | None, variant: str | None, overrides: Sequence[str] = ()) -> Built:
    """The state of the spec at `path` (None: the built-in demo) under `variant` and the
    `--set` overrides, from the cache when it holds this spec, configuration and code, else
    loaded, built and remembered."""
    key = _key(path, variant, tuple(overrides))
    directory = _directory() if key is not None else None
    if directory is not None and key is not None:
        found = _read(directory / f"{key}.pickle")
        if found is not None:
            return found
    built = build(path, variant, overrides)
    if directory is not None and key is not None:
        _write(directory, key, built)
    return built


def build(path: Path | None, variant: str | None, overrides: Sequence[str] = ()) -> Built:
    """Load, validate and build, without the cache."""
    from eksnet.controllers import build_state
    from eksnet.model import load_cluster

    cluster = load_cluster(path, variant=variant, overrides=overrides)
    state = build_state(cluster)
    if cluster.observed:
        base = None
        if variant is not None or overrides:
            base = build_state(load_cluster(path))
        state = _with_dumps(cluster, state, path, base)
    labels: dict[str, str] = {}
    for node in cluster.nodes:
        if node.talk_name:
            labels[node.name] = node.talk_name
    for pod in cluster.pods:
        if pod.talk_name:
            labels[state.namespace_of_owner(pod.key).name] = pod.talk_name
    return Built(state, labels)


def _with_dumps(
    cluster: Cluster, state: DataplaneState, path: Path | None, base: DataplaneState | None
) -> DataplaneState:
    """The state with the spec's `observed` dumps laid over their nodes, each dump's path
    taken relative to the spec's file. A dump shows the spec's own configuration: where a
    variant or a `--set` changes what the controllers derive for its node (`base` is the
    configuration without them), the node keeps the derived state of the what-if, and says
    so."""
    from eksnet.errors import InputError
    from eksnet.importers.bundle import read_node
    from eksnet.importers.overlay import overlay

    folder = path.parent if path is not None else Path.cwd()
    nodes = {node.name for node in cluster.nodes}
    dumps = {}
    for index, entry in enumerate(cluster.observed):
        if entry.node not in nodes:
            raise cluster.locate(
                InputError(
                    f"observed node {entry.node} is not declared",
                    fix="name a node of the spec's nodes",
                    path=("observed", index, "node"),
                )
            )
        location = Path(entry.dump) if Path(entry.dump).is_absolute() else folder / entry.dump
        if not location.exists():
            raise cluster.locate(
                InputError(
                    f"the dump {entry.dump} of {entry.node} does not exist ({location})",
                    fix="give the path of its bundle or dump folder, relative to this file",
                    path=("observed", index, "dump"),
                )
            )
        dumps[entry.node] = (entry.dump, read_node(location, name=entry.node))
    changed = {
        name: "this configuration (a variant or --set) changes what the controllers write "
        "on the node; its dump shows the spec's own, so the what-if's derived state is used"
        for name in dumps
        if base is not None and base.namespace(name) != state.namespace(name)
    }
    return overlay(state, dumps, changed)


def _key(path: Path | None, variant: str | None, overrides: tuple[str, ...] = ()) -> str | None:
    if os.environ.get(CACHE_ENV, "").lower() in ("off", "0", "no", "false"):
        return None
    spec = _spec_bytes(path)
    if spec is None or b"\nobserved:" in spec:
        # a spec naming dumps reads them at every load: they are files of their own
        return None
    digest = hashlib.sha256()
    settings = "\0".join(overrides).encode("utf-8", "surrogateescape")
    for part in (
        _code_fingerprint(),
        sys.version.encode(),
        (variant or "").encode(),
        settings,
        spec,
    ):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _spec_bytes(path: Path | None) -> bytes | None:
    """The spec's bytes when they can be read without risk: a regular file, not too big."""
    if path is None:
        return (_PACKAGE / "examples" / "talk.yaml").read_bytes()
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SPEC_BYTES:
            return None
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return data if len(data) <= MAX_SPEC_BYTES else None


def _code_fingerprint() -> bytes:
    """Every module and data file of the package, by path, size and modification time."""
    digest = hashlib.sha256()
    for root, directories, files in sorted(os.walk(_PACKAGE)):
        directories[:] = sorted(d for d in directories if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".yaml")):
                info = os.stat(os.path.join(root, name))
                digest.update(f"{root}/{name}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.digest()


def _directory() -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    directory = Path(base) / "eksnet"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return directory


def _read(entry: Path) -> Built | None:
    try:
        with open(entry, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None
            found = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None
    return found if isinstance(found, Built) else None


def _write(directory: Path, key: str, built: Built) -> None:
    temporary = directory / f".{key}.{os.getpid()}.tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            pickle.dump(built, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, directory / f"{key}.pickle")
        _prune(directory)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.pickle"), key=lambda entry: entry.stat().st_mtime_ns)
    for entry in entries[:-MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            entry.unlink()
