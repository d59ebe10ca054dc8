"""The tesseract backend behind the real wrapper CLI, called with the official openai client:
a transcription of a rendered Russian page with usage and performance, streaming, the word
cap, and 400s for requests an OCR engine cannot answer."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("tesserocr")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

pytestmark = pytest.mark.slow

TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")
LINES = ["РОССИЙСКАЯ ФЕДЕРАЦИЯ", "Фамилия ИВАНОВ", "Дата выдачи 02.11.2018"]

if not (TESSDATA / "rus.traineddata").is_file():
    pytest.skip(
        "Tesseract's Russian data is missing: apt-get install tesseract-ocr tesseract-ocr-rus",
        allow_module_level=True,
    )


def _page() -> bytes:
    font_path = Path(__import__("matplotlib").get_data_path()) / "fonts/ttf/DejaVuSans.ttf"
    font = ImageFont.truetype(str(font_path), 28)
    image = Image.new("RGB", (640, 200), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(LINES):
        draw.text((20, 20 + 55 * i), line, fill="black", font=font)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _message(data: bytes, mime: str = "image/png", text: str = "Перепиши текст.") -> list:
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": text},
            ],
        }
    ]


@pytest.fixture(scope="module")
def server(start_wrapper):
    return start_wrapper(
        "--backend", "tesseract", "--model", str(TESSDATA), "--threads", "2",
        "--engine-args-json", json.dumps({"languages": "rus+eng", "psm": 6}),
        name="tesseract-rus",
    )  # fmt: skip


def test_transcribes_with_usage_and_performance(server) -> None:
    reference = "\n".join(LINES)
    answer = server.client().chat.completions.create(
        model="tesseract-rus", messages=_message(_page()), max_tokens=64
    )
    text = answer.choices[0].message.content
    assert Levenshtein.normalized_distance(text, reference) < 0.1, text
    assert answer.choices[0].finish_reason == "stop"
    # usage is counted in words (documented): the answer's whitespace-separated words
    assert answer.usage.completion_tokens == len(text.split())
    assert answer.usage.prompt_tokens == 0
    perf = answer.model_extra["performance"]
    assert perf["backend"] == "tesseract"
    assert perf["latency_ms"] > 0 and perf["ttft_ms"] == pytest.approx(perf["latency_ms"])
    assert perf["tpot_ms"] is None
    assert perf["peak_memory_mb"] > 0 and perf["memory_source"] == "process_rss"


def test_streaming_and_the_word_cap(server) -> None:
    chunks = list(
        server.client().chat.completions.create(
            model="tesseract-rus",
            messages=_message(_page()),
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 3 and text.split()[0] == "РОССИЙСКАЯ"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].model_extra["performance"]["backend"] == "tesseract"


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        (_message(b"this is not an image", mime="image/png"), "image"),
        (_message(_page()[:200]), "image"),  # a truncated PNG
        ([{"role": "user", "content": "What is the surname?"}], "send at least one image"),
    ],
    ids=["not-an-image", "truncated-png", "no-image"],
)
def test_bad_requests_are_400_naming_the_problem(server, messages, needle) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(model="tesseract-rus", messages=messages)
    assert needle in info.value.message


def test_structured_output_is_refused(server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(
            model="tesseract-rus",
            messages=_message(_page()),
            response_format={"type": "json_object"},
        )
    assert "tesseract" in info.value.message


def test_processor_arguments_are_refused(server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(
            model="tesseract-rus",
            messages=_message(_page()),
            extra_body={"mm_processor_kwargs": {"max_pixels": 401408}},
        )
    assert info.value.status_code == 400
    assert info.value.body["param"] == "mm_processor_kwargs"
    assert "mm_processor_kwargs" in info.value.message
    assert "tesseract backend" in info.value.message


def test_missing_language_data_fails_loading_with_the_package(start_wrapper, tmp_path) -> None:
    server = start_wrapper(
        "--backend", "tesseract", "--model", str(tmp_path),
        "--engine-args-json", json.dumps({"languages": "rus"}),
        name="broken", wait=False,
    )  # fmt: skip
    deadline, body = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"{server.base_url}/health", timeout=2).json()
            if body["status"] == "failed":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    assert body["status"] == "failed"
    assert "rus.traineddata" in body["detail"]
    assert "apt-get install tesseract-ocr-rus" in body["detail"]


def test_unknown_engine_args_stop_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vlmhb_wrapper", "serve", "--backend", "tesseract",
         "--model", str(TESSDATA), "--engine-args-json", '{"dtype": "float16"}'],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "backend tesseract" in result.stderr and "dtype" in result.stderr
