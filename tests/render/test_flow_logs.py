"""VPC flow-log records of walks, against vpc-fabric.md §6 and talk-walks.md.

Expected values are the specs': the FL-EX NAT gateway table's shape (§6.4: the NAT ENI logs
the instance's address coming in and its own going out, never the EIP; `instance-id` `-`),
the srcaddr/dstaddr rule of §6.4, tcp-flags of §6.5 (SYN 2, SYN-ACK 18), the default format of
§6.2, the record shape of §6.6, and the records talk-walks.md W4 and W10 show. Ports a NAT
chose are variables, read once and then required everywhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eksnet.controllers import build_state
from eksnet.dataplane.flow_log_format import DEFAULT_FORMAT, parse_format
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError, NotModelled
from eksnet.model import load_cluster
from eksnet.render.flow_logs import records, text
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk

POD_51 = "pod/default/app2-7c9f8d6b5-k5x2p"
NODE_1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
WEB = "ip/198.51.100.20"
FIELDS = (
    "${interface-id} ${flow-direction} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${pkt-srcaddr} ${pkt-dstaddr} ${instance-id} ${action} ${tcp-flags} ${traffic-path}"
)


def lines(walked: Walk, state: DataplaneState, fmt: str = FIELDS) -> list[list[str]]:
    return [record.line.split() for record in records(walked, state.vpc, parse_format(fmt))]


@pytest.fixture(scope="module")
def demo() -> DataplaneState:
    return build_state(load_cluster())


@pytest.fixture(scope="module")
def nat() -> DataplaneState:
    return build_state(load_cluster(variant="nat"))


def test_the_nat_gateway_records_have_the_fl_ex_shape(nat: DataplaneState) -> None:
    got = lines(walk(nat, POD_51, WEB, dport=443), nat)
    p1 = next(r for r in got if r[0] == "eni-01a00000000000050")[4]  # the node's SNAT port
    p4 = next(r for r in got if r[0] == "eni-0a11c0ffee00000a0" and r[1] == "egress")[4]
    nat_eni = [r[:10] for r in got if r[0] == "eni-0a11c0ffee00000a0"]
    r, n, x = "198.51.100.20", "192.168.0.10", "192.168.1.50"
    assert nat_eni == [
        # in, from the instance: srcaddr X, dstaddr N, pkt X → R
        ["eni-0a11c0ffee00000a0", "ingress", x, n, p1, "443", x, r, "-", "ACCEPT"],
        # out, to the internet: N → R both ways of naming
        ["eni-0a11c0ffee00000a0", "egress", n, r, p4, "443", n, r, "-", "ACCEPT"],
        # in, the reply: R → N
        ["eni-0a11c0ffee00000a0", "ingress", r, n, "443", p4, r, n, "-", "ACCEPT"],
        # out, to the instance: srcaddr N, dstaddr X, pkt R → X
        ["eni-0a11c0ffee00000a0", "egress", n, x, "443", p1, r, x, "-", "ACCEPT"],
    ]
    assert not any("192.0.2.10" in record for record in got)  # never the EIP
    instance = [r[:9] for r in got if r[0] == "eni-01a00000000000050"]
    assert instance == [
        ["eni-01a00000000000050", "egress", x, r, p1, "443", x, r, "i-0a11c0ffee0000050"],
        ["eni-01a00000000000050", "ingress", r, x, "443", p1, r, x, "i-0a11c0ffee0000050"],
    ]


def test_w4_records_as_the_talk_shows_them(demo: DataplaneState) -> None:
    # talk-walks.md W4 (branch .71): `eni-…050 203.0.113.10 192.168.1.50 51000 30080`, then
    # `eni-…050 192.168.1.50 192.168.1.71 <P1> 80`, `eni-…070 192.168.1.50 192.168.1.70 <P1> 80
    # | .50 .71`; return `eni-…050 192.168.1.50 203.0.113.10 30080 51000`.
    whole = walk(demo, "ip/203.0.113.10", NODE_1, dport=30080)
    leaf = next(leaf for _, label, leaf in whole.leaves() if "192.168.1.71" in label)
    got = [r[:8] for r in lines(leaf, demo)]
    p1 = got[1][4]
    assert got[0][:6] == [
        "eni-01a00000000000050",
        "ingress",
        "203.0.113.10",
        "192.168.1.50",
        "51000",
        "30080",
    ]
    assert got[1][:6] == [
        "eni-01a00000000000050",
        "egress",
        "192.168.1.50",
        "192.168.1.71",
        p1,
        "80",
    ]
    assert got[2] == [
        "eni-01a00000000000070",
        "ingress",
        "192.168.1.50",
        "192.168.1.70",
        p1,
        "80",
        "192.168.1.50",
        "192.168.1.71",
    ]
    assert got[-1][:6] == [
        "eni-01a00000000000050",
        "egress",
        "192.168.1.50",
        "203.0.113.10",
        "30080",
        "51000",
    ]


def test_w10_record_and_tcp_flags(demo: DataplaneState) -> None:
    got = lines(walk(demo, POD_51, WEB, dport=443), demo)
    out, back = got
    assert out[:4] == ["eni-01a00000000000050", "egress", "192.168.1.50", "198.51.100.20"]
    assert (out[5], out[10], out[11]) == ("443", "2", "8")  # SYN; through the IGW from Nitro
    assert (back[1], back[10], back[11]) == ("ingress", "18", "-")  # SYN-ACK; no path inbound


def test_the_default_format_and_the_record_shape(demo: DataplaneState) -> None:
    # §6.2 and §6.6: 14 fields, version 2, `… 6 <packets> <bytes> <start> <end> ACCEPT OK`
    fmt = parse_format(None)
    assert fmt.text() == DEFAULT_FORMAT and fmt.version == 2
    across = walk(demo, POD_51, "pod/default/app1-5f7d9c6b8-b9v6s", dport=80, sport=43210)
    first = records(across, demo.vpc, fmt)[0].line.split()
    assert len(first) == 14
    assert first[:8] == [
        "2",
        "111122223333",
        "eni-01a00000000000050",
        "192.168.1.50",
        "192.168.2.91",
        "43210",
        "80",
        "6",
    ]
    assert first[10:] == ["1718000000", "1718000060", "ACCEPT", "OK"]


def test_a_security_group_drop_is_a_reject_record(tmp_path: Path) -> None:
    from eksnet.model.load import demo_text

    spec, _ = demo_text()
    rule = '        - {protocol: tcp, ports: "30080", source: 0.0.0.0/0, description: user-added for the NodePort walk}\n'
    path = tmp_path / "t.yaml"
    path.write_text(spec.replace(rule, ""))
    state = build_state(load_cluster(path))
    got = lines(walk(state, "ip/203.0.113.10", NODE_1, dport=30080), state)
    assert [[*r[:4], r[9]] for r in got] == [
        ["eni-01a00000000000050", "ingress", "203.0.113.10", "192.168.1.50", "REJECT"]
    ]


def test_icmp_has_ports_0_0(demo: DataplaneState) -> None:
    got = lines(walk(demo, POD_51, "pod/default/app1-5f7d9c6b8-b9v6s", proto="icmp"), demo)
    assert {(r[4], r[5]) for r in got} == {("0", "0")}


def test_a_walk_without_an_eni_writes_nothing(demo: DataplaneState) -> None:
    same_node = walk(demo, POD_51, "pod/default/rating-6d8b7c9f5-q6m4t", dport=80)
    assert "no ENI on this walk writes a flow-log record" in text(
        same_node, demo.vpc, parse_format(None)
    )


def test_imds_is_never_logged(demo: DataplaneState) -> None:
    assert lines(walk(demo, POD_51, "ip/169.254.169.254", dport=80), demo) == []


@pytest.mark.parametrize(
    "fmt, version",
    [
        (DEFAULT_FORMAT, 2),
        ("${srcaddr} ${pkt-srcaddr}", 3),
        ("${az-id}", 4),
        ("${traffic-path} ${version}", 5),
    ],
)
def test_the_version_is_the_highest_of_the_fields(fmt: str, version: int) -> None:
    assert parse_format(fmt).version == version


@pytest.mark.parametrize(
    "fmt, says",
    [
        ("${srcadr}", "did you mean srcaddr"),
        ("${srcaddr} ${srcaddr}", "listed twice"),
        ("srcaddr", "is not a ${field}"),
        ("", "empty"),
    ],
)
def test_a_bad_format_says_why(fmt: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_format(fmt)
    assert says in str(caught.value)


def test_fields_after_version_5_are_not_modelled() -> None:
    with pytest.raises(NotModelled):
        parse_format("${reject-reason}")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("eksnet")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


def test_a_bad_format_on_the_command_line_is_one_line() -> None:
    result = run_cli("walk", POD_51, WEB, "--port", "443", "--flow-logs", "--format", "${nope}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("eksnet:")
    alone = run_cli("walk", POD_51, WEB, "--port", "443", "--format", "${srcaddr}")
    assert alone.returncode == 2 and "--flow-logs" in alone.stderr


def test_walk_flow_logs_prints_the_records() -> None:
    result = run_cli("walk", POD_51, WEB, "--port", "443", "--flow-logs")
    assert result.returncode == 0, result.stderr
    record = next(
        line
        for line in result.stdout.splitlines()
        if line.startswith("3 111122223333 eni-01a00000000000050 192.168.1.50 198.51.100.20")
    )
    fields = record.split()
    assert fields[6] == "443" and fields[-2:] == ["192.168.1.50", "198.51.100.20"]


def test_walk_json_carries_the_flow_logs() -> None:
    import json

    result = run_cli(
        "walk",
        POD_51,
        WEB,
        "--port",
        "443",
        "--json",
        "--flow-logs",
        "--format",
        "${interface-id} ${flow-direction} ${srcaddr} ${dstaddr}",
    )
    assert result.returncode == 0, result.stderr
    logs = json.loads(result.stdout)["flowLogs"]
    assert logs["format"] == "${interface-id} ${flow-direction} ${srcaddr} ${dstaddr}"
    (way,) = logs["ways"]
    assert [r["line"] for r in way["records"]] == [
        "eni-01a00000000000050 egress 192.168.1.50 198.51.100.20",
        "eni-01a00000000000050 ingress 198.51.100.20 192.168.1.50",
    ]
