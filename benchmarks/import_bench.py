"""Time and size `eksnet import` of a big cluster: 200 nodes, 10,000 pods, 2,000 Services as
kubectl and aws JSON, plus 20 nodes' dumps (issue 12's budget: ≤ 10 s and ≤ 1 GiB).

The JSON is the demo's own fixture documents (tests/importers/data/demo-json/, as kubectl and
the AWS CLI print them) grown: a VPC 10.0.0.0/16 with a /18 subnet per AZ, 200 m5.4xlarge nodes
of two ENIs with 25 secondary addresses each, 50 pods per node, 2,000 ClusterIP Services of 5
pods each with their EndpointSlices. Each of the 20 dumps is a plain dump folder named after its
node: `ip rule show` (the CNI's 512/1536 rules of its 50 pods), `ip route show table all`,
`sysctl -a`'s lines and an `iptables-save` of kube-proxy's shape for the 2,000 Services (about
45,000 lines, the same on every node as kube-proxy's are, with the node's own SNAT rule). The
import runs as the installed command in a child process; its wall time and its peak RSS
(`ru_maxrss` of the children) are the figures, at the full size and at a fifth of it, to show
how it grows.

Prints figures, never fails: budgets are read by people, not asserted (these machines are
noisy). Run: .venv/bin/python benchmarks/import_bench.py
"""

from __future__ import annotations

import copy
import json
import resource
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "importers" / "data" / "demo-json"
EKSNET = str(Path(sys.executable).with_name("eksnet"))
ZONES = ("eu-west-2a", "eu-west-2b", "eu-west-2c")
PODS_PER_NODE = 50
PODS_PER_SERVICE = 5


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def node_name(index: int) -> str:
    return f"ip-10-0-{index // 200}-{index % 200 + 10}.eu-west-2.compute.internal"


def subnet_id(zone: int) -> str:
    return f"subnet-0b{zone:015x}"


def addresses(index: int) -> tuple[list[str], list[str]]:
    """Node `index`'s eth0 and eth1 addresses (primary first): a /18 per AZ, 64 per node."""
    zone = index % 3
    base = int(IPv4Address("10.0.0.0")) + zone * 16384 + (index // 3) * 64 + 16
    eth0 = [str(IPv4Address(base + n)) for n in range(26)]
    eth1 = [str(IPv4Address(base + 32 + n)) for n in range(26)]
    return eth0, eth1


def grow(nodes: int, services: int, folder: Path) -> list[Path]:
    """The grown JSON documents, written into `folder`."""
    kube = load("kubectl-get-all.json")
    items = kube["items"]
    node_t = next(i for i in items if i["kind"] == "Node")
    pod_t = next(i for i in items if i["kind"] == "Pod")
    svc_t = next(i for i in items if i["kind"] == "Service" and i["spec"]["type"] == "ClusterIP")
    slice_t = next(i for i in items if i["kind"] == "EndpointSlice")
    enis_doc = load("describe-network-interfaces.json")
    eni_t = enis_doc["NetworkInterfaces"][0]
    inst_doc = load("describe-instances.json")
    res_t = inst_doc["Reservations"][0]
    new_items: list[Any] = []
    enis: list[Any] = []
    reservations: list[Any] = []
    pod_ips: list[tuple[str, str, str]] = []
    for index in range(nodes):
        name, zone = node_name(index), ZONES[index % 3]
        eth0, eth1 = addresses(index)
        instance = f"i-0b{index:015x}"
        node = copy.deepcopy(node_t)
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        node["metadata"]["labels"]["topology.kubernetes.io/zone"] = zone
        node["metadata"]["labels"]["beta.kubernetes.io/instance-type"] = "m5.4xlarge"
        node["metadata"]["labels"]["node.kubernetes.io/instance-type"] = "m5.4xlarge"
        node["spec"]["providerID"] = f"aws:///{zone}/{instance}"
        node["status"]["addresses"] = [
            {"address": eth0[0], "type": "InternalIP"},
            {"address": name, "type": "Hostname"},
        ]
        new_items.append(node)
        for device, ips in ((0, eth0), (1, eth1)):
            eni = copy.deepcopy(eni_t)
            eni.pop("Association", None)
            eni["Attachment"]["DeviceIndex"] = device
            eni["Attachment"]["InstanceId"] = instance
            eni["AvailabilityZone"] = zone
            eni["MacAddress"] = "02:0b:" + ":".join(f"{(index * 2 + device) >> s & 255:02x}"
                                                    for s in (24, 16, 8, 0))  # fmt: skip
            eni["NetworkInterfaceId"] = f"eni-0b{index * 2 + device:015x}"
            eni["PrivateIpAddress"] = ips[0]
            eni["PrivateIpAddresses"] = [
                {"Primary": n == 0, "PrivateIpAddress": ip} for n, ip in enumerate(ips)
            ]
            eni["SubnetId"] = subnet_id(index % 3)
            enis.append(eni)
            for ip in ips[1:]:
                pod_ips.append((name, zone, ip))
        reservation = copy.deepcopy(res_t)
        (inst,) = reservation["Instances"][:1]
        inst["InstanceId"] = instance
        inst["InstanceType"] = "m5.4xlarge"
        inst["Placement"]["AvailabilityZone"] = zone
        inst["PrivateDnsName"] = name
        inst["PrivateIpAddress"] = eth0[0]
        inst.pop("PublicIpAddress", None)
        inst["SubnetId"] = subnet_id(index % 3)
        inst.pop("NetworkInterfaces", None)
        reservation["Instances"] = [inst]
        reservations.append(reservation)
    for number, (name, _, ip) in enumerate(pod_ips[: nodes * PODS_PER_NODE]):
        pod = copy.deepcopy(pod_t)
        pod["metadata"]["name"] = f"app-{number}"
        pod["metadata"]["labels"] = {"app": f"svc-{number % services}"}
        pod["metadata"].pop("generateName", None)
        pod["metadata"].pop("ownerReferences", None)
        pod["spec"]["nodeName"] = name
        pod["status"]["podIP"] = ip
        pod["status"]["podIPs"] = [{"ip": ip}]
        pod["status"]["hostIP"] = ip
        new_items.append(pod)
    for number in range(services):
        svc = copy.deepcopy(svc_t)
        svc["metadata"]["name"] = f"svc-{number}"
        svc["metadata"].pop("annotations", None)
        cluster_ip = str(IPv4Address(int(IPv4Address("10.100.0.10")) + number))
        svc["spec"]["clusterIP"] = cluster_ip
        svc["spec"]["clusterIPs"] = [cluster_ip]
        svc["spec"]["selector"] = {"app": f"svc-{number}"}
        new_items.append(svc)
        endpoints = []
        for pod_number in range(number, min(len(pod_ips), nodes * PODS_PER_NODE), services):
            name, zone, ip = pod_ips[pod_number]
            endpoints.append({
                "addresses": [ip], "conditions": {"ready": True, "serving": True,
                                                  "terminating": False},
                "nodeName": name, "zone": zone,
                "targetRef": {"kind": "Pod", "name": f"app-{pod_number}", "namespace": "default"},
            })  # fmt: skip
        piece = copy.deepcopy(slice_t)
        piece["metadata"]["name"] = f"svc-{number}-abcde"
        piece["metadata"]["labels"]["kubernetes.io/service-name"] = f"svc-{number}"
        piece["metadata"].pop("ownerReferences", None)
        piece["endpoints"] = endpoints
        new_items.append(piece)
    kept = [i for i in items if i["kind"] in ("IngressClass",)]
    kube["items"] = [*new_items, *kept]
    subnets = load("describe-subnets.json")
    template = subnets["Subnets"][0]
    subnets["Subnets"] = []
    for zone_index, zone in enumerate(ZONES):
        subnet = copy.deepcopy(template)
        subnet["SubnetId"] = subnet_id(zone_index)
        subnet["AvailabilityZone"] = zone
        subnet.pop("AvailabilityZoneId", None)
        subnet["CidrBlock"] = f"10.0.{zone_index * 64}.0/18"
        subnet["Tags"] = [{"Key": "Name", "Value": f"nodes-{zone[-1]}"}]
        subnets["Subnets"].append(subnet)
    vpcs = load("describe-vpcs.json")
    vpcs["Vpcs"][0]["CidrBlock"] = "10.0.0.0/16"
    vpcs["Vpcs"][0]["CidrBlockAssociationSet"] = [
        {**vpcs["Vpcs"][0]["CidrBlockAssociationSet"][0], "CidrBlock": "10.0.0.0/16"}
    ]
    tables = load("describe-route-tables.json")
    public = next(t for t in tables["RouteTables"] if any(
        r.get("GatewayId", "").startswith("igw-") for r in t["Routes"]))  # fmt: skip
    public["Routes"] = [
        {**r, "DestinationCidrBlock": "10.0.0.0/16"} if r.get("GatewayId") == "local" else r
        for r in public["Routes"]
    ]
    public["Associations"] = [
        {"Main": False, "RouteTableId": public["RouteTableId"], "SubnetId": subnet_id(z),
         "AssociationState": {"State": "associated"}}
        for z in range(3)
    ]  # fmt: skip
    tables["RouteTables"] = [public]
    written = []
    documents = {
        "kubectl-get-all.json": kube,
        "describe-network-interfaces.json": {"NetworkInterfaces": enis},
        "describe-instances.json": {"Reservations": reservations},
        "describe-subnets.json": subnets,
        "describe-vpcs.json": vpcs,
        "describe-route-tables.json": tables,
    }
    for extra in ("describe-security-groups.json", "describe-internet-gateways.json",
                  "kube-proxy-config.json", "aws-node-daemonset.json"):  # fmt: skip
        documents[extra] = load(extra)
    for name, document in documents.items():
        path = folder / name
        path.write_text(json.dumps(document))
        written.append(path)
    return written


def iptables_save(services: int, node_ip: str) -> str:
    """A kube-proxy ruleset's shape for `services` ClusterIP Services of 5 endpoints, and the
    VPC CNI's SNAT to the node's own address: as on real nodes, most rules are the same on
    every node (kube-proxy names its chains by a hash of Service and endpoint), a few are the
    node's own."""
    chains = [":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]", ":AWS-SNAT-CHAIN-0 - [0:0]"]
    rules = ["-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
             "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
             "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
             "-A POSTROUTING -m comment --comment \"AWS SNAT CHAIN\" -j AWS-SNAT-CHAIN-0",
             "-A AWS-SNAT-CHAIN-0 ! -d 10.0.0.0/16 -m comment --comment \"AWS, SNAT\" -m addrtype "
             f"! --dst-type LOCAL -j SNAT --to-source {node_ip} --random-fully"]  # fmt: skip
    for number in range(services):
        svc = f"KUBE-SVC-{number:016X}"
        ip = IPv4Address(int(IPv4Address("10.100.0.10")) + number)
        chains.append(f":{svc} - [0:0]")
        rules.append(f"-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment "
                     f"\"default/svc-{number} cluster IP\" -m tcp --dport 80 -j {svc}")  # fmt: skip
        for endpoint in range(PODS_PER_SERVICE):
            sep = f"KUBE-SEP-{number:012X}{endpoint:04X}"
            pod = IPv4Address(int(IPv4Address("10.0.0.17")) + number * 5 + endpoint)
            chains.append(f":{sep} - [0:0]")
            left = PODS_PER_SERVICE - endpoint
            chance = (
                f"-m statistic --mode random --probability {1 / left:.11f} " if left > 1 else ""
            )
            rules.append(f"-A {svc} -m comment --comment \"default/svc-{number} -> {pod}:80\" "
                         f"{chance}-j {sep}")  # fmt: skip
            rules.append(f"-A {sep} -s {pod}/32 -m comment --comment \"default/svc-{number}\" "
                         "-j KUBE-MARK-MASQ")  # fmt: skip
            rules.append(f"-A {sep} -p tcp -m comment --comment \"default/svc-{number}\" -m tcp "
                         f"-j DNAT --to-destination {pod}:80")  # fmt: skip
    return "\n".join(["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]",
                      ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", *chains, *rules,
                      "COMMIT", ""])  # fmt: skip


def dumps(count: int, services: int, folder: Path) -> list[Path]:
    written = []
    for index in range(count):
        target = folder / node_name(index)
        target.mkdir()
        eth0, eth1 = addresses(index)
        rules = ["0:\tfrom all lookup local"]
        rules += [f"512:\tfrom all to {ip} lookup main" for ip in eth0[1:] + eth1[1:]]
        rules += ["1024:\tfrom all fwmark 0x80/0x80 lookup main"]
        rules += [f"1536:\tfrom {ip} lookup 2" for ip in eth1[1:]]
        rules += ["32766:\tfrom all lookup main", "32767:\tfrom all lookup default"]
        (target / "ip-rule.txt").write_text("\n".join(rules) + "\n")
        routes = [f"default via 10.0.{(index % 3) * 64}.1 dev eth1 table 2",
                  f"10.0.{(index % 3) * 64}.1 dev eth1 table 2 scope link"]  # fmt: skip
        (target / "ip-route.txt").write_text("\n".join(routes) + "\n")
        (target / "sysctl.txt").write_text(
            "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.rp_filter = 1\n"
            "net.ipv4.conf.default.rp_filter = 1\nnet.ipv4.conf.eth0.rp_filter = 2\n"
        )
        (target / "iptables-save.txt").write_text(iptables_save(services, eth0[0]))
        written.append(target)
    return written


def measure(nodes: int, services: int, bundles: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        inputs = [*grow(nodes, services, folder), *dumps(bundles, services, folder)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        result = subprocess.run(
            [EKSNET, "import", *map(str, inputs), "--output", str(folder / "cluster.yaml")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:])
            raise SystemExit(f"import failed: {result.returncode}")
        lines = sum(len(p.read_text().splitlines()) for p in folder.glob("*/iptables-save.txt"))
        return elapsed, max(peak, before) / 1024, lines


def main() -> None:
    small = measure(40, 400, 4)
    full = measure(200, 2000, 20)
    for label, (seconds, mebibytes, lines) in (
        ("40 nodes, 2,000 pods, 400 Services + 4 dumps", small),
        ("200 nodes, 10,000 pods, 2,000 Services + 20 dumps", full),
    ):
        print(f"import {label:<52} {seconds:7.2f} s   peak RSS {mebibytes:7.0f} MiB   "
              f"({lines:,} iptables lines in the dumps)")  # fmt: skip
    print(f"growth ×5 in nodes, pods, Services and dumps: time ×{full[0] / small[0]:.2f}")


if __name__ == "__main__":
    main()
