"""An explorer session: the run (and a baseline run) opened for reading, and what is cached.

Opening reads the summaries, provenance records, ``variants.json`` and the datasets' manifest
hashes only; every per-sample file is read when a page first needs it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vlmhyperbench.explorer.catalog import Catalog, open_catalog
from vlmhyperbench.explorer.datasets import Datasets, default_data_dirs
from vlmhyperbench.explorer.media import Media
from vlmhyperbench.explorer.query import ScoreStore

if TYPE_CHECKING:
    from vlmhyperbench.explorer.diff import ModelDiff


@dataclass
class Run:
    """One results folder opened for reading."""

    catalog: Catalog
    datasets: Datasets
    store: ScoreStore

    @property
    def warnings(self) -> list[str]:
        return self.catalog.warnings + self.datasets.warnings


def open_run(root: str | Path, data_dirs: list[Path] | None = None) -> Run:
    catalog = open_catalog(root)
    datasets = Datasets(catalog, data_dirs or default_data_dirs(catalog.root))
    return Run(catalog=catalog, datasets=datasets, store=ScoreStore(catalog))


@dataclass
class Explorer:
    run: Run
    baseline: Run | None = None
    n_boot: int = 1000
    seed: int = 0
    media: Media = field(init=False)
    _diffs: dict[str, tuple[dict[str, list[ModelDiff]], list[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.media = Media(self.run.datasets)

    def diff(self, task: str) -> tuple[dict[str, list[ModelDiff]], list[str]]:
        """The task against the baseline (computed once); requires a baseline run."""
        from vlmhyperbench.explorer.diff import task_diff  # the report's statistics: seconds

        assert self.baseline is not None
        with self._lock:
            if task not in self._diffs:
                self._diffs[task] = task_diff(
                    self.run.catalog,
                    self.baseline.catalog,
                    task,
                    n_boot=self.n_boot,
                    seed=self.seed,
                )
            return self._diffs[task]

    def close(self) -> None:
        self.run.store.close()
        if self.baseline is not None:
            self.baseline.store.close()


def open_explorer(
    root: str | Path,
    *,
    baseline: str | Path | None = None,
    data_dirs: list[Path] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> Explorer:
    """Open ``root`` (and ``baseline``); raises ``NotAResultsFolder`` for a folder that is not."""
    run = open_run(root, data_dirs)
    other = open_run(baseline, data_dirs) if baseline is not None else None
    return Explorer(run=run, baseline=other, n_boot=n_boot, seed=seed)
