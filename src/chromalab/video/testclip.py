"""A test film made from real photos, with its ground truth: pans, zooms, hard cuts, grain, a tone.

Used by ``tests/test_video.py``, ``benchmarks/bench_video.py`` and the figure in
``docs/video.md``. Shots are camera moves over scikit-image photos (astronaut, coffee,
chelsea, rocket, ...): each shot has a static part (for measuring flicker) and a moving part
(a pan or a zoom). Every frame gets fresh film grain on L. The video holds the gray frames
(L only); :attr:`TestClip.truth` holds the colour frames with exactly that L (up to gamut
clipping), so PSNR can be measured against it.

Units: L in 0..100 (Lab); frames are uint8 sRGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..color import gray_to_L, lab_planes_to_rgb_uint8_fast, rgb_uint8_to_lab_fast

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
TONE_HZ = 440.0
AUDIO_RATE = 48_000


@dataclass
class TestClip:
    """Frames of a test film and what is known about them."""

    __test__ = False  # not a pytest class

    truth: np.ndarray  # (N, H, W, 3) uint8 sRGB, the colour frames (grain included)
    gray: np.ndarray  # (N, H, W) uint8, the frames the video holds (R = G = B)
    cuts: list[int]  # first frame of each shot after the first
    static: list[tuple[int, int]]  # [start, stop) frame ranges where the camera does not move
    fps: int

    @property
    def n_frames(self) -> int:
        return int(self.gray.shape[0])

    def static_pairs(self) -> list[int]:
        """Frames t such that t - 1 and t are both in one static range (same shot, no motion)."""
        return [t for a, b in self.static for t in range(a + 1, b)]


def _photo(name: str) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def _shot_path(kind: str, u: float) -> tuple[float, float, float]:
    """Camera at progress u in 0..1 of a shot: (dx, dy, zoom) as fractions of the view.

    Every shot holds still for its first or last 40 % (the static part) and moves otherwise.
    """
    if kind == "pan":  # still, then pan right and a little down
        m = max(0.0, (u - 0.4) / 0.6)
        return 0.18 * m, 0.05 * m, 1.0
    if kind == "zoom":  # zoom in (the view shrinks to 70 %), then still
        m = min(1.0, u / 0.6)
        return 0.02 * m, 0.0, 1.0 - 0.3 * m
    # "pan-zoom": diagonal pan while zooming out, then still
    m = min(1.0, u / 0.6)
    return -0.12 * m, 0.08 * m, 0.8 + 0.15 * m


_KINDS = ("pan", "zoom", "pan-zoom")


def _film_grain(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Spatially correlated noise (blurred over ~1 px, like film grain), std ``sigma``, float32."""
    import cv2

    white = rng.standard_normal(shape).astype(np.float32)
    n = np.asarray(cv2.GaussianBlur(white, (0, 0), 0.8), dtype=np.float32)
    return n * np.float32(sigma / max(float(n.std()), 1e-6))


def render_clip(width: int = 96, height: int = 64, n_frames: int = 36, *, photos=PHOTOS[:3], fps: int = 25,
                grain: float = 2.0, exposure: float = 0.0, motion: float = 1.0, seed: int = 0) -> TestClip:
    """Render a film of ``len(photos)`` shots (so ``len(photos) - 1`` hard cuts).

    Args:
        width, height: frame size in pixels.
        n_frames: total frames, split evenly between the shots.
        photos: scikit-image photo names, one shot each.
        grain: std of the film grain added to L in every frame (L units).
        exposure: std of a per-frame gain on L (0.03: +-3 %), the exposure flicker of old film.
        motion: scales the pans (18 % of the width per shot at 1).
    """
    import cv2

    rng = np.random.default_rng(seed)
    n_shots = len(photos)
    bounds = np.linspace(0, n_frames, n_shots + 1).round().astype(int)
    truth = np.empty((n_frames, height, width, 3), np.uint8)
    gray = np.empty((n_frames, height, width), np.uint8)
    static: list[tuple[int, int]] = []
    lut = gray_to_L(np.arange(256, dtype=np.uint8))  # (256,) L of each gray level, increasing
    for s, name in enumerate(photos):
        a, b = int(bounds[s]), int(bounds[s + 1])
        kind = _KINDS[s % len(_KINDS)]
        photo = _photo(name)
        # resample the photo once so that the full view (zoom 1) is 80 % of it at about 1:1
        scale0 = 0.8 * min(photo.shape[1] / width, photo.shape[0] / height)
        small = cv2.resize(photo, (round(photo.shape[1] / scale0), round(photo.shape[0] / scale0)),
                           interpolation=cv2.INTER_AREA)
        ph, pw = small.shape[:2]
        still: list[int] = []
        prev: tuple[float, float, float] | None = None  # the camera of the previous frame
        for t in range(a, b):
            u = (t - a) / max(1, b - a - 1)
            dx, dy, zoom = _shot_path(kind, u)
            dx, dy = dx * motion, dy * motion
            if t > a and (dx, dy, zoom) == prev:
                still.append(t)
            prev = (dx, dy, zoom)
            cx, cy = pw / 2 + dx * width, ph / 2 + dy * height
            m = np.array([[zoom, 0, cx - zoom * width / 2], [0, zoom, cy - zoom * height / 2]], np.float32)
            view = cv2.warpAffine(small, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT)
            lab = rgb_uint8_to_lab_fast(view)  # (H, W, 3)
            gain = 1.0 + exposure * float(rng.standard_normal())
            L = lab[..., 0] * np.float32(gain) + _film_grain(rng, (height, width), grain)
            g = np.clip(np.searchsorted(lut, L), 0, 255).astype(np.uint8)  # nearest level at or above L
            gray[t] = g
            truth[t] = lab_planes_to_rgb_uint8_fast(lut[g], lab[..., 1], lab[..., 2])
        if still:  # the frame before the first still one belongs to the static range too
            static.append((still[0] - 1, still[-1] + 1))
    return TestClip(truth=truth, gray=gray, cuts=[int(c) for c in bounds[1:-1]], static=static, fps=fps)


_CODECS = {".mp4": ("libx264", "aac"), ".m4v": ("libx264", "aac"), ".mov": ("libx264", "aac"),
           ".mkv": ("libx264", "libopus"), ".webm": ("libvpx-vp9", "libopus"), ".avi": ("mpeg4", "pcm_s16le")}


def write_clip(clip: TestClip, path: str | Path, *, codec: str | None = None, audio: bool = True,
               colour: bool = False, quality: int = 12) -> Path:
    """Encode ``clip`` (gray frames, or ``colour=True`` for the truth) with a tone track.

    The container follows the suffix (.mp4 .m4v .mov .mkv .webm .avi); ``codec`` overrides
    its usual video codec (e.g. ``libvpx`` for WebM/VP8). ``quality``: CRF (or q for mpeg4),
    low so the test film stays close to its frames (mpeg4 gets a high bit rate instead).
    """
    import av

    path = Path(path)
    vcodec, acodec = _CODECS[path.suffix.lower()]
    vcodec = codec or vcodec
    n, h, w = clip.gray.shape
    with av.open(str(path), "w") as out:
        opts = {"crf": str(quality)} if vcodec in ("libx264", "libvpx-vp9", "libvpx") else {}
        if vcodec.startswith("libvpx"):
            opts.update({"b:v": "0" if vcodec == "libvpx-vp9" else "2M", "deadline": "realtime", "cpu-used": "8"})
        vs = cast(Any, out.add_stream(vcodec, rate=clip.fps, options=opts))  # a VideoStream
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if vcodec == "mpeg4":
            vs.bit_rate = 40 * w * h * clip.fps // 10  # ~4 bits per pixel: close to the frames
        aus: Any = None  # an AudioStream
        if audio:
            aus = cast(Any, out.add_stream(acodec, rate=AUDIO_RATE))
            aus.layout = "stereo"
        tone = None
        if aus is not None:
            total = round(n / clip.fps * AUDIO_RATE)
            tone = (0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(total) / AUDIO_RATE)).astype(np.float32)
        sent = 0  # audio samples encoded so far: interleaved with the frames, as a camera writes them

        def audio_until(stop: int) -> None:
            nonlocal sent
            assert aus is not None and tone is not None
            while sent < stop:
                chunk = tone[sent : min(stop, sent + 1024)]
                af = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")  # (2, k)
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, sent, Fraction(1, AUDIO_RATE)
                for p in aus.encode(af):
                    out.mux(p)
                sent += len(chunk)

        for t in range(n):
            img = clip.truth[t] if colour else clip.gray[t]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24" if colour else "gray")
            frame.pts, frame.time_base = t, Fraction(1, clip.fps)
            if tone is not None:
                audio_until(round((t + 1) / clip.fps * AUDIO_RATE))
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            for p in aus.encode(None):
                out.mux(p)
    return path


def read_frames(path: str | Path) -> np.ndarray:
    """All frames of a video as sRGB ``(N, H, W, 3)`` uint8."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def flicker(frames: np.ndarray, pairs: list[int]) -> float:
    """Mean |Δab| (Euclidean, Lab units) between frames t - 1 and t, over all pixels and ``pairs``."""
    out = []
    for t in pairs:
        ab0 = rgb_uint8_to_lab_fast(frames[t - 1])[..., 1:]
        ab1 = rgb_uint8_to_lab_fast(frames[t])[..., 1:]
        out.append(float(np.sqrt(((ab1 - ab0) ** 2).sum(-1)).mean()))
    return float(np.mean(out))


def score(clip: TestClip, frames: np.ndarray) -> dict:
    """Colorized ``frames`` ``(N, H, W, 3)`` uint8 against the clip: flicker on the static parts
    (Lab units) and PSNR against the truth (dB, mean over frames)."""
    from ..metrics import psnr_per_image

    if frames.shape != clip.truth.shape:
        raise ValueError(f"expected frames of shape {clip.truth.shape}, got {frames.shape}")
    return {"flicker": flicker(frames, clip.static_pairs()),
            "psnr": float(psnr_per_image(clip.truth, frames).mean())}
