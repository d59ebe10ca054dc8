"""A benchmark's published leaderboard as data, and where a run's score falls in it.

The table ships with the package (``benchmarks_data/``), one row per model: where it was
published (``source_url``, the ``commit`` of the page), the day the table took those values
(``table_date``), the ``split`` it was measured on, the ``model``, ``overall`` and the five
categories (``ocr``, ``markdown``, ``grounding``, ``kie``, ``vqa``). MWS-Vision-Bench's
validation table is :data:`MWS_VISION_VALIDATION` (from the official README).

A score is placed only in a table of the same split: MWS-Vision-Bench's private test split has
other pages and questions than its public validation split, so a private-test number is not
comparable with a validation one (nor the other way round), and :func:`place` refuses it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

MWS_VISION_VALIDATION = (
    Path(__file__).resolve().parents[1] / "benchmarks_data" / "mws_vision_leaderboard.csv"
)
SCORE_COLUMNS = ("overall", "ocr", "markdown", "grounding", "kie", "vqa")
_TABLE_COLUMNS = ("source_url", "commit", "table_date", "split")
COLUMNS = (*_TABLE_COLUMNS, "model", *SCORE_COLUMNS)
PRECISION = 3  # the published tables give three decimals


class LeaderboardError(ValueError):
    """A table that cannot be read, or a score that cannot be placed in it."""


@dataclass(frozen=True)
class PublishedLeaderboard:
    source_url: str
    commit: str
    table_date: str
    split: str
    scores: dict[str, dict[str, float]]  # model -> column -> value, in the table's order

    def ranked(self, column: str) -> list[tuple[str, float]]:
        """(model, value) of ``column``, highest first (the table's order among equals)."""
        if column not in SCORE_COLUMNS:
            raise LeaderboardError(f"no column {column!r}; columns: {', '.join(SCORE_COLUMNS)}")
        pairs = [(model, values[column]) for model, values in self.scores.items()]
        return sorted(pairs, key=lambda pair: -pair[1])


def read_leaderboard(path: str | Path = MWS_VISION_VALIDATION) -> PublishedLeaderboard:
    """The table in ``path``; a problem names the file, the line and the column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LeaderboardError(
            f"{path}: not found (is benchmarks_data/*.csv installed with the package?)"
        ) from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise LeaderboardError(f"{path}:1: missing column(s) {missing}")
    table: dict[str, str] = {}
    scores: dict[str, dict[str, float]] = {}
    for line, row in enumerate(reader, start=2):
        for column in _TABLE_COLUMNS:
            if table.setdefault(column, row[column]) != row[column]:
                raise LeaderboardError(
                    f"{path}:{line}: {column} {row[column]!r} differs from the first row's "
                    f"{table[column]!r} (one table a file)"
                )
        if row["model"] in scores:
            raise LeaderboardError(f"{path}:{line}: model {row['model']!r} listed twice")
        scores[row["model"]] = {c: _score(row[c], f"{path}:{line}: {c}") for c in SCORE_COLUMNS}
    if not scores:
        raise LeaderboardError(f"{path}: no rows")
    return PublishedLeaderboard(scores=scores, **table)


def _score(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LeaderboardError(f"{where}: not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise LeaderboardError(f"{where}: {value} is outside [0, 1]")
    return value


@dataclass(frozen=True)
class Placement:
    """Where a score falls: the models level with it at the table's precision, the nearest
    ones above and below (every model at that value), its rank (1 + the models above it) and
    the models whose value lies inside its CI; ``text`` says it in one line."""

    column: str
    score: float
    ci: tuple[float, float] | None
    tied: tuple[tuple[str, float], ...]
    above: tuple[tuple[str, float], ...]
    below: tuple[tuple[str, float], ...]
    rank: int
    models: int
    within_ci: tuple[str, ...]
    text: str


def place(
    board: PublishedLeaderboard,
    score: float,
    ci: tuple[float, float] | None = None,
    *,
    column: str = "overall",
    split: str = "validation",
) -> Placement:
    """Place ``score`` (with its CI ``(low, high)``) of the ``split`` in ``board``'s
    ``column``. Level means equal at the table's three decimals."""
    if split != board.split:
        raise LeaderboardError(
            f"a {split} score is not comparable with the {board.split} table "
            f"({board.table_date}): the splits hold different pages and questions"
        )
    if ci is not None and not ci[0] <= score <= ci[1]:
        raise LeaderboardError(f"the CI [{ci[0]}, {ci[1]}] does not contain the score {score}")
    ranked = board.ranked(column)
    shown = round(score, PRECISION)
    tied = tuple(pair for pair in ranked if pair[1] == shown)
    higher = [pair for pair in ranked if pair[1] > shown]
    lower = [pair for pair in ranked if pair[1] < shown]
    above = tuple(p for p in higher if p[1] == higher[-1][1]) if higher else ()
    below = tuple(p for p in lower if p[1] == lower[0][1]) if lower else ()
    within = tuple(m for m, v in ranked if ci is not None and ci[0] <= v <= ci[1])
    text = f"{_number(score, ci)}: {_where(tied, above, below, ranked)} on the "
    text += f"{board.table_date} {board.split} table"
    if column != "overall":
        text = f"{column} {text}"
    return Placement(
        column, score, ci, tied, above, below, len(higher) + 1, len(ranked), within, text
    )


def _number(score: float, ci: tuple[float, float] | None) -> str:
    shown = f"{score:.{PRECISION}f}"
    return shown if ci is None else f"{shown} [{ci[0]:.{PRECISION}f}, {ci[1]:.{PRECISION}f}]"


def _group(pairs: tuple[tuple[str, float], ...]) -> str:
    """``A / B 0.674``: the models at one value, then the value."""
    return f"{' / '.join(model for model, _ in pairs)} {pairs[0][1]:.{PRECISION}f}"


def _where(
    tied: tuple[tuple[str, float], ...],
    above: tuple[tuple[str, float], ...],
    below: tuple[tuple[str, float], ...],
    ranked: list[tuple[str, float]],
) -> str:
    if tied:
        return f"level with {_group(tied)}"
    if not above:
        top = tuple(pair for pair in ranked if pair[1] == ranked[0][1])
        return f"above every model (top: {_group(top)})"
    if not below:
        bottom = tuple(pair for pair in ranked if pair[1] == ranked[-1][1])
        return f"below every model (bottom: {_group(bottom)})"
    return f"between {_group(below)} and {_group(above)}"
