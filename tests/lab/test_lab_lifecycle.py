"""`lab up` / `lab exec` / `lab down` on the demo cluster, on the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tests.lab.scratch import Scratch, lab_size

from eksnet.dataplane.state import DataplaneState
from eksnet.lab import lifecycle, system
from eksnet.lab.names import LabNames
from eksnet.lab.system import LabError

pytestmark = pytest.mark.lab

NODE_1 = "node/ip-192-168-1-50.eu-west-2.compute.internal"
POD_61 = "pod/default/rating-6d8b7c9f5-q6m4t"

SLIDE_RULES = """\
0:\tfrom all lookup local
512:\tfrom all to 192.168.1.51 lookup main
512:\tfrom all to 192.168.1.61 lookup main
1024:\tfrom all fwmark 0x80/0x80 lookup main
1536:\tfrom 192.168.1.61 lookup 2
32766:\tfrom all lookup main
32767:\tfrom all lookup default"""

SLIDE_TABLE_2 = "default via 192.168.1.1 dev eth1\n192.168.1.1 dev eth1 scope link"


SLIDE_HOST_VETH = """\
39: eni69e05c2a0e5@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc noqueue state UP group default
    link/ether 06:5e:c8:ae:85:be brd ff:ff:ff:ff:ff:ff link-netns cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935
    inet6 fe80::45e:c8ff:feae:85be/64 scope link
       valid_lft forever preferred_lft forever"""

SLIDE_POD_61 = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet6 ::1/128 scope host
       valid_lft forever preferred_lft forever
3: eth0@if39: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc noqueue state UP group default
    link/ether 6a:40:16:85:c3:34 brd ff:ff:ff:ff:ff:ff link-netnsid 0
    inet 192.168.1.61/32 scope global eth0
       valid_lft forever preferred_lft forever
    inet6 fe80::6a40:16ff:fe85:c334/64 scope link
       valid_lft forever preferred_lft forever"""
"""talk-walks.md §4.1 and §4.2, as the slides print them (the pod's `ip a`, the node's
`ip addr show eni69e05c2a0e5`)."""


def lab_exec(env: dict[str, str], target: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eksnet.lab.cli", "exec", target, "--", *command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def stripped(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def test_slide_outputs_through_lab_exec(demo_lab: LabNames, lab_env: dict[str, str]) -> None:
    rules = lab_exec(lab_env, NODE_1, "ip", "rule", "show")
    assert rules.returncode == 0, rules.stderr
    assert stripped(rules.stdout) == SLIDE_RULES
    table = lab_exec(lab_env, NODE_1, "ip", "route", "show", "table", "2")
    assert stripped(table.stdout) == SLIDE_TABLE_2


def test_pod_61_is_the_slide_pod(demo_lab: LabNames, lab_env: dict[str, str]) -> None:
    shown = lab_exec(lab_env, POD_61, "ip", "a").stdout
    assert "3: eth0@if39: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001" in shown
    assert "link/ether 6a:40:16:85:c3:34" in shown
    assert "inet 192.168.1.61/32 scope global eth0" in shown
    assert "inet6 fe80::6a40:16ff:fe85:c334/64 scope link" in shown  # pinned, not EUI-64
    assert "tentative" not in shown
    neigh = lab_exec(lab_env, POD_61, "ip", "neigh").stdout
    assert "169.254.1.1 dev eth0 lladdr 06:5e:c8:ae:85:be PERMANENT" in neigh


def test_exec_prints_the_slides_host_veth_and_pod_exactly(
    demo_lab: LabNames, lab_env: dict[str, str]
) -> None:
    shown = lab_exec(lab_env, NODE_1, "ip", "addr", "show", "eni69e05c2a0e5")
    assert stripped(shown.stdout) == SLIDE_HOST_VETH
    assert stripped(lab_exec(lab_env, POD_61, "ip", "a").stdout) == SLIDE_POD_61


def test_exec_names_namespaces_as_the_real_node_and_pod_do(
    demo_lab: LabNames, lab_env: dict[str, str]
) -> None:
    """A node's /run/netns holds its pods' `cni-…` names (containerd's files on EKS), a pod's
    nothing: iproute2 prints `link-netns cni-…` and `link-netnsid 0` as on the slide."""
    node = lab_exec(lab_env, NODE_1, "ip", "link").stdout
    assert (
        "link/ether 06:5e:c8:ae:85:be brd ff:ff:ff:ff:ff:ff "
        "link-netns cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935\n"
    ) in node
    assert demo_lab.prefix not in node
    listed = lab_exec(lab_env, NODE_1, "ip", "netns", "list").stdout
    assert sorted(line.split()[0] for line in listed.splitlines()) == [
        "cni-04b6218d-0a3c-2466-aea7-ee1f8d4cb935",
        "cni-3f1c2b7e-9a4d-4c60-8e21-5b7d0a9c4f51",
    ]
    pod = lab_exec(lab_env, POD_61, "ip", "link", "show", "eth0").stdout
    assert pod.rstrip().endswith(
        "link/ether 6a:40:16:85:c3:34 brd ff:ff:ff:ff:ff:ff link-netnsid 0"
    )
    assert lab_exec(lab_env, POD_61, "ip", "netns", "list").stdout == ""
    assert lab_exec(lab_env, POD_61, "ls", "/sys/class/net").stdout.split() == ["eth0", "lo"]


def test_exec_runs_iptables_of_the_backend_the_node_pins(
    demo_lab: LabNames, lab_env: dict[str, str]
) -> None:
    """The demo's nodes pin legacy; the host's `iptables-save` may be nft, which would print
    only `# Warning: iptables-legacy tables present`."""
    saved = lab_exec(lab_env, NODE_1, "iptables-save", "-t", "nat")
    assert saved.returncode == 0, saved.stderr
    assert (
        '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0' in saved.stdout
    )
    assert "Warning" not in saved.stdout + saved.stderr


def _host_mounts(names: LabNames) -> list[str]:
    """The host's mount table, less the /run/netns files of other tools' namespaces (made and
    removed meanwhile by whatever else runs on this machine)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    return [
        line
        for line in lines
        if not (
            line.split()[4].startswith("/run/netns/")
            and not line.split()[4].startswith(f"/run/netns/{names.prefix}")
        )
    ]


def test_exec_leaves_the_host_mount_table_as_it_was(
    demo_lab: LabNames, lab_env: dict[str, str]
) -> None:
    before = _host_mounts(demo_lab)
    inside = lab_exec(lab_env, NODE_1, "cat", "/proc/self/mountinfo").stdout
    assert " /run/netns rw" in inside and " /run/netns/cni-04b6218d-" in inside
    assert _host_mounts(demo_lab) == before


def test_exec_refuses_what_is_not_a_lab_namespace(
    demo_lab: LabNames, lab_env: dict[str, str]
) -> None:
    for target in ("ip/192.168.1.50", "node/not-a-node", "host", "pod/default/nope"):
        result = lab_exec(lab_env, target, "ip", "link")
        assert result.returncode != 0, target
        # the same contract as every eksnet command: one line on stderr, no traceback
        assert result.stderr.startswith("eksnet: "), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_links_live_only_in_lab_namespaces(demo_lab: LabNames, demo_state: object) -> None:
    host_links = subprocess.run(
        ["ip", "-o", "link"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("enib9b00b57dd4", "eni69e05c2a0e5", "vpc0", "x0"):
        assert f": {name}" not in host_links and f": {name}@" not in host_links


def test_status_lists_every_namespace(demo_lab: LabNames, demo_state: DataplaneState) -> None:
    rows = lifecycle.status(demo_lab, demo_state)
    assert len(rows) == lab_size(demo_state)
    assert all(row.exists for row in rows)


def test_fabric_answers_arp_for_a_secondary_ip_with_the_owner_eni_mac(demo_lab: LabNames) -> None:
    node_1 = demo_lab.netns("ip-192-168-1-50.eu-west-2.compute.internal")
    subprocess.run(["ip", "-n", node_1, "neigh", "flush", "dev", "eth0"], check=True)
    # pod 81's address is a secondary IP of node 2's eth1; nothing in node 2 answers ARP for it
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            node_1,
            sys.executable,
            "-c",
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
            "s.sendto(b'x', ('192.168.1.81', 9))",
        ],
        check=True,
    )
    neigh = subprocess.run(
        ["ip", "-n", node_1, "neigh", "show", "192.168.1.81"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "lladdr 02:00:c0:a8:01:50" in neigh


def test_second_up_is_refused_and_down_is_idempotent(
    scratch: Scratch, demo_state: DataplaneState
) -> None:
    names = scratch.names("idem")
    lifecycle.up(demo_state, names)
    with pytest.raises(LabError, match="already up"):
        lifecycle.up(demo_state, names)
    assert lifecycle.down(names) == lab_size(demo_state)
    assert lifecycle.down(names) == 0
    assert lifecycle.lab_netns(names) == ()
    assert not os.path.exists(names.run_file)


# --- membership: labs whose prefixes extend one another --------------------------------------------


def test_the_default_prefix_does_not_reach_a_test_lab(demo_lab: LabNames) -> None:
    """Read-only: what `eksnet lab down` (prefix `eksnet-lab-`) would delete right now contains
    nothing of this session's lab, though every one of its names starts with `eksnet-lab-`."""
    ours = set(lifecycle.lab_netns(demo_lab))
    assert ours and all(ns.startswith(LabNames().prefix) for ns in ours)
    assert not ours & set(lifecycle.lab_netns(LabNames()))


@pytest.mark.parametrize("first", ["outer", "inner"])
def test_nested_labs_each_take_down_only_their_own(
    scratch: Scratch, demo_state: DataplaneState, first: str
) -> None:
    outer = scratch.names(f"nest-{first}")
    inner = scratch.extend(outer, "in")
    lifecycle.up(demo_state, outer)
    lifecycle.up(demo_state, inner)  # not refused: the outer lab's namespaces are not its own
    count = lab_size(demo_state)
    built = {lab.prefix: set(lifecycle.lab_netns(lab)) for lab in (outer, inner)}
    assert [len(found) for found in built.values()] == [count, count]
    assert not built[outer.prefix] & built[inner.prefix]
    gone, stays = (outer, inner) if first == "outer" else (inner, outer)
    assert lifecycle.down(gone) == count
    assert set(lifecycle.lab_netns(stays)) == built[stays.prefix]
    assert set(system.list_netns()) >= built[stays.prefix]
    assert lifecycle.down(stays) == count


def test_down_without_its_run_file_spares_a_nested_lab(
    scratch: Scratch, demo_state: DataplaneState
) -> None:
    """The outer lab's run file is gone: its namespaces are found by prefix, the nested lab's
    are still claimed by the nested lab's run file."""
    outer = scratch.names("norun")
    inner = scratch.extend(outer, "in")
    lifecycle.up(demo_state, outer)
    lifecycle.up(demo_state, inner)
    kept = set(lifecycle.lab_netns(inner))
    os.unlink(outer.run_file)
    assert lifecycle.down(outer) == lab_size(demo_state)
    assert set(lifecycle.lab_netns(inner)) == kept
    assert lifecycle.down(inner) == len(kept)


def test_a_namespace_another_run_file_records_is_never_taken(
    scratch: Scratch, demo_state: DataplaneState
) -> None:
    """Lab `other` records `<other>v-vpc`, exactly the fabric lab `<other>v-` would create:
    `up` of that lab refuses instead of failing half-way and cleaning up the other's namespace,
    and its `down` leaves the namespace alone."""
    other = scratch.names("recorded")
    nested = scratch.extend(other, "v")
    taken = nested.fabric
    os.makedirs(other.run_dir, exist_ok=True)
    record = {"prefix": other.prefix, "cluster": None, "created": 0.0,
              "namespaces": {"v-vpc": taken}, "fabric": other.fabric}  # fmt: skip
    with open(other.run_file, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    subprocess.run(["ip", "netns", "add", taken], check=True)
    with pytest.raises(LabError, match=f"belong to another lab: {taken}"):
        lifecycle.up(demo_state, nested)
    assert lifecycle.down(nested) == 0
    assert lifecycle.lab_netns(other) == (taken,)
    assert taken in system.list_netns()
    assert lifecycle.down(other) == 1
    assert taken not in system.list_netns()
