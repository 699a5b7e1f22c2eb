"""What the JSON importers share: facts versus assumptions, and the list of what was assumed.

A spec built from `kubectl`/`aws` JSON mixes values the documents state (an ENI's MAC) with
values they cannot state but the schema needs (its Linux name). The second kind is wrapped in
`Assumed`, so that a base spec's own value wins over it (`cluster_spec.merge`), while a stated
fact wins over the base; `Notes` says in words what was assumed, once per kind of assumption.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Assumed:
    """A value no input states, filled in because the schema needs one."""

    value: Any


@dataclass(frozen=True, slots=True)
class SubnetRef:
    """A subnet no DescribeSubnets answer named: its id and an address in it, resolved after
    the merge to the base's subnet holding that address (a base names subnets its own way)."""

    id: str
    address: str


@dataclass(slots=True)
class Notes:
    """What was assumed (or left out), in words, each sentence once, in the order found."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text not in self.lines:
            self.lines.append(text)


_AZ = re.compile(r"([a-z]{2}(?:-[a-z]+)+-\d+)[a-z]?(?:-[a-z0-9-]+)?")


def region_of(zone: str) -> str | None:
    """`eu-west-2a` → `eu-west-2` (a Local Zone `us-west-2-lax-1a` too): AWS names every zone
    after its region."""
    match = _AZ.fullmatch(zone)
    return match.group(1) if match else None


def tags_of(item: Json, key: str = "Tags") -> dict[str, str]:
    """AWS's `[{Key, Value}]` as a mapping (ENIs call it `TagSet`)."""
    found: dict[str, str] = {}
    for tag in item.get(key) or []:
        if isinstance(tag, dict) and "Key" in tag:
            found[str(tag["Key"])] = str(tag.get("Value", ""))
    return found


def image_tag(image: str) -> str | None:
    """`…/amazon-k8s-cni:v1.19.2-eksbuild.1` → `v1.19.2-eksbuild.1` (None for a digest only)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def most_common(values: list[Any]) -> Any:
    """The value most items share (the first seen among equals): what `nodeDefaults` holds, so
    that only the odd node says its own."""
    counts: dict[str, tuple[int, int, Any]] = {}
    for index, value in enumerate(values):
        key = repr(value)
        count, first, _ = counts.get(key, (0, index, value))
        counts[key] = (count + 1, first, value)
    return max(counts.values(), key=lambda entry: (entry[0], -entry[1]))[2]
