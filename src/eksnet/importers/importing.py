"""`eksnet import`: a user's inputs in, a cluster spec (with its nodes' dumps named) out.

The spec says what the cluster is; the dumps say what its nodes hold. Where `kubectl`/`aws`
JSON documents are given they say what the cluster is (`cluster_spec`), over the `--cluster`
spec if one is given (its parts the documents do not state are kept); without JSON, the dumps
are laid over the `--cluster` spec, else the built-in demo's, as for every other command. Each dump
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

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eksnet.errors import InputError
from eksnet.importers.bundle import ObservedNode, read_node
from eksnet.importers.cluster_spec import render_spec, spec_from_documents
from eksnet.importers.json_input import read_json_file


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


def name_enis(spec: Mapping[str, Any], node: str, dump: ObservedNode) -> list[str]:
    """The node's ENIs named as its dump's link view names them, by MAC address: AWS's JSON
    knows no Linux names (AL2 says `eth1`, AL2023 `ens6`), the node's own `ip addr` does. The
    ifindex is taken too where the view shows it (`ip addr`, not `ifconfig`). Says what it
    changed."""
    if not dump.observed("links"):
        return []
    by_mac = {link.mac.lower(): link for link in dump.namespace.links}
    with_index = not (dump.source("links") or "").endswith("ifconfig.txt")
    notes: list[str] = []
    for entry in spec.get("nodes", []) or []:
        if entry.get("name") != node:
            continue
        for eni in entry.get("enis", []) or []:
            link = by_mac.get(str(eni.get("mac", "")).lower())
            if link is None:
                continue
            if eni.get("linux") != link.name:
                notes.append(f"{node}: ENI {eni.get('id')} is {link.name}, as its dump shows")
                for pod in spec.get("pods", []) or []:
                    if pod.get("node") == node and pod.get("eni") == eni.get("linux"):
                        pod["eni"] = link.name  # pods name their ENI by its Linux name
                eni["linux"] = link.name
            if with_index:
                eni["ifindex"] = link.ifindex
    return notes


def relative(path: Path, start: Path) -> str:
    """`path` as the written spec names it: relative to the spec's folder where it can be."""
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:
        return str(path.resolve())


def read_nodes(paths: Sequence[Path]) -> list[ObservedNode]:
    """Every dump read and parsed; several at once in worker processes (a node's iptables
    rules are tens of thousands of lines, and each dump is parsed on its own)."""
    workers = min(len(paths), os.cpu_count() or 1)
    if workers < 2 or len(paths) < 3:
        return [read_node(path) for path in paths]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(read_node, paths))


def run(
    inputs: Sequence[Path],
    output: Path,
    base_text: str | None,
    base_name: str,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Read every input, build the spec, match each dump to its node and write the spec.
    `base_text` None: no base (the JSON documents say what the cluster is)."""
    base = yaml.safe_load(base_text) if base_text is not None else None
    if base_text is not None and not isinstance(base, dict):
        raise InputError("the base spec is not a mapping", source=base_name)
    documents: list[tuple[str, Any]] = []
    dump_paths: list[Path] = []
    for path in inputs:
        progress(str(path))
        if not path.exists():
            raise InputError("no such file or folder", source=str(path),
                             fix="give bundles, dump folders or JSON files")  # fmt: skip
        if is_dump(path):
            dump_paths.append(path)
        else:
            documents.append(read_json_file(path))
    progress(f"{len(dump_paths)} node dump(s)")
    dumps = list(zip(dump_paths, read_nodes(dump_paths), strict=True))
    assumed: list[str] = []
    if documents:
        spec, notes = spec_from_documents(documents, base)
        assumed += list(notes)
    elif base is None:
        raise InputError(
            "only dumps and no spec to lay them over",
            fix="give the cluster's kubectl and aws JSON, or its spec with --cluster",
        )
    else:
        spec = dict(base)
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
        assumed += name_enis(spec, node, dump)
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
    return render_spec(dict(spec))


def summary(report: Report) -> list[str]:
    """The report in words: each dump's node, the nodes left derived, what was assumed."""
    lines = [f"wrote {report.output} (base: {report.base})"]
    for item in report.matched:
        parts = ", ".join(part for part, _ in item.dump.sources)
        lines.append(f"  {item.node}: {item.path} ({item.how}); observed: {parts or 'nothing'}")
    without = report.nodes_without_dump
    if len(without) > 5:
        lines.append(
            f"  {len(without)} nodes have no dump ({', '.join(without[:3])} …): their state is "
            "derived by the controllers"
        )
    for node in without if len(without) <= 5 else ():
        lines.append(f"  {node}: no dump; its state is derived by the controllers")
    if report.assumed:
        lines.append("  assumed, where the inputs do not say:")
        lines += [f"    {note}" for note in report.assumed]
    return lines
