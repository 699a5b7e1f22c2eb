"""A walk as JSON, with a schema version so scripts can rely on its shape.

The document is the walk's own data (`walk.model`) made plain: addresses as strings, every
field present. `schema` changes its number whenever a field is renamed or removed.
"""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from eksnet.walk.model import Walk

SCHEMA = "eksnet.walk/1"


def plain(value: object) -> Any:
    """Dataclasses, tuples and addresses → JSON-ready dicts, lists and strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: plain(getattr(value, item.name))
            for item in dataclasses.fields(value)
            if not item.name.startswith("_")
        }
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    if isinstance(value, IPv4Address | IPv4Network):
        return str(value)
    return value


def walk_document(walk: Walk, *, walk_id: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"schema": SCHEMA}
    if walk_id is not None:
        document["id"] = walk_id
    document["walk"] = plain(walk)
    return document


def walk_json(walk: Walk, *, walk_id: str | None = None) -> str:
    return json.dumps(walk_document(walk, walk_id=walk_id), indent=2, ensure_ascii=False)
