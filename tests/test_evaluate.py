import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from chromalab.cli import app
from chromalab.data.cache import load_prepared
from chromalab.errors import ModelError
from chromalab.evaluate import evaluate_images, evaluate_split
from chromalab.metrics import psnr_per_image
from chromalab.predictors.baselines import GrayPredictor, MeanAbPredictor
from chromalab.registry import load_predictor

from .conftest import synth_image

runner = CliRunner()


def test_gray_and_mean_ab_on_split(tiny_zip):
    prep = load_prepared(tiny_zip, progress=False)
    test = prep.split("test")
    m = evaluate_split(GrayPredictor(), test, progress=False)
    L, ab, rgb = test.arrays()
    from chromalab.color import compose_rgb_uint8

    expected = psnr_per_image(rgb, compose_rgb_uint8(L, np.zeros_like(ab))).mean()
    assert m["psnr"] == pytest.approx(expected, abs=1e-9)
    assert m["count"] == 37 and m["excluded"] == 0  # the 3 gray val images sit in the val range
    assert m["cf"] == pytest.approx(0.0, abs=0.5)
    mean = prep.mean_ab()
    tr_ab = prep.split("train").arrays()[1]
    np.testing.assert_allclose(mean, tr_ab.mean(axis=(0, 2, 3)), rtol=1e-5)
    m2 = evaluate_split(MeanAbPredictor(mean), test, progress=False)
    assert m2["r2"] > m["r2"]


def test_evaluate_cli_json(tiny_zip, tmp_path):
    out = tmp_path / "m.json"
    res = runner.invoke(app, ["evaluate", "gray", "--data", str(tiny_zip), "--split", "val,test", "--json", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    for k in ("psnr", "ssim", "mse", "l1", "mse_rgb", "l1_rgb", "r2", "cf", "delta_cf", "auc", "auc_rb",
              "cool_recall", "count", "excluded"):
        assert k in m
    assert m["count"] == 1037 and m["excluded"] == 3
    # gray: never a cool hit; near-gray pixels dominate the raw AuC, the rebalanced one counts each colour bin
    assert m["cool_recall"] == 0.0 and 0 < m["auc_rb"] < m["auc"] < 1
    for head in ("AuC", "AuC rebal", "cool recall"):
        assert head in res.output
    assert f"{m['auc_rb']:.4f}" in res.output


def test_evaluate_images_folder_and_zip_any_size(tmp_path):
    rng = np.random.default_rng(5)
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    imgs = {}
    for i in range(4):
        arr = synth_image(rng, size=64)
        big = Image.fromarray(arr).resize((100 + 7 * i, 80), Image.Resampling.BICUBIC)
        name = f"sub/img{i}.png" if i % 2 else f"img{i}.jpg"
        big.save(folder / name)
        imgs[name] = big
    Image.fromarray(synth_image(rng)).convert("L").save(folder / "gray.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    m = evaluate_images(GrayPredictor(), folder, progress=False)
    assert m["count"] == 4 and m["excluded"] == 1 and m["unreadable"] == 1
    assert "broken.jpg" in m["unreadable_files"][0]
    z = tmp_path / "imgs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    mz = evaluate_images(GrayPredictor(), z, progress=False)
    assert mz["count"] == 4 and mz["psnr"] == pytest.approx(m["psnr"])
    res = runner.invoke(app, ["evaluate", "gray", "--images", str(folder)])
    assert res.exit_code == 0, res.output
    assert "broken.jpg" in res.output


def test_unknown_model_is_one_line_error(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        load_predictor("nope")
    with pytest.raises(ModelError, match="not a run folder"):
        load_predictor(str(tmp_path))


def test_predictor_contract_checks_shapes():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        GrayPredictor().predict_ab(np.zeros((2, 3, 8, 8), np.float32))
    ab = GrayPredictor().predict_ab(np.zeros((2, 1, 8, 9), np.float32))
    assert ab.shape == (2, 2, 8, 9) and ab.dtype == np.float32
