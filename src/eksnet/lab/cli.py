"""`eksnet lab …`: the typer sub-app the main CLI mounts, and the tour's `verify_walk` hook.

The lead's pieces (`eksnet.walk.engine`, `eksnet.walk.tour`) are imported where used, so the
lab's commands that do not walk (`up`, `down`, `status`, `exec`) work without them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from eksnet.dataplane.state import DataplaneState
from eksnet.dataplane.targets import parse_target, resolve_namespace
from eksnet.errors import EksnetError, InputError
from eksnet.lab import lifecycle
from eksnet.lab.inside import Inside, exec_inside
from eksnet.lab.lifecycle import Progress
from eksnet.lab.names import LabNames
from eksnet.lab.system import LabError
from eksnet.lab.verify import Verdict, verify_walk
from eksnet.walk.model import Walk

LabProtocol = Literal["tcp", "udp", "icmp"]
"""What the lab's sender speaks: an SCTP walk is simulated (`eksnet walk --proto sctp`) but
the lab has no SCTP sender yet, so `lab verify` refuses it where typer checks the option."""

lab_app = typer.Typer(
    name="lab",
    help="Build the cluster's data plane in real network namespaces "
    "and prove the walks on the kernel.",
    rich_markup_mode=None,
)
console = Console(stderr=True)
out = Console()

__all__ = [
    "lab_app",
    "load_state",
    "require_lab_holds",
    "verify_walk",
    "verify_walks",
]


def load_state(
    cluster: str | None, variant: str | None = None, overrides: Sequence[str] = ()
) -> DataplaneState:
    """The state of a cluster file (None: the demo `talk`) under a variant and `--set`
    overrides, via the model and controllers."""
    from eksnet.controllers import build_state
    from eksnet.model import load_cluster

    return build_state(load_cluster(cluster, variant=variant, overrides=overrides))


class _RichProgress(Progress):
    def __init__(self, progress: RichProgress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def phase(self, name: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[self.task].total)
        self.task = self.progress.add_task(name, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, steps)


def _progress() -> RichProgress:
    return RichProgress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _fail(error: EksnetError) -> typer.Exit:
    console.print(f"[red]eksnet:[/red] {error.one_line()}", soft_wrap=True)
    return typer.Exit(error.exit_code)


@lab_app.command()
def up(
    cluster: str | None = typer.Option(
        None, "--cluster", help="cluster file (default: the demo `talk`)"
    ),
    variant: str | None = typer.Option(
        None, "--variant", help="a what-if variant declared in the spec"
    ),
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="override one setting of the spec (repeatable)"
        ),
    ] = None,
) -> None:
    """Build the lab: one namespace per node and pod, the VPC fabric, the whole state."""
    names = LabNames.from_env()
    settings = tuple(overrides or ())
    try:
        state = load_state(cluster, variant, settings)
        with _progress() as bar:
            report = _RichProgress(bar)
            timings = lifecycle.up(
                state,
                names,
                cluster=cluster,
                variant=variant,
                overrides=settings,
                progress=report,
            )
            settle = lifecycle.settle(names, progress=report)
    except KeyboardInterrupt:
        lifecycle.down(names)
        console.print("eksnet: interrupted; the lab was removed", soft_wrap=True)
        raise typer.Exit(130) from None
    except EksnetError as error:
        raise _fail(error) from None
    console.print(
        f"lab up: {len(lifecycle.lab_netns(names))} namespaces (prefix {names.prefix!r}) in "
        f"{timings.total:.2f} s, IPv6 DAD settled in {settle:.2f} s"
    )


@lab_app.command()
def down() -> None:
    """Remove every lab namespace (also after a crashed `up` or `verify`)."""
    names = LabNames.from_env()
    try:
        count = lifecycle.down(names)
    except EksnetError as error:
        raise _fail(error) from None
    console.print(f"lab down: removed {count} namespaces with prefix {names.prefix!r}")


@lab_app.command()
def status() -> None:
    """List the lab's namespaces: what exists, what the state expects but is missing."""
    names = LabNames.from_env()
    state: DataplaneState | None = None
    cluster = "—"
    try:
        record = lifecycle.read_run_file(names)
        cluster = record.configuration()
        state = load_state(record.cluster, record.variant, record.overrides)
    except LabError:
        pass
    rows = lifecycle.status(names, state)
    if not rows:
        out.print(f"no lab namespaces with prefix {names.prefix!r}")
        return
    table = Table(title=f"lab {names.prefix!r}, cluster {cluster}")
    for column in ("namespace", "kind", "state name", "exists"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.netns,
            row.kind,
            row.state_name or "—",
            "yes" if row.exists else "[red]missing[/red]",
        )
    out.print(table)


def lab_target(target: str, names: LabNames) -> Inside:
    """Where `lab exec` runs for a `node/…`/`pod/…` target (or `vpc`); anything else is refused."""
    state = lifecycle.lab_state(names, load_state)
    if target == "vpc":
        found = names.inside_fabric(state)
    else:
        found = names.inside(resolve_namespace(state, parse_target(target)))
    present = set(lifecycle.lab_netns(names))
    missing = [n for n in (found.netns, *(lab for _, lab in found.shown)) if n not in present]
    if missing:
        raise InputError(
            f"{target} has no complete lab namespace ({', '.join(missing)} missing)",
            fix="run `eksnet lab up`",
        )
    return found


@lab_app.command(name="exec", context_settings={"allow_interspersed_args": False})
def exec_(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="node/NAME, pod/NS/NAME or vpc")],
    command: Annotated[list[str], typer.Argument(metavar="CMD", help="the command, after --")],
) -> None:
    """Run a real command inside a lab namespace, seeing what the real node or pod sees.

    The command runs in a private mount namespace whose /run/netns names only what the real
    machine names (a node its pods' `cni-…` namespaces, a pod nothing), so `ip` prints
    `link-netns cni-…` and `link-netnsid 0` as on EKS, not the lab's `eksnet-lab-…` names.
    """
    names = LabNames.from_env()
    try:
        found = lab_target(target, names)
    except EksnetError as error:
        raise _fail(error) from None
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise _fail(InputError("no command given", fix="eksnet lab exec TARGET -- CMD..."))
    exec_inside(found, command)


@lab_app.command()
def collect(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="node/NAME")],
    output: str | None = typer.Option(
        None,
        "--output",
        help="the tarball to write (default: the collector's eks_<instance>_<time>_<version>"
        ".tar.gz in the current folder)",
    ),
) -> None:
    """Write the bundle eks-log-collector.sh would write on a lab node (its networking and
    sysctl files), running the collector's commands inside the node's namespace."""
    from datetime import UTC, datetime

    from eksnet.lab.collect import bundle_name, write_tarball
    from eksnet.lab.collect import collect as run_collector

    names = LabNames.from_env()
    now = datetime.now(UTC)
    try:
        parsed = parse_target(target)
        found = lab_target(target, names)
        state = lifecycle.lab_state(names, load_state)
        namespace = resolve_namespace(state, parsed)
        if namespace.kind != "node":
            raise InputError(f"{target} is not a node", fix="collect node/NAME")
        instance = state.vpc.instance(namespace.name)
        instance_id = instance.id if instance is not None and instance.id else namespace.name
        collected = run_collector(found, instance_id)
        path = output or bundle_name(instance_id, now)
        write_tarball(collected, path, now)
    except EksnetError as error:
        raise _fail(error) from None
    for failure in collected.failures:
        console.print(f"[yellow]warning:[/yellow] {failure}", soft_wrap=True)
    console.print(f"lab collect: {len(collected.files)} files of {target} in {path}")


# --- verify --------------------------------------------------------------------------------------


def verify_walks(
    state: DataplaneState, walks: Sequence[tuple[str, Walk]], names: LabNames | None = None
) -> list[Verdict]:
    return [verify_walk(state, walk, names, label) for label, walk in walks]


def require_lab_holds(names: LabNames, cluster: str | None) -> lifecycle.RunRecord:
    """The running lab's record, when it holds `cluster` (None: the demo); a lab built from
    another cluster is bad input, since its kernel would answer for other namespaces. Shared
    by `lab verify --cluster` and `eksnet tour --lab`."""
    record = lifecycle.read_run_file(names)
    wanted = _abspath(cluster) if cluster is not None else None
    if record.cluster != wanted:
        raise InputError(
            f"the lab up holds {record.cluster or 'the demo'}, not {cluster or 'the demo'}",
            fix="run `eksnet lab down` first",
        )
    return record


def _tour_walks(
    state: DataplaneState, wanted: Sequence[str], variant: str | None = None
) -> list[tuple[str, Walk]]:
    """The named walks, or every proven walk of the configuration the lab holds; a walk
    asked in another variant is an error: the lab's kernel holds one configuration."""
    from eksnet.walk.tour import PROVEN, in_configuration, tour_walks

    chosen = tour_walks(wanted) if wanted else list(in_configuration(PROVEN, variant))
    for tour_walk in chosen:
        if tour_walk.variant != variant:
            held = f"variant {variant!r}" if variant else "the spec without variants"
            raise InputError(
                f"{tour_walk.id} is asked under "
                + (f"variant {tour_walk.variant!r}" if tour_walk.variant else "no variant")
                + f"; the lab holds {held}",
                fix="pick walks of that configuration: "
                + ", ".join(t.id for t in in_configuration(PROVEN, variant)),
            )
    return [(f"{t.id} {t.title}", t.run(state)) for t in chosen]


def render_verdicts(verdicts: Sequence[Verdict]) -> Table:
    """One row per walk: agree, DIFFERS (every difference, naming the field) or not verified
    (and why)."""
    table = Table(title="lab verify: kernel vs simulator")
    for column in ("walk", "flow", "verdict", "where and how"):
        table.add_column(column, overflow="fold")
    for verdict in verdicts:
        if verdict.status == "not verified":
            word = "[yellow]not verified[/yellow]"
            details = [verdict.why]
        elif verdict.agree:
            word = "[green]agree[/green]"
            details = [f"{verdict.checked}; {verdict.connections} connection(s)"]
        else:
            word = "[red]DIFFERS[/red]"
            details = [
                f"{d.direction} {d.kind} @ {d.where}: expected {d.expected}, kernel {d.observed}"
                for d in verdict.differences
            ]
        details += [
            f"branch {b.label} (p={b.probability:.3f}): taken {b.connections}×"
            for b in verdict.branches
        ]
        table.add_row(verdict.label, verdict.flow, word, "\n".join(details))
    return table


@lab_app.command()
def verify(
    walks: Annotated[
        list[str] | None,
        typer.Argument(metavar="WALK", help="tour walk ids (W0 W1 …), or SRC DST"),
    ] = None,
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="destination port (with SRC DST)"
    ),
    proto: Annotated[
        LabProtocol | None,
        typer.Option("--proto", help="tcp, udp or icmp (with SRC DST; default tcp)"),
    ] = None,
    sport: int | None = typer.Option(
        None, "--sport", min=1, max=65535, help="source port (with SRC DST)"
    ),
    later: bool = typer.Option(
        False, "--later", help="also send the connection's later packet, an ACK (with SRC DST)"
    ),
    cluster: str | None = typer.Option(
        None, "--cluster", help="cluster file; builds a temporary lab when none is up"
    ),
    variant: str | None = typer.Option(
        None, "--variant", help="with a temporary lab: build it under this variant"
    ),
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="with a temporary lab: override a setting"),
    ] = None,
) -> None:
    """Send each walk's packets for real and compare with the simulator, forward and return;
    and every load balancer's health checks, the lab's real ones against the simulator's."""
    settings = tuple(overrides or ())
    names = LabNames.from_env()
    wanted = list(walks or [])
    pair = len(wanted) == 2 and all("/" in w for w in wanted)
    if not pair and (port is not None or sport is not None or proto is not None or later):
        raise _fail(
            InputError(
                "--port, --sport, --proto and --later apply to one SRC DST walk, not to tour walks",
                fix="eksnet lab verify SRC DST --port N, or tour walk ids alone",
            )
        )
    temporary = False
    try:
        if not lifecycle.lab_netns(names):
            state = load_state(cluster, variant, settings)
            with _progress() as bar:
                lifecycle.up(
                    state,
                    names,
                    cluster=cluster,
                    variant=variant,
                    overrides=settings,
                    progress=_RichProgress(bar),
                )
                lifecycle.settle(names)
            temporary = True
            held: tuple[str | None, tuple[str, ...]] = (variant, settings)
        else:
            record = (
                require_lab_holds(names, cluster)
                if cluster is not None
                else lifecycle.read_run_file(names)
            )
            if (variant is not None or settings) and (variant, settings) != (
                record.variant,
                record.overrides,
            ):
                raise InputError(
                    f"the lab up holds {record.configuration()}",
                    fix="verify the lab as it is, or `eksnet lab down` and build it again",
                )
            state = load_state(record.cluster, record.variant, record.overrides)
            held = (record.variant, record.overrides)
        if len(wanted) == 2 and all("/" in w for w in wanted):
            from eksnet.walk.engine import walk as simulate

            selected = [
                (
                    f"{wanted[0]} → {wanted[1]}",
                    simulate(
                        state,
                        wanted[0],
                        wanted[1],
                        proto=proto or "tcp",
                        dport=port,
                        sport=sport,
                        later=later,
                    ),
                )
            ]
        else:
            selected = _tour_walks(state, wanted, held[0])
        from eksnet.lab.health import check_health, render_health

        health = check_health(state, names)
        verdicts = verify_walks(state, selected, names)
    except KeyboardInterrupt:
        console.print("eksnet: interrupted", soft_wrap=True)
        raise typer.Exit(130) from None
    except EksnetError as error:
        raise _fail(error) from None
    finally:
        if temporary:
            lifecycle.down(names)
    out.print(render_verdicts(verdicts))
    out.print(render_health(health))
    failed = [v for v in verdicts if not v.agree]
    if failed or not health.agree:
        raise typer.Exit(1)


def _abspath(path: str) -> str:
    import os

    return os.path.abspath(path)


def main() -> None:  # pragma: no cover - `python -m eksnet.lab.cli` for the lab alone
    lab_app(prog_name="eksnet lab")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
