"""The engine cache: one serialized engine per (model bytes, builder, target device, precision, shapes).

Layout under the cache directory (default ``~/.cache/dvt-edge/engines``; env ``DVT_EDGE_ENGINE_CACHE``)::

    <name>-<key16>.engine   the serialized plan (bytes TensorRT wrote)
    <name>-<key16>.json     sidecar: key parts, engine sha256/bytes, IO, model spec, build time, builder
    <name>-<key16>.lock     flock() target: one process builds, the others wait and then reuse
    timing-<...>.cache      standard TensorRT's timing cache, shared by the models of one GPU + version

The key is the sha256 of the canonical JSON of :class:`KeyParts`. Writes are atomic (temp file in the same
directory + ``os.replace``), the engine first and the sidecar last, so a sidecar that exists and matches
means a complete engine. An entry whose sidecar is missing or disagrees (key, sha256) is rebuilt, never
trusted. POSIX only (``fcntl``): the edge targets are Linux and Jetson.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

ENV = "DVT_EDGE_ENGINE_CACHE"
SCHEMA = "dvt-edge/engine-cache@1"
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dvt-edge" / "engines"


@dataclass(frozen=True)
class KeyParts:
    """Everything an engine depends on. ``target`` is a GPU (name + compute capability) or an RTX AOT
    target list; ``profile`` is the optimisation profile as JSON (one min/opt/max per input)."""

    onnx_sha256: str
    flavour: str
    flavour_version: str
    target: str
    precision: str
    profile: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "profile": [dict(p) for p in self.profile]}

    def digest(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Entry:
    engine: Path
    sidecar: Path
    meta: dict[str, Any]
    built: bool  # True when this call built it, False when it came from the cache
    seconds: float = 0.0  # build time when built


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "model"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (``fcntl.flock``) held for the body; released if the process dies."""
    import fcntl

    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def progress(label: str, stream: TextIO | None = None, interval_s: float | None = None) -> Iterator[None]:
    """A spinner with elapsed seconds on a terminal; on a pipe, a line at start, every 30 s, and at the end.
    Engine builds take minutes on a Jetson: the user must see that something is happening."""
    stream = stream or sys.stderr
    tty = getattr(stream, "isatty", lambda: False)()
    interval = interval_s if interval_s is not None else (0.2 if tty else 30.0)
    done = threading.Event()
    t0 = time.monotonic()

    def spin() -> None:
        frames = "|/-\\"
        i = 0
        while not done.wait(interval):
            i += 1
            elapsed = time.monotonic() - t0
            if tty:
                stream.write(f"\r{frames[i % 4]} {label} ... {elapsed:5.1f} s")
            else:
                stream.write(f"{label} ... {elapsed:.0f} s\n")
            stream.flush()

    stream.write(f"{label} ...\n" if not tty else f"  {label} ...")
    stream.flush()
    thread = threading.Thread(target=spin, name="engine-build-progress", daemon=True)
    thread.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        done.set()
        thread.join()
        stream.write(f"{chr(13) if tty else ''}{label}: {'done' if ok else 'FAILED'} in "
                     f"{time.monotonic() - t0:.1f} s\n")
        stream.flush()


@dataclass
class EngineCache:
    """Engines on disk, keyed by :class:`KeyParts`. ``builds`` counts the builds this object ran."""

    root: Path = field(default_factory=default_cache_dir)
    builds: int = 0

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def paths(self, name: str, parts: KeyParts) -> tuple[Path, Path, Path]:
        stem = f"{_slug(name)}-{parts.digest()[:16]}"
        return self.root / f"{stem}.engine", self.root / f"{stem}.json", self.root / f"{stem}.lock"

    def timing_cache_path(self, parts: KeyParts) -> Path:
        return self.root / f"timing-{_slug(parts.flavour)}-{_slug(parts.flavour_version)}-{_slug(parts.target)}.cache"

    def lookup(self, name: str, parts: KeyParts) -> Entry | None:
        """The cached entry when its sidecar exists and matches the key and the engine's sha256; else None
        (with the reason logged)."""
        engine, sidecar, _ = self.paths(name, parts)
        why = None
        try:
            meta = json.loads(sidecar.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            meta, why = {}, f"unreadable sidecar ({exc})"
        if why is None and (meta.get("schema") != SCHEMA or meta.get("key") != parts.digest()):
            why = "sidecar key does not match"
        if why is None:
            try:
                data = engine.read_bytes()
            except OSError as exc:
                data, why = b"", f"engine unreadable ({exc})"
            if why is None and sha256_bytes(data) != meta.get("engine", {}).get("sha256"):
                why = "engine bytes do not match the sidecar sha256"
        if why:
            log.warning("engine cache: %s: %s; rebuilding", engine.name, why)
            return None
        return Entry(engine, sidecar, meta, built=False)

    def invalidate(self, entry: Entry) -> None:
        """Drop an entry the runtime could not use (e.g. it failed to deserialize): next call rebuilds."""
        for p in (entry.sidecar, entry.engine):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def get_or_build(self, name: str, parts: KeyParts, build: Callable[[], tuple[bytes, dict[str, Any]]],
                     *, label: str | None = None, stream: TextIO | None = None) -> Entry:
        """The cached engine, or build it (``build() -> (plan bytes, extra sidecar facts)``) under the
        entry's lock so two processes never build or write one engine."""
        hit = self.lookup(name, parts)
        if hit is not None:
            return hit
        self.root.mkdir(parents=True, exist_ok=True)
        engine, sidecar, lock = self.paths(name, parts)
        with file_lock(lock):
            hit = self.lookup(name, parts)  # another process may have built it while we waited
            if hit is not None:
                return hit
            t0 = time.monotonic()
            with progress(label or f"building engine {engine.name}", stream=stream):
                plan, extra = build()
            seconds = time.monotonic() - t0
            self.builds += 1
            atomic_write(engine, plan)
            meta = {
                "schema": SCHEMA, "key": parts.digest(), "key_parts": parts.to_json(),
                "engine": {"file": engine.name, "sha256": sha256_bytes(plan), "bytes": len(plan)},
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(seconds, 3), **extra,
            }
            atomic_write(sidecar, (json.dumps(meta, indent=2) + "\n").encode())
        return Entry(engine, sidecar, meta, built=True, seconds=seconds)
