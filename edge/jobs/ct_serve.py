"""The ``ct listen`` loop: each received series job -> pipeline -> report, key images, DICOM results, send.

Shared by ``dvt-edge ct listen`` and the integration tests, so both run exactly this. Nothing prints: lines
go to ``log`` / ``warn``.

Per job (one qualifying series, see :mod:`edge.ct.listen`): the slices stream through :func:`run_slice_loop`
while they arrive; when the series ends, ``out/study-NNN/`` gets ``report.json`` and ``finding-NN.png`` (as
``ct scan --out``) and ``results/sr.dcm`` + ``results/key-NN.dcm`` (:mod:`edge.ct.dicom_out`, same study as
the input), which are then queued for the archive when a :class:`edge.ct.send.Sender` is given. Sending runs
in its own thread: a slow or absent archive never holds up receiving or processing.

Stopping (Ctrl-C, SIGTERM, :meth:`StoreListener.request_stop`): within about a second. The series being
processed is **discarded**: no report, no results, nothing sent (a half-received series must not reach the
archive as if it were complete); its received slices are kept in ``study-NNN/dicom`` when ``--out`` is set,
so it can be re-run with ``ct scan``. Series waiting in the queue are discarded the same way and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge.notice import NOTICE


@dataclass
class ServeSummary:
    processed: list[int] = field(default_factory=list)  # job numbers with a report
    discarded: list[int] = field(default_factory=list)
    reports: dict = field(default_factory=dict)  # job number -> report dict
    results: dict = field(default_factory=dict)  # job number -> DicomResults


def serve(listener, detector, k: int, *, out: Path | None = None, sender=None, backend: dict | None = None,
          model: dict | None = None, once: bool = False, wait_s: float | None = None,
          log: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> ServeSummary:
    from edge.atomic import write_json
    from edge.ct.dicom_out import SopRecorder, write_results
    from edge.ct.loop import run_slice_loop
    from edge.ct.report import finding_line
    from edge.ct.stream import stream_datasets
    from edge.jobs.ct import finish_report

    summary = ServeSummary()
    for job in listener.studies(once=once, wait_s=wait_s):
        n = job.number
        log(f"study {n}: receiving series {job.series_hash} from '{job.caller}'")
        count = [0]

        def on_finding(f, direction, n=n) -> None:
            count[0] += 1
            log(f"study {n}: " + finding_line(f, direction, count[0]))

        rec = SopRecorder(stream_datasets(job))
        try:
            result = run_slice_loop(rec, detector, k=k, on_finding=on_finding)
        except Exception:
            job.close()
            raise
        result.warnings.extend(job.warnings)
        if job.end_reason.startswith("stopped"):
            kept = (f"its {job.received} received slice(s) are kept in {job.folder}" if not job._temporary
                    else "its received slices were deleted (no --out)")
            log(f"study {n}: discarded - the listener stopped before the series ended; no report written, "
                f"nothing sent; {kept}")
            summary.discarded.append(n)
            job.close()
            break
        log(f"study {n}: ended ({job.end_reason})")
        study_out = Path(out) / f"study-{n:03d}" if out is not None else None
        report = finish_report(result, "dicom-c-store", backend, model, study_out, None, log=log, warn=warn)
        if study_out is not None and result.slices > 0 and job.header is not None:
            try:
                res = write_results(result, job.header, rec.by_position(result.direction), study_out / "results",
                                    model)
            except Exception as exc:  # the report is written; say why the DICOM results are not
                warn(f"study {n}: DICOM results not written ({type(exc).__name__}: {exc}); report.json is complete")
            else:
                summary.results[n] = res
                report["dicom_results"] = [str(p.relative_to(study_out)) for p in res.files]
                write_json(study_out / "report.json", report, indent=2, parents=True)
                if sender is not None:
                    sender.submit(res.files, f"study {n}")
        summary.reports[n] = report
        summary.processed.append(n)
        job.close()
    if listener.stopping:
        left = 0
        while True:
            try:
                job = listener._ready.get_nowait()
            except Exception:
                break
            left += 1
            summary.discarded.append(job.number)
            job.close()
        if left:
            log(f"{left} queued series discarded (not processed before the stop); {NOTICE}")
    return summary

