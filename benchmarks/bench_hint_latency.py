"""Latency of a colour-hint edit on the page: from the edit to the new result shown, photo uploaded once.

    python benchmarks/bench_hint_latency.py [--model default] [--edits 20] [--width 1024 --height 768]

Starts ``chromalab serve --model MODEL`` on 127.0.0.1 (a free port) and drives the page in real
headless Chromium (Debian's /usr/bin/chromium through Playwright):

1. uploads a photo once (scikit-image's astronaut, cropped to 4:3 and resized to 1024x768, JPEG q90);
2. clicks the result to drop a colour point (plus two warm-up edits, not counted);
3. makes ``--edits`` edits, alternately a new colour for the point (its ``<input type=color>`` gets a
   value and an ``input`` event, as the browser's picker does) and a one-pixel move (an ArrowRight
   ``keydown`` on the point). Each is timed in the page, from just before the event is dispatched to
   the ``load`` event of the new result image (and to the second animation frame after it, "paint").
   The next edit waits until the page is idle;
4. baseline, in the same run and the same page: a full upload + colorize of the same photo with the
   same point (``POST /api/colorize`` with the file and the ``hints`` field, then the returned PNG
   loaded into an image), ``--baseline`` times.

Prints ONE JSON line: the median edit-to-load time (target <= 300 ms), p90 and max, the server's own
render and PNG times (``Server-Timing``), the full upload+colorize median and the ratio of the two.
The model must take colour hints (``guided``, or ``default`` once it is the colour model, or a ColorNet
weights file); for any other model this exits with a one-line error.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PALETTE = ["#3070c0", "#20a040", "#c03030", "#e0c020", "#8040c0", "#30b0b0", "#d07020", "#506070"]

EDIT_JS = """async ([kind, value]) => {
  const img = document.getElementById('edit-img');
  const done = new Promise((resolve) => {
    img.addEventListener('load', () => {
      const load = performance.now();
      requestAnimationFrame(() => requestAnimationFrame(() => resolve([load, performance.now()])));
    }, { once: true });
  });
  let t0;
  if (kind === 'colour') {
    const input = document.querySelector('#hint-list input[type=color]');
    t0 = performance.now();
    input.value = value;
    input.dispatchEvent(new Event('input', { bubbles: true }));
  } else {
    const point = document.querySelector('#points .pt');
    t0 = performance.now();
    point.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', bubbles: true }));
  }
  const [load, paint] = await done;
  return { load: load - t0, paint: paint - t0 };
}"""

FULL_JS = """async ([b64, hints]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const file = new File([bytes], 'photo.jpg', { type: 'image/jpeg' });
  const t0 = performance.now();
  const form = new FormData();
  form.append('file', file, 'photo.jpg');
  form.append('hints', hints);
  const r = await fetch('/api/colorize', { method: 'POST', body: form });
  if (!r.ok) throw new Error('HTTP ' + r.status + ': ' + await r.text());
  const url = URL.createObjectURL(await r.blob());
  const img = new Image();
  await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = reject; img.src = url; });
  const ms = performance.now() - t0;
  URL.revokeObjectURL(url);
  return ms;
}"""


def photo_jpeg(w: int, h: int) -> bytes:
    """scikit-image's astronaut, cropped to the aspect ratio w:h and resized to w x h, JPEG quality 90."""
    import skimage.data
    from PIL import Image

    im = Image.fromarray(skimage.data.astronaut())
    W, H = im.size
    if W / H > w / h:
        cw = round(H * w / h)
        im = im.crop(((W - cw) // 2, 0, (W - cw) // 2 + cw, H))
    else:
        ch = round(W * h / w)
        im = im.crop((0, (H - ch) // 2, W, (H - ch) // 2 + ch))
    buf = io.BytesIO()
    im.resize((w, h), Image.Resampling.LANCZOS).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(a, q: float) -> float:
    return round(float(np.percentile(np.asarray(a, dtype=float), q)), 1) if len(a) else float("nan")


def server_timing(header: str | None) -> dict[str, float]:
    out = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";dur=")
        if rest:
            out[name] = float(rest)
    return out


def start_server(model: str, workers: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "chromalab.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--model", model, "--workers", str(workers)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while True:
        if server.poll() is not None:
            err = server.stderr.read().strip().splitlines()
            sys.exit(f"error: the server did not start: {err[-1] if err else 'exit ' + str(server.returncode)}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.terminate()
            sys.exit("error: the server did not answer /healthz within 180 s")
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a model that takes hints: registry name, run folder or "
                                                      ".safetensors file")
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--baseline", type=int, default=5, help="full upload+colorize runs")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=768)
    ap.add_argument("--workers", type=int, default=2, help="server inference threads")
    ap.add_argument("--target-ms", type=float, default=300.0)
    args = ap.parse_args()

    import httpx
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        sys.exit(f"error: {CHROMIUM} not found (apt-get install chromium)")
    data = photo_jpeg(args.width, args.height)
    t_start = time.perf_counter()
    server, base = start_server(args.model, args.workers)
    try:
        startup_s = time.perf_counter() - t_start
        served = httpx.get(base + "/api/models", timeout=30).json()["default"]
        info = httpx.get(f"{base}/api/models/{served}", timeout=300).json()
        if not info.get("takes_hints"):
            sys.exit(f"error: model {args.model!r} takes no colour hints; pass --model guided or a ColorNet "
                     "weights file")
        timings: list[dict] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script("HTMLInputElement.prototype.showPicker = function () {};")  # no native popup
            page.on("response", lambda r: timings.append(server_timing(r.headers.get("server-timing")))
                    if r.url.endswith("/colorize") and "/api/images/" in r.url else None)
            uploads: list[str] = []
            sent: list[dict] = []

            def on_request(r) -> None:
                if r.method == "POST" and r.url.endswith("/api/images"):
                    uploads.append(r.url)
                elif r.method == "POST" and r.url.endswith("/colorize") and "/api/images/" in r.url:
                    sent.append(json.loads(r.post_data or "{}"))

            page.on("request", on_request)
            page.goto(base + "/")
            page.wait_for_function("() => document.querySelectorAll('#model option').length >= 1")
            page.set_input_files("#file", files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": data}])
            idle = "() => document.body.dataset.state === 'done' && Number(document.body.dataset.renders) > %d"
            page.wait_for_function(idle % 0, timeout=300_000)
            box = page.locator("#edit-img").bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
            page.wait_for_function(idle % 1, timeout=120_000)

            def edit(k: int) -> dict:
                n = int(page.evaluate("Number(document.body.dataset.renders)"))
                kind = "colour" if k % 2 == 0 else "move"
                t = page.evaluate(EDIT_JS, [kind, PALETTE[k % len(PALETTE)]])
                page.wait_for_function(idle % n, timeout=120_000)
                return t

            for k in range(2):  # warm-up
                edit(k)
            timings.clear()
            results = [edit(k) for k in range(args.edits)]
            points = page.locator("#hint-list li").count()
            body_hints = json.dumps(sent[-1]["hints"])  # the same point, for the full upload+colorize
            b64 = base64.b64encode(data).decode()
            page.evaluate(FULL_JS, [b64, body_hints])  # warm-up
            full = [page.evaluate(FULL_JS, [b64, body_hints]) for _ in range(args.baseline)]
            browser.close()
        load = [r["load"] for r in results]
        paint = [r["paint"] for r in results]
        med, full_med = pct(load, 50), pct(full, 50)
        try:
            load_avg = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            load_avg = None
        print(json.dumps({
            "benchmark": "hint_latency",
            "model": os.path.basename(args.model),  # a name: no path of this machine in the docs
            "image": f"{args.width}x{args.height} JPEG, {len(data) / 1024:.0f} KB",
            "uploads": len(uploads),
            "points": points,
            "edits": len(load),
            "edit_to_load_ms_median": med,
            "edit_to_load_ms_p90": pct(load, 90),
            "edit_to_load_ms_max": round(max(load), 1),
            "edit_to_paint_ms_median": pct(paint, 50),
            "server_render_ms_median": pct([t.get("render", np.nan) for t in timings], 50),
            "server_png_ms_median": pct([t.get("png", np.nan) for t in timings], 50),
            "target_ms": args.target_ms,
            "meets_target": bool(med <= args.target_ms),
            "baseline_full_upload_colorize_ms_median": full_med,
            "baseline_runs": len(full),
            "ratio_edit_over_full": round(med / full_med, 3),
            "server_startup_s": round(startup_s, 2),
            "cpus": os.cpu_count(),
            "load_avg": load_avg,
            "python": platform.python_version(),
        }))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
