"""ONNX export of a net and the cache of exports, keyed by the weights' hash and the export tag.

A cached export is found again from the weights file alone (no torch, no predictor), and the graph
onnxruntime optimizes is cached too, per machine (:func:`_machine_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .._io import atomic_write_bytes
from ..color import AB_SCALE, L_MAX
from ..paths import bundled_weights
from .backends import OrtBackend, has_controls, lab_wrapper

ONNX_OPSET = 17
EXPORT_VERSION = 2  # 2: the colour models' graphs take hints and a vividness
"""Bump when the exported graph changes (part of the ONNX cache key)."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _export_tag() -> str:
    """What, besides the weights, the exported graph depends on."""
    return f"v{EXPORT_VERSION}-op{ONNX_OPSET}-L{L_MAX:g}-ab{AB_SCALE:g}"


def weights_file_for(spec: str) -> Path | None:
    """The net weights file a model spec names (bundled name, run folder, .safetensors), if any."""
    from ..registry import REGISTRY

    if spec in REGISTRY:
        if REGISTRY[spec].group != "bundled":
            return None
        p = bundled_weights(REGISTRY[spec].weights_stem)
        return p if p.is_file() else None
    p = Path(spec).expanduser()
    if p.is_dir() and (p / "run.json").is_file():
        try:
            kind = json.loads((p / "run.json").read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            return None
        w = p / "best.safetensors"
        return w if kind == "net" and w.is_file() else None
    if p.is_file() and p.suffix == ".safetensors":
        return p
    return None


def _machine_key() -> str:
    """onnxruntime version + CPU model and flags: an optimized graph is only valid for these."""
    import platform

    import onnxruntime as ort

    info = f"{ort.__version__}|{platform.machine()}|{platform.processor()}"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features")):
                    info += "|" + line.strip()
                if line.strip() == "":
                    break  # the first CPU is enough
    except OSError:
        pass
    return hashlib.sha1(info.encode()).hexdigest()[:12]


def export_onnx(net, path: str | os.PathLike | None = None, meta: dict | None = None) -> bytes:
    """Export a colorization net (scaled L -> scaled ab) as ONNX taking L and giving ab in Lab units.

    Batch, height and width are dynamic. ``meta`` is stored as ONNX metadata (strings). Written
    atomically to ``path`` when given; the model bytes are returned either way.
    """
    import io
    import warnings

    import torch

    module = lab_wrapper(net)
    stride = int(getattr(net, "net_stride", 16) or 16)
    x = torch.rand(2, 1, 4 * stride, 3 * stride) * L_MAX
    args: tuple = (x,)
    names = ["L"]
    axes = {"L": {0: "batch", 2: "height", 3: "width"}, "ab": {0: "batch", 2: "height", 3: "width"}}
    if has_controls(net):  # the colour models: hint channels and the vividness are inputs too
        args = (x, torch.zeros(2, 3, 4 * stride, 3 * stride), torch.tensor([0.5]))
        names = ["L", "hints", "vividness"]
        axes["hints"] = {0: "batch", 2: "height", 3: "width"}
        meta = {**(meta or {}), "vividness": float(net.vividness), "hints": int(bool(net.hints))}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module, args, buf, input_names=names, output_names=["ab"], opset_version=ONNX_OPSET,  # type: ignore[arg-type]
                dynamic_axes=axes, dynamo=False,
            )
        except TypeError:  # a torch without the legacy exporter switch
            torch.onnx.export(module, args, buf, input_names=names, output_names=["ab"], opset_version=ONNX_OPSET,  # type: ignore[arg-type]
                              dynamic_axes=axes)
    data = buf.getvalue()
    if meta:
        import onnx

        m = onnx.load_from_string(data)
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key, p.value = str(k), str(v)
        data = m.SerializeToString()
    if path is not None:
        atomic_write_bytes(Path(path), data)
    return data


def _cached_onnx_candidates(weights: Path, sha: str, cache: Path | None) -> list[Path]:
    """Bundled sibling (``default.onnx`` next to ``default.safetensors``) first, then the cache."""
    out = [weights.with_suffix(".onnx")]
    if cache is not None:
        out.append(cache / f"{sha[:32]}-{_export_tag()}.onnx")
    return out


def _open_cached_onnx(weights: Path, sha: str, cache: Path | None, threads: int | None = None):
    """An ORT backend from a cached or bundled export of ``weights`` (checked by hash), or None.
    ``threads``: onnxruntime's intra-op threads (None: its default, one per core).

    The graph onnxruntime optimizes on first load is kept in the cache (per machine), so later
    processes skip that step (~50-150 ms for a U-Net)."""
    opt = cache / f"{sha[:32]}-{_export_tag()}-opt-{_machine_key()}.onnx" if cache is not None else None

    def valid(be) -> bool:
        return be.meta.get("weights_sha256") == sha and be.meta.get("export_tag") == _export_tag()

    if opt is not None and opt.is_file():
        try:
            be = OrtBackend(str(opt), threads, optimized=True)
            if valid(be):
                return be
        except Exception:  # noqa: BLE001, S110 - stale or broken: rebuild it below
            pass
    for p in _cached_onnx_candidates(weights, sha, cache):
        if not p.is_file():
            continue
        try:
            be = OrtBackend(str(p), threads, save_optimized=opt)
        except Exception:  # noqa: BLE001 - a broken cache file: ignore it, re-export
            continue
        if valid(be):
            return be
        if opt is not None:
            opt.unlink(missing_ok=True)
    return None
