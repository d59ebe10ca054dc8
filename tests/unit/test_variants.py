"""Variants: registry entries with ``base:``, and run blocks with ``sweep:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workdir, write_yaml
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
