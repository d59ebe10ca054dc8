"""Config errors name the right file and speak plainly, in real ``snakemake`` runs (a dry run
and ``--lint``) and in ``vlmhb validate``: one line per problem,
``file: key.path: expected int, got 'four'``, naming the file the key came from (the
``--configfile`` one, the Snakefile's default, ``--config`` or a registry entry), never
jsonschema's dump of the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_workdir, read_yaml, snakemake, write_yaml

RAW_DUMP = ("Failed validating", "ValidationError", "On instance", "schema[")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=["demo_field_vqa"])


def _messages(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for raw in RAW_DUMP:
        assert raw not in output, output
    return output


def _validate(workdir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "vlmhyperbench.cli", "validate", *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=120,
    )
    return _messages(result)


def test_a_wrong_type_in_another_configfile_names_that_file(workdir: Path) -> None:
    config = read_yaml(workdir / "config" / "config.yaml")
    config["inference"]["concurrency"] = "four"
    write_yaml(workdir / "other.yaml", config)
    line = "other.yaml: inference.concurrency: expected int, got 'four'"
    for args in (("-n",), ("--lint",)):
        output = _messages(snakemake(workdir, *args, "--configfile", "other.yaml", check=False))
        assert line in output
        assert "config/config.yaml: inference" not in output
    assert line in _validate(workdir, "--config", "other.yaml")
    assert not (workdir / "data").exists() and not (workdir / "results").exists()


def test_each_key_is_named_with_the_layer_it_came_from(workdir: Path) -> None:
    config_path = workdir / "config" / "config.yaml"
    config = read_yaml(config_path)
    config["scoring"]["bootstrap"] = "many"  # in the Snakefile's default config file
    config["colour"] = "blue"
    write_yaml(config_path, config)
    write_yaml(workdir / "small.yaml", {"inference": {"concurrency": 0}})
    output = _messages(
        snakemake(workdir, "-n", "--configfile", "small.yaml", "--config", "name=7", check=False)
    )
    assert "config/config.yaml: scoring.bootstrap: expected int, got 'many'" in output
    assert "config/config.yaml: colour: unknown key; known keys: " in output
    assert "small.yaml: inference.concurrency: must be >= 1, got 0" in output
    assert "--config: name: expected string, got 7" in output


def test_a_wrong_type_in_a_registry_entry_is_one_plain_line_everywhere(workdir: Path) -> None:
    path = workdir / "config" / "models" / "tiny-llava.yaml"
    entry = read_yaml(path)
    entry.setdefault("engine_args", {})["max_model_len"] = "lots"
    write_yaml(path, entry)
    line = "config/models/tiny-llava.yaml: engine_args.max_model_len: expected int, got 'lots'"
    for args in (("-n",), ("--lint",)):
        assert line in _messages(snakemake(workdir, *args, check=False))
    assert line in _validate(workdir)


def test_an_unknown_name_is_reported_in_the_file_that_lists_it(workdir: Path) -> None:
    config_path = workdir / "config" / "config.yaml"
    config = read_yaml(config_path)
    config["models"] = ["tiny-lava"]
    write_yaml(config_path, config)
    write_yaml(workdir / "small.yaml", {"inference": {"concurrency": 2}})
    output = _messages(snakemake(workdir, "-n", "--configfile", "small.yaml", check=False))
    assert "config/config.yaml: models[0]: unknown model 'tiny-lava'; known models: " in output
    assert "small.yaml: models" not in output


def test_a_bad_override_names_the_entry_and_the_config_file_that_sets_it(workdir: Path) -> None:
    write_yaml(
        workdir / "other.yaml",
        {"overrides": {"models": {"tiny-llava": {"engine_args": {"max_model_len": "lots"}}}}},
    )
    output = _messages(snakemake(workdir, "-n", "--configfile", "other.yaml", check=False))
    assert (
        "config/models/tiny-llava.yaml: engine_args.max_model_len: expected int, got 'lots' "
        "(after overrides.models.tiny-llava from other.yaml)"
    ) in output
