import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from chromalab.cli import app
from chromalab.compare import CONFIGS, ROW_KEYS, load_compare_preset, net_overrides

runner = CliRunner()
COLOR_KEYS = ("auc", "auc_rb", "cool_recall")


def test_compare_table_matches_evaluate(tiny_zip, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--preset", "quick", "--data", str(tiny_zip), "--out", str(out),
            "--only", "gray", "--only", "mean-ab", "--only", "pca-ceiling", "--only", "cnn-mse"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in results["rows"]}
    assert set(rows) == {"gray", "mean-ab", "pca-ceiling", "cnn-mse"}
    for f in ("results.md", "results.csv", "index.html", "examples.png", "bars.png"):
        assert (out / f).exists(), f
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    meta = results["meta"]
    for k in ("command", "date", "commit", "data_source", "split_sizes", "excluded", "machine"):
        assert k in meta
    # the table equals what `evaluate` says for the same models on the same test images, colour metrics too
    for name, spec in (("gray", "gray"), ("cnn-mse", str(out / "runs" / "cnn-mse"))):
        j = tmp_path / f"{name}.json"
        r = runner.invoke(app, ["evaluate", spec, "--data", str(tiny_zip), "--json", str(j)])
        assert r.exit_code == 0, r.output
        ev = json.loads(j.read_text())
        for k in ("psnr", "ssim", "mse", "l1", "r2", "cf", "delta_cf", *COLOR_KEYS):
            assert rows[name][k] == pytest.approx(ev[k], rel=1e-6, abs=1e-9), (name, k)
    assert rows["gray"]["cool_recall"] == 0.0 and 0 < rows["gray"]["auc_rb"] < rows["gray"]["auc"] < 1
    assert rows["cnn-mse"]["train_seconds"] > 0
    # images seen: the run's own count for trained rows, none for the references
    run_meta = json.loads((out / "runs" / "cnn-mse" / "run.json").read_text())
    assert rows["cnn-mse"]["train_images"] == run_meta["train_images"] == 64  # 64 train images, 1 epoch
    assert rows["gray"]["train_images"] is None
    assert all(r["vividness"] is None for r in rows.values())  # none of these has a vividness
    # every table carries the colour metrics and the images seen
    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert set(COLOR_KEYS) | {"train_images"} <= set(table[0])
    by_name = {t["name"]: t for t in table}
    assert float(by_name["gray"]["auc_rb"]) == pytest.approx(rows["gray"]["auc_rb"])
    assert by_name["cnn-mse"]["train_images"] == "64"
    md = (out / "results.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    for h in ("AuC ↑", "AuC rebal ↑", "cool recall ↑", "images seen"):
        assert h in header and h in html, h
    assert f"| {rows['gray']['auc_rb']:.4f} |" in md.split("| gray |")[1].splitlines()[0] + "|"
    # a second compare reuses the finished run and the evaluated rows
    docs = tmp_path / "docs"
    res2 = runner.invoke(app, [*args, "--publish", str(docs)])
    assert res2.exit_code == 0, res2.output
    assert "reusing evaluated row" in res2.output
    again = json.loads((out / "results.json").read_text())
    assert again["rows"] == results["rows"]
    assert again["meta"]["reused_runs"] == ["cnn-mse"]
    # --publish: the same report in a docs folder, figures linked from figures/
    published = json.loads((docs / "results.json").read_text())
    assert published["rows"] == results["rows"]
    # ... without this machine's paths: the data as its file name (the output folder keeps the full path)
    assert published["meta"]["data_source"]["path"] == tiny_zip.name
    local = Path(again["meta"]["data_source"]["path"])
    assert local.is_absolute() and local.name == tiny_zip.name
    md = (docs / "RESULTS.md").read_text()
    assert "](figures/examples.png)" in md and (docs / "figures" / "examples.png").exists()
    assert "reused" in md and "cnn-mse" in md


def test_colornet_rows_and_per_config_overrides():
    names = [c.name for c in CONFIGS]
    assert {"colornet", "colornet-noclass"} <= set(names) and len(names) == len(set(names))
    cfg = {c.name: c for c in CONFIGS}
    for preset in ("quick", "full"):
        s = load_compare_preset(preset)
        on, off = net_overrides(cfg["colornet"], s), net_overrides(cfg["colornet-noclass"], s)
        # the ablation differs only by its class-head weight: the same budget
        assert off == {**on, "class_weight": 0} and "class_weight" not in on
    quick = load_compare_preset("quick")
    assert net_overrides(cfg["colornet"], quick)["train_limit"] == 1024  # per-config beats net_overrides
    assert net_overrides(cfg["unet-l1"], quick)["train_limit"] == 2048
    # the row's own overrides beat the preset's
    assert net_overrides(cfg["colornet-noclass"], {"config_overrides": {"colornet-noclass": {
        "class_weight": 0.5, "epochs": 3}}}) == {"class_weight": 0, "epochs": 3}


def test_compare_colornet_pair_at_a_vividness(tiny_zip, tmp_path):
    """The two colornet rows train at the same budget (the ablation: class_weight 0), are evaluated at
    --vividness, match `evaluate --vividness`, and are evaluated again at another vividness."""
    out = tmp_path / "cmp"
    args = ["compare", "--preset", "quick", "--data", str(tiny_zip), "--out", str(out),
            "--only", "gray", "--only", "colornet", "--only", "colornet-noclass"]
    res = runner.invoke(app, [*args, "--vividness", "0.8"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in results["rows"]}
    assert results["meta"]["vividness"] == 0.8
    assert rows["gray"]["vividness"] is None
    for name in ("colornet", "colornet-noclass"):
        assert rows[name]["vividness"] == 0.8 and rows[name]["vividness_option"] == 0.8
        for k in ROW_KEYS:
            if k != "images_per_second":
                assert rows[name][k] is not None, (name, k)
    runs = out / "runs"
    c_on = yaml.safe_load((runs / "colornet" / "config.yaml").read_text())
    c_off = yaml.safe_load((runs / "colornet-noclass" / "config.yaml").read_text())
    assert c_on["arch"] == c_off["arch"] == "colornet"
    assert c_on["class_weight"] > 0 and c_off["class_weight"] == 0
    assert {k: v for k, v in c_on.items() if k != "class_weight"} == {
        k: v for k, v in c_off.items() if k != "class_weight"}
    assert rows["colornet"]["train_images"] == rows["colornet-noclass"]["train_images"] == 64
    # the same first step (seed, data, hints), but only colornet's loss has the class head's cross-entropy in it
    on, off = (next(csv.DictReader((runs / n / "metrics.csv").open())) for n in ("colornet", "colornet-noclass"))
    assert float(on["train_loss"]) - float(off["train_loss"]) > 0.5  # 0.3 x CE over 200 classes (~ln 200)
    md = (out / "results.md").read_text()
    assert "| colornet (vividness 0.8) |" in md and "vividness 0.8 (`--vividness 0.8`)" in md
    # the same number as `chromalab evaluate RUN --vividness 0.8`
    j = tmp_path / "ev.json"
    r = runner.invoke(app, ["evaluate", str(runs / "colornet"), "--data", str(tiny_zip), "--vividness", "0.8",
                            "--json", str(j)])
    assert r.exit_code == 0, r.output
    ev = json.loads(j.read_text())
    for k in ("psnr", "ssim", "cf", *COLOR_KEYS):
        assert rows["colornet"][k] == pytest.approx(ev[k], rel=1e-6, abs=1e-9), k
    # another vividness: the colour rows are evaluated again (and differ), gray's row is reused
    res2 = runner.invoke(app, [*args, "--vividness", "0"])
    assert res2.exit_code == 0, res2.output
    assert res2.output.count("evaluating again") == 2
    rows2 = {r["name"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert rows2["gray"] == rows["gray"]
    assert rows2["colornet"]["vividness"] == 0.0 and rows2["colornet"]["cf"] != rows["colornet"]["cf"]
    # no --vividness: each model's own default, recorded
    res3 = runner.invoke(app, args)
    assert res3.exit_code == 0, res3.output
    rows3 = {r["name"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    from chromalab.registry import load_predictor

    assert rows3["colornet"]["vividness_option"] is None
    assert rows3["colornet"]["vividness"] == pytest.approx(load_predictor(str(runs / "colornet")).vividness)


def test_compare_rejects_a_bad_vividness_before_training(tiny_zip, tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", "--data", str(tiny_zip), "--out", str(out), "--only", "colornet",
                              "--vividness", "1.5"])
    from chromalab.errors import SettingError

    assert isinstance(res.exception, SettingError)  # the CLI's main() prints it as one line, exit 1
    assert "vividness must be a number from 0" in str(res.exception)
    assert not (out / "runs" / "colornet").exists()
