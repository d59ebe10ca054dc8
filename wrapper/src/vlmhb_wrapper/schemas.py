"""Request/response models mirroring the OpenAI Chat Completions API (the subset we serve).

Unknown request fields are ignored (clients such as ``openai`` may send defaults we do not
model); fields we model but cannot honour (``n > 1``, ``stream``) are rejected explicitly by
the endpoint with a 400 instead of being silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------------- request


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str = Field(description="data:image/...;base64,... or file:// under an allowed root")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool | None = False
    user: str | None = None

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)

    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` (current OpenAI name) wins over legacy ``max_tokens``."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens


# --------------------------------------------------------------------------------- response


class Performance(BaseModel):
    """Server-side per-request telemetry (all times in milliseconds, wall clock).

    The clock starts when the request body has been parsed by the server (``t0``).
    """

    latency_ms: float = Field(description="t0 -> generation finished and decoded")
    ttft_ms: float | None = Field(
        description="t0 -> first new token produced by generate (includes queue and prefill); "
        "null when no token was generated"
    )
    tpot_ms: float | None = Field(
        description="mean time per output token after the first; null for < 2 tokens"
    )
    queue_ms: float = Field(description="time waiting for the (serialized) generation worker")
    media_ms: float = Field(description="decoding and validating the request's images")
    preprocess_ms: float = Field(description="chat template + processor (tokenize, pixels)")
    generate_ms: float = Field(description="model.generate wall time (prefill + decode)")
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float = Field(description="completion_tokens / generate time")
    peak_memory_mb: float
    memory_source: Literal["cuda", "process_rss"] = Field(
        description="cuda: torch.cuda.max_memory_allocated during this request; "
        "process_rss: peak resident set size of the server process so far"
    )
    device: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    performance: Performance


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "vlmhyperbench"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
