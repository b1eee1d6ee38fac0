"""Real contrast CT with inserted filling defects (training.ct.real_lesions, real_source, real_defects, real_scan):
geometry, HU, clean copies, boxes.

Reads ../shared/data/ct-contrast-vessels (skipped with a reason when absent); small studies (256 px, few slices).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.data

VESSELS = SHARED_DATA / "ct-contrast-vessels"


@pytest.fixture(scope="module")
def R():
    if not (VESSELS / "pulmonary" / "ct.nii.gz").is_file():
        pytest.skip(f"real contrast CT crops not found at {VESSELS} (set DVT_SHARED_DATA to its parent)")
    pytest.importorskip("nibabel")
    from training.ct import real_lesions

    return real_lesions


@pytest.fixture(scope="module")
def src(R):
    return R.load_source("pulmonary", str(SHARED_DATA))


def _start(src, min_radius=4.0):
    """A ridge voxel of a wide lumen near the middle of the usable range (deterministic)."""
    pts = src.ridge[src.edt[tuple(src.ridge.T)] >= min_radius]
    mid = (src.z_range[0] + src.z_range[1]) / 2
    return tuple(int(v) for v in pts[np.argmin(np.abs(pts[:, 0] - mid))])


def _centreline_extent_mm(R, df):
    """Extent (mm) of the defect voxels along its own centreline (arc-length of their nearest centreline sample)."""
    pts = np.argwhere(df.occupancy >= 0.5).astype(np.float64)
    d = np.linalg.norm(pts[:, None, :] - df.centreline[None, :, :], axis=2)
    j = np.argmin(d, axis=1)
    return (j.max() - j.min()) * 0.5 * R.SOURCE_MM


@pytest.mark.parametrize("kind", ["occlusive", "partial"])
def test_defect_inside_mask_with_asked_hu_and_extent(R, src, kind):
    spec = R.DefectSpec(kind=kind, length_mm=20.0, hu=40.0, area_frac=0.6, shape="tube", start=_start(src))
    df = R.make_defect(src, spec, np.random.default_rng(0))
    assert df is not None
    occ = df.occupancy
    assert occ.max() > 0.99 and np.all(occ[~src.mask] == 0), "the defect must lie inside the vessel mask"
    assert abs(df.length_mm - 20.0) <= 1.5, df.length_mm
    assert abs(_centreline_extent_mm(R, df) - 20.0) <= 3.5
    base = R.rescale_contrast(src, 300.0)
    before = base.copy()
    hu = R.insert_defects(src, base, [df])
    assert np.array_equal(base, before), "insertion must not modify its input (the clean volume)"
    core = ndi.gaussian_filter(occ, src.edge_sigma) >= 0.99
    assert core.sum() >= 5
    assert abs(float(np.mean(hu[core])) - 40.0) <= 10.0, "the defect core reads the asked HU (+ the voxel noise)"
    lumen = src.mask & (ndi.gaussian_filter(src.mask.astype(np.float32), 2.0) > 0.99) & (occ == 0)
    assert float(np.mean(base[lumen])) > 200, "the surrounding lumen stays contrast-filled"
    changed = np.abs(hu - base) > 0.5
    near = ndi.binary_dilation(src.mask, iterations=int(np.ceil(3 * src.edge_sigma)) + 1)
    assert changed.any() and not np.any(changed & ~near), "HU change outside the vessel's partial-volume edge"
    frac = _cross_fraction(src, df)
    if kind == "partial":  # eccentric: 30-80% of the cross-section (0.6 asked), touching the wall
        assert abs(frac - 0.6) <= 0.15, frac
    else:
        assert frac >= 0.9, f"occlusive: the lumen is filled across ({frac:.2f})"


def _cross_fraction(src, df) -> float:
    """Share of the lumen cross-section (the mask voxels in a 1.5-voxel slab normal to the centreline at its
    middle, within the local radius + 1) that the defect occupies."""
    c = df.centreline
    mid = c[len(c) // 2]
    dvec = c[min(len(c) - 1, len(c) // 2 + 4)] - c[max(0, len(c) // 2 - 4)]
    dvec /= np.linalg.norm(dvec)
    pts = np.argwhere(src.mask).astype(np.float64)
    rel = pts - mid
    a = rel @ dvec
    radial = np.sqrt(np.maximum(np.sum(rel ** 2, axis=1) - a ** 2, 0))
    sl = (np.abs(a) <= 0.75) & (radial <= src.edt[tuple(np.round(mid).astype(int))] + 1)
    return float(np.mean(df.occupancy[tuple(pts[sl].astype(int).T)] >= 0.5))


def test_contrast_rescale_hits_the_asked_mean(R, src):
    for target in (150.0, 500.0):
        hu = R.rescale_contrast(src, target)
        usable = src.mask.copy()
        usable[:src.z_range[0]] = usable[src.z_range[1]:] = False
        assert abs(float(hu[usable].mean()) - target) < 25
        far = ~ndi.binary_dilation(src.mask, iterations=4)
        assert np.array_equal(hu[far], src.hu[far]), "contrast is changed inside the vessel only"


@pytest.fixture(scope="module")
def pair(R):
    specs = [R.DefectSpec(kind="partial", length_mm=18.0, hu=50.0, area_frac=0.6, shape="blob"),
             R.DefectSpec(kind="occlusive", length_mm=12.0, hu=30.0)]
    return R.make_pair("pulmonary", 123, size=256, n_slices=16, thickness_mm=3.0, specs=specs, root=str(SHARED_DATA))


def test_clean_copy_is_bit_identical_to_the_resampled_clean_volume(R, pair):
    from training.ct.real_scan import resample_clean

    clean = resample_clean("pulmonary", 123, pair.scan, root=str(SHARED_DATA))
    assert np.array_equal(pair.clean.hu, clean)
    assert pair.clean.thrombi == []
    again = R.make_pair("pulmonary", 123, size=256, n_slices=16, thickness_mm=3.0, n_defects=0, root=str(SHARED_DATA))
    assert np.array_equal(again.clean.hu, pair.clean.hu) and np.array_equal(again.lesion.hu, pair.clean.hu)
    diff = np.abs(pair.lesion.hu - pair.clean.hu) > 0.5
    assert diff.any(), "the lesion copy differs"
    near = ndi.binary_dilation(pair.vessel >= 0.05, iterations=3)
    assert not np.any(diff & ~near), "the lesion copy differs from the clean one only at the vessel"


def test_boxes_cover_the_defect_on_every_slice(R, pair):
    st = pair.lesion
    assert st.thrombi and st.hu.shape == (16, 256, 256)
    for i in range(len(st.hu)):
        vis = pair.occupancy[i] >= 0.5
        boxes = st.gt_boxes(i)
        if vis.sum() < 2:
            continue
        assert boxes, f"slice {i}: defect visible but no box"
        cover = np.zeros_like(vis)
        for x0, y0, x1, y1 in boxes:
            cover[int(y0):int(y1), int(x0):int(x1)] = True
            assert vis[int(y0):int(y1), int(x0):int(x1)].any(), "a box without defect pixels"
        # a defect showing fewer than 2 pixels on a slice gets no box there (as in the phantom): <= 1 per defect
        assert int((vis & ~cover).sum()) <= len(pair.defects), f"slice {i}: defect pixels outside the boxes"
    for t in st.thrombi:  # boxes only where the defect is
        for i, (x0, y0, x1, y1) in t.boxes.items():
            assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256
            assert pair.occupancy[i, int(y0):int(y1), int(x0):int(x1)].max() >= 0.5
    dark = [np.median(st.hu[i][int(b[1]):int(b[3]), int(b[0]):int(b[2])][
        pair.occupancy[i][int(b[1]):int(b[3]), int(b[0]):int(b[2])] >= 0.9]) for t in st.thrombi for i, b in t.boxes.items()
        if (pair.occupancy[i][int(b[1]):int(b[3]), int(b[0]):int(b[2])] >= 0.9).sum() >= 4]
    assert dark and np.median(dark) < 120, "the defect reads dark on the re-sliced images"


def test_written_as_a_dicom_series_that_the_runtime_reads(R, pair, tmp_path):
    from edge.ct.dicom_series import read_series
    from training.ct.phantom_io import write_study

    write_study(pair.lesion, tmp_path / "s", nifti=False)
    slices, _ = read_series(tmp_path / "s" / "dicom")
    vol = np.stack([s.hu for s in slices])
    gt = json.loads((tmp_path / "s" / "ground_truth.json").read_text())
    assert gt["n_slices"] == 16 and len(gt["thrombi"]) == len(pair.lesion.thrombi)
    assert vol.shape == pair.lesion.hu.shape
    body = pair.lesion.hu > -1000  # (uint16 storage clips air below -1024 HU)
    assert np.max(np.abs(vol - np.rint(pair.lesion.hu))[body]) <= 1.0


def test_cli_writes_lesion_and_clean_series(R, src, tmp_path, capsys):
    assert R.main(["--volume", "pulmonary", "--out", str(tmp_path), "--studies", "1", "--seed", "7", "--size", "256",
                   "--no-nifti", "--n-slices", "8"]) == 0
    les, clean = tmp_path / "pulmonary-000007", tmp_path / "pulmonary-000007-clean"
    assert len(list((les / "dicom").glob("*.dcm"))) == len(list((clean / "dicom").glob("*.dcm"))) > 0
    assert json.loads((clean / "ground_truth.json").read_text())["thrombi"] == []
    assert json.loads((les / "ground_truth.json").read_text())["thrombi"]
    out = capsys.readouterr().out
    assert "[1/1]" in out and "edge blur sigma" in out
