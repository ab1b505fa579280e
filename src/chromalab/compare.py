"""`chromalab compare`: train (or reuse) every configuration, evaluate all on the same test
images with the same metric code, and write the table and the figures.

Run folders live in ``OUT/runs/<name>``; a finished run (it has ``test.json``) is reused unless
``retrain``; an unfinished net run resumes from its last checkpoint. Each evaluated row is kept
in ``OUT/rows/<name>.json`` so an interrupted compare continues where it stopped.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ChromalabError


@dataclass(frozen=True)
class Config:
    name: str
    family: str  # reference | classical | net
    model: str  # registry name (reference) or training family (linear, svr, cnn, unet, ...)
    loss: str | None = None


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
]

# The study's own numbers, quoted (not measured here). Only the values the project's brief
# quotes are listed; the pairing of the two R² values follows the order the brief gives them.
STUDY_ROWS: list[dict] = [
    {"name": "study: linear regression (quoted)", "r2": -0.037, "quoted": True},
    {"name": "study: SVR (quoted)", "r2": -0.051, "quoted": True},
    {"name": "study: best U-Net (quoted)", "psnr": 21.59, "quoted": True},
]

ROW_KEYS = ("psnr", "ssim", "mse", "l1", "mse_rgb", "l1_rgb", "r2", "cf", "delta_cf",
            "train_seconds", "images_per_second")


@dataclass
class ComparePlan:
    preset: str
    data: str | None
    out: Path
    retrain: bool = False
    only: list[str] | None = None
    settings: dict = field(default_factory=dict)


def load_compare_preset(preset: str) -> dict:
    presets = yaml.safe_load((Path(__file__).parent / "configs" / "compare.yaml").read_text())
    if preset not in presets:
        raise ChromalabError(f"unknown compare preset {preset!r} (choose {', '.join(presets)})")
    return presets[preset]


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
                  trainer_overrides={}, overrides=dict(s.get("net_overrides") or {}))


def run_compare(preset: str = "quick", data: str | None = None, out: str | Path = "results",
                retrain: bool = False, only: list[str] | None = None, log=print,
                publish: str | Path | None = None) -> dict:
    from .data.cache import load_prepared
    from .evaluate import evaluate_split
    from .registry import load_predictor

    t_start = time.perf_counter()
    plan = ComparePlan(preset, data, Path(out), retrain, only, load_compare_preset(preset))
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
            spec = str(run)
        else:
            spec = cfg.model
        if row_file.exists() and not plan.retrain:
            row = json.loads(row_file.read_text())
            log(f"    reusing evaluated row ({row_file})")
        else:
            t_build = time.perf_counter()
            pred = load_predictor(spec, data=data)
            loaded[cfg.name] = pred
            if cfg.family == "reference":
                # references are not trained; their "train s" is the time to build them from the
                # training data (0 for gray; the mean ab; the PCA fit of pca-ceiling, or its cache)
                train_seconds = round(time.perf_counter() - t_build, 3)
            m = evaluate_split(pred, test)
            row = {"name": cfg.name, "family": cfg.family, "model": cfg.model, "loss": cfg.loss,
                   "run": str(run) if cfg.family != "reference" else None,
                   **{k: m.get(k) for k in ROW_KEYS}, "train_seconds": train_seconds,
                   "count": m["count"], "excluded": m["excluded"], "cf_true": m["cf_true"]}
            row_file.write_text(json.dumps(row, indent=2))
        rows.append(row)
        predictors[cfg.name] = loaded.get(cfg.name, spec)

    meta = {
        "command": " ".join(["chromalab", *sys.argv[1:]]) if Path(sys.argv[0]).name == "chromalab"
        else f"chromalab compare --preset {preset}",
        "preset": preset,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git_commit(),
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


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
