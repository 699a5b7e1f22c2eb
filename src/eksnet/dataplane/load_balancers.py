"""AWS load balancers as the data plane holds them: what `DescribeLoadBalancers`,
`DescribeListeners`, `DescribeRules` and `DescribeTargetGroups` show (aws-load-balancers.md §1),
as small frozen values.

What a controller builds is data here; what a load balancer does to a packet is the walk's
business (`walk/load_balancing.py`), and how healthy each target is comes from the data plane
itself when a walk asks (a health check is a probe walked through the state).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

LbKind = Literal["nlb", "alb", "clb"]
Controller = Literal["in-tree", "lbc"]
"""`in-tree`: the legacy AWS cloud provider (cloud-provider-aws); `lbc`: the AWS Load Balancer
Controller."""
TargetType = Literal["instance", "ip"]
Scheme = Literal["internet-facing", "internal"]


@dataclass(frozen=True, slots=True)
class LbNode:
    """One load balancer node: the LB's ENI in one AZ's subnet, its private IP, and the public
    one an internet-facing LB has there."""

    az: str
    subnet: str
    eni: str
    private_ip: IPv4Address
    public_ip: IPv4Address | None


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A target group's health check (`HealthCheck*` of `DescribeTargetGroups`)."""

    protocol: Literal["TCP", "HTTP"]
    port: int | None
    """None: `traffic-port` (the target's own port)."""
    path: str | None
    interval: int
    timeout: int | None
    """None: the API's default applies (the in-tree NLB sends none)."""
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str | None = None

    def port_text(self) -> str:
        return "traffic-port" if self.port is None else str(self.port)

    def text(self) -> str:
        where = f"{self.protocol}:{self.port_text()}" + (self.path or "")
        return (
            f"{where}, every {self.interval} s, healthy after {self.healthy_threshold}, "
            f"unhealthy after {self.unhealthy_threshold}"
        )


@dataclass(frozen=True, slots=True)
class Target:
    """A registered target: an instance on a port (its primary ENI's primary IP) or an IP."""

    id: str
    """The instance id, or the IP for an `ip` target."""
    address: IPv4Address
    port: int
    az: str
    node: str | None
    """The node (namespace name) the target is, or the node the pod runs on."""


@dataclass(frozen=True, slots=True)
class TargetGroup:
    id: str
    """The controller's id (`default/app1-nlb:80`, `default/myingress-order:80`)."""
    name: str
    target_type: TargetType
    protocol: str
    port: int
    targets: tuple[Target, ...]
    health_check: HealthCheck
    preserve_client_ip: bool
    cross_zone: bool | None = None
    """None: the load balancer's setting."""
    service: str = ""
    """The Service (`NS/NAME`) whose endpoints or nodes the targets are."""
    local_only: bool = False
    """eTP Local behind instance targets: a node is healthy only with a local endpoint
    (kube-proxy's health server answers 200 or 503)."""
    local_endpoints: tuple[tuple[str, int], ...] = ()
    """(node, ready endpoints of the Service on it): what kube-proxy's health server counts."""

    def local_count(self, node: str | None) -> int:
        return dict(self.local_endpoints).get(node or "", 0)


@dataclass(frozen=True, slots=True)
class ListenerRule:
    """An ALB listener rule: conditions and the action. `priority` None is the default rule."""

    priority: int | None
    host: str | None
    paths: tuple[str, ...]
    target_group: str | None
    fixed_response: int | None = None

    def conditions(self) -> str:
        parts = []
        if self.host is not None:
            parts.append(f"host-header {self.host}")
        if self.paths:
            parts.append("path-pattern " + " or ".join(self.paths))
        return " AND ".join(parts) or "—"

    def action(self) -> str:
        if self.fixed_response is not None:
            return f"fixed-response {self.fixed_response}"
        return f"forward → {self.target_group}"


@dataclass(frozen=True, slots=True)
class Listener:
    protocol: str
    port: int
    target_group: str | None
    """The default action's target group (NLB, CLB); None for an ALB, whose `rules` decide."""
    rules: tuple[ListenerRule, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    name: str
    kind: LbKind
    controller: Controller
    scheme: Scheme
    owner: str
    """`service/NS/NAME` or `ingress/NS/NAME`."""
    dns_name: str
    nodes: tuple[LbNode, ...]
    listeners: tuple[Listener, ...]
    target_groups: tuple[TargetGroup, ...]
    cross_zone: bool
    security_groups: tuple[str, ...] = ()
    proxy_protocol: bool = False

    @property
    def proxies(self) -> bool:
        """An ALB or a CLB ends the client's TCP connection and opens its own to the target."""
        return self.kind in ("alb", "clb")

    def node_in(self, az: str) -> LbNode | None:
        return next((node for node in self.nodes if node.az == az), None)

    def node_of(self, eni: str) -> LbNode | None:
        return next((node for node in self.nodes if node.eni == eni), None)

    def listener(self, protocol: str, port: int) -> Listener | None:
        return next(
            (item for item in self.listeners if (item.protocol, item.port) == (protocol, port)),
            None,
        )

    def target_group(self, group_id: str) -> TargetGroup:
        return next(group for group in self.target_groups if group.id == group_id)


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """A name clients resolve (the spec's `dns:`): its answers, and the load balancer it is an
    alias to, if any."""

    name: str
    answers: tuple[IPv4Address, ...]
    alias: str | None = None
