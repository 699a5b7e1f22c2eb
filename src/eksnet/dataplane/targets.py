"""Naming a place in the cluster the way the CLI does: `node/NAME`, `pod/NS/NAME`, `ip/ADDR`,
and `svc/NS/NAME` (a Service's ClusterIP).

One parser for `eksnet exec`, `eksnet walk`, `eksnet lab exec` and `eksnet lab verify`, so the
simulator and the lab always agree on what a target means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Literal

from eksnet.dataplane.state import DataplaneState, Namespace, Service
from eksnet.errors import InputError

TargetKind = Literal["node", "pod", "ip", "svc", "lb", "ingress", "dns"]


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    name: str
    """Node name, `NS/NAME` for a pod or a Service, or the address for `ip/`."""

    def spec(self) -> str:
        return f"{self.kind}/{self.name}"


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAMESPACE = re.compile(_LABEL)
"""A Kubernetes namespace: a DNS-1123 label (at most 63 characters)."""
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
"""A node or pod name: a DNS-1123 subdomain (at most 253 characters). The spec's names are
checked the same way (`model.cluster`), so a target that fails this names nothing."""


def parse_target(text: str) -> Target:
    """Parse `node/NAME`, `pod/NS/NAME`, `svc/NS/NAME`, `lb/NS/SERVICE` (the Service's load
    balancer), `ingress/NS/NAME` (the Ingress's ALB), `dns/NAME` or `ip/ADDR`; anything else is
    an input error."""
    kind, _, rest = text.partition("/")
    if kind == "node" and rest and "/" not in rest:
        _check_name(text, rest, "node name", _NAME, 253)
        return Target("node", rest)
    if kind in ("pod", "svc", "lb", "ingress") and rest.count("/") == 1 and all(rest.split("/")):
        namespace, name = rest.split("/")
        _check_name(text, namespace, "namespace", _NAMESPACE, 63)
        if kind == "pod":
            _check_name(text, name, "pod name", _NAME, 253)
            return Target("pod", rest)
        if kind == "ingress":
            _check_name(text, name, "Ingress name", _NAME, 253)
            return Target("ingress", rest)
        _check_name(text, name, "Service name", _NAMESPACE, 63)
        return Target("lb" if kind == "lb" else "svc", rest)
    if kind == "dns" and rest and "/" not in rest:
        _check_name(text, rest.lower().rstrip("."), "DNS name", _NAME, 253)
        return Target("dns", rest.lower().rstrip("."))
    if kind == "ip" and rest:
        try:
            IPv4Address(rest)
        except AddressValueError:
            raise InputError(
                f"target {_shown(text)}: {_shown(rest)} is not an IPv4 address",
                fix="write ip/A.B.C.D",
            ) from None
        return Target("ip", rest)
    raise InputError(
        f"target {_shown(text)} is not node/NAME, pod/NAMESPACE/NAME, svc/NAMESPACE/NAME, "
        "lb/NAMESPACE/SERVICE, ingress/NAMESPACE/NAME, dns/NAME or ip/ADDRESS",
        fix="e.g. node/ip-192-168-1-50.eu-west-2.compute.internal or pod/default/NAME",
    )


def _check_name(text: str, name: str, what: str, pattern: re.Pattern[str], longest: int) -> None:
    if len(name) > longest or not pattern.fullmatch(name):
        raise InputError(
            f"target {_shown(text)}: {_shown(name)} is not a {what} (Kubernetes names are "
            "lowercase letters, digits, '-' and '.')",
            fix="e.g. node/ip-192-168-1-50.eu-west-2.compute.internal or pod/default/NAME",
        )


def _shown(text: str, limit: int = 80) -> str:
    """`repr(text)`, cut short: an error line quotes a target, not a megabyte of one."""
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[:limit]}… ({len(text):,} characters)"


def resolve_namespace(state: DataplaneState, target: Target) -> Namespace:
    """The namespace a node or pod target lives in; unknown names are input errors that list
    what exists."""
    if target.kind not in ("node", "pod"):
        what = {
            "ip": "an address",
            "svc": "a Service (an address on no interface)",
            "dns": "a name",
        }.get(target.kind, "a load balancer (`-- describe` shows it)")
        raise InputError(
            f"target {target.spec()} is {what}, not a namespace",
            fix="name a node/NAME or pod/NAMESPACE/NAME",
        )
    owners = [ns.owner for ns in state.namespaces if ns.kind == target.kind]
    for namespace in state.namespaces:
        if namespace.kind == target.kind and namespace.owner == target.name:
            return namespace
    known = ", ".join(f"{target.kind}/{owner}" for owner in owners)
    raise InputError(f"unknown {target.kind} {target.name!r}", fix=f"one of: {known}")


def resolve_service(state: DataplaneState, target: Target) -> Service:
    """The Service a `svc/NS/NAME` target names; an unknown one is an input error listing the
    Services that exist."""
    for service in state.services:
        if service.key == target.name:
            return service
    known = ", ".join(f"svc/{service.key}" for service in state.services) or "none in this spec"
    raise InputError(f"unknown Service {target.name!r}", fix=f"one of: {known}")
