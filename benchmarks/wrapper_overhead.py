"""What the wrapper's proxy path costs: the same load straight to an upstream OpenAI-compatible
server and through the wrapper in front of it, side by side in one run.

The upstream is the wrapper's HF backend on a tiny model (a real OpenAI-compatible server with
dynamic batching); the wrapper in front of it runs ``--backend openai``, which is the same
streaming proxy (``OpenAIUpstream``) the vllm and sglang backends use: it re-checks images,
streams from the upstream to measure TTFT itself, and adds ``performance``. For each
concurrency (1, 8, 32) both paths run in alternating rounds; printed: requests/s and p50
latency of each, and wrapper/direct ratios. Goal: >= 95% of the upstream's throughput at 32.

    python benchmarks/wrapper_overhead.py
    python benchmarks/wrapper_overhead.py --concurrency 1 8 32 --requests 96 --max-tokens 32
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

try:  # the client the wrapper itself uses: a connection pool that scales
    import httpx2 as http
except ImportError:
    http = httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vlmhyperbench.inference.launcher import running_wrapper  # noqa: E402


def wrapper(
    args: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
):
    """``python -m vlmhb_wrapper serve ARGS`` through the pipeline's own launcher; yields /v1.
    ``cpus``: pin the server (all its threads) to these CPUs (``taskset``)."""
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    return running_wrapper(
        lambda port: [
            *pin,
            sys.executable,
            "-m",
            "vlmhb_wrapper",
            "serve",
            "--port",
            str(port),
            *args,
        ],
        log,
        startup_timeout_s=300,
        env={
            "PYTHONPATH": os.pathsep.join([str(REPO / "wrapper" / "src"), str(REPO / "src")]),
            **(env or {}),
        },
    )


def image_url() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (20, 120, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def run_load(
    base_url: str, key: str, model: str, n: int, concurrency: int, max_tokens: int, image: str
) -> tuple[float, list[float]]:
    """Closed loop with ``concurrency`` clients; returns (seconds, latencies). A plain HTTP
    client (the lightest load generator at hand), the same for both paths."""
    remaining = list(range(n))
    latencies: list[float] = []
    async with http.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=300,
        limits=http.Limits(max_connections=concurrency + 4),
    ) as client:

        async def worker() -> None:
            while remaining:
                i = remaining.pop()
                content = [
                    {"type": "image_url", "image_url": {"url": image}},
                    {"type": "text", "text": f"Итого к оплате? {i}"},
                ]
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": content}],
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "ignore_eos": True,
                }
                start = time.perf_counter()
                response = await client.post("/chat/completions", json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
                assert response.json()["usage"]["completion_tokens"] == max_tokens

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def build_tiny(root: Path) -> Path:
    sys.path.insert(0, str(REPO / "src"))
    from vlmhyperbench.models.tiny import build_tiny_model

    return build_tiny_model(root / "llava", "llava", seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: build a tiny LLaVA)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=64, help="per round, path and level")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", default="32", help="upstream dynamic batching")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="give the upstream CPU 0 and the wrapper + load generator the other CPUs, as a "
        "GPU engine has its own resource (default: on when there are >= 2 CPUs)",
    )
    args = parser.parse_args()
    available = sorted(os.sched_getaffinity(0))
    pin = args.pin if args.pin is not None else len(available) >= 2
    upstream_cpus = set(available[:1]) if pin else None
    rest_cpus = set(available[1:]) if pin else None
    if rest_cpus:
        os.sched_setaffinity(0, rest_cpus)  # this process: the load generator

    image = image_url()
    key = "bench-upstream-key"
    with tempfile.TemporaryDirectory(prefix="vlmhb-bench-") as tmp:
        tmp_path = Path(tmp)
        model = args.model or build_tiny(tmp_path)
        upstream_args = [
            "--backend", "hf", "--model", str(model), "--served-model-name", "m",
            "--device", args.device, "--threads", "1", "--max-batch-size", args.max_batch_size,
            "--api-key-env", "BENCH_KEY", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        with wrapper(
            upstream_args, tmp_path / "upstream.log", {"BENCH_KEY": key}, upstream_cpus
        ) as upstream:
            proxy_args = [
                "--backend", "openai", "--model", "m", "--served-model-name", "m",
                "--upstream-base-url", upstream, "--upstream-api-key-env", "BENCH_KEY",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            with wrapper(
                proxy_args, tmp_path / "proxy.log", {"BENCH_KEY": key}, rest_cpus
            ) as proxied:
                paths = {"direct": (upstream, key), "wrapper": (proxied, "x")}
                for url, k in paths.values():  # warm-up
                    asyncio.run(run_load(url, k, "m", 16, 8, 4, image))
                results: dict[tuple[int, str], list[tuple[float, list[float]]]] = {}
                for level in args.concurrency:
                    n = max(args.requests, level * 2)
                    for _ in range(args.rounds):
                        for name, (url, k) in paths.items():
                            results.setdefault((level, name), []).append(
                                asyncio.run(run_load(url, k, "m", n, level, args.max_tokens, image))
                            )

    print(
        f"Upstream: HF backend, {'tiny llava' if not args.model else model.name}, "
        f"device {args.device}, max batch {args.max_batch_size}. Wrapper: --backend openai "
        f"(the vllm/sglang proxy path) in front of it. {args.rounds} alternating rounds per "
        f"level, {args.max_tokens} tokens per answer, one image per request, non-streaming "
        "clients (the wrapper streams from the upstream)."
    )
    if pin:
        print(
            f"CPUs: upstream {sorted(upstream_cpus or [])}, wrapper and load generator "
            f"{sorted(rest_cpus or [])} (--no-pin: all share all CPUs)"
        )
    else:
        print(f"CPUs: not pinned; upstream, wrapper and load generator share {available}")
    print(
        f"{'conc':>5}{'direct req/s':>14}{'wrapper req/s':>15}{'ratio':>8}"
        f"{'direct p50 ms':>15}{'wrapper p50 ms':>16}{'ratio':>8}"
    )
    for level in args.concurrency:
        row = {}
        for name in ("direct", "wrapper"):
            rounds = results[(level, name)]
            seconds = sum(s for s, _ in rounds)
            lat = [x for _, lats in rounds for x in lats]
            row[name] = (len(lat) / seconds, statistics.median(lat) * 1000)
        (d_rps, d_p50), (w_rps, w_p50) = row["direct"], row["wrapper"]
        print(
            f"{level:>5}{d_rps:>14.1f}{w_rps:>15.1f}{w_rps / d_rps:>8.3f}"
            f"{d_p50:>15.1f}{w_p50:>16.1f}{w_p50 / d_p50:>8.3f}"
        )


if __name__ == "__main__":
    main()
