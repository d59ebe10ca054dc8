"""A judge metric's registry entry is checked before any job, each problem naming the file and
key; a valid one plans a judge job per (judge, model, task) and a judge server per served judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workdir, read_yaml, write_yaml
from vlmhyperbench.config import ConfigError, load_experiment
from vlmhyperbench.pipeline.plan import Plan

TASK = "demo_field_vqa"
PROMPT = {"user": "Эталон: {{ answers | join(' | ') }}\nОтвет модели: {{ prediction }}"}
PAIR_PROMPT = {"user": "Эталон: {{ answers | join(' | ') }}\nA: {{ answer_a }}\nB: {{ answer_b }}"}
API_JUDGE = {"backend": "openai", "source": {"type": "hub", "id": "x/judge"},
             "endpoint": {"base_url": "http://127.0.0.1:9/v1"}}  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=[TASK])
    write_yaml(workdir / "config" / "models" / "api-judge.yaml", API_JUDGE)
    return workdir


def with_metric(workdir: Path, judge: dict, task_metrics: list[str] | None = None) -> Path:
    path = workdir / "config" / "metrics" / "judged.yaml"
    write_yaml(path, {"judge": judge, "task_kinds": ["vqa"]})
    config_path = workdir / "config" / "config.yaml"
    config = read_yaml(config_path)
    metrics = task_metrics or [*read_yaml(workdir / "config" / "tasks" / f"{TASK}.yaml")["metrics"]]
    config["overrides"]["tasks"] = {TASK: {"metrics": [*metrics, "judged"]}}
    write_yaml(config_path, config)
    return path


def load(workdir: Path):
    return load_experiment(config_path=workdir / "config" / "config.yaml", workdir=workdir)


@pytest.mark.parametrize(
    ("judge", "expected"),
    [
        ({"models": ["nobody"], "prompt": PROMPT}, "judge.models[0]: unknown model 'nobody'"),
        ({"models": ["tesseract-rus"], "prompt": PROMPT},
         "judge.models[0]: 'tesseract-rus' cannot judge: the tesseract backend answers no prompt"),
        ({"models": ["api-judge"], "prompt": {"user": "{{ prediction "}},
         "judge.prompt.user: template error on line 1"),
        ({"models": ["api-judge"], "prompt": PROMPT, "parse": {"regex": "(unclosed"}},
         "judge.parse"),
        ({"models": ["api-judge"], "prompt": PROMPT, "verdict": {"type": "score", "min": 5,
                                                                 "max": 1}},
         "judge.verdict: min must be below max, got 5.0 and 1.0"),
        ({"models": ["tiny-llava"], "prompt": PROMPT},
         "judge.models[0]: 'tiny-llava' is a model of this run and cannot also judge it"),
        ({"models": ["api-judge"], "prompt": PROMPT,
          "only_when": {"metric": "bleu", "below": 1.0}},
         "judge.only_when.metric: 'bleu' must be a rule-based metric of every task"),
        ({"models": ["api-judge"], "prompt": PAIR_PROMPT, "verdict": {"type": "pairwise"}},
         "judge.verdict: a pairwise verdict names the model it compares against"),
        ({"models": ["api-judge"], "prompt": PROMPT,
          "verdict": {"type": "pairwise", "against": "tiny-llava"}},
         "judge.prompt: a pairwise prompt shows both answers; it does not use ['answer_a', "
         "'answer_b']"),
        ({"models": ["api-judge"], "prompt": PAIR_PROMPT},
         "judge.prompt: ['answer_a', 'answer_b'] exist only for a pairwise verdict"),
        ({"models": ["api-judge"], "prompt": PAIR_PROMPT,
          "verdict": {"type": "pairwise", "against": "tiny-idefics3"}},
         "judge.verdict.against: the pairwise verdict compares against 'tiny-idefics3', which "
         "this run does not run on the task 'demo_field_vqa'"),
        ({"models": ["api-judge"], "prompt": PAIR_PROMPT,
          "verdict": {"type": "pairwise", "against": "tiny-llava"},
          "only_when": {"metric": "exact_match", "below": 1.0}},
         "judge: only_when does not apply to a pairwise verdict"),
    ],
)  # fmt: skip
def test_a_bad_judge_block_is_refused_naming_file_and_key(
    workdir: Path, judge: dict, expected: str
) -> None:
    path = with_metric(workdir, judge)
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: {expected}" in str(err.value)


def test_an_implementation_and_a_judge_are_one_or_the_other(workdir: Path) -> None:
    path = workdir / "config" / "metrics" / "both.yaml"
    write_yaml(path, {"implementation": "vlmhyperbench.metrics.text:exact_match",
                      "judge": {"models": ["api-judge"], "prompt": PROMPT},
                      "task_kinds": ["vqa"]})  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load(workdir)
    assert f"{path}: give an implementation or a judge block, not both or neither" in str(err.value)


def test_judges_plan_their_jobs_and_a_served_judge_its_own_server(workdir: Path) -> None:
    write_yaml(workdir / "config" / "models" / "served-judge.yaml",
               {**read_yaml(workdir / "config" / "models" / "tiny-idefics3.yaml")})  # fmt: skip
    with_metric(workdir, {"models": ["api-judge", "served-judge"], "prompt": PROMPT})
    experiment = load(workdir)
    assert experiment.judgements() == [
        ("judged", "api-judge", "tiny-llava", TASK),
        ("judged", "served-judge", "tiny-llava", TASK),
    ]
    assert sorted(experiment.servers) == ["served-judge", "tiny-llava"]  # the API one has none
    plan = Plan(experiment)
    assert plan.judge_metrics() == ["judged"] and "judged" not in plan.rule_metrics()
    assert plan.judgements_for_score("judged", "tiny-llava", TASK) == [
        f"results/judgements/judged/api-judge/tiny-llava/{TASK}.jsonl",
        f"results/judgements/judged/served-judge/tiny-llava/{TASK}.jsonl",
    ]
    document = experiment.variants_document()["judge_metrics"]["judged"]
    assert document["judges"] == ["api-judge", "served-judge"] and document["invalid"] == "exclude"


def test_the_example_judge_experiment_plans_with_its_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.helpers import REPO

    config = {**read_yaml(REPO / "config" / "config.yaml"),
              **read_yaml(REPO / "config" / "examples" / "judge.yaml")}  # fmt: skip
    experiment = load_experiment(config, config_path=REPO / "config" / "config.yaml", workdir=REPO)
    assert experiment.judgements() == [
        ("judge_answer_correct", "example-judge", "tiny-llava", TASK)
    ]
    endpoint = experiment.registry.models["example-judge"].endpoint
    monkeypatch.delenv("VLMHB_JUDGE_URL", raising=False)
    with pytest.raises(ValueError, match=r"VLMHB_JUDGE_URL .* is not set"):
        endpoint.url()
    monkeypatch.setenv("VLMHB_JUDGE_URL", "http://127.0.0.1:8000/v1/")
    assert (
        endpoint.url() == "http://127.0.0.1:8000/v1" and endpoint.described() == "$VLMHB_JUDGE_URL"
    )


def test_a_pairwise_metric_plans_the_other_models_predictions_as_input(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava", "tiny-idefics3"], tasks=[TASK])
    write_yaml(workdir / "config" / "models" / "api-judge.yaml", API_JUDGE)
    pairwise = {"type": "pairwise", "against": "tiny-idefics3"}
    with_metric(workdir, {"models": ["api-judge"], "prompt": PAIR_PROMPT, "verdict": pairwise})
    plan = Plan(load(workdir))
    assert plan.against_predictions("judged", "tiny-llava", TASK) == plan.predictions(
        "tiny-idefics3", TASK
    )
    assert plan.against_predictions("judged", "tiny-idefics3", TASK) is None  # ties, unasked
    assert len(plan.judge_groups()["api-judge"]) == 2  # both models get a judgements file
