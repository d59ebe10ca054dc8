"""Key-information extraction: the model answers a JSON object of fields.

The reference is ``references[0]``: a JSON object ``{field: value}`` (the manifest convention of
the extraction datasets). Nested objects are flattened to dotted keys (``items.0.name``); a
``{"fields": {...}}`` wrapper and ``{"value": …, "bboxes": …}`` field entries (the field-JSON
format) are unwrapped. Values compare as text: strings as they are, other JSON values as
their JSON; ``null`` and ``""`` mean "no value".

Parsing the prediction (``extract``): ``"strict"`` — the whole answer must be one JSON object;
``"fence"`` (default) — surrounding whitespace and one Markdown code fence are allowed;
``"first_object"`` — the first decodable ``{…}`` anywhere in the answer. An answer that does not
parse counts as an empty object: every field missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rapidfuzz.distance import Levenshtein

from vlmhyperbench.metrics.base import ColumnSums, metric, require_references
from vlmhyperbench.metrics.normalize import normalize_text

if TYPE_CHECKING:
    import pandas as pd  # annotations only: the rows arrive as a DataFrame

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)
_DECODER = json.JSONDecoder()


def parse_object(text: str, extract: str = "fence") -> dict[str, Any] | None:
    """The JSON object in ``text`` per ``extract`` (see the module doc), else None."""
    if extract not in ("strict", "fence", "first_object"):
        raise ValueError(f"extract must be strict, fence or first_object, got {extract!r}")
    candidate = text
    if extract != "strict":
        candidate = text.strip()
        fenced = _FENCE.match(candidate)
        if fenced:
            candidate = fenced.group(1)
    try:
        value = json.loads(candidate)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if isinstance(value, dict) or extract != "first_object":
        return value if isinstance(value, dict) else None
    for match in re.finditer(r"\{", text):
        try:
            found, _ = _DECODER.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(found, dict):
            return found
    return None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if text != "" else None


def flatten_fields(payload: Mapping[str, Any], prefix: str = "") -> dict[str, str | None]:
    """``{dotted key: text or None}``; unwraps ``{"fields": …}`` and ``{"value": …}`` entries."""
    if not prefix and set(payload) == {"fields"} and isinstance(payload["fields"], Mapping):
        payload = payload["fields"]
    out: dict[str, str | None] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "value" in value and set(value) <= {"value", "bboxes"}:
            value = value["value"]
        if isinstance(value, Mapping) and value:
            out.update(flatten_fields(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                out.update(flatten_fields(item, f"{name}.{index}."))
        else:
            out[name] = _as_text(value)
    return out


def reference_fields(references: Sequence[str]) -> dict[str, str | None]:
    text = require_references(references)[0]
    parsed = parse_object(text, "fence")
    if parsed is None:
        raise ValueError(f"the reference is not a JSON object: {text[:80]!r}")
    return flatten_fields(parsed)


def predicted_fields(prediction: str, extract: str) -> dict[str, str | None]:
    parsed = parse_object(prediction, extract)
    return {} if parsed is None else flatten_fields(parsed)


def json_validity(prediction: str, references: Sequence[str], *, extract: str = "fence") -> float:
    """1.0 when the answer parses as a JSON object under ``extract``, else 0.0."""
    return 1.0 if parse_object(prediction, extract) is not None else 0.0


def key_jaccard(prediction: str, references: Sequence[str], *, extract: str = "fence") -> float:
    """|predicted keys ∩ reference keys| / |union| over flattened keys (1.0 if both empty)."""
    expected = set(reference_fields(references))
    found = set(predicted_fields(prediction, extract))
    union = expected | found
    return 1.0 if not union else len(expected & found) / len(union)


def _cer(predicted: str, expected: str, lowercase: bool) -> float:
    case = "casefold" if lowercase else None
    hyp = normalize_text(predicted, case=case)
    ref = normalize_text(expected, case=case)
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(hyp, ref) / len(ref)


def _match_options(
    case_sensitive: bool, strip_punctuation: bool, normalize_yo: bool
) -> dict[str, Any]:
    return {
        "case": None if case_sensitive else "casefold",
        "strip_punctuation": strip_punctuation,
        "normalize_yo": normalize_yo,
    }


def _field_correct(
    predicted: str | None,
    expected: str | None,
    *,
    match: str,
    cer_threshold: float,
    lowercase: bool,
    case_sensitive: bool,
    strip_punctuation: bool,
    normalize_yo: bool,
) -> bool:
    if expected is None or predicted is None:
        return expected is None and predicted is None
    if match == "cer":
        return _cer(predicted, expected, lowercase) <= cer_threshold
    if match != "exact":
        raise ValueError(f"match must be exact or cer, got {match!r}")
    options = _match_options(case_sensitive, strip_punctuation, normalize_yo)
    return normalize_text(predicted, **options) == normalize_text(expected, **options)


def _per_field(
    prediction: str, references: Sequence[str], extract: str, **match: Any
) -> dict[str, float]:
    """1.0 or 0.0 per reference field: :func:`_field_correct` with ``match`` options."""
    found = predicted_fields(prediction, extract)
    return {
        name: float(_field_correct(found.get(name), value, **match))
        for name, value in reference_fields(references).items()
    }


def field_exact_match(
    prediction: str,
    references: Sequence[str],
    *,
    extract: str = "fence",
    case_sensitive: bool = False,
    strip_punctuation: bool = True,
    normalize_yo: bool = True,
) -> dict[str, float]:
    """Per reference field: 1.0 when the predicted value equals the reference value after the
    exact-match normalisation (a missing field is wrong; a field with no reference value is
    right when the prediction has none either). One score row per field."""
    return _per_field(
        prediction,
        references,
        extract,
        match="exact",
        cer_threshold=0.0,
        lowercase=False,
        case_sensitive=case_sensitive,
        strip_punctuation=strip_punctuation,
        normalize_yo=normalize_yo,
    )


def field_accuracy(
    prediction: str,
    references: Sequence[str],
    *,
    extract: str = "fence",
    cer_threshold: float = 0.15,
    lowercase: bool = False,
) -> dict[str, float]:
    """Per reference field: 1.0 when the CER of the predicted value against the reference value
    is ≤ ``cer_threshold`` (the VLMHyperBench invoice methodology: 15%). One row per field."""
    return _per_field(
        prediction,
        references,
        extract,
        match="cer",
        cer_threshold=cer_threshold,
        lowercase=lowercase,
        case_sensitive=True,
        strip_punctuation=False,
        normalize_yo=False,
    )


def _field_counts(
    prediction: str,
    references: Sequence[str],
    *,
    extract: str = "fence",
    match: str = "exact",
    cer_threshold: float = 0.15,
    lowercase: bool = False,
    case_sensitive: bool = False,
    strip_punctuation: bool = True,
    normalize_yo: bool = True,
) -> dict[str, Any]:
    """TP: predicted fields with a reference value that match it; FP: the other predicted
    fields with a value; FN: reference fields with a value not matched."""
    expected = {k: v for k, v in reference_fields(references).items() if v is not None}
    found = {k: v for k, v in predicted_fields(prediction, extract).items() if v is not None}
    options = {
        "match": match,
        "cer_threshold": cer_threshold,
        "lowercase": lowercase,
        "case_sensitive": case_sensitive,
        "strip_punctuation": strip_punctuation,
        "normalize_yo": normalize_yo,
    }
    tp = sum(
        1 for k, v in found.items() if k in expected and _field_correct(v, expected[k], **options)
    )
    return {"tp": tp, "fp": len(found) - tp, "fn": len(expected) - tp}


def _f1_of(tp: float, fp: float, fn: float) -> float:
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


@metric(row_columns=_field_counts)
def field_f1(
    prediction: str,
    references: Sequence[str],
    *,
    extract: str = "fence",
    match: str = "exact",
    cer_threshold: float = 0.15,
    lowercase: bool = False,
    case_sensitive: bool = False,
    strip_punctuation: bool = True,
    normalize_yo: bool = True,
) -> float:
    """Field-level F1 of one document (2TP / (2TP + FP + FN); 1.0 when both have no fields).
    The group value (:func:`micro_f1`) is the micro F1 over all fields of the group."""
    counts = _field_counts(
        prediction,
        references,
        extract=extract,
        match=match,
        cer_threshold=cer_threshold,
        lowercase=lowercase,
        case_sensitive=case_sensitive,
        strip_punctuation=strip_punctuation,
        normalize_yo=normalize_yo,
    )
    return _f1_of(counts["tp"], counts["fp"], counts["fn"])


def _count_stats(frame: pd.DataFrame) -> np.ndarray:
    return frame[["tp", "fp", "fn"]].to_numpy(dtype=np.float64)


def _micro_f1_from_sums(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.ones_like(tp), where=denominator > 0)


@metric(corpus=ColumnSums(row_stats=_count_stats, from_sums=_micro_f1_from_sums))
def micro_f1(frame: pd.DataFrame) -> float:
    """Micro F1 from the group's summed TP/FP/FN columns."""
    return float(_micro_f1_from_sums(_count_stats(frame).sum(axis=0)))
