"""One node's dump in, its network namespace as observed out (`ObservedNode`).

Two layouts are read (see the package docstring for the collector's versions):

* an eks-log-collector.sh bundle: the `.tar.gz` it writes (members `./networking/…`, no folder
  of their own) or the folder it was unpacked into (a single wrapping folder is allowed too);
* a plain per-node dump: a folder holding any of the files of `PLAIN_FILES`, each the stdout of
  the command beside it, run on the node.

Every fact says where it came from: `ObservedNode.sources` maps each part of the namespace
that a file supplied to that file (inside the bundle); a part without a file is filled with
what a fresh namespace holds, and `assumed` says so in words, as it says what each view could
not show (ifconfig's missing ifindexes …). Parsing is pure (`observe` takes the files' text);
only `read_node` touches the file system.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eksnet.dataplane.state import DEFAULT_RULES, Link, Namespace, Route
from eksnet.errors import InputError
from eksnet.importers._lines import parse_json
from eksnet.importers.conntrack_dump import conntrack_lines
from eksnet.importers.iproute_dump import (
    RouteDump,
    local_table_differences,
    parse_neighbours,
    parse_routes,
    parse_rules,
)
from eksnet.importers.iptables_dump import parse_iptables_save
from eksnet.importers.link_dump import (
    LinkDump,
    parse_ifconfig,
    parse_ip_addr,
    parse_ip_addr_json,
)
from eksnet.importers.sysctl_dump import parse_sysctl_all
from eksnet.kernel.fib import local_table

Part = Literal[
    "rules", "routes", "links", "neighbours", "sysctls", "iptables", "conntrack", "ipamd"
]
Layout = Literal["eks-log-collector", "plain"]

COLLECTOR_FILES: Mapping[Part, tuple[str, ...]] = {
    "rules": ("networking/iprule.txt",),
    "routes": ("networking/iproute.txt",),
    "links": ("networking/ifconfig.txt",),
    "iptables": ("networking/iptables-save.txt",),
    "conntrack": ("networking/conntrack.txt",),
    "sysctls": ("sysctls/sysctl_all.txt",),
}
"""The bundle files each part is read from (eks-log-collector.sh 0.7.3–0.7.9, unchanged)."""
COLLECTOR_IPAMD = "ipamd/"
COLLECTOR_INSTANCE_ID = "system/instance-id.txt"
COLLECTOR_MARKERS = ("networking/", "sysctls/", "ipamd/")

PLAIN_FILES: Mapping[str, tuple[Part, str]] = {
    "ip-rule.txt": ("rules", "ip rule show"),
    "ip-route.txt": ("routes", "ip route show table all"),
    "ip-addr.json": ("links", "ip -j addr show"),
    "ip-addr.txt": ("links", "ip addr show"),
    "ifconfig.txt": ("links", "ifconfig"),
    "ip-neigh.txt": ("neighbours", "ip neigh show"),
    "iptables-save.txt": ("iptables", "iptables-save"),
    "sysctl.txt": ("sysctls", "sysctl -a"),
    "conntrack.txt": ("conntrack", "conntrack -L"),
}
"""A plain dump's file names: each the stdout of the command beside it. Links come from the
first of `ip-addr.json`, `ip-addr.txt`, `ifconfig.txt` present. ipamd's introspection answers
(`enis.json`, `pods.json`, `*env-settings.json`) are read under the collector's names."""
IPAMD_FILES = ("enis.json", "pods.json", "eni-configs.json")
ENV_SUFFIX = "env-settings.json"
PLACEHOLDER_MAC = "00:00:00:00:00:00"
PLACEHOLDER_MTU = 1500
TEXT_LIMIT = 256 * 1024 * 1024
"""Refuse members larger than this: a node dump is megabytes, not gigabytes."""


@dataclass(frozen=True)
class ObservedNode:
    """A node's namespace as a dump shows it, and where each fact came from.

    `namespace` is in the state's types, so it compares with (and could replace) a built
    state's node. `sources` names, per part present, the file inside the bundle it was read
    from; parts absent there were filled with a fresh namespace's contents, as `assumed` says.
    `local` is table local as dumped (the state derives it: `local_differences` says where the
    dump and the addresses' derivation disagree); `ipv6_routes` counts the IPv6 lines skipped.
    ipamd's introspection answers and env settings are kept as the JSON they are.
    """

    namespace: Namespace
    layout: Layout
    origin: str
    sources: tuple[tuple[Part, str], ...]
    assumed: tuple[str, ...] = ()
    local: tuple[Route, ...] = ()
    local_differences: tuple[str, ...] = ()
    ipv6_routes: int = 0
    conntrack: tuple[str, ...] = ()
    enis: Any = None
    pods: Any = None
    eni_configs: Any = None
    env: tuple[tuple[str, Any], ...] = ()
    """Each `*env-settings.json` (ipamd's, networkutils') by file name: the aws-node env."""
    sysctls_all: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Every pair of the sysctl dump (the namespace holds the same pairs)."""

    def observed(self, part: Part) -> bool:
        """Whether `part` was read from the dump (else it is a fresh namespace's default)."""
        return any(name == part for name, _ in self.sources)

    def source(self, part: Part) -> str | None:
        """The file inside the bundle that `part` came from."""
        return next((file for name, file in self.sources if name == part), None)


# --- pure: files' text → ObservedNode -------------------------------------------------------------


def observe(files: Mapping[str, str], origin: str, name: str | None = None) -> ObservedNode:
    """The node a dump's files show. `files` maps paths inside the dump (`networking/iprule.txt`,
    or a plain dump's `ip-rule.txt`) to their text; `origin` names the dump in errors; `name`
    is the node's namespace name (default: the instance id the bundle records, else `origin`)."""
    collector = any(path.startswith(COLLECTOR_MARKERS) for path in files)
    layout: Layout = "eks-log-collector" if collector else "plain"
    chosen = _collector_choice(files) if collector else _plain_choice(files)
    node = name or _instance_id(files) or origin

    def where(path: str) -> str:
        return f"{origin}:{path}"

    sources: list[tuple[Part, str]] = []
    assumed: list[str] = []
    dumps: dict[str, Any] = {}
    for part, path in chosen.items():
        sources.append((part, path))
        dumps[part] = _parse_part(part, path, files[path], where(path), node)
    rules = dumps.get("rules", DEFAULT_RULES)
    routes: RouteDump = dumps.get("routes", RouteDump())
    links: LinkDump | None = dumps.get("links")
    if "rules" not in dumps:
        assumed.append("no rule dump: the three rules of a fresh namespace are assumed")
    if "routes" not in dumps:
        assumed.append("no route dump: no routes are known")
    neighbours = dumps.get("neighbours", ())
    if links is None:
        links = _links_named(routes, neighbours)
        assumed.append(
            "no link dump: links are the devices the routes name, with MAC "
            f"{PLACEHOLDER_MAC} and MTU {PLACEHOLDER_MTU}, and no addresses are known"
        )
    assumed += links.assumed
    iptables = dumps.get("iptables")
    if iptables is None:
        assumed.append("no iptables dump: no iptables rules are known")
    else:
        assumed += iptables.assumed
    sysctls: tuple[tuple[str, str], ...] = dumps.get("sysctls", ())
    if "sysctls" not in dumps:
        assumed.append("no sysctl dump: the kernel's defaults are assumed")
    _check_devices(routes, links, chosen.get("routes"), origin)
    try:
        namespace = Namespace(
            name=node,
            kind="node",
            owner=node,
            links=links.links,
            addresses=links.addresses,
            routes=routes.routes,
            rules=rules,
            neighbours=neighbours,
            sysctls=sysctls,
            iptables=iptables.iptables if iptables is not None else None,
        )
    except ValueError as error:
        raise InputError(f"the dump's parts disagree: {error}", source=origin) from None
    ipamd = _ipamd(files, where, assumed, collector)
    return ObservedNode(
        namespace=namespace,
        layout=layout,
        origin=origin,
        sources=tuple(sources) + ipamd["sources"],
        assumed=tuple(assumed),
        local=routes.local,
        local_differences=local_table_differences(routes.local, local_table(namespace))
        if "routes" in dumps and links.addresses
        else (),
        ipv6_routes=routes.ipv6_lines,
        conntrack=dumps.get("conntrack", ()),
        enis=ipamd["enis.json"],
        pods=ipamd["pods.json"],
        eni_configs=ipamd["eni-configs.json"],
        env=ipamd["env"],
        sysctls_all=sysctls,
    )


def _collector_choice(files: Mapping[str, str]) -> dict[Part, str]:
    chosen: dict[Part, str] = {}
    for part, paths in COLLECTOR_FILES.items():
        for path in paths:
            if path in files and (part != "links" or files[path].strip()):
                chosen[part] = path  # an empty ifconfig.txt: ifconfig was not installed
                break
    return chosen


def _plain_choice(files: Mapping[str, str]) -> dict[Part, str]:
    chosen: dict[Part, str] = {}
    for path, (part, _command) in PLAIN_FILES.items():
        if path in files and part not in chosen:
            chosen[part] = path
    return chosen


def _parse_part(part: Part, path: str, text: str, source: str, node: str) -> Any:
    if part == "rules":
        return parse_rules(text, source)
    if part == "routes":
        return parse_routes(text, source)
    if part == "links":
        if path.endswith(".json"):
            return parse_ip_addr_json(text, source, node)
        if path.endswith("ifconfig.txt"):
            return parse_ifconfig(text, source)
        return parse_ip_addr(text, source, node)
    if part == "neighbours":
        return parse_neighbours(text, source)
    if part == "iptables":
        return parse_iptables_save(text, source)
    if part == "sysctls":
        return parse_sysctl_all(text, source)
    if part == "conntrack":
        return conntrack_lines(text, source)
    raise AssertionError(part)


def _instance_id(files: Mapping[str, str]) -> str | None:
    text = files.get(COLLECTOR_INSTANCE_ID, "").strip()
    return text if text.startswith("i-") else None


def _links_named(routes: RouteDump, neighbours: Any) -> LinkDump:
    names = dict.fromkeys([r.dev for r in routes.routes if r.dev] + [n.dev for n in neighbours])
    links = [
        Link(index, dev, "loopback" if dev == "lo" else "device", PLACEHOLDER_MAC, PLACEHOLDER_MTU)
        for index, dev in enumerate(names, start=1)
    ]
    return LinkDump(tuple(links), ())


def _check_devices(routes: RouteDump, links: LinkDump, path: str | None, origin: str) -> None:
    known = {link.name for link in links.links}
    for route, line in zip(routes.routes, routes.route_lines, strict=True):
        if route.dev is not None and route.dev not in known:
            raise InputError(
                f"route {route.dst} names device {route.dev}, which the link dump lacks",
                source=f"{origin}:{path}",
                line=line,
                fix="dump the links and the routes on the same node at the same time",
            )


def _ipamd(
    files: Mapping[str, str], where: Any, assumed: list[str], collector: bool
) -> dict[str, Any]:
    """ipamd's introspection answers. The collector `curl --silent`s each into its file, so an
    empty file means ipamd did not answer (introspection off, aws-node down)."""
    prefix = COLLECTOR_IPAMD if collector else ""
    found: dict[str, Any] = {"sources": ()}
    sources: list[tuple[Part, str]] = []
    for name in IPAMD_FILES:
        path = prefix + name
        found[name] = _json(files.get(path), where(path), assumed)
        if found[name] is not None:
            sources.append(("ipamd", path))
    env: list[tuple[str, Any]] = []
    for path in sorted(files):
        if path.startswith(prefix) and path.endswith(ENV_SUFFIX) and "/" not in path[len(prefix) :]:
            value = _json(files[path], where(path), assumed)
            if value is not None:
                env.append((path[len(prefix) :], value))
                sources.append(("ipamd", path))
    found["env"] = tuple(env)
    found["sources"] = tuple(sources)
    return found


def _json(text: str | None, source: str, assumed: list[str]) -> Any:
    if text is None:
        return None
    if not text.strip():
        assumed.append(f"{source} is empty: ipamd did not answer the collector")
        return None
    return parse_json(text, source)


# --- the edge: reading a bundle -------------------------------------------------------------------


def read_node(path: str | Path, name: str | None = None) -> ObservedNode:
    """Read a collector tarball, an unpacked bundle or a plain dump folder at `path`."""
    location = Path(path)
    if location.is_dir():
        files = _read_folder(location)
    elif location.is_file():
        files = _read_tarball(location)
    else:
        raise InputError("no such file or folder", source=str(location))
    return observe(files, location.name, name)


def wanted(path: str) -> bool:
    """Whether the importer reads the file at `path` inside a dump (the rest is skipped)."""
    base = path.rsplit("/", 1)[-1]
    if path in (COLLECTOR_INSTANCE_ID,) or path.startswith(COLLECTOR_IPAMD):
        return path.endswith(".json") or path == COLLECTOR_INSTANCE_ID
    if any(path in paths for paths in COLLECTOR_FILES.values()):
        return True
    return "/" not in path and (
        base in PLAIN_FILES or base in IPAMD_FILES or base.endswith(ENV_SUFFIX)
    )


def _strip(paths: list[str]) -> dict[str, str]:
    """Inner paths relative to the bundle's root: `./networking/x` → `networking/x`; a single
    folder wrapping everything (a re-packed bundle) is taken off too."""
    cleaned = {p: p.removeprefix("./") for p in paths}
    tops = {c.split("/", 1)[0] for c in cleaned.values() if "/" in c}
    roots = {c for c in cleaned.values() if "/" not in c}
    if (
        len(tops) == 1
        and not roots
        and not any(t in ("networking", "sysctls", "ipamd") for t in tops)
    ):
        top = next(iter(tops)) + "/"
        cleaned = {p: c.removeprefix(top) for p, c in cleaned.items()}
    return cleaned


def _read_folder(folder: Path) -> dict[str, str]:
    paths = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
    inner = _strip(paths)
    return {
        inner[p]: _decode((folder / p).read_bytes(), f"{folder.name}:{inner[p]}")
        for p in paths
        if wanted(inner[p])
    }


def _read_tarball(file: Path) -> dict[str, str]:
    try:
        with tarfile.open(file, "r:*") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            inner = _strip([m.name for m in members])
            files: dict[str, str] = {}
            for member in members:
                path = inner[member.name]
                if not wanted(path):
                    continue
                if member.size > TEXT_LIMIT:
                    raise InputError(f"{path} is {member.size} bytes", source=file.name)
                data = archive.extractfile(member)
                if data is None:
                    continue
                files[path] = _decode(data.read(), f"{file.name}:{path}")
            return files
    except (tarfile.TarError, EOFError, OSError) as error:
        raise InputError(
            f"not a readable tarball ({error}): the file is truncated or not a .tar.gz",
            source=file.name,
            fix="copy the bundle again, or unpack it and give the folder",
        ) from None


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        text = data[: error.start].decode("utf-8")
        raise InputError(
            "not UTF-8 text: the file is garbled",
            source=source,
            line=text.count("\n") + 1,
        ) from None


__all__ = [
    "COLLECTOR_FILES",
    "PLAIN_FILES",
    "ObservedNode",
    "observe",
    "read_node",
]
