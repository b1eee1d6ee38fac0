"""Backend choice: what ``--backend auto`` picks and why, and errors for backends that cannot run here.

The GPU and the installed packages are faked through the names select.py looks up, so every branch runs
on this GPU-less machine; the real-machine cases are asserted only where they hold (no GPU here)."""

from __future__ import annotations

import pytest

from edge.backends import select
from edge.errors import BackendError
from edge.gpu import GpuInfo

NO_GPU = GpuInfo(False, reason="nvidia-smi not found")
A_GPU = GpuInfo(True, name="NVIDIA RTX A2000", driver="580.1", compute_capability="8.6", memory_mib=6144,
                reason="nvidia-smi")


@pytest.fixture
def machine(monkeypatch):
    """Set what select.py sees: GPU, TensorRT flavour, CUDA bindings, ORT providers."""

    def set_(gpu=NO_GPU, flavour=None, bindings=(), providers=("CPUExecutionProvider",)):
        monkeypatch.setattr(select, "probe_gpu", lambda: gpu)
        monkeypatch.setattr(select, "tensorrt_flavour", lambda: flavour)
        monkeypatch.setattr(select, "available_bindings", lambda: list(bindings))
        monkeypatch.setattr(select, "_ort_providers", lambda: list(providers))

    return set_


def test_auto_on_this_machine_is_ort_cpu_with_a_reason():
    if select.probe_gpu().available:
        pytest.skip("this machine has a GPU")
    choice = select.choose_backend("auto")
    assert choice.name == "onnxruntime-cpu"
    assert "no NVIDIA GPU" in choice.reason


def test_tensorrt_without_gpu_is_an_error_naming_the_gpu(machine):
    machine(gpu=NO_GPU, flavour="tensorrt_rtx", bindings=("cuda-python",))
    with pytest.raises(BackendError, match="no NVIDIA GPU"):
        select.choose_backend("tensorrt")


def test_tensorrt_without_gpu_on_the_real_machine():
    if select.probe_gpu().available:
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendError, match="tensorrt.*no NVIDIA GPU"):
        select.choose_backend("tensorrt")
    with pytest.raises(BackendError, match="onnxruntime-cuda"):
        select.choose_backend("onnxruntime-cuda")


def test_onnxruntime_cuda_without_the_provider_is_an_error(machine):
    machine(gpu=A_GPU, flavour=None)
    with pytest.raises(BackendError, match=r"pip install .dvt-edge\[gpu\]."):
        select.choose_backend("onnxruntime-cuda")


def test_auto_picks_tensorrt_with_gpu_flavour_and_binding(machine):
    machine(gpu=A_GPU, flavour="tensorrt", bindings=("cuda-python",))
    choice = select.choose_backend("auto")
    assert choice.name == "tensorrt"
    assert "RTX A2000" in choice.reason and "tensorrt" in choice.reason


def test_auto_picks_tensorrt_with_a_fake_tensorrt_module(monkeypatch):
    """The real find_spec path: a fake ``tensorrt`` module in sys.modules is what select.py finds."""
    import importlib.machinery
    import sys
    import types

    fake = types.ModuleType("tensorrt")
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(select, "probe_gpu", lambda: A_GPU)
    monkeypatch.setattr(select, "available_bindings", lambda: ["pycuda"])
    assert select.tensorrt_flavour() == "tensorrt"
    assert select.choose_backend("auto").name == "tensorrt"


def test_auto_says_why_it_skips_tensorrt_without_a_cuda_binding(machine):
    machine(gpu=A_GPU, flavour="tensorrt", bindings=(), providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    choice = select.choose_backend("auto")
    assert choice.name == "onnxruntime-cuda"
    assert "no CUDA binding" in choice.reason


def test_tensorrt_asked_without_a_cuda_binding_is_an_error(machine):
    machine(gpu=A_GPU, flavour="tensorrt_rtx", bindings=())
    with pytest.raises(BackendError, match="cuda-python"):
        select.choose_backend("tensorrt")


def test_auto_falls_back_to_ort_cuda_then_cpu(machine):
    machine(gpu=A_GPU, flavour=None, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert select.choose_backend("auto").name == "onnxruntime-cuda"
    machine(gpu=A_GPU, flavour=None, providers=("CPUExecutionProvider",))
    assert select.choose_backend("auto").name == "onnxruntime-cpu"


def test_unknown_backend_and_no_runtime(machine):
    with pytest.raises(BackendError, match="unknown backend"):
        select.choose_backend("coreml")
    machine(providers=())
    with pytest.raises(BackendError, match=r"pip install .dvt-edge\[cpu\]."):
        select.choose_backend("auto")


def test_open_backend_tensorrt_without_gpu_fails_before_touching_tensorrt(monkeypatch, tmp_path):
    """The opener probes the GPU first: no import of tensorrt, no engine build, a clear error."""
    from edge.backends.tensorrt import runner as trt_backend

    monkeypatch.setattr(trt_backend, "probe_gpu", lambda: NO_GPU)
    monkeypatch.setattr(trt_backend, "ensure_engine", lambda *a, **k: pytest.fail("must not build without a GPU"))
    with pytest.raises(BackendError, match="needs an NVIDIA GPU"):
        trt_backend.open_tensorrt_backend(tmp_path / "m.onnx")


def test_doctor_reports_the_installed_flavours():
    from importlib.util import find_spec

    from edge.commands.doctor import collect, render

    facts = collect()
    installed = facts["tensorrt"]["installed"]
    for mod in ("tensorrt", "tensorrt_rtx"):
        assert (mod in installed) == (find_spec(mod) is not None)
    text = render(facts)
    assert ("tensorrt_rtx" in text) == ("tensorrt_rtx" in installed)
    assert facts["auto_backend"]["backend"] is not None


def test_onnxruntime_spin_waiting_is_off_unless_asked(monkeypatch):
    """The jobs run capture, video and decode threads beside the model; spinning intra-op threads take their
    CPU (measured: benchmarks/results/cpu-2core-quiet/README.md). On by argument or DVT_EDGE_ORT_SPINNING=1."""
    from edge.assets import us_model
    from edge.backends.onnxruntime import SPINNING_ENV, OnnxRuntimeBackend

    def spinning(**kw) -> str:
        be = OnnxRuntimeBackend(us_model(), threads=1, **kw)
        try:
            return be._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        finally:
            be.close()

    monkeypatch.delenv(SPINNING_ENV, raising=False)
    assert spinning() == "0"
    assert spinning(spinning=True) == "1"
    monkeypatch.setenv(SPINNING_ENV, "1")
    assert spinning() == "1" and spinning(spinning=False) == "0"
