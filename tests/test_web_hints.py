"""Colour hints and vividness in the web API: upload once (`POST /api/images`), recolour many times
(`POST /api/images/{id}/colorize`) with the same answer the Python API gives, every bad input -> 422
with a one-line JSON detail and nothing kept, the bounded image store (count, bytes, time; 404 after
eviction), and `POST /api/colorize` with `hints` and `vividness` form fields.

The model is a tiny random ColorNet built here (hint input weights scaled up, so that a hint visibly
moves the colours near it); its colours mean nothing, so these tests check the plumbing and the
numbers against ``Colorizer.render``, not colour quality."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest

from chromalab.predictors.base import Predictor

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx, not ours
    from fastapi.testclient import TestClient

from chromalab.web.app import ImageStore, KeptImage, create_app  # noqa: E402

HINT_GAIN = 100.0  # the tiny net's hint input weights are scaled by this: hints then show in its output


def tiny_colornet(path):
    """A width-4 ColorNet (random weights, fixed seed) saved as weights file ``path``."""
    import torch

    from chromalab.nets import ColorNet
    from chromalab.predictors.nets import save_net

    torch.manual_seed(0)
    net = ColorNet(width=4, depth=2, n_classes=3).eval()
    with torch.no_grad():
        net.stem.conv1.weight[:, 1:] *= HINT_GAIN  # the 3 hint channels (a, b, mask) after L
    save_net(path, net, {"input_size": 64})
    return path


class ConstAb(Predictor):
    """A model without controls: every pixel gets (a, b) = (20, 30)."""

    name = "const"
    input_size = None

    def _predict(self, L):
        out = np.empty((L.shape[0], 2, *L.shape[2:]), dtype=np.float32)
        out[:, 0], out[:, 1] = 20.0, 30.0
        return out


def astronaut(size: int = 128) -> np.ndarray:
    """scikit-image's astronaut photo, resized to size x size (RGB uint8)."""
    import skimage.data
    from PIL import Image

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.Resampling.LANCZOS))


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    return np.asarray(im.convert("RGB")).astype(int)


def assert_json_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail, detail
    for w in words:
        assert w.lower() in detail.lower(), (w, detail)
    return detail


@pytest.fixture(scope="module")
def cn_path(tmp_path_factory):
    return tiny_colornet(tmp_path_factory.mktemp("cn") / "cn.safetensors")


@pytest.fixture(scope="module")
def client(cn_path):
    with TestClient(create_app(str(cn_path), workers=2, queue=8)) as c:
        yield c


@pytest.fixture(scope="module")
def colorizer(cn_path):
    from chromalab.inference import Colorizer

    return Colorizer(str(cn_path), onnx_cache=False)


@pytest.fixture(scope="module")
def photo():
    return astronaut(128)


def upload(client, data: bytes, name: str = "astronaut.png", **form):
    return client.post("/api/images", files={"file": (name, data, "image/png")}, data=form or None)


def recolour(client, image_id: str, body=None, raw: bytes | None = None):
    if raw is not None:
        return client.post(f"/api/images/{image_id}/colorize", content=raw,
                           headers={"content-type": "application/json"})
    return client.post(f"/api/images/{image_id}/colorize", json=body if body is not None else {})


def test_models_say_which_take_hints_and_vividness(client):
    info = client.get("/api/models").json()
    served = info["models"][0]
    assert served["name"] == "cn" and served["default"] and served["loaded"]
    assert served["controls"] is True and served["takes_hints"] is True and served["vividness"] == 0.5
    assert info["max_hints"] == 512
    one = client.get("/api/models/cn").json()
    assert one == served
    assert_json_error(client.get("/api/models/nope"), 404, "unknown model", "cn")
    with TestClient(create_app(ConstAb())) as c:
        m = c.get("/api/models/const").json()
        assert (m["controls"], m["takes_hints"], m["vividness"]) == (False, False, None)


def test_max_hints_matches_the_library():
    from chromalab.hints import MAX_HINTS
    from chromalab.web.app import MAX_HINTS as WEB_MAX

    assert WEB_MAX == MAX_HINTS


def test_upload_once_recolour_many_as_the_python_api_does(client, colorizer, photo):
    from PIL import Image

    r = upload(client, png_bytes(photo))
    assert r.status_code == 201, r.text
    info = r.json()
    assert (info["width"], info["height"]) == (128, 128)
    assert (info["controls"], info["takes_hints"], info["vividness"]) == (True, True, 0.5)
    assert info["model"] == "cn" and info["grayscale"] is False and len(info["id"]) >= 16
    images_before = client.get("/healthz").json()["images"]

    item = colorizer.prepare(Image.fromarray(photo))
    hint = [{"x": 40, "y": 90, "color": "#3070c0"}]
    cases = [({}, None, None), ({"hints": hint}, hint, None), ({"vividness": 0.0}, None, 0.0),
             ({"vividness": 1, "hints": hint + [{"x": 100.5, "y": 20.25, "color": "red"}]},
              hint + [{"x": 100.5, "y": 20.25, "color": "red"}], 1.0),
             ({"hints": [[40, 90, [48, 112, 192]]]}, [(40, 90, (48, 112, 192))], None)]
    outs = []
    for body, hints, v in cases:
        r = recolour(client, info["id"], body)
        assert r.status_code == 200, (body, r.text)
        assert r.headers["content-type"] == "image/png" and r.headers["x-chromalab-model"] == "cn"
        assert "render;dur=" in r.headers["server-timing"] and "png;dur=" in r.headers["server-timing"]
        got = pixels(r.content)
        want = colorizer.render(item, hints, v).astype(int)
        np.testing.assert_array_equal(got, want)  # the web answer is the Python API's, pixel for pixel
        outs.append(got)
    base, hinted, accurate = outs[0], outs[1], outs[2]
    np.testing.assert_array_equal(outs[4], hinted)  # [x, y, [r, g, b]] is the same hint as {"x", "y", "color"}
    near = np.abs(hinted - base)[80:100, 30:50].mean()
    far = np.abs(hinted - base)[:32, 96:].mean()
    assert near > 1.0 and near > 10 * far, (near, far)  # a hint changes the colours near it
    assert np.abs(accurate - base).mean() > 1.0  # and vividness changes them
    assert "vividness=1; hints=2" in recolour(client, info["id"], cases[3][0]).headers["x-chromalab-settings"]
    assert client.get("/healthz").json()["images"] == images_before  # recolouring keeps nothing new


def test_recoloured_png_records_the_settings(client, photo, tmp_path):
    from chromalab.inference import read_provenance

    image_id = upload(client, png_bytes(photo)).json()["id"]
    r = recolour(client, image_id, {"vividness": 0.25, "hints": [{"x": 3, "y": 4, "color": "#102030"}]})
    (tmp_path / "out.png").write_bytes(r.content)
    rec = read_provenance(tmp_path / "out.png")
    assert rec["vividness"] == 0.25 and rec["hints"] == [{"x": 3, "y": 4, "color": "#102030"}]


def test_png_level_0_is_the_same_image_sooner(client, photo):
    image_id = upload(client, png_bytes(photo)).json()["id"]
    body = {"hints": [{"x": 40, "y": 90, "color": "#3070c0"}]}
    small, stored = recolour(client, image_id, body), recolour(client, image_id, {**body, "png_level": 0})
    assert small.status_code == stored.status_code == 200
    np.testing.assert_array_equal(pixels(stored.content), pixels(small.content))
    assert len(stored.content) > 1.5 * len(small.content)


def test_colorize_form_takes_hints_and_vividness(client, photo):
    data = png_bytes(photo)
    image_id = upload(client, data).json()["id"]
    hints = [{"x": 40, "y": 90, "color": "#3070c0"}]
    via_store = recolour(client, image_id, {"vividness": 0.8, "hints": hints})
    r = client.post("/api/colorize", files={"file": ("a.png", data, "image/png")},
                    data={"vividness": "0.8", "hints": json.dumps(hints)})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(pixels(r.content), pixels(via_store.content))
    plain = client.post("/api/colorize", files={"file": ("a.png", data, "image/png")}, data={"hints": ""})
    assert plain.status_code == 200 and not np.array_equal(pixels(plain.content), pixels(r.content))


BAD = [  # (what, body for /api/images/{id}/colorize, hints form field or None, words in the detail)
    ("outside", {"hints": [{"x": 128, "y": 5, "color": "red"}]}, None, ["outside", "128x128"]),
    ("outside-y", {"hints": [{"x": 5, "y": 1e9, "color": "red"}]}, None, ["outside"]),
    ("negative", {"hints": [{"x": -1, "y": 5, "color": "red"}]}, None, ["negative"]),
    ("colour", {"hints": [{"x": 1, "y": 5, "color": "bluish"}]}, None, ["bluish", "not a colour"]),
    ("colour-tuple", {"hints": [{"x": 1, "y": 5, "color": [300, 0, 0]}]}, None, ["not a colour"]),
    ("too-many", {"hints": [{"x": 1, "y": 1, "color": "red"}] * 513}, None, ["513", "512"]),
    ("missing-key", {"hints": [{"x": 1, "color": "red"}]}, None, ["missing y"]),
    ("not-a-list", {"hints": {"x": 1, "y": 1, "color": "red"}}, None, ["list"]),
    ("coordinate", {"hints": [{"x": "left", "y": 1, "color": "red"}]}, None, ["number"]),
    ("vivid-high", {"vividness": 1.5}, None, ["vividness", "0", "1"]),
    ("vivid-low", {"vividness": -0.1}, None, ["vividness"]),
    ("vivid-text", {"vividness": "lots"}, None, ["vividness"]),
    ("vivid-bool", {"vividness": True}, None, ["vividness"]),
    ("unknown-field", {"hint": []}, None, ["unknown field 'hint'"]),
    ("model-type", {"model": 3}, None, ["model"]),
    ("png-level", {"png_level": 12}, None, ["png_level", "0", "9"]),
    ("png-level-type", {"png_level": "fast"}, None, ["png_level"]),
]


@pytest.mark.parametrize("what,body,_form,words", BAD, ids=[b[0] for b in BAD])
def test_bad_recolour_requests_are_422_and_keep_nothing(client, photo, what, body, _form, words):
    image_id = upload(client, png_bytes(photo)).json()["id"]
    before = client.get("/healthz").json()
    assert_json_error(recolour(client, image_id, body), 422, *words)
    after = client.get("/healthz").json()
    assert (after["images"], after["image_bytes"], after["busy"]) == (before["images"], before["image_bytes"], 0)
    assert recolour(client, image_id, {}).status_code == 200  # the kept image is untouched


@pytest.mark.parametrize("raw,words", [(b"{", "not valid JSON"), (b'{"hints": [', "not valid JSON"),
                                       (b"[1, 2]", "JSON object"), (b"\xff\xfe", "not valid JSON")])
def test_malformed_json_body_is_422(client, photo, raw, words):
    image_id = upload(client, png_bytes(photo)).json()["id"]
    assert_json_error(recolour(client, image_id, raw=raw), 422, words)


@pytest.mark.parametrize("form,words", [
    ({"hints": "[{"}, ["hints", "not valid JSON"]),
    ({"hints": json.dumps([{"x": 200, "y": 5, "color": "red"}])}, ["outside"]),
    ({"hints": json.dumps([{"x": 5, "y": -2, "color": "red"}])}, ["negative"]),
    ({"hints": json.dumps([{"x": 5, "y": 2, "color": "#12345"}])}, ["not a colour"]),
    ({"hints": json.dumps([{"x": 1, "y": 1, "color": "red"}] * 600)}, ["600", "512"]),
    ({"hints": '"red"'}, ["list"]),
    ({"vividness": "2"}, ["vividness"]),
    ({"vividness": "nan"}, ["vividness"]),
    ({"vividness": "x"}, ["vividness"]),
])
def test_bad_colorize_form_fields_are_422(client, photo, form, words):
    r = client.post("/api/colorize", files={"file": ("a.png", png_bytes(photo), "image/png")}, data=form)
    assert_json_error(r, 422, *words)


def test_hints_and_vividness_for_a_model_without_them_are_422(photo):
    with TestClient(create_app(ConstAb())) as c:
        info = upload(c, png_bytes(photo)).json()
        assert (info["controls"], info["takes_hints"], info["vividness"]) == (False, False, None)
        hint = [{"x": 1, "y": 1, "color": "red"}]
        assert_json_error(recolour(c, info["id"], {"hints": hint}), 422, "takes no colour hints")
        assert_json_error(recolour(c, info["id"], {"vividness": 0.5}), 422, "no vividness")
        assert recolour(c, info["id"], {"hints": []}).status_code == 200  # no hints is fine
        form = {"file": ("a.png", png_bytes(photo), "image/png")}
        assert_json_error(c.post("/api/colorize", files=form, data={"hints": json.dumps(hint)}), 422, "no colour hints")
        assert_json_error(c.post("/api/colorize", files=form, data={"vividness": "0.3"}), 422, "no vividness")
        assert c.get("/healthz").json()["images"] == 1


def test_unknown_model_is_400_and_unknown_image_404(client, photo):
    image_id = upload(client, png_bytes(photo)).json()["id"]
    assert_json_error(recolour(client, image_id, {"model": "nope"}), 400, "unknown model")
    assert_json_error(recolour(client, "no-such-id", {}), 404, "upload it again")
    assert_json_error(client.delete("/api/images/no-such-id"), 404)


def test_bad_uploads_keep_nothing(client):
    before = client.get("/healthz").json()["images"]
    assert_json_error(upload(client, b"just text", name="notes.txt"), 415, "not an image")
    assert_json_error(upload(client, png_bytes(astronaut(32))[:-100], name="cut.png"), 422, "cut.png")
    assert_json_error(upload(client, png_bytes(astronaut(32)), model="nope"), 400, "unknown model")
    assert client.get("/healthz").json()["images"] == before


def test_store_is_bounded_by_count_and_404_after_eviction(cn_path, photo):
    with TestClient(create_app(str(cn_path), store_images=2)) as c:
        ids = [upload(c, png_bytes(photo)).json()["id"] for _ in range(3)]
        assert c.get("/healthz").json()["images"] == 2
        detail = assert_json_error(recolour(c, ids[0], {}), 404, "upload it again")
        assert ids[0] in detail
        assert recolour(c, ids[2], {}).status_code == 200
        assert recolour(c, ids[1], {}).status_code == 200  # ids[1] is now the most recently used ...
        ids.append(upload(c, png_bytes(photo)).json()["id"])
        assert recolour(c, ids[2], {}).status_code == 404  # ... so ids[2] went out first
        assert recolour(c, ids[1], {}).status_code == 200
        assert c.delete(f"/api/images/{ids[1]}").status_code == 204
        assert_json_error(recolour(c, ids[1], {}), 404, "upload it again")
        assert c.get("/healthz").json()["images"] == 1


def test_store_is_bounded_by_bytes(cn_path, photo):
    one = 128 * 128 * 4 + 64 * 64 * 4  # the full-size L plane and the working-size L, float32
    with TestClient(create_app(str(cn_path), store_bytes=2 * one + 100)) as c:
        ids = [upload(c, png_bytes(photo)).json()["id"] for _ in range(3)]
        h = c.get("/healthz").json()
        assert h["images"] == 2 and h["image_bytes"] == 2 * one
        assert recolour(c, ids[0], {}).status_code == 404
        big = np.asarray(np.resize(photo, (256, 256, 3)), dtype=np.uint8)
        assert_json_error(upload(c, png_bytes(big), name="big.png"), 413, "big.png", "/api/colorize")
        assert c.get("/healthz").json()["images"] == 2  # refused, and nothing else was dropped for it
        assert recolour(c, ids[2], {}).status_code == 200


def test_store_drops_images_unused_for_the_time_to_live():
    now = [0.0]
    store = ImageStore(max_images=8, max_bytes=10**6, ttl=60, clock=lambda: now[0])

    def kept(n: int) -> KeptImage:
        return KeptImage(item=None, label="x.png", width=1, height=1, grayscale=False, notes=[], nbytes=n,
                         last_used=0.0)

    a, b = store.put(kept(10)), store.put(kept(20))
    now[0] = 50.0
    assert store.get(a) is not None  # used at 50: stays until 110
    now[0] = 70.0
    assert store.get(b) is None and store.nbytes == 10 and len(store) == 1  # unused since 0
    now[0] = 109.0
    assert store.get(a) is not None
    now[0] = 170.0
    assert store.get(a) is None and store.nbytes == 0


def test_time_to_live_through_the_app(cn_path, photo):
    import time

    with TestClient(create_app(str(cn_path), store_ttl=0.3)) as c:
        image_id = upload(c, png_bytes(photo)).json()["id"]
        assert recolour(c, image_id, {}).status_code == 200
        time.sleep(0.5)
        assert_json_error(recolour(c, image_id, {}), 404, "upload it again")


def test_another_model_recolours_the_kept_image_at_its_own_working_size(cn_path, photo):
    """A model with another working size gets the kept L resized as its own prepare would."""
    from PIL import Image

    from chromalab.inference import Colorizer

    small, big = Colorizer(str(cn_path), onnx_cache=False, work_size=32), Colorizer(str(cn_path), onnx_cache=False)
    im = Image.fromarray(photo)
    item = big.prepare(im)
    kept = KeptImage(item=item, label="a.png", width=128, height=128, grayscale=False, notes=[], nbytes=1,
                     last_used=0.0)
    assert kept.for_model(big) is item
    other = kept.for_model(small)
    assert other.work.shape == (32, 32) and other.L is item.L
    np.testing.assert_array_equal(small.render(other, [(5, 5, "red")]), small.render(small.prepare(im), [(5, 5, "red")]))


def test_json_body_over_the_limit_is_413(client, photo):
    from chromalab.web.app import MAX_JSON_BYTES

    image_id = upload(client, png_bytes(photo)).json()["id"]
    raw = json.dumps({"hints": [{"x": 1, "y": 1, "color": "red" + " " * 100}] * 3000}).encode()
    assert len(raw) > MAX_JSON_BYTES
    assert_json_error(recolour(client, image_id, raw=raw), 413, "request body", "512 hints")


def test_openapi_describes_the_new_endpoints(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/images", "/api/images/{image_id}/colorize", "/api/images/{image_id}", "/api/models/{name}"} \
        <= set(spec["paths"])
    op = spec["paths"]["/api/images/{image_id}/colorize"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "vividness", "hints", "png_level"} == set(schema["properties"])
    assert {"200", "404", "422"} <= set(op["responses"])
    form = spec["paths"]["/api/colorize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    props = form["properties"] if "properties" in form else spec["components"]["schemas"][
        form["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"file", "model", "vividness", "hints"} <= set(props)
