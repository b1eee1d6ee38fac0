"""The training loop learns: a few steps on phantom frames reduce the BCE + log-Dice loss."""

from __future__ import annotations

import torch

from training.augment import augment
from training.data.us_frames import phantom_set
from training.losses import log_dice, seg_loss
from training.models.resunet import VARIANTS, build_model


def test_log_dice_is_zero_for_perfect_and_large_for_disjoint():
    t = torch.zeros(1, 8, 8)
    t[0, 2:5, 2:5] = 1
    assert float(log_dice(t, t)) < 0.01
    assert float(log_dice(1 - t, t)) > 2.0


def test_partial_labels_score_the_union_only():
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 1, :2] = 10.0  # predicted artery on the top half
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2] = 1  # vessel (type unknown) on the top half
    good = seg_loss(logits, labels, torch.tensor([True]))
    logits_v = logits.clone()
    logits_v[0, [1, 2]] = logits_v[0, [2, 1]]  # the same region called vein instead
    assert torch.isclose(good, seg_loss(logits_v, labels, torch.tensor([True])))
    assert seg_loss(logits, labels, torch.tensor([False])) > good  # a full label says it is no artery


def test_paper_variant_builds_with_resnet34_stages():
    cfg = VARIANTS["resunet34"]
    assert cfg.blocks == (3, 4, 6, 3) and cfg.widths[-1] == 512
    out = build_model("resunet34")(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, 3, 64, 64)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    data = phantom_set(seed=123, n=32, size_hw=(96, 96))
    model = build_model("resunet-lite")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        idx = torch.arange(step * 8, step * 8 + 8) % len(data)
        x, y = augment(data.images[idx], data.labels[idx], gen)
        loss = seg_loss(model(x), y, data.kind[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # single batches are noisy under the scanner augmentation: compare the first and the last few steps
    first, last = sum(losses[:4]) / 4, sum(losses[-10:]) / 10
    assert last < 0.8 * first, (first, last)
