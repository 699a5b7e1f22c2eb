"""`aws ec2/elbv2 describe-…` JSON → the AWS half of a cluster spec (vpc-fabric.md §7).

What each answer gives (the spec's field ← the API's):

* DescribeVpcs: `vpc.id`, `vpc.cidrs` (associated IPv4 blocks). Without it the VPC comes from the
  nodes' ENIs and its CIDRs from the route tables' `local` routes (exact), else the /16 blocks
  holding its subnets (assumed).
* DescribeSubnets: `vpc.subnets[]`: named by their `Name` tag when it is a usable, unique name,
  else by `SubnetId`; `az`, `azId`, `cidr`, `mapPublicIp`, `tags`.
* DescribeRouteTables: `vpc.routeTables` (IPv4 routes, target by id) and each subnet's
  `routeTable` (its explicit association, else the main table).
* DescribeSecurityGroups: `vpc.securityGroups`, one rule per peer. The groups and rules the load
  balancer controllers made (`k8s-elb-…`, the LBC's frontend and backend groups, rules described
  `kubernetes.io/rule/nlb/…` or `elbv2.k8s.aws/targetGroupBinding=shared`, and rules naming a
  controller's group) are left out: the controllers derive them from the Services and Ingresses
  (`controllers/lb_security_groups.py`), and both would be the same rule twice.
* DescribeNetworkAcls: `vpc.networkAcls` (the `*` entry 32767 is implicit in the spec).
* DescribeNatGateways, DescribeInternetGateways: `vpc.natGateways`, `vpc.internetGateway`.
* DescribeNetworkInterfaces (and the ENIs inside DescribeInstances; the former wins): the nodes'
  ENIs (device index, MAC, addresses, prefixes, groups, subnet, elastic IPs); the load
  balancers' nodes (`ELB net/…`, `ELB app/…`, `ELB <name>` for a CLB); the NAT gateways' MACs.
* DescribeInstances: instance type, metadata options (IMDS), public IPv4.
* DescribeLoadBalancers (elbv2, elb), DescribeTags (`TagDescriptions`): the load balancers' names,
  DNS names and owners (`service.k8s.aws/stack`, `ingress.k8s.aws/stack`,
  `kubernetes.io/service-name`). Listeners, rules, target groups and target health are accepted
  and not read: the controllers derive them from the Services and Ingresses.

Pure: parsed JSON in, dicts in the spec's shape out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from eksnet.errors import InputError
from eksnet.importers._facts import Assumed, Json, Notes, SubnetRef, tags_of
from eksnet.importers.json_input import Inputs, Item

MANAGED_RULE_DESCRIPTIONS = ("kubernetes.io/rule/nlb/", "elbv2.k8s.aws/targetGroupBinding=shared")
MANAGED_GROUP_DESCRIPTIONS = (
    "Security group for Kubernetes ELB ",
    "[k8s] Managed SecurityGroup for LoadBalancer",
    "[k8s] Shared Backend SecurityGroup for LoadBalancer",
)
PROTOCOL_NAMES = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
ROUTE_TARGETS = (
    "NetworkInterfaceId",
    "NatGatewayId",
    "GatewayId",
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "LocalGatewayId",
    "CarrierGatewayId",
)
"""A route's target fields, in the order read (an instance route also names its ENI)."""


@dataclass(frozen=True, slots=True)
class Eni:
    """One network interface, as DescribeNetworkInterfaces (or an instance's list) shows it."""

    id: str
    source: str
    subnet_id: str
    vpc_id: str | None
    zone: str | None
    mac: str | None
    primary_ip: str | None
    secondary_ips: tuple[str, ...]
    prefixes: tuple[str, ...]
    groups: tuple[tuple[str, str], ...]
    """(GroupId, GroupName)."""
    public: dict[str, str]
    """Private address → the public IPv4 associated with it."""
    instance_id: str | None
    device_index: int | None
    card_index: int
    interface_type: str
    description: str
    private_dns: str | None
    owner: str | None


@dataclass(frozen=True, slots=True)
class LbNode:
    """One load balancer ENI: the node of `name` in one zone."""

    name: str
    kind: str
    zone: str
    private_ip: str
    public_ip: str | None
    groups: tuple[tuple[str, str], ...]
    source: str


@dataclass(slots=True)
class AwsFacts:
    """The AWS side: the `vpc` section, the nodes' ENIs and instances, the load balancers."""

    vpc: Json = field(default_factory=dict)
    vpc_id: str | None = None
    subnet_names: dict[str, str] = field(default_factory=dict)
    """SubnetId → the name the spec gives it."""
    subnet_cidrs: dict[str, IPv4Network] = field(default_factory=dict)
    enis: dict[str, Eni] = field(default_factory=dict)
    instances: dict[str, Json] = field(default_factory=dict)
    lb_nodes: list[LbNode] = field(default_factory=list)
    lb_dns: dict[str, str] = field(default_factory=dict)
    """Load balancer name → its DNS name."""
    lb_owners: dict[str, str] = field(default_factory=dict)
    """Load balancer name → `service/NS/NAME` or `ingress/NS/NAME`, from its tags."""
    lb_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    managed_groups: set[str] = field(default_factory=set)
    zones: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    cluster_names: list[str] = field(default_factory=list)
    cluster: Json | None = None
    """`aws eks describe-cluster`'s `cluster`, if given."""
    _by_address: dict[str, tuple[str, Eni]] | None = field(default=None, repr=False)
    """`owner_of`'s index of secondary addresses (10,000 pods would otherwise scan every ENI)."""

    def node_enis(self) -> dict[str, list[Eni]]:
        """Instance id → its ENIs (the instance's own interfaces), in device order."""
        found: dict[str, list[Eni]] = {}
        for eni in self.enis.values():
            if eni.instance_id and eni.interface_type in ("interface", "trunk"):
                found.setdefault(eni.instance_id, []).append(eni)
        for enis in found.values():
            enis.sort(key=lambda e: (e.card_index, e.device_index or 0))
        return found

    def owner_of(self, address: str) -> tuple[str, Eni] | None:
        """The instance and ENI holding `address` as a secondary IP or in a prefix."""
        if self._by_address is None:
            self._by_address = {}
            for eni in self.enis.values():
                if eni.instance_id is not None:
                    for secondary in eni.secondary_ips:
                        self._by_address.setdefault(secondary, (eni.instance_id, eni))
        found = self._by_address.get(address)
        if found is not None:
            return found
        ip = IPv4Address(address)
        for eni in self.enis.values():
            if eni.instance_id is None:
                continue
            if address in eni.secondary_ips or any(ip in IPv4Network(p) for p in eni.prefixes):
                return eni.instance_id, eni
        return None


def aws_facts(inputs: Inputs, notes: Notes) -> AwsFacts:
    """Everything the AWS answers say, for the VPC the nodes sit in."""
    facts = AwsFacts()
    for item in inputs.items("cluster"):
        facts.cluster = item.value
        if item.value.get("name"):
            facts.cluster_names.append(str(item.value["name"]))
        arn = str(item.value.get("arn", ""))
        if arn.count(":") >= 4:
            facts.accounts.append(arn.split(":")[4])
            facts.zones.append(arn.split(":")[3] + "a")
    _read_enis(inputs, facts)
    facts.vpc_id = _choose_vpc(inputs, facts)
    if facts.vpc_id is None:
        return facts
    facts.vpc["id"] = facts.vpc_id
    _subnets(inputs, facts, notes)
    _route_tables(inputs, facts, notes)
    _cidrs(inputs, facts, notes)
    _gateways(inputs, facts, notes)
    _security_groups(inputs, facts, notes)
    _network_acls(inputs, facts, notes)
    _prefix_lists(inputs, facts)
    _load_balancers(inputs, facts, notes)
    for key in ("Listeners", "Rules", "TargetGroups", "TargetHealthDescriptions"):
        if inputs.items(key):
            notes.add(
                "listeners, rules, target groups and target health are derived by the "
                "controllers from the Services and Ingresses; their describe output is not read"
            )
    return facts


def _eni(item: Json, source: str, instance: Json | None = None) -> Eni:
    attachment = item.get("Attachment") or {}
    addresses = item.get("PrivateIpAddresses") or []
    primary = item.get("PrivateIpAddress") or next(
        (a.get("PrivateIpAddress") for a in addresses if a.get("Primary")), None
    )
    public: dict[str, str] = {}
    for address in addresses:
        association = address.get("Association") or {}
        if association.get("PublicIp"):
            public[str(address["PrivateIpAddress"])] = str(association["PublicIp"])
    if primary and (item.get("Association") or {}).get("PublicIp"):
        public.setdefault(str(primary), str(item["Association"]["PublicIp"]))
    instance_id = attachment.get("InstanceId") or (instance or {}).get("InstanceId")
    placement = ((instance or {}).get("Placement") or {}).get("AvailabilityZone")
    return Eni(
        id=str(item["NetworkInterfaceId"]),
        source=source,
        subnet_id=str(item.get("SubnetId", "")),
        vpc_id=item.get("VpcId") or (instance or {}).get("VpcId"),
        zone=item.get("AvailabilityZone") or placement,
        mac=item.get("MacAddress"),
        primary_ip=str(primary) if primary else None,
        secondary_ips=tuple(
            str(a["PrivateIpAddress"])
            for a in addresses
            if not a.get("Primary") and a.get("PrivateIpAddress") != primary
        ),
        prefixes=tuple(str(p["Ipv4Prefix"]) for p in item.get("Ipv4Prefixes") or []),
        groups=tuple(
            (str(g.get("GroupId")), str(g.get("GroupName", ""))) for g in item.get("Groups") or []
        ),
        public=public,
        instance_id=str(instance_id) if instance_id else None,
        device_index=attachment.get("DeviceIndex"),
        card_index=int(attachment.get("NetworkCardIndex") or 0),
        interface_type=str(item.get("InterfaceType", "interface")),
        description=str(item.get("Description", "")),
        private_dns=item.get("PrivateDnsName") or None,
        owner=item.get("OwnerId"),
    )


def _read_enis(inputs: Inputs, facts: AwsFacts) -> None:
    for item in inputs.items("Reservations"):
        if item.value.get("OwnerId"):
            facts.accounts.append(str(item.value["OwnerId"]))
        for instance in item.value.get("Instances") or []:
            if (instance.get("State") or {}).get("Name", "running") in ("terminated",):
                continue
            facts.instances[str(instance["InstanceId"])] = {**instance, "_source": item.source}
            zone = (instance.get("Placement") or {}).get("AvailabilityZone")
            if zone:
                facts.zones.append(str(zone))
            tags = tags_of(instance)
            for key in ("eks:cluster-name", "aws:eks:cluster-name"):
                if key in tags:
                    facts.cluster_names.append(tags[key])
            for eni in instance.get("NetworkInterfaces") or []:
                read = _eni(eni, item.source, instance)
                facts.enis[read.id] = read
    for item in inputs.items("NetworkInterfaces"):
        read = _eni(item.value, item.source)
        if read.instance_id is None and read.id in facts.enis:
            # an instance's list names the instance; DescribeNetworkInterfaces may not
            read = _with_instance(read, facts.enis[read.id].instance_id)
        facts.enis[read.id] = read  # DescribeNetworkInterfaces wins (vpc-fabric.md §7.7)
        if read.zone:
            facts.zones.append(read.zone)
        if read.owner:
            facts.accounts.append(read.owner)
        name = tags_of(item.value, "TagSet").get("cluster.k8s.amazonaws.com/name")
        if name:
            facts.cluster_names.append(name)


def _with_instance(eni: Eni, instance_id: str | None) -> Eni:
    return replace(eni, instance_id=instance_id)


def _choose_vpc(inputs: Inputs, facts: AwsFacts) -> str | None:
    """The VPC of the nodes: describe-* answers list every VPC of the region."""
    if facts.cluster is not None:
        vpc = (facts.cluster.get("resourcesVpcConfig") or {}).get("vpcId")
        if vpc:
            return str(vpc)
    found = {e.vpc_id for e in facts.enis.values() if e.instance_id and e.vpc_id}
    found |= {str(i["VpcId"]) for i in facts.instances.values() if i.get("VpcId")}
    if not found:
        for key, field_name in (("Vpcs", "VpcId"), ("Subnets", "VpcId")):
            found = {str(i.value[field_name]) for i in inputs.items(key) if i.value.get(field_name)}
            if found:
                break
    if len(found) > 1:
        raise InputError(
            f"the inputs show instances or subnets in {len(found)} VPCs "
            f"({', '.join(sorted(v for v in found if v))}); a cluster spec has one",
            source=inputs.sources("NetworkInterfaces")
            if inputs.items("NetworkInterfaces")
            else inputs.sources("Subnets"),
            fix="filter the describe commands to the cluster's VPC "
            "(--filters Name=vpc-id,Values=…)",
        )
    return next(iter(found), None)


def _in_vpc(facts: AwsFacts, items: Iterable[Item]) -> list[Item]:
    return [i for i in items if i.value.get("VpcId") in (None, facts.vpc_id)]


def usable_name(text: str) -> bool:
    """A name the spec takes (non-empty, no whitespace)."""
    return bool(text) and not any(c.isspace() for c in text)


def _subnets(inputs: Inputs, facts: AwsFacts, notes: Notes) -> None:
    items = _in_vpc(facts, inputs.items("Subnets"))
    if not items:
        return
    names = [tags_of(i.value).get("Name", "") for i in items]
    subnets: list[Json] = []
    for item, name in zip(items, names, strict=True):
        value = item.value
        subnet_id = str(value["SubnetId"])
        if not (usable_name(name) and names.count(name) == 1):
            name = subnet_id
        else:
            notes.add("subnets are named by their Name tag (by SubnetId where it has none)")
        facts.subnet_names[subnet_id] = name
        facts.subnet_cidrs[subnet_id] = IPv4Network(str(value["CidrBlock"]))
        if value.get("OwnerId"):
            facts.accounts.append(str(value["OwnerId"]))
        facts.zones.append(str(value["AvailabilityZone"]))
        tags = tags_of(value)
        if tags.get("Name") == name:
            del tags["Name"]
        for key in tags:
            if key.startswith("kubernetes.io/cluster/"):
                facts.cluster_names.append(key.removeprefix("kubernetes.io/cluster/"))
        subnet: Json = {"name": name, "az": str(value["AvailabilityZone"])}
        if value.get("AvailabilityZoneId"):
            subnet["azId"] = str(value["AvailabilityZoneId"])
        subnet["cidr"] = str(value["CidrBlock"])
        subnet["mapPublicIp"] = bool(value.get("MapPublicIpOnLaunch", False))
        subnet["tags"] = tags
        subnet["_id"] = subnet_id
        subnets.append(subnet)
    facts.vpc["subnets"] = subnets


def _route_tables(inputs: Inputs, facts: AwsFacts, notes: Notes) -> None:
    items = _in_vpc(facts, inputs.items("RouteTables"))
    if not items:
        return
    tables: dict[str, list[Json]] = {}
    associated: dict[str, str] = {}
    main: str | None = None
    for item in items:
        value = item.value
        table = str(value["RouteTableId"])
        for association in value.get("Associations") or []:
            state = (association.get("AssociationState") or {}).get("State", "associated")
            if state != "associated":
                continue
            if association.get("Main"):
                main = table
            if association.get("SubnetId"):
                associated[str(association["SubnetId"])] = table
        routes: list[Json] = []
        for route in value.get("Routes") or []:
            dst = route.get("DestinationCidrBlock") or route.get("DestinationPrefixListId")
            if dst is None:
                continue  # IPv6
            target = next((route[k] for k in ROUTE_TARGETS if route.get(k)), None)
            if target is None:
                notes.add(
                    f"route table {table}: the route to {dst} has a target eksnet does not "
                    "model; left out"
                )
                continue
            routes.append({"dst": str(dst), "target": str(target)})
        tables[table] = routes
    facts.vpc["routeTables"] = tables
    for subnet in facts.vpc.get("subnets", []):
        chosen = associated.get(subnet["_id"], main)
        if chosen is not None:
            subnet["routeTable"] = chosen
    if main is not None and any(s["_id"] not in associated for s in facts.vpc.get("subnets", [])):
        notes.add(f"subnets without an explicit association use the main route table {main}")


def _cidrs(inputs: Inputs, facts: AwsFacts, notes: Notes) -> None:
    for item in _in_vpc(facts, inputs.items("Vpcs")):
        if item.value.get("VpcId") != facts.vpc_id:
            continue
        blocks = [
            str(a["CidrBlock"])
            for a in item.value.get("CidrBlockAssociationSet") or []
            if (a.get("CidrBlockState") or {}).get("State", "associated") == "associated"
        ] or [str(item.value["CidrBlock"])]
        facts.vpc["cidrs"] = blocks
        if item.value.get("OwnerId"):
            facts.accounts.append(str(item.value["OwnerId"]))
        return
    local = [
        r["dst"]
        for routes in facts.vpc.get("routeTables", {}).values()
        for r in routes
        if r["target"] == "local"
    ]
    if local:
        facts.vpc["cidrs"] = list(dict.fromkeys(local))
        notes.add("the VPC's CIDRs are its route tables' local routes (no describe-vpcs given)")
        return
    if facts.subnet_cidrs:
        # the /16s holding the subnets: the widest block AWS allows, so none is left out
        spans = sorted({str(cidr.supernet(new_prefix=16)) for cidr in facts.subnet_cidrs.values()})
        facts.vpc["cidrs"] = Assumed(spans)
        notes.add(
            f"the VPC's CIDRs are assumed to be {', '.join(spans)}, the /16 blocks "
            "holding its subnets: give `aws ec2 describe-vpcs` for the real ones"
        )


def _gateways(inputs: Inputs, facts: AwsFacts, notes: Notes) -> None:
    for item in inputs.items("InternetGateways"):
        for attachment in item.value.get("Attachments") or []:
            if attachment.get("VpcId") == facts.vpc_id:
                facts.vpc["internetGateway"] = str(item.value["InternetGatewayId"])
    if "internetGateway" not in facts.vpc:
        found = {
            r["target"]
            for routes in facts.vpc.get("routeTables", {}).values()
            for r in routes
            if r["target"].startswith("igw-")
        }
        if len(found) == 1 and not inputs.items("InternetGateways"):
            facts.vpc["internetGateway"] = next(iter(found))
            notes.add(
                "the internet gateway is the one the route tables name (attached, assumed: no "
                "describe-internet-gateways given)"
            )
    gateways: list[Json] = []
    for item in _in_vpc(facts, inputs.items("NatGateways")):
        value = item.value
        if value.get("State", "available") not in ("available", "pending"):
            continue
        addresses = value.get("NatGatewayAddresses") or []
        address = next(
            (a for a in addresses if a.get("IsPrimary")), addresses[0] if addresses else {}
        )
        gateway: Json = {
            "id": str(value["NatGatewayId"]),
            "subnet": facts.subnet_names.get(str(value["SubnetId"]), str(value["SubnetId"])),
            "privateIp": str(address.get("PrivateIp")),
        }
        if address.get("PublicIp"):
            gateway["publicIp"] = str(address["PublicIp"])
        gateway["connectivity"] = str(value.get("ConnectivityType", "public"))
        gateway["eni"] = str(address.get("NetworkInterfaceId"))
        eni = facts.enis.get(gateway["eni"])
        if eni is not None and eni.mac:
            gateway["mac"] = eni.mac
        gateways.append(gateway)
    if inputs.items("NatGateways"):
        facts.vpc["natGateways"] = gateways


def _managed_group(value: Json) -> bool:
    """A group a load balancer controller created (aws-load-balancers.md §1.7)."""
    tags = tags_of(value)
    description = str(value.get("Description", ""))
    return (
        description.startswith(MANAGED_GROUP_DESCRIPTIONS)
        or "elbv2.k8s.aws/cluster" in tags
        or str(value.get("GroupName", "")).startswith("k8s-elb-")
    )


def _security_groups(inputs: Inputs, facts: AwsFacts, notes: Notes) -> None:
    items = _in_vpc(facts, inputs.items("SecurityGroups"))
    if not items:
        return
    managed = {str(i.value["GroupId"]) for i in items if _managed_group(i.value)}
    facts.managed_groups |= managed
    known = {str(i.value["GroupId"]) for i in items}
    groups: dict[str, Json] = {}
    dropped = 0
    for item in items:
        value = item.value
        group_id = str(value["GroupId"])
        if group_id in managed:
            continue
        tags = tags_of(value)
        for key in tags:
            if key.startswith("kubernetes.io/cluster/"):
                facts.cluster_names.append(key.removeprefix("kubernetes.io/cluster/"))
        rules: dict[str, list[Json]] = {}
        for direction, key, peer in (
            ("inbound", "IpPermissions", "source"),
            ("outbound", "IpPermissionsEgress", "destination"),
        ):
            rules[direction] = []
            for permission in value.get(key) or []:
                for rule in _sg_rules(permission, peer, group_id, item.source, notes):
                    if str(rule.get("description", "")).startswith(MANAGED_RULE_DESCRIPTIONS) or (
                        rule[peer] in managed
                    ):
                        dropped += 1
                        continue
                    if rule[peer].startswith("sg-") and rule[peer] not in known:
                        raise InputError(
                            f"security group {group_id}: a rule names group {rule[peer]}, which "
                            "the security groups given do not include",
                            source=item.source,
                            fix="give `aws ec2 describe-security-groups` for the whole VPC",
                        )
                    rules[direction].append(rule)
        group: Json = {"description": str(value.get("Description", ""))}
        if tags:
            group["tags"] = tags
        group.update(rules)
        groups[group_id] = group
    facts.vpc["securityGroups"] = groups
    if managed or dropped:
        notes.add(
            "the load balancer controllers' security groups and the rules they added to the "
            "nodes' groups are left out: the controllers derive them from the Services and "
            "Ingresses"
        )


def _ports(protocol: str, low: Any, high: Any) -> str | None:
    if protocol in ("icmp", "icmpv6"):
        if low in (None, -1):
            return None
        return f"{low}" if high in (None, -1) else f"{low}:{high}"
    if protocol in ("tcp", "udp", "132") and low is not None and low != -1:
        return f"{low}" if high in (None, low) else f"{low}-{high}"
    return None


def _sg_rules(permission: Json, peer: str, group: str, source: str, notes: Notes) -> list[Json]:
    protocol = str(permission.get("IpProtocol", "-1"))
    protocol = PROTOCOL_NAMES.get(protocol, protocol)
    ports = _ports(protocol, permission.get("FromPort"), permission.get("ToPort"))
    peers: list[tuple[str, str]] = []
    peers += [
        (str(r["CidrIp"]), str(r.get("Description", ""))) for r in permission.get("IpRanges") or []
    ]
    peers += [
        (str(r["PrefixListId"]), str(r.get("Description", "")))
        for r in permission.get("PrefixListIds") or []
    ]
    peers += [
        (str(r["GroupId"]), str(r.get("Description", "")))
        for r in permission.get("UserIdGroupPairs") or []
    ]
    if permission.get("Ipv6Ranges"):
        notes.add(f"security group {group}: IPv6 rules left out (eksnet models IPv4)")
    rules = []
    for value, description in peers:
        rule: Json = {"protocol": protocol}
        if ports is not None:
            rule["ports"] = ports
        rule[peer] = value
        if description:
            rule["description"] = description
        rules.append(rule)
    return rules


def _network_acls(inputs: Inputs, facts: AwsFacts, notes: Notes) -> None:
    items = _in_vpc(facts, inputs.items("NetworkAcls"))
    if not items:
        return
    acls: dict[str, Json] = {}
    for item in items:
        value = item.value
        acl: Json = {
            "subnets": [
                facts.subnet_names.get(str(a["SubnetId"]), str(a["SubnetId"]))
                for a in value.get("Associations") or []
                if a.get("SubnetId")
            ],
            "default": bool(value.get("IsDefault", False)),
            "inbound": [],
            "outbound": [],
        }
        for entry in sorted(value.get("Entries") or [], key=lambda e: int(e["RuleNumber"])):
            if int(entry["RuleNumber"]) >= 32767 or not entry.get("CidrBlock"):
                continue  # the `*` rule is implicit; IPv6 entries are not modelled
            protocol = str(entry.get("Protocol", "-1"))
            protocol = PROTOCOL_NAMES.get(protocol, protocol)
            span = entry.get("PortRange") or {}
            icmp = entry.get("IcmpTypeCode") or {}
            if protocol in ("icmp", "icmpv6"):
                ports = _ports(protocol, icmp.get("Type"), icmp.get("Code"))
            else:
                ports = _ports(protocol, span.get("From"), span.get("To"))
            rule: Json = {
                "rule": int(entry["RuleNumber"]),
                "action": str(entry["RuleAction"]),
                "protocol": protocol,
            }
            if ports is not None:
                rule["ports"] = ports
            rule["cidr"] = str(entry["CidrBlock"])
            acl["outbound" if entry.get("Egress") else "inbound"].append(rule)
        acls[str(value["NetworkAclId"])] = acl
    facts.vpc["networkAcls"] = acls


def _prefix_lists(inputs: Inputs, facts: AwsFacts) -> None:
    used = {
        r["dst"]
        for routes in facts.vpc.get("routeTables", {}).values()
        for r in routes
        if r["dst"].startswith("pl-")
    }
    for group in facts.vpc.get("securityGroups", {}).values():
        for rule in [*group.get("inbound", []), *group.get("outbound", [])]:
            peer = rule.get("source") or rule.get("destination") or ""
            if peer.startswith("pl-"):
                used.add(peer)
    lists = {
        str(i.value["PrefixListId"]): [str(c) for c in i.value.get("Cidrs") or [] if ":" not in c]
        for i in inputs.items("PrefixLists")
    }
    missing = sorted(used - set(lists))
    if missing:
        raise InputError(
            f"prefix list {', '.join(missing)} is named by a route or security group rule and "
            "its CIDRs are not among the inputs",
            source=inputs.sources("RouteTables") if inputs.items("RouteTables") else None,
            fix="give `aws ec2 describe-prefix-lists` (AWS-managed lists) output",
        )
    if used:
        facts.vpc["prefixLists"] = {name: lists[name] for name in sorted(used)}


_ELB = re.compile(r"ELB (?:(net|app|gwy)/([^/]+)/[0-9a-f]+|([^/\s]+))")


def _load_balancers(inputs: Inputs, facts: AwsFacts, notes: Notes) -> None:
    arns: dict[str, str] = {}
    for item in inputs.items("LoadBalancers"):
        name = str(item.value.get("LoadBalancerName"))
        arns[str(item.value.get("LoadBalancerArn"))] = name
        if item.value.get("DNSName"):
            facts.lb_dns[name] = str(item.value["DNSName"])
        if item.value.get("SecurityGroups"):
            facts.lb_groups[name] = tuple(item.value["SecurityGroups"])
        _owner_from_tags(facts, name, tags_of(item.value))
    for item in inputs.items("LoadBalancerDescriptions"):
        name = str(item.value.get("LoadBalancerName"))
        if item.value.get("DNSName"):
            facts.lb_dns[name] = str(item.value["DNSName"])
        if item.value.get("SecurityGroups"):
            facts.lb_groups[name] = tuple(item.value["SecurityGroups"])
    for item in inputs.items("TagDescriptions"):
        arn = str(item.value.get("ResourceArn", ""))
        found = arns.get(arn) or item.value.get("LoadBalancerName")
        if found is None:
            match = re.search(r":loadbalancer/(?:net|app)/([^/]+)/", arn)
            found = match.group(1) if match else None
        if found is not None:
            _owner_from_tags(facts, str(found), tags_of(item.value))
    for eni in facts.enis.values():
        match = _ELB.fullmatch(eni.description)
        if match is None or eni.primary_ip is None:
            continue
        kind_code, name = match.group(1), match.group(2) or match.group(3)
        if kind_code == "gwy":
            notes.add(f"gateway load balancer {name} left out (not modelled)")
            continue
        kind = {"net": "nlb", "app": "alb", None: "clb"}[kind_code]
        zone = eni.zone or ""
        facts.lb_nodes.append(
            LbNode(
                name=str(name),
                kind=kind,
                zone=zone,
                private_ip=eni.primary_ip,
                public_ip=eni.public.get(eni.primary_ip),
                groups=eni.groups,
                source=eni.source,
            )
        )


def _owner_from_tags(facts: AwsFacts, name: str, tags: dict[str, str]) -> None:
    for key, kind in (
        ("service.k8s.aws/stack", "service"),
        ("kubernetes.io/service-name", "service"),
        ("ingress.k8s.aws/stack", "ingress"),
    ):
        value = tags.get(key)
        if value and "/" in value:
            facts.lb_owners[name] = f"{kind}/{value}"
            return


def node_eni_specs(facts: AwsFacts, instance_id: str) -> list[Json]:
    """The spec's `enis` of one instance: Linux names and ifindexes assumed (eth<N>, N+2)."""
    specs: list[Json] = []
    for position, eni in enumerate(facts.node_enis().get(instance_id, [])):
        spec: Json = {
            "linux": Assumed(f"eth{position}"),
            "ifindex": Assumed(position + 2),
            "id": eni.id,
            "device": eni.device_index if eni.device_index is not None else position,
            "mac": eni.mac,
            "primaryIp": eni.primary_ip,
            "secondaryIps": list(eni.secondary_ips),
            "prefixes": list(eni.prefixes),
            "securityGroups": [group for group, _ in eni.groups],
        }
        spec["subnet"] = facts.subnet_names.get(eni.subnet_id) or SubnetRef(
            eni.subnet_id, str(eni.primary_ip)
        )
        elastic = [
            {"privateIp": private, "publicIp": public}
            for private, public in eni.public.items()
            if not (position == 0 and private == eni.primary_ip)
        ]
        if elastic:
            spec["elasticIps"] = elastic
        specs.append(spec)
    return specs
