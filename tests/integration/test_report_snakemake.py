"""One small real workflow run: the report rule's deliverables, the predict job's provenance,
``snakemake --report report.zip``, and ``vlmhb report`` rebuilding the same bytes under another
time zone and locale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import make_workdir, snakemake
from tests.integration.test_report_build import hashes

pytestmark = pytest.mark.slow
SAME = ("--n-boot", "200", "--seed", "0")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = make_workdir(
        tmp_path_factory.mktemp("report-run"), models=["tiny-llava"], tasks=["demo_doc_class"]
    )
    snakemake(workdir)
    return workdir


def test_the_workflow_ends_with_the_report_and_provenance(workdir: Path) -> None:
    report = workdir / "results" / "report"
    for name in ("index.html", "leaderboard.md", "comparisons.csv", "provenance.json"):
        assert (report / name).is_file(), name
    assert list((report / "tables").glob("*.tex"))
    assert list((report / "figures").glob("*.svg")) and list((report / "figures").glob("*.pdf"))
    record = json.loads(
        (workdir / "results" / "provenance" / "tiny-llava" / "demo_doc_class.json").read_text()
    )
    assert record["model"]["backend"] == "hf"
    assert len(record["dataset"]["manifest_sha256"]) == 64
    assert record["wall_s"] >= 0 and record["started"] <= record["ended"]
    assert record["environment"]["packages"]["vlmhyperbench"]
    job = json.loads((report / "provenance.json").read_text())["jobs"]["tiny-llava/demo_doc_class"]
    assert job == record


def test_snakemake_report_zip_holds_report_html(workdir: Path) -> None:
    snakemake(workdir, "--report", "report.zip")
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("report.html") for name in names)
    assert any("index.html" in name for name in names)


def test_vlmhb_report_rebuilds_the_same_bytes_in_another_zone_and_locale(
    workdir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rebuilt"
    env = {**os.environ, "TZ": "Asia/Vladivostok", "LANG": "C", "LC_ALL": "C"}
    done = subprocess.run(
        # --n-boot/--seed: the test config's scoring settings, which the rule uses.
        [sys.executable, "-m", "vlmhyperbench.cli", "report", "results", str(out), *SAME],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert hashes(out) == hashes(workdir / "results" / "report")
