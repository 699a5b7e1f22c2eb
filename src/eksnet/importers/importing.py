"""`eksnet import`: a user's inputs in, a cluster spec (with its nodes' dumps named) out.

The spec says what the cluster is; the dumps say what its nodes hold. The spec starts from a
base — the `--cluster` given, else the built-in demo, as for every other command — which
`kubectl`/`aws` JSON documents, where given, replace part by part (`cluster_spec`). Each dump
(an eks-log-collector bundle, its unpacked folder, or a folder of plain dumps) is matched to
the spec's node it was taken on: by the instance id the bundle records, else by a plain dump
folder named after the node, else by the node's primary ENI address among the dump's
addresses. A dump that matches no node is an error, never
attached to a guess. The written spec lists each dump under `observed:` by a path relative to
the spec's own file, and loading it lays each dump over its node (`overlay`).

Reading the inputs and writing the spec are the only I/O, in `run`; matching and the report
are pure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eksnet.errors import InputError, NotModelled
from eksnet.importers.bundle import ObservedNode, read_node


@dataclass(frozen=True, slots=True)
class Matched:
    """A dump and the node it was taken on."""

    path: Path
    node: str
    how: str
    """How it was matched: `instance i-…`, `address 192.168.1.50`."""
    dump: ObservedNode


@dataclass(frozen=True, slots=True)
class Report:
    """What an import did: the spec written, each dump's node, what was assumed."""

    output: Path
    matched: tuple[Matched, ...]
    nodes_without_dump: tuple[str, ...]
    assumed: tuple[str, ...]
    base: str


def is_dump(path: Path) -> bool:
    """A bundle tarball or a folder of dumps (anything else is read as JSON)."""
    return path.is_dir() or path.name.endswith((".tar.gz", ".tgz", ".tar"))


def match_node(spec: Mapping[str, Any], dump: ObservedNode, path: Path) -> tuple[str, str]:
    """The spec's node a dump was taken on, and how that was decided."""
    nodes = spec.get("nodes", []) or []
    recorded = dump.namespace.name
    for node in nodes:
        if node.get("instanceId") and node.get("instanceId") == recorded:
            return str(node["name"]), f"instance {recorded}"
    for node in nodes:
        if node.get("name") == recorded:
            return str(node["name"]), "the folder's name"
    addresses = {str(a.interface.ip) for a in dump.namespace.addresses}
    for node in nodes:
        for eni in node.get("enis", []) or []:
            if int(eni.get("device", -1)) == 0 and str(eni.get("primaryIp")) in addresses:
                return str(node["name"]), f"address {eni.get('primaryIp')}"
    names = ", ".join(str(n.get("name")) for n in nodes) or "none"
    raise InputError(
        f"the dump records instance {recorded} and addresses "
        f"{', '.join(sorted(addresses)) or 'none'}, which match no node of the spec ({names})",
        source=str(path),
        fix="import it with the spec of its own cluster (--cluster, or its kubectl and aws JSON)",
    )


def relative(path: Path, start: Path) -> str:
    """`path` as the written spec names it: relative to the spec's folder where it can be."""
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:
        return str(path.resolve())


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            "no such file", source=str(path), fix="give a dump or a JSON file"
        ) from None
    except UnicodeDecodeError:
        raise InputError(
            "not UTF-8 text: neither JSON nor a bundle", source=str(path),
            fix="give a .tar.gz bundle, a dump folder, or kubectl/aws JSON",
        ) from None  # fmt: skip
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"not JSON: {error.msg}", source=str(path), line=error.lineno,
            fix="give the whole output of `kubectl … -o json` or `aws … describe-…`",
        ) from None  # fmt: skip


def run(
    inputs: Sequence[Path],
    output: Path,
    base_text: str,
    base_name: str,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Read every input, build the spec, match each dump to its node and write the spec."""
    base = yaml.safe_load(base_text)
    if not isinstance(base, dict):
        raise InputError("the base spec is not a mapping", source=base_name)
    dumps: list[tuple[Path, ObservedNode]] = []
    documents: list[tuple[str, Any]] = []
    for path in inputs:
        progress(str(path))
        if not path.exists():
            raise InputError("no such file or folder", source=str(path),
                             fix="give bundles, dump folders or JSON files")  # fmt: skip
        if is_dump(path):
            dumps.append((path, read_node(path)))
        else:
            documents.append((str(path), read_json(path)))
    assumed: list[str] = []
    spec: dict[str, Any] = dict(base)
    if documents:
        raise NotModelled(f"importing kubectl and aws JSON ({documents[0][0]})")
    matched: list[Matched] = []
    taken: dict[str, Path] = {}
    for path, dump in dumps:
        node, how = match_node(spec, dump, path)
        if node in taken:
            raise InputError(
                f"two dumps of node {node}: {taken[node]} and {path}",
                source=str(path),
                fix="give one dump per node",
            )
        taken[node] = path
        matched.append(Matched(path, node, how, dump))
        assumed += [note for note in dump.assumed if note not in assumed]
    folder = output.parent
    spec.pop("observed", None)
    if matched:
        spec["observed"] = [{"node": m.node, "dump": relative(m.path, folder)} for m in matched]
    text = f"# written by `eksnet import` from {len(inputs)} input(s) on the base {base_name}\n"
    text += render(spec)
    output.write_text(text, encoding="utf-8")
    without = tuple(
        str(node.get("name"))
        for node in spec.get("nodes", []) or []
        if node.get("name") not in taken
    )
    return Report(output, tuple(matched), without, tuple(assumed), base_name)


def render(spec: Mapping[str, Any]) -> str:
    """The spec as YAML a person can read and edit: block style, keys in the spec's order."""
    return str(yaml.safe_dump(dict(spec), sort_keys=False, default_flow_style=False, width=100))


def summary(report: Report) -> list[str]:
    """The report in words: each dump's node, the nodes left derived, what was assumed."""
    lines = [f"wrote {report.output} (base: {report.base})"]
    for item in report.matched:
        parts = ", ".join(part for part, _ in item.dump.sources)
        lines.append(f"  {item.node}: {item.path} ({item.how}); observed: {parts or 'nothing'}")
    for node in report.nodes_without_dump:
        lines.append(f"  {node}: no dump; its state is derived by the controllers")
    if report.assumed:
        lines.append(
            "  the dumps could not show (links and addresses stay derived, so these touch no "
            "walk; `eksnet check` compares them):"
        )
        lines += [f"    {note}" for note in report.assumed]
    return lines
