"""Score fingerprints: a metric's hash covers exactly its own code and the helpers it uses."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from vlmhyperbench.config.schema import MetricEntry, TaskEntry
from vlmhyperbench.fingerprints import score_fingerprint, source_hash
from vlmhyperbench.metrics.source import clear_caches, dependency_sources


def test_builtin_metrics_of_one_module_have_their_own_dependencies() -> None:
    anls = dependency_sources("vlmhyperbench.metrics.text:anls")
    cer = dependency_sources("vlmhyperbench.metrics.text:cer")
    assert "vlmhyperbench.metrics.text:_anls_form" in anls
    assert "vlmhyperbench.metrics.text:_anls_form" not in cer
    assert "vlmhyperbench.metrics.text:_error_rows" in cer
    assert "vlmhyperbench.metrics.text:_error_rows" not in anls
    # Shared helpers in other modules of the package are followed through the imports.
    assert "vlmhyperbench.metrics.fast:normalize_many" in anls
    assert "vlmhyperbench.metrics.normalize:collapse_whitespace" in cer
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


def test_an_optional_compiled_module_counts_with_its_c_source(package: Path) -> None:
    # The pattern of vlmhyperbench.metrics.fast: a C kernel imported if it was built.
    (package / "_kern.c").write_text("/* v1 */ int f(void) { return 1; }\n", encoding="utf-8")
    _edit(
        package / "helpers.py",
        "def shared",
        "try:\n    from fp_pkg import _kern\nexcept ImportError:\n    _kern = None\n\n\ndef shared",
    )
    _edit(package / "helpers.py", "return text.strip()", "return _kern.f(text) if _kern else text")
    a, b = _hashes()
    assert "fp_pkg._kern:C source" in dependency_sources("fp_pkg.metrics:metric_a")
    _edit(package / "_kern.c", "return 1;", "return 2;")
    a2, b2 = _hashes()
    assert a2 != a and b2 != b  # not built here: the source still counts, so installs agree
    # The built-in metrics: exact_match runs on the kernel (anls and cer too).
    exact = dependency_sources("vlmhyperbench.metrics.text:exact_match")
    assert "vlmhyperbench.metrics._kernels:C source" in exact
