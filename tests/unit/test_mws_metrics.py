"""MWS-Vision-Bench's five category scores and its Overall, against the official code.

tests/fixtures/mws/official_scores.json holds (reference, reply) pairs scored by the official
evaluation (tools/mws_official_scores.py; the commit is in the file). Every category must give
the same per-item score within 1e-6, through its registry entry; the Overall of our scoring
stage must equal the official get_score_ru result on the same items. The targeted tests below
pin each quirk of the official code we follow (docs/mws_vision.md).
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from zss import Node, simple_distance

from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.metrics.aggregate import aggregate
from vlmhyperbench.metrics.loader import load_metric
from vlmhyperbench.metrics.mws import wordnet
from vlmhyperbench.metrics.mws.grounding import mws_grounding, parse_box
from vlmhyperbench.metrics.mws.kie import mws_kie, reply_fields
from vlmhyperbench.metrics.mws.markdown import (
    clean_line,
    heading_tree,
    mws_markdown,
    tree_distance,
)
from vlmhyperbench.metrics.mws.ocr import mws_ocr, ocr_parts
from vlmhyperbench.metrics.mws.overall import CATEGORY_METRICS, overall
from vlmhyperbench.metrics.mws.reply import MAX_REPLY_CHARS
from vlmhyperbench.metrics.mws.vqa import mws_vqa
from vlmhyperbench.metrics.scoring import build_score_frame

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mws" / "official_scores.json"
METRICS = sorted(set(CATEGORY_METRICS.values()))
TOLERANCE = 1e-6
#: get_score_ru's names of the category means.
OFFICIAL_NAMES = {
    "image 2 text (text_recognition)": "mws_ocr",
    "image 2 markdown (element_parsing)": "mws_markdown",
    "text_grounding_basic": "mws_grounding",
    "keymap (relationship_extraction)": "mws_kie",
    "vqa (knowledge_reasoning)": "mws_vqa",
}


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def registry_metric(name: str):
    """The metric as the scoring stage loads it: its registry entry's function and params."""
    entry = yaml.safe_load((ROOT / "config" / "metrics" / f"{name}.yaml").read_text())
    loaded = load_metric(entry["implementation"])
    loaded.check_params(entry.get("params", {}))
    return loaded, entry.get("params", {})


# --- the official values ---------------------------------------------------------------------


def test_the_fixture_names_its_commit_and_has_50_pairs_a_category(official):
    assert re.fullmatch(r"[0-9a-f]{40}", official["official"]["commit"])
    counts = Counter(pair["metric"] for pair in official["pairs"])
    assert set(counts) == set(METRICS)
    assert min(counts.values()) >= 50, counts
    # The pairs are not all of one value: each category has scores strictly between 0 and 1.
    for name in METRICS:
        values = {p["score"] for p in official["pairs"] if p["metric"] == name}
        assert any(0 < v < 1 for v in values), name


@pytest.mark.parametrize("name", METRICS)
def test_every_pair_scores_as_the_official_code(official, name):
    """``score``: the reply as the official runners record it (stripped) — the registry
    entry's default; ``score_eval``: the reply as given (``strip_reply: false``)."""
    loaded, params = registry_metric(name)
    assert params == {"strip_reply": True}
    pairs = [p for p in official["pairs"] if p["metric"] == name]
    wrong = []
    for pair in pairs:
        for key, strip in (("score", True), ("score_eval", False)):
            ours = loaded.score(pair["prediction"], pair["answers"], strip_reply=strip)
            if abs(ours - pair[key]) > TOLERANCE:
                wrong.append((pair["id"], key, ours, pair[key]))
    assert not wrong, wrong


def _samples_and_predictions(items: list[dict[str, Any]]):
    """Manifest samples as the importer writes them (readable answers; the official list in
    meta.mws.answers) and prediction records."""
    samples, predictions = [], {}
    for item in items:
        official_answers = item["answers"]
        readable = [a if isinstance(a, str) else json.dumps(a) for a in official_answers]
        samples.append(
            Sample(
                id=item["id"],
                answers=readable or [""],
                question_type=item["type"],
                meta={"mws": {"type": item["type"], "answers": official_answers}},
            )
        )
        predictions[item["id"]] = {"id": item["id"], "prediction": item["prediction"]}
    return samples, predictions


@pytest.mark.parametrize("run_index", [0, 1, 2])
def test_overall_of_our_scoring_stage_equals_get_score_ru(official, run_index):
    run = official["runs"][run_index]
    by_id = {pair["id"]: pair for pair in official["pairs"]}
    means = {}
    for name in METRICS:
        items = [by_id[i] for i in run["ids"] if by_id[i]["metric"] == name]
        if not items:
            continue
        loaded, params = registry_metric(name)
        samples, predictions = _samples_and_predictions(items)
        frame = build_score_frame(predictions, samples, loaded, params)
        means[name] = aggregate(frame, n_boot=0)["overall"]["value"]
    expected = {OFFICIAL_NAMES[k]: v for k, v in run["categories"].items()}
    present = {k: v for k, v in expected.items() if k in means}
    assert means == pytest.approx(present, abs=1e-9)
    assert overall(means) == pytest.approx(run["overall"], abs=1e-9)


def test_overall_leaves_out_absent_categories_and_knows_the_official_types():
    assert overall({"mws_ocr": 0.5, "mws_vqa": 1.0, "mws_kie": None}) == 0.75
    assert overall({"full-page OCR ru": 0.25, "mws_markdown": 0.75}) == 0.5
    assert overall({}) == 0.0
    with pytest.raises(ValueError, match="not an MWS-Vision-Bench category: mws_typo"):
        overall({"mws_typo": 1.0})


# --- the reply as the official runner records it -----------------------------------------------

ALL = [
    (mws_ocr, ["текст страницы"], "текст страницы"),
    (mws_markdown, ["# Заголовок\nтекст"], ""),  # "" would score 1/3
    (mws_grounding, ["10", "10", "50", "50"], "[10, 10, 50, 50]"),
    (mws_kie, ['{"a": "1"}'], '{"a": "1"}'),
    (mws_vqa, [""], ""),  # an empty accepted answer is found in every reply
]


@pytest.mark.parametrize(("fn", "answers", "reply"), ALL)
def test_a_failed_request_scores_zero_in_every_category(fn, answers, reply):
    assert fn(reply, answers) > 0
    assert fn(reply, answers, sample={"error": "HTTP 500", "meta": {}}) == 0.0
    assert fn("ERROR in getting response", answers) == 0.0
    assert fn(" ERROR in getting response\n", answers) == 0.0  # the runner strips first


def test_the_reply_is_stripped_as_the_runner_records_it():
    page = ["Итого к оплате 1 250 рублей"]
    exact = mws_ocr(page[0], page)
    assert mws_ocr("\n  " + page[0] + "  \n", page) == exact
    assert mws_ocr("\n  " + page[0] + "  \n", page, strip_reply=False) < exact  # edit distance


def test_a_reply_is_cut_at_18000_characters():
    filler = "думаю " * (MAX_REPLY_CHARS // 6)
    assert len(filler) == MAX_REPLY_CHARS
    assert mws_vqa(filler[:-1] + "ответ", ["ответ"]) == 0.0  # the answer lies past the cut
    assert mws_vqa(filler[:-5] + "ответ", ["ответ"]) == 1.0  # 18,000 characters: kept whole
    box = "[10, 10, 50, 50]"
    assert mws_grounding("[0, 0, 5, 5] " + filler + box, ["10", "10", "50", "50"]) == 0.0


def test_the_official_answers_come_from_meta_mws_when_the_sample_has_them():
    sample = {"error": None, "meta": {"mws": {"answers": ["10", "10", "50", "50"]}}}
    readable = ["[10, 10, 50, 50]"]
    assert mws_grounding("[10, 10, 50, 50]", readable) == 0.0  # one reference: not a box
    assert mws_grounding("[10, 10, 50, 50]", readable, sample=sample) == 1.0
    kie = {"error": None, "meta": {"mws": {"answers": [{"a": ["x", "y"]}]}}}
    assert mws_kie('{"a": "y"}', ['{"a": ["x", "y"]}'], sample=kie) == 1.0
    with pytest.raises(ValueError, match="exactly one reference"):
        mws_ocr("текст", ["a", "b"])


# --- full-page OCR -----------------------------------------------------------------------------


def test_ocr_is_the_mean_of_bleu_meteor_f_measure_and_edit_similarity():
    parts = ocr_parts("Счёт на оплату № 5", "Счёт на оплату № 15")
    assert parts["f_measure"] == pytest.approx(2 * 4 / (5 + 5))  # 4 shared words of 5 and 5
    assert parts["edit_dist"] == pytest.approx(1 / 19)
    expected = (parts["bleu"] + parts["meteor"] + parts["f_measure"] + 1 - parts["edit_dist"]) / 4
    assert mws_ocr("Счёт на оплату № 5", ["Счёт на оплату № 15"]) == pytest.approx(expected)
    assert mws_ocr("", ["Счёт"]) == 0.0
    # A whitespace-only reply: 0 as recorded (stripped), its edit part counts when not stripped.
    assert mws_ocr("   ", ["Счёт"]) == 0.0
    assert mws_ocr("   ", ["Счёт"], strip_reply=False) == pytest.approx((1 - 4 / 4) / 4)


def test_ocr_meteor_matches_wordnet_synonyms_of_the_stemmed_reference():
    car = ocr_parts("my car is red", "my auto is red")["meteor"]
    bus = ocr_parts("my bus is red", "my auto is red")["meteor"]
    assert car > bus  # "car" and "auto" share a WordNet synset; "bus" does not
    # NLTK looks the synonyms up after Porter stemming: "large" is "larg", no synonym of "big".
    big = ocr_parts("the big house", "the large house")["meteor"]
    assert big == ocr_parts("the red house", "the large house")["meteor"]


def test_ocr_splits_text_with_cjk_ideographs_by_jieba_not_by_spaces():
    # Without CJK, "ab cd" and "abcd" share no word; with CJK, jieba finds the same words.
    assert ocr_parts("ab cd", "abcd")["f_measure"] == 0.0
    assert ocr_parts("发票 号码", "发票号码")["f_measure"] > 0.0
    assert ocr_parts("Итого 总计", "Итого 总计")["f_measure"] == 1.0


# --- document parsing (Markdown) -----------------------------------------------------------------

DOC = "# Акт\nстрока 1\n## Таблица\n| a | b |\n| --- | --- |\n| 1 | 2 |\n## Итог\nитого"


def test_markdown_compares_the_heading_tree_shape_never_the_text():
    other_text = re.sub(r"[а-я0-9ab]", "ж", DOC)
    assert mws_markdown(other_text, [DOC]) == 1.0
    # One of three table lines missing: 1 distance in a tree of 9 nodes (ROOT, 3 headings, 5).
    assert mws_markdown(DOC.replace("| 1 | 2 |\n", ""), [DOC]) == pytest.approx(1 - 1 / 9)


def test_markdown_empty_reply_scores_one_over_the_reference_tree_size():
    assert mws_markdown("", [DOC]) == pytest.approx(1 / 9)
    assert mws_markdown("", [DOC], sample={"error": "timeout"}) == 0.0


def test_markdown_line_cleaning_decides_what_is_a_heading_or_a_line():
    assert clean_line(" ##Раздел") == "Раздел"  # a word-piece join: not a heading
    assert clean_line("текст ##x") == "текстx"
    assert clean_line("**# Жирный**").strip() == "# Жирный"  # a heading
    for gone in ("***", "___", "* * *", "<bos><eos>", "<pad>"):
        assert clean_line(gone).strip() == "", gone
    assert clean_line("\\begin {table} { a  }") == "\\begin{table} {a}"
    # A line before any heading, then a heading holding one line; the rest vanish.
    assert heading_tree(" ##Раздел\n**# Жирный**\n***\n___\n<bos><eos>\nтекст ##x") == [0, 1]


def test_markdown_repeated_titles_stay_apart_and_lines_before_a_heading_hang_on_root():
    assert heading_tree("шапка\n# Р\nа\n# Р\nб\n\n  \nв") == [0, 1, 2]


def _zss_tree(shape: list[int]) -> Node:
    root = Node("ROOT")
    for number, lines in enumerate(shape):
        node = Node(f"заголовок__{number}")
        for line in range(lines):
            node.addkid(Node(f"строка {line}"))
        root.addkid(node)
    return root


def _official_label_cost(a: str, b: str) -> int:
    return 1 if not a.split() or not b.split() else 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 4), max_size=6),
    st.lists(st.integers(0, 4), max_size=6),
)
def test_markdown_tree_distance_equals_zss_the_official_library(shape_a, shape_b):
    official = simple_distance(
        _zss_tree(shape_a), _zss_tree(shape_b), label_dist=_official_label_cost
    )
    assert tree_distance(shape_a, shape_b) == official


def test_markdown_an_html_table_counts_as_its_lines_spans_unread():
    one_line = '# Т\n<table><tr><td rowspan="2">a</td><td colspan="2">b</td></tr></table>'
    no_spans = "# Т\n<table><tr><td>a</td><td>b</td><td></td></tr></table>"
    many_lines = '# Т\n<table>\n<tr><td rowspan="2">a</td></tr>\n</table>'
    assert mws_markdown(no_spans, [one_line]) == 1.0
    assert mws_markdown(many_lines, [one_line]) == pytest.approx(1 - 2 / 5)


# --- text grounding ------------------------------------------------------------------------------

BOX = ["100", "100", "200", "200"]


def test_grounding_takes_the_last_bracketed_box_within_2048():
    assert parse_box("сначала [0, 0, 10, 10], потом (100, 100.5, 200, 200)") == [
        100.0,
        100.5,
        200.0,
        200.0,
    ]
    assert parse_box("[100, 100, 200, 200] [100, 100, 2049, 200]") == [100, 100, 200, 200]
    assert parse_box("[0.1, 0.1, 0.2, 0.2]") == [0.1, 0.1, 0.2, 0.2]  # normalised: accepted
    for no_box in ("[-5, 100, 200, 200]", "[1e2, 100, 200, 200]", "[.5, 1, 2, 3]", "[1, 2, 3]"):
        assert parse_box(no_box) is None, no_box
    assert mws_grounding("[100, 100, 200, 200] и [150, 150, 3000, 200]", BOX) == 1.0


def test_grounding_iou_keeps_corners_as_given():
    assert mws_grounding("[100, 100, 150, 200]", BOX) == 0.5
    assert mws_grounding("[200, 200, 100, 100]", BOX) == 0.0  # inverted: no intersection
    assert mws_grounding("[150, 150, 150, 150]", BOX) == 0.0  # zero area
    assert mws_grounding("[5, 5, 5, 5]", ["5", "5", "5", "5"]) == 0.0  # zero union
    assert mws_grounding("[100, 100, 200, 200]", ["100", "100", "200"]) == 0.0
    assert mws_grounding("[100, 100, 200, 200]", ["a", "100", "200", "200"]) == 0.0
    assert mws_grounding("[100, 100, 200, 200]", [100, 100.0, "200", " 200 "]) == 1.0


# --- key information extraction ------------------------------------------------------------------

REF = '{"ФИО": "Иванов И.И.", "ИНН": "7701", "Город": "Москва"}'


def test_kie_counts_keys_of_both_sides_and_compares_normalised_values():
    assert mws_kie('{"ФИО": "ИВАНОВ  И. И.", "ИНН": "7701", "Город": " москва"}', [REF]) == 1.0
    assert mws_kie('{"ФИО": "Иванов И.И.", "ИНН": "7701"}', [REF]) == pytest.approx(2 / 3)
    extra = '{"ФИО": "Иванов И.И.", "ИНН": "7701", "Город": "Москва", "Пол": "М"}'
    assert mws_kie(extra, [REF]) == pytest.approx(3 / 4)
    assert mws_kie('{"ИНН": "77\\t01"}', ['{"ИНН": "77 01"}']) == 0.0  # a tab is kept
    assert mws_kie('{"ИНН": "77\\u00a001"}', ['{"ИНН": "77 01"}']) == 0.0  # so is a NBSP


def test_kie_reads_the_reply_as_json_literal_or_key_value_text():
    assert reply_fields('Ответ:\n```JSON\n{"a": 1, "b": null}\n```') == {"a": "1", "b": "None"}
    assert reply_fields("{'a': 'x',}") == {"a": "x"}
    assert reply_fields('{"a": "x", "b": "y"') == {"a": "x", "b": "y"}  # regex fallback
    assert reply_fields("Город: Москва\nИНН = 7701") == {"Город": "Москва", "ИНН": "7701"}
    for unreadable in ('[{"a": "x"}]', "(1, 2)", '"a: b"', "{1: 'x'}", ""):
        assert reply_fields(unreadable) == {}, unreadable


def test_kie_reference_alternatives_nulls_and_unusable_values():
    alternatives = '{"Сумма": ["15 000", "15000,00"], "Валюта": ["RUB", "руб."]}'
    assert mws_kie('{"Сумма": "15000,00", "Валюта": "руб."}', [alternatives]) == 1.0
    nullable = '{"a": "1", "b": null}'
    assert mws_kie('{"a": "1"}', [nullable]) == 1.0  # null and absent: the key is skipped
    assert mws_kie('{"a": "1", "b": "x"}', [nullable]) == 0.5  # present: a wrong field
    assert mws_kie('{"a": "1", "b": "2"}', ['{"a": "1", "b": 2}']) == 0.0  # a number: unusable
    assert mws_kie('{"a": "1", "b": "2"}', ['{"a": "1", "b": [2, "2"]}']) == 1.0
    assert mws_kie('{"a": "1", "b": ""}', ['{"a": "1", "b": ""}']) == 1.0
    assert mws_kie('{"a": "1"}', ['"{""a"": ""1""}"'.replace('""', '"')]) == 1.0
    assert mws_kie("a: 1", ["a: 1"]) == 0.0  # a reference that does not parse
    # A reference *object* is iterated as it is: a string value is its characters.
    assert mws_kie('{"a": "1"}', [{"a": "12"}]) == 1.0
    assert mws_kie('{"a": "12"}', [{"a": "12"}]) == 0.0


# --- reasoning VQA -------------------------------------------------------------------------------


def test_vqa_short_answers_are_substrings_without_a_fuzzy_fallback():
    assert mws_vqa("В таблице 15 строк", ["5"]) == 1.0
    assert mws_vqa("Ромашка, Лютик или Василёк", ["лютик"]) == 1.0
    assert mws_vqa("12.03.24", ["12.03.2024"]) == 0.0
    assert mws_vqa("Счет", ["Счёт"]) == 0.0
    assert mws_vqa("", [" "]) == 1.0  # an empty accepted answer is in every reply
    assert mws_vqa("улица Ленина,\nдом 5", ["Ленина, дом 5"]) == 1.0


def test_vqa_long_answers_score_levenshtein_similarity_from_one_half():
    answer = "поставка в течение тридцати дней"  # five words
    reply = "поставка в течение 30 дней"
    similarity = 1 - 8 / len(answer)  # "тридцати" -> "30": 2 substitutions, 6 deletions
    assert mws_vqa(reply, [answer]) == pytest.approx(similarity)
    assert mws_vqa("нет", [answer]) == 0.0  # below 0.5
    assert mws_vqa(reply, [answer, "30 дней"]) == 1.0  # the best accepted answer counts


def test_vqa_answers_that_are_numbers_count_as_text_and_nulls_are_skipped():
    assert mws_vqa("Ответ: 42", [42]) == 1.0
    assert mws_vqa("1.5 литра", [1.5]) == 1.0
    assert mws_vqa("True", [True]) == 1.0
    assert mws_vqa("да", [None, "да"]) == 1.0
    assert mws_vqa("да", [None]) == 0.0


# --- WordNet for NLTK, built offline -------------------------------------------------------------

MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")


@pytest.mark.skipif(not MAN_PAGE.exists(), reason="Debian's lexnames(5WN) man page not installed")
def test_lexnames_is_the_table_of_the_debian_man_page():
    text = gzip.decompress(MAN_PAGE.read_bytes()).decode("utf-8")
    rows = re.findall(r"^(\d\d)\t(\S+)\s*\t", text, flags=re.MULTILINE)
    assert len(rows) == 45
    expected = [f"{number}\t{name}" for number, name in rows]
    assert [line.rsplit("\t", 1)[0] for line in wordnet.lexnames_text().splitlines()] == expected
    categories = {"noun": "1", "verb": "2", "adj": "3", "adv": "4"}
    for line in wordnet.lexnames_text().splitlines():
        _, name, category = line.split("\t")
        assert categories[name.split(".")[0]] == category


def _fake_wordnet(folder: Path) -> Path:
    folder.mkdir()
    for name in wordnet.DATABASE_FILES:
        (folder / name).write_text(f"{name}\n")
    return folder


def test_the_corpus_is_copied_once_and_rebuilt_when_stale(tmp_path):
    source = _fake_wordnet(tmp_path / "debian")
    corpus = wordnet.build_corpus(source, tmp_path / "nltk_data")
    assert corpus == tmp_path / "nltk_data" / "corpora" / "wordnet"
    assert (corpus / "lexnames").read_text() == wordnet.lexnames_text()
    assert not any(p.is_symlink() for p in corpus.iterdir())
    stamp = (corpus / "data.noun").stat().st_mtime_ns
    assert wordnet.build_corpus(source, tmp_path / "nltk_data") == corpus
    assert (corpus / "data.noun").stat().st_mtime_ns == stamp  # nothing rewritten
    (source / "data.noun").write_text("a newer, longer database\n")
    wordnet.build_corpus(source, tmp_path / "nltk_data")
    assert (corpus / "data.noun").read_text() == "a newer, longer database\n"
    assert [p.name for p in corpus.parent.iterdir()] == ["wordnet"]  # no staging left


def test_a_missing_wordnet_names_the_debian_packages(tmp_path):
    with pytest.raises(FileNotFoundError, match="wordnet-base wordnet-sense-index"):
        wordnet.build_corpus(tmp_path, tmp_path / "nltk_data")


def test_the_reader_finds_wordnet_30_without_any_nltk_data_of_its_own():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no download attempt, no multilingual warning
        reader = wordnet.wordnet_reader()
    assert reader.get_version() == "3.0"
    assert "large" in {lemma.name() for s in reader.synsets("big") for lemma in s.lemmas()}
