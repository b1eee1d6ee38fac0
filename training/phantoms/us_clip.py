"""Compression-ultrasound clip phantom: synthetic B-mode "scanner screen" clips of a transverse
femoral-groin view during a compression manoeuvre, with per-frame ground-truth masks
(0 background, 1 artery, 2 vein) and a clip label for verdict evaluation.

numpy + OpenCV only (no torch). Deterministic: everything is drawn from ``np.random.default_rng(seed)``;
the same arguments give byte-identical output.

Seed convention: training data (:func:`sample_training_frames`) only ever uses clip seeds
``< TRAINING_SEED_LIMIT`` (900_000); :func:`evaluation_set` uses seeds ``>= base_seed`` (900_000 by
default), so evaluation clips are never seen in training.

Modules: ``anatomy`` (parameters, manoeuvre, geometry), ``render`` (B-mode image), ``screen``
(screen layout and text), this module (public API, labels, file output).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.us.types import VerdictKind

from .anatomy import FPS_CHOICES, ClipParams, sample_params, widen
from .render import Tissue, build_tissue, render_image
from .screen import ScreenLayout, compose, draw_overlay, sample_layout

TRAINING_SEED_LIMIT = 900_000
FRAMES_PER_SCENE = 10  # frames drawn from each random clip scene in sample_training_frames


@dataclass(frozen=True)
class PhantomClip:
    """frames: (T, H, W) uint8 screen frames; masks: (T, H, W) uint8 labels (0 bg, 1 artery, 2 vein) in
    the same screen coordinates; fps: frames per second; label: JSON-serialisable clip label."""

    frames: np.ndarray
    masks: np.ndarray
    fps: float
    label: dict


@dataclass(frozen=True)
class Scene:
    """Everything static about one clip: parameters, screen layout, tissue fields and text overlay."""

    seed: int
    params: ClipParams
    layout: ScreenLayout
    tissue: Tissue
    overlay: np.ndarray  # (H, W) uint8

    def render(self, t: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(frame (H, W) uint8, mask (H, W) uint8) at time t (s)."""
        image, mask = render_image(self.params, self.tissue, t, rng)
        return compose(self.overlay, self.layout, image, mask)


def build_scene(seed: int, *, dvt: bool | None = None, pressure: str | None = None, fps: float | None = None,
                duration_s: float | None = None, screen_size: tuple[int, int] | None = None,
                wide: bool = False) -> Scene:
    """Draw all parameters of clip ``seed``. Every random value is drawn whatever the overrides, so an
    override changes only what it names (e.g. the same seed with dvt=True/False shares the anatomy).
    wide: redraw appearance and shape from the domain-randomisation ranges (:func:`anatomy.widen`), from a
    separate generator, so the default (narrow) scene of a seed is unchanged."""
    if pressure not in (None, "adequate", "low"):
        raise ValueError(f"pressure must be 'adequate', 'low' or None, not {pressure!r}")
    rng = np.random.default_rng(seed)
    dvt_draw = bool(rng.random() < 0.5)
    pressure_draw = "low" if rng.random() < 0.15 else "adequate"
    fps_draw = float(rng.choice(FPS_CHOICES))
    layout = sample_layout(rng, screen_size)
    P = sample_params(rng, layout.img_w, layout.img_h, dvt=dvt_draw if dvt is None else bool(dvt),
                      pressure=pressure or pressure_draw, fps=float(fps) if fps is not None else fps_draw,
                      duration_s=duration_s)
    if wide:
        P = widen(P, np.random.default_rng([seed, 0x5EED]))
    overlay = draw_overlay(layout, fps=P.fps, gain=P.gain, depth_cm=P.depth_cm,
                           dynamic_range_db=P.dynamic_range_db, focus_frac=P.focus_frac)
    return Scene(int(seed), P, layout, build_tissue(P), overlay)


def expected_verdict(dvt: bool, pressure: str) -> VerdictKind:
    """Verdict the pipeline should give: indeterminate under low pressure, else by DVT status."""
    if pressure == "low":
        return VerdictKind.INDETERMINATE
    return VerdictKind.NON_COMPRESSIBLE if dvt else VerdictKind.COMPRESSIBLE


def _axis_ratio(mask: np.ndarray) -> float:
    """Minor/major axis ratio of a binary region from its second moments (nan if under 5 px)."""
    ys, xs = np.nonzero(mask)
    if xs.size < 5:
        return float("nan")
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    lo, hi = np.linalg.eigvalsh(cov)
    return float(math.sqrt(max(lo, 0.0) / hi))


def clip_label(scene: Scene, masks: np.ndarray) -> dict:
    """Clip label; the ``true_*`` values are measured on ``masks`` (T, H, W). Baselines are the mean
    (vein area) / median (artery ratio) over the rest frames before the press starts."""
    P, L = scene.params, scene.layout
    phases = [int(math.ceil(t * P.fps - 1e-9)) for t in P.phase_times]
    vein_area = (masks == 2).sum(axis=(1, 2)).astype(np.int64)
    rest = slice(0, max(phases[0], 1))
    base = float(vein_area[rest].mean())
    vmin = int(vein_area.min())
    x, y, w, h = L.image_region
    ratios = np.array([_axis_ratio(m[y:y + h, x:x + w] == 1) for m in masks])
    base_ratio = float(np.nanmedian(ratios[rest]))
    return {
        "seed": scene.seed, "dvt": P.dvt, "pressure": P.pressure, "expected_verdict": expected_verdict(P.dvt, P.pressure),
        "fps": P.fps, "n_frames": int(masks.shape[0]), "screen_size": [L.screen_w, L.screen_h],
        "image_region": L.image_region, "true_baseline_vein_area_px": base, "true_min_vein_area_px": vmin,
        "true_compressibility": float(1.0 - vmin / base) if base > 0 else 0.0,
        "true_artery_flattening": float(1.0 - np.nanmin(ratios) / base_ratio),
        "phases": phases, "params": {**P.to_dict(), **{f"screen_{k}": v for k, v in L.to_dict().items()}},
    }


def generate_clip(seed: int, *, dvt: bool | None = None, pressure: str | None = None, fps: float | None = None,
                  duration_s: float | None = None, screen_size: tuple[int, int] | None = None,
                  wide: bool = False) -> PhantomClip:
    """Generate one clip. dvt None -> random (50%); pressure in {"adequate", "low"} or None -> random
    (adequate 85 %, low 15 %); fps None -> random from {15, 20, 25, 30, 40, 50, 60}; duration_s None ->
    the manoeuvre's phases (about 2-6 s), else the final rest is stretched (or all phases scaled) to fit;
    screen_size (W, H) px None -> random W in [560, 800], H in [420, 600]; wide: domain-randomised scene
    (:func:`build_scene`)."""
    scene = build_scene(seed, dvt=dvt, pressure=pressure, fps=fps, duration_s=duration_s, screen_size=screen_size,
                        wide=wide)
    P = scene.params
    n = max(int(round(P.duration_s * P.fps)), 1)
    rng = np.random.default_rng(P.noise_seed)
    frames = np.empty((n, scene.layout.screen_h, scene.layout.screen_w), np.uint8)
    masks = np.empty_like(frames)
    for i in range(n):
        frames[i], masks[i] = scene.render(i / P.fps, rng)
    return PhantomClip(frames, masks, P.fps, clip_label(scene, masks))


def sample_training_frames(seed: int, n: int, *, size: tuple[int, int] | None = None,
                           wide: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """n random single frames + masks for segmentation training: FRAMES_PER_SCENE frames at random times
    of each of many random clips (clip seeds < TRAINING_SEED_LIMIT, all variations on), in shuffled
    order; only the frames needed are rendered. Returns (images (n, H, W) uint8, masks (n, H, W) uint8). size (W, H) None -> one
    screen size drawn for the whole call (all frames must stack), else every frame is rendered at its own
    random screen size and resized to size (INTER_AREA image, INTER_NEAREST mask). wide: every scene is
    domain-randomised (:func:`build_scene`)."""
    rng = np.random.default_rng(seed)
    native = (int(rng.integers(280, 401)) * 2, int(rng.integers(210, 301)) * 2)
    W, H = size if size is not None else native
    images = np.empty((n, H, W), np.uint8)
    masks = np.empty((n, H, W), np.uint8)
    order = rng.permutation(n)  # frames of one scene are scattered over the output, not contiguous
    for start in range(0, n, FRAMES_PER_SCENE):
        scene = build_scene(int(rng.integers(0, TRAINING_SEED_LIMIT)), screen_size=None if size else native, wide=wide)
        for i in order[start:start + FRAMES_PER_SCENE]:
            frame, mask = scene.render(float(rng.uniform(0, scene.params.duration_s)), rng)
            if size is not None and frame.shape != (H, W):
                frame = cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA)
                mask = cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST)
            images[i], masks[i] = frame, mask
    return images, masks


def evaluation_set(n_normal: int = 20, n_dvt: int = 20, *, base_seed: int = 900_000) -> Iterator[PhantomClip]:
    """Fresh clips for verdict evaluation: first n_normal normal clips (seeds base_seed + 2i), then n_dvt
    DVT clips (seeds base_seed + 2i + 1); pressure and everything else random. Training uses seeds
    < 900_000, so the default base_seed keeps evaluation disjoint from training."""
    for i in range(n_normal):
        yield generate_clip(base_seed + 2 * i, dvt=False)
    for i in range(n_dvt):
        yield generate_clip(base_seed + 2 * i + 1, dvt=True)


def write_clip(clip: PhantomClip, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write <stem>.mp4 (OpenCV 'mp4v', 3-channel BGR, at clip.fps), <stem>.masks.npz (compressed,
    key "masks", (T, H, W) uint8) and <stem>.json (the label) into out_dir. Returns the paths by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"video": out_dir / f"{stem}.mp4", "masks": out_dir / f"{stem}.masks.npz", "label": out_dir / f"{stem}.json"}
    T, H, W = clip.frames.shape
    writer = cv2.VideoWriter(str(paths["video"]), cv2.VideoWriter_fourcc(*"mp4v"), float(clip.fps), (W, H), True)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an mp4v writer for {paths['video']}")
    try:
        for frame in clip.frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    np.savez_compressed(paths["masks"], masks=clip.masks)
    paths["label"].write_text(json.dumps(clip.label, indent=2))
    return paths
