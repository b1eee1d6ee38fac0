"""CT readers: the real JPEG 2000 sample (HU and geometry), synthetic DICOM edge cases, NIfTI orientation."""

from __future__ import annotations

import numpy as np
import pytest

from edge.ct.dicom_series import read_series, scan_series, short_uid
from edge.ct.testing import synthetic_hu, write_series, write_slice
from edge.errors import InputError


@pytest.mark.data
def test_real_sample_hu_and_geometry(ct_sample_dir):
    slices, series = read_series(ct_sample_dir)
    assert len(slices) == 20
    s0 = slices[0]
    assert s0.hu.shape == (512, 512) and s0.hu.dtype == np.float32
    assert s0.pixel_spacing_mm == pytest.approx((0.9765625, 0.9765625))
    assert s0.thickness_mm == pytest.approx(3.0)  # SliceThickness 3 mm ...
    pos = np.array([s.position_mm for s in slices])
    # ... reconstructed every 2 mm (overlapping slices): the spacing is read from positions, not thickness
    assert np.all(np.diff(pos) > 0) and np.allclose(np.diff(pos), 2.0)
    assert pos[0] == pytest.approx(-804.5) and pos[-1] == pytest.approx(-766.5)
    assert series.spacing_mm == pytest.approx(2.0) and series.gaps == []
    assert [s.index for s in slices] == list(range(20))
    for s in (slices[0], slices[10], slices[-1]):
        air = np.median(s.hu[20:60, 200:300])  # in front of the abdomen
        liver = np.median(s.hu[240:280, 140:200])  # soft tissue in the body
        assert -1030 <= air <= -950, air
        assert 0 <= liver <= 100, liver
        assert s.hu.max() > 700  # bone (vertebra, ribs)
    # the anonymised sample has an empty SeriesInstanceUID: taken as one series, and said so
    assert any("SeriesInstanceUID is empty" in w for w in series.warnings)


def test_sorted_by_position_not_by_name(tmp_path):
    names = [f"z{(i * 7) % 12:02d}.dcm" for i in range(12)]  # names in a scrambled order
    write_series(tmp_path, 12, names=names, z0=50.0, dz=-2.5)  # instance 1 highest: a head-to-feet scan
    slices, series = read_series(tmp_path)
    pos = [s.position_mm for s in slices]
    assert pos == sorted(pos) and len(slices) == 12
    assert [s.meta["file"] for s in slices] == names[::-1]
    assert series.warnings == [] and series.gaps == []
    assert slices[0].hu.min() == -1000 and slices[0].hu.max() == 180  # stored + 1024, intercept -1024


def test_missing_slice_is_a_reported_gap(tmp_path):
    write_series(tmp_path, 10, skip=[4])
    slices, series = read_series(tmp_path)
    assert len(slices) == 9
    assert series.gaps == [(3, 4, pytest.approx(6.0))]
    assert any("gap between slices 3 and 4" in w and "1 slice(s) missing" in w for w in series.warnings)


def test_duplicate_position_kept_once_with_warning(tmp_path):
    paths = write_series(tmp_path, 6)
    (tmp_path / "copy.dcm").write_bytes(paths[2].read_bytes())
    slices, series = read_series(tmp_path)
    assert len(slices) == 6
    assert any("duplicate position" in w and "same instance" in w for w in series.warnings)


def test_two_series_error_lists_them_and_series_uid_picks(tmp_path):
    write_series(tmp_path / "a", 5, series_uid="1.2.3.4.1")
    write_series(tmp_path / "b", 7, series_uid="1.2.3.4.2")
    with pytest.raises(InputError) as err:
        scan_series(tmp_path)
    msg = str(err.value)
    assert "2 CT series" in msg and short_uid("1.2.3.4.1") in msg and short_uid("1.2.3.4.2") in msg
    assert "--series-uid" in msg and "\n" not in msg
    assert "1.2.3.4.1" not in msg  # hashes, not raw UIDs
    assert len(scan_series(tmp_path, series_uid="1.2.3.4.1")) == 5
    assert len(scan_series(tmp_path, series_uid=short_uid("1.2.3.4.2"))) == 7
    with pytest.raises(InputError, match="not found"):
        scan_series(tmp_path, series_uid="9.9")


def test_non_dicom_file_skipped_with_warning(tmp_path):
    write_series(tmp_path, 5)
    (tmp_path / "README.txt").write_text("exported by the PACS\n")
    slices, series = read_series(tmp_path)
    assert len(slices) == 5
    assert any("README.txt" in w and "not a DICOM file" in w for w in series.warnings)


@pytest.mark.parametrize("cut", [600, -100])  # inside the header / inside the pixel data
def test_truncated_file_is_an_error_naming_it(tmp_path, cut):
    paths = write_series(tmp_path, 5)
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[:cut])
    with pytest.raises(InputError) as err:
        scan_series(tmp_path)
    assert paths[3].name in str(err.value) and "truncated" in str(err.value)


def test_non_ct_modality_skipped_and_only_non_ct_is_an_error(tmp_path):
    write_series(tmp_path, 4)
    write_slice(tmp_path / "mr.dcm", synthetic_hu(), position_z=500.0, series_uid="1.2.3.9", instance=1, modality="MR")
    slices, series = read_series(tmp_path)
    assert len(slices) == 4
    assert any("mr.dcm" in w and "Modality is MR" in w for w in series.warnings)
    only_mr = tmp_path / "mr"
    only_mr.mkdir()
    (tmp_path / "mr.dcm").rename(only_mr / "mr.dcm")
    with pytest.raises(InputError, match=r"no CT DICOM files.*MR"):
        scan_series(only_mr)


def test_mixed_geometry_is_an_error(tmp_path):
    uid = "1.2.3.4.7"
    write_series(tmp_path, 4, series_uid=uid)
    write_slice(tmp_path / "odd.dcm", synthetic_hu((48, 48)), position_z=20.0, series_uid=uid, instance=9)
    with pytest.raises(InputError, match=r"mixed series: .*size"):
        scan_series(tmp_path)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        scan_series(tmp_path / "nope")
    p = write_series(tmp_path, 2)[0]
    with pytest.raises(InputError, match="not a folder"):
        scan_series(p)


def _to_nifti(slices, path, ras_x: bool, flip_z: bool):
    """Write slices as NIfTI the way dcm2niix would (LPS -> RAS), optionally storing x or z reversed."""
    import nibabel as nib

    dy, dx = slices[0].pixel_spacing_mm
    vol = np.stack([s.hu.T for s in slices], axis=-1)  # (x=cols, y=rows, z ascending)
    aff = np.diag([-dx, -dy, 3.0, 1.0])
    aff[:3, 3] = [25.0, 25.0, slices[0].position_mm]
    if ras_x:  # store columns reversed with a +x axis: the same anatomy
        vol = vol[::-1]
        aff[0, 0], aff[0, 3] = dx, 25.0 - dx * (vol.shape[0] - 1)
    if flip_z:
        vol = vol[:, :, ::-1]
        aff[2, 2], aff[2, 3] = -3.0, slices[-1].position_mm
    nib.save(nib.Nifti1Image(vol.astype(np.int16), aff), str(path))


@pytest.mark.parametrize("ras_x,flip_z", [(False, False), (True, True)])
def test_nifti_matches_dicom_orientation_and_order(tmp_path, ras_x, flip_z):
    pytest.importorskip("nibabel")
    from edge.ct.nifti import NiftiVolume

    write_series(tmp_path / "d", 6, clot_slices=[2])
    dicom, _ = read_series(tmp_path / "d")
    # an asymmetric marker so a flip would be caught
    for s in dicom:
        s.hu[3:6, 5:12] = 900
    _to_nifti(dicom, tmp_path / "v.nii.gz", ras_x, flip_z)
    vol = NiftiVolume(tmp_path / "v.nii.gz")
    assert len(vol) == 6 and vol.pixel_spacing_mm == pytest.approx((0.8, 0.8)) and vol.slice_spacing_mm == pytest.approx(3.0)
    for a, b in zip(vol, dicom):
        assert a.position_mm == pytest.approx(b.position_mm)
        np.testing.assert_array_equal(a.hu, b.hu)
    assert vol.warnings == []


def test_nifti_bad_inputs(tmp_path):
    pytest.importorskip("nibabel")
    from edge.ct.nifti import NiftiVolume

    bad = tmp_path / "x.nii.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="x.nii.gz"):
        NiftiVolume(bad)
    with pytest.raises(InputError, match="no such file"):
        NiftiVolume(tmp_path / "missing.nii")
