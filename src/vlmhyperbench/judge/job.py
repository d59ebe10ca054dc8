"""Asking one judge about one model's answers to one task: cached, resumable, never a guess.

Each answered sample (a prediction without an error; a failed prediction is scored wrong by
the score stage, not judged) becomes one request (:mod:`.requests`). The judge's replies go
into a journal keyed, per sample, on that request's key: a re-run asks nothing, a changed
prediction, template or sample re-asks exactly those samples, and a run that stopped resumes
with the missing ones. The requests go through the predict stage's
:class:`~vlmhyperbench.inference.runner.Sender`: an infrastructure failure of the judge (5xx,
429, 408, a dropped or refused connection, a hung server) is retried, then stops the job
naming the judge and the cause; nothing is journaled for the samples it did not answer. A 4xx
for one request is that sample's ``error``, not a verdict.

The journal keeps the judge's raw reply; the verdict is parsed from it when the judgements file
is written (:func:`~.verdicts.parse_verdict`), so a changed parse rule re-reads the replies and
asks nothing. A reply without a readable verdict is ``invalid``, with why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import openai

from vlmhyperbench.config import Experiment
from vlmhyperbench.config.schema import InferenceSettings, JudgeSpec
from vlmhyperbench.datasets.manifest import Sample, read_manifest
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.prompts import RenderedPrompt
from vlmhyperbench.inference.runner import RunStats, Sender
from vlmhyperbench.inference.server import wait_for_server
from vlmhyperbench.judge.pairwise import (
    ORDERS,
    PAIRWISE_KEYS,
    Order,
    answers_in_order,
    journal_id,
    pairwise_line,
    self_tie_line,
)
from vlmhyperbench.judge.requests import (
    JudgeTemplates,
    judge_messages,
    judge_request_key,
    render_judge_prompt,
)
from vlmhyperbench.judge.verdicts import Kind, parse_verdict
from vlmhyperbench.metrics.judge import accepted_by_rule
from vlmhyperbench.metrics.scoring import read_predictions
from vlmhyperbench.pipeline.fingerprints import model_identity
from vlmhyperbench.pipeline.selection import select_samples
from vlmhyperbench.runtime.io import atomic_write, stable_hash

log = logging.getLogger("vlmhyperbench.judge")

#: What a judgements line holds, in this order.
JUDGEMENT_KEYS = (
    "id", "verdict", "label", "status", "detail", "error", "reply", "judge_model",
    "system_fingerprint", "usage", "latency_ms",
)  # fmt: skip


class JudgeAborted(RuntimeError):
    """The judge failed or stopped answering; its verdicts so far are safe in the journal."""


@dataclass(frozen=True)
class VerdictRule:
    """How a reply is read: the verdict's kind, a score's range, an optional regex."""

    kind: Kind = "binary"
    score_min: float = 1
    score_max: float = 5
    regex: str | None = None


@dataclass(frozen=True)
class JudgeItem:
    """One answered sample, as the judge is asked about it (``id``: its id in the journal; a
    pairwise verdict asks each sample twice, in each ``order``)."""

    id: str
    sample: Sample
    prompt: RenderedPrompt
    key: str
    order: Order | None = None


@dataclass
class JudgeRun:
    """One judge on one (model, task): the items, the journal, and how one is asked."""

    label: str  # e.g. "judge_correct: my-judge on tiny-llava/demo_field_vqa"
    templates: JudgeTemplates
    rule: VerdictRule
    items: list[JudgeItem]
    dataset_dir: Path
    journal: Journal
    settings: InferenceSettings
    served_model: str
    generation: dict[str, Any] = field(default_factory=lambda: {"max_tokens": 256})
    api_key: str = "EMPTY"
    # pairwise, on the compared-against model itself: its answered samples, each a tie
    self_ties: list[str] = field(default_factory=list)

    def pending(self) -> list[JudgeItem]:
        return [item for item in self.items if not self.journal.done(item.id, item.key)]

    def request_key(self, item: JudgeItem) -> str:
        return item.key

    def error_record(self, item: JudgeItem, error: str) -> dict[str, Any]:
        return {"id": item.id, "reply": None, "error": error}

    async def request(self, client: openai.AsyncOpenAI, item: JudgeItem) -> dict[str, Any]:
        messages = judge_messages(self.templates, item.prompt, item.sample, self.dataset_dir)
        started = time.perf_counter()
        completion = await client.chat.completions.create(
            model=self.served_model,
            messages=messages,
            max_tokens=self.generation.get("max_tokens", 256),
            temperature=self.generation.get("temperature", 0.0),
        )
        return {
            "id": item.id,
            "reply": completion.choices[0].message.content or "",
            "error": None,
            "judge_model": completion.model,
            "system_fingerprint": completion.system_fingerprint,
            "usage": completion.usage.model_dump() if completion.usage else None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }


@dataclass(frozen=True)
class ItemMaker:
    """What every request of a judge run shares: renders and keys one (sample, answers)."""

    templates: JudgeTemplates
    task: str
    judge: dict[str, Any]
    dataset_dir: Path
    generation: dict[str, Any]

    def item(self, sample: Sample, prediction: str, order: Order | None = None,
             other: str = "") -> JudgeItem:  # fmt: skip
        pair = None if order is None else answers_in_order(prediction, other, order)
        prompt = render_judge_prompt(self.templates, sample, prediction, self.task, pair)
        key = judge_request_key(self.judge, self.templates, prompt, sample, self.dataset_dir,
                                self.generation)  # fmt: skip
        item_id = sample.id if order is None else journal_id(sample.id, order)
        return JudgeItem(item_id, sample, prompt, key, order)


def answered(predictions: dict[str, dict[str, Any]], sample_id: str) -> str | None:
    """The sample's answer, or ``None`` when it has none (no line, or a failed request)."""
    record = predictions.get(sample_id)
    if record is None or record.get("error") is not None:
        return None
    return record.get("prediction") or ""


def judge_items(
    samples: list[Sample],
    predictions: dict[str, dict[str, Any]],
    maker: ItemMaker,
    accepted: Collection[str] = (),
    against: dict[str, dict[str, Any]] | None = None,
) -> list[JudgeItem]:
    """The samples whose prediction has no error and that a rule did not already accept
    (``accepted``: ``only_when``), each with its rendered prompt and key. Pairwise
    (``against``: the other model's predictions): the samples both answered, each in both
    orders."""
    items = []
    for sample in samples:
        prediction = answered(predictions, sample.id)
        if prediction is None or sample.id in accepted:
            continue
        if against is None:
            items.append(maker.item(sample, prediction))
        elif (other := answered(against, sample.id)) is not None:
            items += [maker.item(sample, prediction, order, other) for order in ORDERS]
    return items


def judgement_line(record: dict[str, Any], rule: VerdictRule) -> dict[str, Any]:
    """A journal record as a judgements line: the verdict read from the reply now."""
    line = {key: record.get(key) for key in JUDGEMENT_KEYS}
    if record.get("error") is not None:
        line.update(verdict=None, label=None, status="error", detail=record["error"])
        return line
    verdict = parse_verdict(
        record.get("reply") or "", rule.kind, score_min=rule.score_min,
        score_max=rule.score_max, regex=rule.regex,
    )  # fmt: skip
    line.update(verdict=verdict.value, label=verdict.label, status=verdict.status,
                detail=verdict.detail)  # fmt: skip
    return line


def _recorded(run: JudgeRun, item: JudgeItem) -> dict[str, Any]:
    record = run.journal.answer(item.id, item.key)
    if record is None:
        raise JudgeAborted(f"{run.label}: no verdict recorded for sample {item.id}")
    return record


def _pairwise_layout(line: dict[str, Any]) -> dict[str, Any]:
    return {key: line.get(key) for key in (*JUDGEMENT_KEYS, *PAIRWISE_KEYS)}


def judgement_lines(run: JudgeRun) -> Iterator[dict[str, Any]]:
    """A line per judged sample, in the items' order (a pairwise sample's two orders make one
    line, with the pairwise keys too), then the compared-against model's ties with itself."""
    for sample_id, group in groupby(run.items, key=lambda item: item.sample.id):
        records = [_recorded(run, item) for item in group]
        if len(records) == 1:
            yield judgement_line(records[0], run.rule)
        else:
            yield _pairwise_layout(pairwise_line(sample_id, *records, regex=run.rule.regex))
    yield from (_pairwise_layout(self_tie_line(sample_id)) for sample_id in run.self_ties)


def write_judgements(run: JudgeRun, output_path: Path) -> None:
    """The judgements file, written atomically from the journal."""
    with atomic_write(output_path) as handle:
        for line in judgement_lines(run):
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


async def _judge(run: JudgeRun, base_url: str) -> RunStats:
    pending = run.pending()
    stats = RunStats(total=len(run.items), already_done=len(run.items) - len(pending), sent=0,
                     errors=0)  # fmt: skip
    log.info("%s: %d answers to judge, %d already judged (journal %s), %d to ask", run.label,
             stats.total, stats.already_done, run.journal.path, len(pending))  # fmt: skip
    if pending:
        sender = Sender(run, base_url, pending, stats)
        await sender.send_all()
        if sender.why_stopped is not None:
            raise JudgeAborted(sender.aborted())
    return stats


def judge(run: JudgeRun, base_url: str, output_path: Path) -> RunStats:
    """Ask the judge at ``base_url`` what the journal lacks, then write the judgements."""
    stats = asyncio.run(_judge(run, base_url))
    write_judgements(run, output_path)
    return stats


def _items(
    spec: JudgeSpec,
    maker: ItemMaker,
    model: str,
    samples: list[Sample],
    predictions: dict[str, dict[str, Any]],
    rule_scores: Path | None,
    against_predictions: Path | None,
) -> tuple[list[JudgeItem], list[str]]:
    """The run's items, and (pairwise, on the compared-against model) its ties with itself."""
    if spec.verdict.against == model:
        return [], [s.id for s in samples if answered(predictions, s.id) is not None]
    accepted: dict[str, float] = {}
    if spec.only_when is not None and rule_scores is not None:
        accepted = accepted_by_rule(rule_scores, spec.only_when.below)
    against = None
    if spec.verdict.against is not None:
        if against_predictions is None:
            raise ValueError(f"pairwise: the predictions of {spec.verdict.against} are missing")
        against = read_predictions(against_predictions)
    return judge_items(samples, predictions, maker, accepted, against), []


def _judge_run(
    experiment: Experiment,
    metric: str,
    judge_name: str,
    model: str,
    task: str,
    manifest_path: Path,
    predictions_path: Path,
    journal_path: Path,
    rule_scores: Path | None = None,
    against_predictions: Path | None = None,
) -> JudgeRun:
    spec = experiment.registry.metrics[metric].judge
    assert spec is not None, metric
    identity = model_identity(experiment.registry.models[judge_name])
    templates = JudgeTemplates(user=spec.prompt.user, system=spec.prompt.system, image=spec.image)
    generation = spec.generation.model_dump()
    dataset_dir = manifest_path.parent.resolve()
    maker = ItemMaker(templates, task, identity, dataset_dir, generation)
    samples = select_samples(experiment.registry.tasks[task], read_manifest(manifest_path))
    items, self_ties = _items(spec, maker, model, samples, read_predictions(predictions_path),
                              rule_scores, against_predictions)  # fmt: skip
    rule = VerdictRule(spec.verdict.type, spec.verdict.min, spec.verdict.max,
                       spec.parse.regex if spec.parse else None)  # fmt: skip
    return JudgeRun(
        label=f"{metric}: {judge_name} on {model}/{task}", templates=templates, rule=rule,
        items=items, dataset_dir=dataset_dir, journal=Journal(journal_path, stable_hash(identity)),
        settings=experiment.config.inference, served_model=judge_name, generation=generation,
        self_ties=self_ties,
    )  # fmt: skip


def run_judge_job(
    experiment: Experiment,
    metric: str,
    judge_name: str,
    model: str,
    task: str,
    *,
    manifest_path: Path,
    predictions_path: Path,
    output_path: Path,
    journal_path: Path,
    server_path: Path | None = None,
    rule_scores: Path | None = None,
    against_predictions: Path | None = None,
) -> RunStats:
    """Ask the judge (at its endpoint, or its serve job's server) what the journal lacks, and
    write the judgements; with nothing to ask, no server is needed."""
    run = _judge_run(experiment, metric, judge_name, model, task, manifest_path,
                     predictions_path, journal_path, rule_scores, against_predictions)  # fmt: skip
    if not run.pending():
        log.info("%s: every answer is judged in the journal", run.label)
        write_judgements(run, output_path)
        return RunStats(total=len(run.items), already_done=len(run.items), sent=0, errors=0)
    entry = experiment.registry.models[judge_name]
    if entry.endpoint is not None:
        run.api_key = entry.endpoint.api_key() or run.api_key
        run.served_model = entry.endpoint.model or judge_name
        return judge(run, entry.endpoint.url(), output_path)
    if server_path is None:
        raise ValueError(f"the judge {judge_name} has no endpoint and no server status file")
    status = wait_for_server(server_path, judge_name)
    run.served_model = status.get("model") or judge_name
    return judge(run, status["base_url"], output_path)
