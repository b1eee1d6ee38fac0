"""CT decode off the critical path: ``ct scan`` wall time per slice vs the model alone, before and after.

    python -m benchmarks.ct_decode ../shared/data/ct-dicom-sample --rounds 3 --out benchmarks/results/ct-decode

Modes, each run in its own fresh process (the JPEG 2000 plugin table is per process), interleaved
A, B, C, ... A, B, C over ``--rounds`` rounds; inside a process the detector is opened once (ONNX Runtime, the
bundled default model, the same threads as ``ct scan``), the series is run once untimed (warm-up), then
``--repeats`` timed runs, median taken:

* ``model``: model-only time per slice: ONNX Runtime ``infer`` per slice (``ModelDetector.timing["infer"]``),
  in a pipeline run over slices decoded beforehand (no decoding at all); also ``pipeline_nodecode``, the whole
  pipeline's wall time per slice on those pre-decoded slices;
* ``before``: ``ct scan`` as it was before issue 14: one prefetch thread, pydicom's default plugin order (gdcm first);
* ``w0`` / ``w1`` / ``w2`` / ``w3``: ``ct scan`` now (imagecodecs first for JPEG 2000), decode pool of 0 (inline),
  1, 2, 3 threads.

``ct scan`` wall time = ``open_input`` (header pass) + ``run_slice_loop`` (decode, detect, link), per slice;
the model load and the interpreter start are once per process and not included. The 1-minute load average is
recorded before each process. Ratios matter, not absolutes: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("model", "before", "w0", "w1", "w2", "w3")


def _one(mode: str, folder: Path, repeats: int) -> dict:
    from benchmarks.models import open_alone
    from edge.ct import j2k
    from edge.ct.detector import ModelDetector, default_model_path
    from edge.ct.loop import run_slice_loop
    from edge.ct.stream import SliceStream
    from edge.jobs.ct import DetectorOptions, open_input, open_model_detector
    from edge.spec import load_spec

    if mode == "before":
        j2k._done = True  # never registered: pydicom's own plugin order, as before
    path = default_model_path()
    if mode == "model":  # the model-only reference, opened as for a model timed alone (benchmarks.models)
        detector = ModelDetector(open_alone(path, "auto", None)[0], load_spec(path))
    else:
        detector = open_model_detector(DetectorOptions()).detector
    workers = {"before": 1, "w0": 0, "w1": 1, "w2": 2, "w3": 3}.get(mode)
    rows = []
    findings = None
    pre = None
    if mode == "model":
        stream, _ = open_input(folder, decode_workers=0)
        pre = list(stream)
    for rep in range(repeats + 1):  # rep 0: warm-up
        if mode == "model":
            t0 = time.perf_counter()
            result = run_slice_loop(SliceStream(iter(pre), presorted=True), detector)
            wall = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            stream, _ = open_input(folder, decode_workers=workers)
            result = run_slice_loop(stream, detector)
            wall = time.perf_counter() - t0
        n = result.slices
        infer = statistics.mean(detector.timing["infer"])
        if rep:
            rows.append({"wall_ms_per_slice": 1e3 * wall / n, "infer_ms": infer})
        findings = [f.to_json() for f in result.findings]
    detector.backend.close()
    med = lambda key: round(statistics.median(r[key] for r in rows), 2)  # noqa: E731
    return {"mode": mode, "slices": n, "model": path.name, "backend": detector.backend.name,
            "threads": getattr(detector.backend, "threads", None),
            "wall_ms_per_slice": med("wall_ms_per_slice"), "infer_ms_per_slice": med("infer_ms"),
            "runs": rows, "findings": findings,
            "plugin_order": list(__import__("pydicom.pixels.decoders", fromlist=["x"]).JPEG2000LosslessDecoder._available)}


def decoders(folder: Path, repeats: int = 2) -> dict:
    """Each installed JPEG 2000 plugin through pydicom (``decoding_plugin=``): ms/slice on 1 thread and on 2
    threads (does the decoder release the GIL?), and whether it is pixel-identical to pylibjpeg-openjpeg."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pydicom
    from pydicom.pixels import pixel_array

    from edge.ct import j2k

    j2k.register()
    dss = [pydicom.dcmread(p) for p in sorted(folder.iterdir()) if p.is_file()]
    ref = [pixel_array(d, decoding_plugin="pylibjpeg") for d in dss]
    out = {"load_1min_before": round(os.getloadavg()[0], 2), "slices": len(dss),
           "transfer_syntax": str(dss[0].file_meta.TransferSyntaxUID.name)}
    for plugin in ("imagecodecs", "pylibjpeg", "gdcm", "pillow"):
        dec = lambda d: pixel_array(d, decoding_plugin=plugin)  # noqa: E731
        try:
            same = all(np.array_equal(dec(d), r) and dec(d).dtype == r.dtype for d, r in zip(dss, ref))
        except Exception as exc:  # noqa: BLE001 - not installed / cannot decode: say so
            out[plugin] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        one, two = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            for d in dss:
                dec(d)
            one.append(1e3 * (time.perf_counter() - t) / len(dss))
            with ThreadPoolExecutor(2) as ex:
                t = time.perf_counter()
                list(ex.map(dec, dss))
                two.append(1e3 * (time.perf_counter() - t) / len(dss))
        out[plugin] = {"ms_per_slice_1_thread": round(min(one), 1), "ms_per_slice_2_threads": round(min(two), 1),
                       "pixel_identical": same}
    out["load_1min_after"] = round(os.getloadavg()[0], 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--decoders", action="store_true", help="compare the JPEG 2000 decoders only (OUT-decoders.json)")
    args = ap.parse_args(argv)
    if args.decoders:
        res = decoders(args.folder)
        res["command"] = "python -m benchmarks.ct_decode " + " ".join(argv if argv is not None else sys.argv[1:])
        print(json.dumps(res, indent=1))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            Path(str(args.out) + "-decoders.json").write_text(json.dumps(res, indent=1) + "\n")
        return 0
    if args.one:
        print(json.dumps(_one(args.one, args.folder, args.repeats)))
        return 0
    modes = args.modes.split(",")
    rounds = []
    for r in range(args.rounds):
        row = {}
        for m in modes:
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, "-m", "benchmarks.ct_decode", str(args.folder), "--one", m,
                                  "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["load_1min"] = round(load, 2)
            row[m] = res
            print(f"round {r + 1} {m:7s} wall {res['wall_ms_per_slice']:7.2f} ms/slice  infer {res['infer_ms_per_slice']:6.2f}"
                  f"  load {load:.2f}", flush=True)
        rounds.append(row)
    ref = rounds[0][modes[0]]["findings"]
    same = {m: all(rnd[m]["findings"] == ref for rnd in rounds) for m in modes}
    summary = {}
    for m in modes:
        walls = [rnd[m]["wall_ms_per_slice"] for rnd in rounds]
        summary[m] = {"wall_ms_per_slice": walls, "median": round(statistics.median(walls), 2)}
        if "model" in modes:
            ratios = [rnd[m]["wall_ms_per_slice"] / rnd["model"]["infer_ms_per_slice"] for rnd in rounds]
            summary[m]["ratio_to_model_only"] = [round(x, 2) for x in ratios]
            summary[m]["ratio_median"] = round(statistics.median(ratios), 2)
    report = {"command": "python -m benchmarks.ct_decode " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cpus": os.cpu_count(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "loads_1min": [rnd[m]["load_1min"] for rnd in rounds for m in modes],
              "findings_identical_across_modes": same, "summary": summary, "rounds": rounds}
    print(json.dumps(summary, indent=1))
    print("findings identical:", same)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
