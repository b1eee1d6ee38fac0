"""Engine building: shape profiles, IO checks, model/precision resolution, error reporting, and the check
that runs without a GPU: TensorRT-RTX builds an FP16 engine for every bundled model (CPU-only AOT).

What TensorRT-RTX can do without a GPU (verified with 1.7.1): import, parse ONNX, build and serialize a
plan. It cannot deserialize one (``deserialize_cuda_engine`` returns None after a CUDA "driver version is
insufficient" error) and ``get_engine_validity`` answers INVALID for the same reason. So the GPU-less check
reads the engine's IO from the parsed network the plan was built from (recorded in the cache sidecar);
the GPU tests compare it with the deserialized engine.
"""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pytest

from edge.backends.tensorrt import engine as trt_engine
from edge.backends.tensorrt.cache import EngineCache
from edge.backends.tensorrt.flavour import FLAVOURS, build_target, normalise_targets
from edge.backends.tensorrt.io import IoTensor, ShapeRange, check_input_shape, check_io, profile_for
from edge.errors import BackendError, ConfigError, ModelError
from edge.gpu import GpuInfo
from edge.spec import ModelSpec, TensorSpec, load_spec

NO_GPU = GpuInfo(False, reason="test")
TURING = GpuInfo(True, name="Quadro T1000", driver="1", compute_capability="7.5", memory_mib=4096, reason="test")


def spec(in_shape=(1, 1, 192, 192), extra=None) -> ModelSpec:
    return ModelSpec("m", "us-segmentation", TensorSpec("image", in_shape, "float32"),
                     (TensorSpec("logits", (1, 3, 192, 192), "float32"),), {}, ("background", "artery", "vein"),
                     extra=extra or {})


IO = (IoTensor("image", "input", (1, 1, 192, 192), "float32"),
      IoTensor("logits", "output", (1, 3, 192, 192), "float32"))


# ------------------------------------------------------------------------------------- pure checks
def test_static_profile_is_min_opt_max_of_the_shape():
    (r,) = profile_for(spec(), IO[:1], where="m.onnx")
    assert r.min == r.opt == r.max == (1, 1, 192, 192) and r.static


def test_dynamic_profile_comes_from_the_spec_or_is_an_error():
    dyn = IoTensor("image", "input", (-1, 1, 192, 192), "float32")
    with pytest.raises(ModelError, match="dynamic shape.*shape_profile"):
        profile_for(spec(("batch", 1, 192, 192)), [dyn], where="m.onnx")
    good = {"shape_profile": {"image": {"min": [1, 1, 192, 192], "opt": [1, 1, 192, 192], "max": [4, 1, 192, 192]}}}
    (r,) = profile_for(spec(("batch", 1, 192, 192), good), [dyn], where="m.onnx")
    assert r.max == (4, 1, 192, 192) and not r.static
    bad = {"shape_profile": {"image": {"min": [1, 1, 100, 192], "opt": [1, 1, 192, 192], "max": [4, 1, 192, 192]}}}
    with pytest.raises(ModelError, match="does not fit"):
        profile_for(spec(("batch", 1, 192, 192), bad), [dyn], where="m.onnx")


def test_input_shape_outside_the_profile_is_a_backend_error():
    r = ShapeRange("image", (1, 1, 192, 192), (1, 1, 192, 192), (4, 1, 192, 192))
    check_input_shape((3, 1, 192, 192), r, where="e")
    with pytest.raises(BackendError, match=r"e: input 'image' has shape \[5, 1, 192, 192\], outside"):
        check_input_shape((5, 1, 192, 192), r, where="e")


def test_io_mismatches_are_named():
    check_io(spec(), IO, where="x")
    with pytest.raises(ModelError, match="x: .*output 'logits' is float16"):
        check_io(spec(), (IO[0], IoTensor("logits", "output", (1, 3, 192, 192), "float16")), where="x")
    with pytest.raises(ModelError, match=r"outputs are \['out'\]"):
        check_io(spec(), (IO[0], IoTensor("out", "output", (1, 3, 192, 192), "float32")), where="x")
    with pytest.raises(ModelError, match="input 'image' has shape"):
        check_io(spec(), (IoTensor("image", "input", (1, 1, 96, 96), "float32"), IO[1]), where="x")


def test_targets_and_cache_target():
    assert normalise_targets(["8.6", "sm75", "SM120"]) == ("SM86", "SM75", "SM120")
    with pytest.raises(ConfigError):
        normalise_targets(["ampere"])
    rtx, std = FLAVOURS["tensorrt_rtx"], FLAVOURS["tensorrt"]
    assert build_target(rtx, NO_GPU) == "aot:default"
    assert build_target(rtx, NO_GPU, ("SM86",)) == "aot:SM86"
    assert build_target(rtx, TURING) == "aot:SM75"  # Turing is outside RTX's default portable set
    assert build_target(std, TURING) == "Quadro T1000 sm7.5"
    with pytest.raises(BackendError, match="built on the GPU it will run on.*tensorrt-rtx"):
        build_target(std, NO_GPU)


def _model(tmp_path: Path, name: str, fp16_of: Path | None = None) -> Path:
    p = tmp_path / name
    p.write_bytes(b"onnx-" + name.encode())
    data = {"schema": "dvt-edge/model-spec@1", "name": "m", "task": "t",
            "input": {"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32"},
            "outputs": [{"name": "logits", "shape": [1, 3, 8, 8], "dtype": "float32"}]}
    if fp16_of is not None:
        data |= {"precision": "fp16", "derived_from": {"sha256": trt_engine.sha256_file(fp16_of)}}
    p.with_suffix(".json").write_text(json.dumps(data))
    return p


def test_resolve_model_prefers_a_current_fp16_twin(tmp_path, caplog):
    fp32 = _model(tmp_path, "m.onnx")
    assert trt_engine.resolve_model(fp32, "auto") == (fp32, "fp32")
    assert "no current m.fp16.onnx" in caplog.text  # said, not silent
    with pytest.raises(ModelError, match="dvt-edge export fp16"):
        trt_engine.resolve_model(fp32, "fp16")
    twin = _model(tmp_path, "m.fp16.onnx", fp16_of=fp32)
    assert trt_engine.resolve_model(fp32, "auto") == (twin, "fp16")
    assert trt_engine.resolve_model(fp32, "fp32") == (fp32, "fp32")
    assert trt_engine.resolve_model(twin, "auto") == (twin, "fp16")
    fp32.write_bytes(b"retrained weights")  # the twin is now stale
    assert trt_engine.resolve_model(fp32, "auto") == (fp32, "fp32")
    with pytest.raises(ModelError, match="expected an .onnx"):
        trt_engine.resolve_model(tmp_path / "m.engine")


# ------------------------------------------------------------------------- errors, with a fake TensorRT
def fake_trt(parse_ok=True, plan=b"plan"):
    trt = types.ModuleType("fake_trt_build")
    trt.__version__ = "10.3.0"
    trt.ILogger = type("ILogger", (), {"__init__": lambda self: None})
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="ws")
    t_in = types.SimpleNamespace(name="image", shape=(1, 1, 192, 192), dtype=types.SimpleNamespace(name="FLOAT"))
    t_out = types.SimpleNamespace(name="logits", shape=(1, 3, 192, 192), dtype=types.SimpleNamespace(name="FLOAT"))
    network = types.SimpleNamespace(num_inputs=1, num_outputs=1, get_input=lambda i: t_in, get_output=lambda i: t_out)
    config = types.SimpleNamespace(set_memory_pool_limit=lambda *a: None, add_optimization_profile=lambda p: 0,
                                   create_timing_cache=lambda b: "tc", set_timing_cache=lambda c, i: True,
                                   get_timing_cache=lambda: None)
    errors = ["In node 3 with name: /Resize and operator: Resize (parseNode): UNSUPPORTED_NODE: mode cubic",
              "In node 9 with name: /Sub and operator: Sub (parseNode): INVALID_NODE: shape mismatch"]

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return network

        def create_builder_config(self):
            return config

        def create_optimization_profile(self):
            return types.SimpleNamespace(set_shape=lambda *a: None)

        def build_serialized_network(self, net, cfg):
            self.logger.log(types.SimpleNamespace(name="ERROR"), "Error Code 2: Internal Error (out of memory)")
            return plan

    trt.Builder = Builder
    trt.OnnxParser = lambda net, logger: types.SimpleNamespace(
        parse_from_file=lambda path: parse_ok, num_errors=0 if parse_ok else 2, get_error=lambda i: errors[i])
    return trt


def test_every_parser_error_is_reported_with_the_file():
    profile = profile_for(spec(), IO[:1], where="m.onnx")
    with pytest.raises(ModelError) as err:
        trt_engine.build_plan(fake_trt(parse_ok=False), FLAVOURS["tensorrt"], Path("/models/m.onnx"), spec(), profile,
                              target="gpu")
    msg = str(err.value)
    assert msg.startswith("/models/m.onnx: tensorrt 10.3.0 cannot parse") and "2 error(s)" in msg
    assert "mode cubic" in msg and "shape mismatch" in msg


def test_a_failed_build_reports_the_builder_log():
    profile = profile_for(spec(), IO[:1], where="m.onnx")
    with pytest.raises(BackendError) as err:
        trt_engine.build_plan(fake_trt(plan=None), FLAVOURS["tensorrt"], Path("/models/m.onnx"), spec(), profile,
                              target="gpu")
    assert "/models/m.onnx: tensorrt 10.3.0 failed to build" in str(err.value)
    assert "[ERROR] Error Code 2: Internal Error (out of memory)" in str(err.value)
    out = trt_engine.build_plan(fake_trt(), FLAVOURS["tensorrt"], Path("m.onnx"), spec(), profile, target="gpu")
    assert out.plan == b"plan" and out.io == IO


# --------------------------------------------------------------- the check that runs without a GPU (RTX)
def _rtx():
    return pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx not installed (pip install tensorrt-rtx): "
                                                      "the GPU-less engine build check needs it")


def _bundled() -> list[Path]:
    from export.tensorrt.aot import bundled_models

    return bundled_models()


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    from export.tensorrt.standin import export_standin

    path = tmp_path_factory.mktemp("standin") / "darkblob-standin.onnx"
    export_standin(path)
    return path


def _copy(model: Path, dest: Path) -> Path:
    """Bundled models are copied: the FP16 twin must not be written into the source tree."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in (model, model.with_suffix(".json")):
        shutil.copy(p, dest / p.name)
    return dest / model.name


def _check_rtx_engine(model: Path, cache_dir: Path) -> float:
    from export.tensorrt.aot import build_engine

    cache = EngineCache(cache_dir)
    eng = build_engine(model, flavour="tensorrt-rtx", precision="fp16", cache=cache)
    assert eng.entry.built and cache.builds == 1
    assert eng.entry.engine.is_file() and eng.entry.engine.stat().st_size > 10_000
    assert eng.precision == "fp16" and eng.onnx.name.endswith(".fp16.onnx")
    spec32 = load_spec(model)  # the engine must keep the FP32 model's interface
    io = {t.name: t for t in eng.io}
    assert [t.name for t in eng.io if t.mode == "input"] == [spec32.input.name]
    assert sorted(t.name for t in eng.io if t.mode == "output") == sorted(o.name for o in spec32.outputs)
    for ts in (spec32.input, *spec32.outputs):
        assert list(io[ts.name].shape) == list(ts.shape) and io[ts.name].dtype == ts.dtype == "float32"
    meta = json.loads(eng.entry.sidecar.read_text())
    assert meta["builder"]["flavour"] == "tensorrt_rtx" and meta["key_parts"]["target"] == "aot:default"
    assert meta["model_spec"]["precision"] == "fp16" and meta["io"] == [t.to_json() for t in eng.io]
    mtime = eng.entry.engine.stat().st_mtime_ns
    again_cache = EngineCache(cache_dir)  # a fresh process would see the same
    again = build_engine(model, flavour="tensorrt-rtx", precision="fp16", cache=again_cache)
    assert not again.entry.built and again_cache.builds == 0
    assert again.entry.engine == eng.entry.engine and again.entry.engine.stat().st_mtime_ns == mtime
    return eng.entry.seconds


def test_rtx_builds_fp16_engines_for_every_bundled_model_without_gpu(tmp_path):
    _rtx()
    pytest.importorskip("onnxconverter_common", reason="FP16 conversion needs onnxconverter-common")
    models = _bundled()
    assert models, "no bundled model found in edge/assets or edge/ct/assets: the engine check has nothing to check"
    for model in models:
        seconds = _check_rtx_engine(_copy(model, tmp_path / model.stem), tmp_path / "cache")
        print(f"{model.name}: RTX FP16 engine built in {seconds:.2f} s")


def test_rtx_builds_the_standin_engine_without_gpu(standin, tmp_path):
    _rtx()
    pytest.importorskip("onnxconverter_common", reason="FP16 conversion needs onnxconverter-common")
    _check_rtx_engine(_copy(standin, tmp_path / "m"), tmp_path / "cache")


def test_rtx_parser_errors_name_the_file(standin, tmp_path):
    _rtx()
    bad = tmp_path / "broken.onnx"
    data = standin.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # a truncated download
    bad.with_suffix(".json").write_text(standin.with_suffix(".json").read_text())
    with pytest.raises(ModelError, match=r"(?s)broken.onnx: tensorrt_rtx .* cannot parse.*MODEL_DESERIALIZE_FAILED"):
        trt_engine.ensure_engine(bad, flavour="tensorrt-rtx", precision="fp32", cache=EngineCache(tmp_path / "c"))
    assert not list((tmp_path / "c").glob("*.engine"))


def test_rtx_engine_for_a_spec_that_does_not_match_the_graph_is_refused(standin, tmp_path):
    _rtx()
    model = _copy(standin, tmp_path / "m")
    data = json.loads(model.with_suffix(".json").read_text())
    data["outputs"][0]["name"] = "masks"
    model.with_suffix(".json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"outputs are \['logits'\], the spec says \['masks'\]"):
        trt_engine.ensure_engine(model, flavour="tensorrt-rtx", precision="fp32", cache=EngineCache(tmp_path / "c"))


def test_cli_export_engine_prints_path_and_io(standin, tmp_path, capsys):
    _rtx()
    pytest.importorskip("onnxconverter_common", reason="FP16 conversion needs onnxconverter-common")
    from edge.cli import main

    model = _copy(standin, tmp_path / "m")
    rc = main(["export", "engine", str(model), "--flavour", "tensorrt-rtx", "--cache", str(tmp_path / "c"),
               "--target", "8.6"])
    out = capsys.readouterr().out
    assert rc == 0 and ".engine" in out and "target aot:SM86" in out
    assert "input  image" in out and "[1, 1, 192, 192]" in out and "output logits" in out
