"""TensorRT backend: a cached engine behind the Backend contract, for the frame loop.

:func:`open_tensorrt_backend` runs before the stream starts: it probes the GPU (BackendError without one),
builds or finds the engine through the cache (:func:`edge.backends.tensorrt.engine.ensure_engine`, with console
progress), deserializes it, allocates every buffer once and warms up. A plan that fails to deserialize is
dropped from the cache and rebuilt once. Nothing in :meth:`TensorRTBackend.infer` allocates.

Per frame: copy feeds into pinned host buffers -> H2D -> ``execute_async_v3`` -> D2H -> stream sync. IO
is by tensor name. For static shapes the whole H2D/execute/D2H sequence is captured once into a CUDA graph
after warm-up and replayed per frame; if capture fails the reason is logged and plain execution is used.
TensorRT-RTX does its own graph capture (see :mod:`edge.backends.tensorrt.flavour`). Returned arrays are the
backend's pinned output buffers: valid until the next ``infer`` (see :mod:`edge.backends.base`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import check_feeds
from edge.backends.tensorrt.cuda_mem import CudaApi, DeviceBuffer, load_cuda_api
from edge.backends.tensorrt.engine import ensure_engine, trt_logger
from edge.backends.tensorrt.flavour import Flavour, create_context, import_trt
from edge.backends.tensorrt.io import IoTensor, ShapeRange, check_input_shape, check_io, dtype_name
from edge.errors import BackendError, ModelError
from edge.gpu import probe_gpu
from edge.spec import ModelSpec, TensorSpec

log = logging.getLogger(__name__)
WARMUP_RUNS = 3


def engine_io(trt: Any, engine: Any) -> tuple[IoTensor, ...]:
    """IO tensors of a deserialized ``ICudaEngine`` (names, modes, shapes with -1 for dynamic, dtypes)."""
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        dtype = dtype_name(engine.get_tensor_dtype(name))
        out.append(IoTensor(name, mode, tuple(engine.get_tensor_shape(name)), dtype))
    return tuple(out)


class EngineLoadError(BackendError):
    """A cached plan that this runtime cannot deserialize (other version or GPU): rebuild it."""


class TensorRTBackend:
    """One engine, one execution context, one stream, buffers allocated once.

    plan: serialized engine bytes (the caller keeps nothing). spec: the model spec it must match.
    cuda: a :class:`~edge.backends.tensorrt.cuda_mem.CudaApi` (None: pycuda, else cuda-python).
    cuda_graph: capture a CUDA graph after warm-up when every shape is static (standard TensorRT).
    """

    def __init__(self, plan: bytes, spec: ModelSpec, flavour: Flavour, *, where: str, cuda: CudaApi | None = None,
                 cuda_graph: bool = True, precision: str = "fp32", trt: Any = None):
        gpu = probe_gpu()
        if not gpu.available:
            raise BackendError(f"the TensorRT backend needs an NVIDIA GPU, and there is {gpu.describe()}; "
                               "use --backend auto or onnxruntime")
        self.where, self.spec, self.flavour = where, spec, flavour
        self.name = f"{flavour.module}:{precision}"
        self._trt = trt or import_trt(flavour)
        self._cuda = cuda or load_cuda_api()
        self._buffers: dict[str, DeviceBuffer] = {}
        self._host: dict[str, np.ndarray] = {}
        self._stream = self._graph = None
        self._runtime = self._trt.Runtime(trt_logger(self._trt))
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise EngineLoadError(f"{where}: {flavour.module} {self._trt.__version__} could not deserialize this "
                                  "engine (built by another version or for another GPU?); it will be rebuilt")
        self.io = engine_io(self._trt, self._engine)
        check_io(spec, self.io, where=where)
        self._context, self.graph_mode = create_context(self._trt, flavour, self._engine)
        self.ranges = {t.name: ShapeRange(t.name, *(tuple(s) for s in self._engine.get_tensor_profile_shape(t.name, 0)))
                       for t in self.io if t.mode == "input"}
        self.inputs = tuple(TensorSpec(t.name, spec.input.shape, t.dtype) for t in self.io if t.mode == "input")
        self.outputs = tuple(TensorSpec(t.name, next(o.shape for o in spec.outputs if o.name == t.name), t.dtype)
                             for t in self.io if t.mode == "output")
        try:
            self._allocate()
            self._warm_up(cuda_graph)
        except BaseException:
            self.close()
            raise

    # -- setup (before the stream)
    def _allocate(self) -> None:
        self._stream = self._cuda.stream()
        for t in self.io:  # inputs at their profile max; outputs at the shape that max implies
            if t.mode == "input":
                self._context.set_input_shape(t.name, self.ranges[t.name].max)
        for t in self.io:
            shape = tuple(self._context.get_tensor_shape(t.name))
            if any(d < 0 for d in shape):
                raise ModelError(f"{self.where}: output '{t.name}' has a data-dependent shape {list(shape)}; "
                                 "the TensorRT backend needs shapes known from the inputs")
            self._host[t.name] = self._cuda.pinned_empty(shape, np.dtype(t.dtype))
            self._buffers[t.name] = self._cuda.malloc(self._host[t.name].nbytes)
            if not self._context.set_tensor_address(t.name, self._buffers[t.name].ptr):
                raise BackendError(f"{self.where}: TensorRT refused the buffer address of '{t.name}'")
        for t in self.io:
            if t.mode == "input":
                self._context.set_input_shape(t.name, self.ranges[t.name].opt)

    def _enqueue(self) -> None:
        s = self._cuda.stream_handle(self._stream)
        for t in self.io:
            if t.mode == "input":
                self._cuda.h2d_async(self._buffers[t.name], self._host[t.name], self._stream)
        if not self._context.execute_async_v3(s):
            raise BackendError(f"{self.where}: TensorRT execute_async_v3 failed (see the TensorRT log with --debug)")
        for t in self.io:
            if t.mode == "output":
                self._cuda.d2h_async(self._host[t.name], self._buffers[t.name], self._stream)

    def _warm_up(self, cuda_graph: bool) -> None:
        for name, host in self._host.items():
            if name in self.ranges:
                host.fill(0)
        for _ in range(WARMUP_RUNS):  # first runs allocate lazily (and JIT-compile on RTX)
            self._enqueue()
            self._cuda.synchronize(self._stream)
        if self.graph_mode == "native":
            return
        if not cuda_graph or not all(r.static for r in self.ranges.values()):
            self.graph_mode = "off" if not cuda_graph else "off (dynamic shapes)"
            return
        try:
            self._cuda.begin_capture(self._stream)
            try:
                self._enqueue()
            finally:
                graph = self._cuda.end_capture(self._stream)
            self._cuda.launch(graph, self._stream)
            self._cuda.synchronize(self._stream)
            self._graph, self.graph_mode = graph, "captured"
        except BackendError as exc:
            log.warning("%s: CUDA graph capture failed, running without it: %s", self.where, exc)
            self.graph_mode = f"off (capture failed: {exc})"

    # -- per frame
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            check_feeds(self, feeds)
        except ValueError as exc:
            raise BackendError(f"{self.where}: {exc}") from exc
        for name, rng in self.ranges.items():
            arr = feeds[name]
            check_input_shape(arr.shape, rng, where=self.where)
            if not rng.static:
                self._context.set_input_shape(name, arr.shape)
            np.copyto(self._host[name].reshape(-1)[: arr.size].reshape(arr.shape), arr, casting="no")
        if self._graph is not None:
            self._cuda.launch(self._graph, self._stream)
        else:
            self._enqueue()
        self._cuda.synchronize(self._stream)
        out = {}
        for t in self.io:
            if t.mode == "output":
                shape = tuple(self._context.get_tensor_shape(t.name))
                out[t.name] = self._host[t.name].reshape(-1)[: int(np.prod(shape))].reshape(shape)
        return out

    def close(self) -> None:
        """Free graph, buffers and stream (idempotent). Engine and context go with their references."""
        cuda, self._cuda = getattr(self, "_cuda", None), None
        if cuda is None:
            return
        if self._graph is not None:
            cuda.destroy_graph(self._graph)
            self._graph = None
        for buf in self._buffers.values():
            cuda.free(buf)
        for arr in self._host.values():
            cuda.free_pinned(arr)
        self._buffers, self._host = {}, {}
        if self._stream is not None:
            cuda.destroy_stream(self._stream)
            self._stream = None
        self._context = self._engine = None


def open_tensorrt_backend(model_path: str | Path, *, flavour: str | None = None, precision: str = "auto",
                          cache=None, cuda: CudaApi | None = None) -> TensorRTBackend:
    """Build-or-load the engine for ``model_path`` (an .onnx; its FP16 twin when current) and open it."""
    gpu = probe_gpu()
    if not gpu.available:
        raise BackendError(f"backend 'tensorrt' needs an NVIDIA GPU, and there is {gpu.describe()}; "
                           "use --backend auto")
    for attempt in (1, 2):
        eng = ensure_engine(model_path, flavour=flavour, precision=precision, cache=cache)
        try:
            backend = TensorRTBackend(eng.entry.engine.read_bytes(), eng.spec, eng.flavour, where=str(eng.entry.engine),
                                      cuda=cuda, precision=eng.precision)
        except EngineLoadError:
            if attempt == 2:
                raise
            log.warning("%s: cached engine does not load here; rebuilding", eng.entry.engine)
            eng.cache.invalidate(eng.entry)
            continue
        log.info("TensorRT backend: %s (%s, %s engine, CUDA graph %s)", eng.entry.engine.name, eng.flavour.module,
                 eng.precision, backend.graph_mode)
        return backend
    raise AssertionError("unreachable")
