"""The VPC's per-packet pipeline as data: which judgement comes when (vpc-fabric.md §1.3).

A packet an ENI puts on the fabric is judged in the order of `STAGES`; the walk engine runs one
handler per stage name in exactly this order, so the order is stated once, here, each stage
with the component that judges, the drop code it can end with and why it sits where it does.
`docs/vpc-pipeline.md` prints the same table for people.

A packet for the internet gateway stops after `flow-log-egress` (the gateway translates it and
sends it out); one the internet gateway lets in starts at `nacl-ingress` with the owner of its
translated destination (`ENTERING`); a NAT gateway's ENI receives at the entering stages and
sends its translated packet from `source-check` again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    component: str
    drops: tuple[str, ...]
    why: str


STAGES: tuple[Stage, ...] = (
    Stage(
        "source-check",
        "the sending ENI",
        ("vpc-source-check", "vpc-broadcast"),
        "the ENI must own what it sends (§1.6), before anything else looks at the packet",
    ),
    Stage(
        "host-served",
        "the instance's host",
        (),
        "IMDS, the Resolver and time sync answer for the instance: no route, NACL, security "
        "group or flow log applies (§1.1, §8.4)",
    ),
    Stage(
        "sg-egress",
        "the sending ENI's security groups",
        ("sg-egress",),
        "outbound rules as the packet leaves (§2.2); ENIs without groups (a NAT gateway's) skip",
    ),
    Stage(
        "route",
        "the source subnet's router",
        ("vpc-no-route", "vpc-blackhole", "vpc-no-owner", "vpc-destination-check"),
        "layer 2 inside the subnet, else the source subnet's route table (§1.4, §1.7)",
    ),
    Stage(
        "nacl-egress",
        "the source subnet's network ACL",
        ("nacl-egress",),
        "only when the packet leaves its subnet; outbound entries test the destination (§3)",
    ),
    Stage(
        "flow-log-egress",
        "the sending ENI's flow log",
        (),
        "ACCEPT; a security group or NACL deny above was logged REJECT here (§6.1)",
    ),
    Stage(
        "nacl-ingress",
        "the destination subnet's network ACL",
        ("nacl-ingress",),
        "only when the packet enters another subnet; inbound entries test the source (§3)",
    ),
    Stage(
        "destination-check",
        "the receiving ENI",
        ("vpc-destination-check",),
        "the ENI must own what it receives (§1.6)",
    ),
    Stage(
        "sg-ingress",
        "the receiving ENI's security groups",
        ("sg-ingress",),
        "inbound rules, or the reply of a flow the ENI tracked (§2.3)",
    ),
    Stage(
        "flow-log-ingress",
        "the receiving ENI's flow log",
        (),
        "ACCEPT; a NACL inbound or security group deny was logged REJECT (§1.3 step 7)",
    ),
)

NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
ENTERING: tuple[str, ...] = NAMES[NAMES.index("nacl-ingress") :]
"""The stages of a packet entering from a gateway (the internet gateway's inbound side)."""


def table() -> str:
    """The stages as a Markdown table (what `docs/vpc-pipeline.md` holds)."""
    lines = ["| # | stage | judged by | drop codes | why here |", "|---|---|---|---|---|"]
    for number, stage in enumerate(STAGES, 1):
        drops = ", ".join(stage.drops) or "—"
        lines.append(f"| {number} | {stage.name} | {stage.component} | {drops} | {stage.why} |")
    return "\n".join(lines)
