"""Benchmark: the memory the store of earlier outputs (``@N``) holds, measured, against its bounds.

    .venv/bin/python bench/output_store.py [--cells 500] [--mb 1.0]

Each of ``--cells`` cells displays one PNG of about ``--mb`` MB (random pixels, so it does not compress), the
way a notebook does: a base64 ``image/png`` bundle goes through the display capture
(``frontends/output_capture.remember``) into the session's ``OutputStore`` under the cell's number. For each
setting of ``%config VisionMagic.output_history`` / ``output_history_mb`` it prints the cells kept, the bytes
kept, the memory Python allocated for them (tracemalloc: after the last cell, and the peak while displaying)
and the ratios to the byte bound; then the time one display costs. Target: traced / bound <= 1.0 (and the
peak within one display of the bound: its base64
text and its bytes, before the oldest cell is dropped).
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vision_magic.engine.session import Session  # noqa: E402
from vision_magic.frontends.output_capture import remember  # noqa: E402

SETTINGS = [(50, 200.0), (500, 200.0), (500, 50.0), (20, 1000.0)]  # (output_history, output_history_mb)


def noise_png(nbytes: int) -> bytes:
    side = int((nbytes / 3) ** 0.5)
    arr = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def fill(session: Session, cells: int, bundle: dict[str, str]) -> list[float]:
    """Display ``bundle`` once in each of ``cells`` cells; the seconds each display took."""
    store = session.outputs
    times = []
    for n in range(1, cells + 1):
        store.begin(n)
        t0 = time.perf_counter()
        remember(bundle, "display", session)
        times.append(time.perf_counter() - t0)
        store.end()
    return times


def measure(history: int, mb: float, cells: int, bundle: dict[str, str]) -> dict[str, float]:
    session = Session()
    session.settings.output_history, session.settings.output_history_mb = history, mb
    gc.collect()
    tracemalloc.start()
    fill(session, cells, bundle)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    store = session.outputs
    kept = store.nbytes
    del session, store
    gc.collect()
    untimed = Session()
    untimed.settings.output_history, untimed.settings.output_history_mb = history, mb
    per_display = statistics.median(fill(untimed, cells, bundle))
    return {
        "kept_cells": len(untimed.outputs.cells()),
        "kept_mb": kept / 1e6,
        "traced_mb": current / 1e6,
        "peak_mb": peak / 1e6,
        "ms": per_display * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--mb", type=float, default=1.0, help="size of each cell's PNG in MB")
    args = parser.parse_args()
    png = noise_png(int(args.mb * 1e6))
    bundle = {
        "text/plain": "<IPython.core.display.Image object>",
        "image/png": base64.b64encode(png).decode(),
    }
    print(
        f"{args.cells} cells, each displaying one {len(png) / 1e6:.2f} MB PNG (base64 bundle, via the capture)"
    )
    head = (
        f"{'output_history':>14} {'_mb':>6} {'cells kept':>10} {'kept MB':>8} {'traced MB':>9} "
        f"{'traced/bound':>12} {'peak MB':>8} {'peak/bound':>10} {'ms/display':>10}"
    )
    print(head)
    print("-" * len(head))
    worst = 0.0
    for history, mb in SETTINGS:
        m = measure(history, mb, args.cells, bundle)
        bound = min(mb, history * len(png) / 1e6)  # whichever bound binds
        worst = max(worst, m["traced_mb"] / mb)
        print(
            f"{history:>14} {mb:>6g} {m['kept_cells']:>10} {m['kept_mb']:>8.1f} {m['traced_mb']:>9.1f} "
            f"{m['traced_mb'] / bound:>11.2f}x {m['peak_mb']:>8.1f} {m['peak_mb'] / bound:>9.2f}x {m['ms']:>10.3f}"
        )
    print(
        f"\ntraced / output_history_mb at most {worst:.2f}x (target <= 1.00x); 'bound' is the binding one: "
        "output_history_mb, or output_history cells of this size"
    )


if __name__ == "__main__":
    main()
