"""What the classical trainers share after fitting: evaluation on val / test (and the PCA ceiling),
run.json, the summary table, the figure rows, and the timed log lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..results import METRIC_KEYS


class Log:
    """Log lines to stderr, each with the seconds since the start and the model's name."""

    def __init__(self, model: str):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.model = model
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        self.console.print(f"[{time.perf_counter() - self.t0:6.1f}s] {self.model}: {msg}", markup=False,
                           highlight=False)


def evaluate(pred, prep, cfg, out: Path, ceiling=None, log=print) -> dict:
    """val.json, test.json (and ceiling_test.json); returns the summaries for run.json."""
    from ..evaluate import evaluate_split

    res = {}
    for split, limit in (("val", cfg.val_limit), ("test", cfg.test_limit)):
        sp = prep.split(split, limit=limit)
        if len(sp) == 0:
            log(f"{split} split is empty; skipped")
            continue
        m = evaluate_split(pred, sp)
        m = {"name": out.name, "model": pred.describe(), "source": prep.source["path"], **m}
        (out / f"{split}.json").write_text(json.dumps(m, indent=2))
        res[split] = m
        if ceiling is not None and split == "test":
            c = evaluate_split(ceiling, sp)
            c = {"name": f"{out.name} PCA ceiling", "model": ceiling.describe(), "source": prep.source["path"], **c}
            (out / "ceiling_test.json").write_text(json.dumps(c, indent=2))
            res["ceiling_test"] = c
    return res


def summary(m: dict) -> dict:
    keys = (*METRIC_KEYS, "count", "excluded", "size")  # the colour metrics too, as every other table
    return {k: m[k] for k in keys if k in m}


def print_table(out: Path, res: dict) -> None:
    from rich.console import Console

    from ..evaluate import format_table

    rows = []
    for key in ("val", "test", "ceiling_test"):
        if key in res:
            r = dict(res[key])
            r["name"] = {"val": f"{out.name} (val)", "test": f"{out.name} (test)",
                         "ceiling_test": "its PCA ceiling (test)"}[key]
            rows.append(r)
    if rows:
        c = Console()
        if not c.is_terminal:
            c = Console(width=140)  # a log file: do not squeeze the table to 80 columns
        c.print(format_table(rows, title=f"run {out}"))


def figure_rows(prep, n: int, size: int):
    """A few val images for the PCA figure: L at 64, ab at ``size``."""
    sp64 = prep.split("val", limit=n)
    L, _, _ = sp64.arrays()
    ab = prep.split("val", size, limit=n).arrays()[1]
    return L, ab


def finish(out: Path, cfg, prep, pred, ceiling, t_start: float, train_seconds: float, extra: dict, log) -> dict:
    pred.save(out)
    res = evaluate(pred, prep, cfg, out, ceiling if cfg.eval_ceiling else None, log)
    run = {
        "kind": cfg.model,
        "name": out.name,
        "preset": cfg.preset,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": prep.source["path"],
        "train_seconds": round(train_seconds, 2),
        **extra,
        "val": summary(res["val"]) if "val" in res else None,
        "test": summary(res["test"]) if "test" in res else None,
        "ceiling_test": summary(res["ceiling_test"]) if "ceiling_test" in res else None,
        "total_seconds": round(time.perf_counter() - t_start, 2),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2))
    print_table(out, res)
    log(f"done in {run['total_seconds']:.0f} s (training {train_seconds:.0f} s): {out}")
    return run
