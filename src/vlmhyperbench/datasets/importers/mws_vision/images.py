"""Page images placed in the dataset, named by their content.

``official`` (the default) writes each page as the official runner sends it when it reads the
dataset from the hub (``src/utils/dataset_loader.py``, ``_convert_hf_to_list``): the image is
decoded as ``datasets``' ``Image`` feature decodes it (turned upright by its EXIF orientation,
when it has one) and saved again with Pillow's defaults, as PNG for the modes RGBA, LA and P and
as JPEG for every other. The models on the published leaderboard saw these files. ``original``
keeps the bytes as the source holds them (what the official runner's local mode sends).

A file is named by the sha256 of the bytes written (16 hex digits), so the pages of every
on-disk shape land under the same names, and a page's name is its ``doc_id``.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Literal

from vlmhyperbench.datasets.importers.common import IMAGES_DIR, DatasetImportError

ImageMode = Literal["official", "original"]
_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}


class PageWriter:
    """Writes pages under ``images/`` of the dataset being built, each distinct page once."""

    def __init__(self, staging: Path, mode: ImageMode) -> None:
        self.folder = staging / IMAGES_DIR
        self.mode = mode
        self._written: dict[str, str] = {}  # sha256 of the source bytes -> manifest path

    def add(self, source: bytes, where: str) -> str:
        """The manifest path (``images/<sha256[:16]>.<ext>``) of the page ``source``."""
        key = hashlib.sha256(source).hexdigest()
        if key not in self._written:
            payload, suffix = self._encode(source, where)
            name = hashlib.sha256(payload).hexdigest()[:16] + suffix
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / name).write_bytes(payload)
            self._written[key] = f"{IMAGES_DIR}/{name}"
        return self._written[key]

    def _encode(self, source: bytes, where: str) -> tuple[bytes, str]:
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(source))
            image.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetImportError(f"{where}: image is not readable ({exc})") from None
        if self.mode == "original":
            if image.format not in _SUFFIX:
                raise DatasetImportError(
                    f"{where}: image format {image.format} is not one a model request carries"
                )
            return source, _SUFFIX[image.format]
        if image.getexif().get(Image.ExifTags.Base.Orientation) is not None:
            image = ImageOps.exif_transpose(image)
        target = "PNG" if image.mode in ("RGBA", "LA", "P") else "JPEG"
        buffer = io.BytesIO()
        try:
            image.save(buffer, format=target)
        except OSError as exc:
            raise DatasetImportError(
                f"{where}: the official runner's {target} copy of this image cannot be "
                f"written ({exc}); import with -o images=original"
            ) from None
        return buffer.getvalue(), _SUFFIX[target]


def page_id(manifest_path: str) -> str:
    """The ``doc_id`` of a page: its file name without the suffix (the content hash)."""
    return Path(manifest_path).stem
