"""``chromalab colorize``: the settings in, one of the engines (:data:`ENGINES`) runs them, the exit code out."""

from __future__ import annotations

from ..errors import SettingError
from .local import BatchRun

ENGINES = ("local", "ray")
"""Where ``chromalab colorize`` runs the photos: this process (:mod:`.local`), or Ray Data
(:mod:`.ray_engine`, which imports Ray: the optional extra ``chromalab[ray]``)."""


def colorize_cli(paths, output=None, model="default", overwrite: bool = False, side_by_side: bool = False,
                 max_pixels: int | None = None, batch_size: int = 16, work_size: int | None = None,
                 backend: str = "auto", progress: bool = True, temperature: float | None = None,
                 settings: dict | None = None, vividness: float | None = None, hints=None,
                 temporal: float | None = None, codec: str | None = None, crf: int | None = None,
                 engine: str = "local", address: str | None = None, workers: int | None = None) -> int:
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

    ``engine``: ``local`` (this process) or ``ray`` (the photos on Ray Data: ``address`` joins a
    running cluster, default a local Ray with this machine's CPUs; ``workers`` actors, default one
    per CPU; a ``manifest.csv`` beside the outputs), see :mod:`chromalab.batch.ray_engine`.
    """
    if engine not in ENGINES:
        raise SettingError(f"--engine {engine!r}: choose {' or '.join(ENGINES)}")
    kwargs: dict = dict(output=output, model=model, overwrite=overwrite, side_by_side=side_by_side,
                        max_pixels=max_pixels, batch_size=batch_size, work_size=work_size, backend=backend,
                        progress=progress, temperature=temperature, settings=settings, vividness=vividness,
                        hints=hints, temporal=temporal, codec=codec, crf=crf)
    if engine == "ray":
        from .ray_engine import RayRun

        return RayRun(paths, address=address, workers=workers, **kwargs).run()
    if address is not None or workers is not None:
        raise SettingError("--address and --workers are for --engine ray")
    return BatchRun(paths, **kwargs).run()
