"""Benchmark of building a Batch API input file (issue 14): prepare throughput, peak memory and file size.

``vision_magic.batch_file`` (the same code path as ``ask_many(..., via="batch")``) prepares every image exactly as
a live request would and writes one JSON line per image, holding one image in memory at a time. The build runs
in a fresh child process so its peak memory (the process's max RSS, and Python's own allocations through
tracemalloc) is not mixed with making the images; a warm-up run over the smaller folder first takes the one-time
costs (imports, the first encoders, the bounded memos of image digests) out of the measurement.

Target: the peak stays flat as the number of images grows (one image at a time), far below the file's size.
What does grow is the list of the files (a label per image, as any batch holds): the table shows it apart.

Run: ``.venv/bin/python bench/batch_file.py [--images 10000] [--size 640x480]``; prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, os, resource, sys, time, tracemalloc
sys.path.insert(0, {root!r})
import vision_magic
from vision_magic.engine.batch_api import batch_file
from vision_magic.engine.rows import expand_sources
# warm-up on the small folder: imports, the first encoders, the bounded memos of digests (not measured)
batch_file("Describe this image in one line.", {warm!r}, os.devnull, model="gpt-4o", detail={detail!r})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
listed = expand_sources({folder!r})  # the list of files alone (what any batch holds: a label per image)
listing, _ = tracemalloc.get_traced_memory()
del listed
tracemalloc.reset_peak()
started = time.perf_counter()
written = batch_file("Describe this image in one line.", {folder!r}, {out!r}, model="gpt-4o", detail={detail!r})
elapsed = time.perf_counter() - started
_, peak = tracemalloc.get_traced_memory()
rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the file's build, before the part below
# what a Batch API job keeps per image while the server works (label, custom_id, key, the question's record)
import tempfile
from pathlib import Path
from vision_magic.engine.batch_api import Writer, prepared_lines, write_lines
from vision_magic.engine.options import AskOptions
from vision_magic.engine.session import current
tracemalloc.reset_peak()
before, _ = tracemalloc.get_traced_memory()
with tempfile.TemporaryDirectory() as tmp:
    opts = AskOptions(model="gpt-4o", detail={detail!r})
    items = write_lines(prepared_lines("Describe this image in one line.", {folder!r}, opts, current().settings),
                        Writer(Path(tmp), 50_000, 200_000_000))
    kept = tracemalloc.get_traced_memory()[0] - before
print(json.dumps({{
    "requests": written.requests, "bytes": written.nbytes, "errors": len(written.errors), "seconds": elapsed,
    "rss_base_kb": base, "rss_peak_kb": rss_peak,
    "python_peak": peak, "listing": listing, "kept": kept, "n_items": len(items),
}}))
"""


def make_images(folder: Path, n: int, size: tuple[int, int]) -> float:
    """``n`` PNG photos-like images (gradients and a few shapes, each different); seconds taken."""
    from PIL import Image, ImageDraw

    started = time.perf_counter()
    w, h = size
    base = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    for i in range(n):
        img = base.copy()
        draw = ImageDraw.Draw(img)
        for k in range(4):
            x, y = (i * 37 + k * 101) % w, (i * 53 + k * 67) % h
            colour = ((i * 29 + k * 80) % 256, (i * 71) % 256, (k * 90 + i) % 256)
            draw.ellipse([x, y, x + w // 5, y + h // 5], fill=colour)
        img.save(folder / f"img_{i:05d}.png")
    return time.perf_counter() - started


def build(warm: Path, folder: Path, out: Path, detail: str) -> dict:
    code = CHILD.format(root=str(ROOT), warm=str(warm), folder=str(folder), out=str(out), detail=detail)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VISION_MAGIC_"))}
    env["VISION_MAGIC_CACHE_DIR"] = str(folder.parent / "cache")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", default="640x480", help="WxH of each image")
    parser.add_argument("--detail", default="low", choices=["low", "high", "auto"])
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="vm-bench-batch-") as tmp:
        rows = []
        counts = sorted({max(1, args.images // 10), args.images})
        made = 0.0
        folders = []
        for n in counts:
            folder = Path(tmp) / f"imgs_{n}"
            folder.mkdir()
            made += make_images(folder, n, size)  # type: ignore[arg-type]
            folders.append((n, folder))
        for n, folder in folders:
            result = build(folders[0][1], folder, Path(tmp) / f"requests_{n}.jsonl", args.detail)
            assert result["requests"] == n, result
            rows.append((n, result))
        print(
            f"# {args.images:,} images of {args.size} (made in {made:.0f} s), detail={args.detail}, model gpt-4o\n"
        )
        head = ("images", "images/s", "file size", "RSS after warm-up", "peak RSS", "build's RSS growth",
                "Python peak", "of it, the file list", "peak / file", "a job keeps per image")  # fmt: skip
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for n, r in rows:
            growth = (r["rss_peak_kb"] - r["rss_base_kb"]) * 1024
            print(
                f"| {n:,} | {n / r['seconds']:,.0f} | {mb(r['bytes'])} | {mb(r['rss_base_kb'] * 1024)} | "
                f"{mb(r['rss_peak_kb'] * 1024)} | {mb(growth)} | {mb(r['python_peak'])} | {mb(r['listing'])} | "
                f"{growth / r['bytes']:.3f} | {r['kept'] / r['n_items'] / 1000:.1f} KB |"
            )
        (small, a), (large, b) = rows[0], rows[-1]
        if small != large:
            growth = [(r["rss_peak_kb"] - r["rss_base_kb"]) * 1024 for r in (a, b)]
            print(
                f"\n{large / small:.0f}x the images: the file {b['bytes'] / a['bytes']:.1f}x larger; the build's "
                f"RSS growth {mb(growth[0])} -> {mb(growth[1])}, Python peak {mb(a['python_peak'])} -> "
                f"{mb(b['python_peak'])}; without the list of files {mb(a['python_peak'] - a['listing'])} -> "
                f"{mb(b['python_peak'] - b['listing'])} (flat = one image in memory at a time)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
