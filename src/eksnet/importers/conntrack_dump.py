"""`conntrack -L` lines, as a node dump or eks-log-collector.sh's `networking/conntrack.txt`.

The collector appends, to one file, a header line, `conntrack -S` (per-CPU statistics), a second
header and `conntrack -L` (the IPv4 table; since March 2024 the IPv6 table goes to
`conntrack6.txt` the same way). The summary `N flow entries have been shown.` goes to stderr and
is not in the file. Only the `-L` section's entries are wanted; they are kept as the raw lines
(the state holds no conntrack table: it is what traffic leaves behind), each checked to be an
entry so that a truncated or garbled file is reported at its line.
"""

from __future__ import annotations

import re

from eksnet.importers._lines import numbered

HEADER = re.compile(r"^\*\*\* Output of conntrack (.*?) \*\*\*\s*$")
"""The collector's section headers: `*** Output of conntrack -S *** ` (with a trailing space),
`*** Output of conntrack -L ***`, `*** Output of conntrack -L -f ipv6 ***`."""
LIST_SECTIONS = frozenset({"-L", "-L -f ipv6"})
PROTOCOLS = frozenset({"tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "dccp", "gre", "unknown"})
_ENTRY = re.compile(r"^(ipv4|ipv6)?\s*(\d+\s+)?([a-z0-9]+)\s+(\d+)\s+(\d+\s+)?\S")
_END = re.compile(r"\buse=\d+\s*$")
"""conntrack-tools ends every entry with its reference count: a line without it was cut."""


def conntrack_lines(text: str, source: str) -> tuple[str, ...]:
    """The `conntrack -L` entries of `text`, verbatim. Without collector headers every line is
    an entry; with them only the `-L` sections' lines are."""
    sectioned = any(HEADER.match(line) for line in text.splitlines())
    keep = not sectioned
    found: list[str] = []
    for cursor, line in numbered(text, source):
        header = HEADER.match(line)
        if header is not None:
            keep = header.group(1) in LIST_SECTIONS
            continue
        if not keep:
            continue
        match = _ENTRY.match(line)
        complete = line.count("src=") >= 2 and _END.search(line) is not None
        if match is None or match.group(3) not in PROTOCOLS or not complete:
            cursor.fail(
                f"not a `conntrack -L` entry: {line.strip()!r}",
                fix="the file is truncated or garbled; an entry has both directions and ends use=N",
            )
        found.append(line.rstrip("\n"))
    return tuple(found)
