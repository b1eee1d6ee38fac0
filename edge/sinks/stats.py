"""Latency statistics shared by the JSON report and the benchmarks. Pure functions over sample lists."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def _key(q: float) -> str:
    return f"p{q:g}"  # 50 -> "p50", 99.9 -> "p99.9"


def percentiles(samples: Iterable[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float | None]:
    """Percentiles of ``samples`` keyed ``"p50"``, ``"p90"``, ... (numpy linear interpolation).

    Samples are finite numbers in any unit (the caller's: ms in reports). Empty input gives ``None`` for
    every key, so a report can say "no data" instead of inventing a zero. ``[1..100]`` -> p50 = 50.5.
    """
    data = np.asarray(list(samples), dtype=np.float64)
    if data.size == 0:
        return {_key(q): None for q in qs}
    values = np.percentile(data, list(qs), method="linear")
    return {_key(q): float(v) for q, v in zip(qs, values)}


def summarize(samples: Iterable[float], qs: Sequence[float] = (50, 90, 99), ndigits: int = 3) -> dict:
    """``percentiles`` plus ``mean``, ``max`` and ``n``, rounded to ``ndigits`` (None when empty)."""
    data = np.asarray(list(samples), dtype=np.float64)
    out: dict = {k: (None if v is None else round(v, ndigits)) for k, v in percentiles(data, qs).items()}
    out["mean"] = round(float(data.mean()), ndigits) if data.size else None
    out["max"] = round(float(data.max()), ndigits) if data.size else None
    out["n"] = int(data.size)
    return out
