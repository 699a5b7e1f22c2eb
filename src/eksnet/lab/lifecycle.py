"""`lab up`, `lab down`, `lab status`: build the plan into namespaces, and take it all away.

Everything the lab creates is inside a namespace whose name starts with the lab prefix (links are
created straight into their namespaces, nothing is configured in the host). Which namespaces
belong to a lab is decided by `members`, from two sources:

* the run file (`LabNames.run_file`), which `up` writes, atomically, before it creates anything:
  the exact names of every namespace the plan creates. A crash before it is written has created
  nothing; a crash after it leaves a file naming everything that can exist.
* the prefix, for what no run file records (the run file was removed by hand, or the namespaces
  were made by `build_plan` without `up`): such a name belongs to the longest prefix matching it
  among this lab's and those of the labs that have a run file.

So `eksnet lab down` with the default prefix `eksnet-lab-` removes its own lab and unclaimed
leftovers, but not a test run's `eksnet-lab-t42-…` lab, which that run's file claims; and never a
namespace another run file records. A run file is removed only by a `down` that left nothing of
its lab, so a run file present means a lab that is up, being built, or crashed and waiting for its
own `down`. `up` itself cleans up when interrupted (Ctrl-C or SIGTERM) or when a step fails.

`netlink` is imported by the functions that use it, not at the top: it brings in pyroute2, a
tenth of a second to import, and `lab exec`, `lab status` and `lab down` import this module
without configuring anything.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType

from eksnet.dataplane.state import DataplaneState, Iptables
from eksnet.lab import system
from eksnet.lab.attachments import attachments
from eksnet.lab.fabric import FabricPlan
from eksnet.lab.names import LabNames, prefix_of_run_file
from eksnet.lab.plan import LabPlan, NamespacePlan, build_plan
from eksnet.lab.system import LabError

RESTORE = {"legacy": "iptables-legacy-restore", "nft": "iptables-nft-restore"}
SAVE = {"legacy": "iptables-legacy-save", "nft": "iptables-nft-save"}


class Progress:
    """What `up`/`down` report while they work; the CLI renders it with rich, tests ignore it."""

    def phase(self, name: str, total: int) -> None:
        """A new phase with `total` steps starts."""

    def advance(self, steps: int = 1) -> None:
        """Steps of the current phase are done."""


@dataclass(slots=True)
class Timings:
    """Busy seconds per phase (phases of a pipeline overlap) and the wall-clock total."""

    phases: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return self.wall or sum(self.phases.values())


# --- up -----------------------------------------------------------------------------------------


def up(
    state: DataplaneState,
    names: LabNames,
    *,
    cluster: str | None = None,
    variant: str | None = None,
    overrides: tuple[str, ...] = (),
    progress: Progress | None = None,
    keep_on_error: bool = False,
) -> Timings:
    """Build the lab for `state`; on any failure or interruption, remove what was built."""
    system.require_capabilities()
    existing = lab_netns(names)
    if existing:
        raise LabError(
            f"a lab with prefix {names.prefix!r} is already up ({len(existing)} namespaces); "
            "run `eksnet lab down` first"
        )
    report = progress or Progress()
    plan = build_plan(state, names)
    # A planned name that exists but is not this lab's is one another lab's run file records:
    # creating it would fail, and the cleanup after that failure must not touch it, so refuse
    # before anything is created.
    taken = sorted(set(planned_netns(plan)) & set(system.list_netns()))
    if taken:
        raise LabError(
            f"namespaces this lab would create exist and belong to another lab: {', '.join(taken)}"
        )
    timings = Timings()
    checkpoint("planned")
    write_run_file(names, plan, cluster, variant, overrides)
    try:
        with _sigterm_as_interrupt():
            apply_plan(plan, report, timings)
    except BaseException:
        if not keep_on_error:
            down(names)
        raise
    return timings


CHECKPOINT_ENV = "EKSNET_LAB_TEST_STOP"


def checkpoint(name: str, *, reach: Callable[[], None] | None = None) -> None:
    """Crash tests stop `up` here (`$EKSNET_LAB_TEST_STOP=name`) to SIGKILL or Ctrl-C it at a
    known point, after `reach` (waiting for what the point promises); a no-op otherwise."""
    if os.environ.get(CHECKPOINT_ENV) == name:
        if reach is not None:
            reach()
        print(f"eksnet-lab-checkpoint {name}", file=sys.stderr, flush=True)
        time.sleep(3600)


def apply_plan(plan: LabPlan, progress: Progress, timings: Timings) -> None:
    """`plan.steps` as a pipeline: this thread runs each step's host `ip -batch`, and one worker
    configures the namespaces of the steps already created, in order, each from inside it
    (`netlink.py`), while the next step is being created.

    One worker, not many: configuring holds the kernel's RTNL lock for nearly all its work, and
    a write to `ip_forward` restarts its syscall while another thread holds that lock, so
    parallel workers only contend (measured on the benchmark: 1,000 pods configured in 0.55 s
    from one thread, 1.2 s from eight). Creating a namespace, by contrast, does much of its
    work outside that lock, which is what the pipeline overlaps."""
    checkpoint("start")
    start = time.perf_counter()
    progress.phase("build namespaces", len(plan.netns_names()))
    with tempfile.TemporaryDirectory(prefix="eksnet-lab-") as locks:
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eksnet-lab-configure")
        pending: list[Future[None]] = []

        def configure(item: NamespacePlan | FabricPlan) -> None:
            with timings.measure("configure"):
                _configure(item, locks)
            progress.advance()

        try:
            for number, step in enumerate(plan.steps):
                with timings.measure("create (host ip -batch)"):
                    system.ip_batch(None, step.host_batch)
                if number == 0:
                    checkpoint("links")
                pending.extend(worker.submit(configure, item) for item in step.configure)
                _raise_first_failure(pending)
                if number == len(plan.steps) // 2:
                    checkpoint("half-configured", reach=functools.partial(_wait, pending))
            _wait(pending)
        finally:
            worker.shutdown(wait=True, cancel_futures=True)
    timings.wall = time.perf_counter() - start
    checkpoint("configured")


def _raise_first_failure(futures: list[Future[None]]) -> None:
    for future in futures:
        if future.done() and future.exception() is not None:
            future.result()


def _wait(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result()


def _configure(item: NamespacePlan | FabricPlan, locks: str) -> None:
    if isinstance(item, FabricPlan):
        configure_fabric(item)
    else:
        configure_namespace(item, locks)


def configure_namespace(plan: NamespacePlan, locks: str) -> None:
    """From a thread inside the namespace: sysctls (all/default first, as the state orders
    them), the rtnetlink requests, the nfacct objects, iptables-restore with the node's
    backend, and an attachment's nft ruleset."""
    from eksnet.lab import netlink  # here, not at the top: see the module docstring

    with netlink.entered(plan.netns):
        netlink.write_sysctls(plan.sysctls)
        netlink.apply(plan.ops, plan.netns)
        for argv in plan.nfacct:
            system.run(list(argv))
        if plan.iptables is not None:
            restore_iptables(plan.netns, plan.iptables, locks)
        if plan.nft:
            system.run(["nft", "-f", "-"], stdin=plan.nft)


def restore_iptables(netns: str, iptables: Iptables, locks: str) -> None:
    """`iptables-restore` of the pinned backend, started from a thread inside the namespace (so
    the process is born there). Each namespace gets its own xtables lock file: the legacy lock is
    a host-wide flock that would serialize namespaces whose tables are independent anyway."""
    text = iptables.save if iptables.save.endswith("\n") else iptables.save + "\n"
    env = dict(os.environ, XTABLES_LOCKFILE=os.path.join(locks, f"{netns}.lock"))
    system.run([RESTORE[iptables.backend], "-w"], stdin=text, env=env)


def configure_fabric(plan: FabricPlan) -> None:
    """The fabric's bridge and nftables need `ip`, `bridge` and `nft` (three processes, once)."""
    from eksnet.lab import netlink  # here, not at the top: see the module docstring

    with netlink.entered(plan.netns):
        netlink.write_sysctls(plan.sysctls, ignore_missing=True)
        system.ip_batch(None, plan.ip_batch)
        if plan.bridge_batch:
            system.run(["bridge", "-batch", "-"], stdin="\n".join(plan.bridge_batch) + "\n")
        system.run(["nft", "-f", "-"], stdin=plan.nft)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM during `up` cleans up like Ctrl-C does (SIGKILL cannot: `down` handles that).

    A SIGTERM the parent set to ignored stays ignored, as Python leaves an ignored SIGINT: a
    supervisor that started `up` that way asked for it, and the lab is then removed by `down`."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def settle(names: LabNames, *, progress: Progress | None = None, timeout: float = 5.0) -> float:
    """Wait until no IPv6 address in the lab is still `tentative` (duplicate address detection
    takes about a second after a link comes up). A real node has long finished DAD, and `ip addr`
    in the lab must not print `tentative` where the simulator does not. Returns the seconds
    waited."""
    start = time.perf_counter()
    pending = list(lab_netns(names))
    report = progress or Progress()
    report.phase("IPv6 DAD", len(pending))
    while pending:
        busy = system.parallel(_tentative, pending)
        done = [ns for ns, is_busy in zip(pending, busy, strict=True) if not is_busy]
        report.advance(len(done))
        pending = [ns for ns, is_busy in zip(pending, busy, strict=True) if is_busy]
        if pending:
            if time.perf_counter() - start > timeout:
                raise LabError(f"IPv6 DAD did not finish in {timeout} s in: {', '.join(pending)}")
            time.sleep(0.1)
    return time.perf_counter() - start


def _tentative(netns: str) -> bool:
    from eksnet.lab import netlink  # here, not at the top: see the module docstring

    with netlink.entered(netns):
        return netlink.tentative_addresses() > 0


# --- down ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """What one run file says: the lab with `prefix` owns exactly `namespaces`."""

    prefix: str
    namespaces: frozenset[str]


def members(prefix: str, present: Iterable[str], claims: Iterable[Claim]) -> tuple[str, ...]:
    """The namespaces among `present` that belong to the lab with `prefix`, given every run
    file's claim (this lab's own included, if it has one).

    A name some run file records belongs to that lab alone; a name two run files record belongs
    to neither (two labs cannot both have created it, and deleting the other one's namespace is
    the worse mistake). A name no run file records belongs to the longest prefix that matches it
    among this lab's and the claiming labs': a leftover of this lab, unless a lab whose prefix
    extends this one's is up (or crashed and not yet taken down) and so claims it."""
    claims = tuple(claims)
    recorded_by: dict[str, set[str]] = {}
    for claim in claims:
        for netns in claim.namespaces:
            recorded_by.setdefault(netns, set()).add(claim.prefix)
    prefixes = {claim.prefix for claim in claims} | {prefix}
    found: list[str] = []
    for netns in present:
        owners = recorded_by.get(netns)
        if owners is not None:
            if owners == {prefix}:
                found.append(netns)
            continue
        matching = [p for p in prefixes if netns.startswith(p)]
        if prefix in matching and max(matching, key=len) == prefix:
            found.append(netns)
    return tuple(found)


def claims(names: LabNames) -> tuple[Claim, ...]:
    """Every run file in `names.run_dir`. A run file that cannot be read still claims by its
    prefix (its name carries it), so a damaged file never exposes another lab to this `down`."""
    try:
        files = sorted(os.listdir(names.run_dir))
    except FileNotFoundError:
        return ()
    found: list[Claim] = []
    for file_name in files:
        prefix = prefix_of_run_file(file_name)
        if prefix is None:
            continue
        try:
            record = _load(os.path.join(names.run_dir, file_name))
        except (OSError, ValueError, LabError):
            found.append(Claim(prefix, frozenset()))
            continue
        found.append(Claim(record.prefix, frozenset(record.recorded)))
    return tuple(found)


def lab_netns(names: LabNames) -> tuple[str, ...]:
    """The namespaces that exist and belong to this lab (`members`).

    The namespaces are listed before the run files are read: `up` writes its run file before it
    creates a namespace, so every namespace seen here has its claim on disk by the time the
    claims are read, and a lab being built next to this one is never mistaken for leftovers."""
    present = system.list_netns()
    return members(names.prefix, present, claims(names))


def down(names: LabNames, *, progress: Progress | None = None) -> int:
    """Delete every namespace of this lab (and whatever runs in it); return how many. The run
    file goes last, and only when nothing of the lab is left: while it exists it keeps the lab's
    namespaces from being taken for another lab's leftovers."""
    report = progress or Progress()
    doomed = lab_netns(names)
    report.phase("remove namespaces", len(doomed) + 1)
    kill_processes(doomed)
    if doomed:
        system.run(
            ["ip", "-force", "-batch", "-"],
            stdin="".join(f"netns delete {ns}\n" for ns in doomed),
            check=False,
        )
    left = lab_netns(names)
    report.advance(len(doomed) + 1)
    if left:
        raise LabError(f"could not delete: {', '.join(left)}")
    _remove_run_file(names)
    return len(doomed)


def kill_processes(netns: tuple[str, ...]) -> None:
    """SIGKILL, by pid, every process living in one of these namespaces (listeners, captures)."""
    for pid in system.netns_pids(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- the run file: which namespaces and which cluster the lab holds ------------------------------


def planned_netns(plan: LabPlan) -> tuple[str, ...]:
    """Every namespace `plan` creates: its nodes and pods, the fabric, and the attachments
    (internet, IMDS, NAT gateways)."""
    return plan.netns_names()


def write_run_file(
    names: LabNames,
    plan: LabPlan,
    cluster: str | None = None,
    variant: str | None = None,
    overrides: tuple[str, ...] = (),
) -> None:
    """Record the lab's exact namespaces (and cluster: its file, variant and `--set`
    overrides) before any of them exists. Written to a
    temporary file and renamed, so a crash leaves either no run file or a whole one, never a
    truncated file whose claim would be lost. Public for tests that build a plan by hand and
    must claim its names like `up` does."""
    os.makedirs(names.run_dir, exist_ok=True)
    record = {
        "prefix": names.prefix,
        "cluster": os.path.abspath(cluster) if cluster else None,
        "variant": variant,
        "overrides": list(overrides),
        "created": time.time(),
        "namespaces": {ns.state_name: ns.netns for ns in (*plan.namespaces, *plan.attachments)},
        "fabric": plan.fabric.netns,
    }
    temporary = f"{names.run_file}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    os.replace(temporary, names.run_file)


def _remove_run_file(names: LabNames) -> None:
    """The run file, and the temporary files of a `write_run_file` that crashed before its
    rename (they end in `.tmp`, so `claims` never reads them)."""
    base = os.path.basename(names.run_file)
    with contextlib.suppress(FileNotFoundError):
        leftovers = [f for f in os.listdir(names.run_dir) if f.startswith(f"{base}.")]
        for file_name in [base, *leftovers]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(names.run_dir, file_name))


@dataclass(frozen=True, slots=True)
class RunRecord:
    prefix: str
    cluster: str | None
    namespaces: dict[str, str]
    fabric: str
    variant: str | None = None
    overrides: tuple[str, ...] = ()

    def configuration(self) -> str:
        """The cluster the lab holds, in words: file (or the demo), variant, overrides."""
        words = [self.cluster or "the demo"]
        if self.variant is not None:
            words.append(f"variant {self.variant}")
        words += [f"--set {item}" for item in self.overrides]
        return " ".join(words)

    @property
    def recorded(self) -> tuple[str, ...]:
        """Every namespace name the run file claims. Only names with the record's own prefix
        count: a run file (root-owned, but a file all the same) can never make `down` delete a
        namespace outside its lab's prefix."""
        every = (*self.namespaces.values(), self.fabric)
        return tuple(ns for ns in every if ns.startswith(self.prefix))


def _load(path: str) -> RunRecord:
    with open(path, encoding="utf-8") as handle:
        record = json.load(handle)
    try:
        prefix, cluster = record["prefix"], record["cluster"]
        namespaces, fabric = dict(record["namespaces"]), record["fabric"]
    except (KeyError, TypeError, ValueError):
        raise LabError(f"{path}: not a lab run file") from None
    values = [prefix, fabric, *namespaces, *namespaces.values()]
    if not all(isinstance(v, str) for v in values) or not isinstance(cluster, str | None):
        raise LabError(f"{path}: not a lab run file")
    variant = record.get("variant")
    overrides = record.get("overrides", [])
    if not isinstance(variant, str | None) or not isinstance(overrides, list):
        raise LabError(f"{path}: not a lab run file")
    if not all(isinstance(item, str) for item in overrides):
        raise LabError(f"{path}: not a lab run file")
    return RunRecord(prefix, cluster, namespaces, fabric, variant, tuple(overrides))


def read_run_file(names: LabNames) -> RunRecord:
    try:
        return _load(names.run_file)
    except FileNotFoundError:
        raise LabError(f"no lab is up with prefix {names.prefix!r} (run `eksnet lab up`)") from None
    except ValueError:
        raise LabError(f"{names.run_file}: not a lab run file") from None


def lab_state(
    names: LabNames, loader: Callable[[str | None, str | None, tuple[str, ...]], DataplaneState]
) -> DataplaneState:
    """The state the running lab was built from (its cluster file, variant and overrides,
    re-built by `loader`)."""
    record = read_run_file(names)
    return loader(record.cluster, record.variant, record.overrides)


# --- status -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamespaceStatus:
    netns: str
    state_name: str | None
    kind: str
    exists: bool


def status(names: LabNames, state: DataplaneState | None = None) -> tuple[NamespaceStatus, ...]:
    """Every lab namespace that exists, and every one the state expects but is missing."""
    present = set(lab_netns(names))
    rows: list[NamespaceStatus] = []
    expected: set[str] = set()
    if state is not None:
        for namespace in state.namespaces:
            netns = names.netns(namespace.name)
            expected.add(netns)
            rows.append(NamespaceStatus(netns, namespace.name, namespace.kind, netns in present))
        expected.add(names.fabric)
        rows.append(NamespaceStatus(names.fabric, None, "fabric", names.fabric in present))
        for item in attachments(state):
            netns = names.attachment(item.place)
            expected.add(netns)
            rows.append(NamespaceStatus(netns, None, item.kind, netns in present))
    for netns in sorted(present - expected):
        kind = {names.fabric: "fabric", names.internet: "internet"}.get(netns, "unknown")
        rows.append(NamespaceStatus(netns, names.state_name(netns), kind, True))
    return tuple(rows)
