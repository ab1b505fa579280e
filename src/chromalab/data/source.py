"""Read Tiny ImageNet the way users have it: the official zip, its extracted folder,
or any zip/folder in the same layout. Zips are read in place, never extracted.

Layout (the root may sit under any prefix, e.g. ``tiny-imagenet-200/``)::

    <root>/train/<wnid>/images/<wnid>_<i>.JPEG
    <root>/val/images/val_<i>.JPEG
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .._io import MemberReader, unsafe_member
from ..errors import DataError
from ..paths import ENV_DATA, OFFICIAL_ZIP_NAME, default_data_file

__all__ = ["ENV_DATA", "OFFICIAL_ZIP_NAME", "Member", "Source", "resolve_data_path", "source_fingerprint",
           "unsafe_member"]

_TRAIN_RE = re.compile(r"^(?P<root>(?:.*/)?)train/(?P<wnid>[^/]+)/images/(?P=wnid)_(?P<i>\d+)\.jpe?g$", re.I)
_VAL_RE = re.compile(r"^(?P<root>(?:.*/)?)val/images/val_(?P<i>\d+)\.jpe?g$", re.I)


@dataclass(frozen=True)
class Member:
    split: str  # "train" or "val" (the official split it comes from)
    name: str  # path inside the source (zip member or relative file path)
    wnid: str  # class id ("" for val)
    index: int  # the image number in its class (train) or in val


class Source:
    """A Tiny ImageNet-layout source: a zip file or a folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataError(f"{self.path}: no such file or folder (pass --data PATH or set {ENV_DATA})")
        self.is_zip = self.path.is_file()
        self._files = MemberReader(self.path, self.is_zip)
        if self.is_zip:
            names = self._open_zip_names()
        else:
            names = [
                str(p.relative_to(self.path)).replace(os.sep, "/")
                for p in self.path.rglob("*")
                if p.suffix.lower() in (".jpeg", ".jpg") and p.is_file()
            ]
        self.names = names
        self.members = self._index(names)

    # -- opening --------------------------------------------------------------------------
    def _open_zip_names(self) -> list[str]:
        try:
            zf = self._files.zip()
        except zipfile.BadZipFile as e:
            raise DataError(f"{self.path}: not a readable zip file, truncated or corrupt ({e})") from None
        except OSError as e:
            raise DataError(f"{self.path}: cannot open ({e.strerror or e})") from None
        names = zf.namelist()
        bad = [n for n in names if unsafe_member(n)]
        if bad:
            self._files.close()
            raise DataError(
                f"{self.path}: refusing zip with unsafe entry name {bad[0]!r} "
                f"(absolute path or '..'; {len(bad)} such entries)"
            )
        return names

    def _index(self, names: list[str]) -> dict[str, list[Member]]:
        train: list[Member] = []
        val: list[Member] = []
        roots: set[str] = set()
        for n in names:
            m = _TRAIN_RE.match(n)
            if m:
                roots.add(m["root"])
                train.append(Member("train", n, m["wnid"], int(m["i"])))
                continue
            m = _VAL_RE.match(n)
            if m:
                roots.add(m["root"])
                val.append(Member("val", n, "", int(m["i"])))
        if not train and not val:
            raise DataError(
                f"{self.path}: no Tiny ImageNet images found (expected train/<wnid>/images/*.JPEG "
                "and/or val/images/val_<i>.JPEG)"
            )
        if len(roots) > 1:
            raise DataError(f"{self.path}: more than one Tiny ImageNet root inside ({sorted(roots)[:3]})")
        # Deterministic order. Train is index-major (image 0 of every class, then image 1, ...)
        # so that any prefix is class-balanced; val is by index, as the official split.
        train.sort(key=lambda m: (m.index, m.wnid))
        val.sort(key=lambda m: m.index)
        return {"train": train, "val": val}

    # -- reading --------------------------------------------------------------------------
    def read(self, name: str) -> bytes:
        return self._files.read(name)

    def close(self) -> None:
        self._files.close()

    # -- identity -------------------------------------------------------------------------
    def fingerprint(self) -> dict:
        """Cheap identity of the source: changes when the file(s) change."""
        return source_fingerprint(self.path)


def source_fingerprint(path: Path) -> dict:
    path = Path(path).expanduser().resolve()
    if path.is_file():
        st = path.stat()
        return {"path": str(path), "kind": "zip", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    h = hashlib.sha1()
    count = 0
    total = 0
    newest = 0
    for dirpath, _dirs, files in sorted(os.walk(path)):
        for f in sorted(files):
            st = os.stat(os.path.join(dirpath, f))
            count += 1
            total += st.st_size
            newest = max(newest, st.st_mtime_ns)
            h.update(f.encode())
    return {
        "path": str(path),
        "kind": "folder",
        "files": count,
        "size": total,
        "mtime_ns": newest,
        "names_sha1": h.hexdigest(),
    }


def resolve_data_path(data: str | os.PathLike | None) -> Path:
    """--data, else $CHROMALAB_DATA, else the default download location."""
    if data:
        p = Path(data).expanduser()
        if not p.exists():
            raise DataError(f"{p}: no such file or folder (given with --data)")
        return p
    env = os.environ.get(ENV_DATA)
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise DataError(f"{p}: no such file or folder (from ${ENV_DATA})")
        return p
    p = default_data_file()
    if p.exists():
        return p
    raise DataError(
        f"no data source: pass --data PATH, set ${ENV_DATA}, or run `chromalab data download` (looked for {p})"
    )
