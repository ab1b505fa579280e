"""Prepare throughput (img/s, decoding straight from the zip) and the cached-reload speed-up.

    python benchmarks/bench_prepare.py --data PATH_TO_ZIP

Prints one JSON line: first prepare img/s, cached reload seconds, and the ratio first/reload.
The cache goes to a temporary folder, so the user's cache is untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=os.environ.get("CHROMALAB_DATA"), required=os.environ.get("CHROMALAB_DATA") is None)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="chromalab-bench-")
    os.environ["CHROMALAB_CACHE"] = tmp
    from chromalab.data.cache import load_prepared, prepare

    try:
        t0 = time.perf_counter()
        prep, rebuilt = prepare(args.data, workers=args.workers, progress=False)
        first = time.perf_counter() - t0
        assert rebuilt
        n = sum(prep.counts["seen"].values())
        t0 = time.perf_counter()
        prep2 = load_prepared(args.data, progress=False)
        test = prep2.split("test")  # a reload includes opening a split's arrays
        _ = test.get([0, len(test) - 1])
        reload = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({
        "benchmark": "prepare",
        "images": n,
        "first_prepare_s": round(first, 2),
        "images_per_second": round(n / first, 1),
        "cached_reload_s": round(reload, 4),
        "reload_speedup": round(first / reload, 1),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
