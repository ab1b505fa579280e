"""Nets (shapes, gradients, overfitting one batch) and the net predictor / weights files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chromalab.color import scale_ab, scale_L
from chromalab.errors import ModelError
from chromalab.nets import CNN, UNet
from chromalab.predictors.nets import (
    ARCHS,
    NetPredictor,
    build_net,
    load_bundled,
    load_net,
    read_meta,
    required_multiple,
    save_net,
)

from .conftest import lab_batch

NETS = {
    "cnn": lambda: CNN(width=8, depth=3),
    "unet": lambda: UNet(width=8, depth=3),
    "unet-res": lambda: UNet(width=8, depth=2, residual=True),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("hw", [(32, 32), (16, 48)])
def test_output_shape(name, hw):
    net = NETS[name]()
    x = torch.rand(3, 1, *hw)
    y = net(x)
    assert y.shape == (3, 2, *hw)
    assert y.dtype == torch.float32
    assert required_multiple(net) == 2 ** net.arch_kwargs["depth"]


def test_tanh_bounds_output():
    net = UNet(width=4, depth=2, out_act="tanh")
    with torch.no_grad():
        y = net(torch.rand(2, 1, 16, 16) * 50)
    assert y.abs().max() <= 1.0
    with pytest.raises(ValueError, match="output activation"):
        UNet(width=4, depth=2, out_act="sigmoid")


@pytest.mark.parametrize("name", NETS)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    net = NETS[name]()
    L, ab = lab_batch(4, 32)
    loss = torch.nn.functional.mse_loss(net(scale_L(L)), scale_ab(ab))
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got an all-zero gradient"


@pytest.mark.parametrize("name", NETS)
def test_overfits_one_batch(name):
    """On one fixed batch the loss drops by >= 90 % and ends below 10 % of the target variance
    (so the drop is fitting, not just shrinking an over-scaled initial output)."""
    torch.manual_seed(0)
    net = NETS[name]()
    L, ab = lab_batch(8, 32)
    x, y = scale_L(L), scale_ab(ab)
    var = float(((y - y.mean(dim=(0, 2, 3), keepdim=True)) ** 2).mean())
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net(x), y)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(torch.nn.functional.mse_loss(net(x), y))
    assert last <= 0.1 * first, f"{name}: loss {first:.4g} -> {last:.4g}"
    assert last <= 0.1 * var, f"{name}: loss {last:.4g} vs target variance {var:.4g}"


def test_build_net_registry():
    assert set(ARCHS) == {"cnn", "unet", "vivid", "colornet"}
    net = build_net("unet", width=4, depth=2, residual=True)
    assert isinstance(net, UNet) and net.arch_kwargs["residual"] is True
    from chromalab.nets import ColorNet

    cn = build_net("colornet", width=4, depth=2, n_classes=5, hints=False)
    assert isinstance(cn, ColorNet) and cn.arch_kwargs["n_classes"] == 5 and cn.hints is False
    with pytest.raises(ModelError, match="unknown architecture 'resnet'"):
        build_net("resnet")


# ---- predictor and weights files -----------------------------------------------------------------
def test_predictor_matches_net_and_scaling():
    torch.manual_seed(0)
    net = UNet(width=4, depth=2).eval()
    pred = NetPredictor(net, input_size=32, name="t")
    L, _ = lab_batch(5, 32)
    ab = pred.predict_ab(L.numpy())
    with torch.no_grad():
        ref = net(L / 100.0).numpy() * 110.0  # hand-written scaling: L/100, ab*110
    np.testing.assert_allclose(ab, ref, rtol=1e-5, atol=1e-4)
    assert ab.shape == (5, 2, 32, 32) and ab.dtype == np.float32
    assert not pred.net.training


def test_predictor_pads_sizes_not_multiple_of_stride():
    torch.manual_seed(0)
    pred = NetPredictor(UNet(width=4, depth=3).eval())
    L = np.random.default_rng(0).uniform(0, 100, (2, 1, 30, 45)).astype(np.float32)
    assert pred.predict_ab(L).shape == (2, 2, 30, 45)
    # a size that is a multiple goes through unpadded: same as calling the net
    L8 = L[:, :, :24, :40]
    with torch.no_grad():
        ref = pred.net(scale_L(torch.from_numpy(np.ascontiguousarray(L8)))).numpy() * 110.0
    np.testing.assert_allclose(pred.predict_ab(L8), ref, rtol=1e-5, atol=1e-4)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = UNet(width=4, depth=2, residual=True)
    net.train()
    net(torch.rand(4, 1, 16, 16))  # move the BatchNorm running statistics off their defaults
    net.eval()
    path = save_net(tmp_path / "best.safetensors", net,
                    {"input_size": 64, "loss": "mse", "config": {"epochs": 3, "lr": 0.002}})
    meta = read_meta(path)
    assert meta["arch"] == "unet"
    assert meta["arch_kwargs"] == {"width": 4, "depth": 2, "residual": True, "out_act": "none"}
    assert meta["config"] == {"epochs": 3, "lr": 0.002} and meta["loss"] == "mse"
    pred = load_net(path)
    assert pred.name == tmp_path.name  # best.safetensors is named after its run folder
    L = np.random.default_rng(1).uniform(0, 100, (3, 1, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(pred.predict_ab(L), NetPredictor(net).predict_ab(L))
    assert pred.describe()["arch"] == "unet"


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelError, match=r"nope\.safetensors: weights file not found"):
        load_net(missing)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ModelError, match=r"bad\.safetensors: not a readable safetensors"):
        load_net(bad)
    good = save_net(tmp_path / "good.safetensors", UNet(width=4, depth=2), {})
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ModelError, match=r"trunc\.safetensors"):
        load_net(truncated)
    with pytest.raises(ModelError, match="bundled model 'no-such-model' is not installed"):
        load_bundled("no-such-model")
