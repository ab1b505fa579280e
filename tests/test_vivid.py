"""The vivid model: ab bins, soft encoding, class rebalancing, annealed mean, the net, a tiny fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from chromalab.abbins import (
    SoftEncoder,
    annealed_mean,
    bin_histogram,
    gamut_bins,
    nearest_bin,
    rebalance_weights,
    smooth_prior,
)
from chromalab.color import rgb_uint8_to_lab_fast
from chromalab.errors import ChromalabError, ModelError

from .conftest import synth_image

runner = CliRunner()
TINY = {"width": 4, "depth": 2, "batch_size": 16, "val_limit": 32, "test_limit": 16, "num_threads": 1,
        "train_limit": 64, "epochs": 1, "prior_images": 64}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def centres() -> np.ndarray:
    return gamut_bins(10)


def _as_image(ab: np.ndarray) -> torch.Tensor:
    """``(Q, 2)`` ab pairs -> a ``(1, 2, 1, Q)`` image."""
    return torch.from_numpy(np.ascontiguousarray(ab.T[None, :, None, :], dtype=np.float32))


# ---- bins ------------------------------------------------------------------------------------------
def test_gamut_bins_cover_srgb_and_nothing_else(centres):
    q = len(centres)
    assert 250 <= q <= 320 and q == 261
    assert np.all(centres % 10 == 0) and np.abs(centres).max() <= 110
    assert len(np.unique(centres, axis=0)) == q and [0, 0] in centres.tolist()
    # every 8-bit sRGB colour lies in the cell (±5) of some bin
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (1, 20000, 3), dtype=np.uint8)
    ab = rgb_uint8_to_lab_fast(rgb)[0, :, 1:]
    d = np.abs(ab[:, None, :] - centres[None]).max(-1).min(1)  # Chebyshev distance to the nearest centre
    assert d.max() <= 5.0 + 1e-3
    # and every bin is reachable: some point of its cell, at some L, is inside sRGB (own unclipped maths)
    off = np.arange(-5.0, 5.0, 0.25)  # fine enough for the thinnest sliver, the cell of (70, -110)
    oa, ob = np.meshgrid(off, off, indexing="ij")
    L = np.arange(0.5, 100.0, 0.5)[:, None, None]
    m = np.linalg.inv(np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                                [0.019334, 0.119193, 0.950227]]))
    white = np.array([0.95047, 1.0, 1.08883])

    def finv(t):
        return np.where(t > 6 / 29, t**3, (t - 16 / 116) * 3 * (6 / 29) ** 2)

    for c in centres:
        fy = (L + 16) / 116
        xyz = np.stack(np.broadcast_arrays(finv(fy + (c[0] + oa) / 500), finv(fy), finv(fy - (c[1] + ob) / 200)), -1)
        lin = (xyz * white) @ m.T  # linear sRGB, unclipped
        assert np.all((lin >= -1e-4) & (lin <= 1 + 1e-4), axis=-1).any(), c
    # grid points left out are out of gamut at every L
    assert [100, 100] not in centres.tolist() and [-100, -100] not in centres.tolist()


def test_quantization_round_trip(centres):
    """Every bin centre is its own nearest bin, encodes with its own bin first, and decodes back into its bin."""
    q = len(centres)
    np.testing.assert_array_equal(nearest_bin(centres, centres), np.arange(q))
    enc = SoftEncoder(centres)
    img = _as_image(centres)
    np.testing.assert_array_equal(enc.nearest(img)[0, 0].numpy(), np.arange(q))
    idx, w = enc.encode(img)  # (1, 5, 1, Q)
    np.testing.assert_array_equal(idx[0, 0, 0].numpy(), np.arange(q))  # nearest first: itself
    assert torch.all(w[:, 0] == w.max(dim=1).values)
    # decode the soft encoding: the mode (T -> 0) is the centre itself; the plain mean stays in the bin
    logits = torch.log(enc.dense(img).clamp_min(1e-30))  # (1, Q, 1, Q)
    mode = annealed_mean(logits, torch.from_numpy(centres), 1e-3)[0, :, 0].T.numpy()
    np.testing.assert_allclose(mode, centres, atol=1e-4)
    mean = annealed_mean(logits, torch.from_numpy(centres), 1.0)[0, :, 0].T.numpy()
    np.testing.assert_array_equal(nearest_bin(mean, centres), np.arange(q))
    assert np.abs(mean - centres).max() < 5.0


def test_soft_encoding_sums_to_one_and_is_gaussian(centres):
    enc = SoftEncoder(centres, k=5, sigma=5.0)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (1, 300, 3), dtype=np.uint8)
    ab = np.rint(rgb_uint8_to_lab_fast(rgb)[0, :, 1:])  # integer ab: the table is exact there
    idx, w = enc.encode(_as_image(ab))
    idx, w = idx[0, :, 0].T.numpy(), w[0, :, 0].T.numpy()  # (N, 5)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert np.all(w > 0)
    d2 = ((ab[:, None, :] - centres[None]) ** 2).sum(-1)  # (N, Q)
    ref_idx = np.argsort(d2, axis=1, kind="stable")[:, :5]
    ref_d2 = np.take_along_axis(d2, ref_idx, 1)
    np.testing.assert_allclose(np.take_along_axis(d2, idx.astype(np.int64), 1), ref_d2, atol=1e-4)  # same distances
    ref_w = np.exp(-ref_d2 / 50.0)
    np.testing.assert_allclose(w, ref_w / ref_w.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    dense = enc.dense(_as_image(ab))
    np.testing.assert_allclose(dense.sum(1).numpy(), 1.0, atol=1e-6)


# ---- rebalancing -----------------------------------------------------------------------------------------
def _synthetic_counts(centres) -> np.ndarray:
    """Bin counts of the synthetic test images: a skewed, realistic-looking histogram."""
    rng = np.random.default_rng(0)
    rgb = np.stack([synth_image(rng) for _ in range(24)])
    ab = rgb_uint8_to_lab_fast(rgb)[..., 1:].transpose(0, 3, 1, 2)
    return bin_histogram([ab], SoftEncoder(centres))


def test_rebalancing_weights_average_to_one_and_favour_rare_bins(centres):
    counts = _synthetic_counts(centres)
    assert counts.sum() == 24 * 64 * 64 and (counts > 0).sum() < len(centres)  # some bins never seen
    ps = smooth_prior(counts, centres, sigma=5.0)
    assert ps.sum() == pytest.approx(1.0) and np.all(ps > 0)
    assert (ps > 0).sum() > (counts > 0).sum()  # smoothing spreads mass to the neighbours of seen bins
    w = rebalance_weights(ps, lam=0.5)
    assert float((ps * w).sum()) == pytest.approx(1.0, abs=1e-12)  # average 1 under the training distribution
    # rarer bins weigh more, strictly: w is a decreasing function of p̃
    order = np.argsort(ps)
    assert np.all(np.diff(w[order]) <= 1e-12) and w[order[0]] > 1.0 > w[order[-1]]
    # λ = 1: uniform (no rebalancing); λ = 0: w ∝ 1/p̃
    np.testing.assert_allclose(rebalance_weights(ps, 1.0), 1.0)
    w0 = rebalance_weights(ps, 0.0)
    np.testing.assert_allclose(w0 * ps, (w0 * ps)[0])
    # the smoothing is the Gaussian kernel between centres
    c = np.asarray(centres, dtype=np.float64)
    kern = np.exp(-((c[:, None] - c[None]) ** 2).sum(-1) / 50.0)
    ref = kern @ (counts / counts.sum())
    np.testing.assert_allclose(ps, ref / ref.sum())


# ---- annealed mean ----------------------------------------------------------------------------------------
def test_annealed_mean_mode_and_mean(centres):
    torch.manual_seed(0)
    c = torch.from_numpy(centres)
    logits = torch.randn(2, len(centres), 3, 4) * 3  # (B, Q, H, W)
    # T -> 0: the centre of the most probable bin
    mode = annealed_mean(logits, c, 1e-3)
    ref_mode = c[logits.argmax(dim=1)].permute(0, 3, 1, 2)  # (B, 2, H, W)
    torch.testing.assert_close(mode, ref_mode, atol=1e-3, rtol=0)
    # T = 1: the plain mean of the softmax distribution
    p = torch.softmax(logits.double(), dim=1)
    ref_mean = torch.einsum("bqhw,qc->bchw", p, c.double()).float()
    torch.testing.assert_close(annealed_mean(logits, c, 1.0), ref_mean, atol=1e-4, rtol=1e-5)
    # any T: Zhang et al.'s f_T(z) = exp(log z / T) / Σ exp(log z / T) on z = softmax(logits)
    t = 0.38
    z = p
    f = torch.exp(torch.log(z) / t)
    f = f / f.sum(dim=1, keepdim=True)
    ref_t = torch.einsum("bqhw,qc->bchw", f, c.double()).float()
    torch.testing.assert_close(annealed_mean(logits, c, t), ref_t, atol=1e-4, rtol=1e-5)
    # lower T, farther from gray: the chroma grows as T falls
    chroma = [float(annealed_mean(logits, c, t).norm(dim=1).mean()) for t in (1.0, 0.38, 0.1)]
    assert chroma[0] < chroma[1] < chroma[2]
    with pytest.raises(ValueError, match="temperature must be positive"):
        annealed_mean(logits, c, 0.0)


# ---- the net and the loss -----------------------------------------------------------------------------------
def test_vivid_net_shapes_loss_and_gradients(centres):
    from chromalab.nets import VividNet
    from chromalab.training.vivid import RebalancedCELoss

    torch.manual_seed(0)
    net = VividNet(width=4, depth=2)
    assert net.n_bins == len(centres) and net.arch_kwargs["n_bins"] == len(centres)
    torch.testing.assert_close(net.centres, torch.from_numpy(centres))
    x = torch.rand(3, 1, 16, 24)
    assert net.logits(x).shape == (3, len(centres), 8, 12)
    y = net(x)
    assert y.shape == (3, 2, 16, 24) and torch.isfinite(y).all()
    rng = np.random.default_rng(0)
    rgb = np.stack([synth_image(rng, 16) for _ in range(3)])
    ab = torch.from_numpy(rgb_uint8_to_lab_fast(rgb)[..., 1:].transpose(0, 3, 1, 2).copy())[:, :, :, :16]
    x = torch.rand(3, 1, 16, 16)
    w = rebalance_weights(smooth_prior(_synthetic_counts(centres), centres), 0.5)
    loss_fn = RebalancedCELoss(net.centres, w)
    logits = net.logits(x)
    loss = loss_fn(logits, ab)
    # against the dense formula: mean over pixels of w[nearest] · CE(soft target, softmax)
    ab_half = torch.nn.functional.avg_pool2d(ab, 2)
    enc = SoftEncoder(centres)
    target = enc.dense(ab_half)
    ce = -(target * torch.log_softmax(logits, dim=1)).sum(1)
    ref = (torch.from_numpy(w).float()[enc.nearest(ab_half)] * ce).mean()
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_vivid_weights_file_round_trip_and_temperature(tmp_path):
    from chromalab.inference import Colorizer
    from chromalab.nets import VividNet
    from chromalab.predictors.baselines import GrayPredictor
    from chromalab.predictors.nets import VividPredictor, load_net, read_meta, save_net, set_temperature

    torch.manual_seed(0)
    net = VividNet(width=4, depth=2, temperature=0.5).eval()
    path = save_net(tmp_path / "vivid.safetensors", net, {"input_size": 64})
    meta = read_meta(path)
    assert meta["arch"] == "vivid" and meta["arch_kwargs"]["n_bins"] == 261 and meta["arch_kwargs"]["temperature"] == 0.5
    pred = load_net(path)
    assert isinstance(pred, VividPredictor) and pred.temperature == 0.5
    torch.testing.assert_close(pred.net.centres, net.centres)  # the centres travel in the file
    L = np.random.default_rng(0).uniform(0, 100, (2, 1, 16, 16)).astype(np.float32)
    a = pred.predict_ab(L)
    with torch.no_grad():
        ref = net(torch.from_numpy(L) / 100).numpy() * 110
    np.testing.assert_allclose(a, ref, atol=1e-3)
    set_temperature(pred, 0.05)
    b = pred.predict_ab(L)
    assert pred.describe()["temperature"] == 0.05 and np.abs(b).mean() > np.abs(a).mean()
    with pytest.raises(ChromalabError, match="positive"):
        set_temperature(pred, -1)
    # saved again, the file's default T is the one set (how a bundled file gets a tuned T)
    p2 = save_net(tmp_path / "vivid-t.safetensors", pred.net, {"input_size": 64})
    assert load_net(p2).temperature == 0.05 and read_meta(p2)["arch_kwargs"]["temperature"] == 0.05
    with pytest.raises(ChromalabError, match="only to vivid models"):
        set_temperature(GrayPredictor(), 0.38)
    # the colorizer's fast paths (torch module, ONNX) run the decoding too
    for backend in ("torch", "onnx"):
        col = Colorizer(pred, backend=backend, onnx_cache=False)
        np.testing.assert_allclose(col.engine.predict_ab(L), b, atol=2e-2)


def test_bundled_vivid_loads_or_says_it_is_missing():
    from chromalab.predictors.nets import VividPredictor, bundled_path
    from chromalab.registry import available_bundled, load_predictor

    if bundled_path("vivid").is_file():
        pred = load_predictor("vivid")
        assert isinstance(pred, VividPredictor) and "vivid" in available_bundled()
        assert bundled_path("vivid").stat().st_size <= 10 * 2**20
    else:
        with pytest.raises(ModelError, match=r"bundled model 'vivid' is not installed .*chromalab train vivid"):
            load_predictor("vivid")
        assert "vivid" not in available_bundled()


# ---- training end to end -----------------------------------------------------------------------------------
def test_train_vivid_tiny_then_evaluate_with_temperature(tiny_zip, tmp_path):
    from chromalab.cli import app
    from chromalab.predictors.nets import VividPredictor
    from chromalab.registry import load_predictor
    from chromalab.training.run import train_net

    run = tmp_path / "vivid-run"
    info = train_net("vivid", data=tiny_zip, out=run, overrides=TINY, progress=False,
                     trainer_overrides={"accelerator": "cpu", "devices": "1", "precision": "32-true"})
    assert info["kind"] == "net" and info["arch"] == "vivid" and info["loss"] == "rebalanced-ce"
    for f in ("config.yaml", "metrics.csv", "loss.png", "best.safetensors", "last.ckpt", "test.json", "run.json",
              "prior.json"):
        assert (run / f).is_file(), f
    prior = json.loads((run / "prior.json").read_text())
    ps, w = np.asarray(prior["p_smooth"]), np.asarray(prior["weights"])
    assert len(w) == 261 and float((ps * w).sum()) == pytest.approx(1.0)
    assert prior["images"] == 64 and prior["pixels"] == 64 * 32 * 32
    test = json.loads((run / "test.json").read_text())
    assert all(np.isfinite(test[k]) for k in ("psnr", "ssim", "cf", "delta_cf"))
    assert test["model"]["temperature"] == 0.38

    pred = load_predictor(str(run))
    assert isinstance(pred, VividPredictor) and pred.temperature == 0.38

    js = tmp_path / "t1.json"
    res = runner.invoke(app, ["evaluate", str(run), "--data", str(tiny_zip), "--limit", "16", "--temperature", "1.0",
                              "--json", str(js)])
    assert res.exit_code == 0, (res.output, res.exception)
    r1 = json.loads(js.read_text())
    assert r1["model"]["temperature"] == 1.0 and r1["count"] == 16
    res = runner.invoke(app, ["evaluate", str(run), "--data", str(tiny_zip), "--limit", "16", "--json", str(js)])
    assert res.exit_code == 0, (res.output, res.exception)
    r0 = json.loads(js.read_text())
    assert r0["psnr"] == pytest.approx(test["psnr"])  # the default T is the one training evaluated with
    assert r0["cf"] != r1["cf"]
    res = runner.invoke(app, ["evaluate", "gray", "--data", str(tiny_zip), "--limit", "4", "--temperature", "0.5"])
    assert res.exit_code != 0 and "only to vivid models" in str(res.exception)

    # `chromalab colorize --temperature` on the run folder; an error for a model that is not vivid
    from PIL import Image

    src = tmp_path / "photo.png"
    Image.fromarray(synth_image(np.random.default_rng(3), 48)).save(src)
    res = runner.invoke(app, ["colorize", str(src), "-o", str(tmp_path / "col"), "--model", str(run),
                              "--temperature", "0.2"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert Image.open(tmp_path / "col" / "photo_color.png").size == (48, 48)
    res = runner.invoke(app, ["colorize", str(src), "-o", str(tmp_path / "col2"), "--model", "gray",
                              "--temperature", "0.2"])
    assert res.exit_code != 0 and "only to vivid models" in str(res.exception)

    # a finished run's prior.json is reused as it is (resume), not recomputed
    from chromalab.training.vivid import load_or_compute_prior

    again = load_or_compute_prior(run, lambda: pytest.fail("recomputed"), np.asarray(prior["centres"]), lam=0.5,
                                  sigma=5.0, max_images=64)
    assert again == prior
    with pytest.raises(ChromalabError, match="own loss"):
        train_net("vivid", loss="mse", data=tiny_zip, out=tmp_path / "other", overrides=TINY, progress=False)
