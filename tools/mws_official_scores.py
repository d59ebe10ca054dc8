#!/usr/bin/env python3
"""Score (reference, reply) pairs with MWS-Vision-Bench's *official* evaluation code.

Writes tests/fixtures/mws/official_scores.json, the expected values of
tests/unit/test_mws_metrics.py. Run it in an environment of the official code, never in ours
(the official code is not part of this project; this script imports it from a checkout):

    python3.11 -m venv /tmp/mws-official/venv
    /tmp/mws-official/venv/bin/pip install numpy distance apted lxml zss Levenshtein \\
        editdistance nltk jieba tqdm requests      # what src/evaluation imports
    NLTK_DATA=$(.venv/bin/python -c \\
        'from vlmhyperbench.metrics.mws.wordnet import nltk_data_root; print(nltk_data_root())')
    NLTK_DATA=$NLTK_DATA /tmp/mws-official/venv/bin/python tools/mws_official_scores.py \\
        --repo PATH/TO/MWS-Vision-Bench.git --rev HEAD

NLTK 3.10.3 and later refuse an edit distance over 2,000 characters (a guard against untrusted
input, not a change of the distance): the official OCR score then fails on a long page, so this
script lifts ``nltk.metrics.distance.MAX_DISTANCE_INPUT_LEN`` where it exists (and records it).

``--repo`` is a git repository of github.com/mts-ai/MWS-Vision-Bench; the script exports
``src/`` of ``--rev`` into a temporary folder, imports ``src.evaluation.eval_parallel`` and
``src.evaluation.get_score_ru`` from it, and records the full commit hash. NLTK_DATA must
hold WordNet (``corpora/wordnet``): the official METEOR otherwise tries to download it.

Each pair of ``--pairs`` is expanded with its variants (below) and scored twice by
``process_single_item``: ``score_eval`` on the reply as given, ``score`` on ``reply.strip()``
(what every official runner records). ``runs`` are sets of the scored items passed through the
official ``get_metrics`` (``Overall`` and the category means).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.metadata
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAIRS = ROOT / "tests" / "fixtures" / "mws" / "pairs.json"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "mws" / "official_scores.json"
REPOSITORY = "github.com/mts-ai/MWS-Vision-Bench"
METRICS = {
    "full-page OCR ru": ("ocr", "mws_ocr"),
    "document parsing ru": ("markdown", "mws_markdown"),
    "text grounding ru": ("grounding", "mws_grounding"),
    "key information extraction ru": ("kie", "mws_kie"),
    "reasoning VQA ru": ("vqa", "mws_vqa"),
}
PACKAGES = ("nltk", "zss", "jieba", "Levenshtein", "editdistance", "apted", "Distance", "lxml")
_LOOKALIKES = str.maketrans("аеорсхАЕОРСХМТНКВ", "aeopcxAEOPCXMTHKB")

VARIANTS: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "padded": lambda text: "  \n" + text + " \n\t",
    "latin_lookalikes": lambda text: text.translate(_LOOKALIKES),
    "half": lambda text: text[: len(text) // 2],
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "blank_lines": lambda text: text.replace("\n", "\n\n"),
    "newlines": lambda text: text.replace(", ", ",\n"),
    "fenced": lambda text: "```json\n" + text + "\n```",
}


def expand_text(value: str | dict[str, Any]) -> str:
    """A reply as written, or ``{"repeat", "times", "prefix", "suffix"}`` for a long one."""
    if isinstance(value, str):
        return value
    return value.get("prefix", "") + value["repeat"] * value["times"] + value.get("suffix", "")


def expand_pairs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pair of the spec, then its variants, with ids ``<category>-<nnn>[-<variant>]``."""
    pairs = []
    for kind, entries in spec["categories"].items():
        short, metric = METRICS[kind]
        for number, entry in enumerate(entries, start=1):
            reply = expand_text(entry["prediction"])
            base = {"type": kind, "metric": metric, "name": entry["name"]}
            names = entry.get("variants", spec["default_variants"][short])
            for variant in [None, *names]:
                pair_id = f"{short}-{number:03d}" + (f"-{variant}" if variant else "")
                text = VARIANTS[variant](reply) if variant else reply
                pairs.append(
                    {"id": pair_id, **base, "variant": variant, "answers": entry["answers"]}
                    | {"prediction": text}
                )
    return pairs


def export_official(repo: str, rev: str, into: Path) -> str:
    """Export ``src/`` of ``rev`` into ``into``; the full commit hash."""
    commit = subprocess.run(
        ["git", "-C", repo, "rev-parse", "--verify", f"{rev}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", repo, "archive", "--format=tar", commit, "src"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def official_score(evaluate: Callable[[dict], dict], pair: dict[str, Any], reply: str) -> float:
    item = {"id": pair["id"], "type": pair["type"], "answers": copy.deepcopy(pair["answers"])}
    item["predict"] = reply
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the errors it scores as 0
        return float(evaluate(item)["score"])


def official_run(get_metrics: Callable, name: str, items: list[dict[str, Any]]) -> dict:
    """``get_metrics`` over the scored items (it reads an evaluation output file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "evaluated.json"
        records = [{"id": i["id"], "type": i["type"], "score": i["score"]} for i in items]
        path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        metrics, detailed = get_metrics(str(path))
    return {
        "name": name,
        "ids": [item["id"] for item in items],
        "categories": metrics,
        "overall": detailed["overall"]["average"],
    }


def runs_of(get_metrics: Callable, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All pairs; three categories, every other pair; the OCR category alone."""
    three = [p for p in pairs if p["metric"] in ("mws_ocr", "mws_markdown", "mws_vqa")]
    return [
        official_run(get_metrics, "all five categories", pairs),
        official_run(get_metrics, "OCR, Markdown and VQA, every other pair", three[::2]),
        official_run(get_metrics, "OCR only", [p for p in pairs if p["metric"] == "mws_ocr"]),
    ]


def lift_nltk_length_guard() -> int | None:
    """Lift NLTK's edit-distance length guard (3.10.3+); its old value, None without one."""
    distance = importlib.import_module("nltk.metrics.distance")
    old = getattr(distance, "MAX_DISTANCE_INPUT_LEN", None)
    if old is not None:
        distance.MAX_DISTANCE_INPUT_LEN = sys.maxsize
    return old


def environment(wordnet_version: str, guard: int | None) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return {
        "python": platform.python_version(),
        "packages": versions,
        "nltk_edit_distance_guard_lifted_from": guard,
        "wordnet": f"WordNet {wordnet_version} from Debian's wordnet-base and "
        "wordnet-sense-index, laid out by vlmhyperbench.metrics.mws.wordnet",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="a git repository of the official code")
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not os.environ.get("NLTK_DATA"):
        parser.error("set NLTK_DATA to a folder with corpora/wordnet (see the module doc)")
    spec = json.loads(args.pairs.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as folder:
        commit = export_official(args.repo, args.rev, Path(folder))
        sys.path.insert(0, folder)
        evaluation = importlib.import_module("src.evaluation.eval_parallel")
        get_metrics = importlib.import_module("src.evaluation.get_score_ru").get_metrics
        guard = lift_nltk_length_guard()
        wordnet_version = importlib.import_module("nltk.corpus").wordnet.get_version()
        pairs = expand_pairs(spec)
        for pair in pairs:
            pair["score_eval"] = official_score(
                evaluation.process_single_item, pair, pair["prediction"]
            )
            pair["score"] = official_score(
                evaluation.process_single_item, pair, pair["prediction"].strip()
            )
        runs = runs_of(get_metrics, pairs)
    payload = {
        "about": "Expected values of tests/unit/test_mws_metrics.py, computed by the official "
        "MWS-Vision-Bench evaluation (process_single_item; get_metrics for the runs) with "
        "tools/mws_official_scores.py from tests/fixtures/mws/pairs.json. score: the reply as "
        "the official runners record it (stripped); score_eval: the reply as given.",
        "official": {"repository": REPOSITORY, "commit": commit},
        "environment": environment(wordnet_version, guard),
        "pairs": pairs,
        "runs": runs,
    }
    text = json.dumps(payload, ensure_ascii=False, indent=1) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"{len(pairs)} pairs, {len(runs)} runs, commit {commit} -> {args.out}")


if __name__ == "__main__":
    main()
