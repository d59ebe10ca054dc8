"""Everything the workflow takes from Snakemake's or the S3 storage plugin's private behaviour.

The rules use Snakemake's public API (``workflow.storage_settings``, ``local()``, ``service()``
…) everywhere else. What is here depends on how Snakemake 9.27 and ``snakemake-storage-plugin-s3``
0.3.6 work inside, so it is written for a range of versions and checked against it: outside the
range the workflow stops at once, naming the package, the installed and the supported version.
Each workaround has a test that fails when the upstream behaviour it relies on changes
(``tests/unit/test_snakemake_compat.py``), so an upgrade says what broke:

* ``.snakemake/`` is Snakemake's own folder in the working directory; the serve jobs' GPU locks
  live under it (:data:`GPU_SLOTS_DIR`).
* What Snakemake recorded of earlier runs of a serve job's status file is dropped at parse time
  (:func:`forget_earlier_runs`): a killed run's "incomplete" mark and the file's metadata record
  (its params, code, software stack), which Snakemake's file persistence keeps under
  ``.snakemake/incomplete`` and ``.snakemake/metadata``, named by the file's key in urlsafe
  base64.
* ``snakemake -n`` and ``--lint`` are told apart from a run while the Snakefile is read
  (:func:`planning_only`): ``workflow.dryrun`` is still ``False`` then.
* A ``local()`` file keeps its job off the executor where no filesystem is shared
  (:func:`local_files_stay_with_their_jobs`).
* The S3 plugin remembers "not a directory" (:func:`fix_s3_directory_existence_check`).
* A service group whose job fails before it starts leaves its service running, and the run
  hangs (:func:`stop_services_when_a_group_fails_to_start`).
* ``snakemake --profile NAME`` looks in Snakemake's user config folder
  (:func:`user_profile_dir`, from ``snakemake.common.get_appdirs``, not a documented API).
"""

from __future__ import annotations

import os
from base64 import urlsafe_b64encode
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from snakemake_interface_common.exceptions import WorkflowError

SNAKEMAKE = "snakemake"
S3_PLUGIN = "snakemake-storage-plugin-s3"
# Written and tested with snakemake 9.27.1 and the plugin 0.3.6; the ranges are pyproject.toml's
# requirements (a test keeps them equal), so pip never installs what this module refuses. Within
# Snakemake 9: the incomplete marks are an on-disk format that Snakemake migrates explicitly when
# it changes (FilePersistence.migrate_v1_to_v2), and output_settings / check_envvars are fields
# of its Workflow dataclass; tests/unit/test_snakemake_compat.py fails if a 9.x release changes
# any of it.
SUPPORTED = {SNAKEMAKE: ">=9.27,<10", S3_PLUGIN: ">=0.3.6,<0.4"}
RELIES_ON = {
    SNAKEMAKE: "its file persistence under .snakemake/incomplete, how -n and --lint reach the "
    "Snakefile, which jobs it keeps in the main process, and how it runs a service group",
    S3_PLUGIN: "how its StorageObject caches whether a key is a directory",
}

# Snakemake's own folder in the working directory (FilePersistence's default path).
SNAKEMAKE_DIR = Path(".snakemake")
# Serve jobs on one machine claim GPU ids with lock files here (vlmhyperbench.inference.gpu_slots).
GPU_SLOTS_DIR = SNAKEMAKE_DIR / "gpu-slots"
INCOMPLETE_DIR = SNAKEMAKE_DIR / "incomplete"
METADATA_DIR = SNAKEMAKE_DIR / "metadata"


class UnsupportedVersionError(WorkflowError):
    """An installed Snakemake or S3 plugin (or a Snakemake setting) is outside what this module
    was written for. A ``WorkflowError``: Snakemake prints it as the reason it stopped."""


def installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def require_supported(package: str) -> None:
    """Stop when ``package`` is installed in a version outside :data:`SUPPORTED`."""
    found = installed_version(package)
    supported = SUPPORTED[package]
    if found is None or SpecifierSet(supported).contains(found, prereleases=True):
        return
    raise UnsupportedVersionError(
        f"{package} {found} is installed, but this workflow supports {package}{supported} "
        f"only: it relies on {RELIES_ON[package]} "
        "(vlmhyperbench/pipeline/snakemake_compat.py). "
        f"Install a supported version: pip install '{package}{supported}'"
    )


def planning_only(workflow: Any) -> bool:
    """Whether Snakemake reads the Snakefile for ``snakemake -n`` or ``--lint``: no job runs.

    While the Snakefile is read, ``workflow.dryrun`` is always ``False`` (the executor is set
    afterwards); ``-n`` reaches the workflow only as its output settings' ``dryrun``, and
    ``--lint`` is the one command that builds its workflow with ``check_envvars=False``
    (``WorkflowApi.lint`` in snakemake/api.py).
    """
    output = workflow.output_settings
    dry_run = output is not None and output.dryrun
    return dry_run or not workflow.check_envvars


def local_files_stay_with_their_jobs(workflow: Any) -> bool:
    """Whether a ``local()`` input or output leaves its job where the executor runs it.

    Only where jobs share a filesystem for their files: without one (Kubernetes) Snakemake runs
    every job with a ``local()`` file, and so its whole group, in the main process
    (``Job.is_local`` in snakemake/jobs.py).
    """
    from snakemake_interface_executor_plugins.settings import SharedFSUsage

    return SharedFSUsage.INPUT_OUTPUT in workflow.storage_settings.shared_fs_usage


def persistence_keys(workflow: Any, path: str | Path) -> list[str]:
    """The keys Snakemake's persistence may file ``path`` under: the path, and its storage query
    (``<prefix>/<path>``) when a default storage provider applies to it."""
    prefix = workflow.storage_settings.default_storage_prefix
    keys = [str(path)]
    if prefix:
        keys.append(f"{prefix.rstrip('/')}/{os.path.normpath(path)}")
    return keys


def record_path(folder: Path, key: str, name_max: int = 255) -> Path:
    """Where Snakemake's file persistence keeps its record of ``key`` in ``folder`` (the
    "incomplete" marks, the metadata): its urlsafe base64, cut into ``@``-prefixed folders of
    ``name_max - 1`` characters when longer (``FilePersistence._record_path`` in
    snakemake/persistence/file.py)."""
    encoded = urlsafe_b64encode(key.encode()).decode()
    step = name_max - 1
    parts = [encoded[i : i + step] for i in range(0, len(encoded), step)]
    return folder.joinpath(*["@" + part for part in parts[:-1]], parts[-1])


def incomplete_marker(key: str, name_max: int = 255) -> Path:
    """Where Snakemake keeps the "incomplete" mark of ``key``."""
    return record_path(INCOMPLETE_DIR, key, name_max)


def forget_earlier_runs(workflow: Any, keys: Iterable[str]) -> None:
    """Forget what Snakemake recorded of earlier runs of the outputs ``keys``: a killed run's
    "incomplete" mark (the next ``--rerun-incomplete`` would force their job) and the metadata
    record (changed params, code or software stack would make their job run again). Snakemake's
    default file persistence only: with ``--persistence-backend db`` the records are out of
    reach, and that is refused."""
    from snakemake.settings.types import PersistenceBackend

    backend = workflow.workflow_settings.persistence_backend
    if backend != PersistenceBackend.FILE:
        raise UnsupportedVersionError(
            f"--persistence-backend {backend} is not supported: the serve jobs "
            "need Snakemake's file persistence (the default) to drop what earlier runs "
            "recorded of their status files; run without --persistence-backend"
        )
    for folder in (INCOMPLETE_DIR, METADATA_DIR):
        if not folder.is_dir():
            continue
        name_max = os.pathconf(folder, "PC_NAME_MAX") or 255
        for key in keys:
            record_path(folder, key, name_max).unlink(missing_ok=True)


def fix_s3_directory_existence_check() -> bool:
    """Work around ``snakemake-storage-plugin-s3`` (0.3.6) remembering "not a directory".

    Its storage object caches the answer of ``is_dir()`` (``_is_dir``); the main process asks
    before a job runs (the output is missing: ``False``) and asks again after the job to see
    whether the output arrived - on Kubernetes a pod uploaded it meanwhile, but the cached
    ``False`` makes a directory output (``data/{dataset}/images``, ``models/tiny/{model}``) look
    missing forever ("Missing files after 60 seconds"). Local runs never see it: the uploading
    object updates its own cache. The fix forgets a negative answer before each existence check
    (positive answers and plain files cost nothing extra). Returns whether the plugin was
    patched (``False``: it is not installed).
    """
    try:
        from snakemake_storage_plugin_s3 import StorageObject
    except ImportError:
        return False
    require_supported(S3_PLUGIN)
    if getattr(StorageObject, "_vlmhb_dir_fix", False):
        return True
    original = StorageObject.exists

    def exists(self: Any) -> bool:
        if getattr(self, "_is_dir", None) is False:
            self._is_dir = None
        return original(self)

    StorageObject.exists = exists
    StorageObject._vlmhb_dir_fix = True
    return True


def user_profile_dir(name: str) -> Path:
    """Where ``snakemake --profile NAME`` looks after the working directory (``vlmhb profile
    install`` writes there)."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir) / name


def stop_services_when_a_group_fails_to_start() -> bool:
    """Work around Snakemake (9.27) hanging when a job of a service group fails to start.

    The local executor's ``run_group_job`` starts the group's service jobs, then prepares and
    starts the other jobs one by one; preparing one waits for its inputs and raises when one
    is missing after ``latency-wait``. That exception leaves ``run_group_job`` before the loop
    that, on a job's failure, kills the group's other jobs: the serve job runs on, its group
    never ends, and the run never stops. Stopping the group's service jobs (SIGTERM: a serve
    job stops its wrapper) when ``run_group_job`` raises lets the run fail with the job's error.
    Returns whether the executor was patched (``False``: already).
    """
    from snakemake.executors.local import Executor
    from snakemake.shell import shell

    require_supported(SNAKEMAKE)
    if getattr(Executor, "_vlmhb_service_fix", False):
        return False
    original = Executor.run_group_job

    def run_group_job(self: Any, job: Any) -> None:
        try:
            original(self, job)
        except BaseException:
            for member in job:
                if member.is_service:
                    shell.terminate(member.jobid)  # a no-op for one Snakemake stopped itself
            raise

    Executor.run_group_job = run_group_job
    Executor._vlmhb_service_fix = True
    return True
