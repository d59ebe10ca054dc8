"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny random-weight VLMs, built once per test session: ``{"llava": dir, ...}``."""
    torch = pytest.importorskip("torch")
    from vlmhyperbench.models.tiny import ARCHS, build_tiny_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny_model(root / arch, arch, seed=0) for arch in ARCHS}  # type: ignore[arg-type]
