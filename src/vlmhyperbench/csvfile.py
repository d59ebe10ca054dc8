"""Read the original VLMHyperBench CSVs (annotations, prompt collections): ``;``-separated,
utf-8 with or without BOM; every problem names the file and line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path


def read_csv_rows(
    path: Path,
    required: tuple[str, ...],
    delimiter: str = ";",
    error: type[ValueError] = ValueError,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a ``;``-separated utf-8 (BOM or not) CSV as (line number, {column: value});
    a missing column or a row of the wrong width is an error naming the file and line."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise error(f"{path}: not found") from None
    with handle:
        reader = csv.reader(handle, delimiter=delimiter)
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
