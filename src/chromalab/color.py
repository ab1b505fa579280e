"""CIELAB <-> sRGB conversions and the network scaling, defined once.

NumPy paths use scikit-image (the reference implementation, D65, 2° observer);
torch paths use kornia and are differentiable. Both agree to ~1e-4 Lab units.

Shapes follow kornia's convention:

* numpy images: ``(*, H, W, 3)`` (channels last), as PIL and scikit-image use;
* torch tensors and the predictor contract: ``(*, C, H, W)`` (channels first).

Units: L in 0..100, a/b in Lab units (roughly -110..110 for sRGB colours).
"""

from __future__ import annotations

import numpy as np

# ---- constants: the only place these numbers live --------------------------------
L_MAX = 100.0
"""L (lightness) spans 0..L_MAX."""
AB_SCALE = 110.0
"""Nets see ab / AB_SCALE, roughly in -1..1."""
GRAY_CHROMA_THRESHOLD = 1.0
"""An original whose mean Lab chroma sqrt(a²+b²) is below this counts as near-gray."""


# ---- network scaling ------------------------------------------------------------------
def scale_L(L):  # L is the colour-science name
    """L in 0..100 -> network input in 0..1. Works on numpy arrays and tensors."""
    return L / L_MAX


def scale_ab(ab):
    """ab in Lab units -> network target, about -1..1."""
    return ab / AB_SCALE


def unscale_ab(ab_scaled):
    """Network output (about -1..1) -> ab in Lab units."""
    return ab_scaled * AB_SCALE


# ---- numpy (scikit-image) ---------------------------------------------------------------
def rgb_to_lab_np(rgb: np.ndarray) -> np.ndarray:
    """sRGB -> Lab.

    Args:
        rgb: ``(*, H, W, 3)`` uint8 (0..255) or float (0..1).
    Returns:
        ``(*, H, W, 3)`` float32 Lab (L 0..100, a/b in Lab units).
    """
    from skimage.color import rgb2lab

    rgb = np.asarray(rgb)
    if rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an (*, H, W, 3) RGB array, got shape {rgb.shape}")
    x = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    return rgb2lab(x, channel_axis=-1).astype(np.float32)


def lab_to_rgb_np(lab: np.ndarray) -> np.ndarray:
    """Lab -> sRGB float in 0..1 (clipped).

    Args:
        lab: ``(*, H, W, 3)`` float, L 0..100.
    Returns:
        ``(*, H, W, 3)`` float32 in [0, 1].
    """
    from skimage.color import lab2rgb

    lab = np.asarray(lab)
    if lab.ndim < 3 or lab.shape[-1] != 3:
        raise ValueError(f"expected an (*, H, W, 3) Lab array, got shape {lab.shape}")
    return np.clip(lab2rgb(lab.astype(np.float64), channel_axis=-1), 0.0, 1.0).astype(np.float32)


def to_uint8(rgb01: np.ndarray) -> np.ndarray:
    """Float sRGB 0..1 -> uint8, clipped and rounded (the canonical output image)."""
    return np.clip(np.rint(np.asarray(rgb01, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def compose_rgb_uint8(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Input L + predicted ab -> the output sRGB image.

    Args:
        L: ``(N, 1, H, W)`` Lab L.
        ab: ``(N, 2, H, W)`` Lab a, b.
    Returns:
        ``(N, H, W, 3)`` uint8 sRGB (clipped, rounded).
    """
    L = np.asarray(L)
    ab = np.asarray(ab)
    if L.ndim != 4 or L.shape[1] != 1:
        raise ValueError(f"L must be (N, 1, H, W), got {L.shape}")
    if ab.ndim != 4 or ab.shape[1] != 2 or ab.shape[0] != L.shape[0] or ab.shape[2:] != L.shape[2:]:
        raise ValueError(f"ab must be (N, 2, H, W) matching L {L.shape}, got {ab.shape}")
    lab = np.concatenate([L, ab], axis=1).transpose(0, 2, 3, 1)
    return to_uint8(lab_to_rgb_np(lab))


def lab_channels_first(lab_hwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, H, W, 3)`` Lab -> (L ``(N, 1, H, W)``, ab ``(N, 2, H, W)``), float32."""
    t = np.ascontiguousarray(np.asarray(lab_hwc, dtype=np.float32).transpose(0, 3, 1, 2))
    return t[:, :1], t[:, 1:]


# ---- torch (kornia, differentiable) ------------------------------------------------------
def rgb_to_lab_torch(rgb):
    """sRGB ``(*, 3, H, W)`` float in 0..1 -> Lab ``(*, 3, H, W)``. Differentiable."""
    import kornia.color

    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"expected (*, 3, H, W) RGB tensor, got {tuple(rgb.shape)}")
    return kornia.color.rgb_to_lab(rgb)


def lab_to_rgb_torch(lab, clip: bool = True):
    """Lab ``(*, 3, H, W)`` -> sRGB ``(*, 3, H, W)`` in 0..1. Differentiable.

    With ``clip`` the output is clamped to [0, 1] (the gradient is zero outside).
    """
    import kornia.color

    if lab.ndim < 3 or lab.shape[-3] != 3:
        raise ValueError(f"expected (*, 3, H, W) Lab tensor, got {tuple(lab.shape)}")
    return kornia.color.lab_to_rgb(lab, clip=clip)


def chroma_mean(ab: np.ndarray) -> np.ndarray:
    """Mean Lab chroma sqrt(a²+b²) per image. ab: ``(N, 2, H, W)`` -> ``(N,)``."""
    ab = np.asarray(ab, dtype=np.float32)
    return np.sqrt(ab[:, 0] ** 2 + ab[:, 1] ** 2).reshape(ab.shape[0], -1).mean(axis=1)


# ---- fast uint8 path (data preparation) -------------------------------------------------
# scikit-image's rgb2lab with its own constants (sRGB gamma, D65 / 2° white point, the
# 0.008856 / 7.787 linear segment), but with a 256-entry gamma table and float32 maths:
# about 4x faster than rgb2lab and equal to it within 2e-4 Lab units (tested).
_SRGB_LINEAR = np.arange(256, dtype=np.float64) / 255.0
_SRGB_LINEAR = np.where(
    _SRGB_LINEAR > 0.04045, ((_SRGB_LINEAR + 0.055) / 1.055) ** 2.4, _SRGB_LINEAR / 12.92
).astype(np.float32)
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65 = np.array([0.95047, 1.0, 1.08883])
_XYZN_FROM_RGB_T = np.ascontiguousarray((_XYZ_FROM_RGB / _D65[:, None]).T.astype(np.float32))


def rgb_uint8_to_lab_fast(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``(*, H, W, 3)`` -> float32 Lab ``(*, H, W, 3)`` (skimage-equivalent)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 (*, H, W, 3), got {rgb.dtype} {rgb.shape}")
    xyz = _SRGB_LINEAR[rgb] @ _XYZN_FROM_RGB_T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), xyz * np.float32(7.787) + np.float32(16.0 / 116.0))
    out = np.empty(rgb.shape, dtype=np.float32)
    out[..., 0] = 116.0 * f[..., 1] - 16.0
    out[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    out[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return out


# ---- fast full-size paths (inference) ------------------------------------------------------
# The same scikit-image constants again, in float32 and on separate planes, for photos of any
# size: L from gray/RGB without computing a, b, and Lab -> sRGB about 5x faster than lab2rgb
# (equal to it within 1e-5 in [0, 1], tested).
_Y_FROM_RGB = _XYZ_FROM_RGB[1].astype(np.float32)  # white Y = 1, so no division needed
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB) * _D65[None, :]  # applied to (X/Xn, Y/Yn, Z/Zn)
_RGB_FROM_XYZN_F32 = _RGB_FROM_XYZ.astype(np.float32)


def _f_lab(t: np.ndarray) -> np.ndarray:
    """CIE f(t) with scikit-image's constants (float32)."""
    return np.where(t > np.float32(0.008856), np.cbrt(t), t * np.float32(7.787) + np.float32(16.0 / 116.0))


def _L_from_y(y: np.ndarray) -> np.ndarray:
    return (np.float32(116.0) * _f_lab(y) - np.float32(16.0)).astype(np.float32, copy=False)


_L_FROM_GRAY_U8 = _L_from_y(_SRGB_LINEAR)  # (256,): gray level -> L (R = G = B, so Y = linear value)


def gray_to_L(gray: np.ndarray) -> np.ndarray:
    """Gray sRGB levels -> Lab L (0..100), as rgb2lab gives for R = G = B.

    Args:
        gray: ``(*, H, W)`` uint8 (0..255, a table lookup) or float in 0..1 (e.g. 16-bit / 65535).
    Returns:
        ``(*, H, W)`` float32 L.
    """
    gray = np.asarray(gray)
    if gray.dtype == np.uint8:
        return _L_FROM_GRAY_U8[gray]
    v = np.clip(gray.astype(np.float32), 0.0, 1.0)
    lin = np.where(v > np.float32(0.04045), ((v + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4),
                   v / np.float32(12.92))
    return _L_from_y(lin.astype(np.float32, copy=False))


def rgb_uint8_to_L_fast(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``(*, H, W, 3)`` -> float32 L ``(*, H, W)`` (skimage-equivalent, no a/b computed)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 2 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 (*, H, W, 3), got {rgb.dtype} {rgb.shape}")
    lin = _SRGB_LINEAR
    y = lin[rgb[..., 0]] * _Y_FROM_RGB[0]
    y += lin[rgb[..., 1]] * _Y_FROM_RGB[1]
    y += lin[rgb[..., 2]] * _Y_FROM_RGB[2]
    return _L_from_y(y)


def _finv_lab(t: np.ndarray) -> np.ndarray:
    return np.where(t > np.float32(0.2068966), t * t * t, (t - np.float32(16.0 / 116.0)) * np.float32(1.0 / 7.787))


def lab_planes_to_rgb_fast(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Lab planes -> sRGB float32 in [0, 1], equal to :func:`lab_to_rgb_np` within 1e-5.

    Same steps and constants as scikit-image's lab2rgb (Z < 0 clipped to 0, D65 / 2°,
    sRGB gamma), on float32 planes.

    Args:
        L, a, b: ``(*, H, W)`` float (L 0..100, a/b in Lab units), same shape.
    Returns:
        ``(*, H, W, 3)`` float32 in [0, 1].
    """
    L = np.asarray(L, dtype=np.float32)
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if not (L.shape == a.shape == b.shape):
        raise ValueError(f"L, a, b must have the same shape, got {L.shape}, {a.shape}, {b.shape}")
    fy = (L + np.float32(16.0)) * np.float32(1.0 / 116.0)
    x = _finv_lab(fy + a * np.float32(1.0 / 500.0))
    z = _finv_lab(np.maximum(fy - b * np.float32(1.0 / 200.0), np.float32(0.0)))
    y = _finv_lab(fy)
    m = _RGB_FROM_XYZN_F32
    out = np.empty((*L.shape, 3), dtype=np.float32)
    for c in range(3):
        lin = x * m[c, 0]
        lin += y * m[c, 1]
        lin += z * m[c, 2]
        np.clip(lin, 0.0, 1.0, out=lin)  # the sRGB curve is monotonic with gamma(0) = 0, gamma(1) = 1
        small = lin <= np.float32(0.0031308)
        enc = np.power(lin, np.float32(1.0 / 2.4))
        enc *= np.float32(1.055)
        enc -= np.float32(0.055)
        out[..., c] = np.where(small, lin * np.float32(12.92), enc)
    return out


def lab_to_rgb_fast(lab: np.ndarray) -> np.ndarray:
    """Lab ``(*, H, W, 3)`` -> sRGB ``(*, H, W, 3)`` float32 in [0, 1]; :func:`lab_to_rgb_np`, faster."""
    lab = np.asarray(lab)
    if lab.ndim < 3 or lab.shape[-1] != 3:
        raise ValueError(f"expected an (*, H, W, 3) Lab array, got shape {lab.shape}")
    return lab_planes_to_rgb_fast(lab[..., 0], lab[..., 1], lab[..., 2])


def lab_planes_to_rgb_uint8_fast(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Lab planes ``(*, H, W)`` -> uint8 sRGB ``(*, H, W, 3)``, rounded like :func:`to_uint8`."""
    rgb = lab_planes_to_rgb_fast(L, a, b)
    rgb *= np.float32(255.0)
    np.rint(rgb, out=rgb)
    return rgb.astype(np.uint8)
