"""OpenAI chat request -> backend-neutral :class:`GenerationRequest` (validation + images)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from vlmhb_wrapper.backends.base import (
    GenerationRequest,
    ImageSegment,
    PromptMessage,
    TextSegment,
)
from vlmhb_wrapper.errors import InvalidRequestError
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.schemas import ChatCompletionRequest, TextPart

__all__ = ["GenerationDefaults", "build_generation_request"]

_ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class GenerationDefaults:
    default_max_tokens: int = 512
    max_new_tokens_limit: int = 4096
    max_images_per_request: int = 16


def build_generation_request(
    req: ChatCompletionRequest,
    media: MediaLoader,
    defaults: GenerationDefaults,
    *,
    arrival: float,
) -> GenerationRequest:
    """Validate sampling options and decode every image; raises ``InvalidRequestError``.

    Blocking (image decoding): call it from a worker thread.
    """
    if req.n != 1:
        raise InvalidRequestError("only n=1 is supported", param="n")
    if req.stream:
        raise InvalidRequestError("stream=true is not supported yet", param="stream")
    max_new = req.requested_max_tokens() or defaults.default_max_tokens
    if max_new > defaults.max_new_tokens_limit:
        raise InvalidRequestError(
            f"max tokens {max_new} exceeds this server's limit of {defaults.max_new_tokens_limit}",
            param="max_completion_tokens" if req.max_completion_tokens else "max_tokens",
        )
    stops = req.stop_sequences()
    if len(stops) > 4:
        raise InvalidRequestError("at most 4 stop sequences are allowed", param="stop")

    media_start = time.perf_counter()
    n_images = 0
    messages: list[PromptMessage] = []
    for message in req.messages:
        parts: list[TextSegment | ImageSegment] = []
        if isinstance(message.content, str):
            parts.append(TextSegment(message.content))
        elif message.content is not None:
            for part in message.content:
                if isinstance(part, TextPart):
                    parts.append(TextSegment(part.text))
                    continue
                n_images += 1
                if n_images > defaults.max_images_per_request:
                    raise InvalidRequestError(
                        f"at most {defaults.max_images_per_request} images per request",
                        param="messages",
                    )
                parts.append(ImageSegment(media.load(part.image_url.url)))
        messages.append(PromptMessage(role=_ROLE_MAP[message.role], parts=tuple(parts)))  # type: ignore[arg-type]
    media_ms = (time.perf_counter() - media_start) * 1000.0

    temperature = 0.0 if req.temperature is None else req.temperature
    return GenerationRequest(
        messages=tuple(messages),
        max_new_tokens=max_new,
        temperature=temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        seed=req.seed,
        stop=stops,
        arrival=arrival,
        media_ms=media_ms,
    )
