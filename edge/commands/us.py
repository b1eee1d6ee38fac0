"""``dvt-edge us run`` and ``dvt-edge us segment``: the bedside ultrasound commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.argtypes import positive_int
from edge.assets import us_model
from edge.atomic import write_bytes_atomic
from edge.backends.select import BACKEND_NAMES, open_backend
from edge.errors import ConfigError, InputError, OutputError
from edge.jobs.us import check_crop, run_us_job
from edge.notice import NOTICE
from edge.sinks.report import processing_ms
from edge.spec import load_spec
from edge.us.int8_frames import calibration_inputs
from edge.us.pipeline import UsConfig
from edge.us.postprocess import labels_from_logits
from edge.us.preprocess import Preprocessor, find_image_region, to_grey


def _mm_per_px(text: str) -> str:
    """argparse type of --mm-per-px: checked by the parser (one line), parsed again by the job."""
    from edge.sources.calibration import parse_mm_per_px

    try:
        parse_mm_per_px(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--mm-per-px ")) from None
    return text


def parse_crop(text: str | None):
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--crop '{text}': expected X,Y,W,H in screen pixels, e.g. 100,60,460,360") from exc
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise ConfigError(f"--crop '{text}': width and height must be > 0 and x, y >= 0")
    return x, y, w, h


def print_verdict(report: dict, label: str = "") -> None:
    comp = report.get("compressibility")
    comp_s = "n/a" if comp is None else f"{comp:.0%}"
    lat = report["latency_ms"]
    print(f"{label}verdict: {report['verdict'].upper()}  (compressibility {comp_s}; {report['reason']})")
    from edge.sources.calibration import areas_line

    print(f"{label}{areas_line(report)}")
    cfg = report.get("config", {})
    if cfg.get("pace") or cfg.get("live"):  # frames arrive in real time: their age is the latency
        timing = f"latency p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms"
    else:  # a file read as fast as it decodes: age counts the wait in the queue, so show the work per frame
        timing = f"processing {processing_ms(report):.1f} ms per frame (median; --pace gives live latency)"
    print(f"{label}frames: {report['frames']} processed, {report['dropped_frames']} dropped; {timing} "
          f"[{report['backend']}]")
    facts = report.get("input") or {}
    if facts.get("frames_expected"):
        print(f"{label}input: {facts['frames_read']} of {facts['frames_expected']} frames read"
              + (" (stopped by --max-frames)" if facts.get("stopped_by") == "max_frames" else ""))
    for w in report.get("warnings", []):
        print(f"{label}WARNING: {w}")
    if not report.get("complete", True):
        print(f"{label}INCOMPLETE: the result covers only part of the input")


def _sr_setup(args: argparse.Namespace, out: Path | None, json_path: Path | None):
    """Before any work, for ``--sr``/``--send-to``: the destination (parsed), the cine's header and where the
    SR goes (``<stem>.sr.dcm`` beside the JSON report). (None, None, None) when neither is asked for."""
    send_to = getattr(args, "send_to", None)
    if not (getattr(args, "sr", False) or send_to):
        return None, None, None
    from importlib.util import find_spec

    from edge.ct.send import Destination
    from edge.us.dicom_out import read_cine_header, sr_path_for

    dest = Destination.parse(send_to) if send_to else None
    missing = [m for m in ("highdicom", *(("pynetdicom",) if dest else ())) if find_spec(m) is None]
    if missing:
        raise ConfigError(f"--sr/--send-to need {' and '.join(missing)}: pip install \".[ct]\"")
    if not Path(args.source).is_file():
        raise InputError(f"--sr/--send-to: '{Path(args.source).name}' is not a file; the DICOM SR goes into the "
                          "study of a DICOM cine, so the source must be one")
    header = read_cine_header(args.source)
    return dest, header, sr_path_for(json_path or out / f"{args.stem}.json")


def _write_and_send_sr(report: dict, header, sr_path: Path, dest, ae_title: str) -> int:
    """Write the SR (only for a complete run) and send it; the exit code for what happened."""
    from edge.us.dicom_out import write_us_sr

    if not report.get("complete", True):
        print("sr: not written: the input ended early, and a partial result must not go into the study "
              "(the JSON report says complete: false)")
        return 0  # the caller exits with the input error
    write_us_sr(report, header, sr_path)
    print(f"sr: {sr_path} (DICOM SR in the cine's study, new series; unverified, research use only)")
    if dest is None:
        return 0
    from edge.ct.send import Sender

    # after the frame loop: the run's outputs are written and the verdict printed before any network wait
    sender = Sender(dest, calling_ae=ae_title, notice=lambda m: print(m, flush=True))
    try:
        sender.submit([sr_path], "us SR")
        sender.wait(300.0)  # 6 attempts with 2..32 s back-off, plus the association timeouts
    finally:
        left = sender.close()
    if left or not sender.outcomes or not sender.outcomes[0].sent:
        print(f"dvt-edge: error: the SR was not sent to {dest}; it stays in {sr_path}", file=sys.stderr)
        return OutputError.exit_code
    return 0


def run(args: argparse.Namespace) -> int:
    config = UsConfig(crop=parse_crop(args.crop))
    model = args.model or us_model()
    json_path = args.json
    out = args.out
    if out is None and json_path is None:
        out = Path("dvt-edge-out")
    from edge.sources.calibration import parse_mm_per_px

    dest, header, sr_path = _sr_setup(args, out, json_path)
    if sr_path is not None:
        sr_path.unlink(missing_ok=True)  # an older run's SR must not pass as this run's
    res = run_us_job(args.source, model, backend=args.backend, out_dir=out, json_path=json_path, config=config,
                     pace=args.pace, threads=args.threads, max_frames=args.max_frames, video=not args.no_video,
                     stem=args.stem, video_height=args.video_height,
                     mm_per_px=parse_mm_per_px(getattr(args, "mm_per_px", None)))
    print_verdict(res.report)
    for what, path in (("video", res.video), ("curve", res.curve), ("report", res.json)):
        if path:
            print(f"{what}: {path}")
    sr_code = 0
    if sr_path is not None and res.report is not None:
        sr_code = _write_and_send_sr(res.report, header, sr_path, dest, args.ae_title)
    print(NOTICE)
    if res.report is not None and not res.report.get("complete", True):
        # the outputs are written, but a truncated input must not pass as a finished run in a script
        print("dvt-edge: error: the input ended early (see the warning above); the report says complete: false",
              file=sys.stderr)
        return InputError.exit_code
    return sr_code


def check_images(images: list[Path], out: Path) -> None:
    """Before any work: ``--out`` is not a file, and no two inputs would write the same label file."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is an existing file, not a folder; name a folder for the label PNGs")
    seen: dict[str, Path] = {}
    for path in images:
        dest = _label_name(path)
        if dest in seen:
            raise ConfigError(f"'{seen[dest]}' and '{path}' would both be written to {out / dest}; "
                              "rename one, or segment them in separate runs with different --out folders")
        seen[dest] = path
        if not Path(path).is_file():
            raise InputError(f"{path}: image not found (no such file)")


def _label_name(path: Path) -> str:
    return f"{Path(path).stem}_labels.png"


def segment(args: argparse.Namespace) -> int:
    """One label PNG per image, same size as the input: 0 background, 1 artery, 2 vein."""
    crop = parse_crop(args.crop)
    check_images(args.images, args.out)
    greys = []
    for path in args.images:  # read and check every input before the model runs or anything is written
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise InputError(f"{path}: not a readable image (PNG, JPEG, BMP or TIFF expected)")
        if img.dtype != np.uint8:
            img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(img.max())))
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        grey = to_grey(img)
        check_crop(crop, (grey.shape[1], grey.shape[0]), str(path))
        greys.append(grey)
    model = args.model or us_model()
    spec = load_spec(model)
    backend, choice = open_backend(model, args.backend, threads=args.threads, calibration=calibration_inputs)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {args.out}: cannot create the folder: {exc.strerror or exc}") from exc
    for path, grey in zip(args.images, greys):
        region = crop or find_image_region(grey)
        pre = Preprocessor(spec, region=region)
        x_in, _ = pre(grey)
        labels = labels_from_logits(backend.infer({spec.input.name: x_in})[spec.outputs[0].name])
        x, y, w, h = region
        full = np.zeros(grey.shape, np.uint8)
        full[y:y + h, x:x + w] = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        dest = args.out / _label_name(path)
        ok, buf = cv2.imencode(".png", full)
        if not ok:
            raise OutputError(f"{dest}: cannot encode the label image")
        write_bytes_atomic(dest, buf.tobytes(), "the label image")
        counts = np.bincount(full.ravel(), minlength=3)
        print(f"{path} -> {dest}  (artery {counts[1]} px, vein {counts[2]} px)")
    print(f"backend: {choice.name}. {NOTICE}")
    return 0


def _stem(text: str) -> str:
    """argparse type of --stem: a plain file name (outputs stay inside --out)."""
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(f"'{text}' must be a plain file name without folders, e.g. scan1")
    return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=BACKEND_NAMES, help="inference runtime (default: auto)")
    p.add_argument("--model", type=Path, default=None, help="ONNX model with its .json spec (default: bundled lite)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU inference threads (default: ONNX Runtime's)")
    p.add_argument("--crop", default=None, metavar="X,Y,W,H", help="image region on the screen (default: detect)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("us", help="compression ultrasound: live verdict, segmentation")
    usub = p.add_subparsers(dest="us_command", metavar="ACTION", required=True)
    r = usub.add_parser("run", help="segment, track and judge a compression manoeuvre from a source")
    r.add_argument("source", help="video file, image folder, camera index or /dev/videoN, stream URL, DICOM cine")
    r.add_argument("--json", type=Path, default=None, help="write the JSON report here")
    r.add_argument("--out", type=Path, default=None, help="folder for the overlay MP4, curve PNG and JSON")
    r.add_argument("--stem", type=_stem, default="us", help="base name of the output files (default: us)")
    r.add_argument("--pace", action="store_true", help="play files at their frame rate (emulates a live probe)")
    r.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    r.add_argument("--mm-per-px", type=_mm_per_px, default=None, metavar="MM[,MM_Y]",
                   help="pixel size of the screen frame, for vein areas in mm² (default: a DICOM cine's "
                        "ultrasound regions, else pixels only)")
    r.add_argument("--no-video", action="store_true", help="do not write the overlay MP4")
    r.add_argument("--sr", action="store_true",
                   help="DICOM cine only: also write <stem>.sr.dcm beside the JSON, a DICOM SR of the result in "
                        "the cine's study (it carries the cine's patient identifiers)")
    r.add_argument("--send-to", default=None, metavar="AE@HOST:PORT",
                   help="send the SR (implies --sr) to this archive by C-STORE after the run, with retries")
    r.add_argument("--ae-title", default="DVTEDGE", help="calling AE title for --send-to (default: DVTEDGE)")
    r.add_argument("--video-height", type=positive_int, default=None, metavar="PX",
                   help="record the overlay video at this height (e.g. 720 for a 1080p source: cheaper to "
                        "draw and encode); default: the source's size")
    _common(r)
    r.set_defaults(func=run)
    s = usub.add_parser("segment", help="label PNGs (0 background, 1 artery, 2 vein) for still images")
    s.add_argument("images", nargs="+", type=Path)
    s.add_argument("--out", type=Path, required=True)
    _common(s)
    s.set_defaults(func=segment)
