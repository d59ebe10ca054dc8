"""What refusing an expensive request costs the wrapper: peak RSS growth and time per refusal.

Starts a real wrapper (``python -m vlmhb_wrapper serve``, HF backend on a tiny random-weight
LLaVA built on the spot, API key required) and sends it, one at a time:

* ``pixels``  - 16 PNGs of 7000x7000 (one colour, ~1 MB of request in all): 49 Mpx each, under
  the per-image limit, 784 Mpx together; refused with 413 ``request_pixels_too_large`` after
  reading their headers (before: decoded, 1.45 -> 6.4 GB in 19 s);
* ``text``    - one 30 MB text message: 413 ``text_too_large`` before tokenising
  (before: 0.38 -> 4.3 GB);
* ``unauth``  - 60 MB body without the API key: 401 before the body is parsed (before: the
  body was buffered and parsed first);
* ``oversize`` - 80 MB, over ``--max-request-bytes``: 413 while reading (for comparison).

The server's RSS is sampled every 2 ms from a thread (psutil) while each request runs; printed
per request: status, error code, peak RSS growth over the RSS just before, the time from the
first byte sent to the answer (the client's upload included), and the CPU time the server
spent (user + system; steadier than wall time on a busy machine). Goal: < 100 MB and < 0.5 s
each.

    .venv/bin/python benchmarks/wrapper_refusals.py            # ~1 min on 2 CPU cores
    .venv/bin/python benchmarks/wrapper_refusals.py --model DIR
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

KEY = "sk-bench-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_wrapper(model: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "vlmhb_wrapper", "serve", "--backend", "hf", "--model", str(model),
        "--served-model-name", "tiny", "--port", str(port), "--threads", "1",
        "--api-key-env", "VLMHB_BENCH_KEY", "--no-access-log",
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLMHB_BENCH_KEY": KEY,
        "PYTHONPATH": os.pathsep.join([str(REPO / "wrapper" / "src"), str(REPO / "src")]),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"wrapper exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit("wrapper not ready after 300 s")


def png_data_url(side: int) -> str:
    buf = io.BytesIO()
    Image.new("L", (side, side), 255).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def bodies() -> Iterator[tuple[str, dict[str, str], bytes]]:
    """(name, headers, body) of each request, built before the measurement starts."""
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = png_data_url(7000)
    content = [{"type": "image_url", "image_url": {"url": url}} for _ in range(16)]
    content.append({"type": "text", "text": "Что на страницах?"})
    pixels = {"model": "tiny", "messages": [{"role": "user", "content": content}]}
    yield "pixels", auth, json.dumps(pixels).encode()
    text = {"model": "tiny", "messages": [{"role": "user", "content": "word " * 6_000_000}]}
    yield "text", auth, json.dumps(text).encode()
    text = {"model": "tiny", "messages": [{"role": "user", "content": "слово " * 3_000_000}]}
    yield "text-ru", auth, json.dumps(text, ensure_ascii=False).encode()
    filler = {"model": "tiny", "messages": [{"role": "user", "content": "x" * (60 << 20)}]}
    yield "unauth", {"Content-Type": "application/json"}, json.dumps(filler).encode()
    huge = {"model": "tiny", "messages": [{"role": "user", "content": "x" * (80 << 20)}]}
    yield "oversize", auth, json.dumps(huge).encode()


class PeakRSS:
    """Samples a process's RSS every 2 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.05)  # let a late allocation show
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: build a tiny LLaVA)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = args.model
        if model is None:
            from vlmhyperbench.models.tiny import build_tiny_model

            model = build_tiny_model(tmp_path / "llava", "llava", seed=0)
        process, base = start_wrapper(model, tmp_path / "wrapper.log")
        try:
            requests = list(bodies())
            server = psutil.Process(process.pid)
            print(f"wrapper: HF backend, RSS at rest {server.memory_info().rss / 2**20:.0f} MB")
            print()
            print("| request | body | status | code | peak RSS growth | time | server CPU |")
            print("|---|---|---|---|---|---|---|")
            with httpx.Client(timeout=120) as client:
                for name, headers, body in requests:
                    before = server.memory_info().rss
                    cpu_before = sum(server.cpu_times()[:2])
                    with PeakRSS(process.pid) as rss:
                        start = time.perf_counter()
                        try:
                            response = client.post(
                                f"{base}/v1/chat/completions", content=body, headers=headers
                            )
                            status = str(response.status_code)
                            code = response.json()["error"]["code"]
                        except httpx.HTTPError as exc:  # a reset instead of an answer
                            status, code = type(exc).__name__, "-"
                        seconds = time.perf_counter() - start
                    growth = (rss.peak - before) / 2**20
                    cpu = sum(server.cpu_times()[:2]) - cpu_before
                    print(
                        f"| {name} | {len(body) / 2**20:.1f} MB | {status} | {code} "
                        f"| {growth:.1f} MB | {seconds:.3f} s | {cpu:.3f} s |"
                    )
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
