"""The HD resize path (edge.us.preprocess.crop_reduce): crop first, then a cheap reduction to the model grid.

Checked against today's output (crop_resize: INTER_AREA of the grey crop) with a tolerance on HD frames,
and bit for bit where the crop is under 4x the grid (phantom clips, demo clips, real stills)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import edge.us.preprocess as pre_mod
from edge.assets import DEMO_CLIPS, asset, us_model
from edge.backends.select import open_backend
from edge.sources.base import Frame
from edge.spec import load_spec
from edge.us.pipeline import UltrasoundPipeline
from edge.us.postprocess import labels_from_logits
from edge.us.preprocess import Preprocessor, crop_reduce, crop_resize, find_image_region, to_grey

GRID = (192, 192)


def clip_frames(name: str, n: int | None = None) -> list[np.ndarray]:
    from edge.sources.testing import video_frames

    return video_frames(asset(DEMO_CLIPS[name]), n)


def hd_screen(frame: np.ndarray) -> np.ndarray:
    """A 1920x1080 capture of a scanner screen: the 640x480 phantom screen scaled to full height (1440x1080)
    in a black frame, text beside it; its image region (~1150x860) is over 4x the grid."""
    screen = np.zeros((1080, 1920, 3), np.uint8)
    screen[:, 240:1680] = cv2.resize(frame, (1440, 1080), interpolation=cv2.INTER_CUBIC)
    cv2.putText(screen, "L12-5  MI 0.9", (40, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
    return screen


def old_path(frame, region):
    return crop_resize(to_grey(frame), region, GRID)


def dice(a, b, label):
    x, y = a == label, b == label
    s = x.sum() + y.sum()
    return 1.0 if s == 0 else 2.0 * (x & y).sum() / s


@pytest.mark.parametrize("shape,region", [((480, 640), (80, 40, 480, 400)), ((600, 800), (61, 37, 677, 527)),
                                          ((512, 512), (0, 0, 512, 512)), ((1080, 1920), (0, 0, 760, 1000))])
def test_crops_under_4x_the_grid_are_unchanged_bit_for_bit(shape, region):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert np.array_equal(crop_reduce(frame, region, GRID), old_path(frame, region))
    assert np.array_equal(crop_reduce(frame[:, :, 1], region, GRID), crop_resize(frame[:, :, 1], region, GRID))


def test_demo_clip_preprocessing_is_unchanged():
    spec = load_spec(us_model())
    for f in clip_frames("normal", 10):
        region = find_image_region(to_grey(f))
        x_new, small = Preprocessor(spec, region=region)(f)
        assert np.array_equal(small, old_path(f, region))


@pytest.mark.parametrize("region", [(0, 0, 1920, 1080), (240, 0, 1440, 1080), (475, 151, 1147, 857)])
def test_hd_crop_is_close_to_todays_resize(region):
    for f in clip_frames("dvt", 6)[::2]:
        hd = hd_screen(f)
        new, old = crop_reduce(hd, region, GRID).astype(int), old_path(hd, region).astype(int)
        diff = np.abs(new - old)
        # measured: max 12-18, mean 0.16-0.53, 99th percentile 1-3 grey levels (odd-size halvings drop a row)
        assert diff.max() <= 24 and diff.mean() <= 0.6 and np.percentile(diff, 99) <= 4, \
            (region, diff.max(), diff.mean())


def test_hd_masks_match_todays_path():
    """The model's labels on HD screens through both paths: per-class Dice >= 0.98 (pooled over frames)."""
    model = us_model()
    spec = load_spec(model)
    be, _ = open_backend(model, "onnxruntime", threads=1)
    inter = {1: 0, 2: 0}
    total = {1: 0, 2: 0}
    try:
        for f in clip_frames("normal")[::8]:
            hd = hd_screen(f)
            region = find_image_region(to_grey(hd))
            assert region[2] >= 4 * GRID[1] and region[3] >= 4 * GRID[0]  # the fast path is taken
            labs = []
            for small in (crop_reduce(hd, region, GRID), old_path(hd, region)):
                x = pre_mod.normalise(small, Preprocessor(spec).scale, Preprocessor(spec).mean, Preprocessor(spec).std)
                labs.append(labels_from_logits(be.infer({spec.input.name: x})[spec.outputs[0].name]))
            for c in (1, 2):
                inter[c] += int(((labs[0] == c) & (labs[1] == c)).sum())
                total[c] += int((labs[0] == c).sum() + (labs[1] == c).sum())
    finally:
        be.close()
    for c in (1, 2):
        assert total[c] > 0 and 2 * inter[c] / total[c] >= 0.98, (c, 2 * inter[c] / total[c])


@pytest.mark.parametrize("clip", ["normal", "dvt"])
def test_hd_verdict_matches_todays_path(clip, monkeypatch):
    """The whole ultrasound pipeline on the HD version of a demo clip gives the same verdict through both
    resize paths, and compressibility within 0.02."""
    model = us_model()
    spec = load_spec(model)
    frames = [hd_screen(f) for f in clip_frames(clip)]
    fps = 30.0
    verdicts = []
    for reduce in (crop_reduce, lambda fr, reg, hw: crop_resize(to_grey(fr), reg, hw)):
        monkeypatch.setattr(pre_mod, "crop_reduce", reduce)
        be, _ = open_backend(model, "onnxruntime", threads=1)
        try:
            pipe = UltrasoundPipeline(be, spec)
            for i, f in enumerate(frames):
                pipe.process(Frame(image=f, index=i, t_capture=i / fps, t_media=i / fps))
            verdicts.append(pipe.current_verdict(final=True))
        finally:
            be.close()
    new, old = verdicts
    assert new.verdict == old.verdict
    assert abs((new.compressibility or 0) - (old.compressibility or 0)) <= 0.02
