import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from chromalab.data import cache as cache_mod
from chromalab.data.cache import load_prepared, prepare
from chromalab.data.download import download
from chromalab.data.source import Source, unsafe_member
from chromalab.errors import DataError

from .conftest import jpeg_bytes, make_tiny_zip, synth_image

CLI = [sys.executable, "-m", "chromalab.cli"]


def run_cli(*args, env=None):
    e = {**os.environ, **(env or {})}
    e.pop("CHROMALAB_DEBUG", None)
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=e, timeout=300)


def assert_one_line_error(res, *fragments):
    assert res.returncode != 0
    err = res.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in res.stdout
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


def cache_snapshot(folder: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# ---- the reader ------------------------------------------------------------------------------
def test_prepare_counts_splits_and_reuse(tiny_zip):
    prep, rebuilt = prepare(tiny_zip, progress=False)
    assert rebuilt
    c = prep.counts
    assert c["seen"] == {"train": 64, "val": 1040}
    assert c["excluded"]["val"]["grayscale_mode"] == 3
    assert c["train"] == 64 and c["val"] == 1000 and c["test"] == 37
    test = prep.split("test")
    assert len(test) == 37
    # val = first 1000 *kept* val images by index: val_3 .. val_1002; test the rest
    assert prep.split("val").names[0].endswith("val_3.JPEG")
    assert test.names[0].endswith("val_1003.JPEG")
    assert prep.split("val,test").excluded == 3
    prep2, rebuilt2 = prepare(tiny_zip, progress=False)
    assert not rebuilt2 and prep2.dir == prep.dir


def test_cached_lab_equals_skimage(tiny_zip):
    prep = load_prepared(tiny_zip, progress=False)
    tr = prep.split("train")
    L, ab, rgb = tr.get(np.arange(3))
    with zipfile.ZipFile(tiny_zip) as zf:
        for i, name in enumerate(tr.names[:3]):
            im = np.asarray(Image.open(zf.open(name)).convert("RGB"))
            np.testing.assert_array_equal(rgb[i], im)
            ref = rgb2lab(im / 255.0, channel_axis=-1).transpose(2, 0, 1)
            np.testing.assert_allclose(np.concatenate([L[i], ab[i]]), ref, atol=2e-4)
    s28 = prep.split("train", size=28)
    assert s28.get([0])[0].shape == (1, 1, 28, 28)


def test_train_order_is_class_balanced_prefix(tiny_zip):
    prep = load_prepared(tiny_zip, progress=False)
    names = prep.split("train", limit=8).names
    wnids = [n.split("/")[2] for n in names]
    assert len(set(wnids[:4])) == 4  # image 0 of each of the 4 classes first
    assert [n.rsplit("_", 1)[1] for n in names[:4]] == ["0.JPEG"] * 4
    assert prep.split("train", limit=8).names == names  # deterministic


def test_folder_source_equals_zip(tiny_zip, tmp_path):
    with zipfile.ZipFile(tiny_zip) as zf:
        zf.extractall(tmp_path / "x")
    a = load_prepared(tiny_zip, progress=False).split("test")
    b = load_prepared(tmp_path / "x", progress=False).split("test")
    np.testing.assert_array_equal(a.get(np.arange(len(a)))[2], b.get(np.arange(len(b)))[2])
    assert len(a) == len(b)


def test_changed_source_rebuilds(tmp_path):
    z = make_tiny_zip(tmp_path / "d.zip", n_classes=2, per_class=4, n_val=20, seed=1)
    prep, rebuilt = prepare(z, progress=False)
    assert rebuilt and prep.counts["seen"]["train"] == 8
    make_tiny_zip(z, n_classes=2, per_class=6, n_val=20, seed=2)
    os.utime(z, ns=(1, 10**18))
    prep, rebuilt = prepare(z, progress=False)
    assert rebuilt and prep.counts["seen"]["train"] == 12


def test_near_gray_rgb_image_excluded(tmp_path):
    rng = np.random.default_rng(3)
    gray_rgb = jpeg_bytes(synth_image(rng, gray=True))  # RGB mode, but no chroma
    z = make_tiny_zip(tmp_path / "d.zip", n_classes=2, per_class=2, n_val=10,
                      extra={"tiny-imagenet-200/train/n10000000/images/n10000000_9.JPEG": gray_rgb})
    prep, _ = prepare(z, progress=False)
    assert prep.counts["excluded"]["train"]["near_gray"] == 1
    assert prep.counts["train"] == 4


def test_unsafe_names():
    assert unsafe_member("../evil")
    assert unsafe_member("a/../../evil")
    assert unsafe_member("/etc/passwd")
    assert unsafe_member("C:/x")
    assert not unsafe_member("tiny-imagenet-200/val/images/val_0.JPEG")


def test_not_a_tiny_imagenet_layout(tmp_path):
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(DataError, match="no Tiny ImageNet images"):
        Source(z)


# ---- bad cases through the CLI: one line, no traceback, cache intact ----------------------------
@pytest.fixture
def good_cache(tmp_path):
    """A prepared good source, with its cache snapshot."""
    z = make_tiny_zip(tmp_path / "good.zip", n_classes=2, per_class=4, n_val=30)
    env = {"CHROMALAB_CACHE": os.environ["CHROMALAB_CACHE"]}
    res = run_cli("data", "prepare", "--data", z, env=env)
    assert res.returncode == 0, res.stderr
    folder = cache_mod.cache_dir_for(z)
    return z, folder, cache_snapshot(folder), env


def test_truncated_zip(good_cache):
    z, folder, snap, env = good_cache
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])  # the user's zip got truncated in place
    res = run_cli("data", "prepare", "--data", z, env=env)
    assert_one_line_error(res, str(z), "truncated or corrupt")
    assert cache_snapshot(folder) == snap


def test_zip_with_parent_entry(good_cache, tmp_path):
    z, folder, snap, env = good_cache
    evil = make_tiny_zip(tmp_path / "evil.zip", n_classes=1, per_class=2, n_val=3, extra={"../evil": b"x"})
    res = run_cli("data", "prepare", "--data", evil, env=env)
    assert_one_line_error(res, "evil.zip", "unsafe entry name '../evil'")
    assert cache_snapshot(folder) == snap
    assert not (tmp_path.parent / "evil").exists()


def test_corrupt_jpeg_skipped_and_named(good_cache, tmp_path):
    z, folder, snap, env = good_cache
    bad_name = "tiny-imagenet-200/train/n10000000/images/n10000000_7.JPEG"
    good = jpeg_bytes(synth_image(np.random.default_rng(0)))
    src = make_tiny_zip(tmp_path / "c.zip", n_classes=1, per_class=3, n_val=5,
                        extra={bad_name: good[: len(good) // 3]})
    res = run_cli("data", "prepare", "--data", src, env=env)
    assert res.returncode == 0, res.stderr
    assert "corrupt 1" in res.stdout
    assert "n10000000_7.JPEG" in res.stdout
    assert cache_snapshot(folder) == snap


def test_missing_data_path(good_cache, tmp_path):
    _z, folder, snap, env = good_cache
    res = run_cli("data", "prepare", "--data", tmp_path / "nope.zip", env=env)
    assert_one_line_error(res, "nope.zip", "no such file or folder")
    res = run_cli("evaluate", "gray", "--data", tmp_path / "nope.zip", env=env)
    assert_one_line_error(res, "nope.zip")
    assert cache_snapshot(folder) == snap


# ---- download ---------------------------------------------------------------------------------------
class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    requests: list = []

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        data = self.payload
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    payload = os.urandom(300_000)
    handler = type("H", (_RangeHandler,), {"payload": payload, "requests": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/tiny-imagenet-200.zip", payload, handler
    srv.shutdown()


def test_download_resumes_and_verifies(server, tmp_path):
    url, payload, handler = server
    (tmp_path / "tiny-imagenet-200.zip.part").write_bytes(payload[:100_000])
    md5 = hashlib.md5(payload).hexdigest()
    path = download(tmp_path, url=url, md5=md5, progress=False)
    assert path.read_bytes() == payload
    assert handler.requests == ["bytes=100000-"]


def test_download_wrong_md5_set_aside(server, tmp_path, good_cache):
    url, payload, _ = server
    _z, folder, snap, env = good_cache
    res = run_cli("data", "download", "--dir", tmp_path / "dl", "--url", url, "--md5", "0" * 32, env=env)
    assert_one_line_error(res, "md5 mismatch", "moved aside")
    assert (tmp_path / "dl" / "tiny-imagenet-200.zip.bad").read_bytes() == payload
    assert not (tmp_path / "dl" / "tiny-imagenet-200.zip").exists()
    assert cache_snapshot(folder) == snap


# ---- the real data: pinned reference values --------------------------------------------------------
@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shared-cache")


def test_gray_on_official_val_split_pinned(shared_zip, shared_cache_dir, monkeypatch, tmp_path):
    """Independent scikit-image measurement: gray scores 22.82 dB / 0.9284 SSIM, 219 excluded."""
    monkeypatch.setenv("CHROMALAB_CACHE", str(shared_cache_dir))
    res = run_cli("data", "prepare", "--data", shared_zip, env={"CHROMALAB_CACHE": str(shared_cache_dir)})
    assert res.returncode == 0, res.stderr
    assert "train images seen: 50,000" in res.stdout
    out = tmp_path / "gray.json"
    res = run_cli("evaluate", "gray", "--data", shared_zip, "--split", "val,test", "--json", out,
                  env={"CHROMALAB_CACHE": str(shared_cache_dir)})
    assert res.returncode == 0, res.stderr
    m = json.loads(out.read_text())
    assert m["count"] == 10000 - 219 and m["excluded"] == 219
    assert abs(m["psnr"] - 22.82) <= 0.02
    assert abs(m["ssim"] - 0.9284) <= 0.0005
    # the same through scikit-image directly on a few test images
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from chromalab.color import compose_rgb_uint8

    prep = load_prepared(shared_zip, progress=False)
    L, ab, rgb = prep.split("test").get(np.arange(5))
    pred = compose_rgb_uint8(L, np.zeros_like(ab))
    from chromalab import metrics

    for i in range(5):
        assert abs(metrics.psnr_per_image(rgb[i : i + 1], pred[i : i + 1])[0]
                   - peak_signal_noise_ratio(rgb[i], pred[i], data_range=255)) < 1e-6
        assert abs(metrics.ssim_per_image(rgb[i : i + 1], pred[i : i + 1])[0]
                   - structural_similarity(rgb[i], pred[i], channel_axis=-1, data_range=255)) < 1e-6


def test_info_after_prepare(tiny_zip):
    res = run_cli("data", "info", "--data", tiny_zip, env={"CHROMALAB_CACHE": os.environ["CHROMALAB_CACHE"]})
    assert_one_line_error(res, "chromalab data prepare")
    load_prepared(tiny_zip, progress=False)
    res = run_cli("data", "info", "--data", tiny_zip, env={"CHROMALAB_CACHE": os.environ["CHROMALAB_CACHE"]})
    assert res.returncode == 0
    assert "val images seen: 1,040; excluded 3" in res.stdout
    assert "splits: train 64 | val 1,000 | test 37" in res.stdout
    assert "cache:" in res.stdout


def test_download_dir_default_is_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CHROMALAB_DOWNLOAD_DIR", str(tmp_path))
    from chromalab.data.download import default_download_dir

    assert default_download_dir() == tmp_path
