"""The load balancer walks and `describe` through the installed `eksnet` (issue 10's done-when
command; expected values from talk-walks.md W8 and aws-load-balancers.md §1, §3)."""

from __future__ import annotations

import json

from tests.cli.test_errors import assert_one_error_line
from tests.entry_point import run_eksnet

eksnet = run_eksnet


def test_the_ingress_walk_of_the_done_when() -> None:
    result = eksnet(
        "walk", "ip/203.0.113.10", "ingress/default/myingress",
        "--host", "www.example.com", "--path", "/rating", "--port", "80",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "priority 1 (host-header www.example.com AND path-pattern /rating or /rating/*)" in out
    assert "a new connection from 192.168.1.141:" in out
    assert "X-Forwarded-For: 203.0.113.10" in out
    assert "node 1 (ip-192-168-1-50.eu-west-2.compute.internal)  eth1 → eni69e05c2a0e5" in out
    assert "rule 1536 → table 2 → eth1 via 192.168.1.1" in out
    assert "⇒ delivered: delivered to client (203.0.113.10:51000)" in out


def test_describe_shows_health_from_the_data_plane() -> None:
    result = eksnet("exec", "lb/default/app1-nlb-local", "--", "describe")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    (balancer,) = document["LoadBalancers"]
    assert (balancer["Type"], balancer["Scheme"]) == ("network", "internet-facing")
    (health,) = document["TargetHealthDescriptions"].values()
    states = {item["Target"]["Id"]: item["TargetHealth"]["State"] for item in health}
    # talk-walks.md §2.7: node 1 has no local endpoint (503), nodes 2 and 3 have
    assert states == {
        "i-0a11c0ffee0000050": "unhealthy",
        "i-0a11c0ffee0000070": "healthy",
        "i-0a11c0ffee0000090": "healthy",
    }
    alb = json.loads(eksnet("exec", "ingress/default/myingress", "--", "describe").stdout)
    assert [rule["Priority"] for rule in alb["Rules"]] == ["1", "2", "default"]
    assert alb["Rules"][-1]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"


def test_load_balancer_mistakes_are_one_line() -> None:
    assert_one_error_line(
        eksnet("exec", "lb/default/app1-nlb", "--", "ip", "a"), "eksnet: lb/default/app1-nlb"
    )
    assert_one_error_line(
        eksnet("walk", "ip/203.0.113.10", "lb/default/app1-nlb", "--az", "eu-west-2z"),
        "eksnet: lb/default/app1-nlb has no node in eu-west-2z",
    )
    assert_one_error_line(
        eksnet("walk", "ip/203.0.113.10", "dns/nothing.example.com"),
        "eksnet: dns/nothing.example.com: the spec's dns has no such name",
    )
