import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.color import lab2rgb, rgb2lab

from chromalab import color


@pytest.fixture
def rgb_u8():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    img[0, 0, 0] = [0, 0, 0]
    img[0, 0, 1] = [255, 255, 255]
    img[0, 0, 2] = [255, 0, 0]
    return img


def test_numpy_lab_matches_skimage(rgb_u8):
    ref = rgb2lab(rgb_u8.astype(np.float64) / 255.0, channel_axis=-1)
    np.testing.assert_allclose(color.rgb_to_lab_np(rgb_u8), ref, atol=2e-4)


def test_fast_lab_matches_skimage(rgb_u8):
    ref = rgb2lab(rgb_u8.astype(np.float64) / 255.0, channel_axis=-1)
    np.testing.assert_allclose(color.rgb_uint8_to_lab_fast(rgb_u8), ref, atol=2e-4)


def test_lab_rgb_round_trip_uint8_exact(rgb_u8):
    lab = color.rgb_uint8_to_lab_fast(rgb_u8)
    L, ab = color.lab_channels_first(lab)
    back = color.compose_rgb_uint8(L, ab)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, rgb_u8)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.just(3))))
def test_lab_rgb_round_trip_is_exact_for_any_image(rgb):
    """Property: every uint8 image survives RGB -> Lab -> (L, ab) -> RGB unchanged (it holds for all 2**24
    colours; hypothesis tries shapes and the extremes)."""
    L, ab = color.lab_channels_first(color.rgb_uint8_to_lab_fast(rgb))
    np.testing.assert_array_equal(color.compose_rgb_uint8(L, ab), rgb)


def test_known_values():
    lab = color.rgb_to_lab_np(np.array([[[255, 255, 255], [0, 0, 0]]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0, 0], [100.0, 0.0, 0.0], atol=1e-2)
    np.testing.assert_allclose(lab[0, 1], [0.0, 0.0, 0.0], atol=1e-3)
    red = color.rgb_to_lab_np(np.array([[[255, 0, 0]]], dtype=np.uint8))[0, 0]
    np.testing.assert_allclose(red, [53.24, 80.09, 67.20], atol=0.02)


def test_torch_matches_numpy(rgb_u8):
    t = torch.from_numpy(rgb_u8).permute(0, 3, 1, 2).float() / 255.0
    lab_t = color.rgb_to_lab_torch(t).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(lab_t, color.rgb_to_lab_np(rgb_u8), atol=2e-3)
    back = color.lab_to_rgb_torch(torch.from_numpy(color.rgb_to_lab_np(rgb_u8)).permute(0, 3, 1, 2))
    np.testing.assert_allclose(back.permute(0, 2, 3, 1).numpy(), rgb_u8 / 255.0, atol=1e-3)
    ref = lab2rgb(color.rgb_to_lab_np(rgb_u8).astype(np.float64), channel_axis=-1)
    np.testing.assert_allclose(back.permute(0, 2, 3, 1).numpy(), ref, atol=1e-3)


def test_torch_lab_to_rgb_gradcheck():
    torch.manual_seed(0)
    L = torch.rand(1, 1, 4, 4, dtype=torch.float64) * 60 + 20
    ab = (torch.rand(1, 2, 4, 4, dtype=torch.float64) - 0.5) * 40
    lab = torch.cat([L, ab], 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: color.lab_to_rgb_torch(x, clip=False), (lab,), eps=1e-6, atol=1e-5)


def test_scaling_round_trip():
    ab = np.linspace(-110, 110, 11)
    np.testing.assert_allclose(color.unscale_ab(color.scale_ab(ab)), ab)
    assert color.scale_L(np.float32(color.L_MAX)) == 1.0


@pytest.mark.parametrize(
    "fn,arr",
    [
        (color.rgb_to_lab_np, np.zeros((4, 4), np.uint8)),
        (color.rgb_to_lab_np, np.zeros((4, 4, 4), np.uint8)),
        (color.lab_to_rgb_np, np.zeros((4, 4, 2))),
        (color.rgb_uint8_to_lab_fast, np.zeros((4, 4, 3), np.float32)),
    ],
)
def test_bad_shapes_raise(fn, arr):
    with pytest.raises(ValueError):
        fn(arr)


def test_compose_rejects_mismatch():
    with pytest.raises(ValueError, match="ab must be"):
        color.compose_rgb_uint8(np.zeros((1, 1, 4, 4)), np.zeros((1, 2, 4, 5)))
    with pytest.raises(ValueError, match="L must be"):
        color.compose_rgb_uint8(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError):
        color.rgb_to_lab_torch(torch.zeros(2, 4, 4))


def test_chroma_mean():
    ab = np.zeros((2, 2, 3, 3), np.float32)
    ab[1, 0] = 3.0
    ab[1, 1] = 4.0
    np.testing.assert_allclose(color.chroma_mean(ab), [0.0, 5.0])
