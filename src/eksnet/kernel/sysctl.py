"""Effective IPv4 sysctl values of one namespace, computed from the writes its state records.

`Namespace.sysctls` is the ordered list of writes (`net.ipv4.conf.all.rp_filter=1`, ...). What the
kernel acts on is not the raw value of one key but a combination of the `all` value and the
device's own value (linux-dataplane.md §3.1, the `IN_DEV_*CONF` macros of `inetdevice.h`):

* `rp_filter`, `arp_ignore`, `arp_announce`: max(all, dev);
* `src_valid_mark`, `accept_local`, `route_localnet`, `proxy_arp`, ... : all OR dev;
* `accept_source_route`, `bootp_relay`: all AND dev;
* `forwarding`: the device's own value only.

A device's own value is its last explicit write, else the current `default` value: a device copies
`default` when it is created, and a later write to `default` rewrites every device that was never
written explicitly (§3.4, kernel commits 31be308541e9 / 71e27da9618b). `forwarding` is the
exception, measured on 6.18: writing `default.forwarding` does *not* reach existing devices, while
writing `all.forwarding` (or `net.ipv4.ip_forward`, the same value) rewrites `default` and every
device at once, but only when the value actually changes. The state keeps devices created after
the `all`/`default` writes (its docstring), so an unwritten device follows `default` — except `lo`,
which exists from the namespace's birth and so never sees a later `default.forwarding`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eksnet.dataplane.state import Namespace
from eksnet.errors import CommandFailed, InputError, NotModelled

CONF_PREFIX = "net.ipv4.conf."
IP_FORWARD = "net.ipv4.ip_forward"

FRESH_CONF: Mapping[str, tuple[int, int]] = {
    "accept_local": (0, 0),
    "accept_redirects": (1, 1),
    "accept_source_route": (0, 1),
    "arp_accept": (0, 0),
    "arp_announce": (0, 0),
    "arp_evict_nocarrier": (1, 1),
    "arp_filter": (0, 0),
    "arp_ignore": (0, 0),
    "arp_notify": (0, 0),
    "bc_forwarding": (0, 0),
    "bootp_relay": (0, 0),
    "disable_policy": (0, 0),
    "disable_xfrm": (0, 0),
    "drop_gratuitous_arp": (0, 0),
    "drop_unicast_in_l2_multicast": (0, 0),
    "force_igmp_version": (0, 0),
    "forwarding": (0, 0),
    "igmpv2_unsolicited_report_interval": (10000, 10000),
    "igmpv3_unsolicited_report_interval": (1000, 1000),
    "ignore_routes_with_linkdown": (0, 0),
    "log_martians": (0, 0),
    "mc_forwarding": (0, 0),
    "medium_id": (0, 0),
    "promote_secondaries": (0, 0),
    "proxy_arp": (0, 0),
    "proxy_arp_pvlan": (0, 0),
    "route_localnet": (0, 0),
    "rp_filter": (0, 0),
    "secure_redirects": (1, 1),
    "send_redirects": (1, 1),
    "shared_media": (1, 1),
    "src_valid_mark": (0, 0),
    "tag": (0, 0),
}
"""(`all`, `default`) of every `net.ipv4.conf.*` key in a fresh namespace, measured on 6.18."""

LOOPBACK_PINNED: Mapping[str, int] = {"disable_policy": 1, "disable_xfrm": 1}
"""Values the kernel sets on `lo` itself when it is created (so `default` never reaches them)."""

FRESH_OTHER: Mapping[str, str] = {
    "net.ipv4.ip_local_port_range": "32768\t60999",
    "net.ipv4.fib_multipath_hash_policy": "0",
    "net.ipv4.fwmark_reflect": "0",
    "net.ipv4.tcp_early_demux": "1",
}
"""Non-`conf` keys eksnet reads, with what `sysctl` prints for them in a fresh namespace."""


@dataclass(slots=True)
class _Conf:
    """The replayed `conf` values: `all`, `default` and each device's explicit writes."""

    all: dict[str, int] = field(default_factory=lambda: {k: v[0] for k, v in FRESH_CONF.items()})
    default: dict[str, int] = field(
        default_factory=lambda: {k: v[1] for k, v in FRESH_CONF.items()}
    )
    devices: dict[str, dict[str, int]] = field(default_factory=dict)


def parse_conf_key(key: str) -> tuple[str, str] | None:
    """Split `net.ipv4.conf.SCOPE.NAME` (or the `/` form) into (SCOPE, NAME).

    SCOPE is `all`, `default` or a device name, which may itself contain dots (`vlan.eth.1`):
    the name is always the last component. `net.ipv4.ip_forward` is `all.forwarding`.
    Returns None for any other key.
    """
    if "/" in key:
        parts = key.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"]:
            return parts[3], parts[4]
        key = ".".join(parts)
    if key == IP_FORWARD:
        return "all", "forwarding"
    if not key.startswith(CONF_PREFIX):
        return None
    rest = key[len(CONF_PREFIX) :]
    scope, dot, name = rest.rpartition(".")
    if not dot or not scope or not name:
        return None
    return scope, name


def _as_int(key: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise InputError(f"sysctl {key} = {raw!r} is not an integer") from None


def _replay(ns: Namespace) -> _Conf:
    """Apply the namespace's writes in order, the way devinet.c stores them."""
    conf = _Conf()
    for name, raw in ns.sysctls:
        parsed = parse_conf_key(name)
        if parsed is None:
            continue
        scope, attr = parsed
        value = _as_int(name, raw)
        if scope == "all":
            if attr == "forwarding":
                if value != conf.all["forwarding"]:
                    # inet_forward_change(): all, default and every device, marked as written.
                    conf.all["forwarding"] = value
                    conf.default["forwarding"] = value
                    conf.all["accept_redirects"] = int(not value)
                    for link in ns.links:
                        conf.devices.setdefault(link.name, {})["forwarding"] = value
            else:
                conf.all[attr] = value
        elif scope == "default":
            conf.default[attr] = value
        else:
            conf.devices.setdefault(scope, {})[attr] = value
    return conf


def _device_value(ns: Namespace, conf: _Conf, dev: str, attr: str) -> int:
    own = conf.devices.get(dev, {})
    if attr in own:
        return own[attr]
    is_loopback = any(link.name == dev and link.kind == "loopback" for link in ns.links)
    if is_loopback and attr in LOOPBACK_PINNED:
        return LOOPBACK_PINNED[attr]
    if is_loopback and attr == "forwarding":
        # lo predates every write; default.forwarding never propagates to existing devices.
        return FRESH_CONF["forwarding"][1]
    if attr not in conf.default:
        raise NotModelled(f"the default value of net.ipv4.conf.{dev}.{attr}")
    return conf.default[attr]


def conf_value(ns: Namespace, scope: str, attr: str) -> int:
    """The stored value of `net.ipv4.conf.SCOPE.ATTR` (SCOPE: `all`, `default` or a device)."""
    conf = _replay(ns)
    if scope == "all":
        if attr not in conf.all:
            raise NotModelled(f"the default value of net.ipv4.conf.all.{attr}")
        return conf.all[attr]
    if scope == "default":
        if attr not in conf.default:
            raise NotModelled(f"the default value of net.ipv4.conf.default.{attr}")
        return conf.default[attr]
    return _device_value(ns, conf, scope, attr)


def _pair(ns: Namespace, dev: str, attr: str) -> tuple[int, int]:
    conf = _replay(ns)
    if attr not in conf.all:
        raise NotModelled(f"the default value of net.ipv4.conf.all.{attr}")
    return conf.all[attr], _device_value(ns, conf, dev, attr)


def max_conf(ns: Namespace, dev: str, attr: str) -> int:
    """`IN_DEV_MAXCONF`: the larger of `all` and the device's value."""
    return max(_pair(ns, dev, attr))


def or_conf(ns: Namespace, dev: str, attr: str) -> bool:
    """`IN_DEV_ORCONF`: on when `all` or the device has it on."""
    all_value, dev_value = _pair(ns, dev, attr)
    return bool(all_value) or bool(dev_value)


def and_conf(ns: Namespace, dev: str, attr: str) -> bool:
    """`IN_DEV_ANDCONF`: on only when both `all` and the device have it on."""
    all_value, dev_value = _pair(ns, dev, attr)
    return bool(all_value) and bool(dev_value)


def rp_filter_values(ns: Namespace, dev: str) -> tuple[int, int]:
    """(`all.rp_filter`, `DEV.rp_filter`): the two inputs of the effective mode, for messages."""
    return _pair(ns, dev, "rp_filter")


def rp_filter_mode(ns: Namespace, dev: str) -> int:
    """Effective reverse-path filter mode on `dev`: 0 off, 1 strict, anything else loose."""
    return max_conf(ns, dev, "rp_filter")


def forwarding(ns: Namespace, dev: str) -> bool:
    """Whether packets *arriving* on `dev` may be forwarded (the device's own value only)."""
    return bool(conf_value(ns, dev, "forwarding"))


def ip_forward(ns: Namespace) -> bool:
    """`net.ipv4.ip_forward`, which is `net.ipv4.conf.all.forwarding`."""
    return bool(conf_value(ns, "all", "forwarding"))


def src_valid_mark(ns: Namespace, dev: str) -> bool:
    """Whether the rp_filter reverse lookup uses the packet's mark (all OR dev)."""
    return or_conf(ns, dev, "src_valid_mark")


def accept_local(ns: Namespace, dev: str) -> bool:
    """Whether a packet may arrive on `dev` with one of our own addresses as source."""
    return or_conf(ns, dev, "accept_local")


def route_localnet(ns: Namespace, dev: str) -> bool:
    """Whether 127.0.0.0/8 may be routed to or from `dev` (all OR dev)."""
    return or_conf(ns, dev, "route_localnet")


def send_redirects(ns: Namespace, dev: str) -> bool:
    """Whether a packet forwarded back out of its ingress device `dev` triggers a redirect."""
    return or_conf(ns, dev, "send_redirects")


def shared_media(ns: Namespace, dev: str) -> bool:
    """RFC 1620 shared media: redirects even when the source is not on our subnet (all OR dev)."""
    return or_conf(ns, dev, "shared_media")


def proxy_arp(ns: Namespace, dev: str) -> bool:
    return or_conf(ns, dev, "proxy_arp")


def arp_ignore(ns: Namespace, dev: str) -> int:
    return max_conf(ns, dev, "arp_ignore")


def arp_announce(ns: Namespace, dev: str) -> int:
    return max_conf(ns, dev, "arp_announce")


def bc_forwarding(ns: Namespace, dev: str) -> bool:
    """Whether directed broadcasts arriving on `dev` are forwarded (all AND dev)."""
    return and_conf(ns, dev, "bc_forwarding")


def sysctl_value(ns: Namespace, key: str) -> str:
    """What `sysctl KEY` prints after ` = ` inside this namespace.

    Per-device keys are answered for devices never written (they show `default`, §3.4); a key of a
    device the namespace does not have fails like `sysctl` does.
    """
    parsed = parse_conf_key(key)
    if parsed is not None:
        scope, attr = parsed
        if scope not in ("all", "default") and scope not in {link.name for link in ns.links}:
            path = f"/proc/sys/net/ipv4/conf/{scope}/{attr}"
            raise CommandFailed(f"sysctl: cannot stat {path}: No such file or directory", 255)
        return str(conf_value(ns, scope, attr))
    written = ns.sysctl(key)
    if written is not None:
        return written
    if key in FRESH_OTHER:
        return FRESH_OTHER[key]
    raise NotModelled(f"the default value of sysctl {key}")
