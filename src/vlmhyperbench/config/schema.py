"""Pydantic models of the registry entries and the experiment config: every rule about what a
config may hold is written here, once.

Every model forbids unknown keys, so a typo (``max_model_lenght``) is an error, not a silent
default. ``workflow/schemas/config.schema.yaml`` is generated from :class:`ExperimentConfig`
(``python -m vlmhyperbench.config.json_schema``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=100)]

TaskKind = Literal["vqa", "classification", "extraction", "ocr", "ordering"]
# What each backend can serve and needs is described in vlmhyperbench.pipeline.backend_specs.
BackendName = Literal["hf", "vllm", "sglang", "openai", "tesseract"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrictTypes(Strict):
    """The experiment config's own settings take JSON's types as they are (``"4"`` is not an
    int), as its JSON schema says."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --------------------------------------------------------------------------- datasets
class GeneratedSource(Strict):
    """A dataset made by a registered generator (the synthetic demo documents)."""

    type: Literal["generated"]
    generator: Literal["demo_documents"] = "demo_documents"
    params: dict[str, Any] = Field(default_factory=dict)


class LocalSource(Strict):
    """A folder that already holds ``manifest.jsonl`` + images (absolute, or relative to the
    workdir)."""

    type: Literal["local"]
    path: str


ImportFormat = Literal[
    "vqa_csv", "field_json", "class_folders", "multipage", "hf_disk", "mws_vision"
]


class ImportSource(Strict):
    """A dataset in another layout (the original VLMHyperBench formats, a saved HF dataset),
    converted into the manifest format by an importer; ``options`` are the importer's own."""

    type: Literal["import"]
    format: ImportFormat
    path: str
    options: dict[str, Any] = Field(default_factory=dict)


S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\s]*[^\s/]$"


class S3DatasetSource(Strict):
    """A manifest-format dataset under an S3 prefix (``manifest.jsonl`` + ``images/``), read through
    the storage plugin and kept on local disk. Address it by an immutable, versioned key
    (``s3://bucket/datasets/passports/v3``): a kept local copy does not notice an object that was
    changed in place, so publish a new version instead (``vlmhb dataset push`` refuses to
    overwrite)."""

    type: Literal["s3"]
    uri: str = Field(pattern=S3_URI_PATTERN)
    images: str = Field(default="images", pattern=r"^[A-Za-z0-9_.-]+$")


DatasetSource = Annotated[
    GeneratedSource | LocalSource | ImportSource | S3DatasetSource, Field(discriminator="type")
]


#: ``base: <entry>``: the entry is a variant of another of its kind, deep-merged over it (only
#: what differs is written); see :func:`vlmhyperbench.config.registry.load_registry`.
Base = Annotated[Name | None, Field(default=None)]


class DatasetEntry(Strict):
    name: Name
    base: Base
    description: str = ""
    version: str = "1"
    source: DatasetSource


# --------------------------------------------------------------------------- models
class TinySource(Strict):
    """A tiny random-weight VLM built locally from transformers configs (tests, demo)."""

    type: Literal["tiny"]
    arch: Literal["llava", "idefics3"]
    seed: int = 0


class HubSource(Strict):
    type: Literal["hub"]
    id: str
    revision: str = "main"


class LocalModelSource(Strict):
    type: Literal["local"]
    path: str


class S3ModelSource(Strict):
    """A model folder (weights, config, processor) under an S3 prefix, synced to local disk
    before the predict job starts. Use an immutable, versioned key, as for datasets."""

    type: Literal["s3"]
    uri: str = Field(pattern=S3_URI_PATTERN)


ModelSource = Annotated[
    TinySource | HubSource | LocalModelSource | S3ModelSource, Field(discriminator="type")
]


class Endpoint(Strict):
    """An already running OpenAI-compatible server to use instead of starting the wrapper: at
    ``base_url``, or at the URL in the environment variable ``base_url_env`` when the job
    runs (one config for any server, e.g. a judge)."""

    base_url: HttpUrl | None = None
    base_url_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_key_env: str | None = None
    model: str | None = None  # the served model name, when it differs from the entry's name

    @model_validator(mode="after")
    def _one_url(self) -> Endpoint:
        if (self.base_url is None) == (self.base_url_env is None):
            raise ValueError("give base_url or base_url_env, not both or neither")
        return self

    def url(self) -> str:
        """The URL to call, without a trailing slash (``base_url_env`` read now)."""
        if self.base_url_env is None:
            return str(self.base_url).rstrip("/")
        value = os.environ.get(self.base_url_env, "").strip()
        if not value:
            raise ValueError(
                f"the environment variable {self.base_url_env} (endpoint.base_url_env) is not "
                "set: export it with the server's URL, e.g. http://127.0.0.1:8000/v1"
            )
        return value.rstrip("/")

    def api_key(self) -> str | None:
        """The key in ``api_key_env`` (read now), if it names a variable that is set."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def described(self) -> str:
        """The URL, or the variable it is read from, for logs and provenance."""
        return str(self.base_url) if self.base_url else f"${self.base_url_env}"


class EngineArgs(Strict):
    """Backend engine knobs. Typed so a bad value fails at parse time, not on the GPU node."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_model_len: int | None = Field(default=None, gt=0)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    mem_fraction_static: float | None = Field(default=None, gt=0, le=1)
    limit_mm_per_prompt: dict[str, int] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    max_num_seqs: int | None = Field(default=None, gt=0)
    tensor_parallel_size: int | None = Field(default=None, gt=0)
    trust_remote_code: bool = False
    chat_template: str | None = None
    torch_threads: int | None = Field(default=None, gt=0)
    extra_args: list[str] = Field(default_factory=list)
    # tesseract: languages in Tesseract's form, page segmentation mode, OCR engine mode
    languages: str | None = Field(default=None, pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
    psm: int | None = Field(default=None, ge=0, le=13)
    oem: int | None = Field(default=None, ge=0, le=3)


class Generation(Strict):
    max_tokens: int = Field(default=64, gt=0)
    temperature: float = Field(default=0.0, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = 0
    stop: list[str] | None = None


class Resources(Strict):
    gpu: int = Field(default=0, ge=0)
    mem_mb: int = Field(default=4000, gt=0)
    threads: int = Field(default=1, gt=0)
    runtime_min: int = Field(default=120, gt=0)


class SelfHostedCost(StrictTypes):
    """What the node or GPU the model's server occupies costs: cost per 1,000 samples is taken
    at the highest throughput that meets the SLO (``perf:``)."""

    usd_per_hour: float = Field(gt=0)


class ApiCost(StrictTypes):
    """An API's prices: cost per 1,000 samples is taken from the tokens the run used."""

    usd_per_1m_input_tokens: float = Field(ge=0)
    usd_per_1m_output_tokens: float = Field(ge=0)


#: A model's price: self-hosted by the hour, or an API's by the token.
Price = SelfHostedCost | ApiCost


class ModelEntry(Strict):
    name: Name
    base: Base
    description: str = ""
    family: str = ""
    backend: BackendName = "hf"
    source: ModelSource
    endpoint: Endpoint | None = None
    engine_args: EngineArgs = Field(default_factory=EngineArgs)
    generation: Generation = Field(default_factory=Generation)
    resources: Resources = Field(default_factory=Resources)
    packages: list[str] = Field(default_factory=list)
    container: str | None = None
    #: the price it runs at (``None``: not known, shown as "—", never 0); changes no answer
    cost: SelfHostedCost | ApiCost | None = None

    @model_validator(mode="after")
    def _openai_needs_endpoint(self) -> ModelEntry:
        if self.backend == "openai" and self.endpoint is None:
            raise ValueError("backend 'openai' needs an endpoint: {base_url: …}")
        if self.backend == "tesseract" and not isinstance(
            self.source, LocalModelSource | S3ModelSource
        ):
            raise ValueError(
                "backend 'tesseract' reads its language data from a tessdata folder: "
                "source: {type: local, path: /usr/share/tesseract-ocr/5/tessdata} (or s3)"
            )
        return self


# --------------------------------------------------------------------------- tasks
class PromptVariant(Strict):
    system: str | None = None
    user: str | None = None


class Prompt(Strict):
    """Jinja2 templates; they see the sample (question, doc_class, …), labels and fields.

    Resolution, for the system and the user template separately: ``fixed_*`` >
    ``by_doc_question["{doc_class} {question_type}"]`` (and the ``collection`` CSV) >
    ``by_doc_class[doc_class]`` > the task default (``system`` / ``system_file``, ``user``).
    Relative file paths are relative to the task's YAML file.
    """

    system: str | None = None
    system_file: str | None = None
    user: str = "{{ question }}"
    fixed_system: str | None = None
    fixed_user: str | None = None
    by_doc_class: dict[str, PromptVariant] = Field(default_factory=dict)
    by_doc_question: dict[str, PromptVariant] = Field(default_factory=dict)
    collection: str | None = None
    # where the sample's images go in the user message: before its text, or after it (as
    # some official runners send them)
    image_position: Literal["before_text", "after_text"] = "before_text"

    @model_validator(mode="after")
    def _one_default_system(self) -> Prompt:
        if self.system is not None and self.system_file is not None:
            raise ValueError("give either system or system_file, not both")
        return self


class Filters(Strict):
    """Keep samples whose field is in the list; each filter works alone (empty = keep all)."""

    doc_class: list[str] = Field(default_factory=list)
    question_type: list[str] = Field(default_factory=list)
    subset: list[str] = Field(default_factory=list)


class TaskEntry(Strict):
    name: Name
    base: Base
    kind: TaskKind
    dataset: Name
    description: str = ""
    prompt: Prompt = Field(default_factory=Prompt)
    generation: Generation | None = None  # overrides the model's generation parameters
    labels: list[str] = Field(default_factory=list)
    synonyms: dict[str, list[str]] = Field(default_factory=dict)
    fields: list[str] = Field(default_factory=list)  # extraction; else the sample's meta.fields
    structured_output: bool = False  # extraction: ask for a JSON schema via response_format
    filters: Filters = Field(default_factory=Filters)
    limit: int | None = Field(default=None, gt=0)
    metrics: list[Name] = Field(min_length=1)

    @model_validator(mode="after")
    def _classification_needs_labels(self) -> TaskEntry:
        if self.kind == "classification" and not self.labels:
            raise ValueError("a classification task needs labels: [..]")
        unknown = sorted(set(self.synonyms) - set(self.labels))
        if unknown:
            raise ValueError(f"synonyms for labels not in labels: {unknown}")
        return self


# --------------------------------------------------------------------------- metrics
# ``package.module:function``, or the name of an entry point in the group
# ``vlmhyperbench.metrics`` (a metric from an installed plugin package).
METRIC_REFERENCE = r"^(?:[A-Za-z_][\w.]*:[A-Za-z_][\w.]*|[A-Za-z0-9_][\w-]*)$"


class JudgePrompt(Strict):
    """The judge's messages, Jinja2 templates that see ``question``, ``answers``,
    ``prediction``, ``sample`` and ``task`` (:mod:`vlmhyperbench.judge.requests`)."""

    system: str | None = None
    user: str = Field(min_length=1)


class JudgeVerdict(Strict):
    """What the judge answers: ``binary`` (correct/incorrect), a ``score`` in [min, max], or
    ``pairwise``: which of two answers is better, the model's or the ``against`` model's (a
    model of the run), asked in both orders (:mod:`vlmhyperbench.judge.pairwise`)."""

    type: Literal["binary", "score", "pairwise"] = "binary"
    min: float = 1
    max: float = 5
    against: Name | None = None

    @model_validator(mode="after")
    def _range(self) -> JudgeVerdict:
        if self.min >= self.max:
            raise ValueError(f"min must be below max, got {self.min} and {self.max}")
        if (self.type == "pairwise") != (self.against is not None):
            raise ValueError(
                "a pairwise verdict names the model it compares against "
                "(against: <model>); other verdicts take no 'against'"
            )
        return self


class JudgeParse(Strict):
    """Read the verdict with a regex (its last match's first group) instead of JSON."""

    regex: str = Field(min_length=1)

    @model_validator(mode="after")
    def _compiles(self) -> JudgeParse:
        from vlmhyperbench.judge.verdicts import check_regex

        problem = check_regex(self.regex)
        if problem is not None:
            raise ValueError(problem)
        return self


class OnlyWhen(Strict):
    """Judge only the samples a rule-based metric of the task scored below ``below``; the
    others take the rule's value."""

    metric: Name
    below: float


class JudgeSpec(Strict):
    """A metric graded by judge models (``models``: registry models, served by their serve job
    or behind an endpoint). ``invalid``: an unreadable verdict is left out of the mean
    (``exclude``, and counted) or scored ``wrong``; ``aggregate``: the panel's value per sample
    (``mean`` of the judges' verdicts, or the ``majority`` verdict)."""

    models: list[Name] = Field(min_length=1)
    prompt: JudgePrompt
    verdict: JudgeVerdict = Field(default_factory=JudgeVerdict)
    image: bool = False
    only_when: OnlyWhen | None = None
    parse: JudgeParse | None = None
    invalid: Literal["exclude", "wrong"] = "exclude"
    aggregate: Literal["mean", "majority"] = "mean"
    generation: Generation = Field(default_factory=lambda: Generation(max_tokens=256))

    @model_validator(mode="after")
    def _distinct(self) -> JudgeSpec:
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"a judge is listed twice: {self.models}")
        if self.verdict.type == "pairwise" and self.only_when is not None:
            raise ValueError("only_when does not apply to a pairwise verdict")
        return self


class MetricEntry(Strict):
    """A metric computed by ``implementation`` (a function), or graded by a ``judge``."""

    name: Name
    base: Base
    implementation: str | None = Field(default=None, pattern=METRIC_REFERENCE)
    aggregate: str | None = Field(default=None, pattern=METRIC_REFERENCE)
    params: dict[str, Any] = Field(default_factory=dict)
    higher_is_better: bool = True
    task_kinds: list[TaskKind] = Field(min_length=1)
    description: str = ""
    judge: JudgeSpec | None = None

    @model_validator(mode="after")
    def _one_way_to_score(self) -> MetricEntry:
        if (self.implementation is None) == (self.judge is None):
            raise ValueError("give an implementation or a judge block, not both or neither")
        if self.judge is not None and (self.aggregate or self.params):
            raise ValueError("a judge metric takes no aggregate or params")
        return self


# --------------------------------------------------------------------------- experiment
class InferenceSettings(StrictTypes):
    concurrency: int = Field(default=4, ge=1)
    request_timeout_s: float = Field(default=300, gt=0)
    max_retries: int = Field(default=2, ge=0)
    startup_timeout_s: float = Field(default=600, gt=0)
    # A server that sends nothing for this long while requests wait, and fails its /health,
    # is hung: the predict job stops (see runner.py).
    stall_timeout_s: float = Field(default=60, gt=0)


class ScoringSettings(StrictTypes):
    bootstrap: int = Field(default=1000, ge=0)
    seed: int = 0


class Overrides(StrictTypes):
    """Partial entries deep-merged over the registry entries before validation."""

    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ContainerSettings(StrictTypes):
    """Where the stage images (built from ``containers/``) are pulled from, for ``--sdm
    apptainer``; a model entry's own ``container`` wins."""

    registry: str = Field(default="docker://vlmhyperbench", pattern=r"^[a-z]+://\S+[^/]$")
    tag: str = Field(default="0.1.0", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------- serving performance
class SLO(StrictTypes):
    """Service-level objectives in ms; ``None`` = not checked."""

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)


class PerfSettings(StrictTypes):
    """The load stage (``perf:``, :mod:`vlmhyperbench.perf`): a closed-loop ``concurrency``
    ladder and/or an open-loop Poisson ``rates`` ladder (requests/s) on the model's own server
    with the task's own samples; ``requests`` measured per level after ``warmup`` uncounted ones
    (default: the level's concurrency, or its rate × 2 s, at least 2). The highest load whose
    ``percentile`` of each ``slo`` figure is within it (and error rate within
    ``max_error_rate``) is found by the ladder, then bisection; the ladder stops once requests/s
    grow by less than ``saturation``."""

    concurrency: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    rates: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    requests: int = Field(default=20, ge=1)
    warmup: int | None = Field(default=None, ge=0)
    slo: SLO = Field(default_factory=SLO)
    percentile: Literal[50, 90, 95, 99] = 95
    max_error_rate: float = Field(default=0.0, ge=0, le=1)
    saturation: float = Field(default=0.03, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _some_ladder(self) -> PerfSettings:
        if not self.concurrency and not self.rates:
            raise ValueError("give a concurrency ladder, a rates ladder, or both")
        return self


class RunOverrides(StrictTypes):
    """A run block's own partial entries, for its (model, task) pairs only. Datasets and
    metrics are shared by every block: override those at the top level."""

    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)


#: A setting's path in a model or task entry, as a sweep names it: ``models.engine_args.psm``.
SweepPath = Annotated[str, Field(pattern=r"^(models|tasks)(\.[A-Za-z_][A-Za-z0-9_]*)+$")]
#: A value's label in a variant's name (``short`` for a long prompt): safe in paths and wildcards.
LABEL_PATTERN = r"^[A-Za-z0-9_.+-]{1,40}$"
Label = Annotated[str, Field(pattern=LABEL_PATTERN)]
SweepValues = (
    Annotated[list[Any], Field(min_length=1)] | Annotated[dict[Label, Any], Field(min_length=1)]
)


class RunBlock(StrictTypes):
    """``models × tasks``, optionally with the block's own overrides, a sample limit, and a
    ``sweep``: setting path -> values (or ``label: value``), run as the grid of its variants
    (:mod:`vlmhyperbench.config.variants`)."""

    models: list[Name] = Field(min_length=1)
    tasks: list[Name] = Field(min_length=1)
    overrides: RunOverrides = Field(default_factory=RunOverrides)
    limit: int | None = Field(default=None, ge=1)
    sweep: dict[SweepPath, SweepValues] = Field(default_factory=dict)
    #: load-test the block's served pairs (``False``: not even with a top-level ``perf``)
    perf: PerfSettings | Literal[False] | None = None


class ExperimentConfig(StrictTypes):
    """The experiment (config/config.yaml). The run matrix is the union of the blocks in
    ``runs``; the top-level ``models`` × ``tasks`` (the original form) is one more block."""

    name: str = "experiment"
    registry_dir: str = "config"
    models: list[Name] = Field(default_factory=list, min_length=1)
    tasks: list[Name] = Field(default_factory=list, min_length=1)
    runs: list[RunBlock] = Field(default_factory=list)
    overrides: Overrides = Field(default_factory=Overrides)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    containers: ContainerSettings = Field(default_factory=ContainerSettings)
    #: load-test every served pair of the run (a block's own ``perf`` takes its place)
    perf: PerfSettings | None = None

    @model_validator(mode="after")
    def _some_run(self) -> ExperimentConfig:
        if bool(self.models) != bool(self.tasks):
            given, missing = ("models", "tasks") if self.models else ("tasks", "models")
            raise ValueError(f"{given} is given without {missing}: list both, or use runs")
        if not self.models and not self.runs:
            raise ValueError("nothing to run: give models and tasks, or runs")
        return self
