"""The TensorRT backend (``tensorrt`` and ``tensorrt_rtx``), one module per job, as Polygraphy lays out a backend::

    runner.py    TensorRTBackend / open_tensorrt_backend: the Backend the pipeline runs (CUDA graph, pinned IO)
    engine.py    ONNX -> engine through the cache (ensure_engine), shared with export/tensorrt/aot.py
    cache.py     the on-disk engine cache (keys, locking, atomic writes)
    flavour.py   which TensorRT is installed (find_spec only) and every per-flavour difference
    io.py        engine IO metadata and shape profiles (plain data and checks)
    cuda_mem.py  the CUDA calls the runner needs, over pycuda or cuda-python

    runner.py ──> engine.py ──> cache.py, flavour.py, io.py
        └───────> cuda_mem.py, flavour.py, io.py

Nothing here imports ``tensorrt``, ``tensorrt_rtx`` or a CUDA binding at import time (only after the GPU
probe, when a backend is opened), and this ``__init__`` imports nothing, so ``edge.backends.select`` may
import :mod:`edge.backends.tensorrt.flavour` cheaply.
"""
