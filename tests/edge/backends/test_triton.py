"""Triton: the model-repository exporter (configs parse, batch-N == batch-1 through ONNX Runtime) and the
``triton`` backend's contract against a KServe v2 stub server on 127.0.0.1 (export/triton_stub.py):
names, shapes, dtypes, results equal to local ONNX Runtime (US frame loop and CT scan), errors that name the
server and the model. No real Triton server runs here."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the exporter needs the [export] extra (onnx)")

import edge.cli  # noqa: E402
from edge.errors import BackendError, ModelError  # noqa: E402
from edge.spec import load_spec  # noqa: E402
from export.triton import default_models, export_repository, make_batch_dynamic, parse_pbtxt  # noqa: E402

US, CT = default_models()


@pytest.fixture(autouse=True)
def no_triton_url_leak(monkeypatch):
    """--triton-url sets DVT_EDGE_TRITON_URL in this process; restore its absence after each test."""
    monkeypatch.setenv("DVT_EDGE_TRITON_URL", "unset")
    monkeypatch.delenv("DVT_EDGE_TRITON_URL")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("triton-repo")
    export_repository(out, [US, CT], max_batch_size=8, check_batch=3, log=lambda m: None)
    return out


def _ort(path, feeds):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


# ---- exporter ---------------------------------------------------------------------------------------------

def test_repository_layout_and_configs(repo):
    assert sorted(p.name for p in repo.iterdir()) == ["ctdet-k3", "resunet-lite"]
    for src in (US, CT):
        spec = load_spec(src)
        cfg = parse_pbtxt((repo / spec.name / "config.pbtxt").read_text())
        assert cfg["name"] == spec.name and cfg["platform"] == "onnxruntime_onnx" and cfg["max_batch_size"] == 8
        assert cfg["input"] == [{"name": spec.input.name, "data_type": "TYPE_FP32", "dims": list(spec.input.shape[1:])}]
        assert cfg["output"] == [{"name": o.name, "data_type": "TYPE_FP32", "dims": list(o.shape[1:])}
                                 for o in spec.outputs]
        assert cfg["dynamic_batching"]["preferred_batch_size"] == [4, 8]
        assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
        assert (repo / spec.name / "1" / "model.onnx").is_file()
        assert json.loads((repo / spec.name / "dvt-edge-spec.json").read_text())["name"] == spec.name


@pytest.mark.parametrize("which", ["us", "ct"])
def test_batch_n_model_equals_batch_1_model(repo, which):
    import onnx

    src = US if which == "us" else CT
    spec = load_spec(src)
    dst = repo / spec.name / "1" / "model.onnx"
    m = onnx.load(str(dst))
    assert all(v.type.tensor_type.shape.dim[0].dim_param == "batch" for v in [*m.graph.input, *m.graph.output])
    rng = np.random.default_rng(7)
    x = rng.random((5, *spec.input.shape[1:]), dtype=np.float32)
    many = _ort(dst, {spec.input.name: x})
    for b in range(5):
        one = _ort(src, {spec.input.name: x[b:b + 1]})
        for name, v in one.items():
            assert many[name].shape[0] == 5
            np.testing.assert_allclose(many[name][b], v[0], atol=1e-4)


def test_a_graph_with_the_batch_baked_in_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_node("Constant", [], ["s"], value=helper.make_tensor("s", TensorProto.INT64, [2], [1, 12]))
    graph = helper.make_graph([shape, helper.make_node("Reshape", ["x", "s"], ["y"])], "baked",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    src = tmp_path / "baked.onnx"
    onnx.save(model, str(src))
    with pytest.raises(ModelError) as e:
        make_batch_dynamic(src, tmp_path / "out" / "model.onnx", check_batch=2)
    assert str(src) in str(e.value) and "batch" in str(e.value)


def test_pbtxt_reader():
    text = '''# comment
    name: "m"  # trailing
    max_batch_size: 4
    input [ { name: "a" data_type: TYPE_FP32 dims: [ 1, 2 ] }, { name: "b", data_type: TYPE_INT64, dims: [-1] } ]
    instance_group { count: 2 kind: KIND_GPU gpus: [0, 1] }
    instance_group { count: 1 kind: KIND_CPU }
    parameters { key: "x" value: { string_value: "1.5e3" } }
    optimization { cuda { graphs: true } }
    '''
    cfg = parse_pbtxt(text)
    assert cfg["name"] == "m" and cfg["max_batch_size"] == 4
    assert cfg["input"][1] == {"name": "b", "data_type": "TYPE_INT64", "dims": [-1]}
    assert cfg["instance_group"] == [{"count": 2, "kind": "KIND_GPU", "gpus": [0, 1]}, {"count": 1, "kind": "KIND_CPU"}]
    assert cfg["parameters"]["value"] == {"string_value": "1.5e3"} and cfg["optimization"]["cuda"]["graphs"] is True
    with pytest.raises(ValueError, match="config.pbtxt"):
        parse_pbtxt('name: "m" input [ { name: "a" ')


def test_export_command(tmp_path, capsys):
    code = edge.cli.main(["export", "triton", "--out", str(tmp_path / "r"), "--max-batch", "4"])
    assert code == 0, capsys.readouterr().err
    cfg = parse_pbtxt((tmp_path / "r" / "resunet-lite" / "config.pbtxt").read_text())
    assert cfg["max_batch_size"] == 4 and cfg["dynamic_batching"]["preferred_batch_size"] == [2, 4]


# ---- the triton backend against the stub ------------------------------------------------------------------

pytest.importorskip("tritonclient.http", reason="the triton backend needs the [triton] extra (tritonclient[http])")
from edge.backends.triton import TritonBackend  # noqa: E402
from export.triton_stub import TritonStub  # noqa: E402


@pytest.fixture(scope="module")
def stub(repo):
    with TritonStub(repo) as s:
        yield s


def test_backend_contract_us(stub):
    spec = load_spec(US)
    be = TritonBackend(stub.url, spec)
    assert be.name == f"triton:{stub.url}/resunet-lite"
    assert be.inputs == (spec.input,) and be.outputs == tuple(spec.outputs)
    x = np.random.default_rng(1).random(spec.input.shape, dtype=np.float32)
    got = be.infer({spec.input.name: x})
    ref = _ort(US, {spec.input.name: x})
    assert list(got) == [o.name for o in spec.outputs]
    for name, v in ref.items():
        assert got[name].dtype == np.float32 and got[name].shape == tuple(spec.outputs[0].shape)
        np.testing.assert_allclose(got[name], v, atol=1e-4)
    with pytest.raises(BackendError, match=f"Triton server {stub.url}, model 'resunet-lite'.*float32"):
        be.infer({spec.input.name: x.astype(np.float64)})
    with pytest.raises(BackendError, match="input 'image' missing"):
        be.infer({"other": x})
    with pytest.raises(BackendError, match=r"model 'resunet-lite': inference failed.*shape"):  # the server's 400
        be.infer({spec.input.name: np.zeros((1, 1, 96, 96), np.float32)})
    be.close()


def test_unreachable_server_is_named(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(BackendError) as e:
        TritonBackend(f"127.0.0.1:{port}", load_spec(US), timeout_s=2)
    assert f"Triton server 127.0.0.1:{port}: not reachable" in str(e.value) and "--triton-url" in str(e.value)


def test_model_not_on_the_server_is_named(repo, tmp_path):
    import shutil

    only_ct = tmp_path / "repo"
    shutil.copytree(repo / "ctdet-k3", only_ct / "ctdet-k3")
    with TritonStub(only_ct) as s:
        with pytest.raises(BackendError) as e:
            TritonBackend(s.url, load_spec(US))
    assert f"Triton server {s.url}, model 'resunet-lite': not loaded" in str(e.value)


def test_another_model_under_the_name_is_refused(repo, stub):
    from dataclasses import replace

    spec = load_spec(US)
    wrong = replace(spec, input=replace(spec.input, name="pixels"))
    with pytest.raises(BackendError, match=r"model 'resunet-lite': the served model has no input 'pixels'"):
        TritonBackend(stub.url, wrong)
    wrong = replace(spec, input=replace(spec.input, shape=(1, 1, 256, 256)))
    with pytest.raises(BackendError, match=r"input 'image' has shape \[-1, 1, 192, 192\] there"):
        TritonBackend(stub.url, wrong)


def test_ct_scan_through_triton_equals_onnxruntime(stub, tmp_path, capsys):
    from edge.ct.testing import write_series

    series = tmp_path / "series"
    write_series(series, 10, clot_slices=[3, 4, 5])
    reports = {}
    for be in ("onnxruntime", "triton"):
        out = tmp_path / f"{be}.json"
        code = edge.cli.main(["ct", "scan", str(series), "--backend", be, "--triton-url", stub.url, "--json", str(out)])
        assert code == 0, capsys.readouterr().err
        reports[be] = json.loads(out.read_text())
    assert reports["triton"]["backend"]["name"] == f"triton:{stub.url}/ctdet-k3"
    strip = lambda fs: [{k: v for k, v in f.items() if k not in ("score", "mean_score")} for f in fs]  # noqa: E731
    assert strip(reports["triton"]["findings"]) == strip(reports["onnxruntime"]["findings"])
    for a, b in zip(reports["triton"]["findings"], reports["onnxruntime"]["findings"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)
    assert stub.requests["ctdet-k3"] >= 10


def test_us_run_through_triton_equals_onnxruntime(stub, tmp_path, capsys):
    from edge.assets import asset

    clip = asset("demo-dvt.mp4")
    reports = {}
    for be in ("onnxruntime", "triton"):
        out = tmp_path / f"{be}.json"
        code = edge.cli.main(["us", "run", str(clip), "--backend", be, "--triton-url", stub.url, "--max-frames", "20",
                              "--no-video", "--json", str(out), "--out", str(tmp_path / be)])
        assert code == 0, capsys.readouterr().err
        reports[be] = json.loads(out.read_text())
    assert reports["triton"]["backend"] == f"triton:{stub.url}/resunet-lite"
    np.testing.assert_allclose(reports["triton"]["vein_area_px"], reports["onnxruntime"]["vein_area_px"], atol=2)
    assert reports["triton"]["frames"] == reports["onnxruntime"]["frames"] == 20


def test_ct_batch_through_triton(stub, tmp_path, capsys):
    """ct batch --backend triton: the URL travels in the batch options (a Ray worker has no --triton-url)."""
    from edge.ct.testing import write_series
    from edge.jobs import ct_batch as batch

    write_series(tmp_path / "studies" / "a", 8, clot_slices=[3, 4])
    seen = []
    real = batch._detector
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(batch, "_detector", lambda opts: seen.append(opts) or real(opts))
    try:
        code = edge.cli.main(["ct", "batch", str(tmp_path / "studies"), "--backend", "triton", "--triton-url", stub.url,
                              "--out", str(tmp_path / "o")])
        assert code == 0, capsys.readouterr().err
    finally:
        monkeypatch.undo()
    rep = json.loads((tmp_path / "o" / "a" / "report.json").read_text())
    assert rep["backend"]["name"] == f"triton:{stub.url}/ctdet-k3"
    assert {o.triton_url for o in seen} == {stub.url} and not batch._DETECTORS  # closed after a local batch
