"""Model variants in the report: ``results/variants.json``, groups, sweep grids, compared pairs.

A variant (``tess@psm=6``, or a registry entry with ``base:``) is a model of its own in
``results/``; ``variants.json``, written by the planning step, says which model it is reported
under (its ``group``: the root of its base chain), the settings that differ from its base and,
for a grid point of a sweep, the label of each swept setting; also its ``cost`` and whether it is
behind an ``endpoint``, and the (model, task) pairs with a ``perf`` result (read by
:mod:`~vlmhyperbench.reporting.perf`). No file, an unreadable one, or one
where no group holds two of the run's models means no grouping: the report is then byte for byte
what it was before variants existed.

Which pairs are compared, per task (on every metric; Holm's correction over all of them, as for
any run):

* across groups, each pair of groups once, through each group's best model on the task's main
  metric (a model without variants is its own group's best: a run without variants compares
  every pair, as before);
* within a group, every member against the group's best, and every swept variant against the
  best of each of its *lines* (the variants equal to it on every swept setting but one).

That is O(variants × axes) pairs instead of all pairs, chosen for the question a sweep asks
(which setting wins, and what each setting does with the others held) and for power: Holm over
every pair would hide all but huge effects, and the permutation test needs 1 / (flips + 1)
below α / m to find any (compare.py draws that many flips for the chosen pairs). Measured on a
10×10 grid plus a plain model (101 models, one task, 2 metrics, 200 samples on 50 pages,
``n_boot`` 1,000, two shared cores): the chosen pairs are 262 per metric, 524 comparisons in
1.3–1.8 s (5.5 s when one variant misses a page: the per-pair path), ``comparisons.csv`` 0.08 MB,
and 172 of the 262 CER pairs significant after Holm. Every pair is 5,050 per metric, 10,100
comparisons in 1.7–2.3 s with the default 1,000 flips, 1.6 MB, and no CER pair significant
(1/1,001 × 10,100 > α); the flips Holm over 10,100 needs would take a 100,000 × 5,050 null
matrix (4 GB) per metric.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

VARIANTS_FILE = "variants.json"


@dataclass(frozen=True)
class Variant:
    name: str
    group: str
    base: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    swept: Mapping[str, str] = field(default_factory=dict)  # setting path → label
    cost: Mapping[str, Any] | None = None  # the entry's ``cost:`` as written (None: not known)
    endpoint: bool = False  # behind an API endpoint (no server of the run's own)


@dataclass(frozen=True)
class Sweep:
    base: str
    tasks: tuple[str, ...]
    axes: Mapping[str, tuple[str, ...]]  # setting path → labels, in the config's order


@dataclass
class Variants:
    models: dict[str, Variant]
    sweeps: list[Sweep]
    perf: list[tuple[str, str]] = field(default_factory=list)  # (model, task) load-tested

    def group(self, model: str) -> str:
        entry = self.models.get(model)
        return entry.group if entry is not None else model

    def swept(self, model: str) -> Mapping[str, str]:
        entry = self.models.get(model)
        return entry.swept if entry is not None else {}

    def grouped(self, models: Iterable[str]) -> bool:
        """Whether some group holds two of ``models`` (else the report groups nothing)."""
        groups = [self.group(m) for m in models]
        return len(set(groups)) < len(groups)


@dataclass(frozen=True)
class Grid:
    """The swept variants of one group in one task that share their swept settings."""

    group: str
    axes: dict[str, list[str]]  # setting path → labels present, in the config's order
    members: dict[str, tuple[str, ...]]  # model → its label on each axis, in grid order


# --- reading ---------------------------------------------------------------------------------


def _variant(name: str, entry: Any) -> Variant:
    if not isinstance(entry, dict):
        raise ValueError(f"entry {name!r} is not an object")
    settings, swept = entry.get("settings") or {}, entry.get("swept") or {}
    if not isinstance(settings, dict) or not isinstance(swept, dict):
        raise ValueError(f"entry {name!r}: settings and swept must be objects")
    base, cost = entry.get("base"), entry.get("cost")
    return Variant(
        name=name,
        group=str(entry.get("group") or name),
        base=None if base is None else str(base),
        settings=dict(settings),
        swept={str(k): str(v) for k, v in swept.items()},
        cost=dict(cost) if isinstance(cost, dict) else None,
        endpoint=bool(entry.get("endpoint")),
    )


def _perf_pairs(entries: Any) -> list[tuple[str, str]]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("'perf' is not a list of {model, task} objects")
    return [(str(e.get("model")), str(e.get("task"))) for e in entries]


def _sweep(entry: Any) -> Sweep:
    if not isinstance(entry, dict) or not isinstance(entry.get("axes"), dict):
        raise ValueError("a sweep is not an object with axes")
    return Sweep(
        base=str(entry.get("base")),
        tasks=tuple(str(t) for t in entry.get("tasks") or ()),
        axes={str(k): tuple(str(v) for v in values) for k, values in entry["axes"].items()},
    )


def load_variants(root: str | Path) -> tuple[Variants | None, list[str]]:
    """``root/variants.json`` read, with the warnings it gives; ``None`` when there is none or
    it cannot be read (the report then groups nothing)."""
    path = Path(root) / VARIANTS_FILE
    if not path.is_file():
        return None, []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = document.get("variants") or {}
        if not isinstance(entries, dict):
            raise ValueError("'variants' is not an object")
        models = {str(name): _variant(str(name), entry) for name, entry in entries.items()}
        sweeps = [_sweep(entry) for entry in document.get("sweeps") or []]
        perf = _perf_pairs(document.get("perf") or [])
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return None, [f"{VARIANTS_FILE}: unreadable ({exc}); variants not grouped"]
    return Variants(models=models, sweeps=sweeps, perf=perf), []


def unlisted(variants: Variants, models: Iterable[str]) -> list[str]:
    """Warnings for the run's models that ``variants.json`` does not list."""
    return [
        f"{VARIANTS_FILE}: model {model} not listed; shown as its own group"
        for model in models
        if model not in variants.models
    ]


# --- grouping --------------------------------------------------------------------------------


def group_order(ranked: Iterable[str], group_of: Callable[[str], str]) -> list[tuple[str, list]]:
    """``ranked`` models (best first) as (group, members): groups in the order of their best
    member, members in rank order."""
    groups: dict[str, list[str]] = {}
    for model in ranked:
        groups.setdefault(group_of(model), []).append(model)
    return list(groups.items())


def name_order(models: Iterable[str], group_of: Callable[[str], str]) -> list[tuple[str, list]]:
    """Models by group name, the group's own model first, then by name (for overviews)."""
    ordered = sorted(models, key=lambda m: (group_of(m), m != group_of(m), m))
    return group_order(ordered, group_of)


def label(model: str, group: str) -> str:
    """A variant's name inside its group: ``psm=6`` for ``tess@psm=6`` under ``tess``."""
    prefix = f"{group}@"
    return model[len(prefix) :] if model.startswith(prefix) and model != prefix else model


def grouped_rows(rows: list[dict[str, Any]], group_of: Callable[[str], str]) -> list[dict]:
    """Leaderboard rows (each with ``model``) reordered by group; the first row of a group of
    several gets ``group_head`` (its name) and ``group_size``, every member ``in_group``."""
    by_model = {row["model"]: row for row in rows}
    out = []
    for group, members in group_order([r["model"] for r in rows], group_of):
        for k, model in enumerate(members):
            several = len(members) > 1
            out.append(
                {
                    **by_model[model],
                    "group_head": group if several and k == 0 else None,
                    "group_size": len(members),
                    "in_group": several,
                }
            )
    return out


def ranked_models(overall: pd.DataFrame, metric: str, higher: bool) -> list[str]:
    """A task's models best first on ``metric`` (NaN last; ties by name)."""
    rows = overall[overall["metric"] == metric]
    key = (rows["value"] if higher else -rows["value"]).fillna(-math.inf)
    order = rows.assign(_key=key).sort_values(["_key", "model"], ascending=[False, True])
    return list(dict.fromkeys(order["model"].tolist()))


# --- sweep grids -----------------------------------------------------------------------------


def _label_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _axis_labels(path: str, present: set[str], declared: Iterable[tuple[str, ...]]) -> list[str]:
    """The labels of one axis that the grid has: in the config's order, then any others."""
    order = list(dict.fromkeys(itertools.chain.from_iterable(declared)))
    return [v for v in order if v in present] + sorted(present - set(order), key=_label_key)


def sweep_grids(variants: Variants, task: str, models: Iterable[str]) -> list[Grid]:
    """The grids of swept variants among ``models`` (a task's), by group and swept settings;
    only grids of two variants or more."""
    found: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for model in sorted(models):
        swept = variants.swept(model)
        if swept:
            found.setdefault((variants.group(model), tuple(sorted(swept))), []).append(model)
    grids = []
    for (group, paths), members in sorted(found.items()):
        if len(members) < 2:
            continue
        sweeps = [
            s
            for s in variants.sweeps
            if variants.group(s.base) == group and set(s.axes) == set(paths)
        ]
        mine = [s for s in sweeps if task in s.tasks] or sweeps
        order = list(mine[0].axes) if mine else list(paths)
        axes = {
            path: _axis_labels(
                path,
                {variants.swept(m)[path] for m in members},
                [s.axes[path] for s in mine],
            )
            for path in order
        }
        position = {path: {v: k for k, v in enumerate(axes[path])} for path in order}
        labels = {m: tuple(variants.swept(m)[path] for path in order) for m in members}
        ranked = sorted(
            members,
            key=lambda m: tuple(position[p][v] for p, v in zip(order, labels[m], strict=True)),
        )
        grids.append(Grid(group=group, axes=axes, members={m: labels[m] for m in ranked}))
    return grids


def axis_names(paths: Iterable[str]) -> dict[str, str]:
    """Short names of setting paths: the last part (``psm``), or the whole path where two
    axes would share it."""
    paths = list(paths)
    last = [p.rsplit(".", 1)[-1] for p in paths]
    return {p: (s if last.count(s) == 1 else p) for p, s in zip(paths, last, strict=True)}


def lines(grid: Grid, axis: int) -> dict[tuple[str, ...], list[str]]:
    """The grid's members by their labels on every axis but ``axis`` (grid order kept)."""
    out: dict[tuple[str, ...], list[str]] = {}
    for model, labels in grid.members.items():
        out.setdefault(labels[:axis] + labels[axis + 1 :], []).append(model)
    return out


def slug(text: str) -> str:
    """A file-name-safe form of a name (figure and table files)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


# --- which pairs are compared ----------------------------------------------------------------


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def comparison_pairs(variants: Variants, task: str, ranked: list[str]) -> set[tuple[str, str]]:
    """The pairs of one task to compare (see the module's docstring); ``ranked``: the task's
    models best first on its main metric."""
    groups = group_order(ranked, variants.group)
    bests = [members[0] for _, members in groups]
    pairs = {_pair(a, b) for a, b in itertools.combinations(bests, 2)}
    for _, members in groups:
        pairs |= {_pair(members[0], m) for m in members[1:]}
    rank = {model: k for k, model in enumerate(ranked)}
    for grid in sweep_grids(variants, task, ranked):
        for axis in range(len(grid.axes)):
            for line in lines(grid, axis).values():
                best = min(line, key=rank.__getitem__)
                pairs |= {_pair(best, m) for m in line if m != best}
    return pairs


def run_pairs(
    variants: Variants | None, overall: pd.DataFrame, primary: Mapping[str, str], higher: Mapping
) -> dict[str, set[tuple[str, str]]] | None:
    """Per task where a group holds several models, the pairs to compare; the other tasks (and
    every task, ``None``, when nothing is grouped) compare every pair, as without variants."""
    if variants is None or not variants.grouped(overall["model"].unique()):
        return None
    out = {}
    for task, metric in primary.items():
        rows = overall[overall["task"] == task]
        ranked = ranked_models(rows, metric, higher[task])
        if variants.grouped(ranked):
            out[task] = comparison_pairs(variants, task, ranked)
    return out


def describe_pair(variants: Variants, a: str, b: str, names: Mapping[str, str]) -> tuple[str, ...]:
    """How two swept variants read in a sentence: the labels of the settings where they differ
    (``psm 4``, ``psm 6``) and those they share (``languages rus``); their model names when
    they were not swept on the same settings."""
    swept_a, swept_b = variants.swept(a), variants.swept(b)
    if not swept_a or set(swept_a) != set(swept_b) or dict(swept_a) == dict(swept_b):
        return a, b, ""
    order = [p for p in names if p in swept_a] + sorted(set(swept_a) - set(names))
    differ = [p for p in order if swept_a[p] != swept_b[p]]
    same = [p for p in order if swept_a[p] == swept_b[p]]

    def text(swept: Mapping[str, str], paths: list[str]) -> str:
        return ", ".join(f"{names.get(p, p)} {swept[p]}" for p in paths)

    return text(swept_a, differ), text(swept_b, differ), text(swept_a, same)
