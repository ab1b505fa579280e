"""images.py: every awkward input opens (or fails with one clear line) and gives the right L.

The builders here (``build_good_inputs``, ``build_bad_inputs``) are reused by
tests/test_colorize_cli.py.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from chromalab import images
from chromalab.errors import ImageError
from chromalab.images import DEFAULT_MAX_PIXELS, alpha_channel, image_to_L, open_image


# ---- builders -------------------------------------------------------------------------------------------
def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A colourful smooth (H, W, 3) uint8 image with an edge, like a small photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h - 1, w - 1, 1)
    r = 0.5 + 0.4 * np.sin(3 * xx + rng.uniform(0, 6))
    g = 0.5 + 0.4 * np.cos(2 * yy + rng.uniform(0, 6))
    b = 0.5 + 0.3 * np.sin(4 * (xx + yy))
    img = np.stack([r, g, b], -1)
    img[h // 4 : h // 2, w // 4 : w // 2] = [0.9, 0.2, 0.1]
    return np.clip(img * 255 + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that *declares* w x h RGB pixels but holds almost no data (a few dozen bytes)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def exif_rotated_jpeg(arr: np.ndarray, orientation: int = 6) -> bytes:
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, "JPEG", quality=95, exif=exif.tobytes())


def build_good_inputs(folder: Path) -> dict[str, dict]:
    """Unusual inputs that must succeed. name -> {size (w, h) after EXIF, alpha, frames}."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo(48, 64)
    im = Image.fromarray(rgb)
    out: dict[str, dict] = {}

    def put(name: str, data: bytes, size=(64, 48), alpha=False, frames=1):
        (folder / name).write_bytes(data)
        out[name] = {"size": size, "alpha": alpha, "frames": frames}

    put("cmyk.jpg", encode(im.convert("CMYK"), "JPEG", quality=95))
    put("palette.png", encode(im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"))
    g16 = (rgb.mean(axis=2) * 257).astype(np.uint16)
    put("gray16.png", encode(Image.fromarray(g16), "PNG"))
    rgba = np.dstack([rgb, np.linspace(0, 255, 64 * 48).reshape(48, 64).astype(np.uint8)])
    put("rgba.png", encode(Image.fromarray(rgba), "PNG"), alpha=True)
    put("la.png", encode(Image.fromarray(rgba).convert("LA"), "PNG"), alpha=True)
    put("one.png", encode(Image.fromarray(rgb[:1, :1]), "PNG"), size=(1, 1))
    frames = [Image.fromarray(photo(48, 64, seed=s)).convert("P") for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    put("anim.gif", buf.getvalue(), frames=3)
    put("rotated.jpg", exif_rotated_jpeg(rgb, 6), size=(48, 64))  # orientation 6: stored 64x48, shown 48x64
    put("photo.tiff", encode(im, "TIFF"))
    put("photo.webp", encode(im, "WEBP", lossless=True))
    put("gray.jpg", encode(im.convert("L"), "JPEG", quality=95))
    put("name with spaces ünïcödé фото.jpg", encode(im, "JPEG", quality=95))
    return out


def build_bad_inputs(folder: Path) -> dict[str, str]:
    """Broken inputs. name -> a fragment its one-line message must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    good = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)),
                  "JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(good[: len(good) * 3 // 5])
    (folder / "random.jpg").write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "huge.png").write_bytes(png_header_only(20000, 20000))
    (folder / "over-limit.png").write_bytes(png_header_only(9000, 6000))  # 54 M: under Pillow's limit, over ours
    (folder / "x.png").mkdir()
    return {
        "truncated.jpg": "truncated",
        "random.jpg": "not an image file",
        "empty.jpg": "empty file (0 bytes)",
        "huge.png": "400,000,000 pixels is over the limit of 50,000,000",
        "over-limit.png": "9000x6000 = 54,000,000 pixels is over the limit of 50,000,000",
        "x.png": "no images in it",
    }


def skimage_L(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb.astype(np.float64) / 255.0)[..., 0]


# ---- tests ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    return folder, build_good_inputs(folder)


def test_unusual_formats_open_with_right_size_alpha_and_frames(good):
    folder, spec = good
    for name, exp in spec.items():
        im = open_image(folder / name)
        assert im.size == exp["size"], name
        assert (alpha_channel(im) is not None) == exp["alpha"], name
        assert im.info["n_frames"] == exp["frames"], name
        L = image_to_L(im)
        assert L.shape == exp["size"][::-1] and L.dtype == np.float32, name
        assert 0 <= L.min() and L.max() <= 100, name


def test_L_of_each_mode_matches_skimage(good):
    folder, _ = good
    for name in ("cmyk.jpg", "palette.png", "photo.tiff", "photo.webp", "rgba.png"):
        im = open_image(folder / name)
        ref = skimage_L(np.asarray(im.convert("RGB")))
        np.testing.assert_allclose(image_to_L(im), ref, atol=2e-4, err_msg=name)
    la = open_image(folder / "la.png")
    g = np.asarray(la.getchannel(0))
    np.testing.assert_allclose(image_to_L(la), skimage_L(np.repeat(g[..., None], 3, 2)), atol=2e-4)
    # 16-bit: the full precision is used, not 8 bits
    g16 = np.asarray(open_image(folder / "gray16.png"), dtype=np.float64) / 65535.0
    ref16 = rgb2lab(np.repeat(g16[..., None], 3, 2))[..., 0]
    np.testing.assert_allclose(image_to_L(open_image(folder / "gray16.png")), ref16, atol=2e-4)


def test_exif_orientation_is_applied(tmp_path):
    rgb = photo(48, 64)
    p = tmp_path / "r.jpg"
    p.write_bytes(exif_rotated_jpeg(rgb, 6))  # 6 = rotate 90° clockwise to display
    im = open_image(p)
    assert im.size == (48, 64)
    expect = np.rot90(rgb, k=-1)  # clockwise
    got = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert np.abs(got - expect).mean() < 4  # JPEG noise only; the unrotated transpose would be far off


def test_alpha_plane_is_the_original(good):
    folder, _ = good
    im = open_image(folder / "rgba.png")
    exp = np.linspace(0, 255, 64 * 48).reshape(48, 64).astype(np.uint8)
    np.testing.assert_array_equal(alpha_channel(im), exp)


@pytest.mark.parametrize("name, fragment", list({
    "truncated.jpg": "truncated",
    "random.jpg": "not an image file",
    "empty.jpg": "empty file (0 bytes)",
    "huge.png": "400,000,000 pixels is over the limit of 50,000,000",
    "over-limit.png": "9000x6000 = 54,000,000 pixels is over the limit of 50,000,000",
}.items()))
def test_bad_files_raise_one_line_naming_the_file(tmp_path, name, fragment):
    build_bad_inputs(tmp_path)
    with pytest.raises(ImageError) as e:
        open_image(tmp_path / name)
    msg = str(e.value)
    assert fragment in msg and name in msg and "\n" not in msg


def test_directory_named_like_an_image(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(ImageError, match=r"x\.png: is a directory"):
        open_image(tmp_path / "x.png")


def test_missing_and_special_files(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.jpg")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        open_image(fifo)  # would block forever if opened


def test_unreadable_file_message(tmp_path, monkeypatch):
    """Root reads chmod-000 files, so here os.access is made to say no (the real OS refusal is
    tested in test_colorize_cli.py with the DAC-override capabilities dropped)."""
    p = tmp_path / "locked.jpg"
    p.write_bytes(encode(Image.fromarray(photo()), "JPEG"))
    real = os.access
    monkeypatch.setattr(images.os, "access", lambda path, mode: False if Path(path) == p else real(path, mode))
    with pytest.raises(ImageError, match=r"locked\.jpg: permission denied"):
        open_image(p)


def test_huge_png_is_refused_without_decoding(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(png_header_only(20000, 20000))
    assert p.stat().st_size < 200
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="over the limit"):
        open_image(p)
    assert time.perf_counter() - t0 < 1.0


def test_max_pixels_is_adjustable_both_ways(tmp_path):
    p = tmp_path / "small.png"
    p.write_bytes(encode(Image.fromarray(photo(48, 64)), "PNG"))
    with pytest.raises(ImageError, match="64x48 = 3,072 pixels is over the limit of 3,000"):
        open_image(p, max_pixels=3000)
    assert open_image(p, max_pixels=3072).size == (64, 48)
    # above Pillow's own bomb limit: our check passes, Pillow's is raised, and decoding the
    # (data-less) file then fails as broken, not as too big
    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(15000, 12000))  # 180 M > 2 x Pillow's default 89 M
    with pytest.raises(ImageError) as e:
        open_image(big, max_pixels=200_000_000)
    assert "limit" not in str(e.value) and "big.png" in str(e.value)
    assert DEFAULT_MAX_PIXELS == 50_000_000


def test_bytes_input_and_empty_bytes():
    data = encode(Image.fromarray(photo()), "PNG")
    assert open_image(data, name="up.png").size == (64, 48)
    with pytest.raises(ImageError, match="up.png: empty file"):
        open_image(b"", name="up.png")


def test_inputs_are_not_modified(good):
    folder, spec = good
    before = {n: (folder / n).read_bytes() for n in spec}
    for n in spec:
        open_image(folder / n)
    assert {n: (folder / n).read_bytes() for n in spec} == before


def test_iter_folder_images_skips_hidden_dirs_and_output(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.jpg").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / "._b.png").write_bytes(b"x")
    (tmp_path / ".thumbs").mkdir()
    (tmp_path / ".thumbs" / "t.jpg").write_bytes(b"x")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "dir.png" / "inner.jpg").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "o.png").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in images.iter_folder_images(tmp_path, exclude=tmp_path / "out")]
    assert found == ["b.png", "a/1.jpg", "dir.png/inner.jpg"]


def test_display_name_is_one_printable_line():
    assert images.display_name("name with spaces ünïcödé фото.jpg") == "name with spaces ünïcödé фото.jpg"
    assert images.display_name("a\nb\tc\x1b[31m.jpg") == "a\\nb\\tc\\x1b[31m.jpg"
    assert images.display_name(b"bad\xff.jpg") == "bad\\xff.jpg"
    assert images.display_name(os.fsdecode(b"bad\xff.jpg")) == "bad\\xff.jpg"


def test_header_tells_what_an_unidentified_file_is(tmp_path):
    def ihdr_png(w, h):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")

    cases = {
        "zero-width.png": (ihdr_png(0, 10), "has no pixels (0x10 in its PNG header)"),
        "zero-height.png": (ihdr_png(10, 0), "has no pixels (10x0 in its PNG header)"),
        "bad-crc.png": (encode(Image.fromarray(photo()), "PNG")[:29] + b"\0\0\0\0" + b"\0" * 10, "broken PNG file"),
        "doc.jpg": (b"%PDF-1.7\n" + b"x" * 100, "it looks like a PDF document"),
        "archive.png": (b"PK\x03\x04" + b"\0" * 100, "it looks like a zip archive"),
        "drawing.png": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG drawing"),
        "page.jpg": (b"<!DOCTYPE html><html></html>", "web page"),
        "zeros.jpg": (b"\0" * 500, "only zero bytes"),
    }
    for name, (data, fragment) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageError) as e:
            open_image(tmp_path / name)
        assert fragment in str(e.value) and name in str(e.value), (name, str(e.value))
    with pytest.raises(images.TooManyPixels) as e:  # Pillow's own bomb error, sized from the header
        open_image(png_header_only(100_000, 100_000))
    assert "100000x100000 = 10,000,000,000 pixels" in str(e.value) and e.value.size == (100_000, 100_000)


def test_links_pipes_and_devices_each_get_their_own_message(tmp_path):
    (tmp_path / "broken.jpg").symlink_to("gone.jpg")
    (tmp_path / "loop1.jpg").symlink_to("loop2.jpg")
    (tmp_path / "loop2.jpg").symlink_to("loop1.jpg")
    (tmp_path / "null.jpg").symlink_to("/dev/null")
    (tmp_path / "file").write_bytes(b"x")
    for name, fragment in {"broken.jpg": "broken symbolic link (it points to gone.jpg",
                           "loop1.jpg": "symbolic link loop", "null.jpg": "not a regular file but a device",
                           "file/x.jpg": "a part of the path is a file"}.items():
        with pytest.raises(ImageError) as e:
            open_image(tmp_path / name)
        assert fragment in str(e.value), (name, str(e.value))


def test_bogus_exif_orientation_is_ignored_and_said(tmp_path):
    rgb = photo(48, 64)
    for o in (0, 9, 65535):
        im = open_image(exif_rotated_jpeg(rgb, o))
        assert im.size == (64, 48)  # pixels as stored
        assert images.image_notes(im) == [f"EXIF orientation {o} is not one of 1-8; used the pixels as stored"]
    assert images.image_notes(open_image(exif_rotated_jpeg(rgb, 6))) == []


def test_is_grayscale():
    rgb = photo(48, 64)
    assert not images.is_grayscale(Image.fromarray(rgb))
    gray = Image.fromarray(rgb).convert("L")
    assert images.is_grayscale(gray)
    assert images.is_grayscale(open_image(encode(gray.convert("RGB"), "JPEG", quality=80)))  # JPEG noise
    assert images.is_grayscale(gray.convert("P"))
    big = Image.fromarray(np.repeat(np.repeat(rgb, 20, 0), 20, 1))  # 1280x960: sampled, still colour
    assert not images.is_grayscale(big)


def test_one_grayscale_rule_for_the_data_sets_and_the_web(tmp_path):
    """The prepared cache, ``evaluate --images`` and the web page's black-and-white flag share one
    rule: a gray Pillow mode (images.GRAY_MODES), or for the data sets a mean chroma below the threshold."""
    from chromalab.color import GRAY_CHROMA_THRESHOLD
    from chromalab.evaluate import load_image_set

    for mode in ("1", "L", "LA", "I", "I;16", "F"):
        assert images.is_gray_mode(mode) and images.is_grayscale(Image.new(mode, (4, 4)))
    for mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        assert not images.is_gray_mode(mode)
    assert images.is_near_gray(GRAY_CHROMA_THRESHOLD - 1e-3) and not images.is_near_gray(GRAY_CHROMA_THRESHOLD)
    assert images.is_near_gray(np.array([0.0, 5.0])).tolist() == [True, False]
    rgb = photo(32, 32)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray_mode.png")  # a gray mode
    Image.fromarray(rgb).convert("L").convert("RGB").save(tmp_path / "gray_rgb.png")  # RGB, no chroma
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "gray_rgb.png").convert("L")),
                                  np.asarray(Image.open(tmp_path / "gray_mode.png")))
    _L, _ab, _rgb, names, excluded, failed = load_image_set(tmp_path, size=32, progress=False)
    assert names == ["colour.png"] and excluded == 2 and failed == []
