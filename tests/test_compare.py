import json

import pytest
from typer.testing import CliRunner

from chromalab.cli import app

runner = CliRunner()


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
    # the table equals what `evaluate` says for the same models on the same test images
    for name, spec in (("gray", "gray"), ("cnn-mse", str(out / "runs" / "cnn-mse"))):
        j = tmp_path / f"{name}.json"
        r = runner.invoke(app, ["evaluate", spec, "--data", str(tiny_zip), "--json", str(j)])
        assert r.exit_code == 0, r.output
        ev = json.loads(j.read_text())
        for k in ("psnr", "ssim", "mse", "l1", "r2", "cf", "delta_cf"):
            assert rows[name][k] == pytest.approx(ev[k], rel=1e-6, abs=1e-9), (name, k)
    assert rows["cnn-mse"]["train_seconds"] > 0
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
    md = (docs / "RESULTS.md").read_text()
    assert "](figures/examples.png)" in md and (docs / "figures" / "examples.png").exists()
    assert "reused" in md and "cnn-mse" in md
