"""Colorize a video file: decode, colorize with temporal stabilisation, encode, copy the audio.

Three threads overlap the work (PyAV and OpenCV release the GIL while they run):

* reader: demux + decode (FFmpeg's own threads), frame -> L (``Colorizer.prepare``);
* main: forward passes (up to 16 frames each), temporal stabilisation, L + ab -> sRGB;
* writer: sRGB -> YUV, encode, mux; audio packets are copied in file order.

The output is written to a temporary file next to ``dst`` and renamed when complete; any
exception, KeyboardInterrupt included, removes it. Frame count, size (odd sizes padded to even
for 4:2:0), frame rate and timestamps are the input's.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._io import finish_temp, temp_path_beside
from .._io import progress_bar as _progress_bar
from ..errors import VideoError
from .formats import DEFAULT_PIX_FMT, container_for, effective_crf, encoder_options, resolve_codec
from .frames import VideoColorizer, batch_for, check_hints_fit, make_colorizer
from .provenance import provenance_tag
from .source import VideoInfo, frame_to_array, open_input, probe, video_stream
from .temporal import DEFAULT_STRENGTH
from .writer import VideoWriter

Progress = Callable[[int, int], None]
"""``progress(frames_done, frames_total)``, called from the calling thread after each frame."""
_QUEUE = 8  # items in flight between threads beyond a batch or two (a 640x480 frame is ~1 MB)
_POLL_S = 0.1


@dataclass
class VideoResult:
    """What :func:`colorize_video_file` did."""

    src: Path
    dst: Path
    info: VideoInfo  # the input
    frames: int  # frames written
    seconds: float  # wall time
    cuts: list[int] = field(default_factory=list)  # frames where the history was reset (scene cuts)
    notes: list[str] = field(default_factory=list)  # padding, audio re-encoded, ...

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """Another thread failed or the run was interrupted."""


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue


def check_output(dst: str | os.PathLike, codec: str | None, crf: int | None) -> tuple[str, str]:
    """Before any work: the muxer and encoder for ``dst``, or a one-line VideoError."""
    import io

    import av

    fmt = container_for(dst)
    enc = resolve_codec(codec, fmt)
    encoder_options(enc, crf)
    with av.open(io.BytesIO(), "w", format=fmt) as probe_out:
        if enc not in probe_out.supported_codecs:
            raise VideoError(f"{dst}: the {enc} codec cannot go in a {Path(dst).suffix} file "
                             "(use another --codec or output suffix)")
    return fmt, enc


def progress_bar(label: str, total: int, console=None):
    """The video's progress bar (on stderr, or ``console``): frames, fps, elapsed, ETA -> (bar, report)."""
    from rich.console import Console

    bar = _progress_bar(f"colorizing {label}", unit="frames", rate="fps", elapsed=True,
                        console=console or Console(stderr=True))
    task = bar.add_task("", total=total)
    return bar, lambda done, _total: bar.update(task, completed=done)


def video_record(base: dict, temporal: float, enc: str, crf: int | None, *, exact: bool = False,
                 pix_fmt: str = DEFAULT_PIX_FMT) -> dict:
    """What made an output video: ``base`` (the photo record: model, weights hash, work size,
    vividness, hints, ...) plus the video settings that change the file (temporal strength,
    encoder, effective CRF; ``exact`` and ``pix_fmt`` when not the defaults)."""
    rec = {**base, "temporal": float(temporal), "codec": enc, "crf": effective_crf(enc, crf)}
    if exact:
        rec["exact"] = True
    if pix_fmt != DEFAULT_PIX_FMT:
        rec["pix_fmt"] = pix_fmt
    return {k: v for k, v in rec.items() if v is not None}


def colorize_video_file(src: str | os.PathLike, dst: str | os.PathLike, colorizer="default",
                        temporal: float = DEFAULT_STRENGTH, codec: str | None = None, crf: int | None = None,
                        progress: bool | Progress | None = None, *, label: str | None = None,
                        exact: bool = False, pix_fmt: str = DEFAULT_PIX_FMT, hints=None,
                        vividness: float | None = None, record: dict | None = None) -> VideoResult:
    """Colorize one video file into ``dst`` (the CLI's one call per video).

    Args:
        src: input video (any container/codec FFmpeg reads).
        dst: output file; its suffix picks the container (.mp4 .m4v .mov .mkv .webm .avi).
        colorizer: a :class:`~chromalab.inference.Colorizer` (or anything
            :func:`~chromalab.video.frames.make_colorizer` takes).
        temporal: 0..1 stabilisation strength (0: per-frame).
        codec: ``h264`` (default; ``vp9`` for .webm), ``hevc``, ``vp9``, ``vp8``, ``av1``,
            ``mpeg4``, ``ffv1``, or an FFmpeg encoder name.
        crf: quality for h264/hevc/vp9/vp8/av1 (lower is better; default 18 for h264).
        progress: True for a progress bar on stderr, or ``progress(done, total)``.
        label: how messages name the input (default: ``src`` as given).
        exact: compose with ``Colorizer.finish_array`` (slower; see :mod:`.compose`).
        pix_fmt: output pixel format (default yuv420p).
        hints: colour points ``[(x, y, colour), ...]`` in the frames' pixels, the same on every
            frame (hint models: ``guided``, ``default``).
        vividness: 0 (most accurate) .. 1 (most colourful), colour models; None: the model's own.
        record: what to record in the file as its maker (the CLI's record, compared on the next
            run); default: :func:`video_record` of the colorizer's provenance and these settings.

    Raises:
        VideoError (a ChromalabError): one line naming the file, for every bad input or
        output problem. SettingError (also a ValueError): a bad hint (one outside the frame
        names the video), or hints / a vividness for a model without them. Nothing is left
        under ``dst`` (nor a temporary file) on any error.
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    label = label or str(src)
    vc = VideoColorizer(colorizer, temporal, exact=exact, hints=hints, vividness=vividness)  # checks temporal first
    fmt, enc = check_output(dst, codec, crf)
    if dst.exists() and os.path.realpath(dst) == os.path.realpath(src):
        raise VideoError(f"{label}: the output {dst} is the input; refusing to write over it")
    if dst.is_dir():
        raise VideoError(f"{dst}: the output is a folder")
    info = probe(src, label)
    check_hints_fit(vc.hints, info.width, info.height, label)
    vc.batch = batch_for(info.height, info.width, vc.batch)
    if record is None:
        from ..inference.provenance import _hints_record

        col = vc.colorizer
        v = (col.vividness if vc.vividness is None else vc.vividness) if col.controls else None
        record = video_record(col.provenance(vividness=v, hints=_hints_record(vc.hints)), vc.stabilizer.strength,
                              enc, crf, exact=exact, pix_fmt=pix_fmt)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_beside(dst, ".part")
    except OSError as e:
        raise VideoError(f"{dst}: cannot write here ({e.strerror or e})") from None
    bar = None
    try:
        if progress is True:
            bar, report = progress_bar(label, info.n_frames)
            bar.start()
        else:
            report = progress if callable(progress) else None
        with _opencv_single_thread():
            frames, notes = _run(src, label, tmp, fmt, info, vc, codec, crf, pix_fmt, report,
                                 provenance_tag(record))
        try:
            finish_temp(tmp, dst)
        except OSError as e:
            raise VideoError(f"{dst}: cannot write it ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.stop()
    return VideoResult(src=src, dst=dst, info=info, frames=frames, seconds=time.perf_counter() - t0,
                       cuts=list(vc.cuts), notes=notes)


def colorize_video(src: str | os.PathLike, dst: str | os.PathLike, model="default", *,
                   temporal: float = DEFAULT_STRENGTH, progress: bool | Progress | None = None,
                   codec: str | None = None, crf: int | None = None, vividness: float | None = None,
                   hints=None, **colorizer_kwargs) -> VideoResult:
    """Colorize a video: ``chromalab.colorize_video("film.mp4", "film_color.mp4")``.

    ``model``: a name, run folder, weights file, Predictor or Colorizer; ``vividness``: 0 (most
    accurate) .. 1 (most colourful) for the colour models; ``hints``: colour points
    ``[(x, y, colour), ...]`` in the frames' pixels, applied to every frame (hint models), as
    :func:`chromalab.colorize` takes them; ``colorizer_kwargs``: model settings
    (``temperature`` for vivid models, ``work_size``, ``backend``, ...). ``exact`` and
    ``pix_fmt`` are passed to :func:`colorize_video_file`, as are the rest. A bad hint (one
    outside the frame included) or a setting the model lacks raise a ValueError
    (:class:`~chromalab.errors.SettingError`) before anything is written.
    """
    exact = bool(colorizer_kwargs.pop("exact", False))
    pix_fmt = colorizer_kwargs.pop("pix_fmt", DEFAULT_PIX_FMT)
    col = make_colorizer(model, **colorizer_kwargs)
    return colorize_video_file(src, dst, col, temporal=temporal, codec=codec, crf=crf, progress=progress,
                               exact=exact, pix_fmt=pix_fmt, hints=hints, vividness=vividness)


_CV_LOCK = threading.Lock()
_CV_USERS = [0, 0]  # runs in progress, OpenCV's thread count before the first


@contextlib.contextmanager
def _opencv_single_thread():
    """OpenCV's own worker threads only fight the decoder, encoder and model threads here (its
    resize and colour conversion took twice the wall time with 2 threads on 2 busy cores)."""
    import cv2

    with _CV_LOCK:
        if _CV_USERS[0] == 0:
            _CV_USERS[1] = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _CV_USERS[0] += 1
    try:
        yield
    finally:
        with _CV_LOCK:
            _CV_USERS[0] -= 1
            if _CV_USERS[0] == 0:
                cv2.setNumThreads(_CV_USERS[1])


# ---- the three threads ---------------------------------------------------------------------------------
def _run(src: Path, label: str, tmp: Path, fmt: str, info: VideoInfo, vc: VideoColorizer, codec, crf,
         pix_fmt: str, report: Progress | None, metadata: dict[str, str]) -> tuple[int, list[str]]:
    """Decode -> colorize -> encode into ``tmp``; returns (frames written, notes)."""
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(2 * vc.batch + _QUEUE)  # frames and audio packets
    q_out: queue.Queue = queue.Queue(vc.batch + _QUEUE)
    errors: list[BaseException] = []
    written: list[int] = [0]
    notes: list[str] = []
    container = open_input(src, label)
    v = video_stream(container, label)
    v.thread_type = "AUTO"  # FFmpeg's frame and slice threads
    audio = [a for a in container.streams.audio if a.codec_context is not None]
    if len(audio) < len(container.streams.audio):
        notes.append("an audio stream with a codec this FFmpeg build cannot read was left out")
    if container.streams.subtitles:
        notes.append(f"{len(container.streams.subtitles)} subtitle stream(s) not copied")

    def reader() -> None:
        n = 0
        try:
            for pkt in container.demux(v, *audio):
                if stop.is_set():
                    return
                if pkt.stream.index == v.index:  # (a flush marker's stream_index is always 0)
                    try:
                        decoded = pkt.decode()
                    except Exception as e:  # noqa: BLE001 - FFmpeg's many error kinds
                        raise VideoError(f"{label}: damaged video data after frame {n} ({e})") from None
                    for fr in decoded:
                        item = vc.prepare(frame_to_array(fr))
                        _put(q_in, ("v", fr.pts, fr.time_base, item, fr.rotation if n == 0 else 0), stop)
                        n += 1
                else:
                    _put(q_in, ("a", pkt), stop)
            _put(q_in, ("end", n), stop)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
            stop.set()

    def writer() -> None:
        w: VideoWriter | None = None
        early: list = []  # audio before the first frame (the writer needs the frame's rotation)
        try:
            while True:
                item = _get(q_out, stop)
                if item[0] == "end":
                    if w is not None:
                        for a in audio:  # what the decoders of re-encoded audio still hold
                            if a.index in w.reencode:
                                for fr in a.decode(None):
                                    w.write_audio_frame(a.index, fr)
                        w.close()
                    return
                if item[0] == "a" and w is None:
                    early.append(item)
                    continue
                if w is None:
                    size = (item[1].shape[1], item[1].shape[0])  # the decoded frames' (W, H)
                    w = VideoWriter(tmp, fmt, info, audio, codec=codec, crf=crf, pix_fmt=pix_fmt,
                                    rotation=item[4], size=size, label=label, metadata=metadata)
                    notes.extend(w.notes)
                    for e in early:
                        _write_audio(w, e[1])
                    early.clear()
                if item[0] == "a":
                    _write_audio(w, item[1])
                else:
                    w.write_frame(item[1], item[2], item[3])
                    written[0] += 1
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
            stop.set()
        finally:
            if w is not None and not w.closed:
                w.abort()

    threads = [threading.Thread(target=reader, name="chromalab-video-read", daemon=True),
               threading.Thread(target=writer, name="chromalab-video-write", daemon=True)]
    for t in threads:
        t.start()
    try:
        decoded = _colorize_loop(q_in, q_out, stop, vc, info, report)
        _put(q_out, ("end",), stop)
        threads[1].join()  # the writer finishes the file
    except _Stopped:
        pass  # a worker failed: its error is raised below
    finally:  # also on KeyboardInterrupt: the workers see stop and return
        stop.set()
        for t in threads:
            t.join()
        container.close()
    if errors:
        raise errors[0]
    if written[0] == 0:
        raise VideoError(f"{label}: no video frames could be decoded ({info.n_frames} in the file)")
    if decoded < info.n_frames - max(2, info.n_frames // 100):
        raise VideoError(f"{label}: damaged video: only {decoded} of its {info.n_frames} frames could be decoded")
    return written[0], notes


def _write_audio(w: VideoWriter, pkt) -> None:
    if pkt.size == 0:  # the demuxer's end-of-stream marker: nothing to copy or decode
        return
    if pkt.stream_index in w.reencode:
        for fr in pkt.decode():
            w.write_audio_frame(pkt.stream_index, fr)
    else:
        w.write_audio_packet(pkt)


def _colorize_loop(q_in: queue.Queue, q_out: queue.Queue, stop: threading.Event, vc: VideoColorizer,
                   info: VideoInfo, report: Progress | None) -> int:
    """Main thread: batches of frames through the model and the stabiliser, in file order."""
    pending: list[tuple] = []  # frames and audio packets, in file order, until a batch is full
    n_frames = done = 0
    decoded = -1

    def flush() -> None:
        nonlocal done, n_frames
        frames = [it for it in pending if it[0] == "v"]
        rgbs = iter(vc.colorize_prepared([it[3] for it in frames]))
        for it in pending:
            if it[0] == "v":
                _put(q_out, ("v", next(rgbs), it[1], it[2], it[4]), stop)
                done += 1
                if report is not None:
                    report(done, max(done, info.n_frames))
            else:
                _put(q_out, it, stop)
        pending.clear()
        n_frames = 0

    while decoded < 0:
        item = _get(q_in, stop)
        if item[0] == "end":
            decoded = item[1]
        else:
            pending.append(item)
            n_frames += item[0] == "v"
        if n_frames >= vc.batch or decoded >= 0:
            flush()
    return decoded
