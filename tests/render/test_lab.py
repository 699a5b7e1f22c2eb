"""The views against the real tools: build `lab_node`/`lab_pod` in real namespaces, compare.

Needs root, iproute2, net-tools `arp` and both iptables backends; a missing one fails the test
with its name (this test never skips). The namespaces are `eksnet-test-render-<random>-node`
and `-pod`; they are deleted in `finally`, and nothing is done in the host namespace.

The pod's commands run with `/run/netns` hidden behind a private tmpfs (inside the mount
namespace `ip netns exec` creates), so that, as inside a real pod, iproute2 cannot name the
node's namespace and prints `link-netnsid 0`.

Lines are compared one for one with trailing whitespace stripped. No exception is needed for
`qlen`: the fixtures give every link the transmit queue length the lab sets.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface

import pytest

from eksnet.dataplane.state import (
    DEFAULT_RULES,
    TABLE_MAIN,
    Address,
    DataplaneState,
    Link,
    Namespace,
    Route,
    Rule,
)
from eksnet.render.exec import run_command
from eksnet.render.linux.addrconf import LOOPBACK6
from eksnet.render.linux.devinet import LOOPBACK_ADDRESS

from .fixtures import lab_node, lab_pod, talk_vpc

pytestmark = pytest.mark.lab

TOOLS = {
    "ip": "iproute2",
    "arp": "net-tools (apt-get install net-tools)",
    "mount": "util-linux",
    "iptables-legacy-restore": "iptables",
    "iptables-legacy-save": "iptables",
    "iptables-nft-restore": "iptables",
    "iptables-nft-save": "iptables",
}
HIDE_NAMED_NETNS = 'mount -t tmpfs tmpfs /run/netns && exec "$@"'
DAD_WAIT_SECONDS = 10.0
AUTOMATIC_ADDRESSES = (LOOPBACK_ADDRESS, LOOPBACK6)
"""What the kernel puts on `lo` when it comes up; adding them again would fail."""


def require_capabilities() -> None:
    """Fail, naming every missing capability, instead of skipping."""
    missing = [f"`{tool}` ({package})" for tool, package in TOOLS.items() if not shutil.which(tool)]
    if os.geteuid() != 0:
        missing.insert(0, "root (euid 0) to create network namespaces")
    if missing:
        pytest.fail("the real-kernel render test needs: " + "; ".join(missing), pytrace=False)


def run(argv: Sequence[str], stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}"
            + (f"\n--- input ---\n{stdin}" if stdin else ""),
            pytrace=False,
        )
    return done.stdout


# --- turning a fixture into `ip -batch` lines (a test-sized lab, not the project's lab) --------


def veth_end(link: Link) -> str:
    return f"{link.name} index {link.ifindex} mtu {link.mtu} address {link.mac}"


def create_links(node: Namespace, pod: Namespace) -> list[str]:
    """Every veth pair, created from the node: same-namespace pairs and the pod's pair."""
    lines = []
    for link in sorted(node.links, key=lambda link: link.ifindex):
        if link.peer is None:
            continue
        if link.peer.netns == node.name and link.ifindex < link.peer.ifindex:
            peer = node.link(link.peer.name)
            lines.append(f"link add {veth_end(link)} type veth peer name {veth_end(peer)}")
        elif link.peer.netns == pod.name:
            peer = pod.link(link.peer.name)
            lines.append(
                f"link add {veth_end(link)} type veth peer name {veth_end(peer)} netns {pod.name}"
            )
    return lines


def up_order(ns: Namespace) -> list[Link]:
    """Links to bring up, lo first, then by ifindex; of a same-namespace pair the second end
    first, because the end brought up last gets its carrier (and IPv6) first [meas]."""
    order: list[Link] = []
    for link in sorted(ns.links, key=lambda link: link.ifindex):
        if not link.up or link in order:
            continue
        peer = ns.link(link.peer.name) if link.peer and link.peer.netns == ns.name else None
        if peer is not None and peer.up and peer.ifindex > link.ifindex:
            order.append(peer)
        order.append(link)
    return order


def connected_routes(ns: Namespace) -> list[Route]:
    """The main-table routes the kernel adds for each primary IPv4 address shorter than /32."""
    routes = []
    for address in ns.addresses:
        interface = address.interface
        if (
            isinstance(interface, IPv4Interface)
            and not address.secondary
            and interface.network.prefixlen < 32
            and interface != LOOPBACK_ADDRESS
        ):
            kernel = Route(TABLE_MAIN, interface.network, dev=address.dev, proto="kernel",
                           scope="link", src=interface.ip)  # fmt: skip
            routes.append(kernel)
    return routes


def address_line(address: Address) -> str:
    brd = f" brd {address.broadcast}" if address.broadcast else ""
    return f"address add {address.interface}{brd} scope {address.scope} dev {address.dev}"


def route_words(route: Route) -> str:
    words = [route.type, str(route.dst)]
    if route.gateway is not None:
        words += ["via", str(route.gateway)]
    if route.dev is not None:
        words += ["dev", route.dev]
    words += ["table", str(route.table)]
    if route.proto != "boot":
        words += ["proto", route.proto]
    if route.type == "unicast":
        words += ["scope", route.scope]
    if route.src is not None:
        words += ["src", str(route.src)]
    if route.metric:
        words += ["metric", str(route.metric)]
    return " ".join(words)


def rule_line(rule: Rule) -> str:
    words = ["rule add prio", str(rule.priority)]
    words += ["not"] if rule.invert else []
    words += ["from", str(rule.src)] if rule.src is not None else []
    words += ["to", str(rule.dst)] if rule.dst is not None else []
    if rule.fwmark is not None:
        words += ["fwmark", f"{rule.fwmark:#x}" + (f"/{rule.fwmask:#x}" if rule.fwmask else "")]
    words += ["iif", rule.iif] if rule.iif else []
    words += ["oif", rule.oif] if rule.oif else []
    words += ["lookup", str(rule.table)] if rule.table else []
    words += ["goto", str(rule.goto)] if rule.action == "goto" else []
    words += [rule.action] if rule.action not in ("lookup", "goto") else []
    return " ".join(words)


def configure(ns: Namespace) -> list[str]:
    """Queue lengths, address generation, links up, addresses, routes, rules, neighbours."""
    lines = [f"link set {link.name} txqueuelen {link.qlen or 0}" for link in ns.links
             if link.kind != "loopback"]  # fmt: skip
    lines += [f"link set {link.name} addrgenmode none" for link in ns.links
              if link.kind != "loopback" and not link.ipv6_addrgen]  # fmt: skip
    lines += [f"link set {link.name} up" for link in up_order(ns)]
    lines += [address_line(a) for a in ns.addresses if a.interface not in AUTOMATIC_ADDRESSES]
    automatic = connected_routes(ns)
    lines += [f"route del {route_words(r)}" for r in automatic if r not in ns.routes]
    lines += [f"route add {route_words(r)}" for r in ns.routes if r not in automatic]
    lines += [rule_line(rule) for rule in ns.rules if rule not in DEFAULT_RULES]
    lines += [f"neigh add {n.dst} lladdr {n.lladdr} dev {n.dev} nud {n.state.lower()}"
              for n in ns.neighbours]  # fmt: skip
    return lines


def wait_for_dad(name: str) -> None:
    """IPv6 addresses print `tentative` until duplicate address detection is done (~1-2 s)."""
    deadline = time.monotonic() + DAD_WAIT_SECONDS
    while run(["ip", "-n", name, "-6", "address", "show", "tentative"]).strip():
        if time.monotonic() > deadline:
            pytest.fail(f"IPv6 DAD still running in {name} after {DAD_WAIT_SECONDS} s")
        time.sleep(0.2)


def restore_iptables(ns: Namespace) -> None:
    if ns.iptables is not None:
        restore = f"iptables-{ns.iptables.backend}-restore"
        run(["ip", "netns", "exec", ns.name, restore], stdin=ns.iptables.save)


# --- the lab -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    state: DataplaneState
    node: Namespace
    pod: Namespace


def build(lab: Lab) -> None:
    for ns in (lab.node, lab.pod):
        run(["ip", "netns", "add", ns.name])
    run(
        ["ip", "-n", lab.node.name, "-batch", "-"], stdin="\n".join(create_links(lab.node, lab.pod))
    )
    for ns in (lab.node, lab.pod):
        run(["ip", "-n", ns.name, "-batch", "-"], stdin="\n".join(configure(ns)) + "\n")
    for ns in (lab.node, lab.pod):
        wait_for_dad(ns.name)
        restore_iptables(ns)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_capabilities()
    prefix = f"eksnet-test-render-{secrets.token_hex(3)}"
    node, pod = lab_node(f"{prefix}-node", f"{prefix}-pod"), lab_pod(f"{prefix}-pod")
    built = Lab(DataplaneState((node, pod), talk_vpc()), node, pod)
    try:
        build(built)
        yield built
    finally:
        for ns in (node, pod):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


def real_output(lab: Lab, ns: Namespace, argv: Sequence[str]) -> str:
    """What the real command prints in `ns` (a pod cannot name the node's namespace)."""
    if argv[0] == "iptables-save":
        backend = ns.iptables.backend if ns.iptables is not None else "nft"
        argv = [f"iptables-{backend}-save", *argv[1:]]
    if ns is lab.pod:
        return run(["ip", "netns", "exec", ns.name, "sh", "-c", HIDE_NAMED_NETNS, "sh", *argv])
    return run(["ip", "netns", "exec", ns.name, *argv])


def comparable(text: str) -> list[str]:
    """Lines without trailing whitespace and without iptables-save's dated `#` lines."""
    return [line.rstrip() for line in text.splitlines() if not line.startswith("#")]


COMMANDS = [
    ["ip", "addr"],
    ["ip", "link"],
    ["ip", "route", "show", "table", "all"],
    ["ip", "route"],
    ["ip", "route", "show", "table", "2"],
    ["ip", "rule"],
    ["ip", "neigh"],
    ["arp", "-n"],
    ["iptables-save"],
]


@pytest.mark.parametrize("role", ["node", "pod"])
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_view_equals_the_real_command(lab: Lab, role: str, argv: list[str]) -> None:
    ns = lab.node if role == "node" else lab.pod
    if argv[-1] == "2" and role == "pod":
        argv = ["ip", "route", "show", "table", "main"]
    expected = comparable(real_output(lab, ns, argv))
    assert comparable(run_command(lab.state, ns, argv)) == expected
