"""Stand-in for ``vllm serve`` / ``python -m sglang.launch_server`` (no GPU, no vLLM here).

Run as ``python tests/fake_engine.py vllm|sglang ARGS…`` through the wrapper's
``--engine-launcher``: it appends the command line the wrapper built (and what reached its
environment) to the file named by ``FAKE_ENGINE_RECORD``, then ``exec``s the wrapper itself on
the HF backend with the model, port and name it was given - a real OpenAI-compatible upstream
with the engine's API key. ``FAKE_ENGINE_FAIL`` makes it die at startup like an out-of-memory
engine; ``FAKE_ENGINE_HANG`` makes it load forever. With ``FAKE_ENGINE_BODIES`` it runs that
wrapper in this process instead, appending the JSON body of every POST it receives to the file
so named; it then drops vLLM's ``mm_processor_kwargs`` from the body (vLLM takes it per request,
the stand-in's hf backend would refuse it).
"""

import json
import os
import sys
import time

kind, argv = sys.argv[1], sys.argv[2:]


def opt(name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


with open(os.environ["FAKE_ENGINE_RECORD"], "a") as record:
    entry = {
        "kind": kind,
        "argv": argv,
        "pid": os.getpid(),
        "vllm_api_key": os.environ.get("VLLM_API_KEY"),
        "leaked": sorted(k for k in os.environ if k.startswith("VLMHB_TEST_SECRET")),
    }
    record.write(json.dumps(entry) + "\n")
model = argv[1] if kind == "vllm" else opt("--model-path")
print(f"fake {kind} engine starting for {model}", flush=True)
if os.environ.get("FAKE_ENGINE_FAIL"):
    print("torch.OutOfMemoryError: CUDA out of memory (simulated)", flush=True)
    sys.exit(3)
if os.environ.get("FAKE_ENGINE_HANG"):
    print("loading forever", flush=True)
    time.sleep(3600)
env = dict(os.environ)
env["FAKE_ENGINE_KEY"] = (env.get("VLLM_API_KEY") if kind == "vllm" else opt("--api-key")) or ""
served, host, port = opt("--served-model-name"), opt("--host"), opt("--port")
serve_args = [
    "serve", "--backend", "hf", "--model", model, "--served-model-name", served,
    "--host", host, "--port", port, "--threads", "1", "--api-key-env", "FAKE_ENGINE_KEY",
]  # fmt: skip


class RecordBodies:
    """ASGI middleware: appends each POST's JSON body to ``path``, then hands the app that
    body without ``mm_processor_kwargs``."""

    def __init__(self, app, path: str) -> None:
        self.app, self.path = app, path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw)
        with open(self.path, "a") as bodies:
            bodies.write(json.dumps(body) + "\n")
        body.pop("mm_processor_kwargs", None)
        raw = json.dumps(body).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


if os.environ.get("FAKE_ENGINE_BODIES"):
    import vlmhb_wrapper.app
    from vlmhb_wrapper.cli import main

    create_app = vlmhb_wrapper.app.create_app
    path = os.environ["FAKE_ENGINE_BODIES"]
    vlmhb_wrapper.app.create_app = lambda *a, **k: RecordBodies(create_app(*a, **k), path)
    os.environ["FAKE_ENGINE_KEY"] = env["FAKE_ENGINE_KEY"]
    main(serve_args)
    sys.exit(0)
os.execve(sys.executable, [sys.executable, "-m", "vlmhb_wrapper", *serve_args], env)
