"""``mws_ocr``: MWS-Vision-Bench's full-page OCR score (``full-page OCR ru``).

Per item, the mean of four numbers computed on word tokens of the reply and the one reference
(the official ``answers[0]``; see :mod:`.reply` for how the reply is taken):

- BLEU: NLTK's ``sentence_bleu`` with its defaults (4-gram, uniform weights, no smoothing);
- METEOR: NLTK's ``meteor_score`` with WordNet 3.0 (:mod:`.wordnet`, offline);
- F-measure: NLTK's ``f_measure`` of the two token *sets* (0 when it is undefined);
- 1 − character edit distance / the longer text's length (on the untokenised texts).

Quirks followed (docs/mws_vision.md, "Where we follow the official code's quirks"):
tokens are whitespace-split words, except that when either text holds a CJK ideograph
(U+4E00–U+9FA5) both are cut by ``jieba.lcut`` instead; an empty reply scores 0 without
looking at the reference; a whitespace-only reply is scored only with ``strip_reply: false``
(its edit-distance part counts); BLEU without smoothing is ~0 for replies sharing no 4-gram.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from nltk.metrics import f_measure
from nltk.translate.bleu_score import sentence_bleu
from nltk.translate.meteor_score import meteor_score
from rapidfuzz.distance import Levenshtein

from vlmhyperbench.metrics.mws.reply import official_answers, official_reply, single_answer
from vlmhyperbench.metrics.mws.wordnet import wordnet_reader

_CJK = re.compile("[\u4e00-\u9fa5]")


def _tokens(text: str, cjk: bool) -> list[str]:
    if cjk:
        import jieba  # only for replies or references with CJK ideographs

        jieba.setLogLevel(30)
        return list(jieba.lcut(text))
    return text.split()


def ocr_parts(reply: str, reference: str) -> dict[str, float]:
    """The four parts of the official OCR score of a non-empty ``reply``."""
    cjk = bool(_CJK.search(reference) or _CJK.search(reply))
    ref_tokens, reply_tokens = _tokens(reference, cjk), _tokens(reply, cjk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns on every reply without 4-gram overlaps
        bleu = sentence_bleu([ref_tokens], reply_tokens)
    meteor = meteor_score([ref_tokens], reply_tokens, wordnet=wordnet_reader())
    f_value = f_measure(set(ref_tokens), set(reply_tokens))
    edits = Levenshtein.distance(reply, reference) / max(len(reply), len(reference))
    return {
        "bleu": float(bleu),
        "meteor": float(meteor),
        "f_measure": 0.0 if f_value is None else float(f_value),
        "edit_dist": float(edits),
    }


def mws_ocr(
    prediction: str,
    references: Sequence[Any],
    *,
    sample: Mapping[str, Any] | None = None,
    strip_reply: bool = True,
) -> float:
    """The official per-item full-page OCR score (0…1)."""
    reference = single_answer(official_answers(references, sample), "full-page OCR")
    reply = official_reply(prediction, sample, strip_reply=strip_reply)
    if not reply:
        return 0.0
    if not isinstance(reference, str):
        raise TypeError(f"an MWS OCR reference is a string, got {type(reference).__name__}")
    parts = ocr_parts(reply, reference)
    return (parts["bleu"] + parts["meteor"] + parts["f_measure"] + (1 - parts["edit_dist"])) / 4
