"""The Ray engine's manifest: one CSV row per input (what became of it), written beside the outputs.

``OUT/manifest.csv`` columns: ``input`` (the path as given or found), ``output`` (the colorized file;
empty when none was planned), ``status`` (``done``, ``skipped``: already made with this model and
settings, ``failed``), ``error`` (the one line, for ``failed``), ``seconds`` (wall time spent on it in
its worker; 0 for skipped and planning errors).

While the job runs, rows are appended to ``OUT/manifest.partial.csv`` as they come (flushed every
batch), so a killed job leaves what it finished on record; at the end the whole manifest, in input
order, replaces ``manifest.csv`` in one rename and the partial file is removed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes
from .plan import Job

MANIFEST_NAME = "manifest.csv"
PARTIAL_NAME = "manifest.partial.csv"
MANIFEST_COLUMNS = ("input", "output", "status", "error", "seconds")
STATUSES = ("done", "skipped", "failed")


class Manifest:
    """Rows kept in memory (the driver's memory grows with them: ~150 bytes per input) and appended to
    the partial file; :meth:`write` makes the final ``manifest.csv``."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST_NAME
        self.partial = folder / PARTIAL_NAME
        self.rows: list[tuple[int, tuple[str, str, str, str, str]]] = []  # (input order, the CSV row)
        self._file: io.TextIOWrapper | None = None
        self._writer: Any = None  # csv.writer on the partial file

    def add(self, order: int, job: Job | None, status: str, error: str = "", seconds: float = 0.0) -> None:
        """One input's row; ``order``: its place in the input list (the final file's order)."""
        assert status in STATUSES, status
        row = (str(job.src) if job is not None else "", str(job.out) if job is not None and job.out else "",
               status, error.replace("\n", " "), f"{seconds:.3f}")
        self.rows.append((order, row))
        if self._file is not None:
            self._writer.writerow(row)

    def open_partial(self) -> None:
        """Start appending rows to ``manifest.partial.csv`` (the folder exists); rows so far go first."""
        self._file = open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in write()
        self._writer = csv.writer(self._file)
        self._writer.writerow(MANIFEST_COLUMNS)
        for _, row in self.rows:
            self._writer.writerow(row)
        self.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close_partial(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self) -> None:
        """The whole manifest, in input order, onto ``manifest.csv`` in one rename; the partial file removed."""
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(MANIFEST_COLUMNS)
        for _, row in sorted(self.rows, key=lambda r: r[0]):
            w.writerow(row)
        atomic_write_bytes(self.path, buf.getvalue().encode("utf-8"), mkdir=True)
        self.close_partial()
        self.partial.unlink(missing_ok=True)


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """The rows of a manifest (or a partial one), as dicts keyed by :data:`MANIFEST_COLUMNS`."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
