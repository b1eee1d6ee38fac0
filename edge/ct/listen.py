"""A DICOM C-STORE receiver (SCP) that hands each received CT slice to the streaming pipeline.

Network policy: binds 127.0.0.1 unless told otherwise; binding any other address needs an AE-title
allow-list (``allow``), because a bedside box must not accept images from anyone on the ward network.
Callers must address our AE title (``require_called_aet``). One association at a time
(``maximum_associations = 1``): a second sender is rejected while a study streams, instead of two series
interleaving in one ring buffer. Accepts CT Image Storage in the uncompressed transfer syntaxes and the
compressed ones (JPEG 2000, JPEG lossless, JPEG-LS, RLE) for which a pixel decoder is installed here;
the ones left out are listed in ``ListenerInfo.not_offered`` so ``listen`` can say why (a sender then
falls back to another syntax or is told no context was accepted, never a slice accepted and undecodable).
Verification (C-ECHO) is accepted for connectivity checks.

Flow and back-pressure: the SCP thread parses each dataset (no pixel decoding) and puts it into a bounded
queue (``queue_size``, 64 by default). When the queue is full the SCP thread waits up to
``put_timeout_s`` (the sender simply waits: TCP back-pressure), then answers 0xA700 "Out of resources"
so the sender knows the slice was not taken; nothing is dropped silently. A study ends on association
release (or abort, with a warning), or when no slice arrived for ``idle_timeout_s``.

Received files are written, when ``store_dir`` is set, as ``study-NNN/dicom/NNNNN.dcm`` (numbers, no
UIDs or names) so a study can be re-read with ``ct scan``.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from edge.errors import ConfigError, InputError

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ListenConfig:
    """Settings of the receiver. ``port`` 0 picks a free port (read it back from ``StoreListener.port``)."""

    host: str = "127.0.0.1"
    port: int = 11112
    ae_title: str = "DVTEDGE"
    allow: tuple[str, ...] = ()  # calling AE titles accepted; empty = any (only allowed on loopback)
    idle_timeout_s: float = 30.0
    queue_size: int = 64
    put_timeout_s: float = 30.0
    store_dir: Path | None = None

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
        return self


def supported_transfer_syntaxes() -> tuple[list[str], list[str]]:
    """(offered, not offered with the reason): uncompressed always; compressed when decodable here."""
    from pydicom import uid
    from pydicom.pixels import get_decoder

    native = [uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian,
              uid.ExplicitVRBigEndian]
    compressed = [uid.JPEG2000Lossless, uid.JPEG2000, uid.JPEGLosslessSV1, uid.JPEGLossless, uid.JPEGLSLossless,
                  uid.JPEGLSNearLossless, uid.RLELossless, uid.JPEGExtended12Bit]
    offered, missing = list(native), []
    for ts in compressed:
        try:
            dec = get_decoder(ts)
            ok = dec.is_available
            why = "; ".join(dec.missing_dependencies) if not ok else ""
        except NotImplementedError:
            ok, why = False, "not supported by pydicom"
        if ok:
            offered.append(ts)
        else:
            missing.append(f"{ts.name} (install one of: {why})")
    return offered, missing


@dataclass
class Study:
    """One received study: iterate for (display name, dataset) until release or idle. Iterate once."""

    number: int
    _listener: "StoreListener"
    _first: tuple | None = None  # the ("ds", name, dataset) item that started the study
    warnings: list[str] = field(default_factory=list)
    end_reason: str = ""
    received: int = 0

    def __iter__(self) -> Iterator[tuple[str, object]]:
        q = self._listener._queue
        if self._first is not None:
            first, self._first = self._first, None
            self.received += 1
            yield first[1], first[2]
        while True:
            try:
                item = q.get(timeout=self._listener.cfg.idle_timeout_s)
            except queue.Empty:
                self.end_reason = f"idle for {self._listener.cfg.idle_timeout_s:g} s"
                self._listener._end_study()
                return
            kind = item[0]
            if kind == "ds":
                self.received += 1
                yield item[1], item[2]
            elif kind == "end":
                self.end_reason = item[1]
                if item[1].startswith("aborted"):
                    self.warnings.append(f"association {item[1]}: the study may be incomplete")
                return


class StoreListener:
    """The C-STORE SCP. ``start()`` binds and serves in background threads; ``studies()`` yields studies."""

    def __init__(self, cfg: ListenConfig):
        self.cfg = cfg.validate()
        self._queue: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self._lock = threading.Lock()
        self._study_no = 0
        self._study_open = False
        self._count = 0
        self._server = None
        self.not_offered: list[str] = []
        self.port: int | None = None

    # ---- SCP thread side
    def _study_dir(self) -> Path | None:
        if self.cfg.store_dir is None:
            return None
        d = Path(self.cfg.store_dir) / f"study-{self._study_no:03d}" / "dicom"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _on_store(self, event) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as exc:  # a dataset pydicom cannot parse: tell the sender, keep serving
            log.warning("C-STORE: cannot parse a received dataset (%s)", type(exc).__name__)
            return 0xC210  # "Cannot understand"
        with self._lock:
            if not self._study_open:
                self._study_no += 1
                self._study_open = True
                self._count = 0
            self._count += 1
            n, study, folder = self._count, self._study_no, self._study_dir()
        if folder is not None:
            self._save(event, folder / f"{n:05d}.dcm")
        try:
            self._queue.put(("ds", f"received #{n}", ds, study), timeout=self.cfg.put_timeout_s)
        except queue.Full:
            log.warning("C-STORE: queue full for %.0f s, slice #%d refused (0xA700)", self.cfg.put_timeout_s, n)
            return 0xA700
        return 0x0000

    @staticmethod
    def _save(event, path: Path) -> None:
        from pydicom.filewriter import write_file_meta_info

        with open(path, "wb") as f:
            f.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(f, event.file_meta, enforce_standard=True)
            f.write(event.request.DataSet.getvalue())

    def _on_end(self, reason: str):
        def handler(event) -> None:
            with self._lock:
                was_open, self._study_open = self._study_open, False
            if was_open:  # an echo-only association does not end a study
                self._queue.put(("end", reason))

        return handler

    def _end_study(self) -> None:
        with self._lock:
            self._study_open = False

    # ---- consumer side
    def start(self) -> "StoreListener":
        try:
            from pynetdicom import AE, evt
            from pynetdicom.sop_class import CTImageStorage, Verification
        except ImportError as exc:
            raise ConfigError("'ct listen' needs pynetdicom: pip install pynetdicom") from exc
        ae = AE(ae_title=self.cfg.ae_title)
        offered, self.not_offered = supported_transfer_syntaxes()
        ae.add_supported_context(CTImageStorage, offered)
        ae.add_supported_context(Verification)
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.cfg.allow)
        ae.maximum_associations = 1
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_RELEASED, self._on_end("released")),
                    (evt.EVT_ABORTED, self._on_end("aborted"))]
        try:
            self._server = ae.start_server((self.cfg.host, self.cfg.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise InputError(f"{self.cfg.host}:{self.cfg.port}: cannot listen ({exc.strerror or exc})") from exc
        self._ae = ae
        self.port = int(self._server.server_address[1])
        return self

    def studies(self, once: bool = False, wait_s: float | None = None) -> Iterator[Study]:
        """Yield each study as its first slice arrives; ``once`` stops after the first.

        Blocks between studies until :meth:`stop`, or, with ``wait_s``, until no study began for that long.
        """
        import time

        waited_since = time.monotonic()
        while self._server is not None:
            try:
                item = self._queue.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                if wait_s is not None and time.monotonic() - waited_since > wait_s:
                    return
                continue
            if item[0] == "stop":
                return
            if item[0] == "end":  # an end with no slices in between (e.g. after an idle-ended study)
                continue
            yield Study(item[3], self, item)
            if once:
                return
            waited_since = time.monotonic()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
            try:
                self._queue.put_nowait(("stop",))
            except queue.Full:
                pass

    def __enter__(self) -> "StoreListener":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
