"""The one list of Debian packages and the script that installs them (make demo / make test)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from vlmhyperbench.pipeline.backend_specs import listed_debian_packages

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "install-debian-packages"


def test_the_list_says_who_needs_each_package():
    assert listed_debian_packages("demo") == ["tesseract-ocr", "tesseract-ocr-rus"]
    assert set(listed_debian_packages("test")) >= {
        "tesseract-ocr",
        "tesseract-ocr-rus",
        "chromium",
        "texlive-latex-recommended",
        "texlive-lang-cyrillic",
    }
    # the image scores too: mws_ocr's METEOR reads WordNet
    assert listed_debian_packages("image") == [
        "tesseract-ocr", "tesseract-ocr-rus", "wordnet-base", "wordnet-sense-index",
    ]  # fmt: skip


def test_makefile_and_dockerfile_read_the_list_and_name_no_package():
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "containers" / "base-cpu" / "Dockerfile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "tools/install-debian-packages" in makefile
    assert "install-debian-packages image" in dockerfile
    assert "make lint" in ci and "make test" in ci
    for text in (makefile, dockerfile, ci):
        assert "tesseract-ocr-rus" not in text and "chromium" not in text


@pytest.fixture
def open_dir():
    """A folder another user can read (pytest's own tmp folders are private to us)."""
    with tempfile.TemporaryDirectory() as name:
        os.chmod(name, 0o755)
        yield Path(name)


def _copy_with_list(tmp_path: Path, lines: str) -> Path:
    (tmp_path / "tools").mkdir()
    (tmp_path / "src" / "vlmhyperbench").mkdir(parents=True)
    shutil.copy2(SCRIPT, tmp_path / "tools" / SCRIPT.name)
    (tmp_path / "src" / "vlmhyperbench" / "debian_packages.txt").write_text(lines)
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755)
    return tmp_path / "tools" / SCRIPT.name


def _run_unprivileged(script: Path, who: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """As a user who is neither root nor allowed to sudo: ``nobody`` when we are root (CI),
    else ourselves with a ``sudo`` on PATH that always refuses."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "sudo").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "sudo").chmod(0o755)
    path = f"{fake_bin}:/usr/bin:/bin"
    command = ["env", f"PATH={path}", "PYTHON=no-such-python", str(script), who]
    if os.geteuid() == 0:
        command = ["su", "-s", "/bin/sh", "nobody", "-c", " ".join(command)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian/Ubuntu machine")
def test_without_root_or_sudo_it_stops_first_with_the_one_command(open_dir):
    script = _copy_with_list(
        open_dir, "# comment\ndash demo,test # installed everywhere\nno-such-pkg-xyz demo\n"
    )
    result = _run_unprivileged(script, "demo", open_dir)
    assert result.returncode == 1
    assert "sudo apt-get update && sudo apt-get install -y no-such-pkg-xyz" in result.stderr
    assert "dash" not in result.stderr  # installed: not asked for
    assert result.stdout == ""


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian/Ubuntu machine")
def test_nothing_missing_means_nothing_to_do(open_dir):
    script = _copy_with_list(open_dir, "dash demo,test\nno-such-pkg-xyz image\n")
    result = _run_unprivileged(script, "test", open_dir)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
