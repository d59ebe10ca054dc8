"""The backend contract: load a model once, then turn normalized chat requests into a stream
of text deltas ending with a :class:`GenerationResult`.

Backends see no HTTP and no OpenAI schema: the app validates the request, checks and decodes
images (:mod:`vlmhb_wrapper.media`) and hands over a :class:`GenerationRequest`. Every backend
implements one method, :meth:`Backend.stream`; the non-streaming endpoint consumes the same
stream, so telemetry is measured the same way for both.

A backend reports *time marks* (``time.perf_counter()`` values) and counts, not derived
numbers: the app turns them into the ``performance`` object in one place
(:func:`vlmhb_wrapper.telemetry.performance_of`), so every backend's TTFT means the same.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendState",
    "GenerationRequest",
    "GenerationResult",
    "ImageSegment",
    "MemoryReading",
    "PromptMessage",
    "TextDelta",
    "TextSegment",
]


class BackendState(str, enum.Enum):  # noqa: UP042 - StrEnum needs Python 3.11
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class BackendConfig:
    """Options of all backends (CLI flags map onto these; each backend reads its own)."""

    model: str
    served_model_name: str | None = None
    revision: str | None = None
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    max_new_tokens_limit: int = 4096
    # hf
    threads: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    max_batch_size: int = 8
    batch_wait_ms: float = 5.0
    # vllm / sglang
    engine_launcher: tuple[str, ...] | None = None
    engine_port: int | None = None
    engine_startup_timeout_s: float = 1800.0
    engine_log_lines: int = 40
    #: After startup the engine's /health is polled this often (0: never); this many failed
    #: polls in a row (no answer within the interval, or not 200) mean it hangs.
    engine_health_interval_s: float = 10.0
    engine_health_failures: int = 3
    # vllm / sglang / openai (the upstream OpenAI-compatible server)
    upstream_base_url: str | None = None
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_model: str | None = None
    upstream_timeout_s: float = 600.0
    secret_env_vars: tuple[str, ...] = ()
    """Environment variables that must not reach a child engine process."""

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model


@dataclass(frozen=True)
class TextSegment:
    text: str


@dataclass(frozen=True)
class ImageSegment:
    """A checked image: decoded (``image``) for in-process backends, and always available as a
    ``data:`` URL for proxied ones (the client's own data URL when it sent one)."""

    data_url: str
    width: int
    height: int
    image: Image.Image | None = None


@dataclass(frozen=True)
class PromptMessage:
    role: Literal["system", "user", "assistant"]
    parts: tuple[TextSegment | ImageSegment, ...]


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[PromptMessage, ...]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: dict[str, Any] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    """The multimodal processor's arguments for this request (only on backends that declare
    :attr:`Backend.supports_mm_processor_kwargs`)."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    arrival: float = 0.0
    """``time.perf_counter()`` when the server received the request: the telemetry origin."""
    media_ms: float = 0.0

    @property
    def images(self) -> list[Image.Image]:
        return [
            p.image
            for m in self.messages
            for p in m.parts
            if isinstance(p, ImageSegment) and p.image is not None
        ]

    def openai_messages(self) -> list[dict[str, Any]]:
        """The messages as OpenAI JSON, images as ``data:`` URLs (for proxied backends)."""
        out: list[dict[str, Any]] = []
        for message in self.messages:
            if len(message.parts) == 1 and isinstance(message.parts[0], TextSegment):
                out.append({"role": message.role, "content": message.parts[0].text})
                continue
            content: list[dict[str, Any]] = []
            for part in message.parts:
                if isinstance(part, ImageSegment):
                    content.append({"type": "image_url", "image_url": {"url": part.data_url}})
                else:
                    content.append({"type": "text", "text": part.text})
            out.append({"role": message.role, "content": content})
        return out


@dataclass(frozen=True)
class TextDelta:
    """New completion text (never empty)."""

    text: str


@dataclass(frozen=True)
class MemoryReading:
    peak_mb: float | None
    source: str  # one of schemas.MemorySource


@dataclass
class GenerationResult:
    """The end of a stream: the whole text, counts and time marks (``perf_counter`` seconds)."""

    text: str
    finish_reason: str  # "stop" | "length" (proxies relay the upstream's value)
    prompt_tokens: int
    completion_tokens: int
    gen_start: float
    """When this request's generation started (hf: its batch; proxies: request sent)."""
    finished: float
    first_token: float | None = None
    last_token: float | None = None
    queue_s: float = 0.0
    preprocess_s: float = 0.0
    memory: MemoryReading = field(default_factory=lambda: MemoryReading(None, "unavailable"))
    device: str = "cpu"
    batch_size: int | None = None
    gpu_allocator_peak_mb: float | None = None
    upstream: dict[str, Any] | None = None


StreamEvent = TextDelta | GenerationResult


class Backend(ABC):
    """Base class. Subclasses implement :meth:`_load` and :meth:`stream`.

    :meth:`load` is the public entry point; it tracks :attr:`state` so ``/health`` can report
    ``loading`` / ``ready`` / ``failed`` while the (possibly slow) load runs in the background.
    """

    name: ClassVar[str] = "base"
    #: The backend can constrain output to ``response_format`` json_object / json_schema.
    supports_structured_output: ClassVar[bool] = False
    #: The backend honours presence/frequency penalties.
    supports_penalties: ClassVar[bool] = False
    #: The backend applies a request's ``mm_processor_kwargs`` (multimodal processor arguments)
    #: to that request alone; elsewhere they are fixed when the model loads (engine args).
    supports_mm_processor_kwargs: ClassVar[bool] = False
    #: In-process backends need decoded PIL images; proxies forward checked data: URLs.
    needs_decoded_images: ClassVar[bool] = True
    #: The task kinds (``vqa``, ``ocr``, ...) the backend can serve; None: any. An OCR engine
    #: answers no question, so it declares ``{"ocr"}``. The benchmark's config validation
    #: mirrors this in ``vlmhyperbench.pipeline.backend_specs`` (it must not import backends).
    task_kinds: ClassVar[frozenset[str] | None] = None

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.state = BackendState.LOADING
        self.error: str | None = None

    @property
    def model_name(self) -> str:
        return self.config.model_name

    @property
    def ready(self) -> bool:
        return self.state is BackendState.READY

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def max_images_per_request(self) -> int | None:
        """A backend-specific cap (e.g. the engine's ``limit_mm_per_prompt``); None: no cap."""
        limit = self.config.engine_args.get("limit_mm_per_prompt") or {}
        value = limit.get("image") if isinstance(limit, Mapping) else None
        return int(value) if value is not None else None

    async def load(self) -> None:
        """Load the model; never raises (except on cancellation), records the outcome."""
        self.state, self.error = BackendState.LOADING, None
        try:
            await self._load()
        except asyncio.CancelledError:
            self.state, self.error = BackendState.FAILED, "loading was cancelled"
            raise
        except Exception as exc:
            logger.exception("backend %s failed to load %s", self.name, self.config.model)
            self.state, self.error = BackendState.FAILED, f"{type(exc).__name__}: {exc}"
        else:
            if self.state is BackendState.LOADING:
                self.state = BackendState.READY
                logger.info("backend %s ready: %s", self.name, self.model_name)

    def mark_failed(self, error: str) -> None:
        """Called when the backend dies after loading (e.g. the engine process exited)."""
        self.state, self.error = BackendState.FAILED, error

    def health_detail(self) -> str | None:
        if self.state is BackendState.FAILED:
            return self.error
        if self.state is BackendState.LOADING:
            return "model is loading"
        return None

    def metrics(self) -> dict[str, float]:
        """Backend gauges for ``/metrics`` (name -> value); optional."""
        return {}

    @abstractmethod
    async def _load(self) -> None: ...

    @abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Generate one completion: yield :class:`TextDelta` items, then exactly one
        :class:`GenerationResult`. Raise :class:`~vlmhb_wrapper.errors.APIError` subclasses for
        failures the client should see with a status (400 for the request's fault, 503 when
        the model is gone); anything else becomes a 500. Closing the iterator early (client
        disconnect) must cancel the work."""

    async def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release resources at shutdown."""
