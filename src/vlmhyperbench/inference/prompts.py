"""A task's prompts: Jinja2 templates, per-class variants, the original prompt collections.

Resolution, for the system and the user template separately:
``fixed_*`` > ``"{doc_class} {question_type}"`` (``by_doc_question``, then the collection CSV) >
``by_doc_class`` > the task default. The original VLMHyperBench needed doc_class *and*
question_type to find a prompt; here each level works alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from vlmhyperbench.config.errors import ConfigError
from vlmhyperbench.config.schema import TaskEntry
from vlmhyperbench.datasets.csvfile import read_csv_rows
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.runtime.io import stable_hash

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)

COLLECTION_COLUMNS = ("prompt", "doc_class_question_type")


@dataclass(frozen=True)
class RenderedPrompt:
    system: str | None
    user: str


@dataclass(frozen=True)
class CollectionEntry:
    prompt: str
    line: int


@dataclass(frozen=True)
class PromptCollection:
    """An original-format prompt collection: ``prompt;doc_class_question_type;…`` (``;``, utf-8
    with or without BOM), looked up by ``"{doc_class} {question_type}"``."""

    path: Path
    entries: dict[str, CollectionEntry] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> PromptCollection:
        entries: dict[str, CollectionEntry] = {}
        for line, row in read_csv_rows(path, COLLECTION_COLUMNS, error=ConfigError):
            key = " ".join(row["doc_class_question_type"].split())
            if len(key.split(" ", 1)) != 2:
                raise ConfigError(
                    f"{path}:{line}: doc_class_question_type must be "
                    f"'<doc_class> <question_type>', got {row['doc_class_question_type']!r}"
                )
            if key in entries:
                raise ConfigError(
                    f"{path}:{line}: duplicate key {key!r} (first on line {entries[key].line})"
                )
            entries[key] = CollectionEntry(prompt=row["prompt"].strip(), line=line)
        return cls(path=path, entries=entries)

    def check_doc_classes(self, known: set[str], dataset: str) -> None:
        """An entry for a doc_class the dataset does not have is a typo, not a silent no-op."""
        for key, entry in self.entries.items():
            doc_class = key.split(" ", 1)[0]
            if doc_class not in known:
                raise ConfigError(
                    f"{self.path}:{entry.line}: unknown doc_class {doc_class!r} for dataset "
                    f"{dataset!r}; known: {', '.join(sorted(known))}"
                )


def template_environment() -> SandboxedEnvironment:
    """The one Jinja2 environment of prompt templates (the task's and the judge's)."""
    return _ENV


@lru_cache(maxsize=512)
def compile_template(source: str) -> jinja2.Template:
    """A prompt template (sandboxed Jinja2; an undefined variable is an error), compiled once."""
    return _ENV.from_string(source)


def _compile_checked(source: str, where: str) -> None:
    try:
        compile_template(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where}: template error on line {exc.lineno}: {exc.message}") from None


@dataclass(frozen=True)
class TaskPrompts:
    """The task's templates with files read and every template compiled (at parse time)."""

    task: TaskEntry
    default_system: str | None
    collection: PromptCollection | None

    @classmethod
    def load(cls, task: TaskEntry, task_file: Path | str) -> TaskPrompts:
        task_file = Path(task_file)
        base = task_file.parent
        prompt = task.prompt
        default_system = prompt.system
        if prompt.system_file:
            path = _relative_to(base, prompt.system_file)
            try:
                default_system = path.read_text(encoding="utf-8-sig").strip()
            except FileNotFoundError:
                raise ConfigError(f"{task_file}: prompt.system_file: {path} not found") from None
        collection = (
            PromptCollection.read(_relative_to(base, prompt.collection))
            if prompt.collection
            else None
        )
        prompts = cls(task=task, default_system=default_system, collection=collection)
        prompts._check_templates(task_file)
        return prompts

    def _check_templates(self, task_file: Path) -> None:
        prompt = self.task.prompt
        checks: list[tuple[str | None, str]] = [
            (self.default_system, f"{task_file}: prompt.system"),
            (prompt.user, f"{task_file}: prompt.user"),
            (prompt.fixed_system, f"{task_file}: prompt.fixed_system"),
            (prompt.fixed_user, f"{task_file}: prompt.fixed_user"),
        ]
        for level in ("by_doc_class", "by_doc_question"):
            for key, variant in getattr(prompt, level).items():
                checks.append((variant.system, f"{task_file}: prompt.{level}.{key}.system"))
                checks.append((variant.user, f"{task_file}: prompt.{level}.{key}.user"))
        if self.collection:
            for entry in self.collection.entries.values():
                checks.append((entry.prompt, f"{self.collection.path}:{entry.line}"))
        for source, where in checks:
            if source is not None:
                _compile_checked(source, where)

    def templates_for(self, sample: Sample) -> tuple[str | None, str]:
        """(system, user) template sources for a sample, by the resolution order."""
        prompt = self.task.prompt
        key = f"{sample.doc_class} {sample.question_type}"
        pair = prompt.by_doc_question.get(key)
        by_class = prompt.by_doc_class.get(sample.doc_class or "")
        from_collection = self.collection.entries.get(key) if self.collection else None

        system = prompt.fixed_system
        if system is None:
            system = next(
                (v.system for v in (pair, by_class) if v is not None and v.system is not None),
                self.default_system,
            )
        user = prompt.fixed_user
        if user is None and pair is not None and pair.user is not None:
            user = pair.user
        if user is None and from_collection is not None:
            user = from_collection.prompt
        if user is None and by_class is not None and by_class.user is not None:
            user = by_class.user
        return system, user if user is not None else prompt.user

    def render(self, sample: Sample) -> RenderedPrompt:
        system_source, user_source = self.templates_for(sample)
        context: dict[str, Any] = {
            **sample.model_dump(),
            "field": sample.meta.get("field"),
            "fields": self.task.fields or sample.meta.get("fields", []),
            "labels": self.task.labels,
            "task": self.task.name,
        }
        try:
            system = compile_template(system_source).render(context) if system_source else None
            user = compile_template(user_source).render(context)
        except jinja2.UndefinedError as exc:
            raise ValueError(
                f"task {self.task.name!r}, sample {sample.id!r}: prompt template: {exc}"
            ) from exc
        return RenderedPrompt(system=system.strip() if system else None, user=user.strip())

    def fingerprint(self) -> str:
        """Everything that decides the text sent: templates, the system file's text, the
        collection's entries."""
        return stable_hash(
            {
                "prompt": self.task.prompt.model_dump(exclude={"system_file", "collection"}),
                "default_system": self.default_system,
                "collection": {k: e.prompt for k, e in self.collection.entries.items()}
                if self.collection
                else None,
                "fields": self.task.fields,
                "labels": self.task.labels,
            }
        )


def _relative_to(base: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base / candidate
