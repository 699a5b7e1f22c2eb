"""kube-proxy's rules on the real kernel: what the state holds is what `iptables-save` prints back.

Every node's `Iptables.save` of the demo (legacy), the reference cluster of kube-proxy.md §6
(nf_tables), upstream's TestOverallIPTablesRules Services and a cluster with every Service shape
(nf_tables, and legacy, the interface-prefix detector and masqueradeAll as variants) is restored
into a namespace of this run (after `nfacct add` of the counters the rules name) and saved again
with the same back end: the text must come back byte for byte (the dated `#` lines aside), as
`eksnet exec node/X -- iptables-save` prints it. `lab up` creates the counters itself: the demo
lab and a lab of the every-shape cluster show them with `nfacct list` and print the same rules.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from tests.kube_proxy_specs import OVERALL, REFERENCE, SHAPES
from tests.lab.scratch import Scratch, run_names

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle
from eksnet.lab.names import LabNames
from eksnet.model import load_cluster, parse_cluster
from eksnet.render.linux.iptables import iptables_save

pytestmark = pytest.mark.lab

SPECS = {
    "demo": None,
    "reference": REFERENCE,
    "overall": OVERALL,
    "shapes": SHAPES,
    "shapes-legacy": SHAPES,
    "shapes-interfaces": SHAPES,
    "shapes-masquerade-all": SHAPES,
}
VARIANTS = {
    "shapes-legacy": "legacy",
    "shapes-interfaces": "interfaces",
    "shapes-masquerade-all": "masquerade-all",
}


def state_of(name: str) -> DataplaneState:
    text = SPECS[name]
    if text is None:
        return build_state(load_cluster())
    return build_state(parse_cluster(text, f"{name}.yaml", variant=VARIANTS.get(name)))


def saved(netns: str, backend: str) -> str:
    """`iptables-save` of `backend` in `netns`, without the dated `#` lines, and with the
    built-in chains' policy counters as a lab no packet crossed yet has them (`[0:0]`): the
    session's demo lab has carried other tests' traffic by the time this reads it."""
    out = subprocess.run(
        ["ip", "netns", "exec", netns, f"iptables-{backend}-save"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [
        re.sub(r" \[\d+:\d+\]$", " [0:0]", line) if line.startswith(":") else line
        for line in out.splitlines()
        if not line.startswith("#")
    ]
    return "".join(line + "\n" for line in lines)


def in_netns(netns: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], input=stdin, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def prefix() -> LabNames:
    return run_names("kube-proxy-restore")


@pytest.fixture()
def netns(capable: None, prefix: LabNames, request: pytest.FixtureRequest) -> Iterator[str]:
    callspec = getattr(request.node, "callspec", None)
    name = f"{prefix.prefix}{callspec.id if callspec else request.node.name}"[:200]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def node_cases() -> list[object]:
    cases: list[object] = []
    for spec in SPECS:
        state = state_of(spec)
        cases += [
            pytest.param(spec, node.name, id=f"{spec}-{node.name.split('.')[0]}")
            for node in state.nodes()
        ]
    return cases


@pytest.mark.parametrize(("spec", "node"), node_cases())
def test_the_kernel_prints_every_node_back_unchanged(netns: str, spec: str, node: str) -> None:
    namespace = state_of(spec).namespace(node)
    assert namespace.iptables is not None
    for counter in namespace.iptables.nfacct:
        assert in_netns(netns, "nfacct", "add", counter).returncode == 0
    restored = in_netns(
        netns, f"iptables-{namespace.iptables.backend}-restore", stdin=namespace.iptables.save
    )
    assert restored.returncode == 0, restored.stderr
    assert saved(netns, namespace.iptables.backend) == iptables_save(namespace)


def test_without_the_nfacct_objects_the_kernel_refuses_the_rules(netns: str) -> None:
    """Why `lab up` creates them (kube-proxy.md §10 item 14): the restore fails."""
    namespace = state_of("reference").nodes()[0]
    assert namespace.iptables is not None and namespace.iptables.nfacct
    restored = in_netns(netns, "iptables-nft-restore", stdin=namespace.iptables.save)
    assert restored.returncode != 0


def counters(netns: str) -> list[str]:
    listed = in_netns(netns, "nfacct", "list")
    assert listed.returncode == 0, listed.stderr
    return sorted(line.rsplit("= ", 1)[1].rstrip(";") for line in listed.stdout.splitlines())


def assert_lab_matches(names: LabNames, state: DataplaneState) -> None:
    for node in state.nodes():
        assert node.iptables is not None
        netns = names.netns(node.name)
        assert counters(netns) == sorted(node.iptables.nfacct)
        assert saved(netns, node.iptables.backend) == iptables_save(node)


def test_lab_up_creates_the_counters_of_the_demo(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    assert_lab_matches(demo_lab, demo_state)


def test_lab_up_of_every_service_shape(scratch: Scratch) -> None:
    state = state_of("shapes")
    names = scratch.names("kube-proxy-shapes")
    lifecycle.up(state, names)
    assert_lab_matches(names, state)
