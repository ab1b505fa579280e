"""Files written whole: a temporary file in the same folder, then a rename.

A reader (or a crash, or Ctrl-C) never sees half a file, and the file gets the mode a plain
``open(path, "w")`` would give (``tempfile.mkstemp`` alone makes it 0600).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

_LOCK = threading.Lock()


def _umask_mode() -> int:
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


def _atomic_write_bytes(path: Path, data: bytes, mkdir: bool = True) -> None:
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
