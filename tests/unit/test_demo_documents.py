"""The synthetic Russian document generator: determinism, ground truth, checksums, atomicity."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmhyperbench.datasets.demo import (
    DOC_CLASSES,
    SUBSETS,
    GlyphCoverageError,
    check_glyph_coverage,
    generate_demo_dataset,
    is_valid_inn,
    is_valid_snils,
    make_document,
)
from vlmhyperbench.datasets.demo.checksums import inn10_check_digit, snils_check_digits
from vlmhyperbench.datasets.demo.fonts import font_path, missing_glyphs
from vlmhyperbench.datasets.demo.invoice import InvoiceData, InvoiceItem, layout_invoice
from vlmhyperbench.datasets.demo.layout import Cell, PageBuilder, TextStyle
from vlmhyperbench.datasets.demo.passport import PassportData, layout_passport
from vlmhyperbench.datasets.demo.render import render_page
from vlmhyperbench.datasets.demo.snils import SnilsData, layout_snils
from vlmhyperbench.datasets.demo.values import (
    COMPANY_NAMES,
    FEMALE_NAMES,
    GOODS,
    MALE_NAMES,
    MALE_SURNAMES,
    PATRONYMICS,
    REGIONS,
    Person,
    feminine_surname,
)
from vlmhyperbench.datasets.manifest import read_manifest
from vlmhyperbench.runtime.io import file_sha256


def _normalise(text: str) -> str:
    """Collapse whitespace: a long value may wrap onto the next printed line."""
    return " ".join(text.split())


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def vqa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "vqa"
    generate_demo_dataset(out, kind="vqa", name="demo-vqa", seed=7)
    return out


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(vqa_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_demo_dataset(again, kind="vqa", name="demo-vqa", seed=7)
    first, second = _files(vqa_dir), _files(again)
    assert first.keys() == second.keys()
    assert len([name for name in first if name.endswith(".png")]) == 3 * 2 * 5
    for name, content in first.items():
        assert second[name] == content, name


def test_different_seed_gives_different_documents(vqa_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_demo_dataset(other, kind="vqa", name="demo-vqa", seed=8)
    first, second = _files(vqa_dir), _files(other)
    assert first["manifest.jsonl"] != second["manifest.jsonl"]
    assert first.keys() == second.keys()
    same_images = [n for n in first if n.endswith(".png") and first[n] == second[n]]
    assert same_images == []


def test_document_does_not_depend_on_other_requested_documents(tmp_path: Path) -> None:
    small = tmp_path / "small"
    big = tmp_path / "big"
    generate_demo_dataset(
        small, kind="ocr", name="d", seed=3, per_class=1, doc_classes=["snils"], subsets=["noise"]
    )
    generate_demo_dataset(big, kind="ocr", name="d", seed=3, per_class=2)
    image = "images/snils-000_noise.png"
    assert (small / image).read_bytes() == (big / image).read_bytes()


# --- checksums ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["112-233-445 95", "11223344595", "112-233-44595"])
def test_snils_validator_accepts_published_example(value: str) -> None:
    assert is_valid_snils(value)


@pytest.mark.parametrize(
    "value",
    [
        "112-233-445 96",  # wrong check digits
        "112-233-446 95",  # one digit of the number changed
        "001-001-998 00",  # before check digits existed: never valid
        "112-233-445",  # no check digits
        "112-233-445 9",
        "abc-def-ghi 12",
        "",
    ],
)
def test_snils_validator_rejects(value: str) -> None:
    assert not is_valid_snils(value)


@pytest.mark.parametrize(
    ("number", "check"),
    [
        ("112233445", "95"),  # weighted sum 95 < 100: the sum itself
        ("920000002", "99"),  # sum 99
        ("920000003", "00"),  # sum 100 → 00
        ("920000004", "00"),  # sum 101 → 00
        ("920000005", "01"),  # sum 102 → 102 mod 101
        ("900000900", "07"),  # sum 108 → 108 mod 101
    ],
)
def test_snils_check_digits_edge_cases(number: str, check: str) -> None:
    assert snils_check_digits(number) == check


@pytest.mark.parametrize("value", ["7707083893", "7736207543", "1234567894", "123456789047"])
def test_inn_validator_accepts_published_examples(value: str) -> None:
    # Сбербанк, Яндекс, and the examples of python-stdnum's stdnum.ru.inn.
    assert is_valid_inn(value)


@pytest.mark.parametrize(
    "value", ["7707083890", "1234567895", "123456789037", "123456789", "77070838931", "абвгдежзий"]
)
def test_inn_validator_rejects(value: str) -> None:
    assert not is_valid_inn(value)


def test_inn_check_digit_of_known_number() -> None:
    assert inn10_check_digit("770708389") == "3"


def test_generated_identifiers_are_valid_and_well_formed() -> None:
    for index in range(60):
        snils = {f.key: f.value for f in make_document("snils", index, seed=1, width=640).fields}
        assert re.fullmatch(r"\d{3}-\d{3}-\d{3} \d{2}", snils["snils_number"])
        assert is_valid_snils(snils["snils_number"]), snils["snils_number"]

        invoice = {
            f.key: f.value for f in make_document("invoice", index, seed=1, width=640).fields
        }
        assert is_valid_inn(invoice["inn"]), invoice["inn"]
        assert len(invoice["inn"]) == 10
        assert re.fullmatch(r"\d{9}", invoice["kpp"])
        assert invoice["kpp"][:4] == invoice["inn"][:4]  # the same tax office
        assert re.fullmatch(r"\d{1,3}( \d{3})*,\d{2}", invoice["total"])
        assert re.fullmatch(r"ООО «[^«»]+»", invoice["seller"])
        assert invoice["buyer"] != invoice["seller"]

        passport = {
            f.key: f.value for f in make_document("passport", index, seed=1, width=640).fields
        }
        assert re.fullmatch(r"\d{2} \d{2} \d{6}", passport["passport_number"])
        assert passport["passport_number"][3:5] == passport["issue_date"][-2:]  # year of issue
        assert re.fullmatch(r"\d{3}-\d{3}", passport["department_code"])


def _kopecks(money: str) -> int:
    assert re.fullmatch(r"\d{1,3}( \d{3})*,\d{2}", money), money
    return int(money.replace(" ", "").replace(",", ""))


def test_invoice_lines_and_total_add_up() -> None:
    for index in range(30):
        document = make_document("invoice", index, seed=5, width=640)
        table = [
            [cell.text for cell in row.cells]
            for row in document.page.rows
            if len(row.cells) == 5 and row.cells[0].text.isdigit()
        ]
        assert 2 <= len(table) <= 4
        for number, (position, _name, quantity, price, amount) in enumerate(table, start=1):
            assert position == str(number)
            assert int(quantity.split()[0]) * _kopecks(price) == _kopecks(amount)
        total = {f.key: f.value for f in document.fields}["total"]
        assert _kopecks(total) == sum(_kopecks(row[4]) for row in table)
        assert f"Итого: {total}" in document.text.splitlines()


def test_names_are_gender_consistent() -> None:
    assert feminine_surname("Иванов") == "Иванова"
    assert feminine_surname("Вишневский") == "Вишневская"
    sexes = Counter()
    for index in range(80):
        fields = {f.key: f.value for f in make_document("snils", index, seed=2, width=640).fields}
        sexes[fields["sex"]] += 1
        if fields["sex"] == "мужской":
            assert fields["patronymic"].endswith("ич"), fields
            assert not fields["surname"].endswith(("а", "ая")), fields
        else:
            assert fields["sex"] == "женский"
            assert fields["patronymic"].endswith("на"), fields
            assert fields["surname"].endswith(("а", "ая")), fields
    assert sexes["мужской"] > 10 and sexes["женский"] > 10


# --- ground truth ------------------------------------------------------------------------------


def test_every_answer_is_printed_on_its_page(vqa_dir: Path, tmp_path: Path) -> None:
    ocr_dir = tmp_path / "ocr"
    generate_demo_dataset(ocr_dir, kind="ocr", name="demo-ocr", seed=7)
    page_text = {s.images[0]: s.answers[0] for s in read_manifest(ocr_dir)}
    samples = read_manifest(vqa_dir)
    assert samples
    for sample in samples:
        (answer,) = sample.answers
        assert answer
        assert _normalise(answer) in _normalise(page_text[sample.images[0]]), sample.id


def test_answers_match_document_fields_across_many_seeds() -> None:
    for doc_class in DOC_CLASSES:
        for index in range(40):
            document = make_document(doc_class, index, seed=11, width=640)
            assert 5 <= len(document.fields) <= 7
            for field in document.fields:
                assert _normalise(field.value) in _normalise(document.text), (doc_class, field)


@pytest.mark.parametrize("width", [320, 640, 1000])
def test_layout_fits_every_generated_document(width: int) -> None:
    # A value too long for its line raises LayoutError instead of being clipped.
    for doc_class in DOC_CLASSES:
        for index in range(100):
            page = make_document(doc_class, index, seed=0, width=width).page
            assert page.width == width
            assert all(
                cell.x >= 0 and cell.baseline < page.height for r in page.rows for cell in r.cells
            )


@pytest.mark.parametrize("width", [320, 640])
def test_layout_fits_the_longest_possible_values(width: int) -> None:
    longest = max(REGIONS, key=lambda r: len(r.dative))
    person = Person(
        surname=feminine_surname(max(MALE_SURNAMES, key=len)),
        given_name=max(MALE_NAMES + FEMALE_NAMES, key=len),
        patronymic=max((p for pair in PATRONYMICS for p in pair), key=len),
        male=False,
        birth_date=date(1960, 12, 31),
        birth_place=max(REGIONS, key=lambda r: len(r.city)),
    )
    issued_by = f"Отделом УФМС России по {longest.dative}".upper()
    passport = PassportData(person, "45 12 345678", date(2005, 1, 1), "770-001", issued_by)
    layout_passport(passport, width)
    layout_snils(SnilsData(person, "112-233-445 95", date(2000, 1, 1)), width)
    # An upper bound on every generated invoice: 4 lines of the longest name, 20 of the dearest.
    name = max((goods[0] for goods in GOODS), key=len)
    price = max(goods[3] for goods in GOODS) * 100
    items = tuple(InvoiceItem(name, "шт.", 20, price) for _ in range(4))
    company = f"ООО «{max(COMPANY_NAMES, key=len)}»"
    invoice = InvoiceData(
        "9999", date(2024, 12, 31), company, "7707083893", "770701001", company, items
    )
    page = layout_invoice(invoice, width)
    assert "Итого: 1 840 000,00" in page.text.splitlines()


# --- fonts -------------------------------------------------------------------------------------


def test_glyph_check_rejects_a_character_missing_from_the_font() -> None:
    with pytest.raises(GlyphCoverageError) as excinfo:
        check_glyph_coverage("Привет 中 \U0001f9e0", font_path())
    message = str(excinfo.value)
    assert "U+4E2D" in message
    assert "U+1F9E0" in message
    assert str(font_path()) in message
    assert "П" not in message


def test_glyph_check_accepts_all_text_of_the_documents() -> None:
    text = "".join(
        make_document(c, i, seed=0, width=640).text.replace("\n", "")
        for c in DOC_CLASSES
        for i in range(30)
    )
    assert re.search("[а-яё]", text)
    for bold in (False, True):
        assert missing_glyphs(text, font_path(bold)) == []
        check_glyph_coverage(text, font_path(bold))


def test_render_refuses_a_page_with_a_missing_glyph() -> None:
    builder = PageBuilder(640, (255, 255, 255))
    builder.row(Cell("Счёт 中", 32, TextStyle(14, bold=True)))
    with pytest.raises(GlyphCoverageError, match=r"DejaVuSans-Bold.*U\+4E2D"):
        render_page(builder.build())


# --- the dataset on disk -----------------------------------------------------------------------


def test_manifest_reads_back_and_has_the_expected_samples(vqa_dir: Path) -> None:
    samples = read_manifest(vqa_dir)
    per_doc = Counter(s.meta["doc_id"] for s in samples)
    assert set(per_doc) == {f"{c}-{i:03d}" for c in DOC_CLASSES for i in range(2)}
    first = next(s for s in samples if s.id == "passport-000-clean-surname")
    assert first.question == "Какая фамилия указана в паспорте?"
    assert first.question_type == "surname"
    assert first.doc_class == "passport"
    assert first.subset == "clean"
    assert first.images == ["images/passport-000_clean.png"]
    assert first.meta == {"doc_id": "passport-000", "field": "Фамилия"}
    assert {s.subset for s in samples} == set(SUBSETS)
    keys = {s.question_type for s in samples}
    assert {"surname", "birth_date", "snils_number", "inn", "total"} <= keys
    for sample in samples:
        assert (vqa_dir / sample.images[0]).is_file()
        assert re.search("[а-яё]", sample.question)


def test_returned_samples_equal_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "cls"
    returned = generate_demo_dataset(out, kind="classification", name="demo-cls", per_class=1)
    assert read_manifest(out) == returned
    assert len(returned) == len(DOC_CLASSES) * len(SUBSETS)
    for sample in returned:
        assert sample.question == ""
        assert sample.answers == [sample.doc_class]
        assert sample.question_type == "doc_class"
        assert sample.id == f"{sample.meta['doc_id']}-{sample.subset}"


def test_ocr_samples_hold_the_full_page_text(tmp_path: Path) -> None:
    out = tmp_path / "ocr"
    samples = generate_demo_dataset(out, kind="ocr", name="demo-ocr", seed=4, per_class=1)
    for sample in samples:
        assert sample.question_type == "full_text"
        index = int(sample.meta["doc_id"].rsplit("-", 1)[1])
        document = make_document(sample.doc_class, index, seed=4, width=640)
        assert sample.answers == [document.text]
        assert "\n" in sample.answers[0]


def test_dataset_info_lists_every_file_with_its_sha256(vqa_dir: Path) -> None:
    info = json.loads((vqa_dir / "dataset.json").read_text(encoding="utf-8"))
    assert info["name"] == "demo-vqa"
    assert info["version"] == "1"
    images = sorted(p.relative_to(vqa_dir).as_posix() for p in (vqa_dir / "images").glob("*.png"))
    assert sorted(k for k in info["files"] if k.startswith("images/")) == images
    for name, digest in info["files"].items():
        assert file_sha256(vqa_dir / name) == digest
    generator = info["generator"]
    assert generator["seed"] == 7
    assert generator["kind"] == "vqa"
    assert generator["doc_classes"] == list(DOC_CLASSES)
    assert generator["subsets"] == list(SUBSETS)


def test_distortions_change_the_pixels(vqa_dir: Path) -> None:
    for doc_id in ("passport-000", "snils-001", "invoice-000"):
        clean = np.asarray(Image.open(vqa_dir / f"images/{doc_id}_clean.png"))
        for subset in SUBSETS[1:]:
            image = np.asarray(Image.open(vqa_dir / f"images/{doc_id}_{subset}.png"))
            assert (
                image.shape != clean.shape
                or np.abs(image.astype(int) - clean.astype(int)).mean() > 1.0
            ), (doc_id, subset)


def test_progress_counts_every_image(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate_demo_dataset(
        tmp_path / "p",
        kind="ocr",
        name="p",
        per_class=1,
        progress=lambda d, t: calls.append((d, t)),
    )
    total = len(DOC_CLASSES) * len(SUBSETS)
    assert calls == [(done, total) for done in range(1, total + 1)]


# --- argument errors and atomicity ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subsets": ["clean", "fog"]}, r"'fog'.*known: clean, blur, noise, rotated, low_contrast"),
        ({"doc_classes": ["passport", "visa"]}, r"'visa'.*known: passport, snils, invoice"),
        ({"kind": "caption"}, r"'caption'.*known: vqa, classification, ocr"),
        ({"per_class": 0}, "per_class"),
        ({"subsets": ["clean", "clean"]}, "duplicates"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    arguments = {"kind": "vqa", "name": "x", **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_demo_dataset(tmp_path / "out", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_leaves_the_previous_dataset_intact(tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate_demo_dataset(out, kind="vqa", name="d", seed=1, per_class=1)
    before = _files(out)

    def explode(done: int, total: int) -> None:
        if done == 4:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        generate_demo_dataset(out, kind="ocr", name="d", seed=2, per_class=1, progress=explode)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no staging folder left behind


def test_a_failure_leaves_no_dataset_where_there_was_none(tmp_path: Path) -> None:
    def explode(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_demo_dataset(tmp_path / "new", kind="vqa", name="d", progress=explode)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_dataset_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "stale.txt").write_text("old", encoding="utf-8")
    generate_demo_dataset(out, kind="classification", name="d", per_class=1, subsets=["clean"])
    assert not (out / "stale.txt").exists()
    assert (out / "manifest.jsonl").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert out.stat().st_mode & 0o777 == 0o755
