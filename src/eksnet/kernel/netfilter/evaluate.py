"""Walking one table's built-in chain for one packet (`ipt_do_table`), as weighted branches.

Semantics (linux-dataplane.md §8): rules are tried in order; a rule whose matches all hold
"matches" (its counter moves) and its target acts:

* no target: counts only, continue;
* ACCEPT ends this table for this hook (later tables and hooks still run); DROP and REJECT end
  the packet;
* `-j CHAIN` pushes a return point and continues at the top of CHAIN; `-g CHAIN` continues there
  without one; the end of a user chain, or RETURN, pops the last return point, and with none left
  (a built-in chain, or a chain reached by goto from one) the built-in chain's policy applies;
* MARK/CONNMARK change the packet mark or the connection mark and continue; LOG/NFLOG/TRACE
  continue;
* DNAT/SNAT/MASQUERADE end the nat table for this hook with the binding request (ACCEPT).

A `statistic --mode random` match is a draw; instead of drawing, the walk splits into the
branch where the rule matches (probability p) and the one where it does not (1 − p). The result
is every possible outcome with its exact probability (quantized values multiply; the
probabilities of all outcomes sum to 1).

State a rule changes while its matches are evaluated travels with each branch: the
namespace's `recent` lists (a `--set` happens when the match is reached, even if the packet is
dropped later) and the nfacct objects counted. Chains of many rules are looked up through an
index of the exact destination, protocol and port their rules require (`index.py`) instead of
being scanned; `linear=True` scans, as the kernel does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Literal

from eksnet.errors import NotModelled
from eksnet.kernel.conntrack import PORT_PROTOS, PROTO_NUMBERS, NatRequest
from eksnet.kernel.hooks import TABLE_CHAINS
from eksnet.kernel.netfilter.index import ChainIndex, chain_index
from eksnet.kernel.netfilter.match import (
    ONE,
    NfEnv,
    NfPacket,
    is_plain,
    rule_branches,
    rule_holds,
)
from eksnet.kernel.netfilter.recent import EMPTY_RECENT, RecentTables
from eksnet.kernel.netfilter.ruleset import (
    Chain,
    ConnmarkRestoreTarget,
    ConnmarkSaveTarget,
    ConnmarkSetTarget,
    JumpTarget,
    MarkTarget,
    NatTarget,
    NoopTarget,
    RejectTarget,
    Rule,
    Ruleset,
    StandardTarget,
    Table,
    UnmodelledTarget,
)

Verdict = Literal["ACCEPT", "DROP", "REJECT"]
HitVerdict = Literal["CONTINUE", "JUMP", "GOTO", "RETURN", "ACCEPT", "DROP", "REJECT"]
"""What a matched rule did, in the words `xtables-monitor --trace` uses (RETURN is printed by
iptables 1.8.9 as the raw code 0xfffffffb)."""


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One step of a trace: a rule that matched, or a built-in chain's policy.

    `position` is the rule's 1-based position in `chain`, None for the policy; `text` is the
    rule's `-A …` line as in the save text, or `:CHAIN POLICY` for the policy; `effect` says what
    happened in words (`jump KUBE-SERVICES`, `mark 0x0 -> 0x4000`, `DNAT to 10.0.1.23:8080`).
    """

    table: str
    chain: str
    position: int | None
    text: str
    verdict: HitVerdict
    effect: str
    line: int | None = None

    @property
    def is_policy(self) -> bool:
        return self.position is None


@dataclass(frozen=True, slots=True)
class NfOutcome:
    """One way a packet can leave a table's chain, and how likely it is.

    `packet` carries the mark and the conntrack entry (ct mark) as the rules left them. `nat` is
    the binding request when a NAT target fired (verdict ACCEPT); None in a nat table means the
    null binding. `reject_with` is set for REJECT. `recent` are the namespace's `recent` lists
    after this way through the table (a `--set` on it happened), `nfacct` the accounting objects
    it counted into, in order.
    """

    probability: Fraction
    verdict: Verdict
    packet: NfPacket
    nat: NatRequest | None
    trace: tuple[RuleHit, ...]
    reject_with: str | None = None
    recent: RecentTables = EMPTY_RECENT
    nfacct: tuple[str, ...] = ()

    @property
    def ct_mark(self) -> int:
        return self.packet.ct_mark

    @property
    def nat_fired(self) -> bool:
        return self.nat is not None

    @property
    def by_policy(self) -> bool:
        """True when the verdict is a built-in chain's policy, not a rule's."""
        return bool(self.trace) and self.trace[-1].is_policy

    def matched(self) -> tuple[tuple[str, str, int], ...]:
        """(table, chain, position) of every rule that matched: the counters that moved."""
        return tuple(
            (hit.table, hit.chain, hit.position) for hit in self.trace if hit.position is not None
        )


_BUILTIN_CHAINS: dict[str, frozenset[str]] = {
    name: frozenset(hook.value for hook in hooks) for name, hooks in TABLE_CHAINS.items()
}

_Frame = tuple[Chain, int, list[int] | None]
"""A return point: the chain, the position to go on at, that chain's candidates (None: all)."""


class _Walk:
    """Where one branch of the traversal is: the chain and its candidate rules (None: every rule,
    in order), the next rule, the return points, and what the branch carries. Mutable and
    private, for speed; `fork` copies it when a rule splits the traversal."""

    __slots__ = (
        "candidates", "chain", "decided", "index", "nfacct", "packet", "probability", "recent",
        "stack", "trace",
    )  # fmt: skip

    def __init__(
        self,
        chain: Chain,
        candidates: list[int] | None,
        packet: NfPacket,
        recent: RecentTables,
    ) -> None:
        self.chain = chain
        self.candidates = candidates
        self.index = 0
        self.stack: tuple[_Frame, ...] = ()
        self.packet = packet
        self.probability = ONE
        self.trace: tuple[RuleHit, ...] = ()
        self.recent = recent
        self.nfacct: tuple[str, ...] = ()
        self.decided = False  # the rule at `index` is known to match (its matches already ran)

    def fork(self) -> _Walk:
        other = _Walk.__new__(_Walk)
        other.chain, other.candidates, other.index = self.chain, self.candidates, self.index
        other.stack, other.packet, other.probability = self.stack, self.packet, self.probability
        other.trace, other.recent, other.nfacct = self.trace, self.recent, self.nfacct
        other.decided = self.decided
        return other

    def enter(self, chain: Chain, candidates: list[int] | None) -> None:
        self.chain, self.candidates, self.index = chain, candidates, 0

    def pop(self) -> None:
        chain, index, candidates = self.stack[-1]
        self.stack = self.stack[:-1]
        self.chain, self.index, self.candidates = chain, index, candidates

    def outcome(
        self,
        verdict: Verdict,
        hit: RuleHit,
        nat: NatRequest | None = None,
        reject_with: str | None = None,
    ) -> NfOutcome:
        return NfOutcome(
            self.probability,
            verdict,
            self.packet,
            nat,
            (*self.trace, hit),
            reject_with,
            self.recent,
            self.nfacct,
        )


class _Traversal:
    """One call of `traverse`: the table, the packet's index key, and what is cached per rule."""

    def __init__(
        self,
        ruleset: Ruleset,
        table: Table,
        builtin: str,
        packet: NfPacket,
        env: NfEnv,
        linear: bool,
    ) -> None:
        self.ruleset = ruleset
        self.table = table
        self.builtin = builtin
        self.env = env
        self.linear = linear
        self.key = (
            int(packet.dst),
            PROTO_NUMBERS[packet.proto],
            packet.dport if packet.proto in PORT_PROTOS else None,
        )

    def candidates(self, chain: Chain) -> list[int] | None:
        if self.linear:
            return None
        index: ChainIndex | None = chain_index(chain)
        return None if index is None else index.candidates(*self.key)


def _plain_rules(chain: Chain) -> dict[int, bool]:
    """Per rule position of `chain`, whether the rule is plain (`match.is_plain`): worked out
    when the rule is first evaluated and kept on the chain."""
    found = chain.memo.get("plain")
    if not isinstance(found, dict):
        found = chain.memo["plain"] = {}
    return found


def traverse(
    ruleset: Ruleset,
    table: str,
    chain: str,
    packet: NfPacket,
    env: NfEnv,
    *,
    recent: RecentTables | None = None,
    linear: bool = False,
) -> tuple[NfOutcome, ...]:
    """Every outcome of walking `table`'s built-in `chain` with `packet`, most likely branch
    order first along the rules (the branch where a random rule matches comes before the one
    where it does not).

    `recent` are the namespace's `recent` lists before the packet (empty by default); each
    outcome carries them as its way through the table left them, and `env.now` is the time.
    A table the ruleset does not have accepts with an empty trace (its hook is not registered).
    Whether a nat stage runs its rules at all is the caller's decision (first packet only and
    binding not yet set up: `Stage.runs_rules_once_per_connection`, `ConntrackEntry.nat_done`);
    the caller also turns `NfOutcome.nat` into a binding (`kernel.conntrack.apply_nat`).

    Long chains are looked up through their index (`index.py`) instead of scanned; `linear`
    scans every rule, as the kernel does — same outcomes, the reference the index is tested
    against. Raises NotModelled when a packet reaches an unmodelled match or target; ValueError
    when `chain` is not a built-in chain of `table`.
    """
    if chain not in _BUILTIN_CHAINS.get(table, ()):
        raise ValueError(f"{chain} is not a built-in chain of table {table}")
    start = recent if recent is not None else EMPTY_RECENT
    found = ruleset.table(table)
    if found is None:
        return (NfOutcome(ONE, "ACCEPT", packet, None, (), recent=start),)
    run = _Traversal(ruleset, found, chain, packet, env, linear)
    builtin = found.chain(chain)
    outcomes: list[NfOutcome] = []
    pending = [_Walk(builtin, run.candidates(builtin), packet, start)]
    while pending:
        result = _run(run, pending.pop())
        if isinstance(result, NfOutcome):
            outcomes.append(result)
        else:
            pending.extend(reversed(result))
    return tuple(outcomes)


def _run(run: _Traversal, walk: _Walk) -> NfOutcome | list[_Walk]:
    """Advance one branch until it ends (an outcome) or reaches a rule that splits it (the
    branches, the matched one first)."""
    while True:
        rules = walk.chain.rules
        if walk.candidates is not None and not walk.decided:
            candidates = walk.candidates
            at = bisect_left(candidates, walk.index)
            walk.index = candidates[at] if at < len(candidates) else len(rules)
        if walk.index >= len(rules):
            if walk.stack:
                walk.pop()
                continue
            return _policy(run.table, run.builtin, walk)
        rule = rules[walk.index]
        if not walk.decided:
            known = _plain_rules(walk.chain)
            plain = known.get(walk.index)
            if plain is None:
                plain = known[walk.index] = is_plain(rule)
            if plain:
                if not rule_holds(rule, walk.packet, run.env):
                    walk.index += 1
                    continue
            else:
                ways = rule_branches(
                    rule, walk.packet, run.env, walk.recent, walk.nfacct, run.ruleset.recent_spec
                )
                if len(ways) > 1:
                    return [_branch(walk, way.probability, way.matched, way) for way in ways]
                way = ways[0]
                walk.recent, walk.nfacct = way.recent, way.nfacct
                if not way.matched:
                    walk.index += 1
                    continue
        walk.decided = False
        step = _apply_target(run, rule, walk)
        if isinstance(step, NfOutcome):
            return step
        walk = step


def _branch(walk: _Walk, probability: Fraction, matched: bool, way: object) -> _Walk:
    branch = walk.fork()
    branch.probability = probability if walk.probability is ONE else walk.probability * probability
    branch.recent = way.recent  # type: ignore[attr-defined]
    branch.nfacct = way.nfacct  # type: ignore[attr-defined]
    if matched:
        branch.decided = True
    else:
        branch.index += 1
    return branch


def _static_hit(
    chain: Chain, rule: Rule, verdict: HitVerdict, effect: Callable[[], str]
) -> RuleHit:
    """The trace step of a rule whose effect does not depend on the packet (a jump, an
    ACCEPT, a DNAT …): made once per rule and kept on its chain (it is immutable)."""
    hits = chain.memo.get("hits")
    if not isinstance(hits, dict):
        hits = chain.memo["hits"] = {}
    found = hits.get(rule.position)
    if found is None or found.verdict != verdict:
        found = hits[rule.position] = _hit(rule, verdict, effect())
    return found


def _hit(rule: Rule, verdict: HitVerdict, effect: str) -> RuleHit:
    return RuleHit(rule.table, rule.chain, rule.position, rule.text, verdict, effect, rule.line)


def _policy(table: Table, builtin: str, walk: _Walk) -> NfOutcome:
    chain = table.chain(builtin)
    policy = chain.policy or "ACCEPT"
    hit = RuleHit(table.name, builtin, None, f":{builtin} {policy}", policy, f"policy {policy}")
    return walk.outcome(policy, hit, nat=None)


def _apply_target(run: _Traversal, rule: Rule, walk: _Walk) -> NfOutcome | _Walk:
    """What the matched `rule` does to this branch."""
    target = rule.target
    if target is None:
        walk.trace = (*walk.trace, _static_hit(walk.chain, rule, "CONTINUE", lambda: "count"))
        walk.index += 1
        return walk
    return _TARGETS[type(target)](run, rule, target, walk)


def _standard(
    run: _Traversal, rule: Rule, target: StandardTarget, walk: _Walk
) -> NfOutcome | _Walk:
    if target.verdict == "RETURN":
        walk.trace = (*walk.trace, _static_hit(walk.chain, rule, "RETURN", lambda: "return"))
        if walk.stack:
            walk.pop()
            return walk
        return _policy(run.table, run.builtin, walk)
    verdict: Verdict = target.verdict
    hit = _static_hit(walk.chain, rule, verdict, verdict.lower)
    return walk.outcome(verdict, hit, nat=None)


def _reject(run: _Traversal, rule: Rule, target: RejectTarget, walk: _Walk) -> NfOutcome:
    hit = _static_hit(walk.chain, rule, "REJECT", lambda: f"reject with {target.reject_with}")
    return walk.outcome("REJECT", hit, nat=None, reject_with=target.reject_with)


def _jump(run: _Traversal, rule: Rule, target: JumpTarget, walk: _Walk) -> _Walk:
    destination = run.table.chain(target.chain)
    if target.goto:
        hit = _static_hit(walk.chain, rule, "GOTO", lambda: f"goto {target.chain}")
        walk.trace = (*walk.trace, hit)
    else:
        hit = _static_hit(walk.chain, rule, "JUMP", lambda: f"jump {target.chain}")
        walk.trace = (*walk.trace, hit)
        walk.stack = (*walk.stack, (walk.chain, walk.index + 1, walk.candidates))
    walk.enter(destination, run.candidates(destination))
    return walk


def _mark(run: _Traversal, rule: Rule, target: MarkTarget, walk: _Walk) -> _Walk:
    packet = walk.packet
    mark = (packet.mark & ~target.mask & 0xFFFFFFFF) ^ target.value
    walk.trace = (*walk.trace, _hit(rule, "CONTINUE", f"mark {packet.mark:#x} -> {mark:#x}"))
    walk.packet = replace(packet, mark=mark)
    walk.index += 1
    return walk


def _connmark_target(
    run: _Traversal,
    rule: Rule,
    target: ConnmarkSetTarget | ConnmarkSaveTarget | ConnmarkRestoreTarget,
    walk: _Walk,
) -> _Walk:
    walk.packet, hit = _connmark(rule, target, walk.packet)
    walk.trace = (*walk.trace, hit)
    walk.index += 1
    return walk


def _nat(run: _Traversal, rule: Rule, target: NatTarget, walk: _Walk) -> NfOutcome:
    hit = _static_hit(walk.chain, rule, "ACCEPT", target.request.describe)
    return walk.outcome("ACCEPT", hit, nat=target.request)


def _noop(run: _Traversal, rule: Rule, target: NoopTarget, walk: _Walk) -> _Walk:
    effect = f"{target.name} (observation only)"
    walk.trace = (*walk.trace, _static_hit(walk.chain, rule, "CONTINUE", lambda: effect))
    walk.index += 1
    return walk


def _unmodelled(run: _Traversal, rule: Rule, target: UnmodelledTarget, walk: _Walk) -> NfOutcome:
    raise NotModelled(f"iptables target -j {target.name}")


_TARGETS: dict[type, Callable[[_Traversal, Rule, Any, _Walk], NfOutcome | _Walk]] = {
    StandardTarget: _standard,
    RejectTarget: _reject,
    JumpTarget: _jump,
    MarkTarget: _mark,
    ConnmarkSetTarget: _connmark_target,
    ConnmarkSaveTarget: _connmark_target,
    ConnmarkRestoreTarget: _connmark_target,
    NatTarget: _nat,
    NoopTarget: _noop,
    UnmodelledTarget: _unmodelled,
}
"""What each target type does to a branch, by type."""


def _connmark(
    rule: Rule,
    target: ConnmarkSetTarget | ConnmarkSaveTarget | ConnmarkRestoreTarget,
    packet: NfPacket,
) -> tuple[NfPacket, RuleHit]:
    """xt_CONNMARK: without a conntrack entry it does nothing (the rule still counts)."""
    entry = packet.ct
    if entry is None:
        return packet, _hit(rule, "CONTINUE", "no conntrack entry: nothing to do")
    if isinstance(target, ConnmarkRestoreTarget):
        mark = (packet.mark & ~target.nfmask & 0xFFFFFFFF) ^ (entry.mark & target.ctmask)
        effect = f"mark {packet.mark:#x} -> {mark:#x} (restored from ct mark {entry.mark:#x})"
        return replace(packet, mark=mark), _hit(rule, "CONTINUE", effect)
    if isinstance(target, ConnmarkSetTarget):
        ct_mark = (entry.mark & ~target.mask & 0xFFFFFFFF) ^ target.value
        effect = f"ct mark {entry.mark:#x} -> {ct_mark:#x}"
    else:
        ct_mark = (entry.mark & ~target.ctmask & 0xFFFFFFFF) ^ (packet.mark & target.nfmask)
        effect = f"ct mark {entry.mark:#x} -> {ct_mark:#x} (saved from mark {packet.mark:#x})"
    return replace(packet, ct=entry.with_mark(ct_mark)), _hit(rule, "CONTINUE", effect)
