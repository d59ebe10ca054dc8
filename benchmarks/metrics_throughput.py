"""Throughput of the vectorised metrics on 1,000,000 (prediction, reference) pairs.

For anls, cer and exact_match: time the batch implementation on all pairs, time a plain
pure-Python implementation of the same metric (same semantics: a dynamic-programming
Levenshtein, per-character punctuation checks) in the same run, check both agree on a
sample, and print the ratio. The exact_match baseline is timed on all pairs (~10 s); the
Levenshtein baselines (anls, cer: ~80 us a pair) on the first ``--baseline-pairs`` pairs,
extrapolated linearly; the output says which. Each arm is timed ``--repeat`` times and the
fastest run counts (timeit's rule: slower runs measure the machine's other work, not the code).
The metrics run on the compiled normalisation kernels when the package was built with a C
compiler; each then gets a second row timing its numpy/Arrow path (what an install without a
compiler gets) against the same baseline.

    python benchmarks/metrics_throughput.py [--pairs 1000000] [--baseline-pairs 100000]
        [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from unittest import mock

import numpy as np

from vlmhyperbench.metrics import compiled
from vlmhyperbench.metrics.text import anls, cer, exact_match

# --- data: field answers of Russian documents and model-like variations of them ------------

SURNAMES = ["Иванов", "Петрова", "Смирнов", "Кузнецова", "Соколов", "Ёлкин", "Попова", "Лебедев"]
NAMES = ["Иван", "Мария", "Алексей", "Ольга", "Сергей", "Анна", "Дмитрий", "Елена"]
STREETS = ["ул. Ленина", "пр. Мира", "ул. Садовая", "наб. Фонтанки", "ул. Гагарина"]
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург"]
ALPHABET = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя0123456789"


def reference(rng: random.Random) -> str:
    kind = rng.randrange(6)
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


def prediction(ref: str, rng: random.Random) -> str:
    """Exact 30%, case/punctuation/space variants 30%, OCR-like edits 25%, wrong 15%."""
    roll = rng.random()
    if roll < 0.30:
        return ref
    if roll < 0.60:
        variant = rng.choice(
            [ref.upper(), ref.lower(), ref + ".", f"  {ref} ", ref.replace(" ", "  ")]
        )
        return variant.replace("е", "ё", 1) if rng.random() < 0.2 else variant
    if roll < 0.85:
        chars = list(ref)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(chars))
            chars[position] = rng.choice(ALPHABET)
        return "".join(chars)
    return reference(rng)


# --- plain pure-Python implementations of the same metrics --------------------------------


def levenshtein(a: str, b: str) -> int:
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, start=1):
        current = [j]
        for i, ca in enumerate(a, start=1):
            cost = 0 if ca == cb else 1
            current.append(min(previous[i] + 1, current[i - 1] + 1, previous[i - 1] + cost))
        previous = current
    return previous[-1]


def plain_anls(pred: str, ref: str, threshold: float = 0.5) -> float:
    p = " ".join(pred.strip().lower().split())
    r = " ".join(ref.strip().lower().split())
    length = max(len(ref.upper()), len(pred.upper()))
    nl = 0.0 if length == 0 else levenshtein(p, r) / length
    score = 1.0 - nl
    return 0.0 if score < threshold else score


def plain_cer(pred: str, ref: str) -> float:
    p = " ".join(unicodedata.normalize("NFKC", pred).split())
    r = " ".join(unicodedata.normalize("NFKC", ref).split())
    if not r:
        return 0.0 if not p else 1.0
    return min(1.0, levenshtein(p, r) / len(r))


def _plain_normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub("([еЕ])\u0308", r"\1", text).replace("ё", "е").replace("Ё", "Е")
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def plain_exact_match(pred: str, ref: str) -> float:
    return 1.0 if _plain_normalize(pred) == _plain_normalize(ref) else 0.0


# --- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """The fastest of ``repeat`` runs, and the output of the last."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run(pairs: int, baseline_pairs: int, seed: int, repeat: int) -> None:
    rng = random.Random(seed)
    refs = [reference(rng) for _ in range(pairs)]
    preds = [prediction(r, rng) for r in refs]
    ref_lists = [[r] for r in refs]
    mean_len = np.mean([len(r) for r in refs])
    print(f"{pairs:,} pairs (mean reference length {mean_len:.1f} characters), seed {seed}")
    print(f"each arm: the fastest of {repeat} runs")
    metrics: list[tuple[str, Callable, Callable[[str, str], float], int]] = [
        ("anls", anls, plain_anls, baseline_pairs),
        ("cer", cer, plain_cer, baseline_pairs),
        ("exact_match", exact_match, plain_exact_match, pairs),
    ]
    paths = ["compiled", "numpy"] if compiled.built() else ["numpy (no C kernels built)"]
    rows = [(f"{name} ({path})", *rest) for path in paths for name, *rest in metrics]
    width = max(len(name) for name, *_ in rows)
    print(
        f"{'metric':{width}s} {'vectorised s':>13s} {'pairs/s':>12s} {'baseline s':>11s}"
        f" {'ratio':>8s}  baseline timed on"
    )
    baselines: dict[Callable, tuple[float, list[float]]] = {}
    for name, metric, plain, timed_pairs in rows:
        kernels = None if "(numpy" in name else compiled._kernels
        with mock.patch.object(compiled, "_kernels", kernels):
            seconds, out = timed(lambda m=metric: m.batch(preds, ref_lists), repeat)
        values = out["value"] if isinstance(out, dict) else out
        k = min(timed_pairs, pairs)
        if plain not in baselines:  # both paths of a metric share one baseline
            baselines[plain] = timed(
                lambda p=plain, k=k: [p(a, b) for a, b in zip(preds[:k], refs[:k], strict=True)],
                repeat,
            )
        base_s, base = baselines[plain]
        # The same semantics: the baseline, the one-by-one metric and the batch agree.
        check = min(k, 2000)
        one_by_one = [metric(a, [b]) for a, b in zip(preds[:check], refs[:check], strict=True)]
        np.testing.assert_allclose(values[:k], base, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(values[:check], one_by_one, atol=1e-12, err_msg=name)
        baseline_total = base_s * pairs / k
        print(
            f"{name:{width}s} {seconds:13.3f} {pairs / seconds:12,.0f} "
            f"{baseline_total:11.1f} {baseline_total / seconds:7.1f}x  "
            + (f"all {k:,} pairs" if k == pairs else f"{k:,} pairs, extrapolated")
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument(
        "--baseline-pairs", type=int, default=100_000, help="anls and cer baselines"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.pairs, args.baseline_pairs, args.seed, args.repeat)


if __name__ == "__main__":
    main()
