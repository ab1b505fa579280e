"""The `chromalab` command: data, train, evaluate, compare, colorize, export, serve, models.

Errors meant for people print as one line (``error: <file>: <what is wrong>``) and exit 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from .errors import ChromalabError


def _plain_help(params: list) -> list:
    """Help without type placeholders: ``--overwrite``, not ``--overwrite <bool>``; arguments by
    their metavar in capitals (``PATH``, ``MODEL``), without ``<list[str]>`` next to them."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
        elif p.param_type_name == "argument":
            p.metavar = p.metavar or p.name.upper()
            p.display_type_rich = lambda ctx: None
    return params


class _Command(TyperCommand):
    """A command whose help shows flags bare and arguments as ``PATH...`` (not ``{paths}...``).
    Every command gets it (see the end of this file)."""

    def get_params(self, ctx):
        return _plain_help(super().get_params(ctx))

    def collect_usage_pieces(self, ctx):
        return [p[1:].replace("}", "", 1) if p.startswith("{") else p for p in super().collect_usage_pieces(ctx)]


class _Group(TyperGroup):
    def get_params(self, ctx):
        return _plain_help(super().get_params(ctx))


app = typer.Typer(
    help="Colorize grayscale images by regression in CIELAB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_Group,
)
data_app = typer.Typer(help="Get and prepare Tiny ImageNet.", no_args_is_help=True, cls=_Group)
export_app = typer.Typer(help="Export a model (ONNX).", no_args_is_help=True, cls=_Group)
app.add_typer(data_app, name="data")
app.add_typer(export_app, name="export")

console = Console(stderr=True)
out = Console() if sys.stdout.isatty() else Console(width=160)

DataOpt = Annotated[
    str | None,
    typer.Option("--data", help="Tiny ImageNet zip or folder (official layout). Default: $CHROMALAB_DATA, then the download location."),
]


def _print_version(value: bool) -> None:
    """``--version``: the version and the SHA-256 of the bundled default model's weights, one line, so that
    a batch job's log says what made its outputs (the same hash as each output's record, model_sha256)."""
    if not value:
        return
    from .inference.provenance import model_fingerprint
    from .version import __version__

    fp = model_fingerprint("default")
    typer.echo(f"chromalab {__version__}; model default sha256 {fp or 'missing (no bundled weights)'}")
    raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and the bundled default model's SHA-256, then exit.")] = False,
) -> None:
    if debug:
        os.environ["CHROMALAB_DEBUG"] = "1"


# ---- data ---------------------------------------------------------------------------------------
@data_app.command("download")
def data_download(
    dir: Annotated[Path | None, typer.Option("--dir", help="Where to put the zip (default: user cache dir).")] = None,
    url: Annotated[str, typer.Option(hidden=True)] = "",
    md5: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    """Download the official tiny-imagenet-200.zip (resumes a partial file, checks md5)."""
    from .data import download as dl

    path = dl.download(dir, url=url or dl.OFFICIAL_URL, md5=md5 or dl.OFFICIAL_MD5)
    out.print(f"downloaded {path} (md5 ok). Use it with --data {path} or CHROMALAB_DATA={path}")


@data_app.command("prepare")
def data_prepare(
    data: DataOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the cache is current.")] = False,
    workers: Annotated[int | None, typer.Option(help="Decoder processes (default: all cores).")] = None,
) -> None:
    """Decode every image once, convert to Lab and cache each split at 64x64 and 28x28."""
    from .data.cache import prepare

    prep, rebuilt = prepare(data, force=force, workers=workers)
    _print_info(prep, "prepared" if rebuilt else "cache is current, reused")


@data_app.command("info")
def data_info(data: DataOpt = None) -> None:
    """Counts per split, excluded images, cache location and size."""
    from .data.cache import find_prepared

    prep = find_prepared(data)
    if prep is None:
        raise ChromalabError("no current cache for this source; run `chromalab data prepare` first")
    _print_info(prep, "cache")


def _print_info(prep, what: str) -> None:
    c = prep.counts
    seen = c["seen"]
    ex = c["excluded"]
    out.print(f"{what}: {prep.source['path']}")
    for f in seen:
        e = ex[f]
        out.print(
            f"  {f} images seen: {seen[f]:,}; excluded {e['total']:,} "
            f"(grayscale mode {e['grayscale_mode']:,}, near-gray {e['near_gray']:,}, corrupt {e['corrupt']:,})"
        )
    out.print(f"  splits: train {c['train']:,} | val {c['val']:,} | test {c['test']:,}")
    for bad in prep.manifest.get("corrupt", [])[:20]:
        out.print(f"  skipped corrupt image: {bad['name']} ({bad['error']})")
    out.print(f"  cache: {prep.dir} ({prep.disk_bytes() / 1e9:.2f} GB)")
    ips = prep.manifest.get("images_per_second")
    if ips:
        out.print(f"  prepared in {prep.manifest['prepare_seconds']:.1f} s ({ips:,.0f} img/s)")


# ---- models / evaluate ---------------------------------------------------------------------------
@app.command("models")
def models(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the models available by name."""
    from .registry import REGISTRY, available_bundled

    bundled = set(available_bundled())
    rows = []
    for name, e in REGISTRY.items():
        if e.group == "bundled" and name not in bundled:
            continue
        rows.append({"name": name, "summary": e.summary, "needs_data": e.needs_data, "group": e.group})
    if json_out:
        out.print_json(json.dumps(rows))
        return
    for r in rows:
        note = " (needs --data)" if r["needs_data"] else ""
        out.print(f"{r['name']:<12} {r['summary']}{note}")
    out.print("Also: any run folder (runs/<name>) or .safetensors weights file.")


@app.command("evaluate")
def evaluate(
    model: Annotated[str, typer.Argument(help="Registry name, run folder or .safetensors file.")],
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="train | val | test, or joined: val,test (the whole official val split).")] = "test",
    images: Annotated[Path | None, typer.Option("--images", help="Evaluate on any folder or zip of colour images instead.")] = None,
    photos: Annotated[Path | None, typer.Option(
        "--photos", help="Real photos (folder or zip): each scaled to --long-side, turned gray with its own L and "
        "colorized as `chromalab colorize` does; reports the gain over gray, the share that beat gray, the floods "
        "(more than 3 dB below gray), cool recall and dCF.")] = None,
    long_side: Annotated[int, typer.Option("--long-side", metavar="PX", help="With --photos: the long side "
                                           "photos are scaled to.")] = 512,
    work_size: Annotated[int | None, typer.Option("--work-size", metavar="PX", help="With --photos: the long "
                                                  "side the model sees (default: the model's own).")] = None,
    per_photo: Annotated[bool, typer.Option("--per-photo", help="With --photos: also list every photo.")] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N images of the split.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per batch.")] = None,
    vividness: Annotated[float | None, typer.Option(
        "--vividness", metavar="V", help="The colour models: 0 (most accurate) to 1 (most colourful); "
        "default: the model's own.")] = None,
    hints: Annotated[int | None, typer.Option(
        "--hints", metavar="N", help="Hint models: give every image N colour points simulated from its "
        "true colours (fixed seed), as a user would.")] = None,
    temperature: Annotated[float | None, typer.Option(
        "--temperature", hidden=True, help="The vivid model: T of the annealed-mean decoding (default: the "
        "model's own: 0.2 for the bundled vivid, a run's saved T for a run folder).")] = None,
) -> None:
    """Evaluate a model: PSNR, SSIM, MSE, L1, R², colourfulness, AuC, cool recall; or, with --photos, what a
    user sees on real photos."""
    from .evaluate import evaluate_images, evaluate_split, format_table
    from .predictors.nets import set_temperature, set_vividness
    from .registry import load_predictor

    if photos is not None:
        _evaluate_photos(model, photos, long_side, work_size, vividness, hints, json_path, per_photo)
        return
    pred = set_vividness(set_temperature(load_predictor(model, data=data), temperature), vividness)
    if hints is not None:
        from .predictors.hinted import SimulatedHints

        pred = SimulatedHints(pred, hints)
    if images is not None:
        res = evaluate_images(pred, images, batch_size=batch_size)
        for line in res.get("unreadable_files", [])[:10]:
            console.print(f"skipped: {line}", markup=False, highlight=False)
        source = str(images)
    else:
        from .data.cache import load_prepared

        prep = load_prepared(data)
        sp = prep.split(split, limit=limit)
        res = evaluate_split(pred, sp, batch_size=batch_size)
        source = prep.source["path"]
    res = {"name": pred.name if hints else model, "model": pred.describe(), "source": source, **res}
    title = f"{res['name']} on {res['split']} ({res['count']:,} images, {res['excluded']:,} excluded)"
    out.print(format_table([res], title=title))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
        out.print(f"wrote {json_path}")


def _evaluate_photos(model: str, photos: Path, long_side: int, work_size: int | None, vividness: float | None,
                     hints: int | None, json_path: Path | None, per_photo: bool) -> None:
    from .inference.colorizer import Colorizer
    from .photos import FLOOD_DB, load_photos
    from .photos import evaluate_photos as run

    col = Colorizer(model, work_size=work_size)
    if vividness is not None:
        col.check_vividness(vividness)
    if hints and not col.takes_hints:
        raise ChromalabError(f"{model}: --hints needs a model that takes colour points (guided)")
    items, excluded, failed = load_photos(photos, long_side)
    for line in failed[:10]:
        console.print(f"skipped: {line}", markup=False, highlight=False)
    res = run(col, items, vividness=vividness, hints=hints)
    res = {"name": model, "source": str(photos), "long_side": long_side, "work_size": col.work_size,
           "vividness": col.vividness if vividness is None else vividness, "hints": hints or 0,
           "excluded": excluded, "unreadable": len(failed), **res}
    from rich.table import Table

    t = Table(title=f"{model} on {res['count']} photos of {photos.name} at {long_side} px "
                    f"(work size {col.work_size}; {excluded} grayscale excluded)")
    for h in ("gray PSNR", "PSNR", "gain dB", "beat gray", f"floods (< -{FLOOD_DB:g} dB)", "worst dB",
              "SSIM", "cool recall", "ΔCF"):
        t.add_column(h, justify="right")
    t.add_row(f"{res['psnr_gray']:.2f}", f"{res['psnr']:.2f}", f"{res['gain']:+.2f}", f"{res['beat_gray']:.0%}",
              f"{res['floods']} ({res['flood_share']:.0%})", f"{res['worst_gain']:+.1f}", f"{res['ssim']:.4f}",
              f"{res['cool_recall']:.3f}", f"{res['delta_cf']:.2f}")
    out.print(t)
    if per_photo:
        for r in sorted(res["per_photo"], key=lambda r: r["gain"]):
            out.print(f"{r['gain']:+7.2f} dB  {r['psnr']:6.2f} (gray {r['psnr_gray']:6.2f})  {r['name']}",
                      markup=False, highlight=False)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
        out.print(f"wrote {json_path}")


# ---- train ------------------------------------------------------------------------------------------
@app.command("train", context_settings={"allow_extra_args": False})
def train(
    model: Annotated[str, typer.Argument(help="linear | svr | cnn | unet | pix2pix | vivid | colornet")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write.")],
    loss: Annotated[str | None, typer.Option(help="cnn / unet: mse | l1 | hybrid | ssim-hybrid (pix2pix and vivid have their own).")] = None,
    preset: Annotated[str, typer.Option(help="Classical: seed | quick. Nets: quick | full. Or a .yaml file of the same "
                                        "shape, such as a run's config.yaml (re-runs that run).")] = "quick",
    data: DataOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")] = False,
    accelerator: Annotated[str | None, typer.Option(help="Lightning accelerator (cpu, gpu, auto).")] = None,
    devices: Annotated[str | None, typer.Option(help="Lightning devices (e.g. 1, 4, auto).")] = None,
    strategy: Annotated[str | None, typer.Option(help="Lightning strategy (e.g. ddp).")] = None,
    precision: Annotated[str | None, typer.Option(help="Lightning precision (e.g. 32, bf16-mixed).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: --set epochs=3")] = None,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", help="Nets: warm-start from this weights file (.safetensors, e.g. a run's best.safetensors); "
        "tensors are copied where names and shapes allow.")] = None,
) -> None:
    """Train one model into a run folder (config, metrics, figures, weights, test metrics)."""
    overrides = _parse_sets(set_ or [])
    if init_from is not None:
        if not init_from.expanduser().is_file():
            raise ChromalabError(f"{init_from}: --init-from weights file not found")
        overrides["init_from"] = str(init_from.expanduser().absolute())
    if model in ("linear", "svr"):
        from .classical import train_classical

        train_classical(model, preset=preset, data=data, out=out_dir, overrides=overrides)
    elif model in ("cnn", "unet", "pix2pix", "vivid", "colornet"):
        from .training.run import train_net

        trainer = {k: v for k, v in dict(accelerator=accelerator, devices=devices, strategy=strategy,
                                          precision=precision).items() if v is not None}
        train_net(model, loss=loss, preset=preset, data=data, out=out_dir, resume=resume,
                  trainer_overrides=trainer, overrides=overrides)
    else:
        raise ChromalabError(f"unknown model family {model!r} (choose linear, svr, cnn, unet, pix2pix, vivid, colornet)")


# ---- compare ----------------------------------------------------------------------------------------
@app.command("compare")
def compare(
    preset: Annotated[str, typer.Option(help="quick (smoke, <= 10 min) | full (the study's setups).")] = "quick",
    data: DataOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (runs, table, figures).")] = Path("results"),
    retrain: Annotated[bool, typer.Option("--retrain", help="Retrain finished runs too.")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="Only these configurations (repeatable).")] = None,
    publish: Annotated[Path | None, typer.Option(
        "--publish", help="Also write RESULTS.md, results.json and figures/ into this folder (e.g. docs).")] = None,
    vividness: Annotated[float | None, typer.Option(
        "--vividness", metavar="V", help="Evaluate the colour models among the rows (those with a vividness: the "
        "colornet runs) at this vividness, 0 (most accurate) to 1 (most colourful). Default: each model's own.")] = None,
) -> None:
    """Train (or reuse) every configuration, evaluate all on the same test images, write the report."""
    from .compare import run_compare
    from .evaluate import format_table

    res = run_compare(preset=preset, data=data, out=out_dir, retrain=retrain, only=only, log=out.print,
                      publish=publish, vividness=vividness)
    title = f"compare --preset {preset}" + (f" --vividness {vividness:g}" if vividness is not None else "")
    out.print(format_table(res["rows"], title=title))


# ---- colorize / export / serve ------------------------------------------------------------------
@app.command("colorize")
def colorize(
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH", show_default=False,
        help="Photos, videos (.mp4 .mov .mkv .webm .avi .m4v) and/or folders of both (searched "
        "recursively). A file that cannot be read is one error line; the others are still done.")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="OUT", help="Output folder (default: ./colorized). With one input file, "
        "OUT ending in .png (a photo) or a video suffix (a video: .mp4 .mkv .webm ...) is the output "
        "file itself.")] = None,
    model: Annotated[str, typer.Option(
        "--model", metavar="NAME", help="Registry name (see `chromalab models`), run folder or .safetensors "
        "file. An unknown one is an error before anything is done.")] = "default",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Make every output again, even up-to-date ones.")] = False,
    side_by_side: Annotated[bool, typer.Option(
        "--side-by-side", help="Also write NAME_compare.png (gray | colorized) next to NAME_color.png. "
        "Photos only: videos get NAME_color.mp4 alone (a note says so).")] = False,
    max_pixels: Annotated[int | None, typer.Option(
        "--max-pixels", metavar="N", help="Refuse larger images (default 50,000,000).")] = None,
    batch_size: Annotated[int, typer.Option(
        metavar="N", help="Images per forward pass (--engine ray: also per actor call).")] = 16,
    work_size: Annotated[int | None, typer.Option(
        "--work-size", metavar="PX", help="Long side of the L the net sees, 1 to 512 (default: its training "
        "size, 64). Larger sizes give a little more colour and cost memory.")] = None,
    backend: Annotated[str, typer.Option("--backend", metavar="NAME", help="auto | onnx | torch | numpy.")] = "auto",
    vividness: Annotated[float | None, typer.Option(
        "--vividness", metavar="V", help="0 (most accurate) to 1 (most colourful); the colour models "
        "(default, guided). Default: the model's own, chosen on validation images.")] = None,
    hint: Annotated[list[str] | None, typer.Option(
        "--hint", metavar="X,Y,COLOR", help="A colour point (repeatable): X, Y in the input's pixels, COLOR "
        "#rrggbb or a CSS colour name, e.g. --hint 120,80,#3070c0. Only its chroma is used; the photo keeps "
        "its lightness. A video gets the same points on every frame. Models that take hints: guided, "
        "default.")] = None,
    hints_file: Annotated[Path | None, typer.Option(
        "--hints", metavar="FILE", help="Colour points from a JSON file: a list of {\"x\", \"y\", \"color\"} "
        "(what the web page exports).")] = None,
    temperature: Annotated[float | None, typer.Option(
        "--temperature", metavar="T", hidden=True, help="The vivid model: T of the annealed mean; lower is more "
        "colourful (default: the model's own: 0.2 for the bundled vivid, a run's saved T for a run folder).")] = None,
    temporal: Annotated[float | None, typer.Option(
        "--temporal", metavar="S", help="Videos: 0 to 1, how strongly colours are held steady over time "
        "along the motion (0: each frame alone). Default 0.9.")] = None,
    codec: Annotated[str | None, typer.Option(
        "--codec", metavar="NAME", help="Videos: h264 (default), hevc, vp9, vp8, av1, mpeg4, ffv1 or an FFmpeg "
        "encoder name.")] = None,
    crf: Annotated[int | None, typer.Option(
        "--crf", metavar="N", help="Videos: quality, lower is better (default: h264 18, hevc 22, vp9 31, "
        "vp8 10, av1 30).")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", metavar="NAME", help="local (this process) or ray: the photos on Ray Data actors, the same "
        "outputs, a manifest.csv beside them; films stay local. Needs pip install \"chromalab\\[ray]\"; "
        "see docs/scale.md.")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", metavar="ADDR", help="--engine ray: join this running Ray cluster (auto, HOST:PORT or "
        "ray://HOST:10001); default: a local Ray with this machine's CPUs.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", metavar="N", help="--engine ray: actors, each with one CPU and the model loaded once "
        "(default: one per CPU of the cluster).")] = None,
) -> None:
    """Colorize photos of any size, and videos: files and folders, progress bar, one-line summary; exit 1 if any failed.

    photo.jpg -> OUT/photo_color.png; film.mkv -> OUT/film_color.mp4 (H.264, audio copied; a --codec
    MP4 cannot hold: .webm or .mkv); a folder DIR -> OUT/DIR/... (sub-folders mirrored).

    Each output records the model and settings that made it (a PNG text chunk named chromalab;
    a video's comment tag, with --temporal, --codec and --crf too). An existing output is
    skipped only when its record matches this run's model and settings; otherwise (another
    model, --work-size, --vividness, other hints, another --temporal, or no record) it is made
    again. --overwrite makes every output again. Inputs are never written to; outputs are
    written under a temporary name and renamed, so Ctrl-C leaves no partial file.
    """
    from .batch import colorize_cli
    from .hints import load_hints_file, parse_hint_arg

    points = [parse_hint_arg(h) for h in hint or []]
    if hints_file is not None:
        points += load_hints_file(hints_file)
    code = colorize_cli(paths, output=output, model=model, overwrite=overwrite, side_by_side=side_by_side,
                        max_pixels=max_pixels, batch_size=batch_size, work_size=work_size, backend=backend,
                        temperature=temperature, vividness=vividness, hints=points, temporal=temporal,
                        codec=codec, crf=crf, engine=engine, address=address, workers=workers)
    raise typer.Exit(code)


@export_app.command("onnx")
def export_onnx(
    model: Annotated[str, typer.Argument(help="Registry name, run folder or .safetensors file.")] = "default",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The .onnx file to write.")] = None,
) -> None:
    """Export a net to ONNX (used automatically by inference when onnxruntime is installed)."""
    from .inference import export_onnx_cli

    export_onnx_cli(model, output)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    model: Annotated[str, typer.Option("--model", help="Default model for the page and the API.")] = "default",
    workers: Annotated[int, typer.Option(help="Inference worker threads.")] = 2,
    queue: Annotated[int, typer.Option(help="Requests allowed to wait; beyond that the API answers 503.")] = 16,
) -> None:
    """Serve the web page and the JSON API (FastAPI + uvicorn)."""
    from .web.app import serve as _serve

    _serve(host=host, port=port, model=model, workers=workers, queue=queue)


def _parse_sets(items: list[str]) -> dict:
    import yaml

    res = {}
    for it in items:
        if "=" not in it:
            raise ChromalabError(f"--set {it!r}: expected key=value")
        k, v = it.split("=", 1)
        res[k.strip()] = yaml.safe_load(v)
    return res


for _typer_app in (app, data_app, export_app):  # every command's help: see _Command
    for _info in _typer_app.registered_commands:
        if _info.cls in (None, TyperCommand):
            _info.cls = _Command


def main() -> None:
    debug = "--debug" in sys.argv or os.environ.get("CHROMALAB_DEBUG") == "1"
    try:
        app()
    except ChromalabError as e:
        if debug:
            raise
        console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("interrupted", markup=False)
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        console.print(f"error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)",
                      markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
