"""Where each key of a merged config came from (snakemake's config layers)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class ConfigSources:
    """Where the keys of a merged config came from: ``layers`` in merge order (label, data),
    each overriding the ones before (snakemake: the Snakefile's ``configfile:``, the
    ``--configfile`` files in order, then ``--config``). ``main`` is named for a key that no
    layer holds (a required key that is missing)."""

    layers: tuple[tuple[str, Any], ...]
    main: str

    @classmethod
    def from_files(
        cls, files: Sequence[Path | str], overrides: Mapping[str, Any] | None = None
    ) -> ConfigSources:
        layers: list[tuple[str, Any]] = []
        for file in files:
            try:
                data = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                data = None
            layers.append((_shown(file), data))
        main = layers[-1][0] if layers else "config/config.yaml"
        if overrides:
            layers.append(("--config", dict(overrides)))
        return cls(tuple(layers), main)

    def file_of(self, loc: Sequence[str | int]) -> str:
        """The last layer that sets ``loc`` (or, failing that, its closest parent)."""
        for depth in range(len(loc), 0, -1):
            for label, data in reversed(self.layers):
                if _holds(data, loc[:depth]):
                    return label
        return self.main


def _shown(file: Path | str) -> str:
    """A path as the user wrote it: relative to the working directory when inside it."""
    path = Path(file)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
    return str(file)


def _holds(data: Any, loc: Sequence[str | int]) -> bool:
    for part in loc:
        in_mapping = isinstance(data, Mapping) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            return False
        data = data[part]
    return True
