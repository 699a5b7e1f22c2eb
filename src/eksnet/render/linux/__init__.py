"""Linux command views: what `ip`, `arp -n`, `sysctl` and `iptables-save` print for a namespace.

One module per view, each a pure function of a `Namespace` returning the tool's stdout (every
line ending in a newline, trailing spaces kept where the tool prints them). A failure is raised
as `CommandFailed` with the tool's own stderr text and exit status. `eksnet.render.exec` maps a
command line onto these functions.

The views are imported when first used (PEP 562 `__getattr__`), not with the package:
`iptables-save` brings in the whole netfilter model, and `eksnet exec … ip rule show` should
not pay for it (start-up is part of `exec`'s interface).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksnet.render.linux.address import ip_address, ip_link
    from eksnet.render.linux.arp import arp_numeric
    from eksnet.render.linux.iptables import iptables_save
    from eksnet.render.linux.neigh import ip_neigh
    from eksnet.render.linux.route import ip_route
    from eksnet.render.linux.rule import ip_rule
    from eksnet.render.linux.sysctl import sysctl_read

_VIEWS = {
    "arp_numeric": "arp",
    "ip_address": "address",
    "ip_link": "address",
    "ip_neigh": "neigh",
    "ip_route": "route",
    "ip_rule": "rule",
    "iptables_save": "iptables",
    "sysctl_read": "sysctl",
}
"""Each view and the module that holds it."""

__all__ = [
    "arp_numeric",
    "ip_address",
    "ip_link",
    "ip_neigh",
    "ip_route",
    "ip_rule",
    "iptables_save",
    "sysctl_read",
]


def __getattr__(name: str) -> Any:
    module = _VIEWS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
