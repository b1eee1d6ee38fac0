"""Image-region detection and normalisation on a synthetic scanner screen."""

import cv2
import numpy as np

from edge.spec import ModelSpec, TensorSpec
from edge.us.preprocess import Preprocessor, find_image_region, normalise, to_grey


def screen(seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((480, 640), np.uint8)
    img[60:420, 100:560] = rng.integers(20, 200, (360, 460), dtype=np.uint8)  # speckled image region
    img[150:200, 200:260] = 0  # an anechoic lumen inside the image
    cv2.putText(img, "L12-5  FR 30Hz  G 52", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2)
    for y in range(70, 420, 40):  # depth scale ticks right of the image
        cv2.line(img, (570, y), (580, y), 255, 1)
        cv2.putText(img, str((y - 70) // 40), (585, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
    return img


def test_region_excludes_text_and_scale():
    x, y, w, h = find_image_region(screen())
    assert abs(x - 100) <= 4 and abs(y - 60) <= 4 and abs(w - 460) <= 8 and abs(h - 360) <= 8


def test_region_of_blank_frame_is_whole_frame():
    assert find_image_region(np.zeros((100, 120), np.uint8)) == (0, 0, 120, 100)


def test_to_grey_accepts_bgr_and_grey():
    g = np.full((4, 5), 7, np.uint8)
    assert to_grey(g) is g
    assert to_grey(np.dstack([g, g, g])).shape == (4, 5)


def test_normalise_writes_into_buffer():
    buf = np.empty((1, 1, 2, 2), np.float32)
    out = normalise(np.array([[0, 255], [51, 102]], np.uint8), 1 / 255, 0.5, 0.25, out=buf)
    assert out is buf
    np.testing.assert_allclose(out[0, 0], [[-2.0, 2.0], [-1.2, -0.4]], atol=1e-5)


def test_preprocessor_reuses_its_buffer_and_reports_area_scale():
    spec = ModelSpec("m", "us-segmentation", TensorSpec("image", (1, 1, 96, 128), "float32"),
                     (TensorSpec("logits", (1, 3, 96, 128), "float32"),), {"scale": 1 / 255}, ("background", "artery", "vein"))
    pre = Preprocessor(spec)
    a, small = pre(screen())
    b, _ = pre(screen(1))
    assert a is b and a.shape == (1, 1, 96, 128) and small.shape == (96, 128)
    x, y, w, h = pre.region
    assert abs(pre.model_px_area() - (w / 128) * (h / 96)) < 1e-9
