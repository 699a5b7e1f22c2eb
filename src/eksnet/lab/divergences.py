"""Every known, explained difference between the lab (the real kernel) and the simulator.

One list, as data. `lab verify` never skips silently: a difference matching an entry here is
printed as *known* with its reason; any other difference fails the run. The same-command test
(`tests/lab/test_same_answer.py`) names its output exceptions in its own table, each with the
reason, because those are about printing, not about where a packet goes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KnownDivergence:
    id: str
    what: str
    """What differs, in the comparison's words (the `kind` of a difference it covers)."""
    kinds: tuple[str, ...]
    """Difference kinds it explains: `not-verifiable`, `wire-missing`, `field:<name>`, ..."""
    reason: str
    where_kind: str | None = None
    """Restrict to differences in a `pod`/`node` namespace, or anywhere (None)."""


KNOWN: tuple[KnownDivergence, ...] = (
    KnownDivergence(
        id="outside-the-lab",
        what="walks that enter or leave through an internet gateway, NAT gateway or load balancer",
        kinds=("not-verifiable",),
        reason=(
            "the lab's VPC fabric is only ENIs, subnets and the VPC router (fabric.py); there is "
            "no IGW, NAT gateway, ELB or internet host namespace, so such a walk cannot be sent"
        ),
    ),
    KnownDivergence(
        id="nat-random-port",
        what="the source port chosen by SNAT/MASQUERADE --random-fully",
        kinds=("field:sport", "field:dport"),
        reason=(
            "the kernel draws the port at random (linux-dataplane §6.6); the simulator's port is a "
            "stand-in, so a port that a NAT step rewrote is compared only as 'rewritten'"
        ),
    ),
)


def known(kind: str) -> tuple[KnownDivergence, ...]:
    return tuple(entry for entry in KNOWN if kind in entry.kinds)
