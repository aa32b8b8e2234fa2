"""Execute a notebook headlessly and save the executed copy under out/ (the README's first command).

Usage: python scripts/run_notebook.py notebooks/quickstart.ipynb [more.ipynb ...]

Without OPENAI_API_KEY / OPENAI_BASE_URL the notebooks take their dry-run path; this script says so and how to
get real answers. A failing cell prints its one-line error and the script exits 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path) -> int:
    workdir = ROOT / "out"
    workdir.mkdir(exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # what an earlier run left in the file is not this run's answer
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    target = workdir / path.name
    status = 0
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"{path.name}: a cell failed: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
        status = 1
    finally:
        nbformat.write(nb, target)
    answers = [
        o["data"]["text/plain"]
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result") and "text/markdown" in o.get("data", {})
    ]
    dry_runs = sum(
        "Dry run: nothing was sent" in o.get("data", {}).get("text/plain", "")
        for cell in nb.cells
        for o in cell.get("outputs", [])
    )
    print(
        f"{path.name}: executed -> {target.relative_to(ROOT)} ({len(answers)} answers, {dry_runs} dry runs)"
    )
    for text in answers[:3]:
        print("  answer:", " ".join(text.split())[:160])
    if dry_runs and not answers:
        print(
            "  This was a dry run: nothing was sent. To get answers, set OPENAI_API_KEY=sk-... "
            "(or OPENAI_BASE_URL=http://localhost:11434/v1 VISION_MAGIC_MODEL=qwen2.5vl for a local Ollama server) "
            "and run `make quickstart` again."
        )
    return status


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [ROOT / "notebooks" / "quickstart.ipynb"]
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return max(run(p.resolve()) for p in paths)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
