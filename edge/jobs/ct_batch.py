"""``dvt-edge ct batch DIR...``: many CT studies, one report each, on this machine or spread over a Ray cluster.

Each DIR is a study (a DICOM folder, or a ``.nii``/``.nii.gz`` file) or a folder of studies (its sub-folders
and NIfTI files, one study each). Every study runs the same job as ``ct scan`` (``edge.jobs.ct``); a study
that fails (unreadable, not CT, a worker that died) is reported with its error and never stops the others.

Outputs under ``--out OUT``: ``OUT/<study>/report.json`` and ``finding-NN.png`` (as ``ct scan --out`` writes
them) and ``OUT/batch.json``: per study ok / error, findings, seconds; wall time, the serial-equivalent
time (the sum of the per-study times) and their ratio.

Ray (``--ray ADDRESS|auto|local``): one Ray task per study, 1 CPU each, no retries (a study that crashes a
worker is reported failed, not run twice). A worker reads its study by path, so the study folders must be
on storage every node sees (the same path); the worker sends the report and key images back to the driver,
which alone writes ``OUT``. Each worker keeps its detector between studies (opened once per process).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from edge.errors import ConfigError, DvtEdgeError, InputError

if TYPE_CHECKING:
    from edge.jobs.ct import DetectorHandle

SCHEMA = "dvt-edge/ct-batch@1"


@dataclass(frozen=True)
class BatchOptions:
    """What every study runs with (picklable: sent to Ray workers)."""

    model: str | None = None
    backend: str = "auto"
    score_threshold: float | None = None
    lumen: bool | None = None
    k: int | None = None
    threads: int | None = None  # ONNX Runtime intra-op threads (Ray tasks: 1 per task)
    triton_url: str | None = None  # --backend triton: the driver's --triton-url, for workers on other nodes


@dataclass
class StudyResult:
    name: str
    path: str
    ok: bool
    seconds: float
    error: str | None = None
    exit_code: int = 0
    slices: int = 0
    findings: list = field(default_factory=list)
    complete: bool | None = None
    worker: str = ""
    files: dict = field(default_factory=dict)  # name -> bytes (report.json, finding-NN.png), written by the driver

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("files")
        d["findings_count"] = len(self.findings)
        return d


def _is_nifti(p: Path) -> bool:
    return p.name.endswith(".nii") or p.name.endswith(".nii.gz")


def find_studies(paths: list[Path]) -> tuple[list[tuple[str, Path]], list[StudyResult]]:
    """([(name, path)] of the studies under ``paths``, [failed results for inputs that are no study]).

    A folder holding files (other than NIfTI volumes) is one study; otherwise each sub-folder and each NIfTI
    file in it is one. Names are the folder / file names, made unique with ``-2``, ``-3`` ...
    """
    found: list[Path] = []
    bad: list[StudyResult] = []
    for p in map(Path, paths):
        if not p.exists():
            bad.append(StudyResult(p.name or str(p), str(p), False, 0.0, f"{p}: no such file or folder", 3))
        elif p.is_file():
            if _is_nifti(p):
                found.append(p)
            else:
                bad.append(StudyResult(p.name, str(p), False, 0.0,
                                       f"{p}: not a study folder or a .nii/.nii.gz file (pass the folder holding "
                                       "the DICOM series, or a folder of such folders)", 3))
        else:
            entries = sorted(e for e in p.iterdir() if not e.name.startswith("."))
            plain = [e for e in entries if e.is_file() and not _is_nifti(e)]
            if plain:
                found.append(p)
                continue
            subs = [e for e in entries if e.is_dir() or (e.is_file() and _is_nifti(e))]
            if not subs:
                bad.append(StudyResult(p.name, str(p), False, 0.0, f"{p}: empty folder, no study in it", 3))
            found.extend(subs)
    names: dict[str, int] = {}
    out = []
    for p in found:
        base = p.name[:-7] if p.name.endswith(".nii.gz") else p.stem if _is_nifti(p) else p.name
        names[base] = names.get(base, 0) + 1
        out.append((base if names[base] == 1 else f"{base}-{names[base]}", p))
    return out, bad


_DETECTORS: dict[BatchOptions, "DetectorHandle"] = {}  # per process: a Ray worker keeps its detector between studies


def _detector(opts: BatchOptions) -> "DetectorHandle":
    got = _DETECTORS.get(opts)
    if got is None:
        from edge.jobs.ct import DetectorOptions, open_detector

        if opts.triton_url:  # a Ray worker does not inherit the driver's environment
            from edge.backends.triton import URL_ENV

            os.environ[URL_ENV] = opts.triton_url
        # opts.threads: one ONNX Runtime thread per task, so N tasks on N cores do not run N x cores threads
        got = _DETECTORS[opts] = open_detector(DetectorOptions(
            Path(opts.model) if opts.model else None, opts.backend, opts.score_threshold, opts.lumen, opts.threads))
    return got


def run_study(name: str, path: str | Path, opts: BatchOptions) -> StudyResult:
    """Run one study as ``ct scan --out`` would; never raises (a failure is a result with its error)."""
    import socket

    from edge.jobs.ct import detect_series, open_input

    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        source, kind = open_input(Path(path))
        handle = _detector(opts)
        with tempfile.TemporaryDirectory(prefix="dvt-edge-batch-") as tmp:
            _, report = detect_series(source, handle, kind, k=opts.k, out=Path(tmp), log=lambda m: None,
                                      warn=lambda m: None)
            files = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir()) if f.is_file()}
        return StudyResult(name, str(path), True, round(time.perf_counter() - t0, 3), slices=report["slices"],
                           findings=report["findings"], complete=report.get("complete"), worker=worker, files=files)
    except DvtEdgeError as exc:
        return StudyResult(name, str(path), False, round(time.perf_counter() - t0, 3), str(exc), exc.exit_code,
                           worker=worker)
    except Exception as exc:  # a bug or an unforeseen failure: this study fails, the others go on
        msg = " ".join(str(exc).split())
        return StudyResult(name, str(path), False, round(time.perf_counter() - t0, 3),
                           f"{path}: unexpected {type(exc).__name__}: {msg}", 1, worker=worker)


def _run_local(studies, opts, on_result) -> None:
    _detector(opts)  # once, before the clock of the first study; a missing model stops the batch here
    try:
        for name, path in studies:
            on_result(run_study(name, path, opts))
    finally:
        _DETECTORS.pop(opts).close()


def loopback_only(ray) -> None:
    """Make a Ray cluster started from this process use 127.0.0.1 for its own addresses (GCS, raylet, workers).

    Ray replaces a ``127.0.0.1`` node address by the machine's network address unless its single-machine mode
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read at import, inherited by the processes it starts) is on."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray._private.ray_constants as constants

    constants.ENABLE_RAY_CLUSTER = False


def _ray_init(address: str, cpus: int | None):
    """(ray module, whether we connected and so must disconnect)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--ray {address}: Ray is not installed here; pip install 'dvt-edge[ray]' "
                          "(the same version as the cluster's)") from exc
    if ray.is_initialized():  # a caller (a notebook, a test) is already connected: use that cluster
        return ray, False
    kw = dict(log_to_driver=False, include_dashboard=False) if address == "local" else dict(log_to_driver=False)
    try:
        if address == "local":  # a throwaway cluster on this machine, on the loopback address
            loopback_only(ray)
            ray.init(num_cpus=cpus, _node_ip_address="127.0.0.1", **kw)
        else:
            ray.init(address=address, **kw)
    except Exception as exc:
        raise ConfigError(f"--ray {address}: cannot connect to a Ray cluster there ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]}); start one with 'ray start --head' or pass "
                          "--ray local") from exc
    return ray, True


def _run_ray(studies, opts, on_result, address: str, cpus: int | None, log) -> dict:
    ray, connected = _ray_init(address, cpus)
    try:
        resources = ray.cluster_resources()
        log(f"Ray cluster: {int(resources.get('CPU', 0))} CPU(s) on {len(ray.nodes())} node(s); "
            f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}, one task each")
        task = ray.remote(num_cpus=1, max_retries=0)(run_study)
        pending = {task.remote(name, str(path), opts): (name, path) for name, path in studies}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                name, path = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # the worker died (out of memory, a crash in native code), lost node
                    res = StudyResult(name, str(path), False, 0.0,
                                      f"{path}: the Ray task failed ({type(exc).__name__}: "
                                      f"{' '.join(str(exc).split())[:300]})", 1)
                on_result(res)
        return {"address": address, "cpus": resources.get("CPU"), "nodes": len(ray.nodes())}
    finally:
        if connected:
            ray.shutdown()


def run_batch(paths: list[Path], out: Path, opts: BatchOptions, *, ray_address: str | None = None,
              ray_cpus: int | None = None, log: Callable[[str], None] = print,
              warn: Callable[[str], None] = print) -> dict:
    """Run every study under ``paths``; write each one's outputs to ``out/<name>/`` and ``out/batch.json``.
    Returns the batch summary (also written). Raises only for a configuration error (no study, bad --out)."""

    from edge.atomic import write_json
    from edge.notice import NOTICE

    out = Path(out)
    if out.exists() and not out.is_dir():
        from edge.errors import OutputError

        raise OutputError(f"--out {out}: is an existing file, not a folder; name a folder for the reports")
    studies, bad = find_studies(paths)
    if not studies and not bad:
        raise InputError("no study found in " + ", ".join(map(str, paths)))
    results: list[StudyResult] = []

    def on_result(r: StudyResult) -> None:
        results.append(r)
        if r.ok:
            folder = out / r.name
            folder.mkdir(parents=True, exist_ok=True)
            for old in [*folder.glob("finding-*.png"), folder / "report.json"]:
                if old.is_file():
                    old.unlink()
            for fname, data in r.files.items():  # report.json last, so a complete report means complete outputs
                if fname != "report.json":
                    _write_bytes(folder / fname, data)
            if "report.json" in r.files:
                _write_bytes(folder / "report.json", r.files["report.json"])
            log(f"{r.name}: {r.slices} slices, {len(r.findings)} candidate(s)"
                + ("" if r.complete in (True, None) else ", INCOMPLETE") + f", {r.seconds:.2f} s [{r.worker}]")
        else:
            warn(f"{r.name}: FAILED: {r.error}")

    for r in bad:
        on_result(r)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cluster = None
    if ray_address:
        cluster = _run_ray(studies, opts, on_result, ray_address, ray_cpus, log)
    else:
        _run_local(studies, opts, on_result)
    wall = time.perf_counter() - t0
    serial = sum(r.seconds for r in results)
    order = {name: i for i, (name, _) in enumerate(studies)}
    results.sort(key=lambda r: order.get(r.name, -1))
    failed = [r for r in results if not r.ok]
    summary = {
        "schema": SCHEMA,
        "notice": NOTICE,
        "studies": len(results),
        "ok": len(results) - len(failed),
        "failed": len(failed),
        "wall_s": round(wall, 3),
        "serial_equivalent_s": round(serial, 3),
        "speedup": round(serial / wall, 2) if wall > 0 else None,
        "executor": {"kind": "ray", **cluster} if cluster else {"kind": "local", "processes": 1},
        "results": [r.summary() for r in results],
    }
    write_json(out / "batch.json", summary, indent=2, what="the batch summary")
    log(f"{summary['studies']} studies: {summary['ok']} ok, {summary['failed']} failed; wall {wall:.2f} s, "
        f"serial-equivalent {serial:.2f} s (x{summary['speedup']}); summary {out / 'batch.json'}")
    return summary


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
