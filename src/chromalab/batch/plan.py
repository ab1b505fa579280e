"""The batch CLI's plan: inputs (files and folders of photos and videos) -> jobs (:class:`Job`) with their
output names (the layout documented in docs/colorize.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChromalabError
from ..images import IMAGE_SUFFIXES, display_name, iter_folder_images

COLOR_SUFFIX = "_color"
COMPARE_SUFFIX = "_compare"

VIDEO_OUTPUT_SUFFIXES = (".mp4", ".webm", ".mkv")
"""A video's output container in a folder run: MP4, or the first of these that holds ``--codec``."""


@dataclass
class Job:
    src: Path  # the input file
    label: str  # how messages name it (one printable line, see images.display_name)
    out: Path | None = None  # the planned colorized PNG (a video: the colorized video)
    compare: Path | None = None  # the planned gray | colorized PNG (--side-by-side; photos only)
    error: str | None = None  # a planning error (message names the file)
    video: bool = False  # a video file (by suffix, see chromalab.video.is_video_path)

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.out, self.compare) if p is not None]


def _compare_path(out: Path) -> Path:
    """``x_color.png`` -> ``x_compare.png`` (``x_color_2.png`` -> ``x_compare_2.png``)."""
    name = out.name
    i = name.rfind(COLOR_SUFFIX)
    if i < 0:
        return out.with_name(f"{out.stem}{COMPARE_SUFFIX}.png")
    return out.with_name(name[:i] + COMPARE_SUFFIX + name[i + len(COLOR_SUFFIX) :])


def _video_suffixes() -> tuple[str, ...]:
    from ..video.io import VIDEO_SUFFIXES

    return VIDEO_SUFFIXES


def is_video_name(p: str | os.PathLike) -> bool:
    """Whether the CLI treats ``p`` as a video (by suffix: .mp4 .mov .mkv .webm .avi .m4v)."""
    return Path(p).suffix.lower() in _video_suffixes()


def iter_folder_media(folder: Path, exclude=None, on_error=None):
    """Photos and videos under ``folder``, recursively, sorted (the rules of
    :func:`~chromalab.images.iter_folder_images`: hidden names and ``exclude`` skipped, links to
    folders not followed, unlistable folders passed to ``on_error``)."""
    wanted = set(IMAGE_SUFFIXES) | set(_video_suffixes())
    yield from iter_folder_images(folder, exclude=exclude, on_error=on_error, suffixes=wanted)


def output_file(output: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> Path | None:
    """The one output file ``-o`` names, or None when it names a folder.

    ``-o`` names a file when it ends in an image suffix (``.png``, ``.jpg``, ...) or a video
    suffix (``.mp4``, ``.mkv``, ...) and is not an existing folder. Exactly one input file may
    be given then. A photo's output is a PNG, so the suffix must be ``.png``; a video's is a
    video, whose container follows the suffix. Otherwise a one-line :class:`ChromalabError`.
    """
    out = Path(output)
    suffix = out.suffix.lower()
    as_video = suffix in _video_suffixes()
    if (suffix not in IMAGE_SUFFIXES and not as_video) or out.is_dir():
        return None
    shown = display_name(out)
    video_in = len(paths) == 1 and is_video_name(paths[0]) and not Path(paths[0]).is_dir()
    if not as_video and video_in:
        raise ChromalabError(f"-o {shown}: a video's output is a video file; name it {display_name(out.stem)}.mp4 "
                             "or give a folder")
    if not as_video and suffix != ".png":
        raise ChromalabError(f"-o {shown}: outputs are PNG files; name it {display_name(out.stem)}.png "
                             "or give a folder")
    if len(paths) != 1:
        raise ChromalabError(f"-o {shown} names one output file, but {len(paths)} inputs were given; "
                             "give a folder with -o")
    if Path(paths[0]).is_dir():
        raise ChromalabError(f"-o {shown} names one output file, but {display_name(paths[0])} is a folder; "
                             "give a folder with -o")
    if as_video and not video_in:
        raise ChromalabError(f"-o {shown}: a photo's output is a PNG file; name it {display_name(out.stem)}.png "
                             "or give a folder")
    return out


def plan_jobs(paths: Sequence[str | os.PathLike], output: Path, side_by_side: bool = False,
              video_suffix: str = ".mp4") -> list[Job]:
    """Inputs -> jobs with their outputs (the layout documented in docs/colorize.md).

    * a file ``photo.jpg`` -> ``OUT/photo_color.png``; a video ``film.mkv`` ->
      ``OUT/film_color.mp4`` (``video_suffix``);
    * a folder ``photos`` -> ``OUT/photos/<same sub-folders>/<stem>_color.png`` (recursive; photos
      and videos);
    * with ``side_by_side`` also ``..._compare.png`` next to each photo's ``..._color.png``;
    * ``output`` ending in ``.png`` (a video suffix for a video) and not an existing folder, with
      one input file: that file (and ``<name>_compare.png``), see :func:`output_file`;
    * inputs that would share an output and differ in extension get it in the name
      (``photo_jpg_color.png``, ``photo_png_color.png``); any still equal get ``_2``, ``_3`` ...
      in input order (``a_color.png``, ``a_color_2.png``);
    * the output folder is never searched when it lies inside an input folder;
    * the same file reached twice is done once; a folder that cannot be listed is an error job.
    """
    jobs: list[Job] = []
    seen: set[str] = set()
    out_root = Path(output)
    single = output_file(out_root, paths)

    def add(src: Path, label: str, out: Path, video: bool) -> None:
        real = os.path.realpath(src)
        if real in seen:
            return
        seen.add(real)
        jobs.append(Job(src=src, label=label, out=out, video=video))

    def name(f: Path, video: bool) -> str:
        return f"{f.stem}{COLOR_SUFFIX}{video_suffix if video else '.png'}"

    for p in paths:
        p = Path(p)
        label = display_name(p)
        if p.is_dir():
            found = False
            problems: list[OSError] = []
            base = out_root / (Path(os.path.realpath(p)).name or "root")
            # never read our own outputs: skip where this folder's outputs go, and the whole
            # output folder when it lies inside this one
            inside = _is_within(out_root, p) and os.path.realpath(out_root) != os.path.realpath(p)
            for f in iter_folder_media(p, exclude=[base] + ([out_root] if inside else []), on_error=problems.append):
                found = True
                rel = f.relative_to(p)
                video = is_video_name(f)
                add(f, display_name(f), base / rel.parent / name(f, video), video)
            for e in problems:
                where = display_name(e.filename if e.filename is not None else p)
                jobs.append(Job(src=p, label=where, error=f"{where}: cannot list this folder ({e.strerror or e})"))
            if not found and not problems:
                jobs.append(Job(src=p, label=label, error=f"{label}: a folder with no images in it "
                                "(looked for .jpg .jpeg .png .bmp .gif .tif .tiff .webp and videos "
                                f"{' '.join(_video_suffixes())})"))
        elif os.path.lexists(p):
            video = is_video_name(p)
            add(p, label, single if single is not None else out_root / name(p, video), video)
        else:
            jobs.append(Job(src=p, label=label, error=f"{label}: no such file or folder"))

    # outputs shared by several inputs: add the extension, then a counter
    def key(j: Job) -> str:
        return os.path.normcase(str(j.out)).casefold()

    groups: dict[str, list[Job]] = {}
    for j in jobs:
        if j.out is not None:
            groups.setdefault(key(j), []).append(j)
    for g in groups.values():
        exts = [j.src.suffix.lstrip(".").lower() or "noext" for j in g]
        if len(set(exts)) > 1:  # the extension tells them apart (at least partly)
            for j, ext in zip(g, exts, strict=True):
                j.out = (j.out or out_root).with_name(f"{j.src.stem}_{ext}{COLOR_SUFFIX}{(j.out or out_root).suffix}")
    taken: dict[str, int] = {}
    for j in jobs:
        if j.out is None:
            continue
        k = key(j)
        n = taken.get(k, 0) + 1
        taken[k] = n
        if n > 1:
            j.out = j.out.with_name(f"{j.out.stem}_{n}{j.out.suffix}")
        if side_by_side and not j.video:
            j.compare = _compare_path(j.out)
    # never write over an input
    inputs = {os.path.realpath(j.src) for j in jobs}
    for j in jobs:
        hit = next((o for o in j.outputs if os.path.realpath(o) in inputs), None)
        if hit is not None:
            j.error = (f"{j.label}: its output {display_name(hit)} is an input file; refusing to write over it "
                       "(use another -o)")
            j.out = j.compare = None
    return jobs


def _is_within(child: Path, parent: Path) -> bool:
    c, p = os.path.realpath(child), os.path.realpath(parent)
    return c == p or c.startswith(p.rstrip(os.sep) + os.sep)
