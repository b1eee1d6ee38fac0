"""Read a CT volume from NIfTI (.nii / .nii.gz) as axial CTSlices, with the DICOM reader's conventions.

Orientation handling: nibabel's ``io_orientation(affine)`` tells which voxel axis runs closest to each
world axis (RAS+). The voxel axis closest to S (head) is the slice axis; the other two are the in-plane
axes. Each slice is laid out like a standard axial DICOM image (LPS: columns run towards the patient's
left, rows towards posterior, i.e. radiological view) by transposing/flipping the in-plane axes, and slices
are ordered by ascending position along the head direction, exactly like the DICOM reader sorts by
ImagePositionPatient . normal (index 0 = most inferior). Only permutations and flips are undone: an
oblique affine is used as its closest axis-aligned orientation, with a warning. Pixel spacing comes from
the affine's column norms, so it is in mm whatever the header's xyzt units claim.

Values are assumed to be HU (dcm2niix and TotalSegmentator write HU; nibabel applies scl_slope/inter).
A volume whose minimum is above -500 does not look like CT with air in it: warned, not refused.
Slices are read lazily through nibabel's array proxy (one slice at a time for .nii; .nii.gz is
decompressed by nibabel as needed), so a whole-leg volume is never converted to float64 at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from edge.ct.types import CTSlice
from edge.errors import InputError


def is_nifti(path: str | os.PathLike) -> bool:
    name = str(path).lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


class NiftiVolume:
    """A NIfTI CT volume as a position-ordered sequence of axial CTSlices (see module doc)."""

    def __init__(self, path: str | os.PathLike):
        try:
            import nibabel as nib
            from nibabel.orientations import io_orientation
        except ImportError as exc:
            raise InputError(f"{path}: reading NIfTI needs nibabel: pip install nibabel") from exc
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        try:
            img = nib.load(str(self.path))
            shape = img.shape
        except Exception as exc:  # nibabel raises ImageFileError, EOFError, zlib errors...
            raise InputError(f"{self.path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) != 3:
            raise InputError(f"{self.path}: expected a 3D volume, got shape {img.shape}")
        self._img = img
        self.warnings: list[str] = []
        aff = img.affine
        ornt = io_orientation(aff)  # per voxel axis: (world axis 0=R 1=A 2=S, +1/-1)
        world_to_vox = {int(w): v for v, (w, _) in enumerate(ornt)}
        self._ax_x, self._ax_y, self._ax_s = world_to_vox[0], world_to_vox[1], world_to_vox[2]
        self._flip_cols = ornt[self._ax_x, 1] > 0  # voxel axis runs towards R: DICOM columns run towards L
        self._flip_rows = ornt[self._ax_y, 1] > 0  # voxel axis runs towards A: DICOM rows run towards P
        zooms = np.linalg.norm(aff[:3, :3], axis=0)
        self.pixel_spacing_mm = (float(zooms[self._ax_y]), float(zooms[self._ax_x]))
        self.slice_spacing_mm = float(zooms[self._ax_s])
        cos = np.abs(aff[:3, :3] / zooms)[[0, 1, 2], [self._ax_x, self._ax_y, self._ax_s]]
        if np.min(cos) < 0.999:
            self.warnings.append(f"{self.path.name}: oblique affine, slices taken along the closest axis")
        n = shape[self._ax_s]
        # world position of each slice's first voxel, projected on the slice axis direction (pointing to S)
        axis = aff[:3, self._ax_s] / zooms[self._ax_s]
        axis = axis if axis[2] >= 0 else -axis
        vox = np.zeros((n, 4))
        vox[:, self._ax_s] = np.arange(n)
        vox[:, 3] = 1
        pos = (aff @ vox.T)[:3].T @ axis
        self._order = np.argsort(pos, kind="stable")  # position index -> voxel slice index
        self._pos = pos[self._order]
        self.shape = (shape[self._ax_y], shape[self._ax_x])
        probe = self._voxel_slice(int(self._order[len(self._order) // 2]))
        if float(probe.min()) > -500:
            self.warnings.append(f"{self.path.name}: minimum value {probe.min():.0f} > -500 on the middle slice: "
                                 "values may not be HU (assumed HU)")

    def __len__(self) -> int:
        return len(self._order)

    def _voxel_slice(self, k: int) -> np.ndarray:
        sl = [slice(None)] * 3
        sl[self._ax_s] = k
        try:
            plane = np.asarray(self._img.dataobj[tuple(sl) + ((0,) if len(self._img.shape) == 4 else ())])
        except Exception as exc:  # truncated .nii.gz fails here
            raise InputError(f"{self.path}: cannot read slice {k} ({type(exc).__name__}: {exc})") from exc
        # the plane keeps the two remaining voxel axes in their order: put the y (rows) axis first
        x_first = sorted({0, 1, 2} - {self._ax_s})[0] == self._ax_x
        img = plane.T if x_first else plane  # now (y, x)
        if self._flip_rows:
            img = img[::-1, :]
        if self._flip_cols:
            img = img[:, ::-1]
        return np.ascontiguousarray(img, dtype=np.float32)

    def read_slice(self, i: int) -> CTSlice:
        """Slice i in position order (0 = most inferior), HU float32 (rows, cols), a new array."""
        return CTSlice(hu=self._voxel_slice(int(self._order[i])), index=i, position_mm=float(self._pos[i]),
                       pixel_spacing_mm=self.pixel_spacing_mm, thickness_mm=self.slice_spacing_mm,
                       meta={"file": self.path.name})

    def __iter__(self) -> Iterator[CTSlice]:
        for i in range(len(self)):
            yield self.read_slice(i)


def read_nifti(path: str | os.PathLike) -> tuple[list[CTSlice], NiftiVolume]:
    vol = NiftiVolume(path)
    return list(vol), vol
