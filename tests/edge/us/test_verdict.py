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
