"""The page-ordering answer convention shared by the demo generator and the multi-page importer.

A bundle's pages are shown shuffled; the reference answer is ``[i, j, …]``: the 1-based numbers
of the shown images listed in their true order (JSON).
"""

from __future__ import annotations

import json
import random

from vlmhyperbench.runtime.io import stable_hash


def shuffled_order(n: int, seed: int, bundle: str) -> list[int]:
    """A seeded permutation of range(n) (``shown[k]`` = true index of the k-th shown page) that
    is never the identity when n > 1, so an unchanged order is never the right answer."""
    rng = random.Random(int(stable_hash([seed, bundle]), 16))
    order = list(range(n))
    while n > 1 and order == sorted(order):
        rng.shuffle(order)
    return order


def order_answer(shown: list[int]) -> str:
    """The reference answer for pages shown in the order ``shown``."""
    return json.dumps([shown.index(true_index) + 1 for true_index in range(len(shown))])
