"""Build OpenAI chat messages for a sample: images as ``data:`` URLs, then the rendered text."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from vlmhyperbench.datasets.images import ImageError, read_image
from vlmhyperbench.inference.prompts import RenderedPrompt


class SampleInputError(ValueError):
    """A problem with one sample's input (a missing image, a directory or FIFO where an image
    should be…): recorded for that sample only."""


def image_data_url(path: Path) -> str:
    try:
        payload = read_image(path)
    except ImageError as exc:
        raise SampleInputError(str(exc)) from exc
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def build_messages(
    prompt: RenderedPrompt, image_paths: list[Path], images_first: bool = True
) -> list[dict[str, Any]]:
    """The chat messages: the system text, then one user message of the images (as data URLs)
    and the user text, the images before the text unless ``images_first`` is false."""
    images: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(path)}} for path in image_paths
    ]
    text = {"type": "text", "text": prompt.user}
    content = [*images, text] if images_first else [text, *images]
    messages: list[dict[str, Any]] = []
    if prompt.system:
        messages.append({"role": "system", "content": prompt.system})
    messages.append({"role": "user", "content": content})
    return messages
