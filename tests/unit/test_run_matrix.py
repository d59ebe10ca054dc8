"""The run matrix (``runs:`` blocks instead of the full cross product), the backend task-kind
capability, and the pre-flight check of what a backend needs on the machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.helpers import REPO, make_workdir, read_yaml, write_yaml
from vlmhyperbench.cli import app
from vlmhyperbench.config import ConfigError, load_experiment
from vlmhyperbench.pipeline.backend_specs import BACKENDS, preflight_problems
from vlmhyperbench.pipeline.plan import Plan

VLMS = ["tiny-llava", "tiny-idefics3"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path / "wd")


def configure(workdir: Path, **changes: Any) -> Path:
    """Replace top-level keys of the workdir's config (None removes the key)."""
    path = workdir / "config" / "config.yaml"
    payload = read_yaml(path)
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    write_yaml(path, payload)
    return path


def load(workdir: Path):
    return load_experiment(config_path=workdir / "config" / "config.yaml", workdir=workdir)


def pairs(experiment) -> set[tuple[str, str]]:
    return {(p.model, p.task) for p in experiment.pairs}


def test_repo_demo_runs_vlms_on_every_task_and_tesseract_on_ocr_only() -> None:
    experiment = load_experiment(config_path=REPO / "config" / "config.yaml", workdir=REPO)
    tasks = list(experiment.tasks)
    assert len(tasks) == 5
    # Tesseract as a sweep of psm × languages: 4 variants, the registry entry among them
    variants = {
        "tesseract-rus",
        "tesseract-rus@languages=rus",
        "tesseract-rus@psm=6",
        "tesseract-rus@languages=rus,psm=6",
    }
    assert pairs(experiment) == {(m, t) for m in VLMS for t in tasks} | {
        (v, "demo_ocr") for v in variants
    }
    assert experiment.tasks_of("tesseract-rus") == ["demo_ocr"]
    tesseract = experiment.models["tesseract-rus"]
    assert tesseract.backend == "tesseract"
    assert tesseract.engine_args.languages == "rus+eng"
    assert set(experiment.servers) == {*VLMS, *variants}  # an engine setting: a server each


def test_runs_are_a_union_and_plan_exactly_the_listed_pairs(workdir: Path) -> None:
    configure(
        workdir,
        models=None,
        tasks=None,
        runs=[
            {"models": ["tiny-llava"], "tasks": ["demo_field_vqa", "demo_doc_class"]},
            {"models": ["tiny-idefics3", "tiny-llava"], "tasks": ["demo_doc_class"]},
        ],
    )
    experiment = load(workdir)
    expected = {
        ("tiny-llava", "demo_field_vqa"),
        ("tiny-llava", "demo_doc_class"),
        ("tiny-idefics3", "demo_doc_class"),
    }
    assert pairs(experiment) == expected  # the duplicate pair is merged
    assert experiment.tasks_of("tiny-idefics3") == ["demo_doc_class"]
    plan = Plan(experiment)
    assert sorted(plan.all_predictions()) == sorted(
        f"results/predictions/{m}/{t}.jsonl" for m, t in expected
    )
    metrics = {t: experiment.tasks[t].metrics for t in experiment.tasks}
    assert len(plan.all_scores()) == sum(len(metrics[t]) for _, t in expected)
    assert not any("tiny-idefics3/demo_field_vqa" in path for path in plan.all_scores())


def test_top_level_models_and_tasks_stay_one_block(workdir: Path) -> None:
    configure(workdir, runs=[{"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}])
    experiment = load(workdir)
    assert pairs(experiment) == {
        *((m, t) for m in VLMS for t in ("demo_field_vqa", "demo_doc_class")),
        ("tesseract-rus", "demo_ocr"),
    }


def test_tesseract_on_a_vqa_task_is_refused_naming_key_model_and_kind(workdir: Path) -> None:
    path = configure(
        workdir,
        runs=[{"models": ["tesseract-rus"], "tasks": ["demo_ocr", "demo_field_vqa"]}],
    )
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert str(err.value) == (
        f"{path}: runs[0].tasks[1]: model 'tesseract-rus' (runs[0].models[0], backend "
        "tesseract) cannot serve task 'demo_field_vqa' of kind 'vqa': the tesseract backend "
        "serves ocr tasks"
    )


def test_tesseract_in_the_top_level_cross_product_is_refused(workdir: Path) -> None:
    configure(workdir, models=["tiny-llava", "tesseract-rus"])
    with pytest.raises(ConfigError) as err:
        load(workdir)
    message = str(err.value)
    assert ": tasks[0]: model 'tesseract-rus' (models[1], backend tesseract)" in message
    assert "'demo_doc_class' of kind 'classification'" in message


def test_same_pair_with_different_settings_names_both_blocks(workdir: Path) -> None:
    path = configure(
        workdir,
        models=None,
        tasks=None,
        runs=[
            {"models": ["tiny-llava"], "tasks": ["demo_field_vqa"]},
            {"models": ["tiny-idefics3"], "tasks": ["demo_doc_class"]},
            {"models": ["tiny-llava"], "tasks": ["demo_field_vqa"], "limit": 3},
        ],
    )
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert str(err.value).startswith(
        f"{path}: (tiny-llava, demo_field_vqa) is in runs[0] and in runs[2] with different settings"
    )


def test_block_limit_and_overrides_apply_to_their_pairs_only(workdir: Path) -> None:
    configure(
        workdir,
        models=None,
        tasks=None,
        runs=[
            {"models": ["tiny-llava"], "tasks": ["demo_field_vqa"]},
            {
                "models": ["tiny-idefics3"],
                "tasks": ["demo_field_vqa"],
                "limit": 2,
                "overrides": {"models": {"tiny-idefics3": {"generation": {"max_tokens": 5}}}},
            },
        ],
    )
    experiment = load(workdir)
    narrowed = experiment.for_pair("tiny-idefics3", "demo_field_vqa")
    assert narrowed.registry.tasks["demo_field_vqa"].limit == 2
    assert narrowed.registry.models["tiny-idefics3"].generation.max_tokens == 5
    assert (
        experiment.for_pair("tiny-llava", "demo_field_vqa").registry.tasks["demo_field_vqa"].limit
        is None
    )
    assert experiment.registry.models["tiny-idefics3"].generation.max_tokens == 16
    plan = Plan(experiment)
    # the block's settings reach the fingerprint: changing them re-runs that pair only
    assert plan.predict_fingerprint("tiny-idefics3", "demo_field_vqa") != Plan(
        load_experiment(
            {**read_yaml(workdir / "config" / "config.yaml"), "runs": [
                {"models": ["tiny-llava"], "tasks": ["demo_field_vqa"]},
                {"models": ["tiny-idefics3"], "tasks": ["demo_field_vqa"]},
            ]},
            config_path=workdir / "config" / "config.yaml",
            workdir=workdir,
        )
    ).predict_fingerprint("tiny-idefics3", "demo_field_vqa")  # fmt: skip


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"models": ["tiny-lava"], "tasks": ["demo_ocr"]},
            "runs[0].models[0]: unknown model 'tiny-lava'",
        ),
        (
            {"models": ["tiny-llava"], "tasks": ["demo_ocr", "demo_ocr"]},
            "runs[0].tasks: listed more than once: ['demo_ocr']",
        ),
        (
            {
                "models": ["tiny-llava"],
                "tasks": ["demo_ocr"],
                "overrides": {"tasks": {"demo_doc_class": {"limit": 1}}},
            },
            "runs[0].overrides.tasks.demo_doc_class: 'demo_doc_class' is not among this "
            "block's tasks",
        ),
        (
            {
                "models": ["tiny-llava"],
                "tasks": ["demo_ocr"],
                "overrides": {"models": {"tiny-llava": {"resources": {"threads": 2}}}},
            },
            "runs[0].overrides.models.tiny-llava.resources: a run block cannot change resources",
        ),
        (
            {
                "models": ["tiny-llava"],
                "tasks": ["demo_ocr"],
                "overrides": {"tasks": {"demo_ocr": {"generation": {"max_tokens": "many"}}}},
            },
            "runs[0].overrides.tasks.demo_ocr.generation.max_tokens: expected int, got 'many'",
        ),
    ],
    ids=["unknown-model", "duplicate-task", "override-outside-block", "rule-key", "bad-value"],
)
def test_bad_blocks_name_the_config_key(workdir: Path, block: dict, expected: str) -> None:
    path = configure(workdir, models=None, tasks=None, runs=[block])
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: {expected}" in str(err.value)


def test_models_without_tasks_or_nothing_to_run_is_an_error(workdir: Path) -> None:
    configure(workdir, tasks=None)
    with pytest.raises(ConfigError, match="models is given without tasks"):
        load(workdir)
    configure(workdir, models=None)
    with pytest.raises(ConfigError, match="nothing to run: give models and tasks, or runs"):
        load(workdir)


def test_validate_prints_the_matrix(workdir: Path) -> None:
    path = configure(workdir, runs=[{"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}])
    result = CliRunner().invoke(
        app, ["validate", "--config", str(path)], env={"COLUMNS": "250"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "run matrix: 5 (model, task) pairs" in result.output
    row = next(line for line in result.output.splitlines() if "tesseract-rus (tesseract)" in line)
    assert row.count("·") == 2 and row.count("✓") == 1
    assert "runs[0]" in row
    assert "cannot run it yet" not in result.output


def test_validate_warns_when_the_machine_lacks_tesseract(workdir: Path, tmp_path: Path) -> None:
    path = configure(
        workdir,
        runs=[{"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}],
        overrides={
            **read_yaml(workdir / "config" / "config.yaml")["overrides"],
            "models": {"tesseract-rus": {"source": {"path": str(tmp_path / "none")}}},
        },
    )
    result = CliRunner().invoke(
        app, ["validate", "--config", str(path)], env={"COLUMNS": "250"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "this machine cannot run it yet: model 'tesseract-rus'" in result.output
    assert "apt-get install tesseract-ocr tesseract-ocr-rus" in result.output


def test_capabilities_mirror_the_wrapper_backends() -> None:
    pytest.importorskip("torch")
    from vlmhb_wrapper.backends import resolve_backend

    for name, spec in BACKENDS.items():
        declared = resolve_backend(name).task_kinds
        assert spec.task_kinds == (declared if declared is not None else spec.task_kinds), name
        if declared is None:
            assert spec.task_kinds == frozenset(
                {"vqa", "classification", "extraction", "ocr", "ordering"}
            )
        # what a variant may change without a server of its own is what the backend takes
        if "engine_args.mm_processor_kwargs" in spec.per_request:
            assert resolve_backend(name).supports_mm_processor_kwargs, name


def test_preflight_names_the_debian_packages(workdir: Path, tmp_path: Path) -> None:
    configure(
        workdir,
        runs=[{"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}],
        overrides={
            **read_yaml(workdir / "config" / "config.yaml")["overrides"],
            "models": {"tesseract-rus": {"source": {"path": str(tmp_path / "none")}}},
        },
    )
    experiment = load(workdir)
    problems = preflight_problems(list(experiment.models.values()))
    assert problems == [
        f"model 'tesseract-rus' (backend tesseract) needs rus.traineddata, eng.traineddata in "
        f"{tmp_path / 'none'}, which is missing: Tesseract or its language data is not "
        "installed. On Debian/Ubuntu: apt-get install tesseract-ocr tesseract-ocr-rus "
        "tesseract-ocr-eng"
    ]
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "eng.traineddata").write_bytes(b"x")
    (problem,) = preflight_problems(list(experiment.models.values()))
    assert "needs rus.traineddata in" in problem and "does not have it" in problem
    assert "(make demo installs it)" in problem  # both packages are in debian_packages.txt
    assert problem.endswith("apt-get install tesseract-ocr tesseract-ocr-rus")
