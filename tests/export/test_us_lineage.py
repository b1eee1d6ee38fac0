"""The model card's training stages are followed back through --init, including weights kept in the
repository beside a summary that carries the earlier stages."""

import json

from export.us_model import lineage, stage_command


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


def test_stage_command_names_every_data_option_the_run_used():
    st = {"variant": "resunet-lite", "seed": 19, "phantom_frames": 700, "eval_frames": 400, "real_repeat": 18,
          "epochs": 4, "epochs_run": 4, "lr": 0.0004, "crop": 128, "init": "w.pt", "carotid_images": 197,
          "carotid_repeat": 2, "wide": True, "scenes": 600, "max_minutes": 45.0}
    cmd = stage_command(st)
    for part in ("--seed 19", "--real-repeat 18", "--carotid-repeat 2", "--wide", "--scenes 600", "--init w.pt",
                 "--max-minutes 45.0"):
        assert part in cmd
    assert "--scenes" not in stage_command({**st, "scenes": 0})
