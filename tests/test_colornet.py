"""ColorNet (the default colorizer): heads and decoding, simulated hints, labels, colour metrics,
warm start, and a short fit whose run folder has one row per validation."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from chromalab.abbins import annealed_mean
from chromalab.color import scale_ab, unscale_ab
from chromalab.hint_simulation import sample_counts, simulate_hints
from chromalab.hints import rasterize_points
from chromalab.metrics import ColorAccumulator
from chromalab.nets import ColorNet, UNet
from tests.conftest import lab_batch


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def tiny_net(**kw) -> ColorNet:
    torch.manual_seed(0)
    return ColorNet(width=4, depth=2, n_classes=5, **kw).eval()


def test_heads_shapes_and_contract():
    net = tiny_net(out_stride=4)
    x = torch.rand(3, 1, 16, 24)
    ab_reg, logits, cls = net.heads(x)
    assert ab_reg.shape == (3, 2, 16, 24) and logits.shape == (3, 261, 4, 6) and cls.shape == (3, 5)
    assert net(x).shape == (3, 2, 16, 24)
    # an L-only input is the same as L with empty hint channels
    x4 = torch.cat([x, torch.zeros(3, 3, 16, 24)], dim=1)
    assert torch.equal(net(x), net(x4))
    with pytest.raises(ValueError, match="input channels"):
        net(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="out_stride"):
        ColorNet(width=4, depth=1, out_stride=4)


def test_vividness_ends_are_regression_and_annealed_mean():
    net = tiny_net(out_stride=2, t_vivid=0.2, t_blend=0.5)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        ab_reg, logits, _ = net.heads(x)
        assert torch.equal(net.decode(ab_reg, logits, 0.0), ab_reg)
        cls = scale_ab(annealed_mean(logits, net.centres, 0.2))
        up = torch.nn.functional.interpolate(cls, scale_factor=2, mode="bilinear", align_corners=False)
        assert torch.allclose(net.decode(ab_reg, logits, 1.0), up, atol=1e-6)
        mid = net.decode(ab_reg, logits, 0.5)
        t = math.exp(0.5 * math.log(0.5) + 0.5 * math.log(0.2))
        cls_mid = torch.nn.functional.interpolate(scale_ab(annealed_mean(logits, net.centres, t)), scale_factor=2,
                                                  mode="bilinear", align_corners=False)
        assert torch.allclose(mid, 0.5 * ab_reg + 0.5 * cls_mid, atol=1e-6)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="vividness"):
            net.decode(ab_reg, logits, bad)


def test_every_parameter_gets_a_gradient():
    from chromalab.training.colornet import ColorNetModule

    net = tiny_net().train()
    module = ColorNetModule(net, np.ones(net.n_bins), hint_p_none=0.0)
    L, ab = lab_batch(4, 16)
    label = torch.tensor([0, 1, 2, -1])
    loss = module.training_step((L, ab, label), 0)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_sample_counts_distribution():
    g = torch.Generator().manual_seed(0)
    n = sample_counts(20000, p_none=0.3, p_geom=0.125, max_points=1000, generator=g)
    assert abs(float((n == 0).float().mean()) - 0.3) < 0.02
    pos = n[n > 0].double()
    assert abs(float(pos.mean()) - 8.0) < 0.3  # 1 + Geometric(1/8): mean 8
    assert int(sample_counts(500, 0.0, 0.01, 5, g).max()) == 5


def test_simulated_hints_carry_the_patch_mean_of_the_truth():
    _, ab = lab_batch(6, 32, seed=1)
    g = torch.Generator().manual_seed(3)
    counts = torch.tensor([0, 1, 3, 5, 8, 2])
    hint, mask = simulate_hints(ab, counts, g)
    assert hint.shape == (6, 2, 32, 32) and mask.shape == (6, 1, 32, 32)
    assert float(mask[0].sum()) == 0 and float(hint[0].abs().sum()) == 0  # no points, nothing
    assert all(float(mask[i].sum()) >= 1 for i in range(1, 6))
    assert float(hint[mask.expand_as(hint) == 0].abs().sum()) == 0  # hints only under the mask
    # a painted value is the mean of the true ab over a patch around its point: within the range of the truth
    hb = unscale_ab(hint[3])[:, mask[3, 0] > 0]
    assert float(hb.min()) >= float(ab[3].min()) - 1e-3 and float(hb.max()) <= float(ab[3].max()) + 1e-3
    # same generator seed, same hints
    hint2, mask2 = simulate_hints(ab, counts, torch.Generator().manual_seed(3))
    assert torch.equal(hint, hint2) and torch.equal(mask, mask2)


def test_single_pixel_hint_is_the_true_colour():
    ab = torch.zeros(1, 2, 16, 16)
    ab[0, 0] = torch.arange(256, dtype=torch.float32).view(16, 16) / 4  # every pixel its own a
    # try seeds until a 1x1 patch is drawn (radius index 0); its value is then the pixel's own ab
    for seed in range(50):
        hint, mask = simulate_hints(ab, torch.tensor([1]), torch.Generator().manual_seed(seed))
        if int(mask.sum()) == 1:
            y, x = (mask[0, 0] > 0).nonzero()[0].tolist()
            assert float(unscale_ab(hint[0, 0, y, x])) == pytest.approx(float(ab[0, 0, y, x]), abs=1e-4)
            break
    else:
        pytest.fail("no 1x1 patch in 50 draws")


def test_rasterize_points():
    hint, mask = rasterize_points([(0.5, 0.5, 40.0, -20.0), (7.9, 3.2, 10.0, 10.0)], 8, 8, radius=1)
    assert mask[0, 0, :2, :2].sum() == 4 and mask[0, 0, 2, 2] == 0  # 3x3 around (0, 0), clipped
    assert float(unscale_ab(hint[0, 0, 0, 0])) == pytest.approx(40.0)
    assert float(unscale_ab(hint[0, 1, 0, 0])) == pytest.approx(-20.0)
    assert mask[0, 0, 2:5, 6:8].sum() == 6  # around (x=7, y=3)


def _reference_auc(t: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Brute force: fraction of pixels within each threshold, raw and with each 10-unit true-ab bin equal."""
    ta, tb = t[:, 0].ravel(), t[:, 1].ravel()
    err = np.hypot(ta - p[:, 0].ravel(), tb - p[:, 1].ravel())
    bins = np.rint(ta / 10).astype(int) * 1000 + np.rint(tb / 10).astype(int)
    raw, rb = [], []
    for thr in range(151):
        ok = err <= thr
        raw.append(ok.mean())
        rb.append(np.mean([ok[bins == q].mean() for q in np.unique(bins)]))
    return float(np.mean(raw)), float(np.mean(rb))


def test_colour_metrics_against_brute_force():
    rng = np.random.default_rng(0)
    t = rng.normal(0, 30, (3, 2, 8, 8))
    p = t + rng.normal(0, 25, t.shape)
    acc = ColorAccumulator()
    acc.update(t[:2], p[:2])
    acc.update(t[2:], p[2:])  # streamed
    m = acc.compute()
    raw, rb = _reference_auc(t, p)
    assert m["auc"] == pytest.approx(raw, abs=1e-12) and m["auc_rb"] == pytest.approx(rb, abs=1e-12)
    gray = ColorAccumulator()
    gray.update(t, np.zeros_like(t))
    assert gray.compute()["cool_recall"] == 0.0  # gray never hits


def test_cool_recall_by_hand():
    def ab_of(chroma, hue_deg):
        return chroma * math.cos(math.radians(hue_deg)), chroma * math.sin(math.radians(hue_deg))

    true = [ab_of(30, 200), ab_of(30, 200), ab_of(30, 140), ab_of(15, 200), ab_of(40, 40)]
    pred = [ab_of(12, 230), ab_of(8, 200), ab_of(30, 80), ab_of(30, 200), ab_of(40, 40)]
    t = np.array(true, dtype=np.float64).T.reshape(1, 2, 1, 5)
    p = np.array(pred, dtype=np.float64).T.reshape(1, 2, 1, 5)
    acc = ColorAccumulator()
    acc.update(t, p)
    # cool pixels: the first three (chroma >= 20, hue 130-300); hits: only the first (chroma 8 too weak,
    # hue 80 is 60 degrees off); the 4th is too weak to count, the 5th is warm
    assert acc.compute()["cool_recall"] == pytest.approx(1 / 3)


def test_labels_for_train_and_val(tiny_zip):
    from chromalab.data.labels import labels_for
    from chromalab.data.source import Source

    src = Source(tiny_zip)
    names = ["tiny-imagenet-200/train/n10000002/images/n10000002_5.JPEG",
             "tiny-imagenet-200/val/images/val_5.JPEG", "tiny-imagenet-200/val/images/val_99999.JPEG"]
    y, ids = labels_for(src, names)
    assert ids == [f"n{10000000 + i:08d}" for i in range(4)]
    assert y.tolist() == [2, 5 % 4, -1]  # val_5 is class 1 in the annotations; an unknown image -1


def test_init_from_widens_the_first_conv_and_keeps_the_function(tmp_path):
    from chromalab.predictors.nets import save_net
    from chromalab.training.run import init_from_weights

    torch.manual_seed(1)
    unet = UNet(width=4, depth=2).eval()
    path = save_net(tmp_path / "u.safetensors", unet, {"input_size": 16})
    net = ColorNet(width=4, depth=2, n_classes=3).eval()
    info = init_from_weights(net, path)
    assert info["widened"] == 1 and info["copied"] > 10
    w = net.stem.conv1.weight
    assert torch.equal(w[:, :1], unet.stem.conv1.weight) and float(w[:, 1:].detach().abs().sum()) == 0
    assert torch.equal(net.head.weight, unet.head.weight)
    # with the fusion passing the local features through, the regression head is the U-Net itself
    cb = net.fuse[0].weight.shape[0]
    with torch.no_grad():
        net.fuse[0].weight.zero_()
        net.fuse[0].weight[:, :cb, 0, 0] = torch.eye(cb)
        net.fuse[0].bias.zero_()
        x = torch.rand(2, 1, 16, 16)
        assert torch.allclose(net.heads(x)[0], unet(x), atol=1e-5)


def test_quick_fit_rows_per_validation(tmp_path, tiny_zip):
    from chromalab.training.run import train_net

    out = tmp_path / "run"
    info = train_net("colornet", preset="quick", data=tiny_zip, out=out, progress=False, log=lambda m: None,
                     overrides={"width": 4, "depth": 2, "train_limit": 64, "batch_size": 16, "val_limit": 32,
                                "test_limit": 16, "num_threads": 1, "epochs": 2, "val_check_interval": 0.5,
                                "log_every_n_steps": 1, "prior_images": 64})
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["progress"]) for r in rows] == [0.5, 1.0, 1.5, 2.0]
    assert [int(r["images"]) for r in rows] == [32, 64, 96, 128]
    assert all(0 <= float(r["val_cool_recall"]) <= 1 and 0 < float(r["val_auc_rb"]) < 1 for r in rows)
    assert info["train_images"] == 128 and info["monitor"] == "val_select"
    best = max(rows, key=lambda r: float(r["val_select"]))
    assert info["best_progress"] == pytest.approx(float(best["progress"]))
    test = json.loads((out / "test.json").read_text())
    assert {"auc", "auc_rb", "cool_recall"} <= set(test)
    assert (out / "loss.png").stat().st_size > 10_000
    import torch as _t

    trace = _t.load(out / "last.ckpt", map_location="cpu", weights_only=True)["callbacks"]
    points = [t for v in trace.values() if isinstance(v, dict) for t in v.get("trace", [])]
    assert len(points) == 8 and all("train_loss" in t for t in points)  # 8 steps, a point every step
