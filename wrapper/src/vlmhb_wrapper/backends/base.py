"""The backend contract: load a model once, then turn normalized chat requests into text.

Backends see no HTTP and no OpenAI schema: the app validates the request, decodes images
(:mod:`vlmhb_wrapper.media`) and hands over a :class:`GenerationRequest`. This keeps backends
(HF in-process today; vLLM / SGLang later) small and interchangeable.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendState",
    "GenerationRequest",
    "GenerationResult",
    "ImageSegment",
    "PromptMessage",
    "TextSegment",
    "Timings",
]


class BackendState(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class BackendConfig:
    """Options common to all backends (CLI flags map onto these)."""

    model: str
    served_model_name: str | None = None
    threads: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens_limit: int = 4096
    trust_remote_code: bool = False

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model


@dataclass(frozen=True)
class TextSegment:
    text: str


@dataclass(frozen=True)
class ImageSegment:
    image: Image.Image


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
    arrival: float = 0.0
    """``time.perf_counter()`` when the server received the request: the telemetry origin."""
    media_ms: float = 0.0

    @property
    def images(self) -> list[Image.Image]:
        return [p.image for m in self.messages for p in m.parts if isinstance(p, ImageSegment)]


@dataclass
class Timings:
    """Milliseconds; see :class:`vlmhb_wrapper.schemas.Performance` for the definitions."""

    latency_ms: float = 0.0
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    queue_ms: float = 0.0
    media_ms: float = 0.0
    preprocess_ms: float = 0.0
    generate_ms: float = 0.0


@dataclass
class GenerationResult:
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    timings: Timings = field(default_factory=Timings)
    peak_memory_mb: float = 0.0
    memory_source: Literal["cuda", "process_rss"] = "process_rss"
    device: str = "cpu"


class Backend(ABC):
    """Base class. Subclasses implement :meth:`_load` and :meth:`generate`.

    :meth:`load` is the public entry point; it tracks :attr:`state` so ``/health`` can report
    ``loading`` / ``ready`` / ``failed`` while the (possibly slow) load runs in the background.
    """

    name: ClassVar[str] = "base"

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
            self.state = BackendState.READY
            logger.info("backend %s ready: %s", self.name, self.model_name)

    @abstractmethod
    async def _load(self) -> None: ...

    @abstractmethod
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate one completion. Raise ``InvalidRequestError`` for client-caused failures
        (e.g. the prompt does not fit the context); anything else becomes an HTTP 500."""

    async def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release resources at shutdown."""
