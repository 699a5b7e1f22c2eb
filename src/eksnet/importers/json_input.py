"""`kubectl … -o json` and `aws … describe-…` output: read, parsed, and sorted by shape.

Users send whatever they have, under whatever file names, often several commands' output in one
folder or one document holding several top-level keys. So a document is recognised by its shape,
never by its name: a Kubernetes object or `List` by `apiVersion`/`kind`, an AWS answer by its
top-level keys (`NetworkInterfaces`, `Reservations`, `LoadBalancers` …, as vpc-fabric.md §7 lists
them). A document of any other shape is an error naming the shapes accepted: silently skipping it
would leave the user believing its facts were imported.

Reading a file is the one I/O here (`read_json_file`); everything else takes parsed JSON values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eksnet.errors import InputError
from eksnet.importers._lines import parse_json as json_value

Json = dict[str, Any]

KUBE_KINDS = (
    "Node",
    "Pod",
    "Service",
    "EndpointSlice",
    "Ingress",
    "IngressClass",
    "IngressClassParams",
    "ConfigMap",
    "DaemonSet",
    "Deployment",
)
"""The Kubernetes kinds read (alone, or as items of a `List` or `…List`)."""

AWS_KEYS: dict[str, str] = {
    "Reservations": "aws ec2 describe-instances",
    "NetworkInterfaces": "aws ec2 describe-network-interfaces",
    "Subnets": "aws ec2 describe-subnets",
    "RouteTables": "aws ec2 describe-route-tables",
    "SecurityGroups": "aws ec2 describe-security-groups",
    "NetworkAcls": "aws ec2 describe-network-acls",
    "NatGateways": "aws ec2 describe-nat-gateways",
    "InternetGateways": "aws ec2 describe-internet-gateways",
    "Vpcs": "aws ec2 describe-vpcs",
    "PrefixLists": "aws ec2 describe-prefix-lists",
    "Addresses": "aws ec2 describe-addresses",
    "LoadBalancers": "aws elbv2 describe-load-balancers",
    "LoadBalancerDescriptions": "aws elb describe-load-balancers",
    "Listeners": "aws elbv2 describe-listeners",
    "Rules": "aws elbv2 describe-rules",
    "TargetGroups": "aws elbv2 describe-target-groups",
    "TargetHealthDescriptions": "aws elbv2 describe-target-health",
    "TagDescriptions": "aws elbv2 describe-tags",
    "cluster": "aws eks describe-cluster",
}
"""Top-level keys of the AWS answers read, and the command that prints each."""

_AWS_BOOKKEEPING = frozenset({"NextToken", "ResponseMetadata", "TargetGroupArn"})
"""Keys an AWS answer may carry beside its list (paging, boto3 dumps, Batfish's wrapping of
`TargetHealthDescriptions` with its target group's ARN)."""

ACCEPTED = (
    "a Kubernetes object or List from `kubectl get … -o json` (kinds "
    + ", ".join(KUBE_KINDS)
    + "), or the output of "
    + ", ".join(sorted(set(AWS_KEYS.values())))
)


@dataclass(frozen=True, slots=True)
class Item:
    """One object of one input, and the file it came from (for errors and for the report)."""

    source: str
    value: Json


@dataclass(slots=True)
class Inputs:
    """Every recognised object, by Kubernetes kind or by AWS top-level key."""

    kube: dict[str, list[Item]] = field(default_factory=dict)
    aws: dict[str, list[Item]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    """Kubernetes objects of other kinds inside a `List` (`kubectl get all` prints
    ReplicaSets …): named in the report, not an error."""

    def objects(self, kind: str) -> list[Item]:
        return self.kube.get(kind, [])

    def items(self, key: str) -> list[Item]:
        return self.aws.get(key, [])

    def sources(self, key: str) -> str:
        """The files an AWS key came from, for an error's `source`."""
        return ", ".join(dict.fromkeys(item.source for item in self.aws.get(key, []))) or "?"


def parse_json(text: str, source: str) -> Any:
    """JSON text → value; bad or truncated JSON is an `InputError` with the line."""
    return json_value(
        text, source, fix="give the whole output of `kubectl … -o json` or `aws … --output json`"
    )


def read_json_file(path: str | Path) -> tuple[str, Any]:
    """The one I/O of this importer: a file's JSON, named by its path."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", source=source, fix="give a JSON file") from None
    except UnicodeDecodeError:
        raise InputError(
            "not UTF-8 text, so not JSON", source=source, fix="give kubectl or aws JSON output"
        ) from None
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", source=source) from None
    return source, parse_json(text, source)


def sort_documents(documents: Sequence[tuple[str, Any]]) -> Inputs:
    """Every document's objects under their kind or key; an unknown shape is an error."""
    inputs = Inputs()
    for source, document in documents:
        if not isinstance(document, dict):
            raise InputError(
                f"a JSON {type(document).__name__}, not an object: not a shape eksnet reads",
                source=source,
                fix=f"give {ACCEPTED}",
            )
        if "kind" in document and "apiVersion" in document:
            _add_kube(inputs, source, document)
            continue
        keys = set(document) - _AWS_BOOKKEEPING
        known = keys & set(AWS_KEYS)
        if not known:
            shown = ", ".join(sorted(document)[:6]) or "none"
            raise InputError(
                f"a JSON object of unknown shape (top-level keys: {shown})",
                source=source,
                fix=f"give {ACCEPTED}",
            )
        unknown = keys - known
        if unknown:
            raise InputError(
                f"top-level keys {', '.join(sorted(unknown))} beside "
                f"{', '.join(sorted(known))}: not an AWS answer eksnet reads",
                source=source,
                fix=f"give {ACCEPTED}",
            )
        for key in sorted(known):
            value = document[key]
            if key == "cluster":
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise InputError(
                    f"{key} is not a list of objects as `{AWS_KEYS[key]}` prints it",
                    source=source,
                    fix=f"give the whole output of `{AWS_KEYS[key]} --output json`",
                )
            inputs.aws.setdefault(key, []).extend(Item(source, v) for v in value)
    return inputs


def _add_kube(inputs: Inputs, source: str, document: Json, *, in_list: bool = False) -> None:
    kind = str(document.get("kind"))
    if kind == "List" or (kind.endswith("List") and isinstance(document.get("items"), list)):
        items = document.get("items")
        if not isinstance(items, list):
            raise InputError(
                f"a {kind} without an items list", source=source, fix="give kubectl's whole output"
            )
        for item in items:
            if not isinstance(item, dict) or "kind" not in item:
                # `kubectl get pods -o json` prints items without their kind: it is the list's
                item = {**item, "kind": kind.removesuffix("List")} if isinstance(item, dict) else {}
            _add_kube(inputs, source, item, in_list=True)
        return
    if kind in KUBE_KINDS:
        inputs.kube.setdefault(kind, []).append(Item(source, document))
    elif in_list:
        inputs.ignored.append(f"{kind} {_name(document)} ({source})")
    else:
        raise InputError(
            f"a Kubernetes {kind}, which says nothing eksnet models",
            source=source,
            fix=f"give {ACCEPTED}",
        )


def _name(document: Json) -> str:
    meta = document.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))
