"""Naming a place in the cluster the way the CLI does: `node/NAME`, `pod/NS/NAME`, `ip/ADDR`.

One parser for `eksnet exec`, `eksnet walk`, `eksnet lab exec` and `eksnet lab verify`, so the
simulator and the lab always agree on what a target means.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Literal

from eksnet.dataplane.state import DataplaneState, Namespace
from eksnet.errors import InputError

TargetKind = Literal["node", "pod", "ip"]


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    name: str
    """Node name, `NS/NAME` for a pod, or the address for `ip/`."""

    def spec(self) -> str:
        return f"{self.kind}/{self.name}"


def parse_target(text: str) -> Target:
    """Parse `node/NAME`, `pod/NS/NAME` or `ip/ADDR`; anything else is an input error."""
    kind, _, rest = text.partition("/")
    if kind == "node" and rest and "/" not in rest:
        return Target("node", rest)
    if kind == "pod" and rest.count("/") == 1 and all(rest.split("/")):
        return Target("pod", rest)
    if kind == "ip" and rest:
        try:
            IPv4Address(rest)
        except AddressValueError:
            raise InputError(
                f"target {text!r}: {rest!r} is not an IPv4 address", fix="write ip/A.B.C.D"
            ) from None
        return Target("ip", rest)
    raise InputError(
        f"target {text!r} is not node/NAME, pod/NAMESPACE/NAME or ip/ADDRESS",
        fix="e.g. node/ip-192-168-1-50.eu-west-2.compute.internal or pod/default/NAME",
    )


def resolve_namespace(state: DataplaneState, target: Target) -> Namespace:
    """The namespace a node or pod target lives in; unknown names are input errors that list
    what exists."""
    if target.kind == "ip":
        raise InputError(
            f"target ip/{target.name} is an address, not a namespace",
            fix="name a node/NAME or pod/NAMESPACE/NAME",
        )
    owners = [ns.owner for ns in state.namespaces if ns.kind == target.kind]
    for namespace in state.namespaces:
        if namespace.kind == target.kind and namespace.owner == target.name:
            return namespace
    known = ", ".join(f"{target.kind}/{owner}" for owner in owners)
    raise InputError(f"unknown {target.kind} {target.name!r}", fix=f"one of: {known}")
