"""The hook order table against linux-dataplane.md §1.1."""

from __future__ import annotations

from eksnet.kernel.hooks import (
    HOOK_ORDER,
    TABLE_CHAINS,
    Hook,
    StageKind,
    hooks_of_table,
    stages_with_table,
)

# The spec's YAML block, verbatim in content (§1.1).
SPEC_ORDER: dict[str, list[tuple[str, int]]] = {
    "PREROUTING": [("defrag", -400), ("raw", -300), ("conntrack_in", -200), ("mangle", -150),
                   ("nat_dst", -100)],
    "INPUT": [("mangle", -150), ("filter", 0), ("security", 50), ("nat_src", 100), ("helper", 300),
              ("confirm", 2147483647)],
    "FORWARD": [("mangle", -150), ("filter", 0), ("security", 50)],
    "OUTPUT": [("defrag", -400), ("raw", -300), ("conntrack_out", -200), ("mangle", -150),
               ("nat_dst", -100), ("filter", 0), ("security", 50)],
    "POSTROUTING": [("mangle", -150), ("nat_src", 100), ("helper", 300), ("confirm", 2147483647)],
}  # fmt: skip


def test_hook_order_is_the_spec_table() -> None:
    for hook, stages in HOOK_ORDER.items():
        expected = [
            [name.removesuffix("_in").removesuffix("_out"), prio] for name, prio in SPEC_ORDER[hook]
        ]
        assert [[stage.kind.value, stage.priority] for stage in stages] == expected


def test_every_table_stage_runs_a_chain_its_table_has() -> None:
    for hook, stages in HOOK_ORDER.items():
        for stage in stages:
            assert stage.hook is hook
            if stage.table is not None:
                assert hook in TABLE_CHAINS[stage.table]
                assert stage.chain == hook.value
            else:
                assert stage.chain is None


def test_every_builtin_chain_is_run_by_exactly_one_stage() -> None:
    for table, hooks in TABLE_CHAINS.items():
        for hook in hooks:
            runs = [s for s in HOOK_ORDER[hook] if s.table == table]
            assert len(runs) == 1, (table, hook)


def test_nat_stages_and_helpers() -> None:
    assert [s.table for s in stages_with_table(Hook.OUTPUT)] == [
        "raw", "mangle", "nat", "filter", "security"
    ]  # fmt: skip
    nat = [s for stages in HOOK_ORDER.values() for s in stages if s.table == "nat"]
    assert all(s.runs_rules_once_per_connection for s in nat)
    assert {s.kind for s in nat} == {StageKind.NAT_DST, StageKind.NAT_SRC}
    assert hooks_of_table("filter") == (Hook.INPUT, Hook.FORWARD, Hook.OUTPUT)
    assert hooks_of_table("bogus") == ()
