"""The one data-plane state: what every network namespace and the VPC hold.

The controllers produce it, the simulator evaluates it, the lab applies it to real namespaces and
the renderers print it. It speaks the kernel's language (tables by number, rules by priority in
insertion order, iptables as `iptables-save` text) so that an imported node dump drops straight in
and `eksnet exec` can print exactly what `ip` prints. Every type is small and frozen: a state is a
value, and the same model always gives the same state.

What is *not* stored: anything the kernel derives by itself from what is stored. The local table
(`local`/`broadcast` entries for every address) is computed by `kernel.fib.local_table`; the
connected routes of the main table *are* stored, because ipamd deletes some of them (a secondary
ENI's) and the state must say which survive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface
from typing import Any, Literal

from eksnet.dataplane.load_balancers import DnsRecord, LoadBalancer
from eksnet.dataplane.security import NetworkAcl, PrefixList, SecurityGroup

Scope = Literal["global", "link", "host"]
"""Route and address scopes, as `ip` names them (`universe` prints as `global`)."""

RouteType = Literal[
    "unicast", "local", "broadcast", "blackhole", "unreachable", "prohibit", "throw"
]
RuleAction = Literal["lookup", "goto", "nop", "blackhole", "unreachable", "prohibit"]
LinkKind = Literal["loopback", "veth", "device"]
"""`device` is a physical-looking interface: an ENI as the instance sees it (`eth0`, `eth1`)."""
NeighbourState = Literal["PERMANENT", "REACHABLE", "STALE", "NOARP"]
IptablesBackend = Literal["legacy", "nft"]
NamespaceKind = Literal["node", "pod"]

TABLE_LOCAL = 255
TABLE_MAIN = 254
TABLE_DEFAULT = 253
TABLE_NAMES: Mapping[int, str] = {
    TABLE_LOCAL: "local",
    TABLE_MAIN: "main",
    TABLE_DEFAULT: "default",
}
"""The names iproute2 prints for the reserved table ids (`/etc/iproute2/rt_tables`)."""


@dataclass(frozen=True, slots=True)
class LinkPeer:
    """The other end of a veth pair, as the kernel reports it from this end.

    `netns` is the peer namespace's name when the viewing namespace can name it (`ip` prints
    `link-netns NAME`); otherwise `netnsid` is printed (`link-netnsid N`), which is what a pod
    sees: it cannot name the node's root namespace.
    """

    ifindex: int
    name: str
    netns: str | None = None
    netnsid: int | None = None

    def __post_init__(self) -> None:
        if (self.netns is None) == (self.netnsid is None):
            raise ValueError(f"peer {self.name}: give exactly one of netns and netnsid")


@dataclass(frozen=True, slots=True)
class Link:
    """One network interface of a namespace (`ip link`)."""

    ifindex: int
    name: str
    kind: LinkKind
    mac: str
    mtu: int
    qdisc: str = "noqueue"
    up: bool = True
    peer: LinkPeer | None = None
    qlen: int | None = None
    ipv6_addrgen: bool = True
    """False where the IPv6 link-local is pinned (the lab sets `addrgenmode none` and adds it)."""

    def __post_init__(self) -> None:
        if self.kind == "veth" and self.peer is None:
            raise ValueError(f"veth {self.name} needs a peer")
        if self.kind != "veth" and self.peer is not None:
            raise ValueError(f"only a veth has a peer, not {self.kind} {self.name}")


@dataclass(frozen=True, slots=True)
class Address:
    """One address on a link (`ip addr`)."""

    dev: str
    interface: IPv4Interface | IPv6Interface
    scope: Scope = "global"
    broadcast: IPv4Address | None = None
    secondary: bool = False

    @property
    def family(self) -> Literal[4, 6]:
        return 4 if isinstance(self.interface, IPv4Interface) else 6


@dataclass(frozen=True, slots=True)
class Route:
    """One route in one table (`ip route show table N`).

    `proto` is what `ip` prints after `proto`; `boot` (the default for `ip route add`) is not
    printed by `ip route show` and so is the default here.
    """

    table: int
    dst: IPv4Network
    type: RouteType = "unicast"
    gateway: IPv4Address | None = None
    dev: str | None = None
    proto: str = "boot"
    scope: Scope = "global"
    src: IPv4Address | None = None
    metric: int | None = None

    def __post_init__(self) -> None:
        if self.type == "unicast" and self.dev is None:
            raise ValueError(f"unicast route {self.dst} needs a device")
        if self.gateway is not None and self.scope != "global":
            raise ValueError(f"route {self.dst} via {self.gateway} must have scope global")


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy-routing rule (`ip rule`). Rules with equal priority keep insertion order."""

    priority: int
    action: RuleAction = "lookup"
    table: int | None = None
    src: IPv4Network | None = None
    dst: IPv4Network | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    iif: str | None = None
    oif: str | None = None
    goto: int | None = None
    invert: bool = False

    def __post_init__(self) -> None:
        if self.action == "lookup" and self.table is None:
            raise ValueError(f"rule {self.priority}: lookup needs a table")
        if self.action == "goto" and (self.goto is None or self.goto <= self.priority):
            raise ValueError(f"rule {self.priority}: goto must name a later priority")
        if self.fwmask is not None and self.fwmark is None:
            raise ValueError(f"rule {self.priority}: a fwmark mask needs a fwmark")


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(0, table=TABLE_LOCAL),
    Rule(32766, table=TABLE_MAIN),
    Rule(32767, table=TABLE_DEFAULT),
)
"""The three rules every new namespace starts with (linux-dataplane.md §2.2)."""


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One neighbour (ARP) entry (`ip neigh`)."""

    dst: IPv4Address
    dev: str
    lladdr: str
    state: NeighbourState = "PERMANENT"


@dataclass(frozen=True, slots=True)
class Iptables:
    """A namespace's netfilter rules as the text `iptables-restore` accepts and `iptables-save`
    prints (without the `#` header and footer lines, which carry a date)."""

    backend: IptablesBackend
    save: str
    nfacct: tuple[str, ...] = ()
    """The nfacct (extended accounting) objects of the namespace, which `-m nfacct` rules name:
    the kernel refuses such a rule unless its object exists, so they are created before the
    rules are restored (kube-proxy creates its counters only where the kernel lets it)."""


@dataclass(frozen=True, slots=True)
class Namespace:
    """Everything one network namespace holds.

    `name` is the namespace's name as the cluster knows it: the node's name for a node's root
    namespace, the CNI's `cni-…` name for a pod. `sysctls` maps full keys
    (`net.ipv4.conf.eth0.rp_filter`) to values, in the order they are written: `all` and
    `default` before any device, so devices created afterwards inherit `default`.
    """

    name: str
    kind: NamespaceKind
    owner: str
    links: tuple[Link, ...]
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = DEFAULT_RULES
    neighbours: tuple[Neighbour, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    iptables: Iptables | None = None

    def __post_init__(self) -> None:
        names = [link.name for link in self.links]
        if len(set(names)) != len(names):
            raise ValueError(f"namespace {self.name}: duplicate link names")
        indexes = [link.ifindex for link in self.links]
        if len(set(indexes)) != len(indexes):
            raise ValueError(f"namespace {self.name}: duplicate ifindexes")
        known = set(names)
        devices = [a.dev for a in self.addresses] + [n.dev for n in self.neighbours]
        for dev in devices:
            if dev not in known:
                raise ValueError(f"namespace {self.name}: unknown device {dev}")
        for route in self.routes:
            if route.dev is not None and route.dev not in known:
                raise ValueError(f"namespace {self.name}: route {route.dst} on unknown {route.dev}")

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(name)

    def link_by_index(self, ifindex: int) -> Link:
        for link in self.links:
            if link.ifindex == ifindex:
                return link
        raise KeyError(ifindex)

    def addresses_of(self, dev: str) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.dev == dev)

    def sysctl(self, key: str) -> str | None:
        """The last value written for `key`, or None when the state never writes it."""
        value = None
        for name, written in self.sysctls:
            if name == key:
                value = written
        return value

    def sorted_rules(self) -> tuple[Rule, ...]:
        """Rules in the kernel's order: by priority, insertion order among equals."""
        return tuple(sorted(self.rules, key=lambda rule: rule.priority))


@dataclass(frozen=True, slots=True)
class Subnet:
    """A VPC subnet; its router (base+1) answers ARP with `router_mac`."""

    name: str
    cidr: IPv4Network
    az: str
    router_mac: str
    route_table: str
    az_id: str | None = None
    """The zone's id (`euw2-az2`), the same zone under every account's name for it; flow logs'
    `az-id` field."""

    @property
    def gateway(self) -> IPv4Address:
        return self.cidr.network_address + 1


@dataclass(frozen=True, slots=True)
class Eni:
    """An elastic network interface and the addresses it owns in the VPC."""

    id: str
    subnet: str
    mac: str
    primary_ip: IPv4Address
    secondary_ips: tuple[IPv4Address, ...] = ()
    prefixes: tuple[IPv4Network, ...] = ()
    security_groups: tuple[str, ...] = ()
    source_dest_check: bool = True
    node: str | None = None
    """The node (namespace name) the ENI is attached to, if any."""
    device: str | None = None
    """The Linux interface name of the ENI inside that node (`eth0`)."""
    device_number: int = 0
    """The EC2 device number (0 = the instance's primary ENI); ipamd's table is this + 1."""
    interface_type: Literal["interface", "nat_gateway", "load_balancer"] = "interface"
    """`nat_gateway`: the requester-managed ENI of a NAT gateway (no groups, no instance);
    `load_balancer`: a load balancer node's (its description `ELB net/…`, `ELB app/…`)."""
    instance_id: str | None = None
    """The instance it is attached to (flow logs' `instance-id`); None for a NAT gateway's."""

    def owns(self, address: IPv4Address) -> bool:
        if address == self.primary_ip or address in self.secondary_ips:
            return True
        return any(address in prefix for prefix in self.prefixes)

    def addresses(self) -> Iterator[IPv4Address]:
        yield self.primary_ip
        yield from self.secondary_ips
        for prefix in self.prefixes:
            yield from prefix


RouteState = Literal["active", "blackhole"]
"""A VPC route's `State`: `blackhole` once its target is gone (a deleted NAT gateway, a
detached internet gateway); traffic that selects it is dropped."""
RouteOrigin = Literal["CreateRouteTable", "CreateRoute", "EnableVgwRoutePropagation"]
"""A VPC route's `Origin`: the local route every table is created with, a static route, or one a
virtual private gateway propagates (vpc-fabric.md §1.4)."""
LOCAL_TARGET = "local"
"""The target of a VPC's local route (`GatewayId: local`)."""


@dataclass(frozen=True, slots=True)
class VpcRoute:
    """One route of a VPC route table, in `DescribeRouteTables`' words.

    `target` is `local` or the id of what the route sends to (`igw-…`, `nat-…`, `eni-…`, or any
    other gateway id AWS allows: `vgw-`, `tgw-`, `pcx-`, `vpce-` …); which of them the simulator
    follows is the VPC semantics' business (`vpc/routes.py`), not the state's.
    """

    destination: IPv4Network
    target: str
    state: RouteState = "active"
    origin: RouteOrigin = "CreateRoute"
    prefix_list: str | None = None
    """A route to a prefix list (`DestinationPrefixListId`) is held as one route per CIDR of
    the list, each naming it: it matches through any of them, with that CIDR's length, and
    loses to a CIDR route of equal length (vpc-fabric.md §1.4)."""

    def __post_init__(self) -> None:
        if (self.target == LOCAL_TARGET) != (self.origin == "CreateRouteTable"):
            raise ValueError(
                f"route {self.destination} → {self.target}: the local route, and only it, has "
                "origin CreateRouteTable"
            )


@dataclass(frozen=True, slots=True)
class RouteTable:
    """A VPC route table (`rtb-…`), by the name subnets use for it."""

    id: str
    routes: tuple[VpcRoute, ...]

    def __post_init__(self) -> None:
        seen: set[tuple[IPv4Network, bool, str | None]] = set()
        for route in self.routes:
            # A propagated route may share its destination with a static one (the static one
            # wins); two of one kind may not (AWS refuses the second).
            key = (
                route.destination,
                route.origin == "EnableVgwRoutePropagation",
                route.prefix_list,
            )
            if key in seen:
                raise ValueError(f"route table {self.id}: two routes to {route.destination}")
            seen.add(key)


@dataclass(frozen=True, slots=True)
class PublicIp:
    """A public IPv4 address associated with one private address of one ENI: what the
    internet gateway translates 1:1 (vpc-fabric.md §4). A node's auto-assigned public IP is on
    the primary private IP of its primary ENI."""

    private_ip: IPv4Address
    public_ip: IPv4Address
    eni: str


@dataclass(frozen=True, slots=True)
class NatGateway:
    """A NAT gateway (vpc-fabric.md §5): it SNATs what its ENI receives to its private IP (a
    public one's internet gateway then maps that to the EIP), ports from 1024 up."""

    id: str
    subnet: str
    eni: str
    """Its ENI's id: the ENI owns `private_ip`, has no groups and no source/destination check."""
    private_ip: IPv4Address
    public_ip: IPv4Address | None
    """The EIP of a public NAT gateway; None for a private one."""
    connectivity: Literal["public", "private"] = "public"


ImdsTokens = Literal["required", "optional"]


@dataclass(frozen=True, slots=True)
class Instance:
    """An EC2 instance behind a node: what the instance's host answers for it itself."""

    node: str
    """The node (namespace name)."""
    id: str | None
    http_tokens: ImdsTokens = "required"
    """`HttpTokens`: `required` is IMDSv2 only."""
    hop_limit: int = 1
    """`HttpPutResponseHopLimit`: the IP TTL of IMDSv2 token responses (1–64)."""


@dataclass(frozen=True, slots=True)
class ExternalHost:
    """A host on the internet the cluster talks to (the spec's `externalHosts`): the source
    port it connects from and the port it serves, where the spec pins them."""

    name: str
    address: IPv4Address
    source_port: int | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class VpcState:
    """The VPC fabric: CIDRs, subnets, the ENIs that own addresses, route tables, the internet
    gateway and the public IPv4 addresses it translates.

    Every route table holds a local route per VPC CIDR (AWS creates it with the table and never
    deletes it); a table a subnet names but `route_tables` does not list is such a table with
    nothing else in it (`route_table`), as a state built without route tables means."""

    id: str
    cidrs: tuple[IPv4Network, ...]
    subnets: tuple[Subnet, ...]
    enis: tuple[Eni, ...]
    route_tables: tuple[RouteTable, ...] = ()
    internet_gateway: str | None = None
    """The id of the internet gateway attached to the VPC, if one is."""
    public_ips: tuple[PublicIp, ...] = ()
    security_groups: tuple[SecurityGroup, ...] = ()
    network_acls: tuple[NetworkAcl, ...] = ()
    """Every subnet is guarded by exactly one (`network_acl`)."""
    prefix_lists: tuple[PrefixList, ...] = ()
    nat_gateways: tuple[NatGateway, ...] = ()
    instances: tuple[Instance, ...] = ()
    account_id: str = "111122223333"
    region: str = "us-east-1"
    flow_log_format: str | None = None
    """The flow log's `LogFormat` (`${version} ${account-id} …`); None: AWS's default format."""
    load_balancers: tuple[LoadBalancer, ...] = ()
    """What the load balancer controllers built (`controllers/load_balancers.py`)."""
    unbuilt_load_balancers: tuple[tuple[str, str], ...] = ()
    """(owner, why) for each LoadBalancer Service or Ingress no controller builds for."""
    _index: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    """Lookups built on first use (a value never changes, so neither do they): ENIs by id and
    by owned address, each group's member addresses."""

    def __post_init__(self) -> None:
        names = [table.id for table in self.route_tables]
        if len(set(names)) != len(names):
            raise ValueError(f"VPC {self.id}: duplicate route table ids")
        for table in self.route_tables:
            for route in table.routes:
                nat = route.target.startswith("nat-")
                known = {gateway.id for gateway in self.nat_gateways}
                if nat and route.state == "active" and route.target not in known:
                    raise ValueError(
                        f"route table {table.id}: {route.destination} → {route.target}, which is "
                        "no NAT gateway of the VPC (a route to a deleted one is a blackhole)"
                    )
                gateway = route.target.startswith("igw-")
                if gateway and route.state == "active" and route.target != self.internet_gateway:
                    raise ValueError(
                        f"route table {table.id}: {route.destination} → {route.target}, but the "
                        f"VPC's internet gateway is {self.internet_gateway or 'none'} (a route to "
                        "a gateway that is gone is a blackhole)"
                    )
        privates = [item.private_ip for item in self.public_ips]
        publics = [item.public_ip for item in self.public_ips]
        if len(set(privates)) != len(privates) or len(set(publics)) != len(publics):
            raise ValueError(f"VPC {self.id}: a public IPv4 mapping is not one to one")

    def subnet(self, name: str) -> Subnet:
        for subnet in self.subnets:
            if subnet.name == name:
                return subnet
        raise KeyError(name)

    def subnet_of(self, address: IPv4Address) -> Subnet | None:
        for subnet in self.subnets:
            if address in subnet.cidr:
                return subnet
        return None

    def route_table(self, name: str) -> RouteTable:
        """The route table `name`; one the state does not list holds only the local routes."""
        for table in self.route_tables:
            if table.id == name:
                return table
        local = tuple(
            VpcRoute(cidr, LOCAL_TARGET, origin="CreateRouteTable") for cidr in self.cidrs
        )
        return RouteTable(name, local)

    def security_group(self, group_id: str) -> SecurityGroup:
        by_id: dict[str, SecurityGroup] | None = self._index.get("group")
        if by_id is None:
            by_id = self._index["group"] = {group.id: group for group in self.security_groups}
        return by_id[group_id]

    def prefix_list(self, list_id: str) -> PrefixList:
        for item in self.prefix_lists:
            if item.id == list_id:
                return item
        raise KeyError(list_id)

    def network_acl(self, subnet: str) -> NetworkAcl | None:
        """The NACL guarding `subnet`: the one associated with it, else the VPC's default one;
        None in a state that declares no NACL at all (a built state always has the default)."""
        default = None
        for acl in self.network_acls:
            if subnet in acl.subnets:
                return acl
            if acl.default:
                default = acl
        return default

    def nat_gateway(self, gateway_id: str) -> NatGateway | None:
        for gateway in self.nat_gateways:
            if gateway.id == gateway_id:
                return gateway
        return None

    def instance(self, node: str) -> Instance | None:
        for instance in self.instances:
            if instance.node == node:
                return instance
        return None

    def eni(self, eni_id: str) -> Eni:
        by_id: dict[str, Eni] | None = self._index.get("eni")
        if by_id is None:
            by_id = self._index["eni"] = {eni.id: eni for eni in self.enis}
        return by_id[eni_id]

    def owner_of(self, address: IPv4Address) -> Eni | None:
        """The ENI that owns `address` (primary, secondary or a delegated prefix's), if any."""
        owners: dict[IPv4Address, Eni] | None = self._index.get("owner")
        if owners is None:
            owners = {}
            for eni in reversed(self.enis):  # the first ENI wins, as a linear scan would
                for owned in (eni.primary_ip, *eni.secondary_ips):
                    owners[owned] = eni
            self._index["owner"] = owners
        found = owners.get(address)
        if found is not None:
            return found
        return next((eni for eni in self.enis if eni.prefixes and eni.owns(address)), None)

    def group_members(
        self, group_id: str
    ) -> tuple[frozenset[IPv4Address], tuple[IPv4Network, ...]]:
        """The private addresses of every ENI carrying the group (vpc-fabric.md §2.1): single
        addresses, and delegated prefixes."""
        members: dict[str, tuple[frozenset[IPv4Address], tuple[IPv4Network, ...]]] | None = (
            self._index.get("members")
        )
        if members is None:
            singles: dict[str, set[IPv4Address]] = {}
            prefixes: dict[str, list[IPv4Network]] = {}
            for eni in self.enis:
                for group in eni.security_groups:
                    singles.setdefault(group, set()).update((eni.primary_ip, *eni.secondary_ips))
                    prefixes.setdefault(group, []).extend(eni.prefixes)
            members = {
                group: (frozenset(addresses), tuple(prefixes[group]))
                for group, addresses in singles.items()
            }
            self._index["members"] = members
        return members.get(group_id, (frozenset(), ()))

    def public_ip_of(self, private_ip: IPv4Address) -> PublicIp | None:
        """The public IPv4 associated with a private address, if any."""
        for item in self.public_ips:
            if item.private_ip == private_ip:
                return item
        return None

    def load_balancer(self, owner: str) -> LoadBalancer | None:
        """The load balancer built for `service/NS/NAME` or `ingress/NS/NAME`."""
        return next((lb for lb in self.load_balancers if lb.owner == owner), None)

    def load_balancer_of(self, eni_id: str) -> LoadBalancer | None:
        """The load balancer one of whose nodes `eni_id` is."""
        return next((lb for lb in self.load_balancers if lb.node_of(eni_id) is not None), None)

    def private_ip_of(self, public_ip: IPv4Address) -> PublicIp | None:
        """The association of a public IPv4 address of this VPC, if it is one."""
        for item in self.public_ips:
            if item.public_ip == public_ip:
                return item
        return None


ServiceProtocol = Literal["tcp", "udp", "sctp"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a Service as kube-proxy reads it: `name` is the port's name ("" when
    unnamed), `node_port` None when the Service has none."""

    name: str
    protocol: ServiceProtocol
    port: int
    target_port: int | str
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """A Service as far as the data plane names it: what `svc/NS/NAME` means to a walk (its
    ClusterIP and ports). kube-proxy's rules for it are in each node's iptables state."""

    namespace: str
    name: str
    type: ServiceType
    cluster_ip: IPv4Address | None
    ports: tuple[ServicePort, ...]
    external_ips: tuple[IPv4Address, ...] = ()
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    """None where the Service has no external address (a plain ClusterIP one)."""
    internal_traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    health_check_node_port: int | None = None
    affinity_timeout: int | None = None
    """`sessionAffinity: ClientIP`'s timeout in seconds; None without affinity."""
    load_balancer_ips: tuple[IPv4Address, ...] = ()
    """The `status.loadBalancer.ingress[].ip`s (AWS load balancers have hostnames only)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Observed:
    """Which parts of a namespace a dump supplied (each with the file it was read from) and
    what the dump could not show; every other fact of the namespace is derived by the
    controllers."""

    namespace: str
    dump: str
    parts: tuple[tuple[str, str], ...]
    """(part, file inside the dump): `rules`, `routes`, `neighbours`, `sysctls`, `iptables`."""
    assumed: tuple[str, ...] = ()
    addresses: tuple[tuple[str, str], ...] | None = None
    """The node's global IPv4 addresses as the dump's link view shows them, (device, CIDR);
    None without one. Links stay derived, so these are compared (`eksnet check`), not laid."""
    first_address_only: bool = False
    """The link view shows only each device's first address (`ifconfig`)."""


@dataclass(frozen=True, slots=True)
class DataplaneState:
    """The whole cluster's data plane: one `Namespace` per node and pod, plus the VPC and the
    external hosts beyond it."""

    namespaces: tuple[Namespace, ...]
    vpc: VpcState
    external_hosts: tuple[ExternalHost, ...] = ()
    """The internet as far as the cluster knows it: the hosts a walk may reach through the
    internet gateway (and that the lab puts in its internet namespace)."""
    services: tuple[Service, ...] = ()
    """The cluster's Services (kube-proxy's controller fills it), for `svc/NS/NAME` targets."""
    dns: tuple[DnsRecord, ...] = ()
    """Names clients resolve (`dns/NAME`)."""
    observed: tuple[Observed, ...] = ()
    """The namespaces whose facts come (in part) from dumps taken on the node, and which."""
    _by_name: dict[str, Namespace] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for namespace in self.namespaces:
            if namespace.name in self._by_name:
                raise ValueError(f"duplicate namespace {namespace.name}")
            self._by_name[namespace.name] = namespace
        for what in ("name", "address"):
            values = [getattr(host, what) for host in self.external_hosts]
            if len(set(values)) != len(values):
                raise ValueError(f"two external hosts with the same {what}")

    def external_host(self, address: IPv4Address) -> ExternalHost | None:
        """The external host at `address`, if the state declares one."""
        for host in self.external_hosts:
            if host.address == address:
                return host
        return None

    def namespace(self, name: str) -> Namespace:
        return self._by_name[name]

    def nodes(self) -> tuple[Namespace, ...]:
        return tuple(ns for ns in self.namespaces if ns.kind == "node")

    def pods(self) -> tuple[Namespace, ...]:
        return tuple(ns for ns in self.namespaces if ns.kind == "pod")

    def namespace_of_owner(self, owner: str) -> Namespace:
        """The namespace of a node (`owner` = node name) or a pod (`owner` = `ns/name`)."""
        for namespace in self.namespaces:
            if namespace.owner == owner:
                return namespace
        raise KeyError(owner)
