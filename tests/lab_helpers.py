"""JupyterLab in headless Chromium for the browser tests (test_browser.py, test_labextension.py).

The ``lab`` fixture (one per test module) starts JupyterLab on 127.0.0.1 (token-less, isolated JUPYTER_* dirs) with the kernel's
environment pointing at the suite's OpenAI-compatible test server; Playwright drives Debian's
``/usr/bin/chromium`` (never a downloaded browser). Without Chromium the tests skip, unless
``VISION_MAGIC_REQUIRE_BROWSER=1`` (CI), where they fail. Screenshots go to ``out/screenshots/``.
"""

from __future__ import annotations

import json
import os
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


def require_browser() -> None:
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


def free_port() -> int:
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
def lab(request, tmp_path_factory):
    """A JupyterLab for the test module; ``LAB_EXTENSION = False`` in the module disables vision_magic's
    JupyterLab extension (what users of the kernel side alone see)."""
    require_browser()
    extension = getattr(request.module, "LAB_EXTENSION", True)
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")}
    for d in dirs.values():
        d.mkdir()
    _write_settings(dirs["settings"])
    if not extension:
        labconfig = dirs["config"] / "labconfig"
        labconfig.mkdir()
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"vision-magic": True}})
        )
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
    port = free_port()
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
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: read cells, check what is loaded
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


def open_notebook(page, lab: Lab, path: str, run_all: bool = True) -> None:
    """Open ``path`` in a fresh workspace, wait until its kernel is idle, then (``run_all``) Run All Cells."""
    page.goto(f"{lab.url}/lab/workspaces/{uuid.uuid4().hex[:8]}/tree/{path}")
    # Both must hold before Run All works: the toolbar indicator and the status bar (kernel-ready race).
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    page.wait_for_function(
        "() => (document.querySelector('#jp-main-statusbar')?.textContent || '').includes('| Idle')",
        timeout=WAIT_MS,
    )
    if not run_all:
        return
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def screenshot(target, name: str, clip: dict | None = None) -> Path:
    """Save a screenshot of ``target`` (a locator, or a page with an optional ``clip`` box) in SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    if clip is None:
        target.screenshot(path=str(path))
    else:
        target.screenshot(path=str(path), clip=clip)
    return path


def sent_line(cell) -> dict:
    """How an answer's collapsed "sent" line renders under ``cell``: whether it is open, its summary text,
    with numbers as N, and the element names inside (the same with and without the JupyterLab extension)."""
    details = cell.locator(".jp-OutputArea-output[data-mime-type='text/markdown'] details").last
    details.wait_for()
    return details.evaluate(
        """d => ({open: d.open, summary: d.querySelector('summary').innerText.trim().replace(/\\d+/g, 'N'),
                 tags: [...d.querySelectorAll('*')].map(e => e.tagName.toLowerCase()).join(' '),
                 visible: d.querySelector('summary').getBoundingClientRect().height > 0})"""
    )
