"""YAML with line numbers, so every input error can name the file and the line.

PyYAML's composer gives nodes with their start marks; we build plain Python data from them and
keep a map from each value's path (the keys and list indexes leading to it) to its line. A
validation error carries a path; `line_of` finds the line of the deepest part of that path the
file actually has (a missing field is reported at its parent mapping).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from eksnet.errors import InputError

Path = tuple[str | int, ...]

_SCALARS = yaml.constructor.SafeConstructor()
"""Turns an already-resolved scalar node into its Python value (str, int, bool, None …)."""


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """Parsed YAML data and where each part of it came from."""

    source: str
    data: Any
    lines: Mapping[Path, int]

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of the longest prefix of `path` present in the document."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def error(self, path: Sequence[str | int], message: str, fix: str) -> InputError:
        return InputError(message, source=self.source, line=self.line_of(path), fix=fix)


def parse_yaml(text: str, source: str) -> SourceDocument:
    """Parse one YAML document; a syntax error becomes an `InputError` at its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or "invalid YAML"
        raise InputError(
            f"YAML syntax error: {problem}", source=source, line=line, fix="correct the YAML syntax"
        ) from None
    except yaml.YAMLError as error:
        raise InputError(f"YAML error: {error}", source=source, fix="correct the YAML") from None
    if node is None:
        raise InputError("the file is empty", source=source, line=1, fix="write a cluster spec")
    lines: dict[Path, int] = {}
    data = _build(node, (), lines, source)
    return SourceDocument(source=source, data=data, lines=lines)


def _build(node: yaml.Node, path: Path, lines: dict[Path, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _SCALARS.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                raise InputError(
                    f"duplicate key {key!r}",
                    source=source,
                    line=key_node.start_mark.line + 1,
                    fix="write each key once",
                )
            result[key] = _build(value_node, (*path, key), lines, source)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), lines, source) for index, item in enumerate(node.value)
        ]
    return _SCALARS.construct_object(node)
