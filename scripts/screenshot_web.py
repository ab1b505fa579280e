"""Retake docs/web.png: serve a model, upload a photo in headless Chromium (Debian's
/usr/bin/chromium through Playwright), optionally drop colour points, screenshot the page.

    python scripts/screenshot_web.py [--image PHOTO] [--model default] [--out docs/web.png]
                                     [--hint X,Y,COLOR ...] [--vividness V]

Without ``--image`` it uses scikit-image's colour photo of a cat (chelsea.png, 451x300),
reduced to gray by the page's own pipeline (the model only ever sees L). ``--hint`` (repeatable,
image pixels, as ``chromalab colorize --hint``) clicks the result there and sets the point's colour;
``--vividness`` moves the slider. Both need a model that takes them (the colour models).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IDLE = "() => document.body.dataset.state === 'done' && Number(document.body.dataset.renders || 0) > %d"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=None)
    ap.add_argument("--model", default="default", help="registry name, run folder or .safetensors file")
    ap.add_argument("--out", default="docs/web.png")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--hint", action="append", default=[], metavar="X,Y,COLOR")
    ap.add_argument("--vividness", type=float, default=None)
    args = ap.parse_args()

    import skimage.data
    import uvicorn
    from PIL import Image, ImageColor
    from playwright.sync_api import sync_playwright

    from chromalab.hints import parse_hint_arg
    from chromalab.web.app import create_app

    hints = [parse_hint_arg(h) for h in args.hint]
    image = Path(args.image) if args.image else Path(skimage.data.__file__).parent / "chelsea.png"
    W, H = Image.open(image).size
    app = create_app(args.model, workers=2, queue=4)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = b.new_page(viewport={"width": args.width, "height": 800})
            page.add_init_script("HTMLInputElement.prototype.showPicker = function () {};")  # no native popup
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#file", str(image))
            page.wait_for_function(IDLE % 0, timeout=120_000)

            def renders() -> int:
                return int(page.evaluate("Number(document.body.dataset.renders || 0)"))

            if args.vividness is not None:
                n = renders()
                page.eval_on_selector("#vividness", "(s, v) => { s.value = String(v); "
                                      "s.dispatchEvent(new Event('input', {bubbles: true})); }", args.vividness)
                page.wait_for_function(IDLE % n, timeout=60_000)
            for h in hints:
                box = page.locator("#edit-img").bounding_box()
                n = renders()
                page.mouse.click(box["x"] + h["x"] / W * box["width"], box["y"] + h["y"] / H * box["height"])
                page.wait_for_function(IDLE % n, timeout=60_000)
                n = renders()
                r, g, bl = ImageColor.getrgb(h["color"])[:3]
                page.locator("#hint-list input[type=color]").last.fill(f"#{r:02x}{g:02x}{bl:02x}")
                page.wait_for_function(IDLE % n, timeout=60_000)
            if page.locator("#error").is_visible():
                raise SystemExit(f"error: the page says: {page.locator('#error').inner_text()}")
            page.wait_for_timeout(300)
            page.screenshot(path=args.out, full_page=True)
            b.close()
    finally:
        server.should_exit = True
        thread.join(10)
    print(f"wrote {args.out} ({image.name}, model {args.model}, {len(hints)} colour points)")


if __name__ == "__main__":
    main()
