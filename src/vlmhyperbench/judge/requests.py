"""What a judge is asked about one sample: its messages, rendered from the judge metric's
templates, and the key of that request in the judge's journal.

The templates are Jinja2 (sandboxed; an undefined variable is an error naming the sample), as a
task's prompts are, and see:

* ``question`` - the sample's question; ``answers`` - its reference answers (a list);
* ``prediction`` - the model's answer being judged ("" when it has none);
* ``sample`` - the whole manifest record (``sample.meta.…``, ``sample.doc_class``…);
* ``task`` - the task's name;
* a ``pairwise`` verdict's templates also see ``answer_a`` and ``answer_b``, the two answers in
  the order asked (the model's first, then swapped: :mod:`.pairwise`); others may not use them.

With ``image`` the sample's images go to the judge too, as data URLs before the text (as the
predict stage sends them). The request key hashes what is sent - the rendered texts, the
images' bytes (by their sha256) and the generation parameters - with the judge's identity: a
changed prediction, template or sample re-asks exactly the samples whose request changed, and
nothing else does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from vlmhyperbench.datasets.digest import image_sha256
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.inference.messages import build_messages
from vlmhyperbench.inference.prompts import RenderedPrompt, compile_template, template_environment
from vlmhyperbench.runtime.io import stable_hash


@dataclass(frozen=True)
class JudgeTemplates:
    """A judge metric's prompt: its templates, and whether the images are sent too."""

    user: str
    system: str | None = None
    image: bool = False


#: What only a pairwise verdict's templates see (and must use).
PAIRWISE_VARIABLES = ("answer_a", "answer_b")


def template_variables(source: str) -> set[str]:
    """The variables a judge template reads (a syntax error raises ``TemplateSyntaxError``)."""
    return jinja2.meta.find_undeclared_variables(template_environment().parse(source))


def judge_context(
    sample: Sample, prediction: str, task: str, pair: tuple[str, str] | None = None
) -> dict[str, Any]:
    context = {
        "question": sample.question,
        "answers": sample.answers,
        "prediction": prediction,
        "sample": sample.model_dump(mode="json"),
        "task": task,
    }
    if pair is not None:
        context.update(zip(PAIRWISE_VARIABLES, pair, strict=True))
    return context


def render_judge_prompt(
    templates: JudgeTemplates,
    sample: Sample,
    prediction: str,
    task: str,
    pair: tuple[str, str] | None = None,
) -> RenderedPrompt:
    """The judge's system and user texts for ``sample`` (``pair``: a pairwise verdict's
    answer A and answer B); a template error names the sample."""
    context = judge_context(sample, prediction, task, pair)
    try:
        system = compile_template(templates.system).render(context) if templates.system else None
        user = compile_template(templates.user).render(context)
    except jinja2.TemplateError as exc:
        raise ValueError(f"task {task!r}, sample {sample.id!r}: judge prompt: {exc}") from exc
    return RenderedPrompt(system=system.strip() if system else None, user=user.strip())


def judge_messages(
    templates: JudgeTemplates, prompt: RenderedPrompt, sample: Sample, dataset_dir: Path
) -> list[dict[str, Any]]:
    """The chat messages sent to the judge (the images only with ``image``)."""
    images = [dataset_dir / image for image in sample.images] if templates.image else []
    return build_messages(prompt, images)


def judge_request_key(
    judge: dict[str, Any],
    templates: JudgeTemplates,
    prompt: RenderedPrompt,
    sample: Sample,
    dataset_dir: Path,
    generation: dict[str, Any],
) -> str:
    """The key of the request in the judge's journal: ``judge`` (its identity: the judge
    model's entry and served name), what is sent, and how it is generated."""
    images = (
        [image_sha256(dataset_dir / image) for image in sample.images] if templates.image else []
    )
    return stable_hash(
        {
            "judge": judge,
            "system": prompt.system,
            "user": prompt.user,
            "images": images,
            "generation": generation,
        }
    )
