"""The input film: open it, check it is a usable video, describe it, and turn decoded frames into arrays.

* :func:`probe` opens a file, checks it is a usable video and counts its frames by reading the
  packets (no decoding: fast). Every bad input gives one :class:`~chromalab.errors.VideoError`
  line: not a video, a still image, no video stream (audio only), an unsupported codec, a
  truncated file, 0 frames.
* :func:`open_input` and :func:`video_stream`: the same checks, for the decoding run.
* :func:`frame_to_array` turns a decoded frame into what the colorizer takes: gray ``(H, W)``
  uint8 when the frame has no colour (neutral chroma), else sRGB ``(H, W, 3)`` uint8.

Inputs: anything FFmpeg reads through PyAV (tested: MP4/H.264, MOV, MKV, WebM VP8/VP9, AVI/MPEG-4).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import VideoError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
"""Files the CLI treats as videos (any case)."""

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
def quiet_ffmpeg() -> None:
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
    quiet_ffmpeg()
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
