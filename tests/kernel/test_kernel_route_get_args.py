"""`ip route get` argument parsing and printing details (iproute2 6.1, measured)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from eksnet.dataplane.state import Address, Link, Namespace, Route
from eksnet.errors import CommandFailed, UnsupportedCommand
from eksnet.render.route_get import RouteGetRequest, ip_route_get, parse_route_get

A = IPv4Address


def namespace() -> Namespace:
    """A fresh namespace with one device: only the default rules, so local and main are merged."""
    return Namespace(
        name="t",
        kind="pod",
        owner="t",
        links=(
            Link(1, "lo", "loopback", "00:00:00:00:00:00", 65536),
            Link(2, "d0", "device", "02:00:00:00:00:02", 1500),
            Link(3, "d1", "device", "02:00:00:00:00:03", 1500),
        ),
        addresses=(
            Address("lo", IPv4Interface("127.0.0.1/8"), scope="host"),
            Address("d0", IPv4Interface("10.1.0.1/24")),
        ),
        routes=(
            Route(254, IPv4Network("0.0.0.0/0"), gateway=A("10.1.0.254"), dev="d0", metric=100),
            Route(
                254,
                IPv4Network("10.1.0.0/24"),
                dev="d0",
                proto="kernel",
                scope="link",
                src=A("10.1.0.1"),
            ),
            Route(
                254,
                IPv4Network("10.7.0.0/16"),
                gateway=A("10.1.0.254"),
                dev="d0",
                proto="static",
                src=A("10.1.0.1"),
                metric=5,
            ),
        ),
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("8.8.8.8", RouteGetRequest(A("8.8.8.8"))),
        ("to 8.8.8.8", RouteGetRequest(A("8.8.8.8"))),
        ("8.8.8.8/32", RouteGetRequest(A("8.8.8.8"))),
        ("8.8.8.8 f 10.1.0.1", RouteGetRequest(A("8.8.8.8"), src=A("10.1.0.1"))),
        ("8.8.8.8 fr 10.1.0.1 i d0", RouteGetRequest(A("8.8.8.8"), A("10.1.0.1"), iif="d0")),
        ("8.8.8.8 o d0", RouteGetRequest(A("8.8.8.8"), oif="d0")),
        ("8.8.8.8 dev d0 oif d1", RouteGetRequest(A("8.8.8.8"), oif="d1")),
        ("8.8.8.8 m 010", RouteGetRequest(A("8.8.8.8"), mark=8)),
        ("8.8.8.8 mark 0x80", RouteGetRequest(A("8.8.8.8"), mark=0x80)),
        ("fibmatch 8.8.8.8", RouteGetRequest(A("8.8.8.8"), fibmatch=True)),
        ("8.8.8.8 fi", RouteGetRequest(A("8.8.8.8"), fibmatch=True)),
        ("8.8.8.8 9.9.9.9", RouteGetRequest(A("9.9.9.9"))),
    ],
)
def test_parse(args: str, expected: RouteGetRequest) -> None:
    assert parse_route_get(args.split()) == expected


@pytest.mark.parametrize(
    ("args", "stderr", "status"),
    [
        ("", "need at least a destination address", 1),
        ("to", 'Command line is not complete. Try option "help"', 255),
        ("8.8.8.8 from", 'Command line is not complete. Try option "help"', 255),
        ("foo", 'Error: any valid prefix is expected rather than "foo".', 1),
        ("8.8.8.8 from foo", 'Error: inet prefix is expected rather than "foo".', 1),
        ("8.8.8.8 mark -1", 'Error: argument "-1" is wrong: invalid mark value', 255),
        (
            "8.8.8.8 mark 0x100000000",
            'Error: argument "0x100000000" is wrong: invalid mark value',
            255,
        ),
        ("8.8.8.8 de d0", 'Error: inet prefix is expected rather than "de".', 1),
    ],
)
def test_arguments_the_real_ip_rejects(args: str, stderr: str, status: int) -> None:
    """What iproute2 6.1's `ip route get` prints and exits with for these (measured in a lab
    namespace: tests/render/test_exec.py quotes the same texts through `eksnet exec`)."""
    with pytest.raises(CommandFailed) as failed:
        parse_route_get(args.split())
    assert (failed.value.stderr, failed.value.exit_code) == (stderr, status)


@pytest.mark.parametrize(
    "args",
    [
        "8.8.8.8 tos 4",
        "8.8.8.8 d 4",
        "8.8.8.8 uid 5",
        "8.8.8.8 ipproto tcp",
        "8.8.8.8 help",
        "::1",
    ],
)
def test_unsupported_arguments(args: str) -> None:
    with pytest.raises(UnsupportedCommand):
        parse_route_get(args.split())


def test_unknown_device() -> None:
    with pytest.raises(CommandFailed) as failed:
        ip_route_get(namespace(), ["1.1.1.1", "iif", "nosuch"])
    assert (failed.value.stderr, failed.value.exit_code) == ('Cannot find device "nosuch"', 1)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # All measured on 6.18 / iproute2 6.1 in a namespace shaped like `namespace()`.
        ("8.8.8.8 mark 5", "8.8.8.8 via 10.1.0.254 dev d0 src 10.1.0.1 mark 5 uid 0\n    cache\n"),
        (
            "8.8.8.8 mark 0x10",
            "8.8.8.8 via 10.1.0.254 dev d0 src 10.1.0.1 mark 0x10 uid 0\n    cache\n",
        ),
        ("8.8.8.8 from 10.1.0.1", "8.8.8.8 from 10.1.0.1 via 10.1.0.254 dev d0 uid 0\n    cache\n"),
        ("8.8.8.8 fibmatch", "default via 10.1.0.254 dev d0 metric 100\n"),
        (
            "10.7.1.1 fibmatch",
            "10.7.0.0/16 via 10.1.0.254 dev d0 proto static src 10.1.0.1 metric 5\n",
        ),
        ("10.1.0.9 fibmatch", "10.1.0.0/24 dev d0 proto kernel scope link src 10.1.0.1\n"),
        ("10.1.0.1 fibmatch", "local 10.1.0.1 dev d0 proto kernel scope host src 10.1.0.1\n"),
        ("127.0.0.5", "local 127.0.0.5 dev lo src 127.0.0.1 uid 0\n    cache <local>\n"),
        ("10.1.0.1 oif d1", "10.1.0.1 dev d1 src 10.1.0.1 uid 0\n    cache\n"),
        ("10.1.0.1 oif d0", "local 10.1.0.1 dev lo src 10.1.0.1 uid 0\n    cache <local>\n"),
        (
            "10.1.0.255 from 10.1.0.50 iif d0",
            "broadcast 10.1.0.255 from 10.1.0.50 dev lo\n    cache <local,brd> iif d0\n",
        ),
    ],
)
def test_printing(args: str, expected: str) -> None:
    assert ip_route_get(namespace(), args.split()) == expected


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        ("8.8.8.8 oif d1 fibmatch", "RTNETLINK answers: No route to host"),
        ("8.8.8.8 from 127.0.0.1 oif d1", "RTNETLINK answers: Invalid argument"),
        ("8.8.8.8 iif d1", "RTNETLINK answers: Invalid argument"),  # source 0.0.0.0
        ("8.8.8.8 from 10.1.0.5 iif d1", "RTNETLINK answers: No route to host"),  # forwarding off
    ],
)
def test_errors(args: str, stderr: str) -> None:
    with pytest.raises(CommandFailed) as failed:
        ip_route_get(namespace(), args.split())
    assert (failed.value.stderr, failed.value.exit_code) == (stderr, 2)
