"""Images come only from a dataset folder of the run: relative plain paths to regular image
files inside it; ``..``, absolute paths, symbolic links out, FIFOs and other types refused."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from vlmhyperbench.explorer.media import NotServed, _thumbnail, resolve_inside


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    dataset = tmp_path / "data" / "docs"
    (dataset / "images").mkdir(parents=True)
    Image.new("RGB", (600, 800), "white").save(dataset / "images" / "page.png")
    Image.new("RGB", (10, 10), "red").save(tmp_path / "data" / "outside.png")
    (dataset / "images" / "out.png").symlink_to(tmp_path / "data" / "outside.png")
    (dataset / "images" / "in.png").symlink_to(dataset / "images" / "page.png")
    (dataset / "images" / "dir.png").mkdir()
    os.mkfifo(dataset / "images" / "fifo.png")
    (dataset / "page.html").write_text("<script>alert(1)</script>")
    return dataset


def test_a_plain_path_to_an_image_inside_is_served(folder: Path) -> None:
    assert resolve_inside(folder, "images/page.png") == (folder / "images" / "page.png").resolve()
    # a link that stays inside the folder is the file it points to
    assert resolve_inside(folder, "images/in.png") == (folder / "images" / "page.png").resolve()


@pytest.mark.parametrize(
    "relative",
    [
        "../outside.png",  # exists, an image, one level up
        "images/../../outside.png",
        "../../etc/passwd",
        "images/./page.png",
        "images//page.png",
        "/etc/passwd",
        "ABSOLUTE",  # the outside image by its absolute path
        "images\\..\\..\\outside.png",
        "images/out.png",  # a symbolic link out of the folder
        "images/fifo.png",
        "images/dir.png",
        "images/missing.png",
        "page.html",  # not an image type: would run script in the explorer's origin
        "images/page.svg",
        "",
    ],
)
def test_everything_else_is_refused(folder: Path, relative: str) -> None:
    if relative == "ABSOLUTE":
        relative = str(folder.parent / "outside.png")
        assert Path(relative).is_file()
    with pytest.raises(NotServed):
        resolve_inside(folder, relative)


def test_thumbnails_are_small_jpegs_made_in_memory(folder: Path) -> None:
    before = sorted(p.name for p in folder.rglob("*"))
    path = folder / "images" / "page.png"
    data = _thumbnail(path, path.stat().st_mtime_ns, (160, 220))
    assert data[:3] == b"\xff\xd8\xff"  # JPEG
    with Image.open(io.BytesIO(data)) as image:
        assert image.width <= 160 and image.height <= 220 and image.width > 0
    assert sorted(p.name for p in folder.rglob("*")) == before
