"""What-if without editing files: `--set KEY=VALUE` overrides one scalar setting of a spec.

KEY is a dotted path in the spec's own names (camelCase, as the YAML writes them): a mapping
is entered by key, a list of named things (nodes, pods, subnets, NAT gateways …) by the item's
`name` (or `id`). Names may hold dots themselves (a node's DNS name), so at each step the
longest key or name the rest of the path starts with wins. A path the file does not spell out
yet is followed through the schema (`imds.hopLimit` on a node that names no `imds`), so every
field the schema has can be set; anything else is an error listing the close matches.

VALUE is read as a YAML scalar (`2`, `true`, `10.0.0.0/16`), except where the value it replaces,
or the schema's type for it, is text: there it stays text (`cni.env` values are strings, so
`…EXTERNALSNAT=true` sets `"true"`). Only scalars are set; a path to a mapping or a list is an
error.

The override is applied to the data after the variant and before validation, so pydantic and
the cross-checks judge the result exactly as if the file said it; an error in an overridden
value names the `--set` it came from (`SourceDocument.error` knows the path came from it).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any, Union

import yaml
from pydantic import BaseModel

from eksnet.errors import InputError
from eksnet.model.source import OVERRIDE_ROOT, SourceDocument
from eksnet.model.source import Path as DataPath


def parse_override(text: str) -> tuple[str, str]:
    """`KEY=VALUE` → (KEY, VALUE)."""
    key, equals, value = text.partition("=")
    if not equals or not key or key.startswith(".") or key.endswith(".") or ".." in key:
        raise InputError(
            f"--set {text}: not KEY=VALUE",
            fix="write --set PATH.TO.FIELD=VALUE, e.g. --set nodeDefaults.imds.hopLimit=2",
        )
    return key, value


def apply_overrides(
    document: SourceDocument, overrides: Sequence[str], schema: type[BaseModel]
) -> SourceDocument:
    """`document` with each override applied, in order (a later one wins)."""
    if not overrides:
        return document
    import copy

    data = copy.deepcopy(document.data)
    origins = dict(document.origins)
    for index, text in enumerate(overrides):
        key, raw = parse_override(text)
        path = _set(data, key.split("."), raw, schema, text)
        origins[path] = (OVERRIDE_ROOT, index, text)
    return document.view(data, origins)


def _set(data: Any, words: list[str], raw: str, schema: Any, text: str) -> DataPath:
    path: list[str | int] = []
    node: Any = data
    kind: Any = schema
    while words:
        last = len(words) == 1
        if isinstance(node, list):
            index, used = _item(node, words, text, path)
            path.append(index)
            node = node[index]
            kind = _item_type(kind)
            words = words[used:]
            if not words:
                _refuse(text, "a list item, not a value")
            continue
        if not isinstance(node, dict):
            _refuse(text, f"{'.'.join(map(str, path))} is a value, not a mapping")
        key, used, field_type = _key(node, words, kind, text, path)
        words = words[used:]
        path.append(key)
        if not words:
            current = node.get(key)
            if isinstance(current, dict | list) or _is_container(field_type):
                what = (
                    "a list" if isinstance(current, list) or _is_list(field_type) else "a mapping"
                )
                _refuse(text, f"{key} holds {what}; --set sets one value")
            node[key] = _value(raw, current, field_type)
            return tuple(path)
        if key not in node or node[key] is None:
            if not _is_container(field_type):
                _refuse(text, f"{key} is a value, not a mapping")
            node[key] = [] if _is_list(field_type) else {}
        node = node[key]
        kind = field_type
        del last
    raise AssertionError("unreachable: the loop returns at the last word")


def _refuse(text: str, why: str, fix: str = "set one scalar field") -> typing.NoReturn:
    raise InputError(f"--set {text}: {why}", fix=fix)


def _item(node: list[Any], words: list[str], text: str, path: list[str | int]) -> tuple[int, int]:
    """The list item the path names (by `name` or `id`), and how many words its name took."""
    names: dict[str, int] = {}
    for index, item in enumerate(node):
        if isinstance(item, dict):
            for field in ("name", "id"):
                value = item.get(field)
                if isinstance(value, str):
                    names.setdefault(value, index)
    for used in range(len(words), 0, -1):
        candidate = ".".join(words[:used])
        if candidate in names:
            return names[candidate], used
    where = ".".join(map(str, path)) or "the spec"
    _refuse(
        text,
        f"{where} has no item named {words[0]!r}",
        fix=_close(words[0], list(names), "name an item"),
    )


def _key(
    node: dict[str, Any], words: list[str], kind: Any, text: str, path: list[str | int]
) -> tuple[str, int, Any]:
    """The mapping key the path names, how many words it took, and the schema's type for its
    value (Any where the schema does not say)."""
    fields = _fields(kind)
    free = _free_value(kind)
    if fields is None and free is not None and not _is_container(free):
        # A free mapping of values (env, sysctls, tags): the rest of the path is one key,
        # dots and all (`sysctls.net.ipv4.ip_forward`).
        return ".".join(words), len(words), free
    for used in range(len(words), 0, -1):
        candidate = ".".join(words[:used])
        if fields is not None and candidate in fields:
            return candidate, used, fields[candidate]
        if fields is None and (candidate in node or (free is not None and used == 1)):
            return candidate, used, free if free is not None else Any
    known = sorted(set(fields or {}) | set(node))
    where = ".".join(map(str, path)) or "the spec"
    _refuse(
        text,
        f"{where} has no field {words[0]!r}",
        fix=_close(words[0], known, "check the spelling"),
    )


def _close(word: str, known: list[str], otherwise: str) -> str:
    close = difflib.get_close_matches(word, known, n=4, cutoff=0.5)
    if close:
        return "did you mean " + ", ".join(close) + "?"
    if known and len(known) <= 20:
        return "one of: " + ", ".join(known)
    return otherwise


def _value(raw: str, current: Any, field_type: Any) -> Any:
    if isinstance(current, str) or (current is None and _wants_text(field_type)):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, dict | list):
        return raw
    return value


# --- the schema -------------------------------------------------------------------------------


def _unwrap(kind: Any) -> Any:
    """`Annotated[X, …]`, `X | None` → X (the first non-None member of a union)."""
    while True:
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [_unwrap(arg) for arg in typing.get_args(kind) if arg is not type(None)]
            models = [m for m in members if _model(m) is not None]
            if len(models) > 1:
                # One of several shapes (a Service manifest or the shorthand): the data says
                # which, so the path follows the data.
                return Any
            kind = models[0] if models else members[0]
            continue
        return kind


def _model(kind: Any) -> type[BaseModel] | None:
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _fields(kind: Any) -> dict[str, Any] | None:
    """A model's fields by the names the YAML uses (aliases), or None for a non-model."""
    model = _model(_unwrap(kind))
    if model is None:
        return None
    found: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        found[info.alias or name] = info.annotation
    return found


def _free_value(kind: Any) -> Any | None:
    """For `dict[str, V]`: V (any key is allowed); None otherwise."""
    kind = _unwrap(kind)
    if typing.get_origin(kind) is dict:
        return typing.get_args(kind)[1]
    if kind is Any:
        return Any
    return None


def _item_type(kind: Any) -> Any:
    kind = _unwrap(kind)
    if typing.get_origin(kind) is list:
        return typing.get_args(kind)[0]
    return Any


def _is_list(kind: Any) -> bool:
    return typing.get_origin(_unwrap(kind)) is list


def _is_container(kind: Any) -> bool:
    kind = _unwrap(kind)
    return _model(kind) is not None or typing.get_origin(kind) in (list, dict)


def _wants_text(kind: Any) -> bool:
    kind = _unwrap(kind)
    if kind is str:
        return True
    if typing.get_origin(kind) is typing.Literal:
        return all(isinstance(arg, str) for arg in typing.get_args(kind))
    return False
