"""Prompt resolution (fixed > doc_class+question_type > doc_class > default) and collections."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import original_formats as fx
from vlmhyperbench.config import ConfigError
from vlmhyperbench.config.schema import TaskEntry
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.inference.prompts import TaskPrompts


def task(tmp_path: Path, **prompt) -> TaskPrompts:
    entry = TaskEntry.model_validate(
        {"name": "t", "kind": "vqa", "dataset": "d", "metrics": ["anls"], "prompt": prompt}
    )
    return TaskPrompts.load(entry, tmp_path / "tasks" / "t.yaml")


def sample(doc_class: str = "passport", question_type: str = "surname") -> Sample:
    return Sample(id="s", question="Вопрос?", doc_class=doc_class, question_type=question_type)


def test_resolution_order(tmp_path: Path) -> None:
    prompts = task(
        tmp_path,
        system="default system",
        user="default: {{ question }}",
        by_doc_class={"passport": {"user": "class: {{ doc_class }}", "system": "class system"}},
        by_doc_question={"passport surname": {"user": "pair: {{ question_type }}"}},
    )
    rendered = prompts.render(sample())
    assert rendered.user == "pair: surname" and rendered.system == "class system"
    assert prompts.render(sample(question_type="birth_date")).user == "class: passport"
    assert prompts.render(sample(doc_class="snils")).user == "default: Вопрос?"
    assert prompts.render(sample(doc_class="snils")).system == "default system"

    fixed = task(tmp_path, user="x", fixed_user="fixed", fixed_system="fixed system",
                 by_doc_question={"passport surname": {"user": "pair"}})  # fmt: skip
    assert (
        fixed.render(sample()).user == "fixed" and fixed.render(sample()).system == "fixed system"
    )


def test_doc_class_alone_selects_a_prompt(tmp_path: Path) -> None:
    """The original needed doc_class and question_type together; here each level works alone."""
    prompts = task(tmp_path, by_doc_class={"invoice": {"user": "счёт"}})
    assert prompts.render(sample(doc_class="invoice", question_type="anything")).user == "счёт"


def test_collection_and_system_file(tmp_path: Path) -> None:
    fx.prompt_collection(tmp_path / "tasks" / "prompts.csv")
    (tmp_path / "tasks" / "system.txt").write_text("\ufeffТы — ассистент.\n", encoding="utf-8")
    prompts = task(tmp_path, collection="prompts.csv", system_file="system.txt",
                   by_doc_class={"invoice": {"user": "class prompt"}})  # fmt: skip
    assert prompts.render(sample()).user == "Назови фамилию владельца паспорта."
    assert prompts.render(sample()).system == "Ты — ассистент."
    assert prompts.render(sample("invoice", "inn")).user == "Какой ИНН у продавца? Ответь цифрами."
    assert prompts.render(sample("invoice", "total")).user == "class prompt"
    assert prompts.render(sample("snils", "number")).user == "Вопрос?"


def test_collection_fingerprint_follows_its_content(tmp_path: Path) -> None:
    path = fx.prompt_collection(tmp_path / "tasks" / "prompts.csv")
    before = task(tmp_path, collection="prompts.csv").fingerprint()
    fx.prompt_collection(path, rows=["Другой промпт.;passport surname;0"])
    assert task(tmp_path, collection="prompts.csv").fingerprint() != before


def test_collection_unknown_doc_class_names_file_and_line(tmp_path: Path) -> None:
    path = fx.prompt_collection(
        tmp_path / "tasks" / "prompts.csv",
        rows=["a;passport surname;0", "b;pasport inn;0"],
    )
    prompts = task(tmp_path, collection="prompts.csv")
    with pytest.raises(
        ConfigError, match=rf"{path}:3: unknown doc_class 'pasport' for dataset 'd'"
    ):
        prompts.collection.check_doc_classes({"passport", "invoice"}, "d")


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["a;passport surname"], None, r"prompts.csv:2: expected 3 columns"),
        (
            ["a;b;c"],
            "text;key;cer",
            r"prompts.csv:1: missing column\(s\) prompt, doc_class_question_type",
        ),
        (["a;passport;0"], None, r"prompts.csv:2: doc_class_question_type must be"),
        (["a;passport surname;0", "b;passport  surname;0"], None, r"prompts.csv:3: duplicate key"),
        (["{{ broken ;passport surname;0"], None, r"prompts.csv:2: template error"),
    ],
)
def test_malformed_collection(tmp_path: Path, rows, header, message) -> None:
    path = tmp_path / "tasks" / "prompts.csv"
    path.parent.mkdir(parents=True)
    head = header or "prompt;doc_class_question_type;cer"
    path.write_text("\n".join([head, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        task(tmp_path, collection="prompts.csv")


def test_missing_system_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"t.yaml: prompt.system_file: .*nope.txt not found"):
        task(tmp_path, system_file="nope.txt")
