"""S3 Smart Sync (ADR-004) and just-in-time packages (ADR-002) in real snakemake runs.

moto's S3 server on 127.0.0.1 (credentials enforced) holds a dataset under a versioned key; the
workflow reads it through ``snakemake-storage-plugin-s3`` and writes every result to another bucket
with ``--default-storage-provider s3``. The model entry asks for a package that only a local wheel
folder has (no index): uv installs it at job start into an overlay the wrapper runs with.

The tests in this module run in order on one workdir: a first run, a second run after a change that
re-runs predict (nothing fetched, the overlay reused), then the error paths (runs that stop
before any job).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import job_counts, make_workdir, read_yaml, snakemake, write_yaml
from tests.s3server import S3Server, s3_server
from tests.wheels import make_demo_wheels
from vlmhyperbench.datasets.demo import generate_demo_dataset
from vlmhyperbench.runtime.s3 import S3Settings, push_dataset

pytestmark = pytest.mark.slow

DATASET_URI = "s3://datasets/demo-vqa/v1"
RESULTS = "s3://results/run1"
MODEL = "tiny-llava"
TASK = "demo_field_vqa"
# A sweep's variant: its name (``@``, ``=``, ``,``) is part of every key it writes.
SWEEP = {"tasks.prompt.system": {"terse": "Только значение."}, "tasks.limit": [2]}
VARIANT = f"{MODEL}@limit=2,system=terse"
STORAGE_ARGS = (
    "--default-storage-provider",
    "s3",
    "--default-storage-prefix",
    RESULTS,
    "--keep-storage-local-copies",
)


@pytest.fixture(scope="module")
def s3() -> S3Server:
    server = s3_server()
    client = server.client()
    for bucket in ("datasets", "results"):
        client.create_bucket(Bucket=bucket)
    return server


@pytest.fixture(scope="module")
def run(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("s3sync")
    source = root / "source"
    generate_demo_dataset(source, kind="vqa", name="demo-vqa", per_class=1, subsets=["clean"])
    push_dataset(source, DATASET_URI, s3.client())

    workdir = make_workdir(
        root / "work",
        models=[MODEL],
        tasks=[TASK],
        overrides={
            "tasks": {TASK: {"dataset": "demo_s3", "limit": 3, "metrics": ["exact_match"]}},
            "models": {MODEL: {"packages": ["jitdemo-probe==0.1.0"]}},
        },
    )
    config = read_yaml(workdir / "config" / "config.yaml")
    config["runs"] = [{"models": [MODEL], "tasks": [TASK], "sweep": SWEEP}]
    write_yaml(workdir / "config" / "config.yaml", config)
    write_yaml(
        workdir / "config" / "datasets" / "demo_s3.yaml",
        {"description": "demo VQA pages in S3", "source": {"type": "s3", "uri": DATASET_URI}},
    )
    marker = root / "overlay-marker.txt"
    env = s3.env(
        UV_NO_INDEX="1",
        UV_FIND_LINKS=str(make_demo_wheels(root / "wheels")),
        VLMHB_JIT_CACHE=str(root / "jit-cache"),
        VLMHB_TEST_OVERLAY_MARKER=str(marker),
    )
    first = snakemake(workdir, *STORAGE_ARGS, env=env)
    return {"workdir": workdir, "env": env, "marker": marker, "first": first, "s3": s3}


def output_of(result) -> str:
    return result.stdout + result.stderr


def read_object(s3: S3Server, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_inputs_are_fetched_through_the_storage_plugin(run: dict) -> None:
    out = output_of(run["first"])
    assert f"Retrieving from storage: {DATASET_URI}/manifest.jsonl" in out
    assert f"Retrieving from storage: {DATASET_URI}/images" in out
    # Kept on local disk under the local storage prefix, in the dataset's own layout.
    local = run["workdir"] / ".snakemake" / "storage" / "s3" / "datasets" / "demo-vqa" / "v1"
    assert (local / "manifest.jsonl").is_file()
    assert any((local / "images").rglob("*.png"))


def test_results_land_in_the_bucket(run: dict) -> None:
    s3, workdir = run["s3"], run["workdir"]
    keys = s3.keys("results", "run1/")
    for expected in (
        "run1/results/summary.csv",
        "run1/results/report/leaderboard.md",
        f"run1/results/predictions/{MODEL}/{TASK}.jsonl",
        f"run1/results/scores/{MODEL}/{TASK}/exact_match.json",
        f"run1/logs/predict/{MODEL}/{TASK}.log",
        f"run1/logs/serve/{MODEL}.log",
        f"run1/models/tiny/{MODEL}/config.json",
        f"run1/results/predictions/{VARIANT}/{TASK}.jsonl",
        f"run1/results/scores/{VARIANT}/{TASK}/exact_match.json",
        "run1/results/variants.json",
    ):
        assert expected in keys
    summary = pd.read_csv(io.BytesIO(read_object(s3, f"{RESULTS}/results/summary.csv")))
    overall = summary[summary["group_by"] == "overall"].set_index("model")
    assert overall["n"].to_dict() == {MODEL: 3, VARIANT: 2}
    predictions = read_object(s3, f"{RESULTS}/results/predictions/{MODEL}/{TASK}.jsonl")
    lines = [json.loads(x) for x in predictions.decode().splitlines()]
    assert len(lines) == 3 and all(line["error"] is None for line in lines)
    # Nothing was written to the workdir's own results/ (only the predict journal lives there).
    assert not (workdir / "results" / "summary.csv").exists()
    assert not (workdir / "results" / "predictions").exists()


def test_the_wrapper_ran_with_the_jit_overlay(run: dict) -> None:
    log = read_object(run["s3"], f"{RESULTS}/logs/serve/{MODEL}.log").decode()
    assert "installed package overlay" in log and "jitdemo-probe==0.1.0" in log
    # The probe's sitecustomize ran in the wrapper process: the overlay was on its path.
    assert run["marker"].read_text().split()


def test_second_run_fetches_nothing_and_reuses_the_overlay(run: dict) -> None:
    workdir, env, s3 = run["workdir"], run["env"], run["s3"]
    config_path = workdir / "config" / "config.yaml"
    config = read_yaml(config_path)
    # One more sample: re-runs predict (the server starts for it), score, summary, report; the
    # variant keeps its swept limit, so nothing of it re-runs.
    config["overrides"]["tasks"][TASK]["limit"] = 4
    write_yaml(config_path, config)
    second = snakemake(workdir, *STORAGE_ARGS, env=env)
    out = output_of(second)
    assert job_counts(out)[f"predict_{MODEL}"] == 1
    assert "Retrieving from storage" not in out
    log = read_object(s3, f"{RESULTS}/logs/serve/{MODEL}.log").decode()
    assert "reusing package overlay" in log
    summary = pd.read_csv(io.BytesIO(read_object(s3, f"{RESULTS}/results/summary.csv")))
    overall = summary[summary["group_by"] == "overall"].set_index("model")
    assert overall["n"].to_dict() == {MODEL: 4, VARIANT: 2}


def test_missing_bucket_is_a_clear_error(run: dict) -> None:
    workdir = run["workdir"]
    entry_path = workdir / "config" / "datasets" / "demo_s3.yaml"
    entry = read_yaml(entry_path)
    try:
        write_yaml(
            entry_path, {**entry, "source": {"type": "s3", "uri": "s3://no-such-bucket/x/v1"}}
        )
        # a real run: a dry run contacts no bucket (test_planning_side_effects.py)
        result = snakemake(workdir, *STORAGE_ARGS, env=run["env"], check=False)
    finally:
        write_yaml(entry_path, entry)
    assert result.returncode != 0
    assert "bucket 'no-such-bucket' does not exist at http://127.0.0.1:" in output_of(result)


@pytest.mark.parametrize(
    ("variable", "reason"),
    [
        ("SNAKEMAKE_STORAGE_S3_SECRET_KEY", "SignatureDoesNotMatch"),
        ("SNAKEMAKE_STORAGE_S3_ACCESS_KEY", "InvalidAccessKeyId"),
    ],
)
def test_bad_credentials_are_a_clear_error(run: dict, variable: str, reason: str) -> None:
    env = {**run["env"], variable: "wrong-wrong-wrong"}
    result = snakemake(run["workdir"], *STORAGE_ARGS, env=env, check=False)  # stops at parse
    assert result.returncode != 0
    out = output_of(result)
    assert "access to bucket 'datasets'" in out and reason in out
    assert "SNAKEMAKE_STORAGE_S3_ACCESS_KEY" in out  # says what to fix


def test_push_refuses_to_overwrite_a_version(run: dict, tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text("{}\n", encoding="utf-8")
    client = S3Settings(
        endpoint_url=run["s3"].endpoint,
        access_key=run["s3"].access_key,
        secret_key=run["s3"].secret_key,
    ).client()
    with pytest.raises(FileExistsError, match="immutable"):
        push_dataset(tmp_path, DATASET_URI, client)
    assert push_dataset(tmp_path, "s3://datasets/demo-vqa/v2", client) == [
        "demo-vqa/v2/manifest.jsonl"
    ]
