"""What the wrapper costs in front of Tesseract: pages per second through ``vlmhb-wrapper serve
--backend tesseract`` (the official openai client, PNG pages as data: URLs) against calling
tesserocr directly on the same decoded pages with the same settings, side by side.

Arms, in alternating rounds so drift of the (shared) machine hits both alike:

* ``direct``  - ``N`` tesserocr engines in ``N`` threads, each page already decoded; the floor
  of what any server can do;
* ``wrapper`` - the wrapper with ``--threads N`` (N engines), ``N`` concurrent clients; each
  page travels as a base64 PNG, is checked and decoded by the wrapper, recognised, answered
  with ``performance``.

Also printed, for the engine choice (see the backend's docstring): ``pytesseract`` (a
``tesseract`` process per page, which reloads the language models every time) on the same
pages, one at a time, when it is installed. Expected: wrapper/direct >= 0.9.

    .venv/bin/python benchmarks/ocr_backend.py                     # ~1 min on 2 cores
    .venv/bin/python benchmarks/ocr_backend.py --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
import tesserocr
from PIL import Image

from vlmhyperbench.datasets.demo import generate_demo_dataset

TESSDATA = "/usr/share/tesseract-ocr/5/tessdata"
LANGUAGES, PSM, OEM = "rus+eng", 3, 1


def pages(root: Path, per_class: int) -> list[bytes]:
    samples = generate_demo_dataset(
        root, kind="ocr", name="bench", seed=0, per_class=per_class, subsets=["clean", "blur"]
    )
    return [(root / s.images[0]).read_bytes() for s in samples]


def direct(images: list[Image.Image], engines: list[tesserocr.PyTessBaseAPI]) -> float:
    """Seconds to recognise every image, ``len(engines)`` pages at once."""
    chunks = [images[i :: len(engines)] for i in range(len(engines))]

    def run(engine: tesserocr.PyTessBaseAPI, part: list[Image.Image]) -> None:
        for image in part:
            engine.SetImage(image)
            engine.GetUTF8Text()
            engine.Clear()

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(engines)) as pool:
        list(pool.map(run, engines, chunks))
    return time.perf_counter() - start


def through_wrapper(client: openai.OpenAI, pngs: list[bytes], concurrency: int) -> float:
    def one(png: bytes) -> None:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        answer = client.chat.completions.create(
            model="tesseract",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
            max_tokens=1000,
        )
        assert answer.choices[0].message.content

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, pngs))
    return time.perf_counter() - start


def pytesseract_seconds(images: list[Image.Image]) -> float | None:
    try:
        import pytesseract
    except ImportError:
        return None
    start = time.perf_counter()
    for image in images:
        pytesseract.image_to_string(image, lang=LANGUAGES, config=f"--psm {PSM} --oem {OEM}")
    return time.perf_counter() - start


def start_wrapper(threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = json.dumps({"languages": LANGUAGES, "psm": PSM, "oem": OEM})
    command = [
        sys.executable, "-m", "vlmhb_wrapper", "serve", "--backend", "tesseract",
        "--model", TESSDATA, "--served-model-name", "tesseract", "--port", str(port),
        "--threads", str(threads), "--engine-args-json", args, "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the wrapper exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit(f"the wrapper was not ready in 60 s:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="engines = concurrent pages")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=2, help="pages: 3 classes x 2 subsets")
    args = parser.parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    with tempfile.TemporaryDirectory() as tmp:
        pngs = pages(Path(tmp) / "pages", args.per_class)
        images = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
        engines = [
            tesserocr.PyTessBaseAPI(path=TESSDATA, lang=LANGUAGES, psm=PSM, oem=OEM)
            for _ in range(args.threads)
        ]
        process, base = start_wrapper(args.threads, Path(tmp) / "wrapper.log")
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        try:
            direct(images[:2], engines)  # warm-up both arms
            through_wrapper(client, pngs[:2], args.threads)
            times: dict[str, list[float]] = {"direct": [], "wrapper": []}
            for _ in range(args.rounds):
                times["direct"].append(direct(images, engines))
                times["wrapper"].append(through_wrapper(client, pngs, args.threads))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        n = len(pngs)
        rate = {arm: n / statistics.median(values) for arm, values in times.items()}
        print(
            f"{tesserocr.tesseract_version().splitlines()[0]} ({LANGUAGES}, psm {PSM}, "
            f"oem {OEM}); {n} demo pages {images[0].size[0]}x{images[0].size[1]}, "
            f"{args.threads} engine(s), median of {args.rounds} rounds"
        )
        print(f"{'arm':<22}{'pages/s':>10}{'s/page':>10}")
        for arm, value in rate.items():
            print(f"{arm:<22}{value:>10.2f}{1 / value:>10.3f}")
        print(f"wrapper/direct ratio: {rate['wrapper'] / rate['direct']:.3f}")
        seconds = pytesseract_seconds(images)
        if seconds is not None:
            print(
                f"{'pytesseract (1 at a time)':<22}{n / seconds:>10.2f}{seconds / n:>10.3f}"
                f"   direct(tesserocr)/pytesseract: {rate['direct'] / (n / seconds):.2f}x"
                + ("" if args.threads == 1 else " (direct uses more threads)")
            )


if __name__ == "__main__":
    main()
