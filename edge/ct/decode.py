"""CT detector I/O for the bedside runtime: build the model input, decode its raw heads (numpy only, no torch).

The detector (``training/ct/detector.py``) is anchor-free and CenterNet-like: one stride-``s`` level with
- ``heatmap`` [1, 1, Hs, Ws]: thrombus-centre logits (sigmoid -> probability);
- ``box``     [1, 4, Hs, Ws]: log of the distances (left, top, right, bottom) from the cell centre to the box
  edges, in units of the stride.
There is no NMS in the graph (TensorRT 10 dropped its NMS plugins); peaks, top-k and NMS happen here.

Everything model-specific is read from the spec (``<model>.json``), never hard-coded at a call site:

    preprocess: {"window_level_hu", "window_width_hu", "target_spacing_mm", "size", "k", "slice_padding"}
    extra["decode"]: {"type": "centernet", "stride", "heatmap_output", "box_output", "score_threshold",
                      "nms_iou", "top_k", "peak_kernel"}

Coordinates: boxes are [x0, y0, x1, y1] with x1/y1 exclusive, in pixel-edge coordinates (pixel (r, c) spans
[c, c+1) x [r, r+1)). The model grid relates to the ORIGINAL slice grid by ``model = orig * scale - offset``
where ``scale`` is the resampling factor actually applied (rounded output size / input size) and ``offset`` the
(x, y) origin returned by :func:`edge.ct.preprocess.fit_to`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edge.ct.preprocess import fit_to, resample, resample_factor, window
from edge.ct.types import Detection
from edge.errors import ModelError
from edge.spec import ModelSpec

_PRE_KEYS = ("window_level_hu", "window_width_hu", "target_spacing_mm", "size", "k")
_DEC_KEYS = ("stride", "heatmap_output", "box_output", "score_threshold", "nms_iou", "top_k")


def preprocess_params(spec: ModelSpec) -> dict:
    """The ``preprocess`` block of a CT detector spec, checked (ModelError names the model on a missing key)."""
    pre = spec.preprocess
    missing = [k for k in _PRE_KEYS if k not in pre]
    if missing:
        raise ModelError(f"model '{spec.name}': spec preprocess lacks {missing} (not a CT detector spec?)")
    return pre


def decode_params(spec: ModelSpec) -> dict:
    """The ``decode`` block of a CT detector spec (``extra["decode"]``), checked."""
    dec = spec.extra.get("decode")
    if not isinstance(dec, dict):
        raise ModelError(f"model '{spec.name}': spec has no 'decode' section (not a CT detector spec?)")
    missing = [k for k in _DEC_KEYS if k not in dec]
    if missing:
        raise ModelError(f"model '{spec.name}': spec decode lacks {missing}")
    if dec.get("type", "centernet") != "centernet":
        raise ModelError(f"model '{spec.name}': decode type {dec.get('type')!r} is not supported (centernet)")
    return dec


def grid_transform(original_shape: tuple[int, int], pixel_spacing_mm: tuple[float, float],
                   pre: dict) -> tuple[tuple[float, float], tuple[int, int]]:
    """((scale_x, scale_y), (offset_x, offset_y)) with ``model_xy = orig_xy * scale - offset``.

    Mirrors :func:`edge.ct.preprocess.resample` (output size rounded per axis) and ``fit_to``'s offset.
    """
    h, w = original_shape
    t = float(pre["target_spacing_mm"])
    fy, fx = resample_factor((float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])), t)  # same arithmetic
    rw, rh = max(1, int(round(w * fx))), max(1, int(round(h * fy)))
    size = int(pre["size"])
    return (rw / w, rh / h), ((rw - size) // 2, (rh - size) // 2)


def prepare_slice(hu: np.ndarray, pixel_spacing_mm: tuple[float, float], pre: dict) -> np.ndarray:
    """One HU slice (H, W) -> windowed [0, 1], resampled to ``target_spacing_mm``, fit to (size, size) float32.

    Call it once per arriving slice and keep the result: a k-slice input is a stack of these (:func:`stack_input`).
    """
    img = window(hu, float(pre["window_level_hu"]), float(pre["window_width_hu"]))
    img = resample(img, (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])), float(pre["target_spacing_mm"]))
    out, _ = fit_to(img, int(pre["size"]))
    return out.astype(np.float32, copy=False)


def neighbour_indices(centre: int, n: int, k: int) -> list[int]:
    """Slice indices feeding the model for ``centre`` in a series of ``n``: centre-k//2 .. centre+k//2,
    ascending position; out-of-range neighbours repeat the edge slice ("replicate" padding)."""
    half = k // 2
    return [min(max(i, 0), n - 1) for i in range(centre - half, centre + half + 1)]


def stack_input(prepared: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Stack k prepared slices (ascending position) into the model input [1, k, S, S] float32.

    ``out`` may be a preallocated [1, k, S, S] buffer (hot loop: no per-slice allocation); it is returned.
    """
    k = len(prepared)
    s = prepared[0].shape[-1]
    if out is None:
        out = np.empty((1, k, s, s), np.float32)
    for i, img in enumerate(prepared):
        out[0, i] = img
    return out


def prepare_input(hu_slices: list[np.ndarray], pixel_spacing_mm: tuple[float, float], spec: ModelSpec) -> np.ndarray:
    """k HU slices (ascending position, the centre one in the middle) -> model input [1, k, S, S] float32.

    All slices must share ``pixel_spacing_mm`` (row, col mm). The caller replicates the edge slice at the ends of
    a series (see :func:`neighbour_indices`). Used by training, evaluation and the runtime alike so they match.
    """
    pre = preprocess_params(spec)
    k = int(pre["k"])
    if len(hu_slices) != k:
        raise ModelError(f"model '{spec.name}' takes k={k} slices, got {len(hu_slices)}")
    return stack_input([prepare_slice(h, pixel_spacing_mm, pre) for h in hu_slices])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def _peaks(heat: np.ndarray, kernel: int) -> np.ndarray:
    """Boolean map of local maxima (3x3 max-pool equality, as CenterNet does instead of NMS on the heatmap)."""
    pad = kernel // 2
    p = np.pad(heat, pad, mode="constant", constant_values=-np.inf)
    h, w = heat.shape
    mx = heat.copy()
    for dy in range(kernel):
        for dx in range(kernel):
            np.maximum(mx, p[dy:dy + h, dx:dx + w], out=mx)
    return heat >= mx


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N, 4) and b (M, 4), [x0, y0, x1, y1]."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix0, iy0 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    ix1, iy1 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS; returns kept indices in descending score order."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode_model_grid(heat_logits: np.ndarray, box_log: np.ndarray, dec: dict,
                      score_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw heads of one image -> (boxes (N, 4) on the model grid in pixels, scores (N,)), after top-k and NMS.

    heat_logits: (Hs, Ws) logits; box_log: (4, Hs, Ws) log(ltrb / stride).
    """
    stride = float(dec["stride"])
    heat = sigmoid(heat_logits.astype(np.float32))
    cand = _peaks(heat, int(dec.get("peak_kernel", 3))) & (heat >= score_threshold)
    ys, xs = np.nonzero(cand)
    if ys.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    scores = heat[ys, xs]
    top = np.argsort(-scores, kind="stable")[: int(dec["top_k"])]
    ys, xs, scores = ys[top], xs[top], scores[top]
    ltrb = np.exp(np.clip(box_log[:, ys, xs].astype(np.float32), -4.0, 6.0)) * stride  # (4, N) pixels
    cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
    boxes = np.stack([cx - ltrb[0], cy - ltrb[1], cx + ltrb[2], cy + ltrb[3]], axis=1)
    keep = nms(boxes, scores, float(dec["nms_iou"]))
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32)


def decode_detections(outputs: dict[str, np.ndarray], spec: ModelSpec, *, slice_index: int,
                      pixel_spacing_mm: tuple[float, float], original_shape: tuple[int, int],
                      score_threshold: float | None = None) -> list[Detection]:
    """Raw detector outputs for one centre slice -> detections on that slice's ORIGINAL pixel grid.

    outputs: {name: array} as returned by a Backend (batch 1); names come from the spec's decode section.
    pixel_spacing_mm: (row, col) of the original slice; original_shape: its (H, W) pixels.
    score_threshold: overrides the spec's operating point (e.g. a low value to trace a FROC curve).
    Boxes are clipped to the image; sorted by descending score.
    """
    dec, pre = decode_params(spec), preprocess_params(spec)
    try:
        heat = np.asarray(outputs[dec["heatmap_output"]])[0, 0]
        box = np.asarray(outputs[dec["box_output"]])[0]
    except (KeyError, IndexError) as exc:
        raise ModelError(f"model '{spec.name}': outputs {sorted(outputs)} do not match the spec decode "
                         f"section ({dec['heatmap_output']!r}, {dec['box_output']!r})") from exc
    thr = float(dec["score_threshold"] if score_threshold is None else score_threshold)
    boxes, scores = decode_model_grid(heat, box, dec, thr)
    (sx, sy), (ox, oy) = grid_transform(original_shape, pixel_spacing_mm, pre)
    h, w = original_shape
    dets = []
    for b, s in zip(boxes, scores):
        x0, x1 = np.clip([(b[0] + ox) / sx, (b[2] + ox) / sx], 0, w)
        y0, y1 = np.clip([(b[1] + oy) / sy, (b[3] + oy) / sy], 0, h)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue  # entirely in the padding added by fit_to
        dets.append(Detection(int(slice_index), (float(x0), float(y0), float(x1), float(y1)), float(s)))
    return dets


def to_model_grid(box, original_shape, pixel_spacing_mm, pre: dict) -> list[float]:
    """Map an original-pixel box to the model grid (used to build training targets)."""
    (sx, sy), (ox, oy) = grid_transform(original_shape, pixel_spacing_mm, pre)
    return [box[0] * sx - ox, box[1] * sy - oy, box[2] * sx - ox, box[3] * sy - oy]
