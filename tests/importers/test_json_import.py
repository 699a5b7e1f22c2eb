"""`kubectl`/`aws` JSON → a cluster spec (`importers.cluster_spec`).

The fixtures in data/demo-json/ are the demo cluster as `kubectl get … -o json` and the AWS CLI
would print it (the shapes of the API references and vpc-fabric.md §7; the demo's own values:
nodes, ENIs, MACs, subnets, route tables, groups, the NAT gateway, the load balancers' ENIs, the
groups and node rules the load balancer controllers created). Imported, they must give a spec
whose state walks every tour walk exactly as the demo does. What no JSON can say (talk names,
pinned veth names and netns names, the router MAC, external hosts, DNS) comes from a base holding
only those parts. Each check can fail: one fixture value changed must change the walks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from eksnet.controllers import build_state
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError
from eksnet.importers.cluster_spec import merge, render_spec, spec_from_documents
from eksnet.importers.json_input import parse_json, read_json_file, sort_documents
from eksnet.model.cluster import Cluster
from eksnet.model.load import demo_text, load_cluster, parse_cluster
from eksnet.walk.model import Walk
from eksnet.walk.tour import TOUR, TourWalk

DATA = Path(__file__).parent / "data" / "demo-json"
Documents = list[tuple[str, Any]]


def documents(*names: str) -> Documents:
    """The fixture documents (all of them when no names are given), freshly parsed."""
    paths = [DATA / name for name in names] or sorted(DATA.glob("*.json"))
    return [read_json_file(path) for path in paths]


def demo_spec() -> dict[str, Any]:
    data = yaml.safe_load(demo_text()[0])
    assert isinstance(data, dict)
    return data


def unobservable() -> dict[str, Any]:
    """The demo's parts no kubectl or AWS output states: a base for the import."""
    demo = demo_spec()
    return {
        "source": demo["source"],
        "vpc": {"routerMac": demo["vpc"]["routerMac"], "flowLogs": demo["vpc"]["flowLogs"]},
        "nodeDefaults": {"sysctls": demo["nodeDefaults"]["sysctls"]},
        "nodes": [{"name": n["name"], "talkName": n["talkName"]} for n in demo["nodes"]],
        "pods": [
            {k: p[k] for k in ("namespace", "name", "talkName", "pin") if k in p}
            for p in demo["pods"]
        ],
        "externalHosts": demo["externalHosts"],
        "dns": demo["dns"],
    }


def imported(docs: Documents, base: dict[str, Any] | None) -> Cluster:
    spec, _ = spec_from_documents(docs, base)
    return parse_cluster(yaml.safe_dump(spec), "imported")


@pytest.fixture(scope="module")
def demo_state() -> DataplaneState:
    return build_state(load_cluster())


@pytest.fixture(scope="module")
def full() -> tuple[dict[str, Any], tuple[str, ...]]:
    return spec_from_documents(documents(), unobservable())


@pytest.fixture(scope="module")
def imported_state(full: tuple[dict[str, Any], tuple[str, ...]]) -> DataplaneState:
    return build_state(parse_cluster(yaml.safe_dump(full[0]), "imported"))


BASE_WALKS = [w for w in TOUR if w.variant is None]
VARIANT_WALKS = [w for w in TOUR if w.variant is not None]


def differing(a: DataplaneState, b: DataplaneState, walks: list[TourWalk]) -> list[str]:
    return [w.id for w in walks if w.run(a) != w.run(b)]


# --- the whole demo from its JSON -----------------------------------------------------------


@pytest.mark.parametrize("tour_walk", BASE_WALKS, ids=[w.id for w in BASE_WALKS])
def test_every_tour_walk_is_the_demos(
    tour_walk: TourWalk, demo_state: DataplaneState, imported_state: DataplaneState
) -> None:
    expected, got = tour_walk.run(demo_state), tour_walk.run(imported_state)
    assert got.disposition == expected.disposition
    assert got.hops == expected.hops
    assert got == expected  # replies, branches, conntrack, notes: everything


def _variant_documents(variant: str) -> Documents:
    """The JSON of the cluster in a demo variant: public-a associated with the NAT gateway's
    route table (`nat`), and aws-node's external SNAT on too (`externalSnat`)."""
    docs = copy.deepcopy(documents())
    for _, doc in docs:
        for table in doc.get("RouteTables", []):
            table["Associations"] = [
                a for a in table["Associations"] if a.get("SubnetId") != "subnet-0a11c0ffee00000a1"
            ]
            if table["RouteTableId"] == "rtb-private-a":
                table["Associations"].append(
                    {
                        "Main": False,
                        "RouteTableAssociationId": "rtbassoc-0a11c0ffee00000a1",
                        "RouteTableId": "rtb-private-a",
                        "SubnetId": "subnet-0a11c0ffee00000a1",
                        "AssociationState": {"State": "associated"},
                    }
                )
        if variant == "externalSnat" and doc.get("kind") == "DaemonSet":
            for variable in doc["spec"]["template"]["spec"]["containers"][0]["env"]:
                if variable["name"] == "AWS_VPC_K8S_CNI_EXTERNALSNAT":
                    variable["value"] = "true"
    return docs


@pytest.mark.parametrize("tour_walk", VARIANT_WALKS, ids=[w.id for w in VARIANT_WALKS])
def test_variant_walks_from_the_variants_json(tour_walk: TourWalk) -> None:
    assert tour_walk.variant is not None
    expected = tour_walk.run(build_state(load_cluster(variant=tour_walk.variant)))
    state = build_state(imported(_variant_documents(tour_walk.variant), unobservable()))
    assert tour_walk.run(state) == expected


def _shape(walk: Walk) -> tuple[Any, ...]:
    """What a walk says without the values only a base pins (veth and netns names, labels)."""
    hops = tuple(
        (h.where.kind, h.where.name if h.where.kind in ("node", "vpc") else "") for h in walk.hops
    )
    disposition = walk.disposition
    if disposition is None:  # split by kube-proxy's statistic rules: each branch
        return hops, tuple((b.probability, _shape(b.walk)) for b in walk.branches)
    return hops, disposition.kind, disposition.code, disposition.reason


def test_without_a_base_the_walks_inside_the_cluster_are_the_demos(
    demo_state: DataplaneState,
) -> None:
    state = build_state(imported(documents(), None))
    inside = [
        w
        for w in BASE_WALKS
        if w.src.startswith(("pod/", "node/")) and w.dst.startswith(("pod/", "node/", "svc/"))
    ]
    assert len(inside) >= 4
    for tour_walk in inside:
        assert _shape(tour_walk.run(state)) == _shape(tour_walk.run(demo_state)), tour_walk.id


def test_what_is_imported_and_assumed(full: tuple[dict[str, Any], tuple[str, ...]]) -> None:
    spec, notes = full
    assert (spec["name"], spec["region"], spec["accountId"]) == (
        "talk",
        "eu-west-2",
        "111122223333",
    )
    assert spec["kubernetes"]["serviceCidr"] == "10.100.0.0/16"
    assert spec["vpc"]["cidrs"] == ["192.168.0.0/16"]
    assert [s["name"] for s in spec["vpc"]["subnets"]] == [
        "public-a",
        "public-b",
        "public-c",
        "nat-a",
    ]
    assert list(spec["vpc"]["securityGroups"]) == ["sg-cluster"]  # the controllers' are derived
    assert spec["vpc"]["securityGroups"]["sg-cluster"]["inbound"] == [
        {"protocol": "all", "source": "sg-cluster"},
        {
            "protocol": "tcp",
            "ports": "30080",
            "source": "0.0.0.0/0",
            "description": "user-added for the NodePort walk",
        },
    ]
    assert spec["cni"]["version"] == "v1.19.2-eksbuild.1"
    assert spec["cni"]["env"]["AWS_VPC_K8S_CNI_EXTERNALSNAT"] == "false"
    assert "MY_NODE_NAME" not in spec["cni"]["env"]  # from a field, not in the manifest
    assert spec["kubeProxy"]["iptables"]["masqueradeBit"] == 14
    assert spec["kubeProxy"]["version"] == "v1.31.2-eks-7f9249a"
    assert spec["loadBalancerController"] == {
        "version": "v2.13.0",
        "serviceMutatorWebhook": False,
        "ingressClass": "alb",
        "createIngressClassResource": True,
    }
    node = spec["nodes"][0]
    assert node["talkName"] == "node 1"  # the base's
    assert node["instanceId"] == "i-0a11c0ffee0000050"
    assert [(e["linux"], e["ifindex"], e["id"]) for e in node["enis"]] == [
        ("eth0", 2, "eni-01a00000000000050"),
        ("eth1", 3, "eni-01a00000000000060"),
    ]
    assert next(p["name"] for p in spec["pods"]) == "app2-7c9f8d6b5-k5x2p"  # no host-network pods
    assert not any(p["namespace"] == "kube-system" for p in spec["pods"])
    assert {p["eni"] for p in spec["pods"]} == {"eth0", "eth1"}
    pins = {pin["for"]: pin for pin in spec["loadBalancers"]}
    assert pins["ingress/myingress"]["kind"] == "alb"
    assert pins["service/app1-clb"]["ips"]["eu-west-2a"] == ["192.168.1.131", "192.0.2.131"]
    assert all("securityGroups" not in pin for pin in pins.values())
    assert "metadata" in spec["services"][0]
    assert "managedFields" not in json.dumps(spec)
    assert "last-applied-configuration" not in json.dumps(spec)
    text = " ".join(notes)
    for said in ("eth<N>", "iptables backend", "service CIDR", "host-network", "Name tag"):
        assert said in text


def test_the_rendered_yaml_is_the_spec_and_loads(
    full: tuple[dict[str, Any], tuple[str, ...]],
) -> None:
    text = render_spec(full[0])
    assert yaml.safe_load(text) == full[0]
    assert "&id" not in text and "*id" not in text
    assert text.startswith("name: talk\nsource: ")
    assert "    secondaryIps: [192.168.1.51]\n" in text
    keys = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
    assert keys[:8] == [
        "name",
        "source",
        "region",
        "accountId",
        "kubernetes",
        "vpc",
        "cni",
        "kubeProxy",
    ]
    parse_cluster(text, "imported")


# --- a check that can fail -------------------------------------------------------------------


def _mutated(change: Callable[[Documents], None]) -> DataplaneState:
    docs = copy.deepcopy(documents())
    change(docs)
    return build_state(imported(docs, unobservable()))


def _one(docs: Documents, key: str) -> list[dict[str, Any]]:
    found = [doc[key] for _, doc in docs if key in doc]
    assert len(found) == 1
    items: list[dict[str, Any]] = found[0]
    return items


def test_dropping_a_security_group_rule_changes_the_nodeport_walk(
    demo_state: DataplaneState,
) -> None:
    def drop(docs: Documents) -> None:
        group = next(g for g in _one(docs, "SecurityGroups") if g["GroupId"] == "sg-cluster")
        group["IpPermissions"] = [p for p in group["IpPermissions"] if p.get("FromPort") != 30080]

    state = _mutated(drop)
    changed = differing(demo_state, state, BASE_WALKS)
    assert "W4" in changed
    w4 = next(w for w in BASE_WALKS if w.id == "W4").run(state)
    assert w4.disposition is not None and w4.disposition.kind == "dropped"


def test_an_enis_mac_changes_the_walks_through_it(demo_state: DataplaneState) -> None:
    def remac(docs: Documents) -> None:
        eni = next(
            e
            for e in _one(docs, "NetworkInterfaces")
            if e["NetworkInterfaceId"] == "eni-01a00000000000070"
        )
        eni["MacAddress"] = "02:00:c0:a8:01:99"

    changed = differing(demo_state, _mutated(remac), BASE_WALKS)
    assert "W0" in changed and "W1" not in changed


# --- partial input ---------------------------------------------------------------------------


KUBECTL = (
    "kubectl-get-all.json",
    "kube-proxy-config.json",
    "aws-node-daemonset.json",
    "aws-load-balancer-controller.json",
)


def test_only_kubectl_json_over_the_demo(demo_state: DataplaneState) -> None:
    spec, notes = spec_from_documents(documents(*KUBECTL), demo_spec())
    state = build_state(parse_cluster(yaml.safe_dump(spec), "imported"))
    assert differing(demo_state, state, BASE_WALKS) == []
    assert spec["vpc"]["subnets"][0]["name"] == "public-a"  # the base's VPC, kept
    assert spec["nodes"][0]["enis"][0]["linux"] == "eth0"
    assert any("iptables backend" in note for note in notes)


def test_only_kubectl_json_names_the_aws_input_it_lacks() -> None:
    with pytest.raises(InputError) as caught:
        spec_from_documents(documents(*KUBECTL), None)
    assert "describe-network-interfaces" in (caught.value.fix or "")
    assert caught.value.source is not None and "kubectl-get-all.json" in caught.value.source


def test_only_enis_names_the_subnets_it_lacks() -> None:
    with pytest.raises(InputError) as caught:
        spec_from_documents(documents("describe-network-interfaces.json"), None)
    assert "describe-subnets" in (caught.value.fix or "")


def test_only_enis_over_the_demo(demo_state: DataplaneState) -> None:
    spec, notes = spec_from_documents(documents("describe-network-interfaces.json"), demo_spec())
    names = [n["name"] for n in spec["nodes"]]
    assert names == [n["name"] for n in demo_spec()["nodes"]]  # by their private DNS names
    state = build_state(parse_cluster(yaml.safe_dump(spec), "imported"))
    assert differing(demo_state, state, BASE_WALKS) == []
    assert any("private DNS name" in note for note in notes)


def test_only_enis_over_the_demo_can_fail() -> None:
    docs = documents("describe-network-interfaces.json")
    for eni in docs[0][1]["NetworkInterfaces"]:
        if eni["NetworkInterfaceId"] == "eni-01a00000000000080":
            eni["PrivateIpAddresses"] = eni["PrivateIpAddresses"][:1]  # pod 81's IP gone
    spec, _ = spec_from_documents(docs, demo_spec())
    with pytest.raises(InputError, match=r"192\.168\.1\.81"):
        parse_cluster(yaml.safe_dump(spec), "imported")


def test_load_balancer_owners_from_the_status_without_tags(
    full: tuple[dict[str, Any], tuple[str, ...]],
) -> None:
    names = [p.name for p in sorted(DATA.glob("*.json")) if p.name != "elbv2-describe-tags.json"]
    spec, _ = spec_from_documents(documents(*names), unobservable())
    assert spec["loadBalancers"] == full[0]["loadBalancers"]


def test_subnets_without_route_tables_name_the_input() -> None:
    docs = [d for d in documents() if "RouteTables" not in d[1]]
    with pytest.raises(InputError) as caught:
        spec_from_documents(docs, None)
    assert "describe-route-tables" in (caught.value.fix or "")


# --- shapes and broken files -----------------------------------------------------------------


def test_an_unknown_shape_lists_the_accepted_ones() -> None:
    with pytest.raises(InputError) as caught:
        sort_documents([("odd.json", {"Buckets": []})])
    assert caught.value.source == "odd.json"
    assert "describe-network-interfaces" in (caught.value.fix or "")
    assert "kubectl" in (caught.value.fix or "")
    with pytest.raises(InputError, match="Secret"):
        sort_documents([("secret.json", {"apiVersion": "v1", "kind": "Secret"})])
    with pytest.raises(InputError, match="list"):
        sort_documents([("list.json", [1, 2])])


def test_other_kinds_inside_a_list_are_named_not_fatal() -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x"}}],
    }
    inputs = sort_documents([("all.json", listed)])
    assert inputs.ignored == ["ReplicaSet x (all.json)"]


def test_truncated_json_says_file_and_line(tmp_path: Path) -> None:
    text = (DATA / "describe-subnets.json").read_text()
    cut = tmp_path / "subnets.json"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(InputError) as caught:
        read_json_file(cut)
    assert caught.value.source == str(cut)
    assert caught.value.line == len(text[: len(text) // 2].splitlines())
    assert "truncated" in caught.value.message
    with pytest.raises(InputError) as bad:
        parse_json('{"Subnets": [}\n', "bad.json")
    assert (bad.value.source, bad.value.line) == ("bad.json", 1)


# --- the merge rule --------------------------------------------------------------------------


def test_facts_win_assumptions_yield_the_unmentioned_is_kept() -> None:
    from eksnet.importers._facts import Assumed

    base = {
        "name": "mine",
        "nodes": [{"name": "a", "talkName": "A", "enis": [{"id": "eni-1", "linux": "ens5"}]}],
        "externalHosts": [{"name": "client", "ip": "203.0.113.10"}],
    }
    fact = {
        "nodes": [
            {
                "name": "a",
                "enis": [{"id": "eni-1", "linux": Assumed("eth0"), "mac": "02:00:00:00:00:01"}],
            },
            {"name": "b", "enis": [{"id": "eni-2", "linux": Assumed("eth0")}]},
        ]
    }
    assert merge(fact, base) == {
        "nodes": [
            {
                "name": "a",
                "enis": [{"id": "eni-1", "linux": "ens5", "mac": "02:00:00:00:00:01"}],
                "talkName": "A",
            },
            {"name": "b", "enis": [{"id": "eni-2", "linux": "eth0"}]},
        ],
        "name": "mine",
        "externalHosts": [{"name": "client", "ip": "203.0.113.10"}],
    }
