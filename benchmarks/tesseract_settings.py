"""Which Tesseract settings the demo should sweep: CER per subset and seconds per page of every
(languages, psm) setting on the demo's OCR pages, and every pair of settings compared as the
report compares models.

The pages are the OCR dataset of ``config/datasets/demo_docs_ocr.yaml`` (its generator params,
unless ``--per-class`` / ``--subsets`` say otherwise), generated into a temporary folder by the
project's generator. Each setting recognises every page on one tesserocr engine, exactly as the
wrapper's tesseract backend does (``SetImage``, ``GetUTF8Text().strip()``, ``Clear``; the answer
capped at ``max_tokens`` words: the task's, which replaces the model's, 64 in the demo), one
page at a time.

The comparisons are the report's (``reporting.compare``): per-sample ``cer``, ``wer`` and
``cer_corpus`` (unclipped CER), the clustered sign-flip permutation test with one cluster per
document (its clean and distorted pages together) and ``--boot`` draws (the demo's
``scoring.bootstrap``), Holm over every pair and metric. ``--extra-models N`` adds to the Holm
family the comparisons of N more models on the task (the demo's two tiny random-weight VLMs)
as the report would see them: each far worse than every setting (p at the floor, 1 / (boot+1))
and not different from each other (p = 1). Beside it, Wilcoxon's signed-rank test (scipy) on
the per-page CER differences, Holm over the pairs.

    .venv/bin/python benchmarks/tesseract_settings.py              # ~3 min on 2 cores
    .venv/bin/python benchmarks/tesseract_settings.py --psm 4 6 --languages rus
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tesserocr
import yaml
from PIL import Image
from scipy.stats import wilcoxon
from vlmhb_wrapper.backends.tesseract import cap_words, parse_engine_args

from vlmhyperbench.datasets.demo import generate_demo_dataset
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.metrics.text import cer, wer
from vlmhyperbench.reporting.stats import ALPHA, holm, paired_matrix
from vlmhyperbench.stats.resampling import Resampling, cluster_labels

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT / "config" / "datasets" / "demo_docs_ocr.yaml"
TASK = ROOT / "config" / "tasks" / "demo_ocr.yaml"
MODEL = ROOT / "config" / "models" / "tesseract-rus.yaml"
TESSDATA = "/usr/share/tesseract-ocr/5/tessdata"
METRICS = ("cer", "wer", "cer_corpus")


@dataclass
class Setting:
    languages: str
    psm: int
    scores: dict[str, np.ndarray]  # metric → per-page values
    seconds: np.ndarray  # per page
    load_s: float

    @property
    def name(self) -> str:
        return f"{self.languages}/psm{self.psm}"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def parse_args() -> argparse.Namespace:
    params = _yaml(DATASET)["source"]["params"]
    # The task's generation settings replace the model's: the demo caps answers at its words.
    generation = _yaml(TASK).get("generation") or _yaml(MODEL).get("generation") or {}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=params.get("per_class", 2))
    parser.add_argument("--subsets", nargs="+", default=params.get("subsets", ["clean"]))
    parser.add_argument("--seed", type=int, default=params.get("seed", 0))
    parser.add_argument("--psm", nargs="+", type=int, default=[3, 4, 6, 11])
    parser.add_argument("--languages", nargs="+", default=["rus", "rus+eng"])
    parser.add_argument("--oem", type=int, default=1)
    parser.add_argument(
        "--max-words", type=int, default=generation.get("max_tokens", 512), help="max_tokens"
    )
    parser.add_argument("--boot", type=int, default=1000, help="sign-flip draws (as scoring)")
    parser.add_argument("--extra-models", type=int, default=2, help="other models on the task")
    parser.add_argument("--tessdata", default=TESSDATA)
    parser.add_argument("--save", type=Path, help="write the per-page scores to this CSV")
    return parser.parse_args()


def load_pages(root: Path, args: argparse.Namespace) -> tuple[list[Sample], list[Image.Image]]:
    start = time.perf_counter()
    samples = generate_demo_dataset(
        root,
        kind="ocr",
        name="bench",
        seed=args.seed,
        per_class=args.per_class,
        subsets=args.subsets,
    )
    print(
        f"generated {len(samples)} pages ({args.per_class} per class, subsets "
        f"{', '.join(args.subsets)}) in {time.perf_counter() - start:.1f} s"
    )
    images = []
    for sample in samples:
        with Image.open(root / sample.images[0]) as image:
            images.append(image.convert("RGB"))
    return samples, images


def run_setting(
    languages: str, psm: int, samples: list[Sample], images: list[Image.Image], args
) -> Setting:
    languages, psm, oem = parse_engine_args({"languages": languages, "psm": psm, "oem": args.oem})
    start = time.perf_counter()
    engine = tesserocr.PyTessBaseAPI(path=args.tessdata, lang=languages, psm=psm, oem=oem)
    load_s = time.perf_counter() - start
    scores: dict[str, list[float]] = {metric: [] for metric in METRICS}
    seconds = []
    try:
        for sample, image in zip(samples, images, strict=True):
            start = time.perf_counter()
            engine.SetImage(image)
            text = engine.GetUTF8Text().strip()
            engine.Clear()
            seconds.append(time.perf_counter() - start)
            text, _, _ = cap_words(text, args.max_words)
            scores["cer"].append(cer(text, sample.answers))
            scores["wer"].append(wer(text, sample.answers))
            scores["cer_corpus"].append(cer(text, sample.answers, clip=False))
    finally:
        engine.End()
    return Setting(
        languages,
        psm,
        {metric: np.array(values) for metric, values in scores.items()},
        np.array(seconds),
        load_s,
    )


def print_table(settings: list[Setting], samples: list[Sample], subsets: list[str]) -> None:
    subset_of = np.array([s.subset for s in samples])
    header = ["setting", *subsets, "all", "s/page", "load s"]
    print("\nCER (mean per page, clipped at 1) by subset, and seconds per page")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setting in settings:
        values = setting.scores["cer"]
        cells = [f"{values[subset_of == subset].mean():.3f}" for subset in subsets]
        cells += [f"{values.mean():.3f}", f"{setting.seconds.mean():.3f}", f"{setting.load_s:.2f}"]
        print(f"| {setting.name} | " + " | ".join(cells) + " |")


Pair = tuple[str, int, int, float, float]  # metric, setting i, setting j, diff i − j, p


def sign_flip_pairs(settings: list[Setting], samples: list[Sample], args) -> tuple[list, int]:
    """Every pair on every metric as the report tests it; also the number of clusters."""
    ids = np.array([s.id for s in samples])
    clusters = cluster_labels(ids, np.array([s.meta.get("doc_id", "") for s in samples]))
    resampling = Resampling.draw(clusters, args.boot, seed=args.seed)
    rows: list[Pair] = []
    for metric in METRICS:
        stats = paired_matrix(np.vstack([s.scores[metric] for s in settings]), resampling)
        for i, j in itertools.combinations(range(len(settings)), 2):
            rows.append((metric, i, j, float(stats["diff"][i, j]), float(stats["p"][i, j])))
    return rows, resampling.n_clusters


def wilcoxon_holm(settings: list[Setting]) -> dict[tuple[int, int], float]:
    """Wilcoxon signed-rank on the per-page CER of every pair, Holm-adjusted over the pairs."""
    pages = [s.scores["cer"] for s in settings]
    p = {
        (i, j): float(wilcoxon(pages[i], pages[j]).pvalue) if np.any(pages[i] != pages[j]) else 1.0
        for i, j in itertools.combinations(range(len(settings)), 2)
    }
    return dict(zip(p, holm(list(p.values())), strict=True))


def compare(settings: list[Setting], samples: list[Sample], args) -> None:
    """The pairs, Holm over the report's family (see the module docstring), best first."""
    rows, n_clusters = sign_flip_pairs(settings, samples, args)
    m, e = len(settings), args.extra_models
    floor = 1.0 / (args.boot + 1)
    extra = [floor] * (len(METRICS) * e * m) + [1.0] * (len(METRICS) * math.comb(e, 2))
    p_holm = holm([row[4] for row in rows] + extra)[: len(rows)]
    wilcoxon_p = wilcoxon_holm(settings)
    print(
        f"\nPairs (diff = A − B, mean per page), {n_clusters} clusters, {args.boot} sign "
        f"flips; Holm over {len(rows) + len(extra)} comparisons ({len(extra)} of them {e} "
        f"other models'); Wilcoxon on per-page CER, Holm over {len(wilcoxon_p)} pairs"
    )
    print("| metric | A | B | diff | p | p_holm | sig | wilcoxon p_holm (cer) |")
    print("|---|---|---|---|---|---|---|---|")
    significant = 0
    ranked = sorted(zip(rows, p_holm, strict=True), key=lambda r: (r[0][4], -abs(r[0][3])))
    for (metric, i, j, diff, p), adjusted in ranked:
        sig = adjusted < ALPHA
        significant += sig and metric == "cer"
        w = f"{wilcoxon_p[(i, j)]:.2g}" if metric == "cer" else ""
        print(
            f"| {metric} | {settings[i].name} | {settings[j].name} | {diff:+.3f} | {p:.4f} "
            f"| {adjusted:.3f} | {'yes' if sig else ''} | {w} |"
        )
    print(f"\n{significant} pair(s) significant on cer after Holm (alpha {ALPHA})")


def print_time(settings: list[Setting], n_pages: int) -> None:
    total = sum(s.seconds.sum() + s.load_s for s in settings)
    print(
        f"\nrecognition: {total:.1f} s for {len(settings)} settings × {n_pages} pages, one at a "
        f"time; two serve jobs at once on 2 cores: ≈ {total / 2:.0f} s of wall time"
    )


def save(path: Path, settings: list[Setting], samples: list[Sample]) -> None:
    rows = [
        {
            "setting": setting.name,
            "id": sample.id,
            "doc_id": sample.meta.get("doc_id", ""),
            "subset": sample.subset,
            "seconds": setting.seconds[k],
            **{metric: setting.scores[metric][k] for metric in METRICS},
        }
        for setting in settings
        for k, sample in enumerate(samples)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"per-page scores: {path}")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="vlmhb-tess-") as tmp:
        samples, images = load_pages(Path(tmp) / "ocr", args)
    settings = []
    for languages, psm in itertools.product(args.languages, args.psm):
        settings.append(run_setting(languages, psm, samples, images, args))
        print(f"  {settings[-1].name}: {settings[-1].seconds.sum():.1f} s", flush=True)
    print_table(settings, samples, list(args.subsets))
    compare(settings, samples, args)
    print_time(settings, len(samples))
    if args.save:
        save(args.save, settings, samples)


if __name__ == "__main__":
    main()
