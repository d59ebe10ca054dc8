"""What the benchmark knows about each wrapper backend, without importing it.

The backends live in the wrapper (``vlmhb_wrapper.backends``); importing one can cost seconds
(the hf backend imports torch), and the library must validate a config on a machine that has
none of their dependencies. So each backend is described here by a :class:`BackendSpec`: which
task kinds it can serve (mirroring the backend class's ``task_kinds``, checked by a test) and
what it needs on the machine before any job starts. A new backend (a layout parser, a cloud OCR
API) declares its own entry; the config validation only reads these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, get_args

from vlmhyperbench.config.schema import (
    BackendName,
    LocalModelSource,
    ModelEntry,
    TaskKind,
)

__all__ = [
    "BACKENDS",
    "BackendSpec",
    "per_request_body",
    "preflight_problems",
    "tesseract_problem",
]

ALL_KINDS: frozenset[str] = frozenset(get_args(TaskKind))


@dataclass(frozen=True)
class BackendSpec:
    #: The task kinds the backend can answer: an OCR engine reads pages, it answers no question.
    task_kinds: frozenset[str] = ALL_KINDS
    #: The model entry's settings (dotted paths) the backend takes with each request, not at
    #: start-up: variants of a model that differ only in these share one server. A task's
    #: prompts and settings are always sent per request.
    per_request: frozenset[str] = frozenset({"generation"})
    #: ``problem(model) -> message | None``: what the machine lacks to serve this model (run
    #: before any job, on local runs; a message says what to install).
    preflight: Callable[[ModelEntry], str | None] | None = field(default=None, compare=False)


def listed_debian_packages(who: str) -> list[str]:
    """The packages ``debian_packages.txt`` (the project's one list) marks for ``who``: ``demo``,
    ``test`` or ``image``; ``make demo``/``make test`` install them when missing."""
    text = files("vlmhyperbench").joinpath("debian_packages.txt").read_text(encoding="utf-8")
    rows = (line.split("#", 1)[0].split() for line in text.splitlines())
    return [row[0] for row in rows if len(row) >= 2 and who in row[1].split(",")]


def debian_package(language: str) -> str:
    """Debian's package for a Tesseract language (``chi_sim`` -> ``tesseract-ocr-chi-sim``)."""
    return "tesseract-ocr-" + language.lower().replace("_", "-")


def tesseract_problem(model: ModelEntry) -> str | None:
    """A tesseract model needs its language data (``<lang>.traineddata``) in the tessdata
    folder its ``source.path`` names; Debian installs them with ``tesseract-ocr-<lang>``."""
    if model.endpoint is not None or not isinstance(model.source, LocalModelSource):
        return None  # served elsewhere, or fetched by the job itself
    languages = (model.engine_args.languages or "eng").split("+")
    folder = Path(model.source.path).expanduser()
    missing = [lang for lang in languages if not (folder / f"{lang}.traineddata").is_file()]
    if not missing:
        return None
    packages = ["tesseract-ocr", *(debian_package(lang) for lang in missing)]
    traineddata = ", ".join(f"{lang}.traineddata" for lang in missing)
    by_make = set(packages) <= set(listed_debian_packages("demo"))
    return (
        f"model {model.name!r} (backend tesseract) needs {traineddata} in {folder}, which "
        f"{'is missing' if not folder.is_dir() else 'does not have it'}: Tesseract or its "
        f"language data is not installed{' (make demo installs it)' if by_make else ''}. "
        f"On Debian/Ubuntu: apt-get install {' '.join(packages)}"
    )


BACKENDS: dict[str, BackendSpec] = {
    "hf": BackendSpec(),
    # vLLM's chat completions take mm_processor_kwargs per request (the wrapper forwards them),
    # but vLLM sizes its encoder cache at start-up from the engine's own, and refuses a request
    # whose image needs more (a larger max_pixels than the server started with; vllm#33110):
    # here they stay a start-up setting, a server per value.
    "vllm": BackendSpec(),
    "sglang": BackendSpec(),
    "openai": BackendSpec(),
    "tesseract": BackendSpec(task_kinds=frozenset({"ocr"}), preflight=tesseract_problem),
}
assert set(BACKENDS) == set(get_args(BackendName)), "describe every backend of BackendName"


def preflight_problems(models: list[ModelEntry]) -> list[str]:
    """What the machine lacks to serve these models (empty: nothing)."""
    problems = []
    for model in models:
        check = BACKENDS[model.backend].preflight
        problem = check(model) if check is not None else None
        if problem:
            problems.append(problem)
    return problems


def per_request_body(model: ModelEntry) -> dict[str, Any]:
    """The engine arguments a request carries for ``model`` (those its backend takes per
    request and the entry sets), as the request body's fields."""
    body = {}
    for path in sorted(BACKENDS[model.backend].per_request):
        kind, _, name = path.partition(".")
        value = getattr(model.engine_args, name, None) if kind == "engine_args" else None
        if value is not None:
            body[name] = value
    return body
