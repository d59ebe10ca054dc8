"""Tesseract OCR behind the same chat API: a classical baseline beside the VLMs.

The engine is Tesseract 5 in-process through ``tesserocr`` (its binary wheel bundles
libtesseract; the language data comes from the system, e.g. Debian's ``tesseract-ocr-rus``).
Measured on the demo pages it is about twice as fast per page as ``pytesseract``, which starts
a ``tesseract`` process and reloads the language models for every page
(``benchmarks/ocr_backend.py``).

* ``--model`` is the tessdata folder holding ``<lang>.traineddata``;
* ``engine_args``: ``languages`` (Tesseract's ``rus+eng`` form), ``psm`` (page segmentation
  mode, default 3: automatic) and ``oem`` (engine mode, default 1: LSTM only);
* ``--threads N`` engines are loaded once and reused; at most N pages are recognised at once,
  further requests wait for a free engine (their wait is ``queue_ms``).

The engine reads images only: the text of the prompt is ignored, and a request without an image
is a 400. Several images are transcribed in order, separated by a blank line. Usage is counted
in words, the unit an OCR engine emits: ``completion_tokens`` is the number of
whitespace-separated words of the answer, ``prompt_tokens`` is 0 (no prompt is read), and
``max_tokens`` caps the answer at that many words (``finish_reason: "length"``). There is no
token stream: the whole text comes at once, so TTFT equals the latency and TPOT is null.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    StreamEvent,
    TextDelta,
)
from vlmhb_wrapper.errors import InvalidRequestError, ServiceUnavailableError
from vlmhb_wrapper.telemetry import MemoryMonitor, RssProbe

__all__ = ["TesseractBackend", "cap_words", "cut_at_stop", "debian_package", "parse_engine_args"]

logger = logging.getLogger(__name__)

_LANGUAGES = re.compile(r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
_WORD = re.compile(r"\S+")
_KNOWN_ARGS = {"languages", "psm", "oem"}


def debian_package(language: str) -> str:
    """Debian's package for a Tesseract language (``chi_sim`` -> ``tesseract-ocr-chi-sim``)."""
    return "tesseract-ocr-" + language.lower().replace("_", "-")


def parse_engine_args(engine_args: Mapping[str, Any]) -> tuple[str, int, int]:
    """``(languages, psm, oem)`` from the model entry's engine args; ``ValueError`` names the
    offending key."""
    unknown = sorted(set(engine_args) - _KNOWN_ARGS)
    if unknown:
        raise ValueError(
            f"engine args {unknown} do not apply to tesseract (it reads: "
            f"{', '.join(sorted(_KNOWN_ARGS))})"
        )
    languages = str(engine_args.get("languages", "eng"))
    if not _LANGUAGES.match(languages):
        raise ValueError(f"engine_args.languages: expected e.g. 'rus+eng', got {languages!r}")
    psm, oem = engine_args.get("psm", 3), engine_args.get("oem", 1)
    if not isinstance(psm, int) or not 0 <= psm <= 13:
        raise ValueError(f"engine_args.psm: expected an int in 0..13, got {psm!r}")
    if not isinstance(oem, int) or not 0 <= oem <= 3:
        raise ValueError(f"engine_args.oem: expected an int in 0..3, got {oem!r}")
    return languages, psm, oem


def cap_words(text: str, max_words: int) -> tuple[str, int, bool]:
    """The text cut after its ``max_words``-th word (layout kept), its word count, and whether
    it was cut."""
    words = list(_WORD.finditer(text))
    if len(words) <= max_words:
        return text, len(words), False
    return text[: words[max_words - 1].end()], max_words, True


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The text up to the earliest stop sequence (excluded), and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class TesseractBackend(Backend):
    name: ClassVar[str] = "tesseract"
    task_kinds: ClassVar[frozenset[str] | None] = frozenset({"ocr"})

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.languages, self.psm, self.oem = parse_engine_args(config.engine_args)
        self.workers = config.threads or 1
        self._engines: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pool: ThreadPoolExecutor | None = None
        self._monitor = MemoryMonitor(None)
        self.engine_version = ""

    @property
    def max_images_per_request(self) -> int | None:
        return None

    def tessdata_problem(self) -> str | None:
        """Why ``--model`` is not a usable tessdata folder for the languages, or None."""
        folder = Path(self.config.model)
        if not folder.is_dir():
            return (
                f"--model {folder} is not a folder; the tesseract backend needs the tessdata "
                "folder (Debian: /usr/share/tesseract-ocr/5/tessdata)"
            )
        missing = [
            lang
            for lang in self.languages.split("+")
            if not (folder / f"{lang}.traineddata").is_file()
        ]
        if missing:
            files = ", ".join(f"{lang}.traineddata" for lang in missing)
            packages = " ".join(debian_package(lang) for lang in missing)
            return f"{files} not found in {folder}; install it: apt-get install {packages}"
        return None

    async def _load(self) -> None:
        problem = self.tessdata_problem()
        if problem:
            raise FileNotFoundError(problem)
        await asyncio.to_thread(self._load_sync)

    def _load_sync(self) -> None:
        import tesserocr

        start = time.perf_counter()
        for _ in range(self.workers):
            self._engines.put(
                tesserocr.PyTessBaseAPI(
                    path=str(Path(self.config.model)),
                    lang=self.languages,
                    psm=self.psm,
                    oem=self.oem,
                )
            )
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vlmhb-tesseract")
        self._monitor = MemoryMonitor(RssProbe())
        self.engine_version = tesserocr.tesseract_version().splitlines()[0]
        logger.info(
            "loaded %s (%s, %s, psm %d, oem %d, from %s) in %.2fs; %d engine(s)",
            self.config.model_name,
            self.engine_version,
            self.languages,
            self.psm,
            self.oem,
            self.config.model,
            time.perf_counter() - start,
            self.workers,
        )

    def _recognise(self, images: list[Image.Image], queued: float) -> tuple[str, float, float]:
        """OCR on one engine taken from the pool: (text, queue seconds, generation start)."""
        engine = self._engines.get()
        gen_start = time.perf_counter()
        try:
            pages = []
            for image in images:
                engine.SetImage(image)
                pages.append(engine.GetUTF8Text().strip())
                engine.Clear()
            return "\n\n".join(pages), gen_start - queued, gen_start
        finally:
            self._engines.put(engine)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        if not self.ready or self._pool is None:
            raise ServiceUnavailableError(f"model is not ready (state: {self.state.value})")
        images = request.images
        if not images:
            raise InvalidRequestError(
                "the tesseract backend transcribes images: send at least one image_url part",
                param="messages",
                code="image_required",
            )
        window = self._monitor.open()
        try:
            loop = asyncio.get_running_loop()
            text, queue_s, gen_start = await loop.run_in_executor(
                self._pool, self._recognise, images, time.perf_counter()
            )
        finally:
            memory = self._monitor.close(window)
        text, _ = cut_at_stop(text, request.stop)
        text, words, capped = cap_words(text, request.max_new_tokens)
        finished = time.perf_counter()
        if text:
            yield TextDelta(text)
        yield GenerationResult(
            text=text,
            finish_reason="length" if capped else "stop",
            prompt_tokens=0,
            completion_tokens=words,
            gen_start=gen_start,
            finished=finished,
            first_token=finished,
            queue_s=queue_s,
            memory=memory,
            device="cpu",
        )

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        while not self._engines.empty():
            self._engines.get_nowait().End()
        self._monitor.shutdown()
