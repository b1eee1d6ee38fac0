"""The three-state verdict on measurements with known answers."""

import numpy as np
import pytest

from edge.us.measure import measure
from edge.us.verdict import VerdictConfig, decide

CFG = VerdictConfig()


def curve(fps=30, seconds=4.0, baseline=2000.0, floor=0.0, flatten=0.2, press_at=1.0, hold_until=3.0):
    t = np.arange(0, seconds, 1 / fps)
    pressed = (t >= press_at) & (t < hold_until)
    vein = np.where(pressed, floor, baseline)
    artery = np.where(pressed, 0.9 * (1 - flatten), 0.9)
    return t, vein, artery


def verdict_of(t, vein, artery, final=True):
    return decide(measure(t, vein, artery, adequate_flattening=CFG.adequate_flattening), CFG, final=final)


def test_normal_vein_is_compressible():
    v = verdict_of(*curve(floor=0.0))
    assert v.verdict == "compressible"
    assert v.compressibility == pytest.approx(1.0)


def test_collapse_counts_even_with_little_artery_deformation():
    v = verdict_of(*curve(floor=100.0, flatten=0.02))
    assert v.verdict == "compressible"  # closing the vein proves the pressure


def test_open_vein_with_flattened_artery_is_non_compressible():
    v = verdict_of(*curve(floor=1200.0, flatten=0.2))
    assert v.verdict == "non_compressible"
    assert v.compressibility == pytest.approx(0.4)
    assert v.pressure_adequate is True


def test_partly_compressible_vein_is_flagged():
    v = verdict_of(*curve(floor=700.0, flatten=0.15))  # 65% compression: partial thrombus
    assert v.verdict == "non_compressible"


def test_open_vein_without_pressure_is_indeterminate():
    v = verdict_of(*curve(floor=1500.0, flatten=0.03))
    assert v.verdict == "indeterminate"
    assert "pressure" in v.reason


def test_too_short_and_not_found_and_lost_are_indeterminate():
    assert "too short" in verdict_of(*curve(seconds=0.5, press_at=0.2)).reason
    t, vein, artery = curve(baseline=50.0, floor=0.0)
    assert "not found" in verdict_of(t, vein, artery).reason
    t, vein, artery = curve()
    vein = vein.copy()
    vein[20:80] = np.nan
    assert verdict_of(t, vein, artery).verdict == "indeterminate"


def test_live_verdict_waits_for_held_pressure():
    t, vein, artery = curve(floor=1200.0, press_at=1.0, hold_until=9.0)
    n = int(np.searchsorted(t, 1.2))  # 0.2 s into the press: a normal vein may still be closing
    early = verdict_of(t[:n], vein[:n], artery[:n], final=False)
    assert early.verdict == "indeterminate" and "pressing" in early.reason
    late = verdict_of(t, vein, artery, final=False)
    assert late.verdict == "non_compressible" and late.final is False


def test_a_flickering_outline_that_closes_is_not_trusted_a_smooth_one_is():
    """Safety rule: a clot-filled vein whose segmentation flickers (the outline jumps by a fifth of its area
    from frame to frame) can reach zero area by chance; that closure must not read as compressible."""
    t, vein, artery = curve(floor=0.0)
    rng = np.random.default_rng(3)
    flicker = np.where(vein > 0, vein * rng.uniform(0.6, 1.0, len(vein)), 0.0)
    v = verdict_of(t, flicker, artery)
    assert v.verdict == "indeterminate" and "jumped" in v.reason
    steady = np.where(vein > 0, vein * rng.uniform(0.99, 1.0, len(vein)), 0.0)  # 1% speckle noise: trusted
    assert verdict_of(t, steady, artery).verdict == "compressible"


def test_vein_jitter_is_the_median_step_over_open_frames_before_the_minimum():
    from edge.us.measure import vein_jitter

    a = np.array([100, 110, 100, 110, 100, 0, 0, 100, 50], float)
    assert vein_jitter(a, baseline=100.0, i_min=5) == pytest.approx(0.10)  # steps of 10 among open frames
    assert vein_jitter(a, baseline=100.0, i_min=2) is None  # fewer than 3 open pairs
    assert vein_jitter(np.array([np.nan, 100, np.nan, 100, 100, 100, 120]), 100.0, 6) == pytest.approx(0.0)
    assert vein_jitter(a, baseline=None, i_min=5) is None
