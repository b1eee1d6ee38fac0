"""Shared fixtures: paths to the real data beside the checkout, skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DVT_SHARED_DATA", REPO.parent / "shared" / "data"))


def _has_gpu() -> bool:
    from edge.gpu import probe_gpu

    return probe_gpu().available


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items):
        if not _has_gpu():
            skip = pytest.mark.skip(reason="no NVIDIA GPU on this machine (nvidia-smi/libcuda probe found none)")
            for item in items:
                if "gpu" in item.keywords:
                    item.add_marker(skip)


@pytest.fixture(scope="session")
def usgra_dir() -> Path:
    path = SHARED_DATA / "usgra-seg"
    if not (path / "images").is_dir():
        pytest.skip(f"real ultrasound data not found at {path} (set DVT_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="session")
def carotid_dir() -> Path:
    path = SHARED_DATA / "carotid-momot"
    if not (path / "images").is_dir():
        pytest.skip(f"real carotid data not found at {path} (set DVT_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="session")
def ct_sample_dir() -> Path:
    path = SHARED_DATA / "ct-dicom-sample"
    if not path.is_dir():
        pytest.skip(f"real CT sample not found at {path} (set DVT_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="session")
def free_port():
    """A function that returns a free loopback TCP port, for servers that cannot be given port 0."""
    import socket

    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    return pick


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, free_port):
    """The web UI served on loopback for one test module: (service, app, "127.0.0.1:port"). The CT tab runs
    the deterministic ThresholdDetector instead of the model, so the expected findings are known."""
    pytest.importorskip("gradio")
    from edge.ct.testing import ThresholdDetector
    from edge.jobs.ct import DetectorHandle, use_detector_factory
    from edge.ui.app import launch
    from edge.ui.service import UiService

    fake = lambda options: DetectorHandle(ThresholdDetector(), {"name": "fake"}, {"name": "threshold", "file": "-"})  # noqa: E731
    with use_detector_factory(fake):
        service = UiService(workdir=tmp_path_factory.mktemp("ui"), threads=1)
        port = free_port()
        app = launch(service, host="127.0.0.1", port=port, block=False)
        yield service, app, f"127.0.0.1:{port}"
        app.close()
        service.close()


@pytest.fixture
def threshold_detector():
    """The CT detector replaced by the deterministic :class:`edge.ct.testing.ThresholdDetector` through the one
    injection point, ``edge.jobs.ct.use_detector_factory``; yields the handles opened, in order."""
    from edge.ct.testing import ThresholdDetector
    from edge.jobs.ct import DetectorHandle, use_detector_factory

    opened: list = []

    def factory(options):
        handle = DetectorHandle(ThresholdDetector(), {"name": "fake"}, {"name": "threshold-fake", "file": "-"})
        opened.append(handle)
        return handle

    with use_detector_factory(factory):
        yield opened


def build_tiny_ct_model(folder: Path, size: int = 64) -> Path:
    """A stand-in ONNX detector with the real I/O contract: heat peaks on 4x4 cells of the centre slice whose
    max-pooled window value is that of the synthetic clot (25 HU); constant 8-px boxes.
    Exercises ModelDetector + Backend + decode_detections."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from edge.spec import ModelSpec, TensorSpec, save_spec

    s4 = size // 4
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.FLOAT, [], [v]))  # noqa: E731
    clot = (25.0 - (140.0 - 200.0)) / 400.0  # W400/L140 value of 25 HU
    ints = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [1], [v]))  # noqa: E731
    nodes = [  # centre slice only; max-pool so that only cells entirely inside the clot match
        ints("one", 1), ints("two", 2),
        helper.make_node("Slice", ["image", "one", "two", "one"], ["m"]),
        helper.make_node("MaxPool", ["m"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
        c("clot", clot), c("k", -8000.0), c("b", 3.0), c("zero", 0.0),
        helper.make_node("Sub", ["p", "clot"], ["d"]), helper.make_node("Mul", ["d", "d"], ["d2"]),
        helper.make_node("Mul", ["d2", "k"], ["e"]), helper.make_node("Add", ["e", "b"], ["heatmap"]),
        helper.make_node("Mul", ["p", "zero"], ["z"]),
        helper.make_node("Concat", ["z", "z", "z", "z"], ["box"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, 1, s4, s4]),
                               helper.make_tensor_value_info("box", TensorProto.FLOAT, [1, 4, s4, s4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    spec = ModelSpec(
        name="tiny-ct", task="ct-detection", input=TensorSpec("image", (1, 3, size, size), "float32"),
        outputs=(TensorSpec("heatmap", (1, 1, s4, s4), "float32"), TensorSpec("box", (1, 4, s4, s4), "float32")),
        preprocess={"window_level_hu": 140.0, "window_width_hu": 400.0, "target_spacing_mm": 0.8, "size": size,
                    "k": 3, "slice_padding": "replicate"},
        labels=("thrombus",), opset=17,
        extra={"decode": {"type": "centernet", "stride": 4, "heatmap_output": "heatmap", "box_output": "box",
                          "score_threshold": 0.5, "nms_iou": 0.3, "top_k": 20, "peak_kernel": 3}},
    )
    save_spec(spec, path)
    return path


@pytest.fixture(scope="session")
def tiny_ct_model():
    """:func:`build_tiny_ct_model`: ``tiny_ct_model(folder, size=64)`` writes the stand-in ONNX detector there."""
    return build_tiny_ct_model


@pytest.fixture
def ct_commands_only(monkeypatch):
    """``dvt-edge`` with the ct command only (no plug-in discovery): ``edge.cli.main(["ct", ...])`` stays fast."""
    import edge.cli
    from edge.commands import ct as ct_cli

    monkeypatch.setattr(edge.cli, "_builtin_registrars", lambda: [ct_cli.register])
    monkeypatch.setattr(edge.cli, "_plugin_registrars", lambda: [])
