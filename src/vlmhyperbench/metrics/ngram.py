"""BLEU and chrF through sacrebleu, with the hypothesis and the references in the right order.

The per-row value is the sentence score (``sacrebleu.sentence_bleu`` / ``sentence_chrf``:
hypothesis = the model's prediction, references = the sample's answers); the group value is the
corpus score computed from the summed sentence statistics, exactly what ``corpus_bleu`` /
``corpus_chrf`` return on the same rows, on sacrebleu's 0–100 scale. (The original VLMHyperBench
passed the reference as the hypothesis; see docs/metrics.md.)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from vlmhyperbench.metrics.base import ColumnSums, metric, require_references

if TYPE_CHECKING:
    import pandas as pd  # annotations only: the rows arrive as a DataFrame

STATS_COLUMN = "ngram_stats"


@functools.lru_cache(maxsize=16)
def _bleu(tokenize: str, lowercase: bool, sentence: bool) -> BLEU:
    return BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=sentence)


@functools.lru_cache(maxsize=16)
def _chrf(char_order: int, word_order: int, beta: int, lowercase: bool) -> CHRF:
    return CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase)


def _stats(metric: BLEU | CHRF, hypothesis: str, references: Sequence[str]) -> list[int]:
    # One reference stream per reference: sacrebleu's layout is references[stream][segment].
    streams = [[ref] for ref in require_references(references)]
    return [int(x) for x in metric._extract_corpus_statistics([hypothesis], streams)[0]]


def _bleu_columns(
    prediction: str,
    references: Sequence[str],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
) -> dict[str, Any]:
    return {
        STATS_COLUMN: json.dumps(_stats(_bleu(tokenize, lowercase, False), prediction, references))
    }


@metric(row_columns=_bleu_columns)
def bleu(
    prediction: str,
    references: Sequence[str],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
) -> float:
    """Sentence BLEU (sacrebleu defaults: 13a tokenizer, exp smoothing, effective order)."""
    metric = _bleu(tokenize, lowercase, True)
    return float(metric.sentence_score(prediction, list(require_references(references))).score)


def _chrf_columns(
    prediction: str,
    references: Sequence[str],
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    lowercase: bool = False,
) -> dict[str, Any]:
    metric = _chrf(char_order, word_order, beta, lowercase)
    return {STATS_COLUMN: json.dumps(_stats(metric, prediction, references))}


@metric(row_columns=_chrf_columns)
def chrf(
    prediction: str,
    references: Sequence[str],
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    lowercase: bool = False,
) -> float:
    """Sentence chrF (chrF2 by default; ``word_order: 2`` gives chrF++)."""
    metric = _chrf(char_order, word_order, beta, lowercase)
    return float(metric.sentence_score(prediction, list(require_references(references))).score)


def _row_stats(frame: pd.DataFrame) -> np.ndarray:
    return np.array([json.loads(x) for x in frame[STATS_COLUMN]], dtype=np.float64)


def _bleu_from_sums(sums: np.ndarray, *, tokenize: str = "13a", lowercase: bool = False):
    metric = _bleu(tokenize, lowercase, False)
    flat = np.atleast_2d(sums)
    out = [metric._compute_score_from_stats([round(float(x)) for x in row]).score for row in flat]
    return np.array(out) if np.ndim(sums) > 1 else np.float64(out[0])


def _chrf_from_sums(
    sums: np.ndarray,
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    lowercase: bool = False,
):
    metric = _chrf(char_order, word_order, beta, lowercase)
    flat = np.atleast_2d(sums)
    out = [metric._compute_score_from_stats([round(float(x)) for x in row]).score for row in flat]
    return np.array(out) if np.ndim(sums) > 1 else np.float64(out[0])


@metric(corpus=ColumnSums(row_stats=_row_stats, from_sums=_bleu_from_sums))
def corpus_bleu(frame: pd.DataFrame, *, tokenize: str = "13a", lowercase: bool = False) -> float:
    """Corpus BLEU of the group's rows (= ``sacrebleu.corpus_bleu`` on their texts)."""
    return float(
        _bleu_from_sums(_row_stats(frame).sum(axis=0), tokenize=tokenize, lowercase=lowercase)
    )


@metric(corpus=ColumnSums(row_stats=_row_stats, from_sums=_chrf_from_sums))
def corpus_chrf(
    frame: pd.DataFrame,
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    lowercase: bool = False,
) -> float:
    """Corpus chrF of the group's rows (= ``sacrebleu.corpus_chrf`` on their texts)."""
    options = {"char_order": char_order, "word_order": word_order, "beta": beta}
    return float(_chrf_from_sums(_row_stats(frame).sum(axis=0), lowercase=lowercase, **options))
