"""The `eksnet` command line: walk, exec, tour, and the lab.

Every command loads a cluster (the built-in demo `talk` unless `--cluster FILE`), runs the
controllers to get the one data-plane state, and asks its question of that state. Errors are one
line on stderr and a non-zero exit (2 bad input, 3 not modelled yet), never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.dataplane.targets import parse_target, resolve_namespace
from eksnet.errors import CommandFailed, EksnetError, NotModelled
from eksnet.model import Cluster, load_cluster
from eksnet.render.exec import run_command
from eksnet.render.walk_json import walk_document
from eksnet.render.walk_text import walk_renderable
from eksnet.walk.engine import walk as run_walk
from eksnet.walk.model import Protocol, Walk
from eksnet.walk.tour import TOUR, TourWalk

app = typer.Typer(
    name="eksnet",
    help="The life of a packet in Amazon EKS, simulated and proven on a real kernel.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ClusterOption = Annotated[
    Path | None,
    typer.Option("--cluster", help="Cluster spec YAML (default: the built-in demo `talk`)."),
]
VariantOption = Annotated[
    str | None, typer.Option("--variant", help="A what-if variant declared in the cluster spec.")
]

T = TypeVar("T")


def guarded(action: Callable[[], T]) -> T:
    """Run a command body; an eksnet error becomes one line on stderr and its exit code."""
    try:
        return action()
    except EksnetError as error:
        typer.echo(f"eksnet: {error.one_line()}", err=True)
        raise typer.Exit(error.exit_code) from None


@dataclass(frozen=True, slots=True)
class Loaded:
    cluster: Cluster
    state: DataplaneState
    labels: Mapping[str, str]


def load(cluster_file: Path | None, variant: str | None = None) -> Loaded:
    """The cluster, its data-plane state, and the names the talk gives its nodes and pods."""
    cluster = load_cluster(cluster_file, variant=variant)
    state = build_state(cluster)
    labels: dict[str, str] = {}
    for node in cluster.nodes:
        if node.talk_name:
            labels[node.name] = node.talk_name
    for pod in cluster.pods:
        if pod.talk_name:
            labels[state.namespace_of_owner(pod.key).name] = pod.talk_name
    return Loaded(cluster, state, labels)


@app.command("walk")
def walk_command(
    src: Annotated[str, typer.Argument(help="pod/NS/NAME, node/NAME or ip/ADDR")],
    dst: Annotated[str, typer.Argument(help="pod/NS/NAME, node/NAME or ip/ADDR")],
    port: Annotated[int | None, typer.Option("--port", help="Destination port.")] = None,
    sport: Annotated[
        int | None, typer.Option("--sport", help="Source port (default 41000).")
    ] = None,
    proto: Annotated[str, typer.Option("--proto", help="tcp, udp or icmp.")] = "tcp",
    cluster: ClusterOption = None,
    variant: VariantOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The walk as JSON.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Every step.")] = False,
    no_return: Annotated[bool, typer.Option("--no-return", help="Forward only.")] = False,
) -> None:
    """Walk a packet from SRC to DST, forward and back."""

    def body() -> None:
        protocol = _protocol(proto)
        loaded = load(cluster, variant)
        result = run_walk(
            loaded.state,
            src,
            dst,
            proto=protocol,
            dport=port,
            sport=sport,
            labels=loaded.labels,
            with_reply=not no_return,
        )
        _print_walk(result, as_json=as_json, verbose=verbose)
        if _not_modelled(result):
            # The walk got as far as eksnet models; say so in the exit status too.
            raise typer.Exit(NotModelled.exit_code)

    guarded(body)


def _not_modelled(result: Walk) -> bool:
    ends = [result.disposition] + [branch.walk.disposition for branch in result.branches]
    if any(end is not None and end.kind == "not-modelled" for end in ends):
        return True
    return result.reply is not None and _not_modelled(result.reply)


def _protocol(text: str) -> Protocol:
    if text not in ("tcp", "udp", "icmp"):
        from eksnet.errors import InputError

        raise InputError(f"--proto {text!r} is not tcp, udp or icmp", fix="--proto tcp")
    return text  # type: ignore[return-value]


def _print_walk(result: Walk, *, as_json: bool, verbose: bool, title: str | None = None) -> None:
    if as_json:
        import json

        typer.echo(json.dumps(walk_document(result), indent=2, ensure_ascii=False))
        return
    Console(highlight=False, soft_wrap=True).print(
        walk_renderable(result, verbose=verbose, title=title)
    )


@app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_command(
    target: Annotated[str, typer.Argument(help="node/NAME or pod/NS/NAME")],
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    cluster: ClusterOption = None,
    variant: VariantOption = None,
) -> None:
    """Print what CMD prints in TARGET's namespace, from the simulated state."""

    def body() -> None:
        loaded = load(cluster, variant)
        namespace = resolve_namespace(loaded.state, parse_target(target))
        try:
            output = run_command(loaded.state, namespace, command)
        except CommandFailed as failure:
            # The simulated tool failed: print its stderr as the real tool would, and exit
            # with its status.
            sys.stderr.write(failure.stderr.rstrip("\n") + "\n")
            raise typer.Exit(failure.exit_code) from None
        sys.stdout.write(output)

    guarded(body)


@app.command("tour")
def tour_command(
    cluster: ClusterOption = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Every step.")] = False,
    lab: Annotated[
        bool, typer.Option("--lab", help="Prove each walk on the real kernel (root).")
    ] = False,
    only: Annotated[list[str] | None, typer.Option("--walk", help="Only these walk ids.")] = None,
) -> None:
    """The talk's walks in talk order (W0–W2 so far), forward and return."""

    def body() -> None:
        loaded = load(cluster)
        console = Console(highlight=False, soft_wrap=True)
        selected = [t for t in TOUR if not only or t.id in only]
        if lab:
            if not _tour_with_lab(console, loaded, selected, verbose, cluster):
                raise typer.Exit(1)
            return
        for tour_walk in selected:
            _tour_walk(console, loaded, tour_walk, verbose)

    guarded(body)


def _tour_walk(console: Console, loaded: Loaded, tour_walk: TourWalk, verbose: bool) -> Walk:
    console.rule(f"[bold]{tour_walk.id} — {tour_walk.title}")
    console.print(f"[dim]talk: {tour_walk.talk}[/dim]")
    for target, command in tour_walk.views:
        namespace = resolve_namespace(loaded.state, parse_target(target))
        label = loaded.labels.get(namespace.name, target)
        console.print(f"[bold]{label}$[/bold] {command}")
        # The command's own bytes, tabs included: exactly what the real command prints.
        console.file.write(run_command(loaded.state, namespace, command.split()))
        console.file.flush()
    result = run_walk(
        loaded.state,
        tour_walk.src,
        tour_walk.dst,
        proto=tour_walk.proto,
        dport=tour_walk.dport,
        sport=tour_walk.sport,
        labels=loaded.labels,
    )
    console.print(walk_renderable(result, verbose=verbose, title=f"{tour_walk.id}"))
    return result


def _tour_with_lab(
    console: Console,
    loaded: Loaded,
    selected: list[TourWalk],
    verbose: bool,
    cluster: Path | None,
) -> bool:
    """Each walk, then the kernel's verdict on it; builds a temporary lab when none is up."""
    from eksnet.lab import lifecycle
    from eksnet.lab.cli import render_verdicts, verify_walk
    from eksnet.lab.names import LabNames

    names = LabNames.from_env()
    temporary = not lifecycle.lab_netns(names)
    source = str(cluster) if cluster is not None else None
    try:
        if temporary:
            console.print("[dim]lab: building the cluster in network namespaces…[/dim]")
            lifecycle.up(loaded.state, names, cluster=source)
            lifecycle.settle(names)
        agreed = True
        for tour_walk in selected:
            result = _tour_walk(console, loaded, tour_walk, verbose)
            verdict = verify_walk(loaded.state, result, names, f"{tour_walk.id} on the kernel")
            console.print(render_verdicts([verdict]))
            agreed = agreed and verdict.agree
        return agreed
    finally:
        if temporary:
            lifecycle.down(names)


def _mount_lab() -> None:
    """`eksnet lab …` lives in `eksnet.lab.cli` (the lab's I/O stays at the edge)."""
    from eksnet.lab.cli import lab_app

    app.add_typer(lab_app, name="lab", help="The lab: the same state on the real kernel.")


_mount_lab()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
