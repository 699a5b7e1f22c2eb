"""Time the VPC fabric: walks through a big VPC, and one security-group evaluation.

The demo cluster's nodes and pods, in a VPC grown to 500 subnets, 5,000 ENIs, 200 security
groups of 50 rules each (a fifth of them group references) and a NACL of 50 rules on the nodes'
subnet. Every node ENI carries ten of the groups, and the rules a walk needs are the last ones
of the last group, so the judge scans everything before it. Then the same with fewer ENIs and
groups, to show how the cost grows.

Prints figures, never fails: budgets are read by people, not asserted (these machines are noisy).
Run: .venv/bin/python benchmarks/vpc_fabric_bench.py
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

from eksnet.controllers import build_state
from eksnet.dataplane.security import (
    ALL_PROTOCOLS,
    NACL_DEFAULT_DENY,
    NaclEntry,
    NetworkAcl,
    SecurityGroup,
    SgRule,
)
from eksnet.dataplane.state import DataplaneState, Eni, Subnet
from eksnet.model import load_cluster
from eksnet.vpc.security_groups import Headers, Tracking, judge
from eksnet.walk.engine import walk

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
NODE_1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
TCP = 6


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def report(name: str, samples: list[float], unit: str = "ms") -> float:
    median = statistics.median(samples)
    scale = 1000 if unit == "ms" else 1_000_000
    print(
        f"{name:<58} median {median * scale:9.2f} {unit}   min {min(samples) * scale:9.2f} {unit}"
        f"   (n={len(samples)})"
    )
    return median


def grown(
    state: DataplaneState, subnets: int, enis: int, groups: int, rules: int
) -> DataplaneState:
    """The demo's state in a VPC with this many subnets, ENIs and groups of `rules` rules."""
    vpc = state.vpc
    extra_subnets = [
        Subnet(
            f"s{index}",
            IPv4Network(f"10.{index // 256}.{index % 256}.0/24"),
            "az",
            "02:00:00:00:00:01",
            "rtb-public",
        )
        for index in range(subnets - len(vpc.subnets))
    ]
    group_ids = [f"sg-{index:04x}" for index in range(groups)]
    extra_enis = []
    for index in range(enis - len(vpc.enis)):
        subnet = extra_subnets[index % len(extra_subnets)]
        extra_enis.append(
            Eni(
                f"eni-{index:08x}",
                subnet.name,
                f"02:01:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}:01",
                subnet.cidr.network_address + 4 + index // len(extra_subnets),
                security_groups=(group_ids[index % groups],),
            )
        )
    made = []
    for number, group_id in enumerate(group_ids):
        rule_list = []
        for index in range(rules):
            if index % 5 == 0:
                peer = {"group": group_ids[(number + index) % groups]}
            else:
                peer = {"cidr": IPv4Network(f"172.{16 + index % 16}.{number % 256}.0/24")}
            rule_list.append(
                SgRule("ingress", TCP, 1000 + index, 1000 + index, index=index, **peer)
            )  # type: ignore[arg-type]
        made.append(SecurityGroup(group_id, tuple(rule_list)))
    # The rules the walks need, last in the last group: tcp 30080 from anywhere, all outbound.
    last = made[-1]
    made[-1] = SecurityGroup(
        last.id,
        (
            *last.rules,
            SgRule("ingress", TCP, 30080, 30080, cidr=IPv4Network("0.0.0.0/0"), index=rules),
            SgRule("ingress", ALL_PROTOCOLS, None, None, group=last.id, index=rules + 1),
            SgRule("egress", ALL_PROTOCOLS, None, None, cidr=IPv4Network("0.0.0.0/0")),
        ),
    )
    node_groups = tuple(group_ids[-10:])
    node_enis = tuple(dataclasses.replace(eni, security_groups=node_groups) for eni in vpc.enis)
    nacl_entries = [
        NaclEntry(10 + index, False, "deny", TCP, IPv4Network(f"172.31.{index}.0/24"), 1, 65535)
        for index in range(rules)
    ]
    nacl_entries += [
        NaclEntry(1000, False, "allow", ALL_PROTOCOLS, IPv4Network("0.0.0.0/0")),
        NaclEntry(1000, True, "allow", ALL_PROTOCOLS, IPv4Network("0.0.0.0/0")),
        NaclEntry(NACL_DEFAULT_DENY, False, "deny", ALL_PROTOCOLS, IPv4Network("0.0.0.0/0")),
        NaclEntry(NACL_DEFAULT_DENY, True, "deny", ALL_PROTOCOLS, IPv4Network("0.0.0.0/0")),
    ]
    acls = (
        NetworkAcl("acl-nodes", ("public-a", "public-b"), tuple(nacl_entries)),
        *(
            dataclasses.replace(
                acl, subnets=tuple(s for s in acl.subnets if s not in ("public-a", "public-b"))
            )
            for acl in vpc.network_acls
        ),
    )
    big = dataclasses.replace(
        vpc,
        subnets=vpc.subnets + tuple(extra_subnets),
        enis=node_enis + tuple(extra_enis),
        security_groups=tuple(made),
        network_acls=acls,
    )
    return dataclasses.replace(state, vpc=big)


def main() -> None:
    state = build_state(load_cluster())
    print("VPC fabric: 500 subnets, 5,000 ENIs, 200 groups × 50 rules, a 50-rule NACL")
    big = grown(state, 500, 5000, 200, 50)
    rules = sum(len(group.rules) for group in big.vpc.security_groups)
    print(f"  ({len(big.vpc.subnets)} subnets, {len(big.vpc.enis)} ENIs, {rules} SG rules)")
    first = timed(lambda: walk(big, POD_51, "ip/198.51.100.20", dport=443), 1)
    report("first walk W10 (builds the VPC's lookups)", first)
    demo_w10 = report(
        "W10 on the demo VPC", timed(lambda: walk(state, POD_51, "ip/198.51.100.20", dport=443), 30)
    )
    big_w10 = report(
        "W10 in the big VPC", timed(lambda: walk(big, POD_51, "ip/198.51.100.20", dport=443), 30)
    )
    big_w4 = report(
        "W4 (client → NodePort, 3 branches) in the big VPC",
        timed(lambda: walk(big, "ip/203.0.113.10", NODE_1, dport=30080), 10),
    )
    demo_w4 = report(
        "W4 on the demo VPC", timed(lambda: walk(state, "ip/203.0.113.10", NODE_1, dport=30080), 10)
    )
    print(f"  big/demo: W10 {big_w10 / demo_w10:.2f}×, W4 {big_w4 / demo_w4:.2f}×")
    eni = big.vpc.eni("eni-01a00000000000050")
    worst = Headers(TCP, IPv4Address("203.0.113.10"), eni.primary_ip, 51000, 30080)
    miss = Headers(TCP, IPv4Address("203.0.113.10"), eni.primary_ip, 51000, 9)
    report(
        "one SG evaluation, allowed by the last rule (µs)",
        timed(lambda: judge(big.vpc, eni, "ingress", worst, Tracking()), 2000),
        "µs",
    )
    report(
        "one SG evaluation, refused (every rule, µs)",
        timed(lambda: judge(big.vpc, eni, "ingress", miss, Tracking()), 2000),
        "µs",
    )
    print("growth (one refused evaluation on a node ENI carrying 10 groups):")
    for subnets, enis, groups, per in (
        (100, 1000, 50, 50),
        (500, 5000, 200, 50),
        (500, 5000, 200, 100),
        (500, 10000, 200, 50),
    ):
        grown_state = grown(state, subnets, enis, groups, per)
        node_eni = grown_state.vpc.eni("eni-01a00000000000050")
        judge(grown_state.vpc, node_eni, "ingress", miss, Tracking())  # build the lookups
        cost = statistics.median(
            timed(
                lambda v=grown_state.vpc, e=node_eni: judge(v, e, "ingress", miss, Tracking()),  # type: ignore[misc]
                1000,
            )
        )
        print(f"  {enis:>6} ENIs, {groups:>4} groups × {per:>3} rules: {cost * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
