"""The VPC fabric of the lab, planned from the state's `VpcState` (pure: no I/O here).

What the VPC does between ENIs (vpc-fabric.md §1), and how the lab makes the kernel do it so that
`tcpdump -n -e` inside a node namespace sees exactly what it would see on an instance:

* **One namespace, one bridge.** The fabric is the namespace `<prefix>vpc` holding one Linux
  bridge `vpc0`. Every ENI attached to a node is a veth pair: the node's end is the ENI's device
  (`eth0`, `eth1`, with the ENI's MAC, MTU and ifindex from the state), the other end `xN` is a
  port of `vpc0`. Ports do not learn and never flood (unicast, multicast, broadcast all off); the
  bridge's forwarding table holds one static entry per ENI MAC. So a frame reaches an ENI only if
  it is addressed to that ENI's MAC, as in the VPC, where nothing is ever broadcast.
* **ARP is answered by the fabric, not by the target** (§1.7). The ports have the bridge's
  `proxy_arp` flag, and `vpc0` holds a permanent neighbour entry for every ENI-owned address
  (primary, secondary, every address of a delegated prefix) with the owning ENI's MAC, and one
  for every subnet gateway (base+1) with that subnet's router MAC from the state. The bridge
  answers a request from those entries with the owner's MAC as sender, on the requesting port
  only; the target node never sees the request (node 2 does not own pod 81's address on any
  interface, yet node 1 learns `192.168.1.81 → eth1's MAC of node 2`, as on EC2).
* **Same-subnet delivery is layer 2.** A frame sent to an ENI MAC is bridged unchanged: the
  receiver sees the sender ENI's MAC as source and its own as destination, TTL unchanged.
* **Routed delivery follows the subnet's route table and rewrites the MACs, not the TTL.** A
  frame sent to a router MAC is looked up, in the bridge's prerouting hook (nftables, bridge
  family), in the route table of the sending port's subnet: the state's table compiled by
  `vpc.routes.intervals` (the simulator's own selection) into disjoint address ranges per port,
  a verdict map `route_table`. The local route jumps to `vpc_local`: destination MAC := the MAC
  of the ENI that owns the destination address, source MAC := the router MAC of that address's
  subnet, and the bridge forwards it to the owner's port. No route, a blackhole route and a
  target the lab does not build (NAT gateway, ENI, other gateways) each drop with a counter of
  their own. The VPC router does not decrement the TTL (§1.8), and neither does a bridge, which
  is why the lab does not route through an IP stack here.
* **The internet gateway is nftables too, the internet a namespace.** With an internet gateway
  in the state, `<prefix>internet` holds every external host's address on `eth0`, a veth whose
  other end is the bridge port `igw0`. A route to the gateway jumps to `to_internet`: source
  address := its public IPv4 (the state's 1:1 mapping; none: dropped and counted), MACs :=
  gateway → internet, out `igw0`. From `igw0`, `from_internet` maps the destination public IPv4
  back to the private one and delivers it like the router does (router MAC of the owner's subnet
  → the owner ENI's MAC); a public IPv4 nobody has is dropped and counted. The payload rewrite
  keeps the packets valid: nftables' `ip saddr set`/`ip daddr set` updates the IP header
  checksum and the TCP/UDP pseudo-header checksum in the bridge family as well (measured on
  kernel 6.18: TCP and UDP with checksum offload off read `correct` in tcpdump on both sides,
  `TcpInCsumErrors` stays 0; with offload on, the partial checksum equals the new pseudo-header
  sum). The internet namespace reaches the gateway as a VPC CNI pod reaches its node: a
  default route via a link-local next hop (`169.254.0.1`) whose MAC is a permanent neighbour
  entry, so it never ARPs and everything it sends reaches the gateway. Its link has the MTU of
  the internet side of a gateway, 1500 (EC2 network MTU): TCP's MSS keeps segments within it,
  larger datagrams the bridge drops silently where AWS would fragment or answer ICMP.
* **Source/destination check** (§1.6): an IPv4 frame entering the fabric from port `xN` must have
  a source address owned by that port's ENI, and a frame leaving through `xN` a destination owned
  by it, else it is dropped; ENIs with `source_dest_check` off skip both.
* Everything that is not IPv4 or ARP (IPv6 router solicitations, MLD, DAD) is dropped, and the
  fabric namespace has IPv6 disabled, so captures in the nodes see only what the VPC would pass.

The bridge has no IP address: the fabric never originates IP packets (no ICMP redirects, no
unreachables, no conntrack), and a Linux bridge keeps at most 1024 ports, so a lab holds at most
1024 attached ENIs (1023 with an internet gateway, whose port is one of them).

Every drop rule carries a `comment` saying what it models; `lab verify` reads their counters to
prove a walk's drop (see `DROP_COMMENTS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from eksnet.dataplane.state import (
    DataplaneState,
    Eni,
    Subnet,
    VpcRoute,
    VpcState,
)
from eksnet.errors import NotModelled
from eksnet.lab import filters
from eksnet.vpc.fabric import IMDS
from eksnet.vpc.routes import intervals, target_kind

BRIDGE = "vpc0"
MAX_PORTS = 1024
PORT_IFINDEX_BASE = 10000
"""Port `xN` is ifindex 10000+N in the fabric, never the ifindex of its ENI's end in the node: a
veth whose peer has the same ifindex as itself looks like a physical device to linkwatch
(`linkwatch_urgent_event`), whose carrier events then wait out its rate limit (up to a second)
instead of running at once. `netlink._link_sync` orders them anyway; this keeps them prompt."""
NFT_TABLE = "eksnet_vpc"

INTERNET_PORT = "igw0"
"""The bridge port the internet namespace is wired to."""
INTERNET_PORT_IFINDEX = PORT_IFINDEX_BASE - 1
INTERNET_DEVICE = "eth0"
INTERNET_DEVICE_IFINDEX = 2
INTERNET_MTU = 1500
"""The MTU on the internet side of an internet gateway (vpc-fabric.md §1.8)."""
GATEWAY_MAC = "02:00:00:00:00:fe"
"""The internet gateway's MAC as the internet namespace sees it (the lab's choice: AWS shows
none); a MAC the ENI scheme cannot produce (it would be the ENI of 0.0.0.254)."""
INTERNET_MAC = "02:00:00:00:00:fd"
"""The internet namespace's `eth0`."""
IMDS_PORT = "imds0"
"""The bridge port the IMDS namespace is wired to (`lab/attachments.py`)."""
IMDS_PORT_IFINDEX = PORT_IFINDEX_BASE - 2
IMDS_MAC = "02:00:00:00:00:fc"
"""The IMDS namespace's `eth0` (the fabric delivers to it by this MAC; nodes see the router's)."""
IMDS_NEXT_HOP_MAC = "02:00:00:00:00:fb"
"""What the IMDS namespace's default route resolves to: the fabric routes its answers by
destination whatever MAC they carry."""
NAT_GATEWAY_MTU = 9001
"""The MTU of a NAT gateway's ENI in the lab: the VPC's between ENIs (vpc-fabric.md §1.8)."""
NLB_MTU = 9001
"""The MTU of an NLB node's ENI in the lab: the VPC's between ENIs (vpc-fabric.md §1.8)."""
NLB_PREFIX = "elb-"


def nlb_place(name: str, az: str) -> str:
    """What the lab calls an NLB node's namespace (`lab/attachments.py`)."""
    return f"{NLB_PREFIX}{name}-{az}"


def steer_set(port: str) -> str:
    """The fabric's set of flows an NLB node forwarded with the client's address kept, whose
    replies the fabric hands back to it (`steering`)."""
    return f"steer_{port}"


HOST_MARK = 0xFFFF
"""The mark of a frame to or from a host-served address: no NACL, security group or
destination check applies to it (vpc-fabric.md §8.4)."""

DROP_COMMENTS: Mapping[str, str] = {
    **filters.FILTER_DROPS,
    "vpc-source-check": "source/destination check, egress",
    "vpc-destination-check": "source/destination check, ingress",
    "vpc-no-owner": "no ENI owns the destination",
    "vpc-no-route": "no route in the subnet's route table",
    "vpc-blackhole": "blackhole route",
    "igw-no-public-ip": "internet gateway: the source has no public IPv4 address",
    "igw-unknown-public-ip": "internet gateway: no ENI has the destination public IPv4 address",
}
"""The `comment` of the fabric's nft rule that counts each drop code of a walk (`DROP_CODES`)."""
UNMODELLED_TARGET = "route target the lab does not build (an ENI, other gateways)"
INTERNET_ONLY_FROM_GATEWAY = "only the internet gateway sends to the internet"


@dataclass(frozen=True, slots=True)
class FabricPort:
    """One attached ENI: its device in the node (`node`, `device`) and its bridge port."""

    eni: Eni
    node: str
    device: str
    port: str
    mtu: int
    ifindex: int


@dataclass(frozen=True, slots=True)
class FabricPlan:
    netns: str
    ports: tuple[FabricPort, ...]
    sysctls: tuple[tuple[str, str], ...]
    ip_batch: tuple[str, ...]
    bridge_batch: tuple[str, ...]
    nft: str
    internet: bool = False
    """Whether the bridge has the internet gateway's port `INTERNET_PORT` (the state has an
    internet gateway, and the lab an internet namespace)."""
    imds: bool = False
    """Whether the bridge has the IMDS's port `IMDS_PORT` (an instance is wired to it)."""


def attached_ports(state: DataplaneState) -> tuple[FabricPort, ...]:
    """Every ENI wired to the bridge, in state order: those attached to a node namespace as a
    `device` link, then each NAT gateway's (its `node` is the gateway's id, its device the
    `eth0` of the gateway's namespace, `lab/attachments.py`)."""
    ports: list[FabricPort] = []
    by_device = {(eni.node, eni.device): eni for eni in state.vpc.enis if eni.node and eni.device}

    def add(eni: Eni, node: str, device: str, mtu: int) -> None:
        number = len(ports)
        ports.append(FabricPort(eni, node, device, f"x{number}", mtu, PORT_IFINDEX_BASE + number))

    for namespace in state.nodes():
        for link in namespace.links:
            eni = by_device.get((namespace.name, link.name))
            if link.kind == "device" and eni is not None:
                add(eni, namespace.name, link.name, link.mtu)
    for gateway in state.vpc.nat_gateways:
        add(state.vpc.eni(gateway.eni), gateway.id, "eth0", NAT_GATEWAY_MTU)
    for balancer in state.vpc.load_balancers:
        for node in balancer.nodes:
            add(state.vpc.eni(node.eni), nlb_place(balancer.name, node.az), "eth0", NLB_MTU)
    limit = MAX_PORTS - (state.vpc.internet_gateway is not None) - 1
    if len(ports) > limit:
        raise NotModelled(f"a lab fabric with more than {limit} attached ENIs ({len(ports)})")
    return tuple(ports)


def instance_ports(state: DataplaneState, ports: tuple[FabricPort, ...]) -> tuple[FabricPort, ...]:
    """The ports of ENIs attached to an instance (a node): those that reach the IMDS."""
    nodes = {instance.node for instance in state.vpc.instances}
    return tuple(port for port in ports if port.node in nodes)


def owned_networks(eni: Eni) -> tuple[IPv4Network, ...]:
    """The ENI's addresses as networks (host /32s and delegated prefixes), for nftables sets."""
    hosts = (eni.primary_ip, *eni.secondary_ips)
    return (*(IPv4Network(f"{a}/32") for a in hosts), *eni.prefixes)


def plan_fabric(state: DataplaneState, netns: str) -> FabricPlan:
    ports = attached_ports(state)
    subnets = state.vpc.subnets
    internet = state.vpc.internet_gateway is not None
    asking = instance_ports(state, ports)
    return FabricPlan(
        netns=netns,
        ports=ports,
        sysctls=FABRIC_SYSCTLS,
        ip_batch=_ip_batch(ports, subnets, internet, asking),
        bridge_batch=_bridge_batch(ports, subnets, internet, bool(asking)),
        nft=_nft(state.vpc, ports, internet, asking),
        internet=internet,
        imds=bool(asking),
    )


FABRIC_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.bridge.bridge-nf-call-iptables", "0"),
    ("net.bridge.bridge-nf-call-ip6tables", "0"),
    ("net.bridge.bridge-nf-call-arptables", "0"),
)
"""IPv6 off (nothing but IPv4 and ARP crosses the VPC here); bridged frames must not enter the
fabric's own IP hooks (br_netfilter), which would add conntrack and defragmentation."""


def _bridge_mac(subnets: tuple[Subnet, ...]) -> str:
    return subnets[0].router_mac if subnets else "02:00:00:00:00:01"


_QUIET_PORT = "learning off flood off mcast_flood off bcast_flood off"


def _ip_batch(
    ports: tuple[FabricPort, ...],
    subnets: tuple[Subnet, ...],
    internet: bool,
    asking: tuple[FabricPort, ...],
) -> tuple[str, ...]:
    mtu = max((p.mtu for p in ports), default=1500)
    lines = [
        "link set dev lo up",
        f"link add {BRIDGE} address {_bridge_mac(subnets)} mtu {mtu} type bridge",
    ]
    hairpin = {port.port for port in asking}
    for port in ports:
        lines.append(f"link set dev {port.port} master {BRIDGE}")
        # An instance's port sends the fabric's answer to its ARP for the IMDS back out of
        # itself: hairpin mode lets the bridge forward a frame to the port it came from.
        turn = " hairpin on" if port.port in hairpin else ""
        lines.append(f"link set dev {port.port} type bridge_slave {_QUIET_PORT} proxy_arp on{turn}")
        lines.append(f"link set dev {port.port} up")
    # No proxy ARP on these: their namespaces know the fabric's MAC from a neighbour entry.
    extra = ([INTERNET_PORT] if internet else []) + ([IMDS_PORT] if asking else [])
    for name in extra:
        lines.append(f"link set dev {name} master {BRIDGE}")
        lines.append(f"link set dev {name} type bridge_slave {_QUIET_PORT}")
        lines.append(f"link set dev {name} up")
    lines.append(f"link set dev {BRIDGE} up")
    for subnet in subnets:
        lines.append(_neigh(subnet.gateway, subnet.router_mac))
    for port in ports:
        for address in _owned_addresses(port.eni):
            lines.append(_neigh(address, port.eni.mac))
    return tuple(lines)


def _owned_addresses(eni: Eni) -> tuple[IPv4Address, ...]:
    return tuple(dict.fromkeys(eni.addresses()))


def _neigh(address: IPv4Address, mac: str) -> str:
    return f"neigh replace {address} lladdr {mac} dev {BRIDGE} nud permanent"


def _bridge_batch(
    ports: tuple[FabricPort, ...], subnets: tuple[Subnet, ...], internet: bool, imds: bool
) -> tuple[str, ...]:
    lines = [f"fdb replace {port.eni.mac} dev {port.port} master static" for port in ports]
    if internet:
        lines.append(f"fdb replace {INTERNET_MAC} dev {INTERNET_PORT} master static")
    if imds:
        lines.append(f"fdb replace {IMDS_MAC} dev {IMDS_PORT} master static")
    first = _bridge_mac(subnets)
    for mac in dict.fromkeys(s.router_mac for s in subnets):
        if mac != first:
            lines.append(f"fdb add {mac} dev {BRIDGE} self local")
    return tuple(lines)


def _elements(items: list[str]) -> str:
    return f" elements = {{ {', '.join(items)} }}" if items else ""


def nat_chain(gateway_id: str) -> str:
    return "to_" + gateway_id.replace("-", "_")


def _verdict(vpc: VpcState, route: VpcRoute, wired: frozenset[str]) -> str:
    """Where the route table's choice sends a frame: the chain that realizes its target."""
    if route.state == "blackhole":
        return "goto blackhole"
    kind = target_kind(route.target)
    if kind == "local":
        return "goto vpc_local"
    if kind == "igw" and route.target == vpc.internet_gateway:
        return "goto to_internet"
    if route.target in wired:
        return f"goto {nat_chain(route.target)}"
    return "goto unmodelled_target"


def route_elements(vpc: VpcState, ports: tuple[FabricPort, ...]) -> list[str]:
    """The `route_table` verdict map: per port, the port's subnet's route table as disjoint
    ranges (`vpc.routes.intervals`, with the subnet so its own hosts only take the local route)
    and the chain each range's route leads to. Ranges no route covers are left out: the lookup
    misses and the frame falls to the "no route" drop."""
    elements: list[str] = []
    wired = frozenset(g.id for g in vpc.nat_gateways if any(p.eni.id == g.eni for p in ports))
    for port in ports:
        subnet = vpc.subnet(port.eni.subnet)
        table = vpc.route_table(subnet.route_table)
        for piece in intervals(table, subnet=subnet.cidr):
            if piece.route is None:
                continue
            span = str(piece.first) if piece.first == piece.last else f"{piece.first}-{piece.last}"
            elements.append(f'"{port.port}" . {span} : {_verdict(vpc, piece.route, wired)}')
    return elements


def _public_maps(vpc: VpcState, ports: tuple[FabricPort, ...]) -> list[str]:
    """The internet gateway's 1:1 mapping, for the ENIs wired to the bridge, as the four maps
    its two chains look up: private → public, and public → private, owner MAC, router MAC."""
    wired = {port.eni.id: port.eni for port in ports}
    out: list[str] = []
    back: list[str] = []
    owner: list[str] = []
    router: list[str] = []
    for item in vpc.public_ips:
        eni = wired.get(item.eni)
        if eni is None:
            continue
        out.append(f"{item.private_ip} : {item.public_ip}")
        back.append(f"{item.public_ip} : {item.private_ip}")
        owner.append(f"{item.public_ip} : {eni.mac}")
        router.append(f"{item.public_ip} : {vpc.subnet(eni.subnet).router_mac}")
    return [
        "  map public_ip { type ipv4_addr : ipv4_addr;" + _elements(out) + " }",
        "  map private_ip { type ipv4_addr : ipv4_addr;" + _elements(back) + " }",
        "  map public_owner_mac { type ipv4_addr : ether_addr;" + _elements(owner) + " }",
        "  map public_router_mac { type ipv4_addr : ether_addr;" + _elements(router) + " }",
    ]


def subnet_numbers(vpc: VpcState) -> dict[str, int]:
    """Each subnet's number in a frame's mark (1 up; 0 is a frame from a gateway)."""
    return {subnet.name: number for number, subnet in enumerate(vpc.subnets, start=1)}


def _filter_maps(vpc: VpcState, ports: tuple[FabricPort, ...]) -> tuple[list[str], list[str]]:
    """The maps and chains of the security groups and NACLs (`lab/filters.py`)."""
    numbers = subnet_numbers(vpc)
    guarded = [(p.port, p.eni) for p in ports if vpc.security_groups and p.eni.security_groups]
    acls = {subnet.name: vpc.network_acl(subnet.name) for subnet in vpc.subnets}
    used = {acl.id: acl for acl in acls.values() if acl is not None}
    egress_acl = [
        f"{numbers[name]} : jump {filters.nacl_chain(acl, egress=True)}"
        for name, acl in acls.items()
        if acl is not None
    ]
    ingress_acl = [
        f'"{p.port}" : jump {filters.nacl_chain(acl, egress=False)}'
        for p in ports
        if (acl := acls[p.eni.subnet]) is not None
    ]
    maps = [
        "  map port_subnet { type ifname : mark;"
        + _elements([f'"{p.port}" : {numbers[p.eni.subnet]}' for p in ports])
        + " }",
        "  set in_subnet { type ifname . mark;"
        + _elements([f'"{p.port}" . {numbers[p.eni.subnet]}' for p in ports])
        + " }",
        "  map sg_egress { type ifname : verdict;"
        + _elements(filters.sg_verdicts(guarded, "egress"))
        + " }",
        "  map sg_ingress { type ifname : verdict;"
        + _elements(filters.sg_verdicts(guarded, "ingress"))
        + " }",
        "  map nacl_egress { type mark : verdict;" + _elements(egress_acl) + " }",
        "  map nacl_ingress { type ifname : verdict;" + _elements(ingress_acl) + " }",
        *filters.tracked_sets(),
    ]
    chains = [*filters.security_group_chains(vpc, guarded), *filters.nacl_chains(used.values())]
    return maps, chains


def nlb_ports(vpc: VpcState, ports: tuple[FabricPort, ...]) -> tuple[FabricPort, ...]:
    """The ports of NLB nodes (pass-through; the proxies' ports are ENIs like any other)."""
    kinds = {node.eni: lb.kind for lb in vpc.load_balancers for node in lb.nodes}
    return tuple(port for port in ports if kinds.get(port.eni.id) == "nlb")


def dynamic_sets(vpc: VpcState, ports: tuple[FabricPort, ...]) -> tuple[str, ...]:
    """The fabric's sets that frames fill (tracked flows, NLB flows), emptied before a walk."""
    return (*filters.TRACKED_SETS, *(steer_set(port.port) for port in nlb_ports(vpc, ports)))


def _steering(vpc: VpcState, nlbs: tuple[FabricPort, ...]) -> list[str]:
    """The reply of a flow an NLB node forwarded with the client's address goes back to that
    node, whatever the route table says (aws-load-balancers.md §2.2 [inf]; the simulator's
    `_steered`): it arrives from the router of the node's subnet."""
    return [
        "    ether type ip meta l4proto { tcp, udp } ip saddr . th sport . ip daddr . th dport "
        f"@{steer_set(port.port)} ether saddr set {vpc.subnet(port.eni.subnet).router_mac} "
        f'ether daddr set {port.eni.mac} counter accept comment "to the NLB node of the flow"'
        for port in nlbs
    ]


def _imds_arp_answer() -> str:
    """An instance's ARP request for the IMDS, turned into the answer in place: from the
    router of the asking ENI's subnet (`port_router_mac`), back out of the asking port
    (hairpin). The target fields take the sender's before the sender's are overwritten."""
    return (
        f"    iifname @instance_ports arp operation request arp daddr ip {IMDS}"
        " arp operation set reply arp daddr ether set arp saddr ether"
        " arp daddr ip set arp saddr ip arp saddr ether set iifname map @port_router_mac"
        f" arp saddr ip set {IMDS} ether daddr set ether saddr"
        ' ether saddr set iifname map @port_router_mac counter accept comment "IMDS ARP"'
    )


def _nft(
    vpc: VpcState,
    ports: tuple[FabricPort, ...],
    internet: bool,
    asking: tuple[FabricPort, ...],
) -> str:
    subnets = vpc.subnets
    owned = [f'"{p.port}" . {n}' for p in ports for n in owned_networks(p.eni)]
    owner_mac = [f"{n} : {p.eni.mac}" for p in ports for n in owned_networks(p.eni)]
    router_of = [f"{s.cidr} : {s.router_mac}" for s in subnets]
    routers = list(dict.fromkeys(s.router_mac for s in subnets))
    unchecked = [f'"{p.port}"' for p in ports if not p.eni.source_dest_check]
    drop = DROP_COMMENTS
    filter_maps, filter_chains = _filter_maps(vpc, ports)
    imds = bool(asking)
    nlbs = nlb_ports(vpc, ports)
    lines = [
        f"table bridge {NFT_TABLE} {{",
        "  set owned { type ifname . ipv4_addr; flags interval;" + _elements(owned) + " }",
        "  set unchecked { type ifname;" + _elements(unchecked) + " }",
        "  map owner_mac { type ipv4_addr : ether_addr; flags interval;"
        + _elements(owner_mac)
        + " }",
        "  map router_mac { type ipv4_addr : ether_addr; flags interval;"
        + _elements(router_of)
        + " }",
        "  set routers { type ether_addr;" + _elements(routers) + " }",
        "  map route_table { type ifname . ipv4_addr : verdict; flags interval;"
        + _elements(route_elements(vpc, ports))
        + " }",
        *filter_maps,
        *(
            f"  set {steer_set(p.port)} {{ type ipv4_addr . inet_service . ipv4_addr . "
            "inet_service; flags dynamic,timeout; timeout 1h; }"
            for p in nlbs
        ),
    ]
    if internet:
        lines += _public_maps(vpc, ports)
    if imds:
        lines += [
            "  set instance_ports { type ifname;"
            + _elements([f'"{p.port}"' for p in asking])
            + " }",
            "  map port_router_mac { type ifname : ether_addr;"
            + _elements([f'"{p.port}" : {vpc.subnet(p.eni.subnet).router_mac}' for p in asking])
            + " }",
        ]
    lines += [
        "  chain prerouting {",
        "    type filter hook prerouting priority 0; policy drop;",
    ]
    if imds:
        lines.append(_imds_arp_answer())
    lines.append("    ether type arp accept")
    if internet:
        lines.append(f'    iifname "{INTERNET_PORT}" ether type ip goto from_internet')
    if imds:
        lines.append(
            f'    iifname "{IMDS_PORT}" ether type ip meta mark set {HOST_MARK} goto vpc_local'
        )
    lines.append(
        "    ether type ip iifname != @unchecked iifname . ip saddr != @owned counter drop"
        f' comment "{drop["vpc-source-check"]}"'
    )
    if internet:
        lines.append(
            f'    ether daddr {INTERNET_MAC} counter drop comment "{INTERNET_ONLY_FROM_GATEWAY}"'
        )
    for port in nlbs:
        # a frame an NLB node forwarded keeping the client's address: remember its reply
        lines.append(
            f'    iifname "{port.port}" ether type ip ip saddr != {port.eni.primary_ip} '
            f"meta l4proto {{ tcp, udp }} update @{steer_set(port.port)} "
            "{ ip daddr . th dport . ip saddr . th sport }"
        )
    if imds:
        lines.append(
            f"    ether type ip ether daddr @routers ip daddr {IMDS} iifname @instance_ports"
            " goto to_imds"
        )
    lines += [
        # the sending port's subnet rides along to postrouting (NACLs: `lab/filters.py`)
        "    meta mark set iifname map @port_subnet",
        "    ether type ip iifname vmap @sg_egress",
        *_steering(vpc, nlbs),
        "    ether type ip ether daddr @routers iifname . ip daddr vmap @route_table",
        f'    ether type ip ether daddr @routers counter drop comment "{drop["vpc-no-route"]}"',
        "    ether type ip accept",
        "  }",
        "  chain vpc_local {",
        "    ether saddr set ip daddr map @router_mac ether daddr set ip daddr map @owner_mac"
        ' counter accept comment "VPC router"',
        f'    counter drop comment "{drop["vpc-no-owner"]}"',
        "  }",
        "  chain blackhole {",
        f'    counter drop comment "{drop["vpc-blackhole"]}"',
        "  }",
        "  chain unmodelled_target {",
        f'    counter drop comment "{UNMODELLED_TARGET}"',
        "  }",
    ]
    for gateway in vpc.nat_gateways:
        wired = next((p for p in ports if p.eni.id == gateway.eni), None)
        if wired is None:
            continue
        router = vpc.subnet(wired.eni.subnet).router_mac
        lines += [
            f"  chain {nat_chain(gateway.id)} {{",
            f"    ether saddr set {router} ether daddr set {wired.eni.mac}"
            f' counter accept comment "to {gateway.id}"',
            "  }",
        ]
    if imds:
        lines += [
            "  chain to_imds {",
            f"    ether daddr set {IMDS_MAC} meta mark set {HOST_MARK}"
            ' counter accept comment "to the IMDS"',
            "  }",
        ]
    if internet:
        lines += [
            "  chain to_internet {",
            f"    ip saddr set ip saddr map @public_ip ether saddr set {GATEWAY_MAC}"
            f' ether daddr set {INTERNET_MAC} counter accept comment "internet gateway, outbound"',
            f'    counter drop comment "{drop["igw-no-public-ip"]}"',
            "  }",
            "  chain from_internet {",
            # Three lookups of the same keys: all hit or all miss, so no frame is half rewritten.
            "    ether saddr set ip daddr map @public_router_mac"
            " ether daddr set ip daddr map @public_owner_mac ip daddr set ip daddr map @private_ip"
            ' counter accept comment "internet gateway, inbound"',
            f'    counter drop comment "{drop["igw-unknown-public-ip"]}"',
            "  }",
        ]
    lines += filter_chains
    lines += [
        "  chain postrouting {",
        "    type filter hook postrouting priority 0; policy accept;",
        # host-served: no NACL, security group or destination check (vpc-fabric.md §8.4)
        f"    meta mark {HOST_MARK} accept",
        # NACLs where the frame crosses a subnet's boundary: the sender's outbound entries
        # (none from a gateway), the receiver's inbound ones (none to a gateway)
        "    ether type ip meta mark != 0 oifname . meta mark != @in_subnet"
        " meta mark vmap @nacl_egress",
        "    ether type ip oifname . meta mark != @in_subnet oifname vmap @nacl_ingress",
    ]
    if internet:
        lines.append(f'    oifname "{INTERNET_PORT}" accept')
    lines += [
        "    ether type ip oifname != @unchecked oifname . ip daddr != @owned counter drop"
        f' comment "{drop["vpc-destination-check"]}"',
        "    ether type ip oifname vmap @sg_ingress",
        "  }",
        "}",
        "",
    ]
    return "\n".join(lines)
