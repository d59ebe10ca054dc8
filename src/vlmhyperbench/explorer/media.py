"""Sample images, served only from the dataset folders of the run's manifests.

A request names a dataset and a path inside its folder. It is served only when the dataset is
one the run read (its folder found), the path is relative and plain (no ``..``, ``.`` or empty
part, no backslash, not absolute), its suffix is an image type browsers display (never SVG or
HTML, which could run script in the explorer's origin), it resolves (symbolic links followed)
to a regular file inside that folder, and it opens as a regular file. Anything else is
:class:`NotServed` (the router answers 404). Thumbnails are made in memory, never written.
"""

from __future__ import annotations

import base64
import io
import os
import stat
from functools import lru_cache
from pathlib import Path, PurePosixPath

from PIL import Image

from vlmhyperbench.datasets.images import ImageError, read_image
from vlmhyperbench.explorer.datasets import Datasets

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
THUMBNAIL_SIZE = (160, 220)
THUMBNAIL_CACHE = 2048  # thumbnails kept in memory (about 10 kB each)


class NotServed(LookupError):
    """The path is not a servable image of the run's datasets."""


def plain_relative(relative: str) -> PurePosixPath:
    """``relative`` as a path inside a folder, or :class:`NotServed`."""
    parts = relative.split("/")
    if (
        not relative
        or "\\" in relative
        or "\0" in relative
        or relative.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise NotServed(relative)
    path = PurePosixPath(relative)
    if path.suffix.lower() not in IMAGE_TYPES:
        raise NotServed(relative)
    return path


def resolve_inside(folder: Path, relative: str) -> Path:
    """The regular file ``relative`` names inside ``folder`` (resolved), or :class:`NotServed`:
    a symbolic link that leads out of the folder is refused like ``..``."""
    path = plain_relative(relative)
    root = folder.resolve()
    try:
        resolved = (root / path).resolve(strict=True)
        mode = os.stat(resolved).st_mode
    except (OSError, RuntimeError):
        raise NotServed(relative) from None
    if not resolved.is_relative_to(root) or not stat.S_ISREG(mode):
        raise NotServed(relative)
    return resolved


@lru_cache(maxsize=THUMBNAIL_CACHE)
def _thumbnail(path: Path, mtime_ns: int, size: tuple[int, int]) -> bytes:
    """A JPEG no larger than ``size``; keyed on the file's mtime so a changed file is redone."""
    with Image.open(io.BytesIO(read_image(path))) as image:
        image.draft("RGB", size)  # JPEG: decode at a reduced scale
        image.thumbnail(size)
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()


class Media:
    """The images of the run's datasets, by dataset name and relative path."""

    def __init__(self, datasets: Datasets) -> None:
        self.datasets = datasets

    def path(self, dataset: str, relative: str) -> Path:
        folder = self.datasets.folders.get(dataset)
        if folder is None:
            raise NotServed(dataset)
        return resolve_inside(folder, relative)

    def original(self, dataset: str, relative: str) -> tuple[bytes, str]:
        """The file's bytes and media type."""
        path = self.path(dataset, relative)
        try:
            return read_image(path), IMAGE_TYPES[path.suffix.lower()]
        except ImageError:
            raise NotServed(relative) from None

    def thumbnail(self, dataset: str, relative: str) -> bytes:
        path = self.path(dataset, relative)
        try:
            return _thumbnail(path, path.stat().st_mtime_ns, THUMBNAIL_SIZE)
        except (ImageError, OSError, ValueError, Image.DecompressionBombError):
            raise NotServed(relative) from None

    def thumbnail_data_uri(self, dataset: str, relative: str) -> str | None:
        """The thumbnail as a ``data:`` URL (for a self-contained page); None where not served."""
        try:
            data = self.thumbnail(dataset, relative)
        except NotServed:
            return None
        return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
