"""Every bad cluster spec gets one `InputError` naming the file, the line and a fix.

Each case is the demo spec (`examples/talk.yaml`, talk-walks.md §2) with one textual edit, parsed
with `parse_cluster(text, "c.yaml")`. The expected line is found in the edited text itself (the
line holding the bad value, or, for a missing field, the mapping that lacks it), never taken from
what the code reports. Limits are vpc-cni.md §3.6 (m5.large: 3 ENIs × 10 IPv4, so 9 secondary
addresses per ENI); reserved addresses are the first four and the last of a subnet (AWS).
"""

from __future__ import annotations

import re

import pytest

from eksnet.errors import InputError
from eksnet.model import Cluster, parse_cluster
from eksnet.model.load import demo_text

SOURCE = "c.yaml"
DEMO = demo_text()[0]

NODE1 = "ip-192-168-1-50.eu-west-2.compute.internal"
NODE2 = "ip-192-168-1-70.eu-west-2.compute.internal"
NODE3 = "ip-192-168-2-90.eu-west-2.compute.internal"

# Demo lines the edits below rely on (talk.yaml; talk-walks.md §2.3-2.4 values).
NODE3_ETH1 = "primaryIp: 192.168.2.100, secondaryIps: []"
POD71 = "{namespace: default, name: app1-5f7d9c6b8-w7r2n"
POD81 = "{namespace: default, name: app1-5f7d9c6b8-z8h4k"
POD91 = "{namespace: default, name: app1-5f7d9c6b8-b9v6s"


def edit(old: str, new: str, text: str = DEMO) -> str:
    """`text` with the one occurrence of `old` replaced by `new`."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the text"
    return text.replace(old, new)


def line_of(text: str, fragment: str, *, after: str | None = None) -> int:
    """The 1-based number of the line holding `fragment` (the first one after the line holding
    `after`, when given); the fragment must be unambiguous."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = line_of(text, after)
    found = [number for number, line in enumerate(lines, 1) if number > start and fragment in line]
    assert found, f"{fragment!r} is not in the text"
    if after is None:
        assert len(found) == 1, f"{fragment!r} is on lines {found}"
    return found[0]


def error_of(text: str, *, variant: str | None = None) -> InputError:
    with pytest.raises(InputError) as info:
        parse_cluster(text, SOURCE, variant=variant)
    return info.value


def assert_reported(error: InputError, line: int, *says: str) -> None:
    """One line `c.yaml:LINE: MESSAGE (fix: FIX)`, and the message says each of `says`."""
    text = error.one_line()
    assert "\n" not in text
    assert error.source == SOURCE
    assert error.line == line, text
    assert text.startswith(f"{SOURCE}:{line}: "), text
    assert error.fix, text
    assert text.endswith(f" (fix: {error.fix})"), text
    for part in says:
        assert part in error.message, f"{part!r} not in {text!r}"


def test_the_demo_itself_is_valid() -> None:
    cluster = parse_cluster(DEMO, SOURCE)
    assert isinstance(cluster, Cluster)
    assert [node.name for node in cluster.nodes] == [NODE1, NODE2, NODE3]


# YAML syntax -----------------------------------------------------------------------------------


def test_yaml_syntax_error_names_its_line() -> None:
    text = edit("region: eu-west-2\n", "region: eu-west-2: oops\n")
    assert_reported(error_of(text), line_of(text, "eu-west-2: oops"), "YAML syntax error")


def test_mismatched_brackets_are_a_syntax_error_on_their_line() -> None:
    # `[` opened, `}` closes: the parser stops at the `}` on the same line.
    text = edit("kubeProxy: {version: v1.31,", "kubeProxy: [version: v1.31,")
    assert_reported(
        error_of(text), line_of(text, "kubeProxy: [version"), "YAML syntax error", "']'"
    )


def test_duplicate_key_names_the_second_occurrence() -> None:
    text = edit("region: eu-west-2\n", "region: eu-west-2\nregion: eu-west-1\n")
    assert_reported(error_of(text), line_of(text, "region: eu-west-1"), "duplicate key 'region'")


def test_empty_file() -> None:
    assert_reported(error_of("# nothing here\n"), 1, "empty")


def test_a_list_is_not_a_cluster() -> None:
    assert_reported(error_of("- name: talk\n"), 1, "mapping")


# Shape of the values (pydantic) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "fragment", "path"),
    [
        # A typo in a nested key: camelCase `secondaryIps`, not `secondaryIPs`.
        (
            "primaryIp: 192.168.1.50, secondaryIps:",
            "primaryIp: 192.168.1.50, secondaryIPs:",
            "secondaryIPs",
            "nodes.0.enis.0.secondaryIPs",
        ),
        # A typo in a top-level section.
        ("kubeProxy: {", "kubeproxy: {", "kubeproxy:", "kubeproxy"),
        # A typo in a subnet.
        (
            "cidr: 192.168.2.0/24, routeTable:",
            "cidr: 192.168.2.0/24, routeTabel: rtb-public, routeTable:",
            "routeTabel",
            "vpc.subnets.1.routeTabel",
        ),
    ],
)
def test_unknown_field_is_named_at_its_line(old: str, new: str, fragment: str, path: str) -> None:
    text = edit(old, new)
    assert_reported(error_of(text), line_of(text, fragment), path, "unknown field")


@pytest.mark.parametrize(
    ("old", "new", "mapping_start", "after", "path"),
    [
        # A subnet without `az` is reported at that subnet's mapping.
        ("az: eu-west-2b, ", "", "{name: public-b", None, "vpc.subnets.1.az"),
        # A pod without `ip` is reported at that pod's mapping.
        ("eni: eth1, ip: 192.168.1.81,", "eni: eth1,", POD81, None, "pods.3.ip"),
        # An ENI without its `id`: node 3's eth0 mapping, which starts with `- {linux: eth0`.
        (
            "id: eni-01a00000000000090, ",
            "",
            "- {linux: eth0",
            "subnet: public-b",
            "nodes.2.enis.0.id",
        ),
        # The cluster without `region`: reported at the top-level mapping (its first key).
        ("region: eu-west-2\n", "", "name: talk", None, "region"),
    ],
)
def test_missing_required_field_is_reported_at_its_mapping(
    old: str, new: str, mapping_start: str, after: str | None, path: str
) -> None:
    text = edit(old, new)
    line = line_of(text, mapping_start, after=after)
    assert_reported(error_of(text), line, path, "required field missing")


def test_missing_field_message_counts_the_other_errors() -> None:
    text = edit("az: eu-west-2b, ", "")
    text = edit("az: eu-west-2c, ", "", text)
    error = error_of(text)
    assert_reported(error, line_of(text, "{name: public-b"), "vpc.subnets.1.az", "1 more error")


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("02:00:c0:a8:01", "five octets"),
        ("02:00:C0:A8:01:32", "uppercase hex"),
        ("02-00-c0-a8-01-32", "dashes"),
    ],
)
def test_bad_mac_names_the_value(bad: str, why: str) -> None:
    text = edit('mac: "02:00:c0:a8:01:32"', f'mac: "{bad}"')
    assert_reported(
        error_of(text),
        line_of(text, f'"{bad}"'),
        "nodes.0.enis.0.mac",
        repr(bad),
        "not a MAC address",
    )


def test_bad_pinned_pod_mac_names_the_pin() -> None:
    text = edit('hostVethMac: "2e:00:c0:a8:01:47"', 'hostVethMac: "2e:00:c0:a8:1:47"')
    assert_reported(
        error_of(text), line_of(text, "2e:00:c0:a8:1:47"), "pods.2.pin.hostVethMac", "not a MAC"
    )


def test_unquoted_mac_that_yaml_reads_as_a_number_says_to_quote_it() -> None:
    # YAML 1.1 reads 12:34:56:12:34:56 as a base-60 integer, not a string.
    text = edit('mac: "02:00:c0:a8:01:32"', "mac: 12:34:56:12:34:56")
    error = error_of(text)
    assert_reported(error, line_of(text, "mac: 12:34:56:12:34:56"), "nodes.0.enis.0.mac", "string")
    assert error.fix is not None
    assert "quote" in error.fix


def test_unquoted_mac_that_yaml_reads_as_a_string_is_fine() -> None:
    text = edit('mac: "02:00:c0:a8:01:32"', "mac: 02:00:c0:a8:01:32")
    assert parse_cluster(text, SOURCE).nodes[0].enis[0].mac == "02:00:c0:a8:01:32"


@pytest.mark.parametrize("bad", ["1.19.2", "v1.19", "latest", "V1.19.2"])
def test_bad_cni_version_string(bad: str) -> None:
    text = edit("  version: v1.19.2\n", f'  version: "{bad}"\n')
    assert_reported(
        error_of(text), line_of(text, f'version: "{bad}"'), "cni.version", "not a VPC CNI version"
    )


def test_cni_version_with_a_build_suffix_is_accepted() -> None:
    # talk-walks.md §2.5: the add-on version is written `v1.19.2-eksbuild.1`.
    text = edit("  version: v1.19.2\n", "  version: v1.19.2-eksbuild.1\n")
    assert parse_cluster(text, SOURCE).cni.version == "v1.19.2-eksbuild.1"


def test_bad_ip_address() -> None:
    text = edit("primaryIp: 192.168.1.70,", "primaryIp: 192.168.1.700,")
    assert_reported(
        error_of(text), line_of(text, "192.168.1.700"), "nodes.1.enis.0.primaryIp", "IPv4"
    )


def test_cidr_with_host_bits() -> None:
    text = edit("cidr: 192.168.3.0/24", "cidr: 192.168.3.7/24")
    assert_reported(error_of(text), line_of(text, "192.168.3.7/24"), "vpc.subnets.2.cidr")


# Subnets ---------------------------------------------------------------------------------------


def test_overlapping_subnets() -> None:
    text = edit("cidr: 192.168.3.0/24", "cidr: 192.168.1.128/25")
    assert_reported(
        error_of(text),
        line_of(text, "192.168.1.128/25"),
        "public-c",
        "overlaps subnet public-a 192.168.1.0/24",
    )


def test_subnet_outside_the_vpc_cidr() -> None:
    text = edit("cidr: 192.168.3.0/24", "cidr: 10.0.3.0/24")
    assert_reported(
        error_of(text),
        line_of(text, "10.0.3.0/24"),
        "public-c",
        "outside the VPC",
        "192.168.0.0/16",
    )


def test_variant_subnets_do_not_shift_the_reported_line() -> None:
    """A subnet that exists only under a variant is dropped before validation; the errors of the
    subnets after it must still name their own lines."""
    nat_line = (
        "    - {name: nat-a, az: eu-west-2a, azId: euw2-az2, cidr: 192.168.0.0/24, "
        "routeTable: rtb-public, mapPublicIp: true, variant: [nat, externalSnat]}\n"
    )
    text = edit(nat_line, "")
    text = edit("  subnets:\n", "  subnets:\n" + nat_line, text)
    text = edit("cidr: 192.168.3.0/24", "cidr: 10.0.3.0/24", text)
    error = error_of(text)
    assert_reported(error, line_of(text, "10.0.3.0/24"), "public-c", "outside the VPC")
    text = edit("cidr: 10.0.3.0/24", "cidr: 192.168.3.0/24", text)
    text = edit("{name: public-c, az: eu-west-2c, ", "{name: public-c, ", text)
    assert_reported(error_of(text), line_of(text, "{name: public-c"), "az", "required field")


# ENI addresses ---------------------------------------------------------------------------------


def test_eni_primary_ip_outside_its_subnet() -> None:
    text = edit("primaryIp: 192.168.1.60,", "primaryIp: 192.168.9.60,")
    assert_reported(
        error_of(text),
        line_of(text, "192.168.9.60"),
        "eni-01a00000000000060",
        "192.168.9.60 is outside subnet public-a 192.168.1.0/24",
    )


def test_eni_secondary_ip_outside_its_subnet() -> None:
    text = edit(NODE3_ETH1, "primaryIp: 192.168.2.100, secondaryIps: [192.168.1.200]")
    assert_reported(
        error_of(text),
        line_of(text, "192.168.1.200"),
        "eni-01a00000000000100",
        "outside subnet public-b 192.168.2.0/24",
    )


@pytest.mark.parametrize("last_octet", [0, 1, 2, 3, 255])
def test_aws_reserved_subnet_address(last_octet: int) -> None:
    address = f"192.168.2.{last_octet}"
    text = edit(NODE3_ETH1, f"primaryIp: 192.168.2.100, secondaryIps: [{address}]")
    assert_reported(
        error_of(text), line_of(text, f"[{address}]"), address, "reserved", "192.168.2.0/24"
    )


@pytest.mark.parametrize("last_octet", [4, 254])
def test_first_and_last_assignable_addresses_are_accepted(last_octet: int) -> None:
    address = f"192.168.2.{last_octet}"
    text = edit(NODE3_ETH1, f"primaryIp: 192.168.2.100, secondaryIps: [{address}]")
    parse_cluster(text, SOURCE)


def test_reserved_address_as_an_eni_primary_ip() -> None:
    text = edit("primaryIp: 192.168.2.100,", "primaryIp: 192.168.2.255,")
    assert_reported(error_of(text), line_of(text, "192.168.2.255"), "reserved")


def test_one_address_on_two_enis_names_both_lines() -> None:
    text = edit("secondaryIps: [192.168.1.71]", "secondaryIps: [192.168.1.71, 192.168.1.51]")
    first = line_of(text, "secondaryIps: [192.168.1.51]")
    second = line_of(text, "[192.168.1.71, 192.168.1.51]")
    assert_reported(error_of(text), second, "192.168.1.51 is used twice", f"also at line {first}")


def test_eni_primary_ip_that_is_another_enis_primary_ip() -> None:
    text = edit("primaryIp: 192.168.1.80,", "primaryIp: 192.168.1.60,")
    text = edit("secondaryIps: [192.168.1.81]", "secondaryIps: [192.168.1.82]", text)
    first = line_of(text, "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.61]")
    second = line_of(text, "primaryIp: 192.168.1.60, secondaryIps: [192.168.1.82]")
    assert_reported(error_of(text), second, "192.168.1.60 is used twice", f"line {first}")


# Instance-type limits (vpc-cni.md §3.6: m5.large 3 ENIs, 10 IPv4 per ENI) ------------------------


def secondary_ips(count: int) -> str:
    return ", ".join(f"192.168.2.{101 + index}" for index in range(count))


def test_nine_secondary_ips_fit_an_m5_large_eni() -> None:
    text = edit(NODE3_ETH1, f"primaryIp: 192.168.2.100, secondaryIps: [{secondary_ips(9)}]")
    assert len(parse_cluster(text, SOURCE).nodes[2].enis[1].secondary_ips) == 9


def test_ten_secondary_ips_exceed_an_m5_large_eni() -> None:
    text = edit(NODE3_ETH1, f"primaryIp: 192.168.2.100, secondaryIps: [{secondary_ips(10)}]")
    assert_reported(
        error_of(text),
        line_of(text, "secondaryIps: [192.168.2.101"),
        "eni-01a00000000000100",
        "10 secondary",
        "m5.large allows 9",
    )


def eni_line(linux: str, ifindex: int, device: int, last_octet: int) -> str:
    return (
        f"      - {{linux: {linux}, ifindex: {ifindex}, id: eni-01a000000000000{last_octet}, "
        f'device: {device}, mac: "02:00:c0:a8:02:{last_octet:02x}", '
        f"primaryIp: 192.168.2.{last_octet}, securityGroups: [sg-cluster]}}\n"
    )


def with_node3_enis(*extra: str) -> str:
    anchor = NODE3_ETH1 + ", securityGroups: [sg-cluster]}\n"
    return edit(anchor, anchor + "".join(extra))


def test_three_enis_fit_an_m5_large() -> None:
    text = with_node3_enis(eni_line("eth2", 4, 2, 110))
    assert len(parse_cluster(text, SOURCE).nodes[2].enis) == 3


def test_four_enis_exceed_an_m5_large() -> None:
    text = with_node3_enis(eni_line("eth2", 4, 2, 110), eni_line("eth3", 5, 3, 120))
    assert_reported(
        error_of(text),
        line_of(text, "enis:", after="name: " + NODE3),
        NODE3,
        "4 ENIs",
        "m5.large allows 3",
    )


def test_a_larger_instance_type_on_the_node_lifts_the_limit() -> None:
    text = with_node3_enis(eni_line("eth2", 4, 2, 110), eni_line("eth3", 5, 3, 120))
    text = edit(
        "    subnet: public-b\n", "    subnet: public-b\n    instanceType: m5.xlarge\n", text
    )
    assert len(parse_cluster(text, SOURCE).nodes[2].enis) == 4


def test_unknown_instance_type_on_a_node() -> None:
    text = edit("    subnet: public-b\n", "    subnet: public-b\n    instanceType: m5.huge\n")
    assert_reported(
        error_of(text), line_of(text, "instanceType: m5.huge"), NODE3, "'m5.huge'", "limits table"
    )


def test_unknown_instance_type_in_node_defaults_names_the_defaults_line() -> None:
    text = edit("  instanceType: m5.large\n", "  instanceType: m5.huge\n")
    assert_reported(error_of(text), line_of(text, "instanceType: m5.huge"), "'m5.huge'")


# Pods ------------------------------------------------------------------------------------------


def test_pod_on_an_unknown_node() -> None:
    text = edit(f"node: {NODE3},", "node: ip-192-168-2-99.eu-west-2.compute.internal,")
    assert_reported(
        error_of(text),
        line_of(text, "ip-192-168-2-99"),
        "default/app1-5f7d9c6b8-b9v6s",
        "unknown node 'ip-192-168-2-99.eu-west-2.compute.internal'",
    )


def test_pod_on_an_unknown_eni() -> None:
    text = edit("eni: eth0, ip: 192.168.2.91,", "eni: eth7, ip: 192.168.2.91,")
    assert_reported(
        error_of(text), line_of(text, "eni: eth7"), "default/app1-5f7d9c6b8-b9v6s", "no ENI 'eth7'"
    )


def test_pod_ip_owned_by_another_eni_of_its_node() -> None:
    # 192.168.1.81 belongs to node 2's eth1 (talk-walks.md §2.3), not to its eth0.
    text = edit("eni: eth1, ip: 192.168.1.81,", "eni: eth0, ip: 192.168.1.81,")
    assert_reported(
        error_of(text),
        line_of(text, "eni: eth0, ip: 192.168.1.81"),
        "default/app1-5f7d9c6b8-z8h4k",
        "192.168.1.81 is not a secondary IP",
    )


def test_pod_ip_that_is_the_enis_primary_ip() -> None:
    # The ENI's own primary address is the node's, never a pod's (vpc-cni.md §2.3 step 6).
    text = edit("eni: eth0, ip: 192.168.1.71,", "eni: eth0, ip: 192.168.1.70,")
    assert_reported(
        error_of(text), line_of(text, "ip: 192.168.1.70,"), "192.168.1.70 is not a secondary IP"
    )


def test_two_pods_with_one_ip() -> None:
    anchor = "  - {namespace: default, name: rating-6d8b7c9f5-q6m4t"
    text = edit(
        anchor,
        f"  - {{name: twin-of-51, node: {NODE1}, eni: eth0, ip: 192.168.1.51}}\n" + anchor,
    )
    assert_reported(
        error_of(text),
        line_of(text, "twin-of-51"),
        "default/twin-of-51",
        "192.168.1.51 is already used by default/app2-7c9f8d6b5-k5x2p",
    )


def test_duplicate_pod() -> None:
    text = edit(POD81, "{namespace: default, name: app1-5f7d9c6b8-w7r2n")
    second = line_of(text, "talkName: pod 81")
    assert_reported(error_of(text), second, "duplicate pod default/app1-5f7d9c6b8-w7r2n")


def test_same_pod_name_in_another_namespace_is_fine() -> None:
    text = edit(POD81, "{namespace: other, name: app1-5f7d9c6b8-w7r2n")
    parse_cluster(text, SOURCE)


def test_duplicate_node() -> None:
    text = edit(f"  - name: {NODE2}\n", f"  - name: {NODE1}\n")
    second = line_of(text, f"- name: {NODE1}", after="talkName: node 1")
    assert_reported(error_of(text), second, f"duplicate node {NODE1!r}")


# Variants --------------------------------------------------------------------------------------


def test_unknown_variant_lists_the_declared_ones() -> None:
    error = error_of(DEMO, variant="nats")
    assert_reported(error, line_of(DEMO, "variants:"), "unknown variant 'nats'")
    assert error.fix is not None
    assert re.search(r"externalSnat, nat\b", error.fix)


def test_unknown_variant_when_none_are_declared() -> None:
    text = DEMO[: DEMO.index("variants:")]
    error = error_of(text, variant="nat")
    assert error.line is not None
    assert_reported(error, error.line, "unknown variant 'nat'")


def test_known_variants_load() -> None:
    for variant in ("nat", "externalSnat"):
        cluster = parse_cluster(DEMO, SOURCE, variant=variant)
        assert cluster.subnet("public-a").route_table == "rtb-private-a"
        assert cluster.subnet("nat-a").cidr.compressed == "192.168.0.0/24"


# Pins (talk-walks.md §2.1: values the CNI would choose, fixed because a slide shows them) --------

POD81_PIN = "pin: {hostVethIfindex: 9,"


@pytest.mark.parametrize(
    ("new", "fragment", "says"),
    [
        # Pod 71's pinned host ifindex (8) on the same node.
        ("pin: {hostVethIfindex: 8,", "hostVethIfindex: 8,", "host veth ifindex 8 is already used"),
        # Node 2's eth1 is ifindex 3 (talk-walks.md §2.3).
        ("pin: {hostVethIfindex: 3,", "hostVethIfindex: 3,", "host veth ifindex 3 is already used"),
        # A host veth pinned to the name of an ENI.
        (
            "pin: {hostVeth: eth1, hostVethIfindex: 9,",
            "hostVeth: eth1,",
            "host veth name 'eth1' is already used",
        ),
    ],
)
def test_pinned_host_veth_that_is_already_taken_on_the_node(
    new: str, fragment: str, says: str
) -> None:
    text = edit(POD81_PIN, new)
    line = line_of(text, fragment, after=POD81)
    assert_reported(error_of(text), line, "default/app1-5f7d9c6b8-z8h4k", says)


def test_two_pods_pinned_to_one_host_veth_name() -> None:
    text = edit("pin: {hostVethIfindex: 8,", "pin: {hostVeth: enishared0001, hostVethIfindex: 8,")
    text = edit(POD81_PIN, "pin: {hostVeth: enishared0001, hostVethIfindex: 9,", text)
    line = line_of(text, "hostVeth: enishared0001, hostVethIfindex: 9")
    assert_reported(error_of(text), line, "'enishared0001' is already used")


@pytest.mark.parametrize(
    "taken",
    [
        "cni-7a0e9d14-2c6b-4f3a-9b85-1d2e3f4a5b71",  # pod 71's netns (talk-walks.md §2.4)
        NODE1,  # a node's namespace is named after the node
    ],
)
def test_pinned_netns_name_that_is_already_taken(taken: str) -> None:
    text = edit("netns: cni-8b1f0e25-3d7c-405b-8ca6-2e3f4a5b6c81", f"netns: {taken}")
    line = line_of(text, f"netns: {taken}", after=POD81)
    assert_reported(error_of(text), line, f"network namespace name {taken!r} is already used")
