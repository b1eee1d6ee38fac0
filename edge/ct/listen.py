"""A DICOM C-STORE receiver (SCP) that turns each qualifying CT series it receives into a study job.

Network policy: binds 127.0.0.1 unless told otherwise; binding any other address needs an AE-title
allow-list (``allow``), because a bedside box must not accept images from anyone on the ward network.
Callers must address our AE title (``require_called_aet``). Verification (C-ECHO) is accepted for
connectivity checks.

What is accepted: CT Image Storage in the uncompressed transfer syntaxes and the compressed ones (JPEG 2000,
JPEG Lossless, JPEG-LS, RLE) for which a pixel decoder is installed here; the ones left out are listed in
``ListenerInfo.not_offered`` so ``listen`` can say why (a sender then falls back to another syntax, never a
slice accepted and undecodable). The objects a scanner or PACS pushes along with a study (secondary
captures, dose reports and other SRs, key-object selections, presentation states) are accepted too, so a
whole-study push does not fail, and are then left out by the series rules.

Series selection (:mod:`edge.ct.series_rules`): each series of an association is judged on its first object
(localizers, dose reports, secondary captures, reformats are left out, with the rule named) and, when it
ends, on its slice count. Every qualifying series becomes its own :class:`Study` job with its own report.

Concurrency and robustness (no peer can hold the port):

* associations are served concurrently, each in its own thread (``max_associations``, 32 by default;
  pynetdicom counts a connection from its first byte and refuses the one beyond with "local limit
  exceeded"); at most ``max_per_caller`` associations per calling AE title are given work (the others'
  C-STOREs get 0xA700 "out of resources");
* short timeouts: a connection that does not complete the association request within ``acse_timeout_s``
  is dropped (a bare connect, a reset or garbage bytes end at once, an idle socket within that time), an
  association silent for ``network_timeout_s`` is aborted, and so is a peer that sends part of a PDU and
  stops (a socket timeout of ``network_timeout_s``: pynetdicom would otherwise wait for the rest forever);
  a DIMSE message must complete within ``dimse_timeout_s``;
* bounded resources: received slices are spooled to disk (``store_dir``, or a temporary folder deleted
  after the job) and read back one at a time by the job, so memory does not grow with a study or with the
  number of senders; an association may send at most ``max_slices_per_association`` slices, and at most
  ``queue_size`` series jobs wait for processing (beyond either, 0xA700: the sender knows the slice was not
  taken; nothing is dropped silently). Jobs are processed one at a time in the order they became ready;
  while one is processed, others keep being received (queued, never refused while there is room).

A job (series) ends when its association is released (or aborted, with a warning), when no slice of it
arrived for ``idle_timeout_s``, or when the listener stops (``end_reason`` "stopped": the caller discards
the job's result, see ``cmd_listen``).

Received files are written, when ``store_dir`` is set, as ``study-NNN/dicom/NNNNN.dcm`` (one numbered
folder per processed series, numbers only, no UIDs or names) so a series can be re-read with ``ct scan``.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from edge.dicom_codecs import supported_transfer_syntaxes
from edge.errors import ConfigError, InputError

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_POLL_S = 0.1  # how often blocking waits look at the stop flag (stop must take effect within a second)


@dataclass(frozen=True)
class ListenConfig:
    """Settings of the receiver. ``port`` 0 picks a free port (read it back from ``StoreListener.port``)."""

    host: str = "127.0.0.1"
    port: int = 11112
    ae_title: str = "DVTEDGE"
    allow: tuple[str, ...] = ()  # calling AE titles accepted; empty = any (only allowed on loopback)
    idle_timeout_s: float = 30.0
    queue_size: int = 64  # series jobs waiting to be processed
    put_timeout_s: float = 30.0  # kept for compatibility; jobs are spooled to disk, a C-STORE never waits
    store_dir: Path | None = None
    max_associations: int = 32  # a thread and a socket each; idle connections count until they time out
    max_per_caller: int = 2
    acse_timeout_s: float = 5.0
    dimse_timeout_s: float = 30.0
    network_timeout_s: float = 15.0
    max_slices_per_association: int = 5000
    spool_dir: Path | None = None  # where slices wait when store_dir is not set (default: the system temp)
    rules: object | None = None  # edge.ct.series_rules.SeriesRules; None = the packaged default
    series_uid: str | None = None  # process only this series (full UID or short hash)

    def validate(self) -> "ListenConfig":
        if not (0 <= self.port <= 65535):
            raise ConfigError(f"--port {self.port}: must be 0..65535")
        if not (1 <= len(self.ae_title) <= 16) or "\\" in self.ae_title:
            raise ConfigError(f"--ae-title '{self.ae_title}': an AE title has 1 to 16 characters and no backslash")
        for t in self.allow:
            if not (1 <= len(t) <= 16):
                raise ConfigError(f"--allow '{t}': an AE title has 1 to 16 characters")
        if self.host not in _LOOPBACK and not self.allow:
            raise ConfigError(f"--host {self.host}: listening beyond this machine needs --allow AE_TITLE ... "
                              "(the calling AE titles to accept)")
        if self.idle_timeout_s <= 0 or self.queue_size < 1:
            raise ConfigError("--idle-timeout must be > 0 and the queue size >= 1")
        if self.max_associations < 1 or self.max_per_caller < 1 or self.max_slices_per_association < 1:
            raise ConfigError("--max-associations, --max-per-caller and the slice limit must be >= 1")
        for name, v in (("--acse-timeout", self.acse_timeout_s), ("--dimse-timeout", self.dimse_timeout_s),
                        ("--network-timeout", self.network_timeout_s)):
            if not v > 0:
                raise ConfigError(f"{name} {v}: must be > 0 seconds")
        return self


# objects that come along in a whole-study push: accepted (so the push does not fail), then left out by the rules
_ALSO_ACCEPTED = (
    "SecondaryCaptureImageStorage", "XRayRadiationDoseSRStorage", "EnhancedSRStorage", "BasicTextSRStorage",
    "ComprehensiveSRStorage", "Comprehensive3DSRStorage", "KeyObjectSelectionDocumentStorage",
    "GrayscaleSoftcopyPresentationStateStorage", "EnhancedCTImageStorage", "RawDataStorage",
    "EncapsulatedPDFStorage", "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
    "MultiFrameGrayscaleWordSecondaryCaptureImageStorage", "MultiFrameTrueColorSecondaryCaptureImageStorage",
)


@dataclass
class Study:
    """One processing job: one qualifying series of one association. Iterate once for (name, dataset).

    The iteration ends on association release/abort, after ``idle_timeout_s`` without a slice, or when the
    listener stops (``end_reason`` then starts with "stopped"). ``header`` is the series' first dataset
    without pixel data (patient/study modules for results sent back); ``files`` the spooled slices.
    """

    number: int
    _listener: "StoreListener"
    folder: Path | None = None
    caller: str = ""
    series_hash: str = ""
    header: object | None = None
    warnings: list[str] = field(default_factory=list)
    end_reason: str = ""
    received: int = 0
    files: list[Path] = field(default_factory=list)
    _q: queue.Queue = field(default_factory=queue.Queue)  # ("ds", name, path) | ("end", reason); paths only
    _temporary: bool = False
    _ended: bool = False

    def __iter__(self) -> Iterator[tuple[str, object]]:
        import pydicom

        lst = self._listener
        last = time.monotonic()
        while True:
            if lst.stopping:
                self._finish("stopped (listener shut down)")
                return
            try:
                item = self._q.get(timeout=_POLL_S)
            except queue.Empty:
                if time.monotonic() - last > lst.cfg.idle_timeout_s:
                    lst._end_job(self)
                    self._finish(f"idle for {lst.cfg.idle_timeout_s:g} s")
                    return
                continue
            last = time.monotonic()
            if item[0] == "ds":
                try:
                    ds = pydicom.dcmread(item[2])
                except Exception as exc:  # the spool file was written by us; a failure is a disk problem
                    self.warnings.append(f"{item[1]}: cannot re-read the received slice ({type(exc).__name__})")
                    continue
                self.received += 1
                yield item[1], ds
            elif item[0] == "end":
                self._finish(item[1])
                if item[1].startswith("aborted"):
                    self.warnings.append(f"association {item[1]}: the series may be incomplete")
                return

    def _finish(self, reason: str) -> None:
        self.end_reason = self.end_reason or reason
        self._ended = True

    def close(self) -> None:
        """Forget the spooled slices when they were only temporary (``store_dir`` unset)."""
        if self._temporary and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class _Series:
    uid: str
    decision: object  # series_rules.Decision
    pending: list[Path] = field(default_factory=list)  # spooled before the job starts (fewer than min_slices)
    count: int = 0
    job: Study | None = None
    dir: Path | None = None


@dataclass
class _Assoc:
    number: int
    caller: str
    over_limit: bool = False
    slices: int = 0
    series: dict = field(default_factory=dict)  # uid -> _Series


class StoreListener:
    """The C-STORE SCP. ``start()`` binds and serves in background threads; ``studies()`` yields jobs."""

    def __init__(self, cfg: ListenConfig, notice: Callable[[str], None] | None = None):
        from edge.ct.series_rules import SeriesRules

        self.cfg = cfg.validate()
        self.rules = cfg.rules if cfg.rules is not None else SeriesRules.load()
        self.notice = notice or (lambda m: log.info("%s", m))
        self._ready: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._job_no = 0
        self._assoc_no = 0
        self._waiting = 0  # jobs made ready and not yet taken by studies()
        self._assocs: dict[int, _Assoc] = {}
        self._callers: dict[str, int] = {}
        self._server = None
        self._ae = None
        self._spool: Path | None = None
        self._own_spool = False
        self.stopping = False
        self.not_offered: list[str] = []
        self.port: int | None = None
        self.stats = {"associations": 0, "peak_associations": 0, "refused_slices": 0, "ignored_objects": 0}

    # ---------------------------------------------------------------- SCP threads
    def _assoc(self, event) -> _Assoc:
        key = id(event.assoc)
        a = self._assocs.get(key)
        if a is None:  # an association that sent data before our ACCEPTED handler ran (should not happen)
            a = self._register(event)
        return a

    def _register(self, event) -> _Assoc:
        caller = str(event.assoc.requestor.ae_title).strip()
        with self._lock:
            self._assoc_no += 1
            a = _Assoc(self._assoc_no, caller)
            self._callers[caller] = self._callers.get(caller, 0) + 1
            a.over_limit = self._callers[caller] > self.cfg.max_per_caller
            self._assocs[id(event.assoc)] = a
            self.stats["associations"] += 1
            self.stats["peak_associations"] = max(self.stats["peak_associations"], len(self._assocs))
        if a.over_limit:
            self.notice(f"association {a.number} from '{caller}': more than {self.cfg.max_per_caller} at once from "
                        "this AE title; its slices are refused (0xA700) until one ends")
        return a

    def _on_accepted(self, event) -> None:
        self._register(event)

    def _on_conn_open(self, event) -> None:
        """pynetdicom reads the body of a PDU with a blocking recv: a peer that sends a PDU header and then
        nothing would hold its thread (and a slot) forever. A socket timeout turns that into a closed
        connection after ``network_timeout_s``."""
        try:
            event.assoc.dul.socket.socket.settimeout(self.cfg.network_timeout_s)
        except Exception:  # no socket any more: nothing to guard
            pass

    def _series_dir(self, a: _Assoc, n_series: int) -> Path:
        d = self._spool / f"assoc-{a.number:04d}-series-{n_series:02d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _on_store(self, event) -> int:
        from edge.ct.dicom_series import short_uid

        if self.stopping:
            return 0xA700
        a = self._assoc(event)
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as exc:  # a dataset pydicom cannot parse: tell the sender, keep serving
            log.warning("C-STORE from '%s': cannot parse a received dataset (%s)", a.caller, type(exc).__name__)
            return 0xC210  # "Cannot understand"
        if a.over_limit:
            self.stats["refused_slices"] += 1
            return 0xA700
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        with self._lock:
            s = a.series.get(uid)
            if s is None:
                decision = self.rules.judge(ds)
                want = self.cfg.series_uid
                if decision.process and want and want not in (uid, short_uid(uid)):
                    from edge.ct.series_rules import Decision
                    decision = Decision(False, "not the series asked for (--series-uid)")
                s = a.series[uid] = _Series(uid, decision)
                if decision.process:
                    s.dir = self._series_dir(a, len(a.series))
                else:
                    self.notice(f"association {a.number}: series {short_uid(uid) if uid else '(no UID)'} skipped: "
                                f"{decision.reason}")
            if not s.decision.process:
                self.stats["ignored_objects"] += 1
                return 0x0000  # accepted and not processed: a whole-study push must not fail on a scout
            if a.slices >= self.cfg.max_slices_per_association:
                self.stats["refused_slices"] += 1
                log.warning("association %d: more than %d slices, refused (0xA700)", a.number,
                            self.cfg.max_slices_per_association)
                return 0xA700
            a.slices += 1
            s.count += 1
            if s.job is None and s.count >= self.rules.min_slices and self._waiting >= self.cfg.queue_size:
                self.stats["refused_slices"] += 1
                s.count -= 1
                a.slices -= 1
                log.warning("%d series wait for processing already; slice refused (0xA700)", self._waiting)
                return 0xA700
            job = s.job
            if job is not None:
                path = job.folder / f"{len(job.files) + 1:05d}.dcm"
                job.files.append(path)
            else:
                path = s.dir / f"p-{s.count:05d}.dcm"
                s.pending.append(path)
        try:
            self._save(event, path)
        except OSError as exc:
            log.error("cannot spool a received slice to %s (%s)", path.parent, exc)
            return 0xA700
        with self._lock:
            if job is not None:
                job._q.put(("ds", f"received #{len(job.files)}", path))
            elif s.job is None and s.count >= self.rules.min_slices:
                self._start_job(a, s, ds)
        return 0x0000

    def _start_job(self, a: _Assoc, s: _Series, ds) -> None:
        """Under the lock: the series qualifies; number it, move its pending slices in, queue it."""
        from edge.ct.dicom_series import short_uid

        self._job_no += 1
        if self.cfg.store_dir is not None:
            folder, temporary = Path(self.cfg.store_dir) / f"study-{self._job_no:03d}" / "dicom", False
        else:
            folder, temporary = self._spool / f"study-{self._job_no:03d}", True
        folder.mkdir(parents=True, exist_ok=True)
        header = ds.copy()
        for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if kw in header:
                delattr(header, kw)
        job = Study(self._job_no, self, folder=folder, caller=a.caller, series_hash=short_uid(s.uid), header=header,
                    _temporary=temporary)
        for p in sorted(s.pending):
            dest = folder / f"{len(job.files) + 1:05d}.dcm"
            os.replace(p, dest)
            job.files.append(dest)
            job._q.put(("ds", f"received #{len(job.files)}", dest))
        s.pending.clear()
        s.job = job
        self._waiting += 1
        self._ready.put(job)

    @staticmethod
    def _save(event, path: Path) -> None:
        from pydicom.filewriter import write_file_meta_info

        with open(path, "wb") as f:
            f.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(f, event.file_meta, enforce_standard=True)
            f.write(event.request.DataSet.getvalue())

    def _on_end(self, reason: str):
        def handler(event) -> None:
            from edge.ct.dicom_series import short_uid

            with self._lock:
                a = self._assocs.pop(id(event.assoc), None)
                if a is None:
                    return
                self._callers[a.caller] = max(0, self._callers.get(a.caller, 1) - 1)
                for s in a.series.values():
                    if s.job is not None and not s.job._ended:
                        s.job._q.put(("end", reason))
                    elif s.job is None and s.decision.process:
                        why = self.rules.judge_count(s.count)
                        self.notice(f"association {a.number}: series {short_uid(s.uid)} skipped: {why.reason}")
                        for p in s.pending:
                            p.unlink(missing_ok=True)
                    if s.dir is not None:
                        shutil.rmtree(s.dir, ignore_errors=True)

        return handler

    def _end_job(self, job: Study) -> None:
        """An idle job ends; later slices of the same series on the same association start a new one."""
        with self._lock:
            for a in self._assocs.values():
                for s in a.series.values():
                    if s.job is job:
                        s.job, s.count = None, 0
                        s.dir = self._series_dir(a, len(a.series) + 100 + job.number)

    # ---------------------------------------------------------------- consumer side
    def start(self) -> "StoreListener":
        try:
            from pynetdicom import AE, evt, sop_class
            from pynetdicom.sop_class import CTImageStorage, Verification
        except ImportError as exc:
            raise ConfigError("'ct listen' needs pynetdicom: pip install 'dvt-edge[ct]'") from exc
        from pydicom import uid as _uid

        if self.cfg.store_dir is not None:
            self._spool = Path(self.cfg.store_dir) / ".spool"
        else:
            base = self.cfg.spool_dir
            if base is not None:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._spool, self._own_spool = Path(tempfile.mkdtemp(prefix="dvt-edge-spool-", dir=base)), True
        self._spool.mkdir(parents=True, exist_ok=True)
        ae = AE(ae_title=self.cfg.ae_title)
        offered, self.not_offered = supported_transfer_syntaxes()
        ae.add_supported_context(CTImageStorage, offered)
        anything = offered + [_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit]
        for name in _ALSO_ACCEPTED:
            cls = getattr(sop_class, name, None)
            if cls is not None:
                ae.add_supported_context(cls, list(dict.fromkeys(anything)))
        ae.add_supported_context(Verification)
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.cfg.allow)
        ae.maximum_associations = self.cfg.max_associations
        ae.acse_timeout = self.cfg.acse_timeout_s
        ae.dimse_timeout = self.cfg.dimse_timeout_s
        ae.network_timeout = self.cfg.network_timeout_s
        handlers = [(evt.EVT_CONN_OPEN, self._on_conn_open), (evt.EVT_ACCEPTED, self._on_accepted), (evt.EVT_C_STORE, self._on_store),
                    (evt.EVT_RELEASED, self._on_end("released")), (evt.EVT_ABORTED, self._on_end("aborted")),
                    (evt.EVT_CONN_CLOSE, self._on_end("aborted (connection closed)"))]
        try:
            self._server = ae.start_server((self.cfg.host, self.cfg.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise InputError(f"{self.cfg.host}:{self.cfg.port}: cannot listen ({exc.strerror or exc}); pick "
                             "another --port or stop the program using it") from exc
        self._ae = ae
        self.port = int(self._server.server_address[1])
        return self

    def studies(self, once: bool = False, wait_s: float | None = None) -> Iterator[Study]:
        """Yield each job (one qualifying series) as soon as it qualifies; ``once`` stops after the first.

        Blocks between jobs until :meth:`stop`, or, with ``wait_s``, until no job began for that long.
        """
        waited_since = time.monotonic()
        while self._server is not None and not self.stopping:
            try:
                job = self._ready.get(timeout=_POLL_S)  # a short timeout keeps Ctrl-C/SIGTERM responsive
            except queue.Empty:
                if wait_s is not None and time.monotonic() - waited_since > wait_s:
                    return
                continue
            with self._lock:
                self._waiting -= 1
            yield job
            if once:
                return
            waited_since = time.monotonic()

    def request_stop(self) -> None:
        """Signal-safe: make every wait return within ~0.1 s; :meth:`stop` then closes the port."""
        self.stopping = True

    def stop(self) -> None:
        self.stopping = True
        server, self._server = self._server, None
        if server is not None:
            threading.Thread(target=server.shutdown, daemon=True).start()  # serve_forever polls every 0.5 s
            try:
                server.server_close()  # the port refuses new connections at once
            except OSError:
                pass
            if self._ae is not None:
                import socket

                for assoc in list(self._ae.active_associations):
                    try:  # wakes a thread blocked in recv at once; the abort then finishes in the background
                        assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)
                    except Exception:
                        pass
                    if assoc.is_established:
                        threading.Thread(target=assoc.abort, daemon=True).start()
        if self._own_spool and self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
        elif self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)  # pending fragments only; jobs live in study-NNN

    def __enter__(self) -> "StoreListener":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
