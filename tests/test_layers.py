"""Imports go one way: every module of `src/eksnet` imports only its own layer and layers below.

Every `import` and `from … import` is read with `ast`, wherever it is (module top, inside a
function, under `if TYPE_CHECKING:`), so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = "eksnet"
SRC = Path(__file__).resolve().parent.parent / "src" / PACKAGE

SITS_ON: Mapping[str, frozenset[str]] = {
    # The three error kinds: raised everywhere, so they depend on nothing.
    "errors": frozenset(),
    # Packaged example data (talk.yaml), read as a resource, never imported for code.
    "examples": frozenset(),
    # The cluster spec: YAML in, validated frozen types out. Knows nothing of Linux.
    "model": frozenset({"errors"}),
    # The state's types in the kernel's vocabulary: what a node holds, not how it behaves or
    # who built it, so neither the spec nor the kernel model.
    "dataplane": frozenset({"errors"}),
    # ipamd, the CNI plugin, the AMI: turn the spec into a state.
    "controllers": frozenset({"model", "dataplane"}),
    # The kernel's behaviour over a state (FIB, sysctls, netfilter, conntrack) and the words the
    # kernel's tools print for one of its objects (an `ip rule` line, a `conntrack -L` line),
    # which the walk quotes and the views print. Indifferent to who built the state.
    "kernel": frozenset({"dataplane"}),
    # The VPC fabric between ENIs: beside the kernel, not on it.
    "vpc": frozenset({"dataplane"}),
    # A packet carried through kernel and VPC, producing Walk data; no tool views.
    "walk": frozenset({"kernel", "vpc"}),
    # Text for people and tools: walks and Linux views. May quote anything below, never the
    # other way round (a walk must not depend on how it is printed).
    "render": frozenset({"walk"}),
    # The real kernel: builds the state, runs traffic, compares it with simulated walks.
    "lab": frozenset({"render", "controllers"}),
    # A spec's built state remembered between runs (`eksnet exec` in a loop): loads and builds
    # on a miss, so it sits on the controllers; the CLI and the lab read states through it.
    "state_cache": frozenset({"controllers", "importers"}),
    # A real node's dumps (eks-log-collector.sh bundles, `ip …` outputs) read into the state's
    # types: the kernel's parsers and derivations, nothing that walks or prints.
    "importers": frozenset({"kernel", "controllers"}),
    # The entry point, over everything.
    # Imported nodes against their controllers, walks explained: sits on the importers' views
    # and on the walk engine (through render).
    "diagnose": frozenset({"importers", "render"}),
    "cli": frozenset({"lab", "state_cache", "importers", "diagnose"}),
}
"""Each layer and the layers it sits on directly. A layer may import itself and every layer it
sits on directly or through others (the transitive closure below); anything else is upward."""


def _below(layer: str) -> frozenset[str]:
    seen: set[str] = set()
    todo = list(SITS_ON[layer])
    while todo:
        lower = todo.pop()
        if lower not in seen:
            seen.add(lower)
            todo.extend(SITS_ON[lower])
    return frozenset(seen)


ALLOWED: Mapping[str, frozenset[str]] = {layer: _below(layer) | {layer} for layer in SITS_ON}


def layer_of(module: str) -> str | None:
    """`eksnet.walk.engine` → `walk`; `eksnet.errors` → `errors`; None for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    return (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()


def imported_modules(source: str, module: str, *, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, module) for every import of an `eksnet` module anywhere in `source`."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from eksnet import lab` imports the layer `lab`, as `from eksnet.lab import x` does.
            names = [
                f"{base}.{alias.name}" if base == PACKAGE and _is_module(alias.name) else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                yield node.lineno, name


def upward_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Every import in `source` (the text of `module`) of a layer it may not import."""
    layer = layer_of(module)
    if layer is None:
        return []
    wrong = []
    for line, name in imported_modules(source, module, is_package=is_package):
        target = layer_of(name)
        if target is not None and target in SITS_ON and target not in ALLOWED[layer]:
            wrong.append(f"{module}:{line} ({layer}) imports {name} ({target})")
        elif target is not None and target not in SITS_ON:
            wrong.append(f"{module}:{line} imports {name}: layer {target!r} is not in SITS_ON")
    return wrong


SOURCES = sorted(SRC.rglob("*.py"))


def test_every_layer_is_in_the_table() -> None:
    layers = {layer_of(module_name(path)) for path in SOURCES} - {None}
    assert layers == set(SITS_ON)


def test_the_table_has_no_cycle() -> None:
    for layer in SITS_ON:
        assert layer not in _below(layer), layer


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    module = module_name(path)
    source = path.read_text(encoding="utf-8")
    assert upward_imports(source, module, is_package=path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("eksnet.walk.describe", "from eksnet.render.linux.rule import ip_rule\n"),
        ("eksnet.walk.describe", "def f():\n    import eksnet.render.walk_text\n"),
        ("eksnet.kernel.fib", "from eksnet import walk\n"),
        ("eksnet.kernel.fib", "from ..render import exec\n"),
        ("eksnet.kernel.sysctl", "from .. import walk\n"),
        ("eksnet.dataplane.state", "from eksnet.kernel.fib import local_table\n"),
        ("eksnet.lab.cli", "from eksnet.cli import app\n"),
        ("eksnet.vpc.fabric", "from eksnet.kernel import fib\n"),
    ],
)
def test_the_check_sees_upward_imports(module: str, source: str) -> None:
    assert upward_imports(source, module) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("eksnet.render.route_get", "from eksnet.kernel.fib import output_route\n"),
        ("eksnet.walk.engine", "from . import describe\nfrom eksnet.vpc import fabric\n"),
        ("eksnet.cli", "from eksnet.lab.cli import lab_app\n"),
        ("eksnet.kernel.fib", "from eksnet import __version__\n"),
    ],
)
def test_the_check_lets_downward_imports_pass(module: str, source: str) -> None:
    assert upward_imports(source, module) == []
