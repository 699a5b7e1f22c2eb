"""The parser's fast paths give exactly what the plain ones give.

`tokenize` splits with regular expressions; its reference here is the character-by-character
reading of iptables' `add_param_to_argv`. `_fast_rule` reads rules in iptables-save's own
form and shares what it built among rules with the same words; its reference is the general
path (`_split_words` and the builders), which every rule takes when `_fast_rule` is switched
off. Both must agree on every rule, and on every refusal (message and line).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.kernel.test_netfilter_fuzz import rule_texts

from eksnet.errors import InputError, NotModelled
from eksnet.kernel.netfilter import parse as parse_module
from eksnet.kernel.netfilter import parse_ruleset, tokenize
from eksnet.kernel.netfilter.ruleset import Ruleset


def reference_tokenize(line: str) -> list[str]:
    """iptables-restore's tokenizer, one character at a time."""
    tokens: list[str] = []
    word: list[str] = []
    in_word = quoted = escaped = False
    for char in line:
        if quoted:
            if escaped:
                word.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                tokens.append("".join(word))
                word, in_word, quoted = [], False, False
            else:
                word.append(char)
        elif char == '"':
            quoted = in_word = True
        elif char in " \t\r\n\v\f":
            if in_word:
                tokens.append("".join(word))
                word, in_word = [], False
        else:
            word.append(char)
            in_word = True
    if in_word:
        tokens.append("".join(word))
    return tokens


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=" a\"\\\t'x-!\r\x0b\x1cé", max_size=24))
def test_tokenize_is_iptables_tokenizer(line: str) -> None:
    assert tokenize(line) == reference_tokenize(line)


def parsed(text: str) -> Ruleset | str:
    try:
        return parse_ruleset(text)
    except (InputError, NotModelled) as error:
        return f"{type(error).__name__}: {error}"


@pytest.fixture()
def general_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "_fast_rule", lambda *args: None)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(rule_texts(), min_size=1, max_size=4))
def test_the_fast_path_parses_as_the_general_path(rules: list[tuple[str, str, str]]) -> None:
    tables: dict[str, list[str]] = {}
    for table, _, text in rules:
        tables.setdefault(table, []).append(text.splitlines()[1])
    text = "".join(
        f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n" for table, lines in tables.items()
    )
    fast = parsed(text)
    saved = parse_module._fast_rule
    parse_module._fast_rule = lambda *args: None  # type: ignore[assignment]
    try:
        general = parsed(text)
    finally:
        parse_module._fast_rule = saved
    assert fast == general, text


def test_the_fast_path_is_taken_for_save_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common forms do not fall back (else the fast path would be dead code)."""
    taken: list[bool] = []
    original = parse_module._fast_rule

    def spy(*args: object) -> object:
        found = original(*args)  # type: ignore[arg-type]
        taken.append(found is not None)
        return found

    monkeypatch.setattr(parse_module, "_fast_rule", spy)
    parse_ruleset(
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n:KUBE-SEP-A - [0:0]\n"
        '-A KUBE-SERVICES -d 172.20.0.10/32 -p tcp -m comment --comment "a/b:c cluster IP" '
        "-m tcp --dport 80 -j KUBE-SVC-X\n"
        "-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A\n"
        "-A KUBE-SEP-A -p tcp -m recent --set --name KUBE-SEP-A --mask 255.255.255.255 "
        "--rsource -m tcp -j DNAT --to-destination 10.0.1.23:8080\n"
        "-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
        "COMMIT\n"
    )
    assert taken == [True, True, True, True]
