"""Same command, same answer (issue 4, item 5): every supported `eksnet exec` command, on every
namespace of the demo cluster, prints in the simulator exactly what it prints in the lab.

The demo is built once for this module (its own prefix: no traffic from other tests has taught
the kernel any neighbour yet), and each namespace's commands run in the lab as one shell under
`eksnet.lab.inside` (what `eksnet lab exec` uses), so the lab side sees what the real node or
pod sees: its pods' `cni-…` names, no name for a pod's node, the node's iptables backend.

Compared: stdout when the command succeeds, else stderr, and the exit status; trailing
whitespace of each line is stripped (the simulator leaves out the space `ip` ends some lines
with) and `iptables-save`'s `#` comment lines (dates, the backend warning) are dropped.

Every exception is in `EXCUSED` (a difference of the lab's making, rewritten on the named lines
only) or in `SIMULATOR_BUGS` (the simulator is wrong: the case is `xfail(strict=True)`, so it
fails again the moment the simulator is fixed and the entry must go). Nothing is skipped.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

import pytest
from tests.lab.scratch import run_names

from eksnet.controllers import build_state
from eksnet.dataplane.state import TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, DataplaneState, Namespace
from eksnet.errors import CommandFailed
from eksnet.lab import lifecycle, system
from eksnet.lab.fabric import attached_ports
from eksnet.lab.names import LabNames
from eksnet.model import load_cluster
from eksnet.render.exec import run_command

pytestmark = pytest.mark.lab

STATE = build_state(load_cluster())
MARK = "0x80"
"""The VPC CNI's connmark bit (rule 1024): lookups are made with and without it."""


# --- the cases: which commands, in which namespace ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    namespace: str
    argv: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.namespace.split('.')[0][:16]}: {' '.join(self.argv)}"


def ipv4_addresses(namespace: Namespace) -> tuple[IPv4Address, ...]:
    """The namespace's own IPv4 addresses outside loopback, in state order."""
    return tuple(
        a.interface.ip
        for a in namespace.addresses
        if isinstance(a.interface, IPv4Interface) and namespace.link(a.dev).kind != "loopback"
    )


def demo_targets(state: DataplaneState) -> tuple[IPv4Address, ...]:
    """Every pod, node and gateway address of the demo (subnet gateways and route gateways)."""
    pods = [ip for ns in state.pods() for ip in ipv4_addresses(ns)]
    nodes = [ip for ns in state.nodes() for ip in ipv4_addresses(ns)]
    gateways = [subnet.gateway for subnet in state.vpc.subnets]
    gateways += [r.gateway for ns in state.namespaces for r in ns.routes if r.gateway is not None]
    return tuple(dict.fromkeys([*pods, *nodes, *gateways]))


def arriving_sources(
    state: DataplaneState, namespace: Namespace, dev: str
) -> tuple[IPv4Address, ...]:
    """Sources a packet arriving on `dev` plausibly has (for `ip route get … iif DEV`):

    * `lo`: each of the namespace's own addresses (a locally generated packet);
    * a node's veth to a pod: that pod's address;
    * a pod's `eth0`: another pod's address (the first of the demo) and its node's primary
      address (kubelet's probes);
    * an ENI: another node's primary address and a pod of that node (W2's source).
    """
    link = namespace.link(dev)
    own = ipv4_addresses(namespace)
    if link.kind == "loopback":
        return own
    if link.kind == "veth" and link.peer is not None and link.peer.netns is not None:
        return ipv4_addresses(state.namespace(link.peer.netns))[:1]
    if namespace.kind == "pod":
        other = next(ip for pod in state.pods() for ip in ipv4_addresses(pod) if ip not in own)
        node = next(n for n in state.nodes() if any(ns == namespace.name for ns in _pods_of(n)))
        return (other, ipv4_addresses(node)[0])
    remote = next(node for node in state.nodes() if node.name != namespace.name)
    pod = state.namespace(_pods_of(remote)[0])
    return (ipv4_addresses(remote)[0], ipv4_addresses(pod)[0])


def _pods_of(node: Namespace) -> tuple[str, ...]:
    return tuple(link.peer.netns for link in node.links if link.peer and link.peer.netns)


def route_gets(state: DataplaneState, namespace: Namespace) -> Iterator[tuple[str, ...]]:
    """`ip route get` for every demo address: input lookups from every interface, output
    lookups plain and from each own address; each with and without `mark 0x80`."""
    for dst in demo_targets(state):
        for link in namespace.links:
            for src in arriving_sources(state, namespace, link.name):
                yield ("ip", "route", "get", str(dst), "from", str(src), "iif", link.name)
        yield ("ip", "route", "get", str(dst))
        for src in ipv4_addresses(namespace):
            yield ("ip", "route", "get", str(dst), "from", str(src))


def sysctl_keys(namespace: Namespace) -> Iterator[str]:
    yield "net.ipv4.ip_forward"
    for dev in ("all", "default", *(link.name for link in namespace.links)):
        yield f"net.ipv4.conf.{dev}.rp_filter"
        yield f"net.ipv4.conf.{dev}.forwarding"


def commands(state: DataplaneState, namespace: Namespace) -> Iterator[tuple[str, ...]]:
    """In the order they run in the lab: `ip neigh` before any traffic, `iptables-save` before
    `-t TABLE` (legacy `iptables-save -t nat` creates the table it prints)."""
    yield ("ip", "neigh")
    yield ("arp", "-n")
    yield ("ip", "addr")
    yield ("ip", "link")
    yield ("ip", "rule", "show")
    eni_tables = sorted(
        {r.table for r in namespace.routes} - {TABLE_LOCAL, TABLE_MAIN, TABLE_DEFAULT}
    )
    for table in ("all", "main", "local", *map(str, eni_tables)):
        yield ("ip", "route", "show", "table", table)
    yield ("iptables-save",)
    for table in ("nat", "mangle", "filter"):
        yield ("iptables-save", "-t", table)
    for key in sysctl_keys(namespace):
        yield ("sysctl", key)
    for argv in route_gets(state, namespace):
        yield argv
        yield (*argv, "mark", MARK)


CASES = tuple(Case(ns.name, argv) for ns in STATE.namespaces for argv in commands(STATE, ns))


# --- answers ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str
    """stdout when the status is 0, else stderr; normalized (see `normalize`)."""


def normalize(argv: Sequence[str], text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    if argv[0] == "iptables-save":
        lines = [line for line in lines if not line.startswith("#")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def simulated(case: Case) -> Answer:
    try:
        out = run_command(STATE, STATE.namespace(case.namespace), case.argv)
    except CommandFailed as failed:
        return Answer(failed.exit_code, normalize(case.argv, failed.stderr))
    return Answer(0, normalize(case.argv, out))


BEGIN, END = "@@eksnet-begin", "@@eksnet-end"
_CHUNK = re.compile(rf"^{BEGIN} (\d+)\n(.*?)\n?^{END} (\d+) (\d+)$", re.M | re.S)
_ERR_CHUNK = re.compile(rf"^{BEGIN} (\d+)\n(.*?)(?=^{BEGIN} |\Z)", re.M | re.S)


def shell_script(argvs: Sequence[tuple[str, ...]]) -> str:
    """One shell for all of a namespace's commands, each framed by markers on stdout (with its
    exit status) and on stderr, so the two streams can be cut back into per-command answers."""
    lines = []
    for index, argv in enumerate(argvs):
        lines.append(f"echo '{BEGIN} {index}'; echo '{BEGIN} {index}' >&2")
        lines.append(f'{shlex.join(argv)}; s=$?; echo; echo "{END} {index} $s"')
    return "\n".join(lines) + "\n"


def split_answers(argvs: Sequence[tuple[str, ...]], stdout: str, stderr: str) -> list[Answer]:
    outs = {int(m[1]): (int(m[4]), m[2]) for m in _CHUNK.finditer(stdout)}
    errs = {int(m[1]): m[2] for m in _ERR_CHUNK.finditer(stderr)}
    if len(outs) != len(argvs):
        raise AssertionError(f"lab shell answered {len(outs)} of {len(argvs)} commands: {stderr}")
    answers = []
    for index, argv in enumerate(argvs):
        status, out = outs[index]
        text = out if status == 0 else errs.get(index, "")
        answers.append(Answer(status, normalize(argv, text)))
    return answers


def lab_answers(names: LabNames, namespace: Namespace, cases: Sequence[Case]) -> list[Answer]:
    argvs = [case.argv for case in cases]
    inside = names.inside(namespace)
    result = system.run(
        inside.script_argv(["sh", "-c", shell_script(argvs)]),
        check=False,
        env=dict(os.environ, LC_ALL="C"),
        timeout=300,
    )
    return split_answers(argvs, result.stdout, result.stderr)


# --- the exceptions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Excused:
    """A difference of the lab's making: `rewrite` turns the lab's text into what a real
    machine prints, touching only the lines named in `reason`."""

    name: str
    reason: str
    applies: Callable[[Namespace, tuple[str, ...]], bool]
    rewrite: Callable[[Namespace, str], str]


@dataclass(frozen=True, slots=True)
class SimulatorBug:
    """The simulator prints something the kernel does not: the case is xfail(strict=True)."""

    name: str
    reason: str
    applies: Callable[[Namespace, tuple[str, ...]], bool]


def fabric_devices(namespace: Namespace) -> tuple[str, ...]:
    """The node's ENIs that the lab wires to its VPC fabric (`fabric.attached_ports`)."""
    return tuple(port.device for port in attached_ports(STATE) if port.node == namespace.name)


def eni_as_the_instance_sees_it(namespace: Namespace, text: str) -> str:
    """`N: eth0@ifM: …` → `N: eth0: …` and the next line's ` link-netnsid K` dropped, for the
    fabric-wired ENIs only; any other line is left as the kernel printed it."""
    lines = text.split("\n")
    for device in fabric_devices(namespace):
        header = re.compile(rf"^(\d+: {re.escape(device)})@if\d+(: .*)$")
        for index, line in enumerate(lines[:-1]):
            match = header.match(line)
            if match is None:
                continue
            lines[index] = match[1] + match[2]
            lines[index + 1] = re.sub(
                r"^(    link/ether \S+ brd \S+) link-netnsid \d+$", r"\1", lines[index + 1]
            )
    return "\n".join(lines)


def _is_ip_link_or_addr(namespace: Namespace, argv: tuple[str, ...]) -> bool:
    return bool(fabric_devices(namespace)) and argv in (("ip", "addr"), ("ip", "link"))


EXCUSED: tuple[Excused, ...] = (
    Excused(
        name="eni-is-a-veth-into-the-fabric",
        reason=(
            "in the lab an ENI (`eth0`, `eth1` of a node) is a veth whose other end is a port of "
            "the VPC fabric's bridge (fabric.py), so `ip addr`/`ip link` print its peer "
            "(`eth0@if10000:`) and the fabric's namespace by id (`link-netnsid 0`: the fabric is "
            "no namespace a real node can name); the instance's ENA device has neither. Only the "
            "ENI's header line and the link/ether line under it are rewritten; its name, flags, "
            "MTU, qdisc (mq), state, qlen, MAC and addresses are compared as printed"
        ),
        applies=_is_ip_link_or_addr,
        rewrite=eni_as_the_instance_sees_it,
    ),
)
SIMULATOR_BUGS: tuple[SimulatorBug, ...] = ()


def excused_lab_text(namespace: Namespace, case: Case, answer: Answer) -> Answer:
    text = answer.text
    for entry in EXCUSED:
        if entry.applies(namespace, case.argv):
            text = entry.rewrite(namespace, text)
    return Answer(answer.status, text)


def bugs_of(case: Case) -> tuple[SimulatorBug, ...]:
    namespace = STATE.namespace(case.namespace)
    return tuple(bug for bug in SIMULATOR_BUGS if bug.applies(namespace, case.argv))


def params() -> list[object]:
    marked = []
    for case in CASES:
        bugs = bugs_of(case)
        marks = [
            pytest.mark.xfail(strict=True, reason="; ".join(f"{b.name}: {b.reason}" for b in bugs))
        ]
        marked.append(pytest.param(case, id=case.id, marks=marks if bugs else ()))
    return marked


# --- the lab, once for the module ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(capable: None) -> Iterator[dict[Case, Answer]]:
    """The demo lab, settled, every case answered by the kernel before any traffic; removed at
    the end of the module."""
    names = run_names("same-answer")
    try:
        lifecycle.up(STATE, names)
        lifecycle.settle(names)
        by_namespace = [
            (ns, [case for case in CASES if case.namespace == ns.name]) for ns in STATE.namespaces
        ]
        answers = system.parallel(lambda item: lab_answers(names, *item), by_namespace)
        yield {
            case: answer
            for (_, cases), found in zip(by_namespace, answers, strict=True)
            for case, answer in zip(cases, found, strict=True)
        }
    finally:
        lifecycle.down(names)
    assert lifecycle.lab_netns(names) == ()


@pytest.mark.parametrize("case", params())
def test_same_command_same_answer(lab: dict[Case, Answer], case: Case) -> None:
    namespace = STATE.namespace(case.namespace)
    kernel = excused_lab_text(namespace, case, lab[case])
    simulator = simulated(case)
    if simulator != kernel:
        diff = difflib.unified_diff(
            simulator.text.splitlines(),
            kernel.text.splitlines(),
            f"simulator (status {simulator.status})",
            f"kernel (status {kernel.status})",
            lineterm="",
        )
        pytest.fail(f"{case.namespace}: {shlex.join(case.argv)}\n" + "\n".join(diff), False)


def test_every_exception_is_still_needed(lab: dict[Case, Answer]) -> None:
    """An exception that no longer changes any answer hides nothing and must go (and a simulator
    bug that is fixed fails its cases through `strict=True`)."""
    for entry in EXCUSED:
        used = [
            case
            for case, answer in lab.items()
            if entry.applies(STATE.namespace(case.namespace), case.argv)
            and entry.rewrite(STATE.namespace(case.namespace), answer.text) != answer.text
        ]
        assert used, f"exception {entry.name!r} no longer applies to any answer: remove it"
