"""Colour hints and the vividness in the Python API and the CLI: parsing, bad input (one line, nothing
written), and, with the bundled guided model, hints that move the colour and keep L."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage.color import rgb2lab

import chromalab
from chromalab.errors import SettingError
from chromalab.hints import MAX_HINTS, parse_color, parse_hint_arg, parse_hints


@pytest.fixture(scope="module")
def tiny_colornet(tmp_path_factory):
    from chromalab.nets import ColorNet
    from chromalab.predictors.nets import save_net

    torch.manual_seed(0)
    net = ColorNet(width=4, depth=2, n_classes=3).eval()
    return save_net(tmp_path_factory.mktemp("cn") / "cn.safetensors", net, {"input_size": 64})


@pytest.fixture
def photo_file(tmp_path):
    from skimage import data

    p = tmp_path / "photo.png"
    Image.fromarray(data.chelsea()[::4, ::4]).save(p)  # 113 x 75
    return p


def run_cli(args, cwd):
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "chromalab.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_parse_color_forms():
    assert parse_color("#ff0000") == pytest.approx(parse_color((255, 0, 0)))
    assert parse_color("#f00") == pytest.approx(parse_color("red"))
    a, b = parse_color("#3070c0")
    assert b < -30 and abs(a) < 15  # a blue: negative b
    for bad in ("#12345", "blurple", "", (256, 0, 0), (1, 2), "rgb(1,2)", None, True, "rgb(300, 0, 0)"):
        with pytest.raises(SettingError, match="not a colour"):
            parse_color(bad)


def test_parse_hints_checks_every_point():
    pts = parse_hints([(0, 0, "red"), {"x": 9.5, "y": 4, "color": "#00ff00"}], width=10, height=5)
    assert [p[:2] for p in pts] == [(0.0, 0.0), (9.5, 4.0)]
    cases = {
        "outside the 10x5 image": [(10, 0, "red")],
        "negative coordinates": [(-1, 2, "red")],
        "not a colour": [(1, 1, "nope")],
        "missing color": [{"x": 1, "y": 1}],
        "x must be a number": [("a", 1, "red")],
        "y must be a number": [(1, 10**400, "red")],  # Python (and JSON) ints have no limit
        f"more than the limit of {MAX_HINTS}": [(1, 1, "red")] * (MAX_HINTS + 1),
    }
    for msg, hints in cases.items():
        with pytest.raises(ValueError, match=msg):
            parse_hints(hints, width=10, height=5)
    assert parse_hint_arg("12,3.5,rgb(1, 2, 3)") == {"x": 12.0, "y": 3.5, "color": "rgb(1, 2, 3)"}
    with pytest.raises(SettingError, match="expected X,Y,COLOR"):
        parse_hint_arg("12;3;red")


# user input as it comes from JSON, a hints file or Python: anything, nested
_COLOURS = st.one_of(st.text(max_size=20), st.sampled_from(["red", "#3070c0", "rgb(1, 2, 3)", "rgb(300, 0, 0)",
                                                            "hsl(120, 50%, 50%)", "#", "rgb(1,2)"]),
                     st.from_regex(r"\A(rgb|hsl|hsv)\([-0-9.e%, ]{0,20}\)\Z"))
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**400), 10**400),
                     st.floats(allow_nan=True, allow_infinity=True), _COLOURS, st.binary(max_size=4))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner, inner),
    st.dictionaries(st.sampled_from(["x", "y", "color", "z"]), inner, max_size=4)), max_leaves=10)
_HINTS = st.one_of(_VALUES, st.lists(st.one_of(
    st.tuples(st.integers(0, 40), st.integers(0, 40), _COLOURS), st.tuples(_SCALARS, _SCALARS, _VALUES),
    st.fixed_dictionaries({"x": _SCALARS, "y": _SCALARS, "color": _VALUES}), _VALUES), max_size=5))


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_HINTS, st.integers(1, 64), st.integers(1, 64))
def test_parse_hints_raises_only_setting_error(hints, width, height):
    """Property: whatever the user gives, parse_hints returns checked points or raises SettingError."""
    try:
        points = parse_hints(hints, width, height)
    except SettingError:
        return
    for x, y, a, b in points:
        assert 0 <= x < width and 0 <= y < height and all(math.isfinite(v) for v in (a, b))


def test_api_hints_and_vividness(tiny_colornet, photo_file):
    spec = str(tiny_colornet)
    base = np.asarray(chromalab.colorize(photo_file, model=spec))
    hinted = np.asarray(chromalab.colorize(photo_file, model=spec, hints=[(50, 30, "#3070c0")]))
    assert hinted.shape == base.shape and not np.array_equal(hinted, base)
    v0 = np.asarray(chromalab.colorize(photo_file, model=spec, vividness=0.0))
    v1 = np.asarray(chromalab.colorize(photo_file, model=spec, vividness=1.0))
    assert not np.array_equal(v0, v1)
    lab_in = rgb2lab(np.asarray(Image.open(photo_file).convert("RGB")))[..., 0]
    assert np.abs(rgb2lab(hinted)[..., 0] - lab_in).mean() < 1.5  # the photo keeps its own lightness
    for kwargs, msg in (({"hints": [(500, 1, "red")]}, "outside"), ({"hints": [(-2, 1, "red")]}, "negative"),
                        ({"hints": [(1, 1, "bluish")]}, "not a colour"), ({"vividness": 1.5}, "from 0"),
                        ({"hints": [(1, 1, "red")] * 513}, "limit of 512")):
        with pytest.raises(ValueError, match=msg):
            chromalab.colorize(photo_file, model=spec, **kwargs)
    with pytest.raises(ValueError, match="takes no colour hints"):
        chromalab.colorize(photo_file, model="gray", hints=[(1, 1, "red")])
    with pytest.raises(ValueError, match="no vividness"):
        chromalab.colorize(photo_file, model="gray", vividness=0.5)


def test_cli_hints_written_and_recorded(tiny_colornet, photo_file, tmp_path):
    from chromalab.inference import read_provenance

    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps([{"x": 20, "y": 10, "color": "orange"}]))
    r = run_cli(["colorize", str(photo_file), "-o", "out", "--model", str(tiny_colornet), "--hint", "50,30,#3070c0",
                 "--hints", str(hints), "--vividness", "0.3"], tmp_path)
    assert r.returncode == 0, r.stderr
    rec = read_provenance(tmp_path / "out" / "photo_color.png")
    assert rec["vividness"] == 0.3
    assert rec["hints"] == [{"x": 50.0, "y": 30.0, "color": "#3070c0"}, {"x": 20, "y": 10, "color": "orange"}]


@pytest.mark.parametrize("args,msg", [
    (["--hint", "500,10,red"], "outside the 113x75 image"),
    (["--hint", "-3,10,red"], "negative coordinates"),
    (["--hint", "5,10,bluish"], "not a colour"),
    (["--hint", "5;10;red"], "expected X,Y,COLOR"),
    (["--hints", "bad.json"], "not valid JSON"),
    (["--hints", "many.json"], "more than the limit of 512"),
    (["--vividness", "2"], "vividness must be a number from 0"),
])
def test_cli_bad_hints_one_line_nothing_written(tiny_colornet, photo_file, tmp_path, args, msg):
    (tmp_path / "bad.json").write_text('[{"x": 1, "y": 2, "color": "red"},')
    (tmp_path / "many.json").write_text(json.dumps([{"x": 1, "y": 1, "color": "red"}] * 600))
    before = photo_file.read_bytes()
    r = run_cli(["colorize", str(photo_file), "-o", "out", "--model", str(tiny_colornet), *args], tmp_path)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and msg in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))
    assert photo_file.read_bytes() == before


def test_cli_hints_for_a_model_without_them(photo_file, tmp_path):
    r = run_cli(["colorize", str(photo_file), "-o", "out", "--model", "gray", "--hint", "5,5,red"], tmp_path)
    assert r.returncode != 0 and "takes no colour hints" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _hue_deg(a: float, b: float) -> float:
    return math.degrees(math.atan2(b, a)) % 360


def test_guided_hints_move_the_colour_on_a_real_photo():
    """The bundled guided model on scikit-image's astronaut: each hint's pixel takes the hint's hue
    (within 30 degrees) and L stays the input's."""
    from skimage import data

    from chromalab.inference import get_colorizer

    col = get_colorizer("guided")
    if not col.takes_hints:
        pytest.skip("the bundled guided model takes no hints in this build")
    rgb = data.astronaut()  # 512 x 512
    lab_in = rgb2lab(rgb)
    points = [(100, 420, "#2050d0"), (300, 150, "#20b040"), (420, 300, "#d02020"), (60, 60, "#e0c020")]
    out = np.asarray(chromalab.colorize(Image.fromarray(rgb), model="guided", hints=points))
    lab_out = rgb2lab(out)
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).mean() < 1.0
    for x, y, c in points:
        ha = _hue_deg(*parse_color(c))
        a, b = lab_out[y - 2 : y + 3, x - 2 : x + 3, 1].mean(), lab_out[y - 2 : y + 3, x - 2 : x + 3, 2].mean()
        d = abs((_hue_deg(a, b) - ha + 180) % 360 - 180)
        assert d <= 30 and math.hypot(a, b) > 5, (x, y, c, d, math.hypot(a, b))
