"""End to end in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
the page loads, takes an upload, shows gray | colorized | original, compares, downloads,
switches models, reports errors in words, and fits a 390 px wide phone screen."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from chromalab.predictors.base import Predictor

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
UPLOAD_LIMIT = 300_000  # small, so the page's own size check can be tried with a small file

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install chromium; CI installs it)"),
]

# JS: colour statistics of an <img> read back through a canvas (blob: URLs are same-origin).
PIXELS_JS = """(sel) => {
  const img = document.querySelector(sel);
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let spread = 0, warm = 0;
  for (let i = 0; i < d.length; i += 4) {
    spread += Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
    warm += d[i] - d[i + 2];
  }
  const n = d.length / 4;
  const box = img.getBoundingClientRect();
  return {w: img.naturalWidth, h: img.naturalHeight, spread: spread / n, warm: warm / n,
          shownWidth: box.width, shownHeight: box.height};
}"""


class ConstAb(Predictor):
    """Stand-in model: every pixel gets (a, b) = (20, 30), a warm colour."""

    name = "const"
    input_size = None

    def _predict(self, L):
        out = np.empty((L.shape[0], 2, *L.shape[2:]), dtype=np.float32)
        out[:, 0], out[:, 1] = 20.0, 30.0
        return out


def gray_photo(path: Path, w: int = 160, h: int = 120, fmt: str = "PNG") -> Path:
    """A grayscale photo-like picture (gradients and a disc): any colour in the result is the model's."""
    from PIL import Image

    yy, xx = np.mgrid[0:h, 0:w]
    v = 90 + 60 * np.sin(xx / 17.0) * np.cos(yy / 13.0) + 50 * ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 4) ** 2)
    Image.fromarray(np.clip(v, 0, 255).astype(np.uint8), "L").save(path, format=fmt)
    return path


def colour_photo(path: Path, w: int = 160, h: int = 120) -> Path:
    """A colour photo-like picture (smooth hues): not black and white, so the page shows its original."""
    from PIL import Image

    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([120 + 80 * np.sin(xx / 19.0), 110 + 60 * np.cos(yy / 11.0), 100 + 50 * np.sin((xx + yy) / 23.0)], -1)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(path, format="PNG")
    return path


@contextmanager
def running_server(app):
    """uvicorn serving ``app`` on 127.0.0.1 at a free port (the socket is bound first: no race)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def base_url():
    from chromalab.web.app import create_app

    with running_server(create_app(ConstAb(), workers=2, queue=4, max_upload_bytes=UPLOAD_LIMIT)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def wait_state(page, state: str, timeout: float = 20_000) -> None:
    page.wait_for_selector(f'body[data-state="{state}"]', timeout=timeout, state="attached")


def upload(page, path_or_payload) -> None:
    page.set_input_files("#file", path_or_payload)


def test_upload_compare_download_and_switch_model(browser, base_url, tmp_path):
    from PIL import Image

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(base_url + "/")
    page.wait_for_function("() => document.querySelectorAll('#model option').length >= 2")
    options = page.locator("#model option").all_inner_texts()
    assert options[0] == "const (default)" and "default" in options and "gray" not in options
    assert page.locator("#download").get_attribute("aria-disabled") == "true"
    assert page.locator("#panels").is_hidden() and page.locator("#compare-section").is_hidden()

    upload(page, colour_photo(tmp_path / "street.png"))
    wait_state(page, "done")
    assert page.locator("#error").is_hidden()
    for sel in ("#result", "#gray", "#original", "#compare-top", "#compare-base"):
        assert page.locator(sel).is_visible(), sel
    result = page.evaluate(PIXELS_JS, "#result")
    assert (result["w"], result["h"]) == (160, 120)
    assert result["spread"] > 15 and result["warm"] > 15, result  # colorized: not gray, warm (a, b > 0)
    assert result["shownWidth"] > 150
    gray = page.evaluate(PIXELS_JS, "#gray")
    assert gray["spread"] < 1.5, gray  # the grayscale panel is gray
    assert page.locator("#bw-note").is_hidden()  # a colour photo: its original is shown
    assert "160×120" in page.locator("#result-info").inner_text()

    # the compare slider moves the split; the toggle swaps gray for the original
    page.eval_on_selector("#slider", "(s) => { s.value = '10'; s.dispatchEvent(new Event('input')); }")
    assert "10%" in page.eval_on_selector("#compare-top", "(e) => e.style.clipPath")
    assert page.locator("#compare-left-tag").inner_text() == "gray"
    page.check('input[name="against"][value="original"]')
    assert page.locator("#compare-left-tag").inner_text() == "original"
    assert page.eval_on_selector("#compare-base", "(e) => e.src") == page.eval_on_selector("#original", "(e) => e.src")

    # download: the colorized PNG at the input's size
    assert page.locator("#download").get_attribute("aria-disabled") == "false"
    with page.expect_download() as dl:
        page.click("#download")
    assert dl.value.suggested_filename == "street-colorized.png"
    saved = Image.open(dl.value.path())
    assert saved.format == "PNG" and saved.size == (160, 120)
    arr = np.asarray(saved.convert("RGB")).astype(int)
    assert (arr[..., 0] - arr[..., 2]).mean() > 15

    # the model picker re-colorizes with the model chosen (the bundled U-Net: not the const model's warm cast)
    page.select_option("#model", "default")
    page.wait_for_function("() => document.querySelector('#result-info').textContent.includes('default')",
                           timeout=120_000)
    wait_state(page, "done")
    assert page.evaluate(PIXELS_JS, "#result")["warm"] < result["warm"] - 5
    assert "--" not in page.locator("#model-summary").inner_text()
    assert console_errors == []
    page.close()


def test_errors_are_shown_in_words(browser, base_url, tmp_path):
    page = browser.new_page(viewport={"width": 1024, "height": 800})
    page.goto(base_url + "/")
    page.wait_for_function("() => document.querySelectorAll('#model option').length >= 1")

    upload(page, {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"shopping list\n" * 10})
    wait_state(page, "error")
    text = page.locator("#error").inner_text()
    assert page.locator("#error").is_visible()
    assert "not an image" in text and "notes.txt" in text
    assert page.locator("#panels").is_hidden() and page.locator("#compare-section").is_hidden()

    jpeg = gray_photo(tmp_path / "cut.jpg", fmt="JPEG").read_bytes()
    upload(page, {"name": "cut.jpg", "mimeType": "image/jpeg", "buffer": jpeg[: len(jpeg) // 2]})
    page.wait_for_function("() => document.querySelector('#error').innerText.includes('cut.jpg')")
    assert "could not be read" in page.locator("#error").inner_text()

    # over the upload limit: the page says so without sending the file
    upload(page, {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (UPLOAD_LIMIT + 1)})
    page.wait_for_function("() => document.querySelector('#error').innerText.includes('huge.jpg')")
    assert "Too large" in page.locator("#error").inner_text()

    # and a good photo afterwards works: the error goes away
    upload(page, gray_photo(tmp_path / "ok.png"))
    wait_state(page, "done")
    assert page.locator("#error").is_hidden() and page.locator("#panels").is_visible()
    upload(page, {"name": "notes2.txt", "mimeType": "text/plain", "buffer": b"more text"})
    wait_state(page, "error")  # a failed upload does not leave the previous result on show
    assert page.locator("#panels").is_hidden() and page.locator("#download").get_attribute("aria-disabled") == "true"
    page.close()


def test_phone_width_390(browser, base_url, tmp_path):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                              is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.goto(base_url + "/")
    page.wait_for_function("() => document.querySelectorAll('#model option').length >= 2")
    upload(page, colour_photo(tmp_path / "portrait.png", w=300, h=400))
    wait_state(page, "done")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    for sel in ("#drop", "#model", "#download", "#compare", "#slider", "#result", "#gray", "#original"):
        box = page.locator(sel).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 0.5, (sel, box)
    field_box, button_box = page.locator(".field").bounding_box(), page.locator("#download").bounding_box()
    assert 0 <= button_box["y"] - (field_box["y"] + field_box["height"]) < 30  # stacked, no gap
    result = page.evaluate(PIXELS_JS, "#result")
    assert (result["w"], result["h"]) == (300, 400) and result["spread"] > 15
    assert result["shownWidth"] > 300  # panels stack: each image gets the screen's width
    ctx.close()


def test_black_and_white_photo_is_said_and_default_is_named_once(browser, tmp_path):
    from chromalab.web.app import create_app

    class Default(ConstAb):
        name = "default"

    with running_server(create_app(Default(), workers=1, queue=2)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/")
        page.wait_for_function("() => document.querySelectorAll('#model option').length >= 1")
        options = page.locator("#model option").all_inner_texts()
        assert options[0] == "default" and options.count("default") == 1, options
        summary = page.locator("#model-summary").inner_text()
        assert summary and "--" not in summary
        upload(page, gray_photo(tmp_path / "old.png"))
        wait_state(page, "done")
        assert page.locator("#bw-note").is_visible() and "already black and white" in page.locator("#bw-note").inner_text()
        assert page.locator("#original").is_hidden()
        assert page.locator('input[name="against"][value="original"]').is_disabled()
        upload(page, colour_photo(tmp_path / "new.png"))  # a colour photo afterwards: the original is back
        wait_state(page, "done")
        page.wait_for_function("() => !document.querySelector('#original').hidden")
        assert page.locator("#bw-note").is_hidden() and page.locator("#original").is_visible()
        assert page.locator('input[name="against"][value="original"]').is_enabled()
        page.close()
