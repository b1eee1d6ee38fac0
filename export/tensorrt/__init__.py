"""Ahead-of-time TensorRT engines and the checks around them.

The builder and the engine cache themselves live in the torch-free runtime (:mod:`edge.backends.tensorrt.engine`,
:mod:`edge.backends.tensorrt.cache`) because the bedside backend builds on first use and edge/ may not import
export/. This package adds what needs the export toolchain: the FP16 ONNX (:mod:`export.fp16`) before the
build, the list of bundled models, and a printable description of an engine (``dvt-edge export engine``).
"""

from export.tensorrt.aot import build_engine, bundled_models, describe

__all__ = ["build_engine", "bundled_models", "describe"]
