"""Issue 6, secrets: the API key never appears in anything vision_magic produces.

Every error path and the quickstart-style flows run with the recognisable fake key (and a server that echoes
key-like values back in its error messages); then everything produced is searched: display bundles, stdout and
stderr, exceptions (str, repr, formatted traceback), reprs of Answer / PreparedImage / settings, the dry-run
dump, log records (DEBUG, every logger), ``%config VisionMagic``, cache files, and executed notebooks.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import traceback
from pathlib import Path

import pytest
from PIL import Image
from server_fixtures import FAKE_KEY

import vision_magic
from vision_magic.engine.session import settings
from vision_magic.errors import VisionMagicError

ROOT = Path(__file__).resolve().parent.parent
OTHER_KEY = "sk-test-VMFAKEOTHER-fedcba9876543210"  # a key-like value the server echoes, not the one in use
NEEDLES = (FAKE_KEY, "VMFAKEKEY", OTHER_KEY, "VMFAKEOTHER")


def assert_no_key(text: str, where: str) -> None:
    for needle in NEEDLES:
        assert needle not in text, (
            f"{needle!r} leaked into {where}: ...{text[max(0, text.find(needle) - 80) :][:200]}"
        )


class Haystack:
    """Everything one test produced, searched at the end."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, value) -> None:
        self.items.append((where, value if isinstance(value, str) else repr(value)))

    def add_exception(self, where: str, err: BaseException) -> None:
        self.add(f"{where} str", str(err))
        self.add(f"{where} repr", repr(err))
        self.add(f"{where} traceback", "".join(traceback.format_exception(err)))

    def check(self) -> None:
        assert self.items, "nothing was collected: the test cannot fail"
        for where, text in self.items:
            assert_no_key(text, where)


@pytest.fixture
def cfg():
    c = settings()
    saved = {n: getattr(c, n) for n in ("timeout", "max_retries", "dry_run")}
    yield c
    for n, v in saved.items():
        setattr(c, n, v)


@pytest.fixture
def hay(shell, capfd, caplog):
    """A Haystack that, at the end of the test, also takes the displays, output, logs and cache files."""
    caplog.set_level(logging.DEBUG)
    h = Haystack()
    yield h
    h.add("display bundles", json.dumps(shell.displays.bundles, default=repr))
    out = capfd.readouterr()  # Python-level and file-descriptor-level output
    h.add("stdout", out.out)
    h.add("stderr", out.err)
    h.add("log records", "\n".join(f"{r.name}: {r.getMessage()} {r.args!r}" for r in caplog.records))
    h.add("log text", caplog.text)
    cache_dir = os.environ.get("VISION_MAGIC_CACHE_DIR")
    if cache_dir:
        for path in Path(cache_dir).rglob("*"):
            if path.is_file():
                h.add(f"cache file {path.name}", path.read_bytes().decode("latin-1"))
    h.add("last_answer", repr(vision_magic.last_answer))
    h.check()


@pytest.fixture
def red(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(path)
    return path


ECHO = f"Incorrect API key provided: {FAKE_KEY}. You can find your API key at https://platform.openai.com/account/api-keys."
ECHO_OTHER = f"Incorrect API key provided: {OTHER_KEY}."
HTML_ECHO = f"<html><head><title>401 bad key {FAKE_KEY}</title></head><body>key {OTHER_KEY}</body></html>"

FAULTS = [
    ("status", {"status": 401, "message": ECHO, "code": "invalid_api_key"}),
    ("status", {"status": 401, "message": ECHO_OTHER}),
    (
        "status",
        {"status": 400, "message": f"Bad request from key {FAKE_KEY[:12]}...{FAKE_KEY[-4:]}: {OTHER_KEY}"},
    ),
    ("status", {"status": 429, "times": 5, "headers": {"Retry-After": "0.01"}, "message": ECHO}),
    ("status", {"status": 500, "times": 5, "headers": {"Retry-After": "0.01"}, "message": ECHO_OTHER}),
    ("html", {"status": 401, "body": HTML_ECHO}),
    ("html", {"status": 502, "times": 5, "body": HTML_ECHO}),
    ("drop", {"after": 2}),
    ("drop", {"after": 0}),
    ("malformed", {"after": 2}),
    ("malformed", {"after": 0}),
    ("close", {"times": 5}),
]


@pytest.mark.parametrize(
    ("kind", "kw"), FAULTS, ids=[f"{k}-{kw.get('status', kw.get('after', ''))}" for k, kw in FAULTS]
)
def test_error_paths_leak_no_key(openai_env, shell, hay, cfg, red, kind, kw):
    server = openai_env
    cfg.max_retries = 1
    prompt = f"secrets: {kind} fault #{FAULTS.index((kind, kw))}"  # the prompt must not carry the key itself
    # through ask()
    server.add_fault(kind, **kw)
    try:
        answer = vision_magic.ask(prompt + " (ask)", red)
        hay.add("answer repr", repr(answer))
        hay.add("answer footer", answer.footer())
        hay.add("answer error", str(answer.error))
    except VisionMagicError as e:
        hay.add_exception("ask error", e)
    server.reset()
    # through the magic
    server.add_fault(kind, **kw)
    shell.user_ns["t_img"] = str(red)
    result = shell.run_cell(f"%%ask_image t_img --out t_answer\n{prompt} (magic)")
    if result.error_in_exec is not None:
        hay.add_exception("magic error", result.error_in_exec)
    if "t_answer" in shell.user_ns:
        hay.add("magic answer", repr(shell.user_ns["t_answer"]))
    assert server.chat_requests  # the fault really was served


def test_timeout_and_refused_leak_no_key(openai_env, shell, hay, cfg, red, monkeypatch):
    server = openai_env
    cfg.timeout = 0.5
    cfg.max_retries = 0
    server.add_fault("hang", seconds=30)
    with pytest.raises(VisionMagicError) as info:
        vision_magic.ask("secrets: timeout", red)
    hay.add_exception("timeout", info.value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    with pytest.raises(VisionMagicError) as info:
        vision_magic.ask("secrets: refused", red)
    hay.add_exception("refused", info.value)


def test_quickstart_flows_leak_no_key(openai_env, shell, hay, red, tmp_path):
    server = openai_env
    # the Python API
    answer = vision_magic.ask("secrets: quickstart ask", red, detail="high")
    assert answer.text and not answer.incomplete
    hay.add("answer repr", repr(answer))
    hay.add("answer str", str(answer))
    hay.add("answer footer", answer.footer())
    hay.add("answer markdown", str(answer._repr_markdown_()))
    hay.add("answer request", json.dumps(answer.request))
    hay.add("answer fields", repr(vars(answer)))
    for img in answer.images:
        hay.add("prepared repr", repr(img))
        hay.add("prepared describe", img.describe())
    parts = vision_magic.content_parts(str(red), prompt="secrets: parts", detail="low")
    hay.add("content parts", json.dumps(parts))
    # the dry run (display and object)
    dry = vision_magic.ask("secrets: quickstart dry run", red, dry_run=True)
    hay.add("dry run repr", repr(dry))
    from vision_magic.frontends.render import dry_run_bundle

    hay.add("dry run dump", json.dumps(dry_run_bundle(dry)))
    # the magic: answer, dry run, --out, %config, settings
    shell.user_ns["t_img"] = str(red)
    for cell in (
        "%%ask_image t_img --out t_answer\nsecrets: quickstart magic",
        "%%ask_image t_img --dry-run\nsecrets: quickstart magic dry run",
        "%%ask_image no_such_file.png\nsecrets: quickstart missing file",
    ):
        result = shell.run_cell(cell)
        if result.error_in_exec is not None:
            hay.add_exception("magic", result.error_in_exec)
    hay.add("magic answer", repr(shell.user_ns["t_answer"]))
    shell.run_line_magic("config", "VisionMagic")
    shell.run_cell("%config VisionMagic")
    cfg = settings()
    hay.add("settings repr", repr(cfg))
    hay.add("settings values", repr({n: getattr(cfg, n) for n in cfg.trait_names()}))
    hay.add("settings config", repr(cfg.config))
    hay.add("shell config", repr(shell.config))
    assert len(server.chat_requests) >= 2
    cache_dir = Path(os.environ["VISION_MAGIC_CACHE_DIR"])
    assert any(
        f.is_file() and f.stat().st_size for f in cache_dir.rglob("*")
    )  # the cache rows are searched too
    # the key did go to the server (so the search above is meaningful), in the header only
    assert server.chat_requests[0].headers.get("authorization") == f"Bearer {FAKE_KEY}"


def test_no_key_at_all_is_one_line(shell, hay, red, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    with pytest.raises(VisionMagicError, match="No API key") as info:
        vision_magic.ask("secrets: no key", red, display=False)
    hay.add_exception("no key", info.value)


def test_redact_removes_configured_and_key_like_values(monkeypatch):
    from vision_magic.errors import APIError, redact

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    for text in (ECHO, ECHO_OTHER, HTML_ECHO, f"Authorization: Bearer {FAKE_KEY}", f"key={FAKE_KEY}"):
        assert_no_key(redact(text), "redact()")
        assert_no_key(str(APIError(text)), "APIError")
    monkeypatch.setenv("OPENAI_API_KEY", "local-key-without-prefix-12345")
    assert "local-key-without-prefix-12345" not in redact("bad key local-key-without-prefix-12345")


# -- notebooks --------------------------------------------------------------------------------------

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

EXTRA_CELLS = [
    # an error path inside the notebook: the server echoes the key (queued as a fault before this cell)
    "%%ask_image images/chart.png\nsecrets: notebook 401 echo",
    "%config VisionMagic",
    "vision_magic.last_answer",
    "%%ask_image images/chart.png --dry-run\nsecrets: notebook dry run",
]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_executed_notebooks_contain_no_key(openai_env, path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    server = openai_env
    nb = nbformat.read(path, as_version=4)
    quickstart = path.name == "quickstart.ipynb"
    if quickstart:
        nb.cells += [nbformat.v4.new_code_cell(src) for src in EXTRA_CELLS]
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if quickstart and cell.source == EXTRA_CELLS[0]:
                server.add_fault("status", status=401, message=ECHO)
            client.execute_cell(cell, index)
    saved = nbformat.writes(nb)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    answers = [o for o in outputs if "text/markdown" in o.get("data", {})]
    assert answers, "the notebook showed no answer: the search below would prove nothing"
    if quickstart:
        errors = [o for o in outputs if o.get("output_type") == "error"]
        assert [e["ename"] for e in errors] == ["APIError"]
        assert "answered 401" in errors[0]["evalue"] and "***" in errors[0]["evalue"]
        assert server.chat_requests[-1].status == 401  # the echoing server really answered
    assert_no_key(saved, f"executed {path.name}")
    (tmp_path / path.name).write_text(saved)
    for file in tmp_path.rglob("*"):  # whatever the notebook wrote next to itself
        if file.is_file() and file.suffix in (".ipynb", ".json", ".txt", ".md", ".html", ".log", ".csv"):
            assert_no_key(file.read_text(errors="replace"), str(file))
