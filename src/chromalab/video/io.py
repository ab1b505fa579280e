"""Video files in and out with PyAV (its wheels ship FFmpeg; no system ffmpeg is needed).

* :func:`probe` opens a file, checks it is a usable video and counts its frames by reading the
  packets (no decoding: fast). Every bad input gives one :class:`~chromalab.errors.VideoError`
  line: not a video, a still image, no video stream (audio only), an unsupported codec, a
  truncated file, 0 frames.
* :func:`frame_to_array` turns a decoded frame into what the colorizer takes: gray ``(H, W)``
  uint8 when the frame has no colour (neutral chroma), else sRGB ``(H, W, 3)`` uint8.
* :class:`VideoWriter` encodes sRGB frames (H.264 / yuv420p / CRF 18 by default; BT.601
  matrix, limited range, BT.709 primaries, all tagged) with the input's timestamps, and copies
  the input's audio packets unchanged (an audio codec the output container cannot hold is
  re-encoded, with a note).

Inputs: anything FFmpeg reads (tested: MP4/H.264, MOV, MKV, WebM VP8/VP9, AVI/MPEG-4).
Outputs: the container follows the file suffix (:data:`CONTAINERS`).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import VideoError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
"""Files the CLI treats as videos (any case)."""
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
"""Output suffix -> FFmpeg muxer."""
CODECS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx", "av1": "libsvtav1",
          "mpeg4": "mpeg4", "ffv1": "ffv1"}
"""``--codec`` names -> FFmpeg encoders (an encoder's own name is accepted too)."""
DEFAULT_CODEC = {"webm": "vp9"}
"""Per muxer; every other container gets H.264."""
DEFAULT_CRF = {"libx264": 18, "libx265": 22, "libvpx-vp9": 31, "libvpx": 10, "libsvtav1": 30}
"""Visually transparent defaults; ``--crf`` overrides. Other encoders have no CRF."""
CRF_RANGE = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libvpx": 63, "libsvtav1": 63}
DEFAULT_PIX_FMT = "yuv420p"
"""What players and browsers decode everywhere; it needs even sizes (odd ones are padded)."""
_X264_PRESET = "medium"  # FFmpeg's default, stated so the benchmark's re-encode uses the same
_AUDIO_FALLBACK = {"webm": "libopus"}  # else aac
_PCM = tuple(f"pcm_{x}" for x in ("s16le", "s16be", "s24le", "s24be", "s32le", "f32le", "u8"))
AUDIO_COPY = {"mp4": ("aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"),
              "mov": ("aac", "mp3", "ac3", "eac3", "alac", *_PCM),
              "webm": ("opus", "vorbis"),
              "avi": ("mp3", "mp2", "ac3", "aac", *_PCM)}
"""Audio codecs copied unchanged into each container (by canonical name; Matroska takes whatever
FFmpeg says it can hold). Others are re-encoded (AAC, or Opus in WebM), with a note: FFmpeg
accepts PCM in MP4 and then fails on its channel layout when finishing the file."""
_STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def audio_copyable(codec: str, fmt: str, supported: set[str]) -> bool:
    """Whether audio of ``codec`` (canonical name) can be copied into a ``fmt`` file."""
    allowed = AUDIO_COPY.get(fmt)
    return codec in supported if allowed is None else codec in allowed


PROVENANCE_TAG = "comment"
"""The container tag that records what made an output video (every output container keeps it:
MP4/MOV ``©cmt``, Matroska/WebM ``COMMENT``, AVI ``ICMT``)."""
_PROVENANCE_PREFIX = "chromalab "


def provenance_tag(record: dict) -> dict[str, str]:
    """The container tags recording ``record`` (the model and settings that made a video, as
    :meth:`chromalab.inference.Colorizer.provenance` makes it for a photo's PNG)."""
    return {PROVENANCE_TAG: _PROVENANCE_PREFIX + json.dumps(record, sort_keys=True, separators=(",", ":"))}


def read_video_provenance(path: str | os.PathLike) -> dict | None:
    """The record a video made by chromalab carries (:func:`provenance_tag`), or None: another
    file, no record, not a regular file, or unreadable. Reads the container header only."""
    try:
        if not os.path.isfile(path):
            return None
        import av

        _quiet_ffmpeg()
        with av.open(str(path)) as c:
            tags = {str(k).lower(): v for k, v in c.metadata.items()}
    except Exception:  # noqa: BLE001 - anything unreadable is "no record": the output is made again
        return None
    raw = tags.get(PROVENANCE_TAG)
    if not isinstance(raw, str) or not raw.startswith(_PROVENANCE_PREFIX):
        return None
    try:
        rec = json.loads(raw[len(_PROVENANCE_PREFIX):])
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def effective_crf(enc: str, crf: int | None) -> int | None:
    """The CRF an encoder runs at (its default when ``crf`` is None); None for encoders without one."""
    if enc not in DEFAULT_CRF:
        return None
    return DEFAULT_CRF[enc] if crf is None else int(crf)


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether the CLI should treat ``path`` as a video (by suffix: .mp4 .mov .mkv .webm .avi .m4v)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found. Times in seconds; ``fps`` is the average frame rate."""

    path: Path
    container: str  # FFmpeg demuxer name
    codec: str  # video decoder name
    width: int
    height: int
    fps: Fraction
    time_base: Fraction  # of the video stream's timestamps
    n_frames: int  # video packets, counted (a decoder can drop a placeholder or two)
    duration: float  # of the video stream
    audio: tuple[str, ...] = ()  # audio codec of each audio stream


# ---- opening and checking -------------------------------------------------------------------------
def _quiet_ffmpeg() -> None:
    """FFmpeg's own log lines would duplicate our one-line errors."""
    import av.logging

    av.logging.set_level(av.logging.PANIC)


def _check_file(p: Path, label: str) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise VideoError(f"{label}: no such file") from None
    except PermissionError:
        raise VideoError(f"{label}: permission denied (cannot read it)") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoError(f"{label}: a folder, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise VideoError(f"{label}: not a regular file (a device, socket or pipe), not a video")
    if st.st_size == 0:
        raise VideoError(f"{label}: empty file (0 bytes), not a video")
    try:
        with open(p, "rb"):
            pass
    except PermissionError:
        raise VideoError(f"{label}: permission denied (cannot read it)") from None


def _iso_bmff_problem(p: Path) -> str | None:
    """For an MP4/MOV that FFmpeg refused: why, from its top-level boxes (None if not MP4/MOV)."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(12)
        if len(head) < 8 or head[4:8] not in (b"ftyp", b"wide", b"free", b"mdat", b"moov", b"skip"):
            return None
        pos, seen = 0, []
        while pos + 8 <= size:
            f.seek(pos)
            h = f.read(16)
            n, kind = int.from_bytes(h[:4], "big"), h[4:8].decode("latin-1")
            if n == 1 and len(h) >= 16:
                n = int.from_bytes(h[8:16], "big")
            elif n == 0:
                n = size - pos
            if n < 8:
                break
            seen.append(kind)
            if pos + n > size:
                return (f"truncated file: its '{kind}' box needs {n:,} bytes but the file ends after "
                        f"{size - pos:,} (cut short, or still being written)")
            pos += n
        if "moov" not in seen:
            return "truncated or unfinished MP4/MOV: it has no 'moov' index (the recording was cut short)"
    return None


def open_input(path: str | os.PathLike, label: str | None = None):
    """An open PyAV input container for ``path`` (after the file checks), or a one-line VideoError."""
    import av

    p = Path(path)
    label = label or str(path)
    _check_file(p, label)
    _quiet_ffmpeg()
    try:
        c = av.open(str(p), "r", metadata_errors="ignore")
    except av.error.EOFError:
        raise VideoError(f"{label}: truncated file (it ends inside the container header)") from None
    except av.error.InvalidDataError:
        why = _iso_bmff_problem(p)
        raise VideoError(f"{label}: {why or 'not a video file (unrecognized format)'}") from None
    except PermissionError:
        raise VideoError(f"{label}: permission denied (cannot read it)") from None
    except av.error.FFmpegError as e:
        raise VideoError(f"{label}: cannot open it as a video ({e.strerror or e})") from None
    name = c.format.name
    if name == "image2" or name.endswith("_pipe"):
        codec = c.streams.video[0].codec_context.name if c.streams.video else name
        c.close()
        raise VideoError(f"{label}: a still image ({codec}), not a video")
    return c


def video_stream(container, label: str):
    """The first video stream that is not cover art, with a decoder; else a one-line VideoError."""
    from av.stream import Disposition

    streams = [s for s in container.streams.video if not (s.disposition & Disposition.attached_pic)]
    if not streams:
        audio = [s.codec_context.name for s in container.streams.audio if s.codec_context is not None]
        art = ", with cover art" if container.streams.video else ""
        what = f"audio only: {', '.join(audio)}{art}" if audio else "nothing FFmpeg can read"
        raise VideoError(f"{label}: no video stream ({what})")
    s = streams[0]
    if s.codec_context is None:
        raise VideoError(f"{label}: unsupported video codec (this FFmpeg build has no decoder for it)")
    return s


def _stated_duration(container, s) -> float | None:
    """The video stream's duration as the file states it (seconds), if it does."""
    if s.duration is not None and s.time_base is not None:
        return float(s.duration * s.time_base)
    tag = s.metadata.get("DURATION")  # Matroska / WebM writers put it here
    if tag:
        try:
            hh, mm, ss = tag.split(":")
            return int(hh) * 3600 + int(mm) * 60 + float(ss)
        except ValueError:
            pass
    return None


def probe(path: str | os.PathLike, label: str | None = None) -> VideoInfo:
    """Check ``path`` is a usable video and describe it. Reads every packet once (no decoding).

    Raises :class:`VideoError` (one line, starting with ``label``) for each bad input.
    """
    import av

    label = label or str(path)
    c = open_input(path, label)
    try:
        s = video_stream(c, label)
        tb = s.time_base or Fraction(1, 1000)
        n, first = 0, None
        ends: dict[int, float] = {}  # stream index -> end of its last packet (s)
        try:
            for pkt in c.demux():
                if pkt.dts is None and pkt.size == 0:
                    continue  # a flush marker, not data
                if pkt.pts is not None and pkt.time_base is not None:
                    end = float((pkt.pts + (pkt.duration or 0)) * pkt.time_base)
                    ends[pkt.stream_index] = max(end, ends.get(pkt.stream_index, end))
                if pkt.stream_index == s.index:
                    n += 1
                    if pkt.pts is not None and first is None:
                        first = float(pkt.pts * tb)
        except av.error.FFmpegError as e:
            raise VideoError(f"{label}: damaged file: reading failed after {n} video frames "
                             f"({e.strerror or e})") from None
        if n == 0:
            raise VideoError(f"{label}: no video frames (0 frames)")
        fps = s.average_rate or s.guessed_rate or s.base_rate or Fraction(25)
        stated_frames = int(s.frames or 0)
        if stated_frames and n < stated_frames - max(2, stated_frames // 100):
            raise VideoError(f"{label}: truncated file: {n} of its {stated_frames} video frames are there")
        stated = c.duration / 1e6 if c.duration else None  # the whole file
        last = max(ends.values()) - (c.start_time or 0) / 1e6 if ends else None
        if stated and last is not None and last < stated - max(0.1 + 2 / float(fps), 0.01 * stated):
            raise VideoError(f"{label}: truncated file: it stops at {last:.2f} s of {stated:.2f} s")
        v_end = ends.get(s.index)
        duration = _stated_duration(c, s) or ((v_end - (first or 0)) if v_end is not None else n / float(fps))
        ctx = s.codec_context
        audio = tuple(a.codec_context.name for a in c.streams.audio if a.codec_context is not None)
        return VideoInfo(path=Path(path), container=c.format.name, codec=ctx.name, width=int(ctx.width),
                         height=int(ctx.height), fps=Fraction(fps), time_base=Fraction(tb), n_frames=n,
                         duration=float(duration), audio=audio)
    finally:
        c.close()


# ---- decoded frames ----------------------------------------------------------------------------------
_NEUTRAL_FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv440p")


def _chroma_neutral(frame, tol: int = 2) -> bool:
    """8-bit planar YUV whose two chroma planes are all within ``tol`` of 128 (no colour)."""
    for plane in frame.planes[1:3]:
        a = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        if int(a.max()) > 128 + tol or int(a.min()) < 128 - tol:
            return False
    return True


def frame_to_array(frame) -> np.ndarray:
    """A decoded ``av.VideoFrame`` -> gray ``(H, W)`` uint8 when it has no colour, else sRGB ``(H, W, 3)`` uint8.

    Gray frames skip the RGB conversion (the colorizer only needs L). The frame's own colour
    range (limited/full) and matrix are used.
    """
    rng = frame.color_range or None  # UNSPECIFIED (0): let swscale assume the format's default
    fmt = frame.format.name
    if fmt in ("gray", "gray8"):
        return frame.to_ndarray()
    if fmt in _NEUTRAL_FORMATS and _chroma_neutral(frame):
        return frame.to_ndarray(format="gray", src_color_range=rng)
    return frame.to_ndarray(format="rgb24", src_color_range=rng)


# ---- writing ------------------------------------------------------------------------------------------
def container_for(path: str | os.PathLike) -> str:
    """The muxer for an output path (by suffix), or a one-line VideoError."""
    fmt = CONTAINERS.get(Path(path).suffix.lower())
    if fmt is None:
        raise VideoError(f"{path}: unknown output video suffix (use one of {' '.join(sorted(set(CONTAINERS)))})")
    return fmt


def resolve_codec(codec: str | None, fmt: str) -> str:
    """``--codec`` (None: the container's default) -> an FFmpeg encoder name this build has."""
    from av.codec import Codec

    name = codec or DEFAULT_CODEC.get(fmt, "h264")
    enc = CODECS.get(name.lower(), name)
    try:
        Codec(enc, "w")
    except Exception:  # noqa: BLE001 - av raises several kinds for an unknown name
        raise VideoError(f"unknown video codec {name!r} (choose {', '.join(CODECS)})") from None
    return enc


def encoder_options(enc: str, crf: int | None) -> dict[str, str]:
    """FFmpeg options for encoder ``enc`` at quality ``crf`` (None: its default)."""
    if enc not in DEFAULT_CRF:
        if crf is not None:
            raise VideoError(f"--crf does not apply to {enc} (it applies to {', '.join(DEFAULT_CRF)})")
        return {}
    q = DEFAULT_CRF[enc] if crf is None else int(crf)
    if not 0 <= q <= CRF_RANGE[enc]:
        raise VideoError(f"--crf {crf} is out of range for {enc} (0..{CRF_RANGE[enc]}; lower is better quality)")
    opts = {"crf": str(q)}
    if enc == "libx264":
        opts["preset"] = _X264_PRESET
    elif enc == "libx265":
        opts["x265-params"] = "log-level=error"
    elif enc == "libvpx-vp9":
        opts.update({"b:v": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"})
    elif enc == "libvpx":
        opts.update({"b:v": "20M", "deadline": "good", "cpu-used": "4"})  # VP8: crf under a high cap
    elif enc == "libsvtav1":
        opts["preset"] = "8"
    return opts


class VideoWriter:
    """Encode sRGB frames to ``path`` (muxer ``fmt``) and carry the input's audio along.

    Args:
        path: the file to write (a temporary name; the caller renames it).
        fmt: FFmpeg muxer (:func:`container_for`).
        info: the input (:func:`probe`): size, frame rate, time base.
        audio_streams: the input's audio streams to copy (packets) or, when ``fmt`` cannot
            hold their codec, re-encode (decoded frames given to :meth:`write_audio_frame`).
        codec, crf, pix_fmt: see :func:`resolve_codec`, :func:`encoder_options`.
        rotation: display rotation to record (degrees counter-clockwise, as ``VideoFrame.rotation``).
        size: (W, H) of the frames (default: ``info``'s); every frame must have it.
        label: how messages name the input.
        metadata: container tags to write (e.g. :func:`provenance_tag`).

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
                    fallback = _AUDIO_FALLBACK.get(fmt, "aac")
                    o: Any = self.out.add_stream(fallback, rate=a.codec_context.sample_rate or 48000)
                    # the standard layout for its channel count (a PCM track may say just "2 channels")
                    n = a.codec_context.layout.nb_channels
                    o.layout = _STANDARD_LAYOUTS.get(n, f"{n}c")
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
        if self.pix_fmt == "yuv420p":  # OpenCV's BT.601 limited-range conversion: 6x faster than swscale
            i420 = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)  # (3H/2, W): Y, U, V
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
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
