"""Pairwise verdicts against the stand-in judge (``--pairwise``: the one correct answer wins,
an undecided pair goes to the answer shown first): every sample asked in both orders, the
orders combined on the model's side, a position-following pair counted as a tie, and a run
stopped between the two orders resumes with the missing order only."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_judge_job import GENERATION, JUDGE, SETTINGS, asked, lines
from tests.integration.test_judge_standin import MODEL, standin
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.judge.job import ItemMaker, JudgeRun, VerdictRule, judge, judge_items
from vlmhyperbench.judge.requests import JudgeTemplates

TEMPLATES = JudgeTemplates(
    user="Вопрос: {{ question }}\nЭталон: {{ answers | join(' | ') }}\n"
    "Ответ A: {{ answer_a }}\nОтвет B: {{ answer_b }}\nКакой ответ лучше?"
)
SAMPLES = [
    Sample(id=f"s{i}", images=[], question=f"Поле {i}?", answers=[f"v{i}"]) for i in range(8)
]
# (the model's answer, the other model's answer): right/wrong decides, None is a failed request
ANSWERS = {
    "s0": ("v0", "x"), "s1": ("v1", "x"),  # the model alone is right: a win both ways
    "s2": ("x", "v2"), "s3": ("x", "v3"),  # the other alone: a loss both ways
    "s4": ("v4", "v4"),  # both right: the stand-in picks the first shown, in each order
    "s5": ("x", "y"),  # neither: the same position bias
    "s6": (None, "v6"), "s7": ("v7", None),  # a failed answer on either side: not judged
}  # fmt: skip


def records(side: int) -> dict[str, dict]:
    found = {}
    for sample_id, pair in ANSWERS.items():
        text = pair[side]
        error = "HTTP 400: too long" if text is None else None
        found[sample_id] = {"id": sample_id, "prediction": text, "error": error}
    return found


def run(tmp_path: Path) -> JudgeRun:
    maker = ItemMaker(TEMPLATES, "t", JUDGE, tmp_path, GENERATION)
    items = judge_items(SAMPLES, records(0), maker, against=records(1))
    return JudgeRun(
        label=f"judge_pair: {MODEL} on m/t", templates=TEMPLATES,
        rule=VerdictRule(kind="pairwise"), items=items, dataset_dir=tmp_path,
        journal=Journal(tmp_path / "journal.jsonl", "judge-fp"), settings=SETTINGS,
        served_model=MODEL, generation=GENERATION,
    )  # fmt: skip


def test_both_orders_are_asked_and_combined_on_the_models_side(tmp_path: Path) -> None:
    out = tmp_path / "judgements.jsonl"
    with standin(tmp_path, "--pairwise") as (url, _):
        assert judge(run(tmp_path), url, out).sent == 12  # 6 samples both answered, 2 orders
        requests = asked(url)
        shown = {(r["prediction"], r["answer_b"]) for r in requests}
        for sample_id in ("s0", "s2", "s5"):
            mine, other = ANSWERS[sample_id]
            assert {(mine, other), (other, mine)} <= shown  # each order asked
        judged = lines(out)
        assert [j["id"] for j in judged] == [f"s{i}" for i in range(6)]
        assert [j["verdict"] for j in judged] == [1.0, 1.0, 0.0, 0.0, 0.5, 0.5]
        assert [j["label"] for j in judged] == ["win", "win", "loss", "loss", "tie", "tie"]
        assert [j["position_consistent"] for j in judged] == [True] * 4 + [False] * 2
        # s4: "A" both times - the model when it was shown first, the other when swapped
        assert (judged[4]["first"], judged[4]["swapped"]) == (1.0, 0.0)
        assert json.loads(judged[4]["reply_swapped"]) == {"verdict": "A"}
        assert all(j["usage"]["prompt_tokens"] > 0 for j in judged)  # both orders' tokens

        assert judge(run(tmp_path), url, out).sent == 0 and asked(url) == []


def test_a_run_stopped_between_the_two_orders_asks_only_the_missing_one(tmp_path: Path) -> None:
    out = tmp_path / "judgements.jsonl"
    with standin(tmp_path, "--pairwise") as (url, _):
        judge(run(tmp_path), url, out)
        journal = tmp_path / "journal.jsonl"
        kept = [
            line
            for line in journal.read_text(encoding="utf-8").splitlines()
            if json.loads(line).get("id") != "s0 [swapped]"
        ]
        journal.write_text("\n".join(kept) + "\n", encoding="utf-8")
        asked(url)
        assert judge(run(tmp_path), url, out).sent == 1
        (request,) = asked(url)
        assert (request["prediction"], request["answer_b"]) == ("x", "v0")  # swapped: other first
        assert lines(out)[0]["verdict"] == 1.0


def test_the_compared_against_model_ties_with_itself_unasked(tmp_path: Path) -> None:
    out = tmp_path / "judgements.jsonl"
    tied = JudgeRun(
        label="judge_pair: self", templates=TEMPLATES, rule=VerdictRule(kind="pairwise"),
        items=[], dataset_dir=tmp_path, journal=Journal(tmp_path / "j.jsonl", "fp"),
        settings=SETTINGS, served_model=MODEL, self_ties=["s0", "s1"],
    )  # fmt: skip
    assert judge(tied, "http://127.0.0.1:9/v1", out).sent == 0  # no server needed
    assert [(j["id"], j["verdict"], j["status"]) for j in lines(out)] == [
        ("s0", 0.5, "ok"),
        ("s1", 0.5, "ok"),
    ]
