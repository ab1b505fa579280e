"""The bad-input corpus, through all three surfaces: ``chromalab colorize`` (a real process), the
Python API (``chromalab.colorize``) and ``POST /api/colorize`` (FastAPI's TestClient).

Each kind in :data:`KINDS` says what every surface must answer: one ``error:`` line naming the file
(CLI), one :class:`ChromalabError` line (API), a JSON error with the right status (web), or, for
odd files that do work, the image plus at most one ``note:`` line. A batch goes on past every
bad file, inputs stay byte-identical, nothing is half-written under a final output name, and
Ctrl-C in the middle of a batch leaves only whole outputs.

Kinds that exist only as file-system objects (links, a FIFO, a folder, a device) reach the web
as what a client could read from them: nothing, an empty upload (415).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import chromalab
from chromalab.batch import colorize_cli
from chromalab.errors import ChromalabError
from chromalab.images import display_name
from chromalab.inference import read_provenance

from .test_colorize_cli import can_refuse, run_cli  # noqa: F401 - can_refuse is a fixture
from .test_images import encode, exif_rotated_jpeg, photo, png_chunk, png_header_only

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from chromalab.web.app import create_app  # noqa: E402

SKIP = "not seen"
"""A folder search does not see this kind (a folder is searched, a missing path is not there)."""


@dataclass(frozen=True)
class Kind:
    name: str  # the file name in the corpus (unique, and no name is part of another)
    build: Callable[[Path], None]  # makes it at the path given
    cli: str | None  # fragment of the CLI's one error line; None: it works
    web: int  # status of POST /api/colorize with the bytes a client would send
    api: str | None = "same"  # fragment of the API's error; None: works; "same": as the CLI
    folder: str | None = "same"  # the CLI on the corpus folder: fragment, None (works), SKIP, "same"
    note: str | None = None  # the note line (CLI), X-Chromalab-Notes (web) when it works
    size: tuple[int, int] | None = (64, 48)  # (w, h) of the result when it works
    fs_only: bool = False  # a file-system object: the web gets an empty upload

    @property
    def api_error(self) -> str | None:
        return self.cli if self.api == "same" else self.api

    @property
    def folder_error(self) -> str | None:
        return self.cli if self.folder == "same" else self.folder


# ---- builders ------------------------------------------------------------------------------------------------
def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def _png(w: int, h: int, depth: int = 8) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 16)) + png_chunk(b"IEND", b"")


def _jpeg_with_size(w: int, h: int) -> bytes:
    data = bytearray(encode(Image.fromarray(photo()), "JPEG", quality=90))
    i = data.find(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def _bmp_with_size(w: int, h: int) -> bytes:
    data = bytearray(encode(Image.fromarray(photo()), "BMP"))
    data[18:26] = struct.pack("<ii", w, h)
    return bytes(data)


def _multipage_tiff() -> bytes:
    pages = [Image.fromarray(photo(seed=s)) for s in range(3)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def _bad_crc_png() -> bytes:
    data = bytearray(encode(Image.fromarray(photo()), "PNG"))
    data[29] ^= 0xFF  # the IHDR checksum
    return bytes(data)


def _bad_zlib_png() -> bytes:
    data = encode(Image.fromarray(photo()), "PNG")
    i = data.index(b"IDAT") + 4
    return data[:i] + b"\0" * 24 + data[i + 24 :]


def _cut(data: bytes, frac: float = 0.5) -> bytes:
    return data[: int(len(data) * frac)]


JPEG = encode(Image.fromarray(photo()), "JPEG", quality=95)
PNG = encode(Image.fromarray(photo()), "PNG")


def _symlink(target: str) -> Callable[[Path], None]:
    return lambda p: p.symlink_to(target)


def _loop(p: Path) -> None:
    other = p.with_name(p.name + "-other")
    other.symlink_to(p.name)
    p.symlink_to(other.name)


LONG = "21-" + "l" * 246 + ".jpg"  # 253 bytes: its output name (+ "_color.png") is over the 255-byte limit

KINDS: list[Kind] = [
    # not images at all: 415 on the web
    Kind("01-empty.jpg", _bytes(b""), "empty file (0 bytes)", 415, size=None),
    Kind("02-random.jpg", _bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
         "not an image file (unrecognized format)", 415, size=None),
    Kind("03-text.png", _bytes(b"shopping list\neggs\n" * 20), "not an image file", 415, size=None),
    Kind("04-zeros.jpg", _bytes(b"\0" * 2048), "only zero bytes", 415, size=None),
    Kind("05-pdf.jpg", _bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 200), "a PDF document", 415, size=None),
    Kind("06-zip.png", _bytes(b"PK\x03\x04" + b"\0" * 200), "a zip archive", 415, size=None),
    Kind("07-svg.png", _bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'), "SVG drawing", 415,
         size=None),
    Kind("08-html.jpg", _bytes(b"<!DOCTYPE html><html><body>404</body></html>"), "web page", 415, size=None),
    # broken images: 422
    Kind("09-truncated.jpg", _bytes(_cut(encode(Image.fromarray(np.random.default_rng(1).integers(
        0, 256, (128, 128, 3), dtype=np.uint8)), "JPEG"), 0.6)), "truncated image file", 422, size=None),
    Kind("10-truncated.png", _bytes(_cut(PNG)), "truncated image file", 422, size=None),
    Kind("11-signature-only.png", _bytes(PNG[:8]), "broken PNG file", 422, size=None),
    Kind("12-bad-crc.png", _bytes(_bad_crc_png()), "broken PNG file", 422, size=None),
    Kind("13-bad-zlib.png", _bytes(_bad_zlib_png()), "broken image", 422, size=None),
    Kind("14-zero-width.png", _bytes(_png(0, 10)), "has no pixels (0x10 in its PNG header)", 422, size=None),
    Kind("15-zero-height.jpg", _bytes(_jpeg_with_size(64, 0)), "has no pixels (64x0 in its JPEG header)", 422,
         size=None),
    Kind("16-bad-depth.png", _bytes(_png(10, 10, depth=3)), "broken PNG file", 422, size=None),
    Kind("17-truncated.bmp", _bytes(_cut(encode(Image.fromarray(photo()), "BMP"))), "truncated image file", 422,
         size=None),
    Kind("18-truncated.webp", _bytes(_cut(encode(Image.fromarray(photo()), "WEBP"))), "broken image", 422, size=None),
    Kind("19-truncated.gif", _bytes(encode(Image.fromarray(photo()).convert("P"), "GIF")[:30]), "broken GIF file", 422,
         size=None),
    Kind("20-truncated.tif", _bytes(_multipage_tiff()[:200]), "broken image", 422, size=None),
    Kind(LONG, _bytes(JPEG), "File name too long", 200, api=None, folder="File name too long"),
    Kind("22-soi-only.jpg", _bytes(b"\xff\xd8\xff"), "broken JPEG file", 422, size=None),
    # too many pixels, read from the header (nothing decoded): 413
    Kind("23-bomb.png", _bytes(png_header_only(100_000, 100_000)),
         "100000x100000 = 10,000,000,000 pixels is over the limit of 50,000,000", 413, size=None),
    Kind("24-huge.jpg", _bytes(_jpeg_with_size(65_000, 65_000)), "65000x65000 = 4,225,000,000 pixels is over", 413,
         size=None),
    Kind("25-huge.bmp", _bytes(_bmp_with_size(100_000, 100_000)), "100000x100000 = 10,000,000,000 pixels", 413,
         size=None),
    Kind("26-over-limit.png", _bytes(png_header_only(9000, 6000)), "9000x6000 = 54,000,000 pixels is over", 413,
         size=None),
    # odd files that work (a note says how they were used)
    Kind("27-bogus-exif.jpg", _bytes(exif_rotated_jpeg(photo(), 9)), None, 200,
         note="EXIF orientation 9 is not one of 1-8; used the pixels as stored"),
    Kind("28-multipage.tiff", _bytes(_multipage_tiff()), None, 200, note="has 3 frames"),
    Kind("29-name with spaces ünïcödé фото.jpg", _bytes(JPEG), None, 200),
    Kind("30-tall.png", _bytes(encode(Image.fromarray(np.tile(photo()[:, :1], (84, 1, 1))), "PNG")), None, 200,
         size=(1, 4032)),
    Kind("31-png-named.jpg", _bytes(PNG), None, 200),
    # names that must still give one printable line
    Kind("32-new\nline.jpg", _bytes(b"not an image"), "not an image file", 415, size=None),
    Kind(os.fsdecode(b"33-bad-utf8-\xff.jpg"), _bytes(_cut(JPEG)), "truncated image file", 422, size=None),
    # file-system objects
    Kind("34-broken-link.jpg", _symlink("nowhere.jpg"), "broken symbolic link", 415, size=None, fs_only=True),
    Kind("35-link-loop.jpg", _loop, "symbolic link loop", 415, size=None, fs_only=True),
    Kind("36-folder.jpg", lambda p: p.mkdir(), "a folder with no images in it", 415, api="is a directory",
         folder=SKIP, size=None, fs_only=True),
    Kind("37-fifo.jpg", lambda p: os.mkfifo(p), "a named pipe (FIFO)", 415, size=None, fs_only=True),
    Kind("38-device.jpg", _symlink("/dev/null"), "a device", 415, size=None, fs_only=True),
    Kind("39-missing.jpg", lambda p: None, "no such file", 415, folder=SKIP, size=None, fs_only=True),
]


def test_the_corpus_is_big_enough_and_has_every_kind_the_issue_names():
    assert len(KINDS) >= 25 and len({k.name for k in KINDS}) == len(KINDS)
    assert sum(not k.fs_only for k in KINDS) >= 25  # byte-level kinds: every surface sees their real bytes
    for a in KINDS:
        assert not any(a.name in b.name for b in KINDS if b is not a), a.name
    names = " ".join(k.name for k in KINDS)
    for needed in ("ünïcödé", "broken-link", "link-loop", "folder.jpg", "fifo", "zero-width", "zero-height", "bomb",
                   "bogus-exif", "multipage.tiff"):
        assert needed in names, needed


# ---- the corpus on disk ---------------------------------------------------------------------------------------
GOOD = ("00-good.jpg", "99-good.png")


def build_corpus(folder: Path, locked: bool) -> list[Kind]:
    folder.mkdir()
    (folder / GOOD[0]).write_bytes(JPEG)
    (folder / GOOD[1]).write_bytes(encode(Image.fromarray(photo(seed=3)), "PNG"))
    for k in KINDS:
        k.build(folder / k.name)
    kinds = list(KINDS)
    if locked:
        lk = Kind("40-locked.jpg", _bytes(JPEG), "permission denied (cannot read it)", 200, size=None)
        lk.build(folder / lk.name)
        (folder / lk.name).chmod(0)
        kinds.append(lk)
    return kinds


def snapshot(folder: Path) -> dict[str, str]:
    """What every input is: the bytes of regular files, the target of links, the type of the rest."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = p.lstat()
        if p.is_symlink():
            out[p.name] = "link -> " + os.readlink(p)
        elif p.is_dir():
            out[p.name] = "dir " + ",".join(sorted(x.name for x in p.iterdir()))
        elif p.is_file():
            mode = st.st_mode
            p.chmod(mode | 0o400)
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest() + f" {mode:o}"
            p.chmod(mode)
        else:
            out[p.name] = f"special {st.st_mode:o}"
    return out


def check_outputs(out: Path) -> list[Path]:
    """Every file under ``out`` is a whole PNG that says what made it; no temporary file is left."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".")], files  # no temp files (".<name>.<rand>.tmp")
    for p in files:
        with Image.open(p) as im:
            im.load()  # complete: a cut-off file fails here
        assert read_provenance(p) is not None, p
    return files


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def check_cli_lines(r, kinds: list[Kind], label: Callable[[Kind], str], expect: Callable[[Kind], str | None]):
    assert "Traceback" not in r.stderr and "Usage" not in r.stderr, r.stderr[-3000:]
    lines = error_lines(r.stderr)
    wanted = 0
    for k in kinds:
        exp = expect(k)
        if exp == SKIP:
            assert not [ln for ln in lines if label(k) in ln], (k.name, lines)
            continue
        mine = [ln for ln in lines if label(k) in ln]
        if exp is not None:
            assert len(mine) == 1 and mine[0].startswith("error: ") and exp in mine[0], (k.name, exp, mine, lines)
            wanted += 1
        elif k.note:
            assert len(mine) == 1 and mine[0].startswith("note: ") and k.note in mine[0], (k.name, mine)
            wanted += 1
        else:
            assert mine == [], (k.name, mine)
    assert len(lines) == wanted, lines  # nothing else on stderr: one line per bad file, one per note


# ---- CLI -----------------------------------------------------------------------------------------------------
def test_cli_each_kind_named_on_the_command_line(tmp_path, can_refuse):  # noqa: F811
    corpus = tmp_path / "corpus"
    kinds = build_corpus(corpus, locked=can_refuse)
    before = snapshot(corpus)
    args = [GOOD[0], *[k.name for k in kinds], GOOD[1]]
    r = run_cli(["colorize", *args, "-o", "../out", "--model", "gray"], corpus, unprivileged=True)
    assert r.returncode == 1
    check_cli_lines(r, kinds, lambda k: display_name(k.name), lambda k: k.cli)
    bad = [k for k in kinds if k.cli is not None]
    assert r.stdout.startswith(f"done {len(kinds) - len(bad) + 2}, skipped 0, failed {len(bad)}"), r.stdout
    made = {p.name for p in check_outputs(tmp_path / "out")}
    expect = {f"{Path(n).stem}_color.png" for n in GOOD} | {f"{Path(k.name).stem}_color.png" for k in kinds
                                                            if k.cli is None}
    assert made == expect
    for k in kinds:
        if k.cli is None:
            assert Image.open(tmp_path / "out" / f"{Path(k.name).stem}_color.png").size == k.size, k.name
    assert snapshot(corpus) == before


def test_cli_each_kind_in_a_searched_folder(tmp_path, can_refuse):  # noqa: F811
    corpus = tmp_path / "corpus"
    kinds = build_corpus(corpus, locked=can_refuse)
    before = snapshot(corpus)
    r = run_cli(["colorize", "corpus", "-o", "out", "--model", "gray"], tmp_path, unprivileged=True)
    assert r.returncode == 1
    check_cli_lines(r, kinds, lambda k: display_name(Path("corpus") / k.name), lambda k: k.folder_error)
    seen = [k for k in kinds if k.folder_error != SKIP]
    bad = [k for k in seen if k.folder_error is not None]
    assert r.stdout.startswith(f"done {len(seen) - len(bad) + 2}, skipped 0, failed {len(bad)}"), r.stdout
    check_outputs(tmp_path / "out")
    assert snapshot(corpus) == before


# ---- Python API ---------------------------------------------------------------------------------------------------
def test_python_api_each_kind(tmp_path):
    corpus = tmp_path / "corpus"
    kinds = build_corpus(corpus, locked=False)
    before = snapshot(corpus)
    for k in kinds:
        path = corpus / k.name
        exp = k.api_error
        if exp is None:
            im = chromalab.colorize(path, model="gray")
            assert im.size == k.size, k.name
            continue
        with pytest.raises((ChromalabError, ValueError)) as e:
            chromalab.colorize(path, model="gray")
        msg = str(e.value)
        assert "\n" not in msg and display_name(path) in msg and exp in msg, (k.name, msg)
        if k.name == LONG:
            continue
    assert chromalab.colorize(corpus / GOOD[0], model="gray").size == (64, 48)  # and the next one works
    assert snapshot(corpus) == before


# ---- web ------------------------------------------------------------------------------------------------------------
def _upload(path: Path) -> bytes:
    """What a client could send for this path: its bytes, or nothing when it cannot be read."""
    try:
        return path.read_bytes() if path.is_file() else b""
    except OSError:
        return b""


def test_web_each_kind(tmp_path):
    corpus = tmp_path / "corpus"
    kinds = build_corpus(corpus, locked=False)
    before = snapshot(corpus)
    with TestClient(create_app("gray", workers=1, queue=4)) as c:
        for k in kinds:
            sent = os.fsencode(k.name).decode("utf-8", "replace")  # a client sends text; newlines and all
            r = c.post("/api/colorize", files={"file": (sent, _upload(corpus / k.name), "image/jpeg")})
            assert r.status_code == k.web, (k.name, r.status_code, r.text[:300])
            if k.web == 200:
                assert r.headers["content-type"] == "image/png"
                if k.size is not None:
                    assert Image.open(io.BytesIO(r.content)).size == k.size, k.name
                if k.note:
                    assert k.note in r.headers["x-chromalab-notes"], k.name
                continue
            assert r.headers["content-type"].startswith("application/json"), k.name
            detail = r.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail and detail, (k.name, detail)
            if k.fs_only:
                assert "empty" in detail, (k.name, detail)
            elif k.web == 413:
                assert "over this server's limit" in detail and "--" not in detail, (k.name, detail)
            else:
                assert k.cli is not None and k.cli.split(" (")[0] in detail, (k.name, detail)
        h = c.get("/healthz").json()
        assert h["busy"] == 0  # every error released its worker
        assert c.post("/api/colorize", files={"file": ("ok.jpg", JPEG, "image/jpeg")}).status_code == 200
    assert snapshot(corpus) == before


# ---- nothing half-written -------------------------------------------------------------------------------------------
def test_a_failing_write_leaves_no_file_under_the_final_name(tmp_path, capsys, monkeypatch):
    import chromalab.inference as inference

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"p{i}.jpg").write_bytes(encode(Image.fromarray(photo(seed=i)), "JPEG"))

    def disk_full(a, b):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(inference.os, "replace", disk_full)  # the data is written, the rename fails
    assert colorize_cli([src], output=tmp_path / "out", model="gray", progress=False) == 1
    cap = capsys.readouterr()
    assert cap.out.startswith("done 0, skipped 0, failed 3")
    lines = error_lines(cap.err)
    assert len(lines) == 3 and all("cannot write" in ln and "No space left on device" in ln for ln in lines), lines
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # no partial output, no temp file


def _child_takes_ctrl_c() -> None:
    """In the child before exec: SIGINT back to its default (a shell running this suite in the
    background with ``&`` starts it with SIGINT ignored, which the child would inherit and keep: the
    CI failures of this test), and a low priority, so this test's polling runs first on a busy machine."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.nice(19)


def test_ctrl_c_in_the_middle_of_a_batch_leaves_only_whole_outputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    n = 40
    rng = np.random.default_rng(0)
    # A few small photos, then large ones (12 MP each, small on disk: smooth): the first output appears
    # fast, and the rest takes many seconds, so the run cannot finish before this process sees that
    # output and sends Ctrl-C, however busy the machine is (with 200 small photos it once did, in CI).
    big = np.broadcast_to(np.linspace(0, 255, 4000, dtype=np.uint8)[None, :, None], (3000, 4000, 3))
    big_png = encode(Image.fromarray(np.ascontiguousarray(big)), "PNG", compress_level=6)
    for i in range(n):
        small = encode(Image.fromarray(rng.integers(0, 256, (300, 400, 3), np.uint8)), "PNG", compress_level=0)
        (src / f"p{i:03d}.png").write_bytes(small if i < 4 else big_png)
    before = snapshot(src)
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "chromalab.cli", "colorize", "in", "-o", "out", "--model", "gray",
                             "--batch-size", "4"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_child_takes_ctrl_c)
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(out.rglob("*_color.png"))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no output appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (proc.returncode, stdout, stderr[-2000:])
    assert "Traceback" not in stderr and error_lines(stderr) == []
    assert stdout.strip().startswith("interrupted: done ")
    done = int(stdout.split("done ")[1].split(",")[0])
    files = check_outputs(out)
    assert 1 <= len(files) == done < n  # stopped part-way, with every output it made whole
    assert snapshot(src) == before
