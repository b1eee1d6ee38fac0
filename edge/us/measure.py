"""Compression measurements: pure functions over per-frame arrays (no state, no I/O).

Inputs are aligned 1-D arrays, one value per processed frame, in time order:
    t            seconds (media time, or capture time for live sources)
    vein_area    screen px; 0.0 when the vein is collapsed; NaN when it is lost or not yet found
    artery_ratio height/width aspect of the tracked artery in screen units; NaN when it is not seen
    artery_area  (optional) screen px of the tracked artery; NaN when it is not seen
    vein_confidence (optional) the model's mean p(vessel) inside the tracked vein; NaN when no vein blob

Definitions (see docs/design.md, "Verdict"):
    baseline area     90th percentile of the smoothed vein area over the valid frames up to the minimum
                      (the open vein before pressure; a high percentile ignores partial early presses,
                      the smoothing ignores single-frame segmentation spikes)
    minimum area      minimum of the smoothed vein area
    compressibility   1 - minimum / baseline (Chen et al.: 86% for a normal femoral vein)
    artery flattening 1 - (lowest smoothed aspect) / (resting aspect); aspect = height / width in screen
                      units, the resting one the median over the first ``rest_s`` seconds. The probe
                      presses along the beam, shrinking the artery's height; pulsation scales it but keeps
                      its shape, so the aspect isolates probe pressure: the body's own pressure gauge.
    artery collapse   1 - (smallest smoothed artery area) / (resting artery area). An artery keeps its
                      lumen under probe pressure; a "artery" that collapses is a vein or a lost image.
    artery rest area  median smoothed artery area over the first ``rest_s`` seconds (screen px).
    vein confidence   median of the per-frame vein confidence over the frames up to the minimum.
    vein jitter       median frame-to-frame change of the vein area, as a share of the baseline, over the
                      frames up to the minimum where the vein was seen open in both frames. A vein narrows
                      smoothly under a probe; an outline that jumps by a fifth of its area from one frame to
                      the next is a segmentation that cannot be trusted to say the vein closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def median_smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred running median ignoring NaN; windows with no valid value stay NaN. ``window`` odd >= 1."""
    x = np.asarray(x, dtype=np.float64)
    if window <= 1 or x.size == 0:
        return x.copy()
    half = window // 2
    padded = np.pad(x, half, mode="constant", constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    out = np.full(x.shape, np.nan)
    valid = ~np.all(np.isnan(view), axis=1)
    if valid.any():
        out[valid] = np.nanmedian(view[valid], axis=1)
    return out


def smoothing_window(t: np.ndarray, seconds: float) -> int:
    """An odd frame count covering about ``seconds`` at the sequence's median frame interval (>= 1)."""
    if len(t) < 2:
        return 1
    dt = float(np.median(np.diff(t)))
    n = int(round(seconds / dt)) if dt > 0 else 1
    return max(1, n | 1)


@dataclass(frozen=True)
class Measurements:
    frames: int
    valid_frames: int  # frames with a vein area (tracked or collapsed)
    lost_fraction: float  # frames with no vein area after first acquisition / frames since acquisition
    duration_s: float
    baseline_area: float | None
    min_area: float | None
    min_index: int | None
    compressibility: float | None
    artery_flattening: float | None
    adequate_since_s: float | None  # time since the artery first reached the adequacy threshold
    artery_collapse: float | None = None
    vein_confidence: float | None = None
    artery_rest_area: float | None = None
    vein_jitter: float | None = None


def vein_jitter(vein_area: np.ndarray, baseline: float | None, i_min: int | None) -> float | None:
    """Median |area[i+1] - area[i]| / baseline over consecutive frames up to ``i_min`` with the vein open in
    both (finite and > 0); None when fewer than 3 such pairs or no baseline."""
    if baseline is None or baseline <= 0 or i_min is None:
        return None
    a = np.asarray(vein_area, dtype=np.float64)[: i_min + 1]
    pairs = np.isfinite(a[:-1]) & np.isfinite(a[1:]) & (a[:-1] > 0) & (a[1:] > 0)
    if pairs.sum() < 3:
        return None
    return float(np.median(np.abs(np.diff(a))[pairs]) / baseline)


def baseline_and_min(t: np.ndarray, vein_area: np.ndarray, smooth_s: float = 0.1) -> tuple[float | None, float | None, int | None]:
    """(baseline, minimum, index of minimum) of the vein-area curve; Nones when no valid area."""
    a = median_smooth(vein_area, smoothing_window(t, smooth_s))
    if not np.isfinite(a).any():
        return None, None, None
    i_min = int(np.nanargmin(a))
    before = a[: i_min + 1]
    baseline = float(np.nanpercentile(before, 90))
    return baseline, float(a[i_min]), i_min


def artery_flattening_curve(t: np.ndarray, artery_ratio: np.ndarray, rest_s: float = 0.5, smooth_s: float = 0.25) -> np.ndarray:
    """Per-frame flattening 1 - ratio_smoothed / ratio_rest (NaN where unknown)."""
    r = median_smooth(artery_ratio, smoothing_window(t, smooth_s))
    if len(t) == 0:
        return r
    rest = r[(t - t[0]) <= rest_s]
    if not np.isfinite(rest).any():
        return np.full(r.shape, np.nan)
    return 1.0 - r / float(np.nanmedian(rest))


def artery_rest_area(t: np.ndarray, artery_area: np.ndarray, rest_s: float = 0.5, smooth_s: float = 0.25) -> float | None:
    """Median of the smoothed artery area over the first ``rest_s`` seconds; None if unknown."""
    a = median_smooth(artery_area, smoothing_window(t, smooth_s))
    if len(t) == 0:
        return None
    rest = a[(t - t[0]) <= rest_s]
    if not np.isfinite(rest).any() or np.nanmedian(rest) <= 0:
        return None
    return float(np.nanmedian(rest))


def artery_collapse(t: np.ndarray, artery_area: np.ndarray, rest_s: float = 0.5, smooth_s: float = 0.25) -> float | None:
    """1 - min / rest of the smoothed artery area (rest: median over the first ``rest_s``); None if unknown."""
    rest = artery_rest_area(t, artery_area, rest_s, smooth_s)
    if rest is None:
        return None
    a = median_smooth(artery_area, smoothing_window(t, smooth_s))
    return float(1.0 - np.nanmin(a) / rest)


def measure(t, vein_area, artery_ratio, *, adequate_flattening: float, rest_s: float = 0.5,
            artery_area=None, vein_confidence=None) -> Measurements:
    """All measurements of one manoeuvre (or of the stream so far)."""
    t = np.asarray(t, dtype=np.float64)
    vein_area = np.asarray(vein_area, dtype=np.float64)
    artery_ratio = np.asarray(artery_ratio, dtype=np.float64)
    if not (len(t) == len(vein_area) == len(artery_ratio)):
        raise ValueError(f"arrays differ in length: t {len(t)}, vein {len(vein_area)}, artery {len(artery_ratio)}")
    valid = np.isfinite(vein_area)
    first = int(np.argmax(valid)) if valid.any() else len(t)
    since = len(t) - first
    lost = float(np.sum(~valid[first:]) / since) if since else 1.0
    baseline, minimum, i_min = baseline_and_min(t, vein_area)
    comp = None
    if baseline is not None and baseline > 0:
        comp = float(np.clip(1.0 - minimum / baseline, 0.0, 1.0))
    flat = artery_flattening_curve(t, artery_ratio, rest_s=rest_s)
    flattening = float(np.nanmax(flat)) if np.isfinite(flat).any() else None
    adequate_since = None
    if flattening is not None and flattening >= adequate_flattening:
        i_adequate = int(np.argmax(np.nan_to_num(flat, nan=-1.0) >= adequate_flattening))
        adequate_since = float(t[-1] - t[i_adequate])
    collapse = rest_area = None
    if artery_area is not None:
        artery_area = np.asarray(artery_area, dtype=np.float64)
        if len(artery_area) == len(t):
            collapse = artery_collapse(t, artery_area, rest_s=rest_s)
            rest_area = artery_rest_area(t, artery_area, rest_s=rest_s)
    confidence = None
    if vein_confidence is not None and len(vein_confidence) == len(t) and i_min is not None:
        c = np.asarray(vein_confidence, dtype=np.float64)[: i_min + 1]
        confidence = float(np.nanmedian(c)) if np.isfinite(c).any() else None
    return Measurements(
        frames=len(t), valid_frames=int(valid.sum()), lost_fraction=lost,
        duration_s=float(t[-1] - t[0]) if len(t) else 0.0,
        baseline_area=baseline, min_area=minimum, min_index=i_min, compressibility=comp,
        artery_flattening=flattening, adequate_since_s=adequate_since,
        artery_collapse=collapse, vein_confidence=confidence, artery_rest_area=rest_area,
        vein_jitter=vein_jitter(vein_area, baseline, i_min),
    )
