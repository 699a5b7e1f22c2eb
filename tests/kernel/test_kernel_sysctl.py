"""Effective sysctl values (linux-dataplane.md §3.1, §3.4; forwarding measured on 6.18)."""

from __future__ import annotations

import pytest

from eksnet.dataplane.state import Link, LinkPeer, Namespace
from eksnet.errors import CommandFailed
from eksnet.kernel import sysctl


def node(*writes: tuple[str, str]) -> Namespace:
    return Namespace(
        name="n",
        kind="node",
        owner="n",
        links=(
            Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536),
            Link(2, "eth0", "device", "02:00:00:00:00:02", 9001),
            Link(
                3, "enia", "veth", "02:00:00:00:00:03", 9001, peer=LinkPeer(2, "eth0", netns="pod")
            ),
            Link(4, "vlan.eth.1", "device", "02:00:00:00:00:04", 9001),
        ),
        sysctls=writes,
    )


def test_fresh_namespace_values() -> None:
    ns = node()
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.all.rp_filter") == "0"
    assert sysctl.sysctl_value(ns, "net.ipv4.ip_forward") == "0"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.all.accept_source_route") == "0"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.default.accept_source_route") == "1"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.eth0.accept_source_route") == "1"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.eth0.send_redirects") == "1"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.lo.disable_policy") == "1"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.eth0.disable_policy") == "0"
    assert sysctl.sysctl_value(ns, "net.ipv4.ip_local_port_range") == "32768\t60999"
    assert not sysctl.and_conf(ns, "eth0", "accept_source_route")  # all 0 AND eth0 1


@pytest.mark.parametrize(
    ("all_value", "dev_value", "mode"), [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 1), (1, 2, 2)]
)
def test_rp_filter_is_the_max_of_all_and_the_device(
    all_value: int, dev_value: int, mode: int
) -> None:
    ns = node(
        ("net.ipv4.conf.all.rp_filter", str(all_value)),
        ("net.ipv4.conf.eth0.rp_filter", str(dev_value)),
    )
    assert sysctl.rp_filter_mode(ns, "eth0") == mode


def test_or_combined_keys() -> None:
    ns = node(("net.ipv4.conf.all.src_valid_mark", "1"))
    assert sysctl.src_valid_mark(ns, "eth0")
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.eth0.src_valid_mark") == "0"
    ns = node(("net.ipv4.conf.eth0.route_localnet", "1"))
    assert sysctl.route_localnet(ns, "eth0") and not sysctl.route_localnet(ns, "enia")
    assert sysctl.accept_local(node(("net.ipv4.conf.all.accept_local", "1")), "enia")


def test_default_reaches_devices_never_written() -> None:
    # §3.4: enia follows default 1 -> 0 -> 2 while enib, written explicitly, stays put.
    ns = node(
        ("net.ipv4.conf.default.rp_filter", "1"),
        ("net.ipv4.conf.eth0.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "2"),
    )
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.enia.rp_filter") == "2"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.eth0.rp_filter") == "0"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.lo.rp_filter") == "2"


def test_ip_forward_sets_every_device_and_default() -> None:
    ns = node(("net.ipv4.ip_forward", "1"))
    assert all(sysctl.forwarding(ns, dev) for dev in ("lo", "eth0", "enia", "vlan.eth.1"))
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.all.forwarding") == "1"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.default.forwarding") == "1"
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.all.accept_redirects") == "0"


def test_forwarding_is_the_ingress_device_s_own_value() -> None:
    ns = node(("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.enia.forwarding", "0"))
    assert not sysctl.forwarding(ns, "enia") and sysctl.forwarding(ns, "eth0")


def test_rewriting_all_forwarding_with_the_same_value_changes_nothing() -> None:
    # Measured on 6.18: all.forwarding=0 when it already is 0 leaves d0.forwarding=1 alone.
    ns = node(("net.ipv4.conf.eth0.forwarding", "1"), ("net.ipv4.conf.all.forwarding", "0"))
    assert sysctl.forwarding(ns, "eth0")


def test_default_forwarding_reaches_new_devices_but_not_lo() -> None:
    ns = node(("net.ipv4.conf.default.forwarding", "1"))
    assert sysctl.forwarding(ns, "eth0")  # created after the write
    assert not sysctl.forwarding(ns, "lo")  # exists since the namespace was made
    assert not sysctl.ip_forward(ns)


def test_values_print_as_integers_and_dotted_device_names_parse() -> None:
    ns = node(("net.ipv4.conf.vlan.eth.1.rp_filter", "05"))
    assert sysctl.sysctl_value(ns, "net.ipv4.conf.vlan.eth.1.rp_filter") == "5"
    assert sysctl.sysctl_value(ns, "net/ipv4/conf/vlan.eth.1/rp_filter") == "5"
    assert sysctl.parse_conf_key("net.ipv4.ip_forward") == ("all", "forwarding")
    assert sysctl.parse_conf_key("net.core.somaxconn") is None


def test_unknown_device_fails_like_sysctl() -> None:
    with pytest.raises(CommandFailed) as failed:
        sysctl.sysctl_value(node(), "net.ipv4.conf.eth9.rp_filter")
    assert failed.value.stderr == (
        "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth9/rp_filter: No such file or directory"
    )
