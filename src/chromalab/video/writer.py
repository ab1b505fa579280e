"""Encode sRGB frames into the output file and carry the input's audio along (:class:`VideoWriter`).

H.264 / yuv420p / CRF 18 by default (:mod:`.formats`); BT.601 matrix, limited range, BT.709
primaries, all tagged in the file, so players convert back the same way. The frames keep the
input's timestamps; audio packets are copied unchanged (an audio codec the output container
cannot hold is re-encoded, with a note).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import VideoError
from .formats import (
    AUDIO_FALLBACK,
    DEFAULT_PIX_FMT,
    STANDARD_LAYOUTS,
    audio_copyable,
    encoder_options,
    resolve_codec,
)
from .source import VideoInfo

_UV_FROM_RGB = np.array([[-37.797, -74.203, 112.0, 128.0], [112.0, -93.786, -18.214, 128.0]], np.float32)
_UV_FROM_RGB[:, :3] /= 255.0
"""BT.601 limited range: (U, V) = this @ (R, G, B, 1), R'G'B' in 0..255 (Rec. 601 / SMPTE 170M)."""


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``(H, W, 3)`` uint8, H and W even -> I420 ``(3H/2, W)`` uint8: the Y plane, then U, then V.

    BT.601 limited range, as the file is tagged. Y is OpenCV's (``COLOR_RGB2YUV_I420``, fixed
    point); U and V are computed from the mean R'G'B' of each 2x2 block (a box filter; FFmpeg's
    swscale also low-passes the chroma, with a wider kernel). OpenCV's own I420 takes the chroma
    of each block's top-left pixel alone, which aliases colour edges and, in grainy film, makes
    the chroma of every block follow one pixel's grain. Measured on the test films' ground truth
    through H.264 CRF 18: per-pixel |Δab| between still frames 0.74 instead of 0.76 (grain film),
    0.85 instead of 0.87 (old film) (docs/video.md, table 3). It costs 1.7 ms of CPU a frame at
    640x480 (OpenCV's I420 alone 0.2 ms; x264 takes ~40).
    """
    import cv2

    H, W = rgb.shape[:2]
    i420 = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)  # (3H/2, W): Y, U, V
    mean = cv2.resize(rgb.astype(np.float32), (W // 2, H // 2), interpolation=cv2.INTER_AREA)  # 2x2 means
    uv = cv2.convertScaleAbs(cv2.transform(mean, _UV_FROM_RGB))  # (H/2, W/2, 2), rounded (all >= 16)
    flat = i420.reshape(-1)  # a view: the planes one after the other (H/2 is odd when H % 4 == 2)
    n = (H // 2) * (W // 2)
    flat[H * W : H * W + n] = uv[..., 0].reshape(-1)
    flat[H * W + n :] = uv[..., 1].reshape(-1)
    return i420


class VideoWriter:
    """Encode sRGB frames to ``path`` (muxer ``fmt``) and carry the input's audio along.

    Args:
        path: the file to write (a temporary name; the caller renames it).
        fmt: FFmpeg muxer (:func:`~chromalab.video.formats.container_for`).
        info: the input (:func:`~chromalab.video.source.probe`): size, frame rate, time base.
        audio_streams: the input's audio streams to copy (packets) or, when ``fmt`` cannot
            hold their codec, re-encode (decoded frames given to :meth:`write_audio_frame`).
        codec, crf, pix_fmt: see :func:`~chromalab.video.formats.resolve_codec`,
            :func:`~chromalab.video.formats.encoder_options`.
        rotation: display rotation to record (degrees counter-clockwise, as ``VideoFrame.rotation``).
        size: (W, H) of the frames (default: ``info``'s); every frame must have it.
        label: how messages name the input.
        metadata: container tags to write (e.g. :func:`~chromalab.video.provenance.provenance_tag`).

    Not thread-safe: one thread writes.
    """

    def __init__(self, path: Path, fmt: str, info: VideoInfo, audio_streams: Iterable = (), *,
                 codec: str | None = None, crf: int | None = None, pix_fmt: str = DEFAULT_PIX_FMT,
                 rotation: int = 0, size: tuple[int, int] | None = None, label: str = "",
                 metadata: dict[str, str] | None = None):
        import av
        from av.codec import Codec

        self.notes: list[str] = []
        enc = resolve_codec(codec, fmt)
        opts = encoder_options(enc, crf)
        self.out = av.open(str(path), "w", format=fmt)
        try:
            if metadata:
                self.out.metadata.update(metadata)
            supported = self.out.supported_codecs
            if enc not in supported:
                raise VideoError(f"{path.name}: the {enc} codec cannot go in a {fmt} file "
                                 f"(use another --codec or output suffix)")
            formats = [f.name for f in (Codec(enc, "w").video_formats or ())]
            if formats and pix_fmt not in formats:
                pix_fmt = formats[0]
            self.pix_fmt = pix_fmt
            W, H = size or (info.width, info.height)
            self.size, self.label = (W, H), label or str(info.path)
            self.pad = (0, 0)
            if pix_fmt.startswith(("yuv420", "yuvj420", "nv12", "yuv422", "yuvj422")) and (W % 2 or H % 2):
                self.pad = (H % 2 if "420" in pix_fmt or pix_fmt == "nv12" else 0, W % 2)
                self.notes.append(f"{W}x{H} padded to {W + self.pad[1]}x{H + self.pad[0]} "
                                  f"({pix_fmt} needs even sizes; the last row/column is repeated)")
            tb = info.time_base
            if enc == "mpeg4" and tb.denominator > 65535:  # the MPEG-4 standard's limit
                tb = Fraction(1, 60000)
            self.time_base = tb
            self.vs = cast(Any, self.out.add_stream(enc, rate=info.fps, time_base=tb, options=opts))  # VideoStream
            self.vs.width, self.vs.height = W + self.pad[1], H + self.pad[0]
            self.vs.pix_fmt = pix_fmt
            if enc == "mpeg4":
                self.vs.bit_rate = int(0.3 * self.vs.width * self.vs.height * float(info.fps))  # ~0.3 bit/px
            self.yuv = pix_fmt.startswith(("yuv", "nv12"))
            if self.yuv:  # say how RGB became YUV, so players convert back the same way
                cc = self.vs.codec_context
                cc.colorspace, cc.color_range = 6, 1  # BT.601 matrix (SMPTE 170M), limited range
                cc.color_primaries, cc.color_trc = 1, 1  # sRGB's primaries are BT.709's
            if rotation:
                self.vs.set_display_rotation(rotation)
            self.audio: dict[int, Any] = {}  # input stream index -> output AudioStream
            self.reencode: set[int] = set()
            for a in audio_streams:
                if a.codec_context is None:
                    self.notes.append(f"audio stream {a.index}: no decoder for it in this FFmpeg build; left out")
                    continue
                name = a.codec_context.codec.canonical_name
                if audio_copyable(name, fmt, supported):
                    self.audio[a.index] = self.out.add_stream_from_template(a)
                else:
                    fallback = AUDIO_FALLBACK.get(fmt, "aac")
                    o: Any = self.out.add_stream(fallback, rate=a.codec_context.sample_rate or 48000)
                    # the standard layout for its channel count (a PCM track may say just "2 channels")
                    n = a.codec_context.layout.nb_channels
                    o.layout = STANDARD_LAYOUTS.get(n, f"{n}c")
                    self.audio[a.index] = o
                    self.reencode.add(a.index)
                    self.notes.append(f"audio stream {a.index} ({name}) cannot be copied into a {fmt} file: "
                                      f"re-encoded as {fallback.removeprefix('lib')}")
        except BaseException:
            self.out.close()
            raise
        self._last_pts: int | None = None
        self.frames = 0
        self.closed = False

    def write_frame(self, rgb: np.ndarray, pts: int | None, time_base: Fraction | None) -> None:
        """One sRGB frame ``(H, W, 3)`` uint8 with its input timestamp (``pts`` in ``time_base``)."""
        import av
        import cv2

        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise VideoError(f"{self.label}: the frame size changes at frame {self.frames} "
                             f"({self.size[0]}x{self.size[1]} -> {rgb.shape[1]}x{rgb.shape[0]}); not supported")
        if self.pad != (0, 0):
            rgb = cv2.copyMakeBorder(rgb, 0, self.pad[0], 0, self.pad[1], cv2.BORDER_REPLICATE)
        if self.pix_fmt == "yuv420p":  # with OpenCV: several times faster than swscale
            frame = av.VideoFrame.from_ndarray(rgb_to_i420(rgb), format="yuv420p")
        elif self.yuv:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=self.pix_fmt, dst_colorspace="ITU601", dst_color_range="MPEG")
        else:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=self.pix_fmt)
        if pts is None or time_base is None:  # no timestamp: one frame after the previous
            q = self._last_pts + 1 if self._last_pts is not None else 0
        else:
            q = round(pts * time_base / self.time_base)
            if self._last_pts is not None and q <= self._last_pts:
                q = self._last_pts + 1  # encoders need strictly increasing timestamps
        self._last_pts = q
        frame.pts, frame.time_base = q, self.time_base
        for p in self.vs.encode(frame):
            self.out.mux(p)
        self.frames += 1

    def write_audio_packet(self, packet) -> None:
        """A packet of a copied input audio stream, unchanged."""
        if packet.dts is None and packet.size == 0:
            return
        packet.stream = self.audio[packet.stream_index]
        self.out.mux(packet)

    def write_audio_frame(self, index: int, frame) -> None:
        """A decoded frame of input audio stream ``index`` that is re-encoded."""
        for p in self.audio[index].encode(frame):
            self.out.mux(p)

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        for p in self.vs.encode(None):
            self.out.mux(p)
        for i in self.reencode:
            for p in self.audio[i].encode(None):
                self.out.mux(p)
        self.out.close()
        self.closed = True

    def abort(self) -> None:
        """Close without finishing (the caller deletes the file)."""
        self.closed = True
        try:
            self.out.close()
        except Exception:  # noqa: BLE001, S110 - already failing; the file is removed anyway
            pass
