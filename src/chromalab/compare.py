"""`chromalab compare`: train (or reuse) every configuration, evaluate all on the same test
images with the same metric code, and write the table and the figures.

Run folders live in ``OUT/runs/<name>``; a finished run (it has ``test.json``) is reused unless
``retrain``; an unfinished net run resumes from its last checkpoint. Each evaluated row is kept
in ``OUT/rows/<name>.json`` so an interrupted compare continues where it stopped.

A net configuration's settings, later wins: the training preset (``net_preset``) < the compare
preset's ``net_overrides`` (every net) < its ``config_overrides[<name>]`` (one row) < the
configuration's own ``overrides`` (what makes the row what it is, e.g. the ablation without the
class head). The colour models (those with a vividness: colornet runs, the bundled default) are
evaluated at ``vividness`` when one is given, else at their own default; each row records it.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare_config import load_compare_preset  # validated (compare_config.CompareSettings)
from .errors import ChromalabError
from .results import ROW_KEYS
from .version import git_commit


@dataclass(frozen=True)
class Config:
    name: str
    family: str  # reference | classical | net
    model: str  # registry name (reference) or training family (linear, svr, cnn, unet, ...)
    loss: str | None = None
    # net config overrides that define this row, applied last (after the compare preset's)
    overrides: dict[str, Any] = field(default_factory=dict)


CONFIGS: list[Config] = [
    Config("gray", "reference", "gray"),
    Config("mean-ab", "reference", "mean-ab"),
    Config("pca-ceiling", "reference", "pca-ceiling"),
    Config("linear", "classical", "linear"),
    Config("svr", "classical", "svr"),
    Config("cnn-mse", "net", "cnn", "mse"),
    Config("cnn-l1", "net", "cnn", "l1"),
    Config("cnn-hybrid", "net", "cnn", "hybrid"),
    Config("unet-mse", "net", "unet", "mse"),
    Config("unet-l1", "net", "unet", "l1"),
    Config("unet-hybrid", "net", "unet", "hybrid"),
    Config("unet-ssim-hybrid", "net", "unet", "ssim-hybrid"),
    Config("pix2pix", "net", "pix2pix"),  # U-Net generator + PatchGAN, GAN + 100·L1 (issue 8)
    Config("vivid", "net", "vivid"),  # classification over ab bins, annealed-mean decoding (issue 8)
    # issue 12: U-Net + semantic branch (200 classes) + colour classes and regression, vividness 0..1
    Config("colornet", "net", "colornet"),
    # the ablation: the same net, preset and budget with the class head's loss switched off
    Config("colornet-noclass", "net", "colornet", overrides={"class_weight": 0}),
]

# The study's own numbers, quoted (not measured here). Only the values the project's brief
# quotes are listed; the pairing of the two R² values follows the order the brief gives them.
STUDY_ROWS: list[dict] = [
    {"name": "study: linear regression (quoted)", "r2": -0.037, "quoted": True},
    {"name": "study: SVR (quoted)", "r2": -0.051, "quoted": True},
    {"name": "study: best U-Net (quoted)", "psnr": 21.59, "quoted": True},
]



@dataclass
class ComparePlan:
    preset: str
    data: str | None
    out: Path
    retrain: bool = False
    only: list[str] | None = None
    settings: dict = field(default_factory=dict)
    vividness: float | None = None  # the colour models' vividness (None: each model's own default)


def net_overrides(cfg: Config, settings: dict) -> dict:
    """The ``--set`` overrides of a net configuration under a compare preset: the preset's
    ``net_overrides`` < its ``config_overrides[<name>]`` < the configuration's own ``overrides``."""
    per = settings.get("config_overrides") or {}
    return {**(settings.get("net_overrides") or {}), **(per.get(cfg.name) or {}), **cfg.overrides}


def _run_finished(run: Path) -> bool:
    return (run / "test.json").exists() and (run / "run.json").exists()


def _train(cfg: Config, plan: ComparePlan, run: Path) -> None:
    s = plan.settings
    if cfg.family == "classical":
        from .classical import train_classical

        train_classical(cfg.model, preset=s["classical_preset"], data=plan.data, out=run,
                        overrides=dict(s.get("classical_overrides") or {}))
    elif cfg.family == "net":
        from .training.run import train_net

        resume = (run / "last.ckpt").exists() and not plan.retrain
        train_net(cfg.model, loss=cfg.loss, preset=s["net_preset"], data=plan.data, out=run, resume=resume,
                  trainer_overrides={}, overrides=net_overrides(cfg, s))


def _with_vividness(pred, vividness: float | None):
    """A colour model (one with a vividness) at ``vividness``; other models unchanged."""
    from .predictors.nets import ColorNetPredictor, set_vividness

    return set_vividness(pred, vividness) if isinstance(pred, ColorNetPredictor) else pred


def run_compare(preset: str = "quick", data: str | None = None, out: str | Path = "results",
                retrain: bool = False, only: list[str] | None = None, log=print,
                publish: str | Path | None = None, vividness: float | None = None) -> dict:
    """Train or reuse, evaluate and report every configuration (or ``only`` these); ``vividness``:
    evaluate the colour models at this vividness (0 most accurate .. 1 most colourful)."""
    from .data.cache import load_prepared
    from .evaluate import evaluate_split
    from .predictors.nets import ColorNetPredictor
    from .registry import load_predictor

    t_start = time.perf_counter()
    if vividness is not None:
        from .predictors.nets import check_vividness

        vividness = check_vividness(vividness, "compare --vividness")  # before any training
    plan = ComparePlan(preset, data, Path(out), retrain, only, load_compare_preset(preset), vividness)
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "runs").mkdir(exist_ok=True)
    (plan.out / "rows").mkdir(exist_ok=True)
    prep = load_prepared(data)
    test = prep.split("test", limit=plan.settings.get("test_limit"))
    configs = [c for c in CONFIGS if not only or c.name in only]
    if only:
        unknown = set(only) - {c.name for c in CONFIGS}
        if unknown:
            raise ChromalabError(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    unknown = set(plan.settings.get("config_overrides") or {}) - {c.name for c in CONFIGS if c.family == "net"}
    if unknown:
        raise ChromalabError(f"compare preset {preset!r}: config_overrides for unknown net configuration(s): "
                             f"{', '.join(sorted(unknown))}")

    rows = []
    predictors = {}
    reused: list[str] = []
    loaded: dict = {}  # predictors already built for evaluation: the figures reuse them
    for i, cfg in enumerate(configs, 1):
        run = plan.out / "runs" / cfg.name
        row_file = plan.out / "rows" / f"{cfg.name}.json"
        log(f"[{i}/{len(configs)}] {cfg.name}")
        train_seconds = None
        if cfg.family != "reference":
            if plan.retrain and run.exists():
                shutil.rmtree(run)
                row_file.unlink(missing_ok=True)
            if not _run_finished(run):
                row_file.unlink(missing_ok=True)
                _train(cfg, plan, run)
            else:
                reused.append(cfg.name)
                log(f"    reusing finished run {run}")
            meta = json.loads((run / "run.json").read_text())
            train_seconds = meta.get("train_seconds")
            train_images = meta.get("train_images")  # images seen in training (nets; both ranks under DDP)
            spec = str(run)
        else:
            spec = cfg.model
            train_images = None
        row = json.loads(row_file.read_text()) if row_file.exists() and not plan.retrain else None
        if row is not None and row.get("vividness") is not None and row.get("vividness_option") != plan.vividness:
            # a colour model evaluated at another vividness than asked for now: evaluate it again
            log(f"    evaluated at vividness {row['vividness']}; evaluating again")
            row = None
        if row is not None:
            log(f"    reusing evaluated row ({row_file})")
        else:
            t_build = time.perf_counter()
            pred = _with_vividness(load_predictor(spec, data=data), plan.vividness)
            loaded[cfg.name] = pred
            if cfg.family == "reference":
                # references are not trained; their "train s" is the time to build them from the
                # training data (0 for gray; the mean ab; the PCA fit of pca-ceiling, or its cache)
                train_seconds = round(time.perf_counter() - t_build, 3)
            m = evaluate_split(pred, test)
            vivid = pred.vividness if isinstance(pred, ColorNetPredictor) else None
            row = {"name": cfg.name, "family": cfg.family, "model": cfg.model, "loss": cfg.loss,
                   "run": str(run) if cfg.family != "reference" else None,
                   **{k: m.get(k) for k in ROW_KEYS}, "train_seconds": train_seconds, "train_images": train_images,
                   "count": m["count"], "excluded": m["excluded"], "cf_true": m["cf_true"],
                   # colour models: the vividness evaluated at, and the --vividness asked for (None: the model's own)
                   "vividness": None if vivid is None else round(float(vivid), 4),
                   "vividness_option": plan.vividness if vivid is not None else None}
            row_file.write_text(json.dumps(row, indent=2))
        rows.append(row)
        if cfg.name not in loaded and row.get("vividness") is not None:
            # the example figure shows a reused colour row at the vividness of its row
            loaded[cfg.name] = _with_vividness(load_predictor(spec, data=data, progress=False), row["vividness"])
        predictors[cfg.name] = loaded.get(cfg.name, spec)

    meta = {
        "command": " ".join(["chromalab", *sys.argv[1:]]) if Path(sys.argv[0]).name == "chromalab"
        else f"chromalab compare --preset {preset}",
        "preset": preset,
        "vividness": vividness,  # the colour models' vividness (None: each model's own default)
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "data_source": prep.source,
        "split_sizes": {"train": prep.counts["train"], "val": prep.counts["val"], "test_total": prep.counts["test"],
                        "test_evaluated": len(test)},
        "excluded": prep.counts["excluded_total"],
        "excluded_in_test_range": test.excluded,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count()},
        "wall_seconds": None,
        # runs that were already finished in OUT/runs when this command started (trained by an
        # earlier compare or `chromalab train` with the same preset): their training is not in wall_seconds
        "reused_runs": reused,
        "train_seconds_total": round(sum(r.get("train_seconds") or 0.0 for r in rows), 1),
        "study_rows": STUDY_ROWS,
    }
    from .report import make_figures, write_tables

    results = {"rows": rows, "meta": meta}
    figures = make_figures(results, plan.out, test=test, predictors=predictors, data=data)
    meta["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    write_tables(results, plan.out, figures)
    log(f"wrote {plan.out / 'results.md'}, results.csv, results.json, index.html")
    if publish is not None:
        from .report import publish as _publish

        written = _publish(results, plan.out, Path(publish), figures)
        log(f"published {', '.join(str(w) for w in written)}")
    return results


