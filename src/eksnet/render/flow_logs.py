"""VPC flow-log records of a walk: what every ENI the packets crossed would write.

The walk carries one `flow-log` step (`EniTraffic`) for every ENI a packet left or entered;
this module aggregates them as AWS does, one record per (ENI, direction, action, 5-tuple as
seen on that ENI) in an aggregation interval (vpc-fabric.md §6.2), and prints each record's
fields in the flow log's format, in the format's order (§6.3):

* `srcaddr`/`dstaddr` follow §6.4: on egress `srcaddr` is the logging ENI's primary private
  IPv4 and `dstaddr` the packet's destination; on ingress `srcaddr` is the packet's source and
  `dstaddr` the ENI's primary. `pkt-srcaddr`/`pkt-dstaddr` are the header.
  Where the specs disagree, AWS's documentation (FL-REC, quoted in vpc-fabric.md §6.3/§6.4)
  wins: talk-walks.md's tables put a pod's own address in `srcaddr` of the record its packet
  writes leaving the node (W0 `eni-…060 192.168.1.61 …`, W2 `eni-…050 192.168.1.51 …`, its
  S13 applies the primary to `dstaddr` only); AWS's `srcaddr` of outgoing traffic is the
  interface's address, "always its primary private IPv4 address", so those records show
  192.168.1.60 and 192.168.1.50 there and the pod in `pkt-srcaddr`.
* `srcport`/`dstport` are `0 0` for ICMP (§6.3; FL-EX's ping record `… 0 0 1 …`).
* `packets` counts the walk's packets on that ENI with that key. A walk carries one packet each
  way (the request's first packet and the first packet of its answer: what the lab sends), so
  a record counts 1, or 2 where the next connection (`then`) has the same key (ICMP: no ports).
  `bytes` is their IPv4 total length as the lab's sender and the Linux stack put them on the
  wire (`lab/agent.py`): a SYN and a SYN-ACK 60 (20 IP + 20 TCP + 20 of Linux's default
  options: MSS 4, SACK-permitted 2, timestamps 10, NOP 1, window scale 3), a RST 40 (the
  kernel's resets, `tcp_v4_send_reset` and `nf_send_reset`, carry no options), any other TCP
  segment 52 (timestamps); the lab's UDP datagram (6 bytes of data, echoed) 34; its echo
  request and the reply (10 bytes of data) 38; an ICMP error 28 plus the packet it quotes
  (Linux quotes up to 548 bytes). Computed only when the format has `bytes`.
* `start`/`end`: one aggregation window holds the whole walk (a Nitro instance's ENI writes
  every 60 s at most, §6.2; the next connection of `then` is a second later). The window is
  `[start, start + 60]` with `start` given as an input (time is an input), default 1718000000,
  vpc-fabric.md §6.6's example record's. AWS's windows are not aligned to the minute, so
  `start` is taken as it is, not rounded.
* `tcp-flags` (§6.5): per packet FIN 1 | SYN 2 | RST 4 | SYN-ACK 18 (ACK, PSH, URG, ECE and CWR
  add nothing: an ACK-only packet 0, a RST-ACK 4), ORed over the record's packets. Not TCP: 0,
  not `-`: FL-REC says "if no flags are sent, the TCP flag value is 0" and §6.5 "no flags → 0";
  AWS keeps `-` for a flag combination it cannot compute, which no walk's packet (S, S., R.)
  has.
* `instance-id`: `-` for a requester-managed ENI (a NAT gateway's) and for an ENI without an
  instance (§6.3). `account-id`: the VPC's account, the owner of every ENI the state holds.
  `subnet-id`: the subnet as the state names it. `az-id` needs the subnet's `azId`.
* `pkt-*-aws-service` is `-` for private, shared, loopback, link-local and documentation
  (RFC 5737) addresses, and not modelled for any other (the state holds no AWS ip-ranges).
* `traffic-path` is the engine's (§6.3: 1 within the VPC, 8 through the internet gateway from
  a Nitro instance, 2 from a NAT gateway's ENI), on egress only; ingress `-`.
* `type` `IPv4`, `log-status` `OK`, `sublocation-type`/`-id` `-` (no Local Zones, Outposts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from eksnet.dataplane.flow_log_format import FlowLogFormat
from eksnet.dataplane.security import PROTOCOL_NUMBERS
from eksnet.dataplane.state import Eni, VpcState
from eksnet.errors import NotModelled
from eksnet.walk.model import EniTraffic, FlowLogAction, Packet, Walk

DEFAULT_START = 1718000000
"""The aggregation window's start unless given (vpc-fabric.md §6.6's example record's)."""
WINDOW = 60
"""A Nitro instance's ENI aggregates over at most 60 s (§6.2)."""
ICMP_QUOTE = 576 - 28
"""How much of the offending packet Linux's `icmp_send` quotes: an error fits in 576 bytes."""

NOT_AWS = tuple(
    IPv4Network(cidr)
    for cidr in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "127.0.0.0/8",
    )
)
"""Addresses no AWS service range holds: private (RFC 1918, shared 100.64/10), link-local,
loopback and the documentation ranges (RFC 5737)."""


@dataclass(frozen=True, slots=True)
class FlowLogRecord:
    """One record an ENI's flow log writes."""

    eni: str
    direction: Literal["ingress", "egress"]
    action: FlowLogAction
    line: str
    """The record in the flow log's format: its fields' values separated by single spaces."""


@dataclass(slots=True)
class _Flow:
    first: EniTraffic
    packets: list[Packet] = field(default_factory=list)


def leaves(walk: Walk) -> Iterator[tuple[float, str, Walk]]:
    """Every complete way of a walk, as `Walk.leaves()` gives them, with a leaf's next
    connection (`then`) split into its own ways too: each comes as the leaf with that one way
    as its `then`, labelled `… · then <that way's label>`."""
    for probability, label, leaf in walk.leaves():
        if leaf.then is None or not leaf.then.branches:
            yield probability, label, leaf
            continue
        for share, then_label, then_leaf in leaf.then.leaves():
            joined = " · ".join(part for part in (label, f"then {then_label}") if part)
            yield probability * share, joined, replace(leaf, then=then_leaf)


def traffic(walk: Walk) -> list[EniTraffic]:
    """Every ENI observation of one complete way of a walk (one of `leaves()`), in order: the
    request, its reply, its later packet (`later`, counted in the same records), then the next
    connection (`then`) and its reply."""
    parts = [walk, walk.reply, walk.later]
    if walk.backend is not None:
        parts += [walk.backend, walk.backend.reply]
    if walk.then is not None:
        parts += [walk.then, walk.then.reply]
    found: list[EniTraffic] = []
    for part in parts:
        if part is None:
            continue
        if part.branches:
            raise ValueError("a split walk has records per way: pass each of leaves(walk)")
        for hop in part.hops:
            found += [step.seen_by for step in hop.steps if step.seen_by is not None]
    return found


def records(
    walk: Walk, vpc: VpcState, fmt: FlowLogFormat, *, start: int = DEFAULT_START
) -> list[FlowLogRecord]:
    """The records of one complete way of a walk (one of `leaves()`), in the order the ENIs
    first saw each flow."""
    flows: dict[tuple[object, ...], _Flow] = {}
    for seen in traffic(walk):
        packet = seen.packet
        key = (
            seen.eni,
            seen.direction,
            seen.action,
            packet.proto,
            packet.src,
            packet.dst,
            _ports(packet),
        )
        flows.setdefault(key, _Flow(seen)).packets.append(packet)
    return [
        FlowLogRecord(
            flow.first.eni, flow.first.direction, flow.first.action, _line(flow, vpc, fmt, start)
        )
        for flow in flows.values()
    ]


def _line(flow: _Flow, vpc: VpcState, fmt: FlowLogFormat, start: int) -> str:
    seen = flow.first
    packet = seen.packet
    eni = vpc.eni(seen.eni)
    egress = seen.direction == "egress"
    sport, dport = _ports(packet)
    values: dict[str, Callable[[], object]] = {
        "version": lambda: fmt.version,
        "account-id": lambda: vpc.account_id,
        "interface-id": lambda: eni.id,
        "srcaddr": lambda: eni.primary_ip if egress else packet.src,
        "dstaddr": lambda: packet.dst if egress else eni.primary_ip,
        "srcport": lambda: sport,
        "dstport": lambda: dport,
        "protocol": lambda: PROTOCOL_NUMBERS[packet.proto],
        "packets": lambda: len(flow.packets),
        "bytes": lambda: sum(_length(sent) for sent in flow.packets),
        "start": lambda: start,
        "end": lambda: start + WINDOW,
        "action": lambda: seen.action,
        "log-status": lambda: "OK",
        "vpc-id": lambda: vpc.id,
        "subnet-id": lambda: eni.subnet,
        "instance-id": lambda: _instance_id(eni),
        "tcp-flags": lambda: _tcp_flags(flow.packets),
        "type": lambda: "IPv4",
        "pkt-srcaddr": lambda: packet.src,
        "pkt-dstaddr": lambda: packet.dst,
        "region": lambda: vpc.region,
        "az-id": lambda: _az_id(vpc, eni),
        "sublocation-type": lambda: "-",
        "sublocation-id": lambda: "-",
        "pkt-src-aws-service": lambda: _service(packet.src, "pkt-src-aws-service"),
        "pkt-dst-aws-service": lambda: _service(packet.dst, "pkt-dst-aws-service"),
        "flow-direction": lambda: seen.direction,
        "traffic-path": lambda: (
            seen.traffic_path if egress and seen.traffic_path is not None else "-"
        ),
    }
    return " ".join(str(values[name]()) for name in fmt.fields)


def _ports(packet: Packet) -> tuple[int, int]:
    if packet.proto == "icmp":
        return (0, 0)
    return (packet.sport or 0, packet.dport or 0)


def _length(packet: Packet) -> int:
    """The packet's IPv4 total length as the lab's sender and Linux send it."""
    if packet.proto == "tcp":
        flags = packet.tcp_flags or ""
        if "S" in flags:
            return 60
        return 40 if "R" in flags else 52
    if packet.proto == "udp":
        return 34
    if packet.proto == "icmp":
        if packet.is_icmp_error:
            assert packet.quoted is not None
            return 28 + min(_length(packet.quoted), ICMP_QUOTE)
        return 38
    raise NotModelled(f"the flow-log field bytes for an {packet.proto} packet")


def _tcp_flags(packets: list[Packet]) -> int:
    value = 0
    for packet in packets:
        flags = (packet.tcp_flags or "") if packet.proto == "tcp" else ""
        if "F" in flags:
            value |= 1
        if "S" in flags:
            value |= 18 if "." in flags else 2
        if "R" in flags:
            value |= 4
    return value


def _instance_id(eni: Eni) -> str:
    if eni.interface_type == "nat_gateway" or eni.instance_id is None:
        return "-"
    return eni.instance_id


def _az_id(vpc: VpcState, eni: Eni) -> str:
    subnet = vpc.subnet(eni.subnet)
    if subnet.az_id is None:
        raise NotModelled(
            f"the flow-log field az-id: subnet {subnet.name} has no azId (of {eni.id})"
        )
    return subnet.az_id


def _service(address: IPv4Address, name: str) -> str:
    if any(address in network for network in NOT_AWS):
        return "-"
    raise NotModelled(f"the flow-log field {name} for {address} (no AWS ip-ranges in the state)")


def _owner(eni: Eni, vpc: VpcState) -> str:
    """Whose ENI it is, for a heading."""
    if eni.interface_type == "nat_gateway":
        gateway = next((item.id for item in vpc.nat_gateways if item.eni == eni.id), None)
        return f"NAT gateway {gateway}" if gateway else "a NAT gateway"
    if eni.node is not None:
        return f"{eni.node} {eni.device}" if eni.device else eni.node
    return eni.instance_id or f"subnet {eni.subnet}"


def text(walk: Walk, vpc: VpcState, fmt: FlowLogFormat, *, start: int = DEFAULT_START) -> str:
    """Every complete way of the walk with its records, as `walk --flow-logs` prints them: per
    way (labelled as the walk's text labels its branches), each ENI's records under a heading,
    as its own log stream holds them."""
    lines = [f"# flow logs, format: {fmt.text()}"]
    for probability, label, leaf in leaves(walk):
        if label:
            lines.append(f"# branch {label} (p={probability:.4f})")
        found = records(leaf, vpc, fmt, start=start)
        if not found:
            lines.append("# no ENI on this walk writes a flow-log record")
        for eni in dict.fromkeys(record.eni for record in found):
            lines.append(f"# {eni} ({_owner(vpc.eni(eni), vpc)})")
            lines += [record.line for record in found if record.eni == eni]
    return "\n".join(lines) + "\n"


def document(
    walk: Walk, vpc: VpcState, fmt: FlowLogFormat, *, start: int = DEFAULT_START
) -> dict[str, object]:
    """The records as JSON-ready data (`walk --json --flow-logs`, key `flowLogs`): the format,
    its version and, per complete way, each record in walk order."""
    return {
        "format": fmt.text(),
        "version": fmt.version,
        "ways": [
            {
                "branch": label,
                "probability": probability,
                "records": [
                    {
                        "eni": record.eni,
                        "direction": record.direction,
                        "action": record.action,
                        "line": record.line,
                    }
                    for record in records(leaf, vpc, fmt, start=start)
                ],
            }
            for probability, label, leaf in leaves(walk)
        ],
    }
