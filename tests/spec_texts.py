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


KUBE_PROXY_6_3 = """\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/shop:https health check node port" -m tcp --dport 32000 -j ACCEPT
-A KUBE-SERVICES -d 172.20.40.40/32 -p tcp -m comment --comment "default/empty:http has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-EXT-KKDGWRPDK6Z5NCHS - [0:0]
:KUBE-EXT-YBRHFGZD3TRL7I6I - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-SEP-KGKHY3WXOAHDLOQO - [0:0]
:KUBE-SEP-KRLMQH7ZE5Z3SNYU - [0:0]
:KUBE-SEP-Q6GVWMRLGDD64Z7S - [0:0]
:KUBE-SEP-RBCHAUNFBKDJMLBH - [0:0]
:KUBE-SEP-USWHGSCEYDC5RTRW - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SVC-KKDGWRPDK6Z5NCHS - [0:0]
:KUBE-SVC-YBRHFGZD3TRL7I6I - [0:0]
:KUBE-SVL-YBRHFGZD3TRL7I6I - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-EXT-KKDGWRPDK6Z5NCHS -m comment --comment "masquerade traffic for default/api:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-KKDGWRPDK6Z5NCHS -j KUBE-SVC-KKDGWRPDK6Z5NCHS
-A KUBE-EXT-YBRHFGZD3TRL7I6I -m comment --comment "masquerade LOCAL traffic for default/shop:https external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-YBRHFGZD3TRL7I6I -m comment --comment "route LOCAL traffic for default/shop:https external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-YBRHFGZD3TRL7I6I
-A KUBE-EXT-YBRHFGZD3TRL7I6I -j KUBE-SVL-YBRHFGZD3TRL7I6I
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "default/api:http" -m tcp --dport 30080 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-KKDGWRPDK6Z5NCHS
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/api:http" -m tcp --dport 30080 -j KUBE-EXT-KKDGWRPDK6Z5NCHS
-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "default/shop:https" -m tcp --dport 31443 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-YBRHFGZD3TRL7I6I
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/shop:https" -m tcp --dport 31443 -j KUBE-EXT-YBRHFGZD3TRL7I6I
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-KGKHY3WXOAHDLOQO -s 10.0.1.24/32 -m comment --comment "default/shop:https" -j KUBE-MARK-MASQ
-A KUBE-SEP-KGKHY3WXOAHDLOQO -p tcp -m comment --comment "default/shop:https" -m tcp -j DNAT --to-destination 10.0.1.24:8443
-A KUBE-SEP-KRLMQH7ZE5Z3SNYU -s 10.0.2.59/32 -m comment --comment "default/shop:https" -j KUBE-MARK-MASQ
-A KUBE-SEP-KRLMQH7ZE5Z3SNYU -p tcp -m comment --comment "default/shop:https" -m tcp -j DNAT --to-destination 10.0.2.59:8443
-A KUBE-SEP-Q6GVWMRLGDD64Z7S -s 10.0.2.58/32 -m comment --comment "default/api:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-Q6GVWMRLGDD64Z7S -p tcp -m comment --comment "default/api:http" -m tcp -j DNAT --to-destination 10.0.2.58:8080
-A KUBE-SEP-RBCHAUNFBKDJMLBH -s 10.0.2.57/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-RBCHAUNFBKDJMLBH -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.0.2.57:8080
-A KUBE-SEP-USWHGSCEYDC5RTRW -s 10.0.1.23/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-USWHGSCEYDC5RTRW -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.0.1.23:8080
-A KUBE-SERVICES -d 172.20.20.20/32 -p tcp -m comment --comment "default/api:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-KKDGWRPDK6Z5NCHS
-A KUBE-SERVICES -d 172.20.30.30/32 -p tcp -m comment --comment "default/shop:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-YBRHFGZD3TRL7I6I
-A KUBE-SERVICES -d 172.20.10.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.0.1.23:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-USWHGSCEYDC5RTRW
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.0.2.57:8080" -j KUBE-SEP-RBCHAUNFBKDJMLBH
-A KUBE-SVC-KKDGWRPDK6Z5NCHS -m comment --comment "default/api:http -> 10.0.2.58:8080" -j KUBE-SEP-Q6GVWMRLGDD64Z7S
-A KUBE-SVC-YBRHFGZD3TRL7I6I -m comment --comment "default/shop:https -> 10.0.1.24:8443" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-KGKHY3WXOAHDLOQO
-A KUBE-SVC-YBRHFGZD3TRL7I6I -m comment --comment "default/shop:https -> 10.0.2.59:8443" -j KUBE-SEP-KRLMQH7ZE5Z3SNYU
-A KUBE-SVL-YBRHFGZD3TRL7I6I -m comment --comment "default/shop:https -> 10.0.1.24:8443" -j KUBE-SEP-KGKHY3WXOAHDLOQO
COMMIT
"""
"""kube-proxy.md §6.3: `iptables-save` of node 1 of the reference cluster (§6.1), nf_tables back
end, the `#` header and footer lines left out (they carry a date)."""

TALK_4_3 = """\
*mangle
-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80
-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
*nat
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0
-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0
-A AWS-CONNMARK-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN
-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80
-A AWS-SNAT-CHAIN-0 -d 192.168.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN
-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 192.168.1.50 --random-fully
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SERVICES -d 10.100.200.10/32 -p tcp -m comment --comment "default/app1 cluster IP" -m tcp --dport 80 -j KUBE-SVC-4QFXEAV27BCWXK5E
-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.1.71:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-CGDVTEPNP2RHKNBA
-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.1.81:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-F7EOZMC462Z6LNNA
-A KUBE-SVC-4QFXEAV27BCWXK5E -m comment --comment "default/app1 -> 192.168.2.91:80" -j KUBE-SEP-KRMQ4J6TVND77YH7
-A KUBE-SEP-CGDVTEPNP2RHKNBA -s 192.168.1.71/32 -m comment --comment "default/app1" -j KUBE-MARK-MASQ
-A KUBE-SEP-CGDVTEPNP2RHKNBA -p tcp -m comment --comment "default/app1" -m tcp -j DNAT --to-destination 192.168.1.71:80
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/app1-nodeport" -m tcp --dport 30080 -j KUBE-EXT-J3KDY2YMAWFNLSIG
-A KUBE-EXT-J3KDY2YMAWFNLSIG -m comment --comment "masquerade traffic for default/app1-nodeport external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-J3KDY2YMAWFNLSIG -j KUBE-SVC-J3KDY2YMAWFNLSIG
-A KUBE-EXT-U6DUQYH3K73AFEIO -m comment --comment "masquerade LOCAL traffic for default/app1-nlb-local external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-U6DUQYH3K73AFEIO -m comment --comment "route LOCAL traffic for default/app1-nlb-local external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-U6DUQYH3K73AFEIO
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
*filter
-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/app1-nlb-local has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30082 -j DROP
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/app1-nlb-local health check node port" -m tcp --dport 32082 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
"""
"""talk-walks.md §4.3: node 1's iptables lines (grouped for reading; the spec asks for the rules
per chain and their order inside a chain, not the order of chains). `*filter (excerpt)` is
written `*filter`."""
