"""NLTK's WordNet 3.0 built offline from Debian's packages, for the METEOR part of ``mws_ocr``.

NLTK cannot download its ``wordnet`` corpus here, but Debian's ``wordnet-base`` and
``wordnet-sense-index`` (listed in ``debian_packages.txt``) install WordNet 3.0 under
``/usr/share/wordnet``. NLTK's reader needs two more things: a ``lexnames`` file (Debian ships it
only as the lexnames(5WN) man page: 45 lines ``NN<TAB>name<TAB>category``, written here from
:data:`LEXICOGRAPHER_FILES`), and real files inside its data folder (it refuses symlinks that
leave it). :func:`nltk_data_root` therefore copies the database once into
``$VLMHB_NLTK_DATA`` (default ``~/.cache/vlmhyperbench/nltk_data``) as
``corpora/wordnet/`` — a folder ``NLTK_DATA`` can point at — and :func:`wordnet_reader` opens it
directly, so the scores never depend on which other ``nltk_data`` folders a machine has.
``$VLMHB_WORDNET_DIR`` overrides the source folder.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

SOURCE_ENV = "VLMHB_WORDNET_DIR"
DATA_ENV = "VLMHB_NLTK_DATA"
DEFAULT_SOURCE = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")

#: The WordNet 3.0 lexicographer files, in file-number order (lexnames(5WN)).
LEXICOGRAPHER_FILES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_POS = ("adj", "adv", "noun", "verb")
#: The database files NLTK's reader opens (``lexnames`` is written, not copied).
DATABASE_FILES = (
    *(f"data.{pos}" for pos in _POS),
    *(f"index.{pos}" for pos in _POS),
    *(f"{pos}.exc" for pos in _POS),
    "index.sense",
    "cntlist.rev",
)


def lexnames_text() -> str:
    """The ``lexnames`` file: ``NN<TAB>name<TAB>syntactic category`` per lexicographer file."""
    lines = (
        f"{number:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n"
        for number, name in enumerate(LEXICOGRAPHER_FILES)
    )
    return "".join(lines)


def source_dir() -> Path:
    return Path(os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE)


def default_data_root() -> Path:
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "vlmhyperbench" / "nltk_data"


def _is_current(corpus: Path, source: Path) -> bool:
    """The built folder has every file, each the size of its source, and our lexnames."""
    if not (corpus / "lexnames").is_file():
        return False
    if (corpus / "lexnames").read_text(encoding="ascii") != lexnames_text():
        return False
    for name in DATABASE_FILES:
        built = corpus / name
        if not built.is_file() or built.stat().st_size != (source / name).stat().st_size:
            return False
    return True


def build_corpus(source: Path, data_root: Path) -> Path:
    """Copy WordNet from ``source`` into ``data_root/corpora/wordnet`` unless it is already
    there (idempotent; concurrent builders each write a temporary folder, one wins)."""
    missing = [name for name in DATABASE_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet 3.0 not found in {source} (missing {', '.join(missing)}): install the "
            f"Debian packages {' '.join(DEBIAN_PACKAGES)} (make test does), or set {SOURCE_ENV}"
        )
    corpus = data_root / "corpora" / "wordnet"
    if _is_current(corpus, source):
        return corpus
    corpus.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=corpus.parent))
    try:
        for name in DATABASE_FILES:
            shutil.copyfile(source / name, staging / name)
        (staging / "lexnames").write_text(lexnames_text(), encoding="ascii")
        if corpus.exists() and not _is_current(corpus, source):
            shutil.rmtree(corpus)
        try:
            staging.rename(corpus)
        except OSError:
            if not _is_current(corpus, source):  # not another builder's complete copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return corpus


def nltk_data_root() -> Path:
    """A folder for ``NLTK_DATA`` that holds ``corpora/wordnet`` (built when missing)."""
    root = default_data_root()
    build_corpus(source_dir(), root)
    return root


@functools.cache
def wordnet_reader() -> WordNetCorpusReader:
    """NLTK's WordNet reader over the built folder (English only: METEOR needs no more).

    NLTK reads only inside its data folders, so the root joins the end of ``nltk.data.path``
    (where it changes no other lookup that already finds its data)."""
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = default_data_root()
    corpus = build_corpus(source_dir(), root)
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions")
        return WordNetCorpusReader(str(corpus), None)
