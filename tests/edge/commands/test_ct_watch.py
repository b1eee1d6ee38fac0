"""``dvt-edge ct watch DIR``: slices written into a folder while the command runs give the same findings as
``ct scan`` on the finished folder."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

import edge.cli
from edge.ct.testing import write_series

pytestmark = pytest.mark.usefixtures("ct_commands_only", "threshold_detector")


def test_watch_processes_a_folder_filled_while_it_runs(tmp_path, capsys):
    done = tmp_path / "done"
    write_series(done, 12, clot_slices=[3, 4, 5, 9])
    assert edge.cli.main(["ct", "scan", str(done), "--json", str(tmp_path / "scan.json")]) == 0
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = sorted(done.iterdir())

    def scanner():  # writes each slice under a temporary name and renames it, as a careful copy does
        for f in files:
            shutil.copy(f, inbox / (f.name + ".part"))
            (inbox / (f.name + ".part")).rename(inbox / f.name)
            time.sleep(0.05)

    writer = threading.Thread(target=scanner)
    writer.start()
    code = edge.cli.main(["ct", "watch", str(inbox), "--expected", str(len(files)), "--idle-timeout", "20",
                          "--json", str(tmp_path / "watch.json")])
    writer.join()
    out = capsys.readouterr().out
    assert code == 0 and "watching" in out
    scan = json.loads((tmp_path / "scan.json").read_text())
    watch = json.loads((tmp_path / "watch.json").read_text())
    assert watch["slices"] == scan["slices"] == len(files)
    key = lambda r: [(f["slice_start"], f["slice_end"]) for f in r["findings"]]  # noqa: E731
    assert key(watch) == key(scan) and key(scan)


@pytest.mark.parametrize("argv", [["--idle-timeout", "0"], ["--expected", "0"], ["--idle-timeout", "x"]])
def test_watch_arguments_are_checked_first(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        edge.cli.main(["ct", "watch", str(tmp_path)] + argv)
    assert exc.value.code != 0
    assert argv[0] in capsys.readouterr().err


def test_watch_of_a_missing_folder_is_one_line(tmp_path, capsys):
    code = edge.cli.main(["ct", "watch", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert code != 0 and "absent" in err and len(err.strip().splitlines()) == 1
