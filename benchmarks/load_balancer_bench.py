"""Time the load balancer controllers and a walk through an ALB, in a cluster of 200
LoadBalancer Services and 50 Ingresses of 20 paths each (1,000 listener rules).

The demo cluster, its VPC given three /20 subnets for the load balancers' nodes, 200 in-tree
NLB Services (`app1`'s pods) and 50 internet-facing Ingresses with ip targets whose paths all
lead to `order`; each load balancer pinned in three AZs. Figures: the controllers' time (every
load balancer built from the spec), one Ingress walk whose request matches the last rule of
the last Ingress (the first walk probes its targets' health; later ones reuse it), and both
again with a fifth of the Services and Ingresses, to show how they grow.

Prints figures, never fails: budgets are read by people, not asserted (these machines are noisy).
Run: .venv/bin/python benchmarks/load_balancer_bench.py
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import yaml

from eksnet.controllers import build_state, load_balancers
from eksnet.model.load import demo_text, parse_cluster
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk
from vpc_fabric_bench import report, timed

ZONES = {"eu-west-2a": 16, "eu-west-2b": 32, "eu-west-2c": 48}
"""Each AZ's load balancer subnet: 192.168.<n>.0/20."""
PATHS = 20


def _address(zone: str, number: int) -> tuple[str, str]:
    base = int(IPv4Address(f"192.168.{ZONES[zone]}.0")) + 10 + number
    public = int(IPv4Address("198.18.0.0")) + number * 4 + list(ZONES).index(zone)
    return str(IPv4Address(base)), str(IPv4Address(public))


def grown_spec(services: int, ingresses: int) -> str:
    text, _ = demo_text()
    spec: dict[str, Any] = yaml.safe_load(text)
    # one configuration: drop the what-ifs and what only they declare
    spec.pop("variants", None)
    spec["vpc"]["subnets"] = [s for s in spec["vpc"]["subnets"] if "variant" not in s]
    spec["vpc"].pop("natGateways", None)
    for zone, octet in ZONES.items():
        spec["vpc"]["subnets"].append(
            {"name": f"lb-{zone[-1]}", "az": zone, "cidr": f"192.168.{octet}.0/20",
             "routeTable": "rtb-public"}
        )  # fmt: skip
    number = 0
    for index in range(services):
        name = f"bench-nlb-{index}"
        spec["services"].append(
            {"name": name, "type": "LoadBalancer",
             "clusterIP": f"10.100.{10 + index // 250}.{index % 250 + 1}",
             "ports": [{"port": 80, "targetPort": 80, "nodePort": 31000 + index}],
             "selector": {"name": "app1"},
             "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}}
        )  # fmt: skip
        spec["loadBalancers"].append(
            {"for": f"service/{name}", "kind": "nlb",
             "ips": {zone: list(_address(zone, number)) for zone in ZONES}}
        )  # fmt: skip
        number += 1
    for index in range(ingresses):
        name = f"bench-ingress-{index}"
        paths = [
            {"path": f"/p{index}/{n:02d}", "pathType": "Prefix",
             "backend": {"service": {"name": "order", "port": {"number": 80}}}}
            for n in range(PATHS)
        ]  # fmt: skip
        spec["ingresses"].append(
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
             "metadata": {"name": name, "namespace": "default",
                          "annotations": {"alb.ingress.kubernetes.io/scheme": "internet-facing",
                                          "alb.ingress.kubernetes.io/target-type": "ip"}},
             "spec": {"ingressClassName": "alb",
                      "rules": [{"host": "bench.example.com", "http": {"paths": paths}}]}}
        )  # fmt: skip
        spec["loadBalancers"].append(
            {"for": f"ingress/{name}", "kind": "alb",
             "ips": {zone: list(_address(zone, number)) for zone in ZONES}}
        )  # fmt: skip
        number += 1
    return yaml.safe_dump(spec, sort_keys=False)


def measure(services: int, ingresses: int) -> tuple[float, float]:
    cluster = parse_cluster(grown_spec(services, ingresses), "bench.yaml")
    built = load_balancers.build(cluster)
    rules = sum(
        rule.priority is not None
        for lb in built.load_balancers
        for listener in lb.listeners
        for rule in listener.rules
    )
    label = f"{services} LB Services, {ingresses} Ingresses ({rules} rules)"
    controllers = report(f"controllers: {label}", timed(lambda: load_balancers.build(cluster), 5))
    state = build_state(cluster)
    last = f"ingress/default/bench-ingress-{ingresses - 1}"
    path = f"/p{ingresses - 1}/{PATHS - 1:02d}/x"

    def one() -> Walk:
        return walk(state, "ip/203.0.113.10", last, dport=80, host="bench.example.com", path=path)

    ways = {leaf.disposition.kind for _, _, leaf in one().leaves() if leaf.disposition}
    assert ways == {"delivered"}, ways

    report("  first Ingress walk (its targets' health probed)", timed(one, 1))
    walked = report("  Ingress walk, health known (the last rule matches)", timed(one, 7))
    return controllers, walked


def main() -> None:
    small = measure(40, 10)
    big = measure(200, 50)
    print(
        f"growth ×5 in Services, Ingresses and rules: controllers ×{big[0] / small[0]:.2f}, "
        f"walk ×{big[1] / small[1]:.2f}"
    )


if __name__ == "__main__":
    main()
