"""The talk's walks, in talk order, on the demo cluster (talk-walks.md §3).

Each entry is a question (from, to, protocol, ports) and the Linux views the talk shows with it;
the answers come from the walk engine like any other walk. W3 and W4 go through kube-proxy's
rules (a ClusterIP, a NodePort); W5–W9 (load balancers, Ingress) come with a later issue; W10,
the talk's last walk, leaves through the internet gateway, and its variants W10b–d through
eth1, a NAT gateway and external SNAT (W10c and W10d in the spec's variants `nat` and
`externalSnat`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError
from eksnet.walk.engine import walk
from eksnet.walk.model import Protocol, Walk

NODE_1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
NODE_2 = "node/ip-192-168-1-70.eu-west-2.compute.internal"
CLIENT = "ip/203.0.113.10"
"""The internet client `client` of talk-walks.md §2.2 (source port 51000)."""
POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
POD_71 = "pod/default/app1-5f7d9c6b8-w7r2n"
POD_81 = "pod/default/app1-5f7d9c6b8-z8h4k"
WEB = "ip/198.51.100.20"
"""The internet server `web` of talk-walks.md §2.2 (an external host of the demo)."""


@dataclass(frozen=True, slots=True)
class TourWalk:
    id: str
    title: str
    talk: str
    """Where the walk is in the talk: slide titles and transcript times."""
    src: str
    dst: str
    proto: Protocol
    sport: int | None
    dport: int | None
    views: tuple[tuple[str, str], ...] = ()
    """(target, command) pairs shown before the walk, as the talk's slides show them."""
    again: bool = False
    """Also walk the client's next connection (`walk --again`): session affinity."""
    variant: str | None = None
    """The spec's what-if variant the walk is asked in (`walk --variant`), if any: the tour
    walks it in that configuration's state."""
    az: str | None = None
    """The load balancer node's zone the client picks (`walk --az`)."""
    host: str | None = None
    path: str | None = None
    """The HTTP request an ALB reads (`walk --host`, `--path`)."""
    lab: bool = True
    """Whether the lab can send it (every walk of the tour now)."""

    def command(self) -> str:
        """The `eksnet walk` command that asks the same."""
        words = ["eksnet walk", self.src, self.dst]
        if self.proto != "tcp":
            words.append(f"--proto {self.proto}")
        if self.dport is not None:
            words.append(f"--port {self.dport}")
        for flag, value in (("--az", self.az), ("--host", self.host), ("--path", self.path)):
            if value is not None:
                words.append(f"{flag} {value}")
        if self.variant is not None:
            words.append(f"--variant {self.variant}")
        return " ".join(words)

    def run(
        self,
        state: DataplaneState,
        labels: Mapping[str, str] | None = None,
        *,
        later: bool = False,
    ) -> Walk:
        """The walk's answer from the engine, like `eksnet walk` with these arguments (and
        `--later`)."""
        return walk(
            state,
            self.src,
            self.dst,
            proto=self.proto,
            dport=self.dport,
            sport=self.sport,
            labels=labels,
            again=self.again,
            later=later,
            az=self.az,
            host=self.host,
            path=self.path,
        )


TOUR: tuple[TourWalk, ...] = (
    TourWalk(
        id="W0",
        title="Anatomy of node 1; ingress/egress on a node (pod 61 → pod 71)",
        talk='"Examining interface with VPC CNI", "Ingress/egress on a node" (08:20–11:35)',
        src=POD_61,
        dst=POD_71,
        proto="tcp",
        sport=42000,
        dport=80,
        views=(
            (NODE_1, "ip addr show eni69e05c2a0e5"),
            (POD_61, "ip a"),
            (POD_61, "ip route"),
            (POD_61, "arp -n"),
            (NODE_1, "ip route show table 2"),
            (NODE_1, "ip route show table main"),
            (NODE_1, "ip rule show"),
        ),
    ),
    TourWalk(
        id="W1",
        title="Pod to pod on the same node (pod 51 → pod 61)",
        talk='"Life of a packet – pod to pod on the same node" (11:35–12:25)',
        src=POD_51,
        dst=POD_61,
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="W2",
        title="Pod to pod across nodes (pod 51 → pod 81) and return",
        talk='"Life of a packet – pod to pod across nodes" and "(return)" (12:25–15:18)',
        src=POD_51,
        dst=POD_81,
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="W3",
        title="ClusterIP (pod 51 → app1 10.100.200.10:80) and return",
        talk='"Life of a packet – ClusterIP" and "(return)" (18:42–24:36)',
        src=POD_51,
        dst="svc/default/app1",
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="W4",
        title="NodePort (client → node 1:30080) and return",
        talk='"Life of a packet – NodePort" and "(return)" (24:36–29:12)',
        src=CLIENT,
        dst=NODE_1,
        proto="tcp",
        sport=None,
        dport=30080,
    ),
    TourWalk(
        id="W4b",
        title="NodePort via node 2: the reply from pod 81 leaves eth0 by rule 1024",
        talk='"SNAT even with a local pod" (27:38); why rule 1024 exists (talk-walks.md W4b)',
        src=CLIENT,
        dst=NODE_2,
        proto="tcp",
        sport=None,
        dport=30080,
    ),
    TourWalk(
        id="W5",
        title="LoadBalancer via an NLB, instance targets (client → NLB → a node:30081 → a pod)",
        talk='"Life of a packet – LoadBalancer (NLB)" and "(return)" (29:12–36:48)',
        src=CLIENT,
        dst="lb/default/app1-nlb",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2a",
    ),
    TourWalk(
        id="W5b",
        title="The same Service behind a CLB (the in-tree default): a proxy, a new connection",
        talk="talk-walks.md W5b (the in-tree controller builds a CLB without the annotation)",
        src=CLIENT,
        dst="lb/default/app1-clb",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2a",
    ),
    TourWalk(
        id="W6",
        title="externalTrafficPolicy: Local (client → NLB → node 2:30082 → a local pod, no SNAT)",
        talk='"externalTrafficPolicy: Local" (36:48–38:40)',
        src=CLIENT,
        dst="lb/default/app1-nlb-local",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2a",
    ),
    TourWalk(
        id="W7",
        title="NLB with target type IP: straight to the pod, from the NLB's address",
        talk='"Target type IP" (38:40–40:57)',
        src=CLIENT,
        dst="lb/default/app1-nlb-ip",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2a",
    ),
    TourWalk(
        id="W8",
        title="Ingress via an ALB, target type IP: GET /order → the order pods",
        talk='"Life of a packet – Ingress" and "(return)" (40:57–44:29)',
        src=CLIENT,
        dst="ingress/default/myingress",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2a",
        host="www.example.com",
        path="/order",
    ),
    TourWalk(
        id="W8b",
        title="GET /rating → pod 61 on node 1's eth1; its reply leaves by rule 1536",
        talk="talk-walks.md W8 (the /rating branch)",
        src=CLIENT,
        dst="ingress/default/myingress",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2a",
        host="www.example.com",
        path="/rating",
    ),
    TourWalk(
        id="W8c",
        title="GET /nope: the ALB's default rule answers 404 itself; no target sees it",
        talk="talk-walks.md W8 (GET /anything-else)",
        src=CLIENT,
        dst="ingress/default/myingress",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2a",
        host="www.example.com",
        path="/nope",
    ),
    TourWalk(
        id="W9",
        title="Stitching it together: DNS → the IGW → the ALB in AZ c → a pod in any AZ",
        talk='"Stitching it together" (44:29–46:39)',
        src=CLIENT,
        dst="dns/www.example.com",
        proto="tcp",
        sport=None,
        dport=80,
        az="eu-west-2c",
        path="/order",
    ),
    TourWalk(
        id="W10",
        title="Pod to internet with VPC CNI SNAT (pod 51 → 198.51.100.20:443)",
        talk='"VPC CNI SNAT" (46:27–48:08)',
        src=POD_51,
        dst=WEB,
        proto="tcp",
        sport=41000,
        dport=443,
    ),
    TourWalk(
        id="W10b",
        title="Pod 61 (eth1) to the internet: rule 1024 sends it out of eth0, SNATed to .50",
        talk='"VPC CNI SNAT" (46:27–48:08); talk-walks.md W10b',
        src=POD_61,
        dst=WEB,
        proto="tcp",
        sport=41000,
        dport=443,
    ),
    TourWalk(
        id="W10c",
        title="Through a NAT gateway: node SNAT to .50, then the gateway's to 192.168.0.10",
        talk="talk-walks.md W10c (variant nat: public-a routed to the NAT gateway)",
        src=POD_51,
        dst=WEB,
        proto="tcp",
        sport=41000,
        dport=443,
        variant="nat",
    ),
    TourWalk(
        id="W10d",
        title="External SNAT: pod 61 leaves eth1 with its own IP, the NAT gateway translates",
        talk="talk-walks.md W10d (variant externalSnat: AWS_VPC_K8S_CNI_EXTERNALSNAT=true)",
        src=POD_61,
        dst=WEB,
        proto="tcp",
        sport=41000,
        dport=443,
        variant="externalSnat",
    ),
)

NODE_3 = "node/ip-192-168-2-90.eu-west-2.compute.internal"
POD_91 = "pod/default/app1-5f7d9c6b8-b9v6s"

BEYOND_THE_TALK: tuple[TourWalk, ...] = (
    TourWalk(
        id="X1",
        title="Across subnets and AZs (pod 51 → pod 91), routed both ways",
        talk="not in the talk: the VPC router in both directions",
        src=POD_51,
        dst=POD_91,
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="X2",
        title="A node to a pod (node 3 → pod 51): the reply marks the connection 0x80",
        talk="not in the talk: M1 sets the connmark on the reply arriving on eth0",
        src=NODE_3,
        dst=POD_51,
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="X3",
        title="ICMP echo (pod 61 → pod 91)",
        talk="not in the talk: an echo request and its reply under conntrack",
        src=POD_61,
        dst=POD_91,
        proto="icmp",
        sport=None,
        dport=None,
    ),
    TourWalk(
        id="X4",
        title="UDP (pod 71 → pod 61)",
        talk="not in the talk: one datagram each way",
        src=POD_71,
        dst=POD_61,
        proto="udp",
        sport=41000,
        dport=53,
    ),
    TourWalk(
        id="X5",
        title="Dropped by strict rp_filter (pod 51 → node 3's eth1 address 192.168.2.100)",
        talk="not in the talk: an ENI's own address is reached on it but routed back via eth0",
        src=POD_51,
        dst="ip/192.168.2.100",
        proto="tcp",
        sport=41000,
        dport=443,
    ),
    TourWalk(
        id="X6",
        title="Hairpin (pod 61 → its own Service rating): masqueraded to reach itself",
        talk="not in the talk: KUBE-SEP's `-s <endpoint>` rule marks the packet for MASQUERADE",
        src=POD_61,
        dst="svc/default/rating",
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="X7",
        title="A Service without endpoints (pod 51 → app3): REJECTed",
        talk="not in the talk: filter KUBE-SERVICES answers icmp-port-unreachable",
        src=POD_51,
        dst="svc/default/app3",
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="X8",
        title="externalTrafficPolicy: Local on node 2 (client → node 2:30082)",
        talk="W6's kube-proxy part: KUBE-SVL picks a local endpoint, the client IP is kept",
        src=CLIENT,
        dst=NODE_2,
        proto="tcp",
        sport=None,
        dport=30082,
    ),
    TourWalk(
        id="X9",
        title="externalTrafficPolicy: Local on node 1, which has no endpoint (client → :30082)",
        talk="W6's negative: filter KUBE-EXTERNAL-SERVICES drops (no local endpoints)",
        src=CLIENT,
        dst=NODE_1,
        proto="tcp",
        sport=None,
        dport=30082,
    ),
    TourWalk(
        id="X10",
        title="ClientIP session affinity (pod 51 → app1-sticky, twice): the second sticks",
        talk="not in the talk: `-m recent` remembers the client per endpoint",
        src=POD_51,
        dst="svc/default/app1-sticky",
        proto="tcp",
        sport=41000,
        dport=80,
        again=True,
    ),
    TourWalk(
        id="X11",
        title="A node port on localhost (node 1 → 127.0.0.1:30080): DNAT away, masqueraded",
        talk="not in the talk: iptables.localhostNodePorts, the `-d 127.0.0.0/8` rule",
        src=NODE_1,
        dst="ip/127.0.0.1",
        proto="tcp",
        sport=41000,
        dport=30080,
    ),
    TourWalk(
        id="X12",
        title="A pod asks IMDS for a token: the answer (TTL = hop limit 1) dies at the node",
        talk="not in the talk: why pods cannot get IMDSv2 tokens (vpc-fabric.md §8.4)",
        src=POD_51,
        dst="ip/169.254.169.254",
        proto="tcp",
        sport=41000,
        dport=80,
    ),
    TourWalk(
        id="X14",
        title="Loopback through a preserving NLB: node 1 asks the NLB, which may pick node 1",
        talk="not in the talk: aws-load-balancers.md §2.2 (the top complaint, gotcha 19)",
        src=NODE_1,
        dst="lb/default/app1-nlb",
        proto="tcp",
        sport=41000,
        dport=80,
        az="eu-west-2a",
    ),
    TourWalk(
        id="X13",
        title="The internet client tries the NAT gateway's EIP: no session, dropped",
        talk="not in the talk: a NAT gateway lets nothing in (vpc-fabric.md §5)",
        src=CLIENT,
        dst="ip/192.0.2.10",
        proto="tcp",
        sport=None,
        dport=443,
        variant="nat",
    ),
)
"""Walks the lab proves besides the talk's: other paths (across AZs, from a node), other
protocols, and a drop, so `lab verify` and `tour --lab` hold the kernel to more than one shape."""

PROVEN: tuple[TourWalk, ...] = tuple(w for w in TOUR + BEYOND_THE_TALK if w.lab)
"""What `lab verify` and `tour --lab` send by default."""

AWAITING_THE_LAB: tuple[TourWalk, ...] = tuple(w for w in TOUR + BEYOND_THE_TALK if not w.lab)
"""Walks the simulator answers that the lab cannot send yet: `lab verify` would report them not
verified, so they are not among `PROVEN` (none now: the whole talk is proven)."""

KNOWN: tuple[TourWalk, ...] = TOUR + BEYOND_THE_TALK
"""Every walk `--walk ID` may name."""


def in_configuration(walks: Sequence[TourWalk], variant: str | None = None) -> tuple[TourWalk, ...]:
    """The walks asked in this configuration of the spec (no variant, or `variant`): what a lab
    built from that configuration can prove."""
    return tuple(walk for walk in walks if walk.variant == variant)


def tour_walks(
    ids: Sequence[str] | None, among: tuple[TourWalk, ...] | None = None
) -> list[TourWalk]:
    """The walks with these ids, in tour order (all of `among`, by default `PROVEN`, when none
    are named; any of `KNOWN` may be named); an unknown id is an input error listing the known
    ones."""
    if among is None:
        among = KNOWN if ids else PROVEN
    ids = list(ids or ())
    known = {walk.id for walk in among}
    unknown = [walk_id for walk_id in ids if walk_id not in known]
    if unknown:
        raise InputError(
            f"unknown walk {', '.join(unknown)}",
            fix="one of " + ", ".join(walk.id for walk in among),
        )
    return [walk for walk in among if not ids or walk.id in ids]
