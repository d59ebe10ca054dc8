"""The judge stand-in (``tests/judge_standin.py``) as a judge client sees it: a subprocess on a
free port, called with the official ``openai`` client. Its verdicts follow its rule, its flips
and garbage follow ``flipped()``/``garbled()``, it fails and dies when told, and it counts."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from subprocess import Popen

import httpx
import openai
import pytest

from tests.judge_standin import GARBAGE_REPLY, flipped, garbled, judge
from vlmhyperbench.inference.launcher import wrapper_process

STANDIN = Path(__file__).resolve().parents[1] / "judge_standin.py"
MODEL = "standin-judge"


@contextmanager
def standin(tmp_path: Path, *options: str, name: str = "judge") -> Iterator[tuple[str, Popen]]:
    def command(port: int) -> list[str]:
        return [sys.executable, str(STANDIN), "--port", str(port), *options]

    with wrapper_process(command, tmp_path / f"{name}.log", startup_timeout_s=30) as running:
        yield running


def client(url: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=10, **kwargs)


def prompt(answers: list[str], prediction: str) -> str:
    return (
        "Ты проверяешь ответы модели на вопросы по документу.\n"
        "Вопрос: Какой город указан в графе «Место рождения»?\n"
        f"Эталон: {' | '.join(answers)}\n"
        f"Ответ модели: {prediction}\n"
        'Ответь JSON: {"verdict": "correct"} или {"verdict": "incorrect"}.'
    )


def ask(judge_client: openai.OpenAI, answers: list[str], prediction: str, **kwargs):
    messages = [
        {"role": "system", "content": "Ты строгий судья."},
        {"role": "user", "content": prompt(answers, prediction)},
    ]
    return judge_client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, **kwargs
    )


def verdict(completion) -> str | int:
    return json.loads(completion.choices[0].message.content)["verdict"]


def requests_seen(url: str) -> dict:
    return httpx.get(f"{url.removesuffix('/v1')}/standin/requests").json()


# Samples: (answers, prediction), some correct by the exact rule, some not.
SAMPLES = [([f"Город {i}", f"г. {i}"], f"город {i}" if i % 3 else f"село {i}") for i in range(48)]


@pytest.fixture(scope="module")
def default_judge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("judge")
    record = tmp / "requests.jsonl"
    with standin(tmp, "--record", str(record)) as (url, _):
        yield url, record


def test_the_exact_rule_on_russian_prompts(default_judge: tuple[str, Path]) -> None:
    url, _ = default_judge
    judge_client = client(url)
    assert [m.id for m in judge_client.models.list()] == [MODEL]
    cases = [
        (["Москва"], "Москва", "correct"),
        (["Москва"], "  МОСКВА ", "correct"),  # stripped and casefolded
        (["Санкт-Петербург", "Ленинград"], "ленинград", "correct"),  # any of the answers
        (["Москва"], "Санкт-Петербург", "incorrect"),
        (["Москва"], "г. Москва", "incorrect"),  # exact, not contains
        (["Straße"], "STRASSE", "correct"),  # casefold, not lower
    ]
    for answers, prediction, expected in cases:
        completion = ask(judge_client, answers, prediction)
        assert verdict(completion) == expected, (answers, prediction)
        assert judge(prediction, answers) == (expected == "correct")
        assert completion.model == MODEL
        assert completion.system_fingerprint == "fp_standin_1"
        assert completion.id.startswith("chatcmpl-standin-")
        assert completion.choices[0].finish_reason == "stop"
        words = 3 + len(prompt(answers, prediction).split())  # 3: "Ты строгий судья."
        assert completion.usage.prompt_tokens == words
        assert completion.usage.completion_tokens == 2  # {"verdict": "correct"}


def test_list_content_messages_use_the_text_parts(default_judge: tuple[str, Path]) -> None:
    url, _ = default_judge
    httpx.delete(f"{url.removesuffix('/v1')}/standin/requests")
    image = "data:image/png;base64,iVBORw0KGgo="
    content = [
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "text", "text": "Вопрос: что на фото?\nЭталон: Кошка | Кот"},
        {"type": "text", "text": "Ответ модели: кот"},
    ]
    messages = [{"role": "user", "content": content}]
    completion = client(url).chat.completions.create(model=MODEL, messages=messages)
    assert verdict(completion) == "correct"
    (entry,) = requests_seen(url)["requests"]
    assert entry["answers"] == ["Кошка", "Кот"] and entry["prediction"] == "кот"
    assert entry["images"] == 1


def test_requests_are_counted_and_recorded(default_judge: tuple[str, Path]) -> None:
    url, record = default_judge
    root = url.removesuffix("/v1")
    httpx.delete(f"{root}/standin/requests")
    lines_before = len(record.read_text().splitlines()) if record.exists() else 0
    judge_client = client(url)
    for answers, prediction in SAMPLES[:5]:
        ask(judge_client, answers, prediction)
    seen = requests_seen(url)
    assert seen["count"] == 5
    assert [(r["answers"], r["prediction"]) for r in seen["requests"]] == SAMPLES[:5]
    assert all(r["status"] == 200 and r["answered"] for r in seen["requests"])
    assert [r["verdict"] for r in seen["requests"]] == [
        "correct" if judge(p, a) else "incorrect" for a, p in SAMPLES[:5]
    ]
    assert seen["requests"][0]["params"]["temperature"] == 0
    assert httpx.delete(f"{root}/standin/requests").json() == {"cleared": 5}
    assert requests_seen(url) == {"count": 0, "requests": []}
    lines = [json.loads(line) for line in record.read_text().splitlines()[lines_before:]]
    assert [(r["answers"], r["prediction"]) for r in lines] == SAMPLES[:5]  # not cleared


def test_flips_are_reproducible_and_match_flipped(tmp_path: Path) -> None:
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                standin(tmp_path, "--flip-fraction", "0.3", "--flip-seed", seed, name=seed)
            )[0]
            for seed in ("1", "2")
        ]
        one, two = (client(url) for url in urls)
        first = [verdict(ask(one, a, p)) for a, p in SAMPLES]
        second = [verdict(ask(two, a, p)) for a, p in SAMPLES]
        # Asked again, in the opposite order: the same verdicts (and the same as flipped()
        # computes in this process, another process with another PYTHONHASHSEED).
        third = [verdict(ask(one, a, p)) for a, p in reversed(SAMPLES)][::-1]
    assert third == first
    for verdicts, seed in ((first, 1), (second, 2)):
        expected = [
            "correct" if judge(p, a) ^ flipped(p, a, 0.3, seed) else "incorrect" for a, p in SAMPLES
        ]
        assert verdicts == expected
    flips = [flipped(p, a, 0.3, 1) for a, p in SAMPLES]
    assert 6 <= sum(flips) <= 24  # about 30 % of 48
    disagree = [x != y for x, y in zip(first, second, strict=True)]
    assert disagree == [flipped(p, a, 0.3, 1) != flipped(p, a, 0.3, 2) for a, p in SAMPLES]
    assert 0 < sum(disagree) < len(SAMPLES)
    assert not any(flipped(p, a, 0.0, 1) for a, p in SAMPLES)
    assert all(flipped(p, a, 1.0, 1) for a, p in SAMPLES)


def test_garbage_replies_have_no_json_verdict(tmp_path: Path) -> None:
    with standin(tmp_path, "--garbage-fraction", "0.4", "--flip-seed", "7") as (url, _):
        judge_client = client(url)
        contents = [ask(judge_client, a, p).choices[0].message.content for a, p in SAMPLES]
        seen = requests_seen(url)["requests"]
    garbage = [garbled(p, a, 0.4, 7) for a, p in SAMPLES]
    assert 0 < sum(garbage) < len(SAMPLES)
    for content, is_garbage, entry in zip(contents, garbage, seen, strict=True):
        assert entry["garbage"] == is_garbage
        assert entry["verdict"] in ("correct", "incorrect")  # meant, even when garbled
        if is_garbage:
            assert content == GARBAGE_REPLY
            assert "{" not in content and "verdict" not in content and "correct" not in content
        else:
            assert json.loads(content) == {"verdict": entry["verdict"]}


def test_score_verdicts_wrapped_in_prose(tmp_path: Path) -> None:
    with standin(tmp_path, "--score", "--prose") as (url, _):
        judge_client = client(url)
        right = ask(judge_client, ["Москва"], "москва").choices[0].message.content
        wrong = ask(judge_client, ["Москва"], "Казань").choices[0].message.content
    for content, score in ((right, 5), (wrong, 1)):
        lines = content.splitlines()
        assert lines[1] == "```json" and lines[3] == "```" and len(lines) == 5
        assert json.loads(lines[2]) == {"verdict": score}
        with pytest.raises(json.JSONDecodeError):
            json.loads(content)


def test_answers_503_then_dies(tmp_path: Path) -> None:
    record = tmp_path / "requests.jsonl"
    options = ["--fail-after", "2", "--fail-count", "2", "--record", str(record)]
    with standin(tmp_path, *options) as (url, process):
        judge_client = client(url)
        assert verdict(ask(judge_client, ["Москва"], "Москва")) == "correct"
        assert verdict(ask(judge_client, ["Москва"], "Тверь")) == "incorrect"
        with pytest.raises(openai.APIStatusError) as first:
            ask(judge_client, ["Москва"], "Омск")
        assert first.value.status_code == 503
        assert "unavailable" in first.value.message
        with pytest.raises(openai.APIStatusError) as second:
            ask(judge_client, ["Москва"], "Томск")
        assert second.value.status_code == 503
        assert process.wait(timeout=5) == 1
        with pytest.raises(openai.APIConnectionError):
            ask(judge_client, ["Москва"], "Москва")
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["status"] for r in lines] == [200, 200, 503, 503]
    assert [r["prediction"] for r in lines] == ["Москва", "Тверь", "Омск", "Томск"]


def test_a_judge_that_recovers_after_failures(tmp_path: Path) -> None:
    options = ["--fail-after", "1", "--fail-status", "429", "--after-failures", "recover"]
    with standin(tmp_path, *options) as (url, process):
        judge_client = client(url)
        assert verdict(ask(judge_client, ["Москва"], "Москва")) == "correct"
        with pytest.raises(openai.RateLimitError):
            ask(judge_client, ["Москва"], "Москва")
        assert verdict(ask(judge_client, ["Москва"], "Москва")) == "correct"
        assert process.poll() is None


def test_refusals_custom_regexes_key_and_delay(tmp_path: Path) -> None:
    options = [
        "--model-name", "judge-b", "--fingerprint", "fp_b", "--api-key", "k",
        "--answers-regex", r"^Reference: (.*)$", "--prediction-regex", r"^Candidate: (.*)$",
        "--rule", "contains", "--delay-ms", "150",
    ]  # fmt: skip
    with standin(tmp_path, *options) as (url, _):
        good = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=10)
        text = "Grade it.\nReference: Paris | Париж\nCandidate: It is Paris, France."
        messages = [{"role": "user", "content": text}]
        started = time.monotonic()
        completion = good.chat.completions.create(model="judge-b", messages=messages)
        assert time.monotonic() - started >= 0.15
        assert json.loads(completion.choices[0].message.content) == {"verdict": "correct"}
        assert completion.model == "judge-b" and completion.system_fingerprint == "fp_b"
        with pytest.raises(openai.AuthenticationError):
            client(url).chat.completions.create(model="judge-b", messages=messages)
        with pytest.raises(openai.NotFoundError):
            good.chat.completions.create(model=MODEL, messages=messages)
        with pytest.raises(openai.BadRequestError, match="does not stream"):
            good.chat.completions.create(model="judge-b", messages=messages, stream=True)
        with pytest.raises(openai.BadRequestError, match="Candidate"):
            no_prediction = [{"role": "user", "content": "Reference: Paris"}]
            good.chat.completions.create(model="judge-b", messages=no_prediction)
        seen = requests_seen(url)
    assert [r["status"] for r in seen["requests"]] == [200, 401, 404, 400, 400]
