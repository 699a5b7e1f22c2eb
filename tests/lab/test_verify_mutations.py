"""The verifier can fail: faults injected into the simulator only are caught by `lab verify`.

Each test breaks one simulator function with monkeypatch (never the state the lab was built
from: the lab is already up, built from the unchanged state), simulates a walk with the broken
simulator, and checks that `lab verify` calls it differing and names the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from eksnet.dataplane.state import DataplaneState
from eksnet.kernel import fib
from eksnet.lab.names import LabNames
from eksnet.lab.verify import Verdict, verify_walk
from eksnet.vpc import fabric
from eksnet.walk import engine
from eksnet.walk import netfilter as nf
from eksnet.walk.engine import walk
from eksnet.walk.model import ICMP_ECHO_REQUEST, Packet

pytestmark = pytest.mark.lab

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"
POD_81 = "pod/default/app1-5f7d9c6b8-z8h4k"
POD_91 = "pod/default/app1-5f7d9c6b8-b9v6s"
NODE_3 = "node/ip-192-168-2-90.eu-west-2.compute.internal"


def verdict_of(state: DataplaneState, names: LabNames, src: str, dst: str, **flow: Any) -> Verdict:
    return verify_walk(state, walk(state, src, dst, **flow), names, f"{src} → {dst}")


def kinds(verdict: Verdict) -> set[str]:
    return {difference.kind for difference in verdict.differences}


def test_the_unbroken_simulator_agrees(demo_lab: LabNames, demo_state: DataplaneState) -> None:
    """The baseline every mutation below departs from."""
    assert verdict_of(demo_state, demo_lab, POD_51, POD_81, dport=80).status == "agree"


def test_skipping_netfilter_and_conntrack(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    def no_hooks(self: nf.Passage, hook: Any, packet: Packet, **_: Any) -> nf.HookResult:
        return nf.HookResult((), packet)

    monkeypatch.setattr(nf.Passage, "_hook", no_hooks)
    verdict = verdict_of(demo_state, demo_lab, POD_51, POD_81, dport=80)
    assert verdict.status == "differs"
    assert {"netfilter", "conntrack"} <= kinds(verdict)


def test_the_vpc_router_rewriting_the_source_mac_wrongly(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    original = fabric.deliver

    def keep_sender_mac(vpc: Any, sender: Any, **frame: Any) -> fabric.Delivery:
        delivery = original(vpc, sender, **frame)
        if delivery.kind == "routed":
            return replace(delivery, src_mac=sender.mac)
        return delivery

    monkeypatch.setattr(engine.fabric, "deliver", keep_sender_mac)
    verdict = verdict_of(demo_state, demo_lab, POD_51, POD_81, dport=80)
    assert verdict.status == "differs"
    assert ("field:src_mac", "return") in {(d.kind, d.direction) for d in verdict.differences}


def test_the_source_destination_check_removed(
    monkeypatch: pytest.MonkeyPatch, loose_lab: tuple[LabNames, DataplaneState]
) -> None:
    names, state = loose_lab
    assert verdict_of(state, names, POD_51, "ip/192.168.2.100", dport=443).status == "agree"
    original = fabric.deliver
    checking = engine._VPC_STAGES["source-check"]

    def unchecked(vpc: Any, sender: Any, **frame: Any) -> fabric.Delivery:
        return original(vpc, replace(sender, source_dest_check=False), **frame)

    def stage_unchecked(carry: Any) -> Any:
        carry.sender = replace(carry.sender, source_dest_check=False)
        return checking(carry)

    monkeypatch.setattr(engine.fabric, "deliver", unchecked)
    monkeypatch.setitem(engine._VPC_STAGES, "source-check", stage_unchecked)  # type: ignore[arg-type]
    verdict = verdict_of(state, names, POD_51, "ip/192.168.2.100", dport=443)
    assert verdict.status == "differs"
    assert {"wire-missing", "delivery", "drop:unexpected"} & kinds(verdict)


def test_strict_rp_filter_never_dropping(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    original = fib.validate_source

    def always_passes(ns: Any, **key: Any) -> fib.RpFilterCheck:
        return replace(original(ns, **key), passed=True)

    monkeypatch.setattr(fib, "validate_source", always_passes)
    verdict = verdict_of(demo_state, demo_lab, POD_51, "ip/192.168.2.100", dport=443)
    assert verdict.status == "differs"
    assert {"wire-missing", "delivery", "drop:unexpected"} <= kinds(verdict)


def test_an_echo_request_answered_by_an_echo_request(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    original: Callable[[Packet], Packet] = Packet.reply

    def wrong_type(self: Packet) -> Packet:
        answer = original(self)
        return answer.but(icmp_type=ICMP_ECHO_REQUEST) if self.proto == "icmp" else answer

    monkeypatch.setattr(Packet, "reply", wrong_type)
    verdict = verdict_of(demo_state, demo_lab, POD_61, POD_91, proto="icmp")
    assert verdict.status == "differs"


def test_arp_answered_by_the_router_in_the_subnet(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    original = fabric.arp

    def router_answers(vpc: Any, asking: Any, target: Any) -> fabric.ArpAnswer:
        answer = original(vpc, asking, target)
        router = vpc.subnet(asking.subnet).router_mac
        return replace(answer, mac=router) if answer.mac is not None else answer

    monkeypatch.setattr(engine.fabric, "arp", router_answers)
    verdict = verdict_of(demo_state, demo_lab, POD_51, POD_81, dport=80)
    assert verdict.status == "differs"
    assert "field:dst_mac" in kinds(verdict)


def test_rules_tried_in_insertion_order_not_by_priority(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    monkeypatch.setattr(
        type(demo_state.namespaces[0]), "sorted_rules", lambda self: tuple(reversed(self.rules))
    )
    verdict = verdict_of(demo_state, demo_lab, POD_51, POD_81, dport=80)
    assert verdict.status == "differs"
    assert "route" in kinds(verdict)


def test_the_reply_not_un_nated(
    monkeypatch: pytest.MonkeyPatch, split_lab: tuple[LabNames, DataplaneState]
) -> None:
    names, state = split_lab
    original = nf.nat_rewrite_at

    def forward_only(hook: Any, packet: Any, entry: Any, direction: str) -> Any:
        return packet if direction == "REPLY" else original(hook, packet, entry, direction)

    monkeypatch.setattr(nf, "nat_rewrite_at", forward_only)
    verdict = verdict_of(state, names, POD_51, "ip/10.100.200.10", dport=80)
    assert verdict.status == "differs"
    assert "field:src" in kinds(verdict)


def test_the_connmark_of_the_reply_ignored(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """Node 3 → pod 51: M1 marks the connection 0x80 when the reply arrives on eth0; a simulator
    that drops ct mark changes predicts mark=0 after the reply."""
    original = nf.Passage._table

    def no_ct_marks(self: nf.Passage, *args: Any) -> Any:
        entry = self.entry
        outcome, step = original(self, *args)
        self.entry = entry if entry is None else replace(self.entry, mark=entry.mark)  # type: ignore[arg-type]
        return outcome, step

    monkeypatch.setattr(nf.Passage, "_table", no_ct_marks)
    verdict = verdict_of(demo_state, demo_lab, NODE_3, POD_51, dport=80)
    assert verdict.status == "differs"
    assert "conntrack:mark" in kinds(verdict)


WEB = "ip/198.51.100.20"


def test_the_snat_address_changed(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    assert verdict_of(demo_state, demo_lab, POD_51, WEB, dport=443).status == "agree"
    original = nf.apply_nat

    def another_address(entry: Any, request: Any, address: Any, port: Any) -> Any:
        return original(entry, request, address + 10, port)

    monkeypatch.setattr(nf, "apply_nat", another_address)
    verdict = verdict_of(demo_state, demo_lab, POD_51, WEB, dport=443)
    assert verdict.status == "differs"
    assert {"field:src", "conntrack:reply"} <= kinds(verdict)


def test_random_fully_taken_as_keeping_the_port(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """SNAT --random-fully always picks a port; a simulator that keeps 41000 predicts a fixed
    port the kernel (almost surely) does not use."""

    def keep(table: Any, entry: Any, request: Any, address: Any, chooser: Any) -> int:
        return int(entry.original.sport)

    monkeypatch.setattr(nf, "choose_nat_port", keep)
    verdict = verdict_of(demo_state, demo_lab, POD_51, WEB, dport=443)
    assert verdict.status == "differs"
    assert "field:sport" in kinds(verdict)


def test_the_internet_gateway_mapping_another_public_address(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    original = engine.igw.outbound

    def shifted(vpc: Any, gateway: str, src: Any) -> Any:
        translation = original(vpc, gateway, src)
        if translation.after is None:
            return translation
        return replace(translation, after=translation.after + 1)

    monkeypatch.setattr(engine.igw, "outbound", shifted)
    verdict = verdict_of(demo_state, demo_lab, POD_51, WEB, dport=443)
    assert verdict.status == "differs"


def test_fwmark_compared_without_its_mask(
    monkeypatch: pytest.MonkeyPatch, marked_lab: tuple[LabNames, DataplaneState]
) -> None:
    """Pod 61 to the internet carries mark 0x4080 on node 1: rule 1024 (`fwmark 0x80/0x80`)
    sends it out of eth0. Compared without the mask it misses, rule 1536 sends it to eth1."""
    names, state = marked_lab
    assert verdict_of(state, names, POD_61, WEB, dport=443).status == "agree"
    original = fib._selectors_match

    def unmasked(rule: Any, key: Any) -> bool:
        if rule.fwmark is not None and rule.fwmark != key.mark:
            return False
        return bool(original(replace(rule, fwmark=None, fwmask=None), key))

    monkeypatch.setattr(fib, "_selectors_match", unmasked)
    verdict = verdict_of(state, names, POD_61, WEB, dport=443)
    assert verdict.status == "differs"
    assert "route" in kinds(verdict)


def test_an_icmp_error_sent_from_the_rejected_destination(
    monkeypatch: pytest.MonkeyPatch, reject_lab: tuple[LabNames, DataplaneState]
) -> None:
    """A forwarded packet's error has no source of its own (`__icmp_send` leaves it to routing:
    node 1's 192.168.1.50); a simulator that answers from the ClusterIP is caught."""
    names, state = reject_lab
    monkeypatch.setattr(engine, "_error_source", lambda ns, rejected, local: rejected.dst)
    verdict = verdict_of(state, names, POD_51, "ip/10.100.200.99", dport=80)
    assert verdict.status == "differs"
    # Not a local address, so the simulated error has no route: the kernel's error frames and
    # the client's ECONNREFUSED are what the walk did not predict.
    assert {"wire-unexpected", "delivery"} <= kinds(verdict)


def test_security_groups_that_track_nothing(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """W10's reply (198.51.100.20:443 → node 1) enters only as the reply of a flow eth0's ENI
    tracked: a simulator that forgets tracked flows drops it at sg-cluster; the lab's SG lets it
    in by its own tracking."""
    from eksnet.vpc.security_groups import Tracking

    monkeypatch.setattr(Tracking, "knows", lambda self, eni, headers: False)
    verdict = verdict_of(demo_state, demo_lab, POD_51, "ip/198.51.100.20", dport=443)
    assert verdict.status == "differs"
    assert {"delivery", "wire-unexpected"} & kinds(verdict)


def test_an_nlb_whose_replies_take_the_route_table(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """W6's reply leaves node 2 for the client; the preserving NLB is in its path all the same
    (the fabric steers it). A simulator that lets the route table decide sends it straight to
    the internet gateway, from node 2's own public address: the lab's frames say otherwise."""
    monkeypatch.setattr(engine, "_steered", lambda carry, sender, packet: None)
    verdict = verdict_of(
        demo_state, demo_lab, "ip/203.0.113.10", "lb/default/app1-nlb-local", dport=80
    )
    assert verdict.status == "differs"
    assert {"wire-missing", "field:src", "delivery"} & kinds(verdict)


def test_a_proxy_that_always_sends_through_the_router(
    monkeypatch: pytest.MonkeyPatch, demo_lab: LabNames, demo_state: DataplaneState
) -> None:
    """W8b's ALB node and pod 61's ENI share a subnet: the ALB's own connection reaches the ENI
    at layer 2 (talk-walks.md W7's frame). A simulator that routes it through the subnet router
    claims the router's MAC on node 1's eth1; the lab's frame says otherwise."""
    original = engine._lb_frame

    def routed(vpc: Any, eni: Any, packet: Packet) -> Packet:
        frame = original(vpc, eni, packet)
        return frame.but(dst_mac=vpc.subnet(eni.subnet).router_mac)

    monkeypatch.setattr(engine, "_lb_frame", routed)
    verdict = verdict_of(
        demo_state,
        demo_lab,
        "ip/203.0.113.10",
        "ingress/default/myingress",
        dport=80,
        host="www.example.com",
        path="/rating",
    )
    assert verdict.status == "differs"
    assert {"field:src_mac", "field:dst_mac", "wire-missing"} & kinds(verdict)
