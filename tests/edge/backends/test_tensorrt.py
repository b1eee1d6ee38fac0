"""The TensorRT backend and its CUDA layer.

Without a GPU: the backend runs against a fake TensorRT module and a fake CUDA API that models an
asynchronous stream (copies and kernels are queued and run at ``synchronize``; graph capture records them),
so the H2D -> execute -> D2H -> sync order, the CUDA-graph path and its fallback, buffer reuse and shape
checks are exercised for real. The cuda_mem binding choice and error choke point run against fake modules.
With a GPU (``-m gpu``): TensorRT FP16 vs ONNX Runtime FP32 on the demo clips.
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

from edge.backends.tensorrt import cuda_mem
from edge.backends.tensorrt import runner as trt_backend
from edge.backends.tensorrt.cuda_mem import CudaError, DeviceBuffer
from edge.backends.tensorrt.flavour import FLAVOURS
from edge.errors import BackendError, ModelError
from edge.gpu import GpuInfo
from edge.spec import ModelSpec, TensorSpec

A_GPU = GpuInfo(True, name="Fake GPU", driver="1", compute_capability="8.7", memory_mib=8192, reason="test")


# ----------------------------------------------------------------------------------------------- fakes
class FakeCuda:
    """Device memory is a dict of byte arrays; a stream is a queue of pending operations."""

    name = "fake"

    def __init__(self, capture_ok: bool = True):
        self.mem: dict[int, np.ndarray] = {}
        self.pending: list = []
        self.capture: list | None = None
        self.capture_ok = capture_ok
        self.trace: list[str] = []
        self.freed = 0
        self._next = 0x1000

    def _queue(self, what, op):
        (self.capture if self.capture is not None else self.pending).append((what, op))

    def stream(self):
        return "stream-0"

    def stream_handle(self, stream):
        return 42

    def malloc(self, nbytes):
        self._next += 0x1000
        self.mem[self._next] = np.zeros(nbytes, np.uint8)
        return DeviceBuffer(self._next, nbytes)

    def free(self, buf):
        del self.mem[buf.ptr]
        self.freed += 1

    def pinned_empty(self, shape, dtype):
        return np.zeros(shape, dtype)

    def free_pinned(self, arr):
        pass

    def h2d_async(self, dst, src, stream):
        self._queue("H2D", lambda: self.mem[dst.ptr].__setitem__(slice(0, src.nbytes), src.reshape(-1).view(np.uint8)))

    def d2h_async(self, dst, src, stream):
        def copy():
            dst.reshape(-1).view(np.uint8)[:] = self.mem[src.ptr][: dst.nbytes]

        self._queue("D2H", copy)

    def kernel(self, op):
        self._queue("exec", op)

    def synchronize(self, stream):
        for what, op in self.pending:
            self.trace.append(what)
            op()
        self.pending = []
        self.trace.append("sync")

    def begin_capture(self, stream):
        self.capture = []

    def end_capture(self, stream):
        graph, self.capture = self.capture, None
        if not self.capture_ok:
            raise CudaError("CUDA cudaGraphInstantiate failed: cudaErrorStreamCaptureUnsupported (900)")
        return graph

    def launch(self, graph, stream):
        self.trace.append("graph")
        self.pending.extend(graph)

    def destroy_graph(self, graph):
        pass

    def destroy_stream(self, stream):
        pass


def fake_trt(cuda: FakeCuda, in_shape=(1, 1, 8, 8), profile=None, deserializes=True):
    """A TensorRT module with one engine: logits[c] = (c + 1) * image (3 classes)."""
    trt = types.ModuleType("fake_tensorrt")
    trt.__version__ = "10.3.0-fake"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.ILogger = type("ILogger", (), {"__init__": lambda self: None})
    dt = types.SimpleNamespace(name="FLOAT")
    profile = profile or (in_shape, in_shape, in_shape)

    class Context:
        def __init__(self):
            self.shapes = {"image": tuple(profile[1])}
            self.addr = {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            n = self.shapes["image"][0]
            return self.shapes["image"] if name == "image" else (n, 3, *in_shape[2:])

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr
            return True

        def execute_async_v3(self, stream):
            assert stream == 42
            shape = self.shapes["image"]

            def run():
                x = cuda.mem[self.addr["image"]][: int(np.prod(shape)) * 4].view(np.float32).reshape(shape)
                y = np.concatenate([x * (c + 1) for c in range(3)], axis=1).astype(np.float32)
                cuda.mem[self.addr["logits"]][: y.nbytes] = y.reshape(-1).view(np.uint8)

            cuda.kernel(run)
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ("image", "logits")[i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "image" else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return in_shape if name == "image" else (in_shape[0], 3, *in_shape[2:])

        def get_tensor_dtype(self, name):
            return dt

        def get_tensor_profile_shape(self, name, index):
            return [list(p) for p in profile]

        def create_execution_context(self):
            return Context()

    trt.Runtime = lambda logger: types.SimpleNamespace(
        deserialize_cuda_engine=lambda plan: Engine() if deserializes else None)
    return trt


def spec_for(in_shape=(1, 1, 8, 8), extra=None) -> ModelSpec:
    out = (in_shape[0], 3, *in_shape[2:])
    return ModelSpec("fake", "us-segmentation", TensorSpec("image", in_shape, "float32"),
                     (TensorSpec("logits", out, "float32"),), {}, ("background", "artery", "vein"),
                     extra=extra or {})


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(trt_backend, "probe_gpu", lambda: A_GPU)


def make(cuda, **kw):
    trt = fake_trt(cuda, **{k: kw.pop(k) for k in ("in_shape", "profile", "deserializes") if k in kw})
    spec = kw.pop("spec", spec_for())
    return trt_backend.TensorRTBackend(b"plan", spec, FLAVOURS["tensorrt"], where="fake.engine", cuda=cuda,
                                       trt=trt, **kw)


# ------------------------------------------------------------------------------------------- backend
def test_infer_runs_h2d_execute_d2h_then_sync_and_reuses_buffers(gpu):
    cuda = FakeCuda()
    be = make(cuda, cuda_graph=False)
    assert be.graph_mode == "off"
    cuda.trace.clear()
    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    out = be.infer({"image": x})["logits"]
    assert cuda.trace == ["H2D", "exec", "D2H", "sync"]
    np.testing.assert_allclose(out, np.concatenate([x, 2 * x, 3 * x], axis=1))
    buffers = dict(be._buffers)
    out2 = be.infer({"image": x + 1})["logits"]
    assert be._buffers == buffers and out2 is not None  # no per-frame allocation
    np.testing.assert_allclose(out2[:, 2], 3 * (x[:, 0] + 1))


def test_static_shapes_are_captured_into_a_cuda_graph(gpu):
    cuda = FakeCuda()
    be = make(cuda)
    assert be.graph_mode == "captured"
    cuda.trace.clear()
    x = np.full((1, 1, 8, 8), 0.5, np.float32)
    out = be.infer({"image": x})["logits"]
    assert cuda.trace == ["graph", "H2D", "exec", "D2H", "sync"]
    assert out[0, 1, 0, 0] == pytest.approx(1.0)


def test_capture_failure_falls_back_to_plain_execution_and_says_why(gpu, caplog):
    cuda = FakeCuda(capture_ok=False)
    be = make(cuda)
    assert be.graph_mode.startswith("off (capture failed")
    assert "CUDA graph capture failed" in caplog.text and "cudaErrorStreamCaptureUnsupported" in caplog.text
    cuda.trace.clear()
    out = be.infer({"image": np.ones((1, 1, 8, 8), np.float32)})["logits"]
    assert cuda.trace == ["H2D", "exec", "D2H", "sync"] and out[0, 2, 3, 3] == pytest.approx(3.0)


def test_wrong_static_shape_or_dtype_is_a_backend_error(gpu):
    be = make(FakeCuda())
    with pytest.raises(BackendError, match="fake.engine: input 'image' must have shape"):
        be.infer({"image": np.zeros((1, 1, 9, 9), np.float32)})
    with pytest.raises(BackendError, match="must be float32"):
        be.infer({"image": np.zeros((1, 1, 8, 8), np.float64)})


def test_dynamic_batch_inside_and_outside_the_profile(gpu):
    prof = ((1, 1, 8, 8), (1, 1, 8, 8), (2, 1, 8, 8))
    spec = spec_for(("batch", 1, 8, 8))
    be = make(FakeCuda(), in_shape=(-1, 1, 8, 8), profile=prof, spec=spec)
    assert be.graph_mode == "off (dynamic shapes)"
    out = be.infer({"image": np.ones((2, 1, 8, 8), np.float32)})["logits"]
    assert out.shape == (2, 3, 8, 8) and out[1, 2].max() == pytest.approx(3.0)
    out = be.infer({"image": np.ones((1, 1, 8, 8), np.float32)})["logits"]
    assert out.shape == (1, 3, 8, 8)
    with pytest.raises(BackendError, match=r"shape \[3, 1, 8, 8\], outside the engine's profile"):
        be.infer({"image": np.ones((3, 1, 8, 8), np.float32)})


def test_engine_that_does_not_match_the_spec_is_a_model_error(gpu):
    with pytest.raises(ModelError, match="engine IO does not match the model spec"):
        make(FakeCuda(), spec=spec_for((1, 1, 16, 16)))


def test_undeserializable_plan_is_an_engine_load_error(gpu):
    with pytest.raises(trt_backend.EngineLoadError, match="could not deserialize"):
        make(FakeCuda(), deserializes=False)


def test_close_frees_everything_once(gpu):
    cuda = FakeCuda()
    be = make(cuda)
    be.close()
    be.close()
    assert cuda.freed == 2 and not cuda.mem


def test_backend_without_gpu_is_a_backend_error(monkeypatch):
    monkeypatch.setattr(trt_backend, "probe_gpu", lambda: GpuInfo(False, reason="test: none"))
    with pytest.raises(BackendError, match="needs an NVIDIA GPU"):
        make(FakeCuda())


def test_opener_rebuilds_a_plan_that_does_not_deserialize(gpu, monkeypatch, tmp_path):
    """First cached plan fails to load -> invalidated and rebuilt once -> the second one opens."""
    calls, dropped = [], []
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")

    class Eng:
        entry = types.SimpleNamespace(engine=engine)
        spec, flavour, precision = spec_for(), FLAVOURS["tensorrt"], "fp16"
        cache = types.SimpleNamespace(invalidate=lambda entry: dropped.append(entry))

    monkeypatch.setattr(trt_backend, "ensure_engine", lambda *a, **k: calls.append(1) or Eng())
    results = iter([False, True])
    cuda = FakeCuda()
    monkeypatch.setattr(trt_backend, "import_trt", lambda fl: fake_trt(cuda, deserializes=next(results)))
    be = trt_backend.open_tensorrt_backend(tmp_path / "m.onnx", cuda=cuda)
    assert len(calls) == 2 and len(dropped) == 1 and be.name == "tensorrt:fp16"


# ------------------------------------------------------------------------------------------ cuda_mem
class _Err:
    def __init__(self, v, name):
        self.v, self.name = v, name

    def __eq__(self, other):
        return isinstance(other, _Err) and other.v == self.v

    def __int__(self):
        return self.v


def fake_cudart():
    ok, oom = _Err(0, "cudaSuccess"), _Err(2, "cudaErrorMemoryAllocation")
    rt = types.ModuleType("cuda.bindings.runtime")
    rt.cudaError_t = types.SimpleNamespace(cudaSuccess=ok)
    rt.cudaGetErrorName = lambda e: (ok, e.name.encode())
    rt.cudaMalloc = lambda n: (oom, None) if n > 1 << 40 else (ok, 0xABC)
    rt.cudaStreamCreate = lambda: (ok, 7)
    return rt


def test_cuda_python_choke_point_names_the_call_and_error():
    api = cuda_mem._CudaPython(fake_cudart())
    assert api.malloc(16).ptr == 0xABC
    assert api.stream_handle(api.stream()) == 7
    with pytest.raises(CudaError, match=r"cudaMalloc failed: cudaErrorMemoryAllocation \(2\)"):
        api.malloc(1 << 41)


def test_pycuda_choke_point_wraps_driver_errors():
    class DriverError(Exception):
        pass

    def boom(n):
        raise DriverError("cuMemAlloc failed: out of memory")

    api = cuda_mem._PyCuda(types.SimpleNamespace(mem_alloc=boom))
    with pytest.raises(CudaError, match="mem_alloc failed.*out of memory"):
        api.malloc(16)


def _install(monkeypatch, names):
    for name in names:
        mod = types.ModuleType(name)
        if name == "cuda.bindings.runtime":
            mod = fake_cudart()
        monkeypatch.setitem(sys.modules, name, mod)


def test_binding_selection_prefers_pycuda_then_cuda_python(monkeypatch):
    real_import = importlib.import_module

    def only(present):
        def imp(name, *a):
            if name.startswith(("pycuda", "cuda")):
                if name not in present:
                    raise ImportError(f"No module named '{name}'")
                return sys.modules[name]
            return real_import(name, *a)

        return imp

    _install(monkeypatch, ["pycuda.autoprimaryctx", "pycuda.driver", "cuda.bindings.runtime"])
    monkeypatch.setattr(cuda_mem.importlib, "import_module",
                        only({"pycuda.autoprimaryctx", "pycuda.driver", "cuda.bindings.runtime"}))
    assert cuda_mem.load_cuda_api().name == "pycuda"
    assert cuda_mem.load_cuda_api("cuda-python").name == "cuda-python"
    monkeypatch.setattr(cuda_mem.importlib, "import_module", only({"cuda.bindings.runtime"}))
    assert cuda_mem.load_cuda_api().name == "cuda-python"
    monkeypatch.setattr(cuda_mem.importlib, "import_module", only(set()))
    with pytest.raises(BackendError, match="pip install cuda-python"):
        cuda_mem.load_cuda_api()
    with pytest.raises(BackendError, match="unknown CUDA binding"):
        cuda_mem.load_cuda_api("cupy")


def test_pycuda_that_cannot_start_cuda_is_a_cuda_error(monkeypatch):
    def imp(name, *a):
        if name == "pycuda.autoprimaryctx":
            raise RuntimeError("cuInit failed: no CUDA-capable device is detected")
        raise ImportError(name)

    monkeypatch.setattr(cuda_mem.importlib, "import_module", imp)
    with pytest.raises(CudaError, match="could not be initialised through pycuda.*no CUDA-capable"):
        cuda_mem.load_cuda_api()


# ------------------------------------------------------------------------------------------ real GPU
@pytest.mark.gpu
@pytest.mark.slow
def test_tensorrt_fp16_matches_onnxruntime_fp32_on_the_demo_clips(tmp_path):
    """TensorRT FP16 engine (from the FP16 ONNX, through the cache) vs ONNX Runtime FP32: pooled mask Dice
    >= 0.99 and final compressibility within 0.02 on both demo clips; CUDA graph in use."""
    pytest.importorskip("onnxconverter_common")
    from edge.assets import DEMO_CLIPS, asset, asset_dir
    from edge.backends.onnxruntime import OnnxRuntimeBackend
    from edge.backends.tensorrt.cache import EngineCache
    from edge.spec import load_spec
    from export.fp16 import clip_parity, ensure_fp16
    from export.tensorrt.standin import export_standin

    bundled = asset_dir() / "resunet-lite.onnx"
    models = [tmp_path / "standin.onnx"]
    export_standin(models[0])
    if bundled.is_file():
        import shutil

        for p in (bundled, bundled.with_suffix(".json")):
            shutil.copy(p, tmp_path / p.name)
        models.append(tmp_path / bundled.name)
    for model in models:
        ensure_fp16(model)
        trt_be = trt_backend.open_tensorrt_backend(model, precision="fp16", cache=EngineCache(tmp_path / "cache"))
        assert trt_be.name.endswith(":fp16") and trt_be.graph_mode in ("captured", "native")
        ref = OnnxRuntimeBackend(model)
        results = [clip_parity(ref, trt_be, load_spec(model), asset(c)) for c in DEMO_CLIPS.values()]
        trt_be.close()
        for r in results:
            assert r.seg.min_dice >= 0.99, (model.name, r.to_json())
            assert r.compressibility_diff is not None and r.compressibility_diff <= 0.02, (model.name, r.to_json())
        assert any(r.compressibility_ref is not None for r in results), "parity on no measurement proves nothing"


def test_trt_runtime_modules_stay_torch_free_and_lazy():
    """Importing the backend, builder, cache and CUDA layer loads no torch, no export/, and no TensorRT or
    CUDA library (those are imported only after the GPU probe, when a backend is opened)."""
    import subprocess

    code = ("import sys, edge.backends.tensorrt.runner, edge.backends.tensorrt.engine, "
            "edge.backends.tensorrt.cuda_mem, edge.backends.select, edge.commands.doctor\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'export', 'training', 'benchmarks', 'onnx', 'tensorrt', 'tensorrt_rtx', 'pycuda')"
            " or m.startswith('cuda.bindings')]\n"
            "print(', '.join(bad)); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"imported: {proc.stdout} {proc.stderr}"
