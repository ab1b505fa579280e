"""chromalab._io: whole-file writes, the progress bar, the zip/folder reader."""

from __future__ import annotations

import os
import pickle
import stat
import zipfile

import numpy as np
import pytest

from chromalab._io import (
    MemberReader,
    atomic_path,
    atomic_write_bytes,
    progress_bar,
    umask_mode,
    unsafe_member,
)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_atomic_write_bytes_gives_the_usual_mode_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(p, b"abc")
    assert p.read_bytes() == b"abc" and _mode(p) == umask_mode()
    atomic_write_bytes(p, b"xyz")
    assert p.read_bytes() == b"xyz"
    assert sorted(x.name for x in p.parent.iterdir()) == ["out.bin"]


def test_atomic_path_keeps_the_old_file_when_the_block_fails(tmp_path):
    p = tmp_path / "state.npz"
    with atomic_path(p, suffix=".npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npz")
        np.savez(tmp, a=np.arange(3))  # a name ending in .npz: written where asked
    with np.load(p) as z:
        assert z["a"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError), atomic_path(p, suffix=".npz") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    with np.load(p) as z:
        assert z["a"].tolist() == [0, 1, 2]
    assert [x.name for x in tmp_path.iterdir()] == ["state.npz"]


def test_umask_mode_is_what_open_gives(tmp_path):
    with open(tmp_path / "plain", "w"):
        pass
    assert umask_mode() == _mode(tmp_path / "plain")


def test_member_reader_reads_zip_and_folder_and_reopens_after_pickling(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("x/one.txt", b"1")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "two.txt").write_bytes(b"2")
    r = MemberReader(z, is_zip=True)
    assert r.read("x/one.txt") == b"1" and r.zip() is r.zip()  # opened once
    copy = pickle.loads(pickle.dumps(r))  # what a worker process gets: the zip is opened again there
    assert copy._zip is None and copy.read("x/one.txt") == b"1"
    r.close()
    copy.close()
    assert MemberReader(tmp_path / "f", is_zip=False).read("two.txt") == b"2"


def test_unsafe_member():
    assert not unsafe_member("train/n01/images/n01_0.JPEG")
    for bad in ("/etc/passwd", "../x.jpg", "a/../../x.jpg", "C:/x.jpg", "a\\..\\x.jpg"):
        assert unsafe_member(bad), bad


def test_progress_bar_columns():
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    bar = progress_bar("evaluating", enabled=False)
    assert [type(c) for c in bar.columns] == [TextColumn, BarColumn, MofNCompleteColumn, TimeRemainingColumn]
    assert bar.disable and bar.live.transient
    kinds = [type(c).__name__ for c in progress_bar("preparing", unit="img", info=True, elapsed=True).columns]
    assert kinds == ["TextColumn", "BarColumn", "MofNCompleteColumn", "TextColumn", "TextColumn",
                     "TimeElapsedColumn", "TextColumn", "TimeRemainingColumn"]
    assert "Rate" in [type(c).__name__ for c in progress_bar("video", rate="fps").columns]
    dl = progress_bar("downloading", transfer=True, transient=False)
    assert DownloadColumn in [type(c) for c in dl.columns] and not dl.live.transient


def test_progress_bar_shows_the_label_as_it_is_and_the_rate():
    from rich.console import Console

    con = Console(record=True, width=160, force_terminal=False)
    bar = progress_bar("colorizing in/[b]x[/b] {y}.png", unit="frames", rate="fps", elapsed=True, console=con)
    task = bar.add_task("", total=12)
    bar.update(task, completed=6)
    con.print(bar.make_tasks_table(bar.tasks))
    text = con.export_text()
    assert "colorizing in/[b]x[/b] {y}.png" in text  # neither markup nor a format field
    assert "6/12 frames" in text and "... fps" in text and "ETA" in text
