"""CT detector: targets, loss going down on real-looking phantom crops, ONNX export parity (training CLI and the
CT export: tests/export/test_ct_export.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.ct.decode import decode_detections, decode_model_grid  # noqa: E402
from edge.spec import load_spec  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from training.ct.dataset import CropSampler, prepare_study  # noqa: E402
from training.ct.detector import STRIDE, CTDet, detector_loss, make_targets  # noqa: E402
from training.ct.phantom import make_study  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread; restore the process-wide setting for other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PRE = {"window_level_hu": 140.0, "window_width_hu": 400.0, "target_spacing_mm": 2.0, "size": 128, "k": 3}


def test_targets_peak_at_the_centre_and_encode_the_box():
    box = [30.0, 42.0, 50.0, 54.0]  # model pixels
    heat, reg, wgt = make_targets([[box]], (32, 32))
    cy, cx = np.unravel_index(np.argmax(heat[0, 0]), heat.shape[2:])
    assert heat[0, 0, cy, cx] == 1.0 and (cx, cy) == (int(40 / STRIDE), int(48 / STRIDE))
    assert wgt[0, 0, cy, cx] == 1.0 and wgt.sum() > 1
    logits = np.where(heat[0, 0] >= 1.0, 5.0, -5.0)
    dec = {"stride": STRIDE, "top_k": 5, "nms_iou": 0.3, "peak_kernel": 3}
    boxes, scores = decode_model_grid(logits, reg[0], dec, 0.5)
    assert len(boxes) == 1 and np.allclose(boxes[0], box, atol=1e-4)


@pytest.fixture(scope="module")
def phantom_batch():
    st = prepare_study(make_study(31, size=128, n_slices=24, thickness_mm=3.0, n_thrombi=2, n_streaks=1), PRE)
    sampler = CropSampler([st], k=3, crop=64, rng=np.random.default_rng(0))
    x, boxes = sampler.batch(8)
    assert any(boxes), "the sampler must put thrombi in some crops"
    return x, boxes


def test_a_few_training_steps_reduce_the_loss(phantom_batch):
    torch.manual_seed(0)
    x, boxes = phantom_batch
    model = CTDet(k=3, width=8, head=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    targets = [torch.from_numpy(a) for a in make_targets(boxes, (16, 16))]
    xt = torch.from_numpy(x)
    losses = []
    for _ in range(15):
        loss, _ = detector_loss(model(xt), *targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_onnx_export_parity_heads_and_decoded_boxes(tmp_path, phantom_batch):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(1)
    model = CTDet(k=3, width=8, head=16)
    with torch.no_grad():  # random BN statistics, so the heads vary across the image like a trained model's
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    x = np.zeros((1, 3, 128, 128), np.float32)
    x[0, :, 32:96, 32:96] = phantom_batch[0][0]
    decode = {"type": "centernet", "stride": STRIDE, "heatmap_output": "heatmap", "box_output": "box",
              "score_threshold": 0.0, "nms_iou": 0.3, "top_k": 5, "peak_kernel": 3}
    spec = export_onnx(model, torch.from_numpy(x), tmp_path / "ctdet-k3.onnx", name="ctdet-k3",
                       task="ct-thrombus-detection", input_name="image", output_names=["heatmap", "box"],
                       preprocess=PRE, labels=["thrombus"], extra={"decode": decode})
    assert load_spec(tmp_path / "ctdet-k3.onnx").extra["decode"]["stride"] == STRIDE
    with torch.no_grad():
        h, b = model.eval()(torch.from_numpy(x))
    ref = {"heatmap": h.numpy(), "box": b.numpy()}
    sess = ort.InferenceSession(str(tmp_path / "ctdet-k3.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip(["heatmap", "box"], sess.run(["heatmap", "box"], {"image": x})))
    for name in ref:
        assert np.allclose(ref[name], got[name], atol=1e-4, rtol=1e-4), name
    kw = dict(slice_index=3, pixel_spacing_mm=(1.0, 1.0), original_shape=(256, 256))  # 2 mm grid: no crop
    d_ref, d_got = decode_detections(ref, spec, **kw), decode_detections(got, spec, **kw)
    assert len(d_ref) == len(d_got) == 5
    assert np.allclose([d.score for d in d_ref], [d.score for d in d_got], atol=1e-4)
    for a in d_ref:  # near-tied scores (untrained model, |diff| < 1e-4) may swap between torch and ORT: skip those
        if sum(abs(a.score - b.score) < 1e-4 for b in d_ref) > 1:
            continue
        assert any(np.allclose(a.box, c.box, atol=1e-2) and abs(a.score - c.score) < 1e-4 for c in d_got)
