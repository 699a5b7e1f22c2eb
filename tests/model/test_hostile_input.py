"""Hostile cluster specs through the real `eksnet` command: one line `eksnet: FILE:LINE: …
(fix: …)` on stderr, exit status 2 (3 for what is valid but not modelled), never a traceback,
a hang or a silently accepted impossible value.

One test (or one parametrized table) per kind of problem a review found: the file itself (not
UTF-8, control characters, a device or FIFO, too big), YAML features a spec may not use (tags,
merge keys, recursive aliases, alias bombs, deep nesting), values YAML cannot construct, odd
types for pydantic, variants (shape, the line of a patched value, variants validated even when
not selected), and impossible values (MACs, CIDRs, device indexes, ifindexes, interface and
namespace names, prefixes, references, Kubernetes names, AWS ids).

Each case is the demo spec (`examples/talk.yaml`) with one edit; the expected line is found in
the edited text, never taken from what the code reports. Kernel facts: `dev_valid_name` in
net/core/dev.c (IFNAMSIZ 16, no '/', ':' or whitespace, not '.' or '..'), confirmed with
`ip link add NAME type veth` in a scratch namespace, which also showed the kernel turning
`a%d` into `a0`; ifindex is a positive int and 1 is `lo` (linux-dataplane.md §6). AWS facts:
vpc-cni.md §3.1 (/28 prefixes), §3.6 (m5.large: 3 ENIs), vpc-fabric.md §1.1 (CIDRs).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.entry_point import eksnet_command
from tests.model.test_bad_input import DEMO, NODE1, edit, line_of

from eksnet.model.load import MAX_BYTES, MAX_VALIDATED
from eksnet.model.source import MAX_DEPTH, MAX_VALUES

BAD_INPUT = 2
NOT_MODELLED = 3
EXEC = ("exec", f"node/{NODE1}")

NAT_VARIANT = "nat: {subnets: {public-a: {routeTable: rtb-private-a}}}"
EXTERNAL_SNAT_ENV = 'cni: {env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "true"}}'
NAT_SUBNET = "{name: nat-a, az: eu-west-2a, azId: euw2-az2, cidr: 192.168.0.0/24"
ETH1_NODE1 = "{linux: eth1, ifindex: 3, id: eni-01a00000000000060, device: 1,"
MAC_NODE1_ETH0 = 'mac: "02:00:c0:a8:01:32"'


def run_cli(path: Path | str, *options: str) -> subprocess.CompletedProcess[str]:
    """`eksnet exec node/NODE1 --cluster PATH [OPTIONS] -- ip rule` in a fresh process."""
    return subprocess.run(
        [*eksnet_command(), *EXEC, "--cluster", str(path), *options, "--", "ip", "rule"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: int = BAD_INPUT) -> str:
    """The one `eksnet: ` line on stderr, after checking there is nothing else."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stderr.endswith("\n")
    assert lines[0].startswith("eksnet: "), lines[0]
    assert result.stdout == "", result.stdout
    assert result.returncode == code, (result.returncode, lines[0])
    return lines[0]


def assert_reported(
    tmp_path: Path,
    text: str | bytes,
    line: int | None,
    *says: str,
    options: tuple[str, ...] = (),
    code: int = BAD_INPUT,
) -> str:
    """Write `text`, run the CLI on it, and check the one line names the file, `line`, each of
    `says` and a fix."""
    path = tmp_path / "c.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    error = one_error_line(run_cli(path, *options), code)
    where = f"eksnet: {path}:{line}: " if line is not None else f"eksnet: {path}: "
    assert error.startswith(where), error
    for part in says:
        assert part in error, f"{part!r} not in {error!r}"
    if code == BAD_INPUT:
        assert error.endswith(")") and " (fix: " in error, error
    return error


@dataclass(frozen=True)
class Edit:
    """One edit of the demo and what the CLI must say about it."""

    old: str
    new: str
    fragment: str
    """Text of the line the error must name, in the edited spec."""
    says: tuple[str, ...]
    after: str | None = None
    """When `fragment` is on several lines: the first one after the line holding this."""
    options: tuple[str, ...] = ()

    def check(self, tmp_path: Path) -> None:
        text = edit(self.old, self.new)
        line = line_of(text, self.fragment, after=self.after)
        assert_reported(tmp_path, text, line, *self.says, options=self.options)


def cases(*items: tuple[str, Edit]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", [pytest.param(e, id=name) for name, e in items])


# 1. The file itself ----------------------------------------------------------------------------


def test_a_spec_that_is_not_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    # A Latin-1 é in an otherwise UTF-8 file (the demo has UTF-8 "—" and "§" before it).
    data = DEMO.encode().replace(b"region: eu-west-2\n", b"region: eu-w\xe9st-2\n")
    line = line_of(DEMO, "region: eu-west-2")
    assert_reported(tmp_path, data, line, "not UTF-8", "byte 0xe9 at column 13")


@pytest.mark.parametrize(
    ("character", "code"),
    [("\x00", "U+0000"), ("\x07", "U+0007"), ("\x1b", "U+001B"), ("\x85", "U+0085")],
)
def test_a_control_character_in_the_file_names_its_line(
    tmp_path: Path, character: str, code: str
) -> None:
    text = edit("region: eu-west-2\n", f"region: eu-{character}west-2\n")
    assert_reported(tmp_path, text, line_of(text, "region: eu-"), code, "column 12")


@pytest.mark.parametrize("escape", ["\\x01", "\\0", "\\e", "\\x7f"])
def test_a_control_character_written_as_an_escape_names_its_line(
    tmp_path: Path, escape: str
) -> None:
    text = edit("region: eu-west-2\n", f'region: "eu-{escape}west-2"\n')
    assert_reported(tmp_path, text, line_of(text, "region: "), "control or invalid character")


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + DEMO.encode())
    result = run_cli(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0:\tfrom all lookup local\n")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    error = one_error_line(run_cli(fifo))
    assert error.startswith(f"eksnet: {fifo}: not a regular file (a pipe (FIFO))"), error


@pytest.mark.parametrize(
    ("device", "kind"), [("/dev/zero", "character device"), ("/dev/null", "character device")]
)
def test_a_device_is_refused(device: str, kind: str) -> None:
    error = one_error_line(run_cli(device))
    assert error.startswith(f"eksnet: {device}: not a regular file (a {kind})"), error


def test_stdin_as_the_spec_is_refused(tmp_path: Path) -> None:
    # /dev/stdin is whatever stdin is; here a pipe that never ends (the test's stdin is closed
    # only when the process exits), so reading it would hang.
    reader, writer = os.pipe()
    try:
        result = subprocess.run(
            [*eksnet_command(), *EXEC, "--cluster", "/dev/stdin", "--", "ip", "rule"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=reader,
        )
    finally:
        os.close(reader)
        os.close(writer)
    error = one_error_line(result)
    assert error.startswith("eksnet: /dev/stdin: not a regular file (a pipe (FIFO))"), error


def test_a_directory_is_refused(tmp_path: Path) -> None:
    error = one_error_line(run_cli(tmp_path))
    assert error.startswith(f"eksnet: {tmp_path}: not a regular file (a directory)"), error


def test_a_file_over_the_size_limit_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.write(DEMO.encode())
        handle.write(b"#" * (MAX_BYTES + 1 - len(DEMO.encode())) + b"\n")
    error = one_error_line(run_cli(path))
    assert error.startswith(f"eksnet: {path}: larger than 64 MiB ({MAX_BYTES:,} bytes)"), error


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "padded.yaml"
    padding = MAX_BYTES - len(DEMO.encode())
    path.write_bytes(DEMO.encode() + b"#" * (padding - 1) + b"\n")
    assert path.stat().st_size == MAX_BYTES
    result = run_cli(path)
    assert result.returncode == 0, result.stderr


# 1. YAML features a spec may not use -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!custom eu-west-2", "'!custom'"),
        ("!!int word", "'tag:yaml.org,2002:int'"),
        ("!!timestamp x", "'tag:yaml.org,2002:timestamp'"),
        ("!!python/object/apply:os.system [echo]", "python/object/apply:os.system"),
        ("!!binary ZXUtd2VzdC0y", "'tag:yaml.org,2002:binary'"),
        ("!!str eu-west-2", "'tag:yaml.org,2002:str'"),
        ("! eu-west-2", "'!'"),
    ],
)
def test_every_explicit_yaml_tag_is_refused_at_its_line(
    tmp_path: Path, value: str, tag: str
) -> None:
    text = edit("region: eu-west-2\n", f"region: {value}\n")
    assert_reported(tmp_path, text, line_of(text, "region: "), "YAML tag", tag, "not allowed")


def test_a_tag_on_a_mapping_is_refused_too(tmp_path: Path) -> None:
    text = edit("kubernetes: {version:", "kubernetes: !!map {version:")
    assert_reported(tmp_path, text, line_of(text, "kubernetes: !!map"), "YAML tag")


def test_a_merge_key_is_refused_at_its_line(tmp_path: Path) -> None:
    text = edit(
        'kubernetes: {version: "1.31", serviceCidr: 10.100.0.0/16}\n',
        'kubernetes:\n  <<: {version: "1.31"}\n  serviceCidr: 10.100.0.0/16\n',
    )
    assert_reported(tmp_path, text, line_of(text, "<<:"), "merge keys (<<)")


def test_anchors_and_aliases_are_fine(tmp_path: Path) -> None:
    text = edit(
        "securityGroups: [sg-cluster]}\n      - {linux: eth1, ifindex: 3, id: "
        "eni-01a00000000000060",
        "securityGroups: &groups [sg-cluster]}\n      - {linux: eth1, ifindex: 3, id: "
        "eni-01a00000000000060",
    )
    text = edit(
        "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: [sg-cluster]}",
        "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: *groups}",
        text,
    )
    assert run_cli(write(tmp_path, text)).returncode == 0


def test_an_error_inside_an_aliased_value_names_the_anchor_line(tmp_path: Path) -> None:
    # The groups list is written (with a typo) on node 1's eth0 and used again by its eth1:
    # the error names the line where the value is written.
    text = edit(
        "secondaryIps: [192.168.1.51], securityGroups: [sg-cluster]}",
        "secondaryIps: [192.168.1.51], securityGroups: &groups [sg-clustr]}",
    )
    text = edit(
        "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: [sg-cluster]}",
        "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61], securityGroups: *groups}",
        text,
    )
    assert_reported(
        tmp_path, text, line_of(text, "&groups"), "security group 'sg-clustr' is not declared"
    )


@pytest.mark.parametrize(
    "recursive",
    ["kubernetes: &k {version: '1.31', serviceCidr: *k}", "kubernetes: &k [*k]"],
)
def test_a_recursive_alias_is_refused_at_its_line(tmp_path: Path, recursive: str) -> None:
    text = edit('kubernetes: {version: "1.31", serviceCidr: 10.100.0.0/16}', recursive)
    assert_reported(tmp_path, text, line_of(text, "kubernetes: &k"), "recursive alias")


def test_an_alias_bomb_stops_at_the_value_limit(tmp_path: Path) -> None:
    """Ten aliases of ten aliases of …: 10**9 values from a few hundred bytes."""
    lines = ["lol0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    text = edit("region: eu-west-2\n", "region: eu-west-2\n" + "\n".join(lines) + "\n")
    # lol5 is 1,111,111 values; with lol0..lol4 the total is 1,234,566; lol6 passes 2,500,000.
    error = assert_reported(
        tmp_path, text, line_of(text, "lol6:"), f"more than {MAX_VALUES:,} values"
    )
    assert "aliases" in error


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_nesting_deeper_than_the_limit_is_refused_at_its_line(tmp_path: Path, depth: int) -> None:
    text = edit("region: eu-west-2\n", f"region: {'[' * depth}{']' * depth}\n")
    assert_reported(
        tmp_path, text, line_of(text, "region: [["), f"nesting deeper than {MAX_DEPTH} levels"
    )


def test_nesting_through_aliases_counts_too(tmp_path: Path) -> None:
    half = MAX_DEPTH // 2 + 1
    extra = f"deep: &d {'[' * half}{']' * half}\ndeeper: {'[' * half}*d{']' * half}\n"
    text = edit("region: eu-west-2\n", "region: eu-west-2\n" + extra)
    assert_reported(tmp_path, text, line_of(text, "deeper:"), "nesting deeper")


def test_a_second_yaml_document_is_refused(tmp_path: Path) -> None:
    text = DEMO + "---\nname: other\n"
    assert_reported(tmp_path, text, line_of(text, "---"), "second YAML document")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2001-13-45", "'2001-13-45' cannot be read as a date"),
        ("9" * 5000, "cannot be read as an integer"),
    ],
)
def test_a_value_yaml_cannot_construct_is_an_error_at_its_line(
    tmp_path: Path, value: str, says: str
) -> None:
    text = edit("masqueradeBit: 14", f"masqueradeBit: {value}")
    error = assert_reported(tmp_path, text, line_of(text, "masqueradeBit: "), says)
    assert len(error) < 400, "the value is quoted, not copied whole"


# 1. Odd values for pydantic: one line each, no coercion ------------------------------------------


@cases(
    (
        "list-for-a-string",
        Edit("region: eu-west-2\n", "region: [a, b]\n", "region:", ("region", "got a list")),
    ),
    (
        "bool-ifindex-is-not-1",
        Edit(
            "ifindex: 3, id: eni-01a00000000000060",
            "ifindex: true, id: eni-01a00000000000060",
            "ifindex: true",
            ("nodes.0.enis.1.ifindex", "valid integer", "got True"),
        ),
    ),
    (
        "float-ifindex",
        Edit(
            "ifindex: 3, id: eni-01a00000000000060",
            "ifindex: 3.0, id: eni-01a00000000000060",
            "ifindex: 3.0",
            ("valid integer", "got 3.0"),
        ),
    ),
    (
        "bool-device",
        Edit(
            ETH1_NODE1,
            ETH1_NODE1.replace("device: 1", "device: yes"),
            "device: yes",
            ("valid integer",),
        ),
    ),
    (
        "huge-ifindex",
        Edit(
            "ifindex: 3, id: eni-01a00000000000060",
            f"ifindex: {10**30}, id: eni-01a00000000000060",
            "ifindex: 1000",
            ("less than or equal to 2147483647",),
        ),
    ),
    (
        "integer-address",
        Edit(
            "primaryIp: 192.168.1.60,",
            "primaryIp: 3232235836,",
            "3232235836",
            ("written as text", "3232235836"),
        ),
    ),
    (
        "bool-for-an-env-string",
        Edit(
            'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false"}',
            "env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: no}",
            "EXTERNALSNAT: no",
            ("cni.env.AWS_VPC_K8S_CNI_EXTERNALSNAT", "valid string", "quote it"),
        ),
    ),
    (
        "bool-sysctl",
        Edit(
            "sysctls: {net.ipv4.ip_forward: 1,",
            "sysctls: {net.ipv4.ip_forward: true,",
            "ip_forward: true",
            ("nodeDefaults.sysctls.net.ipv4.ip_forward", "got True"),
        ),
    ),
    (
        "string-port",
        Edit(
            "{name: web, ip: 198.51.100.20, port: 443}",
            '{name: web, ip: 198.51.100.20, port: "443"}',
            'port: "443"',
            ("externalHosts.1.port", "valid integer"),
        ),
    ),
    (
        "port-out-of-range",
        Edit(
            "{name: web, ip: 198.51.100.20, port: 443}",
            "{name: web, ip: 198.51.100.20, port: 70000}",
            "port: 70000",
            ("less than or equal to 65535",),
        ),
    ),
)
def test_odd_values_get_one_good_line(tmp_path: Path, case: Edit) -> None:
    case.check(tmp_path)


# 2. Variants -----------------------------------------------------------------------------------


@cases(
    (
        "body-not-a-mapping",
        Edit(NAT_VARIANT, "nat: 5", "nat: 5", ("variant 'nat' is the int 5", "not a mapping")),
    ),
    (
        "subnets-a-list",
        Edit(NAT_VARIANT, "nat: {subnets: [public-a]}", "  nat: {", ("subnets is a list",)),
    ),
    (
        "subnet-changes-a-scalar",
        Edit(
            NAT_VARIANT,
            "nat: {subnets: {public-a: 5}}",
            "  nat: {",
            ("changes to subnet 'public-a' are the int 5",),
        ),
    ),
    (
        "unknown-section",
        Edit(
            NAT_VARIANT,
            "nat: {subnetz: {public-a: {}}}",
            "nat: {subnetz",
            ("patches 'subnetz', which is not a section",),
        ),
    ),
    (
        "renames-a-subnet",
        Edit(
            NAT_VARIANT,
            "nat: {subnets: {public-a: {name: public-z}}}",
            "  nat: {",
            ("changes the name of subnet 'public-a'",),
        ),
    ),
    (
        "unknown-subnet",
        Edit(
            NAT_VARIANT,
            "nat: {subnets: {public-z: {routeTable: rtb-private-a}}}",
            "  nat: {",
            ("under variant 'nat'", "patches unknown subnet 'public-z'"),
        ),
    ),
    (
        "unselected-variant-with-a-bad-patched-value",
        Edit(
            NAT_VARIANT,
            "nat: {subnets: {public-a: {routeTable: rtb-nope}}}",
            "rtb-nope",
            ("under variant 'nat'", "unknown route table 'rtb-nope'"),
        ),
    ),
    (
        "selected-variant-with-a-bad-patched-value",
        Edit(
            NAT_VARIANT,
            "nat: {subnets: {public-a: {routeTable: rtb-nope}}}",
            "rtb-nope",
            ("unknown route table 'rtb-nope'",),
            options=("--variant", "nat"),
        ),
    ),
    (
        "patched-section-value",
        Edit(
            EXTERNAL_SNAT_ENV,
            "cni: {env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: true}}",
            "EXTERNALSNAT: true",
            ("under variant 'externalSnat'", "cni.env.AWS_VPC_K8S_CNI_EXTERNALSNAT"),
        ),
    ),
    (
        "variant-only-subnet-with-a-bad-cidr",
        Edit(
            NAT_SUBNET,
            "{name: nat-a, az: eu-west-2a, azId: euw2-az2, cidr: 10.9.0.0/24",
            "name: nat-a",
            ("under variant 'nat'", "nat-a 10.9.0.0/24 is outside the VPC"),
        ),
    ),
    (
        "variant-only-nat-gateway-in-an-unknown-subnet",
        Edit(
            "subnet: nat-a, privateIp: 192.168.0.10",
            "subnet: nat-b, privateIp: 192.168.0.10",
            "subnet: nat-b",
            ("under variant 'nat'", "unknown subnet 'nat-b'"),
        ),
    ),
    (
        "tag-naming-an-undeclared-variant",
        Edit(
            "mapPublicIp: true, variant: [nat, externalSnat]}",
            "mapPublicIp: true, variant: [nat, externalSNAT]}",
            "externalSNAT",
            ("variant 'externalSNAT' is not declared",),
        ),
    ),
)
def test_variant_problems_are_reported_at_the_variants_line(tmp_path: Path, case: Edit) -> None:
    case.check(tmp_path)


def test_a_patched_value_is_reported_at_its_own_line_in_a_block_variant(tmp_path: Path) -> None:
    text = edit(
        NAT_VARIANT,
        "nat:\n    subnets:\n      public-a:\n        mapPublicIp: true\n"
        "        routeTable: rtb-nope\n",
    )
    line = line_of(text, "routeTable: rtb-nope")
    assert_reported(tmp_path, text, line, "under variant 'nat'", "unknown route table")
    assert_reported(tmp_path, text, line, "unknown route table", options=("--variant", "nat"))


def test_a_controller_error_in_an_unselected_variant_is_reported(tmp_path: Path) -> None:
    # The VPC CNI's reading of its env (controllers) is checked for every variant too.
    text = edit(EXTERNAL_SNAT_ENV, 'cni: {env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "maybe"}}')
    line = line_of(text, '"maybe"')
    assert_reported(tmp_path, text, line, "under variant 'externalSnat'", "not true or false")


def test_an_unmodelled_feature_in_an_unselected_variant_stops_only_that_variant(
    tmp_path: Path,
) -> None:
    text = edit(EXTERNAL_SNAT_ENV, 'cni: {env: {ENABLE_POD_ENI: "true"}}')
    path = write(tmp_path, text)
    assert run_cli(path).returncode == 0
    error = one_error_line(run_cli(path, "--variant", "externalSnat"), NOT_MODELLED)
    assert "ENABLE_POD_ENI" in error


# 3. Impossible values --------------------------------------------------------------------------


@cases(
    (
        "router-mac-template-banana",
        Edit(
            'routerMac: "02:00:c0:a8:{x}:01"',
            "routerMac: banana",
            "routerMac: banana",
            ("vpc.routerMac", "'banana' is not a router MAC template"),
        ),
    ),
    (
        "router-mac-template-multicast-for-a-subnet",
        Edit(
            'routerMac: "02:00:c0:a8:{x}:01"',
            'routerMac: "{x}:00:c0:a8:00:01"',
            "routerMac:",
            ("subnet public-a: router MAC 01:00:c0:a8:00:01 is a multicast MAC",),
        ),
    ),
    (
        "subnet-router-mac-banana",
        Edit(
            "cidr: 192.168.3.0/24, routeTable:",
            "cidr: 192.168.3.0/24, routerMac: banana, routeTable:",
            "routerMac: banana",
            ("vpc.subnets.2.routerMac", "not a MAC address"),
        ),
    ),
    (
        "subnet-router-mac-zero",
        Edit(
            "cidr: 192.168.3.0/24, routeTable:",
            'cidr: 192.168.3.0/24, routerMac: "00:00:00:00:00:00", routeTable:',
            'routerMac: "00:00',
            ("all zero",),
        ),
    ),
    (
        "eni-mac-multicast",
        Edit(
            MAC_NODE1_ETH0,
            'mac: "03:00:c0:a8:01:32"',
            "03:00:c0:a8:01:32",
            ("multicast", "02:00:c0:a8:01:32"),
        ),
    ),
    (
        "eni-mac-broadcast",
        Edit(MAC_NODE1_ETH0, 'mac: "ff:ff:ff:ff:ff:ff"', "ff:ff:ff:ff:ff:ff", ("multicast",)),
    ),
    (
        "eni-mac-zero",
        Edit(MAC_NODE1_ETH0, 'mac: "00:00:00:00:00:00"', "00:00:00:00:00:00", ("all zero",)),
    ),
    (
        "eni-mac-is-a-router-mac",
        Edit(
            MAC_NODE1_ETH0,
            'mac: "02:00:c0:a8:01:01"',
            "02:00:c0:a8:01:01",
            ("router MAC of subnet public-a",),
        ),
    ),
    (
        "pinned-veth-mac-multicast",
        Edit(
            'hostVethMac: "2e:00:c0:a8:01:47"',
            'hostVethMac: "2f:00:c0:a8:01:47"',
            "2f:00:c0:a8:01:47",
            ("pods.2.pin.hostVethMac", "multicast"),
        ),
    ),
    (
        "duplicate-vpc-cidr",
        Edit(
            "cidrs: [192.168.0.0/16]",
            "cidrs: [192.168.0.0/16, 192.168.0.0/16]",
            "cidrs:",
            ("VPC CIDR 192.168.0.0/16 repeats",),
        ),
    ),
    (
        "overlapping-vpc-cidrs",
        Edit(
            "cidrs: [192.168.0.0/16]",
            "cidrs: [192.168.0.0/16, 192.168.64.0/18]",
            "cidrs:",
            ("192.168.64.0/18 overlaps VPC CIDR 192.168.0.0/16",),
        ),
    ),
    (
        "vpc-cidr-too-big-for-aws",
        Edit("cidrs: [192.168.0.0/16]", "cidrs: [192.0.0.0/8]", "cidrs:", ("/16 to /28",)),
    ),
    (
        "device-index-beyond-the-instance-type",
        Edit(
            ETH1_NODE1,
            ETH1_NODE1.replace("device: 1", "device: 3"),
            "device: 3",
            ("device index 3", "m5.large has 3 ENI slots (device 0 to 2)"),
        ),
    ),
    (
        "ifindex-beyond-the-kernel-int",
        Edit(
            "ifindex: 3, id: eni-01a00000000000060",
            "ifindex: 2147483648, id: eni-01a00000000000060",
            "2147483648",
            ("less than or equal to 2147483647",),
        ),
    ),
    (
        "ifindex-of-lo",
        Edit(
            "ifindex: 3, id: eni-01a00000000000060",
            "ifindex: 1, id: eni-01a00000000000060",
            "ifindex: 1,",
            ("greater than or equal to 2",),
        ),
    ),
    (
        "pinned-veth-ifindex-beyond-the-kernel-int",
        Edit(
            "pin: {hostVethIfindex: 9,",
            "pin: {hostVethIfindex: 4294967296,",
            "4294967296",
            ("pods.3.pin.hostVethIfindex", "2147483647"),
        ),
    ),
    (
        "eni-named-lo",
        Edit(
            ETH1_NODE1, ETH1_NODE1.replace("eth1", "lo"), "{linux: lo,", ("'lo' is the loopback",)
        ),
    ),
    (
        "prefix-not-a-28",
        Edit(
            "primaryIp: 192.168.2.100, secondaryIps: []",
            "primaryIp: 192.168.2.100, secondaryIps: [], prefixes: [192.168.2.32/27]",
            "192.168.2.32/27",
            ("nodes.2.enis.1.prefixes.0", "is a /27; ENI prefixes are /28s"),
        ),
    ),
    (
        "eni-in-another-az",
        Edit(
            ETH1_NODE1,
            ETH1_NODE1.replace("device: 1,", "device: 1, subnet: public-b,"),
            "subnet: public-b,",
            ("subnet public-b is in eu-west-2b", "node " + NODE1 + " is in eu-west-2a"),
        ),
    ),
    (
        "subnet-zone-outside-the-region",
        Edit(
            "az: eu-west-2c, azId: euw2-az1, cidr: 192.168.3.0/24",
            "az: us-east-1c, azId: euw2-az1, cidr: 192.168.3.0/24",
            "us-east-1c",
            ("'us-east-1c' is not in region eu-west-2",),
        ),
    ),
)
def test_impossible_values_are_refused(tmp_path: Path, case: Edit) -> None:
    case.check(tmp_path)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("eth0123456789abc", "16 bytes; Linux allows 15"),
        ("eth\u00e9123456789ab", "16 bytes"),  # 15 characters, 16 bytes in UTF-8
        ('"a/b"', "holds '/'"),
        ('"eth1:0"', "holds ':'"),
        ('"eth%d"', "holds '%'"),
        ('"eth 1"', "whitespace"),
        ('"eth\\t1"', "whitespace"),
        ('"\\u00e0b"', "whitespace"),  # à is C3 A0 in UTF-8; the kernel's isspace(0xA0) is true
        ('"."', "is reserved"),
        ('".."', "is reserved"),
        ('""', "'' is empty"),
    ],
)
def test_linux_interface_names_follow_dev_valid_name(tmp_path: Path, name: str, says: str) -> None:
    text = edit(ETH1_NODE1, ETH1_NODE1.replace("linux: eth1", f"linux: {name}"))
    line = line_of(text, f"linux: {name}")
    assert_reported(tmp_path, text, line, "nodes.0.enis.1.linux", says)


def test_a_15_byte_interface_name_is_fine(tmp_path: Path) -> None:
    text = edit(ETH1_NODE1, ETH1_NODE1.replace("linux: eth1", "linux: eth0123456789ab"))
    text = edit("eni: eth1, ip: 192.168.1.61", "eni: eth0123456789ab, ip: 192.168.1.61", text)
    assert run_cli(write(tmp_path, text)).returncode == 0


def test_a_pinned_host_veth_name_follows_the_same_rules(tmp_path: Path) -> None:
    text = edit("pin: {hostVethIfindex: 9,", 'pin: {hostVeth: "veth/9", hostVethIfindex: 9,')
    assert_reported(tmp_path, text, line_of(text, "veth/9"), "pods.3.pin.hostVeth", "holds '/'")


@pytest.mark.parametrize(
    ("netns", "says"),
    [('"a/b"', "'a/b'"), ('".."', "'..'"), ('""', "''"), (f'"{"n" * 256}"', "characters)")],
)
def test_pinned_netns_names_are_file_names(tmp_path: Path, netns: str, says: str) -> None:
    text = edit("netns: cni-8b1f0e25-3d7c-405b-8ca6-2e3f4a5b6c81", f"netns: {netns}")
    line = line_of(text, f"netns: {netns}")
    assert_reported(tmp_path, text, line, "pods.3.pin.netns", says, "not a network namespace")


@cases(
    (
        "eni-security-group-undeclared",
        Edit(
            "secondaryIps: [192.168.1.51], securityGroups: [sg-cluster]",
            "secondaryIps: [192.168.1.51], securityGroups: [sg-nope]",
            "sg-nope",
            ("ENI eni-01a00000000000050: security group 'sg-nope' is not declared",),
        ),
    ),
    (
        "security-group-rule-naming-an-undeclared-group",
        Edit(
            "{protocol: all, source: sg-cluster}",
            "{protocol: all, source: sg-clustr}",
            "sg-clustr",
            ("security group sg-cluster: source 'sg-clustr' is not a CIDR",),
        ),
    ),
    (
        "ingress-backend-service-undeclared",
        Edit(
            "backend: {service: {name: rating,",
            "backend: {service: {name: ratings,",
            "name: ratings",
            ("ingress myingress: backend service 'ratings' is not declared",),
        ),
    ),
    (
        "load-balancer-for-an-undeclared-service",
        Edit(
            "{for: service/app1-clb,",
            "{for: service/app1-alb,",
            "service/app1-alb",
            ("service default/app1-alb is not declared",),
        ),
    ),
    (
        "load-balancer-for-something-else",
        Edit("{for: service/app1-clb,", "{for: app1-clb,", "{for: app1-clb", ("does not name",)),
    ),
    (
        "dns-alias-of-an-undeclared-ingress",
        Edit(
            "alias: ingress/myingress",
            "alias: ingress/yoursingress",
            "yoursingress",
            ("ingress default/yoursingress is not declared",),
        ),
    ),
    (
        "duplicate-service",
        Edit(
            "{name: order, type: ClusterIP",
            "{name: rating, type: ClusterIP",
            # The second declaration is the one reported: the demo's own `rating`.
            "{name: rating, type: ClusterIP, clusterIP: 10.100.201.20",
            ("duplicate service default/rating",),
        ),
    ),
)
def test_references_name_declared_things(tmp_path: Path, case: Edit) -> None:
    case.check(tmp_path)


@cases(
    (
        "empty-node-name",
        Edit(f"  - name: {NODE1}\n", '  - name: ""\n', '- name: ""', ("node name is empty",)),
    ),
    (
        "node-name-not-dns-1123",
        Edit(f"  - name: {NODE1}\n", "  - name: Node_1\n", "Node_1", ("'Node_1'", "DNS-1123")),
    ),
    (
        "empty-pod-name",
        Edit(
            "name: app1-5f7d9c6b8-z8h4k,",
            'name: "",',
            'name: "",',
            ("pods.3.name", "pod name is empty"),
        ),
    ),
    (
        "pod-name-not-dns-1123",
        Edit(
            "name: app1-5f7d9c6b8-z8h4k,",
            "name: app1_z8h4k,",
            "app1_z8h4k",
            ("pod name 'app1_z8h4k'",),
        ),
    ),
    (
        "empty-namespace",
        Edit(
            "{namespace: default, name: app1-5f7d9c6b8-z8h4k",
            '{namespace: "", name: app1-5f7d9c6b8-z8h4k',
            'namespace: ""',
            ("namespace is empty",),
        ),
    ),
    (
        "namespace-with-a-dot",
        Edit(
            "{namespace: default, name: app1-5f7d9c6b8-z8h4k",
            "{namespace: kube.system, name: app1-5f7d9c6b8-z8h4k",
            "kube.system",
            ("namespace 'kube.system'", "DNS-1123 label"),
        ),
    ),
    (
        "empty-subnet-name",
        Edit(
            "{name: public-c, az:",
            '{name: "", az:',
            '{name: "", az:',
            ("vpc.subnets.2.name", "is not a name (empty)"),
        ),
    ),
    (
        "empty-eni-id",
        Edit(
            "id: eni-01a00000000000060",
            'id: ""',
            'id: ""',
            ("nodes.0.enis.1.id", "'' is not an ENI id"),
        ),
    ),
    (
        "eni-id-not-hex",
        Edit(
            "id: eni-01a00000000000060",
            "id: eni-xyz",
            "eni-xyz",
            ("'eni-xyz' is not an ENI id",),
        ),
    ),
    (
        "vpc-id",
        Edit(
            "id: vpc-0a11c0ffee0000001",
            "id: my-vpc",
            "id: my-vpc",
            ("vpc.id", "'my-vpc' is not a VPC id"),
        ),
    ),
)
def test_names_and_ids_are_well_formed(tmp_path: Path, case: Edit) -> None:
    case.check(tmp_path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# Targets and what the controllers derive ---------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("node/Node_1", "'Node_1' is not a node name"),
        ("pod/Default/app2-7c9f8d6b5-k5x2p", "'Default' is not a namespace"),
        ("pod/default/app2 x", "'app2 x' is not a pod name"),
        ("node/\n", "'\\n' is not a node name"),
        ("node/" + "n" * 5000, "(5,000 characters)"),
    ],
)
def test_a_target_that_cannot_name_anything_says_why(target: str, says: str) -> None:
    result = subprocess.run(
        [*eksnet_command(), "exec", target, "--", "ip", "rule"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    error = one_error_line(result)
    assert says in error, error
    assert len(error) < 400, "the target is quoted, not copied whole"


def test_an_automatic_ifindex_after_a_pin_at_the_top_of_the_range_wraps_around(
    tmp_path: Path,
) -> None:
    # Pod 71 pinned to the largest ifindex, pod 81 (same node) unpinned: the kernel's next index
    # wraps past 2**31 - 1 to the lowest free one, 4 (lo, eth0 and eth1 hold 1-3).
    text = edit("pin: {hostVethIfindex: 8,", "pin: {hostVethIfindex: 2147483647,")
    text = edit("pin: {hostVethIfindex: 9, ", "pin: {", text)
    path = write(tmp_path, text)
    node2 = "node/ip-192-168-1-70.eu-west-2.compute.internal"
    result = subprocess.run(
        [*eksnet_command(), "exec", node2, "--cluster", str(path), "--", "ip", "link"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    indexes = [int(line.split(":")[0]) for line in heads]
    assert indexes == [1, 2, 3, 4, 2147483647], result.stdout


# More of the same kinds ------------------------------------------------------------------------


def test_a_key_with_a_line_break_is_refused(tmp_path: Path) -> None:
    # An escaped line break in a quoted key would otherwise split the one-line error.
    text = edit("region: eu-west-2\n", 'region: eu-west-2\n"bad\\nkey": 1\n')
    assert_reported(tmp_path, text, line_of(text, '"bad'), "key 'bad\\nkey' holds a tab or line")


def test_a_talk_name_is_one_line(tmp_path: Path) -> None:
    text = edit("talkName: node 1\n", 'talkName: "node\\n1"\n')
    line = line_of(text, 'talkName: "node')
    assert_reported(tmp_path, text, line, "nodes.0.talkName", "one line")


def test_windows_line_endings_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "crlf.yaml"
    path.write_bytes(DEMO.replace("\n", "\r\n").encode())
    assert run_cli(path).returncode == 0


@cases(
    (
        "nat-gateway-address-outside-its-subnet",
        Edit(
            "privateIp: 192.168.0.10,",
            "privateIp: 192.168.1.10,",
            "privateIp: 192.168.1.10",
            ("under variant 'nat'", "192.168.1.10 is not an assignable address of subnet nat-a"),
        ),
    ),
    (
        "nat-gateway-public-ip-of-a-node",
        Edit(
            "publicIp: 192.0.2.10,",
            "publicIp: 192.0.2.50,",
            "publicIp: 192.0.2.50,",
            ("under variant 'nat'", "public IP 192.0.2.50 is used twice"),
        ),
    ),
    (
        "too-many-variants",
        Edit(
            "variants:\n",
            # the demo's three variants and 32 more
            "variants:\n" + "".join(f"  v{index}: {{}}\n" for index in range(32)),
            "variants:",
            ("35 variants", "allows 32"),
        ),
    ),
    (
        "variant-name-with-a-space",
        Edit(NAT_VARIANT, '"n a t": {}', '"n a t"', ("variant name 'n a t' is not a plain word",)),
    ),
    (
        "link-local-pin-not-link-local",
        Edit(
            'podLinkLocal: "fe80::6a40:16ff:fe85:c334"',
            'podLinkLocal: "2001:db8::1"',
            "2001:db8::1",
            ("pods.1.pin.podLinkLocal", "not an IPv6 link-local address"),
        ),
    ),
    (
        "account-id-not-12-digits",
        Edit(
            'accountId: "111122223333"',
            'accountId: "1111-2222-3333"',
            "accountId:",
            ("'1111-2222-3333' is not an AWS account id",),
        ),
    ),
)
def test_more_impossible_values(tmp_path: Path, case: Edit) -> None:
    case.check(tmp_path)


def test_many_variants_of_a_big_spec_are_refused_before_validating_them(tmp_path: Path) -> None:
    # Every configuration is validated at each load: 110,000 values under 6 configurations
    # (none, the demo's three variants, two more) would be 660,000 validations, past the budget.
    filler = "    padding: [" + ", ".join(["0"] * 110_000) + "]\n"
    text = edit("  flowLogs:\n", "  flowLogs:\n" + filler)
    text = edit("variants:\n", "variants:\n" + "".join(f"  v{i}: {{}}\n" for i in range(2)), text)
    error = assert_reported(tmp_path, text, line_of(text, "variants:"), "6 configurations")
    assert f"({MAX_VALIDATED:,})" in error, error


@pytest.mark.parametrize("value", ["banana", '"1 2"', "99999999999999999999", '""'])
def test_an_interface_sysctl_is_a_32_bit_integer(tmp_path: Path, value: str) -> None:
    text = edit("net.ipv4.conf.all.rp_filter: 1,", f"net.ipv4.conf.all.rp_filter: {value},")
    line = line_of(text, "net.ipv4.conf.all.rp_filter:")
    assert_reported(tmp_path, text, line, "sysctl net.ipv4.conf.all.rp_filter", "32-bit integer")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"0xffffffffffffffffff"', "outside 0x1..0xffffffff"),
        ('"0"', "outside 0x1..0xffffffff"),
        ('"-5"', "outside 0x1..0xffffffff"),
    ],
)
def test_an_out_of_range_connmark_names_its_line(tmp_path: Path, value: str, says: str) -> None:
    # aws-node's getConnmark: ParseInt, then anything <= 0 or > MaxUint32 is out of range.
    text = edit(
        'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false"}',
        f'env: {{AWS_VPC_K8S_CNI_EXTERNALSNAT: "false", AWS_VPC_K8S_CNI_CONNMARK: {value}}}',
    )
    assert_reported(tmp_path, text, line_of(text, "CONNMARK:"), "AWS_VPC_K8S_CNI_CONNMARK", says)


@pytest.mark.parametrize(("prefix", "says"), [('"a/b"', "holds '/'"), ('"v:"', "holds ':'")])
def test_a_veth_prefix_that_makes_invalid_interface_names(
    tmp_path: Path, prefix: str, says: str
) -> None:
    text = edit(
        'env: {AWS_VPC_K8S_CNI_EXTERNALSNAT: "false"}',
        f'env: {{AWS_VPC_K8S_CNI_EXTERNALSNAT: "false", AWS_VPC_K8S_CNI_VETHPREFIX: {prefix}}}',
    )
    line = line_of(text, "VETHPREFIX:")
    assert_reported(tmp_path, text, line, "host veth names that Linux refuses", says)
