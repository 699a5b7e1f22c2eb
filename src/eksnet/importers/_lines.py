"""Where a dump's words come from: the file (as named inside its bundle) and the line.

Every parser of this layer reads text a tool printed on a real node. When the text is not what
the tool prints (truncated, garbled, a word eksnet has no place for) the user must be told which
file of the bundle and which line, so each parser carries a `Cursor` and raises through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

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
