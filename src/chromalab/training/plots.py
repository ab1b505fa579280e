"""loss.png of a net run: the losses and the validation metrics per epoch (and, for pix2pix, the GAN losses)."""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_path


def plot_losses(rows: list[dict], path: Path, trace: list[dict] | None = None) -> None:
    """train / val loss per epoch (left), val PSNR / SSIM (middle) and, when the rows have them
    (pix2pix), the discriminator and generator adversarial losses (right): lines through the
    within-epoch ``trace`` points (about 50 per epoch), markers at the epoch means -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r.get("progress", r["epoch"] + 1) for r in rows]
    gan = any("d_loss" in r for r in rows)
    colour = any("val_cool_recall" in r for r in rows)
    if gan or colour:
        fig, (a1, a2, a4) = plt.subplots(1, 3, figsize=(13.5, 3.4))
    else:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    steps = [t for t in (trace or []) if "train_loss" in t]
    if steps:
        a1.plot([t["epoch"] for t in steps], [t["train_loss"] for t in steps], "-", lw=1, label="train (running)")
    else:
        a1.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    a1.plot(ep, [r["val_loss"] for r in rows], "s-", label="val")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.set_title("loss" if steps else "loss (train: mean over the epoch)")
    a1.legend()
    if colour:
        a4.plot(ep, [r.get("val_cool_recall", float("nan")) for r in rows], "o-", color="C0", label="cool recall")
        a4.plot(ep, [r.get("val_auc_rb", float("nan")) for r in rows], "s-", color="C1", label="AuC rebalanced")
        a4.set_xlabel("epoch")
        a4.set_title("validation colour metrics")
        a4.legend(fontsize="small")
    a2.plot(ep, [r["val_psnr"] for r in rows], "o-", color="C2")
    a2.set_xlabel("epoch")
    a2.set_ylabel("val PSNR dB", color="C2")
    a3 = a2.twinx()
    a3.plot(ep, [r["val_ssim"] for r in rows], "s-", color="C3")
    a3.set_ylabel("val SSIM", color="C3")
    a2.set_title("validation (canonical metrics)")
    if gan:
        trace = [t for t in (trace or []) if "d_loss" in t]
        style = "o" if trace else "o-"
        if trace:
            tx = [t["epoch"] for t in trace]
            a4.plot(tx, [t["d_loss"] for t in trace], "-", color="C4", lw=1)
            a4.plot(tx, [t["g_loss"] for t in trace], "-", color="C5", lw=1)
        a4.plot(ep, [r.get("d_loss", float("nan")) for r in rows], style, color="C4", label="D (real/fake BCE)")
        a4.plot(ep, [r.get("g_loss", float("nan")) for r in rows], style.replace("o", "s"), color="C5",
                label="G (adversarial BCE)")
        a4.axhline(0.6931, color="0.6", lw=0.8, ls="--", label="ln 2 (D at chance)")
        a4.set_xlabel("epoch")
        a4.set_ylabel("loss")
        a4.set_title("GAN losses (markers: epoch means)")
        a4.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
