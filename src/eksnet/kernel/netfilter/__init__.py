"""Netfilter (iptables) of one namespace, sans-IO: parse `iptables-save` text, evaluate a
table's built-in chain for a packet as weighted branches.

* `parse_ruleset` (parse.py): text → `Ruleset` (ruleset.py), with line-numbered `InputError`s;
* `NfPacket`, `NfEnv`, `rule_match_probability` (match.py): what a rule's matches say;
* `traverse`, `NfOutcome`, `RuleHit` (evaluate.py): one table, one hook, every outcome.
"""

from eksnet.kernel.netfilter.evaluate import HitVerdict, NfOutcome, RuleHit, Verdict, traverse
from eksnet.kernel.netfilter.match import (
    AddrTypeLookup,
    NfEnv,
    NfPacket,
    NthCount,
    ctstate_bits,
    match_probability,
    rule_match_probability,
)
from eksnet.kernel.netfilter.parse import parse_ruleset, tokenize
from eksnet.kernel.netfilter.ruleset import Chain, Match, Rule, Ruleset, Table, Target

__all__ = [
    "AddrTypeLookup",
    "Chain",
    "HitVerdict",
    "Match",
    "NfEnv",
    "NfOutcome",
    "NfPacket",
    "NthCount",
    "Rule",
    "RuleHit",
    "Ruleset",
    "Table",
    "Target",
    "Verdict",
    "ctstate_bits",
    "match_probability",
    "parse_ruleset",
    "rule_match_probability",
    "tokenize",
    "traverse",
]
