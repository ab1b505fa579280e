"""Real-photo evaluation: what a user sees when they colorize their own photos.

The procedure (``chromalab evaluate MODEL --photos DIR_OR_ZIP``; docs/metrics.md, "Real photos"):

1. each colour photo is scaled to ``long_side`` pixels on its long side (Pillow's Lanczos filter,
   aspect kept; smaller photos are left at their size);
2. it is turned gray with its own L: the sRGB image of (L, 0, 0), 8-bit, as a user's gray photo;
3. that gray photo is colorized through the public path (:class:`~chromalab.inference.Colorizer`:
   the model's working size, upsampling, the input's own L), exactly as ``chromalab.colorize`` does;
4. the result is compared with the original colour photo.

Per photo: PSNR and SSIM of the result and of the gray photo (the gray baseline), the gain
(result - gray, dB), the colourfulness of both. Over the set: the mean gain, the share of photos
that beat gray (gain > 0), the **floods** (photos more than :data:`FLOOD_DB` below gray), cool
recall (pooled over every pixel of every photo, :class:`~chromalab.metrics.ColorAccumulator`) and
ΔCF (|mean CF of the results - mean CF of the originals|).

Shapes: photos ``(H, W, 3)`` uint8 sRGB, each its own size; ab ``(1, 2, H, W)`` Lab units.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ._io import progress_bar
from .color import chroma_mean, rgb_uint8_to_lab_fast
from .errors import ChromalabError, DataError
from .metrics import ColorAccumulator, colorfulness_per_image, psnr_per_image, ssim_per_image

DEFAULT_LONG_SIDE = 512
"""Photos are evaluated at this long side (px), as a user's photo shown on a screen."""
FLOOD_DB = 3.0
BEAT_DB = 0.01
"""A photo beats gray when its gain is above this: a rounding-level difference (the gray photo
through the 8-bit round trip) does not count."""
"""A photo more than this many dB below its gray version counts as a flood."""


@dataclass
class Photo:
    """One colour photo at the evaluation size."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8 sRGB
    _gray: np.ndarray | None = field(default=None, repr=False, compare=False)
    _ab: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ab(self) -> np.ndarray:
        """``(1, 2, H, W)`` Lab units of the original (computed once: sweeps score the same photo often)."""
        if self._ab is None:
            self._ab = _ab(self.rgb)
        return self._ab

    @property
    def gray(self) -> np.ndarray:
        """(H, W, 3) uint8: the photo's own L with a = b = 0, as an 8-bit gray photo (computed once)."""
        if self._gray is None:
            from .color import lab_planes_to_rgb_uint8_fast

            L = rgb_uint8_to_lab_fast(self.rgb)[..., 0]
            zero = np.zeros_like(L)
            self._gray = lab_planes_to_rgb_uint8_fast(L, zero, zero)
        return self._gray


def load_photos(path: str | os.PathLike, long_side: int = DEFAULT_LONG_SIDE, progress: bool = True
                ) -> tuple[list[Photo], int, list[str]]:
    """A folder or zip of colour photos -> (photos at ``long_side``, grayscale originals excluded,
    one-line reasons for the unreadable files). Grayscale originals (gray mode or near-gray chroma,
    as in :func:`chromalab.evaluate.load_image_set`) are excluded: they have no colour to compare."""

    from .evaluate import iter_colour_originals
    from .images import is_near_gray

    if long_side < 16:
        raise ChromalabError(f"long side must be at least 16 px, got {long_side}")
    photos: list[Photo] = []
    counts: dict = {"excluded": 0, "failed": []}
    for name, rgb in iter_colour_originals(path, "loading photos", counts, progress):
        rgb = fit_long_side(rgb, long_side)
        lab = rgb_uint8_to_lab_fast(rgb).transpose(2, 0, 1)[None]  # (1, 3, H, W)
        if bool(is_near_gray(chroma_mean(lab[:, 1:]))[0]):
            counts["excluded"] += 1
            continue
        photos.append(Photo(name, rgb))
    excluded, failed = counts["excluded"], counts["failed"]
    if not photos:
        raise DataError(f"{path}: no usable colour photos ({excluded} grayscale, {len(failed)} unreadable)")
    return photos, excluded, failed


def fit_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 scaled down (Pillow's Lanczos, aspect kept) so that its long side is at most
    ``long_side``; a smaller image is returned as it is."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if max(h, w) <= long_side:
        return rgb
    s = long_side / max(h, w)
    im = Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def _ab(rgb: np.ndarray) -> np.ndarray:
    return rgb_uint8_to_lab_fast(rgb)[..., 1:].transpose(2, 0, 1)[None]  # (1, 2, H, W)


def evaluate_photos(colorizer, photos: list[Photo], vividness: float | None = None, hints: int | None = None,
                    seed: int = 0, progress: bool = True, keep_outputs: bool = False) -> dict:
    """Colorize each photo's gray version with ``colorizer`` and compare with the original.

    ``hints``: give each photo N colour points drawn from its true colours (the guided model; fixed
    ``seed``), as :class:`~chromalab.predictors.hinted.SimulatedHints` does on test images.
    Returns the summary (see the module notes and :func:`score`) with ``per_photo`` rows, and
    ``outputs`` (the colorized ``(H, W, 3)`` arrays, same order) when ``keep_outputs``.
    """
    from PIL import Image

    outputs: list[np.ndarray] = []
    rng = np.random.default_rng(seed)
    with progress_bar(f"colorizing {len(photos)} photos", enabled=progress) as bar:
        task = bar.add_task("photos", total=len(photos))
        for ph in photos:
            item = colorizer.prepare(Image.fromarray(ph.gray))
            hint_list = _simulated_hints(ph.rgb, hints, rng) if hints else None
            outputs.append(colorizer.render(item, hints=hint_list, vividness=vividness)[..., :3])
            bar.advance(task)
    res = score(photos, outputs)
    if keep_outputs:
        res["outputs"] = outputs
    return res


def score(photos: list[Photo], outputs: list[np.ndarray], ssim: bool = True) -> dict:
    """Colorized photos ``(H, W, 3)`` uint8 (same order as ``photos``) against the originals: the set's
    numbers (:func:`summarize`), cool recall, ΔCF and the ``per_photo`` rows. ``ssim=False`` skips
    SSIM (the costliest part), for sweeps."""
    color = ColorAccumulator()
    rows: list[dict] = []
    cf_pred, cf_true = [], []
    for ph, out in zip(photos, outputs, strict=True):
        t, g, o = ph.rgb[None], ph.gray[None], out[None, ..., :3]
        p_out, p_gray = float(psnr_per_image(t, o)[0]), float(psnr_per_image(t, g)[0])
        row = {"name": ph.name, "size": [int(ph.rgb.shape[1]), int(ph.rgb.shape[0])],
               "psnr": p_out, "psnr_gray": p_gray, "gain": p_out - p_gray}
        if ssim:
            row.update(ssim=float(ssim_per_image(t, o)[0]), ssim_gray=float(ssim_per_image(t, g)[0]))
        rows.append(row)
        color.update(ph.ab, _ab(o[0]))
        cf_pred.append(float(colorfulness_per_image(o)[0]))
        cf_true.append(float(colorfulness_per_image(t)[0]))
    res = summarize(rows)
    res.update(color.compute())
    res["cf"], res["cf_true"] = float(np.mean(cf_pred)), float(np.mean(cf_true))
    res["delta_cf"] = abs(res["cf"] - res["cf_true"])
    res["per_photo"] = rows
    return res


def summarize(rows: list[dict]) -> dict:
    """Per-photo rows -> the set's numbers: mean PSNR / SSIM of the results and of gray, the mean
    gain, the share that beat gray, the floods (count, share, names), the worst gain."""
    if not rows:
        raise ValueError("no photos were evaluated")
    gain = np.array([r["gain"] for r in rows])
    floods = [r["name"] for r in rows if r["gain"] < -FLOOD_DB]
    return {
        "count": len(rows),
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "psnr_gray": float(np.mean([r["psnr_gray"] for r in rows])),
        "ssim": float(np.mean([r["ssim"] for r in rows])) if "ssim" in rows[0] else float("nan"),
        "ssim_gray": float(np.mean([r["ssim_gray"] for r in rows])) if "ssim" in rows[0] else float("nan"),
        "gain": float(gain.mean()),
        "beat_gray": float((gain > BEAT_DB).mean()),
        "floods": len(floods),
        "flood_share": len(floods) / len(rows),
        "flood_names": floods,
        "worst_gain": float(gain.min()),
        "median_gain": float(np.median(gain)),
    }


def photo_heads(net, photos, work_size: int = 64):
    """The heads of ``net`` (no hints) on each real photo's gray version at ``work_size``, prepared as the
    public path prepares them (:meth:`Colorizer.prepare`) -> (colorizer, items, [(ab_reg, logits)])."""
    import torch
    from PIL import Image

    from .color import scale_L
    from .inference.colorizer import Colorizer
    from .predictors.nets import ColorNetPredictor

    col = Colorizer(ColorNetPredictor(net, name="sweep"), backend="torch", work_size=work_size)
    items = [col.prepare(Image.fromarray(p.gray)) for p in photos]
    heads = []
    with torch.inference_mode():
        for it in items:  # work shapes are multiples of the net's stride (Colorizer.work_shape)
            r, lg, _ = net.heads(torch.from_numpy(scale_L(it.work[None, None].copy())))
            heads.append((r.float(), lg.float()))
    return col, items, heads


def photo_metrics_at(net, ph, photos, vividness: float, t_blend: float | None = None,
                     t_vivid: float | None = None) -> dict:
    """Real-photo numbers (:func:`score`, without SSIM) of the decoding at ``vividness``
    from :func:`photo_heads` ``ph``; the outputs are finished by the public path (upsampling, own L)."""

    from .color import unscale_ab
    from .nets.colornet import vivid_decode

    col, items, heads = ph
    tb = net.t_blend if t_blend is None else t_blend
    tv = net.t_vivid if t_vivid is None else t_vivid
    outs = []
    for it, (reg, logits) in zip(items, heads, strict=True):
        ab = unscale_ab(vivid_decode(reg, logits, net.centres, float(vividness), tb, tv, net.out_stride))[0]
        outs.append(col.finish_array(it, ab.numpy())[..., :3])
    r = score(photos, outs, ssim=False)
    r.pop("per_photo")
    return {"vividness": float(vividness), "t_blend": tb, "t_vivid": tv, **r}


def _simulated_hints(rgb: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int, tuple[int, int, int]]]:
    """``n`` colour points at random pixels of a photo, each the photo's true colour there."""
    H, W = rgb.shape[:2]
    ys, xs = rng.integers(0, H, n), rng.integers(0, W, n)
    return [(int(x), int(y), tuple(int(c) for c in rgb[y, x])) for x, y in zip(xs, ys, strict=True)]  # type: ignore[misc]
