"""`chromalab train linear|svr` end to end on the tiny dataset, then `chromalab evaluate RUN_DIR`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from chromalab.cli import app
from chromalab.errors import ChromalabError

runner = CliRunner()
METRICS = ("psnr", "ssim", "mse", "l1", "r2", "cf", "delta_cf")


def _train(model, tiny_zip, out, *sets):
    args = ["train", model, "--preset", "quick", "--data", str(tiny_zip), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def _check_run(out, kind):
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == kind and run["preset"] == "quick"
    assert run["train_seconds"] > 0
    for f in ("config.yaml", "model.npz", "model.json", "val.json", "test.json", "ceiling_test.json",
              "pca_reconstructions.png", "pca_variance.png"):
        assert (out / f).stat().st_size > 0, f
    test = json.loads((out / "test.json").read_text())
    for k in METRICS:
        assert np.isfinite(test[k]), k
    assert test["split"] == "test" and test["size"] == 64
    ceiling = json.loads((out / "ceiling_test.json").read_text())
    assert ceiling["mse"] < test["mse"]  # nothing in the PCA space beats the projection of the truth
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"] == kind and cfg["preset"] == "quick"
    return run, test


def _evaluate_run(out, tiny_zip, tmp_path, test):
    js = tmp_path / f"{out.name}-eval.json"
    res = runner.invoke(app, ["evaluate", str(out), "--data", str(tiny_zip), "--json", str(js)])
    assert res.exit_code == 0, (res.output, res.exception)
    again = json.loads(js.read_text())
    for k in METRICS:  # the reloaded run reproduces the metrics written at training time
        assert again[k] == pytest.approx(test[k], rel=1e-5, abs=1e-6), k
    # outside images at any size (resized to 64x64 by evaluate)
    from PIL import Image

    folder = tmp_path / f"{out.name}-imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50 + 10 * i, 70, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    res = runner.invoke(app, ["evaluate", str(out), "--images", str(folder), "--json", str(js)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert json.loads(js.read_text())["count"] == 3


def test_train_linear_quick_then_evaluate(tiny_zip, tmp_path):
    out = tmp_path / "linear-quick"
    # no early stopping here, so GD runs to convergence and must meet the closed form
    # (64 train images: one full-batch step per epoch)
    _train("linear", tiny_zip, out, "val_limit=200", "patience=0", "max_epochs=150")
    run, test = _check_run(out, "linear")
    assert (out / "loss.png").exists()
    assert abs(run["closed_form"]["gd_train_mse_rel_diff"]) < 0.01
    best = min(run["alpha_search"], key=lambda r: r["val_mse"])
    assert run["alpha"] == best["alpha"] and run["gd"]["epochs"] == 150
    # the synthetic images are learnable: the model beats predicting nothing
    assert test["r2"] > 0
    _evaluate_run(out, tiny_zip, tmp_path, test)


def test_train_svr_quick_then_evaluate(tiny_zip, tmp_path):
    out = tmp_path / "svr-quick"
    _train("svr", tiny_zip, out, "val_limit=200", "epsilon=0.5")
    run, test = _check_run(out, "svr")
    assert run["model_size"] == 28 and len(run["search"]) == 1
    assert run["selected"]["epsilon"] == 0.5
    assert (out / "selection.png").exists()
    _evaluate_run(out, tiny_zip, tmp_path, test)
    from chromalab.registry import load_predictor

    pred = load_predictor(str(out))
    L = np.full((2, 1, 64, 64), 50.0, dtype=np.float32)
    assert pred.predict_ab(L).shape == (2, 2, 64, 64)
    assert pred.predict_ab(np.full((1, 1, 40, 52), 50.0, dtype=np.float32)).shape == (1, 2, 40, 52)


def test_bad_preset_and_override_are_one_line_errors(tiny_zip, tmp_path):
    res = runner.invoke(app, ["train", "linear", "--preset", "nope", "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ChromalabError)
    assert "unknown linear preset 'nope'" in str(res.exception) and "quick" in str(res.exception)
    res = runner.invoke(app, ["train", "svr", "--out", str(tmp_path / "y"), "--data", str(tiny_zip),
                              "--set", "colour=red"])
    assert isinstance(res.exception, ChromalabError)
    assert "unknown svr config key 'colour'" in str(res.exception)
    res = runner.invoke(app, ["train", "linear", "--out", str(tmp_path / "z"), "--data", str(tiny_zip),
                              "--set", "features=fourier"])
    assert isinstance(res.exception, ChromalabError) and "fourier" in str(res.exception)


def test_broken_run_folder_is_a_clear_error(tmp_path):
    from chromalab.registry import load_predictor

    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"kind": "linear"}))
    with pytest.raises(ChromalabError, match="model.npz: missing"):
        load_predictor(str(out))
    (out / "run.json").write_text(json.dumps({"kind": "svr"}))
    (out / "model.npz").write_bytes(b"garbage")
    (out / "model.json").write_text("{}")
    with pytest.raises(ChromalabError, match="model.npz: unreadable"):
        load_predictor(str(out))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["linear", "svr"])
def test_seed_preset_on_shared_subset_beats_gray(model, shared_zip, tmp_path, monkeypatch):
    """The acceptance run: the seed preset on the real data, R² > 0 and PSNR above gray on test."""
    monkeypatch.delenv("CHROMALAB_CACHE", raising=False)  # reuse the prepared real data
    out = tmp_path / f"{model}-seed"
    res = runner.invoke(app, ["train", model, "--preset", "seed", "--data", str(shared_zip), "--out", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    run = json.loads((out / "run.json").read_text())
    assert run["test"]["r2"] > 0
    from chromalab.data.cache import load_prepared
    from chromalab.evaluate import evaluate_split
    from chromalab.registry import load_predictor

    gray = evaluate_split(load_predictor("gray"), load_prepared(shared_zip).split("test"), progress=False)
    assert run["test"]["psnr"] > gray["psnr"]
    assert run["total_seconds"] < 15 * 60
