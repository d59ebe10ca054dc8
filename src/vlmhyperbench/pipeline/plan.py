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
from vlmhyperbench.inference.launcher import WRAPPER_MAX_NEW_TOKENS
from vlmhyperbench.inference.model_source import tiny_model_dir
from vlmhyperbench.inference.prompts import TaskPrompts
from vlmhyperbench.metrics.score_job import score_spec
from vlmhyperbench.pipeline.fingerprints import (
    effective_generation,
    model_identity,
    predict_fingerprint,
    score_fingerprint,
)
from vlmhyperbench.runtime.io import stable_hash
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
    #: each task's compiled prompts, by the prompt settings they come from (a sweep's variants
    #: may send the same task with other prompts)
    _prompts: dict[tuple[str, str], TaskPrompts] = field(init=False, default_factory=dict)
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
        for pair in self.experiment.pairs:
            prompts = self.prompts(pair.model, pair.task)
            manifest = Path(self.manifest(pair.task))
            if prompts.collection is not None and manifest.is_file():
                # Datasets made by the workflow itself are checked again when predicting.
                dataset = pair.task_entry.dataset
                prompts.collection.check_doc_classes(doc_classes(manifest), dataset)

    def prompts(self, model: str, task: str) -> TaskPrompts:
        """The pair's compiled prompts (the task's, with its run block's and sweep's changes)."""
        entry = self.experiment.pair(model, task).task_entry
        key = (task, stable_hash(entry.prompt.model_dump(mode="json")))
        if key not in self._prompts:
            path = self.experiment.registry.path_of("tasks", task)
            self._prompts[key] = TaskPrompts.load(entry, path)
        return self._prompts[key]

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
            for model in self.experiment.servers.values()
            if isinstance(model.source, S3ModelSource)
        }
        return sorted(uris)

    def manifest(self, task: str) -> str:
        return f"{self.dataset_dir(self.experiment.registry.tasks[task].dataset)}/manifest.jsonl"

    # ------------------------------------------------------------------ models
    @property
    def tiny_models(self) -> list[str]:
        """Servers of tiny models: each builds its model (its source may be swept)."""
        return [n for n, m in self.experiment.servers.items() if isinstance(m.source, TinySource)]

    @property
    def servers(self) -> list[str]:
        """The servers the run starts (one ``serve_<server>`` job each): one per model, or per
        set of a model's variants that differ only in what is sent per request. Models with an
        endpoint are reached there."""
        return list(self.experiment.servers)

    def predict_groups(self) -> dict[str, list[str]]:
        """The models by the server they are sent to (a model behind its own endpoint alone):
        one predict rule each."""
        groups: dict[str, list[str]] = {}
        for model in self.experiment.models:
            groups.setdefault(self.experiment.server_of(model) or model, []).append(model)
        return groups

    def tasks_of_group(self, models: list[str]) -> list[str]:
        """The tasks any of ``models`` runs (a pair outside the matrix is refused by
        :meth:`predict_fingerprint`, naming it)."""
        return list(dict.fromkeys(t for model in models for t in self.experiment.tasks_of(model)))

    def server(self, server: str) -> str:
        """The serve job's status file (its service output): where the server is."""
        return f"{SERVERS_DIR}/{server}.json"

    def media_roots(self, server: str) -> list[str]:
        """Local dataset folders of its models' tasks (a judge's: of the tasks it judges): the
        server may read their images."""
        tasks = self.experiment.registry.tasks
        datasets = {
            tasks[task].dataset
            for model in self.experiment.models_of(server)
            for task in self.experiment.tasks_of(model)
        }
        datasets |= {
            tasks[task].dataset
            for _, judge, _, task in self.experiment.judgements()
            if self.experiment.server_of(judge) == server
        }
        folders = {self.dataset_dir(dataset) for dataset in datasets}
        return sorted(folder for folder in folders if not is_s3(folder))

    def max_new_tokens(self, server: str) -> int:
        """The longest reply the server's requests ask for: its models' tasks' ``max_tokens``
        (and, for a judge, its metrics'), at least the wrapper's own cap."""
        asked = [WRAPPER_MAX_NEW_TOKENS]
        for model in self.experiment.models_of(server):
            for task in self.experiment.tasks_of(model):
                pair = self.experiment.pair(model, task)
                asked.append(effective_generation(pair.model_entry, pair.task_entry)["max_tokens"])
        for metric, judge, _, _ in self.experiment.judgements():
            if self.experiment.server_of(judge) == server:
                asked.append(self.experiment.registry.metrics[metric].judge.generation.max_tokens)
        return max(asked)

    def model_inputs(self, server: str | None) -> dict[str, str]:
        """Files a server needs (a locally built model's folder, an ``s3://`` model); none
        for a model reached at its endpoint (``server`` None)."""
        if server is None:
            return {}
        entry = self.experiment.servers[server]
        if isinstance(entry.source, TinySource):
            return {"model": tiny_model_dir(server)}
        if isinstance(entry.source, S3ModelSource):
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
                self.prompts(model, task).fingerprint(),
                content=content,
            )
        return self._predict_fingerprints[key]

    # ------------------------------------------------------------------ serving performance
    def perf_json(self, model: str, task: str) -> str:
        return f"{RESULTS_DIR}/perf/{model}/{task}.json"

    def perf_records(self, model: str, task: str) -> str:
        return f"{RESULTS_DIR}/perf/{model}/{task}.parquet"

    def perf_servers(self) -> list[str]:
        """The servers with load-tested pairs: a perf rule each."""
        servers = (self.experiment.server_of(model) for model, _ in self.experiment.perf_pairs())
        return list(dict.fromkeys(server for server in servers if server is not None))

    def perf_pairs_of(self, server: str) -> list[tuple[str, str]]:
        """The (model, task) pairs load-tested on ``server``, in the order they run."""
        models = self.experiment.models_of(server)
        return [pair for pair in self.experiment.perf_pairs() if pair[0] in models]

    def perf_fingerprint(self, model: str, task: str) -> str:
        """What the pair sends (its predict fingerprint), the server's resources, the ``perf``
        settings and the planning machine (``perf.hardware.machine_identity``)."""
        # imported here: the load stage's modules are not needed to plan a run without it
        from vlmhyperbench.perf.hardware import machine_identity

        entry = self.experiment.models[model]
        return stable_hash(
            {
                "predict": self.predict_fingerprint(model, task),
                "resources": entry.resources.model_dump(),
                "perf": self.experiment.perf[(model, task)].model_dump(),
                "machine": machine_identity(),
            }
        )

    def all_perf(self) -> list[str]:
        return [self.perf_json(model, task) for model, task in self.experiment.perf_pairs()]

    # ------------------------------------------------------------------ judgements
    def judge_metrics(self) -> list[str]:
        """The run's metrics graded by judges (scored by the score_judge rule)."""
        return [name for name, m in self.experiment.metrics.items() if m.judge is not None]

    def rule_metrics(self) -> list[str]:
        """The run's metrics computed by a function (scored by the score rule)."""
        return [name for name, m in self.experiment.metrics.items() if m.judge is None]

    def judgement(self, metric: str, judge: str, model: str, task: str) -> str:
        return f"{RESULTS_DIR}/judgements/{metric}/{judge}/{model}/{task}.jsonl"

    def judge_journal(self, metric: str, judge: str, model: str, task: str) -> str:
        return f"{JOURNAL_DIR}/judge/{metric}/{judge}/{model}/{task}.jsonl"

    def judgements_for_score(self, metric: str, model: str, task: str) -> list[str]:
        """A judge metric's judgements files of one (model, task), in its judges' order."""
        judge = self.experiment.registry.metrics[metric].judge
        assert judge is not None, metric
        return [self.judgement(metric, name, model, task) for name in judge.models]

    def only_when_scores(self, metric: str, model: str, task: str) -> str | None:
        """The per-sample scores of a judge metric's ``only_when`` rule for the pair."""
        judge = self.experiment.registry.metrics[metric].judge
        if judge is None or judge.only_when is None:
            return None
        return self.score(model, task, judge.only_when.metric, "parquet")

    def against_predictions(self, metric: str, model: str, task: str) -> str | None:
        """A pairwise verdict's other answers: the compared-against model's predictions (none
        for that model itself, or another verdict)."""
        judge = self.experiment.registry.metrics[metric].judge
        against = judge.verdict.against if judge else None
        if against is None or against == model:
            return None
        return self.predictions(against, task)

    def judge_groups(self) -> dict[str, list[tuple[str, str, str, str]]]:
        """The judgements by judge: one judge rule each."""
        groups: dict[str, list[tuple[str, str, str, str]]] = {}
        for judgement in self.experiment.judgements():
            groups.setdefault(judgement[1], []).append(judgement)
        return groups

    def judge_fingerprint(self, metric: str, judge: str) -> str:
        """The judge's entry and what the metric asks of it (templates, verdict, parse,
        generation; not the panel it sits on): a changed one re-runs its jobs, whose journal
        then asks only the samples whose request changed."""
        return stable_hash(
            {
                "judge": model_identity(self.experiment.registry.models[judge]),
                # not the panel (models, aggregate, invalid): a judge's verdicts are its own
                "metric": self.experiment.registry.metrics[metric].judge.model_dump(
                    mode="json", exclude={"models", "aggregate", "invalid"}
                ),
            }
        )

    # ------------------------------------------------------------------ scores
    def score(self, model: str, task: str, metric: str, ext: str) -> str:
        return f"{RESULTS_DIR}/scores/{model}/{task}/{metric}.{ext}"

    def score_fingerprint(self, metric: str, task: str, model: str | None = None) -> str:
        """The same for every pair whose task entry is the same (``RunPair.task_key``): the
        registry's, with its run block's overrides and its sweep's settings."""
        digest = dataset_digest(self.manifest(task))  # cached per manifest version
        manifest = digest.manifest if digest else None
        task_key = None if model is None else self.experiment.pair(model, task).task_key
        key = (metric, task, task_key, manifest)
        if key not in self._score_fingerprints:
            experiment = self.experiment if model is None else self.experiment.for_pair(model, task)
            registry = experiment.registry
            self._score_fingerprints[key] = score_fingerprint(
                registry.metrics[metric], registry.tasks[task], manifest
            )
        return self._score_fingerprints[key]

    def score_spec(self, metric: str, task: str, model: str) -> str:
        """The score job's ``params.spec``: the same for every pair with the same task entry."""
        pair = self.experiment.pair(model, task)
        if metric not in pair.task_entry.metrics:
            raise ValueError(f"{metric!r} is not a metric of the task {task!r}")
        key = (metric, task, pair.task_key)
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
    variants_json = f"{RESULTS_DIR}/variants.json"
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
