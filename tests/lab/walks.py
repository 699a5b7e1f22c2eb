"""W1 of talk-walks.md §3 (pod 51 → pod 61, same node), written by hand from the spec.

It lets the lab's verification be tested end to end independently of the walk engine; the
engine's own walks are verified in `test_verify.py::test_tour_walks_agree_with_the_kernel`.
Everything here is the spec's: the frames of W1's table, node 1's rules by their place in the
v1.19.2 `iptables-save` of §4.3 with kube-proxy's jumps first in each chain (mangle M2 =
PREROUTING #2; nat PREROUTING #1 = KUBE-SERVICES, C1 = #2 → AWS-CONNMARK-CHAIN-0 #1 RETURN, C4 =
#3; POSTROUTING #1 = KUBE-POSTROUTING → RETURN, S1 = #2 → AWS-SNAT-CHAIN-0 #1 RETURN; filter
FORWARD's four kube-proxy jumps, three of them for NEW packets only; the SYN-ACK from pod 61's
veth matches M2 and KUBE-FORWARD's ESTABLISHED rule, nat sees first packets only), the
conntrack entry of W1 in the states linux-dataplane.md §6.2 gives a SYN and a SYN-ACK, and the
routes `ip route get` prints for the decisions of W1 (rule 512 → main → the veth route).
"""

from __future__ import annotations

from ipaddress import IPv4Address

from eksnet.walk.model import (
    ConntrackRecord,
    Decision,
    Disposition,
    Endpoint,
    Flow,
    Hop,
    Packet,
    RouteAnswer,
    Step,
    Walk,
    Where,
)

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"
POD_51 = "cni-3f1c2b7e-9a4d-4c60-8e21-5b7d0a9c4f51"
POD_61 = "cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935"
A51, A61 = IPv4Address("192.168.1.51"), IPv4Address("192.168.1.61")
M51, V51 = "2a:00:c0:a8:01:33", "2e:00:c0:a8:01:33"
M61, V61 = "6a:40:16:85:c3:34", "06:5e:c8:ae:85:be"


def _hop(
    where: Where,
    iif: str | None,
    oif: str | None,
    pin: Packet | None,
    pout: Packet | None,
    route: Decision | None = None,
    answer: RouteAnswer | None = None,
    rules: tuple[tuple[str, str, int], ...] = (),
) -> Hop:
    packet = pin or pout
    steps = [
        Step(
            "netfilter",
            "rules",
            tuple(Decision("iptables", f"{t} {c} #{p}", t, None, c, p) for t, c, p in rules),
        )
    ]
    if route:
        steps.append(Step("route", "route", (route,), before=packet, route=answer))
    if oif is None:
        steps.append(Step("deliver", "delivered"))
    return Hop(where, iif, oif, tuple(steps), pin, pout)


FORWARD_RULES = (
    ("mangle", "PREROUTING", 2),  # M2 -i eni+ restore
    ("nat", "PREROUTING", 1),  # -j KUBE-SERVICES: no Service matches 192.168.1.61
    ("nat", "PREROUTING", 2),  # C1 -i eni+ -j AWS-CONNMARK-CHAIN-0
    ("nat", "AWS-CONNMARK-CHAIN-0", 1),  # -d 192.168.0.0/16 RETURN
    ("nat", "PREROUTING", 3),  # C4 restore
    ("filter", "FORWARD", 1),  # NEW -j KUBE-PROXY-FIREWALL (empty)
    ("filter", "FORWARD", 2),  # -j KUBE-FORWARD: nothing for a NEW unmarked packet
    ("filter", "FORWARD", 3),  # NEW -j KUBE-SERVICES (no REJECT matches)
    ("filter", "FORWARD", 4),  # NEW -j KUBE-EXTERNAL-SERVICES (no DROP matches)
    ("nat", "POSTROUTING", 1),  # -j KUBE-POSTROUTING
    ("nat", "KUBE-POSTROUTING", 1),  # no 0x4000 mark: RETURN
    ("nat", "POSTROUTING", 2),  # S1 -j AWS-SNAT-CHAIN-0
    ("nat", "AWS-SNAT-CHAIN-0", 1),  # -d 192.168.0.0/16 RETURN
)
RETURN_RULES = (
    ("mangle", "PREROUTING", 2),  # M2 on the SYN-ACK from pod 61's veth
    ("filter", "FORWARD", 2),  # -j KUBE-FORWARD
    ("filter", "KUBE-FORWARD", 3),  # RELATED,ESTABLISHED ACCEPT
)
CONNTRACK = (
    "src=192.168.1.51 dst=192.168.1.61 sport=41000 dport=80 {unreplied}"
    "src=192.168.1.61 dst=192.168.1.51 sport=80 dport=41000 mark=0"
)


def w1(*, wrong_mac: bool = False) -> Walk:
    pod51, pod61 = Where("pod", POD_51), Where("pod", POD_61)
    node = Where("node", NODE_1)
    syn = Packet(A51, A61, "tcp", 41000, 80, tcp_flags="S")
    ack = Packet(A61, A51, "tcp", 80, 41000, tcp_flags="S.")
    fwd_main = Decision("route", "192.168.1.61 dev eni69e05c2a0e5 scope link", table="main")
    back_main = Decision("route", "192.168.1.51 dev enib9b00b57dd4 scope link", table="main")
    pod_default = Decision("route", "default via 169.254.1.1 dev eth0", table="main")
    flow = Flow(
        Endpoint("pod", "default/app2-7c9f8d6b5-k5x2p", A51),
        Endpoint("pod", "default/rating-6d8b7c9f5-q6m4t", A61),
        "tcp",
        41000,
        80,
    )
    back_flow = Flow(flow.dst, flow.src, "tcp", 80, 41000)
    out_mac = "02:00:00:00:00:99" if wrong_mac else V61
    gateway = IPv4Address("169.254.1.1")
    pod_out = RouteAnswer("unicast", dev="eth0", gateway=gateway, table="main")
    reply = Walk(
        flow=back_flow,
        direction="return",
        hops=(
            _hop(
                pod61,
                None,
                "eth0",
                None,
                ack.but(src_mac=M61, dst_mac=V61),
                pod_default,
                pod_out,
            ),
            _hop(
                node,
                "eni69e05c2a0e5",
                "enib9b00b57dd4",
                ack.but(src_mac=M61, dst_mac=V61),
                ack.but(src_mac=V51, dst_mac=M51, ttl=63),
                back_main,
                RouteAnswer("unicast", dev="enib9b00b57dd4", table="main", iif="eni69e05c2a0e5"),
                RETURN_RULES,
            ),
            _hop(pod51, "eth0", None, ack.but(src_mac=V51, dst_mac=M51, ttl=63), None),
        ),
        disposition=Disposition("delivered", pod51, "socket"),
        conntrack=(
            ConntrackRecord(
                NODE_1, "tcp 6 60 SYN_RECV " + CONNTRACK.format(unreplied=""), 0, False
            ),
        ),
    )
    return Walk(
        flow=flow,
        direction="forward",
        hops=(
            _hop(
                pod51,
                None,
                "eth0",
                None,
                syn.but(src_mac=M51, dst_mac=V51),
                pod_default,
                pod_out,
            ),
            _hop(
                node,
                "enib9b00b57dd4",
                "eni69e05c2a0e5",
                syn.but(src_mac=M51, dst_mac=V51),
                syn.but(src_mac=out_mac, dst_mac=M61, ttl=63),
                fwd_main,
                RouteAnswer("unicast", dev="eni69e05c2a0e5", table="main", iif="enib9b00b57dd4"),
                FORWARD_RULES,
            ),
            _hop(pod61, "eth0", None, syn.but(src_mac=out_mac, dst_mac=M61, ttl=63), None),
        ),
        disposition=Disposition("delivered", pod61, "socket"),
        conntrack=(
            ConntrackRecord(
                NODE_1,
                "tcp 6 120 SYN_SENT " + CONNTRACK.format(unreplied="[UNREPLIED] "),
                mark=0,
                nat=False,
            ),
        ),
        reply=reply,
    )
