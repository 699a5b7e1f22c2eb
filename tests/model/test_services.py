"""Services, EndpointSlices and kube-proxy's configuration in a spec: pasted manifests load, the
shorthand loads, and what the API server (or kube-proxy) would refuse is one line with the file,
the line and the fix."""

from __future__ import annotations

import pytest
from tests.kube_proxy_specs import OVERALL, REFERENCE

from eksnet.errors import InputError
from eksnet.model import parse_cluster


def test_manifests_and_defaults() -> None:
    cluster = parse_cluster(REFERENCE, "reference.yaml")
    services = {service.key: service for service in cluster.kube_services()}
    api = services["default/api"]
    # API server defaults: protocol TCP, eTP Cluster for NodePort, iTP Cluster, no affinity.
    assert (api.ports[0].protocol, api.external_traffic_policy) == ("TCP", "Cluster")
    assert (api.internal_traffic_policy, api.affinity_timeout) == ("Cluster", None)
    empty = services["default/empty"]
    assert (empty.ports[0].target_port, empty.ports[0].node_port) == (80, None)
    assert empty.external_traffic_policy is None


def test_affinity_timeout_defaults_to_10800() -> None:
    text = OVERALL.replace(", sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}", "")
    cluster = parse_cluster(text, "overall.yaml")
    assert {s.name: s.affinity_timeout for s in cluster.kube_services()}["svc5"] == 10800


def line_of(text: str, needle: str) -> int:
    """The last line holding `needle` (a duplicate is reported where it is repeated)."""
    return max(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("clusterIP: 172.30.0.43", "clusterIP: 10.0.0.43", "outside the service CIDR"),
        ("clusterIP: 172.30.0.43", "clusterIP: 172.30.0.41", "already service ns1/svc1's"),
        ("nodePort: 3003", "nodePort: 40000", "outside the node port range 3000-32767"),
        ("nodePort: 3003", "nodePort: 3001", "node port 3001/TCP is already ns2/svc2's"),
        ("{name: p80, port: 80}]}", "{name: p80, port: 80, nodePort: 30001}]}",
         "a ClusterIP Service has no node ports"),
        ("type: NodePort, clusterIP: 172.30.0.43", "type: NodePort, clusterIP: 172.30.0.43, healthCheckNodePort: 31000",
         "healthCheckNodePort is only for a LoadBalancer"),
        ("clusterIP: 172.30.0.43", "clusterIP: 172.30.0.43, colour: blue", "unknown field"),
        ("{kubernetes.io/service-name: svc3}", "{kubernetes.io/service-name: svc9}",
         "EndpointSlice for service 'svc9', which is not declared"),
        ("nodeName: test-node", "nodeName: nobody", "endpoint on unknown node 'nobody'"),
        ("clusterCIDR: 10.0.0.0/8", "clusterCIDR: 10.0.0.0/33", "clusterCIDR '10.0.0.0/33' is not a CIDR"),
        ('[" 203.0.113.0/25"]', '["203.0.113.0/40"]', "is not a CIDR"),
    ],
)  # fmt: skip
def test_bad_services_are_one_line_with_the_line(old: str, new: str, message: str) -> None:
    assert old in OVERALL
    text = OVERALL.replace(old, new, 1)
    with pytest.raises(InputError) as caught:
        parse_cluster(text, "overall.yaml")
    error = caught.value
    assert message in error.message
    assert error.source == "overall.yaml" and error.line is not None and error.fix
    assert "\n" not in error.one_line()
    assert error.line == line_of(text, new)
