"""`lab collect` on every node of the demo lab, read back by the importer: the real kernel's
dumps, in the collector's layout, give back the state's rules, routes, addresses, sysctls and
iptables rules. One dump is then broken (the `512` rules deleted) and must differ."""

from __future__ import annotations

import tarfile
from collections import Counter
from datetime import UTC, datetime
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from eksnet.dataplane.state import TABLE_LOCAL, DataplaneState, Namespace
from eksnet.importers.bundle import COLLECTOR_FILES, ObservedNode, read_node
from eksnet.importers.iptables_dump import rule_view
from eksnet.importers.link_dump import parse_ip_addr, parse_ip_addr_json
from eksnet.importers.sysctl_dump import sysctl_differences
from eksnet.lab import system
from eksnet.lab.collect import LAYOUT, bundle_name, collect, write_tarball
from eksnet.lab.names import LabNames
from eksnet.render.linux.addrconf import inet6_addresses
from eksnet.render.linux.devinet import inet_addresses

NOW = datetime(2026, 3, 20, 14, 7, tzinfo=UTC)


def test_the_importer_reads_what_collect_writes() -> None:
    written = {item.path for item in LAYOUT}
    read = {path for paths in COLLECTOR_FILES.values() for path in paths}
    assert read <= written
    assert bundle_name("i-0abc", NOW) == "eks_i-0abc_2026-03-20_1407-UTC_0.7.9.tar.gz"


def collected(names: LabNames, state: DataplaneState, ns: Namespace, folder: Path) -> Path:
    instance = state.vpc.instance(ns.name)
    assert instance is not None and instance.id is not None
    bundle = collect(names.inside(ns), instance.id)
    assert bundle.failures == ()
    path = folder / bundle_name(instance.id, NOW)
    write_tarball(bundle, str(path), NOW)
    return path


def ipv4(addresses: object) -> set[tuple[str, IPv4Interface, object]]:
    return {
        (a.dev, a.interface, a.broadcast)  # type: ignore[attr-defined]
        for a in addresses  # type: ignore[attr-defined]
        if isinstance(a.interface, IPv4Interface)  # type: ignore[attr-defined]
    }


def assert_matches(node: ObservedNode, ns: Namespace) -> None:
    seen = node.namespace
    assert seen.rules == ns.sorted_rules()
    assert Counter(seen.routes) == Counter(r for r in ns.routes if r.table != TABLE_LOCAL)
    assert node.local_differences == ()
    assert ipv4(seen.addresses) == ipv4(ns.addresses)
    assert sysctl_differences(ns.sysctls, seen.sysctls) == ()
    assert seen.iptables is not None and ns.iptables is not None
    assert seen.iptables.backend == ns.iptables.backend
    assert rule_view(seen.iptables.save, "lab") == rule_view(ns.iptables.save, "state")


def test_collect_every_node(demo_lab: LabNames, demo_state: DataplaneState, tmp_path: Path) -> None:
    for ns in demo_state.nodes():
        path = collected(demo_lab, demo_state, ns, tmp_path)
        with tarfile.open(path) as archive:
            members = archive.getnames()
        assert members[0] == "." and "./networking/iprule.txt" in members
        node = read_node(path, name=ns.name)
        assert node.layout == "eks-log-collector"
        assert node.source("rules") == "networking/iprule.txt"
        assert node.ipv6_routes > 0
        assert_matches(node, ns)


@pytest.mark.parametrize("json", [False, True], ids=["ip addr", "ip -j addr"])
def test_ip_addr_of_every_namespace(
    demo_lab: LabNames, demo_state: DataplaneState, json: bool
) -> None:
    """The plain dump's link views, from the real kernel: every address in `ip`'s order."""
    for ns in demo_state.namespaces:
        argv = ["ip", "-j", "addr"] if json else ["ip", "addr"]
        text = system.run(demo_lab.inside(ns).script_argv(argv)).stdout
        parse = parse_ip_addr_json if json else parse_ip_addr
        dump = parse(text, "ip addr", ns.name)
        want = tuple(
            address
            for link in sorted(ns.links, key=lambda link: link.ifindex)
            for address in (*inet_addresses(ns, link), *inet6_addresses(ns, link))
        )
        assert dump.addresses == want, ns.name


def test_a_deleted_rule_line_differs(
    demo_lab: LabNames, demo_state: DataplaneState, tmp_path: Path
) -> None:
    ns = demo_state.nodes()[0]
    path = collected(demo_lab, demo_state, ns, tmp_path)
    folder = tmp_path / "unpacked"
    with tarfile.open(path) as archive:
        # member by member: `extractall(filter=)` is missing from Debian's Python 3.11.2
        for member in archive.getmembers():
            if member.isfile():
                source = archive.extractfile(member)
                assert source is not None
                target = folder / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
    rules = folder / "networking" / "iprule.txt"
    lines = rules.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("512:")]
    assert len(kept) == len(lines) - 2
    rules.write_text("".join(kept))
    node = read_node(folder, name=ns.name)
    assert node.namespace.rules != ns.sorted_rules()
    with pytest.raises(AssertionError):
        assert_matches(node, ns)
