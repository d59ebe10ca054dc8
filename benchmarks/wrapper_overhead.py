"""What the wrapper's proxy path costs: the same load straight to an upstream OpenAI-compatible
server and through the wrapper in front of it, side by side in one run.

The wrapper runs ``--backend openai``: the streaming proxy (``OpenAIUpstream``) that the vllm
and sglang backends use. It re-checks images, streams from the upstream to measure TTFT itself,
and adds ``performance``. Two upstreams, each measured in its own table:

* ``engine`` - ``engine_standin.py``: vLLM's HTTP behaviour with the timing of a GPU engine
  (continuous batching, one decode step every ``--step-ms`` for all running sequences, a
  prefill per request) and no computation, as these machines have no GPU. The upstream's time
  is then the engine's, as in production, and the ratio is what the wrapper costs.
* ``hf`` - the wrapper's own HF backend on a tiny model, on CPU: a real model server, but
  CPU-bound and with static batches, which fill less when the proxy delivers a batch's next
  requests spread out than when clients send them at once (see benchmarks/README.md).

For each concurrency both paths run in alternating rounds of ``--requests-per-client`` closed-
loop requests per client; printed: requests/s and p50 latency of each, and wrapper/direct
ratios. Every answer has the same length (``ignore_eos``), so the answers of a batch end on the
same step and reach the wrapper at once: the hardest case for a proxy. The load generator is
aiohttp's client (as vLLM's own ``benchmark_serving.py``), the same for both paths. Goal:
>= 95% of the upstream's throughput at concurrency 32.

    python benchmarks/wrapper_overhead.py
    python benchmarks/wrapper_overhead.py --upstream engine --step-ms 15 5 --concurrency 32
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
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vlmhyperbench.inference.launcher import running_wrapper  # noqa: E402

Rounds = list[tuple[float, list[float]]]  # per round: seconds, latencies


def _pinned(cpus: set[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


def wrapper(
    args: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
):
    """``python -m vlmhb_wrapper serve ARGS`` through the pipeline's own launcher; yields /v1.
    ``cpus``: pin the server (all its threads) to these CPUs (``taskset``)."""
    return running_wrapper(
        lambda port: [
            *_pinned(cpus),
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


def engine_standin(step_ms: float, prefill_ms: float, log: Path, cpus: set[int] | None):
    """``engine_standin.py`` on a free port; yields its /v1 base URL."""
    script = str(Path(__file__).with_name("engine_standin.py"))
    return running_wrapper(
        lambda port: [
            *_pinned(cpus),
            sys.executable,
            script,
            "--port",
            str(port),
            "--step-ms",
            str(step_ms),
            "--prefill-ms",
            str(prefill_ms),
        ],
        log,
        startup_timeout_s=60,
    )


def image_url() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (20, 120, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def run_load(
    base_url: str, key: str, model: str, n: int, concurrency: int, max_tokens: int, image: str
) -> tuple[float, list[float]]:
    """Closed loop with ``concurrency`` clients; returns (seconds, latencies)."""
    remaining = list(range(n))
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as http:

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
                async with http.post(f"{base_url}/chat/completions", json=body) as response:
                    answer = await response.json()
                latencies.append(time.perf_counter() - start)
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {answer}")
                assert answer["usage"]["completion_tokens"] == max_tokens, answer

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def build_tiny(root: Path) -> Path:
    from vlmhyperbench.models.tiny import build_tiny_model

    return build_tiny_model(root / "llava", "llava", seed=0)


def compare(
    paths: dict[str, tuple[str, str]], args: argparse.Namespace, image: str
) -> dict[tuple[int, str], Rounds]:
    """Both paths, each concurrency level, in alternating rounds."""
    for url, key in paths.values():  # warm-up: connections, first requests
        asyncio.run(run_load(url, key, "m", 16, 8, 4, image))
    results: dict[tuple[int, str], Rounds] = {}
    for level in args.concurrency:
        n = max(16, level * args.requests_per_client)
        for _ in range(args.rounds):
            for name, (url, key) in paths.items():
                result = asyncio.run(run_load(url, key, "m", n, level, args.max_tokens, image))
                results.setdefault((level, name), []).append(result)
    return results


def print_table(title: str, results: dict[tuple[int, str], Rounds], levels: list[int]) -> None:
    print(title)
    print(
        f"{'conc':>5}{'direct req/s':>14}{'wrapper req/s':>15}{'ratio':>8}"
        f"{'direct p50 ms':>15}{'wrapper p50 ms':>16}{'ratio':>8}  per-round ratios"
    )
    for level in levels:
        row = {}
        for name in ("direct", "wrapper"):
            rounds = results[(level, name)]
            seconds = sum(s for s, _ in rounds)
            lat = [x for _, lats in rounds for x in lats]
            row[name] = (len(lat) / seconds, statistics.median(lat) * 1000)
        (d_rps, d_p50), (w_rps, w_p50) = row["direct"], row["wrapper"]
        per_round = " ".join(
            f"{d[0] / w[0]:.2f}"
            for d, w in zip(results[(level, "direct")], results[(level, "wrapper")], strict=True)
        )
        print(
            f"{level:>5}{d_rps:>14.1f}{w_rps:>15.1f}{w_rps / d_rps:>8.3f}"
            f"{d_p50:>15.1f}{w_p50:>16.1f}{w_p50 / d_p50:>8.3f}  {per_round}"
        )


@contextlib.contextmanager
def proxy_in_front(upstream: str, key: str, log: Path, cpus: set[int] | None) -> Iterator[str]:
    proxy_args = [
        "--backend", "openai", "--model", "m", "--served-model-name", "m",
        "--upstream-base-url", upstream, "--upstream-api-key-env", "BENCH_KEY",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with wrapper(proxy_args, log, {"BENCH_KEY": key}, cpus) as proxied:
        yield proxied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", nargs="+", choices=["engine", "hf"], default=["engine", "hf"])
    parser.add_argument("--step-ms", type=float, nargs="+", default=[15.0], help="engine stand-in")
    parser.add_argument("--prefill-ms", type=float, default=30.0, help="engine stand-in")
    parser.add_argument("--model", type=Path, help="hf: model folder (default: a tiny LLaVA)")
    parser.add_argument("--device", default="cpu", help="hf: device")
    parser.add_argument("--max-batch-size", default="32", help="hf: dynamic batching")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests-per-client", type=int, default=8, help="per round and path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
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
    if pin:
        where = f"upstream on CPU {sorted(upstream_cpus or [])}, wrapper and load generator on "
        where += f"{sorted(rest_cpus or [])} (--no-pin: all share all CPUs)"
    else:
        where = f"not pinned; upstream, wrapper and load generator share CPUs {available}"
    print(
        f"Wrapper: --backend openai (the vllm/sglang proxy path). {args.rounds} alternating "
        f"rounds per level of {args.requests_per_client} requests per client; "
        f"{args.max_tokens} tokens per answer, one image per request, non-streaming clients "
        f"(the wrapper streams from the upstream). CPUs: {where}.",
        flush=True,
    )

    image = image_url()
    key = "bench-upstream-key"
    with tempfile.TemporaryDirectory(prefix="vlmhb-bench-") as tmp:
        tmp_path = Path(tmp)
        if "engine" in args.upstream:
            for step in args.step_ms:
                log = tmp_path / f"engine-{step}.log"
                with (
                    engine_standin(step, args.prefill_ms, log, upstream_cpus) as upstream,
                    proxy_in_front(upstream, key, tmp_path / "proxy.log", rest_cpus) as proxied,
                ):
                    paths = {"direct": (upstream, key), "wrapper": (proxied, "x")}
                    results = compare(paths, args, image)
                title = (
                    f"\nUpstream: engine stand-in (continuous batching, {step:g} ms per decode "
                    f"step, {args.prefill_ms:g} ms prefill)"
                )
                print_table(title, results, args.concurrency)
        if "hf" in args.upstream:
            model = args.model or build_tiny(tmp_path)
            upstream_args = [
                "--backend", "hf", "--model", str(model), "--served-model-name", "m",
                "--device", args.device, "--threads", "1",
                "--max-batch-size", args.max_batch_size,
                "--api-key-env", "BENCH_KEY", "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            with (
                wrapper(
                    upstream_args, tmp_path / "upstream.log", {"BENCH_KEY": key}, upstream_cpus
                ) as upstream,
                proxy_in_front(upstream, key, tmp_path / "proxy.log", rest_cpus) as proxied,
            ):
                paths = {"direct": (upstream, key), "wrapper": (proxied, "x")}
                results = compare(paths, args, image)
            name = "tiny llava" if not args.model else model.name
            title = (
                f"\nUpstream: HF backend, {name}, device {args.device}, max batch "
                f"{args.max_batch_size} (static batches fill less behind a proxy: see README)"
            )
            print_table(title, results, args.concurrency)


if __name__ == "__main__":
    main()
