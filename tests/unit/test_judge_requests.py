"""What a judge is asked: templates rendered per sample, and the request key that decides
which samples a re-run asks again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.judge_standin import DEFAULT_ANSWERS_REGEX, DEFAULT_PREDICTION_REGEX
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.judge.requests import (
    JudgeTemplates,
    judge_messages,
    judge_request_key,
    render_judge_prompt,
)

USER = """Вопрос: {{ question }}
Эталон: {{ answers | join(' | ') }}
Ответ модели: {{ prediction }}
Класс: {{ sample.doc_class }}, задача {{ task }}
Ответь JSON: {"verdict": "correct"} или {"verdict": "incorrect"}."""
TEMPLATES = JudgeTemplates(user=USER, system="Ты строгий проверяющий.")
JUDGE = {"model": "standin-judge", "entry": {"backend": "openai"}}
GENERATION = {"max_tokens": 64, "temperature": 0.0}


def sample(**changes: object) -> Sample:
    fields = {"id": "s1", "images": ["p1.png"], "question": "Дата выдачи?",
              "answers": ["28.10.1973", "28 октября 1973 г."], "doc_class": "passport"}  # fmt: skip
    return Sample(**{**fields, **changes})


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    Image.new("RGB", (4, 4), "white").save(tmp_path / "p1.png")
    return tmp_path


def key(dataset_dir: Path, templates=TEMPLATES, prediction="28.10.1973", judge=JUDGE, **changes):
    s = sample(**changes)
    prompt = render_judge_prompt(templates, s, prediction, "demo_field_vqa")
    return judge_request_key(judge, templates, prompt, s, dataset_dir, GENERATION)


def test_the_templates_see_question_answers_prediction_sample_and_task(dataset_dir: Path) -> None:
    prompt = render_judge_prompt(TEMPLATES, sample(), "28.10.1973", "demo_field_vqa")
    assert prompt.system == "Ты строгий проверяющий."
    assert prompt.user.splitlines()[:4] == [
        "Вопрос: Дата выдачи?",
        "Эталон: 28.10.1973 | 28 октября 1973 г.",
        "Ответ модели: 28.10.1973",
        "Класс: passport, задача demo_field_vqa",
    ]
    # what the stand-in judge reads back out of it
    assert (
        re.search(DEFAULT_ANSWERS_REGEX, prompt.user, re.M)[1] == "28.10.1973 | 28 октября 1973 г."
    )
    assert re.search(DEFAULT_PREDICTION_REGEX, prompt.user, re.M)[1] == "28.10.1973"
    text_only = judge_messages(TEMPLATES, prompt, sample(), dataset_dir)
    assert [part["type"] for part in text_only[1]["content"]] == ["text"]
    with_image = judge_messages(
        JudgeTemplates(user=USER, image=True), prompt, sample(), dataset_dir
    )
    assert [part["type"] for part in with_image[-1]["content"]] == ["image_url", "text"]
    assert with_image[-1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_an_undefined_variable_names_the_sample() -> None:
    with pytest.raises(ValueError, match=r"sample 's1': judge prompt: .*'refernce' is undefined"):
        render_judge_prompt(JudgeTemplates(user="{{ refernce }}"), sample(), "x", "t")


def test_the_key_changes_with_what_is_sent_and_only_with_it(dataset_dir: Path) -> None:
    base = key(dataset_dir)
    assert key(dataset_dir) == base
    assert key(dataset_dir, prediction="1973") != base  # a changed prediction
    assert key(dataset_dir, question="Дата?") != base  # an edited sample
    assert key(dataset_dir, templates=JudgeTemplates(user=USER + " Кратко.")) != base
    assert key(dataset_dir, judge={**JUDGE, "model": "other-judge"}) != base  # another judge
    assert key(dataset_dir, subset="blur") == base  # a field no template uses: not re-asked
    # the images count only when they are sent
    with_image = JudgeTemplates(user=USER, image=True)
    before = key(dataset_dir, templates=with_image)
    Image.new("RGB", (4, 4), "black").save(dataset_dir / "p1.png")
    assert key(dataset_dir, templates=with_image) != before
    assert key(dataset_dir) == base
