"""Lab up / verify / down times for the demo cluster and a generated 50-node, 1,000-pod cluster,
next to a bare `ip -batch` build of the same namespaces and links, in the same run.

    sudo python benchmarks/lab_bench.py [--nodes 50] [--pods-per-node 20] [--repeat 3]

Its namespaces carry the prefix `$EKSNET_LAB_PREFIX` (default `eksnet-lab-bench-`), so two runs on
one machine, or a run beside a user's lab, do not delete each other's namespaces.

The big cluster's `DataplaneState` is generated here directly, shaped like the VPC CNI's (two
ENIs per node, pods alternating between them, 512/1536 rules, per-ENI table, a permanent
neighbour per pod, ipamd's iptables rules): the lab only reads the state, so how the state was
made does not matter. "bare" is the lab's creation work alone: `netns add` for every namespace
and `link add` for every veth pair, straight into the namespaces, as one host `ip -batch`.
`lab up` runs the same lines cut into steps, configuring each step's namespaces while the next
is created (lifecycle.apply_plan). Each figure is the median of `--repeat` rounds, each build
started on a quiet machine, bare and lab in alternating order (see `quiet`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from eksnet.dataplane.state import (
    Address,
    DataplaneState,
    Eni,
    Iptables,
    Link,
    LinkPeer,
    Namespace,
    Neighbour,
    Route,
    Rule,
    Subnet,
    VpcState,
)
from eksnet.lab import lifecycle, system
from eksnet.lab.names import PREFIX_ENV, LabNames
from eksnet.lab.plan import build_plan
from eksnet.lab.verify import verify_walk
from eksnet.walk.model import Disposition, Endpoint, Flow, Hop, Packet, Step, Walk, Where

LO = Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536, qlen=1000)
SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.rp_filter", "1"),
    ("net.ipv4.conf.default.rp_filter", "1"),
)


def _mac(prefix: int, address: IPv4Address) -> str:
    octets = [prefix, 0, *address.packed]
    return ":".join(f"{o:02x}" for o in octets)


def _iptables(node_ip: IPv4Address) -> Iptables:
    return Iptables(
        "legacy",
        "\n".join(
            [
                "*mangle",
                ":PREROUTING ACCEPT [0:0]",
                ":INPUT ACCEPT [0:0]",
                ":FORWARD ACCEPT [0:0]",
                ":OUTPUT ACCEPT [0:0]",
                ":POSTROUTING ACCEPT [0:0]",
                '-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" '
                "-m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80",
                '-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK '
                "--restore-mark --nfmask 0x80 --ctmask 0x80",
                "COMMIT",
                "*nat",
                ":PREROUTING ACCEPT [0:0]",
                ":INPUT ACCEPT [0:0]",
                ":OUTPUT ACCEPT [0:0]",
                ":POSTROUTING ACCEPT [0:0]",
                ":AWS-SNAT-CHAIN-0 - [0:0]",
                '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0',
                "-A AWS-SNAT-CHAIN-0 -d 10.0.0.0/16 "
                '-m comment --comment "AWS SNAT CHAIN" -j RETURN',
                '-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! '
                f"--dst-type LOCAL -j SNAT --to-source {node_ip} --random-fully",
                "COMMIT",
                "",
            ]
        ),
    )


def generated_state(nodes: int, pods_per_node: int) -> DataplaneState:
    subnets = (
        Subnet("a", IPv4Network("10.0.0.0/18"), "az-a", "02:00:0a:00:00:01", "rtb"),
        Subnet("b", IPv4Network("10.0.64.0/18"), "az-b", "02:00:0a:00:40:01", "rtb"),
    )
    namespaces: list[Namespace] = []
    enis: list[Eni] = []
    for n in range(nodes):
        subnet = subnets[n % 2]
        base = subnet.cidr.network_address + 256 * (n // 2 + 1)
        gateway = subnet.gateway
        eth0_ip, eth1_ip = base + 10, base + 20
        name = f"ip-{str(eth0_ip).replace('.', '-')}.bench.internal"
        pods = [(base + 100 + p, "eth0" if p % 2 == 0 else "eth1") for p in range(pods_per_node)]
        links = [
            LO,
            Link(2, "eth0", "device", _mac(0x02, eth0_ip), 9001, qdisc="mq", qlen=1000),
            Link(3, "eth1", "device", _mac(0x02, eth1_ip), 9001, qdisc="mq", qlen=1000),
        ]
        routes = [
            Route(254, IPv4Network("0.0.0.0/0"), gateway=gateway, dev="eth0"),
            Route(254, subnet.cidr, dev="eth0", proto="kernel", scope="link", src=eth0_ip),
            Route(2, IPv4Network(f"{gateway}/32"), dev="eth1", scope="link"),
            Route(2, IPv4Network("0.0.0.0/0"), gateway=gateway, dev="eth1"),
        ]
        rules = [Rule(0, table=255), Rule(1024, table=254, fwmark=0x80, fwmask=0x80)]
        tail = []
        for index, (ip, eni) in enumerate(pods):
            veth = f"enib{n:04d}{index:05d}"
            pod_ns = f"cni-bench-{n:03d}-{index:03d}"
            links.append(
                Link(
                    10 + index,
                    veth,
                    "veth",
                    _mac(0x2E, ip),
                    9001,
                    peer=LinkPeer(3, "eth0", netns=pod_ns),
                )
            )
            routes.append(Route(254, IPv4Network(f"{ip}/32"), dev=veth, scope="link"))
            rules.append(Rule(512, table=254, dst=IPv4Network(f"{ip}/32")))
            if eni == "eth1":
                tail.append(Rule(1536, table=2, src=IPv4Network(f"{ip}/32")))
            namespaces.append(
                Namespace(
                    name=pod_ns,
                    kind="pod",
                    owner=f"bench/pod-{n}-{index}",
                    links=(
                        LO,
                        Link(
                            3,
                            "eth0",
                            "veth",
                            _mac(0x2A, ip),
                            9001,
                            peer=LinkPeer(10 + index, veth, netnsid=0),
                        ),
                    ),
                    addresses=(Address("eth0", IPv4Interface(f"{ip}/32")),),
                    routes=(
                        Route(254, IPv4Network("169.254.1.1/32"), dev="eth0", scope="link"),
                        Route(
                            254,
                            IPv4Network("0.0.0.0/0"),
                            gateway=IPv4Address("169.254.1.1"),
                            dev="eth0",
                        ),
                    ),
                    neighbours=(Neighbour(IPv4Address("169.254.1.1"), "eth0", _mac(0x2E, ip)),),
                    sysctls=SYSCTLS,
                )
            )
        prefix = subnet.cidr.prefixlen
        broadcast = subnet.cidr.broadcast_address
        namespaces.append(
            Namespace(
                name=name,
                kind="node",
                owner=name,
                links=tuple(links),
                addresses=(
                    Address("eth0", IPv4Interface(f"{eth0_ip}/{prefix}"), broadcast=broadcast),
                    Address("eth1", IPv4Interface(f"{eth1_ip}/{prefix}"), broadcast=broadcast),
                ),
                routes=tuple(routes),
                rules=(*rules, *tail, Rule(32766, table=254), Rule(32767, table=253)),
                sysctls=(*SYSCTLS, ("net.ipv4.conf.eth0.rp_filter", "2")),
                iptables=_iptables(eth0_ip),
            )
        )
        enis.append(
            Eni(
                f"eni-{n}-0",
                subnet.name,
                _mac(0x02, eth0_ip),
                eth0_ip,
                tuple(ip for ip, e in pods if e == "eth0"),
                node=name,
                device="eth0",
            )
        )
        enis.append(
            Eni(
                f"eni-{n}-1",
                subnet.name,
                _mac(0x02, eth1_ip),
                eth1_ip,
                tuple(ip for ip, e in pods if e == "eth1"),
                node=name,
                device="eth1",
            )
        )
    vpc = VpcState("vpc-bench", (IPv4Network("10.0.0.0/16"),), subnets, tuple(enis))
    return DataplaneState(tuple(namespaces), vpc)


def cross_node_walk(state: DataplaneState) -> Walk:
    """The first pod of node 0 (eth0) to the second pod of node 1 (eth1): W2's shape, checked
    only for delivery, the hop-by-hop comparison being the demo's job."""
    pods = state.pods()
    src, dst = pods[0], next(p for p in pods if p.name.startswith("cni-bench-001-001"))
    a, b = IPv4Address(src.addresses[0].interface.ip), IPv4Address(dst.addresses[0].interface.ip)
    flow = Flow(Endpoint("pod", src.owner, a), Endpoint("pod", dst.owner, b), "tcp", 41000, 80)
    where_a, where_b = Where("pod", src.name), Where("pod", dst.name)
    syn = Packet(a, b, "tcp", 41000, 80, tcp_flags="S")
    return Walk(
        flow,
        "forward",
        (
            Hop(where_a, None, "eth0", (Step("originate", "sent"),), None, None),
            Hop(where_b, "eth0", None, (Step("deliver", "delivered"),), syn, None),
        ),
        Disposition("delivered", where_b, "socket"),
    )


def quiet(timeout: float = 20.0) -> None:
    """Wait until the machine is idle: the kernel destroys deleted namespaces in the background
    (`cleanup_net`, about a millisecond each), and a build measured while it still runs competes
    with it for the CPUs and the RTNL lock. Idle: at least 90% idle CPU over 0.3 s, twice."""
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2 and time.monotonic() < deadline:
        busy0, total0 = _cpu()
        time.sleep(0.3)
        busy1, total1 = _cpu()
        calm = calm + 1 if (busy1 - busy0) <= 0.1 * max(1, total1 - total0) else 0


def _cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat (idle and iowait count as idle)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def bare_build(state: DataplaneState, names: LabNames) -> float:
    plan = build_plan(state, names)
    start = time.perf_counter()
    system.ip_batch(None, plan.host_batch)
    elapsed = time.perf_counter() - start
    lifecycle.down(names)
    return elapsed


@dataclass
class LabRun:
    up: float
    phases: dict[str, float]
    settle: float
    verify: float
    verdict: str
    down: float
    count: int


def lab_run(state: DataplaneState, walk: Walk | None, names: LabNames) -> LabRun:
    start = time.perf_counter()
    timings = lifecycle.up(state, names)
    up = time.perf_counter() - start
    settle = lifecycle.settle(names, timeout=30)
    verify = float("nan")
    verdict = "—"
    if walk is not None:
        start = time.perf_counter()
        found = verify_walk(state, walk, names)
        verify = time.perf_counter() - start
        if walk.hops[0].packet_out is None:  # the generated walk: delivery only
            lost = [d for d in found.differences if d.kind == "disposition"]
            verdict = "delivered" if not lost else "NOT DELIVERED"
        else:
            verdict = "agree" if found.agree else f"DIFFERS {found.unexplained()[:2]}"
    start = time.perf_counter()
    count = lifecycle.down(names)
    down = time.perf_counter() - start
    return LabRun(up, dict(timings.phases), settle, verify, verdict, down, count)


def measure(
    label: str, state: DataplaneState, walk: Walk | None, names: LabNames, repeat: int
) -> None:
    """`repeat` rounds of a bare build and a lab run, each after the machine is quiet, in
    alternating order; the medians are reported, and every run's figures below them."""
    lifecycle.down(names)
    bares: list[float] = []
    runs: list[LabRun] = []
    for number in range(repeat):
        for which in ("bare", "lab") if number % 2 == 0 else ("lab", "bare"):
            quiet()
            if which == "bare":
                bares.append(bare_build(state, names))
            else:
                runs.append(lab_run(state, walk, names))
    bare, up = statistics.median(bares), statistics.median(r.up for r in runs)
    print(
        f"{label:<28} namespaces {runs[0].count:>5}  bare {bare:6.2f} s  up {up:6.2f} s "
        f"({up / bare:4.2f}× bare)  DAD settle {statistics.median(r.settle for r in runs):5.2f} s"
        f"  verify {statistics.median(r.verify for r in runs):5.2f} s "
        f"[{', '.join(sorted({r.verdict for r in runs}))}]  "
        f"down {statistics.median(r.down for r in runs):6.2f} s",
        flush=True,
    )
    for number, (b, run) in enumerate(zip(bares, runs, strict=True), start=1):
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in run.phases.items())
        print(
            f"{'':<28} run {number}: bare {b:.2f} s, up {run.up:.2f} s ({run.up / b:.2f}×); "
            f"busy: {phases}",
            flush=True,
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--pods-per-node", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per cluster (medians)")
    args = parser.parse_args(argv)
    system.require_capabilities()
    names = LabNames(os.environ.get(PREFIX_ENV, "eksnet-lab-bench-"))
    from eksnet.lab.cli import load_state

    demo = load_state(None)
    demo_walk: Walk | None = None
    try:
        sys.path.insert(0, ".")
        from tests.lab.walks import w1

        demo_walk = w1()
    except ImportError:
        pass
    measure("demo (talk)", demo, demo_walk, names, args.repeat)
    big = generated_state(args.nodes, args.pods_per_node)
    label = f"{args.nodes} nodes, {len(big.pods())} pods"
    measure(label, big, cross_node_walk(big), names, args.repeat)


if __name__ == "__main__":
    main(sys.argv[1:])
