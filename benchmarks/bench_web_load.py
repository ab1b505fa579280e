"""Bounded load test of `chromalab serve` on loopback: 200 colorize requests, 16 at a time.

    python benchmarks/bench_web_load.py [--model gray] [--requests 200] [--concurrency 16]
                                        [--width 640 --height 480] [--workers 2 --queue 16]

Starts the server itself (`python -m chromalab.cli serve` on 127.0.0.1 at a free port), then:

1. baseline: ``--baseline-requests`` colorize requests one at a time (the latency of one
   request with nobody waiting);
2. load: ``--requests`` colorize requests from ``--concurrency`` client threads, while a side
   thread polls ``/healthz`` (it must stay fast: inference runs off the event loop).

Every request uploads the same photo-like JPEG and must come back 200 with a PNG of the
input's size; anything else counts as an error. Prints one JSON line: errors, p50/p99
latency under load, throughput, /healthz latency under load, and the ratio of the p50 under
load to the one-at-a-time p50 (about concurrency / workers when the CPU is the limit).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def photo_jpeg(w: int, h: int) -> bytes:
    """A photo-like test image (smooth shapes + noise), JPEG quality 90."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([
        128 + 90 * np.sin(6 * xx + 1.0) * np.cos(4 * yy),
        128 + 80 * np.sin(5 * yy + 2.0),
        128 + 70 * np.cos(7 * (xx + yy)),
    ], -1) + rng.normal(0, 6, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(a: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(a), q)) if a else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gray", help="model to serve (registry name, run folder, weights file)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--baseline-requests", type=int, default=20)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--workers", type=int, default=2, help="server inference threads")
    ap.add_argument("--queue", type=int, default=16, help="server queue length")
    args = ap.parse_args()

    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "chromalab.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--model", args.model, "--workers", str(args.workers), "--queue", str(args.queue)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        t_start = time.perf_counter()
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                sys.exit(f"error: the server did not start: {server.stderr.read().strip()}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("error: the server did not answer /healthz within 120 s")
            time.sleep(0.1)
        startup_s = time.perf_counter() - t_start

        data = photo_jpeg(args.width, args.height)
        want_size = f"{args.width}x{args.height}"
        local = threading.local()

        def one() -> tuple[float, str]:
            c = getattr(local, "client", None)
            if c is None:
                c = local.client = httpx.Client(base_url=base, timeout=120)
            t0 = time.perf_counter()
            try:
                r = c.post("/api/colorize", files={"file": ("bench.jpg", data, "image/jpeg")})
            except httpx.HTTPError as e:
                return time.perf_counter() - t0, type(e).__name__
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                return dt, str(r.status_code)
            if r.headers.get("x-image-size") != want_size or not r.content.startswith(b"\x89PNG"):
                return dt, "wrong-output"
            return dt, "ok"

        # warm-up (first request may load caches), then the one-at-a-time baseline
        one()
        base_lat = [one()[0] for _ in range(args.baseline_requests)]

        # the load, with /healthz polled on the side
        health_lat: list[float] = []
        stop = threading.Event()

        def poll_health() -> None:
            with httpx.Client(base_url=base, timeout=30) as hc:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    hc.get("/healthz")
                    health_lat.append(time.perf_counter() - t0)
                    time.sleep(0.05)

        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as ex:
            results = list(ex.map(lambda _: one(), range(args.requests)))
        wall = time.perf_counter() - t0
        stop.set()
        poller.join(5)

        lat = [dt for dt, status in results if status == "ok"]
        statuses = Counter(status for _, status in results)
        errors = args.requests - statuses.get("ok", 0)
        p50_base = pct(base_lat, 50)
        p50 = pct(lat, 50)
        print(json.dumps({
            "benchmark": "web_load",
            "model": args.model,
            "image": f"{want_size} JPEG, {len(data) / 1024:.0f} KB",
            "requests": args.requests,
            "concurrency": args.concurrency,
            "server_workers": args.workers,
            "server_queue": args.queue,
            "errors": errors,
            "statuses": dict(statuses),
            "p50_ms": round(p50 * 1000, 1),
            "p99_ms": round(pct(lat, 99) * 1000, 1),
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "throughput_rps": round(args.requests / wall, 2),
            "baseline_1_concurrent_p50_ms": round(p50_base * 1000, 1),
            "baseline_1_concurrent_rps": round(1 / float(np.mean(base_lat)), 2),
            "ratio_p50_load_vs_1_concurrent": round(p50 / p50_base, 2),
            "ratio_throughput_load_vs_1_concurrent": round((args.requests / wall) * float(np.mean(base_lat)), 2),
            "healthz_under_load_p50_ms": round(pct(health_lat, 50) * 1000, 1),
            "healthz_under_load_p99_ms": round(pct(health_lat, 99) * 1000, 1),
            "server_startup_s": round(startup_s, 2),
            "cpus": os.cpu_count(),
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
