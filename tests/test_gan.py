"""pix2pix: the PatchGAN, the separate D / G steps, and a tiny fit through `chromalab train pix2pix`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from chromalab.errors import ChromalabError, ModelError
from chromalab.nets import PatchGAN, UNet
from chromalab.training.gan import Pix2PixModule

from .conftest import lab_batch

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(n: int = 4, size: int = 32, seed: int = 0):
    """Scaled (L, ab) of synthetic images."""
    return lab_batch(n, size, seed, scaled=True)


def _module(gan_lambda: float = 100.0):
    torch.manual_seed(0)
    m = Pix2PixModule(UNet(width=4, depth=2), PatchGAN(width=8), gan_lambda=gan_lambda)
    opt_g, opt_d = m.configure_optimizers()
    return m, opt_g, opt_d


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_patchgan_shapes_and_receptive_field():
    d = PatchGAN(width=8)
    L, ab = _batch(2, 64)
    assert d(L, ab).shape == (2, 1, 14, 14)
    assert d(*_batch(2, 32)).shape == (2, 1, 6, 6)
    assert sum(p.numel() for p in PatchGAN(64).parameters()) == 662_593  # C64-C128-C256 + 1-channel head
    assert not any(b.numel() for b in d.buffers())  # instance norm without running stats: stateless
    # the convolutions give each logit a 34x34 patch (instance norm adds only per-image statistics,
    # so it is taken out to see the patch): the gradient of an inner logit covers exactly 34x34 pixels
    d.layers[1][1] = torch.nn.Identity()
    d.layers[2][1] = torch.nn.Identity()
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    out = d(x, torch.rand(1, 2, 64, 64))
    out[0, 0, 7, 7].backward()
    rows, cols = torch.nonzero(x.grad[0, 0].abs() > 0, as_tuple=True)
    assert int(rows.max()) - int(rows.min()) + 1 == 34 and int(cols.max()) - int(cols.min()) + 1 == 34


def test_d_step_updates_only_the_discriminator():
    m, opt_g, opt_d = _module()
    x, real = _batch()
    fake = m.net(x)  # G's forward (train mode) before the snapshot: it updates G's BatchNorm statistics
    g0, d0 = _snapshot(m.net), _snapshot(m.disc)
    d_loss = m.d_step(x, real, fake, opt_d)
    assert torch.isfinite(d_loss) and d_loss.ndim == 0
    assert _same(_snapshot(m.net), g0), "the D step changed the generator"
    assert all(p.grad is None for p in m.net.parameters()), "a gradient reached the generator"
    d1 = _snapshot(m.disc)
    assert not _same(d1, d0)
    assert all(not torch.equal(d1[k], d0[k]) for k, _ in m.disc.named_parameters() if k.endswith("weight"))
    assert all(p.grad is None for p in m.disc.parameters())  # cleared after its step


def test_g_step_updates_only_the_generator_and_leaks_no_gradient_into_d():
    m, opt_g, opt_d = _module()
    x, real = _batch()
    d0 = _snapshot(m.disc)
    g0 = _snapshot(m.net)
    fake = m.net(x)
    adv, l1 = m.g_step(x, real, fake, opt_g)
    assert torch.isfinite(adv) and torch.isfinite(l1)
    assert _same(_snapshot(m.disc), d0), "the G step changed the discriminator"
    assert all(p.grad is None for p in m.disc.parameters()), "D's gradients leaked from the G step"
    assert all(p.requires_grad for p in m.disc.parameters())  # unfrozen again
    g1 = _snapshot(m.net)
    assert all(not torch.equal(g1[k], g0[k]) for k, _ in m.net.named_parameters())  # every G parameter moved
    # the next D step starts from clean gradients: same result as a fresh copy of D would give
    fake2 = m.net(x).detach()
    disc_copy = PatchGAN(width=8)
    disc_copy.load_state_dict(m.disc.state_dict())
    ref = Pix2PixModule(UNet(width=4, depth=2), disc_copy)
    _, ref_opt_d = ref.configure_optimizers()
    ref_opt_d.load_state_dict(opt_d.state_dict())
    m.d_step(x, real, fake2, opt_d)
    ref.d_step(x, real, fake2, ref_opt_d)
    assert _same(_snapshot(m.disc), _snapshot(ref.disc))


def test_adversarial_gradient_reaches_the_generator_through_the_frozen_discriminator():
    m, opt_g, _ = _module(gan_lambda=0.0)  # no L1: only D's verdict moves G
    x, real = _batch()
    head0 = m.net.head.weight.detach().clone()
    m.g_step(x, real, m.net(x), opt_g)
    assert not torch.equal(m.net.head.weight, head0)


def test_losses_match_the_pix2pix_formulas():
    m, opt_g, opt_d = _module(gan_lambda=100.0)
    x, real = _batch()
    fake = m.net(x)
    with torch.no_grad():
        dr, df = m.disc(x, real), m.disc(x, fake)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        ref_d = 0.5 * (bce(dr, torch.ones_like(dr)) + bce(df, torch.zeros_like(df)))
        ref_adv = None
    d_loss = m.d_step(x, real, fake, opt_d)
    torch.testing.assert_close(d_loss, ref_d)
    with torch.no_grad():
        df2 = m.disc(x, fake)
        ref_adv = bce(df2, torch.ones_like(df2))
        ref_l1 = (fake - real).abs().mean()
    adv, l1 = m.g_step(x, real, fake, opt_g)
    torch.testing.assert_close(adv, ref_adv)
    torch.testing.assert_close(l1, ref_l1)


def test_linear_tail_schedule():
    from chromalab.training.gan import _LinearTail

    f = _LinearTail(100)
    assert [f(0), f(49), f(50), f(75), f(100)] == [1.0, 1.0, 1.0, 0.5, 0.0]


def test_bundled_pix2pix_is_a_clear_error_when_missing():
    from chromalab.predictors.nets import bundled_path
    from chromalab.registry import REGISTRY, load_predictor

    assert REGISTRY["pix2pix"].group == "bundled"
    if not bundled_path("pix2pix").is_file():
        with pytest.raises(ModelError, match=r"bundled model 'pix2pix' is not installed .*chromalab train pix2pix"):
            load_predictor("pix2pix")


def test_train_pix2pix_tiny_from_the_cli(tiny_zip, tmp_path):
    from chromalab.cli import app
    from chromalab.predictors.nets import NetPredictor, read_meta
    from chromalab.registry import load_predictor

    run = tmp_path / "p2p"
    args = ["train", "pix2pix", "--preset", "quick", "--data", str(tiny_zip), "--out", str(run),
            "--accelerator", "cpu", "--devices", "1"]
    for k, v in {"width": 4, "depth": 2, "d_width": 8, "batch_size": 16, "val_limit": 32, "test_limit": 16,
                 "num_threads": 1, "train_limit": 64, "epochs": 2, "schedule": "linear"}.items():
        args += ["--set", f"{k}={v}"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0])[-2:] == ["d_loss", "g_loss"]
    for r in rows:
        for k in ("train_loss", "val_loss", "val_psnr", "val_ssim", "d_loss", "g_loss"):
            assert np.isfinite(float(r[k])), (k, r)
        assert 0 < float(r["d_loss"]) < 5 and 0 < float(r["g_loss"]) < 20
    assert float(rows[-1]["lr"]) < 2e-4  # the linear tail of the schedule has started
    assert (run / "loss.png").stat().st_size > 0
    info = json.loads((run / "run.json").read_text())
    assert info["kind"] == "net" and info["arch"] == "pix2pix" and info["loss"] == "gan-l1"
    # the exported weights are the generator only, a plain U-Net file
    meta = read_meta(run / "best.safetensors")
    assert meta["arch"] == "unet" and meta["family"] == "pix2pix" and meta["arch_kwargs"]["width"] == 4
    from safetensors import safe_open

    with safe_open(str(run / "best.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("disc") or "layers." in k for k in keys)
    pred = load_predictor(str(run))
    assert type(pred) is NetPredictor
    test = json.loads((run / "test.json").read_text())
    js = tmp_path / "eval.json"
    res = runner.invoke(app, ["evaluate", str(run), "--data", str(tiny_zip), "--limit", "16", "--json", str(js)])
    assert res.exit_code == 0, (res.output, res.exception)
    ev = json.loads(js.read_text())
    assert ev["psnr"] == pytest.approx(test["psnr"]) and np.isfinite(ev["delta_cf"])
    # the checkpoint holds both networks and both optimizers (resume continues the GAN, not just G)
    ck = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("disc.") for k in ck["state_dict"]) and len(ck["optimizer_states"]) == 2
    # the within-epoch D / G points plotted in loss.png: 4 batches per epoch, one point each
    (rec,) = [v for k, v in ck["callbacks"].items() if "RunRecorder" in k]
    trace = rec["trace"]
    assert [t["epoch"] for t in trace] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert all(np.isfinite(t["d_loss"]) and np.isfinite(t["g_loss"]) for t in trace)
    assert np.mean([t["d_loss"] for t in trace[4:]]) == pytest.approx(float(rows[1]["d_loss"]), rel=1e-6)
    res = runner.invoke(app, ["evaluate", str(run), "--data", str(tiny_zip), "--limit", "4", "--temperature", "0.5"])
    assert res.exit_code != 0 and "only to vivid models" in str(res.exception)


def test_pix2pix_takes_no_loss_option(tmp_path):
    from chromalab.training.run import resolve_config, train_net

    with pytest.raises(ChromalabError, match="own loss"):
        train_net("pix2pix", loss="mse", out=tmp_path / "r")
    cfg = resolve_config("pix2pix", None, "full")
    assert (cfg.loss, cfg.net_arch(), cfg.gan_lambda, cfg.lr, cfg.beta1) == ("gan-l1", "unet", 100.0, 2e-4, 0.5)
    assert cfg.precision == "bf16-mixed" and cfg.channels_last and cfg.depth == 4
