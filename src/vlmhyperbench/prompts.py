"""Render a task's Jinja2 prompt templates for one sample."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from vlmhyperbench.config.errors import ConfigError
from vlmhyperbench.config.schema import TaskEntry
from vlmhyperbench.datasets.manifest import Sample

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@dataclass(frozen=True)
class RenderedPrompt:
    system: str | None
    user: str


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def check_templates(task: TaskEntry, where: str) -> None:
    """Compile the templates at parse time so a syntax error stops the workflow before any job."""
    for key in ("system", "user"):
        source = getattr(task.prompt, key)
        if source is None:
            continue
        try:
            _compile(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"{where}: prompt.{key}: template error on line {exc.lineno}: {exc.message}"
            ) from None


def render_prompt(task: TaskEntry, sample: Sample) -> RenderedPrompt:
    """The variables a template sees: the sample's fields, ``field`` (meta.field) and the task's
    labels."""
    context = {
        **sample.model_dump(),
        "field": sample.meta.get("field"),
        "labels": task.labels,
        "task": task.name,
    }
    try:
        system = _compile(task.prompt.system).render(context) if task.prompt.system else None
        user = _compile(task.prompt.user).render(context)
    except jinja2.UndefinedError as exc:
        raise ValueError(
            f"task {task.name!r}, sample {sample.id!r}: prompt template: {exc}"
        ) from exc
    return RenderedPrompt(system=system.strip() if system else None, user=user.strip())
