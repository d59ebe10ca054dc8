"""Importers of the original formats: manifests checked field by field, malformed input named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import original_formats as fx
from vlmhyperbench.datasets.importers import DatasetImportError, import_dataset
from vlmhyperbench.datasets.manifest import read_manifest


def test_vqa_csv_manifest_field_by_field(tmp_path: Path) -> None:
    source = fx.vqa_csv(tmp_path / "src")
    samples, report = import_dataset("vqa_csv", source, tmp_path / "out", name="vqa")
    assert [s.model_dump() for s in read_manifest(tmp_path / "out")] == [
        s.model_dump() for s in samples
    ]
    first, second, third = samples
    assert first.id == "0-1" and second.id == "0-2" and third.id == "1"  # data_index repeats
    assert first.images == ["images/0.jpg"] and third.images == ["images/1.jpg"]
    assert first.question == "Какая фамилия?" and first.answers == ["ИВАНОВ"]
    assert first.doc_class == "passport" and first.question_type == "surname"
    assert first.meta["answer_bbox"] == "[10, 20, 30, 40]" and first.meta["split"] == "test"
    assert first.meta["source_line"] == 2 and third.meta["source_line"] == 4
    assert (tmp_path / "out" / "images" / "0.jpg").is_file()
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert set(info["files"]) >= {"images/0.jpg", "images/1.jpg", "manifest.jsonl"}
    assert info["import"]["format"] == "vqa_csv" and not report.missing_images


def test_vqa_csv_missing_column(tmp_path: Path) -> None:
    source = fx.vqa_csv(tmp_path / "src", header=fx.VQA_HEADER.replace(";question_type", ""))
    with pytest.raises(
        DatasetImportError, match=r"annotation.csv:1: missing column\(s\) question_type"
    ):
        import_dataset("vqa_csv", source, tmp_path / "out", name="vqa")
    assert not (tmp_path / "out").exists()


def test_vqa_csv_bad_column_count_names_the_line(tmp_path: Path) -> None:
    rows = ["0;test;images/0.jpg;Q;A;passport;surname;", "1;test;images/1.jpg;Q;A;invoice"]
    source = fx.vqa_csv(tmp_path / "src", rows=rows)
    with pytest.raises(DatasetImportError, match=r"annotation.csv:3: expected 8 columns .* got 6"):
        import_dataset("vqa_csv", source, tmp_path / "out", name="vqa")


def test_vqa_csv_refuses_a_path_outside_the_dataset(tmp_path: Path) -> None:
    fx.image(tmp_path / "secret.jpg")
    rows = ["0;test;../secret.jpg;Q;A;passport;surname;"]
    source = fx.vqa_csv(tmp_path / "src", rows=rows)
    with pytest.raises(
        DatasetImportError, match=r"annotation.csv:2: image path '../secret.jpg' is outside"
    ):
        import_dataset("vqa_csv", source, tmp_path / "out", name="vqa")


def test_vqa_csv_missing_image_is_reported_per_sample(tmp_path: Path) -> None:
    rows = ["0;test;images/0.jpg;Q;A;passport;surname;", "7;test;images/7.jpg;Q;A;invoice;inn;"]
    source = fx.vqa_csv(tmp_path / "src", rows=rows)
    samples, report = import_dataset("vqa_csv", source, tmp_path / "out", name="vqa")
    assert [s.id for s in samples] == ["0", "7"]
    assert report.missing_images == {"7": str(source / "images" / "7.jpg")}
    saved = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert saved["missing_images"] == {"7": str(source / "images" / "7.jpg")}


def test_a_failed_import_leaves_the_previous_dataset_intact(tmp_path: Path) -> None:
    source = fx.vqa_csv(tmp_path / "src")
    import_dataset("vqa_csv", source, tmp_path / "out", name="vqa")
    before = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    fx.vqa_csv(tmp_path / "src", rows=["0;test;images/0.jpg;Q;A"])
    with pytest.raises(DatasetImportError):
        import_dataset("vqa_csv", source, tmp_path / "out", name="vqa")
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_field_json_extraction_and_vqa(tmp_path: Path) -> None:
    source = fx.field_json(tmp_path / "src")
    samples, _ = import_dataset("field_json", source, tmp_path / "ext", name="snils",
                                options={"doc_class": "snils"})  # fmt: skip
    assert [s.id for s in samples] == ["blur-1", "clean-1", "clean-2"]
    clean = samples[1]
    assert clean.images == ["images/clean/1.jpg"] and clean.subset == "clean"
    assert json.loads(clean.answers[0]) == {"Полное имя": "ПЕТРОВ ПЁТР", "Номер": "112-233-445 95"}
    assert clean.meta["fields"] == ["Полное имя", "Номер"] and clean.doc_class == "snils"
    assert clean.meta["bboxes"]["Номер"] == [[0, 0, 5, 5]]

    samples, _ = import_dataset("field_json", source, tmp_path / "vqa", name="snils",
                                options={"kind": "vqa"})  # fmt: skip
    assert len(samples) == 6
    assert samples[0].question == "Какое значение поля «Полное имя»?"
    assert samples[0].answers == ["ПЕТРОВ ПЁТР"] and samples[0].question_type == "Полное имя"


def test_field_json_bad_json_names_file_and_line(tmp_path: Path) -> None:
    source = fx.field_json(tmp_path / "src")
    (source / "jsons" / "2.json").write_text(
        '{"fields": {\n "a": {"value": 1},\n}', encoding="utf-8"
    )
    with pytest.raises(DatasetImportError, match=r"2.json:3: not valid JSON"):
        import_dataset("field_json", source, tmp_path / "out", name="x")


def test_field_json_wrong_shape(tmp_path: Path) -> None:
    source = fx.field_json(tmp_path / "src")
    (source / "jsons" / "2.json").write_text('{"fields": {"a": "no value key"}}', encoding="utf-8")
    with pytest.raises(DatasetImportError, match=r"2.json: fields.a: expected"):
        import_dataset("field_json", source, tmp_path / "out", name="x")


def test_class_folders(tmp_path: Path) -> None:
    source = fx.class_folders(tmp_path / "src")
    samples, _ = import_dataset("class_folders", source, tmp_path / "out", name="cls")
    assert [(s.id, s.doc_class, s.subset, s.answers) for s in samples] == [
        ("invoice-rotated-c", "invoice", "rotated", ["invoice"]),
        ("passport-blur-a", "passport", "blur", ["passport"]),
        ("passport-clean-a", "passport", "clean", ["passport"]),
        ("snils-clean-b", "snils", "clean", ["snils"]),
    ]
    assert samples[1].images == ["images/passport/blur/a.jpg"]
    (source / "stray").mkdir()
    with pytest.raises(DatasetImportError, match=r"stray: expected <class>/images/<subset>/\*.jpg"):
        import_dataset("class_folders", source, tmp_path / "out2", name="cls")


def test_multipage_ordering_answer_restores_the_true_order(tmp_path: Path) -> None:
    source = fx.multipage(tmp_path / "src")
    samples, _ = import_dataset("multipage", source, tmp_path / "out", name="rpo")
    assert [s.id for s in samples] == ["b1", "b2"]
    for sample in samples:
        order = json.loads(sample.answers[0])
        restored = [sample.images[i - 1] for i in order]
        bundle = sample.id
        assert restored == [f"images/{bundle}/{n}.jpg" for n in range(1, len(order) + 1)]
        assert sample.images != restored, "pages must be shown shuffled"
        assert [sample.meta["page_classes"][i - 1] for i in order] == sample.meta["true_classes"]
    assert samples[0].meta["true_classes"] == ["passport", "snils", "invoice"]


def test_multipage_classification_one_sample_per_page(tmp_path: Path) -> None:
    source = fx.multipage(tmp_path / "src")
    samples, _ = import_dataset("multipage", source, tmp_path / "out", name="rpo",
                                options={"kind": "classification"})  # fmt: skip
    assert [(s.id, s.answers[0]) for s in samples] == [
        ("b1-p1", "passport"), ("b1-p2", "snils"), ("b1-p3", "invoice"),
        ("b2-p1", "snils"), ("b2-p2", "invoice"),
    ]  # fmt: skip


def test_multipage_page_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    source = fx.multipage(tmp_path / "src")
    (source / "jsons" / "b2.json").write_text(
        json.dumps({"pages": [{"file": "../b1/1.jpg", "doc_class": "x"}]}), encoding="utf-8"
    )
    with pytest.raises(DatasetImportError, match=r"b2.json: image path '../b1/1.jpg' is outside"):
        import_dataset("multipage", source, tmp_path / "out", name="rpo")


def test_hf_disk_with_column_mapping(tmp_path: Path) -> None:
    source = fx.hf_disk(tmp_path / "src")
    options = {
        "image": "img",
        "question": "q",
        "answer": "answers",
        "id": "uid",
        "doc_class": "category",
    }
    samples, _ = import_dataset("hf_disk", source, tmp_path / "out", name="hf", options=options)
    assert [(s.id, s.question, s.answers, s.doc_class) for s in samples] == [
        ("a1", "Что написано?", ["текст", "Текст"], "note"),
        ("a2", "Какой цвет?", ["серый"], "card"),
    ]
    assert (tmp_path / "out" / samples[1].images[0]).is_file()
    with pytest.raises(DatasetImportError, match=r"missing column\(s\) \['image', 'answer'\]"):
        import_dataset("hf_disk", source, tmp_path / "bad", name="hf", options={"question": "q"})


def test_hf_disk_split_is_the_only_one_or_the_one_named(tmp_path: Path) -> None:
    import datasets

    source = fx.hf_disk(tmp_path / "src")  # one split, test
    options = {"image": "img", "question": "q", "answer": "answers", "id": "uid"}
    samples, _ = import_dataset("hf_disk", source, tmp_path / "one", name="hf", options=options)
    assert [s.id for s in samples] == ["a1", "a2"]
    with pytest.raises(DatasetImportError, match=r"no split 'train'; known: \['test'\]"):
        import_dataset(
            "hf_disk", source, tmp_path / "x", name="hf", options={**options, "split": "train"}
        )
    table = datasets.load_from_disk(str(source))["test"]
    two = tmp_path / "two"
    datasets.DatasetDict({"test": table, "train": table.select([1])}).save_to_disk(str(two))
    with pytest.raises(DatasetImportError, match=r"several splits \['test', 'train'\]; set opt"):
        import_dataset("hf_disk", two, tmp_path / "y", name="hf", options=options)
    options["split"] = "train"
    samples, _ = import_dataset("hf_disk", two, tmp_path / "z", name="hf", options=options)
    assert [s.id for s in samples] == ["a2"]


def test_unknown_format_and_bad_option(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetImportError, match=r"unknown format 'csv'; known formats: class_folders"
    ):
        import_dataset("csv", tmp_path, tmp_path / "out", name="x")
    with pytest.raises(DatasetImportError, match=r"options.kindd: Extra inputs"):
        import_dataset("multipage", tmp_path, tmp_path / "out", name="x", options={"kindd": 1})


def test_cli_imports_and_reports(tmp_path: Path) -> None:
    source = fx.vqa_csv(
        tmp_path / "src", rows=["0;t;images/0.jpg;Q;A;passport;surname;", "5;t;5.jpg;Q;A;x;y;"]
    )
    result = subprocess.run(
        [sys.executable, "-m", "vlmhyperbench.cli", "dataset", "import", "vqa_csv", str(source),
         str(tmp_path / "out"), "-o", "split=t"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "imported 2 samples" in result.stdout and "missing image for sample 5" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "vlmhyperbench.cli", "dataset", "import", "vqa_csv",
         str(tmp_path / "nowhere"), str(tmp_path / "out2")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1 and "nowhere: not found" in bad.stdout


def test_a_registry_entry_can_name_every_importer() -> None:
    """``source: {type: import, format: …}`` accepts exactly the formats there are importers
    for (the CLI's ``vlmhb dataset import`` takes the same names)."""
    from typing import get_args

    from vlmhyperbench.config.schema import ImportFormat
    from vlmhyperbench.datasets.importers import IMPORTERS

    assert set(get_args(ImportFormat)) == set(IMPORTERS)
