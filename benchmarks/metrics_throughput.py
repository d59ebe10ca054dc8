"""What a user waits for in the score stage: one score job on 100,000 synthetic Russian samples.

For each metric: the whole score job (``score_predictions``, the library call of
``vlmhyperbench.metrics.score_job``: read the manifest and the predictions, score, aggregate
with 1,000 bootstrap resamples overall and per group, write the parquet and the JSON), beside
the bare library calls on the same pairs (rapidfuzz / jiwer / sacrebleu / json, no I/O). Prints
seconds per metric, the ratio score job ÷ bare calls, and the score job's peak memory (each
score job runs in a fresh process, so the peak is its own: maxrss, imports included). Each arm
is timed ``--repeat`` times and the fastest run counts (slower runs measure the machine's other
work, not the code).

    python benchmarks/metrics_throughput.py [--samples 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jiwer
import sacrebleu
from rapidfuzz.distance import Levenshtein

# --- data: Russian document fields and model-like variations of them -----------------------

SURNAMES = ["Иванов", "Петрова", "Смирнов", "Кузнецова", "Соколов", "Ёлкин", "Попова", "Лебедев"]
NAMES = ["Иван", "Мария", "Алексей", "Ольга", "Сергей", "Анна", "Дмитрий", "Елена"]
STREETS = ["ул. Ленина", "пр. Мира", "ул. Садовая", "наб. Фонтанки", "ул. Гагарина"]
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург"]
ALPHABET = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя0123456789"
LABELS = ["passport", "snils", "inn", "invoice"]
LABEL_ANSWERS = {
    "passport": ["Это паспорт.", "паспорт РФ", "passport"],
    "snils": ["СНИЛС", "Это СНИЛС, конечно.", "snils"],
    "inn": ["ИНН", "свидетельство ИНН", "inn"],
    "invoice": ["счёт-фактура", "Это invoice", "invoice"],
}
FIELDS = ["surname", "name", "birth_date", "number", "address"]


def field_value(rng: random.Random, kind: int | None = None) -> str:
    kind = rng.randrange(6) if kind is None else kind
    if kind == 0:
        return f"{rng.choice(SURNAMES)} {rng.choice(NAMES)}"
    if kind == 1:
        return f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1950, 2010)}"
    if kind == 2:
        return f"{rng.randint(1000, 9999)} {rng.randint(100000, 999999)}"
    if kind == 3:
        street, house = rng.choice(STREETS), rng.randint(1, 200)
        return f"г. {rng.choice(CITIES)}, {street}, д. {house}, кв. {rng.randint(1, 300)}"
    if kind == 4:
        return "-".join(str(rng.randint(100, 999)) for _ in range(3)) + f" {rng.randint(10, 99)}"
    return rng.choice(CITIES)


def variant(ref: str, rng: random.Random) -> str:
    """Exact 30%, case/punctuation/space variants 30%, OCR-like edits 25%, wrong 15%."""
    roll = rng.random()
    if roll < 0.30:
        return ref
    if roll < 0.60:
        text = rng.choice(
            [ref.upper(), ref.lower(), ref + ".", f"  {ref} ", ref.replace(" ", "  ")]
        )
        return text.replace("е", "ё", 1) if rng.random() < 0.2 else text
    if roll < 0.85:
        chars = list(ref)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice(ALPHABET)
        return "".join(chars)
    return field_value(rng)


def samples(kind: str, n: int, seed: int = 0) -> list[tuple[dict, str]]:
    """(manifest line, prediction) pairs: ``text`` fields, ``labels`` or ``fields`` (JSON)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        doc_class = rng.choice(LABELS)
        if kind == "labels":
            answer, prediction = doc_class, rng.choice(LABEL_ANSWERS[rng.choice(LABELS)])
        elif kind == "fields":
            truth = {name: field_value(rng, k) for k, name in enumerate(FIELDS)}
            predicted = {name: variant(value, rng) for name, value in truth.items()}
            if rng.random() < 0.2:
                predicted.pop(rng.choice(FIELDS))
            answer = json.dumps(truth, ensure_ascii=False)
            prediction = "```json\n" + json.dumps(predicted, ensure_ascii=False) + "\n```"
        else:
            answer = field_value(rng)
            prediction = variant(answer, rng)
        line = {
            "id": f"s{i:06d}",
            "images": [f"images/{i:06d}.png"],
            "question": "Какое значение поля?",
            "answers": [answer],
            "doc_class": doc_class,
            "question_type": rng.choice(["surname", "date", "number", "address"]),
            "subset": rng.choice(["clean", "blur", "noise"]),
        }
        out.append((line, prediction))
    return out


def write_inputs(folder: Path, rows: list[tuple[dict, str]]) -> tuple[Path, Path]:
    manifest, predictions = folder / "manifest.jsonl", folder / "predictions.jsonl"
    with manifest.open("w", encoding="utf-8") as handle:
        for line, _ in rows:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    with predictions.open("w", encoding="utf-8") as handle:
        for line, prediction in rows:
            record = {"id": line["id"], "prediction": prediction, "error": None}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return manifest, predictions


# --- the metrics: registry entry, data kind, and the bare library calls on the same pairs ---


def _bare_exact(preds: list[str], refs: list[str]) -> None:
    [p.casefold() == r.casefold() for p, r in zip(preds, refs, strict=True)]


def _bare_levenshtein(preds: list[str], refs: list[str]) -> None:
    [Levenshtein.distance(p, r) for p, r in zip(preds, refs, strict=True)]


def _bare_jiwer_cer(preds: list[str], refs: list[str]) -> None:
    jiwer.cer(refs, preds)


def _bare_bleu(preds: list[str], refs: list[str]) -> None:
    [sacrebleu.sentence_bleu(p, [r]) for p, r in zip(preds, refs, strict=True)]
    sacrebleu.corpus_bleu(preds, [refs])


def _bare_labels(preds: list[str], refs: list[str]) -> None:
    [p.casefold() == r.casefold() for p, r in zip(preds, refs, strict=True)]


def _bare_fields(preds: list[str], refs: list[str]) -> None:
    for p, r in zip(preds, refs, strict=True):
        found, truth = (
            json.loads(p.strip().removeprefix("```json").removesuffix("```")),
            json.loads(r),
        )
        [found.get(k) == v for k, v in truth.items()]


METRICS: dict[str, tuple[str, Callable[[list[str], list[str]], None], str]] = {
    # metric: (data kind, bare calls, what the bare calls are)
    "exact_match": ("text", _bare_exact, "str.casefold ==, per pair"),
    "anls": ("text", _bare_levenshtein, "rapidfuzz Levenshtein.distance, per pair"),
    "cer": ("text", _bare_levenshtein, "rapidfuzz Levenshtein.distance, per pair"),
    "cer_corpus": ("text", _bare_jiwer_cer, "jiwer.cer on the lists"),
    "bleu": ("text", _bare_bleu, "sacrebleu sentence_bleu per pair + corpus_bleu"),
    "accuracy": ("labels", _bare_labels, "str.casefold ==, per pair"),
    "field_f1": ("fields", _bare_fields, "json.loads both + per-field ==, per pair"),
}


def _score_job(metric: str, folder: str, repeat: int) -> tuple[float, int]:
    """In a fresh process: the fastest of ``repeat`` score jobs and this process's peak RSS."""
    import yaml

    from vlmhyperbench.metrics.scoring import score_predictions

    repo = Path(__file__).resolve().parent.parent
    entry = yaml.safe_load((repo / "config" / "metrics" / f"{metric}.yaml").read_text("utf-8"))
    best = float("inf")
    for run in range(repeat):
        start = time.perf_counter()
        score_predictions(
            Path(folder) / "predictions.jsonl",
            Path(folder) / "manifest.jsonl",
            metric_name=metric,
            implementation=entry["implementation"],
            aggregate_impl=entry.get("aggregate"),
            params=entry.get("params", {}),
            higher_is_better=entry.get("higher_is_better", True),
            model="m",
            task="t",
            out_parquet=Path(folder) / f"{metric}.{run}.parquet",
            out_json=Path(folder) / f"{metric}.{run}.json",
            n_boot=1000,
            seed=0,
        )
        best = min(best, time.perf_counter() - start)
    return best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--metrics", nargs="*", default=list(METRICS))
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folders: dict[str, tuple[Path, list[str], list[str]]] = {}
        for kind in sorted({METRICS[m][0] for m in args.metrics}):
            rows = samples(kind, args.samples)
            folder = Path(tmp) / kind
            folder.mkdir()
            write_inputs(folder, rows)
            folders[kind] = (folder, [p for _, p in rows], [line["answers"][0] for line, _ in rows])
        for metric in args.metrics:
            kind, bare, _ = METRICS[metric]
            folder, preds, refs = folders[kind]
            with spawn.Pool(1) as pool:
                job, peak = pool.apply(_score_job, (metric, str(folder), args.repeat))
            bare_s = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                bare(preds, refs)
                bare_s = min(bare_s, time.perf_counter() - start)
            results.append((metric, job, bare_s, peak))
            print(f"  {metric}: score job {job:.2f} s, bare {bare_s:.2f} s", flush=True)
    per = f"{args.samples:,} samples"
    print(f"\n| metric | score job ({per}) | bare calls | ratio | peak memory | bare calls are |")
    print("|---|---|---|---|---|---|")
    for metric, job, bare_s, peak in results:
        what = METRICS[metric][2]
        print(
            f"| {metric} | {job:.2f} s | {bare_s:.2f} s | {job / bare_s:.1f}× "
            f"| {peak / 2**20:.0f} MiB | {what} |"
        )


if __name__ == "__main__":
    main()
