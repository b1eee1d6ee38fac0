"""Send result files to an archive by DICOM C-STORE (SCU), in the background, with retries and back-off.

``Sender.submit(files, label)`` returns at once: the receiver never waits for the archive. One thread sends
the queued sets in order, one association per attempt; a set whose association fails, or whose C-STORE
answers a failure status, is tried again after ``backoff_s``, 2x, 4x, ... (capped at ``max_backoff_s``), at
most ``attempts`` times. The files stay on disk whatever happens (they are written before they are
queued), and every outcome is reported through ``notice``: sent, retrying (why), given up (where the files
are and how to send them by hand).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge.errors import ConfigError


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Destination":
        """``AE@host:port``, e.g. ``ORTHANC@10.0.0.5:4242``; ConfigError saying the expected form otherwise."""
        hint = "expected AE@host:port, e.g. PACS@10.0.0.5:104"
        ae, at, rest = text.partition("@")
        host, colon, port = rest.rpartition(":")
        if not at or not colon or not ae or not host:
            raise ConfigError(f"--send-to {text!r}: {hint}")
        if not 1 <= len(ae) <= 16 or "\\" in ae:
            raise ConfigError(f"--send-to {text!r}: the AE title must have 1 to 16 characters ({hint})")
        try:
            p = int(port)
        except ValueError:
            raise ConfigError(f"--send-to {text!r}: port {port!r} is not a number ({hint})") from None
        if not 1 <= p <= 65535:
            raise ConfigError(f"--send-to {text!r}: port must be 1..65535")
        return cls(ae, host.strip("[]"), p)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass
class Outcome:
    label: str
    files: list[Path]
    sent: bool = False
    attempts: int = 0
    message: str = ""


@dataclass
class Sender:
    dest: Destination
    calling_ae: str = "DVTEDGE"
    attempts: int = 6
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    timeout_s: float = 30.0
    queue_size: int = 256
    notice: Callable[[str], None] = print
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self):
        self._q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="dvt-edge-sender", daemon=True)
        self._thread.start()

    def submit(self, files: list[Path], label: str) -> bool:
        """Queue ``files`` for sending; False (and a notice) when the queue is full (the files stay on disk)."""
        out = Outcome(label, [Path(f) for f in files])
        try:
            self._idle.clear()
            self._q.put_nowait(out)
        except queue.Full:
            self.notice(f"{label}: not queued for {self.dest}, {self.queue_size} result sets wait already; "
                        f"the files stay in {out.files[0].parent}")
            return False
        self.outcomes.append(out)
        return True

    def pending(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.sent and not o.message.startswith("given up")]

    def wait(self, timeout_s: float) -> bool:
        """Wait until everything queued has been sent or given up; False on timeout."""
        return self._idle.wait(timeout_s)

    def close(self, wait_s: float = 0.0) -> list[Outcome]:
        """Stop after waiting up to ``wait_s`` for the queue; returns the sets not sent (still on disk)."""
        if wait_s > 0:
            self.wait(wait_s)
        self._stop.set()
        self._thread.join(1.0)
        return self.pending()

    # ------------------------------------------------------------ the sending thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = self._q.get(timeout=0.1)
            except queue.Empty:
                if self._q.empty():
                    self._idle.set()
                continue
            self._send_with_retries(out)
            if self._q.empty():
                self._idle.set()

    def _send_with_retries(self, out: Outcome) -> None:
        remaining = list(out.files)
        delay = self.backoff_s
        while remaining and not self._stop.is_set():
            out.attempts += 1
            remaining, why = self._send_once(remaining)
            if not remaining:
                out.sent, out.message = True, f"sent to {self.dest}"
                self.notice(f"{out.label}: {len(out.files)} file(s) sent to {self.dest}")
                return
            if out.attempts >= self.attempts:
                out.message = (f"given up after {out.attempts} attempts ({why}); the files are in "
                               f"{remaining[0].parent}: send them with any C-STORE tool, e.g. dcmtk's "
                               f"'storescu -aec {self.dest.ae_title} {self.dest.host} {self.dest.port} FILES'")
                self.notice(f"{out.label}: {out.message}")
                return
            out.message = f"attempt {out.attempts} failed: {why}"
            self.notice(f"{out.label}: sending to {self.dest} failed ({why}); retrying in {delay:g} s")
            if self._stop.wait(delay):
                break
            delay = min(self.max_backoff_s, delay * 2)
        if remaining:
            out.message = out.message or "not sent"

    def _send_once(self, files: list[Path]) -> tuple[list[Path], str]:
        """Send over one association; returns (files not stored, why)."""
        import pydicom
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE

        try:
            datasets = [pydicom.dcmread(f) for f in files]
        except Exception as exc:
            return files, f"cannot read a result file ({type(exc).__name__}: {exc})"
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        contexts = {}
        for ds in datasets:
            ts = str(ds.file_meta.TransferSyntaxUID)
            contexts.setdefault(str(ds.SOPClassUID), {ts, ExplicitVRLittleEndian, ImplicitVRLittleEndian})
        for sop, syntaxes in contexts.items():
            ae.add_requested_context(sop, sorted(syntaxes))
        try:
            assoc = ae.associate(self.dest.host, self.dest.port, ae_title=self.dest.ae_title)
        except Exception as exc:  # name resolution and the like
            return files, f"cannot connect ({type(exc).__name__}: {exc})"
        if not assoc.is_established:
            return files, "association refused or no answer (is the archive up, and does it know our AE title " \
                          f"'{self.calling_ae}'?)"
        failed, why = [], ""
        try:
            for f, ds in zip(files, datasets):
                try:
                    status = assoc.send_c_store(ds)
                except Exception as exc:
                    failed.append(f)
                    why = f"C-STORE error ({type(exc).__name__})"
                    continue
                code = getattr(status, "Status", None)
                if code is None or code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    failed.append(f)
                    why = "no answer" if code is None else f"C-STORE status 0x{code:04X}"
        finally:
            if assoc.is_established:
                assoc.release()
        return failed, why
