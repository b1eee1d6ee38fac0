"""Real contrast CT anatomy with inserted filling defects (research software, not for diagnostic use): the pair
(lesion study, clean copy) and its CLI. The steps live in :mod:`training.ct.real_source` (1-2),
:mod:`training.ct.real_defects` (3) and :mod:`training.ct.real_scan` (4).

Source: ``../shared/data/ct-contrast-vessels/{aorta,pulmonary}/`` (real contrast CT crops, 1.5 mm isotropic, with a
0/1 vessel mask; TotalSegmentator test data, Apache-2.0). They are read in place and never copied.

Per study (one integer seed, deterministic):

1. **Source** (:func:`load_source`, cached): HU and mask reoriented to (z, y, x) = (superior, posterior, patient
   left), i.e. axial slices with row 0 anterior and patient right on the image left. The vessel's own edge blur
   (Gaussian sigma in voxels) is fitted to the HU across the mask edge (:func:`estimate_edge_sigma`). Slices whose
   mask holds a *native* low-density region (>= 20 voxels below 130 HU, >= 2 voxels inside the wall; the aorta crop
   has a mural thrombus / dissection over its lower half) are excluded with a 6 mm margin, so clean copies carry no
   filling defect: the usable z-range is the longest run of slices without one, within 20 mm of the mask.
2. **Contrast** (:func:`rescale_contrast`): the smooth lumen HU is scaled around the local surrounding-tissue level
   so that the lumen mean becomes 150-500 HU; the change is weighted by the mask blurred with the vessel's edge
   blur (a smooth edge, zero away from the vessel) and keeps the voxel noise.
3. **Defects** (:func:`insert_defects`): 1-3 per lesion study. A centreline is tracked through the mask (local PCA
   of mask voxels for the direction, re-centred on the distance-transform ridge) over the asked length (5-40 mm);
   the defect is ``occlusive`` (the whole lumen along that segment) or ``partial`` (an eccentric tube touching the
   wall, 30-80% of the cross-section, shaped ``tube`` / ``blob`` (ellipsoid-like taper) / ``cone``). Its occupancy
   ``D`` is clipped to the mask; the image change is ``G_sigma * (D * (hu_defect - lumen))`` with sigma the vessel's
   own edge blur (partial volume: the convolution of the object change), so the core reads the asked 15-70 HU plus
   the voxel's own noise.
4. **Scan** (:func:`rescan`): re-sliced to thickness 1-5 mm (contiguous slices; each slice is the mean of the
   linearly interpolated volume over its thickness: partial volume along z), resampled in-plane to 0.6-1.0 mm
   (x 512/size), flipped / rotated by 90 deg at random, correlated noise 0-25 HU added, and placed at a random spot
   of a ``size`` x ``size`` field filled with air or a soft-tissue body ellipse (feathered join), inside the
   central 360 mm so the detector's 384 mm field sees it.

The clean copy goes through exactly the same steps with the same draws (only the defect insertion is skipped), so
the clean study is bit-identical to the re-sampled clean volume and differs from the lesion study only around the
defects. Ground truth: one :class:`~training.ct.study.Lesion` per defect with a box on every slice where its
re-sliced occupancy reaches 0.5 (bounding box of those pixels, x1/y1 exclusive); overlapping defects are merged
(``phantom.merge_overlapping``). ``Study.veins`` holds the two largest vessel cross-sections per slice (centre,
radius; for crop sampling).

CLI: ``python -m training.ct.real_lesions --volume aorta|pulmonary --out DIR --studies N --seed S [--size 512]``
writes per seed ``DIR/<volume>-<seed>/`` (lesions) and ``DIR/<volume>-<seed>-clean/`` as DICOM series + NIfTI +
``ground_truth.json`` (``training.ct.phantom_io.write_study``).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from training.ct.phantom import merge_overlapping
from training.ct.real_defects import Defect, DefectSpec, insert_defects, make_defect, sample_spec
from training.ct.real_scan import ScanParams, field_and_noise, rescan, sample_scan
from training.ct.real_source import CLEAN_SEED_OFFSET, SOURCE_MM, VOLUMES, load_source, rescale_contrast
from training.ct.study import Lesion, Study, box_of_mask


@dataclass
class RealPair:
    lesion: Study
    clean: Study
    scan: ScanParams
    defects: list[Defect]
    occupancy: np.ndarray  # (n, H, W) float32 re-sliced occupancy of all defects (max), for checks
    vessel: np.ndarray  # (n, H, W) float32 re-sliced vessel mask
    clean_source: np.ndarray = field(repr=False, default=None)  # the contrast-rescaled source (z, y, x)


def _veins(vessel: np.ndarray) -> list[dict]:
    out = []
    for s in vessel:
        m = (s >= 0.5).astype(np.uint8)
        n, lab, stats, cent = cv2.connectedComponentsWithStats(m, connectivity=8)
        comps = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])[:2]
        per = [(float(cent[i][0]), float(cent[i][1]), float(math.sqrt(stats[i, cv2.CC_STAT_AREA] / math.pi))) for i in comps]
        if not per:
            per = [(s.shape[1] / 2, s.shape[0] / 2, 5.0)]
        if len(per) == 1:
            per.append(per[0])
        out.append({-1: per[0], 1: per[1]})
    return out


def make_pair(volume: str, seed: int, size: int = 512, n_slices: int | None = None,
              thickness_mm: float | None = None, n_defects: int | None = None,
              specs: list[DefectSpec] | None = None, root: str | None = None) -> RealPair:
    """The lesion study and its clean copy for ``seed`` (deterministic; see the module doc)."""
    src = load_source(volume, root)
    rng = np.random.default_rng([seed, 0xC7, sorted(VOLUMES).index(volume)])
    sp = sample_scan(src, rng, size, n_slices, thickness_mm)
    base = rescale_contrast(src, sp.contrast_hu)
    # defects drawn on the slab the study covers (centre inside it)
    zlo, zhi = (sp.z_start_mm - sp.thickness_mm / 2) / SOURCE_MM, (sp.z_start_mm + (sp.n_slices - 0.5) * sp.thickness_mm) / SOURCE_MM
    nd = int(rng.integers(1, 4) if n_defects is None else n_defects)
    specs = list(specs) if specs is not None else [sample_spec(rng) for _ in range(nd)]
    ridge = src.ridge[(src.ridge[:, 0] >= zlo + 1) & (src.ridge[:, 0] <= zhi - 1)]
    defects = []
    for spec in specs:
        for _ in range(8):  # a start whose vessel gives a segment long enough
            if spec.start is None and not len(ridge):
                break
            start = tuple(int(v) for v in ridge[rng.integers(len(ridge))])
            sp_ = spec if spec.start is not None else DefectSpec(**{**spec.__dict__, "start": start})
            df = make_defect(src, sp_, rng)
            if df is not None:
                defects.append(df)
                break
            if spec.start is not None:
                break
    lesioned = insert_defects(src, base, defects)
    fill, noise = field_and_noise(sp, seed)
    clean_hu = rescan(base, sp, fill, noise)
    les_hu = rescan(lesioned, sp, fill, noise)
    empty = np.zeros((sp.size, sp.size), np.float32)
    vessel = rescan(src.mask.astype(np.float32), sp, empty, None)
    occs = [rescan(df.occupancy, sp, empty, None) for df in defects]
    positions = sp.z_start_mm + np.arange(sp.n_slices) * sp.thickness_mm
    thrombi = []
    for df, occ in zip(defects, occs):
        boxes = {i: b for i, s in enumerate(occ) if (b := box_of_mask(s >= 0.5)) is not None}
        if boxes:
            zc = df.centreline[:, 0] * SOURCE_MM
            thrombi.append(Lesion(df.spec.kind, 1, (float(zc.min()), float(zc.max())),
                                  {"hu": round(df.spec.hu, 1), "length_mm": round(df.length_mm, 1),
                                   "asked_length_mm": round(df.spec.length_mm, 1), "area_frac": round(df.spec.area_frac, 2),
                                   "shape": df.spec.shape, "source": volume}, boxes))
    thrombi = merge_overlapping(thrombi)
    veins = _veins(vessel)
    ps = (sp.pixel_mm, sp.pixel_mm)
    occ_all = np.max(np.stack(occs), axis=0) if occs else np.zeros_like(vessel)
    lesion = Study(seed, les_hu, positions.astype(np.float64), ps, sp.thickness_mm, thrombi, [], veins)
    clean = Study(seed + CLEAN_SEED_OFFSET, clean_hu, positions.astype(np.float64), ps, sp.thickness_mm, [], [], veins)
    return RealPair(lesion, clean, sp, defects, occ_all, vessel, base)


def make_study(volume: str, seed: int, size: int = 512, clean: bool = False, **kw) -> Study:
    pair = make_pair(volume, seed, size, **kw)
    return pair.clean if clean else pair.lesion


def main(argv: list[str] | None = None) -> int:
    from training.ct.phantom_io import write_study

    ap = argparse.ArgumentParser(description="Real contrast CT crops with inserted filling defects, as DICOM series "
                                             "(lesion + clean copy per seed; not for diagnostic use).")
    ap.add_argument("--volume", required=True, choices=sorted(VOLUMES))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="study i uses seed + i")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--no-nifti", action="store_true")
    ap.add_argument("--no-clean", action="store_true", help="skip the clean copies")
    ap.add_argument("--n-slices", type=int, default=None, help="at most this many slices (default: the usable range)")
    ap.add_argument("--thickness", type=float, default=None, help="slice thickness in mm (default: drawn, 1-5 mm)")
    args = ap.parse_args(argv)
    t00 = time.perf_counter()
    src = load_source(args.volume)
    print(f"{args.volume}: source {src.hu.shape} voxels at {SOURCE_MM} mm, usable slices {src.z_range}, lumen mean "
          f"{src.lumen_mean:.0f} HU, edge blur sigma {src.edge_sigma} voxels ({time.perf_counter() - t00:.1f} s)", flush=True)
    for i in range(args.studies):
        t0 = time.perf_counter()
        seed = args.seed + i
        pair = make_pair(args.volume, seed, size=args.size, n_slices=args.n_slices, thickness_mm=args.thickness)
        out = write_study(pair.lesion, args.out / f"{args.volume}-{seed:06d}", nifti=not args.no_nifti)
        if not args.no_clean:
            write_study(pair.clean, args.out / f"{args.volume}-{seed:06d}-clean", nifti=not args.no_nifti)
        sp = pair.scan
        desc = ", ".join(f"{t.kind} {t.params.get('hu', 0):.0f} HU" for t in pair.lesion.thrombi)
        print(f"[{i + 1}/{args.studies}] {out}: {sp.n_slices} slices x {sp.thickness_mm:g} mm, {sp.pixel_mm:.2f} mm px, "
              f"lumen {sp.contrast_hu:.0f} HU, noise {sp.noise_hu:.0f} HU, {len(pair.lesion.thrombi)} defects "
              f"({desc}) "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
