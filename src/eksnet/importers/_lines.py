"""Where a dump's words come from: the file (as named inside its bundle) and the line.

Every parser of this layer reads text a tool printed on a real node. When the text is not what
the tool prints (truncated, garbled, a word eksnet has no place for) the user must be told which
file of the bundle and which line, so each parser carries a `Cursor` and raises through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, NoReturn

from eksnet.errors import InputError


@dataclass(frozen=True, slots=True)
class Cursor:
    """One line of one dumped file: what an error names."""

    source: str
    line: int

    def fail(self, message: str, fix: str | None = None) -> NoReturn:
        raise InputError(message, source=self.source, line=self.line, fix=fix)


def numbered(text: str, source: str) -> Iterator[tuple[Cursor, str]]:
    """The non-blank lines of `text` with their cursors (1-based line numbers)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield Cursor(source, number), line


def ipv4_address(cursor: Cursor, text: str) -> IPv4Address:
    """A dotted IPv4 address a tool printed, or an error at the cursor's line."""
    try:
        return IPv4Address(text)
    except ValueError:
        cursor.fail(f"{text!r} is not an IPv4 address")


def parse_json(text: str, source: str, fix: str | None = None) -> Any:
    """JSON text a tool printed → value; bad or truncated JSON is an `InputError` naming the
    file and line (and saying so when the text simply ends early)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(text.rstrip())
        raise InputError(
            f"not valid JSON: {error.msg} (column {error.colno})"
            + ("; the file ends early (truncated?)" if truncated else ""),
            source=source,
            line=error.lineno,
            fix=fix,
        ) from None
