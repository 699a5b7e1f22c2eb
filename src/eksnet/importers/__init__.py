"""Importers: a real node's dumps in, the state's own types out.

A user debugging EKS sends the bundle `eks-log-collector.sh` writes on each node (repo
awslabs/amazon-eks-ami, `log-collector-script/linux/`), or the outputs of a few commands. This
layer reads them into a `Namespace` (links, addresses, routes, rules, neighbours, sysctls,
iptables-save text) plus the raw facts the state has no place for (conntrack entries, ipamd's
introspection JSON), saying per fact whether it was observed or assumed. It sits on `kernel`
(the iptables parser, the local table's derivation) and `controllers`; it does no I/O except
reading the given input (`bundle.read_node`), and every parser is text in, values out.

Modules: `iproute_dump` (`ip rule`, `ip route show table all`, `ip neigh`), `link_dump`
(`ip addr`, `ip -j addr`, `ifconfig`), `sysctl_dump` (`sysctl -a`), `iptables_dump`
(`iptables-save`), `conntrack_dump` (`conntrack -L`), `bundle` (files → `ObservedNode`).

## eks-log-collector.sh versions supported (read from the script's git history)

The script writes its findings under `/tmp/eks-log-collector` and packs that directory's
*contents* (`tar --directory=… .`), so the tarball's members are `./networking/…`, `./sysctls/…`
with no folder of their own; the tarball itself is `/var/log/eks_<instance-id>_<UTC time
%Y-%m-%d_%H%M-%Z>_<version>.tar.gz`. This is so in every version below.

Per version (`PROGRAM_VERSION`; the years it was current), for the files read here:

* 0.7.3 (Nov 2022 – Mar 2023), 0.7.4 and 0.7.5 (Mar – Jul 2023), 0.7.6 up to 2024-03-04:
  `networking/iprule.txt` = `ip rule show`; `networking/iproute.txt` = `ip route show table
  all`; `networking/iptables-save.txt` = `iptables-save` (the node's default backend);
  `networking/ifconfig.txt` = `ifconfig` (written empty where net-tools is missing);
  `networking/conntrack.txt` = a header, `conntrack -S`, a header, `conntrack -L`;
  `sysctls/sysctl_all.txt` = `sysctl --all`; `ipamd/{enis,pods,networkutils-env-settings,
  ipamd-env-settings,eni-configs}.json` = ipamd's introspection (`curl --silent
  localhost:61679/v1/NAME`, an empty file when ipamd does not answer); `ipamd/ipam.json`
  copied from `/var/run/aws-node`.
* 0.7.6 from 2024-03-04 (the version number did not change), 0.7.7 (May 2024), 0.7.8 up to
  2024-12-17: the same, plus IPv6 twins `ip6rule.txt`, `ip6route.txt`, `conntrack6.txt`,
  `ip6tables-save.txt` (not read: eksnet models IPv4).
* 0.7.8 from 2024-12-17 and 0.7.9 (Nov 2025 –): `ifconfig.txt` and `conntrack.txt` only where
  the tool is installed (AL2023 ships no `ifconfig`, so such a bundle has no link view at
  all); from 2025-07-18 every file of `/var/run/aws-node` is copied into `ipamd/`.

Where a part is missing (no `ifconfig.txt` on AL2023, an empty introspection answer), the
import fills the part with a fresh namespace's contents and says so (`ObservedNode.assumed`).
The bundle carries no `ip addr` and no `ip neigh`: a plain dump (`bundle.PLAIN_FILES`) can.
"""
