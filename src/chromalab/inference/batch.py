"""``chromalab colorize``: files and folders in, PNGs (and videos) out, one line per problem, a summary line.

:func:`colorize_cli` checks the settings and loads the model (:class:`BatchRun`), plans the outputs
(:func:`~chromalab.inference.plan_jobs`), sorts out what is already made, then colorizes the photos in
batches (loads and writes on a few threads, the model in between) and the videos one at a time.
"""

from __future__ import annotations

import errno
import os
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .._io import progress_bar
from ..errors import ChromalabError, ImageError, SettingError
from ..images import DEFAULT_MAX_PIXELS, display_name, open_image
from .colorizer import DEFAULT_WORK_SIZE, MAX_WORK_SIZE, Colorizer, PreparedImage
from .plan import VIDEO_OUTPUT_SUFFIXES, Job, output_file, plan_jobs
from .png import save_png
from .provenance import _hints_record, _model_label, model_fingerprint, provenance_text, read_provenance

PHOTO_BATCH_PIXELS = 32_000_000
"""Full-size pixels held per batch of photos (one image over it goes alone)."""


def colorize_cli(paths, output=None, model="default", overwrite: bool = False, side_by_side: bool = False,
                 max_pixels: int | None = None, batch_size: int = 16, work_size: int | None = None,
                 backend: str = "auto", progress: bool = True, temperature: float | None = None,
                 settings: dict | None = None, vividness: float | None = None, hints=None,
                 temporal: float | None = None, codec: str | None = None, crf: int | None = None) -> int:
    """``chromalab colorize``: files and folders in, PNGs out, one line per problem, a summary line.

    Videos (``.mp4 .mov .mkv .webm .avi .m4v``, files or in folders) go through
    :func:`chromalab.video.colorize_video_file` with the same model, vividness and hints (every
    frame gets the same hints): ``film.mkv`` -> ``OUT/film_color.mp4`` (a ``--codec`` MP4 cannot
    hold: ``.webm`` or ``.mkv``), each with its own progress bar (frames, fps, ETA), after the
    photos. ``temporal`` (0..1, default 0.9), ``codec`` and ``crf``: see
    :func:`~chromalab.video.colorize_video_file`. A video's record (its ``comment`` tag) also holds
    the temporal strength, encoder and CRF. ``side_by_side`` applies to photos only (a note says so).

    The model is loaded first, so an unknown model or a bad setting stops the run before any
    file is touched. ``temperature``: T of a vivid model's annealed mean (an error for other models).
    ``vividness``: the colour models' 0..1 setting; ``hints``: colour points ``[(x, y, colour)]`` in each
    input's pixels (hint models): bad colours or a model without hints stop the run before any
    work; a point outside one image fails that image only.

    Each output records what made it (PNG text ``chromalab``: the model, its weights' hash, the
    working size, ``temperature`` and ``settings``). An existing output counts as done only
    when its record equals this run's; otherwise it is made again. ``settings``: further
    result-changing settings (already applied to ``model`` by the caller) to record and compare.
    Outputs are written to a temporary name and renamed; Ctrl-C leaves no partial file.
    Returns the exit code: 0, or 1 when any input failed (skipped outputs are not failures).
    """
    run = BatchRun(paths, output=output, model=model, overwrite=overwrite, side_by_side=side_by_side,
                   max_pixels=max_pixels, batch_size=batch_size, work_size=work_size, backend=backend,
                   progress=progress, temperature=temperature, settings=settings, vividness=vividness,
                   hints=hints, temporal=temporal, codec=codec, crf=crf)
    return run.run()


class BatchRun:
    """One ``chromalab colorize`` run (the arguments of :func:`colorize_cli`).

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
        if temperature is not None:  # the model is then passed as a predictor
            from ..predictors.nets import set_temperature
            from ..registry import load_predictor

            model = set_temperature(load_predictor(model, progress=False), temperature)
        col = self.col = Colorizer(model, backend=backend, work_size=work_size, max_pixels=self.max_pixels,
                                   batch_size=batch_size, vividness=vividness)
        self.hints = list(hints or [])
        if self.hints:
            from ..hints import parse_hints

            if not col.takes_hints:
                raise SettingError(f"{_model_label(spec) if isinstance(spec, str) else col.name}: this model takes "
                                   f"no colour hints (the guided model does: --model guided)")
            parse_hints(self.hints, 1 << 30, 1 << 30)  # colours, count and signs now; each image checks its bounds
        record = col.provenance(**{"temperature": temperature, "vividness": col.vividness if col.controls else None,
                                   "hints": _hints_record(self.hints), **(settings or {})})
        if isinstance(spec, str) and not isinstance(model, str):
            record["model"] = _model_label(spec)
            record.pop("model_sha256", None)
            fp = model_fingerprint(spec)
            if fp:
                record["model_sha256"] = fp
        self.record = record
        self.text = provenance_text(record)

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

    def fail(self, line: str) -> None:
        self.failed += 1
        self.say(f"error: {line}")

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
                self.fail(f"{j.error}")
                continue
            rec, reader = self.record, read_provenance
            if j.video:
                from ..video import check_output, read_video_provenance, video_record

                try:
                    _, enc = check_output(j.out, self.codec, self.crf)
                except ChromalabError as e:  # -o x.webm with --codec h264: names the output
                    self.fail(f"{e}")
                    continue
                rec, reader = video_record(self.record, self.temporal, enc, self.crf), read_video_provenance
            states = [_output_state(o, rec, self.overwrite, reader) for o in j.outputs]
            if "blocked" in states:
                o = j.outputs[states.index("blocked")]
                self.fail(f"{j.label}: its output {display_name(o)} is in the way (a folder or special file)")
            elif all(s == "current" for s in states):
                self.skipped += 1
            else:
                if "stale" in states:
                    self.stale.add(id(j))
                if j.video:
                    self.videos.append((j, rec))
                else:
                    self.todo.append(j)

    def _load(self, j: Job) -> PreparedImage:
        """Decode and prepare one photo (on a worker thread), with its hint channels."""
        item = self.col.prepare(open_image(j.src, max_pixels=self.max_pixels, name=j.label))
        if self.hints:
            try:
                item.hints = self.col.hint_map(item, self.hints)
            except SettingError as e:
                raise SettingError(f"{j.label}: {e}") from None
        return item

    def _write(self, j: Job, item: PreparedImage, ab: np.ndarray) -> None:
        """Finish one photo and write its PNG(s) (on a worker thread), each atomically."""
        assert j.out is not None
        arrs = [(j.out, self.col.finish_array(item, ab, False))]
        if j.compare is not None:
            arrs.append((j.compare, self.col.finish_array(item, ab, True)))
        for path, arr in arrs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_png(arr, path, text=self.text)
            except OSError as e:
                raise ImageError(f"{j.label}: cannot write {display_name(path)} ({e.strerror or e})") from None

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
                for j, fut in _LoadStream(pool, self._load, self.todo, ahead=workers + 1):
                    try:
                        item = fut.result()
                    except ChromalabError as e:
                        self.fail(f"{e}")
                        bar.advance(task)
                        continue
                    except MemoryError:
                        self.fail(f"{j.label}: not enough memory (lower --max-pixels)")
                        bar.advance(task)
                        continue
                    except Exception as e:  # noqa: BLE001
                        self.fail(f"{j.label}: {type(e).__name__}: {e}")
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
                self.fail(f"{j.label}: the model failed ({type(e).__name__}: {e})")
                advance()
            batch.clear()
            return
        self.writing.extend((j, it, pool.submit(self._write, j, it, ab))
                            for (j, it), ab in zip(batch, abs_, strict=True))
        batch.clear()
        while self.writing:
            j, it, fut = self.writing[0]
            try:
                fut.result()
                self.done += 1
                self.replaced += id(j) in self.stale
                self.multi += it.n_frames > 1
                for note in it.notes:
                    self.say(f"note: {j.label}: {note}")
            except ChromalabError as e:
                self.fail(f"{e}")
            except Exception as e:  # noqa: BLE001
                self.fail(f"{j.label}: {type(e).__name__}: {e}")
            self.writing.pop(0)
            advance()

    def _videos(self) -> None:
        """Videos, one at a time (each uses every core): its own progress bar, one line per problem."""
        for j, rec in self.videos:
            from ..video import colorize_video_file

            assert j.out is not None
            try:
                res = colorize_video_file(j.src, j.out, self.col, temporal=self.temporal, codec=self.codec,
                                          crf=self.crf, progress=True if self.progress else None, label=j.label,
                                          hints=self.hints, record=rec)
            except KeyboardInterrupt:  # the pipeline has removed its temporary file
                print(self.summary(interrupted=True), flush=True)
                raise
            except ChromalabError as e:
                self.fail(f"{e}")
                continue
            except MemoryError:
                self.fail(f"{j.label}: not enough memory")
                continue
            except Exception as e:  # noqa: BLE001
                self.fail(f"{j.label}: {type(e).__name__}: {e}")
                continue
            self.done += 1
            self.replaced += id(j) in self.stale
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
