"""Check the vLLM and SGLang command lines the wrapper builds against the engines' own parsers.

Run it with ``make check-engine-flags`` when you touch the engine backends
(``wrapper/src/vlmhb_wrapper/backends/engine.py``) or an engine pin; it is not part of
``make test`` or CI: it needs the two engine venvs (2.2 GB and 2.3 GB; creating both and
running the check took about 4 minutes on 2 cores) and no GPU.

What it does. For each engine it builds the engine command line the wrapper would run for

* every registry entry of that backend (``config/models/*.yaml``),
* an entry with no ``engine_args`` (the defaults),
* an entry with every ``engine_args`` key the engine takes set (``torch_threads`` too, which
  the engines ignore; a chat template file; ``extra_args`` with one real flag),
* one entry per other ``dtype`` the config schema allows,

through the project's own code, the same path as a run: ``wrapper_command`` (the pipeline's
launcher) -> the wrapper's CLI (``build_parser``, ``build_config``) -> the backend class ->
``command(port)`` without the launcher. Then ``tools/engine_flag_probe.py`` parses them in the
engine's own venv (``.engine-venvs/vllm``, ``.engine-venvs/sglang``) with the engine's real
parser (``vllm serve``'s; ``sglang.launch_server``'s ``prepare_server_args``) and reports per
flag: known by its exact name, value of the right type or choice, not deprecated, and parsed
into the value given (JSON into the same object); then per entry: the whole command line
parsed and validated as the launcher does, and the fields of the engine's configuration that
each setting is meant to set (``max_model_len`` -> vLLM ``max_model_len``, SGLang
``context_length``; ``limit_mm_per_prompt`` -> ``limit_mm_data_per_request``; ...) hold the
entry's values. Exit status 1 on any problem, 2 when a venv is missing.

What the venvs hold (``make check-engine-flags`` creates them; the engines' full dependency
sets pull multi-GB CUDA builds, so only what their parser modules import is installed):

* both: the engine itself with ``--no-deps`` (``vllm==0.33.0``, ``sglang==0.5.23``), then the
  packages in ``tools/engine-flags-<engine>.txt`` with their dependencies, under this repo's
  ``constraints.txt`` (torch 2.13.0, the CPU build: the engines pin 2.14.0 / 2.14.1, CUDA
  builds, but their argument code does not depend on the torch version; transformers 5.19.0,
  SGLang's pin and inside vLLM's range). The lists are what importing the parser modules
  asked for, one missing module at a time; each line says who imports it. pip then lists the
  engines' other requirements as not installed: expected.
* vLLM also ``xgrammar==0.2.8`` with ``--no-deps`` (imported by the structured-output config;
  its dependencies would bring triton, about 1 GB, which vLLM's import does not need).
* SGLang needs triton (``sglang/srt/utils/common.py``, imported by ``sglang/__init__.py``,
  does ``import triton`` unconditionally); no transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROBE = REPO / "tools" / "engine_flag_probe.py"
VENVS = REPO / ".engine-venvs"
ENGINES = ("vllm", "sglang")
ENGINE_PORT = 40000
PROBE_TIMEOUT_S = 900

#: Where each setting is meant to land in the engine's configuration (the parsed namespace,
#: vLLM's ``AsyncEngineArgs``, SGLang's ``ServerArgs``).
MEANT_FIELDS = {
    "vllm": {
        "model": "model",
        "served_model_name": "served_model_name",
        "revision": "revision",
        "dtype": "dtype",
        "max_model_len": "max_model_len",
        "gpu_memory_utilization": "gpu_memory_utilization",
        "limit_mm_per_prompt": "limit_mm_per_prompt",
        "mm_processor_kwargs": "mm_processor_kwargs",
        "max_num_seqs": "max_num_seqs",
        "tensor_parallel_size": "tensor_parallel_size",
        "trust_remote_code": "trust_remote_code",
        "chat_template": "chat_template",
    },
    "sglang": {
        "model": "model_path",
        "served_model_name": "served_model_name",
        "revision": "revision",
        "dtype": "dtype",
        "max_model_len": "context_length",
        "mem_fraction_static": "mem_fraction_static",
        "limit_mm_per_prompt": "limit_mm_data_per_request",
        "max_num_seqs": "max_running_requests",
        "tensor_parallel_size": "tp_size",
        "trust_remote_code": "trust_remote_code",
        "chat_template": "chat_template",
    },
}
#: Fields fixed by the wrapper whatever the entry says.
FIXED_FIELDS = {
    "vllm": {"host": "127.0.0.1", "port": ENGINE_PORT},
    "sglang": {"host": "127.0.0.1", "port": ENGINE_PORT, "enable_multimodal": True},
}
#: One real flag per engine for ``extra_args`` (passed through untouched).
EXTRA_FLAG = {"vllm": "--enable-per-request-metrics", "sglang": "--enable-metrics"}


def every_key(engine: str, chat_template: Path) -> dict[str, Any]:
    """Every ``engine_args`` key the engine takes, set to a value a real entry could have."""
    args: dict[str, Any] = {
        "dtype": "bfloat16",
        "max_model_len": 16384,
        "limit_mm_per_prompt": {"image": 4, "video": 0},
        "max_num_seqs": 16,
        "tensor_parallel_size": 2,
        "trust_remote_code": True,
        "chat_template": str(chat_template),
        "torch_threads": 4,
        "extra_args": [EXTRA_FLAG[engine]],
    }
    if engine == "vllm":
        args["gpu_memory_utilization"] = 0.85
        args["mm_processor_kwargs"] = {"max_pixels": 1003520, "min_pixels": 3136}
    else:
        args["mem_fraction_static"] = 0.8
    return args


def model_entries(engine: str, chat_template: Path) -> list[tuple[str, Any]]:
    """(where it comes from, ModelEntry): the registry's entries, then the made-up ones."""
    from typing import get_args

    from vlmhyperbench.config.registry import load_registry
    from vlmhyperbench.config.schema import EngineArgs, ModelEntry

    registry = load_registry(REPO / "config")
    entries = [("registry", m) for m in registry.models.values() if m.backend == engine]
    source = {"type": "hub", "id": "example-org/example-vlm", "revision": "0123456789abcdef"}
    made_up = {"defaults": {}, "every-key": every_key(engine, chat_template)}
    dtypes = get_args(EngineArgs.model_fields["dtype"].annotation)
    made_up |= {f"dtype-{d}": {"dtype": d} for d in dtypes if d not in ("auto", "bfloat16")}
    for label, engine_args in made_up.items():
        raw = {"name": f"{engine}-{label}", "backend": engine, "source": source}
        entries.append(("made up", ModelEntry.model_validate(raw | {"engine_args": engine_args})))
    return entries


def engine_argv(model: Any) -> list[str]:
    """The engine command line the wrapper runs for ``model``, without the launcher."""
    from vlmhb_wrapper import cli
    from vlmhb_wrapper.backends import resolve_backend

    from vlmhyperbench.inference.launcher import wrapper_command
    from vlmhyperbench.inference.model_source import model_location

    command = wrapper_command(model, model_location(model), 8000, media_roots=[])
    assert command[1:4] == ["-m", "vlmhb_wrapper", "serve"], command
    args = cli.build_parser().parse_args(command[3:])
    backend = resolve_backend(args.backend)(cli.build_config(args, upstream_key=None))
    launcher = backend.default_launcher()
    full = backend.command(ENGINE_PORT)
    assert full[: len(launcher)] == launcher, (full, launcher)
    return full[len(launcher) :]


def meant_values(engine: str, model: Any) -> dict[str, Any]:
    """The engine configuration's fields that the entry's settings should set, and to what."""
    names = MEANT_FIELDS[engine]
    from vlmhyperbench.inference.model_source import model_location

    settings: dict[str, Any] = {
        "model": model_location(model),
        "served_model_name": [model.name] if engine == "vllm" else model.name,
        "revision": getattr(model.source, "revision", None),
    }
    given = model.engine_args.model_dump(mode="json", exclude_unset=True)
    # dtype "auto" and trust_remote_code false are passed as nothing: the engine's defaults.
    given.setdefault("dtype", model.engine_args.dtype)
    given.setdefault("trust_remote_code", model.engine_args.trust_remote_code)
    settings |= {k: v for k, v in given.items() if k in names}
    return {names[k]: v for k, v in settings.items()} | FIXED_FIELDS[engine]


def build_cases(engine: str, chat_template: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{model.name} ({origin})",
            "argv": engine_argv(model),
            "expect": meant_values(engine, model),
        }
        for origin, model in model_entries(engine, chat_template)
    ]


def run_probe(engine: str, python: Path, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Parse ``cases`` with the engine's parser, in the engine's venv."""
    with tempfile.TemporaryDirectory(prefix="engine-flags-") as tmp:
        out = Path(tmp) / "report.json"
        request = json.dumps({"engine": engine, "cases": cases})
        done = subprocess.run(
            [str(python), str(PROBE), str(out)],
            input=request,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            cwd=tmp,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"the {engine} probe failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
            )
        return json.loads(out.read_text(encoding="utf-8"))


def shown(argv: Iterable[str]) -> str:
    """A command line for the report, with SGLang's internal API key hidden."""
    words = list(argv)
    for i, word in enumerate(words[:-1]):
        if word == "--api-key":
            words[i + 1] = "***"
    return " ".join(w if w and " " not in w else json.dumps(w) for w in words)


def parsed_as(flag: dict[str, Any]) -> str:
    if "dest" not in flag:
        return ""
    value = "***" if flag["dest"] == "api_key" else json.dumps(flag["parsed"])
    return f" -> {flag['dest']} = {value}"


def print_case(case: dict[str, Any]) -> int:
    """Print one entry's findings; return how many problems it has."""
    problems = 0
    print(f"  {case['name']}: {shown(case['argv'])}")
    for flag in case["flags"]:
        print(f"    {flag['status']:<12} {shown(flag['argv'])}{parsed_as(flag)}")
        for problem in flag["problems"]:
            print(f"{'':17}{problem}")
        problems += flag["status"] != "ok"
    if "error" in case:
        print(f"    {'FAILED':<12} the whole command line: {case['error']}")
        return problems + 1
    for field in case["fields"]:
        status = "meant" if field["ok"] else "NOT MEANT"
        detail = "" if field["ok"] else f" (expected {json.dumps(field['expected'])})"
        print(f"    {status:<12} {field['field']} = {json.dumps(field['actual'])}{detail}")
        problems += not field["ok"]
    return problems


def check_engine(engine: str, python: Path) -> int:
    """Build, parse and print one engine's cases; return the number of problems."""
    with tempfile.TemporaryDirectory(prefix="engine-flags-template-") as tmp:
        chat_template = Path(tmp) / "chat_template.jinja"
        chat_template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}\n")
        report = run_probe(engine, python, build_cases(engine, chat_template))
    print(f"{engine} {report['version']} (python {report['python']}): {report['parser']}")
    problems = sum(print_case(case) for case in report["cases"])
    print(f"{engine}: {len(report['cases'])} command lines, {problems} problem(s)\n")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES, action="append", help="default: both")
    parser.add_argument("--venvs", type=Path, default=VENVS, help="default: %(default)s")
    args = parser.parse_args(argv)
    engines = args.engine or list(ENGINES)
    pythons = {e: args.venvs / e / "bin" / "python" for e in engines}
    missing = [str(p) for p in pythons.values() if not p.exists()]
    if missing:
        print(f"missing {', '.join(missing)}: `make check-engine-flags` creates the venvs")
        return 2
    problems = sum(check_engine(engine, pythons[engine]) for engine in engines)
    print("all flags accepted and parsed as meant" if not problems else f"{problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
