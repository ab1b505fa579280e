"""Shared fixtures: a tiny Tiny-ImageNet-layout dataset built in the test, an isolated cache."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

SHARED_ZIP = Path(
    os.environ.get(
        "CHROMALAB_TEST_DATA",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tiny-imagenet-200-subset.zip",
    )
)


def synth_image(rng: np.random.Generator, size: int = 64, gray: bool = False) -> np.ndarray:
    """A colourful 64x64 test image whose colour depends on brightness and position (learnable)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    phase = rng.uniform(0, 2 * np.pi)
    lum = 0.5 + 0.4 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 2) + yy * rng.uniform(0.5, 2)) + phase)
    hue = rng.uniform(0, 1)
    r = lum * (0.6 + 0.4 * np.cos(2 * np.pi * (hue + 0.0)))
    g = lum * (0.6 + 0.4 * np.cos(2 * np.pi * (hue + 0.33)))
    b = lum * (0.6 + 0.4 * np.cos(2 * np.pi * (hue + 0.67)))
    img = np.stack([r, g, b], -1)
    # a square of a fixed colour
    x0, y0 = rng.integers(0, size // 2, 2)
    img[y0 : y0 + size // 3, x0 : x0 + size // 3] = [0.9, 0.2, 0.1]
    img = np.clip(img * 255 + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    if gray:
        img = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    return img


def lab_batch(n: int = 8, size: int = 32, seed: int = 0, scaled: bool = False):
    """(L, ab) torch tensors ``(n,1,S,S)``, ``(n,2,S,S)`` of the synthetic images: Lab units, or the
    nets' scaled units with ``scaled=True``."""
    import torch

    from chromalab.color import lab_channels_first, rgb_uint8_to_lab_fast, scale_ab, scale_L

    rng = np.random.default_rng(seed)
    rgb = np.stack([synth_image(rng, size) for _ in range(n)])
    L, ab = lab_channels_first(rgb_uint8_to_lab_fast(rgb))
    L, ab = torch.from_numpy(L), torch.from_numpy(ab)
    return (scale_L(L), scale_ab(ab)) if scaled else (L, ab)


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one torch thread avoids OpenMP barrier stalls when the CPU is shared."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def jpeg_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_tiny_zip(
    path: Path,
    n_classes: int = 4,
    per_class: int = 16,
    n_val: int = 1040,
    n_gray_val: int = 3,
    seed: int = 0,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A zip in the official layout: train/<wnid>/images/<wnid>_<i>.JPEG, val/images/val_<i>.JPEG.

    The first ``n_gray_val`` val images are mode-L JPEGs (excluded by prepare).
    ``n_val`` defaults above 1,000 so the test split is not empty.
    """
    rng = np.random.default_rng(seed)
    wnids = [f"n{10000000 + i:08d}" for i in range(n_classes)]
    root = "tiny-imagenet-200/"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(root + "wnids.txt", "\n".join(wnids) + "\n")
        for w in wnids:
            for i in range(per_class):
                zf.writestr(f"{root}train/{w}/images/{w}_{i}.JPEG", jpeg_bytes(synth_image(rng)))
        ann = []
        for i in range(n_val):
            gray = i < n_gray_val
            data = jpeg_bytes(synth_image(rng), mode="L" if gray else None)
            zf.writestr(f"{root}val/images/val_{i}.JPEG", data)
            ann.append(f"val_{i}.JPEG\t{wnids[i % n_classes]}\t0\t0\t63\t63")
        zf.writestr(root + "val/val_annotations.txt", "\n".join(ann) + "\n")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own prepared-data cache; $CHROMALAB_DATA is unset."""
    monkeypatch.setenv("CHROMALAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("CHROMALAB_DATA", raising=False)


@pytest.fixture(scope="session")
def tiny_zip(tmp_path_factory) -> Path:
    """A small dataset (64 train, 1,040 val images of which 3 grayscale) in the official layout."""
    return make_tiny_zip(tmp_path_factory.mktemp("tiny") / "tiny-imagenet-200.zip")


@pytest.fixture(scope="session")
def shared_zip() -> Path:
    if not SHARED_ZIP.exists():
        pytest.skip(f"shared Tiny ImageNet subset not found at {SHARED_ZIP}")
    return SHARED_ZIP
