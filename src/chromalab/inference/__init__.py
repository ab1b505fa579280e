"""Colorize photos of any size: the model sees a small L, the output keeps the original L.

For every image::

    original (any mode, any size)  --L only-->  L (H, W), Lab 0..100, full size
        L resized to the working size (default: long side 64, multiples of the net's stride)
        -> model -> ab at working size -> bicubic upsampling to (H, W)
        original L + upsampled ab -> sRGB (uint8), alpha of the original kept

so the output has exactly the input's size and its L (up to uint8 rounding), as in Zhang et
al., DeOldify and DDColor. A colour input is reduced to L first, so the result can be
compared with the original.

Backends, picked by :class:`Colorizer` (``backend="auto"``):

* ``onnx``: onnxruntime, for predictors with a torch ``.net``. The net is exported once per
  weights file into the cache (``<cache>/onnx``; ``$CHROMALAB_CACHE/onnx`` when that is set),
  or in memory when the cache is not writable; a ``NAME.onnx`` next to ``NAME.safetensors``
  (e.g. a bundled one) is used when its recorded weights hash matches. A cached export is
  found again from the weights file alone, so ``chromalab colorize`` does not import torch
  at all; the graph onnxruntime optimizes is cached too (per machine).
* ``torch``: the ``.net`` in eager mode (inference mode, batched), when onnxruntime is missing.
* ``numpy``: ``predictor.predict_ab`` for every other model (gray, linear, SVR, ...).

ONNX and torch agree within 1e-4 (scaled units); ``tests/test_inference.py`` checks it.

Thread safety: a :class:`Colorizer` is fully built in ``__init__`` and holds no mutable
state afterwards; :meth:`Colorizer.colorize_image`, :meth:`Colorizer.colorize_batch` and the
step methods may be called from several threads at once (onnxruntime sessions and eval-mode
torch modules in inference mode run concurrently; a ``numpy`` backend is as safe as its
predictor's ``predict_ab``, which for the shipped predictors only reads learned state).
:func:`colorize` caches one Colorizer per model and options behind a lock. Row bands of the
full-size steps run on one small shared thread pool.

What lives where (each module imports only those above it)::

    resample.py     the L resize (Pillow) and the ab upsampling taps (equal to Pillow's)
    bands.py        the shared thread pool for full-size work in row bands
    png.py          the PNG encoder (faster than Pillow's) and save_png, text chunks first
    backends.py     numpy / torch / onnxruntime backends, the Lab wrapper around a net
    onnx_cache.py   ONNX export, cache files and their keys (weights hash, export tag, machine)
    provenance.py   the record of what made an output: PNG text, read back, model fingerprint
    colorizer.py    Colorizer, PreparedImage, and the Python API: get_colorizer, colorize, load_input
    export.py       ``chromalab export onnx``

The ``chromalab colorize`` front end (plans, the local and Ray engines, films) is :mod:`chromalab.batch`;
nothing here imports it.

Every name other modules, tests and benchmarks import from ``chromalab.inference`` is re-exported
here.
"""

from __future__ import annotations

import os  # noqa: F401 - tests patch inference.os.replace (the os module, shared by every file here)

from ..images import DEFAULT_MAX_PIXELS, open_image
from ..paths import onnx_cache_dir
from .backends import NumpyBackend, OrtBackend, TorchBackend, has_controls, onnxruntime_available
from .colorizer import (
    BACKENDS,
    DEFAULT_WORK_SIZE,
    MAX_WORK_SIZE,
    UPSAMPLE,
    WORK_PIXELS_PER_PASS,
    Colorizer,
    PreparedImage,
    colorize,
    get_colorizer,
    load_input,
)
from .export import export_onnx_cli
from .onnx_cache import EXPORT_VERSION, ONNX_OPSET, export_onnx, weights_file_for
from .png import PNG_COMPRESS_LEVEL, encode_png, save_png
from .provenance import (
    PROVENANCE_KEY,
    model_fingerprint,
    provenance_text,
    read_png_text,
    read_provenance,
)
from .provenance import _hints_record as _hints_record
from .provenance import _model_label as _model_label
from .resample import resample_rows, resample_taps, resize_plane

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_WORK_SIZE",
    "EXPORT_VERSION",
    "MAX_WORK_SIZE",
    "ONNX_OPSET",
    "PNG_COMPRESS_LEVEL",
    "PROVENANCE_KEY",
    "UPSAMPLE",
    "WORK_PIXELS_PER_PASS",
    "Colorizer",
    "NumpyBackend",
    "OrtBackend",
    "PreparedImage",
    "TorchBackend",
    "colorize",
    "encode_png",
    "export_onnx",
    "export_onnx_cli",
    "get_colorizer",
    "has_controls",
    "load_input",
    "model_fingerprint",
    "onnx_cache_dir",
    "onnxruntime_available",
    "open_image",
    "provenance_text",
    "read_png_text",
    "read_provenance",
    "resample_rows",
    "resample_taps",
    "resize_plane",
    "save_png",
    "weights_file_for",
]
