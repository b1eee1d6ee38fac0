"""Measurements are pure functions: check them on curves with known answers."""

import numpy as np
import pytest

from edge.us.measure import artery_flattening_curve, baseline_and_min, measure, median_smooth, smoothing_window


def manoeuvre(fps=30.0, rest=1.0, ramp=0.6, hold=0.6, release=0.6, baseline=1400.0, floor=0.0):
    """A vein-area curve: rest at baseline, linear press down to floor, hold, release back."""
    t = np.arange(0, rest + ramp + hold + release + 0.5, 1 / fps)
    area = np.full(t.shape, baseline)
    press = (t >= rest) & (t < rest + ramp)
    area[press] = baseline + (floor - baseline) * (t[press] - rest) / ramp
    held = (t >= rest + ramp) & (t < rest + ramp + hold)
    area[held] = floor
    rel = (t >= rest + ramp + hold) & (t < rest + ramp + hold + release)
    area[rel] = floor + (baseline - floor) * (t[rel] - rest - ramp - hold) / release
    return t, area


def test_median_smooth_removes_single_spikes_and_keeps_nan_gaps():
    x = np.array([5.0, 5, 100, 5, 5, np.nan, np.nan, np.nan, 5])
    y = median_smooth(x, 3)
    assert y[2] == 5.0
    assert np.isnan(y[6])
    assert y[5] == 5.0  # a window with one valid value keeps it


def test_smoothing_window_is_odd_and_scales_with_fps():
    assert smoothing_window(np.arange(0, 1, 1 / 30), 0.25) == 9  # 7.5 frames -> 8 -> odd 9
    assert smoothing_window(np.arange(0, 1, 1 / 15), 0.1) % 2 == 1
    assert smoothing_window(np.array([0.0]), 0.25) == 1


def test_chen_example_compressibility():
    # Chen et al.: predicted vein 1423 px before compression, 193 px under compression -> 86.44%
    t, area = manoeuvre(baseline=1423.0, floor=193.0)
    base, minimum, _ = baseline_and_min(t, area)
    assert base == pytest.approx(1423.0)
    assert minimum == pytest.approx(193.0)
    m = measure(t, area, np.full(t.shape, 0.9), adequate_flattening=0.08)
    assert m.compressibility == pytest.approx(1 - 193 / 1423, abs=1e-6)
    assert round(m.compressibility * 100, 2) == 86.44


def test_full_collapse_gives_compressibility_one_and_dropouts_are_ignored():
    t, area = manoeuvre(floor=0.0)
    area[5] = 0.0  # a one-frame segmentation dropout during rest must not count as the minimum
    area[10] = np.nan  # a lost frame
    m = measure(t, area, np.full(t.shape, 0.9), adequate_flattening=0.08)
    assert m.compressibility == pytest.approx(1.0)
    assert m.min_index > 30
    assert m.lost_fraction == pytest.approx(1 / len(t))


def test_artery_flattening_tracks_shape_not_size():
    t = np.arange(0, 3, 1 / 30)
    ratio = np.full(t.shape, 0.95)
    ratio[(t > 1.2) & (t < 2.0)] = 0.95 * (1 - 0.2)  # 20% flatter under pressure
    flat = artery_flattening_curve(t, ratio)
    assert np.nanmax(flat) == pytest.approx(0.2, abs=1e-6)
    assert np.nanmin(flat) == pytest.approx(0.0, abs=1e-6)


def test_adequate_since_counts_time_held():
    t = np.arange(0, 3, 1 / 30)
    ratio = np.where(t > 2.0, 0.8, 1.0)
    m = measure(t, np.full(t.shape, 1000.0), ratio, adequate_flattening=0.08)
    assert m.artery_flattening == pytest.approx(0.2)
    onset = t[t > 2.0][0]  # a centred median does not shift a step's onset
    assert m.adequate_since_s == pytest.approx(t[-1] - onset, abs=1e-9)


def test_all_lost_gives_no_measurements():
    t = np.arange(0, 2, 1 / 30)
    m = measure(t, np.full(t.shape, np.nan), np.full(t.shape, np.nan), adequate_flattening=0.08)
    assert m.baseline_area is None and m.compressibility is None and m.artery_flattening is None
    assert m.lost_fraction == 1.0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="differ in length"):
        measure([0.0, 1.0], [1.0], [1.0, 1.0], adequate_flattening=0.08)
