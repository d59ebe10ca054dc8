"""The on-disk shapes of MWS-Vision-Bench, each read into the same rows.

A row is the official schema (``id``, ``type``, ``dataset_name``, ``question``, ``answers``)
plus where its image is: bytes (the hub's ``Image`` feature), a file, or nothing. Shapes:

* ``parquet``: the dataset repository as ``huggingface-cli download`` leaves it
  (``data/train-00000-of-0000N.parquet``, image column ``{"bytes", "path"}``);
* ``arrow``: the cache ``datasets.load_dataset`` writes (``*.arrow``, Arrow IPC stream);
* ``saved``: a ``datasets`` ``save_to_disk`` folder (``state.json``, or a ``DatasetDict``'s
  ``dataset_dict.json`` with one folder per split);
* ``imagefolder``: an earlier revision of the repository, ``metadata.jsonl`` (``file_name``
  beside the official keys) and the image files;
* ``local``: the official runner's local mode (``--data_path`` JSON files, each a list of
  entries with ``image_path``, and the ``--base_path`` image folder).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmhyperbench.datasets.importers.common import (
    DatasetImportError,
    choose_split,
    read_json,
)

KEYS = ("id", "type", "dataset_name", "question", "answers")
REQUIRED = ("id", "type", "question", "answers")
ACCEPTED = (
    "accepted shapes: the dataset repository's parquet files (data/*.parquet), the arrow files "
    "of a load_dataset cache (*.arrow), a save_to_disk folder (state.json or dataset_dict.json), "
    "an image folder with metadata.jsonl, or the official runner's local mode (JSON files, each "
    "a list of entries with image_path, plus -o base_path=IMAGE_FOLDER)"
)
_BATCH = 16  # rows per Arrow batch: each row of the hub's files carries its page's bytes
_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-\d{5}-of-\d{5}$")
Batches = tuple[list[str], Iterator[list[dict[str, Any]]]]  # column names, then rows in batches


@dataclass(frozen=True)
class SourceRow:
    """One question as a shape holds it; ``where`` names its file and row for messages."""

    where: str
    values: dict[str, Any]
    image: bytes | Path | None


def detect(source: Path) -> tuple[str, list[Path]]:
    """The shape of ``source`` (a file or a folder) and the files to read, in order."""
    if source.is_file():
        kind = {".parquet": "parquet", ".arrow": "arrow", ".json": "local"}.get(source.suffix)
        if source.name == "metadata.jsonl":
            kind = "imagefolder"
        if kind is None:
            raise DatasetImportError(f"{source}: not a file of MWS-Vision-Bench; {ACCEPTED}")
        return kind, [source]
    if (source / "dataset_dict.json").is_file() or (source / "state.json").is_file():
        return "saved", [source]
    for kind, pattern in (
        ("parquet", "*.parquet"),
        ("arrow", "*.arrow"),
        ("imagefolder", "metadata.jsonl"),
    ):
        files = _visible(source, source.rglob(pattern))
        if files:
            return kind, files
    files = _visible(source, source.glob("*.json"))
    if files:
        return "local", files
    raise DatasetImportError(f"{source}: no MWS-Vision-Bench files found; {ACCEPTED}")


def _visible(root: Path, found: Iterator[Path]) -> list[Path]:
    """Files outside hidden folders (``huggingface-cli`` keeps its own ``.cache/`` there)."""
    return sorted(p for p in found if not any(s.startswith(".") for s in p.relative_to(root).parts))


def one_split(files: list[Path], split: str | None, source: Path) -> list[Path]:
    """Shard files (``<split>-00000-of-00001.parquet``) of one split: ``split``, or the only one."""
    splits = {f: m.group("split") if (m := _SHARD.match(f.stem)) else None for f in files}
    named = sorted({s for s in splits.values() if s})
    if split is None:
        if len(named) > 1:
            raise DatasetImportError(
                f"{source}: files of several splits {named}; choose one with -o hub_split=NAME"
            )
        return files
    chosen = [f for f, s in splits.items() if s == split]
    if not chosen:
        raise DatasetImportError(f"{source}: no files of split {split!r}; found splits {named}")
    return chosen


def read_rows(
    kind: str, files: list[Path], base_path: Path | None, split: str | None
) -> Iterator[SourceRow]:
    """Every row of the shape ``kind`` in ``files``, in file and row order."""
    if kind == "parquet":
        return _table_rows(one_split(files, split, files[0].parent), _parquet_batches)
    if kind == "arrow":
        return _table_rows(one_split(files, split, files[0].parent), _arrow_batches)
    if kind == "saved":
        return _table_rows(_saved_files(files[0], split), _arrow_batches)
    if kind == "imagefolder":
        return _imagefolder_rows(files)
    return _local_rows(files, base_path)


def _parquet_batches(path: Path) -> Batches:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise DatasetImportError(f"{path}: not a readable parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    wanted = [n for n in (*KEYS, "image") if n in names]
    batches = (b.to_pylist() for b in parquet.iter_batches(batch_size=_BATCH, columns=wanted))
    return names, batches


def _arrow_batches(path: Path) -> Batches:
    import pyarrow as pa

    try:
        reader: Any = pa.ipc.open_stream(pa.memory_map(str(path)))
    except pa.ArrowInvalid:
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
        except pa.ArrowInvalid as exc:
            raise DatasetImportError(f"{path}: not a readable Arrow file ({exc})") from None
    names = reader.schema.names
    if isinstance(reader, pa.ipc.RecordBatchFileReader):
        batches = (reader.get_batch(i).to_pylist() for i in range(reader.num_record_batches))
    else:
        batches = (batch.to_pylist() for batch in reader)
    return names, batches


def _table_rows(files: list[Path], open_batches: Callable[[Path], Batches]) -> Iterator[SourceRow]:
    for path in files:
        names, batches = open_batches(path)
        missing = [key for key in (*REQUIRED, "image") if key not in names]
        if missing:
            raise DatasetImportError(f"{path}: missing column(s) {missing}; the file has {names}")
        number = 0
        for batch in batches:
            for row in batch:
                image = _image_of(row.pop("image"), path)
                yield SourceRow(f"{path}: row {number}", row, image)
                number += 1


def _image_of(value: Any, table: Path) -> bytes | Path | None:
    """The ``Image`` feature's ``{"bytes", "path"}``: the bytes, else the file it names."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            path = Path(value["path"])
            return path if path.is_absolute() else table.parent / path
    return None


def _saved_files(folder: Path, split: str | None) -> list[Path]:
    """The Arrow files of a ``save_to_disk`` folder (of one split of a ``DatasetDict``)."""
    if (folder / "dataset_dict.json").is_file():
        splits = read_json(folder / "dataset_dict.json").get("splits", [])
        folder = folder / choose_split(splits, split, folder, "choose one with -o hub_split=NAME")
    state = read_json(folder / "state.json")
    try:
        return [folder / entry["filename"] for entry in state["_data_files"]]
    except (KeyError, TypeError):
        raise DatasetImportError(
            f"{folder / 'state.json'}: no _data_files list; not written by save_to_disk"
        ) from None


def _imagefolder_rows(files: list[Path]) -> Iterator[SourceRow]:
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetImportError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
            where = f"{path}:{number}"
            if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
                raise DatasetImportError(f"{where}: expected an object with a 'file_name'")
            yield SourceRow(where, row, path.parent / row.pop("file_name"))


def _local_rows(files: list[Path], base_path: Path | None) -> Iterator[SourceRow]:
    """The official local mode: image paths as its runner opens them, an absolute path as it
    is and a relative one under the image folder (``base_path``, default: the JSON's folder).
    A path written absolute that does not exist but does under the image folder (the form of
    the official README's example, ``/business/scans/…``) is read from there."""
    for path in files:
        entries = read_json(path)
        if not isinstance(entries, list):
            raise DatasetImportError(
                f"{path}: expected a JSON list of entries (the official runner's local mode), "
                f"got a JSON {type(entries).__name__}; {ACCEPTED}"
            )
        base = base_path if base_path is not None else path.parent
        for number, entry in enumerate(entries):
            where = f"{path}: entry {number}"
            if not isinstance(entry, dict):
                raise DatasetImportError(f"{where}: expected an object, got {entry!r:.60}")
            image_path = entry.pop("image_path", None)
            if not isinstance(image_path, str) or not image_path:
                raise DatasetImportError(f"{where}: key 'image_path' missing or empty")
            yield SourceRow(where, entry, _local_image(image_path, base))


def _local_image(image_path: str, base: Path) -> Path:
    written = Path(image_path)
    if written.is_absolute():
        under_base = base / image_path.lstrip("/")
        return written if written.exists() or not under_base.exists() else under_base
    return base / written
