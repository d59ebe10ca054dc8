"""One self-contained page of a task's filtered samples, for a paper's appendix or a bug report.

The stylesheet is inlined, thumbnails are ``data:`` images, there is no script and no link
that needs the server, and the page's own Content-Security-Policy allows nothing else. The
file is never written inside the results folder.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vlmhyperbench.explorer.filters import TaskFilter, parse_query
from vlmhyperbench.explorer.pages import sample_rows, task_view
from vlmhyperbench.explorer.render import render, static_text
from vlmhyperbench.explorer.session import Explorer
from vlmhyperbench.runtime.io import atomic_write

EXPORT_LIMIT = 500  # samples on an exported page at most


def export_html(
    explorer: Explorer, task: str, f: TaskFilter, limit: int = EXPORT_LIMIT
) -> tuple[str, int]:
    """The page of the first ``limit`` samples of ``task`` that pass ``f``, in its order, and
    how many samples it holds."""
    run = explorer.run
    view = replace(task_view(run, task, f), page=1)
    metric, shown = run.catalog.in_view(task, view)
    page = run.store.page(task, view, size=limit)
    rows = sample_rows(run, task, page, shown, metric, explorer.media.thumbnail_data_uri)
    text = render(
        "export.html.j2",
        {
            "run": run.catalog.root.name,
            "task": task,
            "rows": rows,
            "shown": shown,
            "total": page.total,
            "metric": metric,
            "higher": run.catalog.higher_is_better(task, metric),
            "query": view.query(),
            "css": static_text("explorer.css"),
        },
    )
    return text, len(rows)


def write_export(explorer: Explorer, out: Path, task: str, query: str, limit: int) -> int:
    """Write the page of ``task`` filtered by ``query`` (a task page's query string) to
    ``out``; returns the number of samples on it. Refuses a path inside the results folder."""
    results = explorer.run.catalog.root.resolve()
    target = out.resolve()
    if target.is_relative_to(results):
        raise ValueError(f"{out}: inside the results folder {results}, which is never written")
    if task not in explorer.run.catalog.tasks():
        raise KeyError(
            f"{task}: no such task in {results} ({', '.join(explorer.run.catalog.tasks())})"
        )
    text, samples = export_html(explorer, task, parse_query(query), limit)
    with atomic_write(target, encoding="utf-8") as page:
        page.write(text)
    return samples
