"""Real-data splits, the partial losses and the generalisation command (on a small set)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.data import carotid, usgra
from training.losses import ARTERY, VESSEL, seg_loss
from training.seg_eval import artery_called_vein


def test_carotid_split_is_by_acquisition_and_deterministic():
    names = [f"ACQ{a}_slice_{i}" for a in range(10) for i in range(5)]
    acqs = [carotid.acquisition_of(n) for n in names]
    assert acqs[0] == "ACQ0"
    assign = carotid.split_of(acqs)
    assert assign == carotid.split_of(list(reversed(acqs)))
    assert sorted(set(assign.values())) == ["test", "train", "val"]
    assert sum(v == "test" for v in assign.values()) == 3 and sum(v == "val" for v in assign.values()) == 2


@pytest.mark.data
def test_real_carotid_splits_share_no_acquisition(carotid_dir):
    seen = {}
    for split in carotid.SPLITS:
        samples = carotid.load(carotid_dir, (64, 64), split)
        assert samples, split
        seen[split] = {s.acquisition for s in samples}
        assert all(s.artery.any() for s in samples)
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["val"]) and not (seen["val"] & seen["test"])


@pytest.mark.data
def test_usgra_splits_are_disjoint_and_keep_the_old_test_fifth(usgra_dir):
    pairs = usgra.list_pairs(usgra_dir)
    parts = {s: {p[0].name for p in usgra.split(pairs, s)} for s in usgra.SPLITS}
    assert sum(len(v) for v in parts.values()) == len(pairs)
    assert not (parts["train"] & parts["val"]) and not (parts["test"] & (parts["train"] | parts["val"]))
    assert parts["test"] == {p[0].name for i, p in enumerate(pairs) if i % 5 == 4}


def test_artery_only_labels_leave_vein_versus_background_free():
    """carotid masks say where the artery is; the unlabelled jugular beside it must not be taught as background."""
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4] = 1  # artery on the top half
    logits = torch.zeros(1, 3, 8, 8)
    logits[0, 1, :4] = 8.0  # artery predicted where it is
    as_bg = logits.clone()
    as_bg[0, 0, 4:] = 8.0  # bottom half called background
    as_vein = logits.clone()
    as_vein[0, 2, 4:] = 8.0  # bottom half called vein (the unlabelled jugular)
    kind = torch.tensor([ARTERY])
    assert torch.isclose(seg_loss(as_bg, labels, kind), seg_loss(as_vein, labels, kind), atol=1e-4)
    swapped = as_bg.clone()
    swapped[0, [1, 2], :4] = swapped[0, [2, 1], :4]  # the artery called vein: must cost
    assert seg_loss(swapped, labels, kind) > seg_loss(as_bg, labels, kind) + 1.0
    # a vessel-only label does not care which vessel type it is
    assert torch.isclose(seg_loss(swapped, labels, torch.tensor([VESSEL])), seg_loss(as_bg, labels, torch.tensor([VESSEL])),
                         atol=1e-4)


def test_artery_called_vein_counts_images():
    artery = np.zeros((3, 10, 10), np.uint8)
    artery[:, 2:6, 2:6] = 1
    pred = np.zeros_like(artery)
    pred[0, 2:6, 2:6] = 1  # right
    pred[1, 2:6, 2:6] = 2  # called vein
    # image 2: not found at all -> not called artery, counts as wrong
    assert artery_called_vein(pred, artery) == pytest.approx(2 / 3)


@pytest.mark.data
@pytest.mark.slow
def test_generalisation_command_on_a_small_set(tmp_path, usgra_dir, carotid_dir):
    from training.evaluate_generalisation import main

    out = tmp_path / "gen"
    assert main(["--clips", "2", "--threads", "1", "--data", str(usgra_dir.parent), "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    sets = res["sets"]
    assert {"usgra_test", "usgra_val", "carotid_test", "carotid_val", "second_renderer", "first_renderer"} <= set(sets)
    assert sets["carotid_test"]["images"] > 20 and 0 <= sets["carotid_test"]["artery_called_vein"] <= 1
    assert sets["second_renderer"]["clips"] == 2 and all(r["renderer"] == "second" for r in sets["second_renderer"]["rows"])
    md = out.with_suffix(".md").read_text()
    assert "carotid-momot, held-out acquisitions" in md and "second renderer" in md
