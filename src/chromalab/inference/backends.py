"""The three ways a :class:`~chromalab.inference.Colorizer` runs a model, all ``predict_ab(L, hints,
vividness)`` on L ``(B, 1, h, w)`` in Lab units -> ab ``(B, 2, h, w)`` in Lab units:

* :class:`OrtBackend`: an onnxruntime session on the exported net (see :mod:`.onnx_cache`);
* :class:`TorchBackend`: the net in eager mode, when onnxruntime is missing;
* :class:`NumpyBackend`: ``predictor.predict_ab`` for models without a torch net.

:func:`lab_wrapper` is the torch module both the torch backend and the ONNX export run: it takes
and gives Lab units, so the scaling lives in the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import finish_temp, temp_path_beside
from ..color import scale_L, unscale_ab


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def lab_wrapper(net):
    """torch module: L ``(B, 1, H, W)`` in Lab units -> ab ``(B, 2, H, W)`` in Lab units.

    For a net with controls (:func:`has_controls`: the colour models) the module takes
    ``(L, hints (B, 3, H, W), vividness (1,))`` (:mod:`chromalab.hints`), as its ONNX export does.
    """
    import torch

    class LabNet(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, L):
            return unscale_ab(self.inner(scale_L(L)))

    class ControlNet(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.hints = bool(inner.hints)

        def forward(self, L, hints, vividness):
            x = torch.cat([scale_L(L), hints], dim=1) if self.hints else scale_L(L)  # (B, 4 or 1, H, W)
            return unscale_ab(self.inner(x, vividness))

    return (ControlNet if has_controls(net) else LabNet)(net).eval()


def has_controls(net) -> bool:
    """Whether a net takes colour hints and a vividness (a :class:`~chromalab.nets.ColorNet`)."""
    return hasattr(net, "vividness") and hasattr(net, "hints") and hasattr(net, "heads")


def _no_hints(L: np.ndarray) -> np.ndarray:
    return np.zeros((L.shape[0], 3, *L.shape[2:]), dtype=np.float32)


class NumpyBackend:
    name = "numpy"

    def __init__(self, predictor):
        self.predictor = predictor
        self.controls = hasattr(predictor, "predict_controls")

    def predict_ab(self, L: np.ndarray, hints: np.ndarray | None = None,
                   vividness: float | None = None) -> np.ndarray:
        if self.controls:
            return self.predictor.predict_controls(L, hints, vividness)
        return self.predictor.predict_ab(L)


class TorchBackend:
    name = "torch"

    def __init__(self, net, channels_last: bool = False):
        self.module = lab_wrapper(net)
        self.controls = has_controls(net)
        self.vividness = float(net.vividness) if self.controls else None
        self.channels_last = channels_last
        if channels_last:
            import torch

            self.module = self.module.to(memory_format=torch.channels_last)

    def predict_ab(self, L: np.ndarray, hints: np.ndarray | None = None,
                   vividness: float | None = None) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(L, dtype=np.float32))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.controls:
                h = torch.from_numpy(np.ascontiguousarray(_no_hints(L) if hints is None else hints, dtype=np.float32))
                v = torch.tensor([self.vividness if vividness is None else vividness], dtype=torch.float32)
                y = self.module(x, h, v)
            else:
                y = self.module(x)
        return np.ascontiguousarray(y.float().numpy(), dtype=np.float32)


class OrtBackend:
    """An onnxruntime session (CPU). ``save_optimized``: also write the session's optimized graph
    there (machine-specific; loaded later with ``optimized=True``, which skips re-optimizing)."""

    name = "onnx"

    def __init__(self, model: str | bytes, threads: int | None = None, optimized: bool = False,
                 save_optimized: Path | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if optimized
                                       else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        tmp = None
        if save_optimized is not None:
            try:
                save_optimized.parent.mkdir(parents=True, exist_ok=True)
                tmp = temp_path_beside(save_optimized)
                so.optimized_model_filepath = str(tmp)
            except OSError:
                tmp = None
        try:
            self.session = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception:
            if tmp is None:
                raise
            tmp.unlink(missing_ok=True)
            so.optimized_model_filepath = ""
            tmp = None
            self.session = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        if tmp is not None and save_optimized is not None:
            try:
                finish_temp(tmp, save_optimized)
            except OSError:
                tmp.unlink(missing_ok=True)
        self.input = self.session.get_inputs()[0].name
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.controls = len(self.session.get_inputs()) == 3  # L, hints, vividness
        self.vividness = float(self.meta.get("vividness", "nan")) if self.controls else None

    def predict_ab(self, L: np.ndarray, hints: np.ndarray | None = None,
                   vividness: float | None = None) -> np.ndarray:
        feed = {self.input: np.ascontiguousarray(L, dtype=np.float32)}
        if self.controls:
            feed["hints"] = np.ascontiguousarray(_no_hints(L) if hints is None else hints, dtype=np.float32)
            feed["vividness"] = np.array([self.vividness if vividness is None else vividness], dtype=np.float32)
        out = self.session.run(None, feed)[0]
        return np.asarray(out, dtype=np.float32)
