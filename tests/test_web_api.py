"""The web API (`chromalab serve`) through FastAPI's TestClient: every status code, JSON errors,
PNG size, model picking, the bounded pool's 503, and that the server stays healthy after errors."""

from __future__ import annotations

import io
import socket
import threading
import time
import warnings

import numpy as np
import pytest

from chromalab.color import rgb_to_lab_np
from chromalab.errors import ChromalabError, ModelError
from chromalab.predictors.base import Predictor

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx, not ours
    from fastapi.testclient import TestClient

from chromalab.web.app import MAX_UPLOAD_BYTES, SERVER_MAX_PIXELS, create_app  # noqa: E402

A_CONST, B_CONST = 20.0, 30.0


class ConstAb(Predictor):
    """Stand-in model: every pixel gets (a, b) = (20, 30)."""

    name = "const"
    input_size = None

    def _predict(self, L):
        out = np.empty((L.shape[0], 2, *L.shape[2:]), dtype=np.float32)
        out[:, 0], out[:, 1] = A_CONST, B_CONST
        return out


class Gated(ConstAb):
    """Blocks in predict until the test opens the gate, so the pool's state is deterministic."""

    name = "gated"

    def __init__(self):
        self.started = threading.Event()
        self.gate = threading.Event()

    def _predict(self, L):
        self.started.set()
        assert self.gate.wait(30), "test never opened the gate"
        return super()._predict(L)


class Exploding(ConstAb):
    name = "exploding"

    def _predict(self, L):
        raise RuntimeError("kaboom")


def photo(w: int = 97, h: int = 61, seed: int = 0) -> np.ndarray:
    """A smooth mid-tone RGB image (H, W, 3) uint8 whose colours stay in gamut with ab = (20, 30)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 110 + 40 * np.sin(xx / 9.0)[..., None] + 30 * np.cos(yy / 7.0)[..., None]
    img = base + rng.normal(0, 4, (h, w, 3)) + np.array([10, -5, -10])
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None, **kw) -> bytes:
    from PIL import Image

    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def decode(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data))


def post(client, data: bytes, name: str = "photo.png", ctype: str = "image/png", **form):
    return client.post("/api/colorize", files={"file": (name, data, ctype)}, data=form or None)


def assert_json_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    for w in words:
        assert w.lower() in detail.lower(), (w, detail)
    return detail


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ConstAb(), workers=2, queue=4)) as c:
        yield c


def test_models_and_health(client):
    from chromalab.registry import available_bundled

    info = client.get("/api/models").json()
    names = [m["name"] for m in info["models"]]
    assert info["default"] == "const" and names[0] == "const" and info["models"][0]["default"] is True
    assert not any(m["default"] for m in info["models"][1:])
    assert names == ["const", *available_bundled()]  # the served model, then the colorizers installed
    assert info["max_upload_bytes"] == MAX_UPLOAD_BYTES == 20 * 2**20
    assert info["max_pixels"] == SERVER_MAX_PIXELS == 25_000_000  # the server's own: half the CLI's 50 M
    h = client.get("/healthz")
    assert h.status_code == 200
    assert h.json() == {"status": "ok", "model": "const", "workers": 2, "queue": 4, "busy": 0, "images": 0,
                        "image_bytes": 0}
    assert info["max_hints"] == 512
    assert info["models"][0]["loaded"] and info["models"][0]["controls"] is False  # the const model has no controls


def test_colorize_returns_png_of_input_size_with_input_lightness(client):
    src = photo(97, 61)
    r = post(client, encode(src, "JPEG", quality=95), name="holiday.jpg", ctype="image/jpeg")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-chromalab-model"] == "const"
    assert 'filename="holiday-colorized.png"' in r.headers["content-disposition"]
    out = decode(r.content)
    assert out.format == "PNG" and out.size == (97, 61)
    lab_out = rgb_to_lab_np(np.asarray(out.convert("RGB")))
    lab_in = rgb_to_lab_np(np.asarray(decode(encode(src, "JPEG", quality=95)).convert("RGB")))
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).mean() < 1.0  # the photo's own lightness is kept
    assert abs(lab_out[..., 1].mean() - A_CONST) < 1.5 and abs(lab_out[..., 2].mean() - B_CONST) < 1.5


def test_odd_modes_and_alpha(client):
    src = photo(40, 30)
    rgba = np.dstack([src, np.linspace(0, 255, 40 * 30).reshape(30, 40).astype(np.uint8)])
    r = post(client, encode(rgba), name="logo.png")
    assert r.status_code == 200, r.text
    out = decode(r.content)
    assert out.size == (40, 30) and out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out)[..., 3], rgba[..., 3])
    for mode in ("L", "P", "CMYK"):
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        r = post(client, encode(src, fmt, mode=mode), name=f"x.{fmt.lower()}")
        assert r.status_code == 200, (mode, r.text)
        assert decode(r.content).size == (40, 30)


def test_model_field_picks_a_model_and_unknown_is_400(client):
    data = encode(photo(32, 24))
    colour = np.asarray(decode(post(client, data, model="const").content).convert("RGB")).astype(int)
    assert (colour[..., 0] - colour[..., 2]).mean() > 20  # a, b > 0: warm
    r = post(client, data, model="default")  # the bundled U-Net, loaded on first use
    assert r.status_code == 200 and r.headers["x-chromalab-model"] == "default"
    other = np.asarray(decode(r.content).convert("RGB")).astype(int)
    assert other.shape == colour.shape and np.abs(other - colour).mean() > 3  # not the const model's answer
    detail = assert_json_error(post(client, data, model="nope"), 400, "unknown model", "default")
    assert "const" in detail
    detail = assert_json_error(post(client, data, model="gray"), 400, "unknown model")  # not a colorizer
    assert "gray" not in detail.split("choose one of:")[1]


def test_upload_over_20mb_is_413_with_content_length(client):
    r = post(client, b"\xff" * (25 * 2**20), name="huge.jpg", ctype="image/jpeg")
    assert_json_error(r, 413, "25 MB", "20 MB")


def test_upload_over_limit_is_413_when_counted_without_content_length(client):
    """A chunked body (no Content-Length) is counted while it is read and cut off at the limit."""
    boundary = "chromalabtestboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    chunks_sent = []

    def body():
        yield head
        for _ in range(25):  # 25 x 1 MiB
            chunks_sent.append(1)
            yield b"\0" * 2**20
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/api/colorize", content=body(),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert_json_error(r, 413, "over the limit of 20 MB")


def _drive_middleware(headers, chunks):
    """Run BodyLimitMiddleware around an app that reads the whole body; return (status, body, reads)."""
    import asyncio

    from chromalab.web.app import BodyLimitMiddleware

    reads = 0
    sent: list[dict] = []

    async def receive():
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": next(chunks), "more_body": True}

    async def send(msg):
        sent.append(msg)

    async def inner(scope, receive, send):  # like a form parser: reads until the body ends
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = BodyLimitMiddleware(inner, limit=10_000, file_limit=10_000)
    scope = {"type": "http", "path": "/api/colorize", "method": "POST", "headers": headers}
    asyncio.run(mw(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), reads


def test_body_limit_never_buffers_past_the_limit():
    import itertools

    endless = (b"x" * 1000 for _ in itertools.count())  # a client that would send forever
    status, body, reads = _drive_middleware([], endless)
    assert status == 413 and b"over the limit" in body
    assert reads == 11  # stopped at the first chunk past 10,000 bytes
    # a Content-Length over the limit is refused before a single read
    status, _, reads = _drive_middleware([(b"content-length", b"10001")], iter(()))
    assert status == 413 and reads == 0


def test_byte_limit_is_exact_for_the_file():
    with TestClient(create_app(ConstAb(), max_upload_bytes=1000)) as c:
        assert_json_error(post(c, b"a" * 1000, name="notes.txt", ctype="text/plain"), 415)  # at the limit: read
        assert_json_error(post(c, b"a" * 1001, name="notes.txt", ctype="text/plain"), 413, "1000 bytes")


def test_too_many_pixels_is_413(client):
    from PIL import Image

    w, h = 6000, 5000  # 30 MP > the documented 25 MP; mode "1" keeps the test cheap
    assert w * h > SERVER_MAX_PIXELS
    buf = io.BytesIO()
    Image.new("1", (w, h), 1).save(buf, format="PNG")
    assert len(buf.getvalue()) < MAX_UPLOAD_BYTES
    detail = assert_json_error(post(client, buf.getvalue(), name="poster.png"), 413, "6000x5000", "pixels")
    assert f"{SERVER_MAX_PIXELS:,}" in detail
    with TestClient(create_app(ConstAb(), max_pixels=40 * 30 - 1)) as c:  # the limit is configurable
        assert_json_error(post(c, encode(photo(40, 30))), 413, "40x30")
        assert post(c, encode(photo(39, 30))).status_code == 200


def test_not_an_image_is_415(client):
    assert_json_error(post(client, b"just some text\n" * 20, name="notes.txt", ctype="text/plain"),
                      415, "notes.txt", "not an image")
    assert_json_error(post(client, b"", name="empty.png"), 415, "empty")
    # a lying content type does not matter: the bytes decide
    assert post(client, encode(photo(20, 20)), name="x.txt", ctype="text/plain").status_code == 200


def test_broken_image_is_422(client):
    jpeg = encode(photo(200, 150, seed=3), "JPEG", quality=90)
    detail = assert_json_error(post(client, jpeg[: len(jpeg) // 2], name="cut.jpg", ctype="image/jpeg"), 422, "cut.jpg")
    assert "truncated" in detail or "broken" in detail
    png = encode(photo(64, 64))
    assert_json_error(post(client, png[:-200], name="cut.png"), 422, "cut.png")


def test_malformed_requests_are_400_json(client):
    assert_json_error(client.post("/api/colorize", data={"model": "gray"}), 400, "file")
    assert_json_error(client.post("/api/colorize", content=b"{}", headers={"content-type": "application/json"}),
                      400, "file")


def test_errors_leave_the_server_healthy(client):
    for data, name in [(b"\xff" * (21 * 2**20), "a.jpg"), (b"text", "b.txt"), (encode(photo())[:-50], "c.png")]:
        assert post(client, data, name=name).status_code in (413, 415, 422)
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json()["busy"] == 0
    assert post(client, encode(photo(10, 10))).status_code == 200


def test_model_crash_is_500_json_and_server_stays_up():
    with TestClient(create_app(Exploding(), workers=1, queue=0)) as c:
        assert_json_error(post(c, encode(photo(16, 16))), 500, "kaboom")
        assert c.get("/healthz").json()["busy"] == 0
        assert_json_error(post(c, encode(photo(16, 16))), 500, "kaboom")  # the one worker is free again
        assert_json_error(post(c, b"text", name="t.txt"), 415)


def test_full_pool_answers_503_with_retry_after_at_once():
    pred = Gated()
    with TestClient(create_app(pred, workers=1, queue=1)) as c:
        results: dict[str, int] = {}
        data = encode(photo(16, 16))

        def send(key):
            results[key] = post(c, data).status_code

        t1 = threading.Thread(target=send, args=("running",))
        t1.start()
        assert pred.started.wait(10)  # the only worker is busy
        t2 = threading.Thread(target=send, args=("queued",))
        t2.start()
        deadline = time.monotonic() + 10
        while c.get("/healthz").json()["busy"] < 2:  # the second request waits in the queue
            assert time.monotonic() < deadline, "second request never queued"
            time.sleep(0.02)
        t0 = time.perf_counter()
        r = post(c, data)
        assert time.perf_counter() - t0 < 5  # refused at once, not stalled behind the gate
        assert_json_error(r, 503, "busy")
        assert int(r.headers["retry-after"]) >= 1
        pred.gate.set()
        t1.join(30)
        t2.join(30)
        assert results == {"running": 200, "queued": 200}
        assert c.get("/healthz").json()["busy"] == 0
        assert post(c, data).status_code == 200


def test_page_static_files_and_openapi(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for needle in ('id="file"', 'id="model"', 'id="download"', 'id="slider"', 'id="result"', 'id="gray"',
                   'id="original"', 'role="alert"', 'name="viewport"', "/static/app.js", 'id="vividness"',
                   'id="edit-img"', 'id="hint-list"', 'id="export-hints"', 'id="import-hints"', 'id="reset-hints"'):
        assert needle in r.text, needle
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/api/images" in js.text and "/api/models" in js.text
    assert client.get("/static/style.css").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/colorize", "/api/images", "/api/models", "/healthz"} <= set(spec["paths"])
    op = spec["paths"]["/api/colorize"]["post"]
    assert "multipart/form-data" in op["requestBody"]["content"]
    assert {"200", "413", "415", "422", "503"} <= set(op["responses"])
    assert "image/png" in op["responses"]["200"]["content"]
    assert client.get("/docs").status_code == 200
    assert_json_error(client.get("/nope"), 404)


def test_missing_bundled_model_fails_at_start_with_one_line(monkeypatch):
    import chromalab.registry as registry

    monkeypatch.setattr(registry, "available_bundled", lambda: [])
    with pytest.raises(ModelError) as e:
        create_app("default")
    msg = str(e.value)
    assert "'default'" in msg and "--model" in msg and "\n" not in msg
    with pytest.raises(ModelError, match="unknown model"):
        create_app("no-such-model")


def test_serve_refuses_a_busy_port_and_bad_pool_sizes():
    from chromalab.web.app import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ChromalabError, match=f"127.0.0.1:{port}"):
            serve(host="127.0.0.1", port=port, model="gray")
    with pytest.raises(ChromalabError, match="--workers"):
        create_app("gray", workers=0)
    with pytest.raises(ChromalabError, match="--queue"):
        create_app("gray", queue=-1)


# ---- defect 7: the page offers colorizers only, each once, in plain words; B&W uploads are told ---------------
JARGON = ("--", "U-Net", "annealed", "T =", "ab ", "bins", "cGAN", "L1", "regression", "PatchGAN")


def test_picker_offers_colorizers_once_in_plain_words():
    from chromalab.registry import REGISTRY, available_bundled

    class Default(ConstAb):
        name = "default"  # served under the name of a bundled model: listed once

    with TestClient(create_app(Default())) as c:
        info = c.get("/api/models").json()
    names = [m["name"] for m in info["models"]]
    assert names == ["default", *[n for n in available_bundled() if n != "default"]]
    assert len(names) == len(set(names))
    assert not {"gray", "mean-ab", "pca-ceiling"} & set(names)
    assert all(REGISTRY[n].group == "bundled" for n in names)
    for m in info["models"]:
        assert m["summary"] and not any(j in m["summary"] for j in JARGON), m


def test_black_and_white_upload_is_reported(client):
    src = photo(40, 30)
    for data, name, bw in [(encode(src, mode="L"), "bw.png", "true"),
                           (encode(np.repeat(src.mean(2, keepdims=True).astype(np.uint8), 3, 2), "JPEG", quality=85),
                            "bw-as-rgb.jpg", "true"),
                           (encode(src), "colour.png", "false")]:
        r = post(client, data, name=name)
        assert r.status_code == 200 and r.headers["x-input-grayscale"] == bw, name


def test_names_and_notes_headers_are_safe(client):
    from PIL import Image

    r = post(client, encode(photo(20, 20), "JPEG"), name="name with spaces ünïcödé фото.jpg", ctype="image/jpeg")
    assert r.status_code == 200, r.text
    cd = r.headers["content-disposition"]
    assert 'filename="name_with_spaces_unicode-colorized.png"' in cd
    assert "filename*=UTF-8''name%20with%20spaces%20%C3%BCn%C3%AFc%C3%B6d%C3%A9%20%D1%84%D0%BE%D1%82%D0%BE" in cd
    frames = [Image.fromarray(photo(20, 30, seed=s)) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    r = post(client, buf.getvalue(), name="pages.tiff", ctype="image/tiff")
    assert r.status_code == 200 and "first frame only" in r.headers["x-chromalab-notes"]
    assert "x-chromalab-notes" not in post(client, encode(photo(20, 20))).headers
