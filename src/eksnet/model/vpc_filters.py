"""The words of security group and NACL rules in a spec: protocols and port ranges.

AWS keeps a rule's protocol as an IANA number (`"-1"` for all) and its ports as a range of
destination ports; ICMP reuses the two port fields for type and code (vpc-fabric.md §2.1, §3). A
spec writes them as people do (`tcp`, `"30080"`, `"1024-65535"`, `"3:4"` for ICMP type 3 code 4);
these functions turn that into AWS's form, or say what is wrong with it. Pure and shared by the
cross-checks (`model.validate`, which knows the lines) and the controller that builds the state.
"""

from __future__ import annotations

import re

PROTOCOLS = {"all": -1, "-1": -1, "tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}
WITH_PORTS = frozenset({6, 17, 132})
ICMP = frozenset({1, 58})

_RANGE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")
_ICMP = re.compile(r"(-1|\d{1,3})(?::(-1|\d{1,3}))?")


class RuleProblem(ValueError):
    """What is wrong with a rule's protocol or ports, and how to fix it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def protocol_number(text: str) -> int:
    """`tcp` → 6, `all` → -1, `"50"` → 50."""
    if text in PROTOCOLS:
        return PROTOCOLS[text]
    number = int(text)
    if not 0 <= number <= 255:
        raise RuleProblem(f"protocol {text} is not an IP protocol number", "use 0–255 or a name")
    return number


def port_range(ports: str | int | None, protocol: int) -> tuple[int | None, int | None]:
    """The rule's (from, to): destination ports for TCP, UDP and SCTP, (type, code) for ICMP
    (-1: any), (None, None) for every port or a protocol without ports."""
    if ports is None:
        if protocol in ICMP:
            return -1, -1
        return None, None
    text = str(ports)
    if protocol == -1:
        raise RuleProblem(
            f"ports {text} with protocol all: a rule for all traffic has no ports",
            "drop `ports`, or name the protocol (tcp, udp)",
        )
    if protocol in ICMP:
        match = _ICMP.fullmatch(text)
        if match is None:
            raise RuleProblem(
                f"ICMP ports {text!r}: ICMP rules give a type and an optional code",
                'write "8" (echo request) or "3:4" (type 3, code 4)',
            )
        icmp_type = int(match.group(1))
        code = int(match.group(2)) if match.group(2) is not None else -1
        if icmp_type > 255 or code > 255:
            raise RuleProblem(f"ICMP type/code {text} is above 255", "use 0–255 or -1 for any")
        return icmp_type, code
    if protocol not in WITH_PORTS:
        raise RuleProblem(
            f"ports {text} with protocol {protocol}: only TCP, UDP and SCTP have ports",
            "drop `ports`",
        )
    match = _RANGE.fullmatch(text)
    if match is None:
        raise RuleProblem(f"ports {text!r} is not a port or a range", 'write "443" or "1024-65535"')
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if not 0 <= low <= high <= 65535:
        raise RuleProblem(
            f"ports {text}: not a range within 0–65535", 'write "LOW-HIGH" with LOW ≤ HIGH'
        )
    return low, high
