"""The `eksnet` command line: walk, exec, tour, and the lab.

Every command loads a cluster (the built-in demo `talk` unless `--cluster FILE`), runs the
controllers to get the one data-plane state, and asks its question of that state. eksnet's own
errors are one line on stderr starting `eksnet:` and a non-zero exit (2 bad input, including a
malformed command line; 3 not modelled yet; 130 interrupted), never a traceback or a usage box.
`eksnet exec` is the exception by design: the simulated tool's own failure is printed as that
tool prints it, unprefixed, with its exit status, as on a real node.

Start-up time is part of the interface (`eksnet exec` runs in loops and in talks; the goal is
12x a bare `python -c pass`), so this module imports nothing heavy when it is loaded:

* the typer app is built on first use (`build_app`; `app` is resolved lazily), each command
  imports what it needs when it runs, and help is plain text: typer's rich help boxes import
  rich and markdown-it, about 65 ms, as much again as the rest of `eksnet --help`;
* `eksnet lab` is a stand-in in the command list that imports `eksnet.lab.cli` only when a lab
  command actually runs;
* `main()` answers a plainly well-formed `eksnet exec TARGET [--cluster F] [--variant V]
  [--set K=V]… -- CMD`
  without typer (`plain_exec`): typer and the click it vendors add about 50 ms to `exec`
  (a sixth of it, measured side by side) for a command line that needs no parser to read.
  Anything less plain (`--help`, a missing argument, an unknown option) goes to typer, and
  both paths run the same `run_exec`, so behaviour and messages are typer's either way. This
  is a second reading of one command line, kept small and tested against typer's
  (tests/cli/test_usage.py); the alternative, dropping typer, would leave the other commands
  without their parser.

What `exec` still spends is mostly loading the cluster (pydantic's import and model classes)
and the views: `benchmarks/startup_bench.py --phases` prints the figures.
"""

import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

if TYPE_CHECKING:
    import typer
    from rich.console import Console
    from typer._click.exceptions import ClickException

    from eksnet.dataplane.flow_log_format import FlowLogFormat
    from eksnet.dataplane.state import DataplaneState, Observed, VpcState
    from eksnet.dataplane.targets import Target
    from eksnet.lab.names import LabNames
    from eksnet.lab.verify import Verdict
    from eksnet.state_cache import Built
    from eksnet.walk.model import Walk
    from eksnet.walk.tour import TourWalk

PROG = "eksnet"
BUILD_ON_IMPORT = 50
"""Up to this many nodes `eksnet import` also builds the state it wrote (and lays the dumps);
beyond, building every node's rules costs more than the import itself."""
HELP = "The life of a packet in Amazon EKS, simulated and proven on a real kernel."
LAB_HELP = "The lab: the same state on the real kernel."
INTERRUPTED = 130

PARAMETER_FIXES = {
    "port": "a port number from 1 to 65535, e.g. --port 80",
    "sport": "a port number from 1 to 65535, e.g. --sport 41000",
    "proto": "--proto tcp, --proto udp, --proto sctp or --proto icmp",
}
"""What to write instead, for the options whose values typer checks."""

COMMAND_WORDS = frozenset({"walk", "exec", "tour", "lab", "up", "down", "status", "verify"})
"""eksnet's command and lab sub-command names, to point at the right `--help`."""

T = TypeVar("T")


def say(message: str) -> None:
    """eksnet's one line on stderr."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def guarded(action: Callable[[], T]) -> T:
    """Run a command body; an eksnet error becomes one line on stderr and its exit code."""
    import typer

    from eksnet.errors import EksnetError

    try:
        return action()
    except EksnetError as error:
        say(error.one_line())
        raise typer.Exit(error.exit_code) from None


def load(
    cluster_file: Path | None, variant: str | None = None, overrides: Sequence[str] = ()
) -> "Built":
    """The cluster's data-plane state and the names the talk gives its nodes and pods, from
    the state cache when it holds this spec (`state_cache`: loading means pydantic)."""
    from eksnet.state_cache import load_built

    return load_built(cluster_file, variant, overrides)


# --- exec ----------------------------------------------------------------------------------------


BATCH_LIMIT = 4 * 1024 * 1024
"""The most `ip -batch` input eksnet reads (4 MiB: tens of thousands of commands)."""


def read_input(name: str) -> str:
    """`ip -batch NAME`'s input: stdin for `-`, else a regular file, at most `BATCH_LIMIT`
    bytes either way. A directory reads as empty, as for `ip` (its `freopen` succeeds and the
    first `getline` fails). A device or a pipe by name is refused rather than read without end
    (`ip` itself would read `/dev/zero` until memory runs out); for a stream, use `-`."""
    import errno
    import os
    import stat

    if name == "-":
        data = sys.stdin.buffer.read(BATCH_LIMIT + 1)
    else:
        descriptor = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            mode = os.fstat(descriptor).st_mode
            if stat.S_ISDIR(mode):
                return ""
            if not stat.S_ISREG(mode):
                raise OSError(errno.EINVAL, "not a regular file (give a file, or - for stdin)")
            with os.fdopen(descriptor, "rb", closefd=False) as handle:
                data = handle.read(BATCH_LIMIT + 1)
        finally:
            os.close(descriptor)
    if len(data) > BATCH_LIMIT:
        raise OSError(errno.EFBIG, f"more than {BATCH_LIMIT} bytes")
    return data.decode("utf-8", errors="surrogateescape")


def run_exec(
    target: str,
    command: Sequence[str],
    cluster: Path | None,
    variant: str | None,
    overrides: Sequence[str] = (),
) -> int:
    """`eksnet exec`: the simulated tool's stdout, stderr and exit status, as on the real host.
    Only the modules the command needs load; the state comes from the cache when it can."""
    from eksnet.dataplane.targets import parse_target, resolve_namespace
    from eksnet.render.exec import execute

    state = load(cluster, variant, overrides).state
    parsed = parse_target(target)
    if parsed.kind in ("lb", "ingress"):
        return _describe_load_balancer(state, parsed, command)
    namespace = resolve_namespace(state, parsed)
    result = execute(state, namespace, command, read_input)
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.stderr.flush()
    return result.status


def _describe_load_balancer(
    state: "DataplaneState", target: "Target", command: Sequence[str]
) -> int:
    """`eksnet exec lb/NS/SVC -- describe`: the load balancer as the AWS CLI describes it."""
    from eksnet.errors import InputError
    from eksnet.render.load_balancer import describe

    if list(command) != ["describe"]:
        raise InputError(
            f"{target.spec()} is a load balancer: it runs no commands",
            fix=f"eksnet exec {target.spec()} -- describe",
        )
    kind = "service" if target.kind == "lb" else "ingress"
    balancer = state.vpc.load_balancer(f"{kind}/{target.name}")
    if balancer is None:
        from eksnet.walk.engine import no_load_balancer

        raise no_load_balancer(state, f"{kind}/{target.name}")
    sys.stdout.write(describe(state, balancer))
    return 0


def _report(directory: Path, pages: "list[tuple[TourWalk, Built, Walk, Verdict | None]]") -> None:
    """`tour --html DIR`: the index and one page per walk."""
    from eksnet.dataplane.targets import parse_target, resolve_namespace
    from eksnet.errors import InputError
    from eksnet.render.exec import execute
    from eksnet.render.report import Entry, KernelSaid, index_page, walk_page
    from eksnet.render.walk_text import walk_lines

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot make {directory}: {error.strerror}", fix="name a writable directory"
        ) from None
    entries = []
    for tour_walk, built, result, verdict in pages:
        entry = Entry(tour_walk.id, tour_walk.title, tour_walk.talk, tour_walk.command())
        entries.append(entry)
        views = []
        for target, command in tour_walk.views:
            namespace = resolve_namespace(built.state, parse_target(target))
            output = execute(built.state, namespace, command.split())
            label = built.labels.get(namespace.name, target)
            views.append((f"{label}$ {command}", output.stdout + output.stderr))
        text = "\n".join(line.plain for line in walk_lines(result))
        said = None
        if verdict is not None:
            said = KernelSaid(
                verdict.status,
                verdict.why or verdict.checked,
                tuple(
                    (d.direction, d.kind, d.where, d.expected, d.observed)
                    for d in verdict.differences
                ),
            )
        page = walk_page(built.state, entry, result, text, views, said)
        _write(directory / f"{tour_walk.id}.html", page)
    _write(directory / "index.html", index_page(entries))


def _draw(
    state: "DataplaneState",
    result: "Walk",
    heading: str,
    svg: Path | None,
    html: Path | None,
    diagram: bool,
) -> None:
    """The pictures of a walk: a split one's first way (`--seed` picks another), the others
    named in the title."""
    from eksnet.render.diagram import render_html, render_svg, render_terminal
    from eksnet.render.walk_text import walk_lines

    ways = list(result.leaves())
    _, label, leaf = ways[0]
    title = heading + (f" · {label} (1 of {len(ways)} ways)" if len(ways) > 1 else "")
    if svg is not None:
        _write(svg, render_svg(state, leaf, title=title))
    if html is not None:
        text = "\n".join(line.plain for line in walk_lines(leaf))
        _write(html, render_html(state, leaf, title=title, text=text))
    if diagram:
        sys.stdout.write("\n" + render_terminal(state, leaf))


def _write(path: Path, text: str) -> None:
    from eksnet.errors import InputError

    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InputError(
            f"cannot write {path}: {error.strerror}", fix="name a writable file"
        ) from None


@dataclass(frozen=True, slots=True)
class ExecLine:
    target: str
    command: list[str]
    cluster: Path | None = None
    variant: str | None = None
    overrides: tuple[str, ...] = ()


def plain_exec(args: Sequence[str]) -> ExecLine | None:
    """`exec TARGET [--cluster F] [--variant V] [--set K=V]… [--] CMD...` when it can be read
    without doubt,
    exactly as typer reads it; None for anything else (typer then reads it, and reports what is
    wrong). Before `--`, any other word starting with `-` makes it not plain: typer passes
    unknown options through to CMD, and that is its call to make."""
    if not args or args[0] != "exec":
        return None
    options: dict[str, str] = {}
    overrides: list[str] = []
    positional: list[str] = []
    words = list(args[1:])
    while words:
        word = words.pop(0)
        if word == "--":
            positional += words
            break
        name, equals, value = word.partition("=")
        if name in ("--cluster", "--variant", "--set"):
            if not equals:
                if not words:
                    return None
                value = words.pop(0)
            if name == "--set":
                overrides.append(value)
            else:
                options[name] = value
        elif word.startswith("-"):
            return None
        else:
            positional.append(word)
    if len(positional) < 2:
        return None
    cluster = options.get("--cluster")
    return ExecLine(
        positional[0],
        positional[1:],
        Path(cluster) if cluster is not None else None,
        options.get("--variant"),
        tuple(overrides),
    )


def exec_fast(line: ExecLine) -> int:
    """`run_exec` with eksnet's errors as one line, without typer."""
    from eksnet.errors import EksnetError

    try:
        return run_exec(line.target, line.command, line.cluster, line.variant, line.overrides)
    except EksnetError as error:
        say(error.one_line())
        return error.exit_code


# --- walk and tour -------------------------------------------------------------------------------


def _not_modelled(result: "Walk") -> str | None:
    """What a walk (any branch, either direction) reached that is not modelled yet, if any."""
    for _, _, leaf in result.leaves():
        for one in (leaf, leaf.reply):
            end = one.disposition if one is not None else None
            if end is not None and end.kind == "not-modelled":
                return end.reason
    return None


def _console() -> "Console":
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _print_walk(
    result: "Walk",
    *,
    as_json: bool,
    verbose: bool,
    flow_logs: "FlowLogFormat | None" = None,
    vpc: "VpcState | None" = None,
    observed: "tuple[Observed, ...]" = (),
) -> None:
    from eksnet.render.facts import facts, facts_lines

    if as_json:
        import json

        from eksnet.render.walk_json import walk_document

        document = walk_document(result)
        if observed:
            document["facts"] = facts(result, observed)
        if flow_logs is not None and vpc is not None:
            from eksnet.render.flow_logs import document as flow_log_document

            document["flowLogs"] = flow_log_document(result, vpc, flow_logs)
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return
    from eksnet.render.walk_text import walk_renderable

    for line in facts_lines(result, observed):
        _console().print(f"[dim]{line}[/dim]")
    _console().print(walk_renderable(result, verbose=verbose))
    if flow_logs is not None and vpc is not None:
        from eksnet.render.flow_logs import text as flow_log_text

        sys.stdout.write("\n" + flow_log_text(result, vpc, flow_logs))


def _flow_log_format(option: str | None, vpc: "VpcState") -> "FlowLogFormat":
    """The flow-log format `--format` gives (its errors name the option), else the spec's."""
    from eksnet.dataplane.flow_log_format import parse_format
    from eksnet.errors import InputError

    if option is None:
        return parse_format(vpc.flow_log_format)
    try:
        return parse_format(option)
    except InputError as error:
        message = error.message.removeprefix("flow-log format: ")
        raise InputError(f"--format: {message}", fix=error.fix) from None


def _print_conntrack(result: "Walk") -> None:
    """Each namespace's conntrack table after the walk, as `conntrack -L` prints it there (for a
    split walk, after each branch)."""
    for _, label, leaf in result.leaves():
        tables = leaf.final_conntrack()
        for namespace in sorted(tables):
            heading = f"# {namespace}$ conntrack -L" + (f"   (branch {label})" if label else "")
            sys.stdout.write(heading + "\n")
            sys.stdout.write("".join(record.text + "\n" for record in tables[namespace]))


def _tour_walk(console: "Console", loaded: "Built", tour_walk: "TourWalk", verbose: bool) -> "Walk":
    from eksnet.dataplane.targets import parse_target, resolve_namespace
    from eksnet.render.exec import execute
    from eksnet.render.walk_text import walk_renderable

    console.rule(f"[bold]{tour_walk.id} — {tour_walk.title}")
    console.print(f"[dim]talk: {tour_walk.talk}[/dim]")
    for target, command in tour_walk.views:
        namespace = resolve_namespace(loaded.state, parse_target(target))
        label = loaded.labels.get(namespace.name, target)
        console.print(f"[bold]{label}$[/bold] {command}")
        # The command's own bytes, tabs included: exactly what the real command prints, its
        # error text too (a view of the talk's node may not exist in another cluster).
        output = execute(loaded.state, namespace, command.split())
        console.file.write(output.stdout + output.stderr)
        console.file.flush()
    result = tour_walk.run(loaded.state, loaded.labels)
    from eksnet.render.facts import facts_lines

    for line in facts_lines(result, loaded.state.observed):
        console.print(f"[dim]{line}[/dim]")
    console.print(walk_renderable(result, verbose=verbose, title=f"{tour_walk.id}"))
    return result


def _tour_with_lab(
    console: "Console",
    loaded: "Built",
    selected: "list[TourWalk]",
    verbose: bool,
    cluster: Path | None,
    settings: tuple[str, ...] = (),
    pages: "list[tuple[TourWalk, Built, Walk, Verdict | None]] | None" = None,
) -> bool:
    """Each walk, then the kernel's verdict on it; builds a temporary lab when none is up, and
    refuses a lab that holds another cluster than the one walked. `pages` collects each walk
    and its verdict for a report."""
    from eksnet.lab import lifecycle
    from eksnet.lab.cli import render_verdicts, require_lab_holds, verify_walk
    from eksnet.lab.names import LabNames

    names = LabNames.from_env()
    temporary = not lifecycle.lab_netns(names)
    source = str(cluster) if cluster is not None else None
    if not temporary:
        record = require_lab_holds(names, source)
        if (record.variant, record.overrides) != (None, settings):
            from eksnet.errors import InputError

            raise InputError(
                f"the lab up holds {record.configuration()}",
                fix="run the tour with the same --set, or `eksnet lab down` first",
            )
    try:
        if temporary:
            console.print("[dim]lab: building the cluster in network namespaces…[/dim]")
            lifecycle.up(loaded.state, names, cluster=source, overrides=settings)
            lifecycle.settle(names)
        agreed = True
        for tour_walk in selected:
            if tour_walk.variant is not None:
                walked = _tour_variant_with_lab(
                    console, tour_walk, verbose, cluster, settings, names, pages
                )
                agreed = agreed and walked
                continue
            result = _tour_walk(console, loaded, tour_walk, verbose)
            verdict = verify_walk(loaded.state, result, names, f"{tour_walk.id} on the kernel")
            console.print(render_verdicts([verdict]))
            agreed = agreed and verdict.agree
            if pages is not None:
                pages.append((tour_walk, loaded, result, verdict))
        return agreed
    finally:
        if temporary:
            lifecycle.down(names)


def _tour_variant_with_lab(
    console: "Console",
    tour_walk: "TourWalk",
    verbose: bool,
    cluster: Path | None,
    settings: tuple[str, ...],
    names: "LabNames",
    pages: "list[tuple[TourWalk, Built, Walk, Verdict | None]] | None",
) -> bool:
    """A walk asked in one of the spec's variants (W10c through the NAT gateway …): walked
    and proven in a lab of that configuration, built for it beside the main one (its prefix
    extends the main lab's with the variant's name) and taken down after it."""
    from eksnet.lab import lifecycle
    from eksnet.lab.cli import render_verdicts, verify_walk
    from eksnet.lab.names import LabNames

    variant = tour_walk.variant
    assert variant is not None
    built = load(cluster, variant, settings)
    lab = LabNames(f"{names.prefix}{variant.lower()}-", run_dir=names.run_dir)
    source = str(cluster) if cluster is not None else None
    console.print(f"[dim]lab: building the {variant} configuration…[/dim]")
    try:
        lifecycle.up(built.state, lab, cluster=source, variant=variant, overrides=settings)
        lifecycle.settle(lab)
        result = _tour_walk(console, built, tour_walk, verbose)
        verdict = verify_walk(built.state, result, lab, f"{tour_walk.id} on the kernel")
        console.print(render_verdicts([verdict]))
        if pages is not None:
            pages.append((tour_walk, built, result, verdict))
        return verdict.agree
    finally:
        lifecycle.down(lab)


def _derived_state(
    cluster: Path | None, variant: str | None, overrides: Sequence[str]
) -> "DataplaneState":
    """The state the controllers derive from the spec, without its nodes' dumps."""
    from eksnet.controllers import build_state
    from eksnet.model import load_cluster

    return build_state(load_cluster(cluster, variant=variant, overrides=overrides))


def _print_explanation(
    cluster: Path | None,
    variant: str | None,
    overrides: Sequence[str],
    loaded: "Built",
    run: "Callable[[DataplaneState], Walk]",
    result: "Walk",
) -> None:
    from eksnet.diagnose.explain import explain

    derived = _derived_state(cluster, variant, overrides) if loaded.state.observed else loaded.state
    for line in explain(run, result, derived, loaded.state):
        _console().print(line)


# --- the typer app -------------------------------------------------------------------------------


def build_app() -> "typer.Typer":
    """The typer app: `walk`, `exec`, `tour`, and `lab` mounted as a stand-in.

    Built here rather than at import so that loading this module costs nothing; the annotations
    are evaluated where they are written (this module does not postpone them), because typer
    reads them from the functions it is given.
    """
    import typer
    from typer.core import TyperGroup

    from eksnet.walk.model import Protocol

    class LabStandIn(TyperGroup):
        """`eksnet lab` as listed by `eksnet --help`; the lab's own group, and with it the lab,
        is built only when `eksnet lab …` runs."""

        def make_context(
            self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
        ) -> Any:
            from eksnet.lab.cli import lab_app

            real = typer.main.get_group(lab_app)
            return real.make_context(info_name, args, parent=parent, **extra)

    class Eksnet(TyperGroup):
        """The top group: mounts the lab stand-in, and turns an interrupt into one line."""

        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            self.add_command(LabStandIn(name="lab", help=LAB_HELP, rich_markup_mode=None))

        def invoke(self, ctx: Any) -> Any:
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:
                say("interrupted")
                raise typer.Exit(INTERRUPTED) from None

    app = typer.Typer(
        name=PROG,
        help=HELP,
        cls=Eksnet,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    cluster_option = typer.Option(
        "--cluster", help="Cluster spec YAML (default: the built-in demo `talk`)."
    )
    variant_option = typer.Option("--variant", help="A what-if variant declared in the spec.")
    set_option = typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override one setting of the spec (repeatable), e.g. "
        "--set nodeDefaults.imds.hopLimit=2.",
    )

    @app.command("walk")
    def walk_command(
        src: Annotated[
            str, typer.Argument(metavar="SRC", help="pod/NS/NAME, node/NAME or ip/ADDR")
        ],
        dst: Annotated[
            str,
            typer.Argument(
                metavar="DST",
                help="pod/NS/NAME, node/NAME, ip/ADDR, svc/NS/NAME (a Service), lb/NS/SERVICE (its "
                "load balancer), ingress/NS/NAME (its ALB) or dns/NAME",
            ),
        ],
        port: Annotated[
            int | None, typer.Option("--port", min=1, max=65535, help="Destination port.")
        ] = None,
        sport: Annotated[
            int | None,
            typer.Option("--sport", min=1, max=65535, help="Source port (default 41000)."),
        ] = None,
        proto: Annotated[Protocol, typer.Option("--proto", help="tcp, udp, sctp or icmp.")] = "tcp",
        cluster: Annotated[Path | None, cluster_option] = None,
        variant: Annotated[str | None, variant_option] = None,
        overrides: Annotated[list[str] | None, set_option] = None,
        as_json: Annotated[bool, typer.Option("--json", help="The walk as JSON.")] = False,
        verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Every step.")] = False,
        no_return: Annotated[bool, typer.Option("--no-return", help="Forward only.")] = False,
        seed: Annotated[
            int | None,
            typer.Option(
                "--seed", help="Of a load-balanced walk, show the one way this seed picks."
            ),
        ] = None,
        show_conntrack: Annotated[
            bool,
            typer.Option(
                "--show-conntrack", help="Then each node's entries, as `conntrack -L` lists them."
            ),
        ] = False,
        again: Annotated[
            bool,
            typer.Option(
                "--again",
                help="Then the same client's next connection (source port + 1, a second "
                "later), with the state the first left: ClientIP session affinity sticks.",
            ),
        ] = False,
        later: Annotated[
            bool,
            typer.Option(
                "--later",
                help="Then the source's next packet of the same connection (a TCP ACK), once "
                "the reply arrived: it skips the nat table, so only conntrack and mangle rules "
                "steer it.",
            ),
        ] = False,
        flow_logs: Annotated[
            bool,
            typer.Option(
                "--flow-logs",
                help="Then the VPC flow-log records every ENI on the way writes.",
            ),
        ] = False,
        log_format: Annotated[
            str | None,
            typer.Option(
                "--format",
                metavar="FORMAT",
                help="The flow-log format ('${version} ${srcaddr} …'; default: the spec's).",
            ),
        ] = None,
        az: Annotated[
            str | None,
            typer.Option("--az", help="The load balancer node's zone the client picks."),
        ] = None,
        host: Annotated[
            str | None, typer.Option("--host", help="The HTTP Host an ALB reads.")
        ] = None,
        path: Annotated[
            str | None, typer.Option("--path", help="The HTTP path an ALB reads (default /).")
        ] = None,
        svg: Annotated[
            Path | None,
            typer.Option("--svg", metavar="FILE", help="Also draw the walk as SVG into FILE."),
        ] = None,
        html: Annotated[
            Path | None,
            typer.Option(
                "--html", metavar="FILE", help="Also write a self-contained page: diagram and text."
            ),
        ] = None,
        diagram: Annotated[
            bool, typer.Option("--diagram", help="Print a terminal sketch of the path.")
        ] = False,
        explain: Annotated[
            bool,
            typer.Option(
                "--explain",
                help="Then why it ends so: the first decision where the imported nodes part "
                "from what their controllers would write, what would have happened, the fix.",
            ),
        ] = False,
    ) -> None:
        """Walk a packet from SRC to DST, forward and back."""

        def body() -> None:
            from eksnet.errors import InputError, NotModelled
            from eksnet.walk.engine import walk as run_walk

            if log_format is not None and not flow_logs:
                raise InputError("--format is the flow logs' format", fix="add --flow-logs")
            for picture in (svg, html):
                if picture is not None and not picture.parent.is_dir():
                    raise InputError(
                        f"cannot write {picture}: no directory {picture.parent}",
                        fix="name a file in an existing directory",
                    )
            loaded = load(cluster, variant, overrides or ())
            fmt = _flow_log_format(log_format, loaded.state.vpc) if flow_logs else None
            result = run_walk(
                loaded.state,
                src,
                dst,
                proto=proto,
                dport=port,
                sport=sport,
                labels=loaded.labels,
                with_reply=not no_return,
                again=again,
                later=later,
                az=az,
                host=host,
                path=path,
            )
            if seed is not None and result.branches:
                import random

                label, result = result.leaf_at(random.Random(seed).random())
                if not as_json:
                    _console().print(f"[dim]seed {seed} picks the branch {label}[/dim]")
            _print_walk(
                result,
                as_json=as_json,
                verbose=verbose,
                flow_logs=fmt,
                vpc=loaded.state.vpc,
                observed=loaded.state.observed,
            )
            if show_conntrack and not as_json:
                _print_conntrack(result)
            if svg is not None or html is not None or diagram:
                _draw(loaded.state, result, f"{src} → {dst}", svg, html, diagram)
            if explain and not as_json:

                def again_on(state: "DataplaneState") -> "Walk":
                    return run_walk(
                        state, src, dst, proto=proto, dport=port, sport=sport,
                        labels=loaded.labels, with_reply=not no_return, again=again,
                        later=later, az=az, host=host, path=path,
                    )  # fmt: skip

                _print_explanation(cluster, variant, overrides or (), loaded, again_on, result)
            missing = _not_modelled(result)
            if missing is not None:
                # The walk got as far as eksnet models (stdout shows how far); the one line on
                # stderr and the exit status say what is missing, as for any exit 3.
                say(NotModelled(missing).one_line())
                raise typer.Exit(NotModelled.exit_code)

        guarded(body)

    @app.command(
        "exec",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def exec_command(
        target: Annotated[str, typer.Argument(metavar="TARGET", help="node/NAME or pod/NS/NAME")],
        command: Annotated[list[str], typer.Argument(metavar="CMD", help="The command, after --.")],
        cluster: Annotated[Path | None, cluster_option] = None,
        variant: Annotated[str | None, variant_option] = None,
        overrides: Annotated[list[str] | None, set_option] = None,
    ) -> None:
        """Print what CMD prints in TARGET's namespace, from the simulated state.

        A failing command prints the real tool's error and exits with its status."""
        status = guarded(lambda: run_exec(target, command, cluster, variant, overrides or ()))
        if status:
            raise typer.Exit(status)

    @app.command("import")
    def import_command(
        inputs: Annotated[
            list[Path],
            typer.Argument(
                metavar="INPUT...",
                help="eks-log-collector bundles (.tar.gz or unpacked), plain dump folders, "
                "kubectl and aws JSON",
            ),
        ],
        output: Annotated[
            Path, typer.Option("--output", "-o", metavar="FILE", help="The spec to write.")
        ],
        cluster: Annotated[
            Path | None,
            typer.Option(
                "--cluster",
                help="The spec to start from; the JSON inputs replace the parts they state "
                "(default: none with JSON inputs, else the built-in demo `talk`).",
            ),
        ] = None,
    ) -> None:
        """Build a cluster spec from what you already have: each node's dump is matched to
        its node and named under `observed:`, so every command run with `--cluster FILE` uses
        what the node holds instead of what the controllers would write."""

        def body() -> None:
            from eksnet.importers.importing import run, summary
            from eksnet.model.load import demo_text, read_spec

            if not output.parent.is_dir():
                from eksnet.errors import InputError

                raise InputError(
                    f"cannot write {output}: no directory {output.parent}",
                    fix="name a file in an existing directory",
                )
            from eksnet.importers.importing import is_dump

            text: str | None
            if cluster is not None:
                text, name = read_spec(cluster, str(cluster)), str(cluster)
            elif all(is_dump(path) for path in inputs):
                text, name = demo_text()
            else:
                text, name = None, "none (the JSON inputs)"
            console = _console()
            with console.status("importing…") as status:
                report = run(
                    inputs,
                    output,
                    text,
                    name,
                    progress=lambda what: status.update(f"reading {what}"),
                )
            # the spec written must load as every command will read it: checked, built and its
            # dumps laid over their nodes; a big cluster's build is left to the first command
            # (checking the spec itself is what an import can afford there)
            from eksnet.model import load_cluster

            checked = load_cluster(output)
            if len(checked.nodes) <= BUILD_ON_IMPORT:
                load(output, None, ())
            for line in summary(report):
                console.print(line)
            if len(checked.nodes) > BUILD_ON_IMPORT:
                console.print(
                    f"  the spec is checked; with {len(checked.nodes)} nodes its state is built "
                    "(and the dumps laid over it) by the first command that reads it"
                )

        guarded(body)

    @app.command("check")
    def check_command(
        cluster: Annotated[Path | None, cluster_option] = None,
        as_json: Annotated[bool, typer.Option("--json", help="The findings as JSON.")] = False,
    ) -> None:
        """Compare each imported node's dump with what its controllers would write: missing or
        extra rules, routes, tables, iptables rules, sysctls, neighbours, each with the walks it
        breaks and the fix. Exit status 1 when any finding is an error."""

        def body() -> int:
            from eksnet.diagnose.drift import check, unobserved

            loaded = load(cluster, None, ())
            if not loaded.state.observed:
                from eksnet.errors import InputError

                raise InputError(
                    "this spec names no node dumps: there is nothing observed to check",
                    fix="eksnet import BUNDLE... --output FILE, then eksnet check --cluster FILE",
                )
            found = check(_derived_state(cluster, None, ()), loaded.state)
            if as_json:
                import json

                document = {
                    "schema": "eksnet.check/1",
                    "nodes": [
                        {"node": r.namespace, "dump": r.dump, "parts": dict(r.parts)}
                        for r in loaded.state.observed
                    ],
                    "findings": [
                        {
                            "node": f.node, "kind": f.kind, "object": f.object,
                            "difference": f.difference, "severity": f.severity,
                            "detail": f.detail, "owner": f.owner, "fix": list(f.fix),
                            "breaks": list(f.breaks), "changes": list(f.changes),
                        }
                        for f in found
                    ],
                }  # fmt: skip
                sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
            else:
                console = _console()
                for record in loaded.state.observed:
                    mine = [f for f in found if f.node == record.namespace]
                    compared = [part for part, _ in record.parts]
                    compared += ["addresses"] if record.addresses is not None else []
                    parts = ", ".join(compared) or "nothing"
                    console.print(
                        f"[bold]{record.namespace}[/bold] ({record.dump}; compared: {parts}): "
                        + (f"{len(mine)} finding(s)" if mine else "as its controllers write it")
                    )
                    for f in mine:
                        console.print(
                            f"  {f.severity.upper()} {f.kind} {f.difference}: "
                            f"{f.object.replace(chr(9), ' ')}"
                        )
                        console.print(f"    {f.detail.replace(chr(9), ' ')}; written by {f.owner}")
                        if f.breaks:
                            console.print(f"    breaks: {', '.join(f.breaks)}")
                        if f.changes:
                            console.print(
                                f"    decides differently (same outcome): {len(f.changes)} "
                                f"walk(s): {', '.join(f.changes[:6])}"
                                + (" …" if len(f.changes) > 6 else "")
                            )
                        for command in f.fix:
                            console.print(f"    fix: {command.replace(chr(9), ' ')}")
                for record in unobserved(loaded.state):
                    console.print(f"{record.namespace}: not compared: {'; '.join(record.assumed)}")
            return 1 if any(f.severity == "error" for f in found) else 0

        status = guarded(body)
        if status:
            raise typer.Exit(status)

    @app.command("tour")
    def tour_command(
        cluster: Annotated[Path | None, cluster_option] = None,
        overrides: Annotated[list[str] | None, set_option] = None,
        verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Every step.")] = False,
        lab: Annotated[
            bool, typer.Option("--lab", help="Prove each walk on the real kernel (root).")
        ] = False,
        only: Annotated[
            list[str] | None, typer.Option("--walk", help="Only these walk ids.")
        ] = None,
        html: Annotated[
            Path | None,
            typer.Option(
                "--html", metavar="DIR", help="Also write a self-contained report into DIR."
            ),
        ] = None,
    ) -> None:
        """The talk's walks in talk order, forward and return; with --lab each is proven on the
        kernel (a walk of one of the spec's variants in a lab of that configuration, built for
        it), together with the walks beyond the talk (X1–X14); --walk picks any of them."""

        def body() -> None:
            from eksnet.walk.tour import PROVEN, TOUR, tour_walks

            settings = tuple(overrides or ())
            if only:
                selected = tour_walks(only)
            elif lab:
                selected = list(PROVEN)
            else:
                selected = list(TOUR)
            loaded = load(cluster, None, settings)
            console = _console()
            pages: list[tuple[TourWalk, Built, Walk, Verdict | None]] = []
            if lab:
                agreed = _tour_with_lab(
                    console, loaded, selected, verbose, cluster, settings, pages
                )
                if html is not None:
                    _report(html, pages)
                if not agreed:
                    raise typer.Exit(1)
                return
            for tour_walk in selected:
                # A walk asked in one of the spec's variants is walked in that configuration.
                state = load(cluster, tour_walk.variant, settings) if tour_walk.variant else loaded
                walked = _tour_walk(console, state, tour_walk, verbose)
                pages.append((tour_walk, state, walked, None))
            if html is not None:
                _report(html, pages)

        guarded(body)

    return app


_APP: "typer.Typer | None" = None


def get_app() -> "typer.Typer":
    """The one typer app of this process."""
    global _APP
    if _APP is None:
        _APP = build_app()
    return _APP


def __getattr__(name: str) -> Any:
    """`eksnet.cli.app`, built when first asked for (tests drive it with typer's CliRunner)."""
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the entry point -----------------------------------------------------------------------------


def _given(args: Sequence[str], opts: Sequence[str]) -> str | None:
    """The value last written for one of `opts` (`--port 80` or `--port=80`)."""
    value: str | None = None
    for index, word in enumerate(args):
        for opt in opts:
            if word == opt and index + 1 < len(args):
                value = args[index + 1]
            elif word.startswith(opt + "="):
                value = word[len(opt) + 1 :]
    return value


def usage_error_line(error: "ClickException", args: Sequence[str]) -> str:
    """typer's complaint about the command line as eksnet's one line: what is wrong and the
    fix (the option's accepted values, the commands there are, or the usage)."""
    from typer._click.exceptions import BadOptionUsage, BadParameter, UsageError
    from typer.core import TyperGroup

    message = " ".join(error.format_message().split()).replace("Value error, ", "")
    message = message[:1].lower() + message[1:].rstrip(".")
    path = [PROG, *[word for word in args[:2] if word in COMMAND_WORDS]]
    fix = f"see `{' '.join(path)} --help`"
    if isinstance(error, BadOptionUsage):
        fix = PARAMETER_FIXES.get(error.option_name.lstrip("-").replace("-", "_"), fix)
    if isinstance(error, BadParameter) and error.param is not None:
        param = error.param
        value = _given(args, [opt for opt in param.opts if opt.startswith("-")])
        if value is not None and f"{value!r}" not in message:
            message = f"{message} (got {value!r})"
        fix = PARAMETER_FIXES.get(param.name or "", fix)
    if isinstance(error, UsageError) and error.ctx is not None and fix.startswith("see"):
        ctx = error.ctx
        if isinstance(ctx.command, TyperGroup):
            commands = ", ".join(ctx.command.list_commands(ctx))
            fix = f"one of {commands}; see `{ctx.command_path} --help`"
        else:
            usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
            usage = usage.replace("{", "").replace("}", "")
            fix = f"{usage}; see `{ctx.command_path} --help`"
    return f"{PROG}: {message} (fix: {fix})"


def run_typer(args: Sequence[str]) -> int:
    """The typer app on `args`, every complaint about the command line made one line."""
    import typer
    from typer._click.exceptions import ClickException

    command = typer.main.get_command(get_app())
    try:
        status = command.main(args=list(args), prog_name=PROG, standalone_mode=False)
    except ClickException as error:
        sys.stderr.write(usage_error_line(error, args) + "\n")
        return 2
    except typer.Abort:
        say("aborted")
        return 1
    return status if isinstance(status, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `eksnet` script: the exit status of the command `argv` (default: `sys.argv[1:]`)."""
    # Die quietly on a closed pipe (`eksnet exec … | head -1`), as the real tools do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        line = plain_exec(args)
        if line is not None:
            return exec_fast(line)
        return run_typer(args)
    except KeyboardInterrupt:
        say("interrupted")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
