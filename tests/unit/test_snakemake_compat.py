"""snakemake_compat: its version guard, and one test per workaround against the real upstream code,
so that an upgrade of Snakemake or of the S3 plugin that changes what a workaround relies on fails
here, naming it. ``planning_only`` (telling ``-n`` and ``--lint`` from a run while the Snakefile is
read) is tested on the real workflow: tests/integration/test_planning_side_effects.py."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import snakemake.api  # noqa: F401 - first, as snakemake's CLI does (its modules import in a cycle)
from packaging.requirements import Requirement
from snakemake.io import get_flag_value, local
from snakemake.settings.types import PersistenceBackend, StorageSettings, WorkflowSettings

from tests.s3server import S3Server, s3_server
from vlmhyperbench.pipeline import snakemake_compat as compat
from vlmhyperbench.pipeline.snakemake_compat import S3_PLUGIN, SNAKEMAKE, UnsupportedVersionError

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- version guard
def test_supported_ranges_are_the_projects_requirements() -> None:
    """pip installs nothing the guard refuses, and nothing the guard was not written for."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["s3"]]
    declared = {(req := Requirement(line)).name: req.specifier for line in requirements}
    for package, supported in compat.SUPPORTED.items():
        assert declared[package] == Requirement(f"{package}{supported}").specifier, package


def test_the_installed_versions_are_supported() -> None:
    compat.require_supported(SNAKEMAKE)
    compat.require_supported(S3_PLUGIN)


@pytest.mark.parametrize(
    ("package", "found", "refused"),
    [
        (SNAKEMAKE, "9.27.1", False),
        (SNAKEMAKE, "9.99.0", False),
        (SNAKEMAKE, "9.28.0.dev3", False),  # a development build of a supported release
        (SNAKEMAKE, "9.26.3", True),
        (SNAKEMAKE, "10.0.0", True),
        (S3_PLUGIN, "0.3.9", False),
        (S3_PLUGIN, "0.3.5", True),
        (S3_PLUGIN, "0.4.0", True),
        (S3_PLUGIN, None, False),  # not installed: nothing of it is used
    ],
)
def test_version_guard(
    monkeypatch: pytest.MonkeyPatch, package: str, found: str | None, refused: bool
) -> None:
    monkeypatch.setattr(compat, "installed_version", lambda name: found)
    if not refused:
        compat.require_supported(package)
        return
    with pytest.raises(UnsupportedVersionError) as caught:
        compat.require_supported(package)
    supported = compat.SUPPORTED[package]
    message = str(caught.value)
    assert f"{package} {found} is installed" in message
    assert f"supports {package}{supported} only" in message
    assert f"pip install '{package}{supported}'" in message  # what to do


def test_the_s3_patch_checks_the_plugins_version(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("snakemake_storage_plugin_s3")
    monkeypatch.setattr(compat, "installed_version", lambda name: "0.4.0")
    with pytest.raises(UnsupportedVersionError, match=r"snakemake-storage-plugin-s3 0\.4\.0"):
        compat.fix_s3_directory_existence_check()


# ----------------------------------------------------------------------- the incomplete marks
def _workflow(**storage: str) -> SimpleNamespace:
    return SimpleNamespace(
        storage_settings=StorageSettings(**storage), workflow_settings=WorkflowSettings()
    )


LONG_KEY = "s3://bucket/" + "deep/" * 80 + "status.json"  # base64 longer than a file name


@pytest.mark.parametrize(
    "key", ["results/.servers/tiny-llava.json", "s3://bucket/run/results/.servers/m.json", LONG_KEY]
)
def test_incomplete_marks_are_where_snakemake_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """Snakemake's own file persistence (the default, in ``.snakemake`` of the working
    directory) marks ``key`` incomplete as a running job does; our function finds and removes
    the mark, and Snakemake then sees the file as complete."""
    from snakemake.persistence.file import FilePersistence

    monkeypatch.chdir(tmp_path)
    persistence = FilePersistence()
    assert Path(persistence.path) == tmp_path / compat.SNAKEMAKE_DIR
    persistence._mark_incomplete(key, None)
    assert persistence._filter_incomplete_keys([key]) == {key}
    name_max = os.pathconf(compat.INCOMPLETE_DIR, "PC_NAME_MAX")
    assert compat.incomplete_marker(key, name_max).is_file()

    compat.forget_earlier_runs(_workflow(), [key])
    assert not FilePersistence()._filter_incomplete_keys([key])


@pytest.mark.parametrize("key", ["results/.servers/tiny-llava.json", LONG_KEY])
def test_metadata_records_are_where_snakemake_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """Snakemake's file persistence records a finished job's params under ``key``; once our
    function removed the record, Snakemake has no params to compare (a serve job whose params
    changed must not run on its own account)."""
    from snakemake.persistence import MetadataRecord
    from snakemake.persistence.file import FilePersistence

    monkeypatch.chdir(tmp_path)
    persistence = FilePersistence()
    persistence._write_record(key, MetadataRecord(params=["python=/old"], record_format_version=6))
    assert FilePersistence()._read_record(key).params == ["python=/old"]
    name_max = os.pathconf(compat.METADATA_DIR, "PC_NAME_MAX")
    assert compat.record_path(compat.METADATA_DIR, key, name_max).is_file()

    compat.forget_earlier_runs(_workflow(), [key])
    assert FilePersistence()._read_record(key) is None


def test_no_incomplete_folder_is_nothing_to_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    compat.forget_earlier_runs(_workflow(), ["results/.servers/m.json"])
    assert not any(tmp_path.iterdir())  # writes nothing


def test_the_database_persistence_is_refused() -> None:
    workflow = SimpleNamespace(
        workflow_settings=WorkflowSettings(persistence_backend=PersistenceBackend.DB)
    )
    with pytest.raises(UnsupportedVersionError, match="--persistence-backend db is not supported"):
        compat.forget_earlier_runs(workflow, ["results/.servers/m.json"])


@pytest.mark.parametrize("prefix", ["s3://bucket/runs/demo", "s3://bucket/runs/demo/"])
def test_persistence_keys_are_snakemakes_default_storage_queries(
    tmp_path: Path, prefix: str
) -> None:
    """Snakemake files a default-storage output under its storage query; the query is what
    its own path modifier makes of the path with the real S3 plugin."""
    plugin = pytest.importorskip("snakemake_storage_plugin_s3")
    from snakemake.path_modifier import PathModifier

    provider = plugin.StorageProvider(
        local_prefix=tmp_path / "storage",
        logger=logging.getLogger("test"),
        settings=plugin.StorageProviderSettings(endpoint_url="http://127.0.0.1:9"),
    )
    workflow = _workflow(default_storage_provider="s3", default_storage_prefix=prefix)
    workflow.pathvars = SimpleNamespace(apply=lambda path: path)
    workflow.storage_registry = SimpleNamespace(default_storage_provider=provider)
    path = "results/.servers/tiny-llava.json"
    stored = PathModifier(None, None, workflow).apply_default_storage(path)
    query = get_flag_value(stored, "storage_object").query
    assert compat.persistence_keys(workflow, path) == [path, query]
    assert compat.persistence_keys(_workflow(), path) == [path]  # no default storage


# ------------------------------------------------------------------- local() files, GPU locks
@pytest.mark.parametrize("shared", [True, False])
def test_a_local_file_keeps_its_job_in_the_main_process_without_a_shared_filesystem(
    shared: bool,
) -> None:
    """``Job.is_local`` (the main process runs the job, and its group) for a job with a
    ``local()`` output is what the rules must avoid on Kubernetes."""
    from snakemake.jobs import Job
    from snakemake_interface_executor_plugins.settings import SharedFSUsage

    usage = frozenset(SharedFSUsage) if shared else frozenset()
    workflow = SimpleNamespace(
        storage_settings=StorageSettings(shared_fs_usage=usage), is_local=lambda rule: False
    )
    job = SimpleNamespace(
        dag=SimpleNamespace(workflow=workflow), rule=None, input=[], output=[local("status")]
    )
    assert Job.is_local.fget(job) is not shared
    assert compat.local_files_stay_with_their_jobs(workflow) is shared


def test_gpu_locks_live_in_snakemakes_folder() -> None:
    assert compat.GPU_SLOTS_DIR.parent == compat.SNAKEMAKE_DIR == Path(".snakemake")


# ------------------------------------------------------------------------------- the S3 plugin
@pytest.fixture(scope="module")
def server() -> S3Server:
    server = s3_server()
    server.client().create_bucket(Bucket="compat-bucket")
    return server


def test_directory_outputs_written_elsewhere_are_seen(
    server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin's storage object, asked before and after another process (a pod) uploaded a
    directory under its key, must see it the second time."""
    plugin = pytest.importorskip("snakemake_storage_plugin_s3")
    # a pristine class for this test, so the patch is tested from scratch
    monkeypatch.setattr(plugin.StorageObject, "exists", plugin.StorageObject.exists)
    monkeypatch.delattr(plugin.StorageObject, "_vlmhb_dir_fix", raising=False)
    provider = plugin.StorageProvider(
        local_prefix=tmp_path / "storage",
        logger=logging.getLogger("test"),
        settings=plugin.StorageProviderSettings(
            endpoint_url=server.endpoint,
            access_key=server.access_key,
            secret_key=server.secret_key,
        ),
    )

    def directory_appears(name: str) -> bool:
        obj = provider.object(f"s3://compat-bucket/out/{name}")
        assert not obj.exists()
        server.client().put_object(Bucket="compat-bucket", Key=f"out/{name}/file.png", Body=b"x")
        return obj.exists()

    assert not directory_appears("unpatched"), "plugin fixed upstream: drop the workaround"
    assert compat.fix_s3_directory_existence_check()
    assert directory_appears("patched")


SERVICE_GROUP = """
import os
from vlmhyperbench.pipeline import snakemake_compat
if os.environ.get("PATCH") == "1":
    snakemake_compat.stop_services_when_a_group_fails_to_start()

rule all:
    input: "late.txt"

rule serve:
    output: service("serve.status")
    shell: "touch {output}; exec sleep 300"

rule early:
    input: "serve.status"
    output: "early.txt"
    threads: 0
    shell: "sleep 4; touch {output}"

# Snakemake starts the group's jobs at once, and preparing one waits --latency-wait 1 for its
# inputs: the service's file (touched as it starts) or early.txt (made 4 s later) is missing,
# and a job fails before it starts (as a perf job with ordering inputs did).
rule late:
    input: status="serve.status", early="early.txt"
    output: "late.txt"
    threads: 0
    shell: "touch {output}"
"""


def _run_service_group(tmp_path: Path, patch: str, timeout: float) -> subprocess.CompletedProcess:
    tmp_path.mkdir(parents=True)
    (tmp_path / "Snakefile").write_text(SERVICE_GROUP, encoding="utf-8")
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--latency-wait", "1"]
    process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PATCH": patch},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out)


def test_a_service_group_whose_job_fails_to_start_stops_its_service(tmp_path: Path) -> None:
    """Unpatched, Snakemake leaves the service running and never ends the run (the upstream
    behaviour the workaround is for); patched, the run fails with the job's error."""
    with pytest.raises(subprocess.TimeoutExpired):
        _run_service_group(tmp_path / "unpatched", "0", timeout=20)
    result = _run_service_group(tmp_path / "patched", "1", timeout=120)
    assert result.returncode != 0
    assert "Missing files after 1 seconds" in result.stdout, result.stdout[-3000:]
