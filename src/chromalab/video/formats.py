"""Output formats: the container for a suffix, the encoder for ``--codec``, its options and CRF,
and which audio codecs each container takes unchanged.

Everything here is checked before any frame is decoded: an unknown suffix or codec, a CRF out
of range, an encoder the container cannot hold each give one :class:`~chromalab.errors.VideoError`
line (:func:`chromalab.video.pipeline.check_output`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import VideoError

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
X264_PRESET = "medium"  # FFmpeg's default, stated so the benchmark's re-encode uses the same
AUDIO_FALLBACK = {"webm": "libopus"}
"""The encoder for audio that cannot be copied, per muxer; every other container gets AAC."""
_PCM = tuple(f"pcm_{x}" for x in ("s16le", "s16be", "s24le", "s24be", "s32le", "f32le", "u8"))
AUDIO_COPY = {"mp4": ("aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"),
              "mov": ("aac", "mp3", "ac3", "eac3", "alac", *_PCM),
              "webm": ("opus", "vorbis"),
              "avi": ("mp3", "mp2", "ac3", "aac", *_PCM)}
"""Audio codecs copied unchanged into each container (by canonical name; Matroska takes whatever
FFmpeg says it can hold). Others are re-encoded (AAC, or Opus in WebM), with a note: FFmpeg
accepts PCM in MP4 and then fails on its channel layout when finishing the file."""
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
"""Channel layouts given to re-encoded audio, by channel count (a PCM track may say just '2 channels')."""


def audio_copyable(codec: str, fmt: str, supported: set[str]) -> bool:
    """Whether audio of ``codec`` (canonical name) can be copied into a ``fmt`` file."""
    allowed = AUDIO_COPY.get(fmt)
    return codec in supported if allowed is None else codec in allowed


def effective_crf(enc: str, crf: int | None) -> int | None:
    """The CRF an encoder runs at (its default when ``crf`` is None); None for encoders without one."""
    if enc not in DEFAULT_CRF:
        return None
    return DEFAULT_CRF[enc] if crf is None else int(crf)


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
        opts["preset"] = X264_PRESET
    elif enc == "libx265":
        opts["x265-params"] = "log-level=error"
    elif enc == "libvpx-vp9":
        opts.update({"b:v": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"})
    elif enc == "libvpx":
        opts.update({"b:v": "20M", "deadline": "good", "cpu-used": "4"})  # VP8: crf under a high cap
    elif enc == "libsvtav1":
        opts["preset"] = "8"
    return opts
