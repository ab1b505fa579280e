"""Training of the nets on Lightning: losses, datamodule, LightningModule, the `train` entry point.

``nets/`` holds plain ``nn.Module``s; the LightningModule here receives one. New model
families (pix2pix, vivid) add a module builder in :mod:`chromalab.training.builders`.
"""
