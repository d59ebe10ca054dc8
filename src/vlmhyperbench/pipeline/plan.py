"""Paths of every file target, derived from the experiment — the single source for the rules.

The rules in ``rules/*.smk`` ask this module where things are, so the layout lives in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vlmhyperbench.config import Experiment
from vlmhyperbench.config.schema import (
    GeneratedSource,
    ImportSource,
    LocalSource,
    S3DatasetSource,
    S3ModelSource,
    TinySource,
)
from vlmhyperbench.datasets.digest import dataset_digest
from vlmhyperbench.datasets.manifest import read_manifest
from vlmhyperbench.inference.model_source import tiny_model_dir
from vlmhyperbench.inference.prompts import TaskPrompts
from vlmhyperbench.metrics.score_job import score_spec
from vlmhyperbench.pipeline.fingerprints import predict_fingerprint, score_fingerprint
from vlmhyperbench.runtime.s3 import is_s3

DATA_DIR = "data"
RESULTS_DIR = "results"
JOURNAL_DIR = f"{RESULTS_DIR}/.journal"
SERVERS_DIR = f"{RESULTS_DIR}/.servers"


def doc_classes(manifest: Path) -> set[str]:
    return {sample.doc_class for sample in read_manifest(manifest) if sample.doc_class}


def alternation(names: list[str]) -> str:
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(name) for name in sorted(names)) or "(?!)"


@dataclass
class Plan:
    experiment: Experiment
    prompts: dict[str, TaskPrompts] = field(init=False)
    # Fingerprints once per what they depend on, per process: Snakemake evaluates a job's
    # params several times while planning, and a paper-sized run has 10,000 score jobs.
    _predict_fingerprints: dict[tuple[str, str, str | None], str] = field(
        init=False, default_factory=dict
    )
    _score_fingerprints: dict[tuple[str, str, str | None, str | None], str] = field(
        init=False, default_factory=dict
    )
    _score_specs: dict[tuple[str, str, str], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Read prompt files and compile every template now: a bad one stops the workflow
        # before any job.
        self.prompts = {name: self.task_prompts(name) for name in self.experiment.tasks}
        for name, prompts in self.prompts.items():
            manifest = Path(self.manifest(name))
            if prompts.collection is not None and manifest.is_file():
                # Datasets made by the workflow itself are checked again when predicting.
                dataset = self.experiment.registry.tasks[name].dataset
                prompts.collection.check_doc_classes(doc_classes(manifest), dataset)

    def task_prompts(self, task: str) -> TaskPrompts:
        registry = self.experiment.registry
        return TaskPrompts.load(registry.tasks[task], registry.path_of("tasks", task))

    # ------------------------------------------------------------------ datasets
    @property
    def generated_datasets(self) -> list[str]:
        return [
            n for n, d in self.experiment.datasets.items() if isinstance(d.source, GeneratedSource)
        ]

    @property
    def imported_datasets(self) -> list[str]:
        return [
            n for n, d in self.experiment.datasets.items() if isinstance(d.source, ImportSource)
        ]

    def import_source(self, dataset: str) -> str:
        """The importer's input: the folder or file the registry entry points at."""
        source = self.experiment.registry.datasets[dataset].source
        assert isinstance(source, ImportSource)
        return str(Path(source.path).expanduser())

    def dataset_dir(self, dataset: str) -> str:
        """A local folder, or for an S3 dataset its ``s3://`` prefix (the rules read it through
        ``storage()``; its local copy keeps the same layout)."""
        source = self.experiment.registry.datasets[dataset].source
        if isinstance(source, LocalSource):
            return str(Path(source.path).expanduser())
        if isinstance(source, S3DatasetSource):
            return source.uri.rstrip("/")
        return f"{DATA_DIR}/{dataset}"

    def dataset_images(self, task: str) -> str | None:
        """The dataset's image folder as an input of predict jobs, so it reaches a pod through
        storage; ``None`` for a local folder (read in place, on one node)."""
        dataset = self.experiment.registry.tasks[task].dataset
        source = self.experiment.registry.datasets[dataset].source
        if isinstance(source, LocalSource):
            return None
        images = source.images if isinstance(source, S3DatasetSource) else "images"
        return f"{self.dataset_dir(dataset)}/{images}"

    def storage_uris(self) -> list[str]:
        """Every ``s3://`` location the experiment reads (datasets of its tasks, its models)."""
        registry = self.experiment.registry
        uris = {
            registry.datasets[task.dataset].source.uri
            for task in self.experiment.tasks.values()
            if isinstance(registry.datasets[task.dataset].source, S3DatasetSource)
        }
        uris |= {
            model.source.uri
            for model in self.experiment.models.values()
            if isinstance(model.source, S3ModelSource) and model.endpoint is None
        }
        return sorted(uris)

    def manifest(self, task: str) -> str:
        return f"{self.dataset_dir(self.experiment.registry.tasks[task].dataset)}/manifest.jsonl"

    # ------------------------------------------------------------------ models
    @property
    def tiny_models(self) -> list[str]:
        return [
            n
            for n, m in self.experiment.models.items()
            if isinstance(m.source, TinySource) and m.endpoint is None
        ]

    @property
    def served_models(self) -> list[str]:
        """Models the run serves itself (one ``serve_<model>`` job each); the others are
        reached at their endpoint."""
        return [n for n, m in self.experiment.models.items() if m.endpoint is None]

    def server(self, model: str) -> str:
        """The serve job's status file (its service output): where the model's server is."""
        return f"{SERVERS_DIR}/{model}.json"

    def media_roots(self, model: str) -> list[str]:
        """Local dataset folders of the model's tasks: the server may read their images."""
        tasks = self.experiment.registry.tasks
        datasets = {tasks[task].dataset for task in self.experiment.tasks_of(model)}
        folders = {self.dataset_dir(dataset) for dataset in datasets}
        return sorted(folder for folder in folders if not is_s3(folder))

    def model_inputs(self, model: str) -> dict[str, str]:
        """Files the serve job needs for the model (a locally built model's folder, unless the
        model is served by an external endpoint)."""
        entry = self.experiment.registry.models[model]
        if model in self.tiny_models and entry.endpoint is None:
            return {"model": tiny_model_dir(model)}
        if isinstance(entry.source, S3ModelSource) and entry.endpoint is None:
            return {"model": entry.source.uri.rstrip("/")}
        return {}

    # ------------------------------------------------------------------ predictions
    def predictions(self, model: str, task: str) -> str:
        return f"{RESULTS_DIR}/predictions/{model}/{task}.jsonl"

    def journal(self, model: str, task: str) -> str:
        return f"{JOURNAL_DIR}/{model}/{task}.jsonl"

    def predict_fingerprint(self, model: str, task: str) -> str:
        """Covers the data's content once it exists: Snakemake evaluates params again before
        running a job, so a dataset built in the same run is hashed after it is built."""
        digest = dataset_digest(self.manifest(task))  # cached per manifest version
        content = digest.sent if digest else None
        key = (model, task, content)
        if key not in self._predict_fingerprints:
            registry = self.experiment.for_pair(model, task).registry  # the run block's entries
            task_entry = registry.tasks[task]
            self._predict_fingerprints[key] = predict_fingerprint(
                registry.models[model],
                task_entry,
                registry.datasets[task_entry.dataset],
                self.prompts[task].fingerprint(),
                content=content,
            )
        return self._predict_fingerprints[key]

    # ------------------------------------------------------------------ scores
    def score(self, model: str, task: str, metric: str, ext: str) -> str:
        return f"{RESULTS_DIR}/scores/{model}/{task}/{metric}.{ext}"

    def score_fingerprint(self, metric: str, task: str, model: str | None = None) -> str:
        """The same for every model of a run block: the task entry a pair scores with is the
        registry's with its block's overrides (``RunPair.block`` names the block)."""
        digest = dataset_digest(self.manifest(task))  # cached per manifest version
        manifest = digest.manifest if digest else None
        block = None if model is None else self.experiment.pair(model, task).block
        key = (metric, task, block, manifest)
        if key not in self._score_fingerprints:
            experiment = self.experiment if model is None else self.experiment.for_pair(model, task)
            registry = experiment.registry
            self._score_fingerprints[key] = score_fingerprint(
                registry.metrics[metric], registry.tasks[task], manifest
            )
        return self._score_fingerprints[key]

    def score_spec(self, metric: str, task: str, model: str) -> str:
        """The score job's ``params.spec``: the same for every model of a run block."""
        pair = self.experiment.pair(model, task)
        if metric not in pair.task_entry.metrics:
            raise ValueError(f"{metric!r} is not a metric of the task {task!r}")
        key = (metric, task, pair.block)
        if key not in self._score_specs:
            self._score_specs[key] = score_spec(
                self.experiment.registry.metrics[metric],
                pair.task_entry,
                self.experiment.config.scoring,
            )
        return self._score_specs[key]

    def all_scores(self, ext: str = "json") -> list[str]:
        """Only the run matrix's (model, task) pairs."""
        return [
            self.score(pair.model, pair.task, metric, ext)
            for pair in self.experiment.pairs
            for metric in pair.task_entry.metrics
        ]

    def all_predictions(self) -> list[str]:
        return [self.predictions(pair.model, pair.task) for pair in self.experiment.pairs]

    # ------------------------------------------------------------------ final
    summary_parquet = f"{RESULTS_DIR}/summary.parquet"
    summary_csv = f"{RESULTS_DIR}/summary.csv"
    report_dir = f"{RESULTS_DIR}/report"
    leaderboard = f"{report_dir}/leaderboard.md"
    report_index = f"{report_dir}/index.html"
    report_comparisons = f"{report_dir}/comparisons.csv"
    report_provenance = f"{report_dir}/provenance.json"
    report_tables = f"{report_dir}/tables"
    report_figures = f"{report_dir}/figures"

    def final_outputs(self) -> list[str]:
        return [self.summary_csv, self.report_index]
