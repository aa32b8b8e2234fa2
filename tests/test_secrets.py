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
from vision_magic.errors import SourceErrors, VisionMagicError

ROOT = Path(__file__).resolve().parent.parent
OTHER_KEY = "sk-test-VMFAKEOTHER-fedcba9876543210"  # a key-like value the server echoes, not the one in use
# secrets that do not look like keys: only redact() knowing where they come from can hide them
PASSWORD = "VMFAKEPASS-hunter2"  # in a base URL's user:password@
SERVER_KEY = "VMFAKESERVERKEY-7f3a9c"  # an endpoint's own key variable (api_key_env), not sk- shaped
URL_TOKEN, URL_SIG = "VMFAKETOKEN-a1b2c3", "VMFAKESIG-d4e5f6"  # a signed image URL's query values
NEEDLES = (
    *(FAKE_KEY, "VMFAKEKEY", OTHER_KEY, "VMFAKEOTHER"),
    *("VMFAKEPASS", "VMFAKESERVERKEY", "VMFAKETOKEN", "VMFAKESIG"),
)


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


# -- secrets that are not OPENAI_API_KEY: URL passwords, endpoint keys, signed image URLs ------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_password_in_base_url_is_never_shown(shell, hay, cfg, red, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    port = closed_port()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://vmuser:{PASSWORD}@127.0.0.1:{port}/v1")
    cfg.max_retries = 0
    shell.user_ns["t_img"] = str(red)
    result = shell.run_cell("%%ask_image t_img\nsecrets: unreachable server (env)")
    err = result.error_in_exec
    assert type(err).__name__ == "APIError"
    hay.add_exception("unreachable (env)", err)
    # the line still says which server, without its password
    assert f"Could not reach http://***@127.0.0.1:{port}/v1" in str(err)
    # the same URL set with %config, then listed by %config VisionMagic (its output is searched too)
    shell.run_cell(f'%config VisionMagic.base_url = "http://vmuser:{PASSWORD}@127.0.0.1:{closed_port()}/v1"')
    result = shell.run_cell("%%ask_image t_img\nsecrets: unreachable server (config)")
    assert "Could not reach http://***@127.0.0.1" in str(result.error_in_exec)
    hay.add_exception("unreachable (config)", result.error_in_exec)
    shell.run_cell("%config VisionMagic")
    with pytest.raises(VisionMagicError) as info:
        vision_magic.ask("secrets: unreachable server (ask)", red, display=False)
    hay.add_exception("unreachable (ask)", info.value)


def test_endpoint_key_echoed_by_its_server_is_redacted(openai_env, shell, hay, cfg, red, monkeypatch):
    server = openai_env
    monkeypatch.setattr(
        cfg, "endpoints", {"mine": {"base_url": server.base_url, "api_key_env": "MY_SERVER_KEY"}}
    )
    monkeypatch.setenv("MY_SERVER_KEY", SERVER_KEY)
    cfg.max_retries = 0
    echo = f"Invalid key {SERVER_KEY} for this server"
    server.add_fault("status", status=401, message=echo)
    with pytest.raises(VisionMagicError) as info:
        vision_magic.ask("secrets: endpoint key echo (ask)", red, display=False)
    assert "answered 401: Invalid key *** for this server" in str(info.value)
    hay.add_exception("endpoint key (ask)", info.value)
    server.add_fault("status", status=401, message=echo)
    shell.user_ns["t_img"] = str(red)
    result = shell.run_cell("%%ask_image t_img\nsecrets: endpoint key echo (magic)")
    assert "Invalid key *** for this server" in str(result.error_in_exec)
    hay.add_exception("endpoint key (magic)", result.error_in_exec)
    # the server really got the key, and really echoed it
    assert [r.headers.get("authorization") for r in server.chat_requests] == [f"Bearer {SERVER_KEY}"] * 2
    assert all(r.status == 401 for r in server.chat_requests)


def signed_url(base: str) -> str:
    return f"{base}/cat.png?w=64&token={URL_TOKEN}&X-Amz-Signature={URL_SIG}&sig={URL_SIG}"


def test_signed_image_urls_are_redacted_in_dry_runs_answers_and_errors(
    openai_env, shell, hay, cfg, red, monkeypatch
):
    server = openai_env
    # an endpoint that fetches URLs itself: the link goes into the request as it is (the server needs it)
    monkeypatch.setattr(cfg, "endpoints", {"fetcher": {"base_url": server.base_url, "fetch_urls": True}})
    url = signed_url("https://images.example")
    shell.user_ns["t_url"] = url
    shell.run_cell("%%ask_image t_url --dry-run\nsecrets: signed URL dry run")  # labelled t_url
    shown = "token=***&X-Amz-Signature=***&sig=***"
    dry = shell.displays.last()
    assert shown.replace("&", "&amp;") in dry["text/html"] and shown in dry["text/plain"]  # the request JSON
    vision_magic.ask("secrets: signed URL dry run (ask)", url, dry_run=True)  # labelled by the URL
    dry = shell.displays.last()
    assert dry["text/html"].count(shown.replace("&", "&amp;")) == 2  # the table and the request JSON
    assert dry["text/plain"].count(shown) == 2
    answer = vision_magic.ask("secrets: signed URL answer", url, display=False)
    assert server.last.images[0]["url"] == url  # sent as given: only what is shown is redacted
    hay.add("answer repr", repr(answer))
    hay.add("prepared repr", repr(answer.images))
    hay.add("answer footer", answer.footer())
    # a server that cannot fetch URLs: vision_magic downloads the image, and the error names it redacted
    monkeypatch.setattr(cfg, "endpoints", {})
    url = signed_url(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(SourceErrors) as info:  # labelled by the URL itself
        vision_magic.ask("secrets: signed URL download error", url, display=False)
    assert f"{url.split('?')[0]}?w=64&{shown}: downloading the image failed" in str(info.value)
    hay.add_exception("download error", info.value)


def test_no_message_suggests_a_key_in_a_cell(monkeypatch, red):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    with pytest.raises(VisionMagicError) as info:
        vision_magic.ask("secrets: no key", red, display=False)
    cfg = settings()
    monkeypatch.setattr(
        cfg, "endpoints", {"azure": {"base_url": "https://api.openai.com/v1", "api_key_env": "MY_KEY"}}
    )
    with pytest.raises(VisionMagicError) as other:
        vision_magic.ask("secrets: no key (endpoint)", red, display=False)
    for message in (str(info.value), str(other.value)):
        assert "No API key" in message and "environment that starts Jupyter" in message
        assert "%env" not in message and "not in a notebook cell" in message
    # nowhere in the package or its documentation
    for path in [*(ROOT / "vision_magic").rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert "%env" not in path.read_text(), f"{path} suggests %env"


def test_redact_knows_every_secret_read(monkeypatch):
    from vision_magic.engine.config import VisionMagic
    from vision_magic.engine.endpoints import api_key, endpoint_for, resolve_base_url
    from vision_magic.errors import redact

    monkeypatch.setenv("MY_SERVER_KEY", SERVER_KEY)
    # named by a configured endpoint: redacted even before the key is used
    endpoint = endpoint_for(
        "http://127.0.0.1:1/v1",
        {"mine": {"base_url": "http://127.0.0.1:1/v1", "api_key_env": "MY_SERVER_KEY"}},
    )
    assert redact(f"bad key {SERVER_KEY}") == "bad key ***"
    assert api_key(endpoint) == SERVER_KEY
    monkeypatch.delenv("MY_SERVER_KEY")  # a key read once stays secret after the variable is gone
    assert redact(f"bad key {SERVER_KEY}") == "bad key ***"
    cases = {
        f"http://me:{PASSWORD}@host:8000/v1/chat": "http://***@host:8000/v1/chat",
        f"https://{URL_TOKEN}@github.example/x": "https://***@github.example/x",
        f"http://me:p@ss{PASSWORD}@host/v1": "http://***@host/v1",  # an unescaped @ in the password
        f"u.png?Access_Token={URL_TOKEN}&api-key={URL_SIG}&APIKEY=1&Secret=2&password=3&sig=4&x=5#top": (
            "u.png?Access_Token=***&api-key=***&APIKEY=***&Secret=***&password=***&sig=***&x=5#top"
        ),
        f"<a href='u.png?signature={URL_SIG}&amp;key={URL_TOKEN}'>": "<a href='u.png?signature=***&amp;key=***'>",
        "data:image/png;base64,QUJDRA==": "data:image/png;base64,QUJDRA==",
        "https://example.org/a.png?width=300&height=200": "https://example.org/a.png?width=300&height=200",
    }
    for text, shown in cases.items():
        assert redact(text) == shown
        assert redact(shown) == shown  # idempotent
    # a password read from the base URL is redacted on its own too
    resolve_base_url(VisionMagic(base_url=f"http://me:{PASSWORD}@host/v1"))
    assert redact(f"wrong password {PASSWORD}") == "wrong password ***"


def test_replay_rows_hold_no_url_secrets(openai_env, cfg, red, monkeypatch, tmp_path):
    from vision_magic import cache

    monkeypatch.setattr(cfg, "endpoints", {"fetcher": {"base_url": openai_env.base_url, "fetch_urls": True}})
    url = signed_url(f"http://vmuser:{PASSWORD}@images.example")
    openai_env.reply = (
        "Two images."  # not the default echo of the prompt: the model's text is stored as it is
    )
    vision_magic.ask(f"secrets: which is bigger, {url} or this?", url, red, display=False)
    assert cache.export(tmp_path / "rows.jsonl") == 1
    rows = (tmp_path / "rows.jsonl").read_text()
    assert "http://***@images.example/cat.png?w=64&token=***" in rows  # the prompt column, redacted
    assert_no_key(rows, "exported replay rows")


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


def test_saved_notebook_keeps_no_url_password_endpoint_key_or_signed_url(openai_env, red, monkeypatch):
    """A real kernel, its environment holding every kind of secret (the cells name none of them); the saved
    notebook shows each error line, redacted."""
    import nbformat
    from nbclient import NotebookClient

    server = openai_env
    port = closed_port()
    for name, value in {
        "PYTHONPATH": str(ROOT),
        "OPENAI_BASE_URL": f"http://vmuser:{PASSWORD}@127.0.0.1:{port}/v1",
        "MY_SERVER_KEY": SERVER_KEY,
        "VM_SIGNED_URL": signed_url(f"http://127.0.0.1:{closed_port()}"),
    }.items():
        monkeypatch.setenv(name, value)
    endpoints = {"mine": {"base_url": server.base_url, "api_key_env": "MY_SERVER_KEY"}}
    sources = [
        "%load_ext vision_magic\n%config VisionMagic.max_retries = 0",
        f"%%ask_image {red.name}\nsecrets: notebook unreachable server",
        "%config VisionMagic",
        'import os, vision_magic\nvision_magic.ask("secrets: notebook signed URL", os.environ["VM_SIGNED_URL"])',
        f'%config VisionMagic.base_url = "{server.base_url}"\n%config VisionMagic.endpoints = {endpoints!r}',
        f"%%ask_image {red.name}\nsecrets: notebook endpoint key echo",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(red.parent)}},
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if "endpoint key echo" in cell.source:
                server.add_fault("status", status=401, message=f"Invalid key {SERVER_KEY} for this server")
            client.execute_cell(cell, index)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert [e["ename"] for e in errors] == ["APIError", "SourceErrors", "APIError"]
    assert f"Could not reach http://***@127.0.0.1:{port}/v1" in errors[0]["evalue"]
    assert "cat.png?w=64&token=***&X-Amz-Signature=***&sig=***: downloading" in errors[1]["evalue"]
    assert "answered 401: Invalid key *** for this server" in errors[2]["evalue"]
    assert "base_url=<Unicode>" in nbformat.writes(nb)  # the %config listing is in the notebook too
    assert server.chat_requests[-1].headers.get("authorization") == f"Bearer {SERVER_KEY}"
    assert_no_key(nbformat.writes(nb), "the saved notebook")
