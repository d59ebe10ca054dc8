"""Reading a sample's image file: only regular files are ever opened.

A path that is a directory, a FIFO, a device, a dangling symbolic link or unreadable is an
``ImageError`` naming the path and what it is, never a crash and never a blocked read (a FIFO
is not opened; a file swapped for one between the check and the open is opened non-blocking
and refused).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class ImageError(ValueError):
    """One image cannot be read; the message names the path and why."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_image(path: str | os.PathLike[str]) -> BinaryIO:
    """Open an image file for reading, if it is a regular file; else ``ImageError``."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        dangling = " (a dangling symbolic link)" if path.is_symlink() else ""
        raise ImageError(f"image not found: {path}{dangling}") from None
    except OSError as exc:
        raise ImageError(f"image unreadable: {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"image is {_kind(info.st_mode)}, not a file: {path}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageError(f"image unreadable: {path}: {exc.strerror or exc}") from None
    handle = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # replaced between the check and the open
        handle.close()
        raise ImageError(f"image is {_kind(mode)}, not a file: {path}")
    return handle


def read_image(path: str | os.PathLike[str]) -> bytes:
    with open_image(path) as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise ImageError(f"image unreadable: {path}: {exc.strerror or exc}") from None
