"""Prepare once, reuse: every image decoded once, converted to Lab, cached per split and size.

Cache layout (one folder per source, keyed by the source's resolved path)::

    <cache>/<key>/manifest.json              source fingerprint, options, counts, names
    <cache>/<key>/<file>_<size>_lab.npy      (N, 3, S, S) float32 Lab, channels first
    <cache>/<key>/<file>_<size>_rgb.npy      (N, S, S, 3) uint8 sRGB (the ground truth)
    <cache>/<key>/<file>_status.npy          (N,) int8: 0 kept, 1 grayscale mode, 2 near-gray, 3 corrupt
    <cache>/<key>/<file>_chroma.npy          (N,) float32 mean Lab chroma at 64x64

``<file>`` is the official split an image comes from (``train`` or ``val``). The logical
splits are row lists over those files:

* train = every kept train image (index-major order: image 0 of every class, image 1, ...);
* val   = the first 1,000 kept images of the official val split, by index;
* test  = the remaining kept val images.

A limit takes a deterministic prefix. A build happens in a temporary folder that replaces
the old cache only when complete, so a failed or interrupted prepare leaves it intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import MemberReader, progress_bar
from ..color import GRAY_CHROMA_THRESHOLD, chroma_mean, rgb_uint8_to_lab_fast
from ..errors import DataError
from ..images import is_gray_mode, is_near_gray
from ..paths import prepared_cache_root
from .source import Member, Source, resolve_data_path, source_fingerprint

CACHE_VERSION = 1
NATIVE_SIZE = 64
SIZES = (64, 28)
VAL_COUNT = 1000
SPLITS = ("train", "val", "test")

KEPT, GRAY_MODE, NEAR_GRAY, CORRUPT = 0, 1, 2, 3


def cache_dir_for(source_path: Path) -> Path:
    key = hashlib.sha1(str(Path(source_path).expanduser().resolve()).encode()).hexdigest()[:16]
    return prepared_cache_root() / key


def _options(sizes: tuple[int, ...]) -> dict:
    return {
        "version": CACHE_VERSION,
        "sizes": sorted(set(sizes), reverse=True),
        "gray_chroma_threshold": GRAY_CHROMA_THRESHOLD,
        "val_count": VAL_COUNT,
        "lab": "sRGB D65 2deg (scikit-image constants)",
        "resize": "PIL bicubic (antialiased) from the decoded image",
    }


# ---- decoding (runs in worker processes) -------------------------------------------------
def decode_image_bytes(data: bytes, size: int = NATIVE_SIZE):
    """bytes -> (uint8 RGB (size, size, 3), original mode). Raises on a broken image."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        mode = im.mode
        im.load()
        rgb = im.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8), mode


_WORKER_READER: MemberReader | None = None  # one per worker process: a zip's directory is read once


def _init_worker(path: str, is_zip: bool) -> None:
    global _WORKER_READER
    _WORKER_READER = MemberReader(path, is_zip)


def _decode_chunk_worker(fsplit: str, start: int, names: list[str], paths: dict, sizes):
    assert _WORKER_READER is not None
    return _decode_chunk(_WORKER_READER, fsplit, start, names, paths, sizes)


def _decode_chunk(source, fsplit: str, start: int, names: list[str], paths: dict, sizes):
    from PIL import Image

    outs = {s: (np.load(paths[s][0], mmap_mode="r+"), np.load(paths[s][1], mmap_mode="r+")) for s in sizes}
    n = len(names)
    status = np.zeros(n, dtype=np.int8)
    chroma = np.zeros(n, dtype=np.float32)
    corrupt: list[tuple[str, str]] = []
    rgbs = {s: np.zeros((n, s, s, 3), dtype=np.uint8) for s in sizes}
    for i, name in enumerate(names):
        try:
            rgb, mode = decode_image_bytes(source.read(name), NATIVE_SIZE)
        except Exception as e:  # any decoder failure: skip the image, count it, name it
            status[i] = CORRUPT
            corrupt.append((name, f"{type(e).__name__}: {e}"))
            continue
        if is_gray_mode(mode):
            status[i] = GRAY_MODE
        im = None
        for s in sizes:
            if s == NATIVE_SIZE:
                rgbs[s][i] = rgb
            else:
                im = im or Image.fromarray(rgb)
                rgbs[s][i] = np.asarray(im.resize((s, s), Image.Resampling.BICUBIC), dtype=np.uint8)
    for s in sizes:
        lab = rgb_uint8_to_lab_fast(rgbs[s]).transpose(0, 3, 1, 2)
        lab_mm, rgb_mm = outs[s]
        lab_mm[start : start + n] = lab
        rgb_mm[start : start + n] = rgbs[s]
        if s == NATIVE_SIZE:
            chroma[:] = chroma_mean(lab[:, 1:])
    near = (status == KEPT) & is_near_gray(chroma)
    status[near] = NEAR_GRAY
    return fsplit, start, status, chroma, corrupt


# ---- the prepared cache --------------------------------------------------------------------
@dataclass
class SplitData:
    """One logical split at one size, memory-mapped. Rows index the underlying file."""

    name: str
    size: int
    lab: np.ndarray  # (N_file, 3, S, S) float32 memmap
    rgb: np.ndarray  # (N_file, S, S, 3) uint8 memmap
    rows: np.ndarray  # (n,) int64, rows of this split in the file
    names: list[str]  # (n,) member names
    excluded: int  # excluded images (grayscale/near-gray/corrupt) in the file range this split covers

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions ``idx`` -> (L ``(n,1,S,S)``, ab ``(n,2,S,S)`` float32, rgb ``(n,S,S,3)`` uint8)."""
        r = self.rows[idx]
        lab = np.asarray(self.lab[r], dtype=np.float32)
        return lab[:, :1], lab[:, 1:], np.asarray(self.rgb[r])

    def batches(self, batch_size: int = 512) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for s in range(0, len(self), batch_size):
            yield self.get(np.arange(s, min(s + batch_size, len(self))))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole split in memory: (L, ab, rgb)."""
        return self.get(np.arange(len(self)))


class Prepared:
    """A finished cache folder."""

    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.manifest = json.loads((self.dir / "manifest.json").read_text())

    @property
    def counts(self) -> dict:
        return self.manifest["counts"]

    @property
    def source(self) -> dict:
        return self.manifest["source"]

    def _file_arrays(self, fsplit: str, size: int):
        if size not in self.manifest["options"]["sizes"]:
            raise DataError(f"{self.dir}: size {size} not prepared (have {self.manifest['options']['sizes']})")
        lab = np.load(self.dir / f"{fsplit}_{size}_lab.npy", mmap_mode="r")
        rgb = np.load(self.dir / f"{fsplit}_{size}_rgb.npy", mmap_mode="r")
        return lab, rgb

    def split(self, name: str, size: int = NATIVE_SIZE, limit: int | None = None) -> SplitData:
        """A logical split (``train``, ``val``, ``test``, or ``val,test`` joined), optionally a prefix."""
        parts = [p.strip() for p in name.replace("+", ",").split(",") if p.strip()]
        for p in parts:
            if p not in SPLITS:
                raise DataError(f"unknown split {p!r} (choose from {', '.join(SPLITS)}, or join: val,test)")
        files = {self.manifest["splits"][p]["file"] for p in parts}
        if len(files) != 1:
            raise DataError(f"cannot join splits from different files: {name}")
        fsplit = files.pop()
        rows = np.concatenate([np.load(self.dir / f"split_{p}.npy") for p in parts]).astype(np.int64)
        if limit is not None:
            if limit <= 0:
                raise DataError(f"limit must be positive, got {limit}")
            rows = rows[:limit]
        status = np.load(self.dir / f"{fsplit}_status.npy")
        lo = int(min(self.manifest["splits"][p]["first_row"] for p in parts))
        hi = int(rows[-1]) + 1 if len(rows) else lo
        if limit is None:
            hi = int(max(self.manifest["splits"][p]["end_row"] for p in parts))
        excluded = int((status[lo:hi] != KEPT).sum())
        names_all = self.manifest["files"][fsplit]["names"]
        lab, rgb = self._file_arrays(fsplit, size)
        return SplitData(
            name=name, size=size, lab=lab, rgb=rgb, rows=rows,
            names=[names_all[r] for r in rows], excluded=excluded,
        )

    def mean_ab(self, size: int = NATIVE_SIZE) -> np.ndarray:
        """Mean train a, b (Lab units), ``(2,)``; cached in the manifest folder."""
        p = self.dir / f"mean_ab_{size}.npy"
        if p.exists():
            return np.load(p)
        tr = self.split("train", size)
        acc = np.zeros(2, dtype=np.float64)
        for _L, ab, _rgb in tr.batches(2048):
            acc += ab.sum(axis=(0, 2, 3), dtype=np.float64)
        m = (acc / (len(tr) * size * size)).astype(np.float32)
        try:
            np.save(p, m)
        except OSError:
            pass
        return m

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.dir.iterdir() if f.is_file())


def _cache_valid(folder: Path, fingerprint: dict, options: dict) -> bool:
    mf = folder / "manifest.json"
    if not mf.exists():
        return False
    try:
        m = json.loads(mf.read_text())
    except (OSError, ValueError):
        return False
    return m.get("source") == fingerprint and m.get("options") == options


def find_prepared(data=None, sizes=SIZES) -> Prepared | None:
    path = resolve_data_path(data)
    folder = cache_dir_for(path)
    if _cache_valid(folder, source_fingerprint(path), _options(tuple(sizes))):
        return Prepared(folder)
    return None


def prepare(
    data=None,
    *,
    sizes: tuple[int, ...] = SIZES,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
    log=print,
) -> tuple[Prepared, bool]:
    """Prepare (or reuse) the cache for a data source. Returns (prepared, rebuilt)."""
    path = resolve_data_path(data)
    folder = cache_dir_for(path)
    fp = source_fingerprint(path)
    options = _options(tuple(sizes))
    if not force and _cache_valid(folder, fp, options):
        return Prepared(folder), False

    source = Source(path)  # raises DataError for missing / truncated / unsafe sources
    sizes_sorted = options["sizes"]
    if NATIVE_SIZE not in sizes_sorted:
        raise DataError(f"sizes must include {NATIVE_SIZE}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f"{folder.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        manifest = _build(source, fp, options, tmp, workers, progress, log)
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        old = folder.parent / f"{folder.name}.old-{os.getpid()}"
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        source.close()
    return Prepared(folder), True


def _build(source: Source, fp: dict, options: dict, tmp: Path, workers, progress: bool, log) -> dict:
    sizes = options["sizes"]
    t0 = time.perf_counter()
    files: dict[str, list[Member]] = {k: v for k, v in source.members.items()}
    paths: dict[str, dict[int, tuple[str, str]]] = {}
    for fsplit, members in files.items():
        paths[fsplit] = {}
        n = len(members)
        for s in sizes:
            lp, rp = tmp / f"{fsplit}_{s}_lab.npy", tmp / f"{fsplit}_{s}_rgb.npy"
            np.lib.format.open_memmap(lp, mode="w+", dtype=np.float32, shape=(n, 3, s, s)).flush()
            np.lib.format.open_memmap(rp, mode="w+", dtype=np.uint8, shape=(n, s, s, 3)).flush()
            paths[fsplit][s] = (str(lp), str(rp))
    status = {f: np.zeros(len(m), dtype=np.int8) for f, m in files.items()}
    chroma = {f: np.zeros(len(m), dtype=np.float32) for f, m in files.items()}
    corrupt: list[tuple[str, str]] = []
    total = sum(len(m) for m in files.values())
    chunk = 256
    jobs = [
        (fsplit, s, [m.name for m in members[s : s + chunk]])
        for fsplit, members in files.items()
        for s in range(0, len(members), chunk)
    ]
    nw = workers or max(1, min(os.cpu_count() or 1, 8))

    with progress_bar("preparing", unit="img", enabled=progress, transient=False) as bar:
        task = bar.add_task("prepare", total=total)

        def absorb(res):
            fsplit, start, st, ch, bad = res
            status[fsplit][start : start + len(st)] = st
            chroma[fsplit][start : start + len(ch)] = ch
            corrupt.extend(bad)
            bar.advance(task, len(st))

        if nw == 1:
            for fsplit, s, names in jobs:
                absorb(_decode_chunk(source, fsplit, s, names, paths[fsplit], sizes))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(
                max_workers=nw, mp_context=ctx, initializer=_init_worker,
                initargs=(str(source.path), source.is_zip),
            ) as ex:
                futs = [ex.submit(_decode_chunk_worker, f, s, nm, paths[f], sizes) for f, s, nm in jobs]
                for fut in as_completed(futs):
                    absorb(fut.result())

    counts: dict = {"seen": {f: len(m) for f, m in files.items()}}
    splits: dict = {}
    for fsplit in files:
        np.save(tmp / f"{fsplit}_status.npy", status[fsplit])
        np.save(tmp / f"{fsplit}_chroma.npy", chroma[fsplit])
    tr_rows = np.flatnonzero(status.get("train", np.zeros(0, np.int8)) == KEPT)
    va_kept = np.flatnonzero(status.get("val", np.zeros(0, np.int8)) == KEPT)
    n_val_file = len(files.get("val", []))
    n_tr_file = len(files.get("train", []))
    val_rows, test_rows = va_kept[:VAL_COUNT], va_kept[VAL_COUNT:]
    val_end = int(val_rows[-1]) + 1 if len(test_rows) and len(val_rows) else n_val_file
    for name, fsplit, rows, first, end in (
        ("train", "train", tr_rows, 0, n_tr_file),
        ("val", "val", val_rows, 0, val_end),
        ("test", "val", test_rows, val_end, n_val_file),
    ):
        np.save(tmp / f"split_{name}.npy", rows.astype(np.int64))
        splits[name] = {"file": fsplit, "count": int(len(rows)), "first_row": first, "end_row": end}
        counts[name] = int(len(rows))
    excl = {}
    for fsplit in files:
        st = status[fsplit]
        excl[fsplit] = {
            "grayscale_mode": int((st == GRAY_MODE).sum()),
            "near_gray": int((st == NEAR_GRAY).sum()),
            "corrupt": int((st == CORRUPT).sum()),
            "total": int((st != KEPT).sum()),
        }
    counts["excluded"] = excl
    counts["excluded_total"] = int(sum(e["total"] for e in excl.values()))
    elapsed = time.perf_counter() - t0
    return {
        "source": fp,
        "options": options,
        "counts": counts,
        "splits": splits,
        "corrupt": [{"name": n, "error": e} for n, e in sorted(corrupt)],
        "files": {f: {"count": len(m), "names": [x.name for x in m]} for f, m in files.items()},
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prepare_seconds": round(elapsed, 3),
        "images_per_second": round(total / elapsed, 1) if elapsed > 0 else None,
    }


def load_prepared(data=None, sizes: tuple[int, ...] = SIZES, progress: bool = True, log=print) -> Prepared:
    """The prepared cache for a source, building it first if needed."""
    prep, _ = prepare(data, sizes=sizes, progress=progress, log=log)
    return prep
