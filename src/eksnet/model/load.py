"""Load a cluster spec: YAML → variant applied → pydantic → cross-object checks.

Every failure is one `InputError` naming the file, the line and the fix. The built-in demo
cluster `talk` (talk-walks.md §2) is used when no file is given.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eksnet.errors import InputError
from eksnet.model.cluster import Cluster
from eksnet.model.source import SourceDocument, parse_yaml
from eksnet.model.validate import check_cluster

DEMO_CLUSTER = "talk"


def demo_text() -> tuple[str, str]:
    """The built-in demo spec's text and the name errors should use for it."""
    resource = resources.files("eksnet.examples").joinpath(f"{DEMO_CLUSTER}.yaml")
    return resource.read_text(encoding="utf-8"), f"<built-in {DEMO_CLUSTER}.yaml>"


def load_cluster(path: str | Path | None = None, *, variant: str | None = None) -> Cluster:
    """Read, validate and check a cluster spec; `None` means the built-in demo."""
    if path is None:
        text, source = demo_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(
                "no such file", source=source, fix="give the path of a cluster YAML"
            ) from None
        except OSError as error:
            raise InputError(
                f"cannot read: {error.strerror}", source=source, fix="check the path"
            ) from None
    return parse_cluster(text, source, variant=variant)


def parse_cluster(text: str, source: str, *, variant: str | None = None) -> Cluster:
    document = parse_yaml(text, source)
    if not isinstance(document.data, dict):
        raise InputError(
            "a cluster spec is a mapping", source=source, line=1, fix="start with `name: …`"
        )
    data = apply_variant(document, variant)
    document = _renumber_filtered(document, variant)
    try:
        cluster = Cluster.model_validate(data)
    except ValidationError as error:
        raise _input_error(document, error) from None
    check_cluster(cluster, document)
    cluster._document = document
    return cluster


def apply_variant(document: SourceDocument, variant: str | None) -> dict[str, Any]:
    """The spec's data with one declared variant applied (or none).

    A variant is a what-if, declared in the spec: elements tagged `variant: NAME` exist only under
    it, and its patch changes subnets (by name) and any other top-level section (deep merge).
    Everything downstream sees an ordinary cluster.
    """
    data: dict[str, Any] = copy.deepcopy(document.data)
    variants = data.get("variants") or {}
    if variant is not None and variant not in variants:
        known = ", ".join(sorted(variants)) or "none declared"
        raise document.error(
            ("variants",), f"unknown variant {variant!r}", fix=f"use one of: {known}"
        )
    vpc = data.get("vpc")
    if isinstance(vpc, dict):
        for key in ("subnets", "natGateways"):
            items = vpc.get(key)
            if isinstance(items, list):
                vpc[key] = [item for item in items if _in_variant(item, variant)]
    if variant is None:
        return data
    patch = copy.deepcopy(variants[variant])
    subnet_patch = patch.pop("subnets", {})
    for subnet_name, changes in subnet_patch.items():
        subnets = data.get("vpc", {}).get("subnets", [])
        matching = [s for s in subnets if isinstance(s, dict) and s.get("name") == subnet_name]
        if not matching:
            raise document.error(
                ("variants", variant, "subnets"),
                f"variant {variant!r} patches unknown subnet {subnet_name!r}",
                fix="name a subnet of vpc.subnets",
            )
        matching[0].update(changes)
    _deep_merge(data, patch)
    return data


def _renumber_filtered(document: SourceDocument, variant: str | None) -> SourceDocument:
    """The document's line map as the filtered lists see it: the n-th item kept by
    `apply_variant` has the lines of its original position, so errors name the right line."""
    vpc = document.data.get("vpc") if isinstance(document.data, dict) else None
    if not isinstance(vpc, dict):
        return document
    lines = dict(document.lines)
    for key in ("subnets", "natGateways"):
        items = vpc.get(key)
        if not isinstance(items, list):
            continue
        kept = [index for index, item in enumerate(items) if _in_variant(item, variant)]
        if len(kept) == len(items):
            continue
        prefix: tuple[str | int, ...] = ("vpc", key)
        depth = len(prefix)
        under = {
            path: line
            for path, line in document.lines.items()
            if len(path) > depth and path[:depth] == prefix
        }
        for path in under:
            del lines[path]
        new_index = {old: new for new, old in enumerate(kept)}
        for path, line in under.items():
            old = path[depth]
            if isinstance(old, int) and old in new_index:
                lines[(*prefix, new_index[old], *path[depth + 1 :])] = line
    return SourceDocument(source=document.source, data=document.data, lines=lines)


def _in_variant(item: object, variant: str | None) -> bool:
    """Whether a list element exists under the selected variant (untagged ones always do)."""
    if not isinstance(item, dict) or item.get("variant") is None:
        return True
    tags = item["variant"]
    return variant is not None and (variant == tags or (isinstance(tags, list) and variant in tags))


def _deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


_FIXES = {
    "extra_forbidden": "remove it, or check its spelling",
    "missing": "add it",
    "string_type": 'write a string; quote MACs and versions ("02:00:…")',
    "ip_v4_address": "write an IPv4 address like 192.168.1.50",
    "ip_v4_network": "write a CIDR like 192.168.1.0/24 with no host bits set",
    "ip_v6_address": "write an IPv6 address like fe80::1",
    "int_parsing": "write a whole number",
    "literal_error": "use one of the allowed values",
    "too_short": "list at least one",
}


def _input_error(document: SourceDocument, error: ValidationError) -> InputError:
    """The first pydantic error as one line: where, what, and how to fix it."""
    first = error.errors()[0]
    path = tuple(first["loc"])
    dotted = ".".join(str(part) for part in path) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "required field missing"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    value = first.get("input")
    shown = f" (got {value!r})" if first["type"] not in ("missing",) and _short(value) else ""
    fix = _FIXES.get(first["type"], "correct the value")
    more = len(error.errors()) - 1
    suffix = f"; {more} more error{'s' if more > 1 else ''} after this one" if more else ""
    return document.error(path, f"{dotted}: {message}{shown}{suffix}", fix=fix)


def _short(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) < 60
