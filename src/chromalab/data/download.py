"""Download the official Tiny ImageNet zip: progress bar, resume (HTTP Range), md5 check."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from .._io import finish_temp, progress_bar
from ..errors import DataError
from ..paths import OFFICIAL_ZIP_NAME, default_download_dir

__all__ = ["OFFICIAL_MD5", "OFFICIAL_URL", "default_download_dir", "download", "md5_file"]

OFFICIAL_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
OFFICIAL_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def download(
    dest_dir: str | os.PathLike | None = None,
    url: str = OFFICIAL_URL,
    md5: str | None = OFFICIAL_MD5,
    filename: str = OFFICIAL_ZIP_NAME,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` into ``dest_dir/filename``; resume a ``.part`` file; verify md5.

    On an md5 mismatch the file is moved aside to ``<name>.bad`` and :class:`DataError` is raised.
    An existing complete file with the right md5 is reused.
    """
    d = Path(dest_dir).expanduser() if dest_dir else default_download_dir()
    d.mkdir(parents=True, exist_ok=True)
    final = d / filename
    part = d / (filename + ".part")
    if final.exists():
        if md5 is None or md5_file(final) == md5:
            return final
        bad = _set_aside(final)
        raise DataError(f"{final}: md5 mismatch (expected {md5}); moved aside to {bad.name}, not used")

    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "chromalab"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            resp = None
        else:
            raise DataError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"{url}: download failed ({reason}); partial data kept in {part}") from None

    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            if have and status != 206:  # server ignored Range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with progress_bar(f"downloading {filename}", transfer=True, enabled=progress, transient=False) as bar, \
                    open(part, "ab" if have else "wb") as f:
                task = bar.add_task("dl", total=total, completed=have)
                try:
                    while chunk := resp.read(1 << 16):
                        f.write(chunk)
                        bar.advance(task, len(chunk))
                except (OSError, urllib.error.URLError) as e:
                    raise DataError(
                        f"{url}: connection lost ({e}); run the command again to resume from {part}"
                    ) from None
    finish_temp(part, final)  # the download is whole: one rename
    if md5 is not None:
        got = md5_file(final)
        if got != md5:
            bad = _set_aside(final)
            raise DataError(f"{final}: md5 mismatch (got {got}, expected {md5}); moved aside to {bad.name}, not used")
    return final


def _set_aside(path: Path) -> Path:
    bad = path.with_name(path.name + ".bad")
    path.replace(bad)
    return bad
