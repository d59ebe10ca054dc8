"""The perf: block in the run matrix: which pairs are load-tested, with which settings, and
the configs that are refused (naming the file and key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workdir, read_yaml, write_runs, write_yaml
from vlmhyperbench.config import ConfigError, load_experiment

LADDER = {"concurrency": [1, 2], "requests": 5, "slo": {"e2e_ms": 1000}}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path / "wd")


def load(workdir: Path):
    return load_experiment(config_path=workdir / "config" / "config.yaml", workdir=workdir)


def test_a_top_level_perf_applies_to_blocks_without_their_own(workdir: Path) -> None:
    path = write_runs(
        workdir,
        {"models": ["tiny-llava"], "tasks": ["demo_field_vqa", "demo_ocr"]},
        {"models": ["tesseract-rus"], "tasks": ["demo_ocr"], "perf": {"rates": [1.0]}},
        {"models": ["tiny-idefics3"], "tasks": ["demo_ocr"], "perf": False},
    )
    config = read_yaml(path)
    config["perf"] = LADDER
    write_yaml(path, config)
    experiment = load(workdir)
    assert experiment.perf_pairs() == [
        ("tiny-llava", "demo_field_vqa"), ("tiny-llava", "demo_ocr"), ("tesseract-rus", "demo_ocr"),
    ]  # fmt: skip
    assert experiment.perf[("tiny-llava", "demo_ocr")].concurrency == [1, 2]
    assert experiment.perf[("tesseract-rus", "demo_ocr")].rates == [1.0]
    document = experiment.variants_document()
    assert {"model": "tesseract-rus", "task": "demo_ocr"} in document["perf"]
    assert document["variants"]["tesseract-rus"]["cost"] == {"usd_per_hour": 0.1}


def test_a_pair_in_two_blocks_gets_the_perf_of_the_one_that_gives_it(workdir: Path) -> None:
    write_runs(
        workdir,
        {"models": ["tiny-llava"], "tasks": ["demo_field_vqa", "demo_ocr"]},
        {"models": ["tiny-llava"], "tasks": ["demo_ocr"], "perf": LADDER},
    )
    assert load(workdir).perf_pairs() == [("tiny-llava", "demo_ocr")]


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        (  # one pair, two different ladders
            [{"models": ["tiny-llava"], "tasks": ["demo_ocr"], "perf": LADDER},
             {"models": ["tiny-llava"], "tasks": ["demo_ocr"], "perf": {"concurrency": [4]}}],
            "runs[1].perf: (tiny-llava, demo_ocr) is load-tested by two blocks with different "
            "perf settings",
        ),
        (  # no ladder at all
            [{"models": ["tiny-llava"], "tasks": ["demo_ocr"], "perf": {"requests": 5}}],
            "runs[0].perf: give a concurrency ladder, a rates ladder, or both",
        ),
        (
            [{"models": ["tiny-llava"], "tasks": ["demo_ocr"],
              "perf": {"concurrency": [0], "slo": {"e2e_ms": 1}}}],
            "runs[0].perf.concurrency[0]: must be >= 1, got 0",
        ),
        (
            [{"models": ["tiny-llava"], "tasks": ["demo_ocr"],
              "perf": {"concurrency": [1], "percentile": 80}}],
            "runs[0].perf.percentile",
        ),
    ],
)  # fmt: skip
def test_bad_perf_blocks_are_refused_naming_file_and_key(
    workdir: Path, blocks: list[dict], expected: str
) -> None:
    path = write_runs(workdir, *blocks)
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: {expected}" in str(err.value)


def test_a_perf_block_of_api_models_only_is_refused(workdir: Path) -> None:
    models = workdir / "config" / "models"
    write_yaml(
        models / "api-vlm.yaml",
        {"backend": "openai", "source": {"type": "hub", "id": "x/y"},
         "endpoint": {"base_url": "http://127.0.0.1:9/v1"},
         "cost": {"usd_per_1m_input_tokens": 0.15, "usd_per_1m_output_tokens": 0.6}},
    )  # fmt: skip
    path = write_runs(workdir, {"models": ["api-vlm"], "tasks": ["demo_ocr"], "perf": LADDER})
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: runs[0].perf: every model of this block is behind an endpoint" in str(
        err.value
    )
    write_runs(
        workdir, {"models": ["api-vlm", "tiny-llava"], "tasks": ["demo_ocr"], "perf": LADDER}
    )
    experiment = load(workdir)  # with a served model beside it: only the served one is measured
    assert experiment.perf_pairs() == [("tiny-llava", "demo_ocr")]
    assert experiment.variants_document()["variants"]["api-vlm"]["endpoint"] is True


def test_a_price_changes_no_prediction_fingerprint_and_no_server(workdir: Path) -> None:
    from vlmhyperbench.pipeline.plan import Plan

    write_runs(workdir, {"models": ["tiny-llava"], "tasks": ["demo_ocr"]})
    before = Plan(load(workdir))
    write_yaml(workdir / "config" / "models" / "tiny-llava.yaml",
               {**read_yaml(workdir / "config" / "models" / "tiny-llava.yaml"),
                "cost": {"usd_per_hour": 9.5}})  # fmt: skip
    after = Plan(load(workdir))
    assert after.experiment.models["tiny-llava"].cost.usd_per_hour == 9.5
    assert list(after.experiment.servers) == list(before.experiment.servers)
    assert after.predict_fingerprint("tiny-llava", "demo_ocr") == before.predict_fingerprint(
        "tiny-llava", "demo_ocr"
    )


def test_validate_lists_the_load_tested_pairs(workdir: Path) -> None:
    from typer.testing import CliRunner

    from vlmhyperbench.cli.main import app

    path = write_runs(workdir, {"models": ["tiny-llava"], "tasks": ["demo_ocr"], "perf": LADDER})
    result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 load-tested pair(s) (perf): tiny-llava/demo_ocr" in result.output
