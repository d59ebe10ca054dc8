"""A pairwise verdict: the model's answer against the ``against`` model's, asked in both orders.

Per sample both models answered, the judge is asked twice: once with the model's answer as
answer A and the other's as B (``first``), once swapped. Each reply is read as a pairwise
verdict (:func:`~.verdicts.parse_verdict`: A → 1.0, B → 0.0, tie → 0.5) and turned to the
model's side (swapped: 1 - value). The sample's verdict is the two's when they agree; when they
differ the judge followed the position, not the answers, and the pair counts as a tie
(``position_consistent: false``; the report gives the rate). An invalid or failed reply in
either order makes the sample's verdict invalid (or ``error``), never half a verdict.

The ``against`` model is not asked about itself: each of its answered samples is a tie (0.5) by
definition, so its value on the metric is 0.5, the line the others are read against.

The two requests are journaled apart: the first under the sample's id, the swapped one under
:func:`journal_id` (``"<id> [swapped]"``), so a run that stopped between them resumes with the
missing order only.
"""

from __future__ import annotations

from typing import Any, Literal

from vlmhyperbench.judge.verdicts import Verdict, parse_verdict

Order = Literal["first", "swapped"]
ORDERS: tuple[Order, ...] = ("first", "swapped")
#: A pairwise judgements line holds these besides the usual keys.
PAIRWISE_KEYS = ("first", "swapped", "position_consistent", "reply_swapped")
LABELS = {1.0: "win", 0.0: "loss", 0.5: "tie"}
TIE = 0.5


def journal_id(sample_id: str, order: Order) -> str:
    return sample_id if order == "first" else f"{sample_id} [swapped]"


def answers_in_order(prediction: str, other: str, order: Order) -> tuple[str, str]:
    """(answer A, answer B): the model's first, or the other model's first when swapped."""
    return (prediction, other) if order == "first" else (other, prediction)


def model_side(verdict: Verdict, order: Order) -> float | None:
    """A verdict's value for the model: as read in the first order, 1 - value swapped."""
    if verdict.value is None:
        return None
    return verdict.value if order == "first" else 1.0 - verdict.value


def _sum_usage(records: list[dict[str, Any]]) -> dict[str, int] | None:
    usages = [r["usage"] for r in records if isinstance(r.get("usage"), dict)]
    if not usages:
        return None
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {key: sum(int(u.get(key) or 0) for u in usages) for key in keys}


def _read(record: dict[str, Any], regex: str | None) -> Verdict:
    return parse_verdict(record.get("reply") or "", "pairwise", regex=regex)


def pairwise_line(
    sample_id: str, first: dict[str, Any], swapped: dict[str, Any], regex: str | None
) -> dict[str, Any]:
    """The sample's judgements line from the two orders' journal records (the keys it has;
    the judge job lays every line out with all the keys)."""
    latencies = [r.get("latency_ms") for r in (first, swapped)]
    line = {
        "id": sample_id,
        "error": first.get("error") or swapped.get("error"),
        "reply": first.get("reply"),
        "reply_swapped": swapped.get("reply"),
        "judge_model": first.get("judge_model"),
        "system_fingerprint": first.get("system_fingerprint"),
        "usage": _sum_usage([first, swapped]),
        "latency_ms": sum(latencies) if None not in latencies else None,
    }
    if line["error"] is not None:
        return {**line, "status": "error", "detail": line["error"]}
    verdicts = {order: _read(r, regex) for order, r in zip(ORDERS, (first, swapped), strict=True)}
    bad = [f"{order}: {v.detail}" for order, v in verdicts.items() if v.value is None]
    if bad:
        return {**line, "status": "invalid", "detail": "; ".join(bad)}
    sides = [model_side(verdicts[order], order) for order in ORDERS]
    consistent = sides[0] == sides[1]
    value = sides[0] if consistent else TIE
    detail = "both orders agree" if consistent else "the orders disagree: a tie"
    return {**line, "first": sides[0], "swapped": sides[1], "position_consistent": consistent,
            "verdict": value, "label": LABELS[value], "status": "ok", "detail": detail}  # fmt: skip


def self_tie_line(sample_id: str) -> dict[str, Any]:
    """The ``against`` model's line for a sample it answered: a tie with itself, not asked."""
    return {
        "id": sample_id, "verdict": TIE, "label": LABELS[TIE], "status": "ok",
        "detail": "the compared-against model itself: a tie, not asked",
    }  # fmt: skip
