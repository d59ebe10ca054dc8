"""Scoring a judge metric: the panel's value per sample from its judges' verdicts, invalid
verdicts left out (or wrong), failed predictions wrong, and only_when's rule-accepted samples
left unjudged with the rule's value."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from vlmhyperbench.datasets.manifest import Sample, write_manifest
from vlmhyperbench.judge.job import ItemMaker, judge_items
from vlmhyperbench.judge.requests import JudgeTemplates
from vlmhyperbench.metrics.judge import JUDGE_METRIC, accepted_by_rule, panel_value
from vlmhyperbench.metrics.scoring import score_predictions

LABELS = {"human_labels": {"jm": "correct"}}
SAMPLES = [Sample(id=f"s{i}", question=f"Q{i}", answers=[f"a{i}"], meta=LABELS) for i in range(6)]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def line(sample_id: str, verdict: float | None, status: str = "ok") -> dict[str, Any]:
    return {"id": sample_id, "verdict": verdict, "status": status}


def score(tmp_path: Path, params: dict[str, Any], accepted: dict[str, float] | None = None):
    manifest = write_manifest(tmp_path / "data", SAMPLES)
    predictions = [{"id": s.id, "prediction": "x", "error": None} for s in SAMPLES]
    predictions[5] = {"id": "s5", "prediction": None, "error": "HTTP 500: boom"}
    judge_a = [line("s0", 1), line("s1", 0), line("s2", None, "invalid"), line("s3", 1),
               line("s4", 1)]  # fmt: skip
    judge_b = [line("s0", 1), line("s1", 1), line("s2", 0), line("s3", None, "error"),
               line("s4", 0)]  # fmt: skip
    result = score_predictions(
        write_jsonl(tmp_path / "predictions.jsonl", predictions), manifest, metric_name="jm",
        implementation=JUDGE_METRIC, params={"judges": ["a", "b"], **params},
        higher_is_better=True, model="m", task="t", out_parquet=tmp_path / "jm.parquet",
        out_json=tmp_path / "jm.json", n_boot=50,
        judgements={"a": write_jsonl(tmp_path / "a.jsonl", judge_a),
                    "b": write_jsonl(tmp_path / "b.jsonl", judge_b)},
        rule_accepted=accepted,
    )  # fmt: skip
    return result, pd.read_parquet(tmp_path / "jm.parquet").set_index("id")


def test_the_panel_mean_leaves_invalid_verdicts_out_and_a_failed_prediction_is_wrong(
    tmp_path: Path,
) -> None:
    result, rows = score(tmp_path, {})
    # s0: 1,1 -> 1; s1: 0,1 -> .5; s2: a invalid -> b's 0; s3: b error -> a's 1; s4: 1,0 -> .5
    assert rows["value"].tolist()[:5] == [1.0, 0.5, 0.0, 1.0, 0.5]
    assert rows.loc["s5", "value"] == 0.0  # the prediction failed: not judged, wrong
    assert rows.loc["s2", "judge_status:a"] == "invalid" and pd.isna(
        rows.loc["s5", "judge_status:a"]
    )
    assert rows.loc["s0", "human_label"] == "correct"
    assert result["judges"]["a"] == {"judged": 5, "invalid": 1, "errors": 0,
                                     "invalid_rate": 0.2, "mean": 0.75}  # fmt: skip
    assert result["judges"]["b"]["errors"] == 1 and result["judges"]["b"]["mean"] == 0.5
    assert result["overall"]["value"] == pytest.approx(3.0 / 6)


def test_invalid_as_wrong_and_the_majority(tmp_path: Path) -> None:
    _, rows = score(tmp_path, {"invalid": "wrong", "aggregate": "majority"})
    # s2: a invalid -> 0, b 0 -> majority 0; s3: b error -> 0, a 1 -> split: mean .5
    assert rows["value"].tolist()[:5] == [1.0, 0.5, 0.0, 0.5, 0.5]
    assert panel_value([1, 1, 0], "majority") == 1 and math.isnan(panel_value([], "mean"))


def test_only_when_accepted_samples_take_the_rule_value_unjudged(tmp_path: Path) -> None:
    rule = pd.DataFrame({"id": ["s0", "s0", "s1", "s2", "s3"], "value": [1.0, 1.0, 1.0, 0.5, 0.0]})
    rule.to_parquet(tmp_path / "rule.parquet")
    accepted = accepted_by_rule(tmp_path / "rule.parquet", below=1.0)
    assert accepted == {"s0": 1.0, "s1": 1.0}  # every row of theirs at least 1.0
    predictions = {s.id: {"id": s.id, "prediction": "x", "error": None} for s in SAMPLES}
    maker = ItemMaker(JudgeTemplates(user="{{ prediction }}"), "t", {"model": "j"}, tmp_path, {})
    items = judge_items(SAMPLES, predictions, maker, accepted)
    assert [item.id for item in items] == ["s2", "s3", "s4", "s5"]  # exactly the others
    result, rows = score(tmp_path, {}, accepted={"s0": 1.0, "s1": 1.0})
    assert rows.loc["s1", "value"] == 1.0  # the rule's value, not the judges' 0.5
    assert result["accepted_by_rule"] == 2
