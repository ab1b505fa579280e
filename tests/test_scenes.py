"""Scene-like training batches (training/scenes.py): identity when off, mosaics built from other images
with area-mixed class targets, degradations touching only the input L."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chromalab.training.scenes import MIN_TILE, SceneAug, scene_batch

from .conftest import lab_batch


def _batch(n=8, size=32):
    L, ab = lab_batch(n, size, seed=3)
    return L, ab, torch.arange(n) % 5


def test_all_off_is_the_identity():
    L, ab, y = _batch()
    g = torch.Generator().manual_seed(0)
    l_in, ab2, tgt = scene_batch(L, ab, y, 5, SceneAug(), g)
    assert torch.equal(l_in, L) and torch.equal(ab2, ab)
    assert torch.equal(tgt, F.one_hot(y, 5).float())
    assert not SceneAug().active and SceneAug(p_jpeg=0.1).active


def test_mosaic_tiles_are_other_images_resized_and_targets_mix_by_area():
    L, ab, y = _batch(8, 32)
    lab = torch.cat([L, ab], 1)
    g = torch.Generator().manual_seed(1)
    l_in, ab2, tgt = scene_batch(L, ab, y, 5, SceneAug(p_mosaic=1.0), g)
    assert torch.allclose(tgt.sum(1), torch.ones(8))
    out = torch.cat([l_in, ab2], 1)
    for i in range(8):
        # find the cut: every rectangle must equal some batch image resized to it (area filter)
        found = False
        for cy in range(MIN_TILE, 32 - MIN_TILE + 1):
            for cx in range(MIN_TILE, 32 - MIN_TILE + 1):
                boxes = ((0, cy, 0, cx), (0, cy, cx, 32), (cy, 32, 0, cx), (cy, 32, cx, 32))
                srcs = []
                for y0, y1, x0, x1 in boxes:
                    tile = out[i, :, y0:y1, x0:x1]
                    for j in range(8):
                        ref = F.interpolate(lab[j][None], size=(y1 - y0, x1 - x0), mode="area")[0]
                        if torch.allclose(tile, ref, atol=1e-4):
                            srcs.append(j)
                            break
                if len(srcs) == 4:
                    found = True
                    break
            if found:
                break
        assert found, f"image {i} is not a 4-tile mosaic of batch images"
        assert srcs[0] == i and len(set(srcs)) == 4  # the frame's own image in the first tile, then 3 others
        areas = [(y1 - y0) * (x1 - x0) / 1024 for y0, y1, x0, x1 in boxes]
        expect = torch.zeros(5)
        for j, a in zip(srcs, areas, strict=True):
            expect[y[j]] += a
        assert torch.allclose(tgt[i], expect, atol=1e-6)


def test_degradations_change_only_the_input_L():
    L, ab, y = _batch()
    g = torch.Generator().manual_seed(2)
    aug = SceneAug(p_blur=1.0, p_noise=1.0, p_jpeg=1.0, p_tone=1.0)
    l_in, ab2, tgt = scene_batch(L, ab, y, 5, aug, g)
    assert torch.equal(ab2, ab) and torch.equal(tgt, F.one_hot(y, 5).float())
    assert not torch.equal(l_in, L) and l_in.min() >= 0 and l_in.max() <= 100
    d = (l_in - L).abs().mean().item()
    assert 0.5 < d < 25  # changed, yet still the same picture
    assert np.corrcoef(l_in.flatten().numpy(), L.flatten().numpy())[0, 1] > 0.8


def test_blur_keeps_a_flat_image_and_jpeg_is_close():
    from chromalab.training.scenes import _blur, _jpeg

    flat = torch.full((1, 16, 16), 40.0)
    assert torch.allclose(_blur(flat, 1.0), flat, atol=1e-4)
    L, _, _ = _batch(1, 32)
    j = _jpeg(L[0], 90)
    assert j.shape == L[0].shape and (j - L[0]).abs().mean() < 1.5


def test_no_labels_gives_no_target():
    L, ab, _ = _batch()
    _, _, tgt = scene_batch(L, ab, None, 5, SceneAug(p_mosaic=0.5), torch.Generator().manual_seed(0))
    assert tgt is None


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_scene_training_with_photo_selection(tmp_path, tiny_zip, p):
    """A short colornet run with scene inputs and real photos in the selection logs the photo numbers."""
    import csv

    from PIL import Image

    from chromalab.training.run import train_net

    from .test_photos import _scene

    photos = tmp_path / "ph"
    photos.mkdir()
    for k in range(3):
        Image.fromarray(_scene(90, 120, k)).save(photos / f"p{k}.png")
    out = tmp_path / "run"
    train_net("colornet", preset="quick", data=tiny_zip, out=out, progress=False, log=lambda m: None,
              overrides={"width": 4, "depth": 2, "train_limit": 32, "batch_size": 16, "val_limit": 16,
                         "test_limit": 16, "num_threads": 1, "epochs": 1, "prior_images": 32,
                         "scene_p_mosaic": p, "scene_p_blur": p, "photos": str(photos), "photos_long_side": 128})
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows and all(r["photo_gain"] != "" and 0 <= float(r["photo_beat_gray"]) <= 1 for r in rows)
    assert int(float(rows[-1]["photo_floods"])) in range(4)
