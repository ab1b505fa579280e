"""Tiny ImageNet class labels for the images of a prepared split (the semantic branch's targets).

The 200 class ids (``wnid``) come from the source's ``wnids.txt``, sorted, so class ``k`` is
the k-th id in alphabetical order (the same numbering whatever the order of the file).
A train image's class is in its path (``train/<wnid>/images/<wnid>_<i>.JPEG``); a val
image's class is in ``val/val_annotations.txt`` (``val_<i>.JPEG<TAB><wnid><TAB>box...``).

A source without ``wnids.txt`` (a folder holding only images) falls back to the wnids of
its train images; val images without an annotation get label ``-1`` (ignored by the loss).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from ..errors import DataError
from .source import Source

UNKNOWN = -1
_TRAIN = re.compile(r"(?:^|/)train/(?P<wnid>[^/]+)/images/[^/]+$")
_ROOT = re.compile(r"^(?P<root>(?:.*/)?)(?:train|val)/")


def _read_text(source: Source, name: str) -> str | None:
    try:
        return source.read(name).decode("utf-8", errors="replace")
    except (KeyError, OSError):
        return None


def class_ids(source: Source) -> list[str]:
    """The sorted class ids of a source (``wnids.txt``, else the train folders)."""
    roots = {m["root"] for n in source.names[:1000] if (m := _ROOT.match(n))}
    root = roots.pop() if len(roots) == 1 else ""
    text = _read_text(source, f"{root}wnids.txt")
    ids = sorted({w.strip() for w in text.split()} if text else set())
    if not ids:
        ids = sorted({m["wnid"] for n in source.names if (m := _TRAIN.search(n))})
    if not ids:
        raise DataError(f"{source.path}: no class ids (no wnids.txt and no train/<wnid>/ folders)")
    return ids


def class_names(source: Source) -> list[str]:
    """Readable names of :func:`class_ids`, in the same order: the first synonym of each id in the
    source's ``words.txt`` (``n01443537<TAB>goldfish, Carassius auratus`` -> ``goldfish``); the id
    itself where the file has none."""
    ids = class_ids(source)
    roots = {m["root"] for n in source.names[:1000] if (m := _ROOT.match(n))}
    root = roots.pop() if len(roots) == 1 else ""
    words: dict[str, str] = {}
    for line in (_read_text(source, f"{root}words.txt") or "").splitlines():
        wnid, _, text = line.partition("\t")
        if text:
            words[wnid.strip()] = text.split(",")[0].strip()
    return [words.get(i, i) for i in ids]


def _val_annotations(source: Source, root: str) -> dict[str, str]:
    text = _read_text(source, f"{root}val/val_annotations.txt")
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            out[parts[0].strip()] = parts[1].strip()
    return out


def labels_for(source: Source, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Member names -> (labels ``(n,)`` int64 in ``0..K-1`` or ``-1`` when unknown, the K class ids)."""
    ids = class_ids(source)
    index = {w: k for k, w in enumerate(ids)}
    ann: dict[str, str] | None = None
    out = np.full(len(names), UNKNOWN, dtype=np.int64)
    for i, n in enumerate(names):
        m = _TRAIN.search(n)
        if m:
            out[i] = index.get(m["wnid"], UNKNOWN)
            continue
        if ann is None:
            r = _ROOT.match(n)
            ann = _val_annotations(source, r["root"] if r else "")
        out[i] = index.get(ann.get(PurePosixPath(n).name, ""), UNKNOWN)
    return out, ids
