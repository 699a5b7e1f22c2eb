"""The AWS Load Balancer Controller as installed: its version, its chart's values, the service
mutator webhook, IngressClasses and IngressClassParams, and the annotations it honours.

Expected values are aws-load-balancers.md's (§1.1, §1.3, §1.4, §1.6, gotcha 2) and the LBC's
own tags (the release each behaviour came with, read in kubernetes-sigs/aws-load-balancer-
controller: `pkg/service/model_build_load_balancer.go` at v2.1.3/v2.2.0, `pkg/config/
feature_gates.go` at v2.6.0, `webhooks/core/service_mutator.go` from v2.5.0, the flag
`--default-load-balancer-scheme` from v2.11.0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eksnet.controllers import build_state
from eksnet.controllers.lbc_version import features
from eksnet.dataplane.load_balancers import LoadBalancer
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError, NotModelled
from eksnet.model import load_cluster
from eksnet.model.load import demo_text

LBC_LINE = "loadBalancerController: {version: v2.13.0, serviceMutatorWebhook: false}\n"
CLB_PIN = "  - {for: service/app1-clb, kind: clb,"


def spec(tmp_path: Path, *edits: tuple[str, str]) -> DataplaneState:
    text, _ = demo_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return build_state(load_cluster(str(path)))


def without_clb_pin(text_start: str = CLB_PIN) -> tuple[str, str]:
    """Drops the demo's pin of app1-clb (its kind and addresses)."""
    text, _ = demo_text()
    start = text.index(text_start)
    end = text.index("\n", text.index("ips:", start)) + 1
    return text[start:end], ""


def lb(state: DataplaneState, owner: str) -> LoadBalancer | None:
    return state.vpc.load_balancer(owner)


@pytest.mark.parametrize(
    ("version", "internal", "backend_sg", "webhook", "nlb_sgs", "scheme_flag"),
    [
        ("v2.1.3", False, False, False, False, False),
        ("v2.2.0", True, False, False, False, False),
        ("v2.3.0", True, True, False, False, False),
        ("v2.4.7", True, True, False, False, False),
        ("v2.5.0", True, True, True, False, False),
        ("v2.6.0", True, True, True, True, False),
        ("v2.10.0", True, True, True, True, False),
        ("v2.11.0", True, True, True, True, True),
        ("v3.5.0", True, True, True, True, True),
    ],
)
def test_behaviour_by_release(
    version: str, internal: bool, backend_sg: bool, webhook: bool, nlb_sgs: bool, scheme_flag: bool
) -> None:
    found = features(version)
    assert (
        found.nlb_internal_by_default,
        found.backend_security_group,
        found.service_mutator_webhook,
        found.nlb_security_groups,
        found.default_scheme_flag,
    ) == (internal, backend_sg, webhook, nlb_sgs, scheme_flag)


def test_v1_is_another_program() -> None:
    with pytest.raises(NotModelled, match=r"aws-alb-ingress-controller"):
        features("v1.1.9")


def test_without_the_lbc_only_the_in_tree_controller_acts(tmp_path: Path) -> None:
    state = spec(tmp_path, (LBC_LINE, ""))
    assert lb(state, "service/default/app1-nlb-ip") is None
    assert lb(state, "ingress/default/myingress") is None
    in_tree = lb(state, "service/default/app1-nlb")
    assert in_tree is not None and in_tree.controller == "in-tree"
    clb = lb(state, "service/default/app1-clb")
    assert clb is not None and clb.kind == "clb"


def test_the_webhook_turns_a_plain_service_into_an_internal_instance_nlb(tmp_path: Path) -> None:
    """Gotcha 2: with the chart's default webhook, a plain LoadBalancer Service created after
    the install gets the class `service.k8s.aws/nlb`: an internal NLB with instance targets,
    TCP traffic-port health checks 10/10/3/3, not a CLB."""
    state = spec(
        tmp_path,
        (LBC_LINE, "loadBalancerController: {version: v2.13.0}\n"),
        without_clb_pin(),
    )
    nlb = lb(state, "service/default/app1-clb")
    assert nlb is not None
    assert (nlb.kind, nlb.controller, nlb.scheme) == ("nlb", "lbc", "internal")
    (group,) = nlb.target_groups
    assert group.target_type == "instance" and group.port == 30083
    check = group.health_check
    assert (check.protocol, check.port, check.interval, check.timeout) == ("TCP", None, 10, 10)
    assert (check.healthy_threshold, check.unhealthy_threshold) == (3, 3)


def test_the_webhook_against_a_pin_that_says_clb(tmp_path: Path) -> None:
    """The pin written for a CLB no longer fits what the controller builds: said, not
    ignored."""
    with pytest.raises(InputError, match=r"gets an NLB from its controller.*says clb"):
        spec(tmp_path, (LBC_LINE, "loadBalancerController: {version: v2.13.0}\n"))


def test_a_webhook_before_v2_5_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"came with v2\.5\.0"):
        spec(tmp_path, (LBC_LINE, "loadBalancerController: {version: v2.4.7, "
                                  "serviceMutatorWebhook: true}\n"))  # fmt: skip


NEW_SERVICE = (
    "  - {name: app1-nlb, type: LoadBalancer,",
    "  - {name: web-nlb, type: LoadBalancer, clusterIP: 10.100.200.90, ports: [{port: 80, "
    "targetPort: 80, nodePort: 30090}], selector: {name: app1}, annotations: "
    "{service.beta.kubernetes.io/aws-load-balancer-type: external, "
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: instance}}\n"
    "  - {name: app1-nlb, type: LoadBalancer,",
)


@pytest.mark.parametrize(
    ("controller", "scheme"),
    [
        ("{version: v2.1.3}", "internet-facing"),
        ("{version: v2.2.0}", "internal"),
        ("{version: v2.13.0, serviceMutatorWebhook: false}", "internal"),
        (
            "{version: v2.11.0, serviceMutatorWebhook: false, defaultLoadBalancerScheme: "
            "internet-facing}",
            "internet-facing",
        ),
    ],
)
def test_an_nlbs_default_scheme_by_release(tmp_path: Path, controller: str, scheme: str) -> None:
    """§1.3: internal has been the default since v2.2.0; the flag can change it (v2.11.0+)."""
    state = spec(tmp_path, (LBC_LINE, f"loadBalancerController: {controller}\n"), NEW_SERVICE,
                 without_clb_pin())  # fmt: skip
    nlb = lb(state, "service/default/web-nlb")
    assert nlb is not None and nlb.scheme == scheme


def test_the_scheme_flag_before_v2_11_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"came with v2\.11\.0"):
        spec(tmp_path, (LBC_LINE, "loadBalancerController: {version: v2.10.0, "
                                  "defaultLoadBalancerScheme: internal}\n"))  # fmt: skip


def test_the_default_target_type_flag(tmp_path: Path) -> None:
    """A Service of class `service.k8s.aws/nlb` with no target type gets the flag's."""
    edit = (
        "  - {name: app1-nlb, type: LoadBalancer,",
        "  - {name: web-nlb, type: LoadBalancer, loadBalancerClass: service.k8s.aws/nlb, "
        "clusterIP: 10.100.200.90, ports: [{port: 80, targetPort: 80, nodePort: 30090}], "
        "selector: {name: app1}}\n  - {name: app1-nlb, type: LoadBalancer,",
    )
    state = spec(tmp_path, (LBC_LINE, "loadBalancerController: {version: v2.13.0, "
                 "serviceMutatorWebhook: false, defaultTargetType: ip}\n"), edit)  # fmt: skip
    nlb = lb(state, "service/default/web-nlb")
    assert nlb is not None
    (group,) = nlb.target_groups
    assert group.target_type == "ip"
    assert sorted(str(t.address) for t in group.targets) == [
        "192.168.1.71", "192.168.1.81", "192.168.2.91",
    ]  # fmt: skip


INGRESS_CLASS_LINE = "      ingressClassName: alb                              # demo addition\n"


def test_an_ingress_of_another_controllers_class_gets_no_alb(tmp_path: Path) -> None:
    state = spec(
        tmp_path,
        (INGRESS_CLASS_LINE, "      ingressClassName: nginx\n"),
        (LBC_LINE, LBC_LINE + "ingressClasses:\n  - {metadata: {name: nginx}, spec: "
                   "{controller: k8s.io/ingress-nginx}}\n"),
    )  # fmt: skip
    assert lb(state, "ingress/default/myingress") is None


def test_an_ingress_naming_a_missing_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"IngressClass missing does not exist"):
        spec(tmp_path, (INGRESS_CLASS_LINE, "      ingressClassName: missing\n"))


def test_without_the_charts_class_alb_names_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"IngressClass alb does not exist"):
        spec(tmp_path, (LBC_LINE, "loadBalancerController: {version: v2.13.0, "
                        "serviceMutatorWebhook: false, createIngressClassResource: false}\n"))  # fmt: skip


def test_the_default_ingress_class(tmp_path: Path) -> None:
    """An Ingress with no class gets the IngressClass annotated default."""
    state = spec(
        tmp_path,
        (INGRESS_CLASS_LINE, ""),
        (LBC_LINE, LBC_LINE + "ingressClasses:\n  - {metadata: {name: aws, annotations: "
                   '{ingressclass.kubernetes.io/is-default-class: "true"}}, spec: '
                   "{controller: ingress.k8s.aws/alb}}\n"),
    )  # fmt: skip
    alb = lb(state, "ingress/default/myingress")
    assert alb is not None and alb.kind == "alb"


def test_ingress_class_params_beat_the_annotations(tmp_path: Path) -> None:
    """§1.4: IngressClassParams force the scheme (over the annotation's internet-facing)."""
    state = spec(
        tmp_path,
        (INGRESS_CLASS_LINE, "      ingressClassName: private\n"),
        (LBC_LINE, LBC_LINE + "ingressClasses:\n  - {metadata: {name: private}, spec: "
                   "{controller: ingress.k8s.aws/alb, parameters: {apiGroup: elbv2.k8s.aws, "
                   "kind: IngressClassParams, name: private}}}\n"
                   "ingressClassParams:\n  - {apiVersion: elbv2.k8s.aws/v1beta1, kind: "
                   "IngressClassParams, metadata: {name: private}, spec: {scheme: internal}}\n"),
    )  # fmt: skip
    alb = lb(state, "ingress/default/myingress")
    assert alb is not None and alb.scheme == "internal"
    assert all(node.public_ip is None for node in alb.nodes)


def test_ingress_class_params_fields_not_modelled_are_said(tmp_path: Path) -> None:
    with pytest.raises(NotModelled, match=r"IngressClassParams private: spec\.group"):
        spec(
            tmp_path,
            (INGRESS_CLASS_LINE, "      ingressClassName: private\n"),
            (LBC_LINE, LBC_LINE + "ingressClasses:\n  - {metadata: {name: private}, spec: "
                       "{controller: ingress.k8s.aws/alb, parameters: {apiGroup: elbv2.k8s.aws, "
                       "kind: IngressClassParams, name: private}}}\n"
                       "ingressClassParams:\n  - {metadata: {name: private}, spec: "
                       "{group: {name: shared}}}\n"),
        )  # fmt: skip


ALB_ANNOTATIONS = "        alb.ingress.kubernetes.io/scheme: internet-facing\n"


def test_ingress_health_check_annotations(tmp_path: Path) -> None:
    """§1.4's defaults (HTTP traffic-port `/` 15/5/2/2, 200) with the annotations on top."""
    state = spec(
        tmp_path,
        (ALB_ANNOTATIONS, ALB_ANNOTATIONS
         + "        alb.ingress.kubernetes.io/healthcheck-path: /healthz\n"
         + "        alb.ingress.kubernetes.io/healthcheck-interval-seconds: '30'\n"
         + "        alb.ingress.kubernetes.io/success-codes: 200-299\n"),
    )  # fmt: skip
    alb = lb(state, "ingress/default/myingress")
    assert alb is not None
    for group in alb.target_groups:
        check = group.health_check
        assert (check.protocol, check.port, check.path, check.interval, check.timeout) == (
            "HTTP", None, "/healthz", 30, 5,
        )  # fmt: skip
        assert (check.healthy_threshold, check.unhealthy_threshold, check.matcher) == (
            2, 2, "200-299",
        )  # fmt: skip


@pytest.mark.parametrize(
    "annotation",
    ["group.name: shared", "ssl-redirect: '443'", "certificate-arn: arn:aws:acm:x"],
)
def test_ingress_annotations_not_modelled_are_said(tmp_path: Path, annotation: str) -> None:
    with pytest.raises(NotModelled, match=r"alb\.ingress\.kubernetes\.io/"):
        spec(tmp_path, (ALB_ANNOTATIONS,
                        ALB_ANNOTATIONS + f"        alb.ingress.kubernetes.io/{annotation}\n"))  # fmt: skip


NLB_IP_ANNOTATIONS = (
    "                   service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing}}"
)


def test_service_health_check_annotations(tmp_path: Path) -> None:
    """§1.3/§1.6: the LBC's NLB health check with `…-healthcheck-*` on top; HTTP gets the
    LBC's matcher 200-399."""
    state = spec(tmp_path, (NLB_IP_ANNOTATIONS, NLB_IP_ANNOTATIONS[:-2]
                 + ", service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol: http,"
                 + " service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval: '20'}}"))  # fmt: skip
    nlb = lb(state, "service/default/app1-nlb-ip")
    assert nlb is not None
    check = nlb.target_groups[0].health_check
    assert (check.protocol, check.path, check.interval, check.matcher) == (
        "HTTP", "/", 20, "200-399",
    )  # fmt: skip


def test_preserve_client_ip_by_attribute(tmp_path: Path) -> None:
    """ip targets over TCP do not preserve the client IP unless the attribute says so."""
    state = spec(tmp_path, (NLB_IP_ANNOTATIONS, NLB_IP_ANNOTATIONS[:-2]
                 + ", service.beta.kubernetes.io/aws-load-balancer-target-group-attributes: "
                 + "preserve_client_ip.enabled=true}}"))  # fmt: skip
    nlb = lb(state, "service/default/app1-nlb-ip")
    assert nlb is not None and nlb.target_groups[0].preserve_client_ip


@pytest.mark.parametrize(
    "annotation",
    [
        "service.beta.kubernetes.io/aws-load-balancer-ssl-cert: arn:aws:acm:x",
        "service.beta.kubernetes.io/aws-load-balancer-healthcheck-bogus: '1'",
    ],
)
def test_service_annotations_not_modelled_are_said(tmp_path: Path, annotation: str) -> None:
    with pytest.raises(NotModelled, match=r"service\.beta\.kubernetes\.io/aws-load-balancer-"):
        spec(tmp_path, (NLB_IP_ANNOTATIONS, NLB_IP_ANNOTATIONS[:-2] + f", {annotation}}}}}"))


def test_the_in_tree_controller_does_not_read_the_lbcs_health_annotations(
    tmp_path: Path,
) -> None:
    old = "annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}}\n"
    new = ("annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb, "
           "service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval: '20'}}\n")  # fmt: skip
    with pytest.raises(NotModelled, match=r"read by the in-tree controller"):
        spec(tmp_path, (old, new))
