"""Compose the CT scan job in one place: input -> slice stream, detector, pipeline -> report and key images.

Used by ``dvt-edge ct scan`` / ``ct listen`` and the web UI, so they all run and report the same thing.
Nothing here prints: messages go to the ``log`` / ``warn`` callables the caller passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edge.errors import InputError

NOTICE = "Research software: not for diagnostic use."


def open_input(path: Path, series_uid: str | None = None, decode_workers: int | None = None):
    """(SliceStream, input kind) for a DICOM folder or a NIfTI file; InputError naming the path otherwise.

    decode_workers: DICOM decode threads ahead of inference (None = the default; 0 = inline); see
    ``edge.ct.dicom_series.CTSeries.prefetch``."""
    from edge.ct.nifti import NiftiVolume, is_nifti
    from edge.ct.stream import SliceStream, iter_folder

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return iter_folder(path, series_uid, decode_workers=decode_workers), "dicom"
    if is_nifti(path):
        vol = NiftiVolume(path)
        return SliceStream(iter(vol), warnings=list(vol.warnings), presorted=True), "nifti"
    raise InputError(f"{path}: not a folder or a .nii/.nii.gz file (pass the folder holding the DICOM series)")


def open_detector(model: str | Path | None, backend: str = "auto", score_threshold: float | None = None,
                  lumen: bool | None = None):
    """(detector, backend info, model info) for the model at ``model`` (None: the packaged ctdet-k3).

    lumen: the vessel-lumen stage (``edge.ct.lumen``) on / off; None = as the model spec says."""
    from edge.ct.pipeline import open_model_detector

    detector, choice, path = open_model_detector(model, backend, score_threshold, lumen=lumen)
    return detector, {"name": detector.backend.name, "choice": choice.name, "reason": choice.reason}, \
        {"name": detector.spec.name, "file": path.name}


def close_detector(detector) -> None:
    close = getattr(getattr(detector, "backend", None), "close", None)
    if close:
        close()


def clear_outputs(out: Path | None, json_path: Path | None) -> None:
    """Remove what a previous run wrote where this run writes (key images, report.json, the --json file), so
    a run that fails half-way never leaves an older run's outputs looking like its own."""
    stale = [Path(json_path)] if json_path is not None else []
    if out is not None and Path(out).is_dir():
        stale += [*Path(out).glob("finding-*.png"), Path(out) / "report.json"]
    for old in stale:
        if old.is_file():
            old.unlink()


def finish_report(result, kind: str, backend: dict | None, model: dict | None, out: Path | None,
                  json_path: Path | None, *, log: Callable[[str], None] = print,
                  warn: Callable[[str], None] = print) -> dict:
    """Build the report of ``result``; write key images and ``report.json`` to ``out`` and the report to
    ``json_path`` when given; log the warnings (redacted) and a one-line summary. Returns the report."""
    from edge.ct.report import build_report, redact, write_json, write_key_images

    clear_outputs(out, None)
    images = write_key_images(result, out) if out is not None and result.findings else []
    report = build_report(result, input_kind=kind, backend=backend, model=model, key_images=images)
    if out is not None:
        write_json(report, Path(out) / "report.json")
    if json_path is not None:
        write_json(report, json_path)
    for w in result.warnings:
        warn(f"warning: {redact(w)}")
    if not report.get("complete", True):
        warn("INCOMPLETE: slices of this series are missing or were skipped (see the warnings); the findings "
             "cover only the slices read")
    t = result.timing
    log(f"{result.slices} slices, {len(result.findings)} candidate(s), {len(result.suppressed)} suppressed streak(s), "
        f"{t['slices_per_s']} slices/s, backend {backend.get('name') if backend else '?'} - {NOTICE}")
    return report
