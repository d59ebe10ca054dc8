"""Read the original VLMHyperBench CSVs (annotations, prompt collections): ``;``-separated,
utf-8 with or without BOM, or any other encoding (an Excel export on Russian Windows is
cp1251): given, or detected with charset-normalizer when the file is not utf-8. Every problem
names the file and line; a file that cannot be decoded is an error, never a traceback."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def csv_encoding(
    path: Path, encoding: str | None = None, error: type[ValueError] = ValueError
) -> str:
    """The encoding to read ``path`` with: ``encoding`` if given (checked to decode the whole
    file), else ``utf-8-sig`` when the file is utf-8, else the one charset-normalizer detects."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: not found") from None
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise error(f"{path}: unknown encoding {encoding!r}") from None
        # A BOM is not part of the first column's name.
        used = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        try:
            raw.decode(used)
        except UnicodeDecodeError as exc:
            raise error(
                f"{path}:{_line_of(raw, exc.start)}: not valid {encoding} "
                f"(byte 0x{raw[exc.start]:02x}); leave the encoding out to detect it"
            ) from None
        return used
    try:
        raw.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError as exc:
        bad = exc.start
    hint = (
        f"{path}:{_line_of(raw, bad)}: not utf-8 (byte 0x{raw[bad]:02x}); give the file's "
        "encoding, e.g. cp1251 for an Excel export on Russian Windows (`vlmhb dataset import "
        "… --encoding cp1251`, or `encoding: cp1251` in the importer's options)"
    )
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - it comes with requests
        raise error(hint) from None
    best = from_bytes(raw).best()
    if best is None:
        raise error(hint)
    return best.encoding


def read_csv_rows(
    path: Path,
    required: tuple[str, ...],
    delimiter: str = ";",
    error: type[ValueError] = ValueError,
    encoding: str | None = None,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a ``;``-separated CSV as (line number, {column: value}); the encoding as in
    :func:`csv_encoding`. A missing column or a row of the wrong width is an error naming
    the file and line."""
    text = path.read_bytes().decode(csv_encoding(path, encoding, error))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise error(f"{path}:1: empty file, expected a header row")
    header = [column.strip() for column in header]
    missing = [column for column in required if column not in header]
    if missing:
        raise error(
            f"{path}:1: missing column(s) {', '.join(missing)}; expected "
            f"{delimiter.join(required)}, got {delimiter.join(header)}"
        )
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise error(
                f"{path}:{reader.line_num}: expected {len(header)} columns "
                f"({delimiter!r}-separated), got {len(row)}"
            )
        yield reader.line_num, dict(zip(header, row, strict=True))
