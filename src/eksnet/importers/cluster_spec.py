"""`kubectl`/`aws` JSON (any mix) and an optional base spec → one cluster spec, and what was
assumed.

The two halves are read apart (`kubernetes_json`, `aws_json`) and joined here where they meet:
a Node is an instance (`spec.providerID`, else its InternalIP on an ENI), a pod's address is on
one of its node's ENIs, a load balancer's ENIs belong to the Service or Ingress its tags (or
the owner's status hostname) name.

A base spec (the user's own file, or the demo) supplies what no document can say: talk names,
pinned veth names, the router MAC, external hosts, variants … The rule is simple and stated
once (`merge`): a fact the documents state replaces the base's; a value the importer had to
assume (`Assumed`: an ENI's Linux name) yields to the base's; what the documents do not mention
at all is the base's. Lists of named things (nodes, ENIs, pods, subnets, NAT gateways, load
balancers) are merged item by item by name, and the documents' list says which items exist.
Where neither says what the schema needs, the error names the input that would say it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from eksnet.errors import InputError
from eksnet.importers._facts import Assumed, Json, Notes, SubnetRef, most_common, region_of
from eksnet.importers.aws_json import AwsFacts, aws_facts, node_eni_specs
from eksnet.importers.json_input import Inputs, sort_documents
from eksnet.importers.kubernetes_json import KubeFacts, KubeNode, kubernetes_facts
from eksnet.importers.spec_yaml import ordered, render_spec

__all__ = ["merge", "render_spec", "spec_from_documents"]


@dataclass(frozen=True, slots=True)
class Whole:
    """A mapping the documents state completely: it replaces the base's, key by key too."""

    value: Any


@dataclass(frozen=True, slots=True)
class EniRef:
    """A pod's ENI by id; the spec names it by its Linux name, known only after the merge (the
    base may name the ENI differently from the assumed `eth<N>`)."""

    id: str
    source: str


_MISSING: Any = object()


def _pod_key(item: Mapping[str, Any]) -> str:
    return f"{item.get('namespace') or 'default'}/{item.get('name')}"


def _lb_key(item: Mapping[str, Any]) -> str:
    kind, _, rest = str(item.get("for", "")).partition("/")
    namespace, _, name = rest.rpartition("/")
    return f"{kind}/{namespace or 'default'}/{name}"


LIST_KEYS: dict[tuple[str, ...], Callable[[Mapping[str, Any]], str]] = {
    ("nodes",): lambda item: str(item.get("name")),
    ("nodes", "*", "enis"): lambda item: str(item.get("id")),
    ("pods",): _pod_key,
    ("vpc", "subnets"): lambda item: str(item.get("name")),
    ("vpc", "natGateways"): lambda item: str(item.get("id")),
    ("loadBalancers",): _lb_key,
}
"""Lists of named items, merged item by item; any other list is replaced whole."""

REPLACED: frozenset[tuple[str, ...]] = frozenset(
    {
        ("vpc", "routeTables"),
        ("vpc", "securityGroups"),
        ("vpc", "networkAcls"),
        ("vpc", "prefixLists"),
        ("cni", "env"),
        ("nodes", "*", "labels"),
        ("pods", "*", "labels"),
        ("vpc", "subnets", "*", "tags"),
        ("loadBalancerController",),
        ("loadBalancers", "*", "ips"),
    }
)
"""Mappings the documents state as a whole: a base's extra keys there would be stale."""


def merge(fact: Any, base: Any, path: tuple[str, ...] = ()) -> Any:
    """`fact` over `base`: facts win, assumptions yield, the unmentioned is the base's."""
    if isinstance(fact, Assumed):
        return _plain(base) if base is not _MISSING else _plain(fact.value)
    if fact is _MISSING:
        return _plain(base)
    if isinstance(fact, Whole) or path in REPLACED:
        return _plain(fact)
    if isinstance(fact, dict) and isinstance(base, dict):
        keys = [*fact, *(k for k in base if k not in fact)]
        return {
            k: merge(fact.get(k, _MISSING), base.get(k, _MISSING), (*path, str(k))) for k in keys
        }
    key = LIST_KEYS.get(path)
    if isinstance(fact, list) and isinstance(base, list) and key is not None:
        by_key = {key(item): item for item in base if isinstance(item, dict)}
        return [
            merge(item, by_key.get(key(item), _MISSING), (*path, "*"))
            if isinstance(item, dict)
            else _plain(item)
            for item in fact
        ]
    return _plain(fact)


def _plain(value: Any) -> Any:
    """`value` without the importer's markers (a pod's `EniRef` stays, resolved later)."""
    if isinstance(value, Assumed | Whole):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def spec_from_documents(
    documents: Sequence[tuple[str, Any]], base: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The cluster spec the documents (source name, parsed JSON) describe, over `base`, and
    what was assumed, in words."""
    notes = Notes()
    inputs = sort_documents(documents)
    kube = kubernetes_facts(inputs, notes)
    aws = aws_facts(inputs, notes)
    facts = _facts(inputs, kube, aws, notes)
    spec = merge(facts, dict(base) if base is not None else _MISSING)
    spec = _finish(spec, notes)
    _require(spec, inputs, kube)
    return ordered(spec), tuple(notes.lines)


def _facts(inputs: Inputs, kube: KubeFacts, aws: AwsFacts, notes: Notes) -> Json:
    facts: Json = {}
    names = [n for n in [kube.cluster_name] if n] or aws.cluster_names
    if names:
        facts["name"] = most_common(names)
    elif kube.nodes or aws.enis:
        facts["name"] = Assumed("imported")
        notes.add(
            "the cluster's name is not in the inputs (no `kubernetes.io/cluster/…` tag, "
            "`aws eks describe-cluster` or LBC --cluster-name): called `imported`"
        )
    zones = aws.zones + [n.zone for n in kube.nodes if n.zone]
    regions = [r for r in (region_of(z) for z in zones) if r]
    if regions:
        facts["region"] = most_common(regions)
    if aws.accounts:
        facts["accountId"] = most_common(aws.accounts)
    kubernetes: Json = dict(kube.sections.get("kubernetes", {}))
    cluster = aws.cluster or {}
    if cluster.get("version"):
        kubernetes["version"] = str(cluster["version"])
    service_cidr = (cluster.get("kubernetesNetworkConfig") or {}).get("serviceIpv4Cidr")
    if service_cidr:
        kubernetes["serviceCidr"] = str(service_cidr)
    elif "services" in kube.sections:
        guessed = _service_cidr(kube.sections["services"])
        if guessed is not None:
            kubernetes["serviceCidr"] = Assumed(guessed)
            notes.add(
                f"the service CIDR is assumed to be {guessed}, EKS's default that holds every "
                "ClusterIP (`aws eks describe-cluster` says)"
            )
    if kubernetes:
        facts["kubernetes"] = kubernetes
    if aws.vpc:
        facts["vpc"] = aws.vpc
    if "cni" in kube.sections:
        facts["cni"] = kube.sections["cni"]
    if "kubeProxy" in kube.sections:
        section = kube.sections["kubeProxy"]
        facts["kubeProxy"] = Whole(section) if set(section) - {"version"} else section
    nodes = _nodes(kube, aws, notes)
    defaults: Json = dict(kube.node_defaults)
    types = [n.pop("_type") for n in nodes if n.get("_type")]
    if types:
        defaults["instanceType"] = most_common(types)
    imds = [n.pop("_imds") for n in nodes if n.get("_imds")]
    if imds:
        defaults["imds"] = most_common(imds)
    for node in nodes:
        for key in ("instanceType", "imds"):
            if key in node and node[key] == defaults.get(key):
                del node[key]
    if defaults:
        facts["nodeDefaults"] = defaults
    if nodes:
        facts["nodes"] = nodes
    if kube.pods:
        facts["pods"] = [_pod(pod, kube, aws) for pod in kube.pods]
    for key in ("services", "endpointSlices", "loadBalancerController"):
        if key in kube.sections:
            facts[key] = kube.sections[key]
    for key in ("ingressClasses", "ingressClassParams", "ingresses"):
        if key in kube.sections:
            facts[key] = kube.sections[key]
    pins = _load_balancers(kube, aws, notes)
    if pins:
        facts["loadBalancers"] = pins
    return facts


def _service_cidr(services: list[Json]) -> str | None:
    """EKS picks 10.100.0.0/16 or 172.20.0.0/16 (the one not overlapping the VPC)."""
    ips = []
    for service in services:
        text = (service.get("spec") or {}).get("clusterIP")
        if text and text != "None":
            ips.append(IPv4Address(text))
    for cidr in ("10.100.0.0/16", "172.20.0.0/16"):
        if ips and all(ip in IPv4Network(cidr) for ip in ips):
            return cidr
    return None


def _nodes(kube: KubeFacts, aws: AwsFacts, notes: Notes) -> list[Json]:
    """The nodes: the Kubernetes Nodes (each joined to its instance), else every instance
    with ENIs in the VPC (named by its private DNS name, as EKS names nodes by default)."""
    by_instance = aws.node_enis()
    joined: list[tuple[str, KubeNode | None, str | None]] = []
    if kube.nodes:
        for known in kube.nodes:
            instance = known.instance_id
            if instance is None:
                instance = next(
                    (
                        i
                        for i, held in by_instance.items()
                        if any(e.primary_ip in known.internal_ips for e in held)
                    ),
                    None,
                )
            joined.append((known.name, known, instance))
    else:
        for instance, held in by_instance.items():
            info = aws.instances.get(instance, {})
            name = info.get("PrivateDnsName") or next(
                (e.private_dns for e in held if e.private_dns), None
            )
            if not name:
                name = instance
            joined.append((str(name), None, instance))
        if joined:
            notes.add(
                "no kubectl Nodes given: every instance with ENIs in the VPC is a node, named "
                "by its private DNS name (EKS's default node name)"
            )
    nodes: list[Json] = []
    for name, kube_node, instance in joined:
        node: Json = {"name": name}
        info = aws.instances.get(instance or "", {})
        enis = node_eni_specs(aws, instance) if instance else []
        primary = next((e for e in enis if e["device"] == 0), enis[0] if enis else None)
        if primary is not None:
            node["subnet"] = primary["subnet"]
        elif info.get("SubnetId"):
            node["subnet"] = aws.subnet_names.get(info["SubnetId"]) or SubnetRef(
                str(info["SubnetId"]), str(info.get("PrivateIpAddress"))
            )
        public = None
        if primary is not None and instance:
            eni = aws.enis[primary["id"]]
            public = eni.public.get(str(eni.primary_ip))
        public = (
            public or info.get("PublicIpAddress") or (kube_node.external_ip if kube_node else None)
        )
        if public:
            node["publicIp"] = str(public)
        if instance:
            node["instanceId"] = instance
        instance_type = info.get("InstanceType") or (
            kube_node.labels.get("node.kubernetes.io/instance-type") if kube_node else None
        )
        if instance_type:
            node["instanceType"] = node["_type"] = str(instance_type)
        if kube_node is not None:
            node.update(kube.node_overrides.get(name, {}))
            node["podCIDRs"] = kube_node.pod_cidrs
        options = info.get("MetadataOptions")
        if options:
            imds = {
                "httpTokens": str(options.get("HttpTokens", "optional")),
                "hopLimit": int(options.get("HttpPutResponseHopLimit", 1)),
            }
            node["imds"] = node["_imds"] = imds
        if kube_node is not None:
            node["labels"] = kube_node.labels
        if enis:
            node["enis"] = enis
            notes.add(
                "the nodes' ENIs are named eth<N> in attachment (device index) order with "
                "ifindex N+2, as AL2 and AL2023 name them: no input shows Linux names"
            )
        nodes.append(node)
    return nodes


def _pod(pod: Json, kube: KubeFacts, aws: AwsFacts) -> Json:
    spec = dict(pod)
    owner = aws.owner_of(pod["ip"]) if aws.enis else None
    if owner is not None:
        spec["eni"] = EniRef(owner[1].id, owner[1].source)
    elif aws.enis:
        source = kube.pod_sources.get(_pod_key(pod))
        raise InputError(
            f"pod {_pod_key(pod)}: its address {pod['ip']} is on no ENI of the inputs",
            source=source,
            fix="give `aws ec2 describe-network-interfaces` for every node of the cluster",
        )
    return spec


def _load_balancers(kube: KubeFacts, aws: AwsFacts, notes: Notes) -> list[Json]:
    """`loadBalancers` pins from the load balancers' ENIs: each name's nodes per zone, its
    owner from its tags or from the Service's or Ingress's status hostname."""
    by_name: dict[str, list[Any]] = {}
    for node in aws.lb_nodes:
        by_name.setdefault(node.name, []).append(node)
    pins: list[Json] = []
    for name, nodes in by_name.items():
        owner = aws.lb_owners.get(name) or _owner_by_hostname(name, kube, aws)
        if owner is None:
            notes.add(
                f"load balancer {name} left out: no tag or Service/Ingress status names its "
                "owner (give `aws elbv2 describe-tags` or the Service with its status)"
            )
            continue
        kind, namespace, object_name = owner.split("/", 2)
        ips: Json = {}
        for node in sorted(nodes, key=lambda n: n.zone):
            ips[node.zone] = [node.private_ip] + ([node.public_ip] if node.public_ip else [])
        pin: Json = {
            "for": f"{kind}/{object_name}" if namespace == "default" else owner,
            "kind": nodes[0].kind,
            "name": name,
            "ips": ips,
        }
        groups = aws.lb_groups.get(name) or tuple(g for g, _ in nodes[0].groups)
        names = dict(nodes[0].groups)
        user = [
            g
            for g in groups
            if g not in aws.managed_groups and not names.get(g, "").startswith("k8s-")
        ]
        if user:
            pin["securityGroups"] = user
            notes.add(
                f"load balancer {name}: its groups {', '.join(user)} are not a controller's, so "
                "they are pinned as the user's (the controllers then open no node ports for it)"
            )
        pins.append(pin)
    return pins


def _owner_by_hostname(name: str, kube: KubeFacts, aws: AwsFacts) -> str | None:
    dns = aws.lb_dns.get(name)
    for owner, hostnames in kube.hostnames.items():
        for hostname in hostnames:
            label = hostname.split(".", 1)[0].removeprefix("internal-")
            if hostname == dns or label.rsplit("-", 1)[0] == name:
                return owner
    return None


def _finish(spec: Json, notes: Notes) -> Json:
    """Resolve pods' ENIs to Linux names, drop what only the importer needed, and values that
    say no more than the schema's defaults."""
    linux: dict[str, tuple[str, str]] = {}
    subnets = [
        (IPv4Network(str(s["cidr"])), str(s["name"]))
        for s in (spec.get("vpc") or {}).get("subnets") or []
        if s.get("cidr") and s.get("name")
    ]

    def subnet(value: Any) -> Any:
        if not isinstance(value, SubnetRef):
            return value
        address = IPv4Address(value.address)
        found = [name for cidr, name in subnets if address in cidr]
        if found:
            notes.add(
                "subnets the inputs do not describe are the base's subnets holding the ENIs' "
                "addresses"
            )
        return found[0] if found else value.id

    for node in spec.get("nodes") or []:
        if "subnet" in node:
            node["subnet"] = subnet(node["subnet"])
        for eni in node.get("enis") or []:
            linux[str(eni.get("id"))] = (str(node.get("name")), str(eni.get("linux")))
            if "subnet" in eni:
                eni["subnet"] = subnet(eni["subnet"])
            if eni.get("subnet") == node.get("subnet"):
                eni.pop("subnet")
            for key in ("secondaryIps", "prefixes", "elasticIps"):
                if eni.get(key) == []:
                    eni.pop(key)
        for key in ("labels", "podCIDRs"):
            if node.get(key) in ({}, []):
                node.pop(key)
        node.pop("_type", None)
        node.pop("_imds", None)
    for described in (spec.get("vpc") or {}).get("subnets") or []:
        described.pop("_id", None)
        if described.get("tags") == {}:
            described.pop("tags")
    for pod in spec.get("pods") or []:
        ref = pod.get("eni")
        if isinstance(ref, EniRef):
            found = linux.get(ref.id)
            if found is None or found[0] != pod.get("node"):
                raise InputError(
                    f"pod {_pod_key(pod)}: its address {pod.get('ip')} is on ENI {ref.id}, "
                    f"which is not an ENI of its node {pod.get('node')}",
                    source=ref.source,
                    fix="give the ENIs and the pods of the same moment",
                )
            pod["eni"] = found[1]
        for key, default in (
            ("ready", True),
            ("terminating", False),
            ("labels", {}),
            ("ports", []),
        ):
            if pod.get(key) == default:
                pod.pop(key)
    return spec


def _require(spec: Json, inputs: Inputs, kube: KubeFacts) -> None:
    """What the schema needs and neither the documents nor the base said: an error naming the
    input that says it."""
    sources = ", ".join(
        dict.fromkeys(
            i.source for items in [*inputs.kube.values(), *inputs.aws.values()] for i in items
        )
    )

    def need(what: str, fix: str, source: str | None = None) -> None:
        raise InputError(what, source=source or sources or None, fix=fix)

    if "name" not in spec:
        need("no cluster name", "give `aws eks describe-cluster` or a base spec")
    if "region" not in spec:
        need(
            "no region: no availability zone in the inputs",
            "give `aws ec2 describe-subnets` (or nodes whose providerID names their zone)",
        )
    vpc = spec.get("vpc")
    if not isinstance(vpc, dict) or not vpc.get("id"):
        need(
            "no VPC: nothing in the inputs says which VPC the cluster is in",
            "give `aws ec2 describe-network-interfaces` and `aws ec2 describe-subnets`",
        )
        return
    if not vpc.get("subnets"):
        need(f"VPC {vpc['id']}: no subnets", "give `aws ec2 describe-subnets`")
    if not vpc.get("cidrs"):
        need(f"VPC {vpc['id']}: its CIDRs are unknown", "give `aws ec2 describe-vpcs`")
    subnets = {str(s.get("name")): s for s in vpc.get("subnets") or []}
    for subnet in subnets.values():
        if not subnet.get("routeTable"):
            need(
                f"subnet {subnet.get('name')}: its route table is unknown",
                "give `aws ec2 describe-route-tables`",
                inputs.sources("Subnets"),
            )
    if not spec.get("nodes"):
        need(
            "no nodes",
            "give `kubectl get nodes -o json` and `aws ec2 describe-network-interfaces`",
        )
    kube_sources = {n.name: n.source for n in kube.nodes}
    for node in spec.get("nodes") or []:
        where = kube_sources.get(str(node.get("name")))
        if not node.get("enis"):
            need(
                f"node {node.get('name')}: its ENIs are unknown",
                "give `aws ec2 describe-network-interfaces` (or describe-instances) for its "
                f"instance {node.get('instanceId', '(instance id unknown)')}",
                where,
            )
        for eni in node.get("enis") or []:
            subnet = str(eni.get("subnet", node.get("subnet")))
            if subnet not in subnets:
                need(
                    f"node {node.get('name')}: ENI {eni.get('id')} is in subnet {subnet}, which "
                    "no input describes",
                    "give `aws ec2 describe-subnets` for the cluster's VPC",
                    inputs.sources("NetworkInterfaces"),
                )
        if not node.get("subnet"):
            need(f"node {node.get('name')}: its subnet is unknown", "give its ENIs", where)
    groups = set((vpc.get("securityGroups") or {}).keys())
    for node in spec.get("nodes") or []:
        for eni in node.get("enis") or []:
            missing = [g for g in eni.get("securityGroups") or [] if g not in groups]
            if missing:
                need(
                    f"ENI {eni.get('id')}: security group {', '.join(missing)} is not described",
                    "give `aws ec2 describe-security-groups` for the cluster's VPC",
                    inputs.sources("NetworkInterfaces"),
                )
    for pod in spec.get("pods") or []:
        if not pod.get("eni"):
            need(
                f"pod {_pod_key(pod)}: which ENI holds its address {pod.get('ip')} is unknown",
                "give `aws ec2 describe-network-interfaces` for its node",
                kube.pod_sources.get(_pod_key(pod)),
            )
