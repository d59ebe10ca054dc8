"""One question of MWS-Vision-Bench as one manifest sample (the contract is in the package
docstring): the category checked, the references kept as the official evaluation reads them."""

from __future__ import annotations

import json
from typing import Any

from vlmhyperbench.datasets.importers.common import DatasetImportError, ImportReport
from vlmhyperbench.datasets.importers.mws_vision.images import page_id
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.metrics.mws.overall import CATEGORY_METRICS

#: The official ``type`` of each category (``src/evaluation/eval_parallel.py``) and our name.
CATEGORIES = {kind: metric.removeprefix("mws_") for kind, metric in CATEGORY_METRICS.items()}
_ONE_REFERENCE = {"ocr", "markdown", "kie"}  # the official scorer asserts len(answers) == 1


def category_of(row: dict[str, Any], where: str) -> str | None:
    """Our name of the row's category; ``None`` for a type the official five do not include
    (the official evaluation leaves those out too, e.g. ``antifraud ru``)."""
    kind = row.get("type")
    if not isinstance(kind, str) or not kind:
        raise DatasetImportError(f"{where}: key 'type' missing or not a string: {kind!r}")
    return CATEGORIES.get(kind)


def to_sample(
    row: dict[str, Any], category: str, image: str, split: str, where: str, report: ImportReport
) -> Sample:
    """The manifest sample of a row whose category is known; ``image`` its manifest path."""
    for key in ("id", "question"):
        if row.get(key) is None:
            raise DatasetImportError(f"{where}: key {key!r} missing")
    sample_id, question = str(row["id"]), row["question"]
    where = f"{where} (id {sample_id})"
    for key in ("question", "dataset_name"):
        if key in row and row[key] is not None and not isinstance(row[key], str):
            raise DatasetImportError(f"{where}: key {key!r} is not a string: {row[key]!r:.60}")
    answers = official_answers(row.get("answers"), category, where)
    mws: dict[str, Any] = {
        "type": row["type"],
        "category": category,
        "dataset_name": row.get("dataset_name"),
        "answers": answers,
    }
    if category == "grounding":
        mws["box"] = _box(answers, where, report)
    if category == "kie":
        mws["kie"] = _kie(answers[0], where, report)
    if category == "vqa" and not answers:
        report.warn(f"{where}: no accepted answer; the official scorer gives it 0")
    return Sample(
        id=sample_id,
        images=[image],
        question=question,
        answers=_readable(answers, category),
        doc_class=row.get("dataset_name"),
        question_type=row["type"],
        subset=split,
        meta={"doc_id": page_id(image), "mws": mws},
    )


def official_answers(value: Any, category: str, where: str) -> list[Any]:
    """``answers`` as the official evaluation receives it from the hub, where it is a list of
    strings. A number in a box or among accepted VQA answers (the local JSON of the official
    README holds a box as numbers) becomes its ``str``, which the official grounding and VQA
    scorers read back to the same value; a KIE reference that is an object stays one (the
    official KIE scorer reads an object and a JSON string differently); ``null`` stays (the
    official scorers skip it). Anything else is refused, naming the row and the key."""
    if not isinstance(value, list):
        raise DatasetImportError(f"{where}: key 'answers' is not a list: {value!r:.80}")
    if category in _ONE_REFERENCE and len(value) != 1:
        raise DatasetImportError(
            f"{where}: key 'answers' holds {len(value)} references; a {category} question has "
            "exactly one (the official evaluation stops on any other count)"
        )
    return [_answer(item, index, category, where) for index, item in enumerate(value)]


def _answer(item: Any, index: int, category: str, where: str) -> Any:
    if isinstance(item, str) or (item is None and category in ("grounding", "vqa")):
        return item
    numeric = isinstance(item, (int, float)) and not isinstance(item, bool)
    if numeric and category in ("grounding", "vqa"):
        return str(item)
    if isinstance(item, dict) and category == "kie":
        return item
    expected = {
        "grounding": "a number or a string",
        "vqa": "a string or a number",
        "kie": "a JSON string or an object",
    }.get(category, "a string")
    raise DatasetImportError(
        f"{where}: answers[{index}] is a {type(item).__name__} ({item!r:.60}); "
        f"a {category} reference is {expected}"
    )


def _box(answers: list[Any], where: str, report: ImportReport) -> list[float] | None:
    try:
        box = [float(value) for value in answers]
    except (TypeError, ValueError):
        box = []
    if len(box) != 4:
        report.warn(
            f"{where}: answers {answers!r:.80} is not a box [x1, y1, x2, y2]; the official "
            "scorer gives every answer 0"
        )
        return None
    return box


def _kie(reference: Any, where: str, report: ImportReport) -> Any:
    if isinstance(reference, dict):
        return reference
    try:
        return json.loads(reference)
    except (TypeError, json.JSONDecodeError):
        report.warn(
            f"{where}: the KIE reference is not JSON ({reference!r:.60}); the official scorer "
            "tries it as a Python literal, and scores 0 if that fails too"
        )
        return None


def _readable(answers: list[Any], category: str) -> list[str]:
    """The manifest's ``answers`` (strings): the box as ``[x1, y1, x2, y2]``, a KIE object as
    JSON, the accepted VQA answers as they are."""
    if category == "grounding":
        return ["[" + ", ".join(str(a) for a in answers) + "]"]
    texts = [json.dumps(a, ensure_ascii=False) if isinstance(a, dict) else a for a in answers]
    return [text for text in texts if text is not None]
