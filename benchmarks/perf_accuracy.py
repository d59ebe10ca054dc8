"""Can the load stage's figures be trusted? (issue 26, point 4)

Against ``engine_standin.py`` with known timing (``--step-ms``, ``--prefill-ms``), which records
per request when it received it and sent its first and last token:

1. TTFT and TPOT of the load generator (``vlmhyperbench.perf``) vs the stand-in's own record of
   the same requests (matched by response id), the medians over the measured requests (the
   means are printed too), at concurrency 1 and 16: each within 5% or 2 ms, whichever is larger;
2. closed-loop requests/s vs Little's law (concurrency / mean e2e latency): within 5%;
3. against a zero-latency stand-in (``--step-ms 0 --prefill-ms 0``), the generator's
   requests/s at concurrency 32: at least 300, and at least 3 times the highest requests/s the
   demo's ladders reached (``results/perf/``, after ``make demo``).

Prints each error and rate; exits non-zero when one check fails.

    .venv/bin/python benchmarks/perf_accuracy.py       # ~1 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from vlmhyperbench.inference.launcher import running_wrapper
from vlmhyperbench.perf import closed_loop, level_stats
from vlmhyperbench.perf.result import PerfResult
from vlmhyperbench.perf.stats import tpot_s, ttft_s

SCRIPT = str(Path(__file__).with_name("engine_standin.py"))
PIN = "--no-pin" not in sys.argv


def standin(step_ms: float, prefill_ms: float, log: Path):
    """The stand-in on a free port, pinned to CPU 0 (this process to the others, see main)."""
    pinned = PIN and shutil.which("taskset") and (os.cpu_count() or 1) > 1
    pin = ["taskset", "-c", "0"] if pinned else []

    def command(port: int) -> list[str]:
        return [*pin, sys.executable, SCRIPT, "--port", str(port),
                "--step-ms", str(step_ms), "--prefill-ms", str(prefill_ms)]  # fmt: skip

    return running_wrapper(command, log, startup_timeout_s=60)


def bodies(max_tokens: int) -> list[dict]:
    """11 bodies asking for ``max_tokens`` ± 5 tokens: answers of different lengths, as a task's
    own samples give, so a batch's answers do not all end on the same decode step."""
    return [
        {"messages": [{"role": "user", "content": f"Итого к оплате? {i}"}],
         "max_tokens": max(2, max_tokens + i - 5), "ignore_eos": True}
        for i in range(11)
    ]  # fmt: skip


def check(name: str, ok: bool, text: str, failures: list[str]) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {text}")
    if not ok:
        failures.append(name)


def accuracy(url: str, concurrency: int, n: int, max_tokens: int, failures: list[str]) -> None:
    records = asyncio.run(closed_loop(url, bodies(max_tokens), concurrency, n, warmup=concurrency))
    server = httpx.get(url.removesuffix("/v1") + "/standin/records", timeout=30).json()
    measured = [r for r in records if r.phase == "measured" and r.ok]
    theirs = [server[r.response_id] for r in measured]
    pairs = {
        "TTFT": ([ttft_s(r) * 1000 for r in measured],
                 [(s["first_token"] - s["received"]) * 1000 for s in theirs]),
        "TPOT": ([tpot_s(r) * 1000 for r in measured],
                 [(s["last_token"] - s["first_token"]) * 1000 / (s["tokens"] - 1) for s in theirs]),
    }  # fmt: skip
    for name, (ours, their) in pairs.items():
        # the check is on the medians (a stall of a shared machine moves a mean); means shown too
        ours_p50, their_p50 = statistics.median(ours), statistics.median(their)
        bound = max(0.05 * their_p50, 2.0)
        error = ours_p50 - their_p50
        mean_error = statistics.mean(ours) - statistics.mean(their)
        text = (
            f"median: load generator {ours_p50:.2f} ms, stand-in {their_p50:.2f} ms, error "
            f"{error:+.2f} ms ({error / their_p50:+.1%}; bound ±{bound:.2f} ms); "
            f"mean error {mean_error:+.2f} ms"
        )
        check(f"{name} at concurrency {concurrency}", abs(error) <= bound, text, failures)
    stats = level_stats(records, concurrency)
    little = concurrency / (stats.e2e_ms.mean / 1000)
    error = stats.request_throughput / little - 1
    text = (
        f"{stats.request_throughput:.2f} requests/s measured, {little:.2f} = {concurrency} / "
        f"{stats.e2e_ms.mean:.1f} ms mean latency, error {error:+.2%} (bound ±5%)"
    )
    check(f"Little's law at concurrency {concurrency}", abs(error) <= 0.05, text, failures)
    if len(measured) != n:
        check(
            f"errors at concurrency {concurrency}", False, f"{n - len(measured)} failed", failures
        )


def demo_headroom(results: Path, generator_rate: float, failures: list[str]) -> None:
    """The generator's rate against the highest requests/s any level of the demo's ladders
    reached (``make demo`` first): at least 3 times it, or the generator bounds the ladders."""
    files = sorted(results.glob("*/*.json"))
    if not files:
        print(f"(no perf results under {results}: run make demo for the headroom check)")
        return
    highest = max(
        level.request_throughput
        for path in files
        for ladder in PerfResult.model_validate_json(path.read_text(encoding="utf-8")).ladders
        for level in ladder.levels
    )
    text = (
        f"{generator_rate:.0f} requests/s vs the demo's highest {highest:.2f} "
        f"({generator_rate / highest:.0f}x, bound >= 3x; {len(files)} results)"
    )
    check("load generator headroom over the demo's ladders", generator_rate >= 3 * highest,
          text, failures)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-ms", type=float, default=15.0)
    parser.add_argument("--prefill-ms", type=float, default=30.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160, help="measured, per level")
    parser.add_argument("--rate-requests", type=int, default=3000)
    parser.add_argument("--results", default="results/perf", help="the demo's perf results")
    parser.add_argument("--no-pin", action="store_true", help="share the CPUs with the stand-in")
    args = parser.parse_args()
    if not args.no_pin and (os.cpu_count() or 1) > 1:  # the generator off the stand-in's CPU
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="perf-accuracy-") as tmp:
        timing = f"step {args.step_ms} ms, prefill {args.prefill_ms} ms"
        print(
            f"stand-in: {timing}, {args.max_tokens} ± 5 tokens a request, {args.requests} a level"
        )
        with standin(args.step_ms, args.prefill_ms, Path(tmp, "timed.log")) as url:
            for concurrency in (1, 16):
                accuracy(url, concurrency, args.requests, args.max_tokens, failures)
        with standin(0, 0, Path(tmp, "zero.log")) as url:
            started, cpu = time.perf_counter(), time.process_time()
            records = asyncio.run(closed_loop(url, bodies(4), 32, args.rate_requests, warmup=200))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            stats = level_stats(records, 32)
            check("load generator rate (zero-latency stand-in, concurrency 32)",
                  stats.request_throughput >= 300 and stats.errors == 0,
                  f"{stats.request_throughput:.0f} requests/s (bound >= 300), {stats.errors} "
                  f"errors; generator CPU {cpu / len(records) * 1000:.2f} ms a request "
                  f"({cpu:.1f} s CPU in {wall:.1f} s)", failures)  # fmt: skip
        demo_headroom(Path(args.results), stats.request_throughput, failures)
    print("all checks passed" if not failures else f"{len(failures)} failed: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
