"""``dvt-edge ct batch``: many studies, one report each, failures per study; locally and on a Ray cluster
(started by the test on 127.0.0.1 with two worker CPUs). Every study's findings equal ``ct scan``'s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edge.cli
from edge.ct.testing import write_series
from edge.jobs.ct_batch import find_studies

CLOTS = [[2, 3, 4, 5, 10], [], [6, 7], [1, 2], [8, 9, 10, 11], [4]]


pytestmark = pytest.mark.usefixtures("ct_commands_only")


@pytest.fixture(scope="module")
def studies(tmp_path_factory, tiny_ct_model):
    """(root folder of 7 studies: 6 synthetic series + 1 corrupt, tiny model, ct scan findings per study)."""
    root = tmp_path_factory.mktemp("batch")
    model = tiny_ct_model(tmp_path_factory.mktemp("model"))
    for i, clots in enumerate(CLOTS):
        write_series(root / "studies" / f"study-{i}", 14, clot_slices=clots)
    bad = root / "studies" / "study-corrupt"
    bad.mkdir()
    for j in range(3):
        (bad / f"s{j:03d}.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x07garbage" * 40)
    expected = {}
    for i in range(len(CLOTS)):
        out = root / "scan" / f"study-{i}.json"
        out.parent.mkdir(exist_ok=True)
        code = edge.cli.main(["ct", "scan", str(root / "studies" / f"study-{i}"), "--model", str(model),
                              "--backend", "onnxruntime", "--json", str(out)])
        assert code == 0
        expected[f"study-{i}"] = json.loads(out.read_text())["findings"]
    return root / "studies", model, expected


def _check(out: Path, expected: dict, code: int, err: str) -> dict:
    assert code == 8, err  # some study failed
    summary = json.loads((out / "batch.json").read_text())
    assert summary["studies"] == 7 and summary["ok"] == 6 and summary["failed"] == 1
    by = {r["name"]: r for r in summary["results"]}
    assert not by["study-corrupt"]["ok"] and "study-corrupt" in by["study-corrupt"]["error"]
    assert "study-corrupt: FAILED" in err
    for name, findings in expected.items():
        rep = json.loads((out / name / "report.json").read_text())
        assert rep["findings"] == findings, name  # the same findings as ct scan
        assert by[name]["ok"] and by[name]["findings"] == findings
        assert sorted(p.name for p in (out / name).glob("finding-*.png")) == rep["key_images"]
    assert [len(f) for f in expected.values()] == [2, 0, 1, 1, 1, 1]  # the studies differ
    assert not (out / "study-corrupt").exists()
    assert summary["serial_equivalent_s"] == pytest.approx(sum(r["seconds"] for r in summary["results"]), abs=0.01)
    assert summary["wall_s"] > 0
    return summary


def test_find_studies(tmp_path):
    write_series(tmp_path / "a", 3)
    write_series(tmp_path / "group" / "b", 3)
    write_series(tmp_path / "group" / "c", 3)
    (tmp_path / "group" / "vol.nii.gz").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    found, bad = find_studies([tmp_path / "a", tmp_path / "group", tmp_path / "missing", tmp_path / "empty"])
    assert [n for n, _ in found] == ["a", "b", "c", "vol"]
    assert [(r.name, r.ok) for r in bad] == [("missing", False), ("empty", False)]
    assert "no such file" in bad[0].error and "empty folder" in bad[1].error
    found, _ = find_studies([tmp_path / "a", tmp_path / "a"])
    assert [n for n, _ in found] == ["a", "a-2"]


def test_batch_locally_equals_scan_and_a_corrupt_study_fails_alone(studies, tmp_path, capsys):
    root, model, expected = studies
    out = tmp_path / "out"
    code = edge.cli.main(["ct", "batch", str(root), "--model", str(model), "--backend", "onnxruntime", "--out", str(out)])
    _, err = capsys.readouterr()
    summary = _check(out, expected, code, err)
    assert summary["executor"]["kind"] == "local"


def test_batch_needs_out(studies, capsys):
    root, model, _ = studies
    assert edge.cli.main(["ct", "batch", str(root)]) == 6
    assert "--out" in capsys.readouterr().err


def test_batch_on_a_ray_cluster(studies, tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'dvt-edge[ray]')")
    import shutil
    import tempfile

    root, model, expected = studies
    temp = tempfile.mkdtemp(prefix="dvtray-", dir="/tmp")  # a short path: Ray's unix sockets live under it
    from edge.jobs.ct_batch import loopback_only

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setattr("ray._private.ray_constants.ENABLE_RAY_CLUSTER", False)
    loopback_only(ray)  # GCS, raylet and the two workers on 127.0.0.1
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             _temp_dir=temp)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:")
        out = tmp_path / "out"
        code = edge.cli.main(["ct", "batch", str(root), "--ray", address, "--model", str(model),
                              "--backend", "onnxruntime", "--out", str(out)])
        o, err = capsys.readouterr()
        summary = _check(out, expected, code, err)
        assert summary["executor"]["kind"] == "ray" and summary["executor"]["cpus"] == 2
        workers = {r["worker"] for r in summary["results"] if r["ok"]}
        assert workers and all(":" in w for w in workers)  # ran in Ray worker processes, not the driver
        import os

        assert all(not w.endswith(f":{os.getpid()}") for w in workers)
        assert "Ray cluster: 2 CPU(s)" in o
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_address_that_answers_nothing_is_one_line(studies, tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'dvt-edge[ray]')")
    import socket

    root, model, _ = studies
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("RAY_gcs_rpc_server_connect_timeout_s", "2")
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(ConnectionError("unreachable")))
    code = edge.cli.main(["ct", "batch", str(root), "--ray", f"127.0.0.1:{port}", "--model", str(model),
                          "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 6 and f"--ray 127.0.0.1:{port}: cannot connect" in err and "ray start --head" in err
