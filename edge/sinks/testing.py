"""Test doubles shipped with the runtime: synthetic, real-looking FrameResults for the sinks.

A 640x480 screen with a dark ultrasound region; on a 128x128 model grid an artery (label 1, round) sits
left of a vein (label 2, oval). Lives in the package so any test (or a UI prototype) can build results
without running a model; numpy + OpenCV only.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.us.types import Blob, FrameResult, TrackState, VeinStatus, Verdict, VerdictKind

GRID = (128, 128)
SCREEN = (480, 640)  # h, w
REGION = (80, 40, 480, 400)  # x, y, w, h of the image area on the screen
ARTERY = ((40, 64), (12, 12))  # centre (x, y), half-axes (a, b) on the model grid
VEIN = ((84, 66), (18, 12))

def ellipse_mask(centre, axes, grid=GRID) -> np.ndarray:
    m = np.zeros(grid, np.uint8)
    cv2.ellipse(m, centre, axes, 0, 0, 360, 1, -1)
    return m.astype(bool)


def make_blob(mask: np.ndarray, label: int) -> Blob:
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.stack([xs, ys]).astype(float)) if xs.size > 2 else np.eye(2)
    ev = np.sort(np.linalg.eigvalsh(cov))
    ratio = float(math.sqrt(max(ev[0], 0.0) / ev[1])) if ev[1] > 0 else 1.0
    x0, y0 = int(xs.min()), int(ys.min())
    return Blob(label=label, area=float(mask.sum()), centroid=(float(xs.mean()), float(ys.mean())),
                bbox=(x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1), axis_ratio=ratio, mask=mask)


def make_verdict(verdict=VerdictKind.INDETERMINATE, final=False, **kw) -> Verdict:
    base = dict(reason="Baseline being measured: hold the probe still.", compressibility=None,
                baseline_vein_area_px=None, min_vein_area_px=None, artery_flattening=None,
                pressure_adequate=None)
    base.update(kw)
    return Verdict(verdict=VerdictKind(verdict), final=final, **base)


def make_result(index=0, *, status=VeinStatus.TRACKED, artery=True, vein_axes=VEIN[1], verdict=None, grey=True,
                t_media=None, latency_s=0.02, frame_value=50, stage_ms=None) -> FrameResult:
    labels = np.zeros(GRID, np.uint8)
    a_blob = v_blob = None
    if artery:
        am = ellipse_mask(*ARTERY)
        labels[am] = 1
        a_blob = make_blob(am, 1)
    status = VeinStatus(status)
    area_px = None
    if status in (VeinStatus.TRACKED, VeinStatus.COLLAPSED) and vein_axes is not None and min(vein_axes) > 0:
        vm = ellipse_mask(VEIN[0], vein_axes)
        labels[vm] = 2
        v_blob = make_blob(vm, 2)
    sx, sy = REGION[2] / GRID[1], REGION[3] / GRID[0]
    if status == VeinStatus.TRACKED:
        area_px = v_blob.area * sx * sy
    elif status == VeinStatus.COLLAPSED:
        area_px = 0.0
    frame = np.full(SCREEN, frame_value, np.uint8)
    if not grey:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    t_capture = 100.0 + index / 30.0
    return FrameResult(
        index=index, t_capture=t_capture, t_media=t_media, frame=frame, labels=labels, region=REGION,
        track=TrackState(vein_status=status, vein=v_blob, artery=a_blob, vein_area_px=area_px),
        verdict=verdict or make_verdict(),
        stage_ms=stage_ms or {"preprocess": 1.0, "infer": 5.0, "postprocess": 0.5, "track": 0.1, "measure": 0.1},
        t_done=t_capture + latency_s)


def compression_sequence(n=60, lost=range(25, 30)) -> list[FrameResult]:
    """A vein squeezed flat and released; frames in ``lost`` have no vein; frames 35-39 collapsed."""
    out = []
    for i in range(n):
        squeeze = 0.5 - 0.5 * math.cos(2 * math.pi * i / n)  # 0 -> 1 -> 0
        b = int(round(12 * (1 - squeeze)))
        status = VeinStatus.LOST if i in lost else (VeinStatus.COLLAPSED if b <= 1 else VeinStatus.TRACKED)
        kind = VerdictKind.COMPRESSIBLE if i > 40 else VerdictKind.INDETERMINATE
        v = make_verdict(kind, compressibility=0.86 if i > 40 else None,
                         baseline_vein_area_px=9000.0, min_vein_area_px=1260.0 if i > 40 else None)
        out.append(make_result(i, status=status, vein_axes=(18, max(b, 1)), verdict=v, t_media=i / 30.0,
                               latency_s=0.010 + 0.001 * (i % 7)))
    return out
