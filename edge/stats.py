"""Timing statistics of both modalities: the ultrasound JSON report, the CT scan report and the benchmarks.
Pure functions over sample lists (numpy linear-interpolation percentiles).

    percentiles(samples)      {"p50", "p90", "p99"}: None each when empty
    summarize(samples)        the us report's block: {"p50", "p90", "p99", "mean", "max", "n"} (None when empty)
    timing_summary(samples)   the CT report's block: {"n", "mean", "p50", "p90", "max"}, or {"n": 0} when empty
"""

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


def timing_summary(samples: Iterable[float], ndigits: int = 3) -> dict:
    """The CT report's per-stage timing: ``n``, ``mean``, ``p50``, ``p90``, ``max`` (in that key order),
    rounded to ``ndigits``; just ``{"n": 0}`` when there are no samples."""
    data = np.asarray(list(samples), dtype=np.float64)
    if data.size == 0:
        return {"n": 0}
    p = percentiles(data, (50, 90))
    return {"n": int(data.size), "mean": round(float(data.mean()), ndigits), "p50": round(p["p50"], ndigits),
            "p90": round(p["p90"], ndigits), "max": round(float(data.max()), ndigits)}
