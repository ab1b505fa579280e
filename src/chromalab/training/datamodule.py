"""LightningDataModule over the prepared Lab cache (memory-mapped), with horizontal flips.

Batches (Lab units; the module scales them with ``color.scale_L`` / ``color.scale_ab``):

* train: ``(L (B,1,S,S), ab (B,2,S,S))`` float32;
* val / test: ``(L, ab, rgb (B,S,S,3) uint8)``, rgb being the ground-truth image the
  canonical metrics compare against.

Images are read item by item from the memory-mapped cache (the OS page cache keeps them),
so a map-style dataset and Lightning's own samplers work unchanged with DDP.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.cache import NATIVE_SIZE, Prepared, SplitData, load_prepared


class LabDataset(Dataset):
    """One split of the cache. ``with_rgb`` adds the uint8 ground truth to each item."""

    def __init__(self, split: SplitData, with_rgb: bool = False, labels: np.ndarray | None = None):
        self.split = split
        self.with_rgb = with_rgb
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)  # (n,)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        row = self.split.rows[i]
        lab = torch.from_numpy(np.array(self.split.lab[row], dtype=np.float32))  # (3, S, S)
        if self.with_rgb:
            return lab[:1], lab[1:], torch.from_numpy(np.array(self.split.rgb[row]))
        if self.labels is not None:
            return lab[:1], lab[1:], self.labels[i]
        return lab[:1], lab[1:]


def hflip_half(batch: tuple[torch.Tensor, ...], generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Mirror a random half (each image with probability 0.5) of a batch left-right, all its parts alike.

    ``(B, C, H, W)`` tensors (L, ab) flip their last axis; uint8 ``(B, H, W, 3)`` images their
    width axis; per-image values ``(B,)`` (class labels) stay as they are.
    """
    L = batch[0]
    mask = torch.rand(L.shape[0], device="cpu", generator=generator) < 0.5
    mask = mask.to(L.device)

    def flip(t: torch.Tensor) -> torch.Tensor:
        if t.ndim < 3:
            return t
        axis = 2 if (t.dtype == torch.uint8 and t.shape[-1] == 3) else t.ndim - 1
        m = mask.view(-1, *([1] * (t.ndim - 1)))
        return torch.where(m, t.flip(axis), t)

    return tuple(flip(t) for t in batch)


class ColorDataModule(pl.LightningDataModule):
    """Train / val / test splits of a prepared Tiny ImageNet source.

    Args:
        data: zip or folder (None: $CHROMALAB_DATA or the download location).
        size: image size (a prepared size: 64 or 28).
        train_limit, val_limit, test_limit: use only the first N images of a split (None: all).
        batch_size: training batch; validation uses twice that.
        flip: horizontal-flip augmentation on training batches.
        num_workers: DataLoader worker processes (0: load in the training process).
        labels: train batches carry each image's class label ``(B,)`` int64 (``data.labels``).
    """

    def __init__(self, data=None, size: int = NATIVE_SIZE, train_limit: int | None = None,
                 val_limit: int | None = None, test_limit: int | None = None, batch_size: int = 64,
                 flip: bool = True, num_workers: int = 0, progress: bool = True, labels: bool = False):
        super().__init__()
        self.data = data
        self.size = size
        self.train_limit, self.val_limit, self.test_limit = train_limit, val_limit, test_limit
        self.batch_size = batch_size
        self.flip = flip
        self.num_workers = num_workers
        self.progress = progress
        self.labels = labels
        self.prep: Prepared | None = None

    def prepare_data(self) -> None:
        load_prepared(self.data, progress=self.progress)  # builds the cache once (rank 0)

    def setup(self, stage: str | None = None) -> None:
        self.prepared()

    def prepared(self) -> Prepared:
        """The prepared cache, loaded on first use."""
        if self.prep is None:
            self.prep = load_prepared(self.data, progress=False)
        return self.prep

    def split(self, name: str) -> SplitData:
        limit = {"train": self.train_limit, "val": self.val_limit, "test": self.test_limit}[name]
        return self.prepared().split(name, size=self.size, limit=limit)

    def _loader(self, ds: Dataset, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        split = self.split("train")
        labels = None
        if self.labels:
            from ..data.labels import labels_for
            from ..data.source import Source

            labels, _ = labels_for(Source(self.prepared().source["path"]), split.names)
        ds = LabDataset(split, labels=labels)
        drop = len(ds) >= self.batch_size  # a single short batch is still better than none
        return self._loader(ds, self.batch_size, shuffle=True, drop_last=drop)

    def val_dataloader(self) -> DataLoader:
        return self._loader(LabDataset(self.split("val"), with_rgb=True), 2 * self.batch_size, False, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(LabDataset(self.split("test"), with_rgb=True), 2 * self.batch_size, False, False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.flip and self.trainer is not None and self.trainer.training:
            batch = hflip_half(batch)
        return batch
