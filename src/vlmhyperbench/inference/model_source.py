"""Where a model entry's weights are: a locally built tiny model, a local folder or a hub id."""

from __future__ import annotations

from pathlib import Path

from vlmhyperbench.config.schema import HubSource, LocalModelSource, ModelEntry, TinySource

TINY_MODELS_DIR = "models/tiny"


def tiny_model_dir(name: str) -> str:
    return f"{TINY_MODELS_DIR}/{name}"


def model_location(model: ModelEntry) -> str:
    """What the wrapper's ``--model`` gets."""
    source = model.source
    if isinstance(source, TinySource):
        return str(Path(tiny_model_dir(model.name)).resolve())
    if isinstance(source, LocalModelSource):
        return str(Path(source.path).expanduser().resolve())
    if isinstance(source, HubSource):
        return source.id
    raise TypeError(f"unknown model source {source!r}")
