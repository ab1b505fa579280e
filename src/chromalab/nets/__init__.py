"""Plain ``nn.Module`` colorization networks: scaled L ``(B, 1, H, W)`` -> scaled ab ``(B, 2, H, W)``.

They know nothing of Lightning, losses or data: ``training/module.py`` receives one, and
``predictors/nets.py`` wraps one as a predictor. Each net exposes

* ``net_stride``: H and W must be multiples of it (``2 ** depth``);
* ``arch_kwargs``: the constructor arguments, so weights files can rebuild it.

The vivid net (:class:`VividNet`) keeps that contract in ``forward`` and adds ``logits``; the
PatchGAN discriminator (:class:`PatchGAN`) judges (L, ab) pairs for the pix2pix cGAN. The
default colorizer (:class:`ColorNet`) adds colour-class and semantic heads, a vividness and
optional colour hints.
"""

from .cnn import CNN
from .colornet import ColorNet
from .patchgan import PatchGAN
from .unet import UNet
from .vivid import VividNet

__all__ = ["CNN", "ColorNet", "PatchGAN", "UNet", "VividNet"]
