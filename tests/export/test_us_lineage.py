"""The model card's training stages are followed back through --init, including weights kept in the
repository beside a summary that carries the earlier stages."""

import json

from export.us_model import lineage


def test_lineage_follows_init_through_run_folders_and_kept_weights(tmp_path):
    kept = tmp_path / "weights"
    kept.mkdir()
    (kept / "m.pt").write_bytes(b"")
    old = [{"seed": 0, "init": None}, {"seed": 1, "init": "gone/m.pt"}]
    (kept / "m.train_summary.json").write_text(json.dumps({"seed": 2, "init": "gone2/m.pt", "stages": old}))
    run = tmp_path / "run4"
    run.mkdir()
    (run / "train_summary.json").write_text(json.dumps({"seed": 4, "init": str(kept / "m.pt")}))
    last = {"seed": 5, "init": str(run / "m.pt")}
    stages = lineage(last, tmp_path / "run5" / "train_summary.json")
    assert [st["seed"] for st in stages] == [0, 1, 2, 4, 5]


def test_lineage_stops_where_the_chain_is_lost(tmp_path):
    last = {"seed": 7, "init": str(tmp_path / "missing" / "m.pt")}
    assert [st["seed"] for st in lineage(last, tmp_path / "s.json")] == [7]
