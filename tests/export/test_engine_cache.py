"""The engine cache: keys, atomic writes, two processes building one engine, entries that must not be
trusted, progress output. No TensorRT needed: builds are plain functions returning bytes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from edge.backends.tensorrt import cache as trt_cache
from edge.backends.tensorrt.cache import ENV, EngineCache, KeyParts, default_cache_dir, progress

REPO = Path(__file__).resolve().parents[2]
PROFILE = ({"name": "image", "min": [1, 1, 192, 192], "opt": [1, 1, 192, 192], "max": [1, 1, 192, 192]},)
PARTS = KeyParts("ab" * 32, "tensorrt_rtx", "1.7.1.116", "aot:default", "fp16", PROFILE)


def builder(plan=b"PLAN-BYTES", calls=None):
    def build():
        if calls is not None:
            calls.append(1)
        return plan, {"io": [{"name": "image", "mode": "input", "shape": [1, 1, 192, 192], "dtype": "float32"}]}

    return build


def test_key_is_stable_and_depends_on_every_part():
    assert PARTS.digest() == KeyParts(**PARTS.__dict__).digest()
    assert len(PARTS.digest()) == 64
    variants = [
        replace(PARTS, onnx_sha256="cd" * 32), replace(PARTS, flavour="tensorrt"),
        replace(PARTS, flavour_version="1.8.0"), replace(PARTS, target="NVIDIA RTX A2000 sm8.6"),
        replace(PARTS, target="aot:SM75"), replace(PARTS, precision="fp32"),
        replace(PARTS, profile=({**PROFILE[0], "max": [2, 1, 192, 192]},)),
    ]
    digests = {v.digest() for v in variants}
    assert len(digests) == len(variants) and PARTS.digest() not in digests


def test_cache_dir_default_and_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "dvt-edge" / "engines"
    monkeypatch.setenv(ENV, str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    assert EngineCache().root == tmp_path / "x"


def test_build_once_then_reuse_with_sidecar(tmp_path):
    calls = []
    cache = EngineCache(tmp_path)
    e1 = cache.get_or_build("resunet-lite.fp16", PARTS, builder(calls=calls), stream=io.StringIO())
    assert e1.built and e1.engine.name == f"resunet-lite.fp16-{PARTS.digest()[:16]}.engine"
    assert e1.engine.read_bytes() == b"PLAN-BYTES"
    meta = json.loads(e1.sidecar.read_text())
    assert meta["key"] == PARTS.digest() and meta["key_parts"]["precision"] == "fp16"
    assert meta["engine"]["bytes"] == 10 and meta["io"][0]["name"] == "image" and "built_at" in meta
    mtime = e1.engine.stat().st_mtime_ns
    e2 = EngineCache(tmp_path).get_or_build("resunet-lite.fp16", PARTS, builder(calls=calls))
    assert not e2.built and e2.engine == e1.engine and e2.engine.stat().st_mtime_ns == mtime
    assert len(calls) == 1 and cache.builds == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["no sidecar", "bad json", "other key", "truncated engine", "no engine"])
def test_entries_that_do_not_check_out_are_rebuilt(tmp_path, damage, caplog):
    cache = EngineCache(tmp_path)
    e = cache.get_or_build("m", PARTS, builder(), stream=io.StringIO())
    if damage == "no sidecar":
        e.sidecar.unlink()
    elif damage == "bad json":
        e.sidecar.write_text("{not json")
    elif damage == "other key":
        e.sidecar.write_text(json.dumps({**e.meta, "key": "0" * 64}))
    elif damage == "truncated engine":
        e.engine.write_bytes(b"PLAN")
    else:
        e.engine.unlink()
    calls = []
    again = cache.get_or_build("m", PARTS, builder(calls=calls), stream=io.StringIO())
    assert again.built and calls == [1] and again.engine.read_bytes() == b"PLAN-BYTES"
    if damage != "no sidecar":
        assert "rebuilding" in caplog.text


def test_invalidate_forces_a_rebuild(tmp_path):
    cache = EngineCache(tmp_path)
    e = cache.get_or_build("m", PARTS, builder(), stream=io.StringIO())
    cache.invalidate(e)
    assert cache.lookup("m", PARTS) is None
    assert cache.get_or_build("m", PARTS, builder(), stream=io.StringIO()).built


def test_failed_build_or_write_leaves_no_entry_and_no_temp_files(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path)

    def broken():
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("m", PARTS, broken, stream=io.StringIO())
    assert cache.lookup("m", PARTS) is None

    def no_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(trt_cache.os, "replace", no_replace)
    with pytest.raises(OSError, match="disk full"):
        cache.get_or_build("m", PARTS, builder(), stream=io.StringIO())
    monkeypatch.undo()
    assert cache.lookup("m", PARTS) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m-{PARTS.digest()[:16]}.lock"]


_WORKER = textwrap.dedent("""
    import io, json, os, sys, time
    sys.path.insert(0, {repo!r})
    from edge.backends.tensorrt.cache import EngineCache, KeyParts
    parts = KeyParts(**json.loads({parts!r}))
    parts = KeyParts(**{{**parts.__dict__, "profile": tuple(parts.profile)}})
    def build():
        with open({log!r}, "a") as f:
            f.write(f"{{os.getpid()}} start\\n")
        time.sleep(1.0)  # long enough that the other process arrives while this one builds
        with open({log!r}, "a") as f:
            f.write(f"{{os.getpid()}} end\\n")
        return b"PLAN-" + str(os.getpid()).encode(), {{}}
    e = EngineCache({root!r}).get_or_build("m", parts, build, stream=io.StringIO())
    print(json.dumps({{"built": e.built, "engine": str(e.engine), "bytes": e.engine.read_bytes().decode()}}))
""")


def test_two_processes_build_one_engine_once(tmp_path):
    log = tmp_path / "builds.log"
    code = _WORKER.format(repo=str(REPO), parts=json.dumps(PARTS.to_json()), log=str(log), root=str(tmp_path / "c"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(o["built"] for o in outs) == [False, True]
    assert outs[0]["engine"] == outs[1]["engine"] and outs[0]["bytes"] == outs[1]["bytes"]
    lines = log.read_text().split()
    assert lines.count("start") == 1 and lines.count("end") == 1


def test_progress_on_a_pipe_prints_start_and_end():
    out = io.StringIO()
    with progress("building engine x", stream=out, interval_s=0.05):
        time.sleep(0.12)
    text = out.getvalue()
    assert text.startswith("building engine x ...\n") and "building engine x: done in" in text
    assert "building engine x ... 0 s" in text  # periodic elapsed-time lines while it runs
    out = io.StringIO()
    with pytest.raises(ValueError), progress("y", stream=out):
        raise ValueError
    assert "y: FAILED in" in out.getvalue()


def test_progress_on_a_terminal_spins(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    with progress("building", stream=out, interval_s=0.02):
        time.sleep(0.1)
    assert "\r" in out.getvalue() and " s" in out.getvalue() and "building: done" in out.getvalue()
    assert os.linesep in out.getvalue()
