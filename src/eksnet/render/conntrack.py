"""`conntrack -L` lines for conntrack entries (linux-dataplane.md §6.7).

Format [meas, conntrack-tools 1.4.7]: the protocol name left-aligned in 8 columns and a space,
the protocol number, the seconds left, the TCP state (TCP only), the original tuple,
`[UNREPLIED]` when no reply was seen, the reply tuple, `[ASSURED]`, `mark=<decimal>`,
`zone=<n>` only when not 0, `use=<n>`, one entry per line, e.g. (wrapped here):

    tcp      6 118 TIME_WAIT src=10.0.1.23 dst=172.20.0.10 sport=49542 dport=80
        src=10.0.1.57 dst=10.0.1.23 sport=8080 dport=49542 [ASSURED] mark=0 use=1
"""

from __future__ import annotations

from eksnet.kernel.conntrack import PROTO_NUMBERS, ConntrackEntry, Tuple


def conntrack_tuple_text(tuple_: Tuple) -> str:
    """`src=A dst=B sport=P dport=Q`, or `src=A dst=B type=T code=C id=I` for ICMP."""
    if tuple_.proto == "icmp":
        return (
            f"src={tuple_.src} dst={tuple_.dst} type={tuple_.icmp_type} "
            f"code={tuple_.icmp_code} id={tuple_.icmp_id if tuple_.icmp_id is not None else 0}"
        )
    return f"src={tuple_.src} dst={tuple_.dst} sport={tuple_.sport} dport={tuple_.dport}"


def conntrack_list_line(entry: ConntrackEntry) -> str:
    """One entry exactly as `conntrack -L` prints it."""
    proto = entry.original.proto
    words = [f"{proto:<8} {PROTO_NUMBERS[proto]} {entry.timeout}"]
    if entry.tcp_state is not None:
        words.append(entry.tcp_state)
    words.append(conntrack_tuple_text(entry.original))
    if not entry.seen_reply:
        words.append("[UNREPLIED]")
    words.append(conntrack_tuple_text(entry.reply))
    if entry.assured:
        words.append("[ASSURED]")
    words.append(f"mark={entry.mark}")
    if entry.zone:
        words.append(f"zone={entry.zone}")
    words.append(f"use={entry.use}")
    return " ".join(words)
