"""A cluster spec as YAML a person reads and edits: block style, keys in talk.yaml's order.

An imported spec is the start of the user's own file: they add talk names, variants and
external hosts to it. So it is written as `examples/talk.yaml` is: sections and items in that
file's order (a node's `name` first, its `enis` last), mappings in block style, short lists of
plain values on one line (`secondaryIps: [192.168.1.51]`), no anchors or aliases (PyYAML would
otherwise share repeated values as `&id001`). Manifests (Services, EndpointSlices, Ingresses …)
keep the API's own order, as `kubectl` prints them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

ORDER: dict[tuple[str, ...], tuple[str, ...]] = {
    (): (
        "name", "source", "region", "accountId", "kubernetes", "vpc", "cni", "kubeProxy",
        "nodeDefaults", "nodes", "pods", "services", "endpointSlices", "loadBalancerController",
        "ingressClasses", "ingressClassParams", "ingresses", "loadBalancers", "observed",
        "externalHosts", "dns", "variants",
    ),
    ("kubernetes",): ("version", "serviceCidr", "serviceNodePortRange"),
    ("vpc",): (
        "id", "cidrs", "internetGateway", "routerMac", "subnets", "routeTables", "natGateways",
        "securityGroups", "networkAcls", "prefixLists", "flowLogs",
    ),
    ("vpc", "subnets", "*"): (
        "name", "az", "azId", "cidr", "routeTable", "mapPublicIp", "tags", "routerMac", "variant",
    ),
    ("vpc", "natGateways", "*"): (
        "id", "subnet", "privateIp", "publicIp", "connectivity", "eni", "mac", "variant",
    ),
    ("vpc", "securityGroups", "*"): ("description", "tags", "inbound", "outbound"),
    ("vpc", "securityGroups", "*", "inbound", "*"): (
        "protocol", "ports", "source", "destination", "description",
    ),
    ("vpc", "securityGroups", "*", "outbound", "*"): (
        "protocol", "ports", "source", "destination", "description",
    ),
    ("vpc", "networkAcls", "*"): ("subnets", "default", "inbound", "outbound"),
    ("cni",): ("name", "version", "env"),
    ("kubeProxy",): (
        "version", "mode", "clusterCIDR", "detectLocalMode", "detectLocal", "masqueradeBit",
        "masqueradeAll", "nodePortAddresses", "iptables", "conntrack",
    ),
    ("nodeDefaults",): (
        "ami", "instanceType", "kernel", "iptables", "iptablesVersion", "nfacct", "sysctls",
        "imds",
    ),
    ("nodes", "*"): (
        "name", "talkName", "subnet", "publicIp", "instanceId", "instanceType", "iptables",
        "podCIDRs", "imds", "labels", "enis",
    ),
    ("nodes", "*", "enis", "*"): (
        "linux", "ifindex", "id", "device", "mac", "primaryIp", "secondaryIps", "prefixes",
        "securityGroups", "subnet", "elasticIps",
    ),
    ("pods", "*"): (
        "namespace", "name", "talkName", "node", "eni", "ip", "labels", "ports", "ready",
        "terminating", "pin",
    ),
    ("loadBalancerController",): (
        "version", "serviceMutatorWebhook", "ingressClass", "createIngressClassResource",
    ),
    ("loadBalancers", "*"): ("for", "kind", "name", "ips", "securityGroups"),
}  # fmt: skip
"""Key order per place in the spec (`*`: any list item or mapping value); keys not listed
follow in their own order."""

MANIFESTS = frozenset(
    {"services", "endpointSlices", "ingresses", "ingressClasses", "ingressClassParams"}
)


def ordered(value: Any, path: tuple[str, ...] = ()) -> Any:
    """`value` with every mapping's keys in the spec's order (manifests untouched)."""
    if path and path[0] in MANIFESTS and len(path) > 1:
        return value
    if isinstance(value, Mapping):
        order = ORDER.get(path, ())
        keys = [k for k in order if k in value] + [k for k in value if k not in order]
        star = _star(path, value)
        return {k: ordered(value[k], (*path, k) if not star else (*path, "*")) for k in keys}
    if isinstance(value, list):
        return [ordered(item, (*path, "*")) for item in value]
    return value


def _star(path: tuple[str, ...], value: Mapping[str, Any]) -> bool:
    """Mappings keyed by free names (group ids, table ids) order their values as one kind."""
    return path in (("vpc", "securityGroups"), ("vpc", "networkAcls"), ("vpc", "routeTables"))


_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter where PyYAML was built with it (ten times the pure one's speed on a
10,000-pod spec); the same output either way."""


class _Dumper(_Base):  # type: ignore[misc]
    """Block mappings, one-line lists of plain values, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _list(dumper: yaml.SafeDumper, data: Sequence[Any]) -> yaml.Node:
    plain = all(isinstance(item, str | int | float | bool) or item is None for item in data)
    short = sum(len(str(item)) + 2 for item in data) < 80
    return dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=bool(data) and plain and short
    )


_Dumper.add_representer(list, _list)


LONG_LIST = 200
"""A top-level list longer than this (a big cluster's pods, Services, EndpointSlices) is
written one item per line, each a flow mapping in JSON's syntax, which YAML reads as it is:
a person still finds an object on its own line, and writing 10,000 pods takes a tenth of a
second instead of seconds (PyYAML represents every scalar in Python)."""


def render_spec(spec: Mapping[str, Any]) -> str:
    """The spec as readable YAML (what `eksnet import` writes)."""
    whole = ordered(dict(spec))
    parts: list[str] = []
    for key, value in whole.items():
        if isinstance(value, list) and len(value) > LONG_LIST:
            lines = "".join(
                f"  - {json.dumps(item, ensure_ascii=False, separators=(', ', ': '))}\n"
                for item in value
            )
            parts.append(f"{key}:\n{lines}")
            continue
        parts.append(
            str(
                yaml.dump(
                    {key: value},
                    Dumper=_Dumper,
                    sort_keys=False,
                    default_flow_style=False,
                    width=100,
                    allow_unicode=True,
                )
            )
        )
    return "".join(parts)
