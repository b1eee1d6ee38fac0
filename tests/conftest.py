"""Shared fixtures: paths to the real data beside the checkout, skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DVT_SHARED_DATA", REPO.parent / "shared" / "data"))


def _has_gpu() -> bool:
    from edge.gpu import probe_gpu

    return probe_gpu().available


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items):
        if not _has_gpu():
            skip = pytest.mark.skip(reason="no NVIDIA GPU on this machine (nvidia-smi/libcuda probe found none)")
            for item in items:
                if "gpu" in item.keywords:
                    item.add_marker(skip)


@pytest.fixture(scope="session")
def usgra_dir() -> Path:
    path = SHARED_DATA / "usgra-seg"
    if not (path / "images").is_dir():
        pytest.skip(f"real ultrasound data not found at {path} (set DVT_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="session")
def carotid_dir() -> Path:
    path = SHARED_DATA / "carotid-momot"
    if not (path / "images").is_dir():
        pytest.skip(f"real carotid data not found at {path} (set DVT_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="session")
def ct_sample_dir() -> Path:
    path = SHARED_DATA / "ct-dicom-sample"
    if not path.is_dir():
        pytest.skip(f"real CT sample not found at {path} (set DVT_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="session")
def free_port():
    """A function that returns a free loopback TCP port, for servers that cannot be given port 0."""
    import socket

    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    return pick


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, free_port):
    """The web UI served on loopback for one test module: (service, app, "127.0.0.1:port"). The CT tab runs
    the deterministic ThresholdDetector instead of the model, so the expected findings are known."""
    pytest.importorskip("gradio")
    from edge.ct.testing import ThresholdDetector
    from edge.jobs.ct import DetectorHandle, use_detector_factory
    from edge.ui.app import launch
    from edge.ui.service import UiService

    fake = lambda options: DetectorHandle(ThresholdDetector(), {"name": "fake"}, {"name": "threshold", "file": "-"})  # noqa: E731
    with use_detector_factory(fake):
        service = UiService(workdir=tmp_path_factory.mktemp("ui"), threads=1)
        port = free_port()
        app = launch(service, host="127.0.0.1", port=port, block=False)
        yield service, app, f"127.0.0.1:{port}"
        app.close()
        service.close()


@pytest.fixture
def threshold_detector():
    """The CT detector replaced by the deterministic :class:`edge.ct.testing.ThresholdDetector` through the one
    injection point, ``edge.jobs.ct.use_detector_factory``; yields the handles opened, in order."""
    from edge.ct.testing import ThresholdDetector
    from edge.jobs.ct import DetectorHandle, use_detector_factory

    opened: list = []

    def factory(options):
        handle = DetectorHandle(ThresholdDetector(), {"name": "fake"}, {"name": "threshold-fake", "file": "-"})
        opened.append(handle)
        return handle

    with use_detector_factory(factory):
        yield opened
