"""The validated configs of every trainer (nets, linear, svr, compare): one-line errors naming the key,
and a run's saved config.yaml given back as --preset re-runs the run exactly."""

from __future__ import annotations

import csv
import json
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from chromalab.classical import resolve_config as resolve_classical
from chromalab.classical.config import write_config
from chromalab.cli import app
from chromalab.compare_config import CompareSettings, load_compare_preset
from chromalab.config import CONFIG_DIR, build
from chromalab.errors import ChromalabError
from chromalab.training.config import FIXED_LOSS, NET_FAMILIES, NetConfig, write_run_config
from chromalab.training.run import resolve_config

runner = CliRunner()


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(ChromalabError) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_net_config_errors_name_the_key_and_where_it_was_set(tmp_path):
    assert "--set: unknown config key 'epoch'" in _error(resolve_config, "unet", "mse", "quick", {"epoch": 2})
    assert _error(resolve_config, "unet", "mse", "quick", {"epochs": "two"}) == \
        "--set: epochs: input should be a valid integer (got 'two')"
    assert "--set: width: input should be a valid integer (got True)" in \
        _error(resolve_config, "unet", "mse", "quick", {"width": True})
    assert "trainer options: precision: input should be" in \
        _error(resolve_config, "unet", "mse", "quick", trainer_overrides={"precision": "17"})
    assert "--set: val_check_interval: input should be less than or equal to 1 (got 2.0)" in \
        _error(resolve_config, "unet", "mse", "quick", {"val_check_interval": 2.0})
    preset = tmp_path / "mine.yaml"
    preset.write_text(textwrap.dedent("""
        common: {epochs: 3}
        unet: {lr: fast}
    """))
    assert _error(resolve_config, "unet", "mse", str(preset)) == f"{preset} [unet]: lr: input should be a valid number (got 'fast')"
    preset.write_text("common: {epochs: 3}\nmodels: {}\n")
    assert "unknown section(s) ['models']" in _error(resolve_config, "unet", "mse", str(preset))
    assert "unknown loss 'huber'" in _error(resolve_config, "unet", "huber", "quick")
    # lenient where it always was: ints for floats, the documented defaults
    cfg = resolve_config("unet", "mse", "quick", {"lr": 1, "limit_train_batches": 2})
    assert cfg.lr == 1.0 and cfg.limit_train_batches == 2 and isinstance(cfg.limit_train_batches, int)
    assert NetConfig().model_dump()["epochs"] == 10 and NetConfig().precision == "32-true"


def test_classical_config_errors_name_the_key():
    assert _error(resolve_classical, "linear", "quick", {"max_epochs": 1.5}) == \
        "--set: max_epochs: input should be a valid integer (got 1.5)"
    assert "--set: unknown svr config key 'colour'" in _error(resolve_classical, "svr", "quick", {"colour": "red"})
    assert "--set: features: unknown kind 'fourier'" in _error(resolve_classical, "linear", "quick", {"features": "fourier"})
    assert "grid must be a divisor of size 64" in _error(resolve_classical, "linear", "quick", {"grid": 7})
    assert "--set: C: list should have at least 1 item" in _error(resolve_classical, "svr", "quick", {"C": []})
    assert "--set: alphas.1: input should be greater than or equal to 0 (got -1)" in \
        _error(resolve_classical, "linear", "quick", {"alphas": [1, -1]})
    assert resolve_classical("svr", "quick", {"epsilon": 0.5}).epsilon == [0.5]  # one number: a grid of one
    assert resolve_classical("linear", "quick", {"alphas": [1, 10]}).alphas == [1.0, 10.0]


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_saved_net_config_resolves_to_the_same_config(preset, tmp_path):
    for arch in NET_FAMILIES:
        loss = None if arch in FIXED_LOSS else "hybrid"
        cfg = resolve_config(arch, loss, preset, {"epochs": 1, "data": str(tmp_path / "data.zip")})
        saved = tmp_path / f"{arch}.yaml"
        write_run_config(saved, cfg)
        assert saved.read_text().startswith("# resolved config of this run")
        again = resolve_config(arch, None, str(saved))
        assert again == cfg and again.preset == preset  # the saved config keeps the preset it came from
        assert resolve_config(arch, None, str(saved), {"epochs": 2}).epochs == 2  # --set still applies
        other = "cnn" if arch != "cnn" else "unet"
        assert f"this config trains {arch!r}, not {other!r}" in _error(resolve_config, other, "mse", str(saved))
    assert "not 'l1'; leave out --loss" in _error(resolve_config, "colornet", "l1", str(tmp_path / "colornet.yaml"))


@pytest.mark.parametrize("model", ["linear", "svr"])
def test_saved_classical_config_resolves_to_the_same_config(model, tmp_path):
    for preset in ("quick", "seed"):
        cfg = resolve_classical(model, preset, {"seed": 3})
        saved = tmp_path / f"{model}-{preset}.yaml"
        write_config(saved, cfg)
        assert resolve_classical(model, str(saved)) == cfg
    other = "svr" if model == "linear" else "linear"
    assert f"this config is for {model!r}, not {other!r}" in _error(resolve_classical, other, str(saved))


def test_compare_presets_are_validated():
    raw = yaml.safe_load((CONFIG_DIR / "compare.yaml").read_text())
    for preset in ("quick", "full"):
        assert load_compare_preset(preset) == raw[preset]
    assert "unknown compare preset 'nope'" in _error(load_compare_preset, "nope")
    ok = {"classical_preset": "quick", "net_preset": "quick"}
    assert build(CompareSettings, ok, "x").model_dump()["net_overrides"] == {}
    for bad, expected in [
        ({"classical_preset": "quick"}, "x: net_preset is missing"),
        ({**ok, "net_overrides": {"epoch": 1}}, "x: net_overrides: unknown net config key 'epoch'"),
        ({**ok, "config_overrides": {"colornet": {"wdith": 4}}}, "x: config_overrides: colornet: unknown net config key"),
        ({**ok, "classical_overrides": {"colour": 1}}, "x: classical_overrides: unknown classical config key 'colour'"),
        ({**ok, "net_preset": "fast"}, "x: unknown net preset 'fast'"),
        ({**ok, "test_limit": "all"}, "x: test_limit: input should be a valid integer (got 'all')"),
    ]:
        assert _error(build, CompareSettings, bad, "x").startswith(expected)


TINY_SETS = ["width=4", "depth=2", "batch_size=16", "train_limit=64", "val_limit=32", "test_limit=16",
             "num_threads=1", "epochs=1"]
"""A net and data small enough for seconds of training (as test_training's TINY), one thread: deterministic."""
TIMING = {"train_seconds", "images_per_second", "wall_seconds_last_session", "finished_at", "torch_threads", "seconds"}
"""run.json / test.json keys that measure time, not the model."""


def _read(run):
    with (run / "metrics.csv").open() as f:
        rows = [{k: v for k, v in r.items() if k != "train_seconds"} for r in csv.DictReader(f)]
    info = {k: v for k, v in json.loads((run / "run.json").read_text()).items() if k not in TIMING}
    test = {k: v for k, v in json.loads((run / "test.json").read_text()).items() if k not in TIMING | {"name"}}
    test["model"] = {k: v for k, v in test["model"].items() if k != "name"}  # the run folder's name
    return rows, info, test


def test_saved_run_config_reruns_exactly(tiny_zip, tmp_path):
    """`chromalab train unet --preset RUN/config.yaml` trains the same run again: same metrics, same weights."""
    from safetensors.torch import load_file

    first, second = tmp_path / "first", tmp_path / "second"
    args = ["train", "unet", "--loss", "mse", "--preset", "quick", "--data", str(tiny_zip), "--out", str(first),
            "--accelerator", "cpu", "--devices", "1"]
    for s in TINY_SETS:
        args += ["--set", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    # no --loss, no --data, no --set: everything comes from the saved config
    res = runner.invoke(app, ["train", "unet", "--preset", str(first / "config.yaml"), "--out", str(second)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert (second / "config.yaml").read_text() == (first / "config.yaml").read_text()
    rows, info, test = _read(first)
    assert len(rows) == 1 and info["preset"] == "quick" and test["count"] == 16
    assert _read(second) == (rows, info, test)
    w1, w2 = load_file(str(first / "best.safetensors")), load_file(str(second / "best.safetensors"))
    assert w1.keys() == w2.keys() and all(bool((w1[k] == w2[k]).all()) for k in w1)


def test_the_config_stored_in_weights_has_no_local_paths(tmp_path):
    """A weights file may be bundled or shared: its config keeps neither the data path nor the
    folder of the warm-start weights (only that file's name); the run's config.yaml keeps both."""
    cfg = resolve_config("colornet", None, "quick", {"init_from": str(tmp_path / "w" / "start.safetensors")},
                         {"data": str(tmp_path / "data.zip")})
    assert cfg.init_from == str(tmp_path / "w" / "start.safetensors") and cfg.data == str(tmp_path / "data.zip")
    shared = cfg.shareable()
    assert shared["init_from"] == "start.safetensors" and shared["data"] is None
    assert str(tmp_path) not in repr(shared)
    assert resolve_config("unet", "mse", "quick").shareable()["init_from"] is None
