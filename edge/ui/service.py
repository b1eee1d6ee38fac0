"""What the web UI does, without the web: the job behind each button as a plain method that takes file paths
(or frames) and returns paths, tables and text. Tested without Gradio; :mod:`edge.ui.app` only wires it up.

- :meth:`UiService.analyze_clip`: an ultrasound clip (video or DICOM cine) -> the same job as
  ``dvt-edge us run`` (:func:`edge.jobs.us.run_us_job`), with the overlay recorded as WebM (VP8), which
  browsers play (the MP4 the command line writes is MPEG-4 Part 2 in pip's OpenCV, which they do not).
- :meth:`UiService.live_session`: frames pushed one at a time (a webcam, or a capture card that the browser
  sees as one) -> overlay frame + live verdict, through the same :class:`UltrasoundPipeline`.
- :meth:`UiService.analyze_ct`: uploaded DICOM files (or a .zip of them, or a NIfTI volume) -> the same job
  as ``dvt-edge ct scan`` (:mod:`edge.jobs.ct`): findings table, key images, report.json.

Every user-caused failure is a :class:`DvtEdgeError` whose message names the input and says what to do; the
app shows it as an error toast. Outputs go to per-request folders under ``workdir``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import cv2
import numpy as np

from edge.errors import DvtEdgeError, InputError
from edge.jobs.ct import DetectorOptions, open_detector
from edge.notice import NOTICE
from edge.sinks.overlay import VERDICT_TEXT
from edge.sinks.report import processing_ms
from edge.sources.base import Frame
from edge.us.types import VeinStatus

#: limits on an uploaded .zip (a CT series of 2000 slices of 512x512 int16 is ~1 GiB uncompressed)
ZIP_MAX_BYTES = 4 << 30
ZIP_MAX_MEMBERS = 20000
KEEP_JOBS = 50  # output folders kept under the work folder (older ones are removed)


@dataclass(frozen=True)
class UsAnalysis:
    summary: str  # Markdown: verdict, compressibility, reason, frames, latency, backend
    verdict: str  # compressible / non_compressible / indeterminate
    video: Path | None  # overlay video (WebM)
    curve: Path | None  # vein-area curve (PNG)
    report: Path | None  # JSON report (schema dvt-edge/us-report@1)


@dataclass(frozen=True)
class CtAnalysis:
    summary: str  # Markdown: slices, candidates, speed, warnings
    findings: list[list]  # one row per finding: #, slices, peak, score, box px, size mm
    key_images: list[Path]
    report: Path  # report.json (schema dvt-edge/ct-scan@1)


def us_summary(report: dict) -> str:
    """Markdown for a clip's report. The time shown is processing per frame (sum of the stage medians): a
    clip is read as fast as it decodes, so frame age would count the wait in the queue, not the speed."""
    comp = report.get("compressibility")
    comp_s = "n/a" if comp is None else f"{comp:.0%}"
    warn = "".join(f"**Warning:** {w}\n\n" for w in report.get("warnings", []))
    if not report.get("complete", True):
        warn = "**INCOMPLETE: the result covers only part of the input.**\n\n" + warn
    return (f"### {VERDICT_TEXT.get(report['verdict'], report['verdict'])}\n\n{warn}"
            f"compressibility **{comp_s}** - {report['reason']}\n\n"
            f"{_areas(report)}\n\n"
            f"{report['frames']} frames processed, {report['dropped_frames']} dropped; processing "
            f"{processing_ms(report):.1f} ms per frame (median); backend `{report['backend']}`\n\n*{NOTICE}*")


def _areas(report: dict) -> str:
    from edge.sources.calibration import areas_line

    return areas_line(report)


def live_status(result) -> str:
    v = result.verdict
    comp = "n/a" if v.compressibility is None else f"{v.compressibility:.0%}"
    state = result.track.vein_status if result.track is not None else VeinStatus.SEARCHING
    total = sum(result.stage_ms.values())
    return (f"### {VERDICT_TEXT.get(v.verdict, v.verdict)} (provisional)\n\n"
            f"compressibility **{comp}** - {v.reason}\n\nvein {state}; frame {result.index}; "
            f"processing {total:.1f} ms\n\n*{NOTICE}*")


class _LockedBackend:
    """One backend shared by the live sessions of all browser tabs: ``infer`` calls are serialised (a
    TensorRT execution context is not thread-safe; ONNX Runtime would be, but one model-sized call at a
    time is also what two CPU cores can give)."""

    def __init__(self, backend):
        self._backend, self._lock = backend, threading.Lock()
        self.name = backend.name

    def infer(self, inputs: dict) -> dict:
        with self._lock:
            return self._backend.infer(inputs)

    def close(self) -> None:
        self._backend.close()


class LiveUs:
    """One live compression session (one browser tab): push RGB frames, get the overlay and the status."""

    def __init__(self, backend, spec, config=None):
        from edge.sinks.history import CurveHistory
        from edge.us.pipeline import UltrasoundPipeline

        self._make = lambda: UltrasoundPipeline(backend, spec, config)
        self.pipeline = self._make()
        self.history = CurveHistory()
        self.frames = 0

    def reset(self) -> None:
        """Start over: a new baseline, tracker and curve (a new compression, or the probe moved)."""
        from edge.sinks.history import CurveHistory

        self.pipeline, self.history, self.frames = self._make(), CurveHistory(), 0

    def feed(self, image: np.ndarray, t: float | None = None) -> tuple[np.ndarray, str]:
        """``image``: HxWx3 uint8 RGB (what a browser webcam gives) or HxW grey. ``t``: capture time in
        seconds (default: now). Returns (overlay as HxWx3 uint8 RGB, Markdown status)."""
        from edge.sinks.overlay import render_overlay

        if image is None or not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise InputError("live frame: expected an image (HxW or HxWx3 uint8); is the camera on?")
        img = image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
        if img.ndim == 3:
            img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
        now = time.monotonic()
        result = self.pipeline.process(Frame(image=img, index=self.frames, t_capture=now,
                                              t_media=t if t is not None else now))
        self.frames += 1
        self.history.append(result)
        return cv2.cvtColor(render_overlay(result, self.history), cv2.COLOR_BGR2RGB), live_status(result)


class UiService:
    """The jobs behind the UI. Models default to the packaged ones; ``backend`` as on the command line."""

    def __init__(self, *, us_model: Path | None = None, ct_model: Path | None = None, backend: str = "auto",
                 threads: int | None = None, workdir: Path | None = None):
        """The CT detector is opened on first use through ``edge.jobs.ct.open_detector`` (the model at
        ``ct_model``, the packaged ctdet-k3 when None, on ``backend``); tests install a stand-in there with
        ``edge.jobs.ct.use_detector_factory``."""
        from edge.assets import us_model as packaged_us_model

        self.us_model = Path(us_model) if us_model else packaged_us_model()
        self.ct_model = Path(ct_model) if ct_model else None
        self.backend, self.threads = backend, threads
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dvt-edge-ui-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._live_backend = None
        self._ct = None  # edge.jobs.ct.DetectorHandle, opened on first use
        self._lock = threading.Lock()  # opening models; one CT scan at a time (the detector has per-series state)
        self.log: deque[str] = deque(maxlen=200)  # backend choices, codec notes: bounded on a long-running server

    def _job_dir(self, kind: str) -> Path:
        """A new output folder; the oldest are removed beyond :data:`KEEP_JOBS`, so a server that runs for
        weeks does not fill its disk (the browser already has the files it was sent)."""
        jobs = sorted(p for p in self.workdir.iterdir() if p.is_dir())  # names start with the creation time
        for old in jobs[:max(0, len(jobs) - KEEP_JOBS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{time.time_ns():020d}-{kind}-", dir=self.workdir))

    # -- ultrasound ---------------------------------------------------------------------------------------

    def analyze_clip(self, clip: str | Path | None) -> UsAnalysis:
        """Run the compression check on a clip (a video file or a DICOM cine)."""
        from edge.jobs.us import run_us_job

        if not clip:
            raise InputError("no clip: upload a video (.mp4, .avi, .mov, ...) or a DICOM cine, "
                             "or pick one of the examples")
        out = self._job_dir("us")
        res = run_us_job(str(clip), self.us_model, backend=self.backend, out_dir=out, stem="compression",
                         threads=self.threads, progress=False, video_format="webm", log=self.log.append)
        return UsAnalysis(us_summary(res.report), res.report["verdict"], res.video, res.curve, res.json)

    def live_session(self) -> LiveUs:
        """A new live session; all sessions share one backend, opened on the first call."""
        from edge.backends.select import open_backend
        from edge.spec import load_spec
        from edge.us.int8_frames import calibration_inputs

        with self._lock:
            if self._live_backend is None:
                be, choice = open_backend(self.us_model, self.backend, threads=self.threads,
                                          calibration=calibration_inputs)
                self.log.append(f"live backend: {choice.name} ({choice.reason})")
                self._live_backend = _LockedBackend(be)
        return LiveUs(self._live_backend, load_spec(self.us_model))

    # -- CT -----------------------------------------------------------------------------------------------

    def analyze_ct(self, files: Sequence[str | Path] | str | Path | None, series_uid: str | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> CtAnalysis:
        """Detect DVT candidates in uploaded CT: the DICOM files of a series, a .zip of them, or one NIfTI.

        progress(slices done, total or None): called once per slice (total = files uploaded, an upper bound)."""
        from edge.jobs.ct import detect_series, open_input

        job = self._job_dir("ct")
        staged = job / "input"
        try:
            path = stage_ct_upload(files, staged)
            stream, kind = open_input(path, series_uid or None)
            if progress is not None:
                total = sum(1 for p in path.iterdir() if p.is_file()) if path.is_dir() else None
                stream = _Counted(stream, lambda n: progress(n, total))
            notes: list[str] = []
            with self._lock:
                if self._ct is None:
                    self._ct = open_detector(DetectorOptions(self.ct_model, self.backend))
                _, report = detect_series(stream, self._ct, kind, out=job / "out", log=notes.append,
                                          warn=notes.append)
        except DvtEdgeError as exc:  # name the upload, not this server's staging folder
            shutil.rmtree(staged, ignore_errors=True)
            raise type(exc)(str(exc).replace(str(staged), "upload")) from None
        shutil.rmtree(staged, ignore_errors=True)  # the uploaded copy; the report keeps no identifiers
        rows = [[j, f"{f['slice_start']}-{f['slice_end']}", f["peak_slice"], round(f["score"], 2),
                 "[" + ", ".join(f"{v:.0f}" for v in f["box"]) + "]",
                 f"{f['box_mm'][2] - f['box_mm'][0]:.1f} x {f['box_mm'][3] - f['box_mm'][1]:.1f}"]
                for j, f in enumerate(report["findings"], start=1)]
        n = len(rows)
        head = (f"### {n} DVT candidate{'s' if n != 1 else ''}" if n else "### No DVT candidate")
        lines = [head, "", notes[-1] if notes else "", ""]
        lines += [f"- {w}" for w in notes[:-1]]
        lines += ["", f"*{NOTICE} Slice indices count from 0 in position order along the slice normal.*"]
        return CtAnalysis("\n".join(lines), rows, [job / "out" / name for name in report["key_images"]],
                          job / "out" / "report.json")

    def close(self) -> None:
        with self._lock:
            if self._live_backend is not None:
                self._live_backend.close()
                self._live_backend = None
            if self._ct is not None:
                self._ct.close()
                self._ct = None


class _Counted:
    """A slice stream that reports each slice as it passes; everything else is the stream's own."""

    def __init__(self, stream, tick: Callable[[int], None]):
        self._stream, self._tick = stream, tick

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # direction, warnings, series_hash: read by run_slice_loop at the end

    def __iter__(self):
        for n, s in enumerate(self._stream, start=1):
            self._tick(n)
            yield s


def stage_ct_upload(files: Sequence[str | Path] | str | Path | None, dest: Path) -> Path:
    """Turn an upload into what ``ct scan`` reads: a NIfTI file's path, or a folder of DICOM files.

    One ``.nii``/``.nii.gz`` -> its path. One ``.zip`` -> extracted to ``dest`` (members with absolute
    paths or ``..`` are refused, as are archives over :data:`ZIP_MAX_BYTES` / :data:`ZIP_MAX_MEMBERS`).
    Otherwise the files are copied into ``dest`` (numbered, so equal names from different folders do not
    collide); the series reader then checks them (non-DICOM, two series, gaps are reported, not hidden).
    """
    from edge.ct.nifti import is_nifti

    if files is None or files == "" or (not isinstance(files, (str, Path)) and len(files) == 0):
        raise InputError("no CT files: upload the DICOM files of one series (or a .zip of them), "
                         "or one NIfTI volume (.nii / .nii.gz)")
    paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p.name}: uploaded file is missing; upload it again")
    if len(paths) == 1 and is_nifti(paths[0]):
        return paths[0]
    if any(is_nifti(p) for p in paths):
        raise InputError("a NIfTI volume (.nii/.nii.gz) was uploaded together with other files: "
                         "upload one volume, or the DICOM files of one series")
    dest.mkdir(parents=True, exist_ok=True)
    if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
        _extract_zip(paths[0], dest)
        return dest
    if any(p.suffix.lower() == ".zip" for p in paths):
        raise InputError("a .zip was uploaded together with other files: upload one .zip, or the DICOM files")
    for j, p in enumerate(paths):
        shutil.copyfile(p, dest / f"{j:05d}_{p.name}")
    return dest


def _extract_zip(path: Path, dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path.name}: not a readable .zip ({exc}); zip the series folder again") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if not members:
            raise InputError(f"{path.name}: the .zip holds no files")
        if len(members) > ZIP_MAX_MEMBERS or sum(m.file_size for m in members) > ZIP_MAX_BYTES:
            raise InputError(f"{path.name}: the .zip is larger than this UI accepts "
                             f"({ZIP_MAX_MEMBERS} files / {ZIP_MAX_BYTES >> 30} GiB); use 'dvt-edge ct scan FOLDER'")
        for j, m in enumerate(members):
            name = PurePosixPath(m.filename)
            if name.is_absolute() or ".." in name.parts:
                raise InputError(f"{path.name}: member '{m.filename}' points outside the archive; refused")
            if name.name.startswith(".") or "__MACOSX" in name.parts:
                continue  # Finder's resource forks and hidden files are not slices
            with zf.open(m) as src, open(dest / f"{j:05d}_{name.name}", "wb") as dst:
                shutil.copyfileobj(src, dst)
