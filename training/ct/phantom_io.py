"""Writers for phantom studies: a DICOM CT series, a NIfTI volume and the ground-truth JSON.

Layout written by :func:`write_study`::

    DIR/dicom/IM0001.dcm ...     one CT Image Storage file per slice (or random names with shuffle_names)
    DIR/volume.nii.gz            int16 HU, RAS+ affine matching the DICOM geometry
    DIR/ground_truth.json        schema "dvt-edge/ct-phantom-gt@1" (slice indices in position-sorted order)

Identifiers are synthetic and non-identifying: PatientName "PHANTOM^CT", PatientID "PHANTOM-<seed>"; UIDs are
derived deterministically from the seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.ct.study import Study

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
GT_SCHEMA = "dvt-edge/ct-phantom-gt@1"


def _uid(seed: int, what: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[f"dvt-edge-phantom-{seed}-{what}"])


def ground_truth(study: Study) -> dict:
    """The ground truth of ``study`` as a JSON-ready dict (boxes on the original pixel grid, x1/y1 exclusive)."""
    return {
        "schema": GT_SCHEMA,
        "note": "synthetic phantom, not for diagnostic use",
        "seed": study.seed,
        "n_slices": int(len(study.hu)),
        "shape": [int(study.hu.shape[1]), int(study.hu.shape[2])],
        "pixel_spacing_mm": [float(v) for v in study.pixel_spacing_mm],
        "thickness_mm": float(study.thickness_mm),
        "positions_mm": [round(float(p), 4) for p in study.positions_mm],
        "index_order": "ascending position along the slice normal (0 = most caudal)",
        "box_format": "[x0, y0, x1, y1] original pixels, x1/y1 exclusive",
        "thrombi": [t.to_json() for t in study.thrombi],
        "mimics": [m.to_json() for m in study.mimics],
    }


def write_dicom_series(study: Study, out_dir: str | Path, *, pixel_dtype: str | None = None,
                       shuffle_names: bool = False) -> list[Path]:
    """One CT Image Storage file per slice. pixel_dtype "int16" (intercept 0) or "uint16" (intercept -1024);
    default alternates with the seed so readers see both. Instance 1 is the most cranial slice (acquisition order).
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = pixel_dtype or ("uint16" if study.seed % 2 == 0 else "int16")
    intercept = -1024.0 if dtype == "uint16" else 0.0
    n, h, w = study.hu.shape
    ps_r, ps_c = study.pixel_spacing_mm
    x0, y0 = (0.5 - w / 2) * ps_c, (0.5 - h / 2) * ps_r  # centre of the top-left pixel (LPS mm)
    study_uid, series_uid, for_uid = (_uid(study.seed, k) for k in ("study", "series", "for"))
    names = [f"IM{i + 1:04d}.dcm" for i in range(n)]
    if shuffle_names:
        rng = np.random.default_rng([study.seed, 7])
        names = [f"{rng.integers(0, 2**48):012x}.dcm" for _ in range(n)]
    paths = []
    for idx in range(n):
        instance = n - idx  # index 0 is the most caudal slice; the scan runs cranio-caudal
        sop_uid = _uid(study.seed, f"sop-{idx}")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop_uid
        ds.Modality = "CT"
        ds.PatientName, ds.PatientID = "PHANTOM^CT", f"PHANTOM-{study.seed}"
        ds.StudyDescription = "Synthetic CT venography phantom - not for diagnostic use"
        ds.SeriesDescription = "Venous phase (synthetic)"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        ds.SeriesNumber, ds.InstanceNumber = 1, instance
        ds.ImagePositionPatient = [round(x0, 4), round(y0, 4), round(float(study.positions_mm[idx]), 4)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = round(float(study.positions_mm[idx]), 4)
        ds.PixelSpacing = [round(ps_r, 6), round(ps_c, 6)]
        ds.SliceThickness = study.thickness_mm
        ds.Rows, ds.Columns = h, w
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if dtype == "int16" else 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = intercept, 1.0, "HU"
        ds.WindowCenter, ds.WindowWidth = 140, 400
        stored = np.rint(study.hu[idx] - intercept)
        info = np.iinfo(dtype)
        ds.PixelData = np.clip(stored, info.min, info.max).astype(dtype).tobytes()
        path = out_dir / names[idx]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def nifti_affine(study: Study) -> np.ndarray:
    """RAS+ affine for data indexed [column, row, slice] (slices in ascending position)."""
    n, h, w = study.hu.shape
    ps_r, ps_c = study.pixel_spacing_mm
    dz = float(study.positions_mm[1] - study.positions_mm[0]) if n > 1 else study.thickness_mm
    x0, y0 = (0.5 - w / 2) * ps_c, (0.5 - h / 2) * ps_r
    aff = np.eye(4)
    aff[:3, :3] = np.diag([-ps_c, -ps_r, dz])  # LPS -> RAS flips x and y
    aff[:3, 3] = [-x0, -y0, float(study.positions_mm[0])]
    return aff


def write_nifti(study: Study, path: str | Path) -> Path:
    """int16 HU volume (slope 1, intercept 0) with the RAS+ affine of :func:`nifti_affine`."""
    import nibabel as nib

    data = np.clip(np.rint(study.hu), -32768, 32767).astype(np.int16).transpose(2, 1, 0)  # -> [col, row, slice]
    img = nib.Nifti1Image(data, nifti_affine(study))
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"DVT Edge CT phantom - not for diagnostic use"
    path = Path(path)
    nib.save(img, str(path))
    return path


def write_study(study: Study, out_dir: str | Path, *, nifti: bool = True, shuffle_names: bool = False) -> Path:
    """Write the DICOM series, optionally the NIfTI volume, and ground_truth.json under ``out_dir``."""
    out_dir = Path(out_dir)
    write_dicom_series(study, out_dir / "dicom", shuffle_names=shuffle_names)
    if nifti:
        write_nifti(study, out_dir / "volume.nii.gz")
    (out_dir / "ground_truth.json").write_text(json.dumps(ground_truth(study), indent=1) + "\n")
    return out_dir
