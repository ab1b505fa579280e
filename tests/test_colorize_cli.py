"""`chromalab colorize`: bad inputs (one line each, exit 1, inputs untouched), layout, skip/overwrite.

Permission checks: tests run as root, and root reads chmod-000 files and writes into chmod-555
folders. The real CLI is therefore run in a child process whose capability bounding set lacks
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (prctl PR_CAPBSET_DROP before exec), so the kernel
refuses it like any other user. As a non-root user chmod alone does it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from chromalab.batch import colorize_cli, plan_jobs
from chromalab.errors import ChromalabError, ModelError
from chromalab.images import DEFAULT_MAX_PIXELS, image_to_L, open_image
from chromalab.inference import MAX_WORK_SIZE, read_provenance

from .test_images import build_bad_inputs, build_good_inputs, encode, photo
from .test_inference import TinyNetPredictor

FORBIDDEN_IMPORTS = ("torch", "lightning", "sklearn", "skimage", "kornia", "scipy", "matplotlib")
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_dac_caps() -> None:  # runs in the child, before exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_cli(args, cwd: Path, unprivileged: bool = False, extra_env: dict | None = None):
    """Run `python -m chromalab.cli ...` (as root: without the DAC-override capabilities when asked)."""
    env = {**os.environ, "COLUMNS": "200", **(extra_env or {})}
    pre = _drop_dac_caps if unprivileged and os.geteuid() == 0 else None
    return subprocess.run([sys.executable, "-m", "chromalab.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=pre)


@pytest.fixture(scope="module")
def can_refuse(tmp_path_factory) -> bool:
    """Whether a child process can really be refused a chmod-000 file here."""
    d = tmp_path_factory.mktemp("perm")
    f = d / "f"
    f.write_bytes(b"x")
    f.chmod(0)
    pre = _drop_dac_caps if os.geteuid() == 0 else None
    try:
        r = subprocess.run([sys.executable, "-c", f"open({str(f)!r}).read()"], capture_output=True, preexec_fn=pre)
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        f.chmod(0o644)
    return r.returncode != 0 and b"PermissionError" in r.stderr


def digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            mode = p.stat().st_mode
            p.chmod(mode | 0o400)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
            p.chmod(mode)
    return out


def mean_abs_dL(src: Path, out: Path) -> float:
    """Mean |L_in - L_out|; L_in as image_to_L gives it (checked against skimage in test_images)."""
    b = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64) / 255.0
    return float(np.abs(image_to_L(open_image(src)) - rgb2lab(b)[..., 0]).mean())


# ---- every bad input, in one batch --------------------------------------------------------------------
def test_every_bad_input_one_line_each_rest_done_inputs_untouched(tmp_path, can_refuse):
    src = tmp_path / "in"
    good = build_good_inputs(src)
    bad = build_bad_inputs(src)
    (src / "x.png").rmdir()  # given explicitly below: inside a folder it would just be searched
    (tmp_path / "x.png").mkdir()
    if can_refuse:
        locked = src / "locked.jpg"
        locked.write_bytes(encode(Image.fromarray(photo()), "JPEG"))
        locked.chmod(0)
        bad["locked.jpg"] = "permission denied"
    bad["missing.jpg"] = "no such file"
    before = digest_tree(tmp_path)
    modes = {p: p.stat().st_mode for p in tmp_path.rglob("*")}

    r = run_cli(["colorize", "in", "x.png", "missing.jpg", "-o", "out", "--model", "gray"], tmp_path,
                unprivileged=True)

    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    for name, fragment in bad.items():
        mine = [ln for ln in lines if name in ln and ln.startswith("error: ")]
        assert len(mine) == 1, (name, lines)
        assert fragment in mine[0], (name, mine[0])
    notes = [ln for ln in lines if ln.startswith("note: ")]
    assert len(notes) == 1 and "anim.gif" in notes[0] and "first frame" in notes[0]
    assert len(lines) == len(bad) + 1  # nothing else on stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"done {len(good)}, skipped 0, failed {len(bad)}"), summary
    assert "first frame only" in summary
    # the good ones: right size, alpha kept, L kept
    for name, exp in good.items():
        out = tmp_path / "out" / "in" / f"{Path(name).stem}_color.png"
        if name.startswith("photo."):  # photo.tiff and photo.webp share a stem
            out = out.with_name(f"photo_{Path(name).suffix[1:]}_color.png")
        assert out.is_file(), (name, sorted(p.name for p in (tmp_path / "out" / "in").iterdir()))
        im = Image.open(out)
        assert im.format == "PNG" and im.size == exp["size"], name
        assert im.mode == ("RGBA" if exp["alpha"] else "RGB"), name
        assert mean_abs_dL(src / name, out) < 1.5, name
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]  # no temp files left
    # inputs byte-identical (and their permissions unchanged)
    after = digest_tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out")} == before
    assert all(p.stat().st_mode == m for p, m in modes.items())


def test_unwritable_output_folder(tmp_path, can_refuse):
    if not can_refuse:
        pytest.skip("cannot drop the DAC-override capabilities here")
    src = tmp_path / "in"
    build_good_inputs(src)
    out = tmp_path / "locked-out"
    out.mkdir()
    out.chmod(0o555)
    before = digest_tree(src)
    r = run_cli(["colorize", "in", "-o", out.name, "--model", "gray"], tmp_path, unprivileged=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "locked-out" in err[0] and "not writable" in err[0], err
    assert r.stdout.strip().startswith("done 0, skipped 0, failed 12")
    assert list(out.iterdir()) == [] and digest_tree(src) == before


def test_output_folder_that_cannot_exist(tmp_path, capsys):
    """Works even as root: the output 'folder' is below a regular file."""
    (tmp_path / "a.png").write_bytes(encode(Image.fromarray(photo()), "PNG"))
    (tmp_path / "file").write_bytes(b"not a folder")
    code = colorize_cli([tmp_path / "a.png"], output=tmp_path / "file" / "out", model="gray", progress=False)
    cap = capsys.readouterr()
    assert code == 1
    assert "cannot create the output folder" in cap.err and str(tmp_path / "file" / "out") in cap.err
    assert cap.out.startswith("done 0, skipped 0, failed 1")


def test_write_failure_is_per_file(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"p{i}.png").write_bytes(encode(Image.fromarray(photo(seed=i)), "PNG"))
    (tmp_path / "single.png").write_bytes(encode(Image.fromarray(photo()), "PNG"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "in").write_bytes(b"a file where the mirrored folder should go")
    code = colorize_cli([src, tmp_path / "single.png"], output=out, model="gray", progress=False)
    cap = capsys.readouterr()
    assert code == 1
    errs = cap.err.strip().splitlines()
    assert len(errs) == 3 and all("cannot write" in e for e in errs)
    assert {e.split(":")[1].strip() for e in errs} == {str(src / f"p{i}.png") for i in range(3)}
    assert cap.out.startswith("done 1, skipped 0, failed 3")
    assert (out / "single_color.png").is_file()


# ---- layout, skip, overwrite -------------------------------------------------------------------------------
def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "2020" / "summer").mkdir(parents=True)
    (root / "2021").mkdir()
    for i, rel in enumerate(["a.jpg", "2020/b.png", "2020/summer/c.jpg", "2021/c.jpg", "2021/c.png"]):
        (root / rel).write_bytes(encode(Image.fromarray(photo(seed=i)), "PNG" if rel.endswith("png") else "JPEG"))
    return root


def test_layout_mirrors_folders_files_go_flat_collisions_resolved(tmp_path, capsys):
    root = _tree(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes(encode(Image.fromarray(photo(seed=9)), "JPEG"))
    (tmp_path / "a.jpg").write_bytes(encode(Image.fromarray(photo(seed=8)), "JPEG"))
    out = tmp_path / "out"
    code = colorize_cli([root, tmp_path / "a.jpg", other / "a.jpg", root / "a.jpg"], output=out, model="gray",
                        progress=False)
    assert code == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == [
        "a_color.png", "a_color_2.png",
        "photos/2020/b_color.png", "photos/2020/summer/c_color.png",
        "photos/2021/c_jpg_color.png", "photos/2021/c_png_color.png", "photos/a_color.png",
    ]
    assert capsys.readouterr().out.startswith("done 7, skipped 0, failed 0")  # photos/a.jpg done once


def test_skip_up_to_date_remake_unrecorded_then_overwrite(tmp_path, capsys):
    root = _tree(tmp_path)
    out = tmp_path / "out"
    assert colorize_cli([root], output=out, model="gray", progress=False) == 0
    capsys.readouterr()
    target = out / "photos" / "a_color.png"
    made = target.read_bytes()
    assert read_provenance(target) == {"model": "gray", "work_size": 64}
    assert colorize_cli([root], output=out, model="gray", progress=False) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("done 0, skipped 5, failed 0 (already made with this model and settings")
    assert "outputs in" not in line  # nothing was written
    assert target.read_bytes() == made
    target.write_bytes(b"old")  # no record of what made it: not done
    assert colorize_cli([root], output=out, model="gray", progress=False) == 0
    assert capsys.readouterr().out.startswith("done 1, skipped 4, failed 0")
    assert target.read_bytes() == made
    assert colorize_cli([root], output=out, model="gray", overwrite=True, progress=False) == 0
    assert capsys.readouterr().out.startswith("done 5, skipped 0, failed 0")
    assert Image.open(target).size == (64, 48)


def test_never_writes_over_an_input(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "p.png").write_bytes(encode(Image.fromarray(photo()), "PNG"))
    (d / "p_color.png").write_bytes(encode(Image.fromarray(photo(seed=1)), "PNG"))
    before = digest_tree(d)
    code = colorize_cli([d / "p.png", d / "p_color.png"], output=d, model="gray", overwrite=True, progress=False)
    cap = capsys.readouterr()
    assert code == 1
    assert "refusing to write over it" in cap.err and "p.png" in cap.err
    assert cap.out.startswith("done 1, skipped 0, failed 1")
    after = digest_tree(d)
    assert {k: after[k] for k in before} == before and "p_color_color.png" in after


def test_output_inside_input_folder_is_not_read_back(tmp_path, capsys):
    root = _tree(tmp_path)
    out = root / "colorized"
    assert colorize_cli([root], output=out, model="gray", progress=False) == 0
    assert colorize_cli([root], output=out, model="gray", progress=False) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("done 0, skipped 5, failed 0")
    shutil.rmtree(out)
    jobs = plan_jobs([root], root)  # -o the input folder itself: outputs go to root/photos/..., not re-read
    colorize_cli([root], output=root, model="gray", progress=False)
    assert len(plan_jobs([root], root)) == len(jobs) == 5


def test_side_by_side_writes_both_outputs(tmp_path, capsys):
    """Defect 5: --side-by-side used to write only p_compare.png; one run now gives both."""
    (tmp_path / "p.jpg").write_bytes(encode(Image.fromarray(photo(30, 40)), "JPEG"))
    (tmp_path / "q.png").write_bytes(encode(Image.fromarray(photo(30, 40, seed=1)), "PNG"))
    pred = TinyNetPredictor()
    assert colorize_cli([tmp_path / "p.jpg", tmp_path / "q.png"], output=tmp_path / "o", model=pred,
                        side_by_side=True, progress=False) == 0
    assert capsys.readouterr().out.startswith("done 2, skipped 0, failed 0")
    for stem in ("p", "q"):
        color = np.asarray(Image.open(tmp_path / "o" / f"{stem}_color.png"))
        compare = np.asarray(Image.open(tmp_path / "o" / f"{stem}_compare.png"))
        assert color.shape == (30, 40, 3) and compare.shape == (30, 80, 3)
        np.testing.assert_array_equal(compare[:, 40:], color)  # the right half is the plain result
        gray = compare[:, :40].astype(int)
        assert np.abs(gray[..., 0] - gray[..., 2]).max() <= 1  # the left half is the gray input
    # a later run without --side-by-side finds its output made, and one with it finds both
    assert colorize_cli([tmp_path / "p.jpg"], output=tmp_path / "o", model=pred, progress=False) == 0
    assert capsys.readouterr().out.startswith("done 0, skipped 1")
    (tmp_path / "o" / "p_compare.png").unlink()
    assert colorize_cli([tmp_path / "p.jpg"], output=tmp_path / "o", model=pred, side_by_side=True,
                        progress=False) == 0
    assert capsys.readouterr().out.startswith("done 1, skipped 0")
    assert (tmp_path / "o" / "p_compare.png").is_file()


def test_net_model_gives_colour_and_keeps_L(tmp_path, capsys):
    """The output's ab is the model's ab at 64x48, upsampled (computed here independently)."""
    rgb = photo(300, 400)
    (tmp_path / "p.png").write_bytes(encode(Image.fromarray(rgb), "PNG"))
    pred = TinyNetPredictor()
    assert colorize_cli([tmp_path / "p.png"], output=tmp_path / "o", model=pred, progress=False) == 0
    out = tmp_path / "o" / "p_color.png"
    assert Image.open(out).size == (400, 300)
    assert mean_abs_dL(tmp_path / "p.png", out) < 1.5
    L = rgb2lab(rgb / 255.0)[..., 0].astype(np.float32)
    small = np.asarray(Image.fromarray(L).resize((64, 48), Image.Resampling.BICUBIC))
    ab = pred.predict_ab(small[None, None])[0]
    ab_full = np.stack([np.asarray(Image.fromarray(c).resize((400, 300), Image.Resampling.BICUBIC)) for c in ab], -1)
    lab = rgb2lab(np.asarray(Image.open(out), dtype=np.float64) / 255.0)
    assert np.hypot(*ab_full.transpose(2, 0, 1)).mean() > 3  # the model does predict some colour
    assert np.abs(lab[..., 1:] - ab_full).mean() < 1.0


def test_cli_options_reach_colorize_and_import_path_is_lean(tmp_path):
    (tmp_path / "one.jpg").write_bytes(encode(Image.fromarray(photo(96, 128)), "JPEG"))
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "chromalab.cli", "colorize", "one.jpg",
                        "--model", "gray", "--work-size", "32", "--side-by-side", "-o", "o"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("done 1, skipped 0, failed 0")
    imported = {ln.split("|")[-1].strip().split(".")[0] for ln in r.stderr.splitlines() if ln.startswith("import time:")}
    assert not imported & set(FORBIDDEN_IMPORTS), imported & set(FORBIDDEN_IMPORTS)
    assert Image.open(tmp_path / "o" / "one_compare.png").size == (256, 96)
    assert Image.open(tmp_path / "o" / "one_color.png").size == (128, 96)
    r = run_cli(["colorize", "one.jpg", "--backend", "gpu", "--model", "gray"], tmp_path)
    assert r.returncode == 1 and "unknown backend" in r.stderr and "Traceback" not in r.stderr


# ---- defect 1: each output records what made it; another model or setting is not "done" ---------------------
def test_switching_model_or_settings_makes_the_output_again(tmp_path, capsys):
    src = tmp_path / "photo.jpg"
    src.write_bytes(encode(Image.fromarray(photo(60, 80)), "JPEG"))
    out = tmp_path / "out"
    target = out / "photo_color.png"
    assert colorize_cli([src], output=out, model="gray", progress=False) == 0
    capsys.readouterr()
    gray = np.asarray(Image.open(target).convert("RGB")).astype(int)
    assert np.abs(gray[..., 0] - gray[..., 2]).max() <= 1

    pred = TinyNetPredictor()  # another model, same output name
    assert colorize_cli([src], output=out, model=pred, progress=False) == 0
    line = capsys.readouterr().out
    assert line.startswith("done 1, skipped 0, failed 0") and "replaced 1 existing output" in line, line
    lab = rgb2lab(np.asarray(Image.open(target).convert("RGB")) / 255.0)
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 5  # the new model's colours, not the gray image
    assert read_provenance(target) == {"model": "tiny-net", "work_size": 64}

    assert colorize_cli([src], output=out, model=pred, progress=False) == 0  # same model and settings: done
    assert capsys.readouterr().out.startswith("done 0, skipped 1, failed 0")
    assert colorize_cli([src], output=out, model=pred, work_size=32, progress=False) == 0  # another setting
    assert capsys.readouterr().out.startswith("done 1, skipped 0, failed 0")
    assert read_provenance(target)["work_size"] == 32
    # settings a caller adds (e.g. a later --vividness) are recorded and compared the same way
    assert colorize_cli([src], output=out, model=pred, work_size=32, settings={"vividness": 0.7}, progress=False) == 0
    assert capsys.readouterr().out.startswith("done 1, skipped 0, failed 0")
    assert read_provenance(target) == {"model": "tiny-net", "work_size": 32, "vividness": 0.7}
    assert colorize_cli([src], output=out, model=pred, work_size=32, settings={"vividness": 0.7}, progress=False) == 0
    assert capsys.readouterr().out.startswith("done 0, skipped 1, failed 0")


def test_bundled_default_then_vivid_then_another_temperature(tmp_path, capsys):
    """The reported case: `colorize photo.jpg -o out/`, then `--model vivid -o out/`."""
    import hashlib as _h

    from chromalab.predictors.nets import bundled_path

    src = tmp_path / "photo.jpg"
    src.write_bytes(encode(Image.fromarray(photo(48, 64)), "JPEG"))
    out = tmp_path / "out"
    target = out / "photo_color.png"
    assert colorize_cli([src], output=out, progress=False) == 0
    first = target.read_bytes()
    sha = _h.sha256(bundled_path("default").read_bytes()).hexdigest()
    # the default model has a vividness: its output records the one used (the model's own default)
    from chromalab.predictors.nets import read_meta

    meta = read_meta(bundled_path("default"))
    v, ws = meta["arch_kwargs"]["vividness"], meta["input_size"]  # its working size too (128 since issue 22)
    assert read_provenance(target) == {"model": "default", "model_sha256": sha, "work_size": ws, "vividness": v}
    capsys.readouterr()
    assert colorize_cli([src], output=out, model="vivid", progress=False) == 0
    assert capsys.readouterr().out.startswith("done 1, skipped 0, failed 0")
    assert target.read_bytes() != first and read_provenance(target)["model"] == "vivid"
    assert colorize_cli([src], output=out, model="vivid", temperature=0.5, progress=False) == 0
    assert capsys.readouterr().out.startswith("done 1, skipped 0, failed 0")
    rec = read_provenance(target)
    assert rec["temperature"] == 0.5 and rec["model"] == "vivid"
    assert rec["model_sha256"] == _h.sha256(bundled_path("vivid").read_bytes()).hexdigest()
    assert colorize_cli([src], output=out, model="vivid", temperature=0.5, progress=False) == 0
    assert capsys.readouterr().out.startswith("done 0, skipped 1, failed 0")


def test_unknown_model_is_an_error_before_any_work(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(encode(Image.fromarray(photo()), "JPEG"))
    assert colorize_cli([tmp_path / "photo.jpg"], output=tmp_path / "out", model="gray", progress=False) == 0
    before = digest_tree(tmp_path)
    for out in ("out", "fresh"):  # outputs already there (it used to say "skipped 1" and exit 0), or none
        r = run_cli(["colorize", "photo.jpg", "-o", out, "--model", "foo"], tmp_path)
        assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: unknown model 'foo'"), lines
    assert digest_tree(tmp_path) == before and not (tmp_path / "fresh").exists()
    with pytest.raises(ModelError, match="unknown model"):
        colorize_cli([tmp_path / "photo.jpg"], output=tmp_path / "fresh", model="foo", progress=False)
    assert not (tmp_path / "fresh").exists()


# ---- defect 2: --work-size is bounded ------------------------------------------------------------------------
def test_work_size_over_the_limit_is_one_line_before_any_work(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(encode(Image.fromarray(photo(427, 640)), "JPEG"))
    r = run_cli(["colorize", "photo.jpg", "--work-size", "100000", "-o", "out", "--model", "gray"], tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines == [f"error: --work-size 100000 is out of range: give 1 to {MAX_WORK_SIZE} "
                     "(the long side the model sees; default 64)"], lines
    assert not (tmp_path / "out").exists()
    with pytest.raises(ChromalabError, match=f"give 1 to {MAX_WORK_SIZE}"):
        colorize_cli([tmp_path / "photo.jpg"], output=tmp_path / "out", model="gray", work_size=0, progress=False)
    assert colorize_cli([tmp_path / "photo.jpg"], output=tmp_path / "out", model=TinyNetPredictor(),
                        work_size=MAX_WORK_SIZE, progress=False) == 0  # the limit itself works
    assert read_provenance(tmp_path / "out" / "photo_color.png")["work_size"] == MAX_WORK_SIZE


# ---- defect 3: a file that cannot be used, named on the command line, is one line like in a folder ---------
def test_bad_files_named_on_the_command_line_behave_as_in_a_folder(tmp_path, can_refuse):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (src / name).write_bytes(encode(Image.fromarray(photo(seed=len(name))), "JPEG"))
    (src / "broken.jpg").symlink_to("nowhere.jpg")
    (src / "null.jpg").symlink_to("/dev/null")
    os.mkfifo(src / "fifo.jpg")
    bad = {"broken.jpg": "broken symbolic link", "null.jpg": "a device", "fifo.jpg": "named pipe"}
    if can_refuse:
        (src / "locked.jpg").write_bytes(encode(Image.fromarray(photo()), "JPEG"))
        (src / "locked.jpg").chmod(0)
        bad["locked.jpg"] = "permission denied"
    names = ["a.jpg", *bad, "b.jpg"]
    explicit = run_cli(["colorize", *names, "-o", "../out1", "--model", "gray"], src, unprivileged=True)
    folder = run_cli(["colorize", "in", "-o", "out2", "--model", "gray"], tmp_path, unprivileged=True)
    for r in (explicit, folder):
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "Usage" not in r.stderr + r.stdout and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == len(bad), lines
        for name, fragment in bad.items():
            mine = [ln for ln in lines if name in ln]
            assert len(mine) == 1 and mine[0].startswith("error: ") and fragment in mine[0], (name, lines)
        assert r.stdout.startswith(f"done 2, skipped 0, failed {len(bad)}"), r.stdout
    assert {p.name for p in (tmp_path / "out1").iterdir()} == {"a_color.png", "b_color.png"}
    assert {p.name for p in (tmp_path / "out2" / "in").iterdir()} == {"a_color.png", "b_color.png"}


# ---- defect 4: -o NAME.png with one input is that file ---------------------------------------------------------
def test_output_path_ending_in_png_is_the_output_file(tmp_path, capsys):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(encode(Image.fromarray(photo(30, 40)), "JPEG"))
    b.write_bytes(encode(Image.fromarray(photo(30, 40, seed=1)), "JPEG"))
    res = tmp_path / "res" / "result.png"
    assert colorize_cli([a], output=res, model="gray", side_by_side=True, progress=False) == 0
    assert res.is_file() and Image.open(res).size == (40, 30)
    assert Image.open(res.with_name("result_compare.png")).size == (80, 30)
    assert sorted(p.name for p in res.parent.iterdir()) == ["result.png", "result_compare.png"]
    assert capsys.readouterr().out.strip().endswith(f"wrote {res}")
    for paths, output, fragment in [([a, b], tmp_path / "two.png", "names one output file, but 2 inputs were given"),
                                    ([tmp_path / "res"], tmp_path / "dir.png", "is a folder"),
                                    ([a], tmp_path / "out.jpg", "outputs are PNG files")]:
        with pytest.raises(ChromalabError, match=fragment) as e:
            colorize_cli(paths, output=output, model="gray", progress=False)
        assert "\n" not in str(e.value) and not output.exists()
    (tmp_path / "old.png").mkdir()  # a folder made before (by an older version): still a folder
    assert colorize_cli([a, b], output=tmp_path / "old.png", model="gray", progress=False) == 0
    assert sorted(p.name for p in (tmp_path / "old.png").iterdir()) == ["a_color.png", "b_color.png"]
    r = run_cli(["colorize", "a.jpg", "b.jpg", "-o", "x.png", "--model", "gray"], tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "give a folder" in r.stderr
    assert not (tmp_path / "x.png").exists()


# ---- defect 6: help and messages ----------------------------------------------------------------------------------
def test_help_is_plain_and_tells_the_real_defaults(tmp_path):
    from chromalab.registry import load_predictor

    r = run_cli(["colorize", "--help"], tmp_path)
    assert r.returncode == 0
    text = " ".join(r.stdout.replace("│", " ").split())
    for bad in ("<bool>", "{paths}", "<list", "0.38"):
        assert bad not in r.stdout, bad
    assert "colorize [OPTIONS] PATH..." in text
    assert "--temperature" not in text  # the vivid model's T: hidden, --vividness is the user-facing control
    assert "--vividness V 0 (most accurate) to 1 (most colourful)" in text and "--hint X,Y,COLOR" in text
    assert f"1 to {MAX_WORK_SIZE}" in text
    assert f"--max-pixels N Refuse larger images (default {DEFAULT_MAX_PIXELS:,})." in text  # images' limit
    assert "records the model and settings that made it" in text and "made again" in text
    assert "--overwrite Make every output again" in text
    assert load_predictor("vivid", progress=False).temperature == pytest.approx(0.2)  # the help tells the truth
    for args in (["--help"], ["serve", "--help"], ["models", "--help"], ["evaluate", "--help"]):
        r = run_cli(args, tmp_path)
        assert r.returncode == 0 and "<bool>" not in r.stdout and "{" not in r.stdout.split("\n", 3)[1], args
        assert "0.38" not in r.stdout


def test_summary_names_the_output_folder_only_when_something_was_written(tmp_path, capsys):
    assert colorize_cli([tmp_path / "missing.jpg"], output=tmp_path / "out", model="gray", progress=False) == 1
    cap = capsys.readouterr()
    assert cap.out.strip() == "done 0, skipped 0, failed 1" and "missing.jpg: no such file" in cap.err
    (tmp_path / "p.png").write_bytes(encode(Image.fromarray(photo()), "PNG"))
    assert colorize_cli([tmp_path / "p.png"], output=tmp_path / "out", model="gray", progress=False) == 0
    assert capsys.readouterr().out.strip().endswith(f"; outputs in {tmp_path / 'out'}")


def _ro_mount_cmd(folder: Path, *cmd) -> list[str]:
    """Run ``cmd`` with a read-only tmpfs mounted on ``folder`` (private user + mount namespace)."""
    return ["unshare", "--mount", "--map-root-user", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"',
            str(folder), *map(str, cmd)]


def test_read_only_file_system_is_not_called_permission_denied(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    try:
        probe = subprocess.run(_ro_mount_cmd(ro, "true"), capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("unshare is not available")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {probe.stderr.decode(errors='replace')[:200]}")
    (tmp_path / "a.jpg").write_bytes(encode(Image.fromarray(photo()), "JPEG"))
    r = subprocess.run(_ro_mount_cmd(ro, sys.executable, "-m", "chromalab.cli", "colorize", "a.jpg", "-o", ro,
                                     "--model", "gray"),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(ro) in lines[0] and "read-only file system" in lines[0], lines
    assert "permission denied" not in lines[0].lower()
    assert r.stdout.strip() == "done 0, skipped 0, failed 1"


def test_version_names_the_bundled_model_by_its_hash(tmp_path):
    from chromalab.inference.onnx_cache import weights_file_for
    from chromalab.version import __version__

    r = run_cli(["--version"], tmp_path)
    assert r.returncode == 0, r.stderr
    want = hashlib.sha256(weights_file_for("default").read_bytes()).hexdigest()
    assert r.stdout.strip() == f"chromalab {__version__}; model default sha256 {want}"
