"""Backend registry: names -> :class:`~vlmhb_wrapper.backends.base.Backend` subclasses.

Backends are discovered through the ``vlmhyperbench.backends`` entry-point group (so third
parties can add one by installing a package), with a built-in table as fallback so the wrapper
also works from a source checkout that was never pip-installed.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from vlmhb_wrapper.backends.base import Backend

__all__ = ["ENTRY_POINT_GROUP", "available_backends", "resolve_backend"]

ENTRY_POINT_GROUP = "vlmhyperbench.backends"

_BUILTIN: dict[str, str] = {
    "hf": "vlmhb_wrapper.backends.hf:HFBackend",
    "vllm": "vlmhb_wrapper.backends.engine:VLLMBackend",
    "sglang": "vlmhb_wrapper.backends.engine:SGLangBackend",
    "openai": "vlmhb_wrapper.backends.proxy:OpenAIBackend",
    "tesseract": "vlmhb_wrapper.backends.tesseract:TesseractBackend",
}


def available_backends() -> list[str]:
    names = set(_BUILTIN)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def resolve_backend(name: str) -> type[Backend]:
    """Return the backend class registered as ``name`` (entry points win over built-ins)."""
    matches = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if matches:
        obj = next(iter(matches)).load()
    elif name in _BUILTIN:
        module_name, _, attr = _BUILTIN[name].partition(":")
        obj = getattr(importlib.import_module(module_name), attr)
    else:
        raise KeyError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")
    if not (isinstance(obj, type) and issubclass(obj, Backend)):
        raise TypeError(f"backend {name!r} resolved to {obj!r}, which is not a Backend subclass")
    return obj
