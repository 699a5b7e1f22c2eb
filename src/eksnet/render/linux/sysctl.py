"""`sysctl [-n] KEY` (procps-ng 4.0) reading the simulated value [meas on 6.18].

`KEY = VALUE`, or just `VALUE` with `-n`. A key may be written with slashes
(`net/ipv4/conf/eth0/rp_filter`); sysctl prints it with dots. An unknown key fails with
`sysctl: cannot stat /proc/sys/...: No such file or directory` and exit status 1. Values are
printed verbatim (`net.ipv4.ip_local_port_range = 32768<TAB>60999`).

The value comes from `kernel.sysctl.sysctl_value`, which knows the defaults and how `all`,
`default` and per-device values combine, and which itself fails (`CommandFailed`) for a key of
a device the namespace does not have.
"""

from __future__ import annotations

from eksnet.dataplane.state import Namespace
from eksnet.kernel.sysctl import sysctl_value

_SWAP_SEPARATORS = str.maketrans("./", "/.")


def dotted(key: str) -> str:
    """The key as sysctl prints it: a slash path is turned into the dotted form."""
    return key.translate(_SWAP_SEPARATORS) if "/" in key else key


def sysctl_read(ns: Namespace, key: str, *, value_only: bool = False) -> str:
    """`sysctl [-n] KEY` in `ns`."""
    name = dotted(key)
    value = sysctl_value(ns, name)
    return f"{value}\n" if value_only else f"{name} = {value}\n"
