"""Cold start: what importing the package, ``%load_ext`` and the first dry-run cell cost in a fresh process;
and ``%load_ext`` plus the first *answered* cell against a bare ``openai`` request made the same way.

Each step is timed inside a new Python process (median of ``--runs``), so nothing is cached between runs
but the operating system's file cache. ``--against DIR`` times another checkout of the project the same way,
in turns (this tree, that tree, this tree, ...), and prints the ratio this / that per step; in the
answered-cell comparison its back-to-back cell runs in every round too (a paired A/B of two designs).

The answered-cell comparison (issue 15: at most 1.2x a bare ``openai`` request made the same way) runs each
way in a fresh process with an IPython shell already made, against the test server (``fake_openai``) on
127.0.0.1, in turns, for three images (``--kinds``: a flat PNG, a matplotlib plot PNG, a 12 MP JPEG):

- vision_magic: a ``%load_ext vision_magic`` cell, then a ``%%ask_image path`` / ``What is this?`` cell
  (streamed, answered, rendered);
- by hand, the same request (the target's baseline): one cell that imports ``openai``, resizes the image with
  Pillow to the size vision_magic sends (draft-decoded if a JPEG, LANCZOS), encodes it (PNG, or JPEG q85 for
  a JPEG), and streams the same question with ``client.chat.completions.create``;
- bare, the file as it is (for information): the same cell with a data URL of the file itself. It sends a
  different request (the server resizes the image; for a photo about 20x the bytes, bench/prepare.py, which on
  a real network costs far more than resizing does, and localhost hides).

Import time is included in all.

Run: ``.venv/bin/python bench/cold_start.py [--runs 9] [--pairs 21] [--kinds flat,plot,photo]
[--against ../other-checkout] [--only-answered]``; prints tables.

``%load_ext`` leaves importing the SDK to a background thread that starts once the kernel has been idle for a
moment (``vision_magic.engine.warm``): cells run back to back (as here, and in "Run all") never wait for it
nor share the GIL with it, the question then imports the SDK itself; a question asked after a pause (the
"paused" row: two seconds after ``%load_ext``) finds it ready. On a busy machine the medians swing widely,
the rounds' ratios much less; the fastest runs are the ones the host disturbed least. The last table splits
the cells into steps (when the image was ready, the SDK imported, the client made), so what vision_magic adds
is where it shows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh process with the tree under test first on sys.path; prints one JSON line of timings.
PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import vision_magic
t1 = time.perf_counter()
heavy_after_import = sorted(m for m in ("PIL", "openai", "IPython", "numpy", "matplotlib", "ipywidgets")
                            if m in sys.modules)
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t2 = time.perf_counter()
ip.run_line_magic("load_ext", "vision_magic")
t3 = time.perf_counter()
ip.run_line_magic("config", "VisionMagic.dry_run = True")
ip.user_ns["path"] = sys.argv[1]
result = ip.run_cell("%%ask_image path\nWhat is this?")
t4 = time.perf_counter()
assert result.error_in_exec is None, result.error_in_exec
print(json.dumps({"import vision_magic": t1 - t0, "%load_ext vision_magic": t3 - t2,
                  "first %%ask_image --dry-run cell": t4 - t3, "heavy": heavy_after_import}))
"""

STEPS = ("import vision_magic", "%load_ext vision_magic", "first %%ask_image --dry-run cell")

# The first answered cell, and the same question asked with the bare SDK, two ways: "by_hand" sends the same
# request (the image resized to the size vision_magic sends, with Pillow: draft-decoded if a JPEG, LANCZOS,
# PNG or JPEG q85), "bare" the file as it is (the server resizes it). A fresh process each, the shell made
# before the clock starts; prints one JSON line {"seconds", "cpu", "warm-up", "phases"} (cpu: the process's
# user + system seconds over the same span, every thread's; warm-up: what the warm-up thread did; phases: when
# each step ended, in seconds from the start). Way "paused": the %load_ext cell, two seconds (the user types
# the question), then the clock runs for the answered cell alone.
ANSWERED = r'''
import json, resource, sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.user_ns["path"] = sys.argv[1]
ip.user_ns["_marks"] = marks = {}
ip.user_ns["_now"] = time.perf_counter
ASK = """
stream = client.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": [
    {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
print(text)
"""
BY_HAND = """
import base64, io, openai
_marks["sdk imported"] = _now()
client = openai.OpenAI()
_marks["client made"] = _now()
from PIL import Image
img = Image.open(path)
fmt = "JPEG" if img.format == "JPEG" else "PNG"
if fmt == "JPEG":
    img.draft("RGB", size)
img = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
buf = io.BytesIO()
img.save(buf, fmt, quality=85)
url = f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()
_marks["image ready"] = _now()
""" + ASK
ip.user_ns["size"] = tuple(int(v) for v in sys.argv[3].split("x"))
BARE = """
import base64, openai
_marks["sdk imported"] = _now()
client = openai.OpenAI()
_marks["client made"] = _now()
with open(path, "rb") as f:
    url = f"data:image/{'jpeg' if path.endswith('.jpg') else 'png'};base64," + base64.b64encode(f.read()).decode()
_marks["image ready"] = _now()
""" + ASK
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def mark_the_sdk():  # the question's make_client, timed: when its images were ready, the SDK imported, the client made
    import vision_magic.engine.endpoints as endpoints  # imported by %load_ext already
    real = endpoints.make_client
    def timed(*args, **kwargs):
        marks.setdefault("image ready", time.perf_counter())
        import openai
        marks.setdefault("sdk imported", time.perf_counter())
        client = real(*args, **kwargs)
        marks.setdefault("client made", time.perf_counter())
        return client
    endpoints.make_client = timed
if sys.argv[2] == "paused":
    ip.run_cell("%load_ext vision_magic")
    time.sleep(2)
t0, c0 = time.perf_counter(), cpu()
if sys.argv[2] == "vision_magic":  # two cells, back to back
    ip.run_cell("%load_ext vision_magic")
    marks["%load_ext cell"] = time.perf_counter()
    mark_the_sdk()
    result = ip.run_cell("%%ask_image path\nWhat is this?")
elif sys.argv[2] == "paused":
    result = ip.run_cell("%%ask_image path\nWhat is this?")
elif sys.argv[2] == "by_hand":
    result = ip.run_cell(BY_HAND)
else:
    result = ip.run_cell(BARE)
t1, c1 = time.perf_counter(), cpu()
assert result.error_in_exec is None, result.error_in_exec
warm = sys.modules.get("vision_magic.engine.warm")
state = getattr(warm, "state", lambda: "thread")() if warm else "off"  # an older tree: no warm.state()
print(json.dumps({"seconds": t1 - t0, "cpu": c1 - c0, "warm-up": state,
                  "phases": {name: at - t0 for name, at in marks.items()}}))
'''


def fresh_process(tree: Path, script: str, *args: str, env: dict[str, str | None]) -> dict:
    """Run ``script`` in a new Python process with ``tree`` first on the path, in a fresh replay-cache folder,
    with ``env`` over the environment (None: removed); its last line of output, parsed as JSON."""
    run_env = {**os.environ, "PYTHONPATH": str(tree), "MPLBACKEND": "Agg"}
    # as installed: the warm-up writes .pyc files, the timed runs use them
    run_env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name, value in env.items():
        if value is None:
            run_env.pop(name, None)
        else:
            run_env[name] = value
    with tempfile.TemporaryDirectory() as cache:
        run_env["VISION_MAGIC_CACHE_DIR"] = cache
        out = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=run_env,
            cwd=cache,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe(tree: Path, image: Path) -> dict:
    """Import, ``%load_ext`` and the first dry-run cell, timed in a fresh process (no key)."""
    return fresh_process(tree, PROBE, str(image), env={"OPENAI_API_KEY": None})


def answered(tree: Path, image: Path, way: str, base_url: str, size: tuple[int, int]) -> dict:
    """Seconds, CPU seconds and the warm-up's state after one first answered cell (``way``: "vision_magic",
    "paused", "by_hand" or "bare"; ``size``: what the by-hand request resizes to) in a fresh process."""
    env = {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-bench-not-a-real-key"}
    return fresh_process(tree, ANSWERED, str(image), way, f"{size[0]}x{size[1]}", env=env)


def sent_size(image: Path) -> tuple[int, int]:
    """The size vision_magic sends ``image`` at to the bench's model (gpt-4o, detail auto)."""
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from vision_magic.images.profiles import profile_for, used_size

    with Image.open(image) as img:
        return used_size(*img.size, profile_for("gpt-4o"), "auto")


def answered_table(image: Path, runs: int, against: Path | None = None) -> None:
    """The first answered cell against the same question asked with the bare SDK (by hand: the same request;
    bare: the file as it is), in rounds, with the ratios; then the cell alone, 2 s after ``%load_ext``. With
    ``against`` (another checkout), its back-to-back cell runs in every round too, so two designs are compared
    under the same drift.

    Each round runs every way, each first in turn; the machine's drift (other work on it, its caches) then
    falls on all alike, and each round gives one ratio. Printed: the medians, their ratios, the median of the
    rounds' ratios (the steadier figure on a busy machine) and the ratio of each way's fastest run."""
    sys.path.insert(0, str(ROOT))
    from fake_openai import OpenAIServer

    size = sent_size(image)
    # way -> (checkout, how its fresh process runs): "against" is the other checkout's back-to-back cell
    plan = {
        "vision_magic": (ROOT, "vision_magic"),
        "by_hand": (ROOT, "by_hand"),
        "bare": (ROOT, "bare"),
        "paused": (ROOT, "paused"),
    }
    if against:
        plan["against"] = (against, "vision_magic")
    ways = tuple(plan)
    times: dict[str, list[float]] = {way: [] for way in ways}
    cpus: dict[str, list[float]] = {way: [] for way in ways}
    warm_ups: dict[str, set[str]] = {way: set() for way in ways}
    run_phases: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    with OpenAIServer() as server:

        def once(way: str) -> dict:
            tree, how = plan[way]
            return answered(tree, image, how, server.base_url, size)

        def run(way: str) -> None:
            got = once(way)
            times[way].append(got["seconds"] * 1000)
            cpus[way].append(got["cpu"] * 1000)
            warm_ups[way].add(got["warm-up"])
            run_phases[way].append(got["phases"])

        for way in ways:
            once(way)  # warm-up: file cache, .pyc files
        rotating = ("vision_magic", "by_hand", "bare") + (("against",) if against else ())
        for i in range(runs):
            k = i % len(rotating)
            for way in rotating[k:] + rotating[:k]:  # each way first in turn
                run(way)
        for _ in range(max(3, runs // 4)):  # the paused way: the cell alone, after %load_ext had its time
            run("paused")
    median = {way: statistics.median(times[way]) for way in ways}
    median_cpu = {way: statistics.median(cpus[way]) for way in ways}
    vm = median["vision_magic"]
    print()
    print(f"| first answered cell (fresh process; medians of {runs} rounds) | ms | CPU ms (all threads) |")
    print("|---|---|---|")
    print(
        f"| `%load_ext vision_magic` cell + `%%ask_image path` cell (streamed, rendered; warm-up: "
        f"{', '.join(sorted(warm_ups['vision_magic']))}) | {vm:.1f} | {median_cpu['vision_magic']:.1f} |"
    )
    baselines = {
        "by_hand": (
            f"by hand, the same request: `import openai`, Pillow resizes to {size[0]}x{size[1]} and encodes "
            "(PNG, or JPEG q85 for a JPEG), data URL, streamed `chat.completions.create`",
            "by hand, the same request (target <= 1.2)",
        ),
        "bare": (
            "bare, the file as it is: `import openai`, data URL of the file, the same call",
            "bare, the file as it is (for information: the server resizes it)",
        ),
    }
    for way, (what, _) in baselines.items():
        print(f"| {what} | {median[way]:.1f} | {median_cpu[way]:.1f} |")
    print(
        f"| the `%%ask_image` cell alone, 2 s after `%load_ext` (median of {len(times['paused'])}; warm-up: "
        f"{', '.join(sorted(warm_ups['paused']))}) | {median['paused']:.1f} | {median_cpu['paused']:.1f} |"
    )
    if against:
        this_vs_that = [a / b for a, b in zip(times["vision_magic"], times["against"], strict=True)]
        print(
            f"| `--against` {against.name}: the same two cells (warm-up: {', '.join(sorted(warm_ups['against']))};"
            f" {median['against'] / median['by_hand']:.2f}x by hand) | {median['against']:.1f} | "
            f"{median_cpu['against']:.1f} |"
        )
        print(
            f"| median of the rounds' ratios, this tree / against | {statistics.median(this_vs_that):.2f}x | |"
        )
    print()
    print(
        "| vision_magic's two cells against | ratio of the medians (CPU) | median of the rounds' ratios "
        "(quartiles) | ratio of the fastest runs |"
    )
    print("|---|---|---|---|")
    for way, (_, label) in baselines.items():
        ratios = [a / b for a, b in zip(times["vision_magic"], times[way], strict=True)]
        q1, middle, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        print(
            f"| {label} | {vm / median[way]:.2f}x ({median_cpu['vision_magic'] / median_cpu[way]:.2f}x) | "
            f"{middle:.2f}x ({q1:.2f}x-{q3:.2f}x) | {min(times['vision_magic']) / min(times[way]):.2f}x |"
        )
    print()
    print(f"| where the time goes (medians of {runs}, ms) | vision_magic | by hand | bare (file as is) |")
    print("|---|---|---|---|")
    for name, steps in STEP_NAMES.items():
        cells = [
            statistics.median(_step_ms(run_phases, way, step, times)) if step else 0.0
            for way, step in zip(("vision_magic", "by_hand", "bare"), steps, strict=True)
        ]
        print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


# A phase of the answered cell: (vision_magic's step, the by-hand request's, the bare one's), each the span from
# the previous step's end (or the start) to this step's end; "end" is the whole cell's end.
STEP_NAMES = {
    "`%load_ext` cell (vision_magic's modules, magic, configuration)": ("%load_ext cell", None, None),
    "until the image is ready (Pillow, the question's modules; decode, resize, encode; base64)": (
        "image ready",
        "image ready",
        "image ready",
    ),
    "`import openai`": ("sdk imported", "sdk imported", "sdk imported"),
    "the client": ("client made", "client made", "client made"),
    "request, stream, rendering, replay store": ("end", "end", "end"),
}
_ORDER = {
    "vision_magic": ("%load_ext cell", "image ready", "sdk imported", "client made", "end"),
    "by_hand": ("sdk imported", "client made", "image ready", "end"),
    "bare": ("sdk imported", "client made", "image ready", "end"),
}


def _step_ms(run_phases: dict[str, list[dict[str, float]]], way: str, step: str, times: dict) -> list[float]:
    """The step's length in each run of ``way`` (ms): its end minus the end of the step before it."""
    order = _ORDER[way]
    out = []
    for phases, total in zip(run_phases[way], times[way], strict=True):
        ends = {**phases, "end": total / 1000}
        i = order.index(step)
        start = ends[order[i - 1]] if i else 0.0
        out.append((ends[step] - start) * 1000)
    return out


# The first answered cell's image, by kind: (file name, what it is, how it is made). "flat" is the worst case for
# vision_magic against the bare request: a PNG that must be decoded, resized and re-encoded (the bare request
# just base64-encodes the small file); a photo is draft-decoded at the size sent.
KINDS = {
    "flat": ("flat.png", "flat PNG 1600x1200, resized to 1024x768"),
    "plot": (
        "plot.png",
        "matplotlib plot PNG 1600x1000 (bench/prepare.py's, dpi 200, RGBA), resized to 1229x768",
    ),
    "photo": ("photo.jpg", "photo-like JPEG 4000x3000 (12 MP), draft-decoded and resized to 1024x768"),
}


def make_image(kind: str, folder: Path) -> Path:
    """The bench image of ``kind`` (see :data:`KINDS`), written to ``folder``."""
    from PIL import Image

    path = folder / KINDS[kind][0]
    if kind == "flat":
        Image.new("RGB", (1600, 1200), "teal").save(path)
    elif kind == "plot":
        import matplotlib.pyplot as plt
        from prepare import plot_figure  # bench/prepare.py's plot, drawn at twice its dpi (a retina plot)

        fig = plot_figure()
        fig.savefig(path, dpi=200)
        plt.close(fig)
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:3000, 0:4000]
        base = np.stack([x / 16, y / 12, (x + y) / 28], axis=-1) % 255
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--pairs", type=int, default=21, help="rounds of the answered-cell comparison (each runs both ways)"
    )
    parser.add_argument("--against", type=Path, help="another checkout of the project to time the same way")
    parser.add_argument(
        "--only-answered", action="store_true", help="only the first answered cell against the bare SDK"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"the first answered cell's images, comma-separated, of {', '.join(KINDS)} (default: all)",
    )
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown --kinds {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    against = args.against.resolve() if args.against else None

    trees = [("this tree", ROOT)] + ([("against", against)] if against else [])
    times: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STEPS} for name, _ in trees}
    heavy: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_answered:
            image = make_image("flat", Path(tmp))
            for _name, tree in trees:
                probe(tree, image)  # warm-up: the file cache, .pyc files
            for _ in range(args.runs):
                for name, tree in trees:  # in turns, so drift of the machine falls on both alike
                    result = probe(tree, image)
                    heavy[name] = result["heavy"]
                    for step in STEPS:
                        times[name][step].append(result[step] * 1000)
            print_probe_table(trees, times, heavy, args.runs, against is not None)
        for kind in kinds:
            print(f"\n### The first answered cell: {KINDS[kind][1]}")
            answered_table(make_image(kind, Path(tmp)), args.pairs, against)
    return 0


def print_probe_table(
    trees: list[tuple[str, Path]],
    times: dict[str, dict[str, list[float]]],
    heavy: dict[str, list[str]],
    runs: int,
    against: bool,
) -> None:
    """Import, ``%load_ext`` and the first dry-run cell: the medians per tree (and this / against)."""
    head = ["step", *(f"{name} (ms, median of {runs})" for name, _ in trees)]
    if against:
        head.append("ratio this / against")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for step in STEPS:
        medians = [statistics.median(times[name][step]) for name, _ in trees]
        row = [step, *(f"{m:.1f}" for m in medians)]
        if against:
            row.append(f"{medians[0] / medians[1]:.2f}x")
        print("| " + " | ".join(row) + " |")
    for name, _ in trees:
        print(f"{name}: heavy modules loaded by `import vision_magic`: {heavy[name] or 'none'}")


if __name__ == "__main__":
    raise SystemExit(main())
