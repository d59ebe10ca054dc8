"""The source a metric's result depends on, for the score fingerprint.

Starting from the implementation (``module:function``), collect the definition of the function
and, transitively, of every top-level name of the same top-level package that it references:
helpers, constants, tables, classes, and module-level statements that mention a collected name
(``fn.batch = …``, ``_with_row_columns(fn, …)``). Imports are followed to the defining module.
Definitions are compared as their AST without docstrings, so reformatting or editing comments
and docs re-runs nothing, while editing one metric changes only its own hash (and a shared
helper changes the hash of every metric that uses it). Third-party modules the collected code
imports contribute their distribution version (a new sacrebleu re-scores BLEU).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vlmhyperbench.runtime.io import stable_hash


@dataclass
class _Module:
    name: str
    defs: dict[str, list[ast.stmt]] = field(default_factory=dict)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    mentions: dict[str, list[ast.stmt]] = field(default_factory=dict)


def _package_relative(module: str, level: int, target: str | None, is_package: bool) -> str:
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def _names_in(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            chain = []
            current: ast.AST = sub
            while isinstance(current, ast.Attribute):
                chain.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name):
                names.add(".".join([current.id, *reversed(chain)]))
    return names


def _defined_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    out = []
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                out.append(sub.id)
    return out


@functools.lru_cache(maxsize=256)
def _parse(module_name: str) -> _Module | None:
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    is_package = spec.submodule_search_locations is not None
    info = _Module(module_name)
    for stmt in tree.body:
        if _record_imports(stmt, info, is_package):
            continue
        defined = _defined_names(stmt)
        for name in defined:
            info.defs.setdefault(name, []).append(stmt)
        if not defined:
            # Statements that configure a name without assigning it (calls such as
            # ``_with_row_columns(fn, columns)``); ``fn.attr = …`` counts as a definition of fn.
            for name in {n.split(".")[0] for n in _names_in(stmt)}:
                info.mentions.setdefault(name, []).append(stmt)
    info.mentions = {k: v for k, v in info.mentions.items() if k in info.defs}
    return info


def _record_imports(stmt: ast.stmt, info: _Module, is_package: bool) -> bool:
    """Record what an import statement binds; ``try: import … except ImportError: …`` (an
    optional dependency) counts as the import it tries."""
    if isinstance(stmt, ast.Try):
        imports = [s for s in stmt.body if isinstance(s, ast.Import | ast.ImportFrom)]
        for sub in imports:
            _record_imports(sub, info, is_package)
        return bool(imports)
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            if alias.asname:
                info.imports[alias.asname] = (alias.name, None)
            else:
                top = alias.name.split(".")[0]
                info.imports[top] = (top, None)
        return True
    if isinstance(stmt, ast.ImportFrom):
        source = (
            _package_relative(info.name, stmt.level, stmt.module, is_package)
            if stmt.level
            else stmt.module or ""
        )
        for alias in stmt.names:
            info.imports[alias.asname or alias.name] = (source, alias.name)
        return True
    return False


def _strip_docstrings(node: ast.AST) -> ast.AST:
    node = ast.parse(ast.unparse(node)) if not isinstance(node, ast.Module) else node
    for sub in ast.walk(node):
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = sub.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                sub.body = body[1:] or [ast.Pass()]
    return node


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=64)
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _named_distribution(top: str) -> importlib.metadata.Distribution | None:
    """The distribution named like the top-level module, where it holds that module (numpy,
    pandas, rapidfuzz, …): found without reading every installed package's metadata, which
    ``packages_distributions()`` does (~0.3 s of a dry run)."""
    try:
        dist = importlib.metadata.distribution(top)
    except importlib.metadata.PackageNotFoundError:
        return None
    tops = (dist.read_text("top_level.txt") or "").split()
    if tops:
        return dist if top in tops else None
    files = dist.files or []
    return dist if any(str(f).startswith((f"{top}/", f"{top}.py")) for f in files) else None


@functools.cache
def _version_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names:
        return None
    dist = _named_distribution(top)
    if dist is not None:
        return f"{dist.metadata['Name']}=={dist.version}"
    for dist in _distributions().get(top, []):
        try:
            return f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def dependency_sources(import_path: str) -> dict[str, str]:
    """``{"module:name": AST dump}`` of everything ``import_path`` depends on in its package,
    plus ``{"dist:NAME": version}`` of the third-party distributions that code imports."""
    module_name, _, attr = import_path.partition(":")
    root = module_name.split(".")[0]
    start = _parse(module_name)
    if start is None:
        raise ImportError(f"{import_path!r}: no Python source found for {module_name!r}")
    head = attr.split(".")[0]
    if head not in start.defs and head not in start.imports:
        raise ValueError(f"{import_path!r}: {head!r} is not defined in {module_name!r}")
    collected: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    pending = [(module_name, attr.split(".")[0])]
    while pending:
        module, name = pending.pop()
        if (module, name) in seen:
            continue
        seen.add((module, name))
        info = _parse(module)
        if info is None:
            continue
        if name in info.imports:
            source, original = info.imports[name]
            _follow(source, original, None, root, pending, collected)
            continue
        statements = info.defs.get(name, []) + info.mentions.get(name, [])
        if not statements:
            continue
        dumps = []
        for stmt in statements:
            dumps.append(ast.dump(_strip_docstrings(stmt)))
            for ref in _names_in(stmt):
                head, _, rest = ref.partition(".")
                if head in info.defs or head in info.mentions:
                    pending.append((module, head))
                elif head in info.imports:
                    source, original = info.imports[head]
                    _follow(source, original, rest.split(".")[0] or None, root, pending, collected)
        collected[f"{module}:{name}"] = "\n".join(sorted(set(dumps)))
    return collected


def _follow(
    source: str,
    original: str | None,
    attribute: str | None,
    root: str,
    pending: list[tuple[str, str]],
    collected: dict[str, str],
) -> None:
    """Queue what an imported name refers to, or record a third-party version."""
    if source.split(".")[0] != root:
        version = _version_of(source)
        if version:
            collected[f"dist:{version.split('==')[0]}"] = version
        return
    if original is None or _is_module(f"{source}.{original}"):
        module = source if original is None else f"{source}.{original}"
        if attribute:
            pending.append((module, attribute))
        return
    pending.append((source, original))


@functools.cache
def implementation_hash(import_path: str) -> str:
    """Once per import path per process, like the parsed modules it reads: planning asks for
    it in every score job's fingerprint (10,000 jobs, a handful of implementations)."""
    return stable_hash(dependency_sources(import_path))


def clear_caches() -> None:
    """Forget parsed modules and hashes (after a source file changed in the same process)."""
    implementation_hash.cache_clear()
    _version_of.cache_clear()
    _distributions.cache_clear()
    _parse.cache_clear()
    importlib.invalidate_caches()
