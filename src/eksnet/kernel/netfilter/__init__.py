"""Netfilter (iptables) of one namespace, sans-IO: parse `iptables-save` text, evaluate a
table's built-in chain for a packet as weighted branches.

* `parse_ruleset` (parse.py): text → `Ruleset` (ruleset.py), with line-numbered `InputError`s;
* `NfPacket`, `NfEnv`, `rule_match_probability` (match.py): what a rule's matches say;
* `traverse`, `NfOutcome`, `RuleHit` (evaluate.py): one table, one hook, every outcome, long
  chains through a per-chain index (index.py);
* `RecentTables` (recent.py): the `-m recent` lists of a namespace, state carried like
  conntrack's.
"""

from eksnet.kernel.netfilter.evaluate import HitVerdict, NfOutcome, RuleHit, Verdict, traverse
from eksnet.kernel.netfilter.match import (
    DEFAULT_NOW,
    AddrTypeLookup,
    NfEnv,
    NfPacket,
    NthCount,
    ctstate_bits,
    match_probability,
    rule_match_probability,
)
from eksnet.kernel.netfilter.parse import parse_ruleset, tokenize
from eksnet.kernel.netfilter.recent import EMPTY_RECENT, RecentEntry, RecentList, RecentTables
from eksnet.kernel.netfilter.ruleset import Chain, Match, Rule, Ruleset, Table, Target

__all__ = [
    "DEFAULT_NOW",
    "EMPTY_RECENT",
    "AddrTypeLookup",
    "Chain",
    "HitVerdict",
    "Match",
    "NfEnv",
    "NfOutcome",
    "NfPacket",
    "NthCount",
    "RecentEntry",
    "RecentList",
    "RecentTables",
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
