"""The CT scan job, composed in one place: input -> slice source, detector, slice loop -> report and key images.

Used by ``dvt-edge ct scan`` / ``ct watch`` / ``ct listen`` / ``ct batch`` and the web UI, so they all run and
report the same thing. Nothing here prints: messages go to the ``log`` / ``warn`` callables the caller passes.

The detector is opened through ONE injection point, :func:`open_detector`, which calls the installed
:data:`DetectorFactory` (the real one, :func:`open_model_detector`, unless a test installed a double with
:func:`use_detector_factory`). It returns a :class:`DetectorHandle`: the detector with what the report says
about it, closed by the caller (a context manager).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from edge.ct.detector import ModelDetector, SliceDetector, default_model_path
from edge.errors import InputError, ModelError
from edge.notice import NOTICE


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


@dataclass(frozen=True)
class DetectorOptions:
    """Which detector to open: model file (None: the packaged ctdet-k3), runtime, score threshold, and the
    vessel-lumen stage (``edge.ct.lumen``: True / False, None = as the model spec says)."""

    model: Path | None = None
    backend: str = "auto"
    score_threshold: float | None = None
    lumen: bool | None = None
    threads: int | None = None  # intra-op threads of the runtime (None: its default)


@dataclass
class DetectorHandle:
    """An open detector with what the report says about it. Close it (or use ``with``) when done."""

    detector: SliceDetector
    backend: dict = field(default_factory=dict)  # {"name", "choice", "reason"}: the report's backend block
    model: dict = field(default_factory=dict)  # {"name", "file"}: the report's model block
    closed: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close = getattr(getattr(self.detector, "backend", None), "close", None)  # a ModelDetector owns its backend
        if close:
            close()

    def __enter__(self) -> "DetectorHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


DetectorFactory = Callable[[DetectorOptions], DetectorHandle]


def open_model_detector(options: DetectorOptions) -> DetectorHandle:
    """The trained detector (:class:`edge.ct.detector.ModelDetector`) on the chosen backend.
    ModelError when the model or its spec is missing."""
    from edge.backends import open_backend
    from edge.ct.lumen import LumenParams
    from edge.spec import load_spec

    model = options.model
    path = Path(model) if model else default_model_path()
    if not path.is_file():
        hint = "pass --model PATH" if model else "the CT detector is not installed; train/export it or pass --model PATH"
        raise ModelError(f"{path}: model not found ({hint})")
    spec = load_spec(path)
    be, choice = open_backend(path, options.backend, threads=options.threads)
    try:
        lp = LumenParams.from_spec(spec)
        if options.lumen is not None:
            block = (spec.extra or {}).get("lumen")
            lp = replace(LumenParams.from_dict(block) if isinstance(block, dict) else LumenParams(),
                         enabled=bool(options.lumen))
        detector = ModelDetector(be, spec, options.score_threshold, lumen=lp)
    except Exception:
        be.close()
        raise
    return DetectorHandle(detector, {"name": be.name, "choice": choice.name, "reason": choice.reason},
                          {"name": spec.name, "file": path.name})


_factory: DetectorFactory = open_model_detector


def open_detector(options: DetectorOptions | None = None) -> DetectorHandle:
    """The one place every CT command and the UI open their detector (see the module doc)."""
    return _factory(options or DetectorOptions())


@contextmanager
def use_detector_factory(factory: DetectorFactory) -> Iterator[None]:
    """Install ``factory`` for :func:`open_detector` inside the block (tests: a deterministic double)."""
    global _factory
    previous, _factory = _factory, factory
    try:
        yield
    finally:
        _factory = previous


def detect_series(source, handle: DetectorHandle, kind: str, *, k: int | None = None, out: Path | None = None,
                  json_path: Path | None = None, on_finding=None, log: Callable[[str], None] = print,
                  warn: Callable[[str], None] = print):
    """``ct scan`` / ``ct watch`` / the UI: the slice loop over ``source`` with the handle's detector, then the
    report, key images and JSON (:func:`finish_report`). ``k`` defaults to the detector's. Returns
    (ScanResult, report)."""
    from edge.ct.loop import run_slice_loop
    from edge.ct.ring import check_k

    k = check_k(k if k is not None else handle.detector.k)
    result = run_slice_loop(source, handle.detector, k=k, on_finding=on_finding)
    return result, finish_report(result, kind, handle.backend, handle.model, out, json_path, log=log, warn=warn)


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
    from edge.atomic import write_json
    from edge.ct.report import build_report, redact, write_key_images

    clear_outputs(out, None)
    images = write_key_images(result, out) if out is not None and result.findings else []
    report = build_report(result, input_kind=kind, backend=backend, model=model, key_images=images)
    if out is not None:
        write_json(Path(out) / "report.json", report, indent=2, parents=True)
    if json_path is not None:
        write_json(json_path, report, indent=2, parents=True)
    for w in result.warnings:
        warn(f"warning: {redact(w)}")
    if not report.get("complete", True):
        warn("INCOMPLETE: slices of this series are missing or were skipped (see the warnings); the findings "
             "cover only the slices read")
    t = result.timing
    log(f"{result.slices} slices, {len(result.findings)} candidate(s), {len(result.suppressed)} suppressed streak(s), "
        f"{t['slices_per_s']} slices/s, backend {backend.get('name') if backend else '?'} - {NOTICE}")
    return report
