"""Benchmark of batches and the replay cache against the fake_openai test server with injected latency.

Targets (issue 5):
  * 200 images, 300 ms server latency, concurrency 16: within 1.3x of the ideal 200 / 16 x 0.3 s = 3.75 s;
  * with 10% injected 429 responses everything still completes, in input order;
  * re-running a finished cell costs under 30 ms of client time and zero requests.

Run: ``.venv/bin/python bench/batch.py [--images 200] [--latency 0.3] [--concurrency 16]``; prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_images(folder: Path, n: int) -> list[Path]:
    from PIL import Image

    paths = []
    for i in range(n):
        p = folder / f"img_{i:04d}.png"
        Image.new("RGB", (64, 48), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)).save(p)
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate-429", type=float, default=0.10)
    parser.add_argument("--retry-after", default="0.3", help="Retry-After of the injected 429s (seconds)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="vm-bench-"))
    os.environ["VISION_MAGIC_CACHE_DIR"] = str(tmp / "cache")
    os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-real-key-000000"
    images = make_images(tmp, args.images)
    n, c, lat = args.images, args.concurrency, args.latency
    ideal = n / c * lat  # the ideal; whole waves would give ceil(n / c) * lat
    rows: list[tuple[str, str, str, str]] = []

    import vision_magic
    from vision_magic.engine.session import settings

    settings().cache = True
    with ServerProcess(latency=lat, seed=1) as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url

        # 0. one-time start-up: importing openai/pandas/tqdm and the first client (a notebook pays it once)
        (tmp / "warm").mkdir()
        warm = make_images(tmp / "warm", 1)
        t0 = time.perf_counter()
        vision_magic.ask_many("Warm up.", warm, progress=False, cache=False)
        t_warm = time.perf_counter() - t0
        rows.append(("start-up: first batch of 1 image in a fresh process", f"{t_warm:.2f} s", "-", "-"))
        server.reset(latency=lat)

        # 1. plain batch
        t0 = time.perf_counter()
        df = vision_magic.ask_many("Describe.", images, concurrency=c, progress=False)
        t1 = time.perf_counter() - t0
        ok = df["error"].isna().all() and server.count() == n
        rows.append(
            (
                f"{n} images, {lat * 1000:.0f} ms latency, concurrency {c}",
                f"{t1:.2f} s (ideal {ideal:.2f} s)",
                f"{t1 / ideal:.2f}x ideal (target <= 1.30)",
                "yes" if ok and t1 / ideal <= 1.3 else "NO",
            )
        )

        # 2. 10% 429s, with Retry-After
        server.reset(latency=lat, fault_rate=(args.rate_429, 429), retry_after=args.retry_after)
        t0 = time.perf_counter()
        df2 = vision_magic.ask_many("Describe.", images, concurrency=c, progress=False, cache=False)
        t2 = time.perf_counter() - t0
        n429 = server.statuses().count(429)
        in_order = list(df2["source"]) == list(df["source"])
        complete = df2["error"].isna().all() and df2["answer"].notna().all()
        rows.append(
            (
                f"same, {args.rate_429:.0%} 429s (Retry-After {args.retry_after} s)",
                f"{t2:.2f} s, {n429} x 429 retried",
                f"{t2 / ideal:.2f}x ideal",
                "yes" if complete and in_order else "NO",
            )
        )

        # 3. re-running the finished batch: all from the cache
        server.reset(latency=lat)
        t0, c0 = time.perf_counter(), time.process_time()
        df3 = vision_magic.ask_many("Describe.", images, concurrency=c, progress=False)
        t3, cpu3 = time.perf_counter() - t0, time.process_time() - c0
        sent = server.count()
        rows.append(
            (
                f"re-run the {n}-image batch (cached)",
                f"{t3 * 1000:.0f} ms wall, {cpu3 * 1000:.0f} ms CPU, {sent} requests",
                f"{t1 / max(t3, 1e-9):.0f}x faster than sending",
                "yes" if sent == 0 and df3["replayed"].all() else "NO",
            )
        )

        # 4. re-running one finished %%ask_image cell in a real IPython shell
        from IPython.testing.globalipapp import start_ipython
        from PIL import Image

        photo = tmp / "photo.png"
        Image.radial_gradient("L").resize((1024, 768)).convert("RGB").save(photo)
        ip = start_ipython()
        ip.run_line_magic("load_ext", "vision_magic")
        cell = f"%%ask_image {photo}\nWhat is in this picture?"
        with contextlib.redirect_stdout(io.StringIO()):  # the terminal shell prints each answer
            first = ip.run_cell(cell)
            before = server.count()
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                r = ip.run_cell(cell)
                times.append(time.perf_counter() - t0)
        sent = server.count() - before
        best, median = min(times), sorted(times)[len(times) // 2]
        ok4 = first.error_in_exec is None and r.error_in_exec is None and sent == 0
        rows.append(
            (
                "re-run one %%ask_image cell (1024x768 image, cached)",
                f"{median * 1000:.1f} ms median (best {best * 1000:.1f}), {sent} requests",
                f"{median / 0.030:.2f}x the 30 ms budget",
                "yes" if ok4 and median < 0.030 else "NO",
            )
        )

    widths = [max(len(r[i]) for r in [*rows, HEAD]) for i in range(4)]
    line = " | ".join
    print(line(h.ljust(w) for h, w in zip(HEAD, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    return 0


HEAD = ("case", "measured", "ratio", "target met")


def _serve(conn, settings: dict) -> None:
    """The test server in its own process (so its JSON-schema validation does not share the client's GIL)."""
    from fake_openai import OpenAIServer

    server = OpenAIServer(reply="ok", **settings)
    server.start()
    conn.send(server.base_url)
    while True:
        cmd, arg = conn.recv()
        if cmd == "stop":
            server.stop()
            conn.send(None)
            return
        if cmd == "reset":
            server.reset()
            for name, value in arg.items():
                setattr(server, name, value)
            if "seed" in arg or "fault_rate" in arg:
                import random

                server._rng = random.Random(server.seed)
            conn.send(None)
        elif cmd == "count":
            conn.send(len(server.chat_requests))
        elif cmd == "statuses":
            conn.send([r.status for r in server.chat_requests])


class ServerProcess:
    """The fake_openai test server in a child process, driven over a pipe."""

    def __init__(self, **settings) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, settings), daemon=True)

    def __enter__(self) -> ServerProcess:
        self._proc.start()
        self.base_url = self._conn.recv()
        return self

    def __exit__(self, *exc) -> None:
        self._call("stop")
        self._proc.join(10)

    def _call(self, cmd: str, arg=None):
        self._conn.send((cmd, arg))
        return self._conn.recv()

    def reset(self, **settings) -> None:
        self._call("reset", settings)

    def count(self) -> int:
        return self._call("count")

    def statuses(self) -> list:
        return self._call("statuses")


if __name__ == "__main__":
    sys.exit(main())
