"""Where chromalab finds and keeps files: the data download, the caches and the bundled weights.

==========================  ==============================================  =====================================
what                        default                                         changed by
==========================  ==============================================  =====================================
the Tiny ImageNet download  ``<user cache>/tiny-imagenet-200.zip``          ``$CHROMALAB_DOWNLOAD_DIR`` (the folder)
the data to use             the download above                              ``--data``, then ``$CHROMALAB_DATA``
prepared (decoded) splits   ``<user cache>/prepared``                       ``$CHROMALAB_CACHE`` (this folder itself)
exported ONNX graphs        ``<user cache>/onnx``                           ``$CHROMALAB_CACHE/onnx``
bundled weights             ``chromalab/weights/<name>.safetensors``        (shipped in the package)
==========================  ==============================================  =====================================

``<user cache>`` is the platform's user cache folder for chromalab (``~/.cache/chromalab`` on Linux).
Every function reads the environment when called, so tests and commands may change it at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA = "CHROMALAB_DATA"
ENV_CACHE = "CHROMALAB_CACHE"
ENV_DOWNLOAD_DIR = "CHROMALAB_DOWNLOAD_DIR"
OFFICIAL_ZIP_NAME = "tiny-imagenet-200.zip"
"""The file name of the official Tiny ImageNet zip, as downloaded."""
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""The bundled models' weights (``<name>.safetensors``, shipped in the package)."""


def user_cache_dir() -> Path:
    """The platform's user cache folder for chromalab."""
    from platformdirs import user_cache_dir as _platform_cache_dir

    return Path(_platform_cache_dir("chromalab"))


def default_download_dir() -> Path:
    """Where ``chromalab data download`` puts the zip: ``$CHROMALAB_DOWNLOAD_DIR``, else the user cache."""
    return Path(os.environ.get(ENV_DOWNLOAD_DIR) or user_cache_dir())


def default_data_file() -> Path:
    """The data used when neither ``--data`` nor ``$CHROMALAB_DATA`` says: the official zip, downloaded."""
    return default_download_dir() / OFFICIAL_ZIP_NAME


def prepared_cache_root() -> Path:
    """The folder of prepared splits (one subfolder per data source): ``$CHROMALAB_CACHE``, else
    ``<user cache>/prepared``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "prepared"


def onnx_cache_dir() -> Path:
    """Where exported ONNX files are cached: ``$CHROMALAB_CACHE/onnx`` or ``<user cache>/onnx``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser() / "onnx"
    return user_cache_dir() / "onnx"


def bundled_weights(stem: str) -> Path:
    """The weights file of a bundled model (it may be missing: not every install ships every model)."""
    return WEIGHTS_DIR / f"{stem}.safetensors"
