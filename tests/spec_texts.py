"""Spec text several test files quote: one copy, with its source.

These are expected values taken from the specs, not produced by eksnet.
"""

from __future__ import annotations

VPC_CNI_MANGLE = """\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80
-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
COMMIT
"""
"""ipamd's mangle table (rules M1–M3) on a node whose primary interface is eth0, default
connmark 0x80, as `iptables-save` prints it: vpc-cni.md §2.7, talk-walks.md §4.3."""
