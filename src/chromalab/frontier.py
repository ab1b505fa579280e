"""The accuracy / colour frontier of a colour model: its metrics across vividness settings.

A :class:`~chromalab.nets.ColorNet` computes its heads once per image; every vividness (and, for
choosing the decoding, every pair of temperatures) is then only a cheap decoding, so a sweep
costs one forward pass over the images plus the metrics of each setting. Metrics are the
project's own (:class:`chromalab.metrics.MetricAccumulator`), exactly as ``evaluate`` computes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._io import progress_bar
from .color import compose_rgb_uint8, scale_L, unscale_ab
from .data.cache import SplitData
from .metrics import MetricAccumulator


def heads_over(net, split: SplitData, batch_size: int = 256, progress: bool = True):
    """Run ``net.heads`` (no hints) over a split -> (L, ab, rgb, ab_reg, logits) numpy arrays
    (ab_reg scaled ``(N, 2, S, S)``, logits ``(N, Q, S/s, S/s)`` float16 to keep memory small)."""
    Ls, abs_, rgbs, regs, logs = [], [], [], [], []
    with progress_bar(f"heads on {split.name}", enabled=progress) as bar, torch.inference_mode():
        task = bar.add_task("heads", total=len(split))
        for L, ab, rgb in split.batches(batch_size):
            r, lg, _ = net.heads(torch.from_numpy(scale_L(L)))
            Ls.append(L)
            abs_.append(ab)
            rgbs.append(rgb)
            regs.append(r.float().numpy())
            logs.append(lg.float().numpy().astype(np.float16))
            bar.advance(task, len(L))
    return (np.concatenate(Ls), np.concatenate(abs_), np.concatenate(rgbs), np.concatenate(regs),
            np.concatenate(logs))


def metrics_at(net, heads, vividness: float, t_blend: float | None = None, t_vivid: float | None = None,
               batch_size: int = 512) -> dict:
    """Metrics of the decoding at ``vividness`` (temperatures: the net's unless given) from :func:`heads_over`."""
    from .nets.colornet import vivid_decode

    L, ab, rgb, reg, logits = heads
    tb = net.t_blend if t_blend is None else t_blend
    tv = net.t_vivid if t_vivid is None else t_vivid
    acc = MetricAccumulator()
    for s in range(0, len(L), batch_size):
        sl = slice(s, s + batch_size)
        pred = vivid_decode(torch.from_numpy(reg[sl]), torch.from_numpy(logits[sl].astype(np.float32)),
                            net.centres, float(vividness), tb, tv, net.out_stride)
        ab_pred = unscale_ab(pred).numpy()
        acc.update(rgb[sl], compose_rgb_uint8(L[sl], ab_pred), ab[sl], ab_pred)
    return {"vividness": float(vividness), "t_blend": tb, "t_vivid": tv, **acc.compute(), "count": len(L)}


def label_frontier_axes(ax, title: str, **title_kw) -> None:
    """Label a matplotlib ``ax`` that plots PSNR against ΔCF (the reports' frontier plots): axis names,
    ``title``, the ΔCF axis inverted (more colourful to the right) and the legend."""
    ax.set_xlabel("ΔCF (|mean colourfulness − originals'|) ↓")
    ax.set_ylabel("PSNR dB ↑")
    ax.set_title(title, **title_kw)
    ax.invert_xaxis()
    ax.legend(fontsize="small")


def sweep(net, heads, values: Sequence[float]) -> list[dict]:
    """:func:`metrics_at` for each vividness in ``values``."""
    return [metrics_at(net, heads, v) for v in values]
