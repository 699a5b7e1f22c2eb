"""`ip_route_get` against the real kernel: generated namespaces, many queries, same answers.

Each scenario builds a random but valid namespace state (veth pairs, addresses, routes in several
tables, policy rules, rp_filter/forwarding/src_valid_mark sysctls), applies it to a throw-away
`eksnet-test-fib-<hex>` namespace with `ip -n NS -batch -`, and compares `ip route get` (stdout,
or stderr for errors, and the exit status) with what `eksnet.render.route_get` answers from the
`Namespace` value, for output lookups and `iif` input lookups, with and without `mark 0x80`.
It also compares the kernel's local table with `kernel.fib.local_table`.

Needs root and the `ip` and `sysctl` tools; the host namespace is never touched.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    Address,
    Link,
    LinkPeer,
    Namespace,
    Route,
    Rule,
    RuleAction,
)
from eksnet.errors import CommandFailed, EksnetError
from eksnet.kernel.fib import local_table
from eksnet.render.route_get import ip_route_get

pytestmark = pytest.mark.lab

SEEDS = range(24)
QUERIES_PER_SCENARIO = 70
A = IPv4Address
N = IPv4Network

PAIRS = (("d0", "d1", True), ("d2", "d3", True), ("d4", "d5", False))
"""veth pairs (first, peer, up); `ip link add FIRST ... peer name PEER` registers PEER first."""

SUBNETS = {
    "d0": ["10.1.0.1/24", "10.1.0.1/16"],
    "d1": ["10.3.0.1/24", "10.3.0.1/31", "10.3.0.1/32"],
    "d2": ["172.16.0.1/16"],
    "d3": [],
    "d4": ["10.5.0.1/24"],
    "d5": [],
    "lo": ["10.9.9.9/32", "10.9.9.9/24"],
}
PREFIXES = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.0.128/25",
    "10.1.0.77/32",
    "192.0.2.0/24",
    "192.0.2.0/28",
    "198.51.100.0/24",
    "203.0.113.7/32",
    "127.1.0.0/16",
    "10.3.0.0/24",
]
DESTINATIONS = [
    "10.1.0.1",
    "10.1.0.9",
    "10.1.0.77",
    "10.1.0.200",
    "10.1.0.255",
    "10.1.255.255",
    "10.3.0.1",
    "10.3.0.5",
    "10.3.0.255",
    "172.16.5.5",
    "192.0.2.5",
    "192.0.2.77",
    "198.51.100.9",
    "203.0.113.7",
    "8.8.8.8",
    "127.0.0.1",
    "127.1.0.5",
    "10.9.9.9",
    "10.9.9.77",
    "10.5.0.1",
    "10.2.0.1",
]
SOURCES = [
    "10.1.0.50",
    "10.3.0.7",
    "192.0.2.9",
    "198.51.100.1",
    "8.8.4.4",
    "10.1.0.1",
    "172.16.9.9",
    "10.3.0.0",
    "127.0.0.1",
    "10.1.0.255",
]
RULE_PRIORITIES = (100, 200, 300, 500, 1000, 20000)
"""Few priorities, so rules share them and `goto` usually finds its target."""


@dataclass
class Scenario:
    """A namespace state and the `ip` commands that build the same state in the kernel."""

    pairs: tuple[tuple[str, str, bool], ...] = PAIRS
    sysctls_before: list[tuple[str, str]] = field(default_factory=list)
    sysctls_after: list[tuple[str, str]] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    user_routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    after_addresses: list[str] = field(default_factory=list)
    """Extra `ip` batch lines run right after the addresses (e.g. deleting a connected route)."""

    def namespace(self, name: str) -> Namespace:
        return Namespace(
            name=name,
            kind="node",
            owner=name,
            links=tuple(self.links),
            addresses=tuple(self.addresses),
            routes=tuple(self.routes + self.user_routes),
            rules=(*DEFAULT_RULES, *self.rules),
            sysctls=tuple(self.sysctls_before + self.sysctls_after),
        )


def add_links(s: Scenario, name: str) -> dict[str, bool]:
    """lo, then each pair as the kernel registers it (the peer first); returns who is up."""
    s.links.append(Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536))
    index = 2
    up = {"lo": True}
    for first, peer, is_up in s.pairs:
        s.links.append(
            Link(
                index,
                peer,
                "veth",
                f"02:00:00:00:00:{index:02x}",
                1500,
                up=is_up,
                peer=LinkPeer(index + 1, first, netns=name),
            )
        )
        s.links.append(
            Link(
                index + 1,
                first,
                "veth",
                "02:00:00:00:00:%02x" % (index + 1),
                1500,
                up=is_up,
                peer=LinkPeer(index, peer, netns=name),
            )
        )
        up[first] = up[peer] = is_up
        index += 2
    return up


def generate(rng: random.Random, name: str) -> Scenario:
    s = Scenario()
    up = add_links(s, name)

    # Sysctls: all/default before the devices exist, per device afterwards (the state's order).
    s.sysctls_before.append(("net.ipv4.conf.all.rp_filter", str(rng.choice([0, 0, 1, 2]))))
    s.sysctls_before.append(("net.ipv4.conf.default.rp_filter", str(rng.choice([0, 1, 2]))))
    if rng.random() < 0.8:
        s.sysctls_before.append(("net.ipv4.ip_forward", "1"))
    if rng.random() < 0.3:
        s.sysctls_before.append(("net.ipv4.conf.all.src_valid_mark", "1"))
    if rng.random() < 0.15:
        s.sysctls_before.append(("net.ipv4.conf.all.accept_local", "1"))
    for dev in ("d0", "d1", "d3"):
        if rng.random() < 0.5:
            s.sysctls_after.append((f"net.ipv4.conf.{dev}.rp_filter", str(rng.choice([0, 1, 2]))))
    if rng.random() < 0.3:
        s.sysctls_after.append(("net.ipv4.conf.d1.forwarding", "0"))
    if rng.random() < 0.3:
        s.sysctls_after.append(("net.ipv4.conf.d0.src_valid_mark", "1"))
    if rng.random() < 0.2:
        s.sysctls_after.append(("net.ipv4.conf.d0.route_localnet", "1"))

    # Addresses: lo's 127.0.0.1 appears when lo comes up; the rest in this order.
    s.addresses.append(Address("lo", IPv4Interface("127.0.0.1/8"), scope="host"))
    for dev, choices in SUBNETS.items():
        if choices and rng.random() < 0.8:
            s.addresses.append(Address(dev, IPv4Interface(rng.choice(choices))))
    if rng.random() < 0.5 and any(a.dev == "d0" for a in s.addresses):
        d0 = next(a for a in s.addresses if a.dev == "d0")
        s.addresses.append(
            Address(
                "d0", IPv4Interface(f"10.1.0.9/{d0.interface.network.prefixlen}"), secondary=True
            )
        )
    if rng.random() < 0.4:
        s.addresses.append(Address("d0", IPv4Interface("10.2.0.1/24")))
    if rng.random() < 0.4:  # never borrowed by other devices, even for link-scope routes
        s.addresses.append(Address("d3", IPv4Interface("169.254.9.9/16"), scope="link"))
    for address in s.addresses:
        interface = address.interface
        assert isinstance(interface, IPv4Interface)
        network = interface.network
        if (
            address.dev != "lo"
            and up[address.dev]
            and not address.secondary
            and network.prefixlen < 32
        ):
            s.routes.append(
                Route(254, network, dev=address.dev, proto="kernel", scope="link", src=interface.ip)
            )

    # User routes: unique (table, prefix, metric), gateways inside a connected /24 or /16.
    taken = {(r.table, r.dst, r.metric or 0) for r in s.routes}
    gateways = [(r.dev, r.dst) for r in s.routes if r.dst.prefixlen in (16, 24)]
    own = [a.interface.ip for a in s.addresses if isinstance(a.interface, IPv4Interface)]
    for _ in range(rng.randint(4, 12)):
        table = rng.choice([254, 254, 100, 100, 101, 253])
        dst = N(rng.choice(PREFIXES))
        metric = rng.choice([None, None, 10, 100])
        if (table, dst, metric or 0) in taken:
            continue
        kind = rng.random()
        route: Route
        if kind < 0.15:
            route = Route(
                table, dst, type=rng.choice(["blackhole", "unreachable", "prohibit"]), metric=metric
            )
        elif kind < 0.25:
            route = Route(table, dst, type="throw", metric=metric)
        elif kind < 0.3:
            route = Route(table, dst, type="local", dev="lo", scope="host", metric=metric)
        elif kind < 0.35:
            route = Route(table, dst, dev="d4", scope="host", metric=metric)  # survives d4 down
        elif kind < 0.65 and gateways:
            dev, subnet = rng.choice(gateways)
            assert dev is not None
            gateway = subnet.broadcast_address - 1
            src = rng.choice(own) if rng.random() < 0.2 else None
            route = Route(table, dst, gateway=gateway, dev=dev, src=src, metric=metric)
        else:
            dev = rng.choice(["d0", "d1", "d2", "d3", "lo"])
            route = Route(table, dst, dev=dev, scope="link", metric=metric)
        taken.add((table, dst, metric or 0))
        s.user_routes.append(route)

    # Rules (none at all in some scenarios: then local and main stay merged). Each selector is
    # drawn on its own, so most rules have one or two and some of them match the queries.
    if rng.random() < 0.85:
        for _ in range(rng.randint(1, 7)):
            priority = rng.choice(RULE_PRIORITIES)
            action: RuleAction = rng.choice(
                ["lookup"] * 8 + ["goto", "nop", "blackhole", "unreachable", "prohibit"]
            )
            fwmark = 0x80 if rng.random() < 0.25 else None

            def maybe(p: float, *choices: object) -> object:
                return rng.choice(choices) if rng.random() < p else None

            rule = Rule(
                priority,
                action=action,
                table=rng.choice([100, 100, 101, 101, 102, 253, 254, 255])
                if action == "lookup"
                else None,
                src=maybe(
                    0.3,
                    N("10.1.0.0/24"),
                    N("192.0.2.0/24"),
                    N("10.1.0.1/32"),
                    N("10.3.0.1/32"),
                    N("10.1.0.50/32"),
                ),  # type: ignore[arg-type]
                dst=maybe(0.3, *(N(p) for p in PREFIXES[1:])),  # type: ignore[arg-type]
                fwmark=fwmark,
                fwmask=rng.choice([None, 0x80]) if fwmark else None,
                iif=maybe(0.25, "d0", "d1", "lo", "d3"),  # type: ignore[arg-type]
                oif=maybe(0.1, "d0", "d2"),  # type: ignore[arg-type]
                goto=rng.choice([p for p in (*RULE_PRIORITIES, 32766) if p > priority])
                if action == "goto"
                else None,
                invert=rng.random() < 0.1,
            )
            if not any(clashes(rule, other) for other in s.rules):
                s.rules.append(rule)
    return s


def clashes(new: Rule, old: Rule) -> bool:
    """Whether `ip rule add` of `new` fails with EEXIST after `old` (the kernel's `rule_exists`:
    prefixes are compared only when the new rule has them; `not` and goto targets never are)."""
    same = (new.priority, new.action, new.table, new.iif, new.oif, new.fwmark, new.fwmask) == (
        old.priority,
        old.action,
        old.table,
        old.iif,
        old.oif,
        old.fwmark,
        old.fwmask,
    )
    return (
        same and (new.src is None or new.src == old.src) and (new.dst is None or new.dst == old.dst)
    )


# --- rendering the scenario as `ip` commands --------------------------------------------------


def route_command(route: Route) -> str:
    words = ["route", "add"]
    if route.type != "unicast":
        words.append(route.type)
    words.append(str(route.dst) if route.dst.prefixlen else "default")
    if route.gateway is not None:
        words += ["via", str(route.gateway)]
    if route.dev is not None:
        words += ["dev", route.dev]
    words += ["table", str(route.table)]
    if route.type == "unicast" and route.gateway is None:
        words += ["scope", route.scope]
    if route.src is not None:
        words += ["src", str(route.src)]
    if route.metric is not None:
        words += ["metric", str(route.metric)]
    return " ".join(words)


def rule_command(rule: Rule) -> str:
    words = ["rule", "add", "pref", str(rule.priority)]
    if rule.invert:
        words.append("not")
    if rule.src is not None:
        words += ["from", str(rule.src)]
    if rule.dst is not None:
        words += ["to", str(rule.dst)]
    if rule.fwmark is not None:
        mark = hex(rule.fwmark) + (f"/{rule.fwmask:#x}" if rule.fwmask is not None else "")
        words += ["fwmark", mark]
    if rule.iif is not None:
        words += ["iif", rule.iif]
    if rule.oif is not None:
        words += ["oif", rule.oif]
    if rule.action == "lookup":
        words += ["lookup", str(rule.table)]
    elif rule.action == "goto":
        words += ["goto", str(rule.goto)]
    else:
        words.append(rule.action)
    return " ".join(words)


def run(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)


def must(argv: Sequence[str], stdin: str | None = None) -> str:
    done = run(argv, stdin)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}"
            + (f"\ninput:\n{stdin}" if stdin else "")
        )
    return done.stdout


def require_capabilities() -> None:
    """Fail loudly (never skip) when this machine cannot run the lab."""
    if os.geteuid() != 0:
        pytest.fail("the lab test needs root (network namespaces)")
    for tool in ("ip", "sysctl"):
        if shutil.which(tool) is None:
            pytest.fail(f"the lab test needs the `{tool}` tool")


@contextmanager
def throwaway_namespace() -> Iterator[str]:
    name = f"eksnet-test-fib-{uuid.uuid4().hex[:8]}"
    created = run(["ip", "netns", "add", name])
    if created.returncode != 0:
        pytest.fail(f"the lab test needs `ip netns add`: {created.stderr.strip()}")
    try:
        yield name
    finally:
        run(["ip", "netns", "del", name])


def apply(name: str, s: Scenario) -> None:
    def sysctl(writes: list[tuple[str, str]]) -> None:
        if writes:
            must(
                [
                    "ip",
                    "netns",
                    "exec",
                    name,
                    "sysctl",
                    "-q",
                    "-w",
                    *(f"{k}={v}" for k, v in writes),
                ]
            )

    sysctl(s.sysctls_before)
    lines = ["link set lo up"]
    for first, peer, is_up in s.pairs:
        lines.append(f"link add {first} type veth peer name {peer}")
        if is_up:
            lines += [f"link set {first} up", f"link set {peer} up"]
    must(["ip", "-n", name, "-batch", "-"], "\n".join(lines) + "\n")
    sysctl(s.sysctls_after)
    lines = []
    for address in s.addresses[1:]:
        scope = f" scope {address.scope}" if address.scope != "global" else ""
        lines.append(f"addr add {address.interface} dev {address.dev}{scope}")
    lines += s.after_addresses
    lines += [route_command(r) for r in s.user_routes]
    lines += [rule_command(r) for r in s.rules]
    if lines:
        must(["ip", "-n", name, "-batch", "-"], "\n".join(lines) + "\n")


def queries(rng: random.Random) -> list[list[str]]:
    out: list[list[str]] = []
    for _ in range(QUERIES_PER_SCENARIO):
        args = [rng.choice(DESTINATIONS)]
        if rng.random() < 0.45:
            args += ["from", rng.choice(SOURCES), "iif", rng.choice(["d0", "d0", "d1", "d3", "lo"])]
        else:
            if rng.random() < 0.3:
                args += [
                    "from",
                    rng.choice(
                        [
                            "10.1.0.1",
                            "10.3.0.1",
                            "10.9.9.9",
                            "10.1.0.9",
                            "127.0.0.1",
                            "10.5.0.1",
                            "192.0.2.9",
                        ]
                    ),
                ]
            if rng.random() < 0.2:
                args += ["oif", rng.choice(["d0", "d1", "d2", "d3", "d4", "lo"])]
        if rng.random() < 0.35:
            args += ["mark", "0x80"]
        if rng.random() < 0.1:
            args.append("fibmatch")
        out.append(args)
    return out


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip("\n").split("\n"))


def model_answer(ns: Namespace, args: list[str]) -> tuple[int, str]:
    try:
        return 0, normalise(ip_route_get(ns, args))
    except CommandFailed as failed:
        return failed.exit_code, normalise(failed.stderr)
    except EksnetError as error:
        return -1, f"model raised {error!r}"


def kernel_answer(name: str, args: list[str]) -> tuple[int, str]:
    done = run(["ip", "-n", name, "route", "get", *args])
    return done.returncode, normalise(done.stdout if done.returncode == 0 else done.stderr)


def local_table_text(ns: Namespace) -> str:
    lines = []
    for r in local_table(ns):
        dst = str(r.dst.network_address) if r.dst.prefixlen == 32 else str(r.dst)
        lines.append(f"{r.type} {dst} dev {r.dev} proto kernel scope {r.scope} src {r.src}")
    return "\n".join(lines)


def compare(name: str, scenario: Scenario, asked: list[list[str]], label: str) -> None:
    ns = scenario.namespace(name)
    kernel_local = normalise(must(["ip", "-n", name, "route", "show", "table", "local"]))
    assert local_table_text(ns) == kernel_local
    mismatches = []
    for args in asked:
        expected = kernel_answer(name, args)
        got = model_answer(ns, args)
        if got != expected:
            mismatches.append(
                f"ip route get {' '.join(args)}\n  kernel: {expected}\n  model:  {got}"
            )
    if mismatches:
        setup = [route_command(r) for r in scenario.user_routes]
        setup += [rule_command(r) for r in scenario.rules]
        setup += [f"sysctl {k}={v}" for k, v in scenario.sysctls_before + scenario.sysctls_after]
        setup += [f"addr {a.interface} dev {a.dev}" for a in scenario.addresses]
        pytest.fail(
            f"{len(mismatches)}/{len(asked)} answers differ ({label}):\n"
            + "\n".join(mismatches[:15])
            + "\nsetup:\n  "
            + "\n  ".join(setup)
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_route_get_matches_the_kernel(seed: int) -> None:
    require_capabilities()
    rng = random.Random(seed)
    with throwaway_namespace() as name:
        scenario = generate(rng, name)
        apply(name, scenario)
        compare(name, scenario, queries(rng), f"seed {seed}")


def vpc_cni_node(name: str, eth0_rp_filter: int) -> Scenario:
    """The node of vpc-cni.md §2.9 (pod A behind enia on eth0, pod B behind enib on eth1)."""
    s = Scenario(
        pairs=(
            ("eth0", "ext0", True),
            ("eth1", "ext1", True),
            ("enia", "poda", True),
            ("enib", "podb", True),
        )
    )
    add_links(s, name)
    s.sysctls_before.append(("net.ipv4.ip_forward", "1"))
    s.sysctls_after.append(("net.ipv4.conf.eth0.rp_filter", str(eth0_rp_filter)))
    s.addresses += [
        Address("lo", IPv4Interface("127.0.0.1/8"), scope="host"),
        Address("eth0", IPv4Interface("10.0.1.5/19")),
        Address("eth1", IPv4Interface("10.0.2.20/19")),
    ]
    s.routes.append(
        Route(254, N("10.0.0.0/19"), dev="eth0", proto="kernel", scope="link", src=A("10.0.1.5"))
    )
    s.after_addresses.append("route del 10.0.0.0/19 dev eth1 table main")  # ipamd does this
    s.user_routes += [
        Route(254, N("0.0.0.0/0"), gateway=A("10.0.0.1"), dev="eth0"),
        Route(254, N("10.0.1.23/32"), dev="enia", scope="link"),
        Route(254, N("10.0.2.57/32"), dev="enib", scope="link"),
        Route(2, N("10.0.0.1/32"), dev="eth1", scope="link"),
        Route(2, N("0.0.0.0/0"), gateway=A("10.0.0.1"), dev="eth1"),
    ]
    s.rules += [
        Rule(512, table=254, dst=N("10.0.1.23/32")),
        Rule(512, table=254, dst=N("10.0.2.57/32")),
        Rule(1024, table=254, fwmark=0x80, fwmask=0x80),
        Rule(1536, table=2, src=N("10.0.2.57/32")),
        Rule(32765, table=2, src=N("10.0.2.20/32")),
    ]
    return s


VPC_CNI_QUERIES = [
    "8.8.8.8",
    "10.0.1.23",
    "10.0.2.57",
    "10.0.1.5",
    "10.0.2.20",
    "10.0.31.255",
    "10.0.5.9",
    "8.8.8.8 from 10.0.2.20",
    "10.0.5.9 from 10.0.2.20",
    "10.0.2.57 fibmatch",
    "10.0.5.9 from 10.0.2.57 iif enib",
    "8.8.8.8 from 10.0.2.57 iif enib",
    "10.0.1.23 from 10.0.2.57 iif enib",
    "10.0.1.5 from 10.0.2.57 iif enib",
    "8.8.8.8 from 10.0.1.23 iif enia",
    "10.0.2.57 from 10.0.1.23 iif enia",
    "10.0.2.57 from 8.8.8.8 iif eth0",
    "10.0.1.23 from 8.8.8.8 iif eth0",
    "10.0.2.57 from 10.0.1.23 iif eth0",
    "10.0.1.5 from 10.0.2.57 iif eth0",
    "10.0.2.57 from 10.0.9.9 iif eth0",
    "10.0.1.23 from 10.0.2.57 iif eth1",
    "8.8.8.8 from 10.0.2.57 iif eth0",
    "10.0.1.5 from 10.0.1.5 iif eth0",
    "10.0.2.57 from 127.0.0.1 iif eth0",
]


@pytest.mark.parametrize("eth0_rp_filter", [2, 1, 0])
def test_vpc_cni_node_matches_the_kernel(eth0_rp_filter: int) -> None:
    require_capabilities()
    with throwaway_namespace() as name:
        scenario = vpc_cni_node(name, eth0_rp_filter)
        apply(name, scenario)
        asked = [q.split() for q in VPC_CNI_QUERIES]
        asked += [[*q, "mark", "0x80"] for q in asked if "fibmatch" not in q]
        compare(name, scenario, asked, f"VPC CNI node, eth0.rp_filter={eth0_rp_filter}")
