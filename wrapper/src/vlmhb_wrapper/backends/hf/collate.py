"""From a request to the inputs of one ``generate()``: the chat in Hugging Face's format, and
which processed requests can share a batch and how they are stacked (:class:`CollatePlan`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from vlmhb_wrapper.backends.base import ImageSegment, PromptMessage

__all__ = ["CollatePlan", "to_hf_chat"]

#: Processor outputs of shape (1, L) that are *not* per-token sequences.
_NOT_SEQUENCES = {"image_grid_thw", "video_grid_thw", "image_sizes", "second_per_grid_ts"}


def to_hf_chat(messages: tuple[PromptMessage, ...]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Backend messages -> HF multimodal chat format + the images in order of appearance.

    Content is always a list of parts (``{"type": "image"}`` / ``{"type": "text"}``): that is
    the form every HF multimodal chat template understands.
    """
    chat: list[dict[str, Any]] = []
    images: list[Any] = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, ImageSegment):
                content.append({"type": "image"})
                images.append(part.image)
            else:
                content.append({"type": "text", "text": part.text})
        chat.append({"role": message.role, "content": content})
    return chat, images


class CollatePlan:
    """Decides which processed requests can share a batch, and stacks them.

    * per-token sequences (``input_ids``, ``attention_mask``, ``token_type_ids``, ...; shape
      ``(1, L)``) are left-padded to the longest;
    * other tensors are concatenated along dim 0 when their trailing shapes agree (LLaVA's
      ``(n_images, C, H, W)``, Qwen2-VL's ``(n_patches, D)`` and ``image_grid_thw``), or, when
      every request has dim 0 == 1, zero-padded on the other dims first (Idefics3's
      ``(1, n_tiles, C, H, W)`` + ``pixel_attention_mask``, which the model ignores when zero).
    """

    def __init__(self, first: dict[str, torch.Tensor]) -> None:
        self.seq = _sequence_keys(first)
        self.keys = frozenset(first)
        self.dtypes = {k: v.dtype for k, v in first.items()}
        self.ndims = {k: v.dim() for k, v in first.items()}
        self.trailing = {k: tuple(v.shape[1:]) for k, v in first.items() if k not in self.seq}
        self.mode = dict.fromkeys(self.trailing, "cat")
        self.dim0_one = {k: v.shape[0] == 1 for k, v in first.items() if k not in self.seq}
        self.size = 1

    def accepts(self, inputs: dict[str, torch.Tensor]) -> bool:
        if frozenset(inputs) != self.keys or _sequence_keys(inputs) != self.seq:
            return False
        for key, tensor in inputs.items():
            if tensor.dtype != self.dtypes[key] or tensor.dim() != self.ndims[key]:
                return False
            if key in self.seq:
                continue
            same = tuple(tensor.shape[1:]) == self.trailing[key]
            if self.mode[key] == "cat" and same:
                continue
            if not (self.dim0_one[key] and tensor.shape[0] == 1):
                return False
        return True

    def add(self, inputs: dict[str, torch.Tensor]) -> None:
        for key, tensor in inputs.items():
            if key in self.seq:
                continue
            if tuple(tensor.shape[1:]) != self.trailing[key]:
                self.mode[key] = "pad"
            self.dim0_one[key] = self.dim0_one[key] and tensor.shape[0] == 1
        self.size += 1

    def collate(self, rows: Sequence[dict[str, torch.Tensor]], pad_id: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        length = max(row["input_ids"].shape[1] for row in rows)
        for key in self.keys:
            tensors = [row[key] for row in rows]
            if key in self.seq:
                fill = pad_id if key == "input_ids" else 0
                out[key] = torch.cat(
                    [F.pad(t, (length - t.shape[1], 0), value=fill) for t in tensors]
                )
            elif self.mode[key] == "cat" or len(tensors) == 1:
                out[key] = torch.cat(tensors)
            else:
                target = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
                padded = []
                for t in tensors:
                    pads: list[int] = []
                    for d in reversed(range(1, t.dim())):
                        pads += [0, target[d] - t.shape[d]]
                    padded.append(F.pad(t, pads, value=0))
                out[key] = torch.cat(padded)
        return out


def _sequence_keys(inputs: dict[str, torch.Tensor]) -> frozenset[str]:
    length = inputs["input_ids"].shape[1]
    return frozenset(
        k
        for k, v in inputs.items()
        if k not in _NOT_SEQUENCES and v.dim() == 2 and v.shape == (1, length)
    )
