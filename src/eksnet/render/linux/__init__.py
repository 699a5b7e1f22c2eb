"""Linux command views: what `ip`, `arp -n`, `sysctl` and `iptables-save` print for a namespace.

One module per view, each a pure function of a `Namespace` returning the tool's stdout (every
line ending in a newline, trailing spaces kept where the tool prints them). A failure is raised
as `CommandFailed` with the tool's own stderr text and exit status. `eksnet.render.exec` maps a
command line onto these functions.
"""

from eksnet.render.linux.address import ip_address, ip_link
from eksnet.render.linux.arp import arp_numeric
from eksnet.render.linux.iptables_save import iptables_save
from eksnet.render.linux.neigh import ip_neigh
from eksnet.render.linux.route import ip_route
from eksnet.render.linux.rule import ip_rule
from eksnet.render.linux.sysctl import sysctl_read

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
