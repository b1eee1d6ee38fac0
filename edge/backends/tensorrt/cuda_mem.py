"""The CUDA calls the TensorRT backend needs (streams, device and pinned memory, async copies, CUDA graphs),
behind one small interface over whichever binding is installed: pycuda, else cuda-python.

Every CUDA call goes through one choke point per binding (``_call``), which turns a failure into a
:class:`CudaError` (a BackendError) naming the operation and the CUDA error. Nothing here is imported or
initialised before :func:`edge.gpu.probe_gpu` has found a GPU (the TensorRT backend checks first).

Ownership: :class:`DeviceBuffer` and the pinned arrays from :meth:`CudaApi.pinned_empty` belong to the
caller, who frees them with :meth:`CudaApi.free` / :meth:`CudaApi.free_pinned` (the backend does in
``close``). Pointers and stream handles are ints, as TensorRT takes them.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge.errors import BackendError

BINDINGS = ("pycuda", "cuda-python")


class CudaError(BackendError):
    """A CUDA call failed (the message names the call and the CUDA error)."""


@dataclass
class DeviceBuffer:
    ptr: int  # device address
    nbytes: int
    handle: Any = None  # the binding's own object, kept alive until freed


class CudaApi(Protocol):
    name: str

    def stream(self) -> Any: ...
    def stream_handle(self, stream: Any) -> int: ...
    def malloc(self, nbytes: int) -> DeviceBuffer: ...
    def free(self, buf: DeviceBuffer) -> None: ...
    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...
    def free_pinned(self, arr: np.ndarray) -> None: ...
    def h2d_async(self, dst: DeviceBuffer, src: np.ndarray, stream: Any) -> None: ...
    def d2h_async(self, dst: np.ndarray, src: DeviceBuffer, stream: Any) -> None: ...
    def synchronize(self, stream: Any) -> None: ...
    def begin_capture(self, stream: Any) -> None: ...
    def end_capture(self, stream: Any) -> Any: ...  # -> an instantiated, launchable graph
    def launch(self, graph: Any, stream: Any) -> None: ...
    def destroy_graph(self, graph: Any) -> None: ...
    def destroy_stream(self, stream: Any) -> None: ...


def available_bindings() -> list[str]:
    """Installed CUDA bindings, in preference order, found without importing them (nothing touches CUDA)."""
    found = []
    if importlib.util.find_spec("pycuda") is not None:
        found.append("pycuda")
    try:
        if importlib.util.find_spec("cuda.bindings") is not None or importlib.util.find_spec("cuda.cudart"):
            found.append("cuda-python")
    except (ImportError, ValueError):  # no "cuda" package at all
        pass
    return found


class _CudaPython:
    """cuda-python's runtime API: ``cuda.bindings.runtime`` (12.x/13.x) or the older ``cuda.cudart``.
    Every call returns ``(cudaError_t, *values)``; ``_call`` checks the status."""

    name = "cuda-python"

    def __init__(self, rt: Any):
        self.rt = rt

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            out = fn(*args)
        except Exception as exc:  # bad argument types raise before reaching CUDA
            raise CudaError(f"CUDA {what} failed: {exc}") from exc
        status, values = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        if status != self.rt.cudaError_t.cudaSuccess:
            name = self.rt.cudaGetErrorName(status)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
            raise CudaError(f"CUDA {what} failed: {name} ({int(status)})")
        return values[0] if len(values) == 1 else values

    def stream(self) -> Any:
        return self._call("cudaStreamCreate", self.rt.cudaStreamCreate)

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def malloc(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(int(self._call("cudaMalloc", self.rt.cudaMalloc, max(nbytes, 1))), nbytes)

    def free(self, buf: DeviceBuffer) -> None:
        self._call("cudaFree", self.rt.cudaFree, buf.ptr)

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self._call("cudaMallocHost", self.rt.cudaMallocHost, max(nbytes, 1)))
        raw = (ctypes.c_ubyte * max(nbytes, 1)).from_address(ptr)
        return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def free_pinned(self, arr: np.ndarray) -> None:
        self._call("cudaFreeHost", self.rt.cudaFreeHost, arr.__array_interface__["data"][0])

    def h2d_async(self, dst: DeviceBuffer, src: np.ndarray, stream: Any) -> None:
        self._call("cudaMemcpyAsync(H2D)", self.rt.cudaMemcpyAsync, dst.ptr, src.ctypes.data, src.nbytes,
                   self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def d2h_async(self, dst: np.ndarray, src: DeviceBuffer, stream: Any) -> None:
        self._call("cudaMemcpyAsync(D2H)", self.rt.cudaMemcpyAsync, dst.ctypes.data, src.ptr, dst.nbytes,
                   self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)

    def synchronize(self, stream: Any) -> None:
        self._call("cudaStreamSynchronize", self.rt.cudaStreamSynchronize, stream)

    def begin_capture(self, stream: Any) -> None:
        # thread-local: other threads (capture, UI) may use CUDA while this stream is being captured
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._call("cudaStreamBeginCapture", self.rt.cudaStreamBeginCapture, stream, mode)

    def end_capture(self, stream: Any) -> Any:
        graph = self._call("cudaStreamEndCapture", self.rt.cudaStreamEndCapture, stream)
        try:
            return self._call("cudaGraphInstantiate", self.rt.cudaGraphInstantiate, graph, 0)
        finally:
            self._call("cudaGraphDestroy", self.rt.cudaGraphDestroy, graph)

    def launch(self, graph: Any, stream: Any) -> None:
        self._call("cudaGraphLaunch", self.rt.cudaGraphLaunch, graph, stream)

    def destroy_graph(self, graph: Any) -> None:
        self._call("cudaGraphExecDestroy", self.rt.cudaGraphExecDestroy, graph)

    def destroy_stream(self, stream: Any) -> None:
        self._call("cudaStreamDestroy", self.rt.cudaStreamDestroy, stream)


class _PyCuda:
    """pycuda's driver API on the device's primary context (the one TensorRT uses). pycuda raises
    ``pycuda.driver.Error`` subclasses; ``_call`` turns them into CudaError. CUDA graphs need a pycuda with
    stream capture (``Stream.begin_capture``); without it capture fails and the backend runs uncaptured."""

    name = "pycuda"

    def __init__(self, drv: Any):
        self.drv = drv

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise CudaError(f"CUDA {what} failed (pycuda): {exc}") from exc

    def stream(self) -> Any:
        return self._call("stream create", self.drv.Stream)

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def malloc(self, nbytes: int) -> DeviceBuffer:
        alloc = self._call("mem_alloc", self.drv.mem_alloc, max(nbytes, 1))
        return DeviceBuffer(int(alloc), nbytes, alloc)

    def free(self, buf: DeviceBuffer) -> None:
        self._call("mem free", buf.handle.free)

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._call("pagelocked_empty", self.drv.pagelocked_empty, shape, np.dtype(dtype))

    def free_pinned(self, arr: np.ndarray) -> None:
        if getattr(arr, "base", None) is not None and hasattr(arr.base, "free"):
            self._call("pagelocked free", arr.base.free)

    def h2d_async(self, dst: DeviceBuffer, src: np.ndarray, stream: Any) -> None:
        self._call("memcpy_htod_async", self.drv.memcpy_htod_async, dst.ptr, src, stream)

    def d2h_async(self, dst: np.ndarray, src: DeviceBuffer, stream: Any) -> None:
        self._call("memcpy_dtoh_async", self.drv.memcpy_dtoh_async, dst, src.ptr, stream)

    def synchronize(self, stream: Any) -> None:
        self._call("stream synchronize", stream.synchronize)

    def begin_capture(self, stream: Any) -> None:
        self._call("stream begin_capture", stream.begin_capture)

    def end_capture(self, stream: Any) -> Any:
        graph = self._call("stream end_capture", stream.end_capture)
        inst = getattr(graph, "instance", None) or graph.instantiate
        return self._call("graph instantiate", inst)

    def launch(self, graph: Any, stream: Any) -> None:
        self._call("graph launch", graph.launch, stream)

    def destroy_graph(self, graph: Any) -> None:
        pass  # pycuda frees graph executables when they are garbage-collected

    def destroy_stream(self, stream: Any) -> None:
        pass  # likewise for streams


def load_cuda_api(prefer: str | None = None) -> CudaApi:
    """The CUDA binding to use: ``prefer`` ("pycuda" | "cuda-python") or the first installed of BINDINGS.
    BackendError saying what to install when none imports."""
    order = [prefer] if prefer else list(BINDINGS)
    errors = []
    for name in order:
        if name not in BINDINGS:
            raise BackendError(f"unknown CUDA binding '{name}': choose one of {', '.join(BINDINGS)}")
        try:
            if name == "pycuda":
                importlib.import_module("pycuda.autoprimaryctx")  # retains + pushes the primary context
                return _PyCuda(importlib.import_module("pycuda.driver"))
            try:
                rt = importlib.import_module("cuda.bindings.runtime")
            except ImportError:
                rt = importlib.import_module("cuda.cudart")  # cuda-python < 12.6
            return _CudaPython(rt)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
        except Exception as exc:  # pycuda.autoprimaryctx raises driver errors when CUDA cannot start
            raise CudaError(f"CUDA could not be initialised through {name}: {exc}") from exc
    raise BackendError("the TensorRT backend needs a CUDA binding: pip install cuda-python (or pycuda); "
                       + "; ".join(errors))
