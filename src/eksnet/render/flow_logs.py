"""VPC flow-log records of a walk: what every ENI the packets crossed would write.

The walk carries one `flow-log` step (`EniTraffic`) for every ENI a packet left or entered;
this module aggregates them as AWS does, one record per (ENI, direction, action, 5-tuple as seen
on that ENI) in an aggregation interval (vpc-fabric.md §6.2), and prints each record's fields
in the flow log's format (§6.3):

* `srcaddr`/`dstaddr` follow §6.4: on egress `srcaddr` is the logging ENI's primary private
  IPv4 and `dstaddr` the packet's destination; on ingress `srcaddr` is the packet's source and
  `dstaddr` the ENI's primary. `pkt-srcaddr`/`pkt-dstaddr` are the header. (talk-walks.md §5
  describes the same rule for pod IPs; where the two specs could be read apart, AWS's own
  documentation, quoted in vpc-fabric.md §6, is followed.)
* ICMP has `srcport`/`dstport` 0 (AWS's ping example: `0 0 1`).
* `packets` counts the walk's packets (one each way per connection); `bytes` is their IPv4
  total length as the Linux stack and the lab's sender put them on the wire: a SYN or SYN-ACK
  with Linux's options 60, other TCP segments 40, the lab's UDP datagram (6 bytes of payload)
  34, its echo request or reply (10 bytes of data) 38, an ICMP error 28 plus the packet it
  quotes.
* `start`/`end`: the 60-second aggregation window of a Nitro instance's ENI that holds the walk
  (`start` given, default 1718000000, the spec's own example time).
* `tcp-flags` ORs FIN 1, SYN 2, RST 4 and SYN-ACK 18 (§6.5); not TCP: 0.
* `subnet-id` is the subnet as the spec names it; `az-id` needs the subnet's `azId`;
  `pkt-*-aws-service` is `-` for private, link-local and documentation addresses, and not
  modelled for any other (the state holds no AWS ip-ranges).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from eksnet.dataplane.flow_log_format import FlowLogFormat
from eksnet.dataplane.security import PROTOCOL_NUMBERS
from eksnet.dataplane.state import VpcState
from eksnet.errors import NotModelled
from eksnet.walk.model import EniTraffic, Packet, Walk

DEFAULT_START = 1718000000
"""The aggregation window's start unless given (vpc-fabric.md §6.6's example record's)."""
WINDOW = 60
"""A Nitro instance's ENI aggregates over at most 60 s (§6.2)."""

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
    eni: str
    direction: str
    action: str
    line: str
    """The record in the flow log's format."""


@dataclass(slots=True)
class _Flow:
    first: EniTraffic
    packets: int = 0
    bytes: int = 0
    flags: int = 0


def traffic(walk: Walk) -> list[EniTraffic]:
    """Every ENI observation of one complete way of a walk (a leaf): the request, its reply,
    then the same for the next connection (`then`), in order."""
    found: list[EniTraffic] = []
    for part in (walk, walk.reply):
        if part is None:
            continue
        for hop in part.hops:
            found += [step.seen_by for step in hop.steps if step.seen_by is not None]
    if walk.then is not None:
        for _, _, leaf in walk.then.leaves():
            found += traffic(leaf)
            break  # a sticky next connection has one way; a split one is shown by its leaves
    return found


def records(
    walk: Walk, vpc: VpcState, fmt: FlowLogFormat, *, start: int = DEFAULT_START
) -> list[FlowLogRecord]:
    """The records of one complete way of a walk, in the order the ENIs first saw each flow."""
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
        flow = flows.setdefault(key, _Flow(seen))
        flow.packets += 1
        flow.bytes += _length(packet)
        flow.flags |= _flags(packet)
    return [
        FlowLogRecord(
            flow.first.eni,
            flow.first.direction,
            flow.first.action,
            " ".join(_field(name, flow, vpc, fmt, start) for name in fmt.fields),
        )
        for flow in flows.values()
    ]


def _ports(packet: Packet) -> tuple[int, int]:
    if packet.proto == "icmp":
        return (0, 0)
    return (packet.sport or 0, packet.dport or 0)


def _length(packet: Packet) -> int:
    if packet.proto == "tcp":
        return 60 if packet.tcp_flags in ("S", "S.") else 40
    if packet.proto == "udp":
        return 34
    if packet.proto == "icmp":
        if packet.is_icmp_error:
            assert packet.quoted is not None
            return 28 + _length(packet.quoted)
        return 38
    raise NotModelled(f"the byte count of an {packet.proto} packet in a flow-log record")


def _flags(packet: Packet) -> int:
    flags = packet.tcp_flags or ""
    if packet.proto != "tcp":
        return 0
    value = 0
    if "F" in flags:
        value |= 1
    if "S" in flags:
        value |= 18 if "." in flags else 2
    if "R" in flags:
        value |= 4
    return value


def _service(address: IPv4Address, field: str) -> str:
    if any(address in network for network in NOT_AWS):
        return "-"
    raise NotModelled(f"the flow-log field {field} for {address} (no AWS ip-ranges in the state)")


def _field(name: str, flow: _Flow, vpc: VpcState, fmt: FlowLogFormat, start: int) -> str:
    seen = flow.first
    packet = seen.packet
    eni = vpc.eni(seen.eni)
    subnet = vpc.subnet(eni.subnet)
    egress = seen.direction == "egress"
    sport, dport = _ports(packet)
    values: dict[str, object] = {
        "version": fmt.version,
        "account-id": vpc.account_id,
        "interface-id": eni.id,
        "srcaddr": eni.primary_ip if egress else packet.src,
        "dstaddr": packet.dst if egress else eni.primary_ip,
        "srcport": sport,
        "dstport": dport,
        "protocol": PROTOCOL_NUMBERS[packet.proto],
        "packets": flow.packets,
        "bytes": flow.bytes,
        "start": start,
        "end": start + WINDOW,
        "action": seen.action,
        "log-status": "OK",
        "vpc-id": vpc.id,
        "subnet-id": subnet.name,
        "instance-id": eni.instance_id or "-",
        "tcp-flags": flow.flags,
        "type": "IPv4",
        "pkt-srcaddr": packet.src,
        "pkt-dstaddr": packet.dst,
        "region": vpc.region,
        "sublocation-type": "-",
        "sublocation-id": "-",
        "flow-direction": seen.direction,
        "traffic-path": seen.traffic_path if egress and seen.traffic_path else "-",
    }
    if name == "az-id":
        if subnet.az_id is None:
            raise NotModelled(f"the flow-log field az-id: subnet {subnet.name} has no azId")
        return subnet.az_id
    if name == "pkt-src-aws-service":
        return _service(packet.src, name)
    if name == "pkt-dst-aws-service":
        return _service(packet.dst, name)
    return str(values[name])


def text(walk: Walk, vpc: VpcState, fmt: FlowLogFormat, *, start: int = DEFAULT_START) -> str:
    """Every complete way of the walk with its records, as `walk --flow-logs` prints them."""
    lines = [f"# flow logs, format: {fmt.text()}"]
    for _, label, leaf in walk.leaves():
        if label:
            lines.append(f"# branch {label}")
        found = records(leaf, vpc, fmt, start=start)
        if not found:
            lines.append("# no ENI on this walk writes a flow-log record")
        for record in found:
            lines.append(record.line)
    return "\n".join(lines) + "\n"


def document(
    walk: Walk, vpc: VpcState, fmt: FlowLogFormat, *, start: int = DEFAULT_START
) -> dict[str, object]:
    """The records as JSON-ready data: the format and, per complete way, each record."""
    return {
        "format": fmt.text(),
        "ways": [
            {
                "branch": label,
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
            for _, label, leaf in walk.leaves()
        ],
    }
