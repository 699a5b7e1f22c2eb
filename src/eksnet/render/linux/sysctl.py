"""`sysctl [-n] KEY` (procps-ng 4.0) reading the simulated value [meas on 6.18].

`KEY = VALUE`, or just `VALUE` with `-n`. A key may be written with slashes
(`net/ipv4/conf/eth0/rp_filter`); sysctl prints it with dots. Values are printed verbatim
(`net.ipv4.ip_local_port_range = 32768<TAB>60999`).

sysctl reads `/proc/sys/` + the key (dots turned into slashes unless the key has a slash), so a
key that is not there fails as `stat` fails on that path, with exit status 1:
`sysctl: cannot stat /proc/sys/net/nonexistent: No such file or directory`, or `Not a directory`
when the path goes on below a file (`net.ipv4.ip_forward.x`). Which files exist is data
measured in fresh namespaces on 6.18 (`PROC_SYS`): the top directories, those of `net`, and the
whole of `net/ipv4` (its files, `route/`, `conf/DEV/`, `neigh/DEV/`), where a node (the init
namespace on a real host) has a few more than a pod. Below any other directory eksnet does not
know which keys exist, and says so (`NotModelled`) rather than guess.

The value comes from `kernel.sysctl.sysctl_value`, which knows the defaults and how `all`,
`default` and per-device values combine.
"""

from __future__ import annotations

from collections.abc import Mapping

from eksnet.dataplane.state import Namespace
from eksnet.errors import CommandFailed, NotModelled, UnsupportedCommand
from eksnet.kernel.sysctl import FRESH_CONF, sysctl_value

_SWAP_SEPARATORS = str.maketrans("./", "/.")

PROC_SYS = ("abi", "debug", "dev", "fs", "kernel", "net", "user", "vm")
"""`/proc/sys` itself."""
NET = ("bridge", "core", "ipv4", "ipv6", "mptcp", "netfilter", "unix")
"""`/proc/sys/net` in a namespace (`bridge` and `netfilter` are there once br_netfilter and
nf_conntrack are loaded, as on an EKS node)."""
IPV4 = (
    "fib_multipath_hash_fields", "fib_multipath_hash_policy", "fib_multipath_hash_seed",
    "fib_multipath_use_neigh", "fib_notify_on_flag_change", "fwmark_reflect",
    "icmp_echo_enable_probe", "icmp_echo_ignore_all", "icmp_echo_ignore_broadcasts",
    "icmp_errors_use_inbound_ifaddr", "icmp_ignore_bogus_error_responses", "icmp_msgs_burst",
    "icmp_msgs_per_sec", "icmp_ratelimit", "icmp_ratemask", "igmp_link_local_mcast_reports",
    "igmp_max_memberships", "igmp_max_msf", "igmp_qrv", "ip_autobind_reuse", "ip_default_ttl",
    "ip_dynaddr", "ip_early_demux", "ip_forward", "ip_forward_update_priority",
    "ip_forward_use_pmtu", "ip_local_port_range", "ip_local_reserved_ports", "ip_no_pmtu_disc",
    "ip_nonlocal_bind", "ip_unprivileged_port_start", "ipfrag_high_thresh", "ipfrag_low_thresh",
    "ipfrag_max_dist", "ipfrag_time", "nexthop_compat_mode", "ping_group_range",
    "raw_l3mdev_accept", "tcp_abort_on_overflow", "tcp_adv_win_scale",
    "tcp_allowed_congestion_control", "tcp_app_win", "tcp_autocorking",
    "tcp_available_congestion_control", "tcp_backlog_ack_defer", "tcp_base_mss",
    "tcp_challenge_ack_limit", "tcp_child_ehash_entries", "tcp_comp_sack_delay_ns",
    "tcp_comp_sack_nr", "tcp_comp_sack_slack_ns", "tcp_congestion_control", "tcp_dsack",
    "tcp_early_demux", "tcp_early_retrans", "tcp_ecn", "tcp_ecn_fallback", "tcp_ecn_option",
    "tcp_ecn_option_beacon", "tcp_ehash_entries", "tcp_fack", "tcp_fastopen",
    "tcp_fastopen_blackhole_timeout_sec", "tcp_fastopen_key", "tcp_fin_timeout", "tcp_frto",
    "tcp_fwmark_accept", "tcp_invalid_ratelimit", "tcp_keepalive_intvl", "tcp_keepalive_probes",
    "tcp_keepalive_time", "tcp_l3mdev_accept", "tcp_limit_output_bytes", "tcp_max_reordering",
    "tcp_max_syn_backlog", "tcp_max_tw_buckets", "tcp_migrate_req", "tcp_min_rtt_wlen",
    "tcp_min_snd_mss", "tcp_min_tso_segs", "tcp_moderate_rcvbuf", "tcp_mtu_probe_floor",
    "tcp_mtu_probing", "tcp_no_metrics_save", "tcp_no_ssthresh_metrics_save", "tcp_notsent_lowat",
    "tcp_orphan_retries", "tcp_pacing_ca_ratio", "tcp_pacing_ss_ratio", "tcp_pingpong_thresh",
    "tcp_plb_cong_thresh", "tcp_plb_enabled", "tcp_plb_idle_rehash_rounds",
    "tcp_plb_rehash_rounds", "tcp_plb_suspend_rto_sec", "tcp_probe_interval",
    "tcp_probe_threshold", "tcp_recovery", "tcp_reflect_tos", "tcp_reordering",
    "tcp_retrans_collapse", "tcp_retries1", "tcp_retries2", "tcp_rfc1337", "tcp_rmem",
    "tcp_rto_max_ms", "tcp_rto_min_us", "tcp_sack", "tcp_shrink_window",
    "tcp_slow_start_after_idle", "tcp_stdurg", "tcp_syn_linear_timeouts", "tcp_syn_retries",
    "tcp_synack_retries", "tcp_syncookies", "tcp_thin_linear_timeouts", "tcp_timestamps",
    "tcp_tso_rtt_log", "tcp_tso_win_divisor", "tcp_tw_reuse", "tcp_tw_reuse_delay",
    "tcp_window_scaling", "tcp_wmem", "tcp_workaround_signed_windows", "udp_child_hash_entries",
    "udp_early_demux", "udp_hash_entries", "udp_l3mdev_accept", "udp_rmem_min", "udp_wmem_min",
    "xfrm4_gc_thresh",
)  # fmt: skip
"""The files of `/proc/sys/net/ipv4` in every namespace (its directories are below)."""
IPV4_INIT = (
    "cipso_cache_bucket_size", "cipso_cache_enable", "cipso_rbm_optfmt", "cipso_rbm_strictvalid",
    "fib_sync_mem", "inet_peer_maxttl", "inet_peer_minttl", "inet_peer_threshold",
    "ipfrag_secret_interval", "tcp_available_ulp", "tcp_low_latency", "tcp_max_orphans", "tcp_mem",
    "udp_mem",
)  # fmt: skip
"""Files only the init namespace has (a node's, not a pod's)."""
ROUTE = ("flush", "min_adv_mss", "min_pmtu", "mtu_expires")
ROUTE_INIT = (
    "error_burst", "error_cost", "gc_elasticity", "gc_interval", "gc_min_interval",
    "gc_min_interval_ms", "gc_thresh", "gc_timeout", "max_size", "redirect_load",
    "redirect_number", "redirect_silence",
)  # fmt: skip
NEIGH = (
    "anycast_delay", "app_solicit", "base_reachable_time", "base_reachable_time_ms",
    "delay_first_probe_time", "gc_stale_time", "interval_probe_time_ms", "locktime",
    "mcast_resolicit", "mcast_solicit", "proxy_delay", "proxy_qlen", "retrans_time",
    "retrans_time_ms", "ucast_solicit", "unres_qlen", "unres_qlen_bytes",
)  # fmt: skip
"""`/proc/sys/net/ipv4/neigh/DEV`; only the init namespace has `neigh/default`, with
`NEIGH_DEFAULT` besides."""
NEIGH_DEFAULT = ("gc_interval", "gc_thresh1", "gc_thresh2", "gc_thresh3")


class _Unknown:
    """A directory that exists but whose entries eksnet does not know."""


FILE = "file"
UNKNOWN = _Unknown()
Tree = Mapping[str, "Tree | str | _Unknown"]


def proc_sys(ns: Namespace) -> Tree:
    """The part of `/proc/sys` eksnet knows, as this namespace sees it."""
    init = ns.kind == "node"
    devices = [link.name for link in ns.links]
    conf = dict.fromkeys(FRESH_CONF, FILE)
    neigh = dict.fromkeys(NEIGH, FILE)
    ipv4: dict[str, Tree | str | _Unknown] = dict.fromkeys(
        [*IPV4, *(IPV4_INIT if init else ())], FILE
    )
    ipv4["route"] = dict.fromkeys([*ROUTE, *(ROUTE_INIT if init else ())], FILE)
    ipv4["conf"] = {name: conf for name in ("all", "default", *devices)}
    neighbours: dict[str, Tree | str | _Unknown] = {name: neigh for name in devices}
    if init:
        neighbours["default"] = {**neigh, **dict.fromkeys(NEIGH_DEFAULT, FILE)}
    ipv4["neigh"] = neighbours
    net: dict[str, Tree | str | _Unknown] = dict.fromkeys(NET, UNKNOWN)
    net["ipv4"] = ipv4
    if init:
        # nf_conntrack_max lives in the init namespace only, and only with conntrack loaded.
        net["nf_conntrack_max"] = UNKNOWN
    top: dict[str, Tree | str | _Unknown] = dict.fromkeys(PROC_SYS, UNKNOWN)
    top["net"] = net
    return top


def dotted(key: str) -> str:
    """The key as sysctl prints it: a slash path is turned into the dotted form."""
    return key.translate(_SWAP_SEPARATORS) if "/" in key else key


def proc_path(key: str) -> str:
    """The file sysctl opens for `key` (`/proc/sys/` + the key, dots as slashes)."""
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def _components(key: str) -> list[str]:
    return [part for part in proc_path(key).removeprefix("/proc/sys/").split("/") if part]


def sysctl_read(ns: Namespace, key: str, *, value_only: bool = False) -> str:
    """`sysctl [-n] KEY` in `ns`."""
    parts = _components(key)
    node: Tree | str | _Unknown = proc_sys(ns)
    for depth, part in enumerate(parts):
        if isinstance(node, _Unknown):
            where = "/".join(parts[:depth])
            raise NotModelled(f"which sysctl keys exist under /proc/sys/{where} ({key})")
        if isinstance(node, str):
            raise CommandFailed(f"sysctl: cannot stat {proc_path(key)}: Not a directory", 1)
        if part not in node:
            message = f"sysctl: cannot stat {proc_path(key)}: No such file or directory"
            raise CommandFailed(message, 1)
        node = node[part]
    if not isinstance(node, str):
        raise UnsupportedCommand(f"sysctl of a directory ({key}) is not rendered")
    conf = parts[:3] == ["net", "ipv4", "conf"]
    value = sysctl_value(ns, "/".join(parts) if conf else ".".join(parts))
    return f"{value}\n" if value_only else f"{dotted(key)} = {value}\n"
