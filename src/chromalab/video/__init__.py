"""Video colorization: a film in, a colorized film out, stabilised over time (docs/video.md).

* :func:`colorize_video` / :func:`colorize_video_file`: a file in, a file out (audio copied).
* :class:`VideoColorizer`: frames in, frames out, for your own decoder.
* :class:`TemporalStabilizer`: the flow-based stabiliser alone (working-size ab in and out).
* :func:`is_video_path`: whether a path is a video, by suffix; :func:`check_output`: the
  output options (suffix, codec, CRF) checked once, before any work.
* :func:`read_video_provenance`: the model and settings an output video records (its
  ``comment`` tag), :func:`video_record`: the record of a run; ``chromalab colorize`` compares
  them to skip up-to-date outputs.
"""

from __future__ import annotations

from .frames import VideoColorizer, make_colorizer
from .pipeline import VideoResult, check_output, colorize_video, colorize_video_file, video_record
from .provenance import read_video_provenance
from .source import VIDEO_SUFFIXES, VideoInfo, is_video_path, probe
from .temporal import DEFAULT_STRENGTH, TemporalStabilizer

__all__ = ["DEFAULT_STRENGTH", "VIDEO_SUFFIXES", "TemporalStabilizer", "VideoColorizer", "VideoInfo",
           "VideoResult", "check_output", "colorize_video", "colorize_video_file", "is_video_path",
           "make_colorizer", "probe", "read_video_provenance", "video_record"]
