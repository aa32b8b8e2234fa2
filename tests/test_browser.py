"""JupyterLab in headless Chromium: the answer renders as Markdown under a ``%%ask_image`` cell, and the ask
panel's Ask button shows the answer in the panel.

A module fixture starts JupyterLab on 127.0.0.1 (token-less, isolated JUPYTER_* dirs) with the kernel's
environment pointing at the suite's OpenAI-compatible test server; Playwright drives Debian's
``/usr/bin/chromium`` (never a downloaded browser). Without Chromium the tests skip, unless
``VISION_MAGIC_REQUIRE_BROWSER=1`` (CI), where they fail. Screenshots go to ``out/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest
from server_fixtures import FAKE_KEY

from fake_openai import OpenAIServer

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "out" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
WAIT_MS = 90_000  # generous: 2 slow cores parse JupyterLab's bundle; these are waits, not timed assertions


def _require_browser() -> None:
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} not found (install Debian's chromium: scripts/install-browser.sh)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is not installed (pip install playwright)"
    if problem:
        if os.environ.get("VISION_MAGIC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here (VISION_MAGIC_REQUIRE_BROWSER=1) but {problem}")
        pytest.skip(f"browser tests skipped: {problem}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    settings = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for rel, value in settings.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class Lab:
    """A running JupyterLab: its URL, notebook root and the test server its kernels talk to."""

    def __init__(self, url: str, root: Path, model_server: OpenAIServer, proc: subprocess.Popen) -> None:
        self.url = url
        self.root = root
        self.model_server = model_server
        self.proc = proc

    def api(self, method: str, path: str) -> object:
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook into its own folder (a fresh kernel each time); return its path under the root."""
        folder = self.root / uuid.uuid4().hex[:8]
        folder.mkdir()
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nbformat.write(nb, folder / name)
        return f"{folder.name}/{name}"

    def delete_sessions(self, path: str) -> None:
        for session in self.api("GET", "/api/sessions") or []:
            if session.get("path") == path:
                self.api("DELETE", f"/api/sessions/{session['id']}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")}
    for d in dirs.values():
        d.mkdir()
    _write_settings(dirs["settings"])
    model_server = OpenAIServer(chunk_size=6, chunk_delay=0.02).start()
    env = dict(os.environ)
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "VISION_MAGIC_MODEL", "MPLBACKEND"):
        env.pop(name, None)
    env.update(
        OPENAI_BASE_URL=model_server.base_url,
        OPENAI_API_KEY=FAKE_KEY,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        VISION_MAGIC_CACHE_DIR=str(base / "cache"),
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        IPYTHONDIR=str(dirs["ipython"]),
    )
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(base / "jupyterlab.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(
                f"JupyterLab exited ({proc.returncode}): {(base / 'jupyterlab.log').read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url + "/api/status", timeout=5) as resp:
                if resp.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            pytest.fail("JupyterLab did not answer /api/status within 120 s")
        time.sleep(0.3)
    try:
        yield Lab(url, root, model_server, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        model_server.stop()
        shutil.rmtree(dirs["runtime"], ignore_errors=True)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    yield pg
    context.close()


def _open_and_run_all(page, lab: Lab, path: str) -> None:
    page.goto(f"{lab.url}/lab/workspaces/{uuid.uuid4().hex[:8]}/tree/{path}")
    # Both must hold before Run All works: the toolbar indicator and the status bar (kernel-ready race).
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    page.wait_for_function(
        "() => (document.querySelector('#jp-main-statusbar')?.textContent || '').includes('| Idle')",
        timeout=WAIT_MS,
    )
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _screenshot(locator, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    locator.screenshot(path=str(path))
    return path


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
