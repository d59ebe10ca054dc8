"""``vlmhb import-runs``: the original VLMHyperBench run matrix (``user_config.csv``) as our config.

The original describes a benchmark as rows of ``user_config.csv`` (``;``, utf-8-sig)::

    dataset;task;framework;model_name;system_prompt;prompt_collection;metrics;
    only_evaluate_metrics;metrics_aggregators;filter_doc_class;filter_question_type

with its data in a ``data_dirs`` folder: ``Datasets/<task>/<dataset>/``,
``PromptCollections/<task>/<file>.csv`` and ``SystemPrompts/<file>.txt``. Each row becomes

- a dataset entry of type ``import`` (the importer the original task's layout needs),
- a task entry ``<task>_<dataset>`` (its kind and the metrics mapped to ours), and, where the row
  has a system prompt, a prompt collection, filters or other metrics, a variant of it,
  ``<task>_<dataset>__<label>`` with ``base:`` and only what differs,
- the model mapped to our registry's name (copied with the metrics into the output registry),
- a (model, task) pair of the ``runs:`` blocks.

A row that cannot be mapped is refused naming its line (1-based, as a spreadsheet numbers it)
and column; every row is checked and nothing is written when any is refused.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vlmhyperbench.config.errors import ConfigError
from vlmhyperbench.config.registry import Registry, load_registry
from vlmhyperbench.config.schema import NAME_PATTERN, HubSource
from vlmhyperbench.pipeline.backend_specs import BACKENDS
from vlmhyperbench.runtime.io import atomic_write, stable_hash

COLUMNS = (
    "dataset",
    "task",
    "framework",
    "model_name",
    "system_prompt",
    "prompt_collection",
    "metrics",
    "only_evaluate_metrics",
    "metrics_aggregators",
    "filter_doc_class",
    "filter_question_type",
)
#: Where the original keeps its data, beside ``user_config.csv``.
DEFAULT_DATA_DIR = Path("vlmhyperbench") / "data_dirs"


@dataclass(frozen=True)
class OriginalTask:
    """How an original task maps: our kind, the importer of its dataset layout, a prompt."""

    kind: str
    format: str
    options: dict[str, Any] = field(default_factory=dict)
    prompt: dict[str, str] = field(default_factory=dict)


#: The original's task names (``dataset_iterator.IteratorFabric``), matched case-insensitively.
ORIGINAL_TASKS: dict[str, OriginalTask] = {
    "VQA": OriginalTask("vqa", "vqa_csv"),
    "RPOClassification": OriginalTask(
        "classification",
        "multipage",
        {"kind": "classification"},
        {
            "system": "Ты — система классификации документов. Отвечай одним словом.",
            "user": "Какой это документ? Выбери один вариант: {{ labels | join(', ') }}.",
        },
    ),
    "RPOSorting": OriginalTask(
        "ordering",
        "multipage",
        {},
        {
            "system": "Ты — система сортировки страниц пакета документов.",
            "user": (
                "Тебе показаны {{ images | length }} страницы пакета в случайном порядке, "
                "пронумерованные по порядку показа начиная с 1. Расположи их в правильном "
                "порядке. Ответь списком номеров через запятую, например: 2, 3, 1."
            ),
        },
    ),
}
#: ``framework`` → our backend. "Hugging Face", the original's one framework (a hub checkpoint
#: run by transformers), takes the registry entry as it is: the entry decides how it is served.
FRAMEWORKS: dict[str, str | None] = {
    "hugging face": None,
    "huggingface": None,
    "hf": "hf",
    "transformers": "hf",
    "vllm": "vllm",
    "sglang": "sglang",
}
SERVING_BACKENDS = ("hf", "vllm", "sglang")
#: The original's metric names (lower case, ``_`` for spaces and ``-``) → ours. A name that is
#: already one of our metrics (``anls``, ``cer_corpus``, …) is taken as it is.
ORIGINAL_METRICS = {
    "cer": "cer",
    "wer": "wer",
    "bleu": "bleu",
    "accuracy": "accuracy",
    "f1": "weighted_f1",
    "precision": "weighted_precision",
    "recall": "weighted_recall",
    "kendall": "kendall_tau",
    "kendall_tau": "kendall_tau",
    "spearman": "spearman_rho",
    "spearman_rho": "spearman_rho",
    "positional_accuracy": "positional_accuracy",
    "field_exact_match": "field_exact_match",
    "pydantic_validity": "json_validity",
    "json_key_jaccard": "key_jaccard",
    "latency": "latency_p50",
    "peak_memory": "peak_memory",
}
#: The original's aggregations; every score file here has the overall value and its groups.
AGGREGATORS = ("by_id", "by_doc_question", "by_doc_type", "general")
_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            *"abvgdee",
            "zh",
            *"ziiklmnoprstuf",
            *("kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"),
        ],
        strict=True,
    )
)


class ImportRunsError(ValueError):
    """A CSV that cannot be imported: one line per problem (``file:line: column c: …``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Row:
    """One mapped row: what the written entries are made from."""

    line: int
    task: str  # the original task name, as ORIGINAL_TASKS spells it
    folder_task: str  # as the CSV writes it (the Datasets/ and PromptCollections/ folder)
    dataset: str
    dataset_dir: Path
    model: str  # our registry name (a backend variant: ``<model>__<backend>``)
    model_base: str | None  # the registry entry a backend variant is made from
    metrics: tuple[str, ...]
    system: tuple[str, str] | None = None  # (file name, first line)
    collection: Path | None = None
    doc_class: str | None = None
    question_type: str | None = None
    labels: tuple[str, ...] = ()

    @property
    def spec(self) -> OriginalTask:
        return ORIGINAL_TASKS[self.task]


@dataclass
class ImportPlan:
    """What ``import-runs`` writes: file → text (in writing order), and the run pairs."""

    config_path: Path
    files: dict[Path, str]
    pairs: list[tuple[int, str, str]]  # (CSV line, model, task)
    notes: list[str]


# ----------------------------------------------------------------------------- reading rows
def read_rows(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    """The CSV's rows with their line numbers (``;``, utf-8 with or without BOM)."""
    from vlmhyperbench.datasets.csvfile import read_csv_rows

    try:
        return list(read_csv_rows(csv_path, COLUMNS, error=ImportRunsError))
    except ImportRunsError as error:
        raise ImportRunsError([str(error)]) from None


def _literal_list(text: str) -> list[str]:
    """A Python list literal of strings (``['CER']``); an empty cell is an empty list."""
    if not text.strip():
        return []
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"not a Python list literal: {text!r} (expected e.g. ['CER'])") from None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, e.g. ['CER'], got {text!r}")
    return [v.strip() for v in value]


def slug(text: str) -> str:
    """``text`` as a registry name part: lower case, Cyrillic transliterated, anything outside
    ``[a-z0-9_.-]`` replaced by ``_``."""
    latin = "".join(_CYRILLIC.get(char, char) for char in text.lower())
    return re.sub(r"[^a-z0-9_.-]+", "_", latin).strip("_.-")


class _Mapper:
    """Maps rows against the data folder and the source registry, collecting problems."""

    def __init__(self, csv_path: Path, data_dir: Path, registry: Registry) -> None:
        self.csv_path = csv_path
        self.data_dir = data_dir
        self.registry = registry
        self.problems: list[str] = []
        self._values: dict[Path, dict[str, set[str]] | None] = {}
        self._labels: dict[Path, tuple[str, ...]] = {}

    def refuse(self, line: int, column: str, message: str) -> None:
        self.problems.append(f"{self.csv_path}:{line}: column {column}: {message}")

    def row(self, line: int, cells: dict[str, str]) -> Row | None:
        before = len(self.problems)
        task = self.task(line, cells["task"].strip())
        model = self.model(line, cells["framework"].strip(), cells["model_name"].strip())
        self.check_flags(line, cells)
        if task is None:
            return None
        kind = ORIGINAL_TASKS[task].kind
        metrics = self.metrics(line, cells["metrics"], kind)
        dataset_dir = self.dataset(line, cells["task"].strip(), cells["dataset"].strip(), task)
        if model is not None and kind not in BACKENDS[model[2]].task_kinds:
            served = ", ".join(sorted(BACKENDS[model[2]].task_kinds))
            self.refuse(line, "model_name", f"backend {model[2]} serves {served} tasks, not {kind}")
        values = self.dataset_values(task, dataset_dir) if dataset_dir else None
        system = self.system_prompt(line, cells["system_prompt"].strip())
        collection = self.collection(line, cells, values)
        doc_class = self.filter(line, cells, "doc_class", values)
        question_type = self.filter(line, cells, "question_type", values)
        if len(self.problems) > before or model is None or dataset_dir is None:
            return None
        return Row(
            line=line,
            task=task,
            folder_task=cells["task"].strip(),
            dataset=cells["dataset"].strip(),
            dataset_dir=dataset_dir,
            model=model[0],
            model_base=model[1],
            metrics=tuple(metrics),
            system=system,
            collection=collection,
            doc_class=doc_class,
            question_type=question_type,
            labels=self._labels.get(dataset_dir, ()) if kind == "classification" else (),
        )

    # ------------------------------------------------------------------ columns
    def task(self, line: int, name: str) -> str | None:
        found = {key.lower(): key for key in ORIGINAL_TASKS}.get(name.lower())
        if found is None:
            known = ", ".join(f"{k} ({v.kind})" for k, v in ORIGINAL_TASKS.items())
            self.refuse(line, "task", f"unknown task {name!r}; known tasks: {known}")
        return found

    def model(
        self, line: int, framework: str, model_name: str
    ) -> tuple[str, str | None, str] | None:
        """(our model name, the base of a backend variant or None, backend)."""
        known_framework = framework.lower() in FRAMEWORKS
        if not known_framework:
            known = "Hugging Face, transformers, vLLM, SGLang"
            self.refuse(line, "framework", f"unknown framework {framework!r}; known: {known}")
        index = _model_index(self.registry)
        name = index.get(model_name.lower())
        if name is None:
            known = ", ".join(_model_aliases(self.registry))
            self.refuse(
                line,
                "model_name",
                f"unknown model {model_name!r}; known models: {known} (add an entry under "
                f"{self.registry.root / 'models'} for another)",
            )
            return None
        if not known_framework:
            return None
        own = self.registry.models[name].backend
        backend = FRAMEWORKS[framework.lower()] or own
        if own == backend:
            return name, None, backend
        if own not in SERVING_BACKENDS:
            self.refuse(line, "framework", f"model {name!r} runs on {own}, not on {framework!r}")
            return None
        return f"{name}__{backend}", name, backend

    def metrics(self, line: int, text: str, kind: str) -> list[str]:
        try:
            names = _literal_list(text)
        except ValueError as error:
            self.refuse(line, "metrics", str(error))
            return []
        if not names:
            self.refuse(line, "metrics", "no metric; give at least one, e.g. ['CER']")
        mapped = []
        for original in names:
            key = re.sub(r"[\s-]+", "_", original.strip().lower())
            ours = ORIGINAL_METRICS.get(key, key)
            metric = self.registry.metrics.get(ours)
            if metric is None:
                self.refuse(
                    line,
                    "metrics",
                    f"unknown metric {original!r}; known: {', '.join(sorted(ORIGINAL_METRICS))}, "
                    f"or a metric of the registry ({', '.join(sorted(self.registry.metrics))})",
                )
            elif kind not in metric.task_kinds:
                fits = ", ".join(metric.task_kinds)
                self.refuse(
                    line,
                    "metrics",
                    f"{original!r} ({ours}) does not fit {kind} tasks (it fits: {fits})",
                )
            elif ours not in mapped:
                mapped.append(ours)
        return mapped

    def check_flags(self, line: int, cells: dict[str, str]) -> None:
        """``metrics_aggregators`` and ``only_evaluate_metrics`` change nothing here (every score
        has its overall value and groups; Snakemake re-runs only what is missing), but a value
        the original would not take is still a mistake worth saying."""
        try:
            unknown = [
                a for a in _literal_list(cells["metrics_aggregators"]) if a not in AGGREGATORS
            ]
        except ValueError as error:
            self.refuse(line, "metrics_aggregators", str(error))
        else:
            if unknown:
                known = ", ".join(AGGREGATORS)
                self.refuse(line, "metrics_aggregators", f"unknown {unknown}; known: {known}")
        flag = cells["only_evaluate_metrics"].strip().lower()
        if flag not in ("", "true", "false", "0", "1"):
            self.refuse(line, "only_evaluate_metrics", f"expected True or False, got {flag!r}")

    def dataset(self, line: int, folder_task: str, name: str, task: str) -> Path | None:
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            self.refuse(line, "dataset", f"expected a folder name under Datasets/, got {name!r}")
            return None
        folder = self.data_dir / "Datasets" / folder_task / name
        if not folder.is_dir():
            self.refuse(line, "dataset", f"dataset folder not found: {folder}")
            return None
        spec = ORIGINAL_TASKS[task]
        needs = ["annotation.csv"] if spec.format == "vqa_csv" else ["images", "jsons"]
        missing = [n for n in needs if not (folder / n).exists()]
        if missing:
            self.refuse(
                line,
                "dataset",
                f"{folder} has no {', '.join(missing)}: not the original {task} layout "
                f"({spec.format} needs {', '.join(needs)})",
            )
            return None
        return folder

    def dataset_values(self, task: str, folder: Path) -> dict[str, set[str]] | None:
        """The dataset's doc_class and question_type values (to check filters and prompt
        collections against), read once per folder; None where the layout has none."""
        if folder not in self._values:
            self._values[folder] = _read_values(ORIGINAL_TASKS[task], folder, self._labels)
        return self._values[folder]

    def system_prompt(self, line: int, name: str) -> tuple[str, str] | None:
        """The first line of ``SystemPrompts/<name>`` (``.txt`` may be left out)."""
        if not name:
            return None
        path = self.data_dir / "SystemPrompts" / name
        if not path.is_file() and not path.suffix:
            path = path.with_name(path.name + ".txt")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            self.refuse(line, "system_prompt", f"file not found: {path}")
            return None
        except (OSError, UnicodeDecodeError) as error:
            self.refuse(line, "system_prompt", f"{path}: cannot read it ({error})")
            return None
        first = text.splitlines()[0].strip() if text.strip() else ""
        if not first:
            self.refuse(line, "system_prompt", f"{path}: the first line is empty")
            return None
        return path.name, first

    def collection(
        self, line: int, cells: dict[str, str], values: dict[str, set[str]] | None
    ) -> Path | None:
        name = cells["prompt_collection"].strip()
        if not name:
            return None
        from vlmhyperbench.inference.prompts import PromptCollection

        path = self.data_dir / "PromptCollections" / cells["task"].strip() / name
        if not path.is_file():
            self.refuse(line, "prompt_collection", f"file not found: {path}")
            return None
        try:
            collection = PromptCollection.read(path)
            if values is not None:
                collection.check_doc_classes(values["doc_class"], cells["dataset"].strip())
        except ConfigError as error:
            self.refuse(line, "prompt_collection", str(error))
            return None
        return path

    def filter(
        self, line: int, cells: dict[str, str], key: str, values: dict[str, set[str]] | None
    ) -> str | None:
        column = f"filter_{key}"
        value = cells[column].strip()
        if not value:
            return None
        if values is not None and value not in values[key]:
            known = ", ".join(sorted(values[key])) or "none"
            self.refuse(
                line,
                column,
                f"no sample of dataset {cells['dataset'].strip()!r} has {key} {value!r}; "
                f"its {key} values: {known}",
            )
        return value


def _read_values(
    spec: OriginalTask, folder: Path, labels: dict[Path, tuple[str, ...]]
) -> dict[str, set[str]] | None:
    """doc_class and question_type values of an original dataset (and, for a classification
    task, its classes into ``labels``). Problems with the files are left to the importer."""
    from vlmhyperbench.datasets.csvfile import read_csv_rows
    from vlmhyperbench.datasets.importers import DatasetImportError
    from vlmhyperbench.datasets.importers.multipage import read_pages
    from vlmhyperbench.datasets.importers.vqa_csv import COLUMNS as VQA_COLUMNS

    values: dict[str, set[str]] = {"doc_class": set(), "question_type": set()}
    try:
        if spec.format == "vqa_csv":
            for _, row in read_csv_rows(folder / "annotation.csv", VQA_COLUMNS):
                values["doc_class"].add(row["doc_class"].strip())
                values["question_type"].add(row["question_type"].strip())
        elif spec.kind == "classification":
            for path in sorted((folder / "jsons").glob("*.json")):
                values["doc_class"].update(page["doc_class"] for page in read_pages(path))
            values["question_type"].add("page_class")
            labels[folder] = tuple(sorted(values["doc_class"]))
        else:
            values["question_type"].add("page_order")  # bundles have no doc_class
    except (ValueError, DatasetImportError):
        return None
    values["doc_class"].discard("")
    values["question_type"].discard("")
    return values


def _model_index(registry: Registry) -> dict[str, str]:
    """The names an original row may give a model by (the entry's name, the last part of its
    hub id, lower case) → the entry; an entry that is not a variant wins a shared name."""
    index: dict[str, str] = {}
    entries = sorted(registry.models.items(), key=lambda item: (item[1].base is not None, item[0]))
    for name, entry in entries:
        index.setdefault(name.lower(), name)
        if isinstance(entry.source, HubSource):
            index.setdefault(entry.source.id.rsplit("/", 1)[-1].lower(), name)
    return index


def _model_aliases(registry: Registry) -> list[str]:
    shown = []
    for name, entry in sorted(registry.models.items()):
        hub = entry.source.id.rsplit("/", 1)[-1] if isinstance(entry.source, HubSource) else None
        shown.append(f"{hub} ({name})" if hub and hub != name else name)
    return shown


# ----------------------------------------------------------------------------- the plan
def plan_import(
    csv_path: str | Path,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    registry_dir: str | Path = "config",
) -> ImportPlan:
    """Map every row of ``csv_path`` (refusing the file if any row cannot be mapped) into the
    files to write under ``out_dir``: ``config.yaml`` and the registry beside it."""
    csv_path = Path(csv_path)
    data_dir = Path(data_dir) if data_dir is not None else csv_path.parent / DEFAULT_DATA_DIR
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(csv_path)
    if not csv_path.is_file():
        raise ImportRunsError([f"{csv_path}: not found"])
    if not data_dir.is_dir():
        raise ImportRunsError(
            [
                f"{data_dir}: data folder not found (the original data_dirs with Datasets/; "
                "give it with --data-dir)"
            ]
        )
    try:
        registry = load_registry(registry_dir)
    except ConfigError as error:
        raise ImportRunsError([f"the registry {registry_dir} is not valid:", str(error)]) from None
    cells = read_rows(csv_path)
    if not cells:
        raise ImportRunsError([f"{csv_path}: no rows below the header"])
    mapper = _Mapper(csv_path, data_dir, registry)
    rows = [row for line, values in cells if (row := mapper.row(line, values)) is not None]
    if mapper.problems:
        raise ImportRunsError(mapper.problems)
    return _Builder(csv_path, data_dir, out_dir, registry).build(rows)


def default_out_dir(csv_path: Path) -> Path:
    """``imported/<csv name>`` in the working directory (where the pipeline runs)."""
    return Path("imported") / (slug(csv_path.stem) or "runs")


class _Builder:
    """Names the entries and renders every file of the plan."""

    def __init__(self, csv_path: Path, data_dir: Path, out_dir: Path, registry: Registry) -> None:
        self.csv_path = csv_path
        self.data_dir = data_dir
        self.out_dir = out_dir
        self.registry = registry
        self.files: dict[Path, str] = {}
        self.notes: list[str] = []

    def build(self, rows: list[Row]) -> ImportPlan:
        firsts: dict[Path, Row] = {}
        for row in rows:
            firsts.setdefault(row.dataset_dir, row)
        datasets = _dataset_names(firsts)
        names = _unique({f: f"{slug(r.task)}_{slug(r.dataset)}" for f, r in firsts.items()})
        bases = {folder: (names[folder], row) for folder, row in firsts.items()}
        self._copies(rows)
        for folder, (name, first) in bases.items():
            self._dataset(datasets[folder], first)
            lines = [row.line for row in rows if row.dataset_dir == folder]
            self._base_task(name, datasets[folder], first, lines)
        task_of = self._variants(rows, bases)
        pairs: list[tuple[int, str, str]] = []
        seen: dict[tuple[str, str], int] = {}
        for row in rows:
            pair = (row.model, task_of[row.line])
            if pair in seen:
                self.notes.append(f"line {row.line} repeats line {seen[pair]}: {pair}")
                continue
            seen[pair] = row.line
            pairs.append((row.line, *pair))
        config_path = self.out_dir / "config.yaml"
        self.files[config_path] = self._config(pairs)
        return ImportPlan(config_path, self.files, pairs, self.notes)

    # ------------------------------------------------------------------ tasks
    def _variants(self, rows: list[Row], bases: dict[Path, tuple[str, Row]]) -> dict[int, str]:
        """Each row's task: its base task, or a variant ``<base>__<label>`` holding what the row
        changes (prompts, filters, metrics), one file per distinct change."""
        task_of: dict[int, str] = {}
        changes: dict[str, dict[tuple, tuple[list[str], Row, list[int]]]] = {}
        for row in rows:
            base, first = bases[row.dataset_dir]
            metrics = row.metrics if row.metrics != first.metrics else ()
            key = (row.system, row.collection, row.doc_class, row.question_type, metrics)
            if not any(key):
                task_of[row.line] = base
                continue
            parts = [
                Path(row.system[0]).stem if row.system else "",
                row.collection.stem if row.collection else "",
                row.doc_class or "",
                row.question_type or "",
                "-".join(metrics),
            ]
            entry = changes.setdefault(base, {}).setdefault(key, ([], row, []))
            entry[0][:] = [slug(p) for p in parts if p]
            entry[2].append(row.line)
        for base, variants in changes.items():
            labels = _unique({key: f"{base}__{'_'.join(v[0])}" for key, v in variants.items()})
            for key, (_, row, lines) in variants.items():
                name = labels[key]
                self._variant_task(name, base, row, key[4], lines)
                task_of.update(dict.fromkeys(lines, name))
        return task_of

    def _base_task(self, name: str, dataset: str, row: Row, lines: list[int]) -> None:
        spec = row.spec
        entry: dict[str, Any] = {
            "description": f"{row.task} on {row.dataset} (imported from {self.csv_path.name})",
            "kind": spec.kind,
            "dataset": dataset,
        }
        if row.labels:
            entry["labels"] = list(row.labels)
        if spec.prompt:
            entry["prompt"] = dict(spec.prompt)
        entry["metrics"] = list(row.metrics)
        self._entry("tasks", name, entry, lines)

    def _variant_task(
        self, name: str, base: str, row: Row, metrics: tuple[str, ...], lines: list[int]
    ) -> None:
        said, prompt, filters = [], {}, {}
        if row.system:
            prompt["system"] = _literal_template(row.system[1])
            said.append(f"system prompt {row.system[0]} (its first line)")
        if row.collection:
            prompt["collection"] = _portable(row.collection, self.out_dir / "tasks")
            said.append(f"prompt collection {row.collection.name}")
        for key in ("doc_class", "question_type"):
            if getattr(row, key):
                filters[key] = [getattr(row, key)]
                said.append(f"{key} {getattr(row, key)}")
        if metrics:
            said.append(f"metrics {', '.join(metrics)}")
        entry: dict[str, Any] = {"base": base, "description": f"{base} with {', '.join(said)}"}
        if prompt:
            entry["prompt"] = prompt
        if filters:
            entry["filters"] = filters
        if metrics:
            entry["metrics"] = list(metrics)
        self._entry("tasks", name, entry, lines)

    # ------------------------------------------------------------------ other entries
    def _dataset(self, name: str, row: Row) -> None:
        spec = row.spec
        source: dict[str, Any] = {
            "type": "import",
            "format": spec.format,
            "path": os.path.normpath(row.dataset_dir),
        }
        if spec.options:
            source["options"] = dict(spec.options)
        entry = {
            "description": (
                f"{row.dataset} in the original VLMHyperBench layout "
                f"(Datasets/{row.folder_task}/{row.dataset}), imported by the pipeline"
            ),
            "source": source,
        }
        self._entry("datasets", name, entry, [row.line])

    def _copies(self, rows: list[Row]) -> None:
        """The models and metrics the rows use, copied from the source registry (with the
        entries they are variants of), and each backend variant."""
        models: dict[str, None] = {}
        for row in rows:
            models.update(dict.fromkeys(self._chain("models", row.model_base or row.model)))
            if row.model_base is not None:
                backend = row.model.rsplit("__", 1)[1]
                entry = {
                    "base": row.model_base,
                    "description": f"{row.model_base} on the {backend} backend",
                    "backend": backend,
                }
                lines = [r.line for r in rows if r.model == row.model]
                self._entry("models", row.model, entry, lines)
        metrics = {m: None for row in rows for m in row.metrics}
        for kind, names in (("models", models), ("metrics", metrics)):
            for name in names:
                for link in self._chain(kind, name):
                    source = self.registry.path_of(kind, link)
                    path = self.out_dir / kind / f"{link}.yaml"
                    self.files.setdefault(path, source.read_text(encoding="utf-8"))

    def _chain(self, kind: str, name: str) -> list[str]:
        """``name`` and the entries it is a variant of."""
        chain = [name]
        while (base := getattr(self.registry, kind)[chain[-1]].base) is not None:
            chain.append(base)
        return chain

    def _entry(self, kind: str, name: str, entry: dict[str, Any], lines: list[int]) -> None:
        numbers = sorted(set(lines))
        where = ("line " if len(numbers) == 1 else "lines ") + ", ".join(map(str, numbers))
        header = f"# Imported by `vlmhb import-runs` from {self.csv_path} ({where})."
        self.files[self.out_dir / kind / f"{name}.yaml"] = _yaml(header, entry)

    def _config(self, pairs: list[tuple[int, str, str]]) -> str:
        """``runs:`` blocks: the tasks that run on the same models share one block."""
        models_of: dict[str, list[str]] = {}
        for _, model, task in pairs:
            models_of.setdefault(task, []).append(model)
        blocks: dict[tuple[str, ...], list[str]] = {}
        for task, models in models_of.items():
            blocks.setdefault(tuple(models), []).append(task)
        config = {
            "name": self.csv_path.stem,
            "registry_dir": os.path.normpath(self.out_dir),
            "runs": [{"models": list(m), "tasks": t} for m, t in blocks.items()],
        }
        header = "\n".join(
            [
                f"# Imported by `vlmhb import-runs` from {self.csv_path}",
                f"# data: {self.data_dir}",
                "# Entries live in the registry beside this file;",
                "# a task named <task>__<label> is a variant of <task> (base: <task>) with a",
                "# row's own system prompt, prompt collection, filters or metrics.",
                f"# Check: vlmhb validate --config {self.out_dir / 'config.yaml'}",
            ]
        )
        return _yaml(header, config)


def _unique(candidates: dict[Any, str]) -> dict[Any, str]:
    """Names made unique and valid: one shared by several keys, too long or not a valid name
    gets a short hash of its key."""
    counts: dict[str, int] = {}
    for name in candidates.values():
        counts[name] = counts.get(name, 0) + 1
    unique = {}
    for key, name in candidates.items():
        if counts[name] > 1 or len(name) > 100 or not re.fullmatch(NAME_PATTERN, name):
            name = f"{name[:90]}_{stable_hash(repr(key), 6)}".lstrip("_.-")
        unique[key] = name
    return unique


def _dataset_names(folders: dict[Path, Row]) -> dict[Path, str]:
    """A dataset's name; one that two original tasks share gets the task's name too."""
    names = {folder: slug(row.dataset) for folder, row in folders.items()}
    shared = {n for n in names.values() if list(names.values()).count(n) > 1}
    for folder, row in folders.items():
        if names[folder] in shared:
            names[folder] = f"{names[folder]}_{slug(row.folder_task)}"
    return _unique(names)


def _literal_template(text: str) -> str:
    """A system prompt taken as written: Jinja2 markup in it is not a template."""
    if any(mark in text for mark in ("{{", "{%", "{#")):
        return "{% raw %}" + text + "{% endraw %}"
    return text


def _portable(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` where they share a folder above the root, else absolute."""
    target, origin = os.path.abspath(path), os.path.abspath(start)
    if os.path.commonpath([target, origin]) == os.path.sep:
        return target
    return os.path.relpath(target, origin)


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values on one line (``metrics: [cer, wer]``)."""


def _list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flow = all(isinstance(item, str | int | float) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_Dumper.add_representer(list, _list)


def _yaml(header: str, data: dict[str, Any]) -> str:
    body = yaml.dump(
        data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, default_flow_style=False
    )
    return f"{header}\n{body}"


# ----------------------------------------------------------------------------- writing
def write_plan(plan: ImportPlan, force: bool = False) -> list[tuple[Path, str]]:
    """Write the plan's files (each to a temporary file, then renamed into place; the config
    last). An existing file with other content is refused, all of them named and nothing
    written, unless ``force``; one with the same content is left as it is."""
    status: dict[Path, str] = {}
    conflicts = []
    for path, text in plan.files.items():
        if not path.exists():
            status[path] = "written"
        elif path.is_file() and path.read_text(encoding="utf-8") == text:
            status[path] = "unchanged"
        else:
            status[path] = "replaced"
            conflicts.append(path)
    if conflicts and not force:
        raise ImportRunsError(
            [f"{path}: exists with other content (--force replaces it)" for path in conflicts]
        )
    for path, text in plan.files.items():
        if status[path] != "unchanged":
            with atomic_write(path) as handle:
                handle.write(text)
    return list(status.items())


def import_runs(
    csv_path: str | Path,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    registry_dir: str | Path = "config",
    force: bool = False,
) -> tuple[ImportPlan, list[tuple[Path, str]]]:
    """:func:`plan_import`, then :func:`write_plan`."""
    plan = plan_import(csv_path, data_dir, out_dir, registry_dir)
    return plan, write_plan(plan, force)
