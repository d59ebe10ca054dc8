"""Config and registry validation: every bad case names the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO, make_workdir, read_yaml, snakemake, write_yaml
from vlmhyperbench.config import ConfigError, json_schema, load_experiment
from vlmhyperbench.config.errors import Problem, validated
from vlmhyperbench.config.schema import ExperimentConfig
from vlmhyperbench.config.sources import ConfigSources


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path / "wd")


def load(workdir: Path):
    return load_experiment(config_path=workdir / "config" / "config.yaml", workdir=workdir)


def edit(path: Path, **changes) -> None:
    payload = read_yaml(path)
    payload.update(changes)
    write_yaml(path, payload)


def test_repo_config_and_every_registry_entry_validate() -> None:
    experiment = load_experiment(config_path=REPO / "config" / "config.yaml", workdir=REPO)
    registry = experiment.registry
    assert {
        "tiny-llava",
        "tiny-idefics3",
        "qwen2.5-vl-3b-instruct",
        "qwen2.5-vl-7b-instruct",
        "qwen2-vl-2b-instruct",
        "smolvlm-instruct",
    } <= set(registry.models)
    qwen = registry.models["qwen2.5-vl-3b-instruct"]
    assert qwen.backend == "vllm" and qwen.source.id == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert len(qwen.source.revision) == 40
    assert qwen.engine_args.max_model_len == 8192 and qwen.resources.gpu == 1
    assert len(experiment.metrics) >= 3


def test_wrong_type_names_file_and_key_path(workdir: Path) -> None:
    path = workdir / "config" / "models" / "qwen2.5-vl-3b-instruct.yaml"
    payload = read_yaml(path)
    payload["engine_args"]["max_model_len"] = "lots"
    write_yaml(path, payload)
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: engine_args.max_model_len: expected int, got 'lots'" in str(err.value)


def test_unknown_key_is_an_error(workdir: Path) -> None:
    path = workdir / "config" / "models" / "tiny-llava.yaml"
    payload = read_yaml(path)
    payload["engine_args"]["max_model_lenght"] = 10
    write_yaml(path, payload)
    with pytest.raises(
        ConfigError, match=r"tiny-llava.yaml: engine_args.max_model_lenght: unknown key"
    ):
        load(workdir)


def test_unknown_model_lists_known_ones(workdir: Path) -> None:
    edit(workdir / "config" / "config.yaml", models=["tiny-llava", "gpt-9"])
    with pytest.raises(ConfigError) as err:
        load(workdir)
    message = str(err.value)
    assert "config.yaml: models[1]: unknown model 'gpt-9'" in message
    assert "tiny-idefics3" in message and "qwen2.5-vl-7b-instruct" in message


def test_task_with_unknown_dataset(workdir: Path) -> None:
    path = workdir / "config" / "tasks" / "demo_field_vqa.yaml"
    edit(path, dataset="nope")
    with pytest.raises(
        ConfigError,
        match=r"demo_field_vqa.yaml: dataset: unknown dataset 'nope'; "
        r"known datasets: demo_bundles, demo_docs_classification, demo_docs_extraction",
    ):
        load(workdir)


def test_unknown_metric_and_metric_of_the_wrong_kind(workdir: Path) -> None:
    path = workdir / "config" / "tasks" / "demo_doc_class.yaml"
    edit(path, metrics=["accuracy", "bleu9", "cer"])
    with pytest.raises(ConfigError) as err:
        load(workdir)
    message = str(err.value)
    assert (
        "demo_doc_class.yaml: metrics[1]: unknown metric 'bleu9'; known metrics: accuracy, anls"
        in message
    )
    assert (
        "demo_doc_class.yaml: metrics[2]: metric 'cer' does not fit a 'classification' task"
        in message
    )


def test_bad_yaml_names_the_line(workdir: Path) -> None:
    path = workdir / "config" / "metrics" / "anls.yaml"
    path.write_text("implementation: [unclosed\nparams: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"anls.yaml:\d+: not valid YAML"):
        load(workdir)


def test_name_must_match_file(workdir: Path) -> None:
    edit(workdir / "config" / "metrics" / "anls.yaml", name="anls2")
    with pytest.raises(ConfigError, match=r"anls.yaml: name: 'anls2' differs from the file name"):
        load(workdir)


def test_bad_override_names_the_entry(workdir: Path) -> None:
    config_path = workdir / "config" / "config.yaml"
    payload = read_yaml(config_path)
    payload["overrides"]["models"] = {"tiny-llava": {"generation": {"max_tokens": "many"}}}
    write_yaml(config_path, payload)
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert "tiny-llava.yaml: generation.max_tokens: expected int, got 'many'" in str(err.value)
    assert "overrides.models.tiny-llava" in str(err.value)


def test_override_of_unknown_entry(workdir: Path) -> None:
    config_path = workdir / "config" / "config.yaml"
    payload = read_yaml(config_path)
    payload["overrides"]["tasks"] = {"no_such_task": {"limit": 1}}
    write_yaml(config_path, payload)
    with pytest.raises(ConfigError, match=r"overrides.tasks.no_such_task: unknown task"):
        load(workdir)


def test_prompt_template_syntax_error_is_caught_at_parse_time(workdir: Path) -> None:
    path = workdir / "config" / "tasks" / "demo_field_vqa.yaml"
    payload = read_yaml(path)
    payload["prompt"]["user"] = "{{ question "
    write_yaml(path, payload)
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "demo_field_vqa.yaml: prompt.user: template error" in result.stderr + result.stdout


def test_snakemake_stops_before_any_job_on_a_bad_config(workdir: Path) -> None:
    path = workdir / "config" / "models" / "tiny-llava.yaml"
    payload = read_yaml(path)
    payload["resources"]["mem_mb"] = "big"
    write_yaml(path, payload)
    result = snakemake(workdir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "tiny-llava.yaml: resources.mem_mb: expected int, got 'big'" in output
    assert not (workdir / "results").exists() and not (workdir / "data").exists()


def test_snakemake_schema_validation_rejects_unknown_top_level_key(workdir: Path) -> None:
    edit(workdir / "config" / "config.yaml", modles=["tiny-llava"])
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "modles" in result.stdout + result.stderr


# --- metric implementations are resolved at validation, before any job -----------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"implementation": "vlmhyperbench.metrics.txet:anls"},
            "anls.yaml: implementation: 'vlmhyperbench.metrics.txet:anls': cannot import module "
            "'vlmhyperbench.metrics.txet'",
        ),
        (
            {"implementation": "vlmhyperbench.metrics.text:anlss"},
            "anls.yaml: implementation: 'vlmhyperbench.metrics.text:anlss': module "
            "'vlmhyperbench.metrics.text' has no attribute 'anlss'",
        ),
        (
            {"implementation": "no_such_plugin_metric"},
            "anls.yaml: implementation: 'no_such_plugin_metric': no entry point of that name",
        ),
        (
            {"aggregate": "vlmhyperbench.metrics.text:corpus_rate"},
            "anls.yaml: aggregate: 'vlmhyperbench.metrics.text:corpus_rate': module "
            "'vlmhyperbench.metrics.text' has no attribute 'corpus_rate'",
        ),
        (
            {"params": {"thresold": 0.5}},
            "anls.yaml: params.thresold: vlmhyperbench.metrics.text:anls takes no parameter "
            "'thresold' (it takes: threshold)",
        ),
    ],
)
def test_metric_typo_names_the_registry_file_and_key(
    workdir: Path, changes: dict, expected: str
) -> None:
    edit(workdir / "config" / "metrics" / "anls.yaml", **changes)
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert expected in str(err.value)


def test_metric_typo_stops_validate_and_snakemake_before_any_job(workdir: Path) -> None:
    import subprocess
    import sys

    path = workdir / "config" / "metrics" / "cer.yaml"
    edit(path, params={"clip": True, "lowercsae": True})
    expected = f"{path}: params.lowercsae: vlmhyperbench.metrics.text:cer takes no parameter"
    validate = subprocess.run(
        [sys.executable, "-m", "vlmhyperbench.cli", "validate"],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    assert validate.returncode != 0
    assert expected.replace(f"{workdir}/", "") in validate.stdout + validate.stderr
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "cer.yaml: params.lowercsae" in result.stdout + result.stderr
    assert not (workdir / "results").exists() and not (workdir / "data").exists()


# --- one source of truth: the pydantic models; problems carried as data -----------------------


def test_the_committed_json_schema_is_the_one_the_models_generate() -> None:
    committed = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert committed.read_text(encoding="utf-8") == json_schema.render(), (
        "regenerate it: python -m vlmhyperbench.config.json_schema "
        "workflow/schemas/config.schema.yaml"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"inference": {"concurrency": 0}},
        {"inference": {"concurrency": "4"}},
        {"scoring": {"bootstrap": -1}},
        {"colour": "blue"},
        {"models": []},
        {"runs": [{"models": ["tiny-llava"]}]},
        {"runs": [{"models": ["tiny-llava"], "tasks": ["demo_ocr"], "limit": 0}]},
    ],
)
def test_the_json_schema_and_the_models_refuse_the_same_config(change: dict) -> None:
    from jsonschema import Draft202012Validator

    schema = json_schema.config_schema()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    config = read_yaml(REPO / "config" / "config.yaml")
    assert not list(validator.iter_errors(config))
    validated(ExperimentConfig, config, "config.yaml")
    bad = {**config, **change}
    assert list(validator.iter_errors(bad))
    with pytest.raises(ConfigError):
        validated(ExperimentConfig, bad, "config.yaml")


def test_problems_are_data_and_located_names_the_layer_of_each_key(tmp_path: Path) -> None:
    default, other = tmp_path / "config.yaml", tmp_path / "other.yaml"
    write_yaml(default, {"models": ["a"], "tasks": ["b"], "scoring": {"bootstrap": "many"}})
    write_yaml(other, {"inference": {"concurrency": 0}})
    sources = ConfigSources.from_files([default, other], {"name": 7})
    merged = {
        "models": ["a"],
        "tasks": ["b"],
        "scoring": {"bootstrap": "many"},
        "inference": {"concurrency": 0},
        "name": 7,
    }
    with pytest.raises(ConfigError) as err:
        validated(ExperimentConfig, merged, sources.main)
    assert {p.file for p in err.value.problems} == {str(other)}  # the merged config, unlocated
    located = {p.loc: p for p in err.value.located(sources).problems}
    assert located[("scoring", "bootstrap")] == Problem(
        str(default), ("scoring", "bootstrap"), "expected int, got 'many'"
    )
    assert located[("inference", "concurrency")].file == str(other)
    assert str(located[("name",)]) == "--config: name: expected string, got 7"


def test_an_override_problem_names_the_layer_that_sets_the_override(tmp_path: Path) -> None:
    default, other = tmp_path / "config.yaml", tmp_path / "other.yaml"
    write_yaml(default, {"models": ["x"], "tasks": ["t"]})
    write_yaml(other, {"overrides": {"models": {"x": {"generation": {"max_tokens": "many"}}}}})
    sources = ConfigSources.from_files([default, other])
    problem = Problem(
        "config/models/x.yaml",
        ("generation", "max_tokens"),
        "expected int, got 'many'",
        override=("overrides", "models", "x"),
        override_file=sources.main,
    )
    (located,) = ConfigError([problem]).located(sources).problems
    assert located.file == "config/models/x.yaml"  # a registry file stays as it is
    assert str(located).endswith(f"(after overrides.models.x from {other})")
    plain = ConfigError("t.yaml: prompt.user: template error")  # a message, no problems
    assert plain.located(sources) is plain


def test_vlmhb_validate_refuses_a_number_written_as_a_string_as_snakemake_does(
    workdir: Path,
) -> None:
    edit(workdir / "config" / "config.yaml", inference={"concurrency": "4"})
    with pytest.raises(ConfigError) as err:
        load(workdir)
    (problem,) = err.value.problems
    assert problem.loc == ("inference", "concurrency")
    assert str(problem).endswith("config.yaml: inference.concurrency: expected int, got '4'")
