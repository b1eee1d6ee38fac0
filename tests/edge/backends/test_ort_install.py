"""ONNX Runtime is an extra: [cpu] (onnxruntime) or [gpu] (onnxruntime-gpu), never both in one environment;
a clear error naming what to install when neither is there; a warning when two share an environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import edge.cli
from edge.backends import ort_install
from edge.backends import select as sel
from edge.errors import BackendError

REPO = Path(__file__).resolve().parents[3]
ORT = {"onnxruntime", "onnxruntime-gpu"}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower()


def _resolve(extras: list[str]) -> set[str]:
    """Distribution names that `pip install ".[extras]"` asks for (extras expanded recursively)."""
    proj = _project()
    names = {_name(r) for r in proj["dependencies"]}
    todo, seen = list(extras), set()
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.add(e)
        assert e in proj["optional-dependencies"], f"unknown extra {e}"
        for r in proj["optional-dependencies"][e]:
            m = re.match(r"dvt-edge\[([^\]]+)\]", r)
            if m:
                todo += m.group(1).split(",")
            else:
                names.add(_name(r))
    return names


def test_onnxruntime_is_not_a_hard_dependency():
    assert not {_name(r) for r in _project()["dependencies"]} & ORT


@pytest.mark.parametrize("extras,wanted", [
    (["cpu"], "onnxruntime"),
    (["dev"], "onnxruntime"),  # the test command
    (["ui", "ct", "cpu"], "onnxruntime"),
    (["gpu"], "onnxruntime-gpu"),
    (["tensorrt-rtx", "gpu"], "onnxruntime-gpu"),
])
def test_each_install_pulls_exactly_one_onnxruntime(extras, wanted):
    assert _resolve(extras) & ORT == {wanted}


def test_readme_install_commands_pull_one_onnxruntime():
    """Every `pip install .[...]` / `dvt-edge[...]` line of the README that runs a bedside command pulls one ORT."""
    text = (REPO / "README.md").read_text()
    demo = re.search(r"pip install (\S+) && dvt-edge demo", text)
    assert demo, "the README's demo command is missing"
    extras = re.findall(r"\[([^\]]+)\]", demo.group(1))
    assert extras and _resolve(extras[0].split(",")) & ORT == {"onnxruntime"}
    test_cmd = re.search(r'pip install -e "\.\[dev\]" && python -m pytest -q', text)
    assert test_cmd and _resolve(["dev"]) & ORT == {"onnxruntime"}
    assert '-e ".[dev]" && python -m pytest -q' in (REPO / ".ci" / "run").read_text()


def test_no_runtime_installed_is_one_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sel, "_ort_providers", lambda: [])
    monkeypatch.setattr(sel, "tensorrt_flavour", lambda: None)
    with pytest.raises(BackendError, match=r"dvt-edge\[cpu\].*dvt-edge\[gpu\].*Jetson"):
        sel.choose_backend("auto")
    with pytest.raises(BackendError, match=r"backend 'onnxruntime' asked for, but no ONNX Runtime.*dvt-edge\[cpu\]"):
        sel.choose_backend("onnxruntime")
    code = edge.cli.main(["us", "run", str(REPO / "edge" / "assets" / "demo-normal.mp4"), "--max-frames", "2",
                          "--no-video", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 5 and len(err) == 1 and "no ONNX Runtime" in err[0] and "dvt-edge[cpu]" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # stopped before any output


def test_backend_without_the_module_names_the_model(monkeypatch, tmp_path):
    import sys

    from edge.backends.onnxruntime import OnnxRuntimeBackend

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(BackendError, match=r"m\.onnx: no ONNX Runtime is installed.*dvt-edge\[cpu\]"):
        OnnxRuntimeBackend(tmp_path / "m.onnx")


class _Dist:
    def __init__(self, name, version):
        self.metadata = {"Name": name}
        self.version = version


def test_two_runtimes_in_one_environment_are_flagged(monkeypatch):
    monkeypatch.setattr(ort_install, "distributions",
                        lambda: [_Dist("onnxruntime", "1.20.0"), _Dist("onnxruntime_gpu", "1.20.1"), _Dist("numpy", "2")])
    assert ort_install.installed_ort() == [("onnxruntime", "1.20.0"), ("onnxruntime-gpu", "1.20.1")]
    w = ort_install.duplicate_warning()
    assert "onnxruntime 1.20.0, onnxruntime-gpu 1.20.1" in w and "pip uninstall -y onnxruntime onnxruntime-gpu" in w
    from edge.commands import doctor

    assert "WARNING       2 ONNX Runtime packages" in doctor.render(doctor.collect())
    monkeypatch.setattr(ort_install, "distributions", lambda: [_Dist("onnxruntime", "1.20.0")])
    assert ort_install.duplicate_warning() is None


def test_this_environment_has_exactly_one():
    assert len(ort_install.installed_ort()) == 1, ort_install.installed_ort()
