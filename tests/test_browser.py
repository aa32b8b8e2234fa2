"""JupyterLab in headless Chromium, without vision_magic's JupyterLab extension (the kernel side never needs
it): the answer renders as Markdown under a ``%%ask_image`` cell, and the ask panel's Ask button shows the
answer in the panel. The JupyterLab instance and browser come from lab_helpers.py; screenshots go to
``out/screenshots/``.
"""

from __future__ import annotations

import re
import shutil
import uuid

import pytest
from lab_helpers import ROOT, WAIT_MS, Lab, sent_line
from lab_helpers import open_notebook as _open_and_run_all
from lab_helpers import screenshot as _screenshot

pytestmark = pytest.mark.browser
LAB_EXTENSION = False
# the "sent" line of a one-image answer: collapsed under the footer, numbers as N
EXPECTED_SENT_LINE = {
    "open": False,
    "summary": "sent: N image, N tokens",
    "tags": "summary sub sub",
    "visible": True,
}


def test_magic_answer_renders_as_markdown_below_the_cell(lab, page):
    prompt = f"What colour is the square? ({uuid.uuid4().hex[:6]})"
    path = lab.notebook(
        "magic.ipynb",
        [
            "%load_ext vision_magic\nfrom PIL import Image\nsquare = Image.new('RGB', (64, 64), 'red')",
            f"%%ask_image square\n{prompt}",
        ],
    )
    try:
        _open_and_run_all(page, lab, path)
        cell = page.locator(".jp-Notebook .jp-CodeCell").nth(1)
        markdown = cell.locator(".jp-OutputArea-output[data-mime-type='text/markdown']")
        markdown.filter(has_text=f"You asked: {prompt}").wait_for()
        # the **Answer** markup became a <strong>, i.e. rendered Markdown rather than source text
        assert markdown.locator("strong", has_text="Answer").count() == 1
        text = markdown.inner_text()
        assert "from gpt-4o: I see 1 image(s)." in text
        assert "**" not in text
        # the footer (model, tokens) is there once streaming finished
        markdown.locator("sub", has_text="tokens in").wait_for()
        # the collapsed "sent" line renders the same way with the JupyterLab extension (test_labextension)
        assert sent_line(cell) == EXPECTED_SENT_LINE
        assert lab.model_server.last.body["messages"][-1]["content"][0]["text"] == prompt
        shot = _screenshot(cell, "magic_answer.png")
        assert shot.stat().st_size > 0
    finally:
        lab.delete_sessions(path)


def test_panel_ask_button_shows_answer_in_the_panel(lab, page):
    prompt = f"Describe the blue rectangle ({uuid.uuid4().hex[:6]})"
    path = lab.notebook(
        "panel.ipynb",
        [
            "from PIL import Image\nfrom vision_magic import ask_panel\n"
            "rect = Image.new('RGB', (120, 60), 'blue')\n"
            f"panel = ask_panel(rect, prompt={prompt!r})\npanel",
        ],
    )
    try:
        _open_and_run_all(page, lab, path)
        panel = page.locator(".vision-magic-panel")
        panel.wait_for()
        assert re.search(r"~\d+ image tokens", " ".join(panel.locator(".widget-html").all_inner_texts()))
        try:
            panel.locator("button.jupyter-button", has_text=re.compile(r"^\s*Ask\s*$")).click()
        except Exception:
            _screenshot(page, "panel_failure.png")  # what the page showed instead
            raise
        answer = panel.locator(".widget-output .jp-OutputArea-output[data-mime-type='text/markdown']")
        answer.filter(has_text=f"You asked: {prompt}").wait_for()
        assert answer.locator("strong", has_text="Answer").count() == 1
        answer.locator("sub", has_text="tokens in").wait_for()
        # Ask is enabled again once the answer is complete
        page.wait_for_function(
            "() => { const b = [...document.querySelectorAll('.vision-magic-panel button')]"
            ".find(b => b.textContent.trim() === 'Ask'); return b && !b.disabled; }",
            timeout=WAIT_MS,
        )
        assert lab.model_server.last.body["messages"][-1]["content"][0]["text"] == prompt
        assert len(lab.model_server.last.images) == 1
        shot = _screenshot(panel, "panel_answer.png")
        assert shot.stat().st_size > 0
    finally:
        lab.delete_sessions(path)


def _copy_demo(lab: Lab, name: str) -> str:
    folder = lab.root / uuid.uuid4().hex[:8]
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / name, folder / name)
    return f"{folder.name}/{name}"


def test_plots_notebook_shows_figure_and_caption_together(lab, page):
    path = _copy_demo(lab, "plots.ipynb")
    try:
        _open_and_run_all(page, lab, path)
        cell = page.locator(".jp-Notebook .jp-CodeCell").filter(
            has_text="caption = vision_magic.annotate(fig_a)"
        )
        answer = cell.locator(".jp-OutputArea-output[data-mime-type='text/markdown']")
        answer.filter(has_text="You asked: Write a concise caption").wait_for()
        answer.locator("sub", has_text="tokens in").wait_for()
        assert answer.locator("strong", has_text="Answer").count() == 1
        assert cell.locator("[data-mime-type='image/png'] img").count() == 1  # the figure, above its answer
        # the last cell of the notebook ran too
        last = page.locator(".jp-Notebook .jp-CodeCell").last
        last.locator(".jp-OutputArea-output", has_text="Answer").wait_for()
        _screenshot(cell, "plots_caption.png")
    finally:
        lab.delete_sessions(path)


def test_teaching_notebook_panel_answers_in_the_page(lab, page):
    path = _copy_demo(lab, "teaching.ipynb")
    try:
        _open_and_run_all(page, lab, path)
        panel = page.locator(".vision-magic-panel")
        answer = panel.locator(".widget-output .jp-OutputArea-output[data-mime-type='text/markdown']")
        answer.filter(has_text="You asked: How many shapes are there, and what colours are they?").wait_for()
        answer.locator("sub", has_text="tokens in").wait_for()
        assert answer.locator("strong", has_text="Answer").count() == 1
        # the "add the chart" cell ran: two thumbnails now
        panel.locator("img").nth(1).wait_for()
        magic = page.locator(".jp-Notebook .jp-CodeCell", has_text="Does the chart match the drawing?").first
        magic.locator(".jp-OutputArea-output[data-mime-type='text/markdown']").filter(
            has_text="You asked: Does the chart match the drawing?"
        ).wait_for()
        _screenshot(panel, "teaching_panel.png")
    finally:
        lab.delete_sessions(path)


def test_panel_stop_keeps_what_arrived(lab, page):
    prompt = f"Describe slowly ({uuid.uuid4().hex[:6]})"
    path = lab.notebook(
        "stop.ipynb",
        [
            "from PIL import Image\nfrom vision_magic import ask_panel\n"
            f"panel = ask_panel(Image.new('RGB', (80, 80), 'yellow'), prompt={prompt!r})\npanel",
        ],
    )
    lab.model_server.chunk_delay = 0.3  # ~7 s of streaming: time to see Ask disabled and click Stop
    try:
        _open_and_run_all(page, lab, path)
        panel = page.locator(".vision-magic-panel")
        ask = panel.locator("button.jupyter-button", has_text=re.compile(r"^\s*Ask\s*$"))
        stop = panel.locator("button.jupyter-button", has_text=re.compile(r"^\s*Stop\s*$"))
        ask.click()
        answer = panel.locator(".widget-output .jp-OutputArea-output[data-mime-type='text/markdown']")
        answer.locator("strong", has_text="Answer").wait_for()  # some text has arrived
        assert ask.is_disabled()  # while the answer streams
        stop.click()
        answer.filter(has_text="incomplete: stopped").wait_for()
        page.wait_for_function(
            "() => { const b = [...document.querySelectorAll('.vision-magic-panel button')]"
            ".find(b => b.textContent.trim() === 'Ask'); return b && !b.disabled; }",
            timeout=WAIT_MS,
        )
        assert "A formula" not in answer.inner_text()  # the end of the reply never came
        _screenshot(panel, "panel_stopped.png")
    finally:
        lab.model_server.chunk_delay = 0.02
        lab.delete_sessions(path)
