"""An ALB's HTTP in the lab: a real proxy on the ALB node, servers on the targets, the walk's
request from the client (`lab.verify.http_check`), and the proxy's own rule matching held to
the simulator's on a table of requests (aws-load-balancers.md §1.4)."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest

from eksnet.dataplane.load_balancers import Listener, ListenerRule
from eksnet.dataplane.state import DataplaneState
from eksnet.lab.names import LabNames
from eksnet.lab.verify import http_check
from eksnet.walk.engine import walk
from eksnet.walk.load_balancing import HttpRequest, rule_for

CLIENT = "ip/203.0.113.10"
INGRESS = "ingress/default/myingress"


def _http_agent() -> object:
    path = Path(__file__).parents[2] / "src" / "eksnet" / "lab" / "http_agent.py"
    spec = importlib.util.spec_from_file_location("http_agent", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LISTENER = Listener(
    "HTTP",
    80,
    None,
    (
        ListenerRule(1, "www.example.com", ("/rating", "/rating/*"), "rating"),
        ListenerRule(2, "*.example.com", ("/order", "/order/*"), "order"),
        ListenerRule(3, None, ("/x?",), "short"),
        ListenerRule(None, None, (), None, fixed_response=404),
    ),
)


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("www.example.com", "/rating"),
        ("WWW.example.com", "/rating/5?q=1"),
        ("www.example.com", "/Rating"),
        ("api.example.com", "/order/1"),
        ("example.com", "/order"),
        ("www.example.com", "/orders"),
        (None, "/xy"),
        (None, "/xyz"),
        ("www.example.com:80", "/rating"),
    ],
)
def test_the_labs_proxy_matches_rules_as_the_simulator_does(host: str | None, path: str) -> None:
    agent = _http_agent()
    rules = [
        {"status": 404}
        if rule.target_group is None
        else {"host": rule.host, "paths": list(rule.paths), "targets": [[rule.target_group, 1]]}
        for rule in LISTENER.rules
    ]
    picked = agent._rule(rules, host, path)  # type: ignore[attr-defined]
    expected = rule_for(LISTENER, HttpRequest(host, path))
    assert picked.get("targets", [[None]])[0][0] == expected.target_group


@pytest.mark.lab
def test_the_alb_proxies_the_request_for_real(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """W8b: the request reaches pod 61 from the ALB node's address with X-Forwarded-For; /nope
    is answered 404 by the proxy and reaches nobody."""
    rating = walk(demo_state, CLIENT, INGRESS, dport=80, host="www.example.com", path="/rating")
    assert http_check(demo_state, demo_lab, rating) == []
    nope = walk(demo_state, CLIENT, INGRESS, dport=80, host="www.example.com", path="/nope")
    assert http_check(demo_state, demo_lab, nope) == []


@pytest.mark.lab
def test_a_request_the_walk_sends_elsewhere_is_caught(
    demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """The order walk, but the lab's client asks for /rating: the lab's proxy goes to pod 61,
    which is no target of the walk's ways."""
    order = walk(demo_state, CLIENT, INGRESS, dport=80, host="www.example.com", path="/order")
    wrong = replace(order, flow=replace(order.flow, http=("www.example.com", "/rating")))
    found = http_check(demo_state, demo_lab, wrong)
    assert [(d.kind, d.observed) for d in found] == [("http:target", "192.168.1.61:80")]
