"""``dvt-edge ct scan`` and ``dvt-edge ct listen``: the CT job composed from its parts, in one place.

scan:   PATH (a DICOM folder or a .nii/.nii.gz file) -> SliceStream -> run_slice_loop -> report/key images.
listen: C-STORE receiver -> per qualifying series: edge.jobs.ct_serve (pipeline -> report, key images, SR, send).

Findings are printed live, one line each, as soon as the linker closes them. Errors are DvtEdgeError
subclasses (one line naming the input); the input is opened before the model, so a wrong path is reported
as such even where the model is not installed. No patient identifiers are printed: series by hashed UID.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.argtypes import positive_int, positive_seconds, probability
from edge.jobs.ct import DetectorOptions
from edge.notice import NOTICE


def register(subparsers: argparse._SubParsersAction) -> None:
    from edge.backends import BACKEND_NAMES

    ct = subparsers.add_parser("ct", help="CT venography: DVT candidates from a slice stream (not for diagnostic use)",
                               description="CT venography DVT candidate detection. " + NOTICE)
    sub = ct.add_subparsers(dest="ct_command", metavar="CT_COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", type=Path, help="folder for key images (PNG) and report.json")
        p.add_argument("--backend", default="auto", choices=BACKEND_NAMES, help="inference runtime (default auto)")
        p.add_argument("--model", type=Path, help="detector .onnx with its .json spec (default: the packaged ctdet-k3)")
        p.add_argument("--k", type=int, default=None, help="slices per window: 1, 3 or 11 (default: the model's)")
        p.add_argument("--score-threshold", type=probability, default=None,
                       help="minimum detection score, 0 to 1 (default: the model's)")
        p.add_argument("--series-uid", default=None, help="series to process: full SeriesInstanceUID or the short hash")
        p.add_argument("--lumen", choices=["spec", "on", "off"], default="spec",
                       help="vessel-lumen candidate stage (edge/ct/lumen.py): as the model spec says (default), on or off")

    scan = sub.add_parser("scan", help="detect DVT candidates in a DICOM folder or a NIfTI file",
                          description="Detect DVT candidates in a CT series. " + NOTICE)
    scan.add_argument("path", type=Path, help="a folder of DICOM slices, or a .nii/.nii.gz file")
    scan.add_argument("--json", type=Path, help="write the report to this JSON file")
    scan.add_argument("--decode-workers", type=_workers, default=None, metavar="N",
                      help="threads decoding DICOM slices ahead of inference, 0-16 (0 = decode inline; default "
                           "2, measured fastest on 2 cores: benchmarks/results/ct-decode.md)")
    common(scan)
    scan.set_defaults(func=cmd_scan)

    watch = sub.add_parser("watch", help="detect DVT candidates while a folder is being filled with DICOM slices",
                           description="Watch a folder a scanner or a copy writes DICOM slices into; each slice is "
                                       "taken once its size is stable and detection runs while the series "
                                       "arrives. Ends after --idle-timeout seconds without a new file or when "
                                       "--expected slices were taken. " + NOTICE)
    watch.add_argument("path", type=Path, help="the folder the slices are written into")
    watch.add_argument("--json", type=Path, help="write the report to this JSON file")
    watch.add_argument("--idle-timeout", type=positive_seconds, default=10.0, metavar="S",
                       help="stop after this many seconds without a new or growing file (default 10)")
    watch.add_argument("--expected", type=positive_int, default=None, metavar="N",
                       help="stop once this many files were taken (default: wait for the idle timeout)")
    common(watch)
    watch.set_defaults(func=cmd_watch)

    listen = sub.add_parser("listen", help="receive CT slices by DICOM C-STORE and detect while they arrive",
                            description="DICOM C-STORE receiver with live DVT candidate detection. " + NOTICE)
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=11112, help="TCP port (default 11112; 0 = any free port)")
    listen.add_argument("--ae-title", default="DVTEDGE", help="our AE title (default DVTEDGE)")
    listen.add_argument("--allow", nargs="+", default=[], metavar="AE", help="calling AE titles to accept")
    listen.add_argument("--idle-timeout", type=float, default=30.0, help="end a study after S s without a slice")
    listen.add_argument("--once", action="store_true", help="exit after the first processed series")
    listen.add_argument("--rules", type=Path, default=None,
                        help="series-selection rules (JSON; default: the packaged edge/ct/assets/series-rules.json)")
    listen.add_argument("--send-to", default=None, metavar="AE@HOST:PORT",
                        help="send the SR and key images of each series back to this archive by C-STORE "
                             "(needs --out: they are also written there)")
    listen.add_argument("--max-associations", type=int, default=32,
                        help="connections served at once, idle ones included until they time out (default 32)")
    listen.add_argument("--max-per-caller", type=int, default=2,
                        help="associations given work at once per calling AE title (default 2)")
    listen.add_argument("--acse-timeout", type=float, default=5.0,
                        help="s a connection has to complete its association request (default 5)")
    listen.add_argument("--network-timeout", type=float, default=15.0,
                        help="s of silence after which an association is aborted (default 15)")
    listen.add_argument("--dimse-timeout", type=float, default=30.0, help="s for one DIMSE message (default 30)")
    common(listen)
    listen.set_defaults(func=cmd_listen)

    # ct batch: many studies, locally or on a Ray cluster (edge.jobs.ct_batch)
    p = sub.add_parser("batch", help="run many CT studies, one report each (locally or on a Ray cluster)",
                       description="Run many CT studies (each DIR a study folder, a NIfTI file, or a folder of "
                                   "studies): one report per study, failures reported per study, a summary in "
                                   "OUT/batch.json. " + NOTICE)
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study folder, NIfTI file, or folder of studies")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="spread the studies over a Ray cluster: HOST:PORT of its head, 'auto' (RAY_ADDRESS or the "
                        "cluster started on this machine with 'ray start'), or 'local' (a throwaway cluster here); "
                        "needs the [ray] extra")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the --ray local cluster (default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads per study (default: all cores locally, 1 per Ray task)")
    common(p)
    p.set_defaults(func=cmd_batch)


def _workers(text: str) -> int:
    """argparse type of --decode-workers: a whole number 0..16."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number; give 0 to 16, e.g. 2") from None
    if not 0 <= value <= 16:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..16 (0 = decode on the inference thread)")
    return value


def check_scan_outputs(out: Path | None, json_path: Path | None) -> None:
    """OutputError before the scan starts: --out naming an existing file; --json naming a folder or a file in
    a folder that does not exist (found out only after the whole scan otherwise)."""
    from edge.errors import OutputError

    if out is not None and out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is an existing file, not a folder; name a folder for the key images and report.json")
    if json_path is not None:
        if json_path.is_dir():
            raise OutputError(f"--json {json_path}: is a folder; name the report file, e.g. {json_path / 'report.json'}")
        if not json_path.parent.is_dir():
            raise OutputError(f"--json {json_path}: folder {json_path.parent} does not exist; create it or pick another path")


def _detector_options(args: argparse.Namespace) -> DetectorOptions:
    lumen = {"on": True, "off": False}.get(getattr(args, "lumen", "spec"))
    return DetectorOptions(args.model, args.backend, args.score_threshold, lumen)


def _printer(prefix: str = ""):
    from edge.ct.report import finding_line

    count = [0]

    def on_finding(f, direction) -> None:
        count[0] += 1
        print(prefix + finding_line(f, direction, count[0]), flush=True)

    return on_finding


def _log(m: str) -> None:
    print(m, flush=True)


def _warn(m: str) -> None:
    print(m, file=sys.stderr)


def cmd_scan(args: argparse.Namespace) -> int:
    from edge.jobs.ct import clear_outputs, detect_series, open_detector, open_input

    check_scan_outputs(args.out, args.json)
    source, kind = open_input(args.path, args.series_uid, getattr(args, "decode_workers", None))
    clear_outputs(args.out, args.json)
    with open_detector(_detector_options(args)) as handle:
        detect_series(source, handle, kind, k=args.k, out=args.out, json_path=args.json, on_finding=_printer(),
                      log=_log, warn=_warn)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """``ct watch DIR``: the watched-folder source (``edge.ct.stream.watch_folder``) through the same
    detector, linking and report as ``ct scan``."""
    from edge.ct.stream import watch_folder
    from edge.jobs.ct import clear_outputs, detect_series, open_detector

    check_scan_outputs(args.out, args.json)
    source = watch_folder(args.path, idle_timeout_s=args.idle_timeout, expected_count=args.expected,
                          series_uid=args.series_uid)
    clear_outputs(args.out, args.json)
    with open_detector(_detector_options(args)) as handle:
        _log(f"watching {args.path} (ends {args.idle_timeout:g} s after the last new file"
             + (f" or after {args.expected} files" if args.expected else "") + ")")
        detect_series(source, handle, "dicom", k=args.k, out=args.out, json_path=args.json, on_finding=_printer(),
                      log=_log, warn=_warn)
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    import signal
    import threading

    from edge.ct.listen import ListenConfig, StoreListener
    from edge.ct.ring import check_k
    from edge.ct.send import Destination, Sender
    from edge.ct.series_rules import SeriesRules
    from edge.errors import ConfigError
    from edge.jobs.ct import open_detector
    from edge.jobs.ct_serve import serve

    dest = Destination.parse(args.send_to) if args.send_to else None
    if dest is not None and args.out is None:
        raise ConfigError("--send-to needs --out DIR: the results are written there too, so nothing is lost "
                          "while the archive is unreachable")
    rules = SeriesRules.load(args.rules)
    cfg = ListenConfig(host=args.host, port=args.port, ae_title=args.ae_title, allow=tuple(args.allow),
                       idle_timeout_s=args.idle_timeout, store_dir=args.out, max_associations=args.max_associations,
                       max_per_caller=args.max_per_caller, acse_timeout_s=args.acse_timeout,
                       network_timeout_s=args.network_timeout, dimse_timeout_s=args.dimse_timeout, rules=rules,
                       series_uid=args.series_uid).validate()
    handle = open_detector(_detector_options(args))  # once, before any slice arrives
    try:
        k = check_k(args.k if args.k is not None else handle.detector.k)
    except BaseException:
        handle.close()
        raise
    listener = StoreListener(cfg, notice=lambda m: print(m, flush=True)).start()
    sender = Sender(dest, calling_ae=cfg.ae_title, notice=lambda m: print(m, flush=True)) if dest else None
    stopped_by: list[str] = []

    def on_signal(signum, frame) -> None:
        if listener.stopping:  # a second Ctrl-C: stop now, whatever is running
            raise KeyboardInterrupt
        stopped_by.append(signal.Signals(signum).name)
        listener.request_stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        allow = ", ".join(cfg.allow) if cfg.allow else "any caller (loopback only)"
        print(f"listening on {cfg.host}:{listener.port} as AE '{cfg.ae_title}', accepting {allow}; series rules "
              f"{rules.source}" + (f"; results to {dest}" if dest else "") + f" - {NOTICE}", flush=True)
        for line in listener.not_offered:
            print(f"note: transfer syntax not offered, no decoder here: {line}", file=sys.stderr)
        serve(listener, handle.detector, k, out=args.out, sender=sender, backend=handle.backend, model=handle.model,
              once=args.once, log=_log, warn=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        listener.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sender is not None:
            # a normal end (--once) waits for the archive (retries included); a stop waits half a second
            unsent = sender.close(wait_s=0.5 if stopped_by else sender.attempts * sender.max_backoff_s)
            for o in unsent:
                print(f"{o.label}: not sent to {dest} ({o.message or 'stopped first'}); the files are in "
                      f"{o.files[0].parent}", file=sys.stderr)
        handle.close()
    if stopped_by:
        print(f"stopped by {stopped_by[0]}", flush=True)
    import gc

    gc.freeze()  # the interpreter's final collection over every imported module took 1-2 s on 2 busy cores
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    import os

    from edge.errors import ConfigError
    from edge.jobs.ct_batch import BatchOptions, run_batch

    if args.out is None:
        raise ConfigError("ct batch needs --out DIR: one report folder per study and batch.json are written there")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads {args.threads}: must be >= 1")
    if args.series_uid:
        raise ConfigError("--series-uid picks one series of one study; ct batch takes every study's CT series")
    lumen = {"on": True, "off": False}.get(getattr(args, "lumen", "spec"))
    threads = args.threads if args.threads is not None else (1 if args.ray else None)
    triton_url = os.environ.get("DVT_EDGE_TRITON_URL") if args.backend == "triton" else None
    opts = BatchOptions(model=str(args.model) if args.model else None, backend=args.backend,
                        score_threshold=args.score_threshold, lumen=lumen, k=args.k, threads=threads,
                        triton_url=triton_url)
    summary = run_batch(args.dirs, args.out, opts, ray_address=args.ray, ray_cpus=args.ray_cpus,
                        log=lambda m: print(m, flush=True), warn=lambda m: print(m, file=sys.stderr, flush=True))
    return 0 if summary["failed"] == 0 else 8
