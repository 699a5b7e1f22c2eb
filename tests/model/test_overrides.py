"""`--set KEY=VALUE`: one scalar of the spec overridden without editing it, judged exactly as if
the file said it; mistakes are one line naming the `--set`."""

from __future__ import annotations

from typing import Any

import pytest

from eksnet.controllers import build_state
from eksnet.errors import InputError
from eksnet.model import load_cluster
from eksnet.model.cluster import Cluster
from eksnet.model.overrides import apply_overrides
from eksnet.model.source import SourceDocument

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"


def test_a_string_setting_stays_a_string() -> None:
    cluster = load_cluster(overrides=["cni.env.AWS_VPC_K8S_CNI_EXTERNALSNAT=true"])
    assert cluster.cni.env["AWS_VPC_K8S_CNI_EXTERNALSNAT"] == "true"


def test_a_field_the_file_does_not_spell_out_is_set_through_the_schema() -> None:
    cluster = load_cluster(overrides=[f"nodes.{NODE_1}.imds.hopLimit=2"])
    instance = build_state(cluster).vpc.instance(NODE_1)
    assert instance is not None and (instance.hop_limit, instance.http_tokens) == (2, "required")


def test_overrides_apply_after_the_variant_and_in_order() -> None:
    cluster = load_cluster(
        variant="nat",
        overrides=["vpc.subnets.public-a.routeTable=rtb-public", "kubeProxy.masqueradeAll=true"],
    )
    assert cluster.subnet("public-a").route_table == "rtb-public"  # the variant said private
    assert cluster.kube_proxy.masquerade_all is True


def test_a_free_mapping_key_may_hold_dots() -> None:
    cluster = load_cluster(overrides=["nodeDefaults.sysctls.net.ipv4.conf.all.rp_filter=2"])
    assert cluster.node_defaults.sysctls["net.ipv4.conf.all.rp_filter"] == 2


@pytest.mark.parametrize(
    "setting, says",
    [
        ("nodeDefaults.imds.hopLimt=2", "did you mean hopLimit?"),
        ("nodes.ip-192-168-1-5.imds.hopLimit=2", f"did you mean {NODE_1}?"),
        ("nodeDefaults.imds=2", "imds holds a mapping"),
        ("vpc.securityGroups.sg-cluster.inbound=3", "inbound holds a list"),
        ("nodeDefaults.imds.hopLimit", "not KEY=VALUE"),
        ("nodeDefaults.imds.hopLimit=0", "greater than or equal to 1"),
        ("vpc.subnets.public-a.routeTable=rtb-nowhere", "unknown route table"),
    ],
)
def test_a_bad_override_is_one_error_naming_it(setting: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        build_state(load_cluster(overrides=[setting]))
    line = caught.value.one_line()
    assert line.startswith(f"--set {setting.partition('=')[0]}") and says in line, line
    assert "\n" not in line


def overridden(data: dict[str, Any], *settings: str) -> SourceDocument:
    """`settings` applied to plain data (no validation): what the path finds and writes."""
    return apply_overrides(SourceDocument("spec.yaml", data, {}), settings, Cluster)


def test_a_node_is_named_by_the_longest_name_the_path_starts_with() -> None:
    data = {"nodes": [{"name": "a"}, {"name": "a.b"}]}
    view = overridden(data, "nodes.a.b.subnet=x", "nodes.a.subnet=y")
    assert view.data["nodes"] == [{"name": "a", "subnet": "y"}, {"name": "a.b", "subnet": "x"}]
    assert data == {"nodes": [{"name": "a"}, {"name": "a.b"}]}  # the document is not changed


def test_text_stays_text_where_the_schema_says_text_else_yaml_decides() -> None:
    data: dict[str, Any] = {"nodes": [{"name": "n1"}], "kubeProxy": {}, "cni": {"env": {}}}
    view = overridden(
        data,
        "nodes.n1.instanceType=1.5",  # str | None, not in the file: stays "1.5"
        "nodes.n1.imds.hopLimit=2",  # int, in a mapping the file does not have yet
        "kubeProxy.masqueradeAll=true",
        "cni.env.AWS_VPC_K8S_CNI_EXTERNALSNAT=true",  # dict[str, str]
        "kubeProxy.clusterCIDR=10.0.0.0/16",
    )
    node = view.data["nodes"][0]
    assert node == {"name": "n1", "instanceType": "1.5", "imds": {"hopLimit": 2}}
    assert view.data["kubeProxy"] == {"masqueradeAll": True, "clusterCIDR": "10.0.0.0/16"}
    assert view.data["cni"]["env"] == {"AWS_VPC_K8S_CNI_EXTERNALSNAT": "true"}
    # the mapping the path created belongs to the --set, so an error inside it names it
    assert view.origin(("nodes", 0, "imds", "httpTokens"))[:3] == (
        "--set",
        1,
        "nodes.n1.imds.hopLimit=2",
    )


def test_a_namespaced_item_is_named_namespace_slash_name_when_its_name_is_shared() -> None:
    data = {"pods": [{"name": "web"}, {"namespace": "prod", "name": "web"}]}
    with pytest.raises(InputError, match=r"pods has 2 items named 'web'.*NAMESPACE/NAME"):
        overridden(data, "pods.web.ready=false")
    view = overridden(data, "pods.prod/web.ready=false", "pods.default/web.ready=true")
    assert [pod["ready"] for pod in view.data["pods"]] == [True, False]


def test_a_service_path_follows_the_shape_the_data_has() -> None:
    cluster = load_cluster(overrides=["services.app1.selector.name=rating"])
    assert cluster.services[0].selector == {"name": "rating"}
    with pytest.raises(InputError, match=r"services\.app1 has no field 'typo'.*did you mean type"):
        load_cluster(overrides=["services.app1.typo=1"])


def test_an_api_manifest_is_named_by_its_metadata() -> None:
    cluster = load_cluster(overrides=["ingresses.myingress.spec.ingressClassName=nginx"])
    assert cluster.ingresses[0]["spec"]["ingressClassName"] == "nginx"


@pytest.mark.parametrize(
    "setting, says",
    [
        ("vpc.routeTables.rtb-nowhere.x=1", "vpc.routeTables has no key 'rtb-nowhere'"),
        ("kubeProxy.masqueradeAll=[1, 2]", "the value is a list in YAML; --set sets one scalar"),
        ("kubeProxy.masqueradeAll={a: 1}", "the value is a mapping in YAML"),
        ("kubeProxy.masqueradeAll=!!python/name:os.system", "is not allowed in a cluster spec"),
        ("kubeProxy.masqueradeAll.x=1", "masqueradeAll is a value, not a mapping"),
        (f"nodes.{NODE_1}=1", "is a list item, not a value"),
        ("nodes=1", "nodes holds a list"),
        ("vpc.subnets.public-a.mapPublicIp=maybe", "mapPublicIp: Input should be a valid boolean"),
    ],
)
def test_what_is_not_one_scalar_of_the_spec_is_refused(setting: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        load_cluster(overrides=[setting])
    line = caught.value.one_line()
    assert line.startswith(f"--set {setting}: ") and says in line, line
