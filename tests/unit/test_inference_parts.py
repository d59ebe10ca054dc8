"""Journal, prompts, fingerprints, selection and request building — the predict stage's parts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.helpers import REPO
from vlmhyperbench.config import load_experiment
from vlmhyperbench.config.schema import TaskEntry
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.launcher import wrapper_command
from vlmhyperbench.inference.messages import SampleInputError, build_messages
from vlmhyperbench.inference.prompts import RenderedPrompt, TaskPrompts
from vlmhyperbench.pipeline.fingerprints import effective_generation, predict_fingerprint
from vlmhyperbench.pipeline.selection import select_samples


@pytest.fixture(scope="module")
def experiment():
    return load_experiment(config_path=REPO / "config" / "config.yaml", workdir=REPO)


def sample(**fields) -> Sample:
    return Sample(**{"id": "s1", "question": "Какая фамилия?", "answers": ["Иванов"], **fields})


def test_journal_resumes_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, "fp1")
    journal.append({"id": "a", "prediction": "x", "error": None, "request": "ra"})
    journal.append(
        {"id": "b", "prediction": None, "error": "HTTP 503", "retryable": True, "request": "rb"}
    )
    with path.open("a") as handle:
        handle.write('{"id": "c", "predic')  # killed mid-write
    again = Journal(path, "fp1")
    assert again.done("a", "ra") and not again.done("b", "rb") and not again.done("c", "rc")


def test_journal_answer_counts_only_for_the_request_it_answered(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl", "fp1")
    journal.append({"id": "a", "prediction": "x", "error": None, "request": "r1"})
    assert journal.done("a", "r1") and not journal.done("a", "r2")  # the sample was edited


def test_journal_of_another_fingerprint_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    Journal(path, "fp1").append({"id": "a", "prediction": "x", "error": None, "request": "r"})
    fresh = Journal(path, "fp2")
    assert not fresh.done("a", "r")
    assert (tmp_path / "j.jsonl.stale").exists()
    assert json.loads(path.read_text().splitlines()[0]) == {"fingerprint": "fp2"}


def test_prompt_renders_sample_fields_and_labels(experiment) -> None:
    task = experiment.registry.tasks["demo_doc_class"]
    prompts = TaskPrompts.load(task, experiment.registry.path_of("tasks", "demo_doc_class"))
    rendered = prompts.render(sample(doc_class="passport"))
    assert "passport, snils, invoice" in rendered.user
    assert rendered.system and "классификации" in rendered.system


def test_prompt_with_an_unknown_variable_names_task_and_sample(experiment) -> None:
    entry = experiment.registry.tasks["demo_field_vqa"].model_dump()
    entry["prompt"] = {"system": None, "user": "{{ nonexistent }}"}
    prompts = TaskPrompts.load(
        TaskEntry.model_validate(entry), REPO / "config" / "tasks" / "x.yaml"
    )
    with pytest.raises(ValueError, match=r"task 'demo_field_vqa', sample 's1'.*nonexistent"):
        prompts.render(sample())


def test_predict_fingerprint_follows_prompt_but_not_metrics(experiment) -> None:
    registry = experiment.registry
    model, task = registry.models["tiny-llava"], registry.tasks["demo_field_vqa"]
    dataset = registry.datasets[task.dataset]
    task_file = registry.path_of("tasks", "demo_field_vqa")

    def fingerprint(model, task) -> str:
        return predict_fingerprint(
            model, task, dataset, TaskPrompts.load(task, task_file).fingerprint()
        )

    base = fingerprint(model, task)
    more_metrics = task.model_copy(update={"metrics": [*task.metrics, "cer"]})
    assert fingerprint(model, more_metrics) == base
    prompt = task.prompt.model_copy(update={"user": "Q: {{ question }}"})
    assert fingerprint(model, task.model_copy(update={"prompt": prompt})) != base
    resources = model.resources.model_copy(update={"mem_mb": 9})
    assert fingerprint(model.model_copy(update={"resources": resources}), task) == base
    generation = model.generation.model_copy(update={"temperature": 0.7})
    assert fingerprint(model.model_copy(update={"generation": generation}), task) != base


def test_task_generation_overrides_the_model(experiment) -> None:
    registry = experiment.registry
    merged = effective_generation(registry.models["tiny-llava"], registry.tasks["demo_doc_class"])
    assert merged["max_tokens"] == 8 and merged["temperature"] == 0.0


def test_filters_work_alone(experiment) -> None:
    task = experiment.registry.tasks["demo_field_vqa"]
    samples = [
        sample(id="1", doc_class="passport", question_type="surname", subset="clean"),
        sample(id="2", doc_class="snils", question_type="surname", subset="blur"),
        sample(id="3", doc_class="passport", question_type="birth_date", subset="blur"),
    ]
    only_class = task.model_copy(
        update={"filters": task.filters.model_copy(update={"doc_class": ["passport"]})}
    )
    assert [s.id for s in select_samples(only_class, samples)] == ["1", "3"]
    only_subset = task.model_copy(
        update={"filters": task.filters.model_copy(update={"subset": ["blur"]})}
    )
    assert [s.id for s in select_samples(only_subset, samples)] == ["2", "3"]
    limited = task.model_copy(update={"limit": 2})
    assert [s.id for s in select_samples(limited, samples)] == ["1", "2"]


def test_messages_carry_images_as_data_urls(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG fake")
    messages = build_messages(RenderedPrompt(system="sys", user="вопрос"), [image])
    assert messages[0] == {"role": "system", "content": "sys"}
    url = messages[1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == b"\x89PNG fake"
    assert messages[1]["content"][1] == {"type": "text", "text": "вопрос"}
    with pytest.raises(SampleInputError, match=r"image not found: .*missing.png"):
        build_messages(RenderedPrompt(system=None, user="q"), [tmp_path / "missing.png"])


def test_wrapper_command_from_a_model_entry(experiment, tmp_path: Path) -> None:
    model = experiment.registry.models["tiny-llava"]
    command = wrapper_command(model, "/m", 1234, media_roots=[tmp_path])
    assert command[1:4] == ["-m", "vlmhb_wrapper", "serve"]
    joined = " ".join(command)
    assert "--backend hf" in joined and "--model /m" in joined and "--port 1234" in joined
    assert "--host 127.0.0.1" in joined and f"--allowed-media-root {tmp_path}" in joined
    assert "--served-model-name tiny-llava" in joined and "--threads 1" in joined


def test_the_stall_timeout_sets_the_wrappers_health_watchdog(tmp_path: Path) -> None:
    from vlmhb_wrapper import cli

    from vlmhyperbench.config.schema import ModelEntry

    model = ModelEntry.model_validate(
        {
            "name": "remote",
            "backend": "openai",
            "source": {"type": "hub", "id": "org/model"},
            "endpoint": {"base_url": "http://127.0.0.1:9/v1"},
        }
    )
    command = wrapper_command(model, "org/model", 1, [tmp_path], stall_timeout_s=60)
    args = cli.build_parser().parse_args(command[3:])
    assert args.engine_health_interval == 10 and args.engine_health_failures == 3


def test_infrastructure_failures_are_told_from_the_samples_own() -> None:
    import httpx
    import openai

    from vlmhyperbench.inference.runner import _backoff, _infrastructure_failure

    def status(code: int, headers: dict | None = None) -> openai.APIStatusError:
        request = httpx.Request("POST", "http://server/v1/chat/completions")
        response = httpx.Response(code, request=request, headers=headers)
        return openai.APIStatusError(f"status {code}", response=response, body=None)

    for code in (500, 502, 503, 429, 408):
        assert _infrastructure_failure(status(code)) == f"HTTP {code}: status {code}"
    for code in (400, 404, 413, 422):
        assert _infrastructure_failure(status(code)) is None  # the sample's own
    request = httpx.Request("POST", "http://server/v1/chat/completions")
    refused = _infrastructure_failure(openai.APIConnectionError(request=request))
    assert refused is not None and refused.startswith("connection failed")
    assert _infrastructure_failure(openai.APITimeoutError(request=request)) == (
        "the request timed out"
    )
    assert [_backoff(n, status(503)) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert _backoff(0, status(429, {"retry-after": "3"})) == 3


def test_a_task_may_send_its_images_after_the_text(tmp_path: Path) -> None:
    """MWS-Vision-Bench's runner sends the question, then the page; its tasks say so."""
    from vlmhyperbench.config.schema import TaskEntry
    from vlmhyperbench.inference.prompts import TaskPrompts
    from vlmhyperbench.inference.runner import request_body

    (tmp_path / "p.png").write_bytes(b"\x89PNG fake")
    sample = Sample(id="1", images=["p.png"], question="Что на странице?", answers=["x"])
    generation = {"max_tokens": 8, "temperature": 0.0}
    orders = {}
    for position in ("before_text", "after_text"):
        task = TaskEntry.model_validate(
            {"name": "t", "kind": "vqa", "dataset": "d", "metrics": ["exact_match"],
             "prompt": {"user": "{{ question }}", "image_position": position}}
        )  # fmt: skip
        prompts = TaskPrompts.load(task, tmp_path / "t.yaml")
        body, _ = request_body(task, prompts, tmp_path, sample, generation, "m")
        orders[position] = [part["type"] for part in body["messages"][-1]["content"]]
    assert orders == {"before_text": ["image_url", "text"], "after_text": ["text", "image_url"]}
