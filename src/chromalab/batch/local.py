"""The local engine of ``chromalab colorize``: files and folders in, PNGs (and videos) out, one line per
problem, a summary line.

:class:`BatchRun` checks the settings and loads the model, plans the outputs
(:func:`~chromalab.batch.plan.plan_jobs`), sorts out what is already made, then colorizes the photos in
batches (loads and writes on a few threads, the model in between) and the videos one at a time. The Ray
engine (:mod:`.ray_engine`) is a BatchRun whose photos run on Ray Data, with the same per-file work
(:mod:`.photo`).
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .._io import progress_bar
from ..errors import ChromalabError, SettingError
from ..images import DEFAULT_MAX_PIXELS, display_name
from ..inference.colorizer import DEFAULT_WORK_SIZE, MAX_WORK_SIZE, PreparedImage
from ..inference.provenance import (
    _hints_record,
    _model_label,
    model_fingerprint,
    provenance_text,
    read_provenance,
)
from .model import ModelSpec
from .photo import PhotoWork, load_error, model_error, write_error
from .plan import VIDEO_OUTPUT_SUFFIXES, Job, output_file, plan_jobs

PHOTO_BATCH_PIXELS = 32_000_000
"""Full-size pixels held per batch of photos (one image over it goes alone)."""


class BatchRun:
    """One ``chromalab colorize`` run on this machine (the arguments of :func:`~.command.colorize_cli`).

    Built: the settings checked, the model loaded, the record every output gets, the jobs planned;
    nothing written yet. :meth:`run` does the work and returns the exit code. The counts
    (``done``, ``skipped``, ``failed``, ``multi``, ``replaced``) make the summary line.
    """

    def __init__(self, paths: Iterable, output=None, model="default", overwrite: bool = False,
                 side_by_side: bool = False, max_pixels: int | None = None, batch_size: int = 16,
                 work_size: int | None = None, backend: str = "auto", progress: bool = True,
                 temperature: float | None = None, settings: dict | None = None, vividness: float | None = None,
                 hints=None, temporal: float | None = None, codec: str | None = None, crf: int | None = None):
        from rich.console import Console

        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.max_pixels = int(max_pixels) if max_pixels else DEFAULT_MAX_PIXELS
        if self.max_pixels < 1:
            raise ChromalabError(f"--max-pixels must be positive, got {self.max_pixels}")
        if batch_size < 1:
            raise ChromalabError(f"--batch-size must be at least 1, got {batch_size}")
        if work_size is not None and not 1 <= work_size <= MAX_WORK_SIZE:
            raise ChromalabError(f"--work-size {work_size} is out of range: give 1 to {MAX_WORK_SIZE} "
                                 f"(the long side the model sees; default {DEFAULT_WORK_SIZE})")
        from ..video.temporal import DEFAULT_STRENGTH

        self.batch_size = batch_size
        self.overwrite = overwrite
        self.progress = progress
        self.codec, self.crf = codec, crf
        self.temporal = _check_temporal(DEFAULT_STRENGTH if temporal is None else temporal)
        video_suffix = _video_output_suffix(codec, crf)
        paths = list(paths)
        self.out_root = Path(output) if output is not None else Path("colorized")
        self.single = output_file(self.out_root, paths)

        # the model before any work: an unknown name or a setting it does not take stops here
        spec = model
        self.model_spec = ModelSpec(model, backend=backend, work_size=work_size, max_pixels=self.max_pixels,
                                    batch_size=batch_size, vividness=vividness, temperature=temperature)
        col = self.col = self.model_spec.open()
        self.hints = list(hints or [])
        if self.hints:
            from ..hints import parse_hints

            if not col.takes_hints:
                raise SettingError(f"{_model_label(spec) if isinstance(spec, str) else col.name}: this model takes "
                                   f"no colour hints (the guided model does: --model guided)")
            parse_hints(self.hints, 1 << 30, 1 << 30)  # colours, count and signs now; each image checks its bounds
        record = col.provenance(**{"temperature": temperature, "vividness": col.vividness if col.controls else None,
                                   "hints": _hints_record(self.hints), **(settings or {})})
        if isinstance(spec, str) and temperature is not None:  # loaded as a predictor: name it as given
            record["model"] = _model_label(spec)
            record.pop("model_sha256", None)
            fp = model_fingerprint(spec)
            if fp:
                record["model_sha256"] = fp
        self.record = record
        self.text = provenance_text(record)
        self.work = PhotoWork(col, self.max_pixels, self.text, self.hints)

        self.jobs = plan_jobs(paths, self.out_root, side_by_side, video_suffix=video_suffix)
        self.side_by_side = side_by_side
        self.done = self.skipped = self.failed = self.multi = self.replaced = 0
        self.todo: list[Job] = []  # photo jobs to do
        self.videos: list[tuple[Job, dict]] = []  # video jobs to do, with the record their output gets
        self.stale: set[int] = set()  # ids of the jobs that replace an existing output
        self.writing: list[tuple[Job, PreparedImage, Future]] = []  # writes not yet counted

    # -- messages -------------------------------------------------------------------------------------
    def say(self, line: str) -> None:
        self.err.print(line, markup=False)

    def fail(self, line: str, job: Job | None = None, seconds: float = 0.0) -> None:
        self.failed += 1
        self.say(f"error: {line}")
        self.row(job, "failed", line, seconds)

    def row(self, job: Job | None, status: str, error: str = "", seconds: float = 0.0) -> None:
        """What became of one input (``done``, ``skipped``, ``failed``): the Ray engine's manifest
        keeps it (:class:`~chromalab.batch.manifest.Manifest`); the local engine only counts."""

    def summary(self, interrupted: bool = False) -> str:
        line = ("interrupted: " if interrupted else "") + f"done {self.done}, skipped {self.skipped}, failed {self.failed}"
        if self.skipped:
            line += " (already made with this model and settings; --overwrite makes them again)"
        if self.replaced:
            line += f"; replaced {self.replaced} existing output{'s' if self.replaced > 1 else ''}"
        if self.multi:
            line += f"; {self.multi} multi-frame file{'s' if self.multi > 1 else ''}: first frame only"
        if self.done:
            line += (f"; wrote {display_name(self.single)}" if self.single is not None
                     else f"; outputs in {display_name(self.out_root)}")
        return line

    def finish(self) -> int:
        print(self.summary(), flush=True)
        return 1 if self.failed else 0

    # -- the run --------------------------------------------------------------------------------------
    def run(self) -> int:
        """Sort the jobs (to do, already made, failed), colorize the photos, then the videos."""
        self._sort_jobs()
        if not self.todo and not self.videos:
            return self.finish()
        problem = _check_output_root(self.single.parent if self.single is not None else self.out_root)
        if problem:
            self.say(f"error: {problem}")
            self.failed += len(self.todo) + len(self.videos)
            for j in [*self.todo, *(j for j, _ in self.videos)]:
                self.row(j, "failed", problem)
            return self.finish()
        self._photos()
        self._videos()
        return self.finish()

    def _sort_jobs(self) -> None:
        """Each planned job -> failed (a planning error, an output in the way), skipped (its outputs carry
        this run's record) or to do (photos in :attr:`todo`, videos in :attr:`videos`)."""
        if self.side_by_side and any(j.video for j in self.jobs):
            self.say("note: --side-by-side applies to photos only; videos get NAME_color.mp4 alone")
        for j in self.jobs:
            if j.error or j.out is None:
                self.fail(f"{j.error}", j)
                continue
            rec, reader = self.record, read_provenance
            if j.video:
                from ..video import check_output, read_video_provenance, video_record

                try:
                    _, enc = check_output(j.out, self.codec, self.crf)
                except ChromalabError as e:  # -o x.webm with --codec h264: names the output
                    self.fail(f"{e}", j)
                    continue
                rec, reader = video_record(self.record, self.temporal, enc, self.crf), read_video_provenance
            states = [_output_state(o, rec, self.overwrite, reader) for o in j.outputs]
            if "blocked" in states:
                o = j.outputs[states.index("blocked")]
                self.fail(f"{j.label}: its output {display_name(o)} is in the way (a folder or special file)", j)
            elif all(s == "current" for s in states):
                self.skipped += 1
                self.row(j, "skipped")
            else:
                if "stale" in states:
                    self.stale.add(id(j))
                if j.video:
                    self.videos.append((j, rec))
                else:
                    self.todo.append(j)

    def _photos(self) -> None:
        """Loads run ahead on a pool; every ``batch_size`` photos (or :data:`PHOTO_BATCH_PIXELS`) go
        through the model together; their writes go back to the pool."""
        workers = max(1, min(4, os.cpu_count() or 1))
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            with warnings.catch_warnings(), _progress(self.err, len(self.todo) if self.progress else 0) as bar:
                warnings.simplefilter("ignore")  # Pillow's warnings on odd files: each problem is one line already
                task = bar.add_task("colorize", total=len(self.todo))
                batch: list[tuple[Job, PreparedImage]] = []
                px = 0
                for j, fut in _LoadStream(pool, self.work.load, self.todo, ahead=workers + 1):
                    try:
                        item = fut.result()
                    except Exception as e:  # noqa: BLE001 - one bad file fails alone
                        self.fail(load_error(j, e), j)
                        bar.advance(task)
                        continue
                    batch.append((j, item))
                    px += item.pixels
                    if len(batch) >= self.batch_size or px >= PHOTO_BATCH_PIXELS:
                        self._flush(batch, pool, lambda: bar.advance(task))
                        px = 0
                self._flush(batch, pool, lambda: bar.advance(task))
        except KeyboardInterrupt:
            # let the writes already running finish (each lands whole, by rename), drop the rest
            pool.shutdown(wait=True, cancel_futures=True)
            self.done += sum(1 for _, _, f in self.writing if f.done() and not f.cancelled() and f.exception() is None)
            print(self.summary(interrupted=True), flush=True)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _flush(self, batch: list[tuple[Job, PreparedImage]], pool: ThreadPoolExecutor, advance: Callable[[], Any]) -> None:
        """One forward pass for ``batch`` (emptied), its writes submitted, then counted in order."""
        if not batch:
            return
        try:
            abs_ = self.col.predict_work([it for _, it in batch])
        except Exception as e:  # noqa: BLE001 - the model failing: every file of the batch fails
            for j, _ in batch:
                self.fail(model_error(j, e), j)
                advance()
            batch.clear()
            return
        self.writing.extend((j, it, pool.submit(self.work.write, j, it, ab))
                            for (j, it), ab in zip(batch, abs_, strict=True))
        batch.clear()
        while self.writing:
            j, it, fut = self.writing[0]
            try:
                fut.result()
                self.done += 1
                self.replaced += id(j) in self.stale
                self.multi += it.n_frames > 1
                self.row(j, "done")
                for note in it.notes:
                    self.say(f"note: {j.label}: {note}")
            except Exception as e:  # noqa: BLE001
                self.fail(write_error(j, e), j)
            self.writing.pop(0)
            advance()

    def _videos(self) -> None:
        """Videos, one at a time (each uses every core): its own progress bar, one line per problem."""
        for j, rec in self.videos:
            from ..video import colorize_video_file

            assert j.out is not None
            t0 = time.perf_counter()
            try:
                res = colorize_video_file(j.src, j.out, self.col, temporal=self.temporal, codec=self.codec,
                                          crf=self.crf, progress=True if self.progress else None, label=j.label,
                                          hints=self.hints, record=rec)
            except KeyboardInterrupt:  # the pipeline has removed its temporary file
                print(self.summary(interrupted=True), flush=True)
                raise
            except ChromalabError as e:
                self.fail(f"{e}", j, time.perf_counter() - t0)
                continue
            except MemoryError:
                self.fail(f"{j.label}: not enough memory", j, time.perf_counter() - t0)
                continue
            except Exception as e:  # noqa: BLE001
                self.fail(f"{j.label}: {type(e).__name__}: {e}", j, time.perf_counter() - t0)
                continue
            self.done += 1
            self.replaced += id(j) in self.stale
            self.row(j, "done", "", time.perf_counter() - t0)
            for note in res.notes:
                self.say(f"note: {j.label}: {note}")


def _progress(console, total: int):
    return progress_bar("colorizing", elapsed=True, console=console, enabled=total >= 2)


def _output_state(path: Path, record: dict, overwrite: bool, reader=read_provenance) -> str:
    """``missing``, ``current`` (made by this record), ``stale`` (anything else: replace it) or
    ``blocked`` (a folder or special file is in the way). ``reader``: the record an output
    carries (PNG text; a video's container tag)."""
    if not os.path.lexists(path):
        return "missing"
    if os.path.isdir(path) or (os.path.exists(path) and not os.path.isfile(path)):
        return "blocked"
    if overwrite:
        return "stale"
    return "current" if reader(path) == record else "stale"


def _check_temporal(temporal) -> float:
    try:
        t = float(temporal)
    except (TypeError, ValueError):
        t = float("nan")
    if not 0.0 <= t <= 1.0:
        raise SettingError(f"--temporal must be a number in 0..1, got {temporal!r}")
    return t


def _video_output_suffix(codec: str | None, crf: int | None) -> str:
    """The container of a video's output in a folder run: ``.mp4`` unless ``--codec`` cannot go
    in MP4 (then the first of :data:`VIDEO_OUTPUT_SUFFIXES` that holds it). Checks ``--codec`` and
    ``--crf`` (one-line VideoError) before any work."""
    if codec is None and crf is None:
        return VIDEO_OUTPUT_SUFFIXES[0]
    from ..errors import VideoError
    from ..video import check_output

    first: VideoError | None = None
    for suffix in VIDEO_OUTPUT_SUFFIXES:
        try:
            check_output(f"x{suffix}", codec, crf)
            return suffix
        except VideoError as e:
            first = first or e
            if "cannot go in" not in str(e):
                raise  # an unknown codec or a bad --crf: the same for every container
    assert first is not None
    raise first


class _LoadStream:
    """Submit loads ``ahead`` at a time; yield (job, future) in order."""

    def __init__(self, pool: ThreadPoolExecutor, fn: Callable[[Job], PreparedImage], jobs: Iterable[Job], ahead: int):
        self.pool, self.fn, self.jobs, self.ahead = pool, fn, list(jobs), max(1, ahead)

    def __iter__(self) -> Iterator[tuple[Job, Future]]:
        q: deque = deque()
        it = iter(self.jobs)
        for j in it:
            q.append((j, self.pool.submit(self.fn, j)))
            if len(q) >= self.ahead:
                break
        while q:
            j, fut = q.popleft()
            nxt = next(it, None)
            if nxt is not None:
                q.append((nxt, self.pool.submit(self.fn, nxt)))
            yield j, fut


def _not_writable_why(folder: Path, e: OSError | None = None) -> str:
    """Why a folder cannot be written, in words: a read-only file system is not a permission problem."""
    try:
        if os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1):
            return "read-only file system"
    except OSError:
        pass
    if e is not None and e.errno == errno.EROFS:
        return "read-only file system"
    if e is None or isinstance(e, PermissionError):
        return "permission denied"
    return e.strerror or str(e)


def _check_output_root(out_root: Path) -> str | None:
    """Create the output folder and make sure a file can be written in it; a one-line problem or None."""
    shown = display_name(out_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{shown}: cannot create the output folder (a file of that name exists)"
    except OSError as e:
        return f"{shown}: cannot create the output folder ({e.strerror or e})"
    if not out_root.is_dir():
        return f"{shown}: the output path is not a folder"
    if not os.access(out_root, os.W_OK | os.X_OK):
        return f"{shown}: the output folder is not writable ({_not_writable_why(out_root)})"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=out_root, prefix=".chromalab-probe-")
        os.close(fd)
    except OSError as e:
        return f"{shown}: the output folder is not writable ({_not_writable_why(out_root, e)})"
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return None
