"""Tiny random-weight vision-language models, built offline.

``build_tiny_model`` writes an ordinary Hugging Face model folder (``config.json``,
``model.safetensors``, tokenizer files, processor / image-processor config, chat template,
generation config) that loads exactly like a real checkpoint with
``AutoProcessor.from_pretrained(dir)`` and ``AutoModelForImageTextToText.from_pretrained(dir)``.
The weights are random, so answers are noise; the point is to exercise the real code path
(chat template -> processor -> image placeholder expansion -> vision tower -> generate) in
seconds on a CPU, without any network access.

Image processors are the PIL ("slow") ones, which need no torchvision.

Usage::

    python -m vlmhyperbench.models.tiny OUT_DIR --arch llava --seed 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from transformers import (
    AutoModelForImageTextToText,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    GenerationConfig,
    Idefics3Config,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    ProcessorMixin,
)
from transformers.utils import logging as hf_logging

from vlmhyperbench.models.tiny_tokenizer import build_tokenizer

__all__ = ["ARCHS", "TINY_MODEL_MARKER", "Arch", "build_tiny_model"]

Arch = Literal["llava", "idefics3"]
ARCHS: tuple[str, ...] = get_args(Arch)

#: Small JSON file written next to the weights describing how the folder was built.
TINY_MODEL_MARKER = "tiny_model.json"

# Shared tiny dimensions. Vision: 32x32 px images, 8 px patches -> 4x4 = 16 patches.
_TEXT_DIMS: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
}
_VISION_DIMS: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}

# ChatML-style template (LLaVA-OneVision-like). Accepts string content or a list of
# {"type": "image"} / {"type": "text", "text": ...} parts, any roles incl. "system".
LLAVA_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# SmolVLM / Idefics3-style template: "User:<image>question<end_of_utterance>\nAssistant:".
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize -}}"
    "{%- if message['content'] is string -%}{{- ': ' + message['content'] -}}"
    "{%- else -%}"
    "{%- if message['content'] and message['content'][0]['type'] == 'image' -%}{{- ':' -}}"
    "{%- else -%}{{- ': ' -}}{%- endif -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class _Built:
    processor: ProcessorMixin
    model: torch.nn.Module


def _text_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **_TEXT_DIMS,
    )


def _build_llava() -> _Built:
    tokenizer = build_tokenizer(["<image>", "<|im_start|>", "<|im_end|>"], eos_token="<|im_end|>")
    tokenizer.chat_template = LLAVA_CHAT_TEMPLATE
    side = _VISION_DIMS["image_size"]
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=_VISION_DIMS["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    num_patches = (side // _VISION_DIMS["patch_size"]) ** 2
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(projection_dim=32, **_VISION_DIMS),
        text_config=_text_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=num_patches,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    return _Built(processor, AutoModelForImageTextToText.from_config(config))


def _build_idefics3() -> _Built:
    row_col = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer = build_tokenizer(
        [
            "<|im_start|>",
            "<fake_token_around_image>",
            "<image>",
            "<end_of_utterance>",
            "<global-img>",
            *row_col,
        ],
        eos_token="<end_of_utterance>",
    )
    tokenizer.chat_template = IDEFICS3_CHAT_TEMPLATE
    side = _VISION_DIMS["image_size"]
    scale_factor = 2
    # Images are resized to <= 2*side on the longest edge and split into side x side tiles
    # (up to 2x2) plus one global side x side view, like SmolVLM at a toy scale.
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * side},
        max_image_size={"longest_edge": side},
        do_image_splitting=True,
    )
    image_seq_len = ((side // _VISION_DIMS["patch_size"]) ** 2) // (scale_factor**2)
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(**_VISION_DIMS),
        text_config=_text_config(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _Built(processor, AutoModelForImageTextToText.from_config(config))


_BUILDERS = {"llava": _build_llava, "idefics3": _build_idefics3}


def build_tiny_model(out_dir: Path, arch: Arch, seed: int = 0) -> Path:
    """Build a tiny random-weight VLM of ``arch`` and save it as a model folder at ``out_dir``.

    Deterministic: the same ``seed`` gives identical weights (the global torch RNG state of
    the caller is left untouched). The folder is written to a temporary sibling directory and
    renamed into place, so readers never see a half-written model; an existing ``out_dir`` is
    replaced. Returns ``out_dir``.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown tiny model arch {arch!r}; expected one of {ARCHS}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            built = _BUILDERS[arch]()
        model, processor = built.model, built.processor
        tokenizer = processor.tokenizer
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with _quiet_transformers():
            model.save_pretrained(tmp_dir)
            processor.save_pretrained(tmp_dir)
        marker = {"arch": arch, "seed": seed, "model_type": model.config.model_type}
        (tmp_dir / TINY_MODEL_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        _replace_dir(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return out_dir


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence progress bars and the spurious config warnings ``save_pretrained`` emits
    (it instantiates default configs, e.g. an 8B-vocab Idefics3, just to diff against)."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is swapped out first, then deleted."""
    old: Path | None = None
    if dst.exists() or dst.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
        old.rmdir()
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random-weight VLM folder.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--arch", choices=ARCHS, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_model(args.out_dir, args.arch, seed=args.seed))


if __name__ == "__main__":
    main()
