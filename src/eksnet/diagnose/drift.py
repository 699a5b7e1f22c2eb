"""`eksnet check`: what an imported node holds against what its controllers would write.

For every node a dump was laid over (`importers.overlay`), each part the dump supplied is
compared with the derived one: the policy rules (as `ip rule` prints them), the routes of every
table but local (as `ip route show table all` prints them; a table the controllers fill that
the node has empty is one finding), the iptables rules chain by chain (as `iptables-save`
prints them), the sysctls a packet's fate depends on (forwarding, rp_filter, accept_local,
route_localnet, src_valid_mark: their effective values, per device), and the neighbours. Each
difference is a `Finding` naming the object in the tool's own words, how it differs, who
writes it, and the command that puts it right.

Which walks a finding breaks is found by walking, not guessed: the node's own walks (the tour's
and the lab's walks, and every pod of the node to and from every other pod and to the internet)
are walked on the imported state and on the imported state with just this finding put right;
a walk whose outcome (its path, the hop it ends in, delivered or dropped) differs is broken by
the finding, one whose decisions differ but not its outcome is changed by it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from eksnet.dataplane.state import (
    TABLE_LOCAL,
    DataplaneState,
    Iptables,
    Namespace,
    Observed,
    Route,
    Rule,
)
from eksnet.errors import EksnetError
from eksnet.importers.iptables_dump import ChainView, rule_view, save_text
from eksnet.kernel.iproute_text import route_line, rule_line, table_name
from eksnet.kernel.sysctl import sysctl_value
from eksnet.render.walk_text import walk_lines
from eksnet.walk.engine import walk as run_walk
from eksnet.walk.model import Walk
from eksnet.walk.tour import BEYOND_THE_TALK, TOUR, TourWalk

Kind = Literal["rule", "route", "table", "iptables", "sysctl", "neighbour", "address"]
Difference = Literal["missing", "extra", "changed"]
Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference between a node's dump and what its controllers would write."""

    node: str
    kind: Kind
    object: str
    """The object as its tool prints it: an `ip rule` line, an `ip route` line, `table 2`, an
    iptables `-A` line (with `-t TABLE`), `key = value`."""
    difference: Difference
    detail: str
    owner: str
    """Who writes it on a healthy node."""
    fix: tuple[str, ...]
    """The commands that put it right, in order."""
    breaks: tuple[str, ...] = ()
    """Walks whose outcome this finding changes (found by walking)."""
    changes: tuple[str, ...] = ()
    """Walks decided differently by it, with the same outcome."""

    @property
    def severity(self) -> Severity:
        """An error where the node lacks what its controllers write or where a walk breaks;
        an extra object that breaks nothing is a warning."""
        return "error" if self.breaks or self.difference != "extra" else "warning"


@dataclass(frozen=True, slots=True)
class NodeWalk:
    """A walk the check tries: an id people can read and how to run it."""

    id: str
    run: Callable[[DataplaneState], Walk]


# --- comparing the parts --------------------------------------------------------------------------


def _rule_owner(rule: Rule) -> str:
    if rule.priority in (512, 1536):
        return "the VPC CNI plugin (written when the pod was set up)"
    if rule.priority in (1024, 32765):
        return "ipamd (aws-node)"
    return "the kernel (every namespace starts with it)"


def _shown(line: str) -> str:
    """An `ip rule` line on one line of prose (`ip` separates the priority with a tab)."""
    return line.replace("\t", " ")


def _selector(line: str) -> str:
    """`512:\tfrom all to 192.168.1.61 lookup main` → `from all to 192.168.1.61 lookup main`."""
    return line.split(":", 1)[1].strip()


def compare_rules(node: str, derived: Namespace, observed: Namespace) -> list[Finding]:
    want = Counter(rule_line(rule, derived) for rule in derived.rules)
    have = Counter(rule_line(rule, observed) for rule in observed.rules)
    by_line = {rule_line(rule, derived): rule for rule in derived.rules}
    by_line |= {rule_line(rule, observed): rule for rule in observed.rules}
    found: list[Finding] = []
    for line in sorted(want - have, key=lambda text: int(text.split(":")[0])):
        rule = by_line[line]
        found.append(Finding(
            node, "rule", line, "missing", f"`ip rule` lacks `{_shown(line)}`", _rule_owner(rule),
            (f"ip rule add {_selector(line)} pref {rule.priority}",),
        ))  # fmt: skip
    for line in sorted(have - want, key=lambda text: int(text.split(":")[0])):
        rule = by_line[line]
        found.append(Finding(
            node, "rule", line, "extra",
            f"`ip rule` has `{_shown(line)}`, which no controller writes",
            "another agent on the node, not the VPC CNI or the kernel",
            (f"ip rule del pref {rule.priority} {_selector(line)}",),
        ))  # fmt: skip
    return found


def _route_owner(route: Route, ns: Namespace) -> str:
    if route.table not in (254, 255):
        return "ipamd (aws-node; the ENI's table)"
    if route.dev is not None and route.dev not in {"eth0", "lo"} and route.scope == "link":
        link = next((item for item in ns.links if item.name == route.dev), None)
        if link is not None and link.kind == "veth":
            return "the VPC CNI plugin (the pod's host route)"
    return "the node's network configuration (DHCP on the primary ENI, ipamd for others)"


def compare_routes(node: str, derived: Namespace, observed: Namespace) -> list[Finding]:
    def lines(ns: Namespace) -> dict[str, Route]:
        return {
            route_line(ns, route, show_table=True): route
            for route in ns.routes
            if route.table != TABLE_LOCAL
        }

    want, have = lines(derived), lines(observed)
    found: list[Finding] = []
    missing = [line for line in want if line not in have]
    empty_tables = {
        route.table
        for route in derived.routes
        if route.table not in (254, 255)
        and not any(r.table == route.table for r in observed.routes)
    }
    for table in sorted(empty_tables):
        lost = [line for line in missing if want[line].table == table]
        found.append(Finding(
            node, "table", f"table {table_name(table)}", "missing",
            f"table {table_name(table)} is empty; it should hold: " + "; ".join(lost),
            "ipamd (aws-node; the ENI's table)",
            tuple(f"ip route add {line}" for line in lost),
        ))  # fmt: skip
    for line in missing:
        if want[line].table in empty_tables:
            continue
        found.append(Finding(
            node, "route", line, "missing", f"`ip route show table all` lacks `{line}`",
            _route_owner(want[line], derived), (f"ip route add {line}",),
        ))  # fmt: skip
    for line in have:
        if line not in want:
            found.append(Finding(
                node, "route", line, "extra",
                f"`ip route show table all` has `{line}`, which no controller writes",
                "another agent on the node, not the VPC CNI", (f"ip route del {line}",),
            ))  # fmt: skip
    return found


def _chain_owner(chain: str, line: str) -> str:
    if chain.startswith("cali") or '"cali:' in line:
        return "Calico (felix), not the VPC CNI, kubelet or kube-proxy"
    if chain.upper().startswith("CILIUM") or "cilium" in line:
        return "Cilium, not the VPC CNI, kubelet or kube-proxy"
    if chain.startswith("AWS-") or "AWS-" in line or '--comment "AWS' in line:
        # ipamd's own chains, the jumps to them, and its commented rules in built-in chains
        # (`AWS, primary ENI`, `AWS, CONNMARK`, `AWS, SNAT`: vpc-cni.md §2.4-2.5)
        return "ipamd (aws-node)"
    if chain in ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"):
        return "kubelet"
    if chain.startswith("KUBE-") or "KUBE-" in line:
        return "kube-proxy"
    return "another agent on the node, not the VPC CNI, kubelet or kube-proxy"


def _views(iptables: Iptables | None, source: str) -> dict[tuple[str, str], ChainView]:
    if iptables is None:
        return {}
    return {(view[0], view[1]): view for view in rule_view(iptables.save, source)}


def compare_iptables(node: str, derived: Namespace, observed: Namespace) -> list[Finding]:
    want = _views(derived.iptables, f"{node} (derived)")
    have = _views(observed.iptables, f"{node} (dump)")
    found: list[Finding] = []
    for key in sorted(set(want) | set(have)):
        table, chain = key
        wanted = want.get(key)
        held = have.get(key)
        wanted_rules = list(wanted[3]) if wanted else []
        held_rules = list(held[3]) if held else []
        for position, line in enumerate(wanted_rules, start=1):
            if line not in held_rules:
                rest = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
                fix = [f"iptables -t {table} -N {chain}"] if held is None else []
                fix.append(f"iptables -t {table} -I {chain} {position} {rest}".rstrip())
                found.append(Finding(
                    node, "iptables", f"-t {table} {line}", "missing",
                    f"chain {chain} of table {table} lacks `{line}`"
                    + (" (the chain itself is missing)" if held is None else ""),
                    _chain_owner(chain, line), tuple(fix),
                ))  # fmt: skip
        for line in held_rules:
            if line not in wanted_rules:
                rest = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
                found.append(Finding(
                    node, "iptables", f"-t {table} {line}", "extra",
                    f"chain {chain} of table {table} has `{line}`, which no controller writes",
                    _chain_owner(chain, line), (f"iptables -t {table} -D {chain} {rest}",),
                ))  # fmt: skip
        if wanted and held and wanted[2] != held[2]:
            found.append(Finding(
                node, "iptables", f"-t {table} :{chain} {held[2]}", "changed",
                f"chain {chain} of table {table} has policy {held[2]}, not {wanted[2]}",
                "the node's configuration", (f"iptables -t {table} -P {chain} {wanted[2]}",),
            ))  # fmt: skip
    return found


SYSCTL_ATTRS = ("forwarding", "rp_filter", "accept_local", "route_localnet", "src_valid_mark")
"""The `net.ipv4.conf` settings a packet's fate depends on in the walks eksnet models."""


def compare_sysctls(node: str, derived: Namespace, observed: Namespace) -> list[Finding]:
    keys = ["net.ipv4.ip_forward"]
    for scope in ("all", "default", *(link.name for link in derived.links)):
        keys += [f"net.ipv4.conf.{scope}.{attr}" for attr in SYSCTL_ATTRS]
    found: list[Finding] = []
    for key in keys:
        try:
            want, have = sysctl_value(derived, key), sysctl_value(observed, key)
        except EksnetError:
            continue
        if want != have:
            found.append(Finding(
                node, "sysctl", f"{key} = {have}", "changed",
                f"{key} is {have}; the controllers and the AMI set {want}",
                "the AMI and aws-node's init container", (f"sysctl -w {key}={want}",),
            ))  # fmt: skip
    return found


def compare_neighbours(node: str, derived: Namespace, observed: Namespace) -> list[Finding]:
    def lines(ns: Namespace) -> set[str]:
        return {f"{n.dst} dev {n.dev} lladdr {n.lladdr} {n.state}" for n in ns.neighbours}

    want, have = lines(derived), lines(observed)
    return [
        Finding(node, "neighbour", line, "missing", f"`ip neigh` lacks `{line}`",
                "the VPC CNI plugin", (f"ip neigh replace {line.rsplit(' ', 1)[0]} nud permanent",))
        for line in sorted(want - have)
    ]  # fmt: skip


COMPARISONS: dict[str, Callable[[str, Namespace, Namespace], list[Finding]]] = {
    "rules": compare_rules,
    "routes": compare_routes,
    "iptables": compare_iptables,
    "sysctls": compare_sysctls,
    "neighbours": compare_neighbours,
}
"""Each part a dump can supply, and how it is compared."""


def compare_addresses(record: Observed, derived: Namespace) -> list[Finding]:
    """The node's global IPv4 addresses against its dump's link view (links stay derived, so
    this is the one place a missing address shows): an ENI without its primary address is a
    node the VPC CNI or DHCP left half-configured. Where the view shows one address per device
    (`ifconfig`), only each device's first is compared."""
    if record.addresses is None:
        return []
    want: dict[str, list[str]] = {}
    for address in derived.addresses:
        if address.family == 4 and address.scope == "global":
            want.setdefault(address.dev, []).append(str(address.interface))
    have: dict[str, list[str]] = {}
    for dev, cidr in record.addresses:
        have.setdefault(dev, []).append(cidr)
    found: list[Finding] = []
    for dev, cidrs in want.items():
        expected = cidrs[:1] if record.first_address_only else cidrs
        for cidr in expected:
            if cidr not in have.get(dev, []):
                found.append(Finding(
                    record.namespace, "address", f"{cidr} dev {dev}", "missing",
                    f"`ip addr` shows no {cidr} on {dev}",
                    "DHCP on the primary ENI, ipamd for the others",
                    (f"ip addr add {cidr} dev {dev}",),
                ))  # fmt: skip
    return found


def differences(derived: DataplaneState, observed: DataplaneState) -> list[Finding]:
    """Every finding on every node a dump was laid over (the parts it supplied)."""
    found: list[Finding] = []
    for record in observed.observed:
        parts = dict(record.parts)
        want = derived.namespace(record.namespace)
        have = observed.namespace(record.namespace)
        for part, compare in COMPARISONS.items():
            if part in parts:
                found += compare(record.namespace, want, have)
        found += compare_addresses(record, want)
    return found


# --- putting one finding right, and the walks it breaks -------------------------------------------


def put_right(finding: Finding, derived: DataplaneState, observed: DataplaneState) -> Namespace:
    """The node as imported, with just this finding put right (from the derived node)."""
    want = derived.namespace(finding.node)
    have = observed.namespace(finding.node)
    if finding.kind == "rule":
        if finding.difference == "missing":
            rule = next(r for r in want.rules if rule_line(r, want) == finding.object)
            return replace(have, rules=(*have.rules, rule))
        return replace(
            have, rules=tuple(r for r in have.rules if rule_line(r, have) != finding.object)
        )
    if finding.kind in ("route", "table"):
        if finding.kind == "table" or finding.difference == "missing":
            table = finding.object.removeprefix("table ") if finding.kind == "table" else None
            added = [
                r for r in want.routes
                if (route_line(want, r, show_table=True) == finding.object)
                or (table is not None and table_name(r.table) == table)
            ]  # fmt: skip
            return replace(have, routes=(*have.routes, *added))
        return replace(have, routes=tuple(
            r for r in have.routes if route_line(have, r, show_table=True) != finding.object
        ))  # fmt: skip
    if finding.kind == "iptables":
        return replace(have, iptables=_iptables_put_right(finding, want, have))
    if finding.kind == "sysctl":
        key = finding.object.split(" = ")[0]
        return replace(have, sysctls=(*have.sysctls, (key, sysctl_value(want, key))))
    if finding.kind == "address":
        return have  # links and addresses are derived: the walk already has the address
    return replace(have, neighbours=want.neighbours)


def put_right_in(
    finding: Finding, derived: DataplaneState, observed: DataplaneState
) -> DataplaneState:
    """The imported state with just this finding put right on its node."""
    fixed = put_right(finding, derived, observed)
    return replace(
        observed,
        namespaces=tuple(fixed if ns.name == finding.node else ns for ns in observed.namespaces),
    )


def _iptables_put_right(finding: Finding, want: Namespace, have: Namespace) -> Iptables | None:
    """The dump's rules with just this finding put right: a missing rule inserted where the
    controllers put it (its chain created if the node lacks it, with the chains it jumps to),
    an extra rule deleted, a policy set."""
    words = finding.object.split(" ")
    table = words[1]
    chain = words[3] if words[2] == "-A" else words[2].removeprefix(":")
    wanted = _views(want.iptables, "derived")
    held = _views(have.iptables, "dump")
    key = (table, chain)
    line = finding.object.split(" ", 2)[2]
    current = held.get(key, (table, chain, wanted.get(key, (table, chain, None, ()))[2], ()))
    rules = list(current[3])
    if finding.difference == "changed":
        current = (table, chain, wanted[key][2], current[3])
    elif finding.difference == "extra":
        rules.remove(line)
        current = (table, chain, current[2], tuple(rules))
    else:
        order = list(wanted[key][3])
        before = [r for r in order[: order.index(line)] if r in rules]
        at = rules.index(before[-1]) + 1 if before else 0
        rules.insert(at, line)
        current = (table, chain, current[2], tuple(rules))
    held[key] = current
    # a jump needs its chain: those the node lacks come as the controllers write them
    todo = [current]
    while todo:
        for rule in todo.pop()[3]:
            tokens = rule.split()
            for flag in ("-j", "-g"):
                if flag in tokens[:-1]:
                    target = (table, tokens[tokens.index(flag) + 1])
                    if target in wanted and target not in held:
                        held[target] = wanted[target]
                        todo.append(wanted[target])
    if have.iptables is None and want.iptables is None:
        return None
    backend = (have.iptables or want.iptables).backend  # type: ignore[union-attr]
    return Iptables(
        backend, save_text(held.values()), have.iptables.nfacct if have.iptables else ()
    )


def outcome(result: Walk) -> tuple[object, ...]:
    """What a walk did, without how it was decided: every way's path (place, in, out) and
    ending, its reply's, its next connection's, its proxy's own connection's and its later
    packet's."""

    def one(part: Walk | None) -> tuple[object, ...]:
        if part is None:
            return ()
        ways = []
        for probability, _, leaf in part.leaves():
            path = tuple((hop.where.name, hop.iif, hop.oif) for hop in leaf.hops)
            ending = leaf.disposition
            ways.append((
                round(probability, 6), path,
                (ending.kind, ending.where.name) if ending is not None else None,
                one(leaf.reply), one(leaf.then), one(leaf.backend), one(leaf.later),
            ))  # fmt: skip
        return tuple(ways)

    return one(result)


def _tour_runner(tour_walk: TourWalk) -> Callable[[DataplaneState], Walk]:
    # with its later packet, which only conntrack and the mangle table steer (not for SCTP,
    # whose later chunks are not modelled)
    later = tour_walk.proto != "sctp"

    def run(state: DataplaneState) -> Walk:
        return tour_walk.run(state, {}, later=later)

    return run


def _pair_runner(src: str, dst: str, port: int) -> Callable[[DataplaneState], Walk]:
    def run(state: DataplaneState) -> Walk:
        return run_walk(state, src, dst, dport=port, later=True)

    return run


def node_walks(state: DataplaneState, node: str) -> list[NodeWalk]:
    """The walks a node's findings are tried on: the tour's and the lab's (of the spec's own
    configuration), and each pod of the node to and from every other pod (TCP 80) and to the
    first external host (TCP 443); each with its later packet, so a finding that only the
    connection's next packets meet (a missing mangle restore) breaks a walk too."""
    found = [
        NodeWalk(
            f"{w.id} ({w.src} → {w.dst}" + (f":{w.dport})" if w.dport else ")"), _tour_runner(w)
        )
        for w in (*TOUR, *BEYOND_THE_TALK)
        if w.variant is None
    ]
    pods = list(state.pods())
    mine = [ns for ns in pods if _host_of(state, ns) == node]
    external = state.external_hosts[0] if state.external_hosts else None
    for pod in mine:
        for other in pods:
            if other.name == pod.name:
                continue
            for a, b in ((pod, other), (other, pod)):
                src, dst = f"pod/{a.owner}", f"pod/{b.owner}"
                found.append(NodeWalk(f"{src} → {dst}:80", _pair_runner(src, dst, 80)))
        if external is not None:
            src, dst = f"pod/{pod.owner}", f"ip/{external.address}"
            found.append(NodeWalk(f"{src} → {dst}:443", _pair_runner(src, dst, 443)))
    unique: dict[str, NodeWalk] = {}
    for item in found:
        unique.setdefault(item.id, item)
    return list(unique.values())


def _host_of(state: DataplaneState, pod: Namespace) -> str | None:
    """The node whose veth is the pod's peer."""
    for node in state.nodes():
        if any(link.peer is not None and link.peer.netns == pod.name for link in node.links):
            return node.name
    return None


def _safely(walk: NodeWalk, state: DataplaneState) -> tuple[object, ...] | str:
    try:
        return outcome(walk.run(state))
    except EksnetError as error:
        return f"error: {error.one_line()}"


def _decisions(walk: NodeWalk, state: DataplaneState) -> object:
    """The walk as its summary prints it: the deciding rule, route and iptables rule of every
    hop (not the rules a lookup passed over, which any added rule changes)."""
    try:
        return [str(line) for line in walk_lines(walk.run(state))]
    except EksnetError as error:
        return error.one_line()


def with_walks(
    findings: Sequence[Finding], derived: DataplaneState, observed: DataplaneState
) -> list[Finding]:
    """Each finding with the walks it breaks and changes (walked, not guessed)."""
    nodes = {finding.node for finding in findings}
    walks = {node: node_walks(observed, node) for node in nodes}
    outcomes: dict[str, tuple[object, ...] | str] = {}
    decided: dict[str, object] = {}
    for chosen in walks.values():
        for item in chosen:
            if item.id not in outcomes:
                outcomes[item.id] = _safely(item, observed)
                decided[item.id] = _decisions(item, observed)
    done: list[Finding] = []
    for finding in findings:
        state = put_right_in(finding, derived, observed)
        breaks: list[str] = []
        changes: list[str] = []
        for item in walks[finding.node]:
            after = _safely(item, state)
            if after != outcomes[item.id]:
                breaks.append(item.id)
            elif _decisions(item, state) != decided[item.id]:
                changes.append(item.id)
        done.append(replace(finding, breaks=tuple(breaks), changes=tuple(changes)))
    return done


def check(derived: DataplaneState, observed: DataplaneState) -> list[Finding]:
    """Every finding on the imported nodes, with the walks each breaks."""
    return with_walks(differences(derived, observed), derived, observed)


def unobserved(observed: DataplaneState) -> list[Observed]:
    """Imported nodes whose dump supplied nothing comparable (a variant kept them derived)."""
    return [record for record in observed.observed if not record.parts]
