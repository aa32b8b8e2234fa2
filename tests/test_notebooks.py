"""Every notebook in notebooks/ runs top to bottom through nbclient: against the suite's OpenAI-compatible
test server (the saved outputs hold its answers), and without any endpoint as a dry run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from kernel_helpers import run_notebook
from server_fixtures import FAKE_KEY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _execute(path: Path, workdir: Path, env: dict[str, str], monkeypatch) -> nbformat.NotebookNode:
    env = {
        "VISION_MAGIC_CACHE_DIR": str(workdir / "cache"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        **env,
    }
    return run_notebook(nbformat.read(path, as_version=4), workdir, env, monkeypatch, timeout=300)


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def _texts(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    found = []
    for o in _outputs(nb):
        if o.get("output_type") == "stream" and mime == "text/plain":
            found.append(o.get("text", ""))
        elif mime in o.get("data", {}):
            found.append(o["data"][mime])
    return found


def _widget_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Markdown shown inside Output widgets (kept in the notebook's widget state, not in cell outputs)."""
    state = (
        nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    )
    found = []
    for model in state.values():
        for o in model.get("state", {}).get("outputs", []) or []:
            md = o.get("data", {}).get("text/markdown")
            if md:
                found.append(md)
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_against_the_test_server(path, tmp_path, openai_env, monkeypatch):
    server = openai_env
    nb = _execute(
        path, tmp_path, {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}, monkeypatch
    )
    assert not [o for o in _outputs(nb) if o.get("output_type") == "error"]
    answers = [md for md in _texts(nb, "text/markdown") if "You asked:" in md]
    assert answers, f"{path.name}: no answer of the test server in the saved outputs"
    assert all("**Answer** from" in md for md in answers)
    # each %%ask_image cell's question reached the server and its answer is saved under that cell
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("%%ask_image"):
            question = cell.source.split("\n", 1)[1].strip()
            shown = [o["data"]["text/markdown"] for o in cell.outputs if "text/markdown" in o.get("data", {})]
            assert any(f"You asked: {question}" in md for md in shown), cell.source
    assert server.chat_requests, "no request reached the server"
    assert FAKE_KEY not in nbformat.writes(nb)


def test_plots_notebook_annotates_with_figure_facts(tmp_path, openai_env, monkeypatch):
    server = openai_env
    nb = _execute(
        ROOT / "notebooks" / "plots.ipynb",
        tmp_path,
        {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY},
        monkeypatch,
    )
    prompts = [r.body["messages"][-1]["content"][0]["text"] for r in server.chat_requests]
    caption_prompt = next(p for p in prompts if p.startswith("Write a concise caption"))
    assert "title 'Monthly visitors, 2025'" in caption_prompt
    assert "legend: 'North museum', 'South museum'" in caption_prompt
    assert "y label 'visitors'" in caption_prompt
    # the comparison sent both figures
    compare = next(
        r for r in server.chat_requests if "log scale reveal" in r.body["messages"][-1]["content"][0]["text"]
    )
    assert len(compare.images) == 2
    # annotate() displayed the figure together with its answer
    cell = next(c for c in nb.cells if c.source.startswith("caption = vision_magic.annotate"))
    kinds = [
        next(iter(m for m in ("image/png", "text/markdown") if m in o.get("data", {})), None)
        for o in cell.outputs
    ]
    assert kinds[:2] == ["image/png", "text/markdown"]


def test_teaching_notebook_panel_answers_into_its_output_widget(tmp_path, openai_env, monkeypatch):
    server = openai_env
    nb = _execute(
        ROOT / "notebooks" / "teaching.ipynb",
        tmp_path,
        {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY},
        monkeypatch,
    )
    in_widget = _widget_outputs(nb)
    assert any("You asked: How many shapes are there, and what colours are they?" in md for md in in_widget)
    printed = "".join(_texts(nb, "text/plain"))
    assert "2 images: ~" in printed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_as_a_dry_run_without_an_endpoint(path, tmp_path, monkeypatch):
    nb = _execute(path, tmp_path, {}, monkeypatch)
    assert not [o for o in _outputs(nb) if o.get("output_type") == "error"]
    plain = "\n".join(_texts(nb, "text/plain"))
    assert "DRY RUN" in plain or "Dry run" in plain
    assert "Dry run: nothing was sent" in plain
    assert not [md for md in _texts(nb, "text/markdown") if "You asked:" in md]
