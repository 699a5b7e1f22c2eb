"""Network ACLs: stateless, numbered, first match wins (vpc-fabric.md §3).

Evaluated only where a packet crosses a subnet's boundary: leaving its subnet (that subnet's
outbound entries, which test the destination) and entering another (that subnet's inbound
entries, which test the source); never between ENIs of one subnet. Ports are destination ports
in both directions, so a reply needs its own allow (usually an ephemeral range). The `*` entry
(32767) denies whatever no lower number allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from eksnet.dataplane.security import ALL_PROTOCOLS, PROTOCOL_NUMBERS, NaclEntry, NetworkAcl
from eksnet.vpc.security_groups import Headers


@dataclass(frozen=True, slots=True)
class NaclVerdict:
    acl: NetworkAcl
    subnet: str
    egress: bool
    entry: NaclEntry

    @property
    def allowed(self) -> bool:
        return self.entry.action == "allow"

    def text(self) -> str:
        way = "outbound" if self.egress else "inbound"
        return f"{self.acl.id} ({self.subnet}) {way}: {self.entry.text()}"


def judge(acl: NetworkAcl, subnet: str, *, egress: bool, headers: Headers) -> NaclVerdict:
    for entry in acl.ordered(egress=egress):
        if _matches(entry, headers):
            return NaclVerdict(acl, subnet, egress, entry)
    raise AssertionError(f"{acl.id}: the * entry matches everything")  # NetworkAcl checks it


def _matches(entry: NaclEntry, headers: Headers) -> bool:
    peer = headers.dst if entry.egress else headers.src
    if peer not in entry.cidr:
        return False
    if entry.protocol == ALL_PROTOCOLS:
        return True
    if entry.protocol != headers.protocol:
        return False
    if headers.protocol == PROTOCOL_NUMBERS["icmp"]:
        return entry.icmp_type in (None, -1, headers.icmp_type) and entry.icmp_code in (
            None,
            -1,
            headers.icmp_code,
        )
    if entry.from_port is None or entry.to_port is None:
        return True
    return headers.dport is not None and entry.from_port <= headers.dport <= entry.to_port
