"""The ask panel driven through its widgets' own API (``.value``, ``.click()``, the upload widget's value)
against the suite's OpenAI-compatible test server; and annotate()."""

from __future__ import annotations

import datetime
import html
import io
import threading
import time
import uuid

import matplotlib
import pytest
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vision_magic.engine.config import VisionMagic
from vision_magic.engine.session import current, settings  # noqa: E402
from vision_magic.frontends.panel import AskPanel, ask_panel  # noqa: E402


@pytest.fixture
def env(openai_env, monkeypatch, tmp_path):
    """The test server, fresh settings, no remembered image, no open figure, a private cache dir."""
    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    session = current()
    old = session.settings
    session.settings = VisionMagic()
    session.last_shown = None
    plt.close("all")
    yield openai_env
    plt.close("all")
    session.settings = old


def _png(color: str = "red", size: tuple[int, int] = (200, 100)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _markdown(panel: AskPanel) -> str:
    (out,) = panel.output.outputs
    return out["data"]["text/markdown"]


def _status(panel: AskPanel) -> str:
    return html.unescape(panel.status.value)


def _prompt(panel: AskPanel) -> str:
    panel.prompt.value = f"Which colour? {uuid.uuid4().hex[:8]}"  # a fresh prompt: never a cache hit
    return panel.prompt.value


def _wait_until(condition, what: str, limit: float = 30.0) -> None:
    """Poll for a state change of the background request (a wait, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


def test_panel_shows_thumbnails_and_a_live_token_estimate(env):
    from vision_magic.images.profiles import image_tokens, profile_for

    gpt4o = profile_for("gpt-4o")
    high, low = image_tokens(200, 100, gpt4o, "high"), image_tokens(200, 100, gpt4o, "low")
    assert high > low
    panel = ask_panel(Image.new("RGB", (200, 100), "red"), _png("blue"), model="gpt-4o", detail="high")
    assert isinstance(panel, AskPanel)
    assert len(panel.thumbnails.children) == 2
    assert panel.image_tokens == 2 * high
    assert f"2 images · ~{2 * high} image tokens" in panel.estimate.value
    assert "$" in panel.estimate.value  # gpt-4o has prices
    panel.detail.value = "low"
    assert panel.image_tokens == 2 * low
    assert f"~{2 * low} image tokens" in panel.estimate.value
    # the same numbers as vision_magic.estimate() for the same images, prompt, model and detail
    import vision_magic

    panel.prompt.value = "How many squares?"
    expected = vision_magic.estimate(
        Image.new("RGB", (200, 100), "red"),
        _png("blue"),
        model="gpt-4o",
        detail="low",
        prompt="How many squares?",
    )
    assert panel.current_estimate().input_tokens == expected.input_tokens
    assert f"~{expected.input_tokens} tokens in" in panel.estimate.value
    panel.model.value = "llava:13b"  # unknown to the table: no price
    assert "$" not in panel.estimate.value
    panel.remove_source(0)
    assert len(panel.sources) == 1 and len(panel.thumbnails.children) == 1
    assert "1 image · ~" in panel.estimate.value


def test_ask_streams_the_answer_into_the_panel_as_markdown(env):
    server = env
    server.chunk_delay = 0.02
    panel = ask_panel(_png(), detail="low")
    prompt = _prompt(panel)
    panel.ask_button.click()
    assert panel.ask_button.disabled  # while the answer streams
    assert not panel.stop_button.disabled
    panel.wait(60)
    md = _markdown(panel)
    assert "**Answer** from gpt-4o: I see 1 image(s)." in md
    assert f"You asked: {prompt}" in md
    assert "$E = mc^2$" in md  # math delimiters made renderable, as in the magic
    assert "tokens in" in md  # the footer
    assert not panel.ask_button.disabled and panel.stop_button.disabled
    assert _status(panel) == ""
    body = server.last.body
    assert body["messages"][-1]["content"][0]["text"] == prompt
    assert body["messages"][-1]["content"][1]["image_url"]["detail"] == "low"
    assert body["stream"] is True
    assert panel.answer.text.startswith("**Answer**") and not panel.answer.incomplete


def test_stop_ends_the_stream_and_keeps_what_arrived(env):
    server = env
    long_reply = "**Start** " + " ".join(f"word{i}" for i in range(400))
    server.reply = long_reply
    server.chunk_size = 5
    server.chunk_delay = 0.02
    panel = ask_panel(_png())
    _prompt(panel)
    panel.ask_button.click()
    _wait_until(lambda: "word3" in panel.answer.text, "some text to arrive")
    panel.stop_button.click()
    shown = _markdown(panel)
    assert not panel.ask_button.disabled and panel.stop_button.disabled
    assert "incomplete: stopped" in shown
    kept = shown.split("\n\n<sub>")[0]
    assert kept.startswith("**Start** word0") and long_reply.startswith(kept)
    assert len(kept) < len(long_reply)
    panel.wait(60)
    assert _markdown(panel) == shown  # the request's thread drew nothing over it afterwards
    assert panel.answer.incomplete and panel.answer.error == "stopped"
    assert panel.answer.text == kept  # the answer holds exactly what the panel shows


NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def test_upload_adds_images_and_reports_a_bad_file_in_one_line(env):
    panel = ask_panel()
    assert "add an image first" in panel.estimate.value
    panel.upload.value = (
        {
            "name": "cat.png",
            "type": "image/png",
            "size": 10,
            "content": memoryview(_png()),
            "last_modified": NOW,
        },
        {
            "name": "notes.txt",
            "type": "text/plain",
            "size": 5,
            "content": memoryview(b"hello"),
            "last_modified": NOW,
        },
    )
    assert [label for label, _ in panel.sources] == ["cat.png"]
    assert "notes.txt" in _status(panel) and "not an image" in _status(panel)
    assert "\n" not in _status(panel)
    assert len(panel.thumbnails.children) == 1
    assert "1 image" in panel.estimate.value


@pytest.fixture
def image_site(tmp_path):
    """A plain HTTP server on 127.0.0.1 serving one PNG; counts the downloads."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "chart.png").write_bytes(_png("green", (300, 200)))
    hits = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path / "site"))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_url_field_adds_an_image_by_url(env, image_site):
    server = env
    site, hits = image_site
    url = f"{site}/chart.png"
    panel = ask_panel()
    panel.url.value = url
    panel.add_url.click()
    assert _status(panel) == ""
    assert panel.sources == [(url, url)]
    assert panel.url.value == ""
    assert len(panel.thumbnails.children) == 1
    panel.prompt.value = "What colour?"  # redraws reuse the downloaded image
    assert len(hits) == 1
    _prompt(panel)
    panel.ask(wait=True)
    # the test server is not OpenAI, so the image was downloaded here and sent inline
    assert server.last.images[0]["mime"] in ("image/png", "image/webp")  # graphics: lossless
    panel.url.value = f"{site}/missing.png"
    panel.add_url.click()
    assert "404" in _status(panel)
    panel.url.value = "no/such/file.png"
    panel.add_url.click()
    assert "file not found" in _status(panel)
    assert len(panel.sources) == 1


def test_a_directory_source_shows_one_thumbnail_per_image(env, tmp_path):
    from vision_magic.images.profiles import image_tokens, profile_for

    for name, color in (("a.png", "red"), ("b.png", "blue")):
        (tmp_path / name).write_bytes(_png(color))
    panel = ask_panel(str(tmp_path), detail="low")
    assert len(panel.sources) == 1
    assert len(panel.thumbnails.children) == 2
    assert panel.image_tokens == 2 * image_tokens(200, 100, profile_for("gpt-4o"), "low")


def test_current_figure_button(env):
    server = env
    panel = ask_panel()
    panel.figure_button.click()
    assert "no open figure" in _status(panel) and not panel.sources
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    panel.figure_button.click()
    assert [label for label, _ in panel.sources] == ["current figure"]
    assert _status(panel) == ""
    _prompt(panel)
    panel.ask(wait=True)
    assert server.last.images[0]["mime"] in ("image/png", "image/webp")  # graphics: lossless


def test_errors_show_in_the_panel_as_one_line(env):
    server = env
    settings().max_retries = 0
    server.add_fault("status", status=500, message="the GPU caught fire")
    panel = ask_panel(_png())
    _prompt(panel)
    panel.ask(wait=True)
    assert "The server answered 500" in _status(panel)
    assert "the GPU caught fire" in _status(panel)
    assert "Traceback" not in _status(panel)
    assert panel.output.outputs == ()  # no leftover "waiting" line
    assert not panel.ask_button.disabled and panel.stop_button.disabled


def test_missing_key_error_in_the_panel_never_shows_a_key(env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    panel = ask_panel(_png())
    panel.ask_button.click()
    panel.wait(60)
    assert "No API key" in _status(panel)
    assert not panel.ask_button.disabled


def test_ask_without_images_and_bad_detail(env):
    server = env
    panel = ask_panel()
    panel.ask_button.click()
    assert "add an image first" in _status(panel)
    panel.add_source(_png())
    panel.detail.value = "original"  # gpt-4o has no "original" detail
    assert "detail 'original' is not available for gpt-4o" in _status(panel)
    panel.ask_button.click()
    assert "not available" in _status(panel)
    assert server.chat_requests == []


def test_dry_run_shows_what_would_be_sent(env):
    server = env
    settings().dry_run = True
    panel = ask_panel(_png())
    answer = panel.ask()
    assert answer.dry_run
    (out,) = panel.output.outputs
    assert "Dry run: nothing was sent" in out["data"]["text/plain"]
    assert "<table>" in out["data"]["text/html"]
    assert server.chat_requests == []


def test_ask_is_ignored_while_streaming(env):
    server = env
    gate = threading.Event()
    server.reply = lambda body: (gate.wait(30), "done")[1]
    panel = ask_panel(_png())
    _prompt(panel)
    panel.ask_button.click()
    assert panel.ask_button.disabled
    assert panel.ask() is None  # a second Ask while one streams does nothing
    gate.set()
    panel.wait(60)
    assert len(server.chat_requests) == 1
    assert "done" in _markdown(panel)


# -- annotate -----------------------------------------------------------------------------------------


def _museum_figure():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [10, 20, 15], label="North")
    ax.plot([1, 2, 3], [5, 8, 30], label="South")
    ax.set_title("Visitors")
    ax.set_xlabel("month")
    ax.set_ylabel("people")
    ax.set_ylim(0, 40)
    ax.legend()
    return fig, ax


def test_annotate_sends_the_figure_with_its_facts_and_returns_the_text(env):
    from vision_magic import annotate

    server = env
    fig, ax = _museum_figure()
    text = annotate(ax, display=False, detail="low")
    assert text.startswith("**Answer** from gpt-4o: I see 1 image(s).")
    prompt = server.last.body["messages"][-1]["content"][0]["text"]
    assert prompt.startswith("Write a concise caption")
    assert "title 'Visitors'" in prompt
    assert "x label 'month'" in prompt and "y label 'people'" in prompt
    assert "y from 0 to 40" in prompt
    assert "legend: 'North', 'South'" in prompt
    assert server.last.images[0]["mime"] in ("image/png", "image/webp")  # graphics: lossless
    assert server.last.body["messages"][-1]["content"][1]["image_url"]["detail"] == "low"


def test_annotate_kinds_and_own_prompt(env):
    from vision_magic import annotate

    server = env
    fig, _ = _museum_figure()
    annotate(fig, kind="alt", display=False)
    assert server.last.body["messages"][-1]["content"][0]["text"].startswith("Write alt text")
    annotate(fig, "Just say hi.", display=False)
    assert server.last.body["messages"][-1]["content"][0]["text"] == "Just say hi."
    with pytest.raises(ValueError, match="kind must be one of caption, alt, interpret"):
        annotate(fig, kind="poem", display=False)


def test_annotate_displays_figure_then_answer(env):
    from hardening_helpers import get_shell

    from vision_magic import annotate

    shell = get_shell()  # the suite's one shell (a second InteractiveShell class would clash with it)
    published = []
    original = shell.display_pub.publish
    shell.display_pub.publish = lambda data, *a, **k: published.append(data)
    try:
        fig, _ = _museum_figure()
        annotate(fig)
    finally:
        shell.display_pub.publish = original
    assert "image/png" in published[0]
    assert "**Answer** from" in published[-1]["text/markdown"]


def test_annotate_without_a_figure(env):
    from vision_magic import VisionMagicError, annotate

    with pytest.raises(VisionMagicError, match="no open matplotlib figure"):
        annotate(display=False)
