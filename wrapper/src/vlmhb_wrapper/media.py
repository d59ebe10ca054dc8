"""Turning ``image_url`` values into validated RGB PIL images.

Accepted: ``data:image/<fmt>;base64,<payload>`` and ``file://`` URLs that resolve (symlinks
followed) inside one of the configured ``allowed_media_roots``. Remote ``http(s)`` URLs are
refused: the server has no business fetching from the network on a client's behalf, and in a
benchmark the client already holds the bytes.

Every failure is an :class:`~vlmhb_wrapper.errors.InvalidRequestError` (HTTP 400) with a
message that says what was wrong. Limits are enforced as early as possible: the byte size
before decoding base64 / reading the file, and the pixel count from the image header before
any pixel data is decoded (a decompression bomb is refused without inflating it).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from PIL import Image, ImageOps, UnidentifiedImageError

from vlmhb_wrapper.errors import InvalidRequestError

__all__ = ["MediaLimits", "MediaLoader"]

_PARAM = "messages.content.image_url"


@dataclass(frozen=True)
class MediaLimits:
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000


@dataclass(frozen=True)
class MediaLoader:
    """Resolves and decodes image URLs under the configured policy."""

    allowed_media_roots: Sequence[Path] = ()
    limits: MediaLimits = field(default_factory=MediaLimits)

    def __post_init__(self) -> None:
        roots = tuple(Path(r).expanduser().resolve() for r in self.allowed_media_roots)
        object.__setattr__(self, "allowed_media_roots", roots)

    def load(self, url: str) -> Image.Image:
        """Return the image at ``url`` as a fully decoded RGB image, or raise a 400 error."""
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            data = self._read_data_url(url)
        elif scheme == "file":
            data = self._read_file_url(url)
        elif scheme in ("http", "https"):
            raise _bad("remote image URLs (http/https) are not supported; send a data: URL")
        else:
            raise _bad("image_url must be a data: URL (base64) or a file:// URL")
        return self._decode(data)

    # ------------------------------------------------------------------------------ sources

    def _read_data_url(self, url: str) -> bytes:
        header, sep, payload = url.partition(",")
        if not sep:
            raise _bad("malformed data: URL (missing ',')")
        meta = header[len("data:") :].split(";")
        if "base64" not in (m.strip().lower() for m in meta[1:]):
            raise _bad("data: URL must be base64-encoded (data:image/png;base64,...)")
        media_type = meta[0].strip().lower()
        if media_type and not media_type.startswith("image/"):
            raise _bad(f"data: URL media type must be image/*, got {media_type!r}")
        payload = "".join(payload.split())  # tolerate line breaks in the base64 text
        if len(payload) * 3 // 4 > self.limits.max_image_bytes + 3:
            raise _too_large(f"image exceeds the limit of {self.limits.max_image_bytes} bytes")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad(f"invalid base64 in data: URL ({exc})") from None

    def _read_file_url(self, url: str) -> bytes:
        if not self.allowed_media_roots:
            raise _bad("file:// image URLs are disabled on this server (no allowed media roots)")
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise _bad(f"file:// URL must refer to the local host, got host {parts.netloc!r}")
        raw_path = Path(url2pathname(unquote(parts.path)))
        try:
            path = raw_path.resolve(strict=True)
        except FileNotFoundError:
            raise _bad(f"image file not found: {raw_path}", code="image_not_found") from None
        except (OSError, RuntimeError) as exc:  # permission, symlink loop, ...
            raise _bad(f"cannot access image file {raw_path}: {exc}") from None
        if not any(path.is_relative_to(root) for root in self.allowed_media_roots):
            raise _bad(
                f"image file {raw_path} is outside the allowed media roots",
                code="media_path_forbidden",
            )
        if not path.is_file():
            raise _bad(f"image path is not a regular file: {raw_path}")
        size = path.stat().st_size
        if size > self.limits.max_image_bytes:
            raise _too_large(f"image file has {size} bytes, limit is {self.limits.max_image_bytes}")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise _bad(f"cannot read image file {raw_path}: {exc}") from None

    # ----------------------------------------------------------------------------- decoding

    def _decode(self, data: bytes) -> Image.Image:
        if len(data) > self.limits.max_image_bytes:
            raise _too_large(f"image has {len(data)} bytes, limit is {self.limits.max_image_bytes}")
        if not data:
            raise _bad("image data is empty", code="invalid_image")
        try:
            with warnings.catch_warnings():
                # Our own pixel limit below is the policy; Pillow's hard DecompressionBombError
                # (at 2x its MAX_IMAGE_PIXELS) still applies and is reported the same way.
                # Pillow's other warnings (corrupt EXIF/TIFF tags) would only flood the log.
                warnings.simplefilter("ignore")
                # 1) Header only: Image.open does not decode pixel data.
                with Image.open(io.BytesIO(data)) as probe:
                    self._check_pixels(probe.size)
                    probe.verify()  # structural check (CRCs, truncation for some formats)
                # 2) verify() leaves the image unusable; reopen and decode for real.
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    img = ImageOps.exif_transpose(img) or img
                    return img.convert("RGB")
        except InvalidRequestError:
            raise
        except Image.DecompressionBombError:
            raise _too_large(
                f"image has too many pixels (limit {self.limits.max_image_pixels})"
            ) from None
        except UnidentifiedImageError:
            raise _bad(
                "cannot identify image file: the data is not a supported image format",
                code="invalid_image",
            ) from None
        except (
            Exception
        ) as exc:  # Pillow raises many types on hostile input; all are the input's fault
            raise _bad(f"corrupt or truncated image: {exc}", code="invalid_image") from None

    def _check_pixels(self, size: tuple[int, int]) -> None:
        width, height = size
        if width <= 0 or height <= 0:
            raise _bad(f"image has invalid size {width}x{height}", code="invalid_image")
        if width * height > self.limits.max_image_pixels:
            raise _too_large(
                f"image is {width}x{height} = {width * height} pixels, "
                f"limit is {self.limits.max_image_pixels}"
            )


def _bad(message: str, *, code: str | None = "invalid_image_url") -> InvalidRequestError:
    return InvalidRequestError(message, param=_PARAM, code=code)


def _too_large(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=_PARAM, code="image_too_large")
