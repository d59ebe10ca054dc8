"""What each page shows (its template's context), from an explorer session.

``image_src`` decides how a page points at images: the server's ``/thumb`` URLs, or ``data:``
URLs for the self-contained export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from vlmhyperbench.explorer.filters import PAGE_SIZE, TaskFilter, checked
from vlmhyperbench.explorer.query import Page
from vlmhyperbench.explorer.render import media_href, score_class, task_href
from vlmhyperbench.explorer.sample import model_samples
from vlmhyperbench.explorer.session import Explorer, Run

ImageSource = Callable[[str, str], str | None]  # (dataset, relative path) → src


def thumb_url(dataset: str, path: str) -> str:
    return media_href("thumb", dataset, path)


def _base(explorer: Explorer, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "run": explorer.run.catalog.root.name,
        "has_baseline": explorer.baseline is not None,
        "warnings": explorer.run.warnings,
    }


def overview(explorer: Explorer) -> dict[str, Any]:
    """Tasks × models on each task's main metric; variants under their model."""
    catalog = explorer.run.catalog
    overall = catalog.results.overall
    tasks = []
    for task in catalog.tasks():
        metric = catalog.primary(task)
        rows = overall[(overall["task"] == task) & (overall["metric"] == metric)]
        higher = catalog.higher_is_better(task, metric)
        worst_first = "asc" if higher else "desc"
        cells = {
            r["model"]: {
                **r,
                "href": task_href(
                    task, urlencode({"sort": f"score:{r['model']}", "order": worst_first})
                ),
            }
            for r in rows.to_dict("records")
        }
        tasks.append({"name": task, "metric": metric, "higher": higher, "cells": cells})
    groups: list[dict[str, Any]] = []
    for model in catalog.models():
        group = catalog.group_of(model)
        if not groups or groups[-1]["name"] != group:
            groups.append({"name": group, "models": []})
        groups[-1]["models"].append(model)
    return {**_base(explorer, "Overview"), "tasks": tasks, "groups": groups}


def task_view(run: Run, task: str, f: TaskFilter) -> TaskFilter:
    """``f`` checked against the task (names it does not have left out, as problems)."""
    catalog = run.catalog
    return checked(
        f,
        models=catalog.models(task),
        metrics=catalog.metrics(task),
        group_columns=run.store.tables(task).group_columns,
    )


def sample_rows(
    run: Run, task: str, page: Page, shown: list[str], metric: str, image_src: ImageSource
) -> list[dict[str, Any]]:
    """The page's samples: thumbnail, question, references, groups and each shown answer."""
    catalog = run.catalog
    higher = catalog.higher_is_better(task, metric)
    manifest, dataset = run.datasets.samples(task), run.datasets.name(task)
    rows = []
    for sample_id in page.ids:
        record, found = manifest.get(sample_id), page.samples[sample_id]
        images = record.images if record is not None else []
        references = record.answers if record is not None and record.answers else None
        answers = []
        for model in shown:
            entry = page.answers.get((sample_id, model))
            value = entry["value"] if entry else None
            answers.append(
                {
                    "model": model,
                    "text": entry["prediction"] if entry else None,
                    "error": entry["error"] if entry else None,
                    "value": value,
                    "cls": score_class(value, higher) if entry else "missing",
                }
            )
        rows.append(
            {
                "id": sample_id,
                "thumb": image_src(dataset, images[0]) if dataset and images else None,
                "images": len(images),
                "question": found["question"] or (record.question if record else ""),
                "references": references or ([found["reference"]] if found["reference"] else []),
                "groups": {c: ", ".join(v) for c, v in found["groups"].items() if v},
                "answers": answers,
            }
        )
    return rows


def task_page(explorer: Explorer, task: str, raw: TaskFilter, image_src: ImageSource) -> dict:
    """The task page: the filtered, sorted samples, 50 a page, and the filter form."""
    run = explorer.run
    catalog = run.catalog
    f = task_view(run, task, raw)
    metric, shown = catalog.in_view(task, f)
    page = run.store.page(task, f)
    pages = max(1, math.ceil(page.total / PAGE_SIZE))
    return {
        **_base(explorer, task),
        "task": task,
        "filter": f,
        "metric": metric,
        "main_metric": catalog.primary(task),
        "higher": catalog.higher_is_better(task, metric),
        "metrics": catalog.metrics(task),
        "models": catalog.models(task),
        "shown": shown,
        "groups": run.store.tables(task).group_values,
        "rows": sample_rows(run, task, page, shown, metric, image_src),
        "total": page.total,
        "page": f.page,
        "pages": pages,
        "prev": f.query(page=f.page - 1) if f.page > 1 else None,
        "next": f.query(page=f.page + 1) if f.page < pages else None,
        "export_query": f.query(page=1),
    }


def _sample_facts(run: Run, task: str, sample_id: str) -> dict[str, Any] | None:
    """The manifest's record of the sample (or the score files' question and reference)."""
    record = run.datasets.samples(task).get(sample_id)
    dataset = run.datasets.name(task)
    if record is not None:
        return {
            "question": record.question,
            "references": record.answers,
            "groups": {
                k: v
                for k, v in (
                    ("doc_class", record.doc_class),
                    ("question_type", record.question_type),
                    ("subset", record.subset),
                )
                if v
            },
            "meta": record.meta,
            "images": [
                {"name": p, "src": media_href("media", dataset, p), "thumb": thumb_url(dataset, p)}
                for p in record.images
            ]
            if dataset
            else [],
        }
    found = run.store.sample_row(task, sample_id)
    if found is None:
        return None
    return {
        "question": found["question"] or "",
        "references": [found["reference"]] if found["reference"] else [],
        "groups": {c: ", ".join(v) for c, v in found["groups"].items() if v},
        "meta": {},
        "images": [],
    }


def sample_page(explorer: Explorer, task: str, sample_id: str) -> dict[str, Any] | None:
    """One sample: its page images, question and references; per model the answer, prompt,
    metrics, performance and verdicts; with a baseline, the baseline's beside it."""
    run = explorer.run
    facts = _sample_facts(run, task, sample_id)
    if facts is None:
        return None
    values = run.store.sample_values(task, sample_id)
    models = model_samples(run.catalog, task, sample_id, values)
    before = {}
    baseline = explorer.baseline
    if baseline is not None and task in baseline.catalog.tasks():
        old = baseline.store.sample_values(task, sample_id)
        before = {m.model: m for m in model_samples(baseline.catalog, task, sample_id, old)}
    return {
        **_base(explorer, f"{task} · {sample_id}"),
        "task": task,
        "sample_id": sample_id,
        **facts,
        "models": models,
        "before": before,
    }


def diff_page(explorer: Explorer, task: str, metric: str) -> dict[str, Any]:
    """The task's samples whose score changed against the baseline, per model."""
    catalog = explorer.run.catalog
    metric = metric if metric in catalog.metrics(task) else catalog.primary(task)
    diffs, notes = explorer.diff(task)
    return {
        **_base(explorer, f"{task} · against the baseline"),
        "task": task,
        "metric": metric,
        "metrics": catalog.metrics(task),
        "higher": catalog.higher_is_better(task, metric),
        "diffs": diffs.get(metric, []),
        "notes": notes,
        "baseline_run": explorer.baseline.catalog.root.name if explorer.baseline else "",
    }
