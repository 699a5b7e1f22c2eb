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
* **Routed delivery rewrites the MACs, not the TTL.** A frame sent to a router MAC is rewritten in
  the bridge's prerouting hook (nftables, bridge family): destination MAC := the MAC of the ENI
  that owns the destination address, source MAC := the router MAC of that address's subnet; then
  the bridge forwards it to the owner's port. The VPC router does not decrement the TTL (§1.8),
  and neither does a bridge, which is why the lab does not route through an IP stack here.
  Destinations no ENI owns (the internet, load balancers, reserved addresses) are dropped: the
  lab has no IGW, NAT gateway or ELB, and says so in `divergences.py`.
* **Source/destination check** (§1.6): an IPv4 frame entering the fabric from port `xN` must have
  a source address owned by that port's ENI, and a frame leaving through `xN` a destination owned
  by it, else it is dropped; ENIs with `source_dest_check` off skip both.
* Everything that is not IPv4 or ARP (IPv6 router solicitations, MLD, DAD) is dropped, and the
  fabric namespace has IPv6 disabled, so captures in the nodes see only what the VPC would pass.

The bridge has no IP address: the fabric never originates IP packets (no ICMP redirects, no
unreachables, no conntrack), and a Linux bridge keeps at most 1024 ports, so a lab holds at most
1024 attached ENIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from eksnet.dataplane.state import DataplaneState, Eni, Subnet
from eksnet.errors import NotModelled

BRIDGE = "vpc0"
MAX_PORTS = 1024
PORT_IFINDEX_BASE = 10000
"""Port `xN` is ifindex 10000+N in the fabric, never the ifindex of its ENI's end in the node: a
veth whose peer has the same ifindex as itself looks like a physical device to linkwatch
(`linkwatch_urgent_event`), whose carrier events then wait out its rate limit (up to a second)
instead of running at once. `netlink._link_sync` orders them anyway; this keeps them prompt."""
NFT_TABLE = "eksnet_vpc"


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


def attached_ports(state: DataplaneState) -> tuple[FabricPort, ...]:
    """Every ENI attached to a node namespace as a `device` link, in state order."""
    ports: list[FabricPort] = []
    by_device = {(eni.node, eni.device): eni for eni in state.vpc.enis if eni.node and eni.device}
    for namespace in state.nodes():
        for link in namespace.links:
            eni = by_device.get((namespace.name, link.name))
            if link.kind != "device" or eni is None:
                continue
            number = len(ports)
            ports.append(
                FabricPort(
                    eni,
                    namespace.name,
                    link.name,
                    f"x{number}",
                    link.mtu,
                    PORT_IFINDEX_BASE + number,
                )
            )
    if len(ports) > MAX_PORTS:
        raise NotModelled(f"a lab fabric with more than {MAX_PORTS} attached ENIs ({len(ports)})")
    return tuple(ports)


def owned_networks(eni: Eni) -> tuple[IPv4Network, ...]:
    """The ENI's addresses as networks (host /32s and delegated prefixes), for nftables sets."""
    hosts = (eni.primary_ip, *eni.secondary_ips)
    return (*(IPv4Network(f"{a}/32") for a in hosts), *eni.prefixes)


def plan_fabric(state: DataplaneState, netns: str) -> FabricPlan:
    ports = attached_ports(state)
    subnets = state.vpc.subnets
    return FabricPlan(
        netns=netns,
        ports=ports,
        sysctls=FABRIC_SYSCTLS,
        ip_batch=_ip_batch(ports, subnets),
        bridge_batch=_bridge_batch(ports, subnets),
        nft=_nft(ports, subnets),
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


def _ip_batch(ports: tuple[FabricPort, ...], subnets: tuple[Subnet, ...]) -> tuple[str, ...]:
    mtu = max((p.mtu for p in ports), default=1500)
    lines = [
        "link set dev lo up",
        f"link add {BRIDGE} address {_bridge_mac(subnets)} mtu {mtu} type bridge",
    ]
    for port in ports:
        lines.append(f"link set dev {port.port} master {BRIDGE}")
        lines.append(
            f"link set dev {port.port} type bridge_slave learning off flood off "
            "mcast_flood off bcast_flood off proxy_arp on"
        )
        lines.append(f"link set dev {port.port} up")
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


def _bridge_batch(ports: tuple[FabricPort, ...], subnets: tuple[Subnet, ...]) -> tuple[str, ...]:
    lines = [f"fdb replace {port.eni.mac} dev {port.port} master static" for port in ports]
    first = _bridge_mac(subnets)
    for mac in dict.fromkeys(s.router_mac for s in subnets):
        if mac != first:
            lines.append(f"fdb add {mac} dev {BRIDGE} self local")
    return tuple(lines)


def _elements(items: list[str]) -> str:
    return f" elements = {{ {', '.join(items)} }}" if items else ""


def _nft(ports: tuple[FabricPort, ...], subnets: tuple[Subnet, ...]) -> str:
    owned = [f'"{p.port}" . {n}' for p in ports for n in owned_networks(p.eni)]
    owner_mac = [f"{n} : {p.eni.mac}" for p in ports for n in owned_networks(p.eni)]
    router_of = [f"{s.cidr} : {s.router_mac}" for s in subnets]
    routers = list(dict.fromkeys(s.router_mac for s in subnets))
    unchecked = [f'"{p.port}"' for p in ports if not p.eni.source_dest_check]
    return "\n".join(
        [
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
            "  chain prerouting {",
            "    type filter hook prerouting priority 0; policy drop;",
            "    ether type arp accept",
            "    ether type ip iifname != @unchecked iifname . ip saddr != @owned counter drop"
            ' comment "source/destination check, egress"',
            "    ether type ip ether daddr @routers ether saddr set ip daddr map @router_mac"
            ' ether daddr set ip daddr map @owner_mac counter accept comment "VPC router"',
            '    ether daddr @routers counter drop comment "no ENI owns the destination"',
            "    ether type ip accept",
            "  }",
            "  chain postrouting {",
            "    type filter hook postrouting priority 0; policy accept;",
            "    ether type ip oifname != @unchecked oifname . ip daddr != @owned counter drop"
            ' comment "source/destination check, ingress"',
            "  }",
            "}",
            "",
        ]
    )
