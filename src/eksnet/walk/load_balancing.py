"""What a load balancer decides about a packet (aws-load-balancers.md §2), sans-IO: the ALB's
listener rules against a request, which targets a load balancer node may send to, and each
target's health, asked of the data plane itself.

Health is never declared: a target group's check is a probe from the load balancer node to
the target, walked through the state like any packet (`Probe`, the engine's), so a NodePort that
kube-proxy delivers is healthy and one a node DROPs (eTP Local without a local endpoint) is not;
an HTTP check of kube-proxy's health server (`healthCheckNodePort`) answers 200 only where the
node has a local ready endpoint, 503 elsewhere (§3 step 1).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from eksnet.dataplane.load_balancers import (
    LbNode,
    Listener,
    ListenerRule,
    LoadBalancer,
    Target,
    TargetGroup,
)

FIRST_PORT = 1024
"""Where a load balancer's own source ports start (the one it picks is a chosen value)."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What an HTTP client asks: the `Host` header and the path (no query)."""

    host: str | None
    path: str = "/"

    def text(self) -> str:
        return f"GET {self.path} HTTP/1.1, Host: {self.host or '(none)'}"


def rule_for(listener: Listener, request: HttpRequest) -> ListenerRule:
    """The first rule (lowest priority number) whose conditions the request meets, else the
    default (§1.4: hosts case-insensitive, `*.example.com` matches one more label; paths are
    case-sensitive globs, `*` any characters, `?` exactly one)."""
    for rule in listener.rules:
        if rule.priority is None:
            continue
        if rule.host is not None and not _host_matches(rule.host, request.host):
            continue
        if rule.paths and not any(_path_matches(p, request.path) for p in rule.paths):
            continue
        return rule
    return next(rule for rule in listener.rules if rule.priority is None)


def _host_matches(pattern: str, host: str | None) -> bool:
    if host is None:
        return False
    host, pattern = host.lower().split(":")[0], pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return host == pattern


def _path_matches(pattern: str, path: str) -> bool:
    # fnmatchcase treats [] as a class; ALB has none: escape them
    escaped = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(path.split("?")[0], escaped)


@dataclass(frozen=True, slots=True)
class TargetHealth:
    target: Target
    healthy: bool
    reason: str


Probe = Callable[[LoadBalancer, TargetGroup, Target], TargetHealth]
"""The engine's health check of one target: a probe walked from the load balancer's node."""


@dataclass(frozen=True, slots=True)
class Eligible:
    """The targets a node may send to, and why (cross-zone, health, fail-open)."""

    targets: tuple[Target, ...]
    reason: str
    health: tuple[TargetHealth, ...]


def eligible(balancer: LoadBalancer, node: LbNode, group: TargetGroup, probe: Probe) -> Eligible:
    """§2.1, §2.2, §2.3: healthy targets in the node's AZ (or every AZ with cross-zone on);
    when no target in any AZ is healthy, all of them (fail-open)."""
    health = tuple(probe(balancer, group, target) for target in group.targets)
    cross_zone = group.cross_zone if group.cross_zone is not None else balancer.cross_zone
    reachable = [h for h in health if cross_zone or h.target.az == node.az]
    zone = "cross-zone on: every AZ" if cross_zone else f"cross-zone off: {node.az} only"
    healthy = [h.target for h in reachable if h.healthy]
    if healthy:
        return Eligible(tuple(healthy), f"{zone}; healthy targets", health)
    if not any(h.healthy for h in health):
        everyone = tuple(h.target for h in reachable)
        return Eligible(everyone, f"{zone}; no target is healthy: fail-open to all", health)
    return Eligible((), f"{zone}; no healthy target here (the AZ leaves DNS)", health)


def lowest_free_port(used: Sequence[int]) -> int:
    taken = set(used)
    return next(port for port in range(FIRST_PORT, 65536) if port not in taken)


def forwarding_headers(client: IPv4Address, port: int, proto: str = "http") -> tuple[str, ...]:
    """The headers an ALB adds (§2.3, XFF mode `append` on a request that had none)."""
    return (
        f"X-Forwarded-For: {client}",
        f"X-Forwarded-Proto: {proto}",
        f"X-Forwarded-Port: {port}",
    )
