#!/usr/bin/env bash
# GPU check of the Inference API Wrapper, in one go (< 5 minutes).
#
# For a machine with one NVIDIA GPU where torch, transformers and torchvision are installed and
# nothing can be downloaded. It:
#   1. installs what the wrapper needs and is missing (fastapi, uvicorn, ...) from a wheel
#      folder, offline ($VLMHB_WHEELS, default benchmarks/wheels; see --download-wheels);
#   2. builds a tiny random-weight Qwen2-VL on the spot (no hub access);
#   3. serves it on the GPU through the wrapper (hf backend) and checks, with plain HTTP:
#      - the answer equals transformers' own greedy generate of the same request on the GPU,
#      - prompt_tokens equals the processor's count, streaming == non-streaming,
#      - `performance` reports the GPU: device cuda, GPU peak memory (NVML, or torch's
#        allocator) > 0, TTFT <= latency,
#      - 16 concurrent requests are batched (batch_size > 1) and each matched to its prompt;
#   4. runs benchmarks/hf_batching.py on the GPU (dynamic batching vs one at a time).
# Results go to $OUT (default: a temporary folder): checks.json, hf_batching.txt, logs.
#
#   bash benchmarks/gpu_check.sh
#   bash benchmarks/gpu_check.sh --download-wheels 3.11 DIR   # on a connected machine
#
# Knobs (for rehearsing on a CPU machine): VLMHB_GPU_CHECK_DEVICE=cpu,
# VLMHB_GPU_CHECK_MODEL=<existing model folder> (skips the Qwen2-VL build), PYTHON.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS="${VLMHB_WHEELS:-$REPO/benchmarks/wheels}"
WRAPPER_DEPS=(fastapi uvicorn pydantic pillow psutil httpx aiohttp nvidia-ml-py jinja2 httptools uvloop)

if [[ "${1:-}" == "--download-wheels" ]]; then
    version="${2:?usage: gpu_check.sh --download-wheels PYTHON_VERSION DIR}"
    dest="${3:?usage: gpu_check.sh --download-wheels PYTHON_VERSION DIR}"
    "$PY" -m pip download --dest "$dest" --only-binary=:all: --python-version "$version" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 "${WRAPPER_DEPS[@]}"
    exit 0
fi

DEVICE="${VLMHB_GPU_CHECK_DEVICE:-cuda}"
WORK="$(mktemp -d -t vlmhb-gpu-check-XXXXXX)"
OUT_DIR="${OUT:-$WORK/out}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$REPO/wrapper/src:$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
START=$SECONDS
log() { echo "[gpu_check +$((SECONDS - START))s] $*"; }

log "environment"
"$PY" - "$DEVICE" <<'EOF'
import platform, sys
import torch, transformers
device = sys.argv[1]
print(f"python {platform.python_version()}, torch {torch.__version__}, "
      f"transformers {transformers.__version__}, cuda available: {torch.cuda.is_available()}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch")
    print("GPU:", torch.cuda.get_device_name(0), f"bf16: {torch.cuda.is_bf16_supported()}")
EOF

log "wrapper dependencies"
missing="$("$PY" - <<'EOF'
import importlib.util as u
modules = {"fastapi": "fastapi", "uvicorn": "uvicorn", "pydantic": "pydantic", "PIL": "pillow",
           "psutil": "psutil", "httpx": "httpx", "aiohttp": "aiohttp", "pynvml": "nvidia-ml-py",
           "jinja2": "jinja2"}
print(" ".join(pkg for mod, pkg in modules.items() if u.find_spec(mod) is None))
EOF
)"
if [[ -n "$missing" ]]; then
    log "installing from $WHEELS (offline): $missing"
    if ! "$PY" -m pip install --no-index --find-links "$WHEELS" $missing; then
        echo "cannot install: $missing; bring wheels: bash benchmarks/gpu_check.sh" \
             "--download-wheels <python version> $WHEELS (on a connected machine)" >&2
        exit 1
    fi
fi
# Optional speed-ups: installed when their wheels came along, never required.
"$PY" -m pip install --no-index --find-links "$WHEELS" httptools uvloop >/dev/null 2>&1 || true

MODEL="${VLMHB_GPU_CHECK_MODEL:-}"
if [[ -z "$MODEL" ]]; then
    MODEL="$WORK/tiny-qwen2-vl"
    log "building a tiny Qwen2-VL in $MODEL"
    timeout 120 "$PY" - "$MODEL" <<'EOF'
import sys
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.models.qwen2_vl.configuration_qwen2_vl import (
    Qwen2VLTextConfig,
    Qwen2VLVisionConfig,
)

from vlmhyperbench.models.tiny_tokenizer import build_tokenizer  # offline byte-level BPE

out = Path(sys.argv[1])
special = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
tokenizer = build_tokenizer(special, eos_token="<|im_end|>")
template = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
tokenizer.chat_template = template
ids = {t: tokenizer.convert_tokens_to_ids(t) for t in special}
# Small images: 4..64 patches of 14 px, merged 2x2 -> 1..16 image tokens per image.
image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
processor = Qwen2VLProcessor(
    image_processor=image_processor,
    tokenizer=tokenizer,
    video_processor=Qwen2VLVideoProcessor(),
    chat_template=template,
)
text = Qwen2VLTextConfig(
    vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    pad_token_id=tokenizer.pad_token_id,
)
vision = Qwen2VLVisionConfig(
    depth=2, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2,
)
config = Qwen2VLConfig(
    text_config=text.to_dict(), vision_config=vision.to_dict(),
    image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
    vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
)
torch.manual_seed(0)
model = Qwen2VLForConditionalGeneration(config)
model.generation_config = GenerationConfig(
    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    pad_token_id=tokenizer.pad_token_id,
)
model.save_pretrained(out)
processor.save_pretrained(out)
print(f"saved {out}: {sum(p.numel() for p in model.parameters())} parameters")
EOF
fi

log "serving $MODEL on $DEVICE through the wrapper, checking answers and telemetry"
timeout 150 "$PY" - "$MODEL" "$DEVICE" "$OUT_DIR" <<'EOF'
import asyncio
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForImageTextToText, AutoProcessor

model_dir, device, out_dir = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
on_gpu = device.startswith("cuda")
dtype = "float32"
if on_gpu:
    dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
results: dict = {"device": device, "dtype": dtype, "checks": {}}


def check(name: str, ok: bool, detail: object = "") -> None:
    results["checks"][name] = {"ok": bool(ok), "detail": detail}
    print(f"  {'PASS' if ok else 'FAIL'} {name} {detail if detail != '' else ''}")


def image(i: int, size: tuple[int, int] = (200, 120)) -> str:
    img = Image.new("RGB", size, (30 * (i % 8), 120, 200))
    ImageDraw.Draw(img).text((10, 40), f"Счёт № {1000 + i}", fill="white")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def messages(url: str, question: str) -> list:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                          {"type": "text", "text": question}]}]


with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
log_path = out_dir / "wrapper.log"
server = subprocess.Popen(
    [sys.executable, "-m", "vlmhb_wrapper", "serve", "--backend", "hf", "--model", str(model_dir),
     "--served-model-name", "tiny-qwen2-vl", "--port", str(port), "--device", device,
     "--dtype", dtype, "--max-batch-size", "16", "--batch-wait-ms", "10"],
    stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
)
base = f"http://127.0.0.1:{port}"
try:
    deadline = time.monotonic() + 90
    while True:
        if server.poll() is not None:
            sys.exit(f"wrapper exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"wrapper not ready:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    client = httpx.Client(base_url=f"{base}/v1", timeout=60)
    url, question = image(0), "Какой номер счёта?"
    body = {"model": "tiny-qwen2-vl", "messages": messages(url, question), "max_tokens": 8,
            "temperature": 0}
    answer = client.post("/chat/completions", json=body).json()
    perf, usage = answer["performance"], answer["usage"]
    results["answer"] = answer

    # The same request through transformers itself, on the same device and dtype.
    processor = AutoProcessor.from_pretrained(model_dir)
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    pil = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    inputs = processor(text=prompt, images=[pil], return_tensors="pt")
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    model = model.to(device).eval()
    inputs = {k: (v.to(device, dtype=model.dtype) if v.is_floating_point() else v.to(device))
              for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    with torch.inference_mode():
        ref = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new_ids = ref[0, inputs["input_ids"].shape[-1]:].tolist()
    eos = model.generation_config.eos_token_id
    if eos in new_ids:
        new_ids = new_ids[: new_ids.index(eos) + 1]
    ref_text = processor.tokenizer.decode(new_ids, skip_special_tokens=True)
    del model
    check("prompt_tokens == processor count", usage["prompt_tokens"] == inputs["input_ids"].shape[-1],
          f"{usage['prompt_tokens']} vs {inputs['input_ids'].shape[-1]}")
    check("answer == transformers generate", answer["choices"][0]["message"]["content"] == ref_text
          and usage["completion_tokens"] == len(new_ids),
          f"{answer['choices'][0]['message']['content']!r} vs {ref_text!r}")
    check("TTFT <= latency", 0 < perf["ttft_ms"] <= perf["latency_ms"],
          f"ttft {perf['ttft_ms']} ms, latency {perf['latency_ms']} ms")
    if on_gpu:
        check("performance reports the GPU", perf["device"].startswith("cuda"), perf["device"])
        check("GPU peak memory", perf["peak_memory_mb"] and perf["peak_memory_mb"] > 0
              and perf["memory_source"] in ("gpu_nvml_process", "gpu_nvml_device",
                                            "torch_cuda_allocator"),
              f"{perf['peak_memory_mb']} MB from {perf['memory_source']}")
        check("torch allocator peak of the batch", (perf["gpu_allocator_peak_mb"] or 0) > 0,
              f"{perf['gpu_allocator_peak_mb']} MB")
    else:
        check("memory (CPU rehearsal)", perf["peak_memory_mb"] > 0, perf["memory_source"])

    # Streaming gives the same text; usage and performance arrive on the last chunk.
    chunks = []
    with client.stream("POST", "/chat/completions",
                       json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    check("streaming == non-streaming", streamed == answer["choices"][0]["message"]["content"]
          and chunks[-1]["usage"] == usage and "performance" in chunks[-1])

    # 16 concurrent requests with different prompts: batched, each matched to its own prompt.
    questions = [f"Какой номер счёта?{' Итого?' * i}" for i in range(16)]
    expected = []
    for i, q in enumerate(questions):
        p = processor.apply_chat_template([{"role": "user", "content": [
            {"type": "image"}, {"type": "text", "text": q}]}], add_generation_prompt=True,
            tokenize=False)
        img = Image.open(io.BytesIO(base64.b64decode(image(i).split(",", 1)[1]))).convert("RGB")
        expected.append(int(processor(text=p, images=[img], return_tensors="pt")["input_ids"].shape[-1]))

    async def burst() -> list:
        async with httpx.AsyncClient(base_url=f"{base}/v1", timeout=60) as ac:
            return await asyncio.gather(*(
                ac.post("/chat/completions", json={"model": "tiny-qwen2-vl",
                        "messages": messages(image(i), q), "max_tokens": 16, "ignore_eos": True})
                for i, q in enumerate(questions)))

    replies = [r.json() for r in asyncio.run(burst())]
    sizes = [r["performance"]["batch_size"] for r in replies]
    check("concurrent requests batched", max(sizes) > 1, f"batch sizes {sizes}")
    check("each answer matched to its request",
          [r["usage"]["prompt_tokens"] for r in replies] == expected
          and all(r["usage"]["completion_tokens"] == 16 for r in replies))
    metrics = httpx.get(f"{base}/metrics").text
    check("/metrics", "vlmhb_requests_total" in metrics and "vlmhb_batch_size_bucket" in metrics)
finally:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
(out_dir / "checks.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
failed = [n for n, c in results["checks"].items() if not c["ok"]]
if failed:
    sys.exit(f"FAILED: {failed} (details in {out_dir / 'checks.json'}, log {log_path})")
print(f"all {len(results['checks'])} checks passed")
EOF

log "batching benchmark on $DEVICE"
DTYPE=float32
if [[ "$DEVICE" == cuda* ]]; then
    DTYPE="$("$PY" -c 'import torch; print("bfloat16" if torch.cuda.is_bf16_supported() else "float16")')"
fi
timeout 170 "$PY" "$REPO/benchmarks/hf_batching.py" --model "$MODEL" --device "$DEVICE" \
    --dtype "$DTYPE" --concurrency 8 --requests 48 --rounds 2 --max-tokens 32 \
    | tee "$OUT_DIR/hf_batching.txt"

log "done: results in $OUT_DIR"
