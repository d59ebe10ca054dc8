"""Every task kind, on datasets imported from the original formats, through a real snakemake run
with a tiny model; then a changed prompt collection re-runs only its task."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from tests.fixtures import original_formats as fx
from tests.helpers import job_counts, make_workdir, score_jobs, snakemake, write_yaml
from tests.integration.test_resume import logged_since

pytestmark = pytest.mark.slow

MODEL = "tiny-llava"
LABELS = ["passport", "snils", "invoice"]
TASKS = {
    "t_vqa": {
        "kind": "vqa",
        "dataset": "imp_vqa",
        "metrics": ["anls", "exact_match"],
        "prompt": {"collection": "prompts_vqa.csv", "system_file": "system.txt"},
    },
    "t_cls": {
        "kind": "classification",
        "dataset": "imp_cls",
        "labels": LABELS,
        "metrics": ["accuracy"],
        "prompt": {"user": "Какой это документ? {{ labels | join(', ') }}"},
    },
    "t_ext": {
        "kind": "extraction",
        "dataset": "imp_ext",
        "metrics": ["json_validity", "field_accuracy"],
        "prompt": {"user": "Извлеки поля {{ fields | join(', ') }}. Ответь JSON."},
    },
    "t_ocr": {
        "kind": "ocr",
        "dataset": "demo_ocr_small",
        "metrics": ["cer", "wer"],
        "prompt": {"user": "Перепиши весь текст страницы."},
        "generation": {"max_tokens": 16},
    },
    "t_order": {
        "kind": "ordering",
        "dataset": "imp_rpo",
        "metrics": ["kendall_tau", "positional_accuracy"],
        "prompt": {"user": "Расположи страницы по порядку. Ответь номерами через запятую."},
    },
    "t_rpo_cls": {
        "kind": "classification",
        "dataset": "imp_rpo_pages",
        "labels": LABELS,
        "metrics": ["accuracy"],
        "prompt": {"user": "Класс страницы? {{ labels | join(', ') }}"},
    },
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kinds")
    sources = {
        "imp_vqa": ("vqa_csv", fx.vqa_csv(root / "src" / "vqa"), {}),
        "imp_cls": ("class_folders", fx.class_folders(root / "src" / "cls"), {}),
        "imp_ext": ("field_json", fx.field_json(root / "src" / "ext"), {"doc_class": "snils"}),
        "imp_rpo": ("multipage", fx.multipage(root / "src" / "rpo"), {}),
        "imp_rpo_pages": ("multipage", root / "src" / "rpo", {"kind": "classification"}),
    }
    workdir = make_workdir(root / "wd", models=[MODEL], tasks=list(TASKS))
    config = workdir / "config"
    for name, (format_, path, options) in sources.items():
        source = {"type": "import", "format": format_, "path": str(path), "options": options}
        write_yaml(config / "datasets" / f"{name}.yaml", {"source": source})
    write_yaml(
        config / "datasets" / "demo_ocr_small.yaml",
        {
            "source": {
                "type": "generated",
                "params": {"kind": "ocr", "per_class": 1, "subsets": ["clean"]},
            }
        },
    )
    for name, entry in TASKS.items():
        write_yaml(config / "tasks" / f"{name}.yaml", entry)
    fx.prompt_collection(config / "tasks" / "prompts_vqa.csv")
    (config / "tasks" / "system.txt").write_text(
        "Ты — система чтения документов.", encoding="utf-8"
    )
    snakemake(workdir)
    return workdir


def predictions(workdir: Path, task: str) -> list[dict]:
    path = workdir / "results" / "predictions" / MODEL / f"{task}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("task", list(TASKS))
def test_each_kind_is_predicted_and_scored(workdir: Path, task: str) -> None:
    manifest_dir = workdir / "data" / TASKS[task]["dataset"]
    expected = [
        json.loads(x)["id"] for x in (manifest_dir / "manifest.jsonl").read_text().splitlines()
    ]
    lines = predictions(workdir, task)
    assert [x["id"] for x in lines] == expected
    assert all(x["error"] is None and x["performance"]["prompt_tokens"] > 0 for x in lines), lines
    for metric in TASKS[task]["metrics"]:
        score = json.loads(
            (workdir / "results" / "scores" / MODEL / task / f"{metric}.json").read_text()
        )
        assert score["n"] == len(expected) and score["overall"]["value"] is not None


def test_ordering_requests_carry_every_page(workdir: Path) -> None:
    manifest = workdir / "data" / "imp_rpo" / "manifest.jsonl"
    samples = [json.loads(x) for x in manifest.read_text().splitlines()]
    by_id = {x["id"]: x for x in predictions(workdir, "t_order")}
    single = {x["id"]: x for x in predictions(workdir, "t_rpo_cls")}
    # three page images cost more prompt tokens than one: all images reached the model
    assert (
        by_id["b1"]["performance"]["prompt_tokens"]
        > single["b1-p1"]["performance"]["prompt_tokens"]
    )
    assert len(samples[0]["images"]) == 3


def test_prompt_collection_and_system_file_were_sent(workdir: Path) -> None:
    prompts = {x["id"]: x["prompt"] for x in predictions(workdir, "t_vqa")}
    assert prompts["0-1"] == {
        "system": "Ты — система чтения документов.",
        "user": "Назови фамилию владельца паспорта.",
    }
    assert prompts["1"]["user"] == "Какой ИНН у продавца? Ответь цифрами."
    assert prompts["0-2"]["user"] == "Какая дата рождения?"  # no entry: the question itself


def test_changing_a_prompt_collection_reruns_only_its_task(workdir: Path) -> None:
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
    fx.prompt_collection(
        workdir / "config" / "tasks" / "prompts_vqa.csv",
        rows=["Фамилия из паспорта?;passport surname;0", "ИНН продавца?;invoice inn;0"],
    )
    dry = snakemake(workdir, "-n")
    assert job_counts(dry.stdout) == {
        f"serve_{MODEL}": 1,  # the model's server, for this one task
        f"predict_{MODEL}": 1,
        "score": 2,
        "summarize": 1,
        "report": 1,
        "all": 1,
    }
    assert score_jobs(dry.stdout) == {"anls": 1, "exact_match": 1}
    assert "results/predictions/tiny-llava/t_vqa.jsonl" in dry.stdout


def test_unknown_doc_class_in_the_collection_fails_before_sending(workdir: Path) -> None:
    fx.prompt_collection(
        workdir / "config" / "tasks" / "prompts_vqa.csv", rows=["x;pasport surname;0"]
    )
    message = "prompts_vqa.csv:2: unknown doc_class 'pasport' for dataset 'imp_vqa'"
    target = f"results/predictions/{MODEL}/t_vqa.jsonl"
    # The dataset exists: caught while parsing, before any job.
    result = snakemake(workdir, target, check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    # The dataset is made by this very run: caught by the predict job before it sends anything.
    shutil.rmtree(workdir / "data" / "imp_vqa")
    serve_log = workdir / "logs" / "serve" / f"{MODEL}.log"
    started = datetime.now()
    result = snakemake(workdir, target, check=False)
    assert result.returncode != 0
    predict_log = workdir / "logs" / "predict" / MODEL / "t_vqa.log"
    assert message in predict_log.read_text(encoding="utf-8")
    serve_said = "\n".join(logged_since(serve_log, started))
    assert "starting the wrapper" not in serve_said, "no wrapper starts for a bad collection"
