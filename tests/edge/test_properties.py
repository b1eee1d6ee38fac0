"""Property-based tests (hypothesis) over the cheap readers' and measurement helpers: invariants that must
hold for every input, not just the examples the other tests picked."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the [dev] extra")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from edge.errors import ConfigError, InputError  # noqa: E402

FAST = settings(max_examples=60, deadline=None)  # no per-example time limit: the machine is shared


@FAST
@given(st.integers(0, 100_000), st.integers(1, 100_000))
def test_short_read_only_when_clearly_fewer_frames_than_stated(read, expected):
    from edge.sources.video import short_read

    assert short_read(read, None) is False and short_read(read, 0) is False
    if read >= expected - 1:
        assert not short_read(read, expected)
    if read <= expected // 2 and expected >= 4:
        assert short_read(read, expected)


@FAST
@given(st.floats(0, 5, allow_nan=False), st.floats(0.1, 5, allow_nan=False))
def test_too_short_reason_never_shows_what_is_needed(duration, need):
    from edge.us.verdict import too_short_reason

    msg = too_short_reason(duration, need)
    shown = float(msg.split("too short: ")[1].split(" s")[0])
    assert shown <= duration + 1e-9, "rounded down, never up"
    if duration < need:
        assert shown < need, msg


@FAST
@given(st.tuples(st.integers(0, 400), st.integers(0, 400), st.integers(1, 400), st.integers(1, 400)),
       st.tuples(st.integers(1, 400), st.integers(1, 400)))
def test_check_crop_accepts_exactly_the_crops_inside_the_frame(crop, size):
    from edge.jobs.us import check_crop

    x, y, w, h = crop
    inside = x + w <= size[0] and y + h <= size[1]
    if inside:
        check_crop(crop, size, "clip")
    else:
        with pytest.raises(ConfigError, match="--crop"):
            check_crop(crop, size, "clip")


@FAST
@given(st.lists(st.floats(0, 200, allow_nan=False), min_size=2, max_size=40))
def test_frame_time_vector_gives_times_from_zero_never_decreasing(increments):
    from pydicom.dataset import Dataset

    from edge.sources.dicom_cine import frame_times

    ds = Dataset()
    ds.FrameTimeVector = [round(v, 3) for v in increments]
    ds.FrameIncrementPointer = 0x00181065
    t, fps, timing = frame_times(ds, len(increments), fps=25.0)
    assert t is not None and len(t) == len(increments) and t[0] == 0.0
    assert np.all(np.diff(t) >= 0)
    assert timing in ("FrameTimeVector", "fps argument")  # an all-zero vector falls back to the given rate


@FAST
@given(arrays(st.sampled_from([np.uint8, np.uint16, np.float32, np.int32]),
              st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3, 4])),
              elements={"allow_nan": False, "allow_infinity": False, "min_value": 0, "max_value": 255}))
def test_to_uint8_gives_uint8_grey_or_bgr_of_the_same_size(image):
    from edge.sources.video import to_uint8

    out = to_uint8(image)
    assert out.dtype == np.uint8 and out.shape[:2] == image.shape[:2]
    assert out.ndim == 2 or out.shape[2] == 3


@FAST
@given(st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=12),
       st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=6, max_size=12),
       st.sampled_from(["rtsp", "http", "udp", "srt"]))
def test_redacted_stream_name_never_holds_the_credentials(user, secret, scheme):
    from edge.sources.video import redact_url

    name = redact_url(f"{scheme}://{user}:{secret}@10.1.2.3:554/live?token={secret}")
    assert secret not in name and name == f"{scheme}://10.1.2.3:554"


@FAST
@given(st.lists(st.floats(0, 5000, allow_nan=False), min_size=3, max_size=120))
def test_baseline_and_min_are_ordered_and_taken_from_the_curve(areas):
    from edge.us.measure import baseline_and_min

    t = np.arange(len(areas)) / 30.0
    a = np.asarray(areas)
    base, low, i = baseline_and_min(t, a)
    if base is None:
        return
    assert low <= base + 1e-6
    assert a.min() - 1e-6 <= low and base <= a.max() + 1e-6


# --------------------------------------------------------------------- cut files never pass as complete
_CT_SERIES: dict = {}


def _ct_series():
    """One synthetic 4-slice series, written once (hypothesis re-runs the test body many times)."""
    if not _CT_SERIES:
        import tempfile
        from pathlib import Path

        from edge.ct.testing import write_series

        folder = Path(tempfile.mkdtemp(prefix="dvt-props-ct-"))
        paths = write_series(folder, n=4)
        _CT_SERIES.update(folder=folder, victim=paths[1], data=paths[1].read_bytes())
    return _CT_SERIES


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_ct_slice_cut_anywhere_after_its_dicm_marker_is_an_error_naming_it(data):
    from edge.ct.dicom_series import scan_series

    s = _ct_series()
    cut = data.draw(st.integers(132, len(s["data"]) - 1), label="bytes kept")
    s["victim"].write_bytes(s["data"][:cut])
    try:
        with pytest.raises(InputError) as err:
            scan_series(s["folder"])
        assert s["victim"].name in str(err.value) and "truncated" in str(err.value)
    finally:
        s["victim"].write_bytes(s["data"])


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 0.999))
def test_a_cine_cut_anywhere_never_yields_all_its_frames_quietly(tmp_path_factory, keep):
    from edge.faults import truncate
    from edge.sources.dicom_cine import DicomCineSource
    from edge.sources.testing import make_dicom

    path = tmp_path_factory.mktemp("cine") / "c.dcm"
    frames = np.stack([np.full((16, 24), 10 + 20 * i, np.uint8) for i in range(6)])
    truncate(make_dicom(path, frames), keep)
    got = []
    with pytest.raises(InputError) as err:  # at open, or (SourceError) while streaming
        with DicomCineSource(path) as src:
            got = [f.index for f in src]
    assert "c.dcm" in str(err.value) and len(got) < 6
