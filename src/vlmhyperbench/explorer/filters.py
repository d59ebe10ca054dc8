"""A task page's filter and sort, as they travel in the URL's query string.

``model`` (repeated): the models shown (default: all); the other conditions look at those.
``g.<column>=<value>``: samples in that group (subset, doc_class, question_type, field, …).
``metric``: the metric in view (default: the task's main metric) for the colours, the
thresholds, "right" and "wrong", and sorting by score or disagreement.
``below`` / ``above``: the metric's value below / above a number, for the model ``of`` (default:
any shown model). ``errors=1``: a shown model failed on the sample. ``right=A&wrong=B``: model A
right and B wrong, "right" being a value at or past ``cut`` (default 0.5) in the metric's
direction. ``q``: text in the question, the references or a shown model's answer (case
insensitive). ``sort``: ``id``, ``disagreement`` (the spread of the shown models' values, widest
first) or ``score:<model>``; ``order``: ``asc`` or ``desc``. ``page``: 50 samples a page.

The same query string is what ``vlmhb view --export --filter`` takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode

PAGE_SIZE = 50
GROUP_PREFIX = "g."
SORTS = ("id", "disagreement")
SCORE_SORT = "score:"


@dataclass(frozen=True)
class TaskFilter:
    models: tuple[str, ...] = ()  # shown models; () = all of the task's
    groups: tuple[tuple[str, str], ...] = ()  # (group column, value)
    metric: str = ""  # "" = the task's main metric
    below: float | None = None
    above: float | None = None
    of: str = ""  # the model the thresholds look at; "" = any shown model
    errors: bool = False
    right: str = ""
    wrong: str = ""
    cut: float = 0.5
    q: str = ""
    sort: str = "id"
    order: str = ""  # "" = the sort's natural order (id: ascending, disagreement: widest first)
    page: int = 1
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def sort_model(self) -> str:
        return self.sort[len(SCORE_SORT) :] if self.sort.startswith(SCORE_SORT) else ""

    @property
    def descending(self) -> bool:
        if self.order:
            return self.order == "desc"
        return self.sort == "disagreement"

    def pairs(self, *, page: bool = True) -> list[tuple[str, str]]:
        """The query string's pairs; defaults left out."""
        out: list[tuple[str, str]] = [("model", m) for m in self.models]
        out += [(GROUP_PREFIX + column, value) for column, value in self.groups]
        for key in ("metric", "of", "right", "wrong", "q", "order"):
            if getattr(self, key):
                out.append((key, getattr(self, key)))
        for key in ("below", "above"):
            if getattr(self, key) is not None:
                out.append((key, _number_text(getattr(self, key))))
        if self.cut != 0.5:
            out.append(("cut", _number_text(self.cut)))
        if self.errors:
            out.append(("errors", "1"))
        if self.sort != "id":
            out.append(("sort", self.sort))
        if page and self.page != 1:
            out.append(("page", str(self.page)))
        return out

    def query(self, **changes: object) -> str:
        """The query string of this filter with ``changes`` (e.g. ``page=2``)."""
        return urlencode(replace(self, **changes).pairs())


def _number_text(value: float) -> str:
    return f"{value:g}"


def _number(text: str, key: str, problems: list[str]) -> float | None:
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{key}={text!r} is not a number; ignored")
        return None
    if not math.isfinite(value):
        problems.append(f"{key}={text!r} is not a finite number; ignored")
        return None
    return value


def _page(text: str, problems: list[str]) -> int:
    if text.isdigit() and int(text) >= 1:
        return int(text)
    problems.append(f"page={text!r} is not a page number; page 1 shown")
    return 1


def parse_filter(pairs: Iterable[tuple[str, str]]) -> TaskFilter:
    """A filter from query-string pairs; what cannot be read is left out and named in
    ``problems`` (checked against the task by :func:`checked`)."""
    values: dict[str, object] = {}
    models: list[str] = []
    groups: list[tuple[str, str]] = []
    problems: list[str] = []
    for key, value in pairs:
        if key == "model":
            if value and value not in models:
                models.append(value)
        elif key.startswith(GROUP_PREFIX) and value:
            groups.append((key[len(GROUP_PREFIX) :], value))
        elif key in ("metric", "of", "right", "wrong", "q", "sort"):
            values[key] = value.strip() if key != "q" else value
        elif key == "order" and value in ("asc", "desc", ""):
            values[key] = value
        elif key in ("below", "above", "cut") and value.strip():
            number = _number(value, key, problems)
            if number is not None:
                values[key] = number
        elif key == "errors":
            values[key] = value in ("1", "on", "true", "yes")
        elif key == "page" and value:
            values[key] = _page(value, problems)
    values.setdefault("sort", "id")
    if not values["sort"]:
        values["sort"] = "id"
    return TaskFilter(
        models=tuple(models), groups=tuple(groups), problems=tuple(problems), **values
    )


def parse_query(query: str) -> TaskFilter:
    return parse_filter(parse_qsl(query.lstrip("?"), keep_blank_values=True))


def checked(
    f: TaskFilter, *, models: list[str], metrics: list[str], group_columns: list[str]
) -> TaskFilter:
    """``f`` with the names the task does not have left out (each a problem)."""
    problems = list(f.problems)

    def known(value: str, names: list[str], what: str) -> str:
        if value and value not in names:
            problems.append(f"{what} {value!r} is not in this task; ignored")
            return ""
        return value

    shown = tuple(m for m in f.models if known(m, models, "model"))
    groups = tuple((c, v) for c, v in f.groups if known(c, group_columns, "group column"))
    sort = f.sort
    if sort not in SORTS and not (sort.startswith(SCORE_SORT) and f.sort_model in models):
        problems.append(f"sort {sort!r} is not id, disagreement or score:<model>; by id")
        sort = "id"
    return replace(
        f,
        models=shown,
        groups=groups,
        metric=known(f.metric, metrics, "metric"),
        of=known(f.of, models, "model"),
        right=known(f.right, models, "model"),
        wrong=known(f.wrong, models, "model"),
        sort=sort,
        problems=tuple(problems),
    )
