"""CT detector I/O in the bedside runtime: input preparation and raw-head decoding (numpy only)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge.ct.decode import decode_detections, grid_transform, neighbour_indices, nms, prepare_input, prepare_slice, to_model_grid
from edge.errors import ModelError
from edge.spec import ModelSpec, TensorSpec

S, STRIDE = 384, 4


def _spec(k: int = 3, threshold: float = 0.3, top_k: int = 20) -> ModelSpec:
    hs = S // STRIDE
    return ModelSpec(
        "ctdet-test", "ct-thrombus-detection", TensorSpec("image", (1, k, S, S), "float32"),
        (TensorSpec("heatmap", (1, 1, hs, hs), "float32"), TensorSpec("box", (1, 4, hs, hs), "float32")),
        {"window_level_hu": 140.0, "window_width_hu": 400.0, "target_spacing_mm": 1.0, "size": S, "k": k},
        ("thrombus",),
        extra={"decode": {"type": "centernet", "stride": STRIDE, "heatmap_output": "heatmap", "box_output": "box",
                          "score_threshold": threshold, "nms_iou": 0.3, "top_k": top_k, "peak_kernel": 3}},
    )


def _heads(peaks: list[tuple[int, int, float, tuple[float, float, float, float]]]) -> dict:
    """Synthetic raw heads: background logit -8, and per peak (row, col, logit, ltrb in model px)."""
    hs = S // STRIDE
    heat = np.full((1, 1, hs, hs), -8.0, np.float32)
    box = np.zeros((1, 4, hs, hs), np.float32)
    for r, c, logit, ltrb in peaks:
        heat[0, 0, r, c] = logit
        box[0, :, r, c] = np.log(np.asarray(ltrb) / STRIDE)
    return {"heatmap": heat, "box": box}


def test_one_peak_decodes_to_the_right_box_in_original_pixels():
    spec = _spec()
    ps, shape = (0.8, 0.8), (512, 512)  # resampled to 410 px at 1 mm, then centre-cropped to 384: offset 13
    (sx, sy), (ox, oy) = grid_transform(shape, ps, spec.preprocess)
    assert (ox, oy) == (13, 13) and sx == pytest.approx(410 / 512)
    r, c, ltrb = 40, 50, (6.0, 4.0, 10.0, 8.0)
    dets = decode_detections(_heads([(r, c, 2.0, ltrb)]), spec, slice_index=17, pixel_spacing_mm=ps,
                             original_shape=shape)
    assert len(dets) == 1
    d = dets[0]
    cx, cy = (c + 0.5) * STRIDE, (r + 0.5) * STRIDE
    model_box = np.array([cx - ltrb[0], cy - ltrb[1], cx + ltrb[2], cy + ltrb[3]])
    expect = (model_box + [ox, oy, ox, oy]) / [sx, sy, sx, sy]
    assert d.slice_index == 17 and d.score == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-5)
    assert np.allclose(d.box, expect, atol=1e-3)


def test_original_box_round_trips_through_the_model_grid():
    spec = _spec()
    for ps, shape in [((0.6, 0.6), (512, 512)), ((0.977, 0.977), (512, 512)), ((0.7, 0.7), (300, 400))]:
        orig = [201.0, 250.0, 219.0, 266.0]
        m = to_model_grid(orig, shape, ps, spec.preprocess)
        cx, cy = (m[0] + m[2]) / 2, (m[1] + m[3]) / 2
        c, r = int(cx // STRIDE), int(cy // STRIDE)
        ccx, ccy = (c + 0.5) * STRIDE, (r + 0.5) * STRIDE
        heads = _heads([(r, c, 3.0, (ccx - m[0], ccy - m[1], m[2] - ccx, m[3] - ccy))])
        dets = decode_detections(heads, spec, slice_index=0, pixel_spacing_mm=ps, original_shape=shape)
        assert len(dets) == 1 and np.allclose(dets[0].box, orig, atol=1e-3), (ps, shape, dets)


def test_threshold_from_spec_override_topk_and_nms():
    spec = _spec(threshold=0.5, top_k=20)
    big = (20.0, 20.0, 20.0, 20.0)
    heads = _heads([(40, 40, 3.0, big), (40, 43, 1.0, big), (70, 70, -1.0, (4.0, 4.0, 4.0, 4.0))])
    kw = dict(slice_index=0, pixel_spacing_mm=(1.0, 1.0), original_shape=(384, 384))
    dets = decode_detections(heads, spec, **kw)
    assert len(dets) == 1  # the 0.73 peak overlaps the 0.95 one (NMS), the 0.27 one is below 0.5
    assert len(decode_detections(heads, spec, score_threshold=0.2, **kw)) == 2
    assert len(decode_detections(heads, _spec(threshold=0.2, top_k=1), **kw)) == 1
    assert [d.score for d in decode_detections(heads, spec, score_threshold=0.2, **kw)] == sorted(
        [d.score for d in decode_detections(heads, spec, score_threshold=0.2, **kw)], reverse=True)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert nms(boxes, np.array([0.5, 0.9, 0.4]), 0.3).tolist() == [1, 2]


def test_decode_names_a_bad_spec_or_outputs():
    spec = _spec()
    with pytest.raises(ModelError, match="do not match"):
        decode_detections({"logits": np.zeros((1, 1, 96, 96))}, spec, slice_index=0, pixel_spacing_mm=(1, 1),
                          original_shape=(384, 384))
    bare = ModelSpec("x", "t", spec.input, spec.outputs, spec.preprocess, ("thrombus",))
    with pytest.raises(ModelError, match="decode"):
        decode_detections(_heads([]), bare, slice_index=0, pixel_spacing_mm=(1, 1), original_shape=(384, 384))


def test_prepare_input_windows_resamples_and_stacks():
    spec = _spec(k=3)
    hu = [np.full((512, 512), v, np.float32) for v in (-60.0, 140.0, 340.0)]  # window edges and level
    x = prepare_input(hu, (0.5, 0.5), spec)  # 0.5 mm -> 256 px at 1 mm, zero-padded to 384
    assert x.shape == (1, 3, S, S) and x.dtype == np.float32
    c = S // 2
    assert x[0, 0, c, c] == pytest.approx(0.0) and x[0, 1, c, c] == pytest.approx(0.5) and x[0, 2, c, c] == pytest.approx(1.0)
    assert x[0, 1, 0, 0] == 0.0  # padding
    assert np.array_equal(x[0, 1], prepare_slice(hu[1], (0.5, 0.5), spec.preprocess))
    with pytest.raises(ModelError, match="k=3"):
        prepare_input(hu[:1], (0.5, 0.5), spec)


def test_neighbours_replicate_the_series_ends():
    assert neighbour_indices(0, 10, 3) == [0, 0, 1]
    assert neighbour_indices(9, 10, 3) == [8, 9, 9]
    assert neighbour_indices(5, 10, 1) == [5]
    assert neighbour_indices(1, 4, 11) == [0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3]


def test_decode_module_does_not_import_torch():
    code = "import sys, edge.ct.decode; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
