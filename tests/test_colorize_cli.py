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

from chromalab.images import image_to_L, open_image
from chromalab.inference import colorize_cli, plan_jobs

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


def mean_abs_dL(src: Path, out: Path) -> float:  # noqa: N802
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


def test_skip_existing_then_overwrite(tmp_path, capsys):
    root = _tree(tmp_path)
    out = tmp_path / "out"
    assert colorize_cli([root], output=out, model="gray", progress=False) == 0
    capsys.readouterr()
    target = out / "photos" / "a_color.png"
    target.write_bytes(b"old")
    assert colorize_cli([root], output=out, model="gray", progress=False) == 0
    assert capsys.readouterr().out.startswith("done 0, skipped 5, failed 0")
    assert target.read_bytes() == b"old"
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


def test_side_by_side_output(tmp_path, capsys):
    (tmp_path / "p.jpg").write_bytes(encode(Image.fromarray(photo(30, 40)), "JPEG"))
    assert colorize_cli([tmp_path / "p.jpg"], output=tmp_path / "o", model="gray", side_by_side=True,
                        progress=False) == 0
    assert Image.open(tmp_path / "o" / "p_compare.png").size == (80, 30)


def test_net_model_gives_colour_and_keeps_L(tmp_path, capsys):  # noqa: N802
    """The output's ab is the model's ab at 64x48, upsampled (computed here independently)."""
    rgb = photo(300, 400)
    (tmp_path / "p.png").write_bytes(encode(Image.fromarray(rgb), "PNG"))
    pred = TinyNetPredictor()
    assert colorize_cli([tmp_path / "p.png"], output=tmp_path / "o", model=pred, progress=False) == 0
    out = tmp_path / "o" / "p_color.png"
    assert Image.open(out).size == (400, 300)
    assert mean_abs_dL(tmp_path / "p.png", out) < 1.5
    L = rgb2lab(rgb / 255.0)[..., 0].astype(np.float32)  # noqa: N806
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
    r = run_cli(["colorize", "one.jpg", "--backend", "gpu", "--model", "gray"], tmp_path)
    assert r.returncode == 1 and "unknown backend" in r.stderr and "Traceback" not in r.stderr
