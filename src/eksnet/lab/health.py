"""Load balancers' health checks, sent for real in the lab and held to the simulator's.

The simulator decides each target's health by walking the target group's check through the
state (`walk.engine.target_health`: a TCP check must reach a socket; kube-proxy's health server
answers 200 only with a local endpoint). Here the lab does what the load balancer and the
cluster do (aws-load-balancers.md §1.6, §2.2, §3, §5), so the two answers are independent:

* **the target side** runs the servers a real cluster runs: every backend pod listens on the
  ports kube-proxy DNATs to (the endpoints in the nodes' own rules, `--to-destination`) and on
  its `ip` targets' ports (an app answering any request `200 ok`); every node runs kube-proxy's
  health server on each `healthCheckNodePort` of an eTP Local load balancer, answering 200 with
  `localEndpoints` N > 0, else 503 (`http_agent.py servers`), N from the state
  (`TargetGroup.local_count`, what kube-proxy counts);
* **the load balancer side** sends each target group's check of each target from the node of
  the target's AZ (else the first node: the simulator's choice), from that node's private
  address, through the fabric and the target node's real iptables: a TCP connect to the check
  port or an HTTP GET of its path, `healthy_threshold` times in a row (AWS calls a target
  healthy after that many consecutive passes; the lab needs no interval between them);
* **the comparison** (`compare`): per load balancer and target group, each target's health in
  the lab against `target_health`, `agree` or `differs` naming the target and both answers.

The lab's NLB nodes then take their eligible targets from these results (`apply_eligibility`):
at `lab up` their rulesets were built from the simulator's health, so where the two agree
nothing changes, and where they differ the NLB sends where its real checks say.
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from rich.table import Table

from eksnet.dataplane.load_balancers import LbNode, LoadBalancer, Target, TargetGroup
from eksnet.dataplane.state import DataplaneState
from eksnet.lab import system
from eksnet.lab.attachments import NLB_TABLE, nlb_attachment, nlb_eligible
from eksnet.lab.fabric import attached_ports, nlb_place
from eksnet.lab.names import LabNames
from eksnet.lab.system import LabError
from eksnet.walk.load_balancing import Probe, TargetHealth

HTTP_AGENT = __file__.rsplit("/", 1)[0] + "/http_agent.py"
PROBE_TIMEOUT = 2.0
"""Seconds a check waits for its connection or answer: a lab round trip takes well under a
millisecond, and a dropped SYN is sent again after 1 s, so 2 s tells a silent drop from a slow
answer (AWS waits `timeout` seconds, 6 to 10; the lab has no slow targets)."""
READY_WAIT = 10.0
"""Seconds a server may take to start listening (Python's start on a loaded machine)."""
DEFAULT_MATCHER = {"nlb": "200-399", "alb": "200", "clb": "200"}
"""The success codes of an HTTP check without a matcher: AWS's defaults per kind (an NLB's
200–399, an ALB's 200; a CLB's check passes on 200 only)."""
_DNAT_TARGET = re.compile(r"--to-destination (\d+\.\d+\.\d+\.\d+):(\d+)")

Status = Literal["agree", "differs"]


@dataclass(frozen=True, slots=True)
class Check:
    """One target group's check of one target, as the load balancer node sends it."""

    balancer: str
    group: str
    target: Target
    node: LbNode
    protocol: Literal["TCP", "HTTP"]
    port: int
    path: str
    host: str
    matcher: str
    count: int

    @property
    def key(self) -> str:
        return f"{self.balancer}|{self.group}|{self.target.id}"

    def text(self) -> str:
        where = f"{self.target.address}:{self.port}"
        return f"HTTP GET {where}{self.path}" if self.protocol == "HTTP" else f"TCP {where}"


@dataclass(frozen=True, slots=True)
class Listening:
    """A server of the target side: a pod's app or a node's kube-proxy health server."""

    namespace: str
    port: int
    answer: Literal["app", "kube-proxy"]
    service: str = ""
    endpoints: int = 0

    def spec(self) -> dict[str, object]:
        if self.answer == "app":
            return {"port": self.port, "answer": "app"}
        namespace, _, name = self.service.partition("/")
        return {
            "port": self.port,
            "answer": "kube-proxy",
            "namespace": namespace,
            "name": name,
            "endpoints": self.endpoints,
        }


@dataclass(frozen=True, slots=True)
class TargetRow:
    """One target's health both ways: the lab's real checks and the simulator's walk."""

    target: Target
    lab: TargetHealth
    simulated: TargetHealth

    @property
    def agree(self) -> bool:
        return self.lab.healthy == self.simulated.healthy

    def text(self) -> str:
        def word(health: TargetHealth) -> str:
            return f"{'healthy' if health.healthy else 'unhealthy'} ({health.reason})"

        return (
            f"{self.target.id} ({self.target.address}:{self.target.port}, "
            f"{self.target.node or self.target.az}): lab {word(self.lab)}, "
            f"simulator {word(self.simulated)}"
        )


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    """One target group of one load balancer: every target's health, lab against simulator."""

    balancer: str
    owner: str
    kind: str
    group: str
    check: str
    rows: tuple[TargetRow, ...]

    @property
    def status(self) -> Status:
        return "agree" if all(row.agree for row in self.rows) else "differs"

    @property
    def differences(self) -> tuple[str, ...]:
        return tuple(row.text() for row in self.rows if not row.agree)


@dataclass(frozen=True, slots=True)
class LabHealth:
    """What the lab's checks found: each target's health by (balancer, group, target id), and
    every request the servers answered (evidence: the check's source and what was answered)."""

    health: Mapping[tuple[str, str, str], TargetHealth]
    answered: tuple[dict[str, object], ...] = ()

    def probe(self) -> Probe:
        """The lab's results as a `Probe` (what `eligible` asks)."""

        def probe(balancer: LoadBalancer, group: TargetGroup, target: Target) -> TargetHealth:
            found = self.health.get((balancer.name, group.id, target.id))
            if found is None:
                raise LabError(f"the lab did not check {target.id} of {group.id}")
            return found

        return probe


@dataclass(frozen=True, slots=True)
class HealthReport:
    """`check_health`'s answer: the verdicts and which NLB nodes' rulesets it rebuilt."""

    verdicts: tuple[HealthVerdict, ...]
    lab: LabHealth
    rebuilt: tuple[str, ...] = ()

    @property
    def agree(self) -> bool:
        return all(verdict.status == "agree" for verdict in self.verdicts)

    def for_balancer(self, name: str) -> tuple[HealthVerdict, ...]:
        return tuple(v for v in self.verdicts if v.balancer == name)


# --- planning (pure) ------------------------------------------------------------------------


def probing_node(balancer: LoadBalancer, target: Target) -> LbNode:
    """The node whose check decides the target's health: the one in the target's AZ, else the
    first (as `walk.engine._probe` walks it)."""
    return balancer.node_in(target.az) or balancer.nodes[0]


def _matcher(balancer: LoadBalancer, group: TargetGroup) -> str:
    return group.health_check.matcher or DEFAULT_MATCHER[balancer.kind]


def matcher_ranges(matcher: str) -> list[list[int]]:
    """`200`, `200,202`, `200-399` as ranges of status codes."""
    ranges = []
    for part in matcher.split(","):
        low, _, high = part.strip().partition("-")
        ranges.append([int(low), int(high or low)])
    return ranges


def plan_checks(state: DataplaneState) -> tuple[Check, ...]:
    """Every check of every target of every load balancer of the state. An NLB's HTTP check
    carries its node's address and listener port as `Host` (aws-load-balancers.md §2.2); an
    ALB's and a CLB's the target's address and check port."""
    checks: list[Check] = []
    for balancer in state.vpc.load_balancers:
        for group in balancer.target_groups:
            check = group.health_check
            listener = next(
                (item for item in balancer.listeners if item.target_group == group.id), None
            )
            for target in group.targets:
                node = probing_node(balancer, target)
                port = check.port if check.port is not None else target.port
                host = (
                    f"{node.private_ip}:{listener.port if listener else port}"
                    if balancer.kind == "nlb"
                    else f"{target.address}:{port}"
                )
                checks.append(
                    Check(
                        balancer.name, group.id, target, node, check.protocol, port,
                        check.path or "/", host, _matcher(balancer, group),
                        max(1, check.healthy_threshold),
                    )
                )  # fmt: skip
    return tuple(checks)


def _owners(state: DataplaneState) -> dict[IPv4Address, str]:
    owners: dict[IPv4Address, str] = {}
    for namespace in state.namespaces:
        for item in namespace.addresses:
            if item.family == 4 and item.dev != "lo":
                owners.setdefault(IPv4Address(str(item.interface.ip)), namespace.name)
    return owners


def plan_servers(state: DataplaneState) -> tuple[Listening, ...]:
    """The target side's servers: an app on every endpoint kube-proxy DNATs to (read from the
    nodes' own rules) and on every `ip` target, in the namespace owning its address; kube-proxy's
    health server on every node for every eTP Local target group's `healthCheckNodePort`, with
    the node's count of local endpoints."""
    owners = _owners(state)
    found: dict[tuple[str, int], Listening] = {}
    endpoints: set[tuple[IPv4Address, int]] = set()
    for node in state.nodes():
        if node.iptables is not None:
            for address, port in _DNAT_TARGET.findall(node.iptables.save):
                endpoints.add((IPv4Address(address), int(port)))
    for balancer in state.vpc.load_balancers:
        for group in balancer.target_groups:
            if group.target_type == "ip":
                endpoints.update((t.address, t.port) for t in group.targets)
            check = group.health_check
            if group.local_only and check.protocol == "HTTP" and check.port is not None:
                for node in state.nodes():
                    found.setdefault(
                        (node.name, check.port),
                        Listening(
                            node.name, check.port, "kube-proxy", group.service,
                            group.local_count(node.name),
                        ),
                    )  # fmt: skip
    for address, port in sorted(endpoints):
        owner = owners.get(address)
        if owner is not None:
            found.setdefault((owner, port), Listening(owner, port, "app"))
    return tuple(found.values())


# --- probing (the lab) ----------------------------------------------------------------------


def _agent(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-I", "-S", HTTP_AGENT, *args]


def _ready(proc: subprocess.Popen[str], where: str) -> None:
    """Wait for a server's `{"ready": true}` (it listens on every port by then)."""
    assert proc.stdout is not None
    poller = select.poll()
    poller.register(proc.stdout, select.POLLIN)
    line = proc.stdout.readline() if poller.poll(int(READY_WAIT * 1000)) else ""
    if not line.strip() or json.loads(line).get("ready") is not True:
        _, err = system.stop(proc)
        raise LabError(f"the health servers in {where} did not start: {err.strip()}")


def _health(check: Check, attempts: Sequence[dict[str, object]]) -> TargetHealth:
    """The lab's verdict on one target: healthy when every attempt passed."""
    failed = next((a for a in attempts if not a.get("ok")), None)
    what = check.text()
    if failed is None:
        last = attempts[-1] if attempts else {}
        answer = f"answers {last.get('status')}" if check.protocol == "HTTP" else "connects"
        return TargetHealth(check.target, True, f"{what} {answer} ({len(attempts)}×)")
    if "status" in failed:
        return TargetHealth(
            check.target, False, f"{what} answers {failed['status']} (not {check.matcher})"
        )
    return TargetHealth(check.target, False, f"{what}: {failed.get('error', 'no answer')}")


def probe_lab(
    state: DataplaneState, names: LabNames, checks: Sequence[Check] | None = None
) -> LabHealth:
    """Run the target side's servers, send every check (or those given) from its load
    balancer node, stop the servers: the lab's health of every target checked."""
    checks = plan_checks(state) if checks is None else tuple(checks)
    if not checks:
        return LabHealth({})
    by_namespace: dict[str, list[Listening]] = {}
    for item in plan_servers(state):
        by_namespace.setdefault(item.namespace, []).append(item)
    running: list[tuple[str, subprocess.Popen[str]]] = []
    results: dict[str, list[dict[str, object]]] = {}
    answered: list[dict[str, object]] = []
    try:
        for namespace, listening in by_namespace.items():
            spec = json.dumps([item.spec() for item in listening])
            running.append(
                (namespace, system.start(_agent(names.netns(namespace), "servers", spec)))
            )
        for namespace, proc in running:
            _ready(proc, namespace)
        by_place: dict[tuple[str, str], list[Check]] = {}
        for check in checks:
            place = nlb_place(check.balancer, check.node.az)
            by_place.setdefault((place, str(check.node.private_ip)), []).append(check)

        def send(item: tuple[tuple[str, str], list[Check]]) -> system.Result:
            (place, source), todo = item
            wire = [
                {
                    "key": c.key, "protocol": c.protocol, "address": str(c.target.address),
                    "port": c.port, "path": c.path, "host": c.host,
                    "matcher": matcher_ranges(c.matcher), "count": c.count,
                    "timeout": PROBE_TIMEOUT,
                }
                for c in todo
            ]  # fmt: skip
            limit = PROBE_TIMEOUT * max(c.count for c in todo) + READY_WAIT
            argv = _agent(names.attachment(place), "probe", source, json.dumps(wire))
            return system.run(argv, timeout=limit)

        for result in system.parallel(send, list(by_place.items()), workers=4):
            for line in result.stdout.splitlines():
                if line.strip():
                    item = json.loads(line)
                    attempts = item.get("attempts")
                    assert isinstance(attempts, list)
                    results[str(item["key"])] = attempts
    finally:
        for namespace, proc in running:
            out, _ = system.stop(proc)
            for line in out.splitlines():
                if line.strip():
                    record = json.loads(line)
                    if "port" in record:
                        answered.append({"namespace": namespace, **record})
    health: dict[tuple[str, str, str], TargetHealth] = {}
    for check in checks:
        attempts = results.get(check.key)
        if attempts is None:
            raise LabError(f"the lab's prober did not report {check.text()}")
        health[(check.balancer, check.group, check.target.id)] = _health(check, attempts)
    return LabHealth(health, tuple(answered))


# --- comparing, and the NLB nodes' eligibility ----------------------------------------------


def compare(
    state: DataplaneState,
    lab: LabHealth,
    simulated: Callable[[DataplaneState, LoadBalancer, TargetGroup], Sequence[TargetHealth]]
    | None = None,
) -> list[HealthVerdict]:
    """Per load balancer and target group, the lab's health of each target against the
    simulator's (`walk.engine.target_health`, unless another is given)."""
    if simulated is None:
        from eksnet.walk.engine import target_health

        simulated = target_health
    probe = lab.probe()
    verdicts = []
    for balancer in state.vpc.load_balancers:
        for group in balancer.target_groups:
            walked = {h.target.id: h for h in simulated(state, balancer, group)}
            rows = tuple(
                TargetRow(target, probe(balancer, group, target), walked[target.id])
                for target in group.targets
            )
            verdicts.append(
                HealthVerdict(
                    balancer.name, balancer.owner, balancer.kind, group.id,
                    group.health_check.text(), rows,
                )
            )  # fmt: skip
    return verdicts


def _nlb_nodes(state: DataplaneState) -> list[tuple[LoadBalancer, LbNode]]:
    return [
        (balancer, node)
        for balancer in state.vpc.load_balancers
        if balancer.kind == "nlb"
        for node in balancer.nodes
    ]


def eligible_sets(state: DataplaneState, probe: Probe) -> dict[str, list[tuple[str, ...]]]:
    """Per NLB node (its lab place), per listener, the targets its ruleset sends to under
    `probe`'s health."""
    return {
        nlb_place(balancer.name, node.az): [
            (f"{listener.protocol}:{listener.port}", *(t.id for t in targets))
            for listener, _, targets in nlb_eligible(balancer, node, probe)
        ]
        for balancer, node in _nlb_nodes(state)
    }


def apply_eligibility(state: DataplaneState, names: LabNames, lab: LabHealth) -> tuple[str, ...]:
    """Give each NLB node the eligible targets of the lab's own checks. Its ruleset was built
    at `lab up` from the state's health; where the lab's checks select the same targets it is
    left as it is, else it is rebuilt (`nft -f`: the old table deleted and the new one added in
    one transaction). Returns the nodes rebuilt."""
    from eksnet.walk.engine import health_probe

    built = eligible_sets(state, health_probe(state))
    wanted = eligible_sets(state, lab.probe())
    ports = {port.eni.id: port for port in attached_ports(state)}
    rebuilt = []
    for balancer, node in _nlb_nodes(state):
        place = nlb_place(balancer.name, node.az)
        if built[place] == wanted[place] or node.eni not in ports:
            continue
        attachment = nlb_attachment(state, balancer, ports[node.eni], lab.probe())
        text = f"table netdev {NLB_TABLE}\ndelete table netdev {NLB_TABLE}\n{attachment.nft}"
        system.run(["ip", "netns", "exec", names.attachment(place), "nft", "-f", "-"], stdin=text)
        rebuilt.append(place)
    return tuple(rebuilt)


_PROBED: dict[tuple[int, str], tuple[DataplaneState, LabHealth]] = {}


def check_health(state: DataplaneState, names: LabNames, *, fresh: bool = False) -> HealthReport:
    """The lab's checks (`probe_lab`), compared with the simulator's (`compare`), and the NLB
    nodes given the eligible targets the checks found (`apply_eligibility`). The lab's results
    depend on the state and the kernel only, so they are sent once per state and lab in a
    process (`fresh`: again) and every walk through a load balancer can carry the verdict; the
    simulator's side is asked each time."""
    key = (id(state), names.prefix)
    known = _PROBED.get(key)
    if known is not None and known[0] is state and not fresh:
        lab = known[1]
    else:
        lab = probe_lab(state, names)
        _PROBED[key] = (state, lab)
    verdicts = tuple(compare(state, lab))
    return HealthReport(verdicts, lab, apply_eligibility(state, names, lab))


def render_health(report: HealthReport) -> Table:
    """One row per load balancer and target group: agree, or DIFFERS naming each target with
    both answers; the lab's answer for every target either way."""
    table = Table(title="lab verify: load balancers' health checks, kernel vs simulator")
    for column in ("load balancer", "target group, check", "verdict", "targets (lab's checks)"):
        table.add_column(column, overflow="fold")
    for verdict in report.verdicts:
        if verdict.status == "agree":
            word = "[green]agree[/green]"
            details = [
                f"{row.target.id}: {'healthy' if row.lab.healthy else 'unhealthy'}, "
                f"{row.lab.reason}"
                for row in verdict.rows
            ]
        else:
            word = "[red]DIFFERS[/red]"
            details = list(verdict.differences)
        table.add_row(
            f"{verdict.owner} ({verdict.kind})",
            f"{verdict.group}: {verdict.check}",
            word,
            "\n".join(details),
        )
    if report.rebuilt:
        table.caption = "NLB nodes given the lab's eligible targets: " + ", ".join(report.rebuilt)
    else:
        table.caption = "NLB nodes' eligible targets: the lab's checks select the same as at `up`"
    return table
