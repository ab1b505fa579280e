"""``chromalab export onnx``: write a net's ONNX export and check it against torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..color import AB_SCALE, L_MAX
from ..errors import ChromalabError, ModelError
from ..paths import onnx_cache_dir
from .backends import OrtBackend, lab_wrapper, onnxruntime_available
from .colorizer import DEFAULT_WORK_SIZE
from .onnx_cache import (
    _cached_onnx_candidates,
    _export_tag,
    _sha256_file,
    export_onnx,
    weights_file_for,
)


def export_onnx_cli(model: str = "default", output: Path | None = None) -> Path:
    """``chromalab export onnx``: write the ONNX file (default: the cache inference uses) and check it."""
    import torch

    from ..registry import load_predictor

    pred = load_predictor(model, progress=False)
    net = getattr(pred, "net", None)
    if net is None:
        raise ModelError(f"{model}: not a network model; only nets export to ONNX")
    net.eval()
    weights = weights_file_for(model)
    sha = _sha256_file(weights) if weights is not None else ""
    stride = int(getattr(pred, "stride", None) or getattr(net, "net_stride", None) or 16)
    meta = {"name": model, "input_size": getattr(pred, "input_size", None) or DEFAULT_WORK_SIZE,
            "stride": stride, "export_tag": _export_tag(), "weights_sha256": sha}
    if output is None:
        if weights is None:
            output = Path(f"{Path(model).stem}.onnx")
        else:
            output = _cached_onnx_candidates(weights, sha, onnx_cache_dir())[-1]
    output = Path(output)
    try:
        data = export_onnx(net, output, meta)
    except OSError as e:
        raise ChromalabError(f"{output}: cannot write ({e.strerror or e})") from None
    rng = np.random.default_rng(0)
    L = (rng.random((2, 1, 4 * stride, 5 * stride), dtype=np.float32) * L_MAX).astype(np.float32)
    with torch.inference_mode():
        ref = lab_wrapper(net)(torch.from_numpy(L)).numpy()
    diff = float(np.abs(OrtBackend(data).predict_ab(L) - ref).max()) if onnxruntime_available() else float("nan")
    print(f"wrote {output} ({len(data) / 1e6:.1f} MB); max |onnx - torch| = {diff:.2e} Lab units on a test batch")
    if diff == diff and diff > 1e-4 * AB_SCALE:
        raise ModelError(f"{output}: the ONNX export differs from torch by {diff:.3g}; please report this")
    return output
