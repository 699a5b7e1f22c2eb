"""`sysctl -a` (procps-ng, `KEY = VALUE` per line) back into the pairs a `Namespace` holds.

eks-log-collector.sh writes `sysctl --all` to `sysctls/sysctl_all.txt` (stderr dropped), so the
file holds every key readable on the node: far more than a state writes. The import keeps them
all, in file order; `sysctl_differences` then says, for the keys a state writes, where the node
disagrees. A key whose device name has a dot is printed with a slash there
(`net.ipv4.conf.eth0/100.rp_filter`), as `render/linux/sysctl.py` explains; keys are kept as
printed. A value may be empty (`kernel.domainname = `) or hold tabs
(`net.ipv4.ip_local_port_range = 32768<TAB>60999`), which the kernel prints and a state may
write with a space: values are compared with their whitespace runs made one space.
"""

from __future__ import annotations

from collections.abc import Iterable

from eksnet.importers._lines import numbered

SEPARATOR = " = "


def parse_sysctl_all(text: str, source: str) -> tuple[tuple[str, str], ...]:
    """`sysctl -a` → (key, value) pairs in file order."""
    pairs: list[tuple[str, str]] = []
    for cursor, line in numbered(text, source):
        key, sep, value = line.partition(SEPARATOR)
        if not sep and line.rstrip().endswith(" ="):
            key, sep, value = line.rstrip()[:-2], SEPARATOR, ""
        if not sep or not key or any(c.isspace() for c in key) or key.startswith("sysctl:"):
            cursor.fail(
                f"not a `KEY = VALUE` line of `sysctl -a`: {line.strip()!r}",
                fix="the file is truncated or garbled; dump it again with `sysctl -a`",
            )
        pairs.append((key, value))
    return tuple(pairs)


def same_value(a: str, b: str) -> bool:
    """Whether two sysctl values are the same once whitespace runs are one space."""
    return a.split() == b.split()


def sysctl_differences(
    written: Iterable[tuple[str, str]], observed: Iterable[tuple[str, str]]
) -> tuple[str, ...]:
    """For every key a state writes (its last value counts), how the node's value differs or
    that the node lacks the key; empty when the node holds every written value."""
    want = dict(written)
    have = dict(observed)
    found: list[str] = []
    for key, value in want.items():
        if key not in have:
            found.append(f"{key}: written {value!r}, not in the dump")
        elif not same_value(have[key], value):
            found.append(f"{key}: written {value!r}, dumped {have[key]!r}")
    return tuple(found)
