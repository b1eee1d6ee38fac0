"""Phantom studies prepared for the detector: model-grid slices, targets, crop sampling and whole-study inference.

Every slice goes through ``edge.ct.decode.prepare_slice`` - the same code the bedside runtime uses - so training,
evaluation and deployment see identical inputs. Boxes are mapped with ``edge.ct.decode.to_model_grid``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable

import numpy as np

from edge.ct.decode import decode_detections, neighbour_indices, prepare_slice, stack_input, to_model_grid
from edge.spec import ModelSpec
from training.ct.phantom import make_study
from training.ct.study import Study


@dataclass
class PreparedStudy:
    """A study on the model grid. slices: (n, S, S) float16 windowed [0, 1]; boxes on the model grid (pixels)."""

    seed: int
    slices: np.ndarray
    gt: list[list[list[float]]]  # per slice: thrombus boxes (model grid)
    gt_orig: list[list[list[float]]]  # per slice: thrombus boxes (original pixels), for evaluation
    gt_ids: list[list[int]]  # per slice: thrombus index within the study, aligned with gt_orig
    mimics: list[list[list[float]]]  # per slice: mixing-streak vein boxes (model grid), hard negatives
    veins: list[list[tuple[float, float]]]  # per slice: vein centres (model grid)
    pixel_spacing_mm: tuple[float, float]
    shape: tuple[int, int]
    distract: list[list[tuple[float, float]]] | None = None  # per slice: distractor centres (model grid), negatives


def prepare_study(study: Study, pre: dict) -> PreparedStudy:
    ps, shape = study.pixel_spacing_mm, study.hu.shape[1:]
    to_m = (lambda b: to_model_grid(b, shape, ps, pre))
    slices = np.stack([prepare_slice(h, ps, pre) for h in study.hu]).astype(np.float16)
    n = len(study.hu)
    gt_orig = [[t.boxes[i] for t in study.thrombi if i in t.boxes] for i in range(n)]
    gt_ids = [[j for j, t in enumerate(study.thrombi) if i in t.boxes] for i in range(n)]
    mimics = [[to_m(m.boxes[i]) for m in study.mimics if i in m.boxes] for i in range(n)]
    veins = []
    for per in study.veins:
        veins.append([tuple(to_m([x, y, x, y])[:2]) for x, y, _ in per.values()])
    distract = [[tuple(to_m([x, y, x, y])[:2]) for x, y in per] for per in study.distractors] or None
    return PreparedStudy(study.seed, slices, [[to_m(b) for b in g] for g in gt_orig], gt_orig, gt_ids, mimics,
                         veins, ps, shape, distract)


def _build_one(args) -> PreparedStudy:
    seed, pre, size, distractors, wide = args
    return prepare_study(make_study(seed, size=size, distractors=distractors, wide=wide), pre)


def build_studies(seeds: list[int], pre: dict, size: int = 512, workers: int = 2, label: str = "studies",
                  distractors: float = 0.0, wide: float = 0.0) -> list[PreparedStudy]:
    """Render and prepare phantom studies (in ``workers`` processes), printing progress.

    distractors: probability per study of non-venous look-alikes (``training.ct.phantom.make_study``);
    wide: probability per study of the widened randomisation (contrast, calibre, region crops).
    """
    jobs = [(s, pre, size, distractors, wide) for s in seeds]
    return _build_all(_build_one, jobs, workers, label, "rendered", 8)


def _build_all(fn, jobs: list, workers: int, label: str, verb: str, every: int) -> list:
    """fn over jobs (in ``workers`` forked processes, results in job order), printing progress every ``every`` jobs."""
    t0, out = time.perf_counter(), []
    ctx = get_context("fork")
    with ctx.Pool(workers) if workers > 1 else _Serial() as pool:
        for i, got in enumerate(pool.imap(fn, jobs)):
            out.append(got)
            if (i + 1) % every == 0 or i + 1 == len(jobs):
                print(f"  {label}: {i + 1}/{len(jobs)} {verb} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def _build_real(args) -> list[PreparedStudy]:
    from training.ct.real_lesions import make_pair

    volume, seed, pre, size, clean = args
    pair = make_pair(volume, seed, size=size)
    out = [prepare_study(pair.lesion, pre)]
    if clean:
        out.append(prepare_study(pair.clean, pre))
    return out


def build_real_studies(volume: str, seeds: list[int], pre: dict, size: int = 512, workers: int = 1,
                       label: str = "real", clean_every: int = 2) -> list[PreparedStudy]:
    """Real anatomy with inserted defects (``training.ct.real_lesions``): the lesion study of every seed, and the
    clean copy of every ``clean_every``-th seed (0 = none), prepared for the detector."""
    jobs = [(volume, s, pre, size, clean_every > 0 and i % clean_every == 0) for i, s in enumerate(seeds)]
    return [st for sts in _build_all(_build_real, jobs, workers, f"{label} ({volume})", "built", 8) for st in sts]


def _build_scene(args) -> PreparedStudy:
    from training.ct.vessel_scenes import make_scene

    seed, pre, size, wide = args
    return prepare_study(make_scene(seed, size, wide), pre)


def build_scenes(seeds: list[int], pre: dict, size: int = 512, workers: int = 2, label: str = "scenes",
                 wide: bool = False) -> list[PreparedStudy]:
    """Randomised vessel scenes (``training.ct.vessel_scenes``: the filling-defect sign with no fixed anatomy),
    prepared for the detector; ``wide`` draws the widened scenes (``make_scene(wide=True)``)."""
    jobs = [(s, pre, size, wide) for s in seeds]
    return _build_all(_build_scene, jobs, workers, label, "drawn", 16)


class MixSampler:
    """Crops drawn from several samplers: each item comes from sampler j with probability weights[j]."""

    def __init__(self, samplers: list, weights: list[float], rng: np.random.Generator):
        self.samplers, self.rng = samplers, rng
        w = np.asarray(weights, np.float64)
        self.p = w / w.sum()
        self.pos = [p for s in samplers for p in s.pos]

    def batch(self, n: int):
        counts = self.rng.multinomial(n, self.p)
        xs, boxes = [], []
        for s, c in zip(self.samplers, counts):
            if c:
                x, b = s.batch(int(c))
                xs.append(x)
                boxes += b
        return np.concatenate(xs), boxes


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, jobs):
        return map(fn, jobs)


class CropSampler:
    """Random training crops (k slices x crop x crop) with targets; deterministic from its generator.

    Mix: 40% centred near a thrombus, 15% on a mixing streak (hard negative), 15% on a distractor (rib, bowel,
    organ, node, ... - hard negatives, when the studies have them), 15% on a vein, 15% anywhere in the middle of
    the field of view (a missing category falls through to the next). Augmentation: left-right flip and reversal of the
    slice order (both are
    symmetries of the task: a clot is a clot from either side and in either z direction).
    """

    def __init__(self, studies: list[PreparedStudy], k: int, crop: int, rng: np.random.Generator,
                 geo_aug: bool = False, intensity_aug: bool = False):
        self.studies, self.k, self.crop, self.rng = studies, k, crop, rng
        self.geo_aug, self.intensity_aug = geo_aug, intensity_aug
        self.pos = [(s, i) for s, st in enumerate(studies) for i, g in enumerate(st.gt) if g]
        self.mim = [(s, i) for s, st in enumerate(studies) for i, g in enumerate(st.mimics) if g]
        self.all = [(s, i) for s, st in enumerate(studies) for i in range(len(st.slices))]
        self.dis = [(s, i) for s, st in enumerate(studies) for i, g in enumerate(st.distract or []) if g]

    def _pick(self) -> tuple[int, int, float, float]:
        r, rng = self.rng.random(), self.rng
        j = self.crop / 3
        if r < 0.40 and self.pos:
            s, i = self.pos[rng.integers(len(self.pos))]
            b = self.studies[s].gt[i][rng.integers(len(self.studies[s].gt[i]))]
            return s, i, (b[0] + b[2]) / 2 + rng.uniform(-j, j), (b[1] + b[3]) / 2 + rng.uniform(-j, j)
        if r < 0.55 and self.mim:
            s, i = self.mim[rng.integers(len(self.mim))]
            b = self.studies[s].mimics[i][0]
            return s, i, (b[0] + b[2]) / 2 + rng.uniform(-j, j), (b[1] + b[3]) / 2 + rng.uniform(-j, j)
        if r < 0.70 and self.dis:
            s, i = self.dis[rng.integers(len(self.dis))]
            pts = self.studies[s].distract[i]
            x, y = pts[rng.integers(len(pts))]
            return s, i, x + rng.uniform(-j / 2, j / 2), y + rng.uniform(-j / 2, j / 2)
        s, i = self.all[rng.integers(len(self.all))]
        size = self.studies[s].slices.shape[-1]
        if r < 0.85:
            x, y = self.studies[s].veins[i][rng.integers(2)]
            return s, i, x + rng.uniform(-j, j), y + rng.uniform(-j, j)
        return s, i, rng.uniform(0.2, 0.8) * size, rng.uniform(0.25, 0.75) * size

    def batch(self, n: int) -> tuple[np.ndarray, list[list[list[float]]]]:
        """(x (n, k, crop, crop) float32, boxes per item on the crop grid)."""
        c = self.crop
        x = np.zeros((n, self.k, c, c), np.float32)
        boxes = []
        for b in range(n):
            s, i, cx, cy = self._pick()
            st = self.studies[s]
            size = st.slices.shape[-1]
            x0, y0 = int(round(cx - c / 2)), int(round(cy - c / 2))
            sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + c, size), min(y0 + c, size)
            idx = neighbour_indices(i, len(st.slices), self.k)
            if self.rng.random() < 0.5:
                idx = idx[::-1]
            x[b, :, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = st.slices[idx, sy0:sy1, sx0:sx1]
            bb = [[g[0] - x0, g[1] - y0, g[2] - x0, g[3] - y0] for g in st.gt[i]]
            bb = [g for g in bb if 0 <= (g[0] + g[2]) / 2 < c and 0 <= (g[1] + g[3]) / 2 < c]
            if self.rng.random() < 0.5:
                x[b] = x[b, :, :, ::-1]
                bb = [[c - g[2], g[1], c - g[0], g[3]] for g in bb]
            if self.geo_aug:  # no anatomical layout to learn: any in-plane orientation, either up-down
                if self.rng.random() < 0.5:
                    x[b] = x[b, :, ::-1, :]
                    bb = [[g[0], c - g[3], g[2], c - g[1]] for g in bb]
                for _ in range(int(self.rng.integers(4))):  # 90 deg counter-clockwise: (x, y) -> (y, c - x)
                    x[b] = np.rot90(x[b], 1, axes=(1, 2))
                    bb = [[g[1], c - g[2], g[3], c - g[0]] for g in bb]
            if self.intensity_aug and self.rng.random() < 0.5:  # window / gain jitter and extra noise (windowed units)
                gain, shift = self.rng.uniform(0.85, 1.15), self.rng.uniform(-0.06, 0.06)
                x[b] = np.clip(x[b] * gain + shift + self.rng.normal(0, self.rng.uniform(0, 0.04), x[b].shape), 0, 1)
            boxes.append(bb)
        return x, boxes


def predict_study(infer: Callable[[np.ndarray], dict], st: PreparedStudy, spec: ModelSpec,
                  score_threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run the model over every slice of a prepared study; per slice (boxes (N, 4) original pixels, scores).

    infer: model input [1, k, S, S] -> {output name: array} (ORT session or a torch wrapper).
    """
    k = int(spec.preprocess["k"])
    buf = np.empty((1, k, st.slices.shape[1], st.slices.shape[2]), np.float32)
    out = []
    for i in range(len(st.slices)):
        stack_input([st.slices[j] for j in neighbour_indices(i, len(st.slices), k)], out=buf)
        dets = decode_detections(infer(buf), spec, slice_index=i, pixel_spacing_mm=st.pixel_spacing_mm,
                                 original_shape=st.shape, score_threshold=score_threshold)
        out.append((np.array([d.box for d in dets], np.float64).reshape(-1, 4),
                    np.array([d.score for d in dets], np.float64)))
    return out
