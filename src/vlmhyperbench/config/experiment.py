"""The experiment: which (model, task) pairs to run, resolved against the registries.

The run matrix is the union of the config's blocks: the top-level ``models`` × ``tasks`` and
every ``runs[i]`` block. A block may carry its own overrides (deep-merged over the registry
entries for its pairs only), a sample ``limit``, and a ``sweep``: the block then runs the grid
of its models' variants (:mod:`vlmhyperbench.config.variants`). A pair listed by two blocks is
merged when they ask for the same settings and refused when they do not.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from vlmhyperbench.config.errors import (
    ConfigError,
    Loc,
    ModelT,
    Problem,
    key_path,
    unknown_name,
    validated,
)
from vlmhyperbench.config.registry import Registry, deep_merge, load_registry, read_yaml
from vlmhyperbench.config.schema import (
    DatasetEntry,
    ExperimentConfig,
    JudgeSpec,
    MetricEntry,
    ModelEntry,
    PerfSettings,
    RunBlock,
    TaskEntry,
)
from vlmhyperbench.config.variants import (
    Axis,
    Point,
    Variant,
    axes_of,
    check_name,
    entry_differences,
    grid,
    nested,
    server_key,
    value_at,
    variant_name,
    without_per_request,
)
from vlmhyperbench.runtime.io import stable_hash

#: Keys a block's overrides may not change: they shape a model's server (its container,
#: resources, environment, engine) - sweep them to run a variant -, or which dataset and score
#: files a task has.
RULE_MODEL_KEYS = (
    "backend",
    "source",
    "endpoint",
    "engine_args",
    "resources",
    "container",
    "packages",
)
RULE_TASK_KEYS = ("dataset", "kind", "metrics")


@dataclass(frozen=True)
class RunPair:
    """One (model, task) cell of the matrix, with the entries it runs with."""

    model: str  # the variant's name (a registry model's own name when it is not a variant)
    task: str
    block: str  # the config key of the block that listed it first, e.g. ``runs[1]`` ("" top level)
    settings: dict[str, Any]  # the block's overrides and sweep values for this pair
    model_entry: ModelEntry
    task_entry: TaskEntry
    task_key: str = ""  # hash of the effective task entry: pairs with equal ones score alike
    key: str = ""  # hash of both effective entries: two blocks listing the pair must agree


@dataclass(frozen=True)
class Experiment:
    config: ExperimentConfig
    registry: Registry
    config_path: Path
    pairs: tuple[RunPair, ...] = field(default=())
    #: every model of the matrix by name: registry entries, and sweeps' variants
    variants: dict[str, Variant] = field(default_factory=dict)
    #: each sweep of a block over one model: block, base, tasks, axes (path -> labels)
    sweeps: tuple[dict[str, Any], ...] = ()
    #: the load stage's settings of each (model, task) a block (or the top level) load-tests
    perf: dict[tuple[str, str], PerfSettings] = field(default_factory=dict)

    @property
    def models(self) -> dict[str, ModelEntry]:
        """Every model of the matrix, as it is served (a variant with its sweep's settings; a
        block's overrides change what it sends, not its server)."""
        names = dict.fromkeys(p.model for p in self.pairs)
        return {name: self.variants[name].entry for name in names}

    @property
    def tasks(self) -> dict[str, TaskEntry]:
        names = dict.fromkeys(p.task for p in self.pairs)
        return {name: self.registry.tasks[name] for name in names}

    @property
    def datasets(self) -> dict[str, DatasetEntry]:
        return {t.dataset: self.registry.datasets[t.dataset] for t in self.tasks.values()}

    @property
    def metrics(self) -> dict[str, MetricEntry]:
        names = {m for t in self.tasks.values() for m in t.metrics}
        return {name: self.registry.metrics[name] for name in sorted(names)}

    def tasks_of(self, model: str) -> list[str]:
        """The tasks the matrix runs ``model`` on."""
        return [p.task for p in self.pairs if p.model == model]

    # ------------------------------------------------------------------ judges
    @property
    def judges(self) -> dict[str, ModelEntry]:
        """The judge models of the run's judge metrics (never models of the matrix)."""
        metrics = self.metrics.values()
        names = dict.fromkeys(j for m in metrics if m.judge is not None for j in m.judge.models)
        return {name: self.registry.models[name] for name in names}

    def judged_pairs(self) -> Iterator[tuple[RunPair, str, JudgeSpec]]:
        """Each pair with each judge metric of its task: (pair, metric, the metric's judge)."""
        for pair in self.pairs:
            for metric in pair.task_entry.metrics:
                judge = self.registry.metrics[metric].judge
                if judge is not None:
                    yield pair, metric, judge

    def judgements(self) -> list[tuple[str, str, str, str]]:
        """Every (metric, judge, model, task) the run asks a judge about: each judge of each
        judge metric of a pair's task."""
        return [
            (metric, name, pair.model, pair.task)
            for pair, metric, judge in self.judged_pairs()
            for name in judge.models
        ]

    # ------------------------------------------------------------------ servers
    @cached_property
    def _server_assignment(self) -> tuple[dict[str, str], dict[str, ModelEntry]]:
        """Variants whose entries differ only in what their backend takes per request share a
        server, named after the first of them without those settings."""
        from vlmhyperbench.pipeline.backend_specs import BACKENDS

        server_of: dict[str, str] = {}
        servers: dict[str, ModelEntry] = {}
        names_by_key: dict[str, str] = {}
        for name, entry in {**self.models, **self.judges}.items():
            if entry.endpoint is not None:
                continue
            per_request = BACKENDS[entry.backend].per_request
            # a judge never shares a model's server: it would join that model's group
            judging = "judge:" if name in self.judges else ""
            key = judging + server_key(entry, per_request)
            if key not in names_by_key:
                variant = self.variants.get(name)
                server = self._server_name(variant, per_request) if variant else name
                names_by_key[key] = name if server in servers else server
                servers[names_by_key[key]] = without_per_request(entry, per_request)
            server_of[name] = names_by_key[key]
        return server_of, servers

    @staticmethod
    def _server_name(variant: Variant, per_request: frozenset[str]) -> str:
        """The variant's name without its settings that are sent per request."""
        kept = {
            path: part
            for path, part in variant.named.items()
            if path.startswith("models.")
            and not any(f"{path}.".startswith(f"models.{p}.") for p in per_request)
        }
        if len(kept) == len(variant.named):
            return variant.name
        return f"{variant.model}@{','.join(sorted(kept.values()))}" if kept else variant.model

    @property
    def servers(self) -> dict[str, ModelEntry]:
        """The serve jobs: server name -> the entry its wrapper starts with."""
        return self._server_assignment[1]

    def server_of(self, model: str) -> str | None:
        """The server ``model`` is sent to (``None``: it has an endpoint of its own)."""
        return self._server_assignment[0].get(model)

    def models_of(self, server: str) -> list[str]:
        return [m for m, s in self._server_assignment[0].items() if s == server]

    # ------------------------------------------------------------------ pairs
    @cached_property
    def _pair_index(self) -> dict[tuple[str, str], RunPair]:
        return {(p.model, p.task): p for p in self.pairs}

    @cached_property
    def _narrowed(self) -> dict[tuple[str, str], Experiment]:
        return {}

    def pair(self, model: str, task: str) -> RunPair:
        try:
            return self._pair_index[(model, task)]
        except KeyError:
            raise KeyError(f"({model}, {task}) is not in the run matrix") from None

    def for_pair(self, model: str, task: str) -> Experiment:
        """This experiment narrowed to one pair, its registry holding the pair's own model
        and task entries (a job reads ``registry.models[...]`` / ``registry.tasks[...]``)."""
        narrowed = self._narrowed.get((model, task))
        if narrowed is None:
            pair = self.pair(model, task)
            registry = dataclasses.replace(
                self.registry,
                models={**self.registry.models, model: pair.model_entry},
                tasks={**self.registry.tasks, task: pair.task_entry},
            )
            narrowed = dataclasses.replace(self, registry=registry, pairs=(pair,))
            self._narrowed[(model, task)] = narrowed
        return narrowed

    # ------------------------------------------------------------------ variants.json
    def perf_pairs(self) -> list[tuple[str, str]]:
        """The (model, task) pairs the load stage measures: those with ``perf`` settings whose
        model has a server of the run's own (an API behind an endpoint is not load-tested)."""
        return [pair for pair in self.perf if self.server_of(pair[0]) is not None]

    def variants_document(self) -> dict[str, Any]:
        """``results/variants.json``: each model of the run with its base entry, the model it
        is reported under, its server and settings; and the sweeps' axes."""
        variants = {}
        for name in self.models:
            variant = self.variants[name]
            entry = self.registry.models[variant.model]
            base = variant.model if name != variant.model else entry.base
            settings = dict(variant.settings)
            if name == variant.model and entry.base is not None:
                settings = entry_differences(entry, self.registry.models[entry.base], "models")
            variants[name] = {
                "base": base,
                "group": self._root(variant.model),
                "server": self.server_of(name),
                "settings": settings,
                "swept": dict(variant.swept),
                # the price it runs at (None: not known); self-hosted or behind an API
                "cost": variant.entry.cost.model_dump() if variant.entry.cost else None,
                "endpoint": variant.entry.endpoint is not None,
            }
        perf = [{"model": model, "task": task} for model, task in self.perf_pairs()]
        return {
            "variants": variants,
            "sweeps": list(self.sweeps),
            "perf": perf,
            "judge_metrics": self._judge_metrics_document(),
        }

    def _judge_metrics_document(self) -> dict[str, Any]:
        """Each judge metric's panel, verdict and rules, and its judges' prices."""
        document = {}
        for name, metric in self.metrics.items():
            if metric.judge is None:
                continue
            judge = metric.judge
            costs = {j: self.registry.models[j].cost for j in judge.models}
            document[name] = {
                "judges": list(judge.models),
                "verdict": judge.verdict.model_dump(),
                "aggregate": judge.aggregate,
                "invalid": judge.invalid,
                "costs": {j: c.model_dump() if c else None for j, c in costs.items()},
            }
        return document

    def _root(self, model: str) -> str:
        seen = {model}
        while (base := self.registry.models[model].base) is not None and base not in seen:
            model = base
            seen.add(model)
        return model


def load_experiment(
    config: dict[str, Any] | None = None,
    config_path: str | Path = "config/config.yaml",
    workdir: str | Path = ".",
) -> Experiment:
    """Validate the experiment config (given as a dict, or read from ``config_path``), every
    registry entry, and the run matrix with its sweeps' variants. Every problem names
    ``config_path`` or an entry's file."""
    config_path = Path(config_path)
    if config is None:
        if not config_path.is_file():
            raise ConfigError([Problem(str(config_path), (), "config file not found")])
        config = read_yaml(config_path) or {}
    experiment = validated(ExperimentConfig, config, config_path)
    registry = load_registry(
        Path(workdir) / experiment.registry_dir, experiment.overrides.model_dump(), config_path
    )
    blocks: list[tuple[Loc, RunBlock]] = []
    if experiment.models:
        blocks.append(((), RunBlock(models=experiment.models, tasks=experiment.tasks)))
    blocks += [(("runs", i), block) for i, block in enumerate(experiment.runs)]
    problems: list[Problem] = []
    for prefix, block in blocks:
        problems += _check_names(str(config_path), prefix, block, registry)
    if problems:
        raise ConfigError(problems)
    matrix = _Matrix(str(config_path), registry)
    for prefix, block in blocks:
        perf = experiment.perf if block.perf is None else block.perf
        matrix.add_block(prefix, block, perf or None)
    if matrix.problems:
        raise ConfigError(list(dict.fromkeys(matrix.problems)))
    loaded = Experiment(
        config=experiment,
        registry=registry,
        config_path=config_path,
        pairs=tuple(matrix.pairs.values()),
        variants=matrix.variants,
        sweeps=tuple(matrix.sweeps),
        perf=matrix.perf,
    )
    _check_judges(loaded)
    return loaded


def _check_judges(experiment: Experiment) -> None:
    """A judge is not a model of the run: it would judge its own answers, or two models would
    each wait for the other's (a judge runs in its server's group, after what it judges)."""
    in_matrix = {experiment.variants[m].model for m in experiment.models} | set(experiment.models)
    problems = _only_when_problems(experiment) + _against_problems(experiment)
    for name, metric in experiment.metrics.items():
        for index, judge in enumerate(metric.judge.models if metric.judge else []):
            if judge in in_matrix:
                message = (
                    f"{judge!r} is a model of this run and cannot also judge it; judge with "
                    "another model, or benchmark it in another run"
                )
                path = str(experiment.registry.path_of("metrics", name))
                problems.append(Problem(path, ("judge", "models", index), message))
    if problems:
        raise ConfigError(problems)


def _label(block: str) -> str:
    return block or "the top-level models/tasks"


def _check_names(file: str, prefix: Loc, block: RunBlock, registry: Registry) -> list[Problem]:
    problems = []
    for kind in ("models", "tasks"):
        known = getattr(registry, kind)
        names = getattr(block, kind)
        for index, name in enumerate(names):
            if name not in known:
                problems.append(unknown_name(file, (*prefix, kind, index), kind[:-1], name, known))
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            message = f"listed more than once: {duplicates}"
            problems.append(Problem(file, (*prefix, kind), message))
        for name in getattr(block.overrides, kind):
            if name not in names:
                message = f"{name!r} is not among this block's {kind} ({', '.join(names)})"
                problems.append(Problem(file, (*prefix, "overrides", kind, name), message))
    return problems


def _dump(entry: Any) -> dict[str, Any]:
    return entry.model_dump(mode="json")


class _Matrix:
    """The run matrix, built block by block; what is wrong goes to ``problems``."""

    def __init__(self, file: str, registry: Registry) -> None:
        self.file = file
        self.registry = registry
        self.problems: list[Problem] = []
        self.pairs: dict[tuple[str, str], RunPair] = {}
        self.variants: dict[str, Variant] = {}
        self.sweeps: list[dict[str, Any]] = []
        self._names: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}  # settings -> name
        self._meanings: dict[str, tuple[Any, str]] = {}  # name -> (settings, block)
        self.perf: dict[tuple[str, str], PerfSettings] = {}
        self._block_perf: PerfSettings | None = None  # the block being added's

    def add_block(self, prefix: Loc, block: RunBlock, perf: PerfSettings | None) -> None:
        before = len(self.problems)
        self._block_perf = perf
        if block.perf and all(self.registry.models[m].endpoint for m in block.models):
            message = (
                "every model of this block is behind an endpoint (an API), and the load stage "
                "measures only servers the run starts: remove perf, or add a served model"
            )
            self.problems.append(Problem(self.file, (*prefix, "perf"), message))
        axes = axes_of(self.file, prefix, block.sweep, self.problems)
        tasks = {name: self._task(prefix, block, name) for name in block.tasks}
        models = {name: self._model_override(prefix, block, name) for name in block.models}
        self._check_shadowed(prefix, axes, tasks)
        if len(self.problems) > before:
            return
        for name in block.models:
            if axes:
                self.sweeps.append(
                    {
                        "block": _label(key_path(prefix)),
                        "base": name,
                        "tasks": list(block.tasks),
                        "axes": {
                            axis.path: [label for label, _, _ in axis.values] for axis in axes
                        },
                    }
                )
            for point in grid(axes):
                self._add_point(prefix, block, name, models[name], point, tasks)

    def _check_shadowed(
        self, prefix: Loc, axes: list[Axis], tasks: dict[str, TaskEntry | None]
    ) -> None:
        """A model's generation setting that every task of the block sets itself would change
        nothing (a task's generation wins)."""
        for axis in axes:
            if axis.kind != "models" or axis.parts[0] != "generation" or len(axis.parts) != 2:
                continue
            key = axis.parts[1]
            setting = [
                name
                for name, task in tasks.items()
                if task and task.generation and key in task.generation.model_fields_set
            ]
            if setting and len(setting) == len(tasks):
                message = (
                    f"changes nothing: the block's tasks set generation.{key} themselves "
                    f"({', '.join(setting)}), and a task's generation wins; sweep "
                    f"tasks.generation.{key}"
                )
                self.problems.append(Problem(self.file, (*prefix, "sweep", axis.path), message))

    def _model_override(self, prefix: Loc, block: RunBlock, model: str) -> dict[str, Any]:
        override = block.overrides.models.get(model, {})
        for key in RULE_MODEL_KEYS:
            if key in override:
                message = (
                    f"a run block cannot change {key} (a model's server runs with it); sweep it "
                    f"to run a variant of the model (sweep: {{models.{key}.…: [value]}}), or set "
                    "it in the top-level overrides"
                )
                self.problems.append(
                    Problem(self.file, (*prefix, "overrides", "models", model, key), message)
                )
        return override

    def _task(self, prefix: Loc, block: RunBlock, task: str) -> TaskEntry | None:
        """The task entry with the block's overrides and limit."""
        override = dict(block.overrides.tasks.get(task, {}))
        if block.limit is not None:
            override["limit"] = block.limit
        where = (*prefix, "overrides", "tasks", task)
        for key in RULE_TASK_KEYS:
            if key in override:
                message = f"a run block cannot change {key} (it decides the task's data and scores)"
                self.problems.append(Problem(self.file, (*where, key), message))
        return self._merged(where, self.registry.tasks[task], override)

    def _merged(self, where: Loc, entry: ModelT, override: dict[str, Any]) -> ModelT | None:
        """``entry`` with ``override`` deep-merged over it (``entry`` itself without one)."""
        if not override:
            return entry
        merged = deep_merge(entry.model_dump(mode="json", exclude_unset=True), override)
        try:
            return validated(type(entry), merged, self.file, prefix=where)
        except ConfigError as error:
            self.problems.extend(error.problems)
            return None

    def _swept(self, prefix: Loc, entry: ModelT, point: Point, kind: str) -> ModelT | None:
        """``entry`` with the point's settings of ``kind``; a bad value is named by its axis."""
        partial = nested(point, kind)
        if not partial:
            return entry
        merged = deep_merge(entry.model_dump(mode="json", exclude_unset=True), partial)
        try:
            return validated(type(entry), merged, self.file)
        except ConfigError as error:
            for problem in error.problems:
                self.problems.append(self._sweep_problem(prefix, entry, point, problem))
            return None

    def _sweep_problem(self, prefix: Loc, entry: Any, point: Point, problem: Problem) -> Problem:
        for axis, _, value in point:
            overlap = min(len(axis.parts), len(problem.loc))
            if axis.parts[:overlap] == tuple(problem.loc[:overlap]):
                position = next(p for label, v, p in axis.values if v is value)
                where = (*prefix, "sweep", axis.path, position)
                return Problem(self.file, where, f"{entry.name}: {problem.message}")
        where = (*prefix, "sweep")
        setting = key_path(problem.loc)
        return Problem(self.file, where, f"{entry.name}: {setting}: {problem.message}")

    def _add_point(
        self,
        prefix: Loc,
        block: RunBlock,
        model: str,
        override: dict[str, Any],
        point: Point,
        tasks: dict[str, TaskEntry | None],
    ) -> None:
        """The pairs of one grid point: the model's variant on each of the block's tasks."""
        entry = self._swept(prefix, self.registry.models[model], point, "models")
        swept_tasks = {
            name: self._swept(prefix, task, point, "tasks") if task else None
            for name, task in tasks.items()
        }
        if entry is None or None in swept_tasks.values():
            return
        variant = self._variant(prefix, model, entry, point, swept_tasks)
        if variant is None:
            return
        where = (*prefix, "overrides", "models", model)
        pair_entry = self._merged(where, entry, override)
        if pair_entry is None:
            return
        for index, (name, task) in enumerate(swept_tasks.items()):
            if self._can_serve(prefix, block, model, entry, index):
                settings = {"models": override, "tasks": self._task_settings(block, name, point)}
                self._add_pair(prefix, variant.name, name, settings, pair_entry, task)

    def _variant(
        self, prefix: Loc, model: str, entry: ModelEntry, point: Point, tasks: dict[str, Any]
    ) -> Variant | None:
        """The point's variant: named after the swept settings that differ from the registry
        entries (the model's, or for a task setting, any of the block's tasks')."""
        registry = self.registry
        entries = {
            "models": [(entry, registry.models[model])],
            "tasks": [(task, registry.tasks[name]) for name, task in tasks.items()],
        }
        # each entry dumped once per point: (swept, registry) per entry of a swept kind
        dumps = {
            kind: [(_dump(swept), _dump(base)) for swept, base in entries[kind]]
            for kind in {axis.kind for axis, _, _ in point}
        }
        differing: list[tuple[Axis, str, Any]] = [
            (axis, label, value)
            for axis, label, value in point
            if any(
                value_at(swept, axis.parts) != value_at(base, axis.parts)
                for swept, base in dumps[axis.kind]
            )
        ]
        meaning = (
            model,
            frozenset((a.path, json.dumps(v, sort_keys=True)) for a, _, v in differing),
        )
        named = {axis.path: f"{axis.key}={label}" for axis, label, _ in differing}
        name = self._names.get(meaning) or variant_name(model, list(named.values()))
        seen = self._meanings.setdefault(name, (meaning, _label(key_path(prefix))))
        if seen[0] != meaning:
            message = (
                f"the variant {name!r} stands for other settings in {seen[1]}; give the values "
                "of one of the sweeps other labels"
            )
            self.problems.append(Problem(self.file, (*prefix, "sweep"), message))
            return None
        self._names.setdefault(meaning, name)
        too_long = check_name(self.file, (*prefix, "sweep"), name)
        if too_long:
            self.problems.append(too_long)
            return None
        variant = self.variants.setdefault(
            name,
            Variant(name, model, entry, {a.path: v for a, _, v in differing}, named),
        )
        variant.swept.update({axis.path: label for axis, label, _ in point})
        return variant

    def _can_serve(
        self, prefix: Loc, block: RunBlock, model: str, entry: ModelEntry, t_index: int
    ) -> bool:
        from vlmhyperbench.pipeline.backend_specs import BACKENDS

        task = block.tasks[t_index]
        kind = self.registry.tasks[task].kind
        kinds = BACKENDS[entry.backend].task_kinds
        if kind in kinds:
            return True
        m_index = block.models.index(model)
        message = (
            f"model {model!r} ({key_path((*prefix, 'models', m_index))}, backend "
            f"{entry.backend}) cannot serve task {task!r} of kind {kind!r}: the {entry.backend} "
            f"backend serves {', '.join(sorted(kinds))} tasks"
        )
        self.problems.append(Problem(self.file, (*prefix, "tasks", t_index), message))
        return False

    @staticmethod
    def _task_settings(block: RunBlock, task: str, point: Point) -> dict[str, Any]:
        """What the block changes in ``task``'s entry: overrides, limit, swept values."""
        settings = deep_merge(block.overrides.tasks.get(task, {}), nested(point, "tasks"))
        if block.limit is not None:
            settings["limit"] = block.limit
        return settings

    def _add_pair(
        self,
        prefix: Loc,
        model: str,
        task: str,
        settings: dict[str, Any],
        model_entry: ModelEntry,
        task_entry: TaskEntry,
    ) -> None:
        task_key = stable_hash(_dump(task_entry))
        key = stable_hash({"model": _dump(model_entry), "task": task_key})
        pair = RunPair(
            model, task, key_path(prefix), settings, model_entry, task_entry, task_key, key
        )
        seen = self.pairs.setdefault((model, task), pair)
        if seen.key != pair.key:
            message = (
                f"({model}, {task}) is in {_label(seen.block)} and in {_label(pair.block)} with "
                f"different settings: {seen.settings} vs {pair.settings}; list the pair once, or "
                "give both blocks the same settings"
            )
            self.problems.append(Problem(self.file, (), message))
        if self._block_perf is not None:
            self._add_perf(prefix, model, task, self._block_perf)

    def _add_perf(self, prefix: Loc, model: str, task: str, perf: PerfSettings) -> None:
        seen = self.perf.setdefault((model, task), perf)
        if seen != perf:
            message = (
                f"({model}, {task}) is load-tested by two blocks with different perf settings; "
                "give it one perf block"
            )
            self.problems.append(Problem(self.file, (*prefix, "perf"), message))


def _against_problems(experiment: Experiment) -> list[Problem]:
    """A pairwise verdict's ``against`` model answers every task the metric scores."""
    pairs = {(pair.model, pair.task) for pair in experiment.pairs}
    problems = []
    for pair, name, judge in experiment.judged_pairs():
        against = judge.verdict.against
        if against is None or (against, pair.task) in pairs:
            continue
        message = (
            f"the pairwise verdict compares against {against!r}, which this run does not "
            f"run on the task {pair.task!r}; add it to the run (or compare against a model "
            "that answers every task the metric scores)"
        )
        path = str(experiment.registry.path_of("metrics", name))
        problems.append(Problem(path, ("judge", "verdict", "against"), message))
    return list(dict.fromkeys(problems))


def _only_when_problems(experiment: Experiment) -> list[Problem]:
    """``only_when`` names a rule-based metric that every task of the judge metric has."""
    problems = []
    for pair, name, judge in experiment.judged_pairs():
        only_when = judge.only_when
        if only_when is None:
            continue
        rule = experiment.registry.metrics.get(only_when.metric)
        if only_when.metric not in pair.task_entry.metrics or rule is None or rule.judge:
            message = (
                f"{only_when.metric!r} must be a rule-based metric of every task "
                f"the judge metric scores; the task {pair.task!r} has "
                f"{', '.join(pair.task_entry.metrics)}"
            )
            path = str(experiment.registry.path_of("metrics", name))
            problems.append(Problem(path, ("judge", "only_when", "metric"), message))
    return list(dict.fromkeys(problems))
