"""``dvt-edge export ...``: model export commands, plugged in through the dvt_edge.commands entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.ct_args import add_checkpoint_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export trained models to ONNX / TensorRT (needs the [train] extra)")
    esub = p.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    us = esub.add_parser("us-onnx", help="export a trained ultrasound checkpoint to ONNX with parity check and card")
    us.add_argument("--checkpoint", type=Path, required=True)
    us.add_argument("--summary", type=Path, required=True, help="train_summary.json from 'dvt-edge train us'")
    us.add_argument("--out", type=Path, default=Path("edge/assets/resunet-lite.onnx"),
                    help="the .onnx to write, or a folder to write <variant>.onnx into (default: the bundled model)")

    def _us(a: argparse.Namespace) -> int:
        from export.us_model import export_us_model

        export_us_model(a.checkpoint, a.summary, a.out)
        return 0

    us.set_defaults(func=_us)
    _register_ct(esub)
    _register_fp16(esub)
    _register_engine(esub)
    from export.triton import register_triton  # Triton model repository

    register_triton(esub)


def _register_ct(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser("ct-onnx", help="export a CT detector saved by 'python -m training.ct.train' to ONNX, spec "
                                        "and card (train and export in one: python -m export.ct_model train ...)")
    add_checkpoint_arguments(p)

    def run(a: argparse.Namespace) -> int:
        from export.ct_model import export_checkpoint

        export_checkpoint(a.checkpoint, a.summary, a.out)
        return 0

    p.set_defaults(func=run)


def _register_fp16(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser("fp16", help="write MODEL.fp16.onnx (FP16 weights/compute, float32 IO) and its spec")
    p.add_argument("model", type=Path, help="the FP32 .onnx (its .json spec beside it)")
    p.add_argument("--out", type=Path, default=None, help="default: MODEL.fp16.onnx beside the model")
    p.add_argument("--parity", action="store_true",
                   help="ultrasound models: compare with FP32 on the demo clips (ONNX Runtime CPU; ~1 min)")

    def run(a: argparse.Namespace) -> int:
        from edge.errors import ModelError
        from edge.spec import load_spec

        if not a.model.is_file():
            raise ModelError(f"{a.model}: model not found (pass the FP32 .onnx with its .json spec beside it)")
        convert_fp16, fp16_sibling = _fp16_tools()

        out = a.out or fp16_sibling(a.model)
        spec = convert_fp16(a.model, out)
        print(f"wrote {out} ({spec.extra['artifact']['bytes'] / 1e6:.2f} MB; kept in FP32: "
              f"{', '.join(spec.extra['fp16']['fp32_ops']) or 'nothing'})")
        if not a.parity:
            return 0
        if load_spec(a.model).task != "us-segmentation":
            print("parity on the demo clips applies to ultrasound models only; skipped")
            return 0
        return _demo_parity(a.model, out)

    p.set_defaults(func=run)


def _fp16_tools():
    """(convert_fp16, fp16_sibling), or one clear line when the [export] extra is not installed."""
    from edge.errors import DvtEdgeError

    try:
        import onnxconverter_common  # noqa: F401 - checked here so the message comes before any work

        from export.fp16 import convert_fp16, fp16_sibling
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise DvtEdgeError(f"'dvt-edge export fp16' needs the [export] extra (onnx, onnxconverter-common), "
                           f"and '{missing}' is not installed: pip install 'dvt-edge[export]'") from exc
    return convert_fp16, fp16_sibling


def _demo_parity(fp32: Path, fp16: Path) -> int:
    from edge.assets import DEMO_CLIPS, asset
    from edge.backends.onnxruntime import OnnxRuntimeBackend
    from edge.spec import load_spec
    from export.fp16 import clip_parity

    ref, test = OnnxRuntimeBackend(fp32), OnnxRuntimeBackend(fp16)
    ok = True
    for clip in DEMO_CLIPS.values():
        r = clip_parity(ref, test, load_spec(fp32), asset(clip))
        ok &= r.ok
        print(f"{r.clip}: Dice {r.seg.dice_per_class}, compressibility {r.compressibility_ref} vs "
              f"{r.compressibility_test}: {'ok' if r.ok else 'FAILED'}")
    return 0 if ok else 1


def _register_engine(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser("engine", help="build (or find) MODEL's TensorRT engine in the cache ahead of time")
    p.add_argument("model", type=Path, help="the FP32 .onnx (FP16 twin written when needed)")
    p.add_argument("--flavour", choices=("tensorrt", "tensorrt-rtx"), default=None,
                   help="default: the installed one (tensorrt preferred); tensorrt-rtx builds without a GPU")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--cache", type=Path, default=None,
                   help="engine cache directory (default $DVT_EDGE_ENGINE_CACHE or ~/.cache/dvt-edge/engines)")
    p.add_argument("--target", action="append", default=[], metavar="CC",
                   help="TensorRT-RTX compute capability to build for (repeatable, e.g. 8.6); default: RTX's "
                        "portable set (8.0, 8.6, 8.9, 12.0)")
    p.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace limit (MiB)")

    def run(a: argparse.Namespace) -> int:
        from edge.backends.tensorrt.cache import EngineCache
        from export.tensorrt.aot import build_engine, describe

        cache = EngineCache(a.cache) if a.cache else EngineCache()
        eng = build_engine(a.model, flavour=a.flavour, precision=a.precision, targets=tuple(a.target),
                           cache=cache, workspace_mib=a.workspace_mib, stream=sys.stderr)
        print(describe(eng))
        return 0

    p.set_defaults(func=run)
