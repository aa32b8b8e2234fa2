"""The README's main job: notebooks/quickstart.ipynb executed headlessly, live (test server) and dry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def execute(tmp_path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    saved = dict(os.environ)
    try:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            os.environ.pop(name, None)
        os.environ.update(env)
        os.environ["PYTHONPATH"] = str(ROOT)
        NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def outputs(nb, mime: str) -> list[str]:
    return [
        o["data"][mime]
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})
    ]


def outputs_of(cell) -> str:
    return "".join(o.get("data", {}).get("text/markdown", "") for o in cell.get("outputs", []))


def test_quickstart_live_against_test_server(tmp_path, server):
    from server_fixtures import FAKE_KEY

    nb = execute(tmp_path, {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY})
    answers = outputs(nb, "text/markdown")
    magic_cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%ask_image")]
    assert len(answers) >= len(magic_cells) >= 7
    assert all("**Answer** from gpt-4o" in a for a in answers)
    assert any("这张图片是什么？" in a for a in answers)
    assert all("<IPython" not in t for t in outputs(nb, "text/plain"))
    # Every kind of source reached the server; the bare magic sent the plot shown just before.
    counts = [len(r.images) for r in server.chat_requests]
    assert counts[:8] == [1, 1, 2, 2, 3, 1, 1, 1], counts
    assert all(img["url_kind"] == "data" for r in server.chat_requests for img in r.images)
    # the last cell, `%ask_image @-1 What is the trend here?`, sent the chart the cell before it showed
    last = nb.cells[-1]
    assert last.source.startswith("%ask_image @-1") and "**Answer** from gpt-4o" in outputs_of(last)
    assert len(server.chat_requests[-1].images) == 1
    assert server.chat_requests[-1].body["messages"][-1]["content"][0]["text"] == "What is the trend here?"
    saved = nbformat.writes(nb)
    assert FAKE_KEY not in saved


def test_quickstart_dry_run_without_key(tmp_path, server):
    nb = execute(tmp_path, {})
    plain = "\n".join(outputs(nb, "text/plain"))
    streams = "".join(
        o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream"
    )
    assert "DRY RUN" in streams and "OPENAI_API_KEY" in streams
    assert plain.count("Dry run: nothing was sent") >= 7
    assert server.chat_requests == []


def run_notebook_script(path: Path) -> subprocess.CompletedProcess:
    """`make quickstart`'s script on ``path``, with no key or server in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_readme_main_command_script(tmp_path, server):
    """scripts/run_notebook.py (what `make quickstart` runs) saves the executed notebook and explains a dry run."""
    proc = run_notebook_script(NOTEBOOK)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dry run" in proc.stdout.lower() and "OPENAI_API_KEY" in proc.stdout
    assert "VISION_MAGIC_MODEL=" in proc.stdout  # a local server's hint names a model (its default is gpt-4o)
    assert (ROOT / "out" / "quickstart.ipynb").exists()


def test_run_notebook_counts_only_its_own_answers(tmp_path):
    """Outputs an earlier run left in the file are cleared first: a run whose first cell fails reports no
    answers, although the file held eight."""
    nb = nbformat.v4.new_notebook()
    stale = nbformat.v4.new_output(
        "display_data", data={"text/markdown": "**Answer** old", "text/plain": "**Answer** old"}
    )
    nb.cells = [
        nbformat.v4.new_code_cell("raise SystemExit('this run fails here')"),
        nbformat.v4.new_code_cell("print('never runs')", outputs=[stale] * 8),
    ]
    path = tmp_path / "stale.ipynb"
    nbformat.write(nb, path)
    proc = run_notebook_script(path)
    assert proc.returncode == 1
    assert "(0 answers, 0 dry runs)" in proc.stdout, proc.stdout
    saved = nbformat.read(ROOT / "out" / "stale.ipynb", as_version=4)
    assert saved.cells[1].outputs == []
    (ROOT / "out" / "stale.ipynb").unlink()


def test_the_tree_stays_clean_after_running_the_notebooks():
    """What running the notebooks writes (out/, notebooks/images/) is ignored by git."""
    probe = ["out/quickstart.ipynb", "notebooks/images/figure.png", "out/screenshots/x.png"]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert sorted(proc.stdout.split()) == sorted(probe), proc.stdout
