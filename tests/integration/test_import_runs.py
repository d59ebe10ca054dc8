"""``vlmhb import-runs``: the original run matrix (``user_config.csv`` beside
``vlmhyperbench/data_dirs``) becomes a config that loads and validates, its rows' prompts and
filters task variants; a row that cannot be mapped is refused naming its line and column, and
nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.fixtures import original_formats as fx
from vlmhyperbench.cli import app
from vlmhyperbench.config import load_experiment
from vlmhyperbench.datasets.importers import import_dataset
from vlmhyperbench.inference.prompts import TaskPrompts
from vlmhyperbench.pipeline.selection import select_samples

REGISTRY = Path(__file__).resolve().parents[2] / "config"
FILTERED = "vqa_demo_mini__short_answer_passport_seriya_i_nomer_pasporta"
COLLECTION = "vqa_demo_mini__qwen2-vl-2b_demo_mini"


def import_runs(*args: str):
    return CliRunner().invoke(app, ["import-runs", *args, "--registry", str(REGISTRY)])


def test_the_original_run_matrix_becomes_a_config_that_loads(tmp_path: Path) -> None:
    csv = fx.original_repository(tmp_path / "repo")
    out = tmp_path / "out"
    result = import_runs(str(csv), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "6 (model, task) pairs" in result.output and "written" in result.output

    experiment = load_experiment(config_path=out / "config.yaml")
    assert {(p.model, p.task) for p in experiment.pairs} == {
        ("qwen2-vl-2b-instruct", COLLECTION),  # line 2: its own prompt collection
        ("qwen2-vl-2b-instruct", "vqa_demo_mini"),  # line 3: the plain task
        ("qwen2.5-vl-3b-instruct", "vqa_demo_mini__cer-wer"),  # line 4: other metrics
        ("qwen2.5-vl-3b-instruct", FILTERED),  # line 5: system prompt and filters
        ("qwen2.5-vl-7b-instruct", "rposorting_rpo_mini"),
        ("qwen2-vl-2b-instruct", "rpoclassification_rpo_mini"),
    }
    # Tasks that run on the same models share a block.
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["runs"] == [
        {
            "models": ["qwen2-vl-2b-instruct"],
            "tasks": [COLLECTION, "vqa_demo_mini", "rpoclassification_rpo_mini"],
        },
        {
            "models": ["qwen2.5-vl-3b-instruct"],
            "tasks": ["vqa_demo_mini__cer-wer", FILTERED],
        },
        {"models": ["qwen2.5-vl-7b-instruct"], "tasks": ["rposorting_rpo_mini"]},
    ]
    tasks = experiment.registry.tasks
    base, filtered = tasks["vqa_demo_mini"], tasks[FILTERED]
    assert (base.kind, base.dataset, base.metrics, base.base) == ("vqa", "demo_mini", ["cer"], None)
    assert filtered.base == "vqa_demo_mini" and filtered.dataset == "demo_mini"
    assert filtered.prompt.system == fx.SYSTEM_PROMPT[0]  # the file's first line only
    assert filtered.filters.doc_class == ["passport"]
    assert filtered.filters.question_type == ["Серия и номер паспорта"]
    assert tasks["vqa_demo_mini__cer-wer"].metrics == ["cer", "wer"]
    prompts = TaskPrompts.load(tasks[COLLECTION], experiment.registry.path_of("tasks", COLLECTION))
    assert set(prompts.collection.entries) == {"passport surname", "invoice inn"}
    classes = tasks["rpoclassification_rpo_mini"]
    assert (classes.kind, classes.labels) == ("classification", ["invoice", "passport", "snils"])
    assert classes.metrics == ["accuracy", "weighted_f1"]
    sorting = tasks["rposorting_rpo_mini"]
    assert (sorting.kind, sorting.metrics) == ("ordering", ["kendall_tau", "spearman_rho"])
    # One original dataset name under two tasks: two datasets.
    assert {sorting.dataset, classes.dataset} == {
        "rpo_mini_rposorting",
        "rpo_mini_rpoclassification",
    }

    # The datasets import from their original layout; the variant's filters pick the sample.
    source = experiment.registry.datasets["demo_mini"].source
    assert (source.type, source.format) == ("import", "vqa_csv")
    samples, _ = import_dataset(source.format, source.path, tmp_path / "data", name="demo_mini")
    chosen = select_samples(filtered, samples)
    assert [s.question for s in chosen] == ["Серия и номер паспорта?"]
    assert (
        TaskPrompts.load(filtered, out / "tasks" / "x.yaml").render(chosen[0]).system
        == (fx.SYSTEM_PROMPT[0])
    )
    for name in (sorting.dataset, classes.dataset):
        source = experiment.registry.datasets[name].source
        imported, _ = import_dataset(
            source.format, source.path, tmp_path / name, name=name, options=source.options
        )
        assert imported


def test_defaults_read_data_dirs_beside_the_csv_and_write_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fx.original_repository(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = import_runs("user_config.csv")
    assert result.exit_code == 0, result.output
    out = Path("imported/user_config")
    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert config["registry_dir"] == "imported/user_config"
    dataset = yaml.safe_load((out / "datasets" / "demo_mini.yaml").read_text(encoding="utf-8"))
    assert dataset["source"]["path"] == "vlmhyperbench/data_dirs/Datasets/VQA/demo_mini"
    experiment = load_experiment(config_path=out / "config.yaml")
    assert len(experiment.pairs) == 6
    validate = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmhyperbench.cli",
            "validate",
            "--config",
            str(out / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "run matrix: 6 (model, task) pairs" in validate.stdout


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    csv = fx.original_repository(tmp_path / "repo")
    out = tmp_path / "out"
    assert import_runs(str(csv), "--out", str(out)).exit_code == 0
    again = import_runs(str(csv), "--out", str(out))
    assert again.exit_code == 0 and "written" not in again.output
    assert "unchanged" in again.output  # the same content: nothing to do

    edited = out / "tasks" / "vqa_demo_mini.yaml"
    edited.write_text(edited.read_text(encoding="utf-8") + "limit: 5\n", encoding="utf-8")
    refused = import_runs(str(csv), "--out", str(out))
    assert refused.exit_code == 1
    assert f"{edited}: exists with other content (--force replaces it)" in refused.output
    assert "limit: 5" in edited.read_text(encoding="utf-8")
    forced = import_runs(str(csv), "--out", str(out), "--force")
    assert forced.exit_code == 0 and "replaced" in forced.output
    assert "limit: 5" not in edited.read_text(encoding="utf-8")


# Each: (row index, text replaced, replacement, line, column, what the message says).
REFUSALS = {
    "unknown model": (
        1,
        "Qwen2-VL-2B-Instruct",
        "Qwen2-VL-7B-Instruct",
        "column model_name: unknown model 'Qwen2-VL-7B-Instruct'; known models: ",
    ),
    "unknown task": (
        1,
        ";VQA;",
        ";DocVQA;",
        "column task: unknown task 'DocVQA'; known tasks: VQA (vqa), "
        "RPOClassification (classification), RPOSorting (ordering)",
    ),
    "missing dataset folder": (
        1,
        "demo_mini;",
        "demo_maxi;",
        "column dataset: dataset folder not found: ",
    ),
    "bad list literal": (
        1,
        "['CER']",
        "['CER'",
        "column metrics: not a Python list literal: \"['CER'\" (expected e.g. ['CER'])",
    ),
    "bad aggregators literal": (
        1,
        "\"['by_id',",
        '"[by_id,',
        "column metrics_aggregators: not a Python list literal",
    ),
    "unknown metric": (1, "['CER']", "['CERR']", "column metrics: unknown metric 'CERR'; known: "),
    "metric of another kind": (
        4,
        "'kendall_tau',",
        "'CER',",
        "column metrics: 'CER' (cer) does not fit ordering tasks (it fits: vqa, ocr)",
    ),
    "missing system prompt": (
        3,
        "short_answer.txt",
        "long_answer.txt",
        "column system_prompt: file not found: ",
    ),
    "missing prompt collection": (
        0,
        "Qwen2-VL-2B_demo_mini.csv",
        "Qwen2-VL-7B_demo_mini.csv",
        "column prompt_collection: file not found: ",
    ),
    "filter nothing has": (
        3,
        ";passport;",
        ";snils;",
        "column filter_doc_class: no sample of dataset 'demo_mini' has doc_class 'snils'; "
        "its doc_class values: invoice, passport",
    ),
    "unknown framework": (1, "Hugging Face", "ONNX", "column framework: unknown framework 'ONNX'"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_row_that_cannot_be_mapped_is_refused_naming_line_and_column(
    tmp_path: Path, case: str
) -> None:
    index, old, new, message = REFUSALS[case]
    rows = list(fx.USER_CONFIG_ROWS)
    assert old in rows[index]
    rows[index] = rows[index].replace(old, new, 1)
    csv = fx.original_repository(tmp_path / "repo", rows)
    out = tmp_path / "out"
    result = import_runs(str(csv), "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{csv}:{index + 2}: {message}" in result.output
    assert not out.exists()  # nothing written


def test_every_refused_row_is_named_at_once(tmp_path: Path) -> None:
    rows = list(fx.USER_CONFIG_ROWS)
    rows[0] = rows[0].replace(";VQA;", ";OCR;")
    rows[2] = rows[2].replace("Qwen2.5-VL-3B-Instruct", "LLaVA-1.5-7B")
    csv = fx.original_repository(tmp_path / "repo", rows)
    result = import_runs(str(csv), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert f"{csv}:2: column task: unknown task 'OCR'" in result.output
    assert f"{csv}:4: column model_name: unknown model 'LLaVA-1.5-7B'" in result.output
    assert not (tmp_path / "out").exists()
