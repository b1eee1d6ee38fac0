"""Second, independent compression-ultrasound clip renderer (evaluation only, never training).

Transverse B-mode of the common femoral or popliteal vessels during a compression manoeuvre, as scanner screen
frames with per-frame artery / vein masks and a JSON truth label. See us_params (what is drawn per clip),
us_tissue (speckle and anatomy), us_vessels (vessel motion), us_render (frame loop), us_screen (screen).

    python -m training.second_renderer.us_clips --out DIR --normal 20 --dvt 20 [--base-seed 700000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.us.types import VerdictKind
from training.second_renderer.us_params import Scene, draw_scene
from training.second_renderer.us_render import Renderer


@dataclass(frozen=True)
class RenderedClip:
    frames: np.ndarray  # (T, H, W) uint8 screen frames
    masks: np.ndarray  # (T, H, W) uint8: 0 background, 1 artery lumen, 2 vein lumen including any clot
    fps: float
    label: dict  # JSON-serialisable truth


def _aspect(m: np.ndarray) -> float:
    """Height / width of a binary mask from its second central moments (robust to pixel steps)."""
    mo = cv2.moments(m.astype(np.uint8), binaryImage=True)
    if mo["m00"] < 3 or mo["mu20"] <= 0:
        return float("nan")
    return float(np.sqrt(mo["mu02"] / mo["mu20"]))


def _f(x, nd=5):
    return None if x is None else round(float(x), nd)


def render_clip(seed: int, *, dvt: bool | None = None, pressure: str | None = None, clot: str | None = None,
                with_clot: bool = False) -> tuple[RenderedClip, np.ndarray | None]:
    """:func:`generate_clip` plus optional control of the clot kind and the clot masks (T, H, W) bool in
    screen coordinates (for tests)."""
    scene = draw_scene(seed, dvt=dvt, pressure=pressure, clot=clot)
    r = Renderer(scene)
    W, H = scene.screen
    rx, ry, rw, rh = scene.region
    n = len(scene.t)
    frames = np.empty((n, H, W), np.uint8)
    masks = np.zeros((n, H, W), np.uint8)
    clots = np.zeros((n, H, W), bool) if with_clot and scene.dvt else None
    vein_area = np.zeros(n)
    art_area = np.zeros(n)
    art_aspect = np.zeros(n)
    ov = r.overlay
    for k in range(n):
        img, mk, (y0, x0), clot_hard = r.frame(k)
        fr = frames[k]
        fr[:] = ov
        fr[ry:ry + rh, rx:rx + rw] = img
        if r.mark_box is not None:
            a, b, c, d = r.mark_box
            np.maximum(fr[a:b, c:d], r.marks[a:b, c:d], out=fr[a:b, c:d])
        mh, mw = mk.shape
        masks[k, ry + y0:ry + y0 + mh, rx + x0:rx + x0 + mw] = mk
        if clots is not None and clot_hard is not None:
            clots[k, ry + y0:ry + y0 + mh, rx + x0:rx + x0 + mw] = clot_hard
        vein_area[k] = np.count_nonzero(mk == 2)
        art_area[k] = np.count_nonzero(mk == 1)
        art_aspect[k] = _aspect(mk == 1)
    label = make_label(scene, vein_area, art_area, art_aspect)
    return RenderedClip(frames=frames, masks=masks, fps=scene.fps, label=label), clots


def make_label(scene: Scene, vein_area: np.ndarray, art_area: np.ndarray, art_aspect: np.ndarray) -> dict:
    rest = scene.t < scene.press_start - 1e-9
    rest &= scene.q <= 1e-6
    if not rest.any():
        rest = np.zeros_like(rest)
        rest[0] = True
    base = float(vein_area[rest].mean())
    vmin = float(vein_area.min())
    asp_rest = float(np.nanmean(art_aspect[rest]))
    asp_min = float(np.nanmin(art_aspect))
    if scene.pressure == "low":
        verdict = VerdictKind.INDETERMINATE
    else:
        verdict = VerdictKind.NON_COMPRESSIBLE if scene.dvt else VerdictKind.COMPRESSIBLE
    label = {
        "renderer": "second",
        "seed": int(scene.seed),
        "dvt": bool(scene.dvt),
        "clot": scene.clot,
        "clot_echo": _f(scene.clot_echo, 4),
        "pressure": scene.pressure,
        "compression_style": scene.style,
        "expected_verdict": verdict,
        "fps": float(scene.fps),
        "n_frames": int(len(scene.t)),
        "screen_size": [int(scene.screen[0]), int(scene.screen[1])],
        "image_region": [int(v) for v in scene.region],
        "site": scene.site,
        "true_baseline_vein_area_px": _f(base, 2),
        "true_min_vein_area_px": _f(vmin, 2),
        "true_compressibility": _f(1.0 - vmin / base if base > 0 else 0.0, 4),
        "true_artery_flattening": _f(1.0 - asp_min / asp_rest if asp_rest > 0 else 0.0, 4),
        "preset": {k: (_f(v, 4) if isinstance(v, float) else v) for k, v in scene.preset.items()},
        # extra truth, not required by consumers
        "clot_fraction": _f(scene.clot_fraction, 4),
        "heart_rate_bpm": _f(scene.artery["hr_bpm"], 3),
        "artery_pulse_amplitude": _f(scene.artery["pulse_amp"], 4),
        "pressure_max": _f(scene.p_max, 4),
        "press_start_s": _f(scene.press_start, 4),
        "duration_s": _f(len(scene.t) / scene.fps, 4),
        "n_rest_frames": int(rest.sum()),
        "true_artery_area_px_mean": _f(art_area.mean(), 2),
        "vein_side": scene.vein_side,
        "px_mm": _f(scene.px_mm, 5),
        "depth_mm": _f(scene.extra["depth_mm"], 3),
        "trapezoid": scene.trapezoid is not None,
        "pressure_curve": [round(float(v), 4) for v in scene.q * scene.p_max],
    }
    return label


def generate_clip(seed: int, *, dvt: bool | None = None, pressure: str | None = None) -> RenderedClip:
    """One clip, deterministic per seed. dvt None: random; pressure 'adequate' | 'low' | None (15 % low)."""
    return render_clip(seed, dvt=dvt, pressure=pressure)[0]


def evaluation_set(n_normal: int = 20, n_dvt: int = 20, *, base_seed: int = 700_000,
                   low_pressure: float = 0.0) -> Iterator[RenderedClip]:
    """Normal clips at seeds base_seed + 2i, DVT clips at base_seed + 2i + 1; each 'low' pressure with
    probability ``low_pressure`` (drawn from its seed), else 'adequate'."""
    jobs = [(base_seed + 2 * i, False) for i in range(n_normal)] + [(base_seed + 2 * i + 1, True) for i in range(n_dvt)]
    for seed, dvt in jobs:
        low = np.random.default_rng([seed, 99]).random() < low_pressure
        yield generate_clip(seed, dvt=dvt, pressure="low" if low else "adequate")


def write_clip(clip: RenderedClip, out_dir: Path, stem: str) -> dict[str, Path]:
    """<stem>.mp4 (mp4v, BGR), <stem>.masks.npz (key 'masks'), <stem>.json (label)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"video": out_dir / f"{stem}.mp4", "masks": out_dir / f"{stem}.masks.npz", "label": out_dir / f"{stem}.json"}
    _, h, w = clip.frames.shape
    vw = cv2.VideoWriter(str(paths["video"]), cv2.VideoWriter_fourcc(*"mp4v"), float(clip.fps), (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"cannot open a video writer for {paths['video']}")
    try:
        for fr in clip.frames:
            vw.write(cv2.cvtColor(fr, cv2.COLOR_GRAY2BGR))
    finally:
        vw.release()
    np.savez_compressed(paths["masks"], masks=clip.masks)
    paths["label"].write_text(json.dumps(clip.label, indent=1))
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render the second (evaluation-only) compression ultrasound clip set.")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--normal", type=int, default=20)
    ap.add_argument("--dvt", type=int, default=20)
    ap.add_argument("--base-seed", type=int, default=700_000)
    ap.add_argument("--low-pressure", type=float, default=0.0, help="probability of a low-pressure clip")
    a = ap.parse_args(argv)
    index = []
    total = a.normal + a.dvt
    clips = evaluation_set(a.normal, a.dvt, base_seed=a.base_seed, low_pressure=a.low_pressure)
    for i in range(total):
        t0 = time.perf_counter()
        clip = next(clips)
        lab = clip.label
        stem = f"second_{'dvt' if lab['dvt'] else 'normal'}_{lab['seed']}"
        paths = write_clip(clip, a.out, stem)
        index.append({"stem": stem, **{k: str(v.name) for k, v in paths.items()},
                      **{k: lab[k] for k in ("seed", "dvt", "clot", "pressure", "expected_verdict", "site", "fps", "n_frames",
                                              "true_compressibility", "true_artery_flattening")}})
        print(f"[{i + 1}/{total}] {stem}: {lab['site']} {lab['clot']} {lab['pressure']} {lab['compression_style']} "
              f"{lab['n_frames']} frames @ {lab['fps']:g} fps, compressibility {lab['true_compressibility']:.2f} "
              f"-> {lab['expected_verdict']} ({time.perf_counter() - t0:.1f} s)", flush=True)
    (a.out / "index.json").write_text(json.dumps({"renderer": "second", "base_seed": a.base_seed, "clips": index}, indent=1))
    print(f"wrote {len(index)} clips and index.json to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
