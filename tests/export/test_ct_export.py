"""The CT detector's export (export/ct_model.py): train-only CLI + export from the checkpoint, and train-then-export
in one command, both writing the ONNX model, its spec and its card (tiny settings: seconds)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from training.ct.detector import STRIDE  # noqa: E402

TINY = ["--k", "1", "--seed", "5", "--studies", "2", "--val-studies", "1", "--epochs", "1", "--steps-per-epoch", "2",
        "--batch", "4", "--crop", "64", "--width", "8", "--head", "16", "--phantom-size", "96", "--target-mm", "3.0",
        "--input-size", "128", "--workers", "1"]


def check_outputs(out) -> dict:
    spec = json.loads((out / "ctdet-k1.json").read_text())
    assert spec["input"]["shape"] == [1, 1, 128, 128] and spec["opset"] == 17
    assert spec["preprocess"]["target_spacing_mm"] == 3.0 and spec["decode"]["stride"] == STRIDE
    assert spec["training"]["train_study_seeds"] == [50000, 50001] and "validation" in spec["metrics"]
    assert "not for diagnostic use" in (out / "ctdet-k1.md").read_text()
    return spec


def test_train_then_export_in_one_command(tmp_path, capsys):
    from export.ct_model import main

    assert main(["train", "--out", str(tmp_path), *TINY]) == 0
    spec = check_outputs(tmp_path)
    assert spec["training"]["command"].startswith("export.ct_model.train_and_export(--out ")
    assert "epoch 1/1" in capsys.readouterr().out


def test_training_cli_saves_weights_and_export_ct_onnx_writes_model_spec_and_card(tmp_path, capsys):
    import edge.cli
    from training.ct.train import main

    assert main(["--out", str(tmp_path), *TINY]) == 0
    assert (tmp_path / "ctdet-k1.pt").is_file() and not (tmp_path / "ctdet-k1.onnx").exists()
    assert "epoch 1/1" in capsys.readouterr().out
    assert edge.cli.main(["export", "ct-onnx", "--checkpoint", str(tmp_path / "ctdet-k1.pt")]) == 0
    spec = check_outputs(tmp_path)
    assert spec["training"]["command"].startswith("training.ct.train.train(--out ")


def test_training_with_vessel_scenes_mixes_them_in_and_records_them(tmp_path, capsys):
    from training.ct.train import main

    assert main(["--out", str(tmp_path), *TINY, "--scenes", "2", "--scene-val-studies", "1", "--scene-weight", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "train scenes: 2/2 drawn" in out and "val scenes: 1/1 drawn" in out
    summary = json.loads((tmp_path / "ctdet-k1.train_summary.json").read_text())
    training = summary["extra"]["training"]
    assert training["scenes"] == 2 and training["scene_weight"] == 0.5 and "vessel scenes" in training["data"]


def test_training_refuses_shares_that_leave_nothing_for_the_phantoms(tmp_path):
    from training.ct.train import main

    with pytest.raises(SystemExit, match="leave no share for the phantoms"):
        main(["--out", str(tmp_path), *TINY, "--scenes", "1", "--scene-val-studies", "1", "--scene-weight", "1.0"])


def test_export_of_two_checkpoints_is_the_mean_of_their_heads(tmp_path, capsys):
    import numpy as np
    import onnxruntime as ort
    import torch

    import edge.cli
    from export.ct_model import load_checkpoint
    from training.ct.train import main

    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "mean"
    assert main(["--out", str(a), *TINY]) == 0
    assert main(["--out", str(b), *[("6" if t == "5" else t) for t in TINY]]) == 0  # another training seed
    assert edge.cli.main(["export", "ct-onnx", "--checkpoint", str(a / "ctdet-k1.pt"), str(b / "ctdet-k1.pt"),
                          "--out", str(out)]) == 0
    spec = check_outputs(out)
    members = spec["training"]["ensemble"]
    assert [m["seed"] for m in members] == [5, 6] and spec["training"]["architecture"]["family"].startswith("mean of 2")
    card = (out / "ctdet-k1.md").read_text()
    assert "**Ensemble**" in card and "seed 6: `training.ct.train.train(--out " in card
    x = np.random.default_rng(0).random((1, 1, 128, 128), dtype=np.float32)
    got = ort.InferenceSession(str(out / "ctdet-k1.onnx")).run(None, {"image": x})
    with torch.no_grad():
        heads = [load_checkpoint(d / "ctdet-k1.pt")[0](torch.from_numpy(x)) for d in (a, b)]
    for i in range(2):
        want = (heads[0][i] + heads[1][i]).numpy() / 2
        assert np.allclose(got[i], want, atol=1e-4)
        assert not np.allclose(heads[0][i].numpy(), heads[1][i].numpy(), atol=1e-3)  # the members differ


def test_ensemble_refuses_a_summary_override(tmp_path):
    from export.ct_model import export_checkpoint

    with pytest.raises(SystemExit, match="one checkpoint"):
        export_checkpoint([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "s.json", None)
