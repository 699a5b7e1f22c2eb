"""What-if without editing files: `--set KEY=VALUE` overrides one scalar setting of a spec.

KEY is a dotted path in the spec's own names (camelCase, as the YAML writes them): a mapping
is entered by key, a list of named things (nodes, pods, subnets, NAT gateways …) by the item's
`name` (or `id`; an API manifest's `metadata.name`; a namespaced item also `NAMESPACE/NAME`, the
only name of one whose name is shared). Names may hold dots themselves (a node's DNS name), so at
each step the longest key or name the rest of the path starts with wins. A mapping keyed by
names the spec chooses (route tables, security groups) is entered only by a key it has; a free
mapping of values (`cni.env`, sysctls, tags) takes any key. A path the file does not spell out
yet is followed through the schema (`imds.hopLimit` on a node that names no `imds`), so every
field the schema has can be set; anything else is an error listing the close matches.

VALUE is read as a YAML scalar (`2`, `true`, `10.0.0.0/16`) by the spec's own reader (no tags),
except where the value it replaces, or the schema's type for it, is text: there it stays text
(`cni.env` values are strings, so `…EXTERNALSNAT=true` sets `"true"`). Only scalars are set; a
path to a mapping or a list, or a VALUE that YAML reads as one, is an error.

The override is applied to the data after the variant and before validation, so pydantic and
the cross-checks judge the result exactly as if the file said it; an error in an overridden
value names the `--set` it came from (`SourceDocument.error` knows the path came from it).
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any, Union

from pydantic import BaseModel

from eksnet.errors import InputError
from eksnet.model.source import OVERRIDE_ROOT, SourceDocument, parse_yaml
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
    data = copy.deepcopy(document.data)
    origins = dict(document.origins)
    for index, text in enumerate(overrides):
        key, raw = parse_override(text)
        for path in _set(data, key.split("."), raw, schema, text):
            origins[path] = (OVERRIDE_ROOT, index, text)
    return document.view(data, origins)


def _set(data: Any, words: list[str], raw: str, schema: Any, text: str) -> list[DataPath]:
    """Put the value where `words` lead; the paths written: the mappings the path had to
    create on the way (an error inside one names the `--set` too), then the value's."""
    path: list[str | int] = []
    said: list[str] = []
    """The words of KEY consumed so far, for messages (the data path has list indexes)."""
    written: list[DataPath] = []
    node: Any = data
    kind: Any = schema
    while True:
        where = ".".join(said) or "the spec"
        if isinstance(node, list):
            kind = _item_type(kind)
            index, used = _item(node, words, kind, text, where)
            path.append(index)
            said += words[:used]
            words = words[used:]
            node = node[index]
            if not words:
                _refuse(text, f"{'.'.join(said)} is a list item, not a value; --set sets one value")
            continue
        if not isinstance(node, dict):
            _refuse(text, f"{where} is a value, not a mapping")
        key, used, field_type = _key(node, words, kind, text, where)
        path.append(key)
        said += words[:used]
        words = words[used:]
        current = node.get(key)
        if not words:
            if isinstance(current, dict | list) or _is_container(field_type, current):
                listed = isinstance(current, list) or _is_list(field_type)
                what = "a list" if listed else "a mapping"
                _refuse(text, f"{key} holds {what}; --set sets one value")
            node[key] = _value(raw, current, field_type, text)
            written.append(tuple(path))
            return written
        if current is None:
            if not _is_container(field_type, current):
                _refuse(text, f"{key} is a value, not a mapping")
            node[key] = [] if _is_list(field_type) else {}
            written.append(tuple(path))
        node = node[key]
        kind = field_type


def _refuse(text: str, why: str, fix: str = "set one scalar field") -> typing.NoReturn:
    raise InputError(f"--set {text}: {why}", fix=fix)


def _item(node: list[Any], words: list[str], kind: Any, text: str, where: str) -> tuple[int, int]:
    """The list item the path names, and how many words its name took: an item is named by
    its `name` or `id` (`metadata.name` for an API manifest), and a namespaced one also by
    `NAMESPACE/NAME`."""
    names: dict[str, set[int]] = {}
    for index, item in enumerate(node):
        for name in _item_names(item, kind):
            names.setdefault(name, set()).add(index)
    for used in range(len(words), 0, -1):
        candidate = ".".join(words[:used])
        found = names.get(candidate)
        if not found:
            continue
        if len(found) > 1:
            _refuse(
                text,
                f"{where} has {len(found)} items named {candidate!r}",
                fix="name a namespaced item NAMESPACE/NAME"
                if any("/" in name for name in names)
                else "give the items distinct names in the spec",
            )
        return min(found), used
    _refuse(
        text,
        f"{where} has no item named {words[0]!r}",
        fix=_close(words[0], [n for n in names if "/" not in n], "name an item by its name"),
    )


def _item_names(item: Any, kind: Any) -> list[str]:
    if not isinstance(item, dict):
        return []
    metadata = item.get("metadata")
    meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    names = [
        value
        for value in (item.get("name"), item.get("id"), meta.get("name"))
        if isinstance(value, str)
    ]
    namespace = item.get("namespace", meta.get("namespace"))
    if names and (isinstance(namespace, str) or "namespace" in (_fields(kind, item) or {})):
        names.append(f"{namespace if isinstance(namespace, str) else 'default'}/{names[0]}")
    return names


def _key(
    node: dict[str, Any], words: list[str], kind: Any, text: str, where: str
) -> tuple[str, int, Any]:
    """The mapping key the path names, how many words it took, and the schema's type for its
    value (Any where the schema does not say)."""
    fields = _fields(kind, node)
    free = _free_value(kind, node)
    if fields is None and free is not None and free is not Any and not _is_container(free):
        # A free mapping of values (env, sysctls, tags): the rest of the path is one key,
        # dots and all (`sysctls.net.ipv4.ip_forward`).
        return ".".join(words), len(words), free
    for used in range(len(words), 0, -1):
        candidate = ".".join(words[:used])
        if fields is not None and candidate in fields:
            return candidate, used, fields[candidate]
        if fields is None and candidate in node:
            return candidate, used, free if free is not None else Any
    if fields is None and free is Any:
        # Data the schema does not type (an Ingress): a new key, dots and all, like an
        # annotation's.
        return ".".join(words), len(words), Any
    if fields is not None:
        known, what, otherwise = sorted(fields), "field", "check the spelling"
    else:
        known, what, otherwise = sorted(node), "key", "name one the spec declares"
    _refuse(text, f"{where} has no {what} {words[0]!r}", fix=_close(words[0], known, otherwise))


def _close(word: str, known: list[str], otherwise: str) -> str:
    close = difflib.get_close_matches(word, known, n=4, cutoff=0.5)
    if close:
        return "did you mean " + ", ".join(close) + "?"
    if known and len(known) <= 20:
        return "one of: " + ", ".join(known)
    return otherwise


def _value(raw: str, current: Any, field_type: Any, text: str) -> Any:
    """VALUE as the YAML file would hold it: text where the value it replaces (or the schema)
    is text, else a YAML scalar read as the spec's own reader reads one (no tags)."""
    if isinstance(current, str) or (current is None and _wants_text(field_type)):
        return raw
    if not raw.strip():
        return None  # `key:` with nothing after it
    try:
        value = parse_yaml(raw, f"--set {text}").data
    except InputError as error:
        raise InputError(f"--set {text}: {error.message}", fix=error.fix) from None
    if isinstance(value, dict | list):
        what = "a list" if isinstance(value, list) else "a mapping"
        _refuse(
            text,
            f"the value is {what} in YAML; --set sets one scalar",
            fix="quote it if it is text, or set its fields one by one",
        )
    return value


# --- the schema -------------------------------------------------------------------------------


def _unwrap(kind: Any, data: Any = None) -> Any:
    """`Annotated[X, …]`, `X | None` → X (the first non-None member of a union). Of a union
    of several models (a Service manifest or the shorthand) the data says which: the first
    whose fields hold every key the data has; Any (follow the data) when none does."""
    while True:
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [_unwrap(arg) for arg in typing.get_args(kind) if arg is not type(None)]
            models = [m for m in members if _model(m) is not None]
            if len(models) > 1:
                keys = set(data) if isinstance(data, dict) else set()
                fitting = [m for m in models if keys <= set(_aliases(m))]
                if not fitting:
                    return Any
                models = fitting[:1]
            kind = models[0] if models else members[0]
            continue
        return kind


def _model(kind: Any) -> type[BaseModel] | None:
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _aliases(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the names the YAML uses (aliases), with their types."""
    return {info.alias or name: info.annotation for name, info in model.model_fields.items()}


def _fields(kind: Any, data: Any = None) -> dict[str, Any] | None:
    """The fields of the model `kind` is (for `data`), or None for a non-model."""
    model = _model(_unwrap(kind, data))
    return None if model is None else _aliases(model)


def _free_value(kind: Any, data: Any = None) -> Any | None:
    """For `dict[str, V]`: V (any key is allowed); Any for untyped data; None otherwise."""
    kind = _unwrap(kind, data)
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


def _is_container(kind: Any, data: Any = None) -> bool:
    kind = _unwrap(kind, data)
    return _model(kind) is not None or typing.get_origin(kind) in (list, dict)


def _wants_text(kind: Any) -> bool:
    kind = _unwrap(kind)
    if kind is str:
        return True
    if typing.get_origin(kind) is typing.Literal:
        return all(isinstance(arg, str) for arg in typing.get_args(kind))
    return False
