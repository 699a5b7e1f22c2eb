"""The AWS Load Balancer Controller's version and installation: what it builds by default.

What the LBC builds for the same Service or Ingress changed across its releases; the table
below is that history as data, each behaviour with the release that brought it (read from
kubernetes-sigs/aws-load-balancer-controller's tags: `pkg/service/model_build_load_balancer.go`,
`pkg/config/{feature_gates,controller_config}.go`, `webhooks/core/service_mutator.go`, the Helm
chart's `values.yaml`). Health checks did not change: the NLB's (TCP traffic-port 10/10/3/3;
eTP Local HTTP `healthCheckNodePort` `/healthz` 10/6/2/2, 200-399) and the ALB's (HTTP
traffic-port `/` 15/5/2/2, 200) are the same from v2.2.0 to v3.5.0, and v3.0.0 changed no
default a packet meets (it moved the Go module to `/v3` and changed Gateway API and
TargetGroupBinding internals). v1 (aws-alb-ingress-controller) is another program: not modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eksnet.dataplane.load_balancers import Scheme, TargetType
from eksnet.errors import InputError, NotModelled
from eksnet.model.cluster import Cluster

Version = tuple[int, int, int]

INGRESS_CLASS_CONTROLLER = "ingress.k8s.aws/alb"
"""`spec.controller` of an IngressClass the LBC serves."""


def parse_version(text: str) -> Version:
    match = re.match(r"^v(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise InputError(
            f"AWS Load Balancer Controller version {text!r} is not like v2.13.0",
            fix="write vMAJOR.MINOR.PATCH",
            path=("loadBalancerController", "version"),
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(frozen=True, slots=True)
class LbcFeatures:
    """Version-dependent behaviour, each flag with the release that brought it."""

    version: Version
    nlb_internal_by_default: bool
    """v2.2.0: an NLB without a scheme annotation is internal (before: internet-facing)."""
    backend_security_group: bool
    """v2.3.0: one shared backend group per cluster is the source of the node rules (before:
    the load balancer's own group)."""
    service_mutator_webhook: bool
    """v2.5.0: the webhook that gives new LoadBalancer Services the class
    `service.k8s.aws/nlb`; also the flag `--default-target-type`."""
    nlb_security_groups: bool
    """v2.6.0: NLBs get security groups (gate `NLBSecurityGroup`, on); before, node rules are
    CIDR rules."""
    default_scheme_flag: bool
    """v2.11.0: the flag `--default-load-balancer-scheme`."""


def features(version_text: str) -> LbcFeatures:
    version = parse_version(version_text)
    if version < (2, 0, 0):
        raise NotModelled(
            f"AWS Load Balancer Controller {version_text}: v1 (aws-alb-ingress-controller) is "
            "another program; v2.0.0 and later are modelled"
        )
    return LbcFeatures(
        version=version,
        nlb_internal_by_default=version >= (2, 2, 0),
        backend_security_group=version >= (2, 3, 0),
        service_mutator_webhook=version >= (2, 5, 0),
        nlb_security_groups=version >= (2, 6, 0),
        default_scheme_flag=version >= (2, 11, 0),
    )


@dataclass(frozen=True, slots=True)
class LbcSettings:
    """The installed LBC as its controllers read it: the version's behaviour with the spec's
    Helm values on top. `None` where a spec installs no LBC."""

    features: LbcFeatures
    webhook: bool
    """The service mutator webhook is registered (and so fills in new Services' class)."""
    ingress_class: str
    chart_ingress_class: bool
    default_target_type: TargetType
    nlb_default_scheme: Scheme
    alb_default_scheme: Scheme
    backend_security_group: bool
    restricted_rules: bool


def settings(cluster: Cluster) -> LbcSettings | None:
    spec = cluster.load_balancer_controller
    if spec is None:
        return None
    found = features(spec.version)
    webhook = spec.service_mutator_webhook
    if webhook and not found.service_mutator_webhook:
        raise InputError(
            f"the service mutator webhook came with v2.5.0; {spec.version} has none",
            fix="drop serviceMutatorWebhook, or raise the version",
            path=("loadBalancerController", "serviceMutatorWebhook"),
        )
    if spec.default_target_type != "instance" and not found.service_mutator_webhook:
        raise InputError(
            f"--default-target-type came with v2.5.0; {spec.version} always uses instance",
            fix="drop defaultTargetType, or raise the version",
            path=("loadBalancerController", "defaultTargetType"),
        )
    if spec.default_load_balancer_scheme is not None and not found.default_scheme_flag:
        raise InputError(
            f"--default-load-balancer-scheme came with v2.11.0; {spec.version} has none",
            fix="drop defaultLoadBalancerScheme, or raise the version",
            path=("loadBalancerController", "defaultLoadBalancerScheme"),
        )
    flag: Scheme = spec.default_load_balancer_scheme or "internal"
    return LbcSettings(
        features=found,
        webhook=found.service_mutator_webhook if webhook is None else webhook,
        ingress_class=spec.ingress_class,
        chart_ingress_class=spec.create_ingress_class_resource,
        default_target_type=spec.default_target_type,
        nlb_default_scheme=flag if found.nlb_internal_by_default else "internet-facing",
        alb_default_scheme=flag,
        backend_security_group=spec.enable_backend_security_group and found.backend_security_group,
        restricted_rules=not spec.disable_restricted_security_group_rules,
    )
