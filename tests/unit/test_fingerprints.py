"""Score fingerprints: a metric's hash covers exactly its own code and the helpers it uses."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from vlmhyperbench.config.schema import MetricEntry, TaskEntry
from vlmhyperbench.metrics.source import clear_caches, dependency_sources
from vlmhyperbench.pipeline.fingerprints import score_fingerprint, source_hash


def test_builtin_metrics_of_one_module_have_their_own_dependencies() -> None:
    anls = dependency_sources("vlmhyperbench.metrics.text:anls")
    cer = dependency_sources("vlmhyperbench.metrics.text:cer")
    assert "vlmhyperbench.metrics.text:_error_rows" in cer
    assert "vlmhyperbench.metrics.text:_error_rows" not in anls
    # Shared helpers in other modules of the package are followed through the imports.
    assert "vlmhyperbench.metrics.normalize:normalize_text" in anls
    assert "vlmhyperbench.metrics.normalize:collapse_whitespace" in cer
    assert "vlmhyperbench.metrics.normalize:words" in dependency_sources(
        "vlmhyperbench.metrics.text:wer"
    )
    assert "vlmhyperbench.metrics.normalize:words" not in anls
    assert source_hash("vlmhyperbench.metrics.text:anls") != source_hash(
        "vlmhyperbench.metrics.text:cer"
    )


def test_module_level_configuration_is_part_of_the_metric() -> None:
    # accuracy's row columns are attached by a call after its definition.
    deps = dependency_sources("vlmhyperbench.metrics.classification:accuracy")
    assert "vlmhyperbench.metrics.classification:label_columns" in deps
    # BLEU depends on the installed sacrebleu version.
    assert dependency_sources("vlmhyperbench.metrics.ngram:bleu")["dist:sacrebleu"].startswith(
        "sacrebleu=="
    )


@pytest.fixture
def package(tmp_path: Path):
    """A throwaway package ``fp_pkg`` with two metrics, a private helper and a shared one."""
    root = tmp_path / "site"
    (root / "fp_pkg").mkdir(parents=True)
    (root / "fp_pkg" / "__init__.py").write_text("", encoding="utf-8")
    (root / "fp_pkg" / "helpers.py").write_text(
        "def shared(text):\n    return text.strip()\n", encoding="utf-8"
    )
    (root / "fp_pkg" / "metrics.py").write_text(
        textwrap.dedent(
            '''
            from fp_pkg.helpers import shared

            LIMIT = 3


            def _only_a(text):
                return text[:LIMIT]


            def metric_a(prediction, references):
                """Doc of a."""
                return float(_only_a(shared(prediction)) == references[0])


            def metric_b(prediction, references):
                return float(shared(prediction) == references[0])
            '''
        ),
        encoding="utf-8",
    )
    sys.path.insert(0, str(root))
    clear_caches()
    yield root / "fp_pkg"
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith("fp_pkg")]:
        del sys.modules[name]
    clear_caches()


def _hashes() -> tuple[str, str]:
    clear_caches()
    return source_hash("fp_pkg.metrics:metric_a"), source_hash("fp_pkg.metrics:metric_b")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_editing_one_metric_changes_only_its_hash(package: Path) -> None:
    a, b = _hashes()
    _edit(package / "metrics.py", "float(_only_a(", "1.0 * (_only_a(")
    a2, b2 = _hashes()
    assert a2 != a and b2 == b


def test_editing_a_private_helper_or_constant_changes_only_its_user(package: Path) -> None:
    a, b = _hashes()
    _edit(package / "metrics.py", "LIMIT = 3", "LIMIT = 4")
    a2, b2 = _hashes()
    assert a2 != a and b2 == b


def test_editing_a_shared_helper_changes_every_user(package: Path) -> None:
    a, b = _hashes()
    _edit(package / "helpers.py", "text.strip()", "text.strip().lower()")
    a2, b2 = _hashes()
    assert a2 != a and b2 != b


def test_docstrings_comments_and_formatting_change_nothing(package: Path) -> None:
    before = _hashes()
    _edit(package / "metrics.py", '"""Doc of a."""', '"""Another doc."""  # a comment')
    _edit(package / "metrics.py", "LIMIT = 3", "LIMIT = (3)")
    assert _hashes() == before


def test_score_fingerprint_covers_params_and_task_labels() -> None:
    entry = MetricEntry(
        name="anls",
        implementation="vlmhyperbench.metrics.text:anls",
        params={"threshold": 0.5},
        task_kinds=["vqa"],
    )
    task = TaskEntry(name="t", kind="vqa", dataset="d", metrics=["anls"])
    base = score_fingerprint(entry, task)
    assert score_fingerprint(entry, task) == base
    changed = entry.model_copy(update={"params": {"threshold": 0.6}})
    assert score_fingerprint(changed, task) != base
    described = entry.model_copy(update={"description": "new words"})
    assert score_fingerprint(described, task) == base


def test_unresolvable_implementation_hashes_as_unavailable() -> None:
    assert source_hash("no_such_plugin_metric") == "unavailable"
    assert source_hash("vlmhyperbench.no_such_module:f") == "unavailable"


# The newcomer's edit, on a copy of the package: which registry metrics' score jobs re-run.
_REGISTRY_HASHES = """
import json, sys, yaml
from pathlib import Path
from vlmhyperbench.pipeline.fingerprints import source_hash
out = {}
for path in sorted(Path(sys.argv[1]).glob("*.yaml")):
    entry = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "implementation" not in entry:  # a judge metric: scored by the judge implementation
        continue
    aggregate = entry.get("aggregate")
    out[path.stem] = [source_hash(entry["implementation"]), aggregate and source_hash(aggregate)]
print(json.dumps(out))
"""


def _registry_hashes(src: Path) -> dict[str, list[str]]:
    import json
    import subprocess

    from tests.helpers import REPO

    result = subprocess.run(
        [sys.executable, "-c", _REGISTRY_HASHES, str(REPO / "config" / "metrics")],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    )
    return json.loads(result.stdout)


def _rescored(src: Path, file: str, old: str, new: str) -> set[str]:
    before = _registry_hashes(src)
    _edit(src / "vlmhyperbench" / "metrics" / file, old, new)
    after = _registry_hashes(src)
    return {name for name in before if before[name] != after[name]}


def test_editing_exact_match_or_punctuation_rescores_exactly_their_users(tmp_path: Path) -> None:
    import shutil

    import vlmhyperbench

    src = tmp_path / "src"
    shutil.copytree(
        Path(vlmhyperbench.__file__).parent,
        src / "vlmhyperbench",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    # exact_match's own function: only the metric that is exact_match.
    changed = _rescored(
        src, "text.py", '"strip_punctuation": strip_punctuation,', '"strip_punctuation": False,'
    )
    assert changed == {"exact_match"}
    # How punctuation is removed (normalize.py): every metric whose code reaches it, no other.
    changed = _rescored(src, "normalize.py", '"P")', '"P") and ch not in "-"')
    uses_punctuation = {"exact_match", "token_f1", "accuracy", "confusion_matrix"}
    assert uses_punctuation <= changed
    assert {"anls", "cer", "wer"} <= changed  # they call normalize_text, which can strip it
    untouched = {"bleu", "chrf", "vqa_accuracy", "kendall_tau", "latency_p50", "json_validity"}
    assert not changed & untouched
