"""A trained torch net as a predictor, and its weights files (safetensors, never pickle).

A weights file holds the net's ``state_dict`` plus JSON strings in the safetensors
metadata: ``arch``, ``arch_kwargs``, ``input_size``, ``loss``, ``config`` (the resolved
training config) and ``format``. :func:`load_net` rebuilds the net from ``arch`` and
``arch_kwargs`` through :data:`ARCHS` (an explicit dict; no string imports).

A ``vivid`` file (arch ``vivid``: a :class:`~chromalab.nets.VividNet`, bin centres in its
``centres`` tensor, default temperature in ``arch_kwargs``) loads as a :class:`VividPredictor`,
whose ``temperature`` changes the annealed-mean decoding. A pix2pix run exports only its
generator, a plain ``unet`` file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._io import atomic_path
from ..color import scale_L, unscale_ab
from ..errors import ChromalabError, ModelError, SettingError
from ..nets import CNN, ColorNet, UNet, VividNet
from ..paths import bundled_weights
from .base import Predictor

WEIGHTS_FORMAT = "chromalab-net/1"

ARCHS: dict[str, type[nn.Module]] = {
    "cnn": CNN,
    "unet": UNet,
    "vivid": VividNet,
    "colornet": ColorNet,
}


def build_net(arch: str, **kwargs) -> nn.Module:
    """A fresh net by architecture name (``cnn``, ``unet``, ``vivid``) and constructor arguments."""
    if arch not in ARCHS:
        raise ModelError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    return ARCHS[arch](**kwargs)


def required_multiple(net: nn.Module) -> int:
    """H and W of the net's input must be multiples of this (its total down-sampling)."""
    return int(getattr(net, "net_stride", 1))


class NetPredictor(Predictor):
    """Wraps a net mapping scaled L ``(B, 1, H, W)`` to scaled ab ``(B, 2, H, W)``.

    The net is put in eval mode and float32 on the CPU. Inputs whose H or W is not a multiple
    of :func:`required_multiple` are reflect-padded up to one and the output cropped back.
    """

    batch_size = 256

    def __init__(self, net: nn.Module, input_size: int | None = 64, name: str = "net", meta: dict | None = None):
        self.net = net.float().eval()
        self.input_size = input_size
        self.name = name
        self.meta = dict(meta or {})

    @property
    def stride(self) -> int:
        return required_multiple(self.net)

    def _predict(self, L: np.ndarray) -> np.ndarray:
        n, _, h, w = L.shape
        m = self.stride
        ph, pw = (-h) % m, (-w) % m
        out = np.empty((n, 2, h, w), dtype=np.float32)
        param = next(self.net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.inference_mode():
            for s in range(0, n, self.batch_size):
                x = scale_L(torch.from_numpy(np.ascontiguousarray(L[s : s + self.batch_size])).to(device))
                if ph or pw:
                    mode = "reflect" if ph < h and pw < w else "replicate"
                    x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
                y = self.net(x)[:, :, :h, :w]
                out[s : s + len(x)] = unscale_ab(y.float()).cpu().numpy()
        return out

    def describe(self) -> dict:
        return {
            "name": self.name,
            "input_size": self.input_size,
            "arch": self.meta.get("arch"),
            "arch_kwargs": self.meta.get("arch_kwargs"),
            "loss": self.meta.get("loss"),
            "parameters": int(sum(p.numel() for p in self.net.parameters())),
        }


class VividPredictor(NetPredictor):
    """A :class:`~chromalab.nets.VividNet` as a predictor; ``temperature`` sets T of the annealed mean."""

    net: VividNet

    @property
    def temperature(self) -> float:
        return float(self.net.temperature)

    @temperature.setter
    def temperature(self, t: float) -> None:
        t = float(t)
        if not (t > 0 and np.isfinite(t)):
            raise ChromalabError(f"{self.name}: temperature must be a positive number, got {t}")
        self.net.temperature = t

    def describe(self) -> dict:
        return {**super().describe(), "temperature": self.temperature, "n_bins": int(self.net.n_bins)}


class ColorNetPredictor(NetPredictor):
    """A :class:`~chromalab.nets.ColorNet` as a predictor.

    ``vividness`` (0 = most accurate .. 1 = most colourful) is the default decoding; a hint net
    also takes colour points through :meth:`predict_controls`.
    """

    net: ColorNet

    @property
    def vividness(self) -> float:
        return float(self.net.vividness)

    @vividness.setter
    def vividness(self, v: float) -> None:
        self.net.vividness = check_vividness(v, self.name)

    @property
    def takes_hints(self) -> bool:
        return bool(self.net.hints)

    def _predict(self, L: np.ndarray) -> np.ndarray:
        return self.predict_controls(L)

    def predict_controls(self, L: np.ndarray, hints: np.ndarray | None = None,
                         vividness: float | None = None) -> np.ndarray:
        """L ``(N, 1, H, W)`` Lab units; hints ``(N, 3, H, W)`` = scaled hint a, b and the 0/1 mask
        (:mod:`chromalab.hints`; None: no hints); vividness (None: the default) -> ab ``(N, 2, H, W)``.
        H, W that are not multiples of :attr:`stride` are padded as in :class:`NetPredictor`."""
        if hints is not None and not self.takes_hints:
            raise SettingError(f"{self.name}: this model takes no colour hints")
        v = self.vividness if vividness is None else check_vividness(vividness, self.name)
        L = np.asarray(L, dtype=np.float32)
        n, _, h, w = L.shape
        m = self.stride
        ph, pw = (-h) % m, (-w) % m
        x = scale_L(L) if hints is None else np.concatenate([scale_L(L), np.asarray(hints, np.float32)], axis=1)
        out = np.empty((n, 2, h, w), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, n, self.batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[s : s + self.batch_size]))
                if ph or pw:  # hint channels are zero-padded (no hint there), L reflected
                    lp = torch.nn.functional.pad(xb[:, :1], (0, pw, 0, ph), mode="reflect" if ph < h and pw < w
                                                 else "replicate")
                    xb = torch.cat([lp, torch.nn.functional.pad(xb[:, 1:], (0, pw, 0, ph))], dim=1)
                y = self.net(xb, v)[:, :, :h, :w]
                out[s : s + len(y)] = unscale_ab(y.float()).numpy()
        return out

    def describe(self) -> dict:
        return {**super().describe(), "vividness": self.vividness, "hints": self.takes_hints,
                "n_bins": int(self.net.n_bins), "n_classes": int(self.net.n_classes)}


def check_vividness(v, name: str = "model") -> float:
    """A vividness as a float in [0, 1], else a one-line :class:`SettingError`."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not (np.isfinite(f) and 0.0 <= f <= 1.0):
        raise SettingError(f"{name}: vividness must be a number from 0 (most accurate) to 1 (most colourful), "
                           f"got {v!r}")
    return f


def wrap_net(net: nn.Module, input_size: int | None = 64, name: str = "net", meta: dict | None = None) -> NetPredictor:
    """The predictor class that fits ``net``: :class:`VividPredictor` for a vivid net,
    :class:`ColorNetPredictor` for a ColorNet, else :class:`NetPredictor`."""
    cls = VividPredictor if isinstance(net, VividNet) else ColorNetPredictor if isinstance(net, ColorNet) \
        else NetPredictor
    return cls(net, input_size=input_size, name=name, meta=meta)


def set_vividness(pred: Predictor, vividness: float | None) -> Predictor:
    """Set a colour model's vividness (None: leave it). Models without one: a one-line error."""
    if vividness is None:
        return pred
    if not isinstance(pred, ColorNetPredictor):
        raise SettingError(f"{pred.name}: this model has no vividness setting (the colour models default and "
                           f"guided have one)")
    pred.vividness = vividness
    return pred


def set_temperature(pred: Predictor, temperature: float | None) -> Predictor:
    """Set T of a vivid model's annealed mean (None: leave it). Other models: a one-line error."""
    if temperature is None:
        return pred
    if not isinstance(pred, VividPredictor):
        raise ChromalabError(f"--temperature applies only to vivid models; {pred.name!r} is a {type(pred).__name__}")
    pred.temperature = temperature
    return pred


def arch_of(net: nn.Module) -> str:
    for name, cls in ARCHS.items():
        if type(net) is cls:
            return name
    raise ModelError(f"{type(net).__name__} is not a registered architecture ({', '.join(ARCHS)})")


def save_net(path, net: nn.Module, meta: dict) -> Path:
    """Write ``net``'s weights and ``meta`` to a safetensors file.

    ``meta`` keys (each stored as a JSON string): ``arch`` and ``arch_kwargs`` (taken from the
    net when absent), ``input_size``, ``loss``, ``config``, anything else JSON-able.
    """
    from safetensors.torch import save_file

    path = Path(path)
    meta = dict(meta)
    meta.setdefault("arch", arch_of(net))
    meta.setdefault("arch_kwargs", getattr(net, "arch_kwargs", {}))
    meta.setdefault("input_size", 64)
    meta["format"] = WEIGHTS_FORMAT
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
    return path


def read_meta(path) -> dict:
    """The metadata of a weights file, JSON-decoded. Raises ModelError naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        return {k: json.loads(v) for k, v in raw.items()}
    except ModelError:
        raise
    except Exception as e:  # safetensors raises its own error types for truncated / garbage files
        raise ModelError(f"{path}: not a readable safetensors weights file ({type(e).__name__}: {e})") from None


def load_net(path, name: str | None = None) -> NetPredictor:
    """A :class:`NetPredictor` from a weights file written by :func:`save_net`."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_meta(path)
    if "arch" not in meta:
        raise ModelError(f"{path}: no 'arch' in the weights metadata (not a chromalab net file)")
    try:
        net = build_net(meta["arch"], **(meta.get("arch_kwargs") or {}))
    except (TypeError, ValueError) as e:
        raise ModelError(f"{path}: cannot rebuild {meta['arch']!r} from {meta.get('arch_kwargs')} ({e})") from None
    try:
        state = load_file(str(path))
        net.load_state_dict(state, strict=True)
    except Exception as e:
        raise ModelError(f"{path}: weights do not fit a {meta['arch']} {meta.get('arch_kwargs')} ({e})") from None
    if name is None:
        name = meta.get("name") or (path.parent.name if path.stem == "best" else path.stem)
    return wrap_net(net, input_size=meta.get("input_size", 64), name=str(name), meta=meta)


def bundled_path(name: str) -> Path:
    return bundled_weights(name)


def load_bundled(name: str, as_name: str | None = None) -> NetPredictor:
    """A model shipped in the package (``src/chromalab/weights/{name}.safetensors``), called ``as_name``."""
    p = bundled_path(name)
    if not p.is_file():
        hint = ""
        if name in ("vivid", "pix2pix"):
            hint = f"; train one with `chromalab train {name} --preset full --out DIR` and pass the run folder DIR"
        raise ModelError(f"bundled model {name!r} is not installed ({p} is missing){hint}")
    return load_net(p, name=as_name or name)
