"""The namespaces that stand for what the VPC holds besides the nodes (pure: no I/O here).

A walk may reach three things the cluster's state has no namespace for; the lab builds each as a
namespace of its own, wired to a port of the fabric's bridge (`lab/fabric.py`), planned from the
same `VpcState` the simulator reads:

* **the internet** (`internet`), beyond the internet gateway: every external host's address on
  `eth0`, whose other end is the bridge port `igw0`; the gateway's 1:1 NAT is done in the
  bridge. It reaches the gateway as a VPC CNI pod reaches its node: a default route via a
  link-local next hop whose MAC is a permanent neighbour entry, so it never ARPs.
* **a NAT gateway** (its id, `nat-…`): a host whose `eth0` is the gateway's ENI (its MAC, its
  private IP in its subnet) on a bridge port like any ENI's, so the fabric routes to it and
  from it with the same route tables, NACLs and source/destination check (off, as on the
  gateway's requester-managed ENI). Inside, the kernel does what vpc-fabric.md §5 says the
  gateway does: it forwards (an IP hop: the TTL drops by one; no ICMP redirects, though the
  packet leaves by the link it came in on), SNATs what it forwards to its private IP with a
  port of its own choosing (`fully-random`: the walk marks the gateway's port as a chosen
  value, which the verifier binds to whatever the kernel picked), keeps the session in
  conntrack, and drops, each with a counter: what is not TCP, UDP or ICMP, a client of its own
  subnet, and whatever reaches its own address without a session. Its default route is its
  subnet's router (base+1) with the router's MAC as a permanent neighbour entry.
* **an NLB node** (`elb-<name>-<az>`): a namespace whose `eth0` is the node's ENI, on a bridge
  port like any ENI's, and whose ingress hook (nftables, netdev family) does what
  aws-load-balancers.md §2.2 says an NLB does, without an IP stack (so no TTL is spent, as the
  simulator has it): a packet for a listener goes to one of the node's eligible targets
  (`numgen random`, each equally likely, as the walk's branches; the choice is kept per
  client address and port in a dynamic map, `flows_<proto><port>`, so a connection's later
  packets go to the same target, as an NLB's flow hash keeps them), its destination rewritten,
  its source too when the target group keeps no client address (the client remembered by its
  port in a dynamic map, for the answer); the target's answer gets the listener's address back.
  Frames leave out of `eth0` again (`fwd`) addressed as the VPC would carry them. Behind the
  hook the node is also a host with its private address (as a CLB or ALB node is), so that it
  can send its target groups' real health checks (`lab/health.py`) from that address: its
  kernel picks their source ports from `PROBE_PORTS` (`ip_local_port_range`), a range no Linux
  client picks by default, and the first rule after the listeners' hands the answers to those
  ports to the node's own stack, before the rules that rewrite a target's answer could take
  one for a client's. Which targets are eligible is a `Probe`'s health: at `lab up` the
  state's (`walk.engine.health_probe`: probes walked through the state); `lab verify` probes
  for real and rebuilds the ruleset from the lab's own results (`health.apply_eligibility`).
  The fabric steers a preserved flow's reply back to the node (`fabric.steer_set`).
* **a CLB or ALB node** (`elb-<name>-<az>` too): a host with the node's address on its ENI,
  its subnet's router as default route (a permanent neighbour entry), and nothing else: a
  proxy's two connections are each walked (`Walk.backend`), and `lab verify` listens for the
  client's connection there and opens the proxy's own from there.
* **the instance metadata service** (`imds`): one namespace holding 169.254.169.254 for every
  instance, on the bridge port `imds0`. The fabric answers each node's ARP for it with the MAC
  of the asking ENI's subnet router and hands it the frames sent there (vpc-fabric.md §8.4:
  the host answers, so no route, NACL or security group applies). Its answers carry the asking
  instance's hop limit as their TTL (`HttpPutResponseHopLimit`): one nft rule per instance in
  its output hook, matching every address of the instance's ENIs (nft 1.0.6 cannot set the TTL
  from a map lookup, so it is a rule each).

The other host-served addresses (the Resolver, time sync) have no namespace: walks to them are
not verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Literal

from eksnet.controllers.cni_plugin import loopback_addresses, loopback_link
from eksnet.dataplane.load_balancers import LbNode, Listener, LoadBalancer, Target, TargetGroup
from eksnet.dataplane.state import (
    TABLE_MAIN,
    Address,
    DataplaneState,
    Link,
    Namespace,
    NatGateway,
    Neighbour,
    Route,
)
from eksnet.lab.fabric import (
    GATEWAY_MAC,
    IMDS_MAC,
    IMDS_NEXT_HOP_MAC,
    IMDS_PORT,
    IMDS_PORT_IFINDEX,
    INTERNET_MAC,
    INTERNET_MTU,
    INTERNET_PORT,
    INTERNET_PORT_IFINDEX,
    FabricPort,
    attached_ports,
    owned_networks,
)
from eksnet.vpc.fabric import IMDS

if TYPE_CHECKING:
    from eksnet.walk.load_balancing import Probe

AttachmentKind = Literal["internet", "imds", "nat-gateway", "nlb", "proxy"]

DEVICE = "eth0"
DEVICE_IFINDEX = 2
NEXT_HOP = IPv4Address("169.254.0.1")
"""The next hop of the internet's and the IMDS's default routes: never an address of the VPC;
it only names the fabric's MAC through a permanent neighbour entry."""
IMDS_MTU = 9001
NAT_TABLE = "eksnet_nat_gateway"
IMDS_TABLE = "eksnet_imds"
NLB_TABLE = "eksnet_nlb"
NAT_DROPS = {
    "natgw-protocol": "NAT gateway: neither TCP, UDP nor ICMP",
    "natgw-own-subnet": "NAT gateway: a client in its own subnet",
    "natgw-no-session": "NAT gateway: no session",
}
"""The `comment` of the NAT gateway's rule that counts each of its drop codes."""
PROBE_PORTS = (61000, 61999)
"""The source ports of an NLB node's own health checks (its `ip_local_port_range`): above
Linux's default ephemeral range (32768–60999), so no client's kernel picks one, and the node's
ingress hook can tell the answers to its checks from a target's answers to clients."""
SYSCTLS_IPV4_ONLY: tuple[tuple[str, str], ...] = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
)
"""IPv4 only, as the state (and the fabric, which drops anything else)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """One namespace wired to the fabric's bridge: `place` is what the lab calls it (the name
    a walk's hop maps to), `namespace` its configuration in the state's vocabulary, `nft` the
    ruleset applied inside it."""

    place: str
    kind: AttachmentKind
    namespace: Namespace
    port: str
    port_ifindex: int
    nft: str = ""

    @property
    def device(self) -> Link:
        return self.namespace.link(DEVICE)

    def wire(self, netns: str, fabric_netns: str) -> str:
        """The host batch line creating its `eth0` and, as its peer, its bridge port."""
        link = self.device
        return (
            f"link add {DEVICE} index {DEVICE_IFINDEX} address {link.mac} mtu {link.mtu} "
            f"txqueuelen 0 netns {netns} type veth peer name {self.port} index "
            f"{self.port_ifindex} mtu {link.mtu} netns {fabric_netns}"
        )


def attachments(state: DataplaneState, probe: Probe | None = None) -> tuple[Attachment, ...]:
    """Every namespace the lab adds to the state's: the internet (with an internet gateway),
    the IMDS (with an instance wired to the fabric), each NAT gateway, each load balancer node
    (an NLB node's eligible targets by `probe`'s health; None: the state's)."""
    found: list[Attachment] = []
    internet = internet_namespace(state)
    if internet is not None:
        found.append(
            Attachment("internet", "internet", internet, INTERNET_PORT, INTERNET_PORT_IFINDEX)
        )
    ports = attached_ports(state)
    imds = imds_attachment(state, ports)
    if imds is not None:
        found.append(imds)
    for port in ports:
        gateway = next((g for g in state.vpc.nat_gateways if g.eni == port.eni.id), None)
        if gateway is not None:
            found.append(nat_gateway_attachment(state, gateway, port))
        balancer = state.vpc.load_balancer_of(port.eni.id)
        if balancer is not None and balancer.kind == "nlb":
            found.append(nlb_attachment(state, balancer, port, probe))
        elif balancer is not None:
            found.append(proxy_attachment(state, port))
    return tuple(found)


def _host(
    name: str, mac: str, mtu: int, addresses: tuple[Address, ...], **more: object
) -> Namespace:
    return Namespace(
        name=name,
        kind="node",  # a host's root namespace, as a node's is
        owner=name,
        links=(loopback_link(), Link(DEVICE_IFINDEX, DEVICE, "device", mac, mtu)),
        addresses=(*loopback_addresses(), *addresses),
        **more,  # type: ignore[arg-type]
    )


def _via_next_hop(mac: str) -> dict[str, object]:
    """The routes and neighbour of a namespace whose every packet goes to the fabric."""
    hop = IPv4Network(f"{NEXT_HOP}/32")
    return {
        "routes": (
            Route(TABLE_MAIN, hop, dev=DEVICE, scope="link"),
            Route(TABLE_MAIN, IPv4Network("0.0.0.0/0"), gateway=NEXT_HOP, dev=DEVICE),
        ),
        "neighbours": (Neighbour(NEXT_HOP, DEVICE, mac),),
    }


def internet_namespace(state: DataplaneState) -> Namespace | None:
    """The internet beyond the state's internet gateway, as one host namespace (None without a
    gateway): every external host's address as a /32 on `eth0`, and the way to the gateway."""
    if state.vpc.internet_gateway is None:
        return None
    hosts = tuple(
        Address(DEVICE, IPv4Interface(f"{host.address}/32")) for host in state.external_hosts
    )
    return _host(
        "internet",
        INTERNET_MAC,
        INTERNET_MTU,
        hosts,
        sysctls=SYSCTLS_IPV4_ONLY,
        **_via_next_hop(GATEWAY_MAC),
    )


def imds_attachment(state: DataplaneState, ports: tuple[FabricPort, ...]) -> Attachment | None:
    """The IMDS of every instance wired to the fabric, or None when none is."""
    rules: list[str] = []
    for instance in state.vpc.instances:
        networks = [n for p in ports if p.node == instance.node for n in owned_networks(p.eni)]
        if networks:
            members = ", ".join(str(n) for n in networks)
            rules.append(
                f"    ip daddr {{ {members} }} ip ttl set {instance.hop_limit}"
                f' comment "hop limit of {instance.id or instance.node}"'
            )
    if not rules:
        return None
    namespace = _host(
        "imds",
        IMDS_MAC,
        IMDS_MTU,
        (Address(DEVICE, IPv4Interface(f"{IMDS}/32")),),
        sysctls=SYSCTLS_IPV4_ONLY,
        **_via_next_hop(IMDS_NEXT_HOP_MAC),
    )
    nft = "\n".join(
        [
            f"table ip {IMDS_TABLE} {{",
            "  chain output {",
            "    type filter hook output priority 0; policy accept;",
            *rules,
            "  }",
            "}",
            "",
        ]
    )
    return Attachment("imds", "imds", namespace, IMDS_PORT, IMDS_PORT_IFINDEX, nft)


def nat_gateway_attachment(
    state: DataplaneState, gateway: NatGateway, port: FabricPort
) -> Attachment:
    """A NAT gateway as a host forwarding and SNATting on its ENI (see the module docstring)."""
    subnet = state.vpc.subnet(gateway.subnet)
    address = IPv4Interface(f"{gateway.private_ip}/{subnet.cidr.prefixlen}")
    namespace = _host(
        gateway.id,
        port.eni.mac,
        port.mtu,
        (Address(DEVICE, address, broadcast=subnet.cidr.broadcast_address),),
        routes=(
            Route(
                TABLE_MAIN,
                subnet.cidr,
                dev=DEVICE,
                proto="kernel",
                scope="link",
                src=gateway.private_ip,
            ),
            Route(TABLE_MAIN, IPv4Network("0.0.0.0/0"), gateway=subnet.gateway, dev=DEVICE),
        ),
        neighbours=(Neighbour(subnet.gateway, DEVICE, subnet.router_mac),),
        sysctls=(
            *SYSCTLS_IPV4_ONLY,
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.send_redirects", "0"),
            ("net.ipv4.conf.default.send_redirects", "0"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ),
    )
    carried = "{ tcp, udp, icmp }"
    nft = "\n".join(
        [
            f"table ip {NAT_TABLE} {{",
            "  chain input {",
            "    type filter hook input priority 0; policy accept;",
            f'    meta l4proto != {carried} counter drop comment "{NAT_DROPS["natgw-protocol"]}"',
            f'    ct state new counter drop comment "{NAT_DROPS["natgw-no-session"]}"',
            "  }",
            "  chain forward {",
            "    type filter hook forward priority 0; policy accept;",
            f'    meta l4proto != {carried} counter drop comment "{NAT_DROPS["natgw-protocol"]}"',
            f'    ip saddr {subnet.cidr} counter drop comment "{NAT_DROPS["natgw-own-subnet"]}"',
            "  }",
            "  chain postrouting {",
            "    type nat hook postrouting priority 100; policy accept;",
            f"    meta l4proto {{ tcp, udp }} snat to {gateway.private_ip}:1024-65535 fully-random",
            f"    meta l4proto icmp snat to {gateway.private_ip}",
            "  }",
            "}",
            "",
        ]
    )
    return Attachment(gateway.id, "nat-gateway", namespace, port.port, port.ifindex, nft)


def nlb_attachment(
    state: DataplaneState, balancer: LoadBalancer, port: FabricPort, probe: Probe | None = None
) -> Attachment:
    """An NLB node (see the module docstring); its eligible targets are `probe`'s healthy ones
    (None: the state's health, `walk.engine.health_probe`)."""
    from eksnet.walk.engine import health_probe

    vpc = state.vpc
    node = balancer.node_of(port.eni.id)
    assert node is not None
    mac, address = port.eni.mac, node.private_ip
    subnet = vpc.subnet(port.eni.subnet)
    local = [eni for eni in vpc.enis if eni.subnet == subnet.name and eni.id != port.eni.id]
    owners = [f"{a} : {eni.mac}" for eni in local for a in dict.fromkeys(eni.addresses())]
    probe = probe or health_probe(state)
    chains: list[str] = []
    rules: list[str] = []
    back: list[str] = []
    flow_maps: list[str] = []
    for listener, group, targets in nlb_eligible(balancer, node, probe):
        proto = listener.protocol.lower()
        names = []
        for number, target in enumerate(targets):
            name = f"to_{proto}{listener.port}_{number}"
            names.append(name)
            source = (
                ""
                if group.preserve_client_ip
                else f"update @clients {{ {proto} sport : ip saddr }} ip saddr set {address} "
            )
            # a drawn flow's mark (the map's value) is the node's own: cleared on the way out
            unmark = "meta mark set 0x0 " if len(targets) > 1 else ""
            chains += [
                f"  chain {name} {{",
                f"    {unmark}{source}ip daddr set {target.address} {proto} dport set "
                f"{target.port} goto out",
                "  }",
            ]
            back_to = (
                "" if group.preserve_client_ip else f"ip daddr set {proto} dport map @clients "
            )
            to_whom = "!= " if group.preserve_client_ip else ""
            back.append(
                f"    ip saddr {target.address} {proto} sport {target.port} ip daddr {to_whom}"
                f"{address} {back_to}ip saddr set {address} {proto} sport set {listener.port} "
                "goto out"
            )
        to_listener = f"    ip daddr {address} {proto} dport {listener.port}"
        if len(names) == 1:
            rules.append(f"{to_listener} goto {names[0]}")
            continue
        flows = f"flows_{proto}{listener.port}"
        flow_maps.append(
            f"  map {flows} {{ type ipv4_addr . inet_service : mark; flags dynamic,timeout; "
            "timeout 1h; }"
        )
        choose = " vmap { " + ", ".join(f"{i} : goto {n}" for i, n in enumerate(names)) + " }"
        client = f"ip saddr . {proto} sport"
        # a held flow goes where its first packet went; a new one draws, and is held
        rules.append(f"{to_listener} meta mark set {client} map @{flows} meta mark{choose}")
        rules.append(
            f"{to_listener} meta mark set numgen random mod {len(names)} "
            f"update @{flows} {{ {client} : meta mark }} meta mark{choose}"
        )
    low, high = PROBE_PORTS
    own = (
        f"    ip daddr {address} tcp dport {low}-{high} counter accept"
        ' comment "answers to the node\'s own health checks"'
    )
    owner_map = ", ".join(owners)
    nft = "\n".join(
        [
            f"table netdev {NLB_TABLE} {{",
            "  map clients { type inet_service : ipv4_addr; flags dynamic,timeout; timeout 1h; }",
            *flow_maps,
            "  map owner_mac { type ipv4_addr : ether_addr;"
            + (f" elements = {{ {owner_map} }}" if owners else "")
            + " }",
            *(
                [
                    "  set local_owners { type ipv4_addr; elements = { "
                    + ", ".join(o.split(" : ")[0] for o in owners)
                    + " } }"
                ]
                if owners
                else ["  set local_owners { type ipv4_addr; }"]
            ),
            "  chain out {",
            # inside its own subnet the node sends to the owner's MAC, else to the router
            f"    ip daddr @local_owners ether saddr set {mac} ether daddr set ip daddr map "
            f'@owner_mac fwd to "{DEVICE}"',
            f'    ether saddr set {mac} ether daddr set {subnet.router_mac} fwd to "{DEVICE}"',
            "  }",
            *chains,
            "  chain ingress {",
            f'    type filter hook ingress device "{DEVICE}" priority 0; policy accept;',
            *rules,
            own,
            *back,
            "  }",
            "}",
            "",
        ]
    )
    low, high = PROBE_PORTS
    namespace = _lb_host(state, port, (("net.ipv4.ip_local_port_range", f"{low} {high}"),))
    return Attachment(port.node, "nlb", namespace, port.port, port.ifindex, nft)


def nlb_eligible(
    balancer: LoadBalancer, node: LbNode, probe: Probe
) -> list[tuple[Listener, TargetGroup, tuple[Target, ...]]]:
    """Per listener of an NLB node, its target group and the targets the node may send to by
    `probe`'s health (listeners without an eligible target left out): what its ruleset holds."""
    from eksnet.walk.load_balancing import eligible

    found = []
    for listener in balancer.listeners:
        if listener.target_group is None:
            continue
        group = balancer.target_group(listener.target_group)
        targets = eligible(balancer, node, group, probe).targets
        if targets:
            found.append((listener, group, targets))
    return found


def proxy_attachment(state: DataplaneState, port: FabricPort) -> Attachment:
    """A CLB or ALB node: an address and a way out (see the module docstring)."""
    return Attachment(port.node, "proxy", _lb_host(state, port), port.port, port.ifindex)


def _lb_host(
    state: DataplaneState, port: FabricPort, sysctls: tuple[tuple[str, str], ...] = ()
) -> Namespace:
    """A load balancer node as a host: the node's private address on its ENI, its subnet on
    link, its subnet's router as default route (a permanent neighbour entry)."""
    subnet = state.vpc.subnet(port.eni.subnet)
    address = port.eni.primary_ip
    return _host(
        port.node,
        port.eni.mac,
        port.mtu,
        (
            Address(
                DEVICE,
                IPv4Interface(f"{address}/{subnet.cidr.prefixlen}"),
                broadcast=subnet.cidr.broadcast_address,
            ),
        ),
        routes=(
            Route(TABLE_MAIN, subnet.cidr, dev=DEVICE, proto="kernel", scope="link", src=address),
            Route(TABLE_MAIN, IPv4Network("0.0.0.0/0"), gateway=subnet.gateway, dev=DEVICE),
        ),
        neighbours=(Neighbour(subnet.gateway, DEVICE, subnet.router_mac),),
        sysctls=(*SYSCTLS_IPV4_ONLY, *sysctls),
    )
