"""Load a cluster spec: bytes → YAML → variant applied → pydantic → cross-object checks.

Every failure is one `InputError` naming the file, the line and the fix. The built-in demo
cluster `talk` (talk-walks.md §2) is used when no file is given.

The file is untrusted: it must be a regular file (a FIFO, a device such as /dev/zero or
/dev/stdin, or a directory is refused before anything is read, and it is opened non-blocking so
that even opening a FIFO cannot hang), at most `MAX_BYTES` long (read that many bytes plus one,
never more), and UTF-8 text. `model.source` bounds what the YAML may expand to.

A spec declares what-if variants. Loading validates the cluster the user asked for first, then
the spec without a variant and under every other declared variant, so a broken variant (or a
broken variant-only subnet) is reported up front with its line, whichever one is selected.
"""

from __future__ import annotations

import copy
import errno
import os
import re
import stat
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import Cluster
from eksnet.model.overrides import apply_overrides
from eksnet.model.source import OVERRIDE_ROOT, SourceDocument, parse_yaml, shown
from eksnet.model.source import Path as DataPath
from eksnet.model.validate import check_cluster

DEMO_CLUSTER = "talk"

MAX_BYTES = 64 * 1024 * 1024
"""Largest spec file: 64 MiB. The demo is 11 KB; a generated cluster of 200 nodes and 6,000 pods
is 700 KB; one imported from a 200-node, 10,000-pod, 2,000-Service cluster's JSON (its Services
and EndpointSlices as manifests) is about 10 MB, so the limit leaves room for several times that
(`source.MAX_VALUES` bounds what the text may expand to). Reading stops at this many bytes plus
one, so a huge or endless file costs nothing."""

MAX_VARIANTS = 32
"""Most variants a spec may declare: each is validated at every load, so the count multiplies
the load time (the demo declares 2, one per what-if of the talk)."""

MAX_VALIDATED = 600_000
"""Most values validated per load, summed over the spec's configurations (no variant and each
variant): every configuration is validated at each load, so a big spec with many variants
would otherwise take minutes. About 4 s of loading; the demo uses 1,700, a generated cluster of
400 nodes and 12,000 pods 128,000 per configuration."""

VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A variant is selected with `--variant NAME`, so its name is a plain word."""

VARIANT_LISTS = ("subnets", "natGateways")
"""The `vpc` lists whose items may exist only under some variants (`variant: NAME`)."""


def demo_text() -> tuple[str, str]:
    """The built-in demo spec's text and the name errors should use for it."""
    resource = resources.files("eksnet.examples").joinpath(f"{DEMO_CLUSTER}.yaml")
    return resource.read_text(encoding="utf-8"), f"<built-in {DEMO_CLUSTER}.yaml>"


def load_cluster(
    path: str | Path | None = None,
    *,
    variant: str | None = None,
    overrides: Sequence[str] = (),
) -> Cluster:
    """Read, validate and check a cluster spec; `None` means the built-in demo. `overrides`
    are `KEY=VALUE` settings applied after the variant (`model.overrides`)."""
    if path is None:
        text, source = demo_text()
    else:
        source = str(path)
        text = read_spec(path, source)
    return parse_cluster(text, source, variant=variant, overrides=overrides)


def read_spec(path: str | Path, source: str) -> str:
    """The text of a spec file, or an `InputError` saying why it cannot be one."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(
            "no such file", source=source, fix="give the path of a cluster YAML"
        ) from None
    except OSError as error:
        raise InputError(
            f"cannot read: {error.strerror or error}", source=source, fix="check the path"
        ) from None
    except ValueError:  # a NUL byte in the path
        raise InputError(
            "the path holds a NUL byte", source=source, fix="give the path of a cluster YAML"
        ) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(
                f"not a regular file ({_file_kind(info.st_mode)})",
                source=source,
                fix="give the path of a cluster YAML file (pipes and devices are not read)",
            )
        if info.st_size > MAX_BYTES:
            raise _too_big(source)
        data = _read_at_most(descriptor, MAX_BYTES + 1)
    except OSError as error:
        raise InputError(
            f"cannot read: {error.strerror or error}", source=source, fix="check the path"
        ) from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_BYTES:
        raise _too_big(source)
    return decode(data, source)


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        try:
            chunk = os.read(descriptor, min(1 << 20, limit - size))
        except BlockingIOError:  # a regular file never blocks; be safe anyway
            raise OSError(errno.EAGAIN, "the file would block") from None
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _too_big(source: str) -> InputError:
    return InputError(
        f"larger than {MAX_BYTES // (1024 * 1024)} MiB ({MAX_BYTES:,} bytes), the most eksnet "
        "reads",
        source=source,
        fix="give a cluster spec, not some other file (or split a huge cluster)",
    )


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def decode(data: bytes, source: str) -> str:
    """UTF-8 (a leading byte-order mark is allowed), else an error at the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        offset = error.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
        raise InputError(
            f"not UTF-8 text: byte 0x{data[offset]:02x} at column {column}"
            + (" (the file looks like UTF-16)" if utf16 else ""),
            source=source,
            line=line,
            fix="save the file as UTF-8",
        ) from None


def parse_cluster(
    text: str, source: str, *, variant: str | None = None, overrides: Sequence[str] = ()
) -> Cluster:
    """The cluster `text` describes, with `variant` and then `overrides` applied; every
    declared configuration of the spec (no variant, each variant) is validated, the selected
    one first (the overrides belong to the selected one only)."""
    document = parse_yaml(text, source)
    if not isinstance(document.data, dict):
        raise InputError(
            "a cluster spec is a mapping", source=source, line=1, fix="start with `name: …`"
        )
    declared = declared_variants(document)
    if variant is not None and variant not in declared:
        known = ", ".join(sorted(declared)) or "none declared"
        raise document.error(
            ("variants",), f"unknown variant {variant!r}", fix=f"use one of: {known}"
        )
    check_variant_tags(document, declared)
    cluster = _validated(document, variant, tuple(overrides))
    others: list[tuple[str | None, Cluster]] = []
    for other in (None, *declared):
        if other == variant:
            continue
        try:
            others.append((other, _validated(document, other)))
        except NotModelled:
            continue  # valid, only not modelled: it matters when that configuration is selected
        except InputError as error:
            raise in_configuration(other, error) from None
    cluster._others = tuple(others)
    return cluster


def in_configuration(variant: str | None, error: InputError) -> InputError:
    """`error`, found in a configuration the user did not select, saying which one it is."""
    label = "without a variant" if variant is None else f"under variant {variant!r}"
    return InputError(
        f"{label}: {error.message}", source=error.source, line=error.line, fix=error.fix
    )


def _validated(
    document: SourceDocument, variant: str | None, overrides: tuple[str, ...] = ()
) -> Cluster:
    view = apply_overrides(apply_variant(document, variant), overrides, Cluster)
    try:
        cluster = Cluster.model_validate(view.data)
    except ValidationError as error:
        raise _input_error(view, error) from None
    check_cluster(cluster, view)
    cluster._document = view
    return cluster


def declared_variants(document: SourceDocument) -> list[str]:
    """The variants the spec declares, after checking their shape."""
    data: dict[str, Any] = document.data
    variants = data.get("variants")
    if variants is None:
        variants = {}
    if not isinstance(variants, dict):
        raise document.error(
            ("variants",),
            f"variants is {_kind(variants)}, not a mapping of variant name → patch",
            fix="write `variants: {NAME: {subnets: {SUBNET: {…}}, SECTION: {…}}}`",
        )
    if len(variants) > MAX_VARIANTS:
        raise document.error(
            ("variants",),
            f"{len(variants)} variants; eksnet validates each at every load and allows "
            f"{MAX_VARIANTS}",
            fix="split the what-ifs over several spec files",
        )
    for name, patch in variants.items():
        _check_patch(document, name, patch)
    configurations = 1 + len(variants)
    if len(document.lines) * configurations > MAX_VALIDATED:
        raise document.error(
            ("variants",),
            f"{len(document.lines):,} values under {configurations} configurations (no variant "
            f"and {len(variants)} variants) is more than eksnet validates per load "
            f"({MAX_VALIDATED:,})",
            fix="declare fewer variants, or put some what-ifs in a copy of the spec",
        )
    return list(variants)


def check_variant_tags(document: SourceDocument, declared: list[str]) -> None:
    """Every `variant:` tag of a list item names declared variants."""
    vpc = document.data.get("vpc")
    for key in VARIANT_LISTS:
        items = vpc.get(key) if isinstance(vpc, dict) else None
        for index, item in enumerate(items if isinstance(items, list) else []):
            _variant_tags(document, ("vpc", key, index), item, declared)


_PATCHABLE = frozenset((field.alias or name) for name, field in Cluster.model_fields.items()) - {
    "variants",
    "name",
}


def _check_patch(document: SourceDocument, name: str, patch: object) -> None:
    where: DataPath = ("variants", name)
    if not VARIANT_NAME.fullmatch(name):
        raise document.error(
            where,
            f"variant name {shown(name)} is not a plain word (it is given as --variant NAME)",
            fix="letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    if not isinstance(patch, dict):
        raise document.error(
            where,
            f"variant {name!r} is {_kind(patch)}, not a mapping of what it changes",
            fix="write `NAME: {subnets: {SUBNET: {FIELD: VALUE}}, SECTION: {…}}`",
        )
    for key in patch:
        if key != "subnets" and key not in _PATCHABLE:
            raise document.error(
                (*where, key),
                f"variant {name!r} patches {shown(key)}, which is not a section of a cluster spec",
                fix=f"patch subnets or one of: {', '.join(sorted(_PATCHABLE))}",
            )
    subnets = patch.get("subnets", {})
    if not isinstance(subnets, dict):
        raise document.error(
            (*where, "subnets"),
            f"variant {name!r}: subnets is {_kind(subnets)}, not a mapping of subnet name → "
            "changes",
            fix="write `subnets: {SUBNET-NAME: {FIELD: VALUE}}`",
        )
    for subnet, changes in subnets.items():
        if not isinstance(changes, dict):
            raise document.error(
                (*where, "subnets", subnet),
                f"variant {name!r}: the changes to subnet {shown(subnet)} are {_kind(changes)}, "
                "not a mapping",
                fix="write `SUBNET-NAME: {FIELD: VALUE}`",
            )
        for field in ("name", "variant"):
            if field in changes:
                raise document.error(
                    (*where, "subnets", subnet, field),
                    f"variant {name!r} changes the {field} of subnet {shown(subnet)}",
                    fix="a variant changes a subnet's settings; declare another subnet "
                    "with `variant:` instead",
                )


def _variant_tags(
    document: SourceDocument, path: DataPath, item: object, variants: list[str]
) -> None:
    """A list item's `variant:` is a declared variant's name or a list of them."""
    if not isinstance(item, dict) or item.get("variant") is None:
        return
    tags = item["variant"]
    names = tags if isinstance(tags, list) else [tags]
    for index, tag in enumerate(names):
        where = (*path, "variant", index) if isinstance(tags, list) else (*path, "variant")
        if not isinstance(tag, str):
            raise document.error(
                where,
                f"variant: {shown(tag)} is not a variant name",
                fix="write `variant: NAME` or `variant: [NAME, …]`",
            )
        if tag not in variants:
            known = ", ".join(variants) or "none declared"
            raise document.error(
                where,
                f"variant {shown(tag)} is not declared under variants:",
                fix=f"use one of: {known}",
            )


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return f"the {type(value).__name__} {shown(value)}"


def apply_variant(document: SourceDocument, variant: str | None) -> SourceDocument:
    """The spec as one declared variant (or none) sees it, as a view of the document.

    A variant is a what-if, declared in the spec: elements tagged `variant: NAME` exist only
    under it, and its patch changes subnets (by name) and any other top-level section (deep
    merge). Everything downstream sees an ordinary cluster; the view's `origins` say where each
    value came from, so an error in a kept list item names its own line and one in a patched
    value the patch's line inside `variants:`. The variants' shape was checked by
    `declared_variants`.
    """
    data: dict[str, Any] = copy.deepcopy(document.data)
    origins: dict[DataPath, DataPath] = {}
    vpc = data.get("vpc")
    if isinstance(vpc, dict):
        for key in VARIANT_LISTS:
            items = vpc.get(key)
            if not isinstance(items, list):
                continue
            kept = [index for index, item in enumerate(items) if _in_variant(item, variant)]
            vpc[key] = [items[index] for index in kept]
            for new, old in enumerate(kept):
                if new != old:
                    origins[("vpc", key, new)] = ("vpc", key, old)
    if variant is None:
        return document.view(data, origins)
    patch: dict[str, Any] = copy.deepcopy(document.data["variants"][variant])
    where: DataPath = ("variants", variant)
    subnet_patch: dict[str, Any] = patch.pop("subnets", {})
    subnets = vpc.get("subnets") if isinstance(vpc, dict) else None
    for subnet_name, changes in subnet_patch.items():
        matching = [
            index
            for index, subnet in enumerate(subnets if isinstance(subnets, list) else [])
            if isinstance(subnet, dict) and subnet.get("name") == subnet_name
        ]
        if not matching:
            raise document.error(
                (*where, "subnets", subnet_name),
                f"variant {variant!r} patches unknown subnet {shown(subnet_name)}",
                fix="name a subnet of vpc.subnets",
            )
        assert isinstance(subnets, list)
        target: DataPath = ("vpc", "subnets", matching[0])
        for key, value in changes.items():
            subnets[matching[0]][key] = value
            _replaced(origins, (*target, key), (*where, "subnets", subnet_name, key))
    for path, origin in _deep_merge(data, patch, (), where):
        _replaced(origins, path, origin)
    return document.view(data, origins)


def _replaced(origins: dict[DataPath, DataPath], path: DataPath, origin: DataPath) -> None:
    """`path` now holds a value from `origin`: what was known about the old value's parts no
    longer applies. Only a short path can have such parts (`vpc`, `vpc.subnets` or one of its
    items: renumbered items and patched subnet fields), so only those pay for the scan."""
    if len(path) <= 3:
        for stale in [known for known in origins if known[: len(path)] == path]:
            del origins[stale]
    origins[path] = origin


def _in_variant(item: object, variant: str | None) -> bool:
    """Whether a list element exists under the selected variant (untagged ones always do)."""
    if not isinstance(item, dict) or item.get("variant") is None:
        return True
    tags = item["variant"]
    return variant is not None and (variant == tags or (isinstance(tags, list) and variant in tags))


def _deep_merge(
    target: dict[str, Any], patch: dict[str, Any], path: DataPath, origin: DataPath
) -> Iterator[tuple[DataPath, DataPath]]:
    """Merge `patch` into `target`; yield each replaced value's path and where it came from."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            yield from _deep_merge(target[key], value, (*path, key), (*origin, key))
        else:
            target[key] = value
            yield (*path, key), (*origin, key)


_FIXES = {
    "extra_forbidden": "remove it, or check its spelling",
    "missing": "add it",
    "string_type": 'write a string; quote MACs and versions ("02:00:…")',
    "ip_v4_address": "write an IPv4 address like 192.168.1.50",
    "ip_v4_network": "write a CIDR like 192.168.1.0/24 with no host bits set",
    "ip_v6_address": "write an IPv6 address like fe80::1",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number (not true/false, not 2.0, not quoted)",
    "bool_type": "write true or false",
    "dict_type": "write a mapping (KEY: VALUE)",
    "model_type": "write a mapping (KEY: VALUE)",
    "list_type": "write a list ([…] or one `- ` item per line)",
    "greater_than_equal": "use a value in the allowed range",
    "less_than_equal": "use a value in the allowed range",
    "literal_error": "use one of the allowed values",
    "too_short": "list at least one",
}


def _input_error(document: SourceDocument, error: ValidationError) -> InputError:
    """The first pydantic error as one line: where, what, and how to fix it."""
    errors = error.errors(include_url=False)
    first = errors[0]
    path = _data_path(document.data, tuple(first["loc"]), missing=first["type"] == "missing")
    dotted = ".".join(str(part) for part in path) or "(top level)"
    message = " ".join(str(first["msg"]).split())
    context = first.get("ctx") or {}
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "required field missing"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    shown_value = ""
    value = first.get("input")
    if first["type"] not in ("missing", "eksnet"):
        shown_value = f" (got {_described(value)})"
    fix = str(context.get("fix") or _FIXES.get(first["type"], "correct the value"))
    if first["type"] == "string_type" and isinstance(value, bool | int | float):
        fix = "quote it: unquoted, YAML reads " + (
            "true/false/yes/no/on/off as booleans"
            if isinstance(value, bool)
            else "it as a number (MACs like 12:34:56:12:34:56 and versions like 1.31 too)"
        )
    more = len(errors) - 1
    suffix = f"; {more} more error{'s' if more > 1 else ''} after this one" if more else ""
    # A value a `--set` put there: the error names the `--set`, which already says where.
    overridden = document.origin(path)[:1] == (OVERRIDE_ROOT,)
    where = f"{path[-1]}: " if overridden and path else f"{dotted}: "
    return document.error(path, f"{where}{message}{shown_value}{suffix}", fix=fix)


def _data_path(data: Any, loc: tuple[Any, ...], *, missing: bool) -> DataPath:
    """The part of pydantic's `loc` that names places in the data: it also holds the members
    of unions (`str`, `list[str]`, `function-after[…]`) and `[key]`, which the YAML has not."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        in_dict = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
            path.append(part)
        elif missing and index == len(loc) - 1:
            path.append(part)
    return tuple(path)


def _described(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return shown(value, 60)
