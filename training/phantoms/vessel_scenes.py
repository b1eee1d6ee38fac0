"""Randomised B-mode vessel scenes: single training frames in which the vessel signs are the only constant.

The compression phantom (``training.phantoms``, even widened) draws one anatomy with one speckle model; the model
trained on it missed veins drawn by an independent renderer (issue 9). These frames take the scene away and keep
what a sonographer uses on a single frame:

- the **artery**: round (axis ratio 0.8-1), a thick bright wall, an anechoic lumen;
- the **vein**: oval to flat (axis ratio 0.15-1: open or half-pressed), a thin wall (visible when its content is not), 0.6-3x the artery's
  area, beside or below it; its lumen anechoic, with low-level echoes (slow flow), or filled by clot from hypo- to
  near-isoechoic (acute to subacute), partly or wholly: **the label is the vessel outline, clot included**;
- everything else random: depth, gain, time-gain compensation, log compression and gamma, speckle size (lateral and
  axial point-spread), fat lobules, fascia, striated muscle, nodes (oval, hypoechoic, bright hilum) and acoustic
  shadows as look-alikes (background), posterior enhancement below fluid, dark margins and screen marks;
- sometimes no artery, no vein, or a second (paired) vein.

Written for training only; not the clip phantom and not the second renderer (``training/second_renderer``,
evaluation only; nothing here reads or imitates it). Labels: 0 background, 1 artery, 2 vein.

    python -m training.phantoms.vessel_scenes --out montage.png --frames 24   # a contact sheet to look at
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np


def _ellipse(h: int, w: int, cx: float, cy: float, a: float, b: float, ang: float, lobes: tuple = ()) -> np.ndarray:
    """Soft (anti-aliased) coverage of an ellipse with optional radial harmonics [(k, amplitude, phase)]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = math.cos(ang), math.sin(ang)
    dx, dy = xx - cx, yy - cy
    u, v = (dx * c + dy * s) / max(a, 0.3), (-dx * s + dy * c) / max(b, 0.3)
    r = np.sqrt(u * u + v * v)
    if lobes:
        th = np.arctan2(v, u)
        r = r / (1 + sum(amp * np.cos(k * th + ph) for k, amp, ph in lobes))
    return np.clip((1 - r) * min(a, b) + 0.5, 0, 1)


def _noise(rng: np.random.Generator, h: int, w: int, sx: float, sy: float) -> np.ndarray:
    f = rng.standard_normal((h, w)).astype(np.float32)
    f = cv2.GaussianBlur(f, (0, 0), sigmaX=max(sx, 0.3), sigmaY=max(sy, 0.3))
    return (f - f.mean()) / max(float(f.std()), 1e-6)


def tissue(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Echo reflectivity of the tissue (before speckle): layers, fat lobules, fascia, striated muscle."""
    base = float(rng.uniform(0.25, 0.65))
    r = np.full((h, w), base, np.float32)
    r *= 1 + 0.35 * _noise(rng, h, w, rng.uniform(6, 20), rng.uniform(1.5, 5))  # striations: long laterally
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    skin = float(rng.uniform(2, 10))
    r[: int(skin)] = float(rng.uniform(0.7, 1.1))
    fat_end = skin + float(rng.uniform(0, 0.35)) * h
    lob = _noise(rng, h, w, rng.uniform(3, 8), rng.uniform(2, 6))
    fat = (y < fat_end) & (lob > rng.uniform(-0.6, 0.4))
    r = np.where(fat, r * float(rng.uniform(0.25, 0.6)), r)
    for _ in range(int(rng.integers(1, 5))):  # fascia: bright wavy lines
        y0, amp, per, ph = rng.uniform(0.1, 0.95) * h, rng.uniform(0, 8), rng.uniform(60, 300), rng.uniform(0, 6.3)
        line = y0 + amp * np.sin(2 * math.pi * x / per + ph) + rng.uniform(-0.15, 0.15) * (x - w / 2)
        r += float(rng.uniform(0.4, 1.2)) * np.exp(-((y - line) / rng.uniform(0.6, 2.0)) ** 2)
    return np.clip(r, 0.02, 3)


def draw_scene(rng: np.random.Generator, h: int = 192, w: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """One frame (uint8, h x w) and its labels (0 background, 1 artery, 2 vein)."""
    refl = tissue(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    fluid = np.zeros((h, w), np.float32)  # anechoic content: posterior enhancement below it

    for _ in range(int(rng.integers(0, 3)) if rng.random() < 0.5 else 0):  # nodes: hypoechoic ovals with a hilum
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.2, 0.9) * h
        a = rng.uniform(6, 22)
        b, ang = a * rng.uniform(0.4, 0.8), rng.uniform(0, math.pi)
        m = _ellipse(h, w, cx, cy, a, b, ang)
        refl = refl * (1 - m) + m * float(rng.uniform(0.08, 0.3))
        hm = _ellipse(h, w, cx, cy, a * 0.4, b * 0.25, ang)
        refl += hm * float(rng.uniform(0.4, 1.0))

    scale = float(rng.uniform(0.8, 1.8))  # px per "mm": depth setting
    ra = float(rng.uniform(2.8, 5.5)) * scale * 2
    ax, ay = rng.uniform(0.2, 0.8) * w, rng.uniform(0.25, 0.75) * h
    have_artery, have_vein = rng.random() < 0.9, rng.random() < 0.9
    vessels = []
    if have_vein:
        area = float(rng.uniform(0.6, 3.0)) * ra * ra
        state = rng.choice(["open", "pressed", "clot"], p=[0.4, 0.2, 0.4])
        ratio = {"open": rng.uniform(0.4, 1.0), "pressed": rng.uniform(0.15, 0.4), "clot": rng.uniform(0.55, 1.0)}[state]
        a = math.sqrt(area / ratio) if state in ("open", "clot") else math.sqrt(area / 0.4)
        b = max(a * ratio, 0.7)
        side = rng.choice([-1, 1])
        theta = float(rng.uniform(-0.9, 0.9)) if rng.random() < 0.8 else math.pi / 2 * float(rng.choice([-1, 1]))
        d = ra + max(a, b) * (0.8 + 0.4 * abs(math.sin(theta))) + float(rng.uniform(0, 6))
        vx, vy = ax + side * d * math.cos(theta), ay + d * math.sin(theta) * 0.8
        vessels.append(("vein", vx, vy, a, b, float(rng.uniform(-0.35, 0.35)), str(state)))
        if rng.random() < 0.2:  # a paired vein (calf, some femoral veins)
            vessels.append(("vein", ax - side * d * 0.9, vy + rng.uniform(-5, 5), a * rng.uniform(0.6, 1.0),
                            b * rng.uniform(0.6, 1.0), float(rng.uniform(-0.35, 0.35)), str(state)))
    if have_artery:
        vessels.append(("artery", ax, ay, ra, ra * float(rng.uniform(0.8, 1.0)), float(rng.uniform(0, math.pi)), "open"))

    for kind, cx, cy, a, b, ang, state in vessels:
        lobes = ((int(rng.integers(2, 5)), float(rng.uniform(0, 0.12)), float(rng.uniform(0, 6.3))),) \
            if kind == "vein" and rng.random() < 0.4 else ()
        outer = _ellipse(h, w, cx, cy, a, b, ang, lobes)
        if kind == "artery":
            wall = min(float(rng.uniform(1.5, 4.0)) * scale, 0.4 * b)  # thick, but round a lumen
            wall_echo = float(rng.uniform(0.9, 2.2))
        else:
            wall = float(rng.uniform(0.4, 1.4)) if state == "open" else float(rng.uniform(0.9, 2.2))
            # the outline must be visible: a faint wall only round an anechoic (open) lumen
            wall_echo = float(rng.uniform(0.5, 1.2)) if state != "open" or rng.random() < 0.7 else float(refl.mean())
        inner = _ellipse(h, w, cx, cy, max(a - wall, 0.3), max(b - wall, 0.3), ang, lobes) if b > wall + 0.5 else outer * 0
        refl = refl * (1 - outer) + outer * wall_echo
        lumen_echo = float(rng.uniform(0.0, 0.06)) if (kind == "artery" or rng.random() < 0.6) else float(rng.uniform(0.05, 0.15))
        content = np.full((h, w), lumen_echo, np.float32)
        if state == "clot":
            level = float(rng.uniform(0.1, 0.75)) * float(np.median(refl))  # hypo- to near-isoechoic clot
            tex = np.clip(level * (1 + 0.5 * _noise(rng, h, w, rng.uniform(1, 4), rng.uniform(1, 4))), 0.02, 2)
            if rng.random() < 0.35:  # partial: a residual anechoic channel beside the clot
                off = float(rng.uniform(0.3, 0.6))
                ch = _ellipse(h, w, cx + off * a * math.cos(ang), cy + off * a * math.sin(ang), a * 0.45, b * 0.5, ang)
                tex = tex * (1 - ch) + ch * lumen_echo
            content = tex
        refl = refl * (1 - inner) + inner * content
        if state != "clot":
            fluid = np.maximum(fluid, inner)
        lab = 1 if kind == "artery" else 2
        label[outer > 0.5] = lab

    if fluid.any():  # posterior acoustic enhancement: a brighter column below anechoic fluid
        col = cv2.GaussianBlur(fluid, (0, 0), 2.0)
        acc = np.cumsum(col, axis=0) / max(h * 0.15, 1)
        refl *= 1 + float(rng.uniform(0.1, 0.5)) * np.clip(acc, 0, 1) * (1 - fluid)
    for _ in range(int(rng.integers(0, 2)) if rng.random() < 0.3 else 0):  # shadow below a bright reflector
        x0, y0, wd = rng.uniform(0, w), rng.uniform(0.1, 0.6) * h, rng.uniform(4, 20)
        m = np.zeros((h, w), np.float32)
        m[int(y0):, max(0, int(x0 - wd / 2)):int(x0 + wd / 2)] = 1
        m = cv2.GaussianBlur(m, (0, 0), 2.0)
        refl = refl * (1 - m * float(rng.uniform(0.5, 0.85)))

    # speckle: the envelope of a complex Gaussian field through an anisotropic point-spread function
    sx, sy = float(rng.uniform(0.7, 2.5)), float(rng.uniform(0.5, 1.4))
    re, im = (cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigmaX=sx, sigmaY=sy) for _ in range(2))
    env = np.sqrt(re * re + im * im)
    env /= max(float(env.mean()), 1e-6)
    img = cv2.GaussianBlur(refl, (0, 0), sigmaX=sx * 0.6, sigmaY=sy * 0.6) * env
    depth = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    img *= np.exp(-float(rng.uniform(0, 2.0)) * depth) * (1 + float(rng.uniform(-0.3, 0.6)) * depth)  # attenuation, TGC
    k = float(10 ** rng.uniform(0.7, 2.3))  # log compression (dynamic range)
    img = np.log1p(k * img * float(rng.uniform(0.5, 1.6))) / math.log1p(k * 2.5)
    img = np.clip(img, 0, 1) ** float(rng.uniform(0.6, 1.6))
    img = np.clip(img * float(rng.uniform(0.7, 1.3)) + float(rng.uniform(-0.05, 0.08)), 0, 1)
    if rng.random() < 0.2:  # dark margins of a narrower image, marks on the screen
        m = int(rng.integers(2, 20))
        img[:, :m], img[:, w - m:] = 0, 0
        label[:, :m], label[:, w - m:] = 0, 0
    for _ in range(int(rng.integers(0, 4)) if rng.random() < 0.3 else 0):
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        cv2.drawMarker(img, (x, y), float(rng.uniform(0.7, 1.0)), int(rng.choice([0, 1, 4])), int(rng.integers(4, 10)), 1)
    return (img * 255).astype(np.uint8), label


def scene_frames(seed: int, n: int, size_hw: tuple[int, int] = (192, 192)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` frames and labels, deterministic from ``seed``."""
    frames, labels = [], []
    for i in range(n):
        f, lab = draw_scene(np.random.default_rng([seed, 0x05CE, i]), *size_hw)
        frames.append(f)
        labels.append(lab)
    return frames, labels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.phantoms.vessel_scenes",
                                 description="Write a contact sheet of randomised vessel-scene frames (training data).")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    frames, labels = scene_frames(args.seed, args.frames)
    tiles = []
    for f, lab in zip(frames, labels):
        rgb = cv2.cvtColor(f, cv2.COLOR_GRAY2BGR)
        for v, colour in ((1, (0, 0, 255)), (2, (255, 128, 0))):
            cs, _ = cv2.findContours((lab == v).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(rgb, cs, -1, colour, 1)
        tiles.append(np.hstack([cv2.cvtColor(f, cv2.COLOR_GRAY2BGR), rgb]))
    cols = 3
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet)
    print(f"wrote {args.out} ({args.frames} frames; red = artery, orange = vein)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
