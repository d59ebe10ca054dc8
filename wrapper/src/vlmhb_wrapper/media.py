"""Turning ``image_url`` values into checked images, under a deny-by-default policy.

Accepted sources:

* ``data:image/<fmt>;base64,<payload>`` - always;
* ``file://`` URLs - only when they resolve (symlinks followed) inside one of the configured
  ``allowed_roots``; a path with a ``..`` segment is refused outright, and the file is opened
  without following a final symlink and checked again through ``/proc/self/fd`` (so a path
  swapped for a symlink between the check and the open cannot escape);
* ``http(s)://`` URLs - only when remote fetching is enabled (off by default: a benchmark
  client already holds the bytes, and a server fetching URLs for clients is an SSRF vector),
  and then only from public addresses, or private ones the operator named
  (:mod:`vlmhb_wrapper.remote_media`); a refusal or a failed fetch says only that the URL is
  not allowed or could not be fetched, never why at the socket level.

Limits are enforced before work is done: the byte size before decoding base64 / reading a
file / while downloading; the pixel count of each image and of all images of a request from
the image *headers*, before any pixel data is decoded (a decompression bomb, or many large
images in a small request, is refused without being inflated: every header of a request is
checked before its first image is decoded). All are HTTP 413 naming the limit and the
``vlmhb-wrapper serve`` flag that sets it; any other problem is a 400 with a message that says
what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError

from vlmhb_wrapper.backends.base import ImageSegment
from vlmhb_wrapper.errors import InvalidRequestError, PayloadTooLargeError
from vlmhb_wrapper.remote_media import PrivateHosts, RemoteOpener, URLNotAllowed

__all__ = ["MediaLimits", "MediaLoader"]

logger = logging.getLogger(__name__)

_PARAM = "messages.content.image_url"
_MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


@dataclass(frozen=True)
class MediaLimits:
    max_image_bytes: int = 20 * 1024 * 1024  # --max-image-bytes
    max_image_pixels: int = 50_000_000  # --max-image-pixels: one image (width x height)
    max_request_pixels: int = 100_000_000  # --max-request-pixels: all images of a request
    remote_timeout_s: float = 10.0


@dataclass(frozen=True)
class _Probed:
    """An image's bytes and what its header says, before any pixel is decoded."""

    data: bytes
    keep_url: bool
    width: int
    height: int
    format: str | None


@dataclass(frozen=True)
class MediaLoader:
    """Resolves, checks and (optionally) decodes image URLs under the configured policy."""

    allowed_media_roots: Sequence[Path] = ()
    limits: MediaLimits = field(default_factory=MediaLimits)
    allow_remote: bool = False
    # --allow-private-media-hosts: names, IPs, CIDRs remote fetching may reach although private
    allowed_private_hosts: Sequence[str] = ()
    _remote: RemoteOpener = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roots = tuple(Path(r).expanduser().resolve() for r in self.allowed_media_roots)
        object.__setattr__(self, "allowed_media_roots", roots)
        private_hosts = PrivateHosts.parse(self.allowed_private_hosts)
        remote = RemoteOpener(private_hosts, timeout_s=self.limits.remote_timeout_s)
        object.__setattr__(self, "_remote", remote)

    def load(self, url: str, *, decode: bool = True) -> ImageSegment:
        """Check the image at ``url``; with ``decode`` also return it as an RGB PIL image.

        Raises :class:`InvalidRequestError` (400) or :class:`PayloadTooLargeError` (413).
        """
        return self.load_many([url], decode=decode)[0]

    def load_many(self, urls: Sequence[str], *, decode: bool = True) -> list[ImageSegment]:
        """The images of one request: every one is read and its header checked (bytes, pixels
        per image, pixels of the request so far) before the first is decoded."""
        probed: list[_Probed] = []
        total = 0
        for index, url in enumerate(urls, start=1):
            image = self._probe(url)
            total += image.width * image.height
            if total > self.limits.max_request_pixels:
                raise PayloadTooLargeError(
                    f"the request's images have {total} pixels after image {index} of "
                    f"{len(urls)} ({image.width}x{image.height}); limit is "
                    f"{self.limits.max_request_pixels} pixels per request "
                    "(set with --max-request-pixels); nothing was decoded",
                    param=_PARAM,
                    code="request_pixels_too_large",
                )
            probed.append(image)
        segments = []
        for image, url in zip(probed, urls, strict=True):
            decoded = self._decode(image.data) if decode else None
            data_url = url if image.keep_url else _to_data_url(image.data, image.format)
            segments.append(
                ImageSegment(
                    data_url=data_url, width=image.width, height=image.height, image=decoded
                )
            )
        return segments

    def _probe(self, url: str) -> _Probed:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            data, keep_url = self._read_data_url(url), True
        elif scheme == "file":
            data, keep_url = self._read_file_url(url), False
        elif scheme in ("http", "https"):
            if not self.allow_remote:
                raise _bad(
                    "remote image URLs (http/https) are disabled on this server; send a data: URL",
                    code="remote_media_disabled",
                )
            data, keep_url = self._fetch(url), False
        else:
            raise _bad("image_url must be a data: URL (base64) or a file:// URL")
        width, height, fmt = self._check_header(data)
        return _Probed(data, keep_url, width, height, fmt)

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
        if any(c in payload for c in " \t\r\n"):
            payload = "".join(payload.split())  # tolerate line breaks in the base64 text
        if len(payload) * 3 // 4 > self.limits.max_image_bytes + 3:
            raise _too_large(
                f"image has about {len(payload) * 3 // 4} bytes, {self._bytes_limit()}"
            )
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad(f"invalid base64 in data: URL ({exc})") from None

    def _read_file_url(self, url: str) -> bytes:
        if not self.allowed_media_roots:
            raise _bad(
                "file:// image URLs are disabled on this server (no allowed media roots)",
                code="media_path_forbidden",
            )
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise _bad(f"file:// URL must refer to the local host, got host {parts.netloc!r}")
        raw_path = Path(url2pathname(unquote(parts.path)))
        if ".." in raw_path.parts:
            raise _bad(
                f"image path {raw_path} contains '..'; give the path inside an allowed root",
                code="media_path_forbidden",
            )
        try:
            path = raw_path.resolve(strict=True)
        except FileNotFoundError:
            raise _bad(f"image file not found: {raw_path}", code="image_not_found") from None
        except (OSError, RuntimeError) as exc:  # permission, symlink loop, ...
            raise _bad(f"cannot access image file {raw_path}: {exc}") from None
        self._require_inside_roots(path, raw_path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise _bad(f"cannot open image file {raw_path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            proc_link = f"/proc/self/fd/{handle.fileno()}"
            if os.path.exists(proc_link):  # Linux: what was actually opened
                self._require_inside_roots(Path(os.readlink(proc_link)), raw_path)
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _bad(f"image path is not a regular file: {raw_path}")
            if info.st_size > self.limits.max_image_bytes:
                raise _too_large(f"image file has {info.st_size} bytes, {self._bytes_limit()}")
            data = handle.read(self.limits.max_image_bytes + 1)
        if len(data) > self.limits.max_image_bytes:
            raise _too_large(f"image file is too large: {self._bytes_limit()}")
        return data

    def _require_inside_roots(self, path: Path, shown: Path) -> None:
        if not any(path.is_relative_to(root) for root in self.allowed_media_roots):
            raise _bad(
                f"image file {shown} is outside the allowed media roots",
                code="media_path_forbidden",
            )

    def _fetch(self, url: str) -> bytes:
        limit = self.limits.max_image_bytes
        try:
            with self._remote.open(url) as response:
                if response.status_code != 200:
                    raise _fetch_failed(url, f" (HTTP {response.status_code})")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise _too_large(f"remote image has {declared} bytes, {self._bytes_limit()}")
                buf = bytearray()
                for chunk in response.iter_bytes():
                    buf += chunk
                    if len(buf) > limit:
                        raise _too_large(f"remote image is too large: {self._bytes_limit()}")
                return bytes(buf)
        except URLNotAllowed:
            raise _bad(f"image URL not allowed: {url}", code="image_url_not_allowed") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            # The cause (refused, timed out, unresolvable...) is for the operator's log only:
            # told to the client it would make this server a port scanner.
            logger.info("could not fetch image URL %s: %s: %s", url, type(exc).__name__, exc)
            raise _fetch_failed(url) from None

    # ----------------------------------------------------------------------------- decoding

    def _check_header(self, data: bytes) -> tuple[int, int, str | None]:
        """Size and format from the header, and the file's structure (checksums), without
        decoding pixel data."""
        if len(data) > self.limits.max_image_bytes:
            raise _too_large(f"image has {len(data)} bytes, {self._bytes_limit()}")
        if not data:
            raise _bad("image data is empty", code="invalid_image")
        # Image.open reads the header only.
        with self._pillow_errors(), Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            fmt = probe.format
            self._check_pixels(width, height)
            probe.verify()  # structure and checksums, without decoding pixels
        return width, height, fmt

    def _decode(self, data: bytes) -> Image.Image:
        # verify() leaves the probed image unusable; reopen and decode for real.
        with self._pillow_errors(), Image.open(io.BytesIO(data)) as img:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return img.convert("RGB")

    @contextlib.contextmanager
    def _pillow_errors(self) -> Iterator[None]:
        try:
            with warnings.catch_warnings():
                # Our own pixel limit is the policy; Pillow's hard DecompressionBombError
                # (at 2x its MAX_IMAGE_PIXELS) still applies and is reported the same way.
                # Pillow's other warnings (corrupt EXIF/TIFF tags) would only flood the log.
                warnings.simplefilter("ignore")
                yield
        except (InvalidRequestError, PayloadTooLargeError):
            raise
        except Image.DecompressionBombError:
            raise _too_large(
                f"image has too many pixels (limit {self.limits.max_image_pixels}, "
                "set with --max-image-pixels)"
            ) from None
        except UnidentifiedImageError:
            raise _bad(
                "cannot identify image file: the data is not a supported image format",
                code="invalid_image",
            ) from None
        except Exception as exc:  # Pillow raises many types on hostile input: the input's fault
            raise _bad(f"corrupt or truncated image: {exc}", code="invalid_image") from None

    def _check_pixels(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise _bad(f"image has invalid size {width}x{height}", code="invalid_image")
        if width * height > self.limits.max_image_pixels:
            raise _too_large(
                f"image is {width}x{height} = {width * height} pixels, "
                f"limit is {self.limits.max_image_pixels} (set with --max-image-pixels)"
            )

    def _bytes_limit(self) -> str:
        return f"limit is {self.limits.max_image_bytes} bytes (set with --max-image-bytes)"


def _to_data_url(data: bytes, fmt: str | None) -> str:
    mime = _MIME.get(fmt or "", "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _bad(message: str, *, code: str | None = "invalid_image_url") -> InvalidRequestError:
    return InvalidRequestError(message, param=_PARAM, code=code)


def _fetch_failed(url: str, detail: str = "") -> InvalidRequestError:
    return _bad(f"could not fetch image URL: {url}{detail}", code="image_url_fetch_failed")


def _too_large(message: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(message, param=_PARAM, code="image_too_large")
