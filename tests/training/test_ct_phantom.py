"""CT venography phantoms: determinism, tissue HU, ground truth on the defect, DICOM/NIfTI writers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.ct.phantom import main as phantom_main
from training.ct.phantom import make_study
from training.ct.phantom_io import CT_IMAGE_STORAGE, nifti_affine, write_study


def test_same_seed_same_study_and_different_seed_differs():
    a = make_study(11, size=96, n_slices=8)
    b = make_study(11, size=96, n_slices=8)
    c = make_study(12, size=96, n_slices=8)
    assert np.array_equal(a.hu, b.hu)
    assert [t.boxes for t in a.thrombi] == [t.boxes for t in b.thrombi]
    assert not np.array_equal(a.hu[:, :10], c.hu[:, :10]) or a.pixel_spacing_mm != c.pixel_spacing_mm
    assert np.all(np.diff(a.positions_mm) > 0), "slices must be in ascending position"


def test_tissue_hu_ranges():
    st = make_study(21, size=256, n_slices=6, n_thrombi=0, n_streaks=0)
    hu = st.hu
    assert -1100 < float(np.median(hu[:, :8, :8])) < -900  # air in the corner
    body = hu[hu > -500]
    assert 25 < float(np.median(body)) < 75  # muscle dominates the body
    assert float(np.percentile(body, 99.9)) > 800  # cortical bone
    assert float(np.percentile(hu[(hu > -300) & (hu < -30)], 50)) < -60  # subcutaneous fat near -100
    for i in range(len(hu)):
        for x, y, r in st.veins[i].values():
            patch = hu[i, int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2]
            assert 120 < float(patch.mean()) < 280, f"vein HU on slice {i}: {patch.mean():.0f}"


@pytest.mark.parametrize("seed", [3, 4])
def test_ground_truth_boxes_cover_a_dark_defect_inside_a_bright_vein(seed):
    st = make_study(seed, size=256, n_slices=30, thickness_mm=2.0, n_thrombi=2, n_streaks=0)
    assert st.thrombi, "two thrombi were requested"
    for t in st.thrombi:
        s0, s1 = t.slice_range
        assert 0 <= s0 <= s1 < len(st.hu) and len(t.boxes) == s1 - s0 + 1
        for i, (x0, y0, x1, y1) in t.boxes.items():
            inside = st.hu[i, int(y0):int(y1), int(x0):int(x1)]
            assert inside.size > 0
            assert float(np.median(inside)) < 135, f"{t.kind} slice {i}: box is not on the defect"
            vx, vy, vr = st.veins[i][t.side]  # ... and the defect sits in that side's deep vein
            assert np.hypot((x0 + x1) / 2 - vx, (y0 + y1) / 2 - vy) <= vr, f"slice {i}: box is not in the vein"
            ring = st.hu[i, int(y0) - 3:int(y1) + 3, int(x0) - 3:int(x1) + 3]
            assert float(ring.max()) > 95, f"{t.kind} slice {i}: no enhancing vein/rim around the defect"


def test_clots_overlapping_in_one_vein_are_one_ground_truth_lesion():
    from training.ct.metrics import box_iou
    from training.ct.phantom import merge_overlapping
    from training.ct.study import Lesion

    st = make_study(5, size=128, n_slices=40, thickness_mm=2.0, n_thrombi=3, n_streaks=0)  # two of them overlap
    assert [t.params.get("merged_from", 1) for t in st.thrombi].count(2) == 1
    for i in range(len(st.hu)):
        boxes = [t.boxes[i] for t in st.thrombi if i in t.boxes]
        iou = box_iou(boxes, boxes)
        np.fill_diagonal(iou, 0)
        assert not (iou > 0).any(), f"slice {i}: two ground-truth boxes on one filling defect"
    # the rule itself: union per slice, both ranges, occlusive wins; other sides and disjoint clots stay apart
    a = Lesion("partial", 1, (0.0, 10.0), {}, {1: [10, 10, 20, 20], 2: [10, 10, 20, 20]})
    b = Lesion("occlusive", 1, (5.0, 20.0), {}, {2: [15, 12, 25, 22], 3: [15, 12, 25, 22]})
    c = Lesion("partial", -1, (0.0, 10.0), {}, {2: [15, 12, 25, 22]})
    d = Lesion("partial", 1, (0.0, 10.0), {}, {2: [40, 40, 50, 50]})
    merged = merge_overlapping([a, b, c, d])
    assert len(merged) == 3
    m = merged[0]
    assert m.kind == "occlusive" and m.level_mm == (0.0, 20.0) and m.params["merged_from"] == 2
    assert m.boxes == {1: [10, 10, 20, 20], 2: [10, 10, 25, 22], 3: [15, 12, 25, 22]}


def test_streaks_run_long_and_thrombi_are_short():
    st = make_study(5, size=128, n_slices=120, thickness_mm=1.0, n_thrombi=2, n_streaks=1)
    for t in st.thrombi:
        assert t.level_mm[1] - t.level_mm[0] <= 60
    for m in st.mimics:
        assert m.level_mm[1] - m.level_mm[0] >= 80


@pytest.mark.parametrize("seed", [8, 9])  # even seed -> uint16 pixels, odd -> int16
def test_dicom_series_and_nifti_read_back(tmp_path, seed):
    pydicom = pytest.importorskip("pydicom")
    st = make_study(seed, size=64, n_slices=6, thickness_mm=3.0, n_thrombi=1)
    write_study(st, tmp_path, nifti=True, shuffle_names=True)
    files = sorted((tmp_path / "dicom").glob("*.dcm"))
    assert len(files) == 6
    dss = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    assert len({d.SeriesInstanceUID for d in dss}) == 1 and len({d.StudyInstanceUID for d in dss}) == 1
    assert len({d.FrameOfReferenceUID for d in dss}) == 1 and len({d.SOPInstanceUID for d in dss}) == 6
    for i, d in enumerate(dss):
        assert d.SOPClassUID == CT_IMAGE_STORAGE and d.file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
        assert d.PatientName == "PHANTOM^CT" and d.PatientID == f"PHANTOM-{seed}"
        assert float(d.ImagePositionPatient[2]) == pytest.approx(st.positions_mm[i], abs=1e-3)
        assert [float(v) for v in d.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(d.PixelSpacing[0]) == pytest.approx(st.pixel_spacing_mm[0], abs=1e-5)
        assert float(d.SliceThickness) == 3.0
        hu = d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        assert np.abs(hu - st.hu[i]).max() <= 0.5 + 1e-6
    assert dss[0].pixel_array.dtype == (np.uint16 if seed % 2 == 0 else np.int16)
    gt = json.loads((tmp_path / "ground_truth.json").read_text())
    assert gt["n_slices"] == 6 and len(gt["thrombi"]) == len(st.thrombi)
    nib = pytest.importorskip("nibabel")
    img = nib.load(str(tmp_path / "volume.nii.gz"))
    assert img.shape == (64, 64, 6)
    assert np.array_equal(np.asarray(img.dataobj)[:, :, 2].T, np.rint(st.hu[2]).astype(np.int16))
    # voxel (col 5, row 7, slice 2) -> RAS must equal the DICOM LPS position with x, y negated
    ras = nib.affines.apply_affine(img.affine, [5, 7, 2])
    ipp = np.array([float(v) for v in dss[2].ImagePositionPatient])
    lps = ipp + np.array([5 * st.pixel_spacing_mm[1], 7 * st.pixel_spacing_mm[0], 0.0])
    assert np.allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-3)
    assert np.allclose(img.affine, nifti_affine(st))


def test_cli_writes_studies(tmp_path, capsys):
    assert phantom_main(["--out", str(tmp_path), "--studies", "1", "--seed", "6", "--size", "48", "--no-nifti"]) == 0
    study = tmp_path / "study-000006"
    assert (study / "ground_truth.json").is_file() and any((study / "dicom").glob("*.dcm"))
    assert "slices" in capsys.readouterr().out


def test_distractors_keep_the_base_study_and_its_ground_truth():
    plain = make_study(41, size=128, n_slices=16, thickness_mm=3.0, n_thrombi=2, n_streaks=0)
    a = make_study(41, size=128, n_slices=16, thickness_mm=3.0, n_thrombi=2, n_streaks=0, distractors=1.0)
    b = make_study(41, size=128, n_slices=16, thickness_mm=3.0, n_thrombi=2, n_streaks=0, distractors=1.0)
    assert np.array_equal(a.hu, b.hu) and a.distractors == b.distractors  # deterministic
    assert not np.array_equal(a.hu, plain.hu) and sum(map(len, a.distractors)) > 0
    assert plain.distractors == [[] for _ in range(16)]
    assert a.pixel_spacing_mm == plain.pixel_spacing_mm and a.veins == plain.veins
    if a.thrombi:  # a "negative only" abdominal-like study drops its thrombi; otherwise they are unchanged
        assert [t.boxes for t in a.thrombi] == [t.boxes for t in plain.thrombi]


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_distractors_never_cover_the_deep_veins(seed):
    st = make_study(seed, size=256, n_slices=12, thickness_mm=5.0, n_thrombi=0, n_streaks=0, distractors=1.0)
    for i in range(len(st.hu)):
        for x, y, r in st.veins[i].values():
            patch = st.hu[i, int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2]
            assert 110 < float(patch.mean()) < 300, f"vein HU on slice {i}: {patch.mean():.0f}"
