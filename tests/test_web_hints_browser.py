"""Colour points and the vividness slider on the page, in real headless Chromium (Debian's
/usr/bin/chromium driven by Playwright) against uvicorn on 127.0.0.1.

With the tiny random ColorNet built here the colours mean nothing, so the test checks what the page
owns: a click drops a point whose colour starts as the result's colour there; setting its colour sends
a recolour request carrying that point (and never the photo again) and the result near the point
changes; dragging moves it; Delete removes it; reset clears all; the exported JSON is the CLI's
``--hints`` format and imports back to the same result. With a trained hint model in
``CHROMALAB_TEST_GUIDED`` (a weights file or run folder) a second test checks that the colour at the
point moves to the hint's hue (within 30 degrees)."""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest

from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS, running_server
from tests.test_web_hints import ConstAb, tiny_colornet

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install chromium; CI installs it)"),
]

SIZE = 512  # the astronaut photo's side
IMAGE_JS = """(sel) => {
  const img = document.querySelector(sel);
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  c.getContext('2d').drawImage(img, 0, 0);
  return c.toDataURL('image/png');
}"""


def astronaut_jpeg(path):
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.astronaut()).save(path, format="JPEG", quality=92)
    return path


def shown(page, sel: str = "#edit-img") -> np.ndarray:
    """The pixels of an <img> on the page, read back through a canvas: (H, W, 3) int."""
    from PIL import Image

    url = page.evaluate(IMAGE_JS, sel)
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def renders(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.renders || 0)"))


def wait_render(page, after: int, timeout: float = 60_000) -> None:
    """Wait until a result newer than render number ``after`` is shown and nothing is pending."""
    page.wait_for_function(
        f"() => Number(document.body.dataset.renders || 0) > {after} && document.body.dataset.state === 'done'",
        timeout=timeout)


def screen_xy(page, x: float, y: float) -> tuple[float, float]:
    """Image pixel (x, y) -> page coordinates on the shown result."""
    box = page.locator("#edit-img").bounding_box()
    return box["x"] + x / SIZE * box["width"], box["y"] + y / SIZE * box["height"]


def click_image(page, x: float, y: float) -> None:
    page.mouse.click(*screen_xy(page, x, y))


def hint_requests(log: list) -> list[dict]:
    return [json.loads(r["body"] or "{}") for r in log if r["url"].endswith("/colorize") and "/api/images/" in r["url"]]


def hue_deg(rgb) -> tuple[float, float]:
    """Hue angle (degrees) and chroma in CIELAB of an sRGB colour (0..255)."""
    from chromalab.color import rgb_to_lab_np

    lab = rgb_to_lab_np(np.asarray(rgb, dtype=np.uint8).reshape(1, 1, 3))[0, 0]
    return float(np.degrees(np.arctan2(lab[2], lab[1]))), float(np.hypot(lab[1], lab[2]))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def cn_url(tmp_path_factory):
    from chromalab.web.app import create_app

    path = tiny_colornet(tmp_path_factory.mktemp("cn") / "cn.safetensors")
    with running_server(create_app(str(path), workers=2, queue=8, store_images=4)) as url:
        yield url


def open_page(browser, url: str, photo, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900}, accept_downloads=True)
    log: list[dict] = []
    errors: list[str] = []
    page.on("request", lambda r: log.append({"url": r.url, "method": r.method, "body": r.post_data})
            if "/api/" in r.url else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # A new point opens the browser's own colour picker (showPicker). That popup is outside the page:
    # CDP cannot drive it, and while open it takes the keyboard. Count the calls instead, and set the
    # colour on the <input type=color> as the picker does (its value, then an input event).
    page.add_init_script("window.pickerOpened = 0; HTMLInputElement.prototype.showPicker = function () "
                         "{ if (this.type === 'color') window.pickerOpened++; };")
    page.goto(url + "/")
    page.wait_for_function("() => document.querySelectorAll('#model option').length >= 1")
    page.set_input_files("#file", str(photo))
    wait_render(page, 0)
    return page, log, errors


def test_points_colour_drag_delete_reset_export_import(browser, cn_url, tmp_path):
    photo = astronaut_jpeg(tmp_path / "astronaut.jpg")
    page, log, errors = open_page(browser, cn_url, photo)
    uploads = [r for r in log if r["method"] == "POST" and r["url"].endswith("/api/images")]
    assert len(uploads) == 1 and not any(r["url"].endswith("/api/colorize") for r in log)
    assert page.locator("#editor-section").is_visible() and page.locator("#error").is_hidden()
    # the vividness slider is there for this model, at its default
    assert page.locator("#vividness").is_visible() and page.locator("#vividness").input_value() == "0.5"
    assert "default" in page.locator("#vividness-value").inner_text()
    assert page.locator("#hint-list li").count() == 0 and page.locator("#hints-off").is_hidden()
    plain = shown(page)
    assert plain.shape == (SIZE, SIZE, 3)

    # click: a point where clicked, its colour starting from the result's colour there
    n = renders(page)
    px, py = 100, 300
    click_image(page, px + 0.5, py + 0.5)
    wait_render(page, n)
    assert page.locator("#hint-list li").count() == 1 and page.locator("#points .pt").count() == 1
    picker = page.locator("#hint-list input[type=color]").first
    assert page.evaluate("window.pickerOpened") == 1
    assert picker.evaluate("(e) => e === document.activeElement")  # the new point's colour has the focus
    start = picker.input_value()
    r, g, b = plain[py, px]
    assert start == f"#{r:02x}{g:02x}{b:02x}", (start, plain[py, px])
    marker = page.locator("#points .pt").first.bounding_box()
    cx, cy = screen_xy(page, px + 0.5, py + 0.5)
    assert abs(marker["x"] + marker["width"] / 2 - cx) < 1.5 and abs(marker["y"] + marker["height"] / 2 - cy) < 1.5
    sent = hint_requests(log)[-1]
    # (mouse events land on whole CSS pixels: the point is within one image pixel of the click)
    assert len(sent["hints"]) == 1 and sent["hints"][0]["color"] == start
    assert abs(sent["hints"][0]["x"] - 100.5) <= 1 and abs(sent["hints"][0]["y"] - 300.5) <= 1

    # set its colour: a recolour request carrying the point; the result near it changes
    n = renders(page)
    picker.fill("#3070c0")
    wait_render(page, n)
    sent = hint_requests(log)[-1]
    assert sent["hints"] == [{"x": sent["hints"][0]["x"], "y": sent["hints"][0]["y"], "color": "#3070c0"}]
    assert sent["vividness"] == 0.5 and sent["model"] == "cn"
    blue = shown(page)
    near = np.abs(blue - plain)[py - 16:py + 16, px - 16:px + 16].mean()
    far = np.abs(blue - plain)[:64, -64:].mean()
    assert near > 0.5 and near > 5 * far, (near, far)
    assert page.locator("#points .pt").first.evaluate("(m) => getComputedStyle(m).getPropertyValue('--c')").strip() \
        == "#3070c0"

    # drag the point elsewhere
    n = renders(page)
    page.mouse.move(*screen_xy(page, px + 0.5, py + 0.5))
    page.mouse.down()
    for k in range(1, 6):
        page.mouse.move(*screen_xy(page, px + 0.5 + k * 40, py + 0.5 - k * 40))
    page.mouse.up()
    wait_render(page, n)  # "done" comes only once no edit is waiting: this is the last position's result
    moved = hint_requests(log)[-1]["hints"]
    assert len(moved) == 1 and abs(moved[0]["x"] - 300.5) <= 1.5 and abs(moved[0]["y"] - 100.5) <= 1.5, moved
    shown_xy = f"x {np.floor(moved[0]['x'] + 0.5):.0f}, y {np.floor(moved[0]['y'] + 0.5):.0f}"  # as JS rounds
    assert page.locator("#hint-list li .xy").first.inner_text() == shown_xy
    dragged = shown(page)
    assert np.abs(dragged - blue)[py - 16:py + 16, px - 16:px + 16].mean() > 0.5  # the old spot went back

    # export: the CLI's --hints format
    with page.expect_download() as dl:
        page.click("#export-hints")
    assert dl.value.suggested_filename == "astronaut-hints.json"
    exported = tmp_path / "hints.json"
    dl.value.save_as(exported)
    data = json.loads(exported.read_text())
    assert data == [{"x": moved[0]["x"], "y": moved[0]["y"], "color": "#3070c0"}]
    from chromalab.hints import load_hints_file, parse_hints

    assert len(parse_hints(load_hints_file(exported), SIZE, SIZE)) == 1

    # a second point, deleted from the keyboard
    n = renders(page)
    click_image(page, 400.5, 400.5)
    wait_render(page, n)
    assert page.locator("#points .pt").count() == 2
    n = renders(page)
    page.locator("#points .pt").nth(1).focus()
    page.keyboard.press("Delete")
    wait_render(page, n)
    assert page.locator("#points .pt").count() == 1 and len(hint_requests(log)[-1]["hints"]) == 1
    np.testing.assert_array_equal(shown(page), dragged)  # the same single point as before: the same result

    # arrow keys move the focused point by one pixel
    n = renders(page)
    page.locator("#points .pt").first.focus()
    page.keyboard.press("ArrowRight")
    wait_render(page, n)
    assert abs(hint_requests(log)[-1]["hints"][0]["x"] - (moved[0]["x"] + 1)) < 1e-6

    # reset all: no hints, the first result again
    n = renders(page)
    page.click("#reset-hints")
    wait_render(page, n)
    assert page.locator("#hint-list li").count() == 0 and "hints" not in hint_requests(log)[-1]
    np.testing.assert_array_equal(shown(page), plain)

    # import the exported file: the same point and the same result as after the drag
    n = renders(page)
    page.set_input_files("#import-hints", str(exported))
    wait_render(page, n)
    assert hint_requests(log)[-1]["hints"] == data
    np.testing.assert_array_equal(shown(page), dragged)

    # a bad file is refused in words; the points stay
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"x": 600, "y": 5, "color": "red"}]))
    page.set_input_files("#import-hints", str(bad))
    page.wait_for_function("() => !document.querySelector('#error').hidden")
    assert "outside" in page.locator("#error").inner_text() and page.locator("#hint-list li").count() == 1
    assert page.locator("#edit-img").is_visible()

    # vividness: the slider recolours with the value sent
    n = renders(page)
    page.locator("#vividness").focus()
    page.keyboard.press("Home")  # a range input goes to its minimum
    wait_render(page, n)
    assert hint_requests(log)[-1]["vividness"] == 0
    assert np.abs(shown(page) - dragged).mean() > 1.0
    assert page.locator("#vividness-value").inner_text().startswith("0.00")

    # Download: the compressed PNG of the settings on show (previews on loopback come uncompressed)
    assert all(b.get("png_level") == 0 for b in hint_requests(log))
    with page.expect_download() as dl:
        page.click("#download")
    assert dl.value.suggested_filename == "astronaut-colorized.png"
    saved = tmp_path / "saved.png"
    dl.value.save_as(saved)
    from PIL import Image

    from chromalab.inference import read_provenance

    np.testing.assert_array_equal(np.asarray(Image.open(saved).convert("RGB")).astype(int), shown(page))
    rec = read_provenance(saved)
    assert rec["vividness"] == 0 and rec["hints"] == data
    assert "png_level" not in hint_requests(log)[-1]  # the download's own request: the default level

    # the photo went up once; every edit was a recolour of the kept image
    assert sum(1 for r in log if r["method"] == "POST" and r["url"].endswith("/api/images")) == 1
    assert not any(r["url"].endswith("/api/colorize") for r in log)
    assert errors == []
    page.close()


def test_points_from_the_keyboard_alone(browser, cn_url, tmp_path):
    photo = astronaut_jpeg(tmp_path / "a.jpg")
    page, log, errors = open_page(browser, cn_url, photo)
    n = renders(page)
    page.locator("#add-hint").focus()
    page.keyboard.press("Enter")  # a point in the middle, its colour focused
    wait_render(page, n)
    assert hint_requests(log)[-1]["hints"][0]["x"] == SIZE / 2 and hint_requests(log)[-1]["hints"][0]["y"] == SIZE / 2
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Colour of point 1"
    n = renders(page)
    page.locator("#download").focus()
    page.keyboard.press("Tab")  # the points come next in the tab order, before the tools
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert label.startswith("Point 1 at x 256, y 256") and "Delete removes it" in label
    page.keyboard.press("Shift+ArrowDown")
    wait_render(page, n)
    assert hint_requests(log)[-1]["hints"][0]["y"] == SIZE / 2 + 10
    n = renders(page)
    page.keyboard.press("Delete")
    wait_render(page, n)
    assert page.locator("#points .pt").count() == 0 and "hints" not in hint_requests(log)[-1]
    assert errors == []
    page.close()


def test_a_dropped_photo_is_sent_again_when_the_server_forgot_it(browser, cn_url, tmp_path):
    import httpx

    photo = astronaut_jpeg(tmp_path / "a.jpg")
    page, log, _ = open_page(browser, cn_url, photo)
    for _ in range(4):  # the server keeps 4 images: these push the page's photo out
        r = httpx.post(cn_url + "/api/images", files={"file": ("x.jpg", photo.read_bytes(), "image/jpeg")})
        assert r.status_code == 201
    n = renders(page)
    click_image(page, 200, 200)
    wait_render(page, n)
    assert page.locator("#error").is_hidden() and page.locator("#hint-list li").count() == 1
    statuses = [r["url"].rsplit("/", 2)[-2:] for r in log if r["method"] == "POST"]
    assert sum(1 for s in statuses if s[-1] == "images") == 2  # sent again once, then recoloured
    assert len(hint_requests(log)[-1]["hints"]) == 1
    page.close()


def test_model_without_controls_hides_the_slider_and_takes_no_points(browser, tmp_path):
    from chromalab.web.app import create_app

    photo = astronaut_jpeg(tmp_path / "a.jpg")
    with running_server(create_app(ConstAb(), workers=1, queue=2)) as url:
        page, log, errors = open_page(browser, url, photo)
        assert page.locator("#vivid-field").is_hidden() and page.locator("#hints-off").is_visible()
        n = renders(page)
        click_image(page, 100, 100)
        page.wait_for_timeout(300)
        assert renders(page) == n and page.locator("#hint-list li").count() == 0
        assert "takes no colour points" in page.locator("#status").inner_text()
        body = hint_requests(log)[-1]
        assert "hints" not in body and "vividness" not in body
        assert errors == []
        page.close()


def test_editor_fits_a_phone(browser, cn_url, tmp_path):
    photo = astronaut_jpeg(tmp_path / "a.jpg")
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    page = ctx.new_page()
    page.goto(cn_url + "/")
    page.wait_for_function("() => document.querySelectorAll('#model option').length >= 1")
    page.set_input_files("#file", str(photo))
    wait_render(page, 0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for sel in ("#stage", "#vividness", "#reset-hints", "#export-hints", ".file-button"):
        box = page.locator(sel).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 0.5, (sel, box)
    n = renders(page)
    box = page.locator("#edit-img").bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_render(page, n)
    assert page.locator("#points .pt").count() == 1
    ctx.close()


def _guided_model() -> str | None:
    """$CHROMALAB_TEST_GUIDED, else the bundled `guided` model when this build ships one that takes hints."""
    env = os.environ.get("CHROMALAB_TEST_GUIDED")
    if env:
        return env
    from chromalab.predictors.nets import bundled_path, read_meta

    p = bundled_path("default")
    return "guided" if p.is_file() and (read_meta(p).get("arch_kwargs") or {}).get("hints") else None


GUIDED = _guided_model()


@pytest.mark.skipif(not GUIDED, reason="no trained hint model: the bundled guided model takes no hints in this build "
                    "(or set CHROMALAB_TEST_GUIDED to a weights file or run folder)")
def test_a_point_moves_the_colour_to_its_hue_with_a_trained_model(browser, tmp_path):
    from chromalab.web.app import create_app

    photo = astronaut_jpeg(tmp_path / "astronaut.jpg")
    with running_server(create_app(GUIDED, workers=2, queue=4)) as url:
        page, log, errors = open_page(browser, url, photo)
        assert page.locator("#hints-off").is_hidden(), "CHROMALAB_TEST_GUIDED is not a model that takes hints"
        plain = shown(page)
        px, py, colour = 60, 60, "#3070c0"  # a blue point on the light wall behind the astronaut
        n = renders(page)
        click_image(page, px + 0.5, py + 0.5)
        wait_render(page, n)
        n = renders(page)
        page.locator("#hint-list input[type=color]").first.fill(colour)
        wait_render(page, n)
        assert hint_requests(log)[-1]["hints"][0]["color"] == colour
        out = shown(page)
        want, _ = hue_deg([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        got, chroma = hue_deg(out[py - 2:py + 3, px - 2:px + 3].reshape(-1, 3).mean(0).round())
        before, _ = hue_deg(plain[py - 2:py + 3, px - 2:px + 3].reshape(-1, 3).mean(0).round())
        diff = abs((got - want + 180) % 360 - 180)
        assert chroma > 5 and diff <= 30, (f"hue {got:.0f} (chroma {chroma:.0f}) vs the hint's {want:.0f}; "
                                           f"before the point: {before:.0f}")
        assert errors == []
        page.close()
