"""Randomised B-mode vessel scenes (training.phantoms.vessel_scenes): deterministic, labels follow the vessel signs."""

from __future__ import annotations

import cv2
import numpy as np

from training.data.us_frames import FULL, scene_set
from training.phantoms.vessel_scenes import scene_frames


def _axis_ratio(mask: np.ndarray) -> float:
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(cs, key=cv2.contourArea)
    if len(c) < 5:
        return 1.0
    (_, _), (a, b), _ = cv2.fitEllipse(c)
    return min(a, b) / max(a, b)


def test_same_seed_same_frames():
    a, la = scene_frames(5, 4)
    b, lb = scene_frames(5, 4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and all(np.array_equal(x, y) for x, y in zip(la, lb))
    c, _ = scene_frames(6, 4)
    assert not np.array_equal(a[0], c[0])


def test_labels_follow_the_signs():
    frames, labels = scene_frames(0, 60)
    arteries = veins = clot_like = 0
    for f, lab in zip(frames, labels):
        assert f.dtype == np.uint8 and f.shape == lab.shape == (192, 192)
        assert set(np.unique(lab)) <= {0, 1, 2}
        art = lab == 1
        if art.sum() > 30:
            arteries += 1
            assert _axis_ratio(art) >= 0.7  # the artery is round
            dist = cv2.distanceTransform(art.astype(np.uint8), cv2.DIST_L2, 3)
            inner = dist > 0.6 * dist.max()  # the centre of the lumen, inside the thick wall
            if inner.sum() > 10:  # its lumen is darker than the tissue around it
                ring = cv2.dilate(art.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~art
                assert f[inner].mean() < f[ring].mean()
        vein = lab == 2
        if vein.sum() > 30:
            veins += 1
            bg = f[lab == 0].mean()
            if f[vein].mean() > 0.5 * bg:  # echoes inside the vein: clot is labelled as vein (the outline)
                clot_like += 1
    assert arteries >= 40 and veins >= 40 and clot_like >= 5


def test_scene_set_is_full_labelled_training_data():
    s = scene_set(3, 5, (192, 192))
    assert len(s) == 5 and s.images.shape == (5, 1, 192, 192)
    assert float(s.images.max()) <= 1.0 and int(s.labels.max()) <= 2
    assert bool((s.kind == FULL).all())
