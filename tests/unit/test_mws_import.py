"""The mws_vision importer: every on-disk shape of MWS-Vision-Bench gives the same manifest,
field by field as the metrics read it; bad input is refused naming the file, row and key."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fixtures.mws import shapes as fx
from vlmhyperbench.datasets.importers import DatasetImportError, import_dataset
from vlmhyperbench.datasets.manifest import read_manifest

pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each shape: (the path given to the importer, its options)."""
    root = tmp_path_factory.mktemp("mws_sources")
    hub = fx.hub_download(root / "hub")
    data, base = fx.local_mode(root / "local", root / "runner_cache")
    return {
        "hub download": (hub, {}),
        "parquet file": (hub / "data" / "train-00000-of-00001.parquet", {}),
        "load_dataset cache": (fx.load_dataset_cache(root / "cache", hub), {}),
        "save_to_disk": (fx.saved(root / "saved"), {}),
        "save_to_disk DatasetDict": (fx.saved(root / "saved_dict", as_dict=True), {}),
        "imagefolder": (fx.imagefolder(root / "imagefolder"), {}),
        "local JSON": (data, {"base_path": str(base)}),
        "local JSON folder": (data.parent, {"base_path": str(base)}),
    }


def _import(source: Path, out: Path, **options: Any):
    return import_dataset("mws_vision", source, out, name="mws_vision", options=options)


def _dataset(folder: Path) -> tuple[list[dict[str, Any]], bytes, dict[str, bytes]]:
    manifest = [sample.model_dump() for sample in read_manifest(folder)]
    images = {p.name: p.read_bytes() for p in (folder / "images").iterdir()}
    return manifest, (folder / "manifest.jsonl").read_bytes(), images


@pytest.fixture(scope="module")
def hub_import(sources, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("mws_hub") / "mws_vision"
    samples, report = _import(sources["hub download"][0], out)
    return out, {s.id: s for s in samples}, report


def test_every_shape_imports_into_the_same_manifest(sources, hub_import, tmp_path: Path) -> None:
    expected = _dataset(hub_import[0])
    assert len(expected[0]) == 9 and len(expected[2]) == 4
    for shape, (source, options) in sources.items():
        out = tmp_path / shape.replace(" ", "_")
        _, report = _import(source, out, **options)
        assert _dataset(out) == expected, shape
        assert not report.missing_images, shape
        assert any("'antifraud ru' left out" in w for w in report.warnings), shape


def test_fields_per_category(hub_import) -> None:
    out, samples, _ = hub_import
    assert sorted(samples, key=int) == [q[0] for q in fx.KEPT]
    for sample_id, kind, dataset_name, _, question, _ in fx.KEPT:
        sample = samples[sample_id]
        assert (sample.question, sample.question_type) == (question, kind)
        assert (sample.doc_class, sample.subset) == (dataset_name, "validation")
        assert sample.meta["mws"]["type"] == kind
        assert sample.meta["doc_id"] == Path(sample.images[0]).stem
        assert (out / sample.images[0]).is_file()
    ocr, md, ground, kie, vqa = (samples[i].meta["mws"] for i in ("1", "2", "3", "4", "5"))
    assert ocr == {"type": fx.OCR, "category": "ocr", "dataset_name": "business",
                   "answers": ["ДОГОВОР № 15\nг. Москва"]}  # fmt: skip
    assert md["category"] == "markdown" and md["answers"] == [fx.QUESTIONS[1][5][0]]
    assert ground["answers"] == ["398", "65", "467", "140"]
    assert ground["box"] == [398.0, 65.0, 467.0, 140.0]
    assert samples["7"].meta["mws"]["box"] == [10.5, 20.0, 30.25, 40.0]
    assert samples["3"].answers == ["[398, 65, 467, 140]"]
    assert kie["answers"] == ['{"номер договора": "15", "город": "Москва"}']
    assert kie["kie"] == {"номер договора": "15", "город": "Москва"}
    assert samples["9"].meta["mws"]["kie"] == {"товар": ["Бумага", "бумага"]}
    assert vqa["answers"] == ["15", "пятнадцать", "№ 15"] == samples["5"].answers
    # questions on one page share its doc_id; four pages in all
    assert samples["1"].meta["doc_id"] == samples["3"].meta["doc_id"] == samples["5"].meta["doc_id"]
    assert len({s.meta["doc_id"] for s in samples.values()}) == 4


def _page(folder: Path, samples: dict, sample_id: str) -> tuple[str, Image.Image, bytes]:
    path = folder / samples[sample_id].images[0]
    payload = path.read_bytes()
    return path.suffix, Image.open(io.BytesIO(payload)), payload


def test_pages_as_the_official_runner_sends_them(sources, hub_import, tmp_path: Path) -> None:
    out, samples, _ = hub_import
    pages = fx.page_bytes()
    scan_size, note_size = (Image.open(io.BytesIO(pages[p])).size for p in (fx.SCAN, fx.NOTE))
    suffix, scan, payload = _page(out, samples, "1")  # RGB JPEG: saved again as JPEG
    assert (suffix, scan.format, scan.size) == (".jpg", "JPEG", scan_size)
    assert payload != pages[fx.SCAN]
    suffix, table, _ = _page(out, samples, "2")  # RGBA stays PNG
    assert (suffix, table.mode) == (".png", "RGBA")
    suffix, note, _ = _page(out, samples, "6")  # turned upright by its EXIF orientation
    assert (suffix, note.size) == (".jpg", note_size[::-1]) and note_size[0] < note_size[1]
    suffix, scheme, _ = _page(out, samples, "8")  # greyscale PNG becomes JPEG
    assert (suffix, scheme.format, scheme.mode) == (".jpg", "JPEG", "L")
    original = tmp_path / "original"
    kept, _ = _import(sources["hub download"][0], original, images="original")
    kept_by_id = {s.id: s for s in kept}
    for sample_id, page in (("1", fx.SCAN), ("2", fx.TABLE), ("6", fx.NOTE), ("8", fx.SCHEME)):
        suffix, _, payload = _page(original, kept_by_id, sample_id)
        assert payload == pages[page] and suffix == Path(page).suffix
    assert _page(original, kept_by_id, "6")[1].size == note_size


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _rows(id: str, **changes: Any) -> list[dict[str, Any]]:
    """The hub rows, the row of ``id`` changed (``None`` drops a key)."""
    rows = fx.hub_rows()
    target = next(r for r in rows if r["id"] == id)
    for key, value in changes.items():
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    return rows


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "1", "answers": ["a", "b"]},
         r"train.parquet: row 0 \(id 1\): key 'answers' holds 2 references; a ocr question"),
        ({"id": "4", "answers": []}, r"row 3 \(id 4\): key 'answers' holds 0 references"),
        ({"id": "8", "question": None}, r"row 7: key 'question' missing"),
        ({"id": "5", "type": None}, r"row 4: key 'type' missing or not a string"),
        ({"id": "3", "image": {"bytes": b"not an image", "path": "x.jpg"}},
         r"row 2: image is not readable"),
    ],
)  # fmt: skip
def test_bad_rows_name_file_row_and_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    source = _write_parquet(tmp_path / "src" / "train.parquet", _rows(**changes))
    with pytest.raises(DatasetImportError, match=message):
        _import(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_id_used_twice_names_both_rows(tmp_path: Path) -> None:
    rows = fx.hub_rows()
    rows[1]["id"] = "1"
    source = _write_parquet(tmp_path / "src" / "train.parquet", rows)
    with pytest.raises(
        DatasetImportError, match=r"row 1: id '1' is used twice \(first at .*train.parquet: row 0\)"
    ):
        _import(source, tmp_path / "out")


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "answers"} for row in fx.hub_rows()]
    source = _write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", rows)
    with pytest.raises(DatasetImportError, match=r"train-00000-of-00001.parquet: missing column"):
        _import(tmp_path, tmp_path / "out")
    assert source.is_file()


def test_wrong_reference_types_are_refused(tmp_path: Path) -> None:
    source = _write_parquet(tmp_path / "a" / "t.parquet", _rows(id="1", answers=[""]))
    rows = fx.hub_rows()
    for row in rows:
        row["answers"] = json.dumps(row["answers"])  # a string column, not a list
    bad = _write_parquet(tmp_path / "b" / "t.parquet", rows)
    with pytest.raises(DatasetImportError, match=r"row 0 \(id 1\): key 'answers' is not a list"):
        _import(bad, tmp_path / "out")
    samples, _ = _import(source, tmp_path / "ok")  # an empty OCR reference is a reference
    assert next(s for s in samples if s.id == "1").meta["mws"]["answers"] == [""]


def test_local_json_references_and_errors(sources, tmp_path: Path) -> None:
    data, options = sources["local JSON"]
    entries = json.loads(data.read_text("utf-8"))
    cases = [
        ({"answers": [{"x": 1}]}, "1", r"entry 0 \(id 1\): answers\[0\] is a dict .* a ocr "
                                       r"reference is a string"),
        ({"answers": [[1, 2, 3, 4]]}, "3", r"entry 2 \(id 3\): answers\[0\] is a list"),
        ({"answers": [True]}, "5", r"entry 4 \(id 5\): answers\[0\] is a bool"),
        ({"image_path": ""}, "2", r"validation.json: entry 1: key 'image_path' missing or empty"),
    ]  # fmt: skip
    for change, sample_id, message in cases:
        changed = [dict(e, **change) if e["id"] == sample_id else e for e in entries]
        bad = tmp_path / f"case_{sample_id}" / "validation.json"
        bad.parent.mkdir()
        bad.write_text(json.dumps(changed, ensure_ascii=False), "utf-8")
        with pytest.raises(DatasetImportError, match=message):
            _import(bad, tmp_path / "out", **options)
    not_a_list = tmp_path / "dict.json"
    not_a_list.write_text('{"id": "1"}', "utf-8")
    with pytest.raises(DatasetImportError, match=r"dict.json: expected a JSON list of entries"):
        _import(not_a_list, tmp_path / "out", **options)


def test_local_json_kie_object_and_missing_page(sources, tmp_path: Path) -> None:
    data, options = sources["local JSON"]
    entries = json.loads(data.read_text("utf-8"))
    for entry in entries:
        if entry["id"] == "4":
            entry["answers"] = [{"номер договора": "15"}]
        if entry["id"] == "8":
            entry["image_path"] = "technical/lost.png"
    changed = tmp_path / "validation.json"
    changed.write_text(json.dumps(entries, ensure_ascii=False), "utf-8")
    samples, report = _import(changed, tmp_path / "out", **options)
    by_id = {s.id: s for s in samples}
    assert by_id["4"].meta["mws"]["answers"] == [{"номер договора": "15"}]  # kept an object
    assert by_id["4"].answers == ['{"номер договора": "15"}']
    assert report.missing_images == {"8": str(Path(options["base_path"]) / "technical/lost.png")}
    assert not (tmp_path / "out" / by_id["8"].images[0]).exists()


def test_not_a_box_and_not_json_are_warned(tmp_path: Path) -> None:
    rows = _rows(id="3", answers=["398", "65", "467"])
    next(r for r in rows if r["id"] == "4")["answers"] = ["{'город': 'Москва'}"]
    samples, report = _import(_write_parquet(tmp_path / "s" / "t.parquet", rows), tmp_path / "o")
    by_id = {s.id: s for s in samples}
    assert by_id["3"].meta["mws"]["box"] is None and by_id["4"].meta["mws"]["kie"] is None
    assert any("(id 3): answers ['398', '65', '467'] is not a box" in w for w in report.warnings)
    assert any("(id 4): the KIE reference is not JSON" in w for w in report.warnings)


def test_shapes_refused_and_splits_chosen(sources, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(
        DatasetImportError,
        match=r"empty: no MWS-Vision-Bench files found; "
        r"accepted shapes: the dataset repository",
    ):
        _import(tmp_path / "empty", tmp_path / "out")
    hub = sources["hub download"][0]
    with pytest.raises(DatasetImportError, match=r"options.base_path: only the official runner"):
        _import(hub, tmp_path / "out", base_path=str(tmp_path))
    two = tmp_path / "two" / "data"
    rows = fx.hub_rows()
    _write_parquet(two / "train-00000-of-00001.parquet", rows[:5])
    _write_parquet(two / "test-00000-of-00001.parquet", rows[5:])
    with pytest.raises(DatasetImportError, match=r"several splits \['test', 'train'\]"):
        _import(two.parent, tmp_path / "out")
    samples, _ = _import(two.parent, tmp_path / "out", hub_split="train")
    assert [s.id for s in samples] == ["1", "2", "3", "4", "5"]


def test_cli_imports_the_local_mode(sources, tmp_path: Path) -> None:
    data, options = sources["local JSON"]
    result = subprocess.run(
        [sys.executable, "-m", "vlmhyperbench.cli", "dataset", "import", "mws_vision", str(data),
         str(tmp_path / "out"), "-o", f"base_path={options['base_path']}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 9 samples" in result.stdout
    assert "1 question(s) of type 'antifraud ru' left out" in result.stdout
    info = json.loads((tmp_path / "out" / "dataset.json").read_text("utf-8"))
    assert info["import"]["format"] == "mws_vision"
