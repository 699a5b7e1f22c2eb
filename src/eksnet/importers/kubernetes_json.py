"""`kubectl get … -o json` → the Kubernetes half of a cluster spec.

What each object gives (the spec's field ← the object's):

* Node: `nodes[].name` ← `metadata.name`; `instanceId` and its zone ← `spec.providerID`
  (`aws:///eu-west-2a/i-…`); `labels`, `podCIDRs`; the AMI ← `status.nodeInfo.osImage`, the kernel
  ← `kernelVersion`; kube-proxy's version ← `kubeProxyVersion` (empty since kubelets stopped
  reporting it: then the kube-proxy DaemonSet's image tag, else the kubelet's version, assumed).
* Pod: `pods[]` ← namespace, name, `spec.nodeName`, `status.podIP`, labels, the containers'
  ports, the Ready condition, `deletionTimestamp` (terminating). Host-network pods are the
  node's own processes, not pods the VPC CNI wires: left out.
* Service, EndpointSlice, Ingress, IngressClass, IngressClassParams: the manifests as the API
  prints them, less the bookkeeping (`managedFields`, kubectl's last-applied annotation) and any
  field the spec's schema does not take (named in the report).
* ConfigMap `kube-system/kube-proxy-config`: its `config` KubeProxyConfiguration → `kubeProxy`.
* DaemonSet `aws-node`: the VPC CNI's version from its image tag, `cni.env` from the container's
  literal env (values taken from a field or secret are not in the manifest: named).
* DaemonSet `kube-proxy`: kube-proxy's version from its image tag.
* Deployment `aws-load-balancer-controller`: `loadBalancerController` (version from the image,
  the chart's values from the flags).

Pure: parsed JSON in, dicts in the spec's shape out.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from eksnet.errors import InputError
from eksnet.importers._facts import Assumed, Json, Notes, image_tag, most_common
from eksnet.importers.json_input import Inputs, Item
from eksnet.model.cluster import KubeProxySpec, LoadBalancerControllerSpec
from eksnet.model.kubernetes import EndpointSliceManifest, ServiceManifest

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True, slots=True)
class KubeNode:
    """A Node as the spec and the AWS side need it."""

    name: str
    source: str
    instance_id: str | None
    zone: str | None
    labels: dict[str, str]
    pod_cidrs: list[str]
    internal_ips: tuple[str, ...]
    external_ip: str | None
    os_image: str
    kernel: str
    kubelet_version: str
    kube_proxy_version: str


@dataclass(slots=True)
class KubeFacts:
    """The Kubernetes side of the spec: sections in the spec's shape, plus what the AWS side and
    the load balancers' owners need."""

    nodes: list[KubeNode] = field(default_factory=list)
    pods: list[Json] = field(default_factory=list)
    pod_sources: dict[str, str] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    """Top-level spec keys the objects fill: services, endpointSlices, ingresses, ingressClasses,
    ingressClassParams, kubeProxy, cni, loadBalancerController, kubernetes."""
    cluster_name: str | None = None
    hostnames: dict[str, list[str]] = field(default_factory=dict)
    """Owner (`service/NS/NAME`, `ingress/NS/NAME`) → the load balancer hostnames in its
    status: how a load balancer is tied to its Service or Ingress without its tags."""
    node_defaults: Json = field(default_factory=dict)
    node_overrides: dict[str, Json] = field(default_factory=dict)


def kubernetes_facts(inputs: Inputs, notes: Notes) -> KubeFacts:
    """Everything the Kubernetes objects say, in the spec's terms."""
    facts = KubeFacts()
    for item in inputs.objects("Node"):
        facts.nodes.append(_node(item))
    _node_software(facts, notes)
    pods = inputs.objects("Pod")
    for item in pods:
        pod = _pod(item, notes)
        if pod is not None:
            facts.pods.append(pod)
            facts.pod_sources[f"{pod['namespace']}/{pod['name']}"] = item.source
    kept_pods = {f"{p['namespace']}/{p['name']}" for p in facts.pods} if pods else None
    if inputs.objects("Service"):
        facts.sections["services"] = [
            _manifest(item, ServiceManifest, notes) for item in inputs.objects("Service")
        ]
    if inputs.objects("EndpointSlice"):
        facts.sections["endpointSlices"] = [
            _slice(item, kept_pods, notes) for item in inputs.objects("EndpointSlice")
        ]
    for kind, key in (
        ("Ingress", "ingresses"),
        ("IngressClass", "ingressClasses"),
        ("IngressClassParams", "ingressClassParams"),
    ):
        if inputs.objects(kind):
            facts.sections[key] = [_manifest(item, None, notes) for item in inputs.objects(kind)]
    for item in [*inputs.objects("Service"), *inputs.objects("Ingress")]:
        meta = item.value.get("metadata") or {}
        owner = (
            f"{item.value['kind'].lower()}/{meta.get('namespace', 'default')}/{meta.get('name')}"
        )
        status = (item.value.get("status") or {}).get("loadBalancer") or {}
        names = [str(i["hostname"]) for i in status.get("ingress") or [] if i.get("hostname")]
        if names:
            facts.hostnames[owner] = names
    _kube_proxy(inputs, facts, notes)
    _aws_node(inputs, facts, notes)
    _lbc(inputs, facts, notes)
    if inputs.objects("IngressClass") and "loadBalancerController" in facts.sections:
        lbc = facts.sections["loadBalancerController"]
        classes = {
            (i.value.get("metadata") or {}).get("name") for i in inputs.objects("IngressClass")
        }
        # the chart's IngressClass is listed with the others; one missing was not created
        lbc["createIngressClassResource"] = lbc.get("ingressClass", "alb") in classes
    if inputs.ignored:
        notes.add(f"not read (kinds eksnet does not model): {', '.join(inputs.ignored)}")
    return facts


def _node(item: Item) -> KubeNode:
    value = item.value
    meta = value.get("metadata") or {}
    spec = value.get("spec") or {}
    status = value.get("status") or {}
    info = status.get("nodeInfo") or {}
    provider = str(spec.get("providerID") or "")
    match = re.fullmatch(r"aws:///([^/]*)/(i-[0-9a-f]+)", provider)
    addresses = status.get("addresses") or []
    return KubeNode(
        name=str(meta.get("name")),
        source=item.source,
        instance_id=match.group(2) if match else None,
        zone=(match.group(1) or None) if match else None,
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        pod_cidrs=[str(c) for c in spec.get("podCIDRs") or [] if ":" not in str(c)],
        internal_ips=tuple(str(a["address"]) for a in addresses if a.get("type") == "InternalIP"),
        external_ip=next(
            (str(a["address"]) for a in addresses if a.get("type") == "ExternalIP"), None
        ),
        os_image=str(info.get("osImage", "")),
        kernel=str(info.get("kernelVersion", "")),
        kubelet_version=str(info.get("kubeletVersion", "")),
        kube_proxy_version=str(info.get("kubeProxyVersion", "")),
    )


def ami_of(os_image: str) -> str | None:
    """`Amazon Linux 2` → al2, `Amazon Linux 2023.6.20250115` → al2023; None for another OS."""
    if re.match(r"Amazon Linux 2023\b", os_image):
        return "al2023"
    if re.match(r"Amazon Linux 2\b", os_image):
        return "al2"
    return None


def _node_software(facts: KubeFacts, notes: Notes) -> None:
    """`nodeDefaults` from what most nodes run; a node that differs says its own."""
    if not facts.nodes:
        return
    per_node: dict[str, Json] = {}
    for node in facts.nodes:
        own: Json = {}
        ami = ami_of(node.os_image)
        if ami is None:
            raise InputError(
                f"node {node.name} runs {node.os_image or 'an unknown OS'}; eksnet models the "
                "EKS-optimized Amazon Linux 2 and 2023 AMIs only",
                source=node.source,
                fix="import the Amazon Linux nodes only (or write the spec by hand)",
            )
        own["ami"] = ami
        kernel = re.match(r"(\d+\.\d+)", node.kernel)
        if kernel:
            own["kernel"] = kernel.group(1)
        # the node's default iptables backend: legacy on AL2, nf_tables on AL2023
        own["iptables"] = Assumed("legacy" if ami == "al2" else "nft")
        per_node[node.name] = own
    defaults: Json = {}
    for key in ("ami", "kernel", "iptables"):
        values = [own[key] for own in per_node.values() if key in own]
        if values:
            defaults[key] = most_common(values)
    facts.node_defaults = defaults
    notes.add(
        "each node's iptables backend is its AMI's default (AL2 legacy, AL2023 nf_tables): no "
        "input shows which one kube-proxy and the VPC CNI use"
    )
    for name, own in per_node.items():
        odd = {k: v for k, v in own.items() if k in ("iptables",) and v != defaults.get(k)}
        if odd:
            facts.node_overrides[name] = odd
    versions = [n.kubelet_version for n in facts.nodes if n.kubelet_version]
    if versions:
        match = re.match(r"v?(\d+\.\d+)", most_common(versions))
        if match:
            facts.sections["kubernetes"] = {"version": match.group(1)}
            notes.add(
                "kubernetes.version is the nodes' kubelet version (the control plane's is in "
                "`aws eks describe-cluster`)"
            )


def _pod(item: Item, notes: Notes) -> Json | None:
    value = item.value
    meta = value.get("metadata") or {}
    spec = value.get("spec") or {}
    status = value.get("status") or {}
    key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
    if spec.get("hostNetwork"):
        notes.add(
            "host-network pods left out: they are the node's own processes, with the node's "
            "addresses, not pods the VPC CNI wires"
        )
        return None
    ip = status.get("podIP")
    if status.get("phase") in ("Succeeded", "Failed") or not ip:
        notes.add(f"pod {key} left out: it has no address (phase {status.get('phase')})")
        return None
    if ":" in str(ip):
        notes.add(f"pod {key} left out: IPv6 ({ip}); eksnet models IPv4 clusters")
        return None
    ports: list[Any] = []
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            protocol = port.get("protocol", "TCP")
            if port.get("name") is None and protocol == "TCP":
                ports.append(port["containerPort"])
                continue
            entry: Json = {}
            if port.get("name") is not None:
                entry["name"] = port["name"]
            entry["containerPort"] = port["containerPort"]
            if protocol != "TCP":
                entry["protocol"] = protocol
            ports.append(entry)
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return {
        "namespace": str(meta.get("namespace", "default")),
        "name": str(meta.get("name")),
        "node": str(spec.get("nodeName")),
        "ip": str(ip),
        "labels": {str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        "ports": ports,
        "ready": ready,
        "terminating": meta.get("deletionTimestamp") is not None,
    }


def _manifest(item: Item, model: type[BaseModel] | None, notes: Notes) -> Json:
    """The object as the spec takes it: bookkeeping off, fields the schema refuses off."""
    value = dict(item.value)
    meta = dict(value.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = dict(meta.get("annotations") or {})
    if annotations.pop(LAST_APPLIED, None) is not None:
        meta["annotations"] = annotations
        if not annotations:
            meta.pop("annotations")
    value["metadata"] = meta
    if model is None:
        return value
    where = f"{value.get('kind')} {meta.get('namespace', 'default')}/{meta.get('name')}"
    return filter_to_model(value, model, where, notes)


def _slice(item: Item, pods: set[str] | None, notes: Notes) -> Json:
    value = _manifest(item, EndpointSliceManifest, notes)
    namespace = (value.get("metadata") or {}).get("namespace", "default")
    endpoints = []
    for endpoint in value.get("endpoints") or []:
        ref = endpoint.get("targetRef") or {}
        if pods is not None and ref.get("kind") == "Pod":
            key = f"{ref.get('namespace') or namespace}/{ref.get('name')}"
            if key not in pods:
                endpoint = {k: v for k, v in endpoint.items() if k != "targetRef"}
                notes.add(
                    f"EndpointSlice {namespace}/{value['metadata'].get('name')}: the endpoint of "
                    f"pod {key} (not imported: host network or no address) kept by address only"
                )
        endpoints.append(endpoint)
    if value.get("endpoints") is not None:
        value["endpoints"] = endpoints
    return value


def filter_to_model(data: Json, model: type[BaseModel], where: str, notes: Notes) -> Json:
    """`data` with only the fields `model` takes (recursively through nested models): a field
    a newer API server prints must not make the whole spec fail to load, and is named."""
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    kept: Json = {}
    for key, value in data.items():
        found = fields.get(key)
        if found is None:
            notes.add(f"{where}: field {key} left out (the spec's schema does not take it)")
            continue
        nested = _nested_model(found.annotation)
        if nested is not None and isinstance(value, dict):
            value = filter_to_model(value, nested, where, notes)
        elif nested is not None and isinstance(value, list):
            value = [
                filter_to_model(v, nested, where, notes) if isinstance(v, dict) else v
                for v in value
            ]
        kept[key] = value
    return kept


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (alone, in a list, or optional), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _containers(item: Item) -> list[Json]:
    template = ((item.value.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(template.get("containers") or [])


def _kube_proxy(inputs: Inputs, facts: KubeFacts, notes: Notes) -> None:
    section: Json = {}
    for item in inputs.objects("ConfigMap"):
        meta = item.value.get("metadata") or {}
        if meta.get("name") != "kube-proxy-config":
            notes.add(f"ConfigMap {meta.get('namespace')}/{meta.get('name')} not read")
            continue
        text = (item.value.get("data") or {}).get("config")
        if not isinstance(text, str):
            raise InputError(
                "ConfigMap kube-proxy-config has no `config` key",
                source=item.source,
                fix="give `kubectl -n kube-system get cm kube-proxy-config -o json`",
            )
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InputError(
                f"ConfigMap kube-proxy-config: its config is not YAML ({error})",
                source=item.source,
                fix="give the ConfigMap kube-proxy reads",
            ) from None
        if not isinstance(config, dict):
            raise InputError(
                "ConfigMap kube-proxy-config: its config is not a KubeProxyConfiguration",
                source=item.source,
                fix="give the ConfigMap kube-proxy reads",
            )
        section.update(filter_to_model(config, KubeProxySpec, "KubeProxyConfiguration", notes))
        section.pop("version", None)
    version: str | Assumed | None = None
    for item in inputs.objects("DaemonSet"):
        for container in _containers(item):
            if "kube-proxy" in str(container.get("image", "")):
                version = image_tag(str(container["image"]))
    reported = [n.kube_proxy_version for n in facts.nodes if n.kube_proxy_version]
    if version is None and reported:
        version = most_common(reported)
    if version is None and facts.nodes:
        kubelet = [n.kubelet_version for n in facts.nodes if n.kubelet_version]
        if kubelet:
            version = Assumed(most_common(kubelet))
            notes.add(
                "kube-proxy's version is the kubelet's: the nodes do not report it and no "
                "kube-proxy DaemonSet was given"
            )
    if version is not None:
        section["version"] = version
    if section:
        facts.sections["kubeProxy"] = section


def _aws_node(inputs: Inputs, facts: KubeFacts, notes: Notes) -> None:
    for item in inputs.objects("DaemonSet"):
        for container in _containers(item):
            image = str(container.get("image", ""))
            if container.get("name") != "aws-node" and "amazon-k8s-cni:" not in image:
                continue
            section: Json = {"name": "amazon-vpc-cni"}
            tag = image_tag(image)
            if tag is not None:
                section["version"] = tag
            env: dict[str, str] = {}
            for variable in container.get("env") or []:
                if "value" in variable:
                    env[str(variable["name"])] = str(variable["value"])
                elif variable.get("valueFrom") is None:
                    env[str(variable["name"])] = ""
            facts.sections["cni"] = {**section, "env": env}
            if env.get("CLUSTER_NAME"):
                facts.cluster_name = env["CLUSTER_NAME"]


_LBC_FLAGS: Mapping[str, tuple[str, str]] = {
    "ingress-class": ("ingressClass", "text"),
    "enable-service-mutator-webhook": ("serviceMutatorWebhook", "bool"),
    "default-target-type": ("defaultTargetType", "text"),
    "default-load-balancer-scheme": ("defaultLoadBalancerScheme", "text"),
    "enable-backend-security-group": ("enableBackendSecurityGroup", "bool"),
    "disable-restricted-sg-rules": ("disableRestrictedSecurityGroupRules", "bool"),
}
"""The LBC's flags whose chart values the spec models (`LoadBalancerControllerSpec`)."""


def _lbc(inputs: Inputs, facts: KubeFacts, notes: Notes) -> None:
    for item in inputs.objects("Deployment"):
        for container in _containers(item):
            image = str(container.get("image", ""))
            if "aws-load-balancer-controller" not in image:
                continue
            section: Json = {}
            tag = image_tag(image)
            if tag is not None:
                section["version"] = re.sub(r"^(v\d+\.\d+\.\d+).*", r"\1", tag)
            args = [
                str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]
            ]
            for index, arg in enumerate(args):
                if not arg.startswith("--"):
                    continue
                flag, equals, text = arg[2:].partition("=")
                if flag == "cluster-name":
                    facts.cluster_name = text if equals else args[index + 1]
                if flag not in _LBC_FLAGS:
                    continue
                key, kind = _LBC_FLAGS[flag]
                if not equals:
                    following = args[index + 1] if index + 1 < len(args) else ""
                    if kind == "bool" and following.lower() not in ("true", "false"):
                        text = "true"
                    else:
                        text = following
                section[key] = text.lower() == "true" if kind == "bool" else text
            facts.sections["loadBalancerController"] = filter_to_model(
                section, LoadBalancerControllerSpec, "the LBC's flags", notes
            )
    if "loadBalancerController" not in facts.sections and inputs.objects("Node"):
        notes.add(
            "no AWS Load Balancer Controller Deployment given: the spec installs none "
            "(loadBalancerController left out, or kept from the base), so only the in-tree "
            "controller builds load balancers"
        )
