"""Video files in and out with PyAV (its wheels ship FFmpeg; no system ffmpeg is needed).

This module gathers the names of four smaller ones, each about one thing:

* :mod:`.source`: the input film: :func:`probe` (check a file is a usable video, one
  :class:`~chromalab.errors.VideoError` line for each bad input, and count its frames),
  :func:`open_input`, :func:`video_stream`, :func:`frame_to_array` (a decoded frame -> gray or
  sRGB uint8), :func:`is_video_path`, :data:`VIDEO_SUFFIXES`, :class:`VideoInfo`.
* :mod:`.formats`: the output's container, encoder and options: :func:`container_for`,
  :func:`resolve_codec`, :func:`encoder_options`, :func:`effective_crf`, the tables
  (:data:`CONTAINERS`, :data:`CODECS`, :data:`DEFAULT_CRF`, ...), and which audio codecs each
  container takes unchanged (:data:`AUDIO_COPY`, :func:`audio_copyable`).
* :mod:`.writer`: :class:`VideoWriter`, sRGB frames -> the encoded file, with the input's
  timestamps and audio.
* :mod:`.provenance`: the record of what made an output (:func:`provenance_tag`,
  :func:`read_video_provenance`).
"""

from __future__ import annotations

from .formats import (
    AUDIO_COPY,
    CODECS,
    CONTAINERS,
    CRF_RANGE,
    DEFAULT_CODEC,
    DEFAULT_CRF,
    DEFAULT_PIX_FMT,
    audio_copyable,
    container_for,
    effective_crf,
    encoder_options,
    resolve_codec,
)
from .provenance import PROVENANCE_TAG, provenance_tag, read_video_provenance
from .source import VIDEO_SUFFIXES, VideoInfo, frame_to_array, is_video_path, open_input, probe, video_stream
from .writer import VideoWriter

__all__ = ["AUDIO_COPY", "CODECS", "CONTAINERS", "CRF_RANGE", "DEFAULT_CODEC", "DEFAULT_CRF", "DEFAULT_PIX_FMT",
           "PROVENANCE_TAG", "VIDEO_SUFFIXES", "VideoInfo", "VideoWriter", "audio_copyable", "container_for",
           "effective_crf", "encoder_options", "frame_to_array", "is_video_path", "open_input", "probe",
           "provenance_tag", "read_video_provenance", "resolve_codec", "video_stream"]
