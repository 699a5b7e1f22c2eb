"""kube-proxy at scale: a node with 10,000 Services × 2 endpoints and 5,000 NodePorts.

    sudo .venv/bin/python benchmarks/kube_proxy_bench.py [--services 10000] [--node-ports 5000]
        [--connects 300] [--controller-timeout 120]

Prints figures, never fails: budgets are read by people, not asserted; every ratio is measured
in this one run (these machines are noisy, and both sides of a ratio share the noise).

1. The node's iptables-save text. The kube-proxy controller (`controllers/kube_proxy.py`) is
   tried first, in a child process with a time limit, on the demo cluster plus the generated
   Services and EndpointSlices; the time it took (or that it did not finish, with its time for
   250 and 500 Services) is printed. Without a finished controller the text is generated here,
   in kube-proxy's exact form (kube-proxy.md §3.2, §6.3 save form, large-cluster mode without
   per-endpoint comments; each line was checked equal to the controller's for 600 Services).
2. Parse: `parse_ruleset` of that text vs `iptables-restore` of the same text into a
   throw-away namespace (goal: parse ≤ 0.5× restore), both back ends.
3. Memory of the parsed ruleset (tracemalloc: what stays allocated).
4. First-packet cost. The kernel's: the median latency of a TCP connect from a namespace to a
   ClusterIP that nat OUTPUT DNATs to a listener in the same namespace, with the 10k-Service
   rules minus with only that Service's rules (the last Service in KUBE-SERVICES, which the
   kernel finds after scanning all others; the first is shown too). The model's: one walk's
   netfilter evaluation of the same first packet, all load-balanced branches, through a
   node namespace holding the same rules (`walk.netfilter.Passage`: conntrack, every table of
   OUTPUT and POSTROUTING, the NAT binding and the walk's steps), and a pod's first packet to
   the ClusterIP through PREROUTING, FORWARD and POSTROUTING; steady state (the chains'
   indexes built) and the first walk (indexes built on the way). Goal: faster than the kernel.

Lab parts need root and iptables/ip; without them those figures are reported as not measured.
Namespaces are `eksnet-lab-scratch-bench-<random>-*`, deleted at the end.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

from eksnet.dataplane.state import Iptables, Namespace
from eksnet.kernel.hooks import HOOK_ORDER, Hook
from eksnet.kernel.netfilter import NfEnv, NfOutcome, NfPacket, Ruleset, parse_ruleset, traverse
from eksnet.kernel.netfilter.index import INDEX_MIN_RULES
from eksnet.kernel.netfilter.parse import forget_rules
from eksnet.walk.model import Packet
from eksnet.walk.netfilter import Passage

NODE = "ip-192-168-1-50.eu-west-2.compute.internal"
LOCALHOST_COUNTER = "localhost_nps_accepted_pkts"


# --- the node's rules -----------------------------------------------------------------------


def chain_hash(text: str) -> str:
    """kube-proxy's chain-name hash (kube-proxy.md §2)."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def cluster_ip(index: int) -> str:
    return f"172.20.{16 + (index >> 8)}.{index & 255}"


def endpoints(index: int) -> list[str]:
    return sorted(f"10.{first + (index >> 16)}.{(index >> 8) & 255}.{index & 255}:8080"
                  for first in (1, 3))  # fmt: skip


def generated_rules(services: Sequence[int], node_ports: int) -> str:
    """A node's `iptables-save` as kube-proxy (no detector, EKS defaults, nfacct, --random-fully,
    large-cluster mode) leaves it for Services `default/svc-NNNNN` port `http` 80/TCP, two
    endpoints each, the first `node_ports` of them NodePorts 30000+i with eTP=Cluster; chains
    declared and rules grouped in iptables-save's order."""
    nat: dict[str, list[str]] = {}
    services_rules: list[str] = []
    nodeport_rules: list[str] = []
    for i in services:
        name = f"default/svc-{i:05d}:http"
        suffix = chain_hash(name + "tcp")
        svc, ext = f"KUBE-SVC-{suffix}", f"KUBE-EXT-{suffix}"
        services_rules.append(
            f"-A KUBE-SERVICES -d {cluster_ip(i)}/32 -p tcp -m comment --comment "
            f'"{name} cluster IP" -m tcp --dport 80 -j {svc}'
        )
        nat[svc] = []
        for k, endpoint in enumerate(endpoints(i)):
            sep = f"KUBE-SEP-{chain_hash(name + 'tcp' + endpoint)}"
            draw = "-m statistic --mode random --probability 0.50000000000 " if k == 0 else ""
            nat[svc].append(f"-A {svc} {draw}-j {sep}")
            nat[sep] = [
                f"-A {sep} -s {endpoint.split(':')[0]}/32 -j KUBE-MARK-MASQ",
                f"-A {sep} -p tcp -m tcp -j DNAT --to-destination {endpoint}",
            ]
        if i < node_ports:
            comment = f'-m comment --comment "{name}"'
            nodeport_rules += [
                f"-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp {comment} -m tcp --dport {30000 + i} "
                f"-m nfacct --nfacct-name  {LOCALHOST_COUNTER} -j {ext}",
                f"-A KUBE-NODEPORTS -p tcp {comment} -m tcp --dport {30000 + i} -j {ext}",
            ]
            nat[ext] = [
                f'-A {ext} -m comment --comment "masquerade traffic for {name} external '
                f'destinations" -j KUBE-MARK-MASQ',
                f"-A {ext} -j {svc}",
            ]
    services_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
        'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    nat["KUBE-SERVICES"] = services_rules
    nat["KUBE-NODEPORTS"] = nodeport_rules
    nat["KUBE-MARK-MASQ"] = ["-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"]
    nat["KUBE-POSTROUTING"] = [
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    ]
    chains = sorted(nat)
    lines = [
        "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":KUBE-FORWARD - [0:0]",
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark '
        "0x4000/0x4000 -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
        "--ctstate RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT",
        "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]", *(f":{chain} - [0:0]" for chain in chains),
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ]  # fmt: skip
    for chain in chains:
        lines += nat[chain]
    return "\n".join([*lines, "COMMIT", ""])


CONTROLLER = textwrap.dedent(
    """\
    import json, sys, time
    from eksnet.controllers import build_state, kube_proxy, kube_proxy_version
    from eksnet.controllers import cluster as assembly
    from eksnet.controllers.vpc_cni_version import features, settings
    from eksnet.model import load_cluster
    from eksnet.model.kubernetes import EndpointSliceManifest, ServiceShorthand
    count, node_ports, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    cluster = load_cluster()
    services, slices = [], []
    for i in range(count):
        port = {"name": "http", "port": 80, "targetPort": 8080}
        if i < node_ports:
            port["nodePort"] = 30000 + i
        services.append(ServiceShorthand.model_validate({
            "name": f"svc-{i:05d}", "type": "NodePort" if i < node_ports else "ClusterIP",
            "clusterIP": f"172.20.{16 + (i >> 8)}.{i & 255}", "ports": [port]}))
        slices.append(EndpointSliceManifest.model_validate({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i:05d}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": f"svc-{i:05d}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.{f + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"]}
                          for f in (1, 3)],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}))
    kubernetes = cluster.kubernetes.model_copy(
        update={"service_cidr": "172.20.0.0/16", "service_node_port_range": "30000-39999"})
    # the demo's Ingress, load balancers and DNS name Services this cluster no longer has
    big = cluster.model_copy(update={"services": services, "endpoint_slices": slices,
                                     "kubernetes": kubernetes, "ingresses": [],
                                     "load_balancers": [], "dns": []})
    start = time.perf_counter()
    state = build_state(big)
    took = time.perf_counter() - start
    node = next(ns for ns in state.namespaces if ns.name == sys.argv[4])
    open(out, "w").write(node.iptables.save)
    # One node's iptables state on its own, as a fresh process would build it: the Service
    # ports (shared by all nodes), kube-proxy's rules for the node, the merged tables' text.
    kube_proxy._hash.cache_clear()
    spec = big.node(sys.argv[4])
    primary = next(eni for eni in spec.enis if eni.device == 0)
    start = time.perf_counter()
    proxier = kube_proxy_version.settings(big, spec)
    ports = kube_proxy.service_ports(big, proxier)
    middle = time.perf_counter()
    rules = kube_proxy.proxy_rules(big, spec, proxier, ports)
    cni = features(big.cni.version)
    text = assembly._iptables_save(big, primary, cni, settings(big.cni.env, cni), rules)
    done = time.perf_counter()
    assert text == node.iptables.save
    configurations = 1 + len(big.variants)
    print(json.dumps({"whole": took, "node": done - start, "ports": middle - start,
                      "nodes": len(big.nodes), "configurations": configurations}))
    """
)


CONTROLLER_FIGURES: dict[str, float] = {}
"""The last controller run's timings (seconds): whole state, one node, its Service ports."""


def controller_rules(count: int, node_ports: int, timeout: float) -> tuple[str | None, str]:
    """The controller's text for the node and what to print about it (None: it did not
    finish in `timeout` seconds)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "rules")
        command = [sys.executable, "-c", CONTROLLER, str(count), str(node_ports), out, NODE]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"did not finish within {timeout:.0f} s"
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"failed: {last}"
        figures = json.loads(done.stdout)
        CONTROLLER_FIGURES.update(figures)
        with open(out) as handle:
            return handle.read(), (
                f"built the whole demo state ({figures['nodes']} nodes × "
                f"{figures['configurations']} configurations) in {figures['whole']:.2f} s; "
                f"one node's iptables state alone in {figures['node']:.2f} s "
                f"(of which the Service ports, shared by all nodes, {figures['ports']:.2f} s)"
            )


def controller_scaling(timeout: float) -> str:
    """The controller's build time for 250 and 500 Services (to show how it grows)."""
    figures = []
    for count in (250, 500):
        _, said = controller_rules(count, count // 2, timeout)
        figures.append(f"{count} Services: {said}")
    return "; ".join(figures)


# --- timing helpers ---------------------------------------------------------------------------


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def figure(name: str, seconds: float, extra: str = "") -> None:
    if seconds >= 0.1:
        shown = f"{seconds:9.3f} s "
    elif seconds >= 1e-4:
        shown = f"{seconds * 1e3:9.3f} ms"
    else:
        shown = f"{seconds * 1e6:9.1f} µs"
    print(f"  {name:<64} {shown}{('   ' + extra) if extra else ''}")


def ratio(name: str, value: float, goal: str = "") -> None:
    print(f"  {name:<64} {value:9.2f}× {('   ' + goal) if goal else ''}")


# --- the lab ----------------------------------------------------------------------------------


def can_use_the_lab() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    missing = [
        t for t in ("ip", "iptables-restore", "iptables-legacy-restore") if not shutil.which(t)
    ]
    return f"missing {', '.join(missing)}" if missing else None


def sh(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=600, check=True
    )


class Lab:
    """Throw-away namespaces of this run, all deleted by `close`."""

    def __init__(self) -> None:
        self.prefix = f"eksnet-lab-scratch-bench-{uuid.uuid4().hex[:6]}-"
        self.made: list[str] = []
        self.children: list[subprocess.Popen[str]] = []

    def namespace(self, tag: str, text: str) -> str:
        """A fresh namespace with the nfacct objects `text`'s rules name (the kernel refuses
        `-m nfacct` rules naming a missing object, as `lab up` knows)."""
        name = self.prefix + tag
        sh("ip", "netns", "add", name)
        self.made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        if shutil.which("nfacct"):
            for counter in sorted(set(re.findall(r"--nfacct-name\s+(\S+)", text))):
                sh("ip", "netns", "exec", name, "nfacct", "add", counter)
        return name

    def close(self) -> None:
        for child in self.children:
            child.kill()
            child.wait(timeout=30)
        for name in self.made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=60)


def restore_seconds(lab: Lab, text: str, binary: str, tag: str) -> float:
    """`binary` loading `text` into a fresh namespace (no rules yet), wall time."""
    name = lab.namespace(tag, text)
    start = time.perf_counter()
    sh("ip", "netns", "exec", name, binary, stdin=text)
    return time.perf_counter() - start


LISTENER = textwrap.dedent(
    """\
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080))
    s.listen(4096)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.close()
    """
)

CLIENT = textwrap.dedent(
    """\
    import json, socket, struct, sys, time
    target, count = sys.argv[1], int(sys.argv[2])
    linger = struct.pack("ii", 1, 0)
    samples = []
    for _ in range(count + 20):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        start = time.perf_counter()
        s.connect((target, 80))
        samples.append(time.perf_counter() - start)
        s.close()
    print(json.dumps(samples[20:]))
    """
)


def connect_namespace(lab: Lab, tag: str, text: str, service: int) -> str:
    """A namespace with `text` loaded, `service`'s endpoints local, a listener on :8080 and a
    route for the ClusterIPs (over a veth pair inside the namespace)."""
    name = lab.namespace(tag, text)
    for endpoint in endpoints(service):
        sh("ip", "-n", name, "addr", "add", f"{endpoint.split(':')[0]}/32", "dev", "lo")
    sh("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    for device in ("v0", "v1"):
        sh("ip", "-n", name, "link", "set", device, "up")
    sh("ip", "-n", name, "route", "add", "172.20.0.0/16", "dev", "v0")
    sh("ip", "netns", "exec", name, "iptables-restore", stdin=text)
    listener = subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lab.children.append(listener)
    assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    return name


def connect_latency(name: str, service: int, count: int) -> list[float]:
    done = sh("ip", "netns", "exec", name, sys.executable, "-c", CLIENT, cluster_ip(service),
              str(count))  # fmt: skip
    samples: list[float] = json.loads(done.stdout)
    return samples


# --- the model's walk -------------------------------------------------------------------------


def node_namespace(text: str) -> Namespace:
    """The demo's node 1 (its devices and addresses), holding `text` as its rules."""
    from eksnet.controllers import build_state
    from eksnet.model import load_cluster

    state = build_state(load_cluster())
    node = next(ns for ns in state.namespaces if ns.name == NODE)
    return replace(node, iptables=Iptables("nft", text))


def every_branch(walk: Callable[[Callable[[str, Sequence[NfOutcome]], NfOutcome]], object]) -> int:
    """Run `walk` once per load-balanced way, as the walk engine replays a split walk: the
    first run learns how many ways the split has."""
    seen: list[int] = []

    def first(where: str, outcomes: Sequence[NfOutcome]) -> NfOutcome:
        seen.append(len(outcomes))
        return outcomes[0]

    walk(first)
    ways = max(seen, default=1)
    for way in range(1, ways):
        walk(lambda where, outcomes, way=way: outcomes[min(way, len(outcomes) - 1)])  # type: ignore[misc]
    return ways


def local_connect(namespace: Namespace, service: int) -> Callable[[Any], object]:
    """The node's own first packet to the ClusterIP, as the kernel benchmark sends it: OUTPUT
    (where nat DNATs it), then POSTROUTING towards lo. (Coming back in on lo it meets no nat
    chain: its connection's bindings are set up.)"""
    syn = Packet(IPv4Address("192.168.1.50"), IPv4Address(cluster_ip(service)), "tcp", 41000, 80,
                 tcp_flags="S")  # fmt: skip

    def run(choose: Any) -> object:
        passage = Passage({}, namespace, choose)
        out = passage.output(syn, oif="eth0")
        return passage.postrouting(out.packet, iif=None, oif="lo", nexthop=None)

    return run


def pod_to_service(namespace: Namespace, service: int) -> Callable[[Any], object]:
    """A pod's first packet to the ClusterIP, entering the node on its veth: PREROUTING,
    FORWARD, POSTROUTING."""
    veth = next(link.name for link in namespace.links if link.name.startswith("eni"))
    syn = Packet(IPv4Address("192.168.1.51"), IPv4Address(cluster_ip(service)), "tcp", 41000, 80,
                 tcp_flags="S")  # fmt: skip

    def run(choose: Any) -> object:
        passage = Passage({}, namespace, choose)
        pre = passage.prerouting(syn, iif=veth)
        forward = passage.forward(pre.packet, iif=veth, oif="eth0")
        return passage.postrouting(forward.packet, iif=veth, oif="eth0", nexthop=None)

    return run


def first_packet_rules(ruleset: Ruleset, packet: NfPacket, env: NfEnv) -> int:
    """The rule evaluation alone, as the kernel does it for the first packet: every table of
    OUTPUT then POSTROUTING in hook order, every load-balanced way on to the next table (a
    DNAT's new destination with it). Returns how many ways came out."""
    ways = [packet]
    for hook in (Hook.OUTPUT, Hook.POSTROUTING):
        if hook is Hook.POSTROUTING:
            ways = [replace(way, oif="lo") for way in ways]
        for stage in HOOK_ORDER[hook]:
            if stage.table is None or ruleset.table(stage.table) is None:
                continue  # the kernel registers no hook for a table that does not exist
            following = []
            for way in ways:
                for outcome in traverse(ruleset, stage.table, hook.value, way, env):
                    after = outcome.packet
                    request = outcome.nat
                    if request is not None and request.to_address is not None:
                        port = request.to_ports[0] if request.to_ports else after.dport
                        after = replace(after, dst=request.to_address, dport=port)
                    if outcome.verdict == "ACCEPT":
                        following.append(after)
            ways = following
    return len(ways)


def fresh_copy(text: str) -> Namespace:
    """A namespace whose ruleset is parsed anew (no index built yet): a distinct text."""
    return node_namespace(text + f"# {uuid.uuid4()}\n")


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--node-ports", type=int, default=5000)
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--controller-timeout", type=float, default=120.0)
    args = parser.parse_args()
    count, node_ports = args.services, args.node_ports
    last, first = count - 1, 0

    print(f"kube-proxy node: {count} Services × 2 endpoints, {node_ports} NodePorts")
    print("state:")
    text, said = controller_rules(count, node_ports, args.controller_timeout)
    if text is not None:
        print(f"  controllers (kube_proxy): {said}; using its iptables-save text")
    else:
        print(f"  controllers (kube_proxy): {said} for {count} Services "
              f"({controller_scaling(args.controller_timeout)})")  # fmt: skip
        start = time.perf_counter()
        text = generated_rules(range(count), node_ports)
        print(
            f"  generated here instead, in kube-proxy's form: {time.perf_counter() - start:.2f} s"
        )
    ruleset = parse_ruleset(text)
    rules = len(ruleset.rules())
    nat = ruleset.table("nat")
    longest = max((len(c.rules), c.name) for c in nat.chains) if nat else (0, "-")
    print(f"  {rules} rules, {text.count(chr(10))} lines; longest chain {longest[1]} "
          f"({longest[0]} rules, indexed from {INDEX_MIN_RULES})")  # fmt: skip

    print("parse:")
    parsed: list[Ruleset] = []  # kept until all are timed: freeing one is not parsing

    def first_read() -> None:
        forget_rules()  # every rule read anew, as a node's first dump is
        parsed.append(parse_ruleset(text))

    parse = statistics.median(timed(first_read, 3))
    parsed.clear()
    figure("parse_ruleset (median of 3)", parse)
    again = statistics.median(timed(lambda: parsed.append(parse_ruleset(text)), 3))
    figure("parse_ruleset, its rules read before (another node's dump)", again)
    gc.collect()
    tracemalloc.start()
    kept = parse_ruleset(text)
    size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  memory of the parsed ruleset (tracemalloc): {size / 2**20:.1f} MiB kept, "
          f"{peak / 2**20:.1f} MiB at the peak of parsing")  # fmt: skip
    del kept

    problem = can_use_the_lab()
    lab = Lab() if problem is None else None
    kernel: dict[str, float] = {}
    try:
        if lab is not None:
            nft = statistics.median(
                restore_seconds(lab, text, "iptables-restore", f"nft{i}") for i in range(3)
            )
            legacy = statistics.median(
                restore_seconds(lab, text, "iptables-legacy-restore", f"legacy{i}")
                for i in range(3)
            )
            figure("iptables-restore (nf_tables) into a fresh namespace (median of 3)", nft)
            figure("iptables-legacy-restore into a fresh namespace (median of 3)", legacy)
            ratio("parse / iptables-restore (nf_tables)", parse / nft, "goal ≤ 0.5×")
            ratio("parse / iptables-legacy-restore", parse / legacy)
            if "node" in CONTROLLER_FIGURES:
                build = CONTROLLER_FIGURES["node"]
                goal = "goal ≤ 0.5×"
                ratio("node's state build / iptables-restore (nf_tables)", build / nft, goal)
                ratio("node's state build / iptables-legacy-restore", build / legacy)

            print(
                "kernel first-packet cost (TCP connect to a ClusterIP, DNAT to a local listener):"
            )
            one = generated_rules([last], 0)
            full_ns = connect_namespace(lab, "connect-10k", text, last)
            none_ns = connect_namespace(lab, "connect-1", one, last)
            first_ns = connect_namespace(lab, "connect-10k-first", text, first)
            rounds: dict[str, list[float]] = {"10k": [], "1": [], "10k-first": []}
            for _ in range(3):  # interleaved, so drift hits all alike
                rounds["10k"] += connect_latency(full_ns, last, args.connects)
                rounds["1"] += connect_latency(none_ns, last, args.connects)
                rounds["10k-first"] += connect_latency(first_ns, first, args.connects)
            kernel = {key: statistics.median(values) for key, values in rounds.items()}
            figure(f"connect, {count} Services, the last one (median of {len(rounds['10k'])})",
                   kernel["10k"])  # fmt: skip
            figure("connect, only that Service", kernel["1"])
            figure(f"connect, {count} Services, the first one", kernel["10k-first"])
            figure("kernel's cost of the rules for one first packet (last − only)",
                   kernel["10k"] - kernel["1"])  # fmt: skip
            figure("… for the first Service (first − only)", kernel["10k-first"] - kernel["1"])
        else:
            print(f"lab: not measured ({problem}): iptables-restore and connect latency")

        print("model: one walk's netfilter evaluation of the same first packet (all branches):")
        namespace = node_namespace(text)
        local = local_connect(namespace, last)
        branches = every_branch(local)  # builds the indexes once
        steady = statistics.median(timed(lambda: every_branch(local), 200))
        cold = fresh_copy(text)
        Passage({}, cold)  # parses the distinct text (not part of a walk: the state is parsed once)
        # a full collection first: with a 125,000-line ruleset just parsed, the next allocations
        # may trigger a generation-2 collection of every object the process holds (0.3-0.9 s
        # here), which is the collector's, not the walk's
        gc.collect()
        first_walk = timed(lambda: every_branch(local_connect(cold, last)), 1)[0]
        figure(f"node's own connect, OUTPUT+POSTROUTING ({branches} branches)",
               steady, "median of 200, indexes built")  # fmt: skip
        figure("… the first walk (building the chains' indexes), after gc.collect()", first_walk)
        forward = pod_to_service(namespace, last)
        every_branch(forward)
        through = statistics.median(timed(lambda: every_branch(forward), 200))
        figure("pod → ClusterIP, PREROUTING+FORWARD+POSTROUTING (all branches)", through,
               "median of 200")  # fmt: skip
        probe = NfPacket.new_connection(IPv4Address("192.168.1.50"),
                                        IPv4Address(cluster_ip(last)), "tcp", 41000, 80,
                                        oif="eth0")  # fmt: skip
        env = Passage({}, namespace)._env
        assert env is not None
        rules_only = statistics.median(timed(lambda: first_packet_rules(ruleset, probe, env), 500))
        figure("the rules alone: every table of OUTPUT+POSTROUTING, all branches", rules_only,
               "median of 500")  # fmt: skip
        # the kernel's figure is a difference (the 10,000 Services' rules minus that Service's
        # alone); the model's is made the same way, so tables both rulesets share cancel out
        alone = node_namespace(generated_rules([last], 0))
        alone_env = Passage({}, alone)._env
        assert alone_env is not None and alone.iptables is not None
        alone_rules = parse_ruleset(alone.iptables.save)
        rules_base = statistics.median(
            timed(lambda: first_packet_rules(alone_rules, probe, alone_env), 500)
        )
        alone_walk = local_connect(alone, last)
        every_branch(alone_walk)
        steady_base = statistics.median(timed(lambda: every_branch(alone_walk), 200))
        figure("the same, only that Service's rules", rules_base, "median of 500")
        figure("the walk's netfilter stage, only that Service's rules", steady_base,
               "median of 200")  # fmt: skip
        indexed = statistics.median(
            timed(lambda: traverse(ruleset, "nat", "OUTPUT", probe, env), 500)
        )
        linear = statistics.median(
            timed(lambda: traverse(ruleset, "nat", "OUTPUT", probe, env, linear=True), 5)
        )
        figure("nat OUTPUT alone, indexed", indexed)
        figure("nat OUTPUT alone, scanned linearly as the kernel does", linear)
        if kernel:
            cost = kernel["10k"] - kernel["1"]
            print("ratios to the kernel's first-packet cost of the rules (goal < 1×):")
            ratio("the rules alone (what the kernel's figure is)", rules_only / cost)
            ratio("… as a difference, like the kernel's (10k − only)",
                  (rules_only - rules_base) / cost)  # fmt: skip
            ratio("the walk's whole netfilter stage, all branches", steady / cost)
            ratio("… as a difference (10k − only)", (steady - steady_base) / cost)
            ratio("… one branch of it", steady / branches / cost)
            ratio("the first walk (indexes built on the way)", first_walk / cost)
    finally:
        if lab is not None:
            lab.close()


if __name__ == "__main__":
    main()
