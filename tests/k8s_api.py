"""A small recording Kubernetes API server on loopback, for the real kubernetes executor plugin.

It answers the calls ``snakemake-executor-plugin-kubernetes`` makes (create/delete a secret,
create/read/delete a batch Job, list the Job's pods, read a pod's log) and records every request
body, so tests can assert the Job specs exactly as a cluster would receive them.

With ``kubelet=True`` it also stands in for a node: each Job's container command is run with
``/bin/sh -c`` in a fresh, empty working directory (the ``emptyDir`` the plugin mounts at
``/workdir``), with the environment the pod would get (its secret-backed variables resolved from the
recorded secret) — so whatever the job needs has to reach it through storage, exactly as on a
cluster without a shared filesystem. The "image" is this machine's Python environment: ``PATH``
starts with the interpreter's ``bin/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

NS = r"/namespaces/(?P<ns>[^/]+)"


@dataclass
class PodRun:
    name: str
    workdir: Path
    returncode: int | None = None
    log: str = ""


@dataclass
class RecordingKubeAPI:
    """Start with ``start()``; ``kubeconfig(path)`` writes a config that points at it."""

    kubelet: bool = False
    pod_env: dict[str, str] = field(default_factory=dict)  # the image's own environment
    pod_root: Path | None = None
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, PodRun] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2)
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordingKubeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "recording", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [
                {"name": "recording", "context": {"cluster": "recording", "user": "tester"}}
            ],
            "current-context": "recording",
        }
        path.write_text(json.dumps(config), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ views for tests
    def submitted_jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                body
                for method, path, body in self.requests
                if method == "POST" and path.endswith("/jobs")
            ]

    # ------------------------------------------------------------------ the "node"
    def _start_pod(self, name: str, job: dict[str, Any]) -> None:
        root = self.pod_root or Path(tempfile.mkdtemp(prefix="pods-"))
        workdir = root / name / "workdir"
        workdir.mkdir(parents=True)
        run = PodRun(name=name, workdir=workdir)
        with self._lock:
            self.runs[name] = run
        self._pool.submit(self._run_pod, run, job)

    def _pod_environment(self, container: dict[str, Any]) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(Path(tempfile.mkdtemp(prefix="home-"))),
            "LANG": "C.UTF-8",
            **self.pod_env,
        }
        for var in container.get("env") or []:
            ref = ((var.get("valueFrom") or {}).get("secretKeyRef")) or None
            if ref is None:
                env[var["name"]] = var.get("value", "")
                continue
            secret = self.secrets[ref["name"]]
            env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        return env

    def _run_pod(self, run: PodRun, job: dict[str, Any]) -> None:
        container = job["spec"]["template"]["spec"]["containers"][0]
        try:
            result = subprocess.run(
                [*container["command"], *container.get("args", [])],
                cwd=run.workdir,
                env=self._pod_environment(container),
                capture_output=True,
                text=True,
                timeout=600,
            )
            run.log, run.returncode = result.stdout + result.stderr, result.returncode
        except Exception as error:  # report as a failed pod, never hang the workflow
            run.log, run.returncode = f"kubelet stand-in error: {error!r}", 1

    def job_status(self, name: str) -> dict[str, Any]:
        if not self.kubelet:
            return {"active": 1}
        run = self.runs.get(name)
        if run is None or run.returncode is None:
            return {"active": 1}
        return {"succeeded": 1} if run.returncode == 0 else {"failed": 1}


class _Handler(BaseHTTPRequestHandler):
    api: RecordingKubeAPI

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw.decode(errors="replace")

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, method: str) -> tuple[str, dict[str, list[str]], Any]:
        parsed = urlparse(self.path)
        body = self._body() if method in {"POST", "PUT", "PATCH", "DELETE"} else None
        with self.api._lock:
            self.api.requests.append((method, parsed.path, body))
        return parsed.path, parse_qs(parsed.query), body

    def do_POST(self) -> None:
        path, _, body = self._record("POST")
        if re.fullmatch(rf"/api/v1{NS}/secrets", path):
            with self.api._lock:
                self.api.secrets[body["metadata"]["name"]] = body
            return self._send(201, body)
        if re.fullmatch(rf"/apis/batch/v1{NS}/jobs", path):
            name = body["metadata"]["name"]
            with self.api._lock:
                self.api.jobs[name] = body
            if self.api.kubelet:
                self.api._start_pod(name, body)
            return self._send(201, {**body, "status": {}})
        self._send(404, _status(404, f"unexpected POST {path}"))

    def do_GET(self) -> None:
        path, query, _ = self._record("GET")
        match = re.fullmatch(rf"/apis/batch/v1{NS}/jobs/(?P<name>[^/]+)/status", path)
        if match:
            job = self.api.jobs.get(match["name"])
            if job is None:
                return self._send(404, _status(404, "job not found"))
            return self._send(200, {**job, "status": self.api.job_status(match["name"])})
        if re.fullmatch(rf"/api/v1{NS}/pods", path):
            selector = unquote((query.get("labelSelector") or [""])[0])
            name = selector.removeprefix("job-name=")
            return self._send(
                200, {"kind": "PodList", "apiVersion": "v1", "items": self._pods(name)}
            )
        match = re.fullmatch(rf"/api/v1{NS}/pods/(?P<pod>[^/]+)/log", path)
        if match:
            run = self.api.runs.get(match["pod"].removesuffix("-pod"))
            return self._send(200, run.log if run else "", "text/plain")
        self._send(404, _status(404, f"unexpected GET {path}"))

    def _pods(self, job_name: str) -> list[dict[str, Any]]:
        run = self.api.runs.get(job_name)
        if run is None or run.returncode is None:
            return []
        return [
            {
                "metadata": {"name": f"{job_name}-pod", "labels": {"job-name": job_name}},
                "status": {
                    "containerStatuses": [
                        {
                            "name": "snakemake",
                            "image": "stand-in",
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": {"exitCode": run.returncode}},
                        }
                    ]
                },
            }
        ]

    def do_DELETE(self) -> None:
        self._record("DELETE")
        self._send(200, _status(200, "deleted", "Success"))


def _status(code: int, message: str, status: str = "Failure") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": status,
        "message": message,
        "code": code,
    }


def environment_without_cluster(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment minus anything that could point at a real cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "AWS_"))}
    env.update(extra or {})
    return env
