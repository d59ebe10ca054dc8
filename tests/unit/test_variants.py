"""Variants: registry entries with ``base:``, and run blocks with ``sweep:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workdir, write_runs, write_yaml
from vlmhyperbench.config import ConfigError, load_experiment


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path / "wd")


def load(workdir: Path):
    return load_experiment(config_path=workdir / "config" / "config.yaml", workdir=workdir)


# ----------------------------------------------------------------------------- base: entries
def test_a_registry_variant_is_its_base_with_what_it_changes(workdir: Path) -> None:
    models = workdir / "config" / "models"
    write_yaml(models / "tess-psm6.yaml", {"base": "tesseract-rus", "engine_args": {"psm": 6}})
    write_yaml(
        models / "tess-psm6-rus.yaml", {"base": "tess-psm6", "engine_args": {"languages": "rus"}}
    )
    registry = load(workdir).registry
    base, child = registry.models["tesseract-rus"], registry.models["tess-psm6-rus"]
    assert child.base == "tess-psm6" and child.name == "tess-psm6-rus"
    assert (child.engine_args.psm, child.engine_args.languages) == (6, "rus")
    assert child.engine_args.oem == base.engine_args.oem == 1  # deep-merged from the base
    assert child.generation == base.generation and child.source == base.source
    assert registry.models["tess-psm6"].engine_args.languages == "rus+eng"


def test_a_cycle_of_bases_is_refused_naming_the_files(workdir: Path) -> None:
    models = workdir / "config" / "models"
    write_yaml(models / "a.yaml", {"base": "b"})
    write_yaml(models / "b.yaml", {"base": "a"})
    with pytest.raises(ConfigError) as err:
        load(workdir)
    message = str(err.value)
    assert "a cycle of bases" in message
    assert f"{models / 'a.yaml'} -> {models / 'b.yaml'} -> {models / 'a.yaml'}" in message


def test_an_unknown_base_names_the_file_and_the_key(workdir: Path) -> None:
    path = workdir / "config" / "tasks" / "ocr-short.yaml"
    write_yaml(path, {"base": "demo_orc", "prompt": {"system": "Коротко."}})
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: base: unknown task 'demo_orc'" in str(err.value)


def test_a_variant_is_validated_like_any_entry(workdir: Path) -> None:
    path = workdir / "config" / "models" / "tess-bad.yaml"
    write_yaml(path, {"base": "tesseract-rus", "engine_args": {"psm": 99}})
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: engine_args.psm: must be <= 13, got 99" in str(err.value)


# ----------------------------------------------------------------------------- sweeps
TESS = {"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}


def test_a_sweep_is_the_grid_named_after_what_differs_from_the_entry(workdir: Path) -> None:
    sweep = {
        "models.engine_args.psm": [3, 4, 6],
        "models.engine_args.languages": ["rus", "rus+eng"],
    }
    write_runs(workdir, {**TESS, "sweep": sweep})
    experiment = load(workdir)
    assert sorted(experiment.models) == [
        "tesseract-rus",  # psm 3, rus+eng: the registry entry itself
        "tesseract-rus@languages=rus",
        "tesseract-rus@languages=rus,psm=4",
        "tesseract-rus@languages=rus,psm=6",
        "tesseract-rus@psm=4",
        "tesseract-rus@psm=6",
    ]
    variant = experiment.models["tesseract-rus@languages=rus,psm=6"]
    assert (variant.engine_args.psm, variant.engine_args.languages) == (6, "rus")
    assert variant.name == "tesseract-rus"  # the entry it runs: the wrapper serves that name
    # engine settings: a server each
    assert sorted(experiment.servers) == sorted(experiment.models)
    document = experiment.variants_document()
    assert document["variants"]["tesseract-rus@psm=4"] == {
        "base": "tesseract-rus",
        "group": "tesseract-rus",
        "server": "tesseract-rus@psm=4",
        "settings": {"models.engine_args.psm": 4},
        "swept": {"models.engine_args.psm": "4", "models.engine_args.languages": "rus+eng"},
        "cost": {"usd_per_hour": 0.1},  # the registry entry's example price
        "endpoint": False,
    }
    assert document["variants"]["tesseract-rus"]["swept"]["models.engine_args.psm"] == "3"
    assert document["sweeps"] == [
        {
            "block": "runs[0]",
            "base": "tesseract-rus",
            "tasks": ["demo_ocr"],
            "axes": {
                "models.engine_args.psm": ["3", "4", "6"],
                "models.engine_args.languages": ["rus", "rus+eng"],
            },
        }
    ]


def test_per_request_settings_share_a_server_and_a_registry_variant_shares_its_bases(
    workdir: Path,
) -> None:
    write_yaml(
        workdir / "config" / "models" / "llava-long.yaml",
        {"base": "tiny-llava", "generation": {"max_tokens": 32}},
    )
    prompts = {"short": "Коротко.", "long": "Ответь значением поля, без пояснений."}
    write_runs(
        workdir,
        {"models": ["tiny-llava", "llava-long"], "tasks": ["demo_field_vqa"]},
        {
            "models": ["tiny-llava"],
            "tasks": ["demo_field_vqa"],
            "sweep": {"tasks.prompt.system": prompts},
        },
    )
    experiment = load(workdir)
    assert list(experiment.servers) == ["tiny-llava"]
    assert {experiment.server_of(m) for m in experiment.models} == {"tiny-llava"}
    document = experiment.variants_document()["variants"]
    assert document["llava-long"]["base"] == "tiny-llava"
    assert document["llava-long"]["group"] == "tiny-llava"
    assert document["llava-long"]["settings"] == {"models.generation.max_tokens": 32}
    system = experiment.pair("tiny-llava@system=short", "demo_field_vqa").task_entry.prompt.system
    assert system == "Коротко."


def test_the_same_settings_under_other_labels_are_one_variant(workdir: Path) -> None:
    write_runs(
        workdir,
        {**TESS, "sweep": {"models.engine_args.psm": {"sparse": 11, "block": 6}}},
        {**TESS, "sweep": {"models.engine_args.psm": [6, 11]}},
    )
    assert sorted(load(workdir).models) == ["tesseract-rus@psm=block", "tesseract-rus@psm=sparse"]


def test_one_label_for_two_settings_is_refused(workdir: Path) -> None:
    path = write_runs(
        workdir,
        {**TESS, "sweep": {"models.engine_args.psm": {"x": 11}}},
        {**TESS, "sweep": {"models.engine_args.psm": {"x": 6}}},
    )
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert (
        f"{path}: runs[1].sweep: the variant 'tesseract-rus@psm=x' stands for other settings "
        "in runs[0]"
    ) in str(err.value)


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        (
            {"models.engine_args.pms": [1]},
            "runs[0].sweep.models.engine_args.pms: no model entry has it: unknown setting "
            "'engine_args.pms'; known keys at engine_args:",
        ),
        (
            {"models.engine_args.psm": [3, "four"]},
            "runs[0].sweep.models.engine_args.psm[1]: tesseract-rus: expected int, got 'four'",
        ),
        (
            {"tasks.generation.max_tokens": {"few": 8, "none": 0}},
            "runs[0].sweep.tasks.generation.max_tokens.none: demo_ocr: must be > 0, got 0",
        ),
        (
            {"tasks.dataset": ["demo_docs_vqa"]},
            "runs[0].sweep.tasks.dataset: a sweep cannot change task entries' dataset",
        ),
        (
            {"tasks.prompt.system": ["Перепиши текст."]},
            'runs[0].sweep.tasks.prompt.system[0]: "Перепиши текст." cannot be part of a '
            "variant's name; give the values labels",
        ),
        (
            {"models.generation.max_tokens": [8, 16]},
            "runs[0].sweep.models.generation.max_tokens: changes nothing: the block's tasks set "
            "generation.max_tokens themselves (demo_ocr)",
        ),
        ({"models": [1]}, "runs[0].sweep.models: 'models' does not match ^(models|tasks)"),
    ],
)
def test_a_bad_sweep_is_refused_naming_block_and_key(
    workdir: Path, sweep: dict, expected: str
) -> None:
    path = write_runs(workdir, {**TESS, "sweep": sweep})
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: {expected}" in str(err.value)


def test_a_block_still_cannot_override_an_engine_setting_and_says_to_sweep_it(
    workdir: Path,
) -> None:
    override = {"models": {"tesseract-rus": {"engine_args": {"psm": 6}}}}
    path = write_runs(workdir, {**TESS, "overrides": override})
    with pytest.raises(ConfigError) as err:
        load(workdir)
    message = str(err.value)
    assert f"{path}: runs[0].overrides.models.tesseract-rus.engine_args: a run block" in message
    assert "sweep it to run a variant" in message


def test_validate_prints_the_variants_their_servers_and_the_sweeps(workdir: Path) -> None:
    from typer.testing import CliRunner

    from vlmhyperbench.cli.main import app

    prompts = {"short": "Коротко.", "long": "Ответь значением поля."}
    path = write_runs(
        workdir,
        {
            "models": ["tiny-llava"],
            "tasks": ["demo_field_vqa"],
            "sweep": {"tasks.prompt.system": prompts},
        },
        {**TESS, "sweep": {"models.engine_args.psm": [4, 6]}},
    )
    result = CliRunner().invoke(
        app, ["validate", "--config", str(path)], env={"COLUMNS": "250"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "run matrix: 4 (model, task) pairs" in result.output
    assert "tiny-llava@system=short (hf, server tiny-llava)" in result.output
    assert "tesseract-rus@psm=6 (tesseract)" in result.output
    assert "runs[0]: tiny-llava swept over tasks.prompt.system (2)" in result.output
    assert "3 server(s): tiny-llava, tesseract-rus@psm=4, tesseract-rus@psm=6" in result.output


def test_processor_arguments_get_a_server_each_unless_the_backend_takes_them_per_request(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vlmhyperbench.pipeline import backend_specs
    from vlmhyperbench.pipeline.backend_specs import BackendSpec, per_request_body

    model = "qwen2.5-vl-3b-instruct"
    sweep = {"models.engine_args.mm_processor_kwargs.max_pixels": [401408, 1003520]}
    write_runs(workdir, {"models": [model], "tasks": ["demo_field_vqa"], "sweep": sweep})
    # vLLM sizes its encoder cache from the start-up arguments: a server per value
    assert sorted(load(workdir).servers) == [model, f"{model}@max_pixels=401408"]

    # a backend that takes them per request: one server, started without them, and each
    # request carries its variant's
    per_request = frozenset({"generation", "engine_args.mm_processor_kwargs"})
    monkeypatch.setitem(backend_specs.BACKENDS, "vllm", BackendSpec(per_request=per_request))
    experiment = load(workdir)
    assert list(experiment.servers) == [model]
    assert experiment.servers[model].engine_args.mm_processor_kwargs is None
    small = experiment.models[f"{model}@max_pixels=401408"]
    assert per_request_body(small) == {"mm_processor_kwargs": {"max_pixels": 401408}}
