"""Timing primitives shared by every section: a query loop with warm-up and a time/count budget, and summaries.

Clock: ``time.perf_counter_ns`` (monotonic, highest resolution). Synchronisation is the caller's job: the
timed callable must return only when the work is finished on the device. Every backend in ``edge.backends``
returns host numpy arrays (ONNX Runtime copies outputs to the host before ``run`` returns; the TensorRT backend
synchronises its CUDA stream before returning), and the PyTorch runner calls ``torch.cuda.synchronize()`` and
copies to the host on CUDA, so a wall-clock pair around the call is a device-synchronised timing.

Percentiles come from :mod:`edge.stats` (the same helper the bedside JSON report uses).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable

import numpy as np

from benchmarks.config import Budget
from edge.stats import summarize

QS = (50, 90, 99)


def time_queries(fn: Callable[[], object], budget: Budget) -> tuple[list[float], dict]:
    """Call ``fn`` ``budget.warmup`` times untimed, then time it until the budget is met.

    Returns (samples in ms, info) where info holds ``queries``, ``seconds`` (timed wall time),
    ``warmup`` and ``truncated`` (True when ``max_seconds`` stopped the run before ``min_queries``).
    A garbage collection runs before timing starts, so one backend's garbage does not land on the next.
    """
    for _ in range(budget.warmup):
        fn()
    gc.collect()
    samples: list[float] = []
    clock = time.perf_counter_ns
    start = clock()
    min_ns, max_ns = budget.min_seconds * 1e9, budget.max_seconds * 1e9
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append((t1 - t0) / 1e6)
        elapsed = t1 - start
        if len(samples) >= budget.min_queries and elapsed >= min_ns:
            break
        if elapsed >= max_ns:
            break
    seconds = (clock() - start) / 1e9
    return samples, {"queries": len(samples), "seconds": round(seconds, 3), "warmup": budget.warmup,
                     "truncated": len(samples) < budget.min_queries}


def summary(samples_ms: Iterable[float]) -> dict:
    """p50/p90/p99, mean, max, min and n of millisecond samples (None entries when empty)."""
    data = np.asarray(list(samples_ms), dtype=np.float64)
    out = summarize(data, QS)
    out["min"] = round(float(data.min()), 3) if data.size else None
    return out


def rounded(samples: Iterable[float], ndigits: int = 3) -> list[float]:
    """Raw samples for the JSON file: microsecond resolution is plenty for millisecond timings."""
    return [round(float(x), ndigits) for x in samples]
