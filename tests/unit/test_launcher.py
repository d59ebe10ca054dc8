"""``wrapper_command`` for the real registry entries, followed all the way to the engine command
the wrapper would run: the pipeline's launcher and the wrapper's CLI agree on every flag."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from vlmhyperbench.config.schema import ModelEntry
from vlmhyperbench.inference.launcher import wrapper_command
from vlmhyperbench.inference.model_source import model_location

cli = pytest.importorskip("vlmhb_wrapper.cli")
from vlmhb_wrapper.backends import resolve_backend  # noqa: E402


def _entry(name: str, **override: object) -> ModelEntry:
    raw = yaml.safe_load((REPO / "config" / "models" / f"{name}.yaml").read_text(encoding="utf-8"))
    return ModelEntry.model_validate({"name": name, **raw, **override})


def _engine_command(command: list[str], port: int = 40000) -> list[str]:
    """Parse the wrapper command with the wrapper's own CLI and build the engine command;
    returns it without the launcher (``vllm`` / ``python -m sglang.launch_server``)."""
    assert command[:4] == [sys.executable, "-m", "vlmhb_wrapper", "serve"]
    args = cli.build_parser().parse_args(command[3:])
    backend = resolve_backend(args.backend)(cli.build_config(args, upstream_key=None))
    launcher = backend.default_launcher()
    full = backend.command(port)
    assert full[: len(launcher)] == launcher
    return full[len(launcher) :]


def test_vllm_entry_qwen25_vl_3b(tmp_path: Path) -> None:
    model = _entry("qwen2.5-vl-3b-instruct")
    command = wrapper_command(model, model_location(model), 1234, media_roots=[tmp_path])
    joined = " ".join(command)
    assert "--backend vllm --model Qwen/Qwen2.5-VL-3B-Instruct" in joined
    assert "--revision 66285546d2b821cf421d4f5eb2576359d3770cd3" in joined
    assert "--served-model-name qwen2.5-vl-3b-instruct --host 127.0.0.1 --port 1234" in joined
    engine_args = json.loads(command[command.index("--engine-args-json") + 1])
    assert engine_args == {
        "dtype": "bfloat16",
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.9,
        "limit_mm_per_prompt": {"image": 1},
        "mm_processor_kwargs": {"max_pixels": 1003520},
    }
    engine = _engine_command(command)
    assert engine == [
        "serve", "Qwen/Qwen2.5-VL-3B-Instruct",
        "--served-model-name", "qwen2.5-vl-3b-instruct",
        "--host", "127.0.0.1", "--port", "40000",
        "--revision", "66285546d2b821cf421d4f5eb2576359d3770cd3",
        "--dtype", "bfloat16",
        "--max-model-len", "8192",
        "--gpu-memory-utilization", "0.9",
        "--limit-mm-per-prompt", '{"image": 1}',
        "--mm-processor-kwargs", '{"max_pixels": 1003520}',
    ]  # fmt: skip


def test_sglang_entry_smolvlm(tmp_path: Path) -> None:
    model = _entry("smolvlm-instruct")
    command = wrapper_command(model, model_location(model), 1234, media_roots=[tmp_path])
    engine = _engine_command(command)
    key = engine[engine.index("--api-key") + 1]
    assert engine == [
        "--model-path", "HuggingFaceTB/SmolVLM-Instruct",
        "--served-model-name", "smolvlm-instruct",
        "--host", "127.0.0.1", "--port", "40000",
        "--revision", "main",
        "--dtype", "bfloat16",
        "--context-length", "8192",
        "--mem-fraction-static", "0.85",
        "--enable-multimodal",
        "--limit-mm-data-per-request", '{"image": 1}',
        "--api-key", key,
    ]  # fmt: skip
    assert len(key) >= 24


def test_hf_entries_keep_their_flags(tmp_path: Path) -> None:
    model = _entry("tiny-llava")
    command = wrapper_command(model, "/models/tiny-llava", 1234, media_roots=[tmp_path])
    args = cli.build_parser().parse_args(command[3:])
    assert args.backend == "hf" and args.threads == 1 and args.revision is None
    assert args.engine_args_json == {"dtype": "float32"}  # torch_threads went to --threads
    assert args.allowed_media_root == [tmp_path]
    qwen2 = _entry("qwen2-vl-2b-instruct")
    args = cli.build_parser().parse_args(
        wrapper_command(qwen2, model_location(qwen2), 1, media_roots=[])[3:]
    )
    assert args.engine_args_json == {
        "dtype": "bfloat16",
        "mm_processor_kwargs": {"max_pixels": 1003520},
    }
    assert args.revision == "main"


def test_engine_launchers() -> None:
    from vlmhb_wrapper.backends.base import BackendConfig
    from vlmhb_wrapper.backends.engine import SGLangBackend, VLLMBackend

    assert SGLangBackend(BackendConfig(model="m")).default_launcher() == [
        sys.executable, "-m", "sglang.launch_server",
    ]  # fmt: skip
    vllm = VLLMBackend(BackendConfig(model="m")).default_launcher()
    assert vllm[0].endswith("vllm") or vllm == [
        sys.executable, "-m", "vllm.entrypoints.cli.main",
    ]  # fmt: skip


def test_extra_args_and_engine_options_travel(tmp_path: Path) -> None:
    model = _entry(
        "qwen2.5-vl-3b-instruct",
        engine_args={
            "max_num_seqs": 8,
            "tensor_parallel_size": 2,
            "trust_remote_code": True,
            "chat_template": "/templates/qwen.jinja",
            "extra_args": ["--enable-per-request-metrics"],
        },
    )
    engine = _engine_command(wrapper_command(model, model_location(model), 1, [tmp_path]))
    joined = " ".join(engine)
    assert "--max-num-seqs 8 --tensor-parallel-size 2 --trust-remote-code" in joined
    assert joined.endswith("--chat-template /templates/qwen.jinja --enable-per-request-metrics")


def test_openai_entry_points_the_wrapper_at_its_endpoint(tmp_path: Path) -> None:
    model = ModelEntry.model_validate(
        {
            "name": "gpt-remote",
            "backend": "openai",
            "source": {"type": "hub", "id": "org/model"},
            "endpoint": {
                "base_url": "https://api.example.com/v1",
                "api_key_env": "EXAMPLE_KEY",
                "model": "org/model-v2",
            },
        }
    )
    command = wrapper_command(model, model_location(model), 1, [tmp_path])
    args = cli.build_parser().parse_args(command[3:])
    assert args.backend == "openai"
    assert args.upstream_base_url == "https://api.example.com/v1"
    assert args.upstream_model == "org/model-v2"
    assert args.upstream_api_key_env == "EXAMPLE_KEY"
    assert "EXAMPLE_KEY" in command and not any("secret" in part for part in command)


def test_the_serve_job_raises_the_wrappers_reply_cap_to_what_its_tasks_ask(tmp_path) -> None:
    """MWS-Vision-Bench's tasks ask for 8192 new tokens as its official runner does; the
    wrapper would refuse more than its default 4096 unless the serve job says so."""
    from vlmhb_wrapper.cli import build_parser

    from tests.helpers import make_workdir
    from vlmhyperbench.config import load_experiment
    from vlmhyperbench.inference.launcher import WRAPPER_MAX_NEW_TOKENS, wrapper_command
    from vlmhyperbench.pipeline.plan import Plan

    default = build_parser().parse_args(["serve", "--backend", "hf", "--model", "m"])
    assert default.max_new_tokens_limit == WRAPPER_MAX_NEW_TOKENS
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=["mws_ocr", "demo_ocr"])
    plan = Plan(load_experiment(config_path=workdir / "config" / "config.yaml", workdir=workdir))
    server = plan.experiment.server_of("tiny-llava")
    assert plan.max_new_tokens(server) == 8192
    command = wrapper_command(plan.experiment.servers[server], "m", 1, [], max_new_tokens=8192)
    assert command[command.index("--max-new-tokens-limit") + 1] == "8192"
