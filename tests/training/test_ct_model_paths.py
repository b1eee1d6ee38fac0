"""--models of the CT training tools: a file or a folder; nothing found is an error, not a silent no-op."""

import pytest

from edge.errors import ModelError
from training.ct.model_paths import find_models


def test_file_folder_order_and_nothing_found(tmp_path):
    for k in (11, 1, 3):
        (tmp_path / f"ctdet-k{k}.onnx").write_bytes(b"")
    (tmp_path / "other.onnx").write_bytes(b"")
    assert [p.name for p in find_models(tmp_path)] == ["ctdet-k1.onnx", "ctdet-k3.onnx", "ctdet-k11.onnx"]
    assert find_models(tmp_path / "ctdet-k3.onnx") == [tmp_path / "ctdet-k3.onnx"]
    for bad in (tmp_path / "empty", tmp_path / "missing.onnx", tmp_path / "ctdet-k3.json"):
        if bad.name == "empty":
            bad.mkdir()
        with pytest.raises(ModelError, match="no ctdet-k"):
            find_models(bad)
