"""Small parts of the report with known answers: Pareto front, rPC, flip rate, error kinds,
LaTeX escaping, and provenance reading of missing facts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlmhyperbench.pipeline.provenance import UNKNOWN, dataset_record, git_state, model_content_hash
from vlmhyperbench.reporting.results import Results, SampleScores
from vlmhyperbench.reporting.robustness import _rpc, flip_rates
from vlmhyperbench.reporting.serving import error_kind, pareto_front
from vlmhyperbench.reporting.tables import escape, p_value, with_ci


def test_pareto_front_keeps_only_undominated_models() -> None:
    quality = np.array([0.9, 0.8, 0.7, 0.85, math.nan])
    latency = np.array([900.0, 300.0, 400.0, 950.0, 100.0])
    # 0.7 @ 400 is dominated by 0.8 @ 300; 0.85 @ 950 by 0.9 @ 900; NaN is never on it.
    assert pareto_front(quality, latency, higher=True).tolist() == [True, True, False, False, False]
    # Lower-is-better quality (CER): 0.7 @ 400 is now best on quality among the fast ones.
    front = pareto_front(quality, latency, higher=False)
    assert front.tolist() == [False, True, True, False, False]


def test_rpc_is_relative_to_clean_in_the_metric_direction() -> None:
    assert _rpc(0.6, 0.8, higher=True) == pytest.approx(0.75)
    assert _rpc(0.4, 0.1, higher=False) == pytest.approx(0.25)  # CER 0.1 → 0.4
    assert math.isnan(_rpc(0.5, 0.0, higher=True))
    assert math.isnan(_rpc(0.0, 0.0, higher=False))


def _results_with(scores: SampleScores) -> Results:
    summary = pd.DataFrame(
        {
            "model": ["m"],
            "task": ["t"],
            "metric": ["em"],
            "group_by": ["overall"],
            "group": ["all"],
            "value": [0.5],
            "higher_is_better": [True],
        }
    )
    results = Results(root=Path("."), summary=summary)
    results.scores[("m", "t", "em")] = scores
    return results


def test_flip_rate_counts_distorted_copies_of_right_originals() -> None:
    ids = np.array(["a-clean", "b-clean", "c-clean", "a-blur", "b-blur", "c-blur", "a-noise"])
    values = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    origin = np.array(["", "", "", "a-clean", "b-clean", "c-clean", "a-clean"], dtype=object)
    subset = np.array(["clean"] * 3 + ["blur"] * 3 + ["noise"], dtype=object)
    scores = SampleScores(
        ids=ids.astype(object),
        values=values,
        clusters=ids.astype(object),
        origin=origin,
        severity=np.full(7, math.nan),
        subset=subset,
    )
    rates = flip_rates(_results_with(scores), "t", "em", "m")
    # blur: a and b were right when clean; a flipped, b did not (c was wrong: not counted).
    assert rates == {"blur": (0.5, 2), "noise": (1.0, 1)}


def test_error_kinds_group_messages_without_their_numbers() -> None:
    assert error_kind("HTTP 400: image too large (7000x7000)") == "HTTP N"
    assert error_kind("missing prediction") == "missing prediction"
    assert error_kind("image not found: images/x.png") == "image not found"


def test_latex_cells_escape_and_format() -> None:
    assert escape("a_b & 50% #1 {x} ~^\\") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    assert escape("Фамилия") == "Фамилия"
    assert with_ci(0.84213, 0.8, 0.88, bold=True) == r"\textbf{0.842} {\scriptsize[0.80, 0.88]}"
    assert with_ci(math.nan, 0.1, 0.2) == "--"
    assert p_value(0.0004) == r"$<$0.001" and p_value(0.0123) == "0.012"


def test_provenance_facts_that_cannot_be_found_are_unknown(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"revision": UNKNOWN, "dirty": UNKNOWN}
    assert model_content_hash(tmp_path) == UNKNOWN
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    first = model_content_hash(tmp_path)
    (tmp_path / "config.json").write_text('{"a": 1}', encoding="utf-8")
    assert len(first) == 64 and model_content_hash(tmp_path) != first


def test_dataset_record_hashes_the_manifest(tmp_path: Path) -> None:
    from vlmhyperbench.config import load_experiment

    repo = Path(__file__).resolve().parents[2]
    experiment = load_experiment(config_path=repo / "config" / "config.yaml")
    task = next(iter(experiment.tasks))
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"id": "a"}\n', encoding="utf-8")
    record = dataset_record(experiment, task, manifest)
    assert len(record["manifest_sha256"]) == 64
    assert record["images_sha256"] == UNKNOWN  # no dataset.json beside it
    assert dataset_record(experiment, task, tmp_path / "none.jsonl")["manifest_sha256"] == UNKNOWN


def test_a_sentence_states_the_gain_and_its_ci_in_the_better_direction() -> None:
    from types import SimpleNamespace

    from vlmhyperbench.reporting.build import _sentence

    row = SimpleNamespace(
        significant=True, higher_is_better=False, model_a="a", model_b="b",
        diff=-0.145, ci_low=-0.167, ci_high=-0.123, p_holm=0.0004, mdd=0.01, n=60, n_clusters=20,
    )  # fmt: skip
    assert _sentence(row).startswith("a beats b by 0.145 [0.123, 0.167] (lower is better)")
    row.higher_is_better, row.diff, row.ci_low, row.ci_high = True, 0.2, 0.1, 0.3
    assert "by 0.200 [0.100, 0.300] (higher is better)" in _sentence(row)
