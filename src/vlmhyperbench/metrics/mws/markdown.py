"""``mws_markdown``: MWS-Vision-Bench's document-parsing score (``document parsing ru``).

The official evaluation does *not* compare tables cell by cell (its TEDS code is never called
for this category): it builds a heading tree of each text and scores the tree edit distance,
1 − distance / (nodes of the larger tree). The tree: a ``ROOT``; each line that starts with
``#`` (after the cleaning below and stripping) is a heading, a child of ``ROOT``; every other
non-empty line is a child of the latest heading, or of ``ROOT`` before the first heading.

Quirks followed (docs/mws_vision.md, "Where we follow the official code's quirks"):

- the tree edit distance (the official code: zss, Zhang–Shasha) costs 1 per inserted or deleted
  node and relabels for free whenever both labels hold a word — which every node's label does —
  so only the *shape* counts: the number of headings, their order, how many non-empty lines each
  holds; the text of a line, a table's cells, its row- and colspans are never compared. We
  compute the same distance on the shapes (:func:`tree_distance`, checked against zss), in
  milliseconds where zss takes ~20 s for two 400-line pages;
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


def heading_tree(text: str) -> list[int]:
    """The official heading tree of ``text`` below its root, as the shape it is scored by: one
    number per child of the root, in order — the lines under it (a heading), or 0 (a line
    before the first heading, or a heading without lines)."""
    shape: list[int] = []
    in_heading = False
    for raw in text.split("\n"):
        line = clean_line(raw).strip()
        if line.startswith("#"):
            shape.append(0)
            in_heading = True
        elif line:
            if in_heading:
                shape[-1] += 1
            else:
                shape.append(0)
    return shape


def _rightmost_children(shape: Sequence[int]) -> list[int]:
    """For each forest of the first ``x`` nodes (``x`` = 1…size) as the Zhang–Shasha recursion
    reaches it — the whole top nodes before one node, then that node's first leaves (the node
    deleted), then that node whole — the number of children of its rightmost top node."""
    children = [0]
    for count in shape:
        children.extend([0] * count)  # the node deleted: 1…count of its leaves on top
        children.append(count)  # the whole node
    return children


def tree_distance(shape_a: Sequence[int], shape_b: Sequence[int]) -> int:
    """The tree edit distance of two heading trees (unit insertions and deletions, free
    relabelling: the official label cost is 0 between any two labels with a word, and every
    node's label has one), by the forest recursion over rightmost top nodes:
    ``d(F, G) = min(d(F−v, G) + 1, d(F, G−w) + 1, d(F′, G′) + d(kids v, kids w))``. The trees
    are two levels deep, so every forest met is a prefix of the nodes in preorder, and two sets
    of leaves are ``|k − l|`` apart. The roots always match (free), so the trees' distance is
    their top forests' distance. Equal to zss's ``simple_distance`` (tested)."""
    kids_a, kids_b = _rightmost_children(shape_a), _rightmost_children(shape_b)
    previous = list(range(len(kids_b)))
    rows = [previous]
    for x in range(1, len(kids_a)):
        row = [x] + [0] * (len(kids_b) - 1)
        kx, before = kids_a[x], rows[x - 1 - kids_a[x]]
        for y in range(1, len(kids_b)):
            ky = kids_b[y]
            row[y] = min(previous[y] + 1, row[y - 1] + 1, before[y - 1 - ky] + abs(kx - ky))
        rows.append(row)
        previous = row
    return rows[-1][-1]


def tree_similarity(reply: str, reference: str) -> float:
    """1 − edit distance / nodes of the larger heading tree (its root included)."""
    reply_shape, reference_shape = heading_tree(reply), heading_tree(reference)
    size = 1 + max(len(reply_shape) + sum(reply_shape), len(reference_shape) + sum(reference_shape))
    return 1 - tree_distance(reply_shape, reference_shape) / size


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
