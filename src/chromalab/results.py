"""Result rows: which numbers a row carries, in which order, under which headings, with how many digits.

One evaluation gives the :data:`METRIC_KEYS` (computed by :class:`chromalab.metrics.MetricAccumulator`,
as docs/metrics.md defines them); a comparison row adds the :data:`RUN_KEYS` of the run behind it.
``chromalab evaluate`` prints :data:`SHORT_HEADINGS` in a terminal table; ``chromalab compare`` writes
:data:`HEADINGS` in results.md / .csv / .json / index.html. Both format a value with :func:`format_value`.

A new metric: compute it in metrics.py, add its key here (with its headings and digits) and define it in
docs/metrics.md; every table then shows it.
"""

from __future__ import annotations

import math

METRIC_KEYS = ("psnr", "ssim", "mse", "l1", "mse_rgb", "l1_rgb", "r2", "cf", "delta_cf", "auc", "auc_rb",
               "cool_recall")
"""The metrics of one evaluation, in table order (``MetricAccumulator.compute`` also returns ``cf_true``)."""
RUN_KEYS = ("train_seconds", "train_images", "images_per_second")
"""What a comparison row says about the run behind it: training time, images seen, prediction throughput."""
ROW_KEYS = METRIC_KEYS + RUN_KEYS
"""The columns of every comparison table (results.md / .csv / .json / index.html), in order."""

SHORT_HEADINGS = {
    "psnr": "PSNR dB ↑", "ssim": "SSIM ↑", "mse": "MSE ab ↓", "l1": "L1 ab ↓",
    "mse_rgb": "MSE rgb ↓", "l1_rgb": "L1 rgb ↓", "r2": "R² ↑", "cf": "CF", "delta_cf": "ΔCF ↓",
    "auc": "AuC ↑", "auc_rb": "AuC rebal ↑", "cool_recall": "cool recall ↑",
}
"""Column headings of the terminal table (``chromalab evaluate``, a classical run's summary)."""
HEADINGS = {
    "psnr": "PSNR (dB, sRGB) ↑", "ssim": "SSIM (sRGB) ↑", "mse": "MSE (ab, Lab²) ↓", "l1": "L1 (ab, Lab) ↓",
    "mse_rgb": "MSE (sRGB 0..1) ↓", "l1_rgb": "L1 (sRGB 0..1) ↓", "r2": "R² (ab) ↑", "cf": "CF",
    "delta_cf": "ΔCF ↓", "auc": "AuC ↑", "auc_rb": "AuC rebal ↑", "cool_recall": "cool recall ↑",
    "train_seconds": "train s", "train_images": "images seen", "images_per_second": "predict img/s",
}
"""Column headings of the comparison report, with units."""

FOUR_DIGIT_KEYS = frozenset({"ssim", "r2", "mse_rgb", "l1_rgb", "auc", "auc_rb", "cool_recall"})
"""Values in 0..1 (or near it): printed with 4 decimals; the other metrics with 2."""
MISSING = "—"
"""How a value that is not known (None or NaN) is printed."""


def format_value(key: str, value) -> str:
    """A row's value as the tables print it: 4 decimals for :data:`FOUR_DIGIT_KEYS`, whole numbers with
    thousands separators for :data:`RUN_KEYS` (and times in seconds), 2 decimals otherwise;
    :data:`MISSING` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if key in FOUR_DIGIT_KEYS:
        return f"{value:.4f}"
    if key in RUN_KEYS:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def replace_marked_block(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with the part from the line ``begin`` to the line ``end`` replaced by ``block`` (which
    starts with ``begin`` and ends with ``end``), or with ``block`` added at the end when the markers
    are not there: how the report scripts keep their generated rows in a hand-written page."""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


COLOUR_KEYS = ("psnr", "ssim", "delta_cf", "cf", "auc", "auc_rb", "cool_recall")
"""The columns of the colour reports' tables (docs/colour.md, docs/ablation.md and their RESULTS.md rows)."""
_COLOUR_HEADINGS = ("PSNR dB", "SSIM", "ΔCF", "CF", "AuC", "AuC rebal.", "cool recall")
_COLOUR_DIGITS = {"psnr": 3, "ssim": 4, "delta_cf": 2, "cf": 2, "auc": 4, "auc_rb": 4, "cool_recall": 3}


def colour_table_head(*first: str) -> list[str]:
    """The heading and rule lines of a colour table whose first columns are ``first``."""
    cols = [*first, *_COLOUR_HEADINGS]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def colour_table_row(*first: str, metrics: dict) -> str:
    """One row of a colour table: the ``first`` cells as given, then :data:`COLOUR_KEYS` of ``metrics``."""
    cells = [*first, *(f"{metrics[k]:.{_COLOUR_DIGITS[k]}f}" for k in COLOUR_KEYS)]
    return "| " + " | ".join(cells) + " |"
