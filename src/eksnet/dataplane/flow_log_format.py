"""A VPC flow log's `LogFormat`: its fields, their versions, and the format string AWS takes.

The fields of versions 2–5 as vpc-fabric.md §6.3 lists them from AWS's documentation (FL-REC);
a format is `${field}` tokens separated by single spaces, in any order, and its version is the
highest version among its fields (the default format is version 2). Later fields (the ECS
fields of version 7, `reject-reason` of version 8) are refused as not modelled.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from eksnet.errors import InputError, NotModelled

FIELDS: dict[str, tuple[int, str]] = {
    "version": (2, "the record's version: the highest version among the format's fields"),
    "account-id": (2, "the account that owns the ENI"),
    "interface-id": (2, "the ENI that logged the traffic"),
    "srcaddr": (2, "egress: the ENI's primary private IPv4; ingress: the packet's source"),
    "dstaddr": (2, "egress: the packet's destination; ingress: the ENI's primary private IPv4"),
    "srcport": (2, "source port (0 for ICMP)"),
    "dstport": (2, "destination port (0 for ICMP)"),
    "protocol": (2, "IANA protocol number"),
    "packets": (2, "packets in the aggregation interval"),
    "bytes": (2, "bytes in the aggregation interval"),
    "start": (2, "Unix seconds of the interval's first packet"),
    "end": (2, "Unix seconds of the interval's last packet"),
    "action": (2, "ACCEPT or REJECT"),
    "log-status": (2, "OK, NODATA or SKIPDATA"),
    "vpc-id": (3, "the ENI's VPC"),
    "subnet-id": (3, "the ENI's subnet"),
    "instance-id": (3, "the ENI's instance; - for requester-managed ENIs"),
    "tcp-flags": (3, "FIN 1, SYN 2, RST 4, SYN-ACK 18, ORed over the interval"),
    "type": (3, "IPv4, IPv6 or EFA"),
    "pkt-srcaddr": (3, "the source address in the packet header"),
    "pkt-dstaddr": (3, "the destination address in the packet header"),
    "region": (4, "the ENI's Region"),
    "az-id": (4, "the ENI's Availability Zone id"),
    "sublocation-type": (4, "wavelength, outpost or localzone; - otherwise"),
    "sublocation-id": (4, "the sublocation's id; - otherwise"),
    "pkt-src-aws-service": (5, "the AWS service of pkt-srcaddr (ip-ranges), else -"),
    "pkt-dst-aws-service": (5, "the AWS service of pkt-dstaddr (ip-ranges), else -"),
    "flow-direction": (5, "ingress or egress, relative to the ENI"),
    "traffic-path": (5, "egress only: 1 within the VPC, 2 or 8 through an internet gateway …"),
}
"""Every field of versions 2–5: version, meaning."""

LATER_FIELDS = frozenset(
    {
        "ecs-cluster-arn",
        "ecs-cluster-name",
        "ecs-container-instance-arn",
        "ecs-container-instance-id",
        "ecs-container-id",
        "ecs-second-container-id",
        "ecs-service-name",
        "ecs-task-definition-arn",
        "ecs-task-arn",
        "ecs-task-id",
        "reject-reason",
    }
)
"""Fields AWS added after version 5 (ECS, `reject-reason`): known, not modelled."""

DEFAULT_FORMAT = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"
)
"""AWS's default format: the version 2 fields in their fixed order."""

_TOKEN = re.compile(r"\$\{([^{}$ ]*)\}")
"""One `${name}` token; the name is checked against the table afterwards."""


@dataclass(frozen=True, slots=True)
class FlowLogFormat:
    fields: tuple[str, ...]

    @property
    def version(self) -> int:
        return max(FIELDS[name][0] for name in self.fields)

    def text(self) -> str:
        return " ".join(f"${{{name}}}" for name in self.fields)


def parse_format(text: str | None) -> FlowLogFormat:
    """The format a `LogFormat` string gives (None: AWS's default).

    AWS's `LogFormat` is `${field}` tokens separated by spaces; this takes exactly that: one
    space between tokens, none before the first or after the last. A bad format raises
    `InputError` naming the bad token (an unknown field with its close matches, a word that is
    not `${…}`, a field listed twice, an empty format; the caller says where the text came
    from); a field AWS added after version 5 raises `NotModelled` naming it.
    """
    if text is None:
        text = DEFAULT_FORMAT
    if not text.strip():
        raise InputError(
            "the flow-log format is empty", fix="list fields like ${version} ${srcaddr} …"
        )
    fields: list[str] = []
    for word in text.split(" "):
        if not word:
            raise InputError(
                "flow-log format: an empty field (two spaces in a row, or a space at an end)",
                fix="separate the ${fields} by one space each",
            )
        match = _TOKEN.fullmatch(word)
        if match is None:
            bare = word.strip("${}")
            hint = f"write ${{{bare}}}" if bare in FIELDS else "write every field as ${name}"
            raise InputError(
                f"flow-log format: {word!r} is not a ${{field}}",
                fix=f"{hint}, separated by one space",
            )
        name = match.group(1)
        if name in LATER_FIELDS:
            raise NotModelled(f"the flow-log field {name} (after version 5)")
        if name not in FIELDS:
            close = difflib.get_close_matches(name.lower(), FIELDS, n=3)
            hint = (
                f"did you mean {', '.join(close)}?" if close else "see the fields of versions 2–5"
            )
            raise InputError(f"flow-log format: unknown field {name!r}", fix=hint)
        if name in fields:
            raise InputError(f"flow-log format: {name} is listed twice", fix="list each field once")
        fields.append(name)
    return FlowLogFormat(tuple(fields))
