"""The CT job called directly: the detector handle, the one injection point, and a series end to end."""

from pathlib import Path

import pytest

from edge.ct.testing import ThresholdDetector, write_series
from edge.errors import ModelError
from edge.jobs import ct as job


class SpyBackend:
    name = "spy"

    def __init__(self):
        self.closed = 0

    def close(self):
        self.closed += 1


def test_a_handle_closes_the_backend_of_its_detector_once():
    det = ThresholdDetector()
    det.backend = SpyBackend()
    with job.DetectorHandle(det, {"name": "spy"}, {"name": "threshold"}) as handle:
        assert handle.detector is det
    handle.close()
    assert det.backend.closed == 1


def test_the_injection_point_is_used_and_restored():
    opened = []

    def factory(options):
        opened.append(options)
        return job.DetectorHandle(ThresholdDetector(), {"name": "fake"}, {"name": "threshold"})

    with job.use_detector_factory(factory):
        handle = job.open_detector(job.DetectorOptions(score_threshold=0.4))
    assert opened == [job.DetectorOptions(score_threshold=0.4)] and isinstance(handle.detector, ThresholdDetector)
    with pytest.raises(ModelError, match="model not found"):  # the real factory again
        job.open_detector(job.DetectorOptions(model=Path("/nonexistent/ctdet.onnx")))


def test_detect_series_runs_the_loop_and_writes_the_report(tmp_path, threshold_detector):
    write_series(tmp_path / "s", 12, clot_slices=[4, 5, 6])
    source, kind = job.open_input(tmp_path / "s")
    lines: list[str] = []
    with job.open_detector() as handle:
        result, report = job.detect_series(source, handle, kind, out=tmp_path / "out", log=lines.append,
                                           warn=lines.append)
    assert result.slices == 12 and len(result.findings) == 1
    assert report["findings"][0]["slice_start"] == 4 and report["findings"][0]["slice_end"] == 6
    assert (tmp_path / "out" / "report.json").is_file() and report["key_images"]
    assert report["backend"]["name"] == "fake" and "1 candidate(s)" in lines[-1]


def test_a_wrong_k_is_refused_before_any_slice_is_read(tmp_path, threshold_detector):
    from edge.errors import ConfigError

    write_series(tmp_path / "s", 6)
    source, kind = job.open_input(tmp_path / "s")
    with job.open_detector() as handle, pytest.raises(ConfigError):
        job.detect_series(source, handle, kind, k=5)
