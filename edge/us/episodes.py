"""Compression episodes: a live probe is pressed and released many times; each press is judged on its own.

A session of any length must give the same answer for the same manoeuvres, so the measurement window is
not a sliding slice of the stream (which can start in the middle of a press and take the pressed vein as
its baseline) but one episode: the rest before a press, the press and its release. When an episode ends,
its verdict goes to the history and the next episode starts from the rest frames that followed it, so
every baseline comes from frames at rest.

An episode has ENDED (pure function :func:`episode_ended`) when, after its decisive moment, the image has
been back at rest for ``rest_after_s``:
* the vein closed (compressibility >= the verdict's ``compressible_min``) and has re-opened to at least
  ``reopen`` x its baseline; or
* the artery flattened enough to judge (adequate pressure) and has relaxed below half that flattening
  while the vein is open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge.us.measure import Measurements, artery_flattening_curve, median_smooth, smoothing_window


@dataclass(frozen=True)
class EpisodeConfig:
    rest_after_s: float = 0.3  # back at rest this long after the press: the episode is over
    reopen: float = 0.6  # a closed vein counts as re-opened at this share of its baseline
    min_episode_s: float = 1.0  # shorter "episodes" are not a press and release
    keep_s: float = 0.3  # rest frames carried into the next episode (its first baseline frames; <= rest_after_s)
    max_history: int = 100  # completed episodes kept (memory bound for a probe held for hours)

    def to_json(self) -> dict:
        return asdict(self)


def episode_ended(t: np.ndarray, vein_area: np.ndarray, artery_ratio: np.ndarray, m: Measurements, *,
                  compressible_min: float, adequate_flattening: float, cfg: EpisodeConfig,
                  smooth_s: float = 0.1) -> bool:
    """True when the episode measured by ``m`` (over the same arrays) is over (see the module docstring)."""
    t = np.asarray(t, dtype=np.float64)
    if len(t) < 3 or m.min_index is None or m.baseline_area is None:
        return False
    rest = (t >= t[-1] - cfg.rest_after_s)
    if t[-1] - t[0] < max(cfg.min_episode_s, 2 * cfg.rest_after_s) or rest.sum() < 2:
        return False
    a = median_smooth(np.asarray(vein_area, dtype=np.float64), smoothing_window(t, smooth_s))
    tail = a[rest]
    vein_open = bool(np.isfinite(tail).all() and (tail >= cfg.reopen * m.baseline_area).all())
    if m.compressibility is not None and m.compressibility >= compressible_min:
        return bool(vein_open and t[-1] - t[m.min_index] >= cfg.rest_after_s)
    if m.artery_flattening is None or m.artery_flattening < adequate_flattening:
        return False
    flat = artery_flattening_curve(t, np.asarray(artery_ratio, dtype=np.float64))
    relaxed = flat[rest]
    return vein_open and bool(np.isfinite(relaxed).all() and (relaxed < adequate_flattening / 2).all())
