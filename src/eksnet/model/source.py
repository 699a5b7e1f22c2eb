"""YAML with line numbers, so every input error can name the file and the line.

We read the parser's events (libyaml's when it is installed, PyYAML's own otherwise) and build
plain Python data from them, keeping a map from each value's path (the keys and list indexes
leading to it) to its line. A validation error carries a path; `line_of` finds the line of the
deepest part of that path the file actually has (a missing field is reported at its parent
mapping).

The input is untrusted, so the builder is deliberately narrower than YAML and bounded:

* Characters: the file is plain text. Control characters (other than tab and line breaks),
  lone surrogates and the Unicode line separators are refused with their line, in the file and
  in escaped strings alike: no name, address or MAC holds one, and a stray one would corrupt the
  one-line errors and the `ip`-style output.
* Tags: every explicit tag (`!custom`, `!!int`, `!!binary`, `!!python/...`, even `!!str`) is
  refused at its line. A cluster spec needs none, and PyYAML's safe constructors crash or
  silently reinterpret values (`!!int word`, `!!timestamp x`, `!!binary` → bytes).
* Merge keys (`<<:`) are refused: YAML 1.1 only, and they hide where a value came from.
* Anchors and aliases work, but an alias may not point into the value that contains it (a
  recursive alias), and the whole document may expand to at most `MAX_VALUES` values, counted as
  they are built (aliases count every value they repeat): a "billion laughs" stops early.
* Nesting is at most `MAX_DEPTH` deep, checked before descending, so no `RecursionError`.
* A key is a plain or quoted scalar, used as written (`on:` is the key "on", not `True`).
* An implicit scalar YAML cannot construct (`2001-13-45` as a date, an int of 5000 digits) is
  an error at its line, not a traceback.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from eksnet.errors import InputError

Path = tuple[str | int, ...]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists. The demo's deepest value (an Ingress backend's port
number) is 11 levels down and Kubernetes manifests stay well under 30; 64 leaves room while
keeping every recursive walk of the data (pydantic, deepcopy, the checks) far from Python's
recursion limit."""

MAX_VALUES = 2_500_000
"""Most values (scalars, lists, mappings and keys; aliases expanded) a spec may hold. The demo
has about 1,000; a generated cluster of 200 nodes and 6,000 pods has 110,000 in 700 KB and loads
in about a second; one imported from a 200-node, 10,000-pod, 2,000-Service cluster's JSON has
about 600,000 in 7 MB and loads in about 3 s. Bounds the memory and time of everything after
parsing (each value also costs a line-map entry), and stops alias bombs early."""

_BAD_CHARACTER = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]"
)
"""Characters a spec may not contain, in the file or in a string after YAML's escapes
(`"\\x01"`, `"\\0"`, `"\\ud800"`) are decoded: C0/C1 controls except tab, LF and CR (so DEL
and NEL too), the Unicode line/paragraph separators (YAML counts them as line breaks, editors do
not, so line numbers would disagree), lone surrogates and the non-characters U+FFFE/U+FFFF."""

_REPARSE_LIMIT = 256 * 1024
"""Largest text whose syntax error is parsed again by PyYAML for a more specific message."""

_STR = "tag:yaml.org,2002:str"

_KIND = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
}


OVERRIDE_ROOT = "--set"
"""The origin of a value a `--set KEY=VALUE` put into the data: `("--set", index, text)`."""


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """Parsed YAML data and where each part of it came from.

    A derived view of the document (a variant applied, variant-only list items dropped) shares
    the file's `lines` and says through `origins` where its values come from: the longest prefix
    of a path found in `origins` is replaced by its origin before the line is looked up, so an
    error in a patched value names the patch's line and one in a renumbered list item its own.
    """

    source: str
    data: Any
    lines: Mapping[Path, int]
    origins: Mapping[Path, Path] = field(default_factory=dict)

    def origin(self, path: Sequence[str | int]) -> Path:
        """`path` of this view as a path of the file."""
        path = tuple(path)
        if self.origins:
            for end in range(len(path), -1, -1):
                found = self.origins.get(path[:end])
                if found is not None:
                    return (*found, *path[end:])
        return path

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of the longest prefix of `path` present in the document."""
        path = self.origin(path)
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def error(self, path: Sequence[str | int], message: str, fix: str) -> InputError:
        origin = self.origin(path)
        if origin and origin[0] == OVERRIDE_ROOT:
            # A value a `--set KEY=VALUE` put there (`model.overrides`): the error names it.
            return InputError(f"--set {origin[2]}: {message}", fix=fix)
        return InputError(message, source=self.source, line=self.line_of(path), fix=fix)

    def view(self, data: Any, origins: Mapping[Path, Path]) -> SourceDocument:
        """The same file seen through a transformation of its data."""
        return SourceDocument(source=self.source, data=data, lines=self.lines, origins=origins)


def parse_yaml(text: str, source: str) -> SourceDocument:
    """Parse one YAML document; every problem becomes an `InputError` at its line."""
    _check_characters(text, source)
    return _Builder(text, source).document()


def _check_characters(text: str, source: str) -> None:
    bad = _BAD_CHARACTER.search(text)
    if bad is None:
        return
    position = bad.start()
    before = text[:position]
    # Line breaks as YAML counts them (LF, CRLF, and a lone CR), so the line is the parser's.
    line = before.count("\n") + before.count("\r") - before.count("\r\n") + 1
    column = position - max(before.rfind("\n"), before.rfind("\r"))
    raise InputError(
        f"control or invalid character U+{ord(bad.group()):04X} at column {column}",
        source=source,
        line=line,
        fix="delete it: a cluster spec is plain text (write tabs and line breaks as themselves)",
    )


def _loader_class() -> type[Any]:
    """libyaml's parser when PyYAML was built with it (ten times faster), else PyYAML's."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class _Anchored:
    value: Any
    lines: list[tuple[Path, int]]
    """The anchored value's lines, relative to the anchor (the empty path is its own line)."""
    size: int
    """How many values it holds, itself included (what one alias of it adds)."""
    height: int
    """How many levels it reaches below itself (what one alias of it adds to the depth)."""


class _Builder:
    """Plain data and its line map from the parser's events, within the bounds above."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.loader = _loader_class()(text)
        self.lines: dict[Path, int] = {}
        self.order: list[Path] = []
        """Paths in the order their lines were first recorded (an anchor's subtree is a slice)."""
        self.anchors: dict[str, _Anchored] = {}
        self.building: set[str] = set()
        """Anchors whose value is still being built: an alias to one of them is recursive."""
        self.values = 0
        self.deepest = 0
        """The deepest level reached in the value being built (for anchors' heights)."""

    def fail(self, line: int | None, message: str, fix: str) -> InputError:
        return InputError(message, source=self.source, line=line, fix=fix)

    def document(self) -> SourceDocument:
        try:
            try:
                data = self._stream()
            except yaml.MarkedYAMLError as error:
                raise self._syntax_error(error) from None
            except yaml.YAMLError as error:
                message = f"YAML error: {_one_line(str(error))}"
                raise self.fail(None, message, "correct the YAML") from None
        finally:
            self.loader.dispose()
        return SourceDocument(source=self.source, data=data, lines=self.lines)

    def _stream(self) -> Any:
        loader = self.loader
        loader.get_event()  # StreamStartEvent
        if loader.check_event(yaml.StreamEndEvent):
            raise self.fail(1, "the file is empty", "write a cluster spec")
        loader.get_event()  # DocumentStartEvent
        data = self.node((), 1)
        loader.get_event()  # DocumentEndEvent
        if not loader.check_event(yaml.StreamEndEvent):
            line = loader.peek_event().start_mark.line + 1
            raise self.fail(
                line, "a second YAML document (after `---`)", "keep one cluster spec per file"
            )
        return data

    def _syntax_error(self, error: yaml.MarkedYAMLError) -> InputError:
        """The error as one line. libyaml's wording is terse ("did not find expected ',' or
        ']'"), so a small text is parsed again by PyYAML's own parser, which also names what it
        found; a big one is not (PyYAML's parser is slow, quadratic on deep flow nesting)."""
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or "invalid YAML"
        if "maximum nesting depth" in problem:  # libyaml's own limit, 1000 levels
            self.check_depth(MAX_DEPTH + 1, line or 1)
        if _loader_class() is not yaml.SafeLoader and len(self.text) <= _REPARSE_LIMIT:
            detailed = _pure_python_error(self.text)
            if detailed is not None and detailed.problem_mark is not None:
                line = detailed.problem_mark.line + 1
                problem = detailed.problem or problem
        return self.fail(
            line, f"YAML syntax error: {_one_line(problem)}", "correct the YAML syntax"
        )

    def record(self, path: Path, line: int) -> None:
        if path not in self.lines:
            self.order.append(path)
        self.lines[path] = line

    def count(self, added: int, line: int) -> None:
        self.values += added
        if self.values > MAX_VALUES:
            raise self.fail(
                line,
                f"the spec holds more than {MAX_VALUES:,} values (aliases count every value "
                "they repeat)",
                fix="split the spec, or use fewer aliases of large anchors",
            )

    def node(self, path: Path, depth: int) -> Any:
        event = self.loader.get_event()
        line = event.start_mark.line + 1
        self.record(path, line)
        if isinstance(event, yaml.AliasEvent):
            return self.alias(str(event.anchor), path, line, depth)
        self.check_depth(depth, line)
        self.refuse_tag(event.tag, line)
        self.count(1, line)
        anchor = event.anchor
        start = len(self.order) - 1
        before = self.values
        outer_deepest, self.deepest = self.deepest, depth
        if anchor is not None:
            self.building.add(anchor)
        value: Any
        if isinstance(event, yaml.ScalarEvent):
            value = self.scalar(event, line)
        elif isinstance(event, yaml.SequenceStartEvent):
            value = self.sequence(path, depth)
        else:
            value = self.mapping(path, depth)
        if anchor is not None:
            self.building.discard(anchor)
            size = len(path)
            subtree = [(each[size:], self.lines[each]) for each in self.order[start:]]
            self.anchors[anchor] = _Anchored(
                value, subtree, size=self.values - before + 1, height=self.deepest - depth
            )
        self.deepest = max(outer_deepest, self.deepest)
        return value

    def check_depth(self, depth: int, line: int) -> None:
        self.deepest = max(self.deepest, depth)
        if depth > MAX_DEPTH:
            raise self.fail(
                line,
                f"nesting deeper than {MAX_DEPTH} levels (aliases included)",
                fix="a cluster spec is a few levels deep; close the lists and mappings",
            )

    def sequence(self, path: Path, depth: int) -> list[Any]:
        items: list[Any] = []
        while not self.loader.check_event(yaml.SequenceEndEvent):
            items.append(self.node((*path, len(items)), depth + 1))
        self.loader.get_event()
        return items

    def mapping(self, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while not self.loader.check_event(yaml.MappingEndEvent):
            key, key_line = self.key()
            if key in result:
                raise self.fail(key_line, f"duplicate key {key!r}", fix="write each key once")
            result[key] = self.node((*path, key), depth + 1)
            self.record((*path, key), key_line)
        self.loader.get_event()
        return result

    def key(self) -> tuple[str, int]:
        """A mapping key: a scalar, taken as written."""
        event = self.loader.get_event()
        line = event.start_mark.line + 1
        if not isinstance(event, yaml.ScalarEvent):
            what = "an alias" if isinstance(event, yaml.AliasEvent) else "a list or mapping"
            raise self.fail(line, f"a key is {what}", fix="write keys as plain words")
        self.refuse_tag(event.tag, line)
        if event.implicit[0] and event.value == "<<":
            raise self.fail(
                line,
                "merge keys (<<) are not supported",
                fix="write the keys out (or quote '<<' if it is a real key)",
            )
        self.check_text(event.value, line)
        if any(char in event.value for char in "\t\n\r"):
            raise self.fail(
                line,
                f"the key {shown(event.value)} holds a tab or line break",
                fix="write keys on one line, without tabs",
            )
        self.count(1, line)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(event.value, [((), line)], size=1, height=0)
        return event.value, line

    def refuse_tag(self, tag: str | None, line: int) -> None:
        if tag is not None:
            raise self.fail(
                line,
                f"YAML tag {tag!r} is not allowed in a cluster spec",
                fix="remove the tag; quote the value if it is meant as text",
            )

    def scalar(self, event: yaml.ScalarEvent, line: int) -> Any:
        text = event.value
        self.check_text(text, line)
        tag = self.loader.resolve(yaml.ScalarNode, text, event.implicit)
        if tag == _STR:
            return text
        # Implicit tags with no safe constructor (`<<` and `=` as plain values) stay text.
        constructor = self.loader.yaml_constructors.get(tag)
        if constructor is None:
            return text
        node = yaml.ScalarNode(tag, text, None, None, event.style)
        try:
            return constructor(self.loader, node)
        except (ValueError, OverflowError, ArithmeticError, yaml.YAMLError):
            kind = _KIND.get(tag, "a YAML value")
            raise self.fail(
                line,
                f"{shown(text)} cannot be read as {kind}",
                fix="correct it, or quote it to make it text",
            ) from None

    def check_text(self, text: str, line: int) -> None:
        bad = _BAD_CHARACTER.search(text)
        if bad is not None:
            raise self.fail(
                line,
                f"a string holds the control or invalid character U+{ord(bad.group()):04X}",
                fix="remove the escape: names, addresses and MACs are printable text",
            )

    def alias(self, anchor: str, path: Path, line: int, depth: int) -> Any:
        if anchor in self.building:
            raise self.fail(
                line,
                f"alias *{anchor} refers to the value that contains it (a recursive alias)",
                fix="an alias must name a value defined before it, outside it",
            )
        anchored = self.anchors.get(anchor)
        if anchored is None:
            raise self.fail(
                line, f"alias *{anchor} has no anchor &{anchor} before it", fix="define it first"
            )
        self.check_depth(depth + anchored.height, line)
        self.count(anchored.size, line)
        for relative, relative_line in anchored.lines:
            if relative:
                self.record((*path, *relative), relative_line)
        # A copy per use: a variant's patch must never change the anchored value elsewhere.
        return copy.deepcopy(anchored.value)


def _pure_python_error(text: str) -> yaml.MarkedYAMLError | None:
    loader: Any = yaml.SafeLoader(text)
    try:
        while not isinstance(loader.get_event(), yaml.StreamEndEvent):
            pass
    except yaml.MarkedYAMLError as error:
        return error
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def shown(value: object, limit: int = 40) -> str:
    """`repr(value)`, cut to about `limit` characters: an error line quotes the value, not a
    whole 5,000-digit number."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"
