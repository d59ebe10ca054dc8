"""What reading the workflow does when no job runs: ``snakemake -n`` and ``--lint`` write nothing
but the serve jobs' status placeholders (docs/execution.md, "What planning writes"), contact no
bucket and need no model engine - while a real run still checks both before any job.

Also the test of ``snakemake_compat.planning_only`` on the real workflow: if Snakemake stopped
telling the Snakefile about ``-n`` or ``--lint``, the dry runs here would contact the (absent)
S3 server or fail the engine preflight.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    job_counts,
    make_workdir,
    read_yaml,
    snakemake,
    snakemake_command,
    write_yaml,
)
from vlmhyperbench.config import load_experiment
from vlmhyperbench.pipeline.plan import Plan

pytestmark = pytest.mark.slow


def files_outside_snakemake_dir(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` but ``.snakemake/``, with its size and mtime."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if relative.parts[0] != ".snakemake" and path.is_file():
            info = path.stat()
            found[relative.as_posix()] = (info.st_size, info.st_mtime_ns)
    return found


def fresh_copy(destination: Path) -> Path:
    """The checkout's tracked files, as a fresh clone has them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def test_dry_run_and_lint_of_a_fresh_demo_write_only_the_server_placeholders(
    tmp_path: Path,
) -> None:
    """As a user runs them in a fresh clone (no --snakefile, the default profile applies)."""
    repo = fresh_copy(tmp_path / "clone")
    before = files_outside_snakemake_dir(repo)
    plan = Plan(load_experiment(config_path=repo / "config" / "config.yaml", workdir=repo))
    placeholders = {plan.server(server) for server in plan.servers}
    assert placeholders and not placeholders & before.keys()

    for args in (["--lint"], ["-n"]):
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        after = files_outside_snakemake_dir(repo)
        assert set(after) - set(before) == placeholders, args
        assert {name: after[name] for name in before} == before, args  # nothing else touched
        assert all(after[name][0] == 0 for name in placeholders)  # empty


def closed_port() -> int:
    """A loopback port nothing listens on (so any S3 request fails at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dry_run_and_lint_contact_no_bucket_and_need_no_engine(tmp_path: Path) -> None:
    """A task reads an ``s3://`` dataset, no S3 server listens, and Tesseract's language data
    is missing: planning another task's prediction works all the same; a real run of it stops
    on either problem before any job."""
    workdir = make_workdir(tmp_path / "work", models=["tiny-llava"], tasks=["demo_doc_class"])
    config_path = workdir / "config" / "config.yaml"
    config = read_yaml(config_path)
    config["runs"] = [{"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}]
    no_tessdata = {"source": {"path": str(tmp_path / "no-tessdata")}}
    config["overrides"]["models"] = {"tesseract-rus": no_tessdata}
    write_yaml(config_path, config)
    write_yaml(
        workdir / "config" / "datasets" / "demo_s3.yaml",
        {"description": "pages in S3", "source": {"type": "s3", "uri": "s3://datasets/x/v1"}},
    )
    # a layer that moves the OCR task onto the S3 dataset
    s3_layer = workdir / "s3.yaml"
    write_yaml(s3_layer, {"overrides": {"tasks": {"demo_ocr": {"dataset": "demo_s3"}}}})
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_STOR"))}
    env.update(
        SNAKEMAKE_STORAGE_S3_ENDPOINT_URL=endpoint,
        SNAKEMAKE_STORAGE_S3_ACCESS_KEY="test",
        SNAKEMAKE_STORAGE_S3_SECRET_KEY="test",
        AWS_MAX_ATTEMPTS="1",
    )
    target = "results/predictions/tiny-llava/demo_doc_class.jsonl"
    with_s3 = ("--configfile", str(s3_layer))

    dry = snakemake(workdir, "-n", target, *with_s3, env=env)
    assert job_counts(dry.stdout)["predict_tiny-llava"] == 1
    lint = subprocess.run(
        [*snakemake_command(workdir, "--lint", *with_s3)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=workdir,
    )
    assert lint.returncode == 0, lint.stdout[-2000:] + lint.stderr[-4000:]

    # The same plans, run for real: each problem stops the run before any job.
    bucket = snakemake(workdir, target, *with_s3, env=env, check=False)
    assert bucket.returncode != 0
    assert f"cannot reach S3 at {endpoint} for bucket 'datasets'" in bucket.stderr
    engine = snakemake(workdir, target, env=env, check=False)
    assert engine.returncode != 0
    assert "this machine cannot serve every model" in engine.stderr
    assert "tesseract-rus" in engine.stderr
    assert not (workdir / "data").exists()  # no job ran


def test_an_unsupported_snakemake_stops_the_workflow_before_anything(tmp_path: Path) -> None:
    """The version guard is wired in: a Snakemake that says it is 10.0.0 (its distribution's
    metadata, first on the path) is refused with what to install, and nothing is written."""
    fake = tmp_path / "fake" / "snakemake-10.0.0.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: snakemake\nVersion: 10.0.0\n")
    workdir = make_workdir(tmp_path / "work", models=["tiny-llava"], tasks=["demo_doc_class"])
    path = os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))
    result = snakemake(workdir, "-n", env={**os.environ, "PYTHONPATH": path}, check=False)
    output = result.stdout + result.stderr  # a dry run logs to stdout
    assert result.returncode != 0
    assert "snakemake 10.0.0 is installed" in output
    assert "pip install 'snakemake>=9.27,<10'" in output
    assert not (workdir / "results").exists()
