"""HF backend throughput at concurrency 8: dynamic batching vs one request at a time.

Starts two wrappers on the same model - ``--max-batch-size 8`` and ``--max-batch-size 1`` - and
measures them side by side in one run, in alternating rounds (A B A B ...) so that drift of
the machine affects both alike. Every request carries an image and asks for a fixed number of
tokens (``ignore_eos``), so both arms do exactly the same work. Prints requests/s, generated
tokens/s, p50/p95 latency and TTFT per arm, and the ratios.

    python benchmarks/hf_batching.py                       # builds a tiny LLaVA (CPU)
    python benchmarks/hf_batching.py --model DIR --device cuda --requests 160
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vlmhyperbench.inference.launcher import running_wrapper  # noqa: E402


def wrapper(args: list[str], log: Path, timeout_s: float = 300):
    """``python -m vlmhb_wrapper serve ARGS`` through the pipeline's own launcher; yields /v1."""
    return running_wrapper(
        lambda port: [sys.executable, "-m", "vlmhb_wrapper", "serve", "--port", str(port), *args],
        log,
        startup_timeout_s=timeout_s,
        env={"PYTHONPATH": os.pathsep.join([str(REPO / "wrapper" / "src"), str(REPO / "src")])},
    )


def image_url(i: int) -> str:
    image = Image.new("RGB", (160, 120), (40 * (i % 6), 90, 200))
    ImageDraw.Draw(image).text((10, 50), f"Счёт № {1000 + i}", fill="white")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@dataclass
class Round:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    batch_sizes: list[int] = field(default_factory=list)


async def load(
    base_url: str, model: str, n: int, concurrency: int, max_tokens: int, images: list[str]
) -> Round:
    """Closed loop: ``concurrency`` clients, ``n`` requests in all (plain httpx, so the script
    also runs where the openai package is not installed)."""
    queue = list(range(n))
    result = Round(seconds=0.0)
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:

        async def worker() -> None:
            while queue:
                i = queue.pop()
                messages = [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": images[i % len(images)]}},
                            {"type": "text", "text": f"Какой номер счёта? ({i})"},
                        ],
                    }
                ]
                body = {
                    "model": model,
                    "messages": messages,
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "ignore_eos": True,
                }
                start = time.perf_counter()
                response = await client.post("/chat/completions", json=body)
                result.latencies.append(time.perf_counter() - start)
                response.raise_for_status()
                answer = response.json()
                perf = answer["performance"]
                result.ttfts.append(perf["ttft_ms"] / 1000)
                result.tokens += answer["usage"]["completion_tokens"]
                result.batch_sizes.append(perf["batch_size"])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - start
    return result


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def build_tiny(arch: str, root: Path) -> Path:
    sys.path.insert(0, str(REPO / "src"))
    from vlmhyperbench.models.tiny import build_tiny_model

    return build_tiny_model(root / arch, arch, seed=0)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: build a tiny one)")
    parser.add_argument("--arch", default="llava", choices=["llava", "idefics3"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", default="1", help="torch threads of each server")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64, help="per round and arm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vlmhb-bench-") as tmp:
        tmp_path = Path(tmp)
        model = args.model or build_tiny(args.arch, tmp_path)
        common = ["--backend", "hf", "--model", str(model), "--served-model-name", "m",
                  "--device", args.device, "--dtype", args.dtype, "--threads", args.threads,
                  "--no-access-log",
                  "--log-level", "warning", "--batch-wait-ms", "5"]  # fmt: skip
        images = [image_url(i) for i in range(16)]
        arms = {"batched (max batch 8)": "8", "one at a time": "1"}
        rounds: dict[str, list[Round]] = {name: [] for name in arms}
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(
                    wrapper([*common, "--max-batch-size", size], tmp_path / f"{size}.log")
                )
                for name, size in arms.items()
            }
            for url in urls.values():  # warm-up
                asyncio.run(load(url, "m", args.concurrency, args.concurrency, 4, images))
            for _ in range(args.rounds):
                for name, url in urls.items():
                    rounds[name].append(
                        asyncio.run(
                            load(url, "m", args.requests, args.concurrency, args.max_tokens, images)
                        )
                    )

    print(
        f"HF backend, {model.name if args.model else 'tiny ' + args.arch}, device {args.device}, "
        f"concurrency {args.concurrency}, {args.rounds} rounds x {args.requests} requests "
        f"per arm, {args.max_tokens} tokens each, one image per request"
    )
    print(
        f"{'arm':<24}{'req/s':>9}{'tok/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'TTFT p50':>10}{'mean batch':>12}"
    )
    summary = {}
    for name, results in rounds.items():
        seconds = sum(r.seconds for r in results)
        n = sum(len(r.latencies) for r in results)
        lat = [x for r in results for x in r.latencies]
        ttft = [x for r in results for x in r.ttfts]
        sizes = [x for r in results for x in r.batch_sizes]
        summary[name] = (n / seconds, sum(r.tokens for r in results) / seconds, pct(lat, 50))
        print(
            f"{name:<24}{n / seconds:>9.1f}{summary[name][1]:>10.0f}{pct(lat, 50) * 1000:>9.1f}"
            f"{pct(lat, 95) * 1000:>9.1f}{pct(ttft, 50) * 1000:>10.1f}"
            f"{statistics.mean(sizes):>12.2f}"
        )
    (b_rps, b_tps, b_p50), (s_rps, s_tps, s_p50) = summary.values()
    print(
        f"ratio batched / one-at-a-time: throughput x{b_rps / s_rps:.2f} (requests), "
        f"x{b_tps / s_tps:.2f} (tokens); p50 latency x{b_p50 / s_p50:.2f}"
    )


if __name__ == "__main__":
    main()
