"""The original formats as users have them: an ``annotation.csv`` saved by Excel on Russian
Windows (cp1251, CRLF, no BOM) and the field-JSON shapes beside the documented one (flat
``{field: value}``, multi-page documents with one field file per page) import through the real
``vlmhb dataset import`` command, or are refused with a message that shows what is accepted,
never with a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import original_formats as fx
from vlmhyperbench.datasets.importers import DatasetImportError, import_dataset
from vlmhyperbench.datasets.manifest import read_manifest

ROWS = [
    "0;test;images/0.jpg;Какая фамилия?;ИВАНОВ;passport;surname;[10, 20, 30, 40]",
    "1;test;1.jpg;Кем выдан?;ГУ МВД России по г. Москве;passport;issuer;",
]


def _import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlmhyperbench.cli", "dataset", "import", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _excel_csv(root: Path) -> Path:
    fx.vqa_csv(root)  # the images
    text = "\r\n".join([fx.VQA_HEADER, *ROWS]) + "\r\n"
    (root / "annotation.csv").write_bytes(text.encode("cp1251"))
    return root


def test_a_cp1251_excel_export_is_detected_and_imported(tmp_path: Path) -> None:
    source = _excel_csv(tmp_path / "src")
    result = _import("vqa_csv", str(source), str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 2 samples" in result.stdout
    assert "read as cp1251" in result.stdout  # the detected encoding is said
    samples = read_manifest(tmp_path / "out")
    assert [s.question for s in samples] == ["Какая фамилия?", "Кем выдан?"]
    assert samples[1].answers == ["ГУ МВД России по г. Москве"]

    # Or told: the same manifest.
    result = _import("vqa_csv", str(source), str(tmp_path / "told"), "--encoding", "cp1251")
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_manifest(tmp_path / "told") == samples


def test_a_wrong_encoding_is_a_message_naming_file_and_line(tmp_path: Path) -> None:
    source = _excel_csv(tmp_path / "src")
    result = _import("vqa_csv", str(source), str(tmp_path / "out"), "--encoding", "utf-8")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "annotation.csv:2: not valid utf-8 (byte 0xca)" in result.stdout
    assert not (tmp_path / "out").exists()
    result = _import("vqa_csv", str(source), str(tmp_path / "out"), "--encoding", "klingon")
    assert result.returncode == 1 and "unknown encoding 'klingon'" in result.stdout


def _flat_and_multipage(root: Path) -> Path:
    fx.image(root / "images" / "7.jpg", "snils 7")
    (root / "jsons").mkdir(parents=True)
    flat = {"Полное имя": "ПЕТРОВ ПЁТР", "Номер": "112-233-445 95", "Страниц": 1}
    (root / "jsons" / "7.json").write_text(json.dumps(flat, ensure_ascii=False), "utf-8")
    # A two-page document: page 1 documented, page 2 flat; images/doc/1.jpg, 2.png.
    fx.image(root / "images" / "doc" / "1.jpg", "page 1")
    fx.image(root / "images" / "doc" / "2.png", "page 2")
    (root / "jsons" / "doc").mkdir()
    page1 = {"fields": {"ФИО": {"value": "ИВАНОВ И.И.", "bboxes": [[1, 2, 3, 4]]}}}
    (root / "jsons" / "doc" / "1.json").write_text(json.dumps(page1, ensure_ascii=False), "utf-8")
    page2 = {"ИНН": "7707083893"}
    (root / "jsons" / "doc" / "2.json").write_text(json.dumps(page2, ensure_ascii=False), "utf-8")
    return root


def test_flat_and_multi_page_field_json_are_imported(tmp_path: Path) -> None:
    source = _flat_and_multipage(tmp_path / "src")
    result = _import("field_json", str(source), str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout.lower()  # the page images are not "unmatched"
    by_id = {s.id: s for s in read_manifest(tmp_path / "out")}
    assert sorted(by_id) == ["7", "doc"]
    flat = by_id["7"]
    assert flat.images == ["images/7.jpg"]
    assert json.loads(flat.answers[0]) == {
        "Полное имя": "ПЕТРОВ ПЁТР", "Номер": "112-233-445 95", "Страниц": "1",
    }  # fmt: skip
    assert flat.meta["bboxes"] == {"Полное имя": None, "Номер": None, "Страниц": None}
    doc = by_id["doc"]
    assert doc.images == ["images/doc/1.jpg", "images/doc/2.png"]  # the pages, in order
    assert json.loads(doc.answers[0]) == {"ФИО": "ИВАНОВ И.И.", "ИНН": "7707083893"}
    assert doc.meta["field_pages"] == {"ФИО": 1, "ИНН": 2}
    assert doc.meta["bboxes"]["ФИО"] == [[1, 2, 3, 4]]
    assert (tmp_path / "out" / "images" / "doc" / "2.png").is_file()

    samples, _ = import_dataset("field_json", source, tmp_path / "vqa", name="x",
                                options={"kind": "vqa"})  # fmt: skip
    doc_questions = [s for s in samples if s.id.startswith("doc-")]
    assert [s.answers for s in doc_questions] == [["ИВАНОВ И.И."], ["7707083893"]]
    assert all(len(s.images) == 2 for s in doc_questions)


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        ([{"name": "x"}], "a JSON list"),
        ({"ФИО": {"text": "x"}}, "key 'ФИО' holds a dict"),
        ({"fields": ["x"]}, "'fields' is not an object"),
    ],
)
def test_other_shapes_are_refused_showing_the_accepted_ones(
    tmp_path: Path, payload: object, what: str
) -> None:
    source = _flat_and_multipage(tmp_path / "src")
    (source / "jsons" / "7.json").write_text(json.dumps(payload, ensure_ascii=False), "utf-8")
    with pytest.raises(DatasetImportError) as refused:
        import_dataset("field_json", source, tmp_path / "out", name="x")
    message = str(refused.value)
    assert f"7.json: not a field-JSON document ({what})" in message
    for shape in ("documented:", '{"fields": {"<name>": {"value"', "flat:", "multi-page:"):
        assert shape in message
    result = _import("field_json", str(source), str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "accepted shapes" in result.stdout and "[[x0, y0, x1, y1]]" in result.stdout


def test_a_field_with_two_values_in_one_document_is_refused(tmp_path: Path) -> None:
    source = _flat_and_multipage(tmp_path / "src")
    (source / "jsons" / "doc" / "2.json").write_text('{"ФИО": "ПЕТРОВ"}', "utf-8")
    with pytest.raises(DatasetImportError, match=r"2.json: field 'ФИО' is 'ПЕТРОВ' here and"):
        import_dataset("field_json", source, tmp_path / "out", name="x")


def test_a_field_json_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    source = _flat_and_multipage(tmp_path / "src")
    (source / "jsons" / "7.json").write_bytes('{\n"ФИО": "ИВАНОВ"}'.encode("cp1251"))
    result = _import("field_json", str(source), str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "7.json:2: not utf-8 (byte 0xd4); JSON files must be utf-8" in result.stdout
