"""VQA accuracy (the official VQAv2 evaluation) and relaxed accuracy (ChartQA).

VQA accuracy follows the official script's answer processing exactly, quirks included:

- the prediction: newlines/tabs → spaces, stripped, then punctuation processing, then
  digit/article processing (lowercase, number words ``none``/``zero``…``ten`` → digits, drop
  ``a``/``an``/``the``, contraction map);
- the references: punctuation processing only, and only when they are not all identical;
- punctuation processing: each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` is deleted when
  it touches a space or the text has a digit-comma-digit, else replaced by a space; then every
  ``.`` not followed by a digit is deleted (the script passes ``re.UNICODE`` as the ``count``
  argument of ``sub``, so at most 32 of them — kept here);
- score = mean over the references of min(1, matches among the *other* references / 3).

With 10 references this is the official number. With fewer (our datasets often have one) the
official formula gives 0 for a single reference, so ``min(3, n − 1)`` replaces 3 for 2 ≤ n < 10
and a single reference is a plain match of the processed strings (documented in docs/metrics.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from vlmhyperbench.metrics.base import require_references

_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@")
_PUNCT = (*_PUNCT, "`", ",", "?", "!")
# The official pattern's "(?!<=\d)" is a typo for a lookbehind and matches almost anywhere.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PERIOD_COUNT = int(re.UNICODE)  # the official script's accidental ``count`` argument (32)
_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# The official contraction map (apostrophe-less spellings → the spelled form), as data.
_CONTRACTION_PAIRS = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've
couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've
hadn'tve hadn't've|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's
howd how'd|howll how'll|hows how's|Id've I'd've|I'dve I'd've|Im I'm|Ive I've|isnt isn't|itd it'd
itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am|mightnt mightn't
mightnt've mightn't've|mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've
neednt needn't|notve not've|oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at
'ow'sat 'ow's'at|shant shan't|shed've she'd've|she'dve she'd've|she's she's|shouldve should've
shouldnt shouldn't|shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd
somebodyd've somebody'd've|somebody'dve somebody'd've|somebodyll somebody'll|somebodys somebody's
someoned someone'd|someoned've someone'd've|someone'dve someone'd've|someonell someone'll
someones someone's|somethingd something'd|somethingd've something'd've
something'dve something'd've|somethingll something'll|thats that's|thered there'd
thered've there'd've|there'dve there'd've|therere there're|theres there's|theyd they'd
theyd've they'd've|they'dve they'd've|theyll they'll|theyre they're|theyve they've|twas 'twas
wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've|werent weren't|whatll what'll
whatre what're|whats what's|whatve what've|whens when's|whered where'd|wheres where's
whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's
whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't
wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll
yall'd've y'all'd've|y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've
you'dve you'd've|youll you'll|youre you're|youve you've
"""
_CONTRACTIONS = dict(
    pair.split(" ") for pair in _CONTRACTION_PAIRS.replace("\n", "|").split("|") if pair.strip()
)


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``."""
    out = text
    comma_between_digits = _COMMA_STRIP.search(text) is not None
    for mark in _PUNCT:
        if mark + " " in text or " " + mark in text or comma_between_digits:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``."""
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words)


def process_prediction(text: str) -> str:
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def vqa_accuracy(
    prediction: str, references: Sequence[str], *, process_references: bool = False
) -> float:
    """VQAv2 accuracy of one answer against its (up to 10) human answers; see the module doc.

    ``process_references`` also applies the prediction's full processing to every reference
    (VLMEvalKit's ``process_answer`` on both sides) instead of the official punctuation-only,
    only-when-they-differ rule.
    """
    answers = list(require_references(references))
    predicted = process_prediction(prediction)
    if process_references:
        answers = [process_prediction(a) for a in answers]
    elif len(set(answers)) > 1:
        answers = [process_punctuation(a) for a in answers]
    n = len(answers)
    if n == 1:
        return 1.0 if answers[0] == predicted else 0.0
    needed = 3 if n >= 10 else min(3, n - 1)
    matches = sum(answer == predicted for answer in answers)
    # Leaving out answer i: the other answers match (matches − [answer i matches]) times.
    total = sum(min(1.0, (matches - (a == predicted)) / needed) for a in answers)
    return total / n


# --- relaxed accuracy ------------------------------------------------------------------------


def _to_float(text: str) -> float | None:
    """ChartQA's conversion: ``float()`` of the text, ``"x%"`` → x / 100; None if not a number.

    Unlike ChartQA, ``inf``/``nan`` spellings are not numbers here (the relative change of
    ``inf`` to itself is NaN, so the original scores ``"inf"`` against ``"inf"`` as wrong)."""
    try:
        value = float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def relaxed_match(prediction: str, target: str, max_relative_change: float = 0.05) -> bool:
    """ChartQA relaxed correctness of one prediction against one target."""
    predicted, expected = _to_float(prediction), _to_float(target)
    if predicted is not None and expected:  # a zero target falls back to string equality
        return abs(predicted - expected) / abs(expected) <= max_relative_change
    return prediction.lower() == target.lower()


def relaxed_accuracy(
    prediction: str, references: Sequence[str], *, max_relative_change: float = 0.05
) -> float:
    """ChartQA relaxed accuracy: a number within ``max_relative_change`` (5%) of the target's
    value, otherwise case-insensitive string equality; best over references. The prediction is
    stripped (VLMEvalKit); references are used as given."""
    predicted = prediction.strip()
    hit = any(
        relaxed_match(predicted, ref, max_relative_change) for ref in require_references(references)
    )
    return 1.0 if hit else 0.0
