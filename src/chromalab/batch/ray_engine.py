"""``chromalab colorize --engine ray``: the photos of a batch on Ray Data, the same outputs as the local engine.

The driver (this process) does what the local engine does before any work: the settings checked, the
model loaded once (an unknown model stops here), the jobs planned, outputs already made with this
run's record skipped (:meth:`BatchRun._sort_jobs`). Then::

    jobs to do (driver)  --ray.data.from_arrow-->  rows {i, src, label, out, compare}   (paths only, in
                                                    small blocks: every worker busy to the end)
        --map_batches(_ColorizeActor, concurrency=workers, batch_size)-->  on each actor:
              the model loaded once (ModelSpec.open: ONNX, or torch where ONNX cannot serve),
              photo.colorize_jobs: read, one forward pass, write each PNG atomically with the record
        -->  rows {i, error, seconds, n_frames, notes}  (a few bytes per photo back to the driver)
    driver: one line per failed file, the progress bar (done / failed / rate / ETA), the manifest

No image bytes travel back: each actor writes its outputs itself, so inputs and outputs must be on a
file system every node sees at the same path (docs/scale.md). Films go through the local engine on the
driver, after the photos (one note line says so). Ray is imported only in this module (the optional
extra ``chromalab[ray]``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._io import progress_bar
from ..errors import ChromalabError, SettingError
from ..images import display_name
from .local import BatchRun
from .manifest import MANIFEST_NAME, PARTIAL_NAME, Manifest
from .model import ModelSpec
from .photo import PhotoWork, colorize_jobs, job_of
from .plan import Job, output_file

INSTALL_HINT = 'pip install "chromalab[ray]"'
BLOCK_CALLS = 2
"""Actor calls per input block of a long job (:func:`block_rows`)."""


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`SettingError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data needs pyarrow and pandas, which plain `pip install ray` lacks
    except ImportError as e:
        raise SettingError(f"--engine ray needs Ray Data, which is not installed ({e}); install it with "
                           f"{INSTALL_HINT}") from None
    return ray


class _ColorizeActor:
    """One Ray actor: loads the model once, then colorizes and writes each batch of photo jobs it gets.

    A batch is a dict of equal-length arrays (Ray Data's ``numpy`` format): ``i`` (the job's index in the
    driver's list), ``src``, ``label``, ``out``, ``compare`` (``""`` for none). It returns ``i``,
    ``error`` (``""`` when written), ``seconds``, ``n_frames`` and ``notes`` (joined by newlines)."""

    def __init__(self, spec: ModelSpec, text: dict[str, str], hints: list):
        self.work = PhotoWork(spec.open(), spec.max_pixels, text, hints)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs = [job_of(str(s), str(lab), str(o), str(c) or None)
                for s, lab, o, c in zip(batch["src"], batch["label"], batch["out"], batch["compare"], strict=True)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings on odd files: each problem is one line already
            outs = colorize_jobs(self.work, jobs)
        return {"i": np.asarray(batch["i"], dtype=np.int64),
                "error": np.array([o.error or "" for o in outs], dtype=object),
                "seconds": np.array([o.seconds for o in outs], dtype=np.float64),
                "n_frames": np.array([o.n_frames for o in outs], dtype=np.int64),
                "notes": np.array(["\n".join(o.notes) for o in outs], dtype=object)}


class RayRun(BatchRun):
    """A :class:`BatchRun` whose photos run on Ray Data; every input gets a row in ``OUT/manifest.csv``.

    ``address``: a running Ray cluster to join (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``); None
    starts a local Ray with this machine's CPUs, stopped at the end. ``workers``: actors, each with
    one CPU and its own copy of the model (default: one per CPU of the cluster)."""

    def __init__(self, paths, *, address: str | None = None, workers: int | None = None, **kwargs):
        import_ray()  # before the model is loaded: a missing extra is the first thing said
        if workers is not None and workers < 1:
            raise SettingError(f"--workers must be at least 1, got {workers}")
        paths = list(paths)
        output = kwargs.get("output")
        single = output_file(Path(output) if output is not None else Path("colorized"), paths)
        if single is not None:
            raise SettingError(f"-o {display_name(single)}: --engine ray writes a folder (the outputs and "
                               f"{MANIFEST_NAME}); give -o a folder")
        self.address, self.workers = address, workers
        self.manifest: Manifest | None = None
        self.order: dict[int, int] = {}
        super().__init__(paths, **kwargs)
        self.manifest = Manifest(self.out_root)
        self.order = {id(j): k for k, j in enumerate(self.jobs)}

    # -- the manifest ---------------------------------------------------------------------------------
    def row(self, job: Job | None, status: str, error: str = "", seconds: float = 0.0) -> None:
        if self.manifest is not None:
            self.manifest.add(self.order.get(id(job), len(self.order)), job, status, error, seconds)

    def summary(self, interrupted: bool = False) -> str:
        # interrupted: the rows so far are in the partial manifest (photos whose results had not come
        # back are not counted, though their outputs may be written: a rerun skips them)
        name = PARTIAL_NAME if interrupted else MANIFEST_NAME
        return super().summary(interrupted) + f"; manifest {display_name(self.out_root / name)}"

    def finish(self) -> int:
        assert self.manifest is not None
        try:
            self.manifest.write()
        except OSError as e:
            self.say(f"error: {display_name(self.manifest.path)}: cannot write the manifest ({e.strerror or e})")
            print(super().summary(), flush=True)
            return 1
        return super().finish()

    # -- the photos on Ray ----------------------------------------------------------------------------
    def _photos(self) -> None:
        assert self.manifest is not None
        if self.videos:
            n = len(self.videos)
            self.say(f"note: {n} video{'s' if n > 1 else ''}: films go through the local engine on this machine, "
                     "after the photos")
        if not self.todo:
            return
        removed = remove_leftovers(self.out_root, self.jobs)
        if removed:
            self.say(f"note: removed {removed} temporary file{'s' if removed > 1 else ''} left by a stopped run")
        self.manifest.open_partial()
        ray = import_ray()
        started = start_ray(ray, self.address)
        try:
            self._run_on_ray(ray)
        except KeyboardInterrupt:
            self.manifest.flush()
            print(self.summary(interrupted=True), flush=True)
            raise
        finally:
            self.manifest.flush()
            if started:
                ray.shutdown()

    def _run_on_ray(self, ray) -> None:
        n = len(self.todo)
        workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        call = call_size(n, self.batch_size, workers)
        blocks = job_blocks(self.todo, block_rows(n, call, workers))
        workers = min(workers, len(blocks))  # an actor without a block would only cost its start
        # one CPU per actor: one onnxruntime thread (its default, one per core, spins on the others' cores)
        spec = dataclasses.replace(self.model_spec, threads=1)
        ds = map_photos(ray.data.from_arrow(blocks), spec, self.text, self.hints, call, workers,
                        restart=self.address is not None)
        del blocks  # Ray holds them now
        assert self.manifest is not None
        shown = self.progress and len(self.todo) >= 2
        with progress_bar("colorizing", info=True, rate="photos/s", elapsed=True, console=self.err,
                          enabled=shown) as bar:
            task = bar.add_task("colorize", total=len(self.todo), info="failed 0")
            bar.advance(task, 0)  # a first sample: the rate of the first batch is over the time since now
            try:
                for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    for k, err, sec, nf, notes in zip(out["i"], out["error"], out["seconds"], out["n_frames"],
                                                      out["notes"], strict=True):
                        self._count(self.todo[int(k)], str(err), float(sec), int(nf), str(notes))
                        bar.update(task, advance=1, info=f"failed {self.failed}")
                    self.manifest.flush()  # a killed run leaves these rows on record
            except (KeyboardInterrupt, ChromalabError):
                raise
            except Exception as e:  # noqa: BLE001 - Ray itself failed (a worker died, a lost node): one line
                if os.environ.get("CHROMALAB_DEBUG") == "1":
                    raise
                first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                raise ChromalabError(f"the Ray job failed ({type(e).__name__}: {first}); the outputs written so far "
                                     "are whole and a rerun skips them") from None

    def _count(self, j: Job, err: str, seconds: float, n_frames: int, notes: str) -> None:
        """One photo's result, as the local engine counts it."""
        if err:
            self.fail(err, j, seconds)
            return
        self.done += 1
        self.replaced += id(j) in self.stale
        self.multi += n_frames > 1
        self.row(j, "done", "", seconds)
        for note in filter(None, notes.split("\n")):
            self.say(f"note: {j.label}: {note}")


def map_photos(ds, spec: ModelSpec, text: dict[str, str], hints: list, batch_size: int, workers: int,
               restart: bool):
    """``ds`` (rows of photo jobs) through a fixed pool of ``workers`` :class:`_ColorizeActor` actors, one
    CPU each, ``batch_size`` jobs per call. ``restart``: let Ray restart a lost actor (a cluster). A local
    Ray loses no nodes, so there actors are not restarted; Ray would otherwise print one warning line per
    actor, that its constructor arguments live in the object store (ray issue 53727). Ray 2.60 takes
    ``max_restarts`` only among its deprecated free-form remote arguments; a Ray without them gets none."""
    kwargs: dict[str, Any] = {"fn_constructor_kwargs": {"spec": spec, "text": text, "hints": hints},
                              "batch_size": batch_size, "batch_format": "numpy", "concurrency": workers,
                              "num_cpus": 1}
    if not restart:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
                return ds.map_batches(_ColorizeActor, max_restarts=0, **kwargs)
        except TypeError:
            pass
    return ds.map_batches(_ColorizeActor, **kwargs)


def job_blocks(jobs: list[Job], rows: int) -> list:
    """The photo jobs as Ray Data's input: Arrow tables of ``rows`` jobs each (columns ``i``, ``src``,
    ``label``, ``out``, ``compare``; about 150 bytes a job). A block is the most one actor call stream
    takes, so small blocks keep every worker busy to the end."""
    import pyarrow as pa

    out = []
    for s in range(0, len(jobs), rows):
        part = jobs[s : s + rows]
        out.append(pa.table({"i": pa.array(range(s, s + len(part)), pa.int64()),
                             "src": pa.array([str(j.src) for j in part], pa.string()),
                             "label": pa.array([j.label for j in part], pa.string()),
                             "out": pa.array([str(j.out) for j in part], pa.string()),
                             "compare": pa.array([str(j.compare or "") for j in part], pa.string())}))
    return out


def block_rows(n: int, call: int, workers: int) -> int:
    """Jobs per input block. A block goes to one actor whole, so the last blocks decide how long the
    other actors wait at the end: :data:`BLOCK_CALLS` calls per block for a job long enough (fewer
    blocks for Ray to track: 10 M photos in calls of 16 make 312,500), else one call per block."""
    calls = -(-n // call)
    return call * (BLOCK_CALLS if calls >= 4 * BLOCK_CALLS * workers else 1)


def call_size(n: int, batch_size: int, workers: int) -> int:
    """Photos per actor call: ``--batch-size``, lowered for a small job so that every worker gets at least
    four calls and none idles long at the end (the batching does not change a byte: tests/test_batch_ray.py)."""
    return max(1, min(batch_size, -(-n // (4 * workers))))


def start_ray(ray, address: str | None) -> bool:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local Ray with this machine's
    CPUs; quiet: Ray's own messages at ERROR and above only, no Ray Data progress bars (ours counts the
    photos), and Ray Data's error logs (a stack trace of its internals) off: a failed job is one line
    naming the cause (:meth:`RayRun._run_on_ray`; ``--debug`` shows Ray's logs and the traceback). True
    when this call started Ray (the caller shuts it down); False when Ray was already running here."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats banner
    debug = os.environ.get("CHROMALAB_DEBUG") == "1"
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                              "log_to_driver": debug}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["num_cpus"] = os.cpu_count() or 1
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SettingError(f"--address {address}: cannot join a Ray cluster there ({e})" if address
                           else f"cannot start a local Ray ({e})") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False
    ctx.log_internal_stack_trace = debug
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR if debug else logging.CRITICAL)
    return True


def remove_leftovers(out_root: Path, jobs: list[Job]) -> int:
    """Remove the temporary files a killed run left beside the planned outputs (``.NAME.XXXXXXXX.tmp``,
    see :func:`chromalab._io.temp_path_beside`) and of the manifest; one walk of the output folder.
    Returns how many were removed."""
    wanted = {os.path.normpath(str(o)) for j in jobs for o in j.outputs}
    wanted |= {os.path.normpath(str(out_root / MANIFEST_NAME)), os.path.normpath(str(out_root / PARTIAL_NAME))}
    removed = 0
    for folder, _, files in os.walk(out_root):
        for name in files:
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            target = name[1:-4].rpartition(".")[0]  # .NAME.XXXXXXXX.tmp -> NAME
            if target and os.path.normpath(os.path.join(folder, target)) in wanted:
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed
