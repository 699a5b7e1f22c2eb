"""`walk --later`: the source's next packet of the same connection, after the reply arrived.

The nat table sees only a connection's first packet (linux-dataplane.md §6.4): every later
packet is steered by conntrack and the mangle table. vpc-cni.md §2.4 says why the VPC CNI has
M2 (`-i eni+ … CONNMARK --restore-mark`) beside the nat table's C4: "C1-C3 see only the first
packet of each connection; M2 restores the mark for later packets". These tests hold the walk
engine to that: on the demo every later packet goes where its first went, and with M2 gone the
first packet of pod 61's egress still leaves by eth0 while the later one takes rule 1536 out of
eth1 with node 1's address, where the VPC's source/destination check drops it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from typer.testing import CliRunner

from eksnet.cli import app
from eksnet.dataplane.state import DataplaneState
from eksnet.errors import InputError, NotModelled
from eksnet.state_cache import build
from eksnet.walk.engine import walk
from eksnet.walk.model import Walk
from eksnet.walk.tour import TOUR

NODE1 = "ip-192-168-1-50.eu-west-2.compute.internal"
POD61 = "pod/default/rating-6d8b7c9f5-q6m4t"
INTERNET = "ip/198.51.100.20"
M2 = (
    '-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" '
    "-j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80"
)


def without_line(state: DataplaneState, node: str, line: str) -> DataplaneState:
    """`state` with one iptables-save line gone from `node` (as if someone deleted the rule)."""
    changed = []
    for namespace in state.namespaces:
        if namespace.owner == node and namespace.kind == "node":
            assert namespace.iptables is not None
            lines = namespace.iptables.save.splitlines()
            assert line in lines, "the rule the test removes must be there"
            lines.remove(line)
            saved = "\n".join(lines) + "\n"
            namespace = replace(namespace, iptables=replace(namespace.iptables, save=saved))
        changed.append(namespace)
    return replace(state, namespaces=tuple(changed))


def node_hops(part: Walk) -> list[tuple[str, str | None]]:
    return [(hop.where.name, hop.oif) for hop in part.hops if hop.where.kind == "node"]


@pytest.mark.parametrize("tour_walk", TOUR, ids=[w.id for w in TOUR])
def test_every_later_packet_of_the_tour_goes_where_its_first_went(tour_walk) -> None:  # type: ignore[no-untyped-def]
    state = build(None, tour_walk.variant).state
    first = tour_walk.run(state)
    try:
        later = walk(
            state, tour_walk.src, tour_walk.dst, proto=tour_walk.proto, dport=tour_walk.dport,
            sport=tour_walk.sport, az=tour_walk.az, host=tour_walk.host, path=tour_walk.path,
            later=True,
        )  # fmt: skip
    except NotModelled as missing:
        assert tour_walk.proto == "sctp", missing
        return
    # a later packet makes no choice of its own: conntrack holds the first one's
    assert len(list(later.leaves())) == len(list(first.leaves()))
    for (_, label, leaf), (_, _, same) in zip(later.leaves(), first.leaves(), strict=True):
        replied = leaf.reply is not None and leaf.reply.disposition is not None
        if not replied or leaf.reply.disposition.kind != "delivered":  # type: ignore[union-attr]
            assert leaf.later is None, label
            continue
        assert leaf.later is not None, label
        assert leaf.later.disposition is not None and same.disposition is not None
        assert leaf.later.disposition.kind == "delivered", (label, leaf.later.disposition)
        assert leaf.later.disposition.where == same.disposition.where, label
        assert node_hops(leaf.later) == node_hops(same), label


def test_the_later_packet_is_the_tcp_ack_of_an_assured_entry() -> None:
    state = build(None, None).state
    result = walk(state, POD61, INTERNET, dport=443, later=True)
    assert result.later is not None
    first_out = result.hops[0].steps[-1].after
    later_out = result.later.hops[0].steps[-1].after
    assert first_out is not None and later_out is not None
    assert (first_out.tcp_flags, later_out.tcp_flags) == ("S", ".")
    record = next(r for r in result.later.conntrack if r.namespace == NODE1)
    assert " ESTABLISHED " in record.text and "[ASSURED]" in record.text


def test_without_the_mangle_restore_only_the_first_packet_passes() -> None:
    state = without_line(build(None, None).state, NODE1, M2)
    result = walk(state, POD61, INTERNET, dport=443, later=True)
    assert result.disposition is not None and result.disposition.kind == "delivered"
    node1 = next(hop for hop in result.hops if hop.where.name == NODE1)
    assert node1.oif == "eth0"  # C4 restored the mark: rule 1024
    assert result.later is not None and result.later.disposition is not None
    later = result.later
    node1_later = next(hop for hop in later.hops if hop.where.name == NODE1)
    assert node1_later.oif == "eth1"  # no mark: rule 1536, table 2
    assert later.disposition.kind == "dropped"
    assert later.disposition.reason.startswith("source/destination check: ")
    assert "does not own source 192.168.1.50" in later.disposition.reason


def test_a_later_packet_needs_the_reply() -> None:
    state = build(None, None).state
    with pytest.raises(InputError, match="once the reply arrived"):
        walk(state, POD61, INTERNET, dport=443, later=True, with_reply=False)
    with pytest.raises(ValueError, match="only a walk whose reply arrived"):
        result = walk(state, POD61, INTERNET, dport=443, with_reply=False)
        replace(result, later=result)


def test_cli_walk_later() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["walk", POD61, INTERNET, "--port", "443", "--later"])
    assert shown.exit_code == 0, shown.output
    assert "· its later packet [.] [forward]" in shown.output
    refused = runner.invoke(
        app, ["walk", POD61, INTERNET, "--port", "443", "--later", "--no-return"]
    )
    assert refused.exit_code == 2
    assert refused.stderr.startswith("eksnet: a later packet is sent once the reply arrived")


def test_the_picture_draws_the_later_packet_after_the_reply() -> None:
    from eksnet.render.diagram import places, render_svg, rows

    state = build(None, None).state
    result = walk(state, POD61, INTERNET, dport=443, later=True)
    assert result.reply is not None and result.later is not None
    drawn = rows(result, places(state, result))
    directions = [row.direction for row in drawn]
    counts = (len(result.hops), len(result.reply.hops), len(result.later.hops))
    assert directions == ["forward"] * counts[0] + ["return"] * counts[1] + ["later"] * counts[2]
    # the later packet starts afresh at the source: no arrow from the reply's last hop
    assert render_svg(state, result).count('class="hop-arrow later"') == counts[2] - 1
