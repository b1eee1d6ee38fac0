"""Streaming: the k-slice ring (emission order, lag, padding, flush), the reorder buffer, folder sources."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

from edge.ct.ring import SliceRing
from edge.ct.stream import SliceStream, iter_folder, stream_datasets, watch_folder
from edge.ct.testing import write_series
from edge.ct.types import CTSlice
from edge.errors import ConfigError


def _slice(i: int, pos: float | None = None) -> CTSlice:
    return CTSlice(hu=np.full((4, 4), i, np.float32), index=i, position_mm=float(i * 3 if pos is None else pos),
                   pixel_spacing_mm=(1.0, 1.0))


@pytest.mark.parametrize("k", [1, 3, 11])
def test_ring_emits_each_centre_once_with_lag_and_edge_padding(k):
    n, half = 15, (k - 1) // 2
    ring = SliceRing(k)
    emitted: list[tuple[int, int, tuple[int, ...]]] = []  # (pushed so far, centre, window indices)
    for i in range(n):
        for w in ring.push(_slice(i)):
            emitted.append((i + 1, w.centre.index, tuple(s.index for s in w.slices)))
    during = len(emitted)
    for w in ring.flush():
        emitted.append((n, w.centre.index, tuple(s.index for s in w.slices)))
    assert ring.flush() == []  # idempotent
    assert [c for _, c, _ in emitted] == list(range(n))  # every centre once, in order
    assert during == n - half  # the last h centres only come with the flush
    for pushed, c, win in emitted:
        if c + half < n:
            assert pushed == c + half + 1  # emitted as soon as slice c+h arrived: lag h
        assert len(win) == k and win[half] == c
        assert win == tuple(min(max(j, 0), n - 1) for j in range(c - half, c + half + 1))  # edge repeated


def test_ring_short_series_and_bad_input():
    ring = SliceRing(11)
    assert ring.push(_slice(0)) == [] and ring.push(_slice(1)) == []
    wins = ring.flush()
    assert [tuple(s.index for s in w.slices) for w in wins] == [(0,) * 6 + (1,) * 5, (0,) * 5 + (1,) * 6]
    with pytest.raises(ValueError):
        SliceRing(3).push(_slice(2))  # must start at 0
    for bad in (2, 0, 13):
        with pytest.raises(ConfigError):
            SliceRing(bad)


def test_reorder_small_disorder_in_both_directions():
    order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8]
    for positions in ([i * 3.0 for i in order], [-i * 3.0 for i in order]):
        s = SliceStream([_slice(0, p) for p in positions])
        out = list(s)
        got = [x.position_mm for x in out]
        assert sorted(got, reverse=s.direction < 0) == got and len(got) == 10
        assert [x.index for x in out] == list(range(10)) and s.warnings == []
        assert s.direction == (1 if positions[1] > 0 else -1)


def test_reorder_late_and_duplicate_slices_are_dropped_with_warning():
    positions = [0, 3, 6, 9, 12, 15, 18, 1.5, 21, 21]  # 1.5 arrives 6 slices late, 21 twice
    s = SliceStream([_slice(0, p) for p in positions], reorder_window=3)
    got = [x.position_mm for x in s]
    assert got == [0, 3, 6, 9, 12, 15, 18, 21]
    assert any("arrived late" in w for w in s.warnings) and any("duplicate position" in w for w in s.warnings)


def test_stream_reports_gap():
    s = SliceStream([_slice(0, p) for p in (0, 3, 6, 12, 15, 18)])
    list(s)
    assert any("gap after received slice 2" in w for w in s.warnings)


def test_iter_folder_is_position_sorted(tmp_path):
    write_series(tmp_path, 8, names=[f"{(i * 5) % 8}.dcm" for i in range(8)])
    s = iter_folder(tmp_path)
    out = list(s)
    assert [x.index for x in out] == list(range(8)) and s.direction == 1 and s.count == 8
    assert np.all(np.diff([x.position_mm for x in out]) == 3.0)


def test_stream_datasets_skips_other_series_and_non_ct(tmp_path):
    import pydicom

    a = write_series(tmp_path / "a", 5, series_uid="1.2.3.1")
    b = write_series(tmp_path / "b", 2, series_uid="1.2.3.2")
    items = [(p.name, pydicom.dcmread(p)) for p in a[:2] + b + a[2:]]
    mr = pydicom.dcmread(a[0])
    mr.Modality = "MR"
    items.append(("mr", mr))
    s = stream_datasets(items)
    assert len(list(s)) == 5
    assert any("2 slice(s) received but not processed" in w for w in s.warnings)
    assert any("Modality is MR" in w for w in s.warnings)


def test_watch_folder_takes_files_as_they_become_stable(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    paths = write_series(src, 6)
    dst.mkdir()

    def writer():
        for p in paths[::-1]:  # the scanner sends head-to-feet here
            data = p.read_bytes()
            part = dst / p.name
            with open(part, "wb") as f:  # written in two halves: a half file must not be taken
                f.write(data[: len(data) // 2])
                f.flush()
                time.sleep(0.12)
                f.write(data[len(data) // 2:])
            time.sleep(0.03)
        (dst / "notes.txt").write_text("not dicom")

    t = threading.Thread(target=writer)
    t.start()
    s = watch_folder(dst, idle_timeout_s=0.8, poll_s=0.04, stable_s=0.3)
    out = list(s)
    t.join()
    assert len(out) == 6 and s.direction == -1
    assert [x.position_mm for x in out] == sorted((x.position_mm for x in out), reverse=True)
    assert not any("truncated" in w for w in s.warnings)
    assert any("notes.txt" in w for w in s.warnings)


def test_watch_folder_expected_count_ends_early(tmp_path):
    paths = write_series(tmp_path / "src", 4)
    dst = tmp_path / "dst"
    dst.mkdir()
    for p in paths:
        shutil.copy(p, dst / p.name)
    t0 = time.monotonic()
    out = list(watch_folder(dst, idle_timeout_s=30, expected_count=4, poll_s=0.05, stable_s=0.1))
    assert len(out) == 4 and time.monotonic() - t0 < 25  # ended on the count, not on the 30 s idle timeout
