"""Kubernetes (ADR-001, ADR-004): the real kubernetes executor plugin against a recording API
server on loopback, with S3 (moto) as the only way files move between jobs.

The workflow is run from a git checkout of the repository (as a user would: the pods get the
git-tracked sources as an archive in S3) with ``snakemake --profile k8s`` — the profile installed by
``vlmhb profile install`` into the user's config dir. The recording server stands in for the
cluster: it records every Job spec and runs each Job's command in a fresh empty directory with the
pod's secret-backed environment (``tests/k8s_api.py``). What stands in, and nothing else: the
cluster (API server + node), the runner image (this Python environment; its ``pip``, used only by
the plugin's auto-deploy step, is a recorder because the image already holds the plugin), a GPU
(the model's pod asks for one; the tiny model runs on the CPU).
"""

from __future__ import annotations

import base64
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, SMALL_DATASET, job_counts, read_yaml, write_yaml
from tests.k8s_api import RecordingKubeAPI, environment_without_cluster
from tests.s3server import S3Server, s3_server
from vlmhyperbench.config import load_experiment

pytestmark = pytest.mark.slow

BUCKET = "vlmhb-runs"
PREFIX = "bench/run1"
NAMESPACE = "bench"
IMAGE = "registry.example.com/vlmhb/runner:0.1.0"
HF_TOKEN = "hf-secret-token-for-the-test"
MODEL = "tiny-llava"
TASK = "demo_field_vqa"
TASK2 = "demo_field_vqa_terse"  # registered by the test in its checkout

PIP_RECORDER = """#!/bin/sh
# The stand-in image already has the storage plugin: record the auto-deploy call, install nothing.
echo "$@" >> "$PIP_CALLS"
"""


def checkout(root: Path) -> Path:
    """A git checkout of the workflow part of the repository (all of it tracked)."""
    repo = root / "repo"
    repo.mkdir()
    for folder in ("workflow", "rules", "scripts", "envs", "config", "profiles"):
        shutil.copytree(
            REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")  # .snakemake/, results/ … untracked
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    return repo


def snakemake_cli(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` run verbatim in the checkout (no --snakefile: found as a user's is)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=repo,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("k8s")
    s3 = s3_server()
    s3.client().create_bucket(Bucket=BUCKET)
    s3.client().create_bucket(Bucket="vlmhb-bucket")  # the repository profile's placeholder

    image_bin = root / "image-bin"
    image_bin.mkdir()
    (image_bin / "pip").write_text(PIP_RECORDER, encoding="utf-8")
    (image_bin / "pip").chmod(0o755)
    pip_calls = root / "pip-calls.txt"
    venv_bin = Path(sys.executable).parent
    api = RecordingKubeAPI(
        kubelet=True,
        pod_root=root / "pods",
        pod_env={
            "PATH": f"{image_bin}:{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "PIP_CALLS": str(pip_calls),
        },
    ).start()
    env = environment_without_cluster(
        {
            **{k: v for k, v in s3.env().items() if k.startswith("SNAKEMAKE_STORAGE_S3_")},
            "KUBECONFIG": str(api.kubeconfig(root / "kubeconfig")),
            "XDG_CONFIG_HOME": str(root / "xdg-config"),
            "HF_TOKEN": HF_TOKEN,
        }
    )
    # The endpoint goes into the profile (it is not a secret); the keys stay in the environment.
    env.pop("SNAKEMAKE_STORAGE_S3_ENDPOINT_URL")
    yield {"root": root, "s3": s3, "api": api, "env": env, "pip_calls": pip_calls}
    api.stop()


@pytest.fixture(scope="module")
def repo(cluster: dict) -> Path:
    return checkout(cluster["root"])


def planned_pods(output: str) -> list[list[str]]:
    """The pods a dry run plans: the rules of each group job, and each job outside a group
    (``rule all`` runs in the main process)."""
    pods: list[list[str]] = []
    for line in output.splitlines():
        body = re.sub(r"^\[[^]]*\] ", "", line)
        if body.startswith("Group job "):
            pods.append([])
        elif match := re.fullmatch(r"(    )?rule (\S+):", body):
            if match[1]:
                pods[-1].append(match[2])
            elif match[2] != "all":
                pods.append([match[2]])
    return pods


def test_repository_profile_plans_the_demo(cluster: dict, repo: Path) -> None:
    """The demo on Kubernetes: one pod per model (its serve job, all its predict jobs and its
    perf jobs), the score jobs ten to a pod, summarize and report one each; besides those, one
    pod per dataset and per tiny model to build, and the variants file: 6 + 5 + 2 + 5 + 2 + 1 =
    21 pods."""
    env = {**cluster["env"], "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": cluster["s3"].endpoint}
    result = snakemake_cli(repo, env, "--profile", "profiles/k8s", "-n")
    assert result.returncode == 0, result.stderr[-4000:]
    counts = job_counts(result.stdout + result.stderr)
    experiment = load_experiment(config_path=REPO / "config" / "config.yaml", workdir=REPO)
    for server in experiment.servers:  # a predict rule per server: a job per (model, task)
        pairs = sum(len(experiment.tasks_of(m)) for m in experiment.models_of(server))
        assert counts[f"predict_{server}"] == pairs
    assert counts["summarize"] == 1 and counts["report"] == 1
    assert "s3://vlmhb-bucket/vlmhb/runs/demo/results/summary.csv" in result.stdout

    pods = planned_pods(result.stdout)
    for server in experiment.servers:
        (pod,) = (p for p in pods if f"serve_{server}" in p)
        perf_jobs = [f"perf_{server}"] * counts.get(f"perf_{server}", 0)
        assert sorted(pod) == sorted(
            [f"serve_{server}", *perf_jobs] + [f"predict_{server}"] * counts[f"predict_{server}"]
        )
    # the demo load-tests tiny-llava and the 4 Tesseract variants on one task each
    assert sum(count for job, count in counts.items() if job.startswith("perf_")) == 5
    score_jobs = counts["score"]
    score_pods = [p for p in pods if set(p) == {"score"}]
    assert len(score_pods) == math.ceil(score_jobs / 10)
    assert sum(len(p) for p in score_pods) == score_jobs
    assert sorted(map(sorted, pods)).count(["report"]) == 1
    assert sorted(map(sorted, pods)).count(["summarize"]) == 1
    builds = counts["generate_dataset"] + counts["build_tiny_model"]
    # the demo's 6 servers (2 tiny VLMs, 4 Tesseract variants), its score pods, summarize,
    # report, variants.json and the builds
    expected = len(experiment.servers) + math.ceil(score_jobs / 10) + 3 + builds
    assert len(pods) == expected == 21, pods


@pytest.fixture(scope="module")
def installed(cluster: dict) -> dict:
    """`vlmhb profile install k8s …` into the user's config dir (XDG_CONFIG_HOME here)."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "vlmhb"),
            "profile",
            "install",
            "k8s",
            "--bucket",
            BUCKET,
            "--prefix",
            PREFIX,
            "--namespace",
            NAMESPACE,
            "--image",
            IMAGE,
            "--endpoint-url",
            cluster["s3"].endpoint,
            "--jobs",
            "2",
        ],
        env=cluster["env"],
        capture_output=True,
        text=True,
        check=True,
    )
    path = Path(cluster["env"]["XDG_CONFIG_HOME"]) / "snakemake" / "k8s" / "profile.yaml"
    return {"path": path, "stdout": result.stdout}


def test_profile_install_writes_where_snakemake_looks(cluster: dict, installed: dict) -> None:
    path = installed["path"]
    assert str(path) in installed["stdout"].replace("\n", "")
    profile = read_yaml(path)
    assert profile["default-storage-prefix"] == f"s3://{BUCKET}/{PREFIX}"
    assert profile["kubernetes-namespace"] == NAMESPACE and profile["container-image"] == IMAGE
    text = path.read_text(encoding="utf-8")
    assert cluster["s3"].secret_key not in text and cluster["s3"].access_key not in text


@pytest.fixture(scope="module")
def run(cluster: dict, repo: Path, installed: dict) -> dict:
    """`snakemake --profile k8s` verbatim, on a small experiment: one model that asks for a GPU,
    two tasks on one dataset (a second field-VQA task registered in the checkout, as a user
    would), three score jobs."""
    assert installed["path"].is_file()
    task = read_yaml(repo / "config" / "tasks" / f"{TASK}.yaml")
    task["prompt"]["user"] = "Ответь одним словом. {{ question }}"
    write_yaml(repo / "config" / "tasks" / f"{TASK2}.yaml", task)
    config_path = repo / "config" / "config.yaml"
    config = read_yaml(config_path)
    config.pop("runs", None)  # the demo's run matrix: this run is one small block
    config.update(models=[MODEL], tasks=[TASK, TASK2])
    config["overrides"] = {
        "datasets": {"demo_docs_vqa": {"source": {"params": {**SMALL_DATASET["source"]["params"],
                                                             "subsets": ["clean"]}}}},
        "tasks": {TASK: {"limit": 2, "metrics": ["exact_match"]},
                  TASK2: {"limit": 2, "metrics": ["exact_match", "anls"]}},
        "models": {MODEL: {"resources": {"gpu": 1, "mem_mb": 3000}}},
    }  # fmt: skip
    config["scoring"] = {"bootstrap": 50, "seed": 0}
    write_yaml(config_path, config)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    result = snakemake_cli(
        repo, cluster["env"], "--profile", "k8s", "--seconds-between-status-checks", "1"
    )
    return {"result": result, **cluster}


def target_jobs(job: dict) -> list[str]:
    """The jobs a pod runs (``rule:wildcards`` of its ``--target-jobs``), sorted."""
    words = shlex.split(job["spec"]["template"]["spec"]["containers"][0]["args"][1])
    start = words.index("--target-jobs") + 1
    end = next((i for i in range(start, len(words)) if words[i].startswith("--")), len(words))
    return sorted(words[start:end])


def pods_by_kind(api: RecordingKubeAPI) -> dict[str, list[dict]]:
    """The pods created, by the set of rules they run (``predict_m+serve_m``, ``score``)."""
    out: dict[str, list[dict]] = {}
    for job in api.submitted_jobs():
        rules = sorted({spec.split(":", 1)[0] for spec in target_jobs(job)})
        out.setdefault("+".join(rules), []).append(job)
    return out


def cpu_request(cores: int) -> str:
    """What the plugin requests for CORES (its default cpu scalar, 0.95)."""
    return f"{int(cores * 0.95 * 1000)}m"


def test_the_run_finishes_with_results_in_the_bucket(run: dict) -> None:
    result = run["result"]
    assert result.returncode == 0, result.stderr[-6000:]
    failed = {name: r.log[-3000:] for name, r in run["api"].runs.items() if r.returncode != 0}
    assert not failed, failed
    s3: S3Server = run["s3"]
    keys = s3.keys(BUCKET, PREFIX)
    for expected in (
        "results/summary.csv",
        "results/report/leaderboard.md",
        "data/demo_docs_vqa/manifest.jsonl",
    ):
        assert f"{PREFIX}/{expected}" in keys
    assert any(k.startswith(f"{PREFIX}/data/demo_docs_vqa/images/") for k in keys)
    body = s3.client().get_object(Bucket=BUCKET, Key=f"{PREFIX}/results/summary.csv")["Body"]
    summary = pd.read_csv(body)
    assert set(summary.loc[summary["group_by"] == "overall", "n"]) == {2}


def test_one_pod_per_model_and_grouped_score_pods(run: dict) -> None:
    """The model's server and all its predict jobs share one pod; the score jobs share one
    (up to the profile's `group-components: {score: 10}` each); summarize and report have one
    each, and so does the variants file. Pods = servers + (datasets + tiny models built +
    ceil(score jobs / 10) + 3): here 1 + 6 pods for 11 jobs."""
    pods = pods_by_kind(run["api"])
    model_pod = f"predict_{MODEL}+serve_{MODEL}"
    assert {kind: len(jobs) for kind, jobs in pods.items()} == {
        "generate_dataset": 1, "build_tiny_model": 1, model_pod: 1,
        "score": 1, "summarize": 1, "report": 1, "variants": 1,
    }  # fmt: skip
    assert sum(len(jobs) for jobs in pods.values()) == 1 + 6
    (model_job,) = pods[model_pod]
    assert target_jobs(model_job) == sorted(
        [
            f"serve_{MODEL}:",
            f"predict_{MODEL}:model={MODEL},task={TASK}",
            f"predict_{MODEL}:model={MODEL},task={TASK2}",
        ]
    )
    (score_job,) = pods["score"]
    metrics = [spec.rpartition("metric=")[2].split(",")[0] for spec in target_jobs(score_job)]
    assert sorted(metrics) == ["anls", "exact_match", "exact_match"]
    # The pod ran the server and both predict jobs, stopped the server when they were done and
    # ended (exit 0: test_the_run_finishes_with_results_in_the_bucket).
    log = run["api"].runs[model_job["metadata"]["name"]].log
    for rule in (f"serve_{MODEL}", f"predict_{MODEL}"):
        assert f"rule {rule}:" in log
    assert "since all consuming jobs are finished" in log
    assert "3 of 3 steps (100%) done" in log


def test_each_pod_started_empty_and_was_fed_through_storage(run: dict) -> None:
    api = run["api"]
    (model_job,) = pods_by_kind(api)[f"predict_{MODEL}+serve_{MODEL}"]
    model_pod = api.runs[model_job["metadata"]["name"]]
    # The dataset and the model reached the model's pod from S3 (then its copies were cleaned up).
    for fetched in ("data/demo_docs_vqa/manifest.jsonl", "data/demo_docs_vqa/images",
                    f"models/tiny/{MODEL}"):  # fmt: skip
        assert f"Retrieving from storage: s3://{BUCKET}/{PREFIX}/{fetched}\n" in model_pod.log
    # The serve job started the wrapper once, on the model's local copy from storage.
    log = (
        run["s3"]
        .client()
        .get_object(Bucket=BUCKET, Key=f"{PREFIX}/logs/serve/{MODEL}.log")["Body"]
        .read()
        .decode()
    )
    started = f"starting the wrapper for {MODEL} (hf, "
    assert log.count(started) == 1
    assert f"/.snakemake/storage/s3/{BUCKET}/{PREFIX}/models/tiny/{MODEL})" in log
    assert f"{PREFIX}/logs/serve/{MODEL}.wrapper.log" in run["s3"].keys(BUCKET, PREFIX)
    # Nothing was found on a shared disk: the pod's workdir has no data/ or models/ of its own.
    assert not (model_pod.workdir / "data").exists()
    assert not (model_pod.workdir / "models").exists()
    # The plugin's auto-deploy asked the image's pip for the storage plugin, once per pod.
    calls = run["pip_calls"].read_text(encoding="utf-8").splitlines()
    assert len(calls) == len(api.submitted_jobs())
    assert all(
        "--target .snakemake/pip-deployments snakemake-storage-plugin-s3" in c for c in calls
    )


def test_pod_specs(run: dict) -> None:
    api = run["api"]
    pods = pods_by_kind(api)
    secrets = list(api.secrets.values())
    assert len(secrets) == 1
    secret = secrets[0]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded["hf_token"] == HF_TOKEN
    assert decoded["snakemake_storage_s3_access_key"] == run["s3"].access_key
    assert decoded["snakemake_storage_s3_secret_key"] == run["s3"].secret_key

    for kind, job in ((kind, job) for kind, jobs in pods.items() for job in jobs):
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["image"] == IMAGE
        assert container["command"] == ["/bin/sh"]
        command = container["args"][1]
        assert "python -m snakemake --deploy-sources s3://" in command
        assert f"--default-storage-prefix 's3://{BUCKET}/{PREFIX}'" in command
        assert "--shared-fs-usage 'none'" in command
        assert spec["serviceAccountName"] == "vlmhb-runner"
        assert spec["restartPolicy"] == "Never"
        # No shared filesystem: the only volume is the pod's own empty dir.
        assert spec["volumes"] == [{"name": "workdir", "emptyDir": {}}]
        assert container["volumeMounts"] == [{"name": "workdir", "mountPath": "/workdir"}]
        # Secrets by reference only, never in the spec.
        env = {e["name"]: e for e in container["env"]}
        assert set(env) >= {
            "HF_TOKEN", "SNAKEMAKE_STORAGE_S3_ACCESS_KEY", "SNAKEMAKE_STORAGE_S3_SECRET_KEY",
        }  # fmt: skip
        for var in env.values():
            assert var["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
            assert "value" not in var
        dumped = json.dumps(job)
        assert HF_TOKEN not in dumped and run["s3"].secret_key not in dumped

        resources = container["resources"]
        if kind == f"predict_{MODEL}+serve_{MODEL}":
            # The group's requests: the serve job's (the model's GPU and memory, the profile's
            # disk) plus each predict job's small share (1000 MB of memory and of disk).
            assert resources["requests"]["nvidia.com/gpu"] == "1"
            assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"]
            assert resources["requests"]["memory"] == resources["limits"]["memory"] == "5000M"
            assert resources["requests"]["ephemeral-storage"] == f"{20000 + 2 * 1000}M"
            assert {
                "key": "nvidia.com/gpu",
                "operator": "Equal",
                "value": "present",
                "effect": "NoSchedule",
            } in spec["tolerations"]
            continue
        assert "nvidia.com/gpu" not in json.dumps(resources)
        assert not spec.get("tolerations")
        if kind == "score":
            # Three score jobs at 1 CPU, 1000 MB and 1000 MB of disk each (not the defaults), run
            # `--cores` (2: the workflow profile's) at a time: the pod asks for two jobs' worth.
            assert resources["requests"]["cpu"] == cpu_request(2)
            assert resources["requests"]["memory"] == "2000M"
            assert resources["requests"]["ephemeral-storage"] == "2000M"
        else:
            assert resources["requests"]["memory"] == "4000M"  # the profile's default

    # Created in, and only in, the profile's namespace; the secret is removed at the end.
    paths = [path for _, path, _ in api.requests]
    assert all(f"/namespaces/{NAMESPACE}/" in path for path in paths)
    assert ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{secret['metadata']['name']}") in {
        (method, path) for method, path, _ in api.requests
    }


def test_a_second_run_has_nothing_to_do(run: dict, repo: Path) -> None:
    """The serve job's status file is a storage file on Kubernetes (``local()`` would keep the
    model's group in the main process); the copy its pod stored keeps the predict jobs, whose
    input it is (``ancient``), from running again."""
    again = snakemake_cli(repo, run["env"], "--profile", "k8s", "-n")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "Nothing to be done" in again.stdout + again.stderr
