"""Cost per 1,000 samples, from a model's ``cost:`` entry and what the run measured.

* **Self-hosted** (``cost: {usd_per_hour: H}``): the machine is paid by the hour whether it is
  busy or not, so the price of a sample is the hour's price spread over the samples it can serve
  while meeting the SLO::

      cost per 1,000 samples = 1000 × H / (3600 × R)

  with ``R`` the highest requests/s that met the SLO over every ladder of the perf job
  (:meth:`~vlmhyperbench.perf.result.PerfResult.best_throughput`, not the ladder's top). No perf
  result, or no load that met the SLO, gives no cost.
* **API** (``cost: {usd_per_1m_input_tokens: A, usd_per_1m_output_tokens: B}``): the tokens the
  benchmark run actually used (the predictions' ``usage``), over its answered samples::

      cost per 1,000 samples = 1000 × mean_i(p_i × A + c_i × B) / 1e6
                             = 1000 × (mean p × A + mean c × B) / 1e6

  with ``p_i`` the prompt and ``c_i`` the completion tokens of sample ``i`` (samples without
  both counts are left out; none left gives no cost).
* **No** ``cost:``: no cost. A missing cost is ``None``, shown as "—", never 0.

Each :class:`Cost` carries a one-line formula with the numbers filled in, shown beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vlmhyperbench.config.schema import ApiCost, SelfHostedCost

Basis = Literal["self-hosted", "api", "none"]
NO_COST = "—"


@dataclass(frozen=True)
class Cost:
    usd_per_1k_samples: float | None  # None: not known (shown as "—", never 0)
    formula: str  # one line, the numbers filled in (or why there is no cost)
    basis: Basis


def significant(value: float, min_decimals: int = 0) -> str:
    """Three significant digits in fixed point (no exponent: ``0.000123``, ``1234``)."""
    if value == 0 or value != value or math.isinf(value):
        return f"{value:.{min_decimals}f}"
    decimals = max(min_decimals, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def usd(value: float | None) -> str:
    """Dollars with three significant digits, at least cents; "—" for None or NaN."""
    if value is None or value != value:
        return NO_COST
    return "$" + significant(value, min_decimals=2)


def self_hosted_cost(
    usd_per_hour: float, requests_per_s: float | None, *, measured: bool = True
) -> Cost:
    """1000 × usd_per_hour / (3600 × requests_per_s), at the highest SLO-meeting requests/s
    (``None``: no load met the SLO; ``measured`` False: there is no perf result)."""
    if not measured or requests_per_s is None or not requests_per_s > 0:
        why = "no perf result" if not measured else "no load met the SLO"
        return Cost(
            None, f"{usd(usd_per_hour)}/h, but {why}: no throughput to price", "self-hosted"
        )
    value = 1000 * usd_per_hour / (3600 * requests_per_s)
    formula = (
        f"1000 × {usd(usd_per_hour)}/h ÷ (3600 s/h × {significant(requests_per_s)} req/s "
        f"at the SLO) = {usd(value)}"
    )
    return Cost(value, formula, "self-hosted")


def _known(count: float | None) -> bool:
    return count is not None and count == count


def mean_tokens(prompt: Sequence[float], completion: Sequence[float]) -> tuple[float, float, int]:
    """Mean prompt and completion tokens over the samples that have both, and their number."""
    pairs = [
        (float(p), float(c))
        for p, c in zip(prompt, completion, strict=True)
        if _known(p) and _known(c)
    ]
    if not pairs:
        return math.nan, math.nan, 0
    return (
        sum(p for p, _ in pairs) / len(pairs),
        sum(c for _, c in pairs) / len(pairs),
        len(pairs),
    )


def api_cost(price: ApiCost, prompt: Sequence[float], completion: Sequence[float]) -> Cost:
    """1000 × mean(prompt × input price + completion × output price) / 1e6 over the answered
    samples' token counts (``prompt``, ``completion``: one per answered sample, NaN unknown)."""
    mean_in, mean_out, n = mean_tokens(prompt, completion)
    per_million = f"{usd(price.usd_per_1m_input_tokens)} in / {usd(price.usd_per_1m_output_tokens)}"
    if n == 0:
        return Cost(None, f"{per_million} out per 1M tokens, but no token usage recorded", "api")
    value = (
        1000
        * (mean_in * price.usd_per_1m_input_tokens + mean_out * price.usd_per_1m_output_tokens)
        / 1e6
    )
    formula = (
        f"1000 × ({mean_in:.1f} input tokens × {usd(price.usd_per_1m_input_tokens)} + "
        f"{mean_out:.1f} output tokens × {usd(price.usd_per_1m_output_tokens)}) ÷ 1M "
        f"= {usd(value)} (mean of {n} answered samples)"
    )
    return Cost(value, formula, "api")


def cost_per_1k_samples(
    price: SelfHostedCost | ApiCost | None,
    requests_per_s: float | None,
    prompt: Sequence[float],
    completion: Sequence[float],
    *,
    measured: bool = True,
) -> Cost:
    """The cost by the kind of price: self-hosted at ``requests_per_s`` (the highest that met
    the SLO; ``measured`` False: no perf result), an API from the tokens, none without a
    price."""
    if price is None:
        return Cost(None, "no cost: the model's registry entry has none", "none")
    if isinstance(price, SelfHostedCost):
        return self_hosted_cost(price.usd_per_hour, requests_per_s, measured=measured)
    return api_cost(price, prompt, completion)
