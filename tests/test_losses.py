"""Losses against hand-computed values; the torch SSIM against the canonical metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chromalab.color import lab_to_rgb_np
from chromalab.errors import ChromalabError
from chromalab.metrics import ssim_per_image
from chromalab.training.losses import LOSSES, build_loss, lab_to_rgb01, ssim_torch

# pred - target over 4 values: (0.5, -0.5, 0.1, -0.1) ->  MSE = (0.25+0.25+0.01+0.01)/4 = 0.13,
#                                                           L1  = (0.5+0.5+0.1+0.1)/4   = 0.30
PRED = torch.tensor([0.5, -0.5, 0.1, -0.1]).view(1, 2, 1, 2) + 0.2
TARGET = torch.full((1, 2, 1, 2), 0.2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mse_l1_hybrid_hand_values():
    assert float(build_loss("mse")(PRED, TARGET)) == pytest.approx(0.13)
    assert float(build_loss("l1")(PRED, TARGET)) == pytest.approx(0.30)
    assert float(build_loss("hybrid")(PRED, TARGET)) == pytest.approx(0.5 * 0.13 + 0.5 * 0.30)  # defaults
    assert float(build_loss("hybrid", alpha=2.0, beta=0.1)(PRED, TARGET)) == pytest.approx(2 * 0.13 + 0.1 * 0.30)


def test_ssim_torch_equals_canonical_metric():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 20, 17, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    ref = ssim_per_image(a, b)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).double() / 255
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).double() / 255
    np.testing.assert_allclose(ssim_torch(ta, tb).numpy(), ref, rtol=0, atol=1e-10)
    assert torch.allclose(ssim_torch(ta, ta), torch.ones(3, dtype=torch.float64))


def _const_lab(L, a, b, size=8):
    """A constant Lab image: L (1,1,S,S) Lab units, ab (1,2,S,S) Lab units."""
    return torch.full((1, 1, size, size), float(L)), torch.tensor([a, b], dtype=torch.float32).view(1, 2, 1, 1).expand(
        1, 2, size, size).contiguous()


def test_ssim_hybrid_hand_value_on_constant_images():
    """Constant images have zero variance, so SSIM = (2·μx·μy + C1) / (μx² + μy² + C1) per channel."""
    L, ab_t = _const_lab(60, 20, -10)
    _, ab_p = _const_lab(60, 5, 15)
    t, p = ab_t / 110, ab_p / 110  # the network scaling (color.scale_ab)
    rgb_t = lab_to_rgb_np(np.array([[[60.0, 20.0, -10.0]]]))[0, 0].astype(np.float64)
    rgb_p = lab_to_rgb_np(np.array([[[60.0, 5.0, 15.0]]]))[0, 0].astype(np.float64)
    c1 = 0.01**2
    ssim = np.mean((2 * rgb_t * rgb_p + c1) / (rgb_t**2 + rgb_p**2 + c1))
    d = np.array([5 - 20, 15 - -10]) / 110
    l1, mse = np.abs(d).mean(), (d**2).mean()
    expected = 0.5 * l1 + 0.5 * mse + 1.0 * (1 - ssim)  # documented defaults α = β = 0.5, γ = 1
    got = float(build_loss("ssim-hybrid")(p, t, L))
    assert got == pytest.approx(expected, abs=2e-4)  # kornia vs scikit-image Lab->RGB: ~1e-5
    got2 = float(build_loss("ssim-hybrid", alpha=0, beta=0, gamma=3)(p, t, L))
    assert got2 == pytest.approx(3 * (1 - ssim), abs=3e-4)


def test_ssim_hybrid_zero_at_target_and_differentiable():
    torch.manual_seed(0)
    L = torch.rand(2, 1, 16, 16) * 80 + 10
    target = (torch.rand(2, 2, 16, 16) - 0.5) * 0.4
    loss = build_loss("ssim-hybrid")
    assert float(loss(target, target, L)) == pytest.approx(0.0, abs=1e-6)
    pred = (target + 0.05 * torch.randn_like(target)).requires_grad_()
    value = loss(pred, target, L)
    value.backward()
    assert value > 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs the input L"):
        loss(pred, target, None)


def test_lab_to_rgb01_matches_skimage():
    L, ab = _const_lab(70, -30, 40, size=2)
    rgb = lab_to_rgb01(L, ab / 110)[0, :, 0, 0].numpy()
    np.testing.assert_allclose(rgb, lab_to_rgb_np(np.array([[[70.0, -30.0, 40.0]]]))[0, 0], atol=1e-4)


def test_build_loss_errors():
    assert set(LOSSES) == {"mse", "l1", "hybrid", "ssim-hybrid"}
    with pytest.raises(ChromalabError, match="unknown loss 'huber'"):
        build_loss("huber")
    with pytest.raises(ChromalabError, match="does not take weights"):
        build_loss("mse", alpha=1.0)
