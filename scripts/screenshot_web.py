"""Retake docs/web.png: serve the bundled default model, upload a photo in headless Chromium
(Debian's /usr/bin/chromium through Playwright), wait for the result, screenshot the page.

    python scripts/screenshot_web.py [--image PHOTO] [--model default] [--out docs/web.png]

Without ``--image`` it uses scikit-image's colour photo of a cat (chelsea.png, 451x300),
reduced to gray by the page's own pipeline (the model only ever sees L).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--image", default=None)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default="docs/web.png")
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args()

    import skimage.data
    import uvicorn
    from playwright.sync_api import sync_playwright

    from chromalab.registry import load_predictor
    from chromalab.web.app import create_app

    image = Path(args.image) if args.image else Path(skimage.data.__file__).parent / "chelsea.png"
    app = create_app(load_predictor(args.model, progress=False), workers=2, queue=4)
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
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#file", str(image))
            page.wait_for_selector('body[data-state="done"]', timeout=60_000, state="attached")
            page.wait_for_timeout(300)
            page.screenshot(path=args.out, full_page=True)
            b.close()
    finally:
        server.should_exit = True
        thread.join(10)
    print(f"wrote {args.out} ({image.name}, model {args.model})")


if __name__ == "__main__":
    main()
