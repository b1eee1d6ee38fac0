"""PyTorch -> ONNX: one self-contained file, opset pinned, checked, with its sidecar spec.

Why the TorchScript exporter (``dynamo=False``): torch 2.13's default dynamo exporter emits opset 18 and
down-converts, and writes weights to an external ``.onnx.data`` file by default. TensorRT 10.3 (JetPack 6)
reads opset <= 17 reliably; the TorchScript path emits opset 17 directly and inlines the weights.
"""

from __future__ import annotations

import hashlib
import platform
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from edge.errors import ModelError
from edge.spec import ModelSpec, TensorSpec, save_spec

OPSET = 17  # TensorRT 10.3 (JetPack 6) through 11.x parse it
MAX_ARTIFACT_BYTES = 10 * 1024 * 1024


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_onnx(
    model: torch.nn.Module,
    example: torch.Tensor,
    out_path: str | Path,
    *,
    name: str,
    task: str,
    input_name: str,
    output_names: list[str],
    preprocess: dict[str, Any],
    labels: list[str],
    extra: dict[str, Any] | None = None,
    opset: int = OPSET,
) -> ModelSpec:
    """Export ``model`` (put in eval mode here) on ``example`` (N,C,H,W float32) to ``out_path``.

    Writes ``out_path`` (weights inlined) and its sidecar ``.json`` spec, runs ``onnx.checker`` with
    ``full_check`` and verifies the opset. Returns the spec. Shapes are static (batch 1 for streaming).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with torch.no_grad():
        outputs = model(example)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    if len(outputs) != len(output_names):
        raise ModelError(f"{name}: model returns {len(outputs)} outputs but {len(output_names)} names were given")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, on purpose
        torch.onnx.export(
            model, (example,), str(out_path), dynamo=False, opset_version=opset,
            input_names=[input_name], output_names=output_names, do_constant_folding=True,
        )
    proto = onnx.load(str(out_path), load_external_data=False)
    got = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if got > opset:
        raise ModelError(f"{out_path}: exported opset {got} > {opset}; TensorRT 10.3 may not read it")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise ModelError(f"{out_path}: weights were written as external data; expected one self-contained file")
    onnx.checker.check_model(proto, full_check=True)
    size = out_path.stat().st_size
    if size > MAX_ARTIFACT_BYTES:
        raise ModelError(f"{out_path}: {size / 1e6:.1f} MB exceeds the 10 MB artifact budget")
    spec = ModelSpec(
        name=name,
        task=task,
        input=TensorSpec(input_name, tuple(example.shape), "float32"),
        outputs=tuple(TensorSpec(n, tuple(o.shape), "float32") for n, o in zip(output_names, outputs)),
        preprocess=preprocess,
        labels=tuple(labels),
        precision="fp32",
        opset=got,
        extra={
            **(extra or {}),
            "artifact": {"file": out_path.name, "sha256": sha256_file(out_path), "bytes": size},
            "exported_with": {
                "torch": torch.__version__, "onnx": onnx.__version__, "exporter": "torchscript",
                "python": platform.python_version(),
            },
        },
    )
    save_spec(spec, out_path)
    return spec
