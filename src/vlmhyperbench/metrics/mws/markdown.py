"""``mws_markdown``: MWS-Vision-Bench's document-parsing score (``document parsing ru``).

The official evaluation does *not* compare tables cell by cell (its TEDS code is never called
for this category): it builds a heading tree of each text and scores the tree edit distance,
1 − distance / (nodes of the larger tree). The tree: a ``ROOT``; each line that starts with
``#`` (after the cleaning below and stripping) is a heading, a child of ``ROOT``; every other
non-empty line is a child of the latest heading, or of ``ROOT`` before the first heading.

Quirks followed (docs/mws_vision.md, "Where we follow the official code's quirks"):

- the edit distance (zss, Zhang–Shasha) costs 1 per inserted or deleted node and relabels for
  free whenever both labels hold a word — which every node's label does — so only the *shape*
  counts: the number of headings, their order, how many non-empty lines each holds; the text of
  a line, a table's cells, its row- and colspans are never compared;
- each line is cleaned first (:data:`_CLEANING`): special tokens removed, ``" ##x"`` → ``"x"``,
  spaces around braces and after ``\\begin``/``\\end`` dropped, then ``*`` and ``_`` become
  spaces — so a line of ``***`` or ``___`` vanishes, ``**# Title**`` is a heading, and
  ``" ##Title"`` (a whitespace before ``##``) is *not* one;
- an empty reply is a tree of one node and scores 1 / (nodes of the reference tree), not 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from zss import Node, simple_distance

from vlmhyperbench.metrics.mws.reply import official_answers, official_reply, single_answer

#: The official per-line cleaning, in order: (pattern, replacement).
_CLEANING = (
    (re.compile(r"<bos>|<eos>|<pad>|<unk>"), ""),
    (re.compile(r"\s##(\S)"), r"\1"),  # a word-piece joiner: " ##x" -> "x"
    (re.compile(r"\\\s"), r"\\"),
    (re.compile(r"\s\*\s\*\s"), "**"),
    (re.compile(r"{\s"), "{"),
    (re.compile(r"\s}"), "}"),
    (re.compile(r"\s}"), "}"),  # twice: up to two whitespaces before "}" go
    (re.compile(r"\\begin\s"), r"\\begin"),
    (re.compile(r"\\end\s"), r"\\end"),
    (re.compile(r"\\end{table}"), "\\\\end{table} \n\n"),
)
_TO_SPACE = str.maketrans({"\n": " ", "*": " ", "_": " "})


def clean_line(line: str) -> str:
    for pattern, replacement in _CLEANING:
        line = pattern.sub(replacement, line)
    return line.translate(_TO_SPACE)


def heading_tree(text: str) -> Node:
    """The official heading tree of ``text`` (labels as the official code makes them)."""
    root = Node("ROOT")
    heading: Node | None = None
    seen: dict[str, int] = {}
    for raw in text.split("\n"):
        line = clean_line(raw).strip()
        if line.startswith("#"):
            title = line.lstrip("#").strip()
            seen[title] = seen.get(title, 0) + 1
            # "__n" keeps repeated titles apart; a content line never holds "_" after cleaning.
            heading = Node(f"{title}__{seen[title]}")
            root.addkid(heading)
        elif line:
            (heading or root).addkid(Node(line))
    return root


def _label_cost(a: str, b: str) -> int:
    """1 when either label has no word (an insertion or a deletion), else 0."""
    return 1 if not a.split() or not b.split() else 0


def _size(tree: Node) -> int:
    return sum(1 for _ in tree.iter())


def tree_similarity(reply: str, reference: str) -> float:
    """1 − edit distance / nodes of the larger heading tree."""
    reply_tree, reference_tree = heading_tree(reply), heading_tree(reference)
    distance = simple_distance(reply_tree, reference_tree, label_dist=_label_cost)
    return 1 - distance / max(_size(reply_tree), _size(reference_tree))


def mws_markdown(
    prediction: str,
    references: Sequence[Any],
    *,
    sample: Mapping[str, Any] | None = None,
    strip_reply: bool = True,
) -> float:
    """The official per-item document-parsing score (0…1)."""
    reference = single_answer(official_answers(references, sample), "document parsing")
    if not isinstance(reference, str):
        raise TypeError(f"an MWS Markdown reference is a string, got {type(reference).__name__}")
    reply = official_reply(prediction, sample, strip_reply=strip_reply)
    if reply is None:
        return 0.0
    return float(tree_similarity(reply, reference))
