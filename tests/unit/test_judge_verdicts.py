"""Judge replies → verdicts: where the verdict is read, how each kind reads it, what is invalid."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmhyperbench.judge.verdicts import DETAIL_LIMIT, Verdict, check_regex, parse_verdict

FENCED = """The prediction names the same total as the reference, 1 250,00 ₽.

```json
{"verdict": "correct", "reason": "amounts match"}
```"""

# (reply, expected label) for binary verdicts read from JSON.
BINARY_JSON = [
    pytest.param(FENCED, "correct", id="prose-and-fenced-json"),
    pytest.param(
        'First thought: {"verdict": "correct"}. On reflection: {"verdict": "incorrect"}',
        "incorrect",
        id="two-objects-last-wins",
    ),
    pytest.param(
        '{"reasoning": "dates differ"}\n{"verdict": "no"}', "incorrect", id="no-key-then-key"
    ),
    pytest.param(
        '{"verdict": "yes", "checks": {"date": {"ok": true}, "total": {"ok": false}}}',
        "correct",
        id="nested-braces",
    ),
    pytest.param(
        '{"reason": "the template {verdict} was } filled {", "verdict": "wrong"}',
        "incorrect",
        id="braces-inside-strings",
    ),
    pytest.param(
        '{"verdict": "correct", "examples": [{"verdict": "incorrect"}]}',
        "correct",
        id="outer-verdict-beats-nested",
    ),
    pytest.param('{"result": {"verdict": "right"}}', "correct", id="nested-verdict-only"),
    pytest.param(
        'Ответ модели совпадает с эталоном по всем полям.\n{"verdict": "correct"}\nИтог: верно.',
        "correct",
        id="russian-prose",
    ),
    pytest.param('{"verdict": "YES"}', "correct", id="upper-case"),
    pytest.param('{"verdict": " Incorrect. "}', "incorrect", id="padded-punctuated"),
    pytest.param('{"verdict": "**True**"}', "correct", id="markdown-bold"),
    pytest.param('{"verdict": true}', "correct", id="json-true"),
    pytest.param('{"verdict": false}', "incorrect", id="json-false"),
    pytest.param('{"verdict": 0}', "incorrect", id="json-zero"),
    pytest.param('{"verdict": 1.0}', "correct", id="json-one-float"),
    pytest.param('{"verdict": "1"}', "correct", id="text-one"),
    pytest.param('{ "verdict" : "no" ,\n "why": "x"}', "incorrect", id="spaced-json"),
]


@pytest.mark.parametrize(("reply", "label"), BINARY_JSON)
def test_binary_verdict_from_json(reply: str, label: str) -> None:
    verdict = parse_verdict(reply, "binary")
    assert verdict.status == "ok", verdict.detail
    assert verdict.label == label
    assert verdict.value == (1.0 if label == "correct" else 0.0)


# (reply, kind, a fragment of the detail) for replies that are invalid verdicts.
INVALID = [
    pytest.param("", "binary", "empty reply", id="empty"),
    pytest.param("  \n\t ", "score", "empty reply", id="whitespace"),
    pytest.param(
        "I think the answer is correct.",
        "binary",
        "no JSON object with a 'verdict' key",
        id="prose-only",
    ),
    pytest.param(
        '{"score": 4, "reason": "ok"}', "score", "no JSON object with a 'verdict' key", id="no-key"
    ),
    pytest.param('{"Verdict": "yes"}', "binary", "no JSON object", id="key-is-case-sensitive"),
    pytest.param(
        "{'verdict': 'yes'}", "binary", "single-quoted pseudo-JSON is not read", id="single-quoted"
    ),
    pytest.param('{"verdict": "correct"', "binary", "no JSON object", id="unclosed"),
    pytest.param(
        '{"verdict": "maybe"}', "binary", '"maybe" is not one of correct/incorrect', id="maybe"
    ),
    pytest.param('{"verdict": null}', "binary", "null is not one of", id="null"),
    pytest.param('{"verdict": 2}', "binary", "2 is not one of", id="binary-two"),
    pytest.param(
        '{"verdict": "correct"} then {"verdict": "unsure"}',
        "binary",
        '"unsure"',
        id="last-object-decides-even-if-unusable",
    ),
    pytest.param('{"verdict": 6}', "score", "outside [1, 5]", id="score-above"),
    pytest.param('{"verdict": "0.5"}', "score", "outside [1, 5]", id="score-below"),
    pytest.param('{"verdict": "NaN"}', "score", "is not a number", id="score-nan-text"),
    pytest.param('{"verdict": NaN}', "score", "not finite", id="score-nan-json"),
    pytest.param('{"verdict": Infinity}', "score", "not finite", id="score-inf-json"),
    pytest.param('{"verdict": "1e999"}', "score", "not finite", id="score-huge"),
    pytest.param('{"verdict": "4/5"}', "score", "is not a number", id="score-fraction"),
    pytest.param('{"verdict": true}', "score", "is not a number", id="score-bool"),
    pytest.param('{"verdict": "good"}', "score", '"good" is not a number', id="score-word"),
    pytest.param('{"verdict": "C"}', "pairwise", "is not one of A/B/tie", id="pairwise-c"),
    pytest.param('{"verdict": true}', "pairwise", "is not one of A/B/tie", id="pairwise-bool"),
    pytest.param("}{ ]] {{{ \x00 garbage ``` {json} ", "binary", "no JSON object", id="garbage"),
]


@pytest.mark.parametrize(("reply", "kind", "fragment"), INVALID)
def test_invalid_verdicts_say_why(reply: str, kind: str, fragment: str) -> None:
    verdict = parse_verdict(reply, kind)  # type: ignore[arg-type]
    assert verdict == Verdict("invalid", None, None, verdict.detail)
    assert fragment in verdict.detail


@pytest.mark.parametrize(
    ("reply", "value", "label"),
    [
        pytest.param('{"verdict": 4}', 4.0, "4", id="int"),
        pytest.param('{"verdict": "4.5"}', 4.5, "4.5", id="text"),
        pytest.param('{"verdict": "4,5"}', 4.5, "4.5", id="decimal-comma"),
        pytest.param('{"verdict": " 3. "}', 3.0, "3", id="padded"),
        pytest.param('{"verdict": 1}', 1.0, "1", id="range-min-inclusive"),
        pytest.param('{"verdict": 5.0}', 5.0, "5", id="range-max-inclusive"),
        pytest.param('Оценка:\n```json\n{"verdict": "2"}\n```', 2.0, "2", id="fenced"),
    ],
)
def test_score_verdicts(reply: str, value: float, label: str) -> None:
    verdict = parse_verdict(reply, "score")
    assert (verdict.status, verdict.value, verdict.label) == ("ok", value, label)


def test_score_range_is_configurable_and_not_rescaled() -> None:
    verdict = parse_verdict('{"verdict": 7.5}', "score", score_min=0, score_max=10)
    assert (verdict.value, verdict.label) == (7.5, "7.5")
    assert parse_verdict('{"verdict": "-1"}', "score", score_min=-2, score_max=0).value == -1.0
    assert parse_verdict('{"verdict": ".5"}', "score", score_min=0, score_max=1).value == 0.5
    out = parse_verdict('{"verdict": 11}', "score", score_min=0, score_max=10)
    assert out.status == "invalid" and "outside [0, 10]" in out.detail


@pytest.mark.parametrize(
    ("reply", "value", "label"),
    [
        pytest.param('{"verdict": "A"}', 1.0, "A", id="A"),
        pytest.param('{"verdict": "b"}', 0.0, "B", id="lower-b"),
        pytest.param('{"verdict": "tie"}', 0.5, "tie", id="tie"),
        pytest.param('{"verdict": "Equal"}', 0.5, "tie", id="equal"),
        pytest.param('{"verdict": "draw."}', 0.5, "tie", id="draw"),
        pytest.param('{"verdict": "2"}', 0.0, "B", id="text-two"),
        pytest.param('{"verdict": 1}', 1.0, "A", id="json-one"),
        pytest.param('Answer B misses the date.\n{"verdict": "(A)"}', 1.0, "A", id="bracketed"),
    ],
)
def test_pairwise_verdicts(reply: str, value: float, label: str) -> None:
    verdict = parse_verdict(reply, "pairwise")
    assert (verdict.status, verdict.value, verdict.label) == ("ok", value, label)


@pytest.mark.parametrize(
    ("reply", "kind", "regex", "label"),
    [
        pytest.param(
            "Verdict: yes ... on reflection ... Verdict: no",
            "binary",
            r"Verdict: (\w+)",
            "incorrect",
            id="last-match-wins",
        ),
        pytest.param(
            'Score: 3/5 {"verdict": 1}', "score", r"Score: (\d+)/5", "3", id="regex-beats-json"
        ),
        pytest.param("Winner: [[B]]", "pairwise", r"\[\[(A|B|tie)\]\]", "B", id="pairwise"),
        pytest.param("...CORRECT", "binary", r"(?i)correct|incorrect", "correct", id="no-group"),
        pytest.param(
            "{'verdict': 'yes'}", "binary", r"'verdict':\s*'(\w+)'", "correct", id="single-quoted"
        ),
    ],
)
def test_regex_overrides_json(reply: str, kind: str, regex: str, label: str) -> None:
    verdict = parse_verdict(reply, kind, regex=regex)  # type: ignore[arg-type]
    assert (verdict.status, verdict.label) == ("ok", label), verdict.detail
    assert verdict.detail.startswith("regex")


def test_regex_without_match_is_invalid() -> None:
    verdict = parse_verdict('{"verdict": "yes"}', "binary", regex=r"Verdict: (\w+)")
    assert verdict.status == "invalid"
    assert "did not match" in verdict.detail
    unused = parse_verdict("yes", "binary", regex=r"(no)?yes")
    assert unused.status == "invalid" and "first group did not take part" in unused.detail


def test_bad_regex_raises_and_check_regex_names_it() -> None:
    with pytest.raises(ValueError, match=re.escape(r"verdict regex 'Verdict: (\w+' does not")):
        parse_verdict("Verdict: yes", "binary", regex=r"Verdict: (\w+")
    problem = check_regex(r"Verdict: (\w+")
    assert problem is not None and "Verdict: (" in problem and "does not compile" in problem
    assert check_regex(r"Verdict: (\w+)") is None


def test_caller_mistakes_raise() -> None:
    with pytest.raises(ValueError, match="unknown verdict kind"):
        parse_verdict('{"verdict": "yes"}', "ternary")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score range"):
        parse_verdict('{"verdict": 3}', "score", score_min=5, score_max=1)
    with pytest.raises(ValueError, match="score range"):
        parse_verdict('{"verdict": 3}', "score", score_max=math.inf)


def test_verdict_rejects_inconsistent_status() -> None:
    with pytest.raises(ValueError):
        Verdict("ok", None, None, "")
    with pytest.raises(ValueError):
        Verdict("invalid", 1.0, "correct", "")


def test_detail_is_one_short_line() -> None:
    huge = '{"verdict": "' + "maybe\n" * 5000 + '"}'
    for kind in ("binary", "score", "pairwise"):
        detail = parse_verdict(huge, kind).detail  # type: ignore[arg-type]
        assert len(detail) <= DETAIL_LIMIT and "\n" not in detail
    bad = "(" * 300
    with pytest.raises(ValueError):
        parse_verdict("x", "binary", regex=bad)


def test_pathological_replies_do_not_raise() -> None:
    deep = '{"a":' * 5000
    assert parse_verdict(deep, "binary").status == "invalid"
    nested = '{"verdict": ' + "[" * 990 + "]" * 990 + "}"
    assert parse_verdict(nested, "binary").status == "invalid"
    big = '{"verdict": ' + "9" * 4000 + "}"
    assert parse_verdict(big, "score").status == "invalid"
    assert parse_verdict(big, "binary").status == "invalid"


# Text built from the pieces a reply is made of, so that many examples hold JSON-like parts.
PIECES = st.sampled_from(
    ['{"verdict": ', "{", "}", '"', "'", ":", ",", "[", "]", "NaN", "1e999", "-", ".", "4,5"]
) | st.sampled_from(
    ["yes", "No", "tie", "B", "2", "true", "null", " ", "\n", "```json", "Verdict: ", "ё"]
)
REPLIES = st.text() | st.lists(PIECES | st.text(max_size=3), max_size=24).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    reply=REPLIES,
    kind=st.sampled_from(["binary", "score", "pairwise"]),
    regex=st.sampled_from([None, None, r"Verdict: (\w+)", r"(?i)yes|no", r"x*"]),
)
def test_any_reply_gives_a_consistent_verdict(reply: str, kind: str, regex: str | None) -> None:
    verdict = parse_verdict(reply, kind, regex=regex)  # type: ignore[arg-type]
    assert verdict.status in ("ok", "invalid")
    assert (verdict.value is None) == (verdict.status == "invalid")
    assert (verdict.label is None) == (verdict.status == "invalid")
    assert len(verdict.detail) <= DETAIL_LIMIT and "\n" not in verdict.detail
    if verdict.value is not None:
        assert math.isfinite(verdict.value)
        if kind == "score":
            assert 1 <= verdict.value <= 5
        else:
            assert verdict.value in ((0.0, 1.0) if kind == "binary" else (0.0, 0.5, 1.0))
