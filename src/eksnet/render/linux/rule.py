"""`ip rule [show]` as iproute2 6.1 prints it [src iprule.c `print_rule`; meas on 6.18].

One line per rule, by priority, insertion order among equals. The words of a line (and why) are
in `kernel/iproute_text.py`, which the walk quotes too.
"""

from __future__ import annotations

from eksnet.dataplane.state import Namespace
from eksnet.kernel.iproute_text import rule_line


def ip_rule(ns: Namespace) -> str:
    """`ip rule show` in `ns`: rules by priority, insertion order among equals."""
    return "".join(rule_line(rule, ns) + "\n" for rule in ns.sorted_rules())
