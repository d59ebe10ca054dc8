"""Tiny random-weight VLMs: built offline, loaded and run exactly like real checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402

from vlmhyperbench.models.tiny import ARCHS, TINY_MODEL_MARKER, build_tiny_model  # noqa: E402

torch.set_num_threads(1)

QUESTION = "Что написано на изображении? Ответь кратко."
SYSTEM = "Ты — полезный ассистент."


def _document_image(size: tuple[int, int] = (96, 64)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, size[0] - 5, 20), outline="black", width=2)
    draw.line((8, 40, size[0] - 8, 40), fill="navy", width=3)
    return image


def _messages() -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
    ]


@pytest.mark.parametrize("arch", ARCHS)
def test_folder_is_an_ordinary_checkpoint(tiny_model_dirs: dict[str, Path], arch: str) -> None:
    model_dir = tiny_model_dirs[arch]
    files = {p.name for p in model_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "chat_template.jinja",
        TINY_MODEL_MARKER,
    } <= files
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")], "temp dirs left"

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    expected = {"llava": "Llava", "idefics3": "Idefics3"}[arch]
    assert type(processor).__name__ == f"{expected}Processor"
    assert type(model).__name__ == f"{expected}ForConditionalGeneration"
    # The PIL image processors work without torchvision.
    assert type(processor.image_processor).__name__.endswith("Pil")
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 1_000_000, n_params
    assert model.config.get_text_config().vocab_size == len(processor.tokenizer)


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_on_image_with_cyrillic_prompt(
    tiny_model_dirs: dict[str, Path], arch: str
) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model_dirs[arch])
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dirs[arch]).eval()
    prompt = processor.apply_chat_template(_messages(), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=prompt, images=[_document_image()], return_tensors="pt")

    # The processor expanded the single placeholder into the model's image tokens.
    image_token_id = model.config.image_token_id
    n_image_tokens = int((inputs["input_ids"] == image_token_id).sum())
    if arch == "llava":
        assert n_image_tokens == model.config.image_seq_length == 16
    else:  # 2x2 tiles + 1 global view, image_seq_len tokens each
        assert inputs["pixel_values"].shape[1] == 5
        assert n_image_tokens == 5 * processor.image_seq_len

    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new_tokens = out[0, inputs["input_ids"].shape[1] :]
    assert 1 <= new_tokens.numel() <= 12
    assert isinstance(processor.decode(new_tokens, skip_special_tokens=True), str)


@pytest.mark.parametrize("arch", ARCHS)
def test_chat_template_renders_system_user_image(
    tiny_model_dirs: dict[str, Path], arch: str
) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model_dirs[arch])
    text = processor.apply_chat_template(_messages(), add_generation_prompt=True, tokenize=False)
    assert SYSTEM in text and QUESTION in text
    assert text.count("<image>") == 1
    assert text.index(SYSTEM) < text.index("<image>") < text.index(QUESTION)
    assert text.endswith("assistant\n" if arch == "llava" else "Assistant:")
    # Plain-string content (no parts) renders too, and the template lives on the tokenizer.
    plain = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], add_generation_prompt=False, tokenize=False
    )
    assert QUESTION in plain and "<image>" not in plain


@pytest.mark.parametrize("arch", ARCHS)
def test_tokenizer_round_trips_cyrillic_and_latin(
    tiny_model_dirs: dict[str, Path], arch: str
) -> None:
    tokenizer = AutoProcessor.from_pretrained(tiny_model_dirs[arch]).tokenizer
    text = "Итого к оплате: 15 300,00 руб. Invoice INV-2024-0042 ✓ 漢字"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    # BPE merges learned the Cyrillic words: far fewer tokens than UTF-8 bytes.
    assert len(ids) < len(text.encode()) / 2
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a = load_file(build_tiny_model(tmp_path / "a", "llava", seed=7) / "model.safetensors")
    b = load_file(build_tiny_model(tmp_path / "b", "llava", seed=7) / "model.safetensors")
    c = load_file(build_tiny_model(tmp_path / "c", "llava", seed=8) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (
        tmp_path / "c" / "tokenizer.json"
    ).read_bytes()


def test_build_leaves_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(tmp_path / "m", "idefics3", seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_rebuild_replaces_folder_atomically(tmp_path: Path) -> None:
    out = tmp_path / "models" / "tiny"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("old")
    assert build_tiny_model(out, "llava") == out
    assert not (out / "stale.txt").exists()
    assert (out / "config.json").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]


def test_unknown_arch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model arch"):
        build_tiny_model(tmp_path / "x", "gpt5", seed=0)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
