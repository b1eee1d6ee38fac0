"""Vessel identity from behaviour over time: pulsation and shape against the model's per-frame labels."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge.us.identity import IdentityConfig, IdentityJudge, decide_identity, pulsatility, smoothness
from edge.us.measure import measure
from edge.us.verdict import VerdictConfig, decide

H = W = 192
FPS = 30.0


def pulse(t: float, hr_bpm: float = 72.0) -> float:
    """A sharp systolic upstroke and slow decay, in [0, 1]."""
    ph = (hr_bpm / 60.0 * t) % 1.0
    return math.exp(-((ph - 0.12) / 0.07) ** 2) if ph < 0.12 else math.exp(-(ph - 0.12) / 0.25)


def frame(t: float, *, a_label: int, b_label: int, a_pulse: float = 0.08, b_pulse: float = 0.0,
          a_axes=(12, 12), b_axes=(22, 12), b_scale: float = 1.0, rng=None) -> np.ndarray:
    """Vessel A (left, round by default) and vessel B (right, oval by default) with the given labels."""
    lab = np.zeros((H, W), np.uint8)
    ka = 1 + a_pulse * pulse(t)
    kb = (1 + b_pulse * pulse(t)) * b_scale
    jitter = (lambda: rng.uniform(-0.4, 0.4)) if rng is not None else (lambda: 0.0)
    if a_label:
        cv2.ellipse(lab, (70, 90), (int(round(a_axes[0] * ka + jitter())), int(round(a_axes[1] * ka + jitter()))),
                    0, 0, 360, a_label, -1)
    if b_label and b_scale > 0.05:
        cv2.ellipse(lab, (125, 96), (int(round(b_axes[0] * (1 + b_pulse * pulse(t)))), max(1, int(round(b_axes[1] * kb)))),
                    0, 0, 360, b_label, -1)
    return lab


def judge_on(frames_fn, seconds: float = 1.2) -> IdentityJudge:
    judge = IdentityJudge((H, W))
    for i in range(int(seconds * FPS)):
        judge.observe(frames_fn(i / FPS), i / FPS)
    judge.decide()
    return judge


def test_pulsatility_of_a_pulsating_and_a_steady_area():
    t = np.arange(0, 1.2, 1 / FPS)
    artery = 450 * (1 + 0.16 * np.array([pulse(x) for x in t]))
    vein = 800 + np.random.default_rng(0).normal(0, 5, t.size)
    cfg = IdentityConfig()
    assert pulsatility(t, artery) > cfg.pulse_min
    assert pulsatility(t, vein) < 0.03
    assert math.isnan(pulsatility(t[:3], artery[:3]))


def test_the_start_of_a_press_is_not_a_pulse():
    """A vein narrowing smoothly as the probe presses late in the window must not read as pulsating."""
    t = np.arange(0, 1.0, 1 / FPS)
    s = np.clip((t - 0.6) / 0.8, 0, 1)
    vein = 1000 * (1 - 0.3 * s * s * (3 - 2 * s))
    assert pulsatility(t, vein) < IdentityConfig().contradict_min


def test_pulsating_round_vessel_labelled_vein_is_the_artery():
    """The model swapped the labels on every frame; pulsation and shape put them right."""
    judge = judge_on(lambda t: frame(t, a_label=2, b_label=1))
    ident = judge.identity
    assert ident.basis == "physiology", ident
    a_track = min(judge.tracks, key=lambda tr: tr.centroid[0])  # vessel A is on the left
    assert ident.artery == a_track.id
    relabelled = judge.relabel(frame(0.5, a_label=2, b_label=1))
    assert relabelled[90, 70] == 1 and relabelled[96, 125] == 2


def test_both_vessels_labelled_vein_physiology_finds_the_artery():
    """The carotid failure: the artery called vein beside the vein. Only behaviour can tell them apart."""
    judge = judge_on(lambda t: frame(t, a_label=2, b_label=2))
    assert judge.identity.basis == "physiology"
    relabelled = judge.relabel(frame(0.3, a_label=2, b_label=2))
    assert relabelled[90, 70] == 1 and relabelled[96, 125] == 2


def test_labels_agreeing_with_physiology_are_kept():
    judge = judge_on(lambda t: frame(t, a_label=1, b_label=2))
    assert judge.identity.basis == "labels+physiology"
    lab = frame(0.3, a_label=1, b_label=2)
    assert np.array_equal(judge.relabel(lab), lab)


def test_no_pulsation_keeps_the_labels():
    judge = judge_on(lambda t: frame(t, a_label=1, b_label=2, a_pulse=0.0))
    assert judge.identity.basis == "labels"
    assert not judge.identity.doubt


def test_contradiction_without_shape_support_is_doubt():
    """The vessel labelled vein pulsates but is the flatter one: labels and physiology disagree and
    neither is strong enough to overrule the other."""
    judge = judge_on(lambda t: frame(t, a_label=1, b_label=2, a_pulse=0.0, b_pulse=0.12,
                                     a_axes=(12, 12), b_axes=(22, 11)))
    assert judge.identity.doubt
    m = measure(np.arange(60) / FPS, np.full(60, 800.0), np.full(60, 1.0), adequate_flattening=0.08)
    v = decide(m, VerdictConfig(), final=True, identity=judge.identity)
    assert v.verdict == "indeterminate" and "identity" in v.reason


def test_a_flickering_vein_outline_is_not_a_pulse():
    """Segmentation flicker (the area jumps frame to frame with no rhythm) is noise, not pulsation: it must not
    contradict the labels (identity in doubt) the way a smooth heartbeat does."""
    rng = np.random.default_rng(4)
    flick = {round(i / FPS, 6): float(rng.choice([0.75, 1.0, 1.25])) for i in range(int(1.2 * FPS))}
    judge = judge_on(lambda t: frame(t, a_label=1, b_label=2, a_pulse=0.0, b_scale=flick[round(t, 6)]))
    vein = [e for e in judge.identity.evidence if e.id == judge.identity.vein][0]
    assert vein.pulsatility > 0.12 and vein.smoothness < IdentityConfig().pulse_smoothness
    assert not judge.identity.doubt and judge.identity.basis == "labels"
    t = np.arange(0, 1.2, 1 / FPS)  # a heartbeat sampled at 30 fps is smooth; 10 fps at 120 bpm still >= 0.3
    assert smoothness(t, 450 * (1 + 0.16 * np.array([pulse(x) for x in t]))) > 0.6
    t10 = np.arange(0, 2.0, 0.1)
    assert smoothness(t10, 450 * (1 + 0.1 * np.sin(2 * np.pi * 2.0 * t10))) >= 0.2


def test_decide_identity_with_no_steady_vessel():
    assert decide_identity([], frames=30).basis == "none"


def test_ready_after_the_evidence_window_or_when_pressure_starts():
    judge = IdentityJudge((H, W))
    for i in range(10):  # 0.33 s: too early whatever happens
        judge.observe(frame(i / FPS, a_label=1, b_label=2), i / FPS)
    assert not judge.ready()
    # the vein starts to shrink at 0.5 s: pressure has started, decide before the press hides the vein
    for i in range(10, 30):
        t = i / FPS
        judge.observe(frame(t, a_label=1, b_label=2, b_scale=1.0 if t < 0.5 else max(0.3, 1 - 2.5 * (t - 0.5))), t)
        if judge.ready():
            break
    assert judge.ready() and i / FPS < 1.0


@pytest.mark.parametrize("identity_artery", [None])
def test_safety_rule_no_compressible_without_an_identified_artery(identity_artery):
    """A vein that closes is called compressible only when it was identified with confidence."""
    from edge.us.identity import Identity

    t = np.arange(90) / FPS
    vein = np.where(t < 1.2, 900.0, np.maximum(0.0, 900 - 1500 * (t - 1.2)))
    m = measure(t, vein, np.full(90, 1.0), adequate_flattening=0.08)
    assert m.compressibility > 0.95
    cfg = VerdictConfig()
    sure = Identity(0, 1, "labels+physiology", "")
    assert decide(m, cfg, final=True, identity=sure).verdict == "compressible"
    unsure = Identity(identity_artery, 1, "labels", "")
    assert decide(m, cfg, final=True, identity=unsure).verdict == "indeterminate"
    low = measure(t, vein, np.full(90, 1.0), adequate_flattening=0.08, vein_confidence=np.full(90, 0.45))
    assert decide(low, cfg, final=True, identity=sure).verdict == "indeterminate"


def test_an_artery_that_collapses_puts_identity_in_doubt():
    """The vessel taken as the artery collapses under pressure while the 'vein' stays open: the two were
    swapped; flagging DVT from that would be wrong, so the verdict is indeterminate."""
    t = np.arange(120) / FPS
    press = np.clip((t - 1.0) / 0.5, 0, 1)
    artery_area = 600 * (1 - 0.9 * press)
    aspect = 1 - 0.5 * press
    m = measure(t, np.full(120, 900.0), aspect, adequate_flattening=0.08, artery_area=artery_area)
    assert m.artery_collapse > 0.8
    v = decide(m, VerdictConfig(), final=True)
    assert v.verdict == "indeterminate" and "collapsed" in v.reason


def test_a_closing_vein_much_smaller_than_its_artery_is_not_called_compressible():
    """A small region taken as the vein that vanishes under pressure is more likely a fragment than the
    femoral vein (which is as large as its artery or larger): indeterminate, not compressible."""
    from edge.us.identity import Identity

    t = np.arange(90) / FPS
    sure = Identity(0, 1, "labels+physiology", "")
    artery = np.full(90, 1000.0)
    for vein_open, expected in ((300.0, "indeterminate"), (900.0, "compressible")):
        vein = np.where(t < 1.2, vein_open, np.maximum(0.0, vein_open - 1500 * (t - 1.2)))
        m = measure(t, vein, np.full(90, 1.0), adequate_flattening=0.08, artery_area=artery)
        assert m.artery_rest_area == pytest.approx(1000.0)
        v = decide(m, VerdictConfig(), final=True, identity=sure)
        assert v.verdict == expected, v.reason
        if expected == "indeterminate":
            assert "30% of the artery" in v.reason
