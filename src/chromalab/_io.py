"""Plumbing every layer shares: files written whole, the progress bar, reading files from a zip or folder.

* :func:`atomic_path` / :func:`atomic_write_bytes`: a temporary file in the same folder, then one
  rename, so a reader (or a crash, or Ctrl-C) never sees half a file; the file gets the mode a plain
  ``open(path, "w")`` would give (``tempfile.mkstemp`` alone makes it 0600).
* :func:`progress_bar`: the rich progress bar of every long loop (label, bar, done/total, ETA).
* :class:`MemberReader`: files by name from a zip (opened once, on first use, and again in a
  worker process) or a folder; :func:`unsafe_member` tells which zip entries to refuse.

Imports nothing from chromalab, so any module may use it.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

_LOCK = threading.Lock()


# ---- files written whole ------------------------------------------------------------------------
def umask_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give a new file (mkstemp uses 0600)."""
    try:  # Linux: read it without changing it (os.umask is process-wide, so racy in threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def temp_path_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty file in ``path``'s folder (hidden, named after ``path``), for :func:`finish_temp`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def finish_temp(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give the finished temporary file ``tmp`` the usual mode and move it onto ``path`` in one rename."""
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", mkdir: bool = True) -> Iterator[Path]:
    """Write ``path`` whole: the block writes the temporary file it is given (``suffix``: what its
    name ends with, e.g. ``.npz`` for ``np.savez``); when the block ends without an error the file
    replaces ``path``, otherwise it is removed and ``path`` is left as it was."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(path, suffix)
    try:
        yield tmp
        finish_temp(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mkdir: bool = True) -> None:
    """Write ``data`` to ``path`` whole (see :func:`atomic_path`)."""
    with atomic_path(path, mkdir=mkdir) as tmp, open(tmp, "wb") as f:
        f.write(data)


# ---- the progress bar ---------------------------------------------------------------------------
def progress_bar(label: str, *, enabled: bool = True, transient: bool = True, unit: str | None = None,
                 info: bool = False, rate: str | None = None, elapsed: bool = False, transfer: bool = False,
                 console: Console | None = None) -> Progress:
    """A rich progress bar: ``label``, the bar, done/total (``unit`` after it), ETA.

    ``label`` is shown as it is (a file name with ``[`` or ``{`` in it is neither markup nor a
    format field). ``info``: a column showing the task's ``info`` field (``add_task(..., info="")``);
    ``rate``: the speed, done per second, with this unit (``"fps"``); ``elapsed``: the time so far,
    then ``ETA`` and the time left; ``transfer``: bytes done/total and the speed instead of the bar
    (a download); ``transient``: the bar disappears when done; ``enabled=False``: nothing is shown.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:5.1f} {rate}" if task.speed else f"  ... {rate}")

    columns: list[ProgressColumn] = [TextColumn(label.replace("{", "{{").replace("}", "}}"), markup=False)]
    if transfer:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [BarColumn(), MofNCompleteColumn()]
        if unit:
            columns.append(TextColumn(unit))
        if info:
            columns.append(TextColumn("{task.fields[info]}"))
        if rate:
            columns.append(Rate())
        if elapsed:
            columns += [TimeElapsedColumn(), TextColumn("ETA")]
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, transient=transient, disable=not enabled)


# ---- files from a zip or a folder ---------------------------------------------------------------
def unsafe_member(name: str) -> bool:
    """True for a zip entry that could escape an extraction folder (absolute, drive, or ``..``)."""
    n = name.replace("\\", "/")
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        return True
    return ".." in PurePosixPath(n).parts


class MemberReader:
    """Reads files by name (a zip member, or a path relative to the folder) from a zip or a folder.

    A zip is opened on the first read and kept open (reading its directory costs ~0.4 s for Tiny
    ImageNet); a copy sent to a worker process opens it again there.
    """

    def __init__(self, path: str | os.PathLike, is_zip: bool):
        self.path, self.is_zip = Path(path), is_zip
        self._zip: zipfile.ZipFile | None = None

    def zip(self) -> zipfile.ZipFile:
        """The open zip file (opened now if it is not yet)."""
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def read(self, name: str) -> bytes:
        if not self.is_zip:
            return (self.path / name).read_bytes()
        return self.zip().read(name)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __getstate__(self):  # worker processes reopen the zip themselves
        d = self.__dict__.copy()
        d["_zip"] = None
        return d
