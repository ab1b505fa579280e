"""``chromalab colorize --engine ray``: a local Ray (2 CPUs) gives the local engine's bytes, a manifest row
per input, and resumes after SIGKILL.

Each Ray run is a real ``chromalab`` process (Ray starts and stops with it, as for a user); the local
engine runs in this process on the same inputs for the reference bytes. Every test shares one ONNX
cache (the model is exported once), and Ray runs with ``--workers 2`` at most.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chromalab.batch import MANIFEST_COLUMNS, MANIFEST_NAME, colorize_cli, plan_jobs, read_manifest
from chromalab.batch.manifest import PARTIAL_NAME
from chromalab.errors import SettingError
from chromalab.inference import read_provenance

from .test_images import build_bad_inputs, encode, photo

ray = pytest.importorskip("ray", reason="Ray is the optional extra chromalab[ray] (in dev)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One ONNX cache for the module: the bundled model is exported once, not per test and per actor."""
    return tmp_path_factory.mktemp("ray-cache")


@pytest.fixture
def shared_cache(cache, monkeypatch) -> Path:
    monkeypatch.setenv("CHROMALAB_CACHE", str(cache))
    return cache


def run_ray(args, cwd: Path, cache: Path, **popen) -> subprocess.Popen:
    """``chromalab colorize ... --engine ray`` in a child process, in its own session (Ray's processes too)."""
    env = {**os.environ, "COLUMNS": "200", "CHROMALAB_CACHE": str(cache), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "chromalab.cli", "colorize", *map(str, args), "--engine", "ray"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)


def pngs(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every PNG under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def make_corpus(src: Path, n_good: int = 6, big: int = 0) -> int:
    """Good photos (mixed sizes, one with alpha) at the top and nested two levels down, bad files (corrupt,
    empty, random bytes, a non-image, a header declaring too many pixels) among them. ``big``: more
    photos of 1200x900 in ``big/`` (slow enough to kill a run part-way). Returns the number of inputs."""
    (src / "sub" / "deeper").mkdir(parents=True)
    for i in range(n_good):
        h, w = [(48, 64), (90, 70), (33, 120)][i % 3]
        where = [src, src / "sub", src / "sub" / "deeper"][i % 3]
        (where / f"p{i}.jpg").write_bytes(encode(Image.fromarray(photo(h, w, seed=i)), "JPEG", quality=92))
    rgba = np.dstack([photo(40, 50, seed=9), np.full((40, 50), 200, np.uint8)])
    (src / "sub" / "alpha.png").write_bytes(encode(Image.fromarray(rgba), "PNG"))
    bad = build_bad_inputs(src / "bad")
    (src / "bad" / "x.png").rmdir()  # a folder named like a photo: the local tests have it
    (src / "sub" / "notes.png").write_text("not an image\n")
    if big:
        (src / "big").mkdir()
        for i in range(big):
            (src / "big" / f"b{i:02d}.png").write_bytes(encode(Image.fromarray(photo(900, 1200, seed=100 + i)), "PNG",
                                                              compress_level=1))
    return n_good + 1 + (len(bad) - 1) + 1 + big


def test_ray_gives_the_local_bytes_and_a_manifest_of_every_input(tmp_path, shared_cache, capsys, monkeypatch):
    from .test_video_cli import make_video

    monkeypatch.chdir(tmp_path)
    n = make_corpus(tmp_path / "in") + 1
    make_video(tmp_path / "in" / "sub" / "film.mp4", n=6)  # films stay on the local engine
    assert colorize_cli(["in"], output="local", progress=False) == 1  # bad files: exit 1
    cap = capsys.readouterr()
    local = pngs(tmp_path / "local")
    assert len(local) == 7
    film = Path("in") / "sub" / "film_color.mp4"

    t0 = time.monotonic()
    p = run_ray(["in", "-o", "ray", "--workers", "2", "--batch-size", "3"], tmp_path, shared_cache)
    stdout, stderr = p.communicate(timeout=300)
    took = time.monotonic() - t0
    assert p.returncode == 1, (stdout, stderr[-3000:])  # some failed
    assert pngs(tmp_path / "ray") == local  # the same files, the same bytes
    assert (tmp_path / "ray" / film).read_bytes() == (tmp_path / "local" / film).read_bytes()
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines[0] == "note: 1 video: films go through the local engine on this machine, after the photos"
    lines = lines[1:]
    assert sorted(lines) == sorted(ln for ln in cap.err.splitlines() if ln.strip())  # the local engine's lines
    assert len(lines) == n - 8 and all(ln.startswith("error: in/") for ln in lines), lines  # and no Ray noise
    assert stdout.strip() == cap.out.strip().replace("local", "ray") + "; manifest ray/manifest.csv"

    rows = read_manifest(tmp_path / "ray" / MANIFEST_NAME)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    planned = [str(j.src) for j in plan_jobs(["in"], Path("ray"))]
    assert [r["input"] for r in rows] == planned and len(rows) == n  # every input once, in input order
    for r in rows:  # done: exactly the inputs the local engine made an output for
        made = str(Path(r["output"]).relative_to("ray")) in {*local, str(film)}
        assert (r["status"] == "done") == made, r
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["input"] for r in failed} == {ln.split(": ")[1] for ln in lines}
    assert all(r["error"].startswith(r["input"] + ": ") and "\n" not in r["error"] for r in failed)
    assert all(float(r["seconds"]) > 0 for r in rows if r["status"] == "done")
    assert not (tmp_path / "ray" / PARTIAL_NAME).exists()

    # a rerun skips everything made, says so in the manifest, and changes no byte
    p = run_ray(["in", "-o", "ray", "--workers", "2"], tmp_path, shared_cache)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 1 and stdout.startswith(f"done 0, skipped 8, failed {n - 8}"), stdout
    assert pngs(tmp_path / "ray") == local
    assert [r["status"] for r in read_manifest(tmp_path / "ray" / MANIFEST_NAME)] == [
        "skipped" if r["status"] == "done" else r["status"] for r in rows]
    print(f"ray run: {took:.1f} s")


def test_ray_resumes_after_sigkill(tmp_path, shared_cache):
    src = tmp_path / "in"
    n = make_corpus(src, n_good=3, big=24)
    assert colorize_cli([src], output=tmp_path / "local", progress=False) == 1
    local = pngs(tmp_path / "local")
    out = tmp_path / "ray"

    p = run_ray(["in", "-o", "ray", "--workers", "1", "--batch-size", "1"], tmp_path, shared_cache,
                preexec_fn=lambda: os.nice(19))  # low priority: this test's polling comes first on a busy machine
    try:
        deadline = time.monotonic() + 240
        while len(list(out.rglob("*_color.png"))) < 3:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "no output appeared"
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGKILL)  # the driver and the Ray head; the workers follow the raylet
        p.wait(timeout=60)
    finally:
        _kill_session(p.pid)
    made = sorted(str(q.relative_to(out)) for q in out.rglob("*_color.png"))
    assert 3 <= len(made) < len(local), made  # killed part-way
    for q in out.rglob("*_color.png"):  # every output under its final name is whole and says what made it
        with Image.open(q) as im:
            im.load()
        assert read_provenance(q) is not None
    partial = out / PARTIAL_NAME
    assert partial.is_file() and not (out / MANIFEST_NAME).exists()
    done_before = {r["input"] for r in read_manifest(partial) if r["status"] == "done"}

    p = run_ray(["in", "-o", "ray", "--workers", "2"], tmp_path, shared_cache)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 1, (stdout, stderr[-3000:])
    rows = read_manifest(out / MANIFEST_NAME)
    assert len(rows) == n
    skipped = {r["input"] for r in rows if r["status"] == "skipped"}
    assert len(skipped) == len(made) and done_before <= skipped  # the finished ones are not made again
    assert {r["input"] for r in rows if r["status"] == "done"} | skipped == {
        r["input"] for r in rows if r["status"] != "failed"}
    assert len(skipped) + sum(r["status"] == "done" for r in rows) == len(local)
    assert [q.name for q in out.rglob(".*")] == []  # the killed run's temporary files are gone
    assert pngs(out) == local  # and the result is the local engine's, byte for byte


def _kill_session(sid: int) -> None:
    """SIGKILL what is left of the session ``sid`` this test started (Ray workers have their own groups)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getsid(int(d.name)) == sid:
                os.kill(int(d.name), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_ray_needs_a_folder_and_its_extra(tmp_path, shared_cache, monkeypatch):
    f = tmp_path / "a.jpg"
    f.write_bytes(encode(Image.fromarray(photo()), "JPEG"))
    with pytest.raises(SettingError, match="--engine ray writes a folder"):
        colorize_cli([f], output=tmp_path / "a.png", engine="ray")
    with pytest.raises(SettingError, match="--workers must be at least 1"):
        colorize_cli([f], output=tmp_path / "o", engine="ray", workers=0)
    with pytest.raises(SettingError, match="--address and --workers are for --engine ray"):
        colorize_cli([f], output=tmp_path / "o", workers=2)
    with pytest.raises(SettingError, match="--engine 'spark': choose local or ray"):
        colorize_cli([f], output=tmp_path / "o", engine="spark")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(SettingError, match=r'install it with pip install "chromalab\[ray\]"'):
        colorize_cli([f], output=tmp_path / "o", engine="ray")
    assert not (tmp_path / "o").exists()  # stopped before any work


def test_the_core_install_does_not_pull_ray():
    import tomllib

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert not [d for d in meta["dependencies"] if d.lower().startswith("ray")]
    assert [d for d in meta["optional-dependencies"]["ray"] if d.startswith("ray[data]")]
    assert [d for d in meta["optional-dependencies"]["dev"] if d.startswith("ray[data]")]  # CI runs these tests
    code = "import sys, chromalab.cli, chromalab.batch; print('ray' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr  # the local engine never imports Ray


def test_leftovers_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    from chromalab.batch.ray_engine import remove_leftovers

    out = tmp_path / "out"
    (tmp_path / "p.jpg").write_bytes(b"x")
    jobs = plan_jobs([tmp_path / "p.jpg"], out)
    out.mkdir()
    left = [out / ".p_color.png.ab12cd34.tmp", out / f".{MANIFEST_NAME}.zz99yy88.tmp"]
    kept = [out / ".other.png.ab12cd34.tmp", out / "p_color.png", out / ".p_color.png"]
    for q in left + kept:
        q.write_bytes(b"")
    assert remove_leftovers(out, jobs) == 2
    assert sorted(q.name for q in out.iterdir()) == sorted(q.name for q in kept)


@pytest.mark.parametrize("n,batch,workers", [(1, 16, 2), (5, 16, 8), (19, 3, 2), (300, 16, 2), (2000, 16, 2),
                                             (100_000, 16, 64), (10_000_000, 16, 64)])
def test_blocks_keep_every_worker_busy_to_the_end(n, batch, workers):
    from chromalab.batch.ray_engine import BLOCK_CALLS, block_rows, call_size

    call = call_size(n, batch, workers)
    rows = block_rows(n, call, workers)
    blocks = -(-n // rows)
    assert 1 <= call <= batch and rows % call == 0 and rows <= BLOCK_CALLS * call
    assert blocks >= min(workers, n)  # no worker without work while there are photos enough
    assert call <= -(-n // (4 * workers))  # a small job: about four calls per worker or more


def test_the_manifest_is_written_whole_in_input_order(tmp_path):
    from chromalab.batch import Manifest
    from chromalab.batch.plan import Job

    jobs = [Job(src=Path(f"in/{c}.jpg"), label=f"in/{c}.jpg", out=Path(f"out/{c}_color.png")) for c in "abc"]
    m = Manifest(tmp_path)
    m.add(2, jobs[2], "skipped")
    m.open_partial()
    m.add(0, jobs[0], "failed", "in/a.jpg: truncated\nimage", 0.25)
    m.add(1, jobs[1], "done", "", 1.5)
    m.flush()
    assert [r["input"] for r in read_manifest(tmp_path / PARTIAL_NAME)] == ["in/c.jpg", "in/a.jpg", "in/b.jpg"]
    m.write()
    rows = read_manifest(tmp_path / MANIFEST_NAME)
    assert rows == [
        {"input": "in/a.jpg", "output": "out/a_color.png", "status": "failed", "error": "in/a.jpg: truncated image",
         "seconds": "0.250"},
        {"input": "in/b.jpg", "output": "out/b_color.png", "status": "done", "error": "", "seconds": "1.500"},
        {"input": "in/c.jpg", "output": "out/c_color.png", "status": "skipped", "error": "", "seconds": "0.000"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]  # the partial file is gone
