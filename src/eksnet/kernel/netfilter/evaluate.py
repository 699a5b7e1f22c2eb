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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from eksnet.errors import NotModelled
from eksnet.kernel.conntrack import NatRequest
from eksnet.kernel.hooks import hooks_of_table
from eksnet.kernel.netfilter.match import ONE, NfEnv, NfPacket, rule_match_probability
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
    null binding. `reject_with` is set for REJECT.
    """

    probability: Fraction
    verdict: Verdict
    packet: NfPacket
    nat: NatRequest | None
    trace: tuple[RuleHit, ...]
    reject_with: str | None = None

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


@dataclass(frozen=True, slots=True)
class _Walk:
    """Where one branch of the traversal is: the chain, the next rule, the return points."""

    chain: Chain
    index: int
    stack: tuple[tuple[Chain, int], ...]
    packet: NfPacket
    probability: Fraction
    trace: tuple[RuleHit, ...]
    decided: bool = False  # the rule at `index` is known to match (a random branch)


def traverse(
    ruleset: Ruleset, table: str, chain: str, packet: NfPacket, env: NfEnv
) -> tuple[NfOutcome, ...]:
    """Every outcome of walking `table`'s built-in `chain` with `packet`, most likely branch
    order first along the rules (the branch where a random rule matches comes before the one
    where it does not).

    A table the ruleset does not have accepts with an empty trace (its hook is not registered).
    Whether a nat stage runs its rules at all is the caller's decision (first packet only and
    binding not yet set up: `Stage.runs_rules_once_per_connection`, `ConntrackEntry.nat_done`);
    the caller also turns `NfOutcome.nat` into a binding (`kernel.conntrack.apply_nat`).
    Raises NotModelled when a packet reaches an unmodelled match or target; ValueError when
    `chain` is not a built-in chain of `table`.
    """
    if chain not in {hook.value for hook in hooks_of_table(table)}:
        raise ValueError(f"{chain} is not a built-in chain of table {table}")
    found = ruleset.table(table)
    if found is None:
        return (NfOutcome(ONE, "ACCEPT", packet, None, ()),)
    outcomes: list[NfOutcome] = []
    pending = [_Walk(found.chain(chain), 0, (), packet, ONE, ())]
    while pending:
        result = _run(found, chain, pending.pop(), env)
        if isinstance(result, NfOutcome):
            outcomes.append(result)
        else:
            matched, missed = result
            pending.append(missed)
            pending.append(matched)
    return tuple(outcomes)


def _run(table: Table, builtin: str, walk: _Walk, env: NfEnv) -> NfOutcome | tuple[_Walk, _Walk]:
    """Advance one branch until it ends (an outcome) or reaches a random rule (two branches)."""
    while True:
        if walk.index >= len(walk.chain.rules):
            if walk.stack:
                chain, index = walk.stack[-1]
                walk = replace(walk, chain=chain, index=index, stack=walk.stack[:-1])
                continue
            return _policy(table, builtin, walk)
        rule = walk.chain.rules[walk.index]
        if not walk.decided:
            probability = rule_match_probability(rule, walk.packet, env)
            if probability == 0:
                walk = replace(walk, index=walk.index + 1)
                continue
            if probability < 1:
                matched = replace(walk, probability=walk.probability * probability, decided=True)
                missed = replace(
                    walk, index=walk.index + 1, probability=walk.probability * (1 - probability)
                )
                return matched, missed
        walk = replace(walk, decided=False)
        step = _apply_target(table, builtin, rule, walk)
        if isinstance(step, NfOutcome):
            return step
        walk = step


def _hit(rule: Rule, verdict: HitVerdict, effect: str) -> RuleHit:
    return RuleHit(rule.table, rule.chain, rule.position, rule.text, verdict, effect, rule.line)


def _policy(table: Table, builtin: str, walk: _Walk) -> NfOutcome:
    chain = table.chain(builtin)
    policy = chain.policy or "ACCEPT"
    hit = RuleHit(table.name, builtin, None, f":{builtin} {policy}", policy, f"policy {policy}")
    return NfOutcome(walk.probability, policy, walk.packet, None, (*walk.trace, hit))


def _apply_target(table: Table, builtin: str, rule: Rule, walk: _Walk) -> NfOutcome | _Walk:
    """What the matched `rule` does to this branch."""
    target = rule.target
    packet = walk.packet
    trace = walk.trace
    following = replace(walk, index=walk.index + 1)
    if target is None:
        return replace(following, trace=(*trace, _hit(rule, "CONTINUE", "count")))
    if isinstance(target, StandardTarget):
        if target.verdict == "RETURN":
            trace = (*trace, _hit(rule, "RETURN", "return"))
            if walk.stack:
                chain, index = walk.stack[-1]
                return replace(walk, chain=chain, index=index, stack=walk.stack[:-1], trace=trace)
            return _policy(table, builtin, replace(walk, trace=trace))
        verdict: Verdict = target.verdict
        hit = _hit(rule, verdict, verdict.lower())
        return NfOutcome(walk.probability, verdict, packet, None, (*trace, hit))
    if isinstance(target, RejectTarget):
        hit = _hit(rule, "REJECT", f"reject with {target.reject_with}")
        return NfOutcome(
            walk.probability, "REJECT", packet, None, (*trace, hit), target.reject_with
        )
    if isinstance(target, JumpTarget):
        destination = table.chain(target.chain)
        if target.goto:
            hit = _hit(rule, "GOTO", f"goto {target.chain}")
            return replace(walk, chain=destination, index=0, trace=(*trace, hit))
        hit = _hit(rule, "JUMP", f"jump {target.chain}")
        stack = (*walk.stack, (walk.chain, walk.index + 1))
        return replace(walk, chain=destination, index=0, stack=stack, trace=(*trace, hit))
    if isinstance(target, MarkTarget):
        mark = (packet.mark & ~target.mask & 0xFFFFFFFF) ^ target.value
        hit = _hit(rule, "CONTINUE", f"mark {packet.mark:#x} -> {mark:#x}")
        return replace(following, packet=replace(packet, mark=mark), trace=(*trace, hit))
    if isinstance(target, ConnmarkSetTarget | ConnmarkSaveTarget | ConnmarkRestoreTarget):
        return _connmark(rule, target, following)
    if isinstance(target, NatTarget):
        hit = _hit(rule, "ACCEPT", target.request.describe())
        return NfOutcome(walk.probability, "ACCEPT", packet, target.request, (*trace, hit))
    if isinstance(target, NoopTarget):
        hit = _hit(rule, "CONTINUE", f"{target.name} (observation only)")
        return replace(following, trace=(*trace, hit))
    if isinstance(target, UnmodelledTarget):
        raise NotModelled(f"iptables target -j {target.name}")
    raise AssertionError(f"unhandled target {target!r}")


def _connmark(
    rule: Rule,
    target: ConnmarkSetTarget | ConnmarkSaveTarget | ConnmarkRestoreTarget,
    following: _Walk,
) -> _Walk:
    """xt_CONNMARK: without a conntrack entry it does nothing (the rule still counts)."""
    packet = following.packet
    entry = packet.ct
    if entry is None:
        hit = _hit(rule, "CONTINUE", "no conntrack entry: nothing to do")
        return replace(following, trace=(*following.trace, hit))
    if isinstance(target, ConnmarkRestoreTarget):
        mark = (packet.mark & ~target.nfmask & 0xFFFFFFFF) ^ (entry.mark & target.ctmask)
        effect = f"mark {packet.mark:#x} -> {mark:#x} (restored from ct mark {entry.mark:#x})"
        new_packet = replace(packet, mark=mark)
    else:
        if isinstance(target, ConnmarkSetTarget):
            ct_mark = (entry.mark & ~target.mask & 0xFFFFFFFF) ^ target.value
            effect = f"ct mark {entry.mark:#x} -> {ct_mark:#x}"
        else:
            ct_mark = (entry.mark & ~target.ctmask & 0xFFFFFFFF) ^ (packet.mark & target.nfmask)
            effect = f"ct mark {entry.mark:#x} -> {ct_mark:#x} (saved from mark {packet.mark:#x})"
        new_packet = replace(packet, ct=entry.with_mark(ct_mark))
    hit = _hit(rule, "CONTINUE", effect)
    return replace(following, packet=new_packet, trace=(*following.trace, hit))
