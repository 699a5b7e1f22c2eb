"""Load balancers' health checks sent for real in the lab (`lab/health.py`) and held to the
simulator's (`walk.engine.target_health`).

Expected values come from the spec and the demo, not from either executor: aws-load-balancers.md
§3 (eTP Local: kube-proxy's health server answers 200 with a ready local endpoint, else 503) and
§1.6 (the LBC/in-tree NLB checks `HTTP :healthCheckNodePort/healthz`), and talk.yaml: app1's
pods are 71 and 81 on node 2 and 91 on node 3, none on node 1 (W6: "node 1 answers 503 and is
never chosen").
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.lab.scratch import run_names

from eksnet.dataplane.load_balancers import LoadBalancer, Target, TargetGroup
from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle, system
from eksnet.lab.attachments import NLB_TABLE, PROBE_PORTS, attachments, nlb_attachment
from eksnet.lab.fabric import attached_ports, nlb_place
from eksnet.lab.health import (
    HealthVerdict,
    LabHealth,
    check_health,
    compare,
    plan_checks,
    plan_servers,
    probe_lab,
)
from eksnet.lab.names import LabNames
from eksnet.lab.verify import health_differences
from eksnet.walk import engine
from eksnet.walk.load_balancing import TargetHealth

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "ip-192-168-1-70.eu-west-2.compute.internal"
NODE_3 = "ip-192-168-2-90.eu-west-2.compute.internal"
NLB_LOCAL = "service/default/app1-nlb-local"
NLB_IP = "service/default/app1-nlb-ip"
POD_91 = "default/app1-5f7d9c6b8-b9v6s"


def _http_agent() -> object:
    path = Path(__file__).parents[2] / "src" / "eksnet" / "lab" / "http_agent.py"
    spec = importlib.util.spec_from_file_location("http_agent", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _balancer(state: DataplaneState, owner: str) -> LoadBalancer:
    balancer = state.vpc.load_balancer(owner)
    assert balancer is not None
    return balancer


def _by_node(verdict: HealthVerdict) -> dict[str, tuple[bool, str]]:
    return {row.target.node or "": (row.lab.healthy, row.lab.reason) for row in verdict.rows}


def _verdict(
    verdicts: tuple[HealthVerdict, ...] | list[HealthVerdict], owner: str
) -> HealthVerdict:
    (found,) = [v for v in verdicts if v.owner == owner]
    return found


# --- pure: what the lab will run -------------------------------------------------------------


def test_kube_proxys_answer_is_its_templates() -> None:
    """pkg/proxy/healthcheck/service_health.go: the dedented, trimmed template; JSON with the
    Service, the local endpoints and kube-proxy's own health; 503 with no local endpoint."""
    agent = _http_agent()
    body = agent.health_body("default", "app1-nlb-local", 2)  # type: ignore[attr-defined]
    assert body == (
        '{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "app1-nlb-local"\n\t},\n'
        '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}'
    )
    assert json.loads(body)["localEndpoints"] == 2
    listener = {"answer": "kube-proxy", "namespace": "default", "name": "x", "endpoints": 0}
    answer = agent.answer_for(listener).decode()  # type: ignore[attr-defined]
    head, _, payload = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 503 Service Unavailable\r\n")
    assert "Content-Type: application/json" in head
    assert "X-Content-Type-Options: nosniff" in head
    assert f"Content-Length: {len(payload)}" in head
    assert json.loads(payload) == {
        "service": {"namespace": "default", "name": "x"},
        "localEndpoints": 0,
        "serviceProxyHealthy": True,
    }


def test_the_servers_a_cluster_runs(demo_state: DataplaneState) -> None:
    """kube-proxy's health server on every node for :32082 with its local app1 endpoints (node
    1 none, node 2 pods 71 and 81, node 3 pod 91); an app on :80 in every backend pod."""
    planned = plan_servers(demo_state)
    health = {(s.namespace, s.port): s.endpoints for s in planned if s.answer == "kube-proxy"}
    assert health == {(NODE_1, 32082): 0, (NODE_2, 32082): 2, (NODE_3, 32082): 1}
    apps = {(s.namespace, s.port) for s in planned if s.answer == "app"}
    pods = {n.name: n for n in demo_state.pods()}
    addresses = {
        str(a.interface.ip)
        for name, _ in apps
        for a in pods[name].addresses
        if a.family == 4 and a.dev != "lo"
    }
    assert addresses == {"192.168.1.61", "192.168.1.71", "192.168.1.81", "192.168.2.91"}
    assert {port for _, port in apps} == {80}


def test_checks_go_from_the_node_of_the_targets_az(demo_state: DataplaneState) -> None:
    """§1.6: eTP Local behind an NLB is an HTTP check of /healthz on the healthCheckNodePort,
    sent by the NLB node of the target's AZ (192.168.1.111 in a, 192.168.2.111 in b); the Host
    header is the NLB node's address and listener port (§2.2)."""
    checks = [c for c in plan_checks(demo_state) if c.group == "default/app1-nlb-local:80"]
    seen = {(c.target.node, str(c.node.private_ip), c.protocol, c.port, c.path) for c in checks}
    assert seen == {
        (NODE_1, "192.168.1.111", "HTTP", 32082, "/healthz"),
        (NODE_2, "192.168.1.111", "HTTP", 32082, "/healthz"),
        (NODE_3, "192.168.2.111", "HTTP", 32082, "/healthz"),
    }
    assert {c.host for c in checks} == {"192.168.1.111:80", "192.168.2.111:80"}


def test_an_nlb_node_hands_its_checks_answers_to_its_own_stack(demo_state: DataplaneState) -> None:
    """The NLB node is a host with its address, its kernel's source ports for checks in
    PROBE_PORTS, and the rule taking answers to those ports comes before the rules that
    rewrite a target's answer for a client."""
    balancer = _balancer(demo_state, NLB_IP)
    (node,) = [
        a for a in attachments(demo_state) if a.place == nlb_place(balancer.name, "eu-west-2a")
    ]
    assert [str(a.interface) for a in node.namespace.addresses if a.dev == "eth0"] == [
        "192.168.1.121/24"
    ]
    low, high = PROBE_PORTS
    assert node.namespace.sysctl("net.ipv4.ip_local_port_range") == f"{low} {high}"
    lines = [line.strip() for line in node.nft.splitlines()]
    own = lines.index(
        f"ip daddr 192.168.1.121 tcp dport {low}-{high} counter accept "
        'comment "answers to the node\'s own health checks"'
    )
    back = [
        i for i, line in enumerate(lines) if line.startswith("ip saddr 192.168.1.71 tcp sport 80")
    ]
    assert back and own < min(back)


# --- on the kernel ---------------------------------------------------------------------------


@pytest.mark.lab
def test_w6_node_1_answers_503_and_every_check_agrees(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """W6: the lab's NLB node sends GET /healthz to each node's :32082 through the fabric and
    the node's iptables; node 1 answers 503 (no local app1 pod), nodes 2 and 3 answer 200. Every
    target group of the demo agrees with the simulator, and the NLB nodes keep the eligible
    targets they were built with."""
    report = check_health(demo_state, demo_lab, fresh=True)
    local = _verdict(report.verdicts, NLB_LOCAL)
    nodes = _by_node(local)
    assert nodes[NODE_1][0] is False and "answers 503" in nodes[NODE_1][1]
    assert nodes[NODE_2][0] is True and "answers 200" in nodes[NODE_2][1]
    assert nodes[NODE_3][0] is True and "answers 200" in nodes[NODE_3][1]
    asked = [a for a in report.lab.answered if a["port"] == 32082]
    assert {(a["namespace"], a["status"]) for a in asked} == {
        (NODE_1, 503), (NODE_2, 200), (NODE_3, 200),
    }  # fmt: skip
    assert {str(a["peer"]).split(":")[0] for a in asked} == {"192.168.1.111", "192.168.2.111"}
    assert all(a["request"] == "GET /healthz HTTP/1.1" for a in asked)
    assert [(v.owner, v.group) for v in report.verdicts if v.status != "agree"] == []
    assert len(report.verdicts) == sum(len(b.target_groups) for b in demo_state.vpc.load_balancers)
    assert report.rebuilt == ()


@pytest.mark.lab
def test_a_simulator_calling_every_target_healthy_differs(
    demo_lab: LabNames, demo_state: DataplaneState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: a simulator whose probe finds every target healthy is told node 1
    differs (lab unhealthy, 503; simulator healthy), in the report and in W6's verdict."""
    lab = check_health(demo_state, demo_lab).lab

    def healthy(
        state: DataplaneState, balancer: LoadBalancer, group: TargetGroup, target: Target
    ) -> TargetHealth:
        return TargetHealth(target, True, "mutated: every target healthy")

    monkeypatch.setattr(engine, "_probe", healthy)
    monkeypatch.setattr(engine, "_HEALTH", {})
    local = _verdict(compare(demo_state, lab), NLB_LOCAL)
    assert local.status == "differs"
    (difference,) = local.differences
    assert difference.startswith("i-0a11c0ffee0000050 (192.168.1.50:30082, " + NODE_1)
    assert "lab unhealthy" in difference and "503" in difference
    assert "simulator healthy (mutated" in difference
    w6 = engine.walk(demo_state, "ip/203.0.113.10", "lb/default/app1-nlb-local", dport=80,
                     az="eu-west-2a")  # fmt: skip
    (found,) = health_differences(demo_state, demo_lab, w6)
    assert found.kind == "health" and found.where.endswith("i-0a11c0ffee0000050")
    assert found.expected.startswith("healthy") and found.observed.startswith("unhealthy")


@pytest.mark.lab
def test_check_answers_are_never_taken_for_a_clients(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """app1-nlb-ip keeps no client address: a target's answer to the NLB node's address goes
    back to the client its port names (`@clients`). With every check port remembered as a
    client's, the checks still pass (the node's rule for its own ports comes first); without
    that rule the same answers are taken for the client's and every check from AZ a fails."""
    balancer = _balancer(demo_state, NLB_IP)
    node = balancer.node_in("eu-west-2a")
    assert node is not None
    netns = demo_lab.attachment(nlb_place(balancer.name, node.az))
    in_a = [c for c in plan_checks(demo_state) if c.balancer == balancer.name and c.node == node]
    in_a = [replace(c, count=1) for c in in_a]
    assert len(in_a) == 2
    low, high = PROBE_PORTS
    clients = ", ".join(f"{port} : 203.0.113.10" for port in range(low, high + 1))
    nft = ["ip", "netns", "exec", netns, "nft"]
    port = next(p for p in attached_ports(demo_state) if p.eni.id == node.eni)
    try:
        system.run(
            [*nft, "-f", "-"], stdin=f"add element netdev {NLB_TABLE} clients {{ {clients} }}\n"
        )
        remembered = probe_lab(demo_state, demo_lab, in_a)
        assert all(h.healthy for h in remembered.health.values()), remembered.health
        listing = system.run([*nft, "-a", "list", "chain", "netdev", NLB_TABLE, "ingress"]).stdout
        (own,) = [line for line in listing.splitlines() if "own health checks" in line]
        # the kernel's count: a SYN-ACK and more per check took the node's own rule
        assert int(own.split("counter packets ")[1].split()[0]) >= len(in_a) * 2, own
        handle = own.rsplit("# handle ", 1)[1]
        system.run([*nft, "delete", "rule", "netdev", NLB_TABLE, "ingress", "handle", handle])
        taken = probe_lab(demo_state, demo_lab, in_a)
        assert not any(h.healthy for h in taken.health.values()), taken.health
        assert all("timed out" in h.reason for h in taken.health.values()), taken.health
    finally:
        text = nlb_attachment(demo_state, balancer, port).nft
        system.run(
            [*nft, "-f", "-"],
            stdin=f"table netdev {NLB_TABLE}\ndelete table netdev {NLB_TABLE}\n{text}",
        )
    again = probe_lab(demo_state, demo_lab, in_a)
    assert all(h.healthy for h in again.health.values())


@pytest.fixture(scope="module")
def relabelled_lab(capable: None) -> Iterator[tuple[LabNames, DataplaneState]]:
    """The demo with pod 91 relabelled out of app1 (`--set`): node 3 keeps no app1 pod."""
    from eksnet.lab.cli import load_state

    state = load_state(None, None, (f"pods.{POD_91}.labels.name=app9",))
    names = run_names("relabel")
    try:
        lifecycle.up(state, names)
        lifecycle.settle(names)
        yield names, state
    finally:
        lifecycle.down(names)


@pytest.mark.lab
def test_a_node_losing_its_last_local_pod_answers_503(
    relabelled_lab: tuple[LabNames, DataplaneState],
) -> None:
    """§3.5: when node 3's only app1 pod leaves the Service, its health server answers 503; node
    2 still answers 200, node 1 still 503; the simulator agrees on every target group. AZ b
    then has no healthy target, so its NLB node forwards nothing (cross-zone off)."""
    names, state = relabelled_lab
    report = check_health(state, names, fresh=True)
    nodes = _by_node(_verdict(report.verdicts, NLB_LOCAL))
    assert {node: healthy for node, (healthy, _) in nodes.items()} == {
        NODE_1: False, NODE_2: True, NODE_3: False,
    }  # fmt: skip
    assert "answers 503" in nodes[NODE_3][1]
    assert [(v.owner, v.group) for v in report.verdicts if v.status != "agree"] == []
    balancer = _balancer(state, NLB_LOCAL)
    in_b = [a for a in attachments(state, LabHealth(report.lab.health).probe())
            if a.place == nlb_place(balancer.name, "eu-west-2b")]  # fmt: skip
    assert "goto to_tcp80" not in in_b[0].nft
