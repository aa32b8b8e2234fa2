"""Issue 6, a failing server: transient errors are retried (bounded), the rest end in one line with the status
and the server's message; a broken or interrupted stream keeps what arrived, visible and marked.

Everything runs against the fake_openai test server through ``vision_magic.ask(...)`` and through
``%%ask_image`` in a real InteractiveShell. Each test uses its own prompt so a cached answer can never mask a fault.
"""

from __future__ import annotations

import socket

import pytest
from PIL import Image

import vision_magic
from vision_magic.engine.session import current, settings
from vision_magic.errors import APIError, VisionMagicError

REPLY = "The quick brown fox jumps over the lazy dog. " * 4
FAST = {"Retry-After": "0.01"}  # the SDK honours Retry-After only when > 0


@pytest.fixture
def cfg():
    """The active settings, restored after the test."""
    c = settings()
    saved = {n: getattr(c, n) for n in ("timeout", "max_retries", "render_interval", "stream")}
    yield c
    for n, v in saved.items():
        setattr(c, n, v)


@pytest.fixture
def red():
    return Image.new("RGB", (32, 32), (255, 0, 0))


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text and "<html" not in text.lower()
    return text


def printed_error(capsys) -> str:
    out = capsys.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.strip()]
    assert not any("Traceback" in ln for ln in lines), lines
    [line] = [ln for ln in lines if "Error" in ln]
    return line


# -- transient errors: retried with bounded backoff -------------------------------------------------


def test_429_with_retry_after_is_retried_then_answers(openai_env, red):
    server = openai_env
    server.reply = REPLY
    server.add_fault("status", status=429, headers=FAST)
    answer = vision_magic.ask("faults: 429 then ok", red, display=False)
    assert answer.text == REPLY and not answer.incomplete
    assert len(server.chat_requests) == 2
    assert server.chat_requests[0].status == 429 and server.chat_requests[1].status == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_once_is_retried(openai_env, red, status):
    server = openai_env
    server.reply = REPLY
    server.add_fault("status", status=status, headers=FAST)
    answer = vision_magic.ask(f"faults: {status} once", red, display=False)
    assert answer.text == REPLY
    assert [r.status for r in server.chat_requests] == [status, 200]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
@pytest.mark.parametrize("retries", [0, 2])
def test_persistent_transient_errors_give_up_after_max_retries(openai_env, cfg, red, status, retries):
    server = openai_env
    cfg.max_retries = retries
    server.add_fault("status", status=status, times=10, headers=FAST)
    with pytest.raises(APIError) as info:
        vision_magic.ask(f"faults: {status} always, {retries} retries", red, display=False)
    line = one_line(info.value)
    assert info.value.status == status
    assert f"answered {status}" in line and "(injected by the test server)" in line
    assert len(server.chat_requests) == retries + 1  # bounded by VisionMagic.max_retries


def test_html_error_page_is_one_line_with_its_title(openai_env, cfg, red):
    server = openai_env
    cfg.max_retries = 1
    server.add_fault("html", status=502, times=5, headers=FAST)
    with pytest.raises(APIError) as info:
        vision_magic.ask("faults: html 502", red, display=False)
    line = one_line(info.value)
    assert "502" in line and "HTML error page (502 Bad Gateway)" in line
    assert len(server.chat_requests) == 2


def test_connection_refused(openai_env, cfg, red, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    cfg.max_retries = 1
    with pytest.raises(APIError) as info:
        vision_magic.ask("faults: refused", red, display=False)
    line = one_line(info.value)
    assert f"Could not reach http://127.0.0.1:{port}/v1" in line and "Connection refused" in line
    assert openai_env.chat_requests == []


def test_timeout(openai_env, cfg, red):
    server = openai_env
    cfg.timeout = 0.5
    cfg.max_retries = 0
    server.add_fault("hang", seconds=30)  # reset() at teardown wakes the server thread
    with pytest.raises(APIError) as info:
        vision_magic.ask("faults: timeout", red, display=False)
    line = one_line(info.value)
    assert "No answer from" in line and "VisionMagic.timeout" in line


def test_stream_that_stalls_times_out_in_one_line(openai_env, cfg, red):
    server = openai_env
    server.chunk_delay = 30  # headers and the first (empty) chunk, then silence
    cfg.timeout = 0.5
    cfg.max_retries = 0
    with pytest.raises(APIError) as info:
        vision_magic.ask("faults: stalled stream", red, display=False)
    assert "No answer from" in one_line(info.value)
    assert vision_magic.last_answer.incomplete


# -- errors that are not retried ------------------------------------------------------------------


def test_400_shows_the_api_error_message_and_is_not_retried(openai_env, red):
    server = openai_env
    msg = "Invalid content type. image_url is only supported by certain models."
    server.add_fault("status", status=400, message=msg)
    with pytest.raises(APIError) as info:
        vision_magic.ask("faults: 400", red, display=False)
    line = one_line(info.value)
    assert line.startswith("The server answered 400: " + msg)
    assert info.value.status == 400
    assert len(server.chat_requests) == 1


def test_html_403_is_not_retried(openai_env, red):
    server = openai_env
    server.add_fault("html", status=403)
    with pytest.raises(APIError, match=r"answered 403: an HTML error page \(403 Forbidden\)"):
        vision_magic.ask("faults: html 403", red, display=False)
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("kind", ["drop", "malformed"])
def test_broken_stream_before_any_text_is_one_line(openai_env, red, kind):
    server = openai_env
    server.add_fault(kind, after=0)
    with pytest.raises(APIError) as info:
        vision_magic.ask(f"faults: {kind} before text", red, display=False)
    one_line(info.value)
    assert vision_magic.last_answer.text == "" and vision_magic.last_answer.incomplete


def test_dropped_non_streaming_reply_is_retried(openai_env, red):
    server = openai_env
    server.reply = REPLY
    server.add_fault("drop")
    answer = vision_magic.ask("faults: drop non-streaming once", red, display=False, stream=False)
    assert answer.text == REPLY and len(server.chat_requests) == 2


@pytest.mark.parametrize("kind", ["drop", "malformed"])
def test_broken_non_streaming_reply_is_one_line(openai_env, cfg, red, kind):
    server = openai_env
    cfg.max_retries = 1
    server.add_fault(kind, times=5)
    with pytest.raises(APIError) as info:
        vision_magic.ask(f"faults: {kind} non-streaming", red, display=False, stream=False)
    one_line(info.value)
    assert len(server.chat_requests) <= 2


# -- a stream that breaks off keeps what arrived ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "why"),
    [("drop", "the connection dropped"), ("malformed", "malformed response")],
)
def test_broken_stream_keeps_the_text_visible_and_marked(openai_env, shell, red, kind, why):
    server = openai_env
    server.reply = REPLY
    server.chunk_size = 5
    server.add_fault(kind, after=3)
    answer = vision_magic.ask(f"faults: {kind} mid-stream", red)
    assert answer.text == REPLY[:15]
    assert answer.incomplete and why in answer.error
    assert vision_magic.last_answer is answer
    final = shell.displays.last()
    assert final["text/plain"].startswith(REPLY[:15])
    assert "incomplete" in final["text/plain"] and why in final["text/plain"]
    assert REPLY[:15] in final["text/markdown"] and "incomplete" in final["text/markdown"]
    assert "incomplete" in answer.footer()


def test_magic_dropped_stream_keeps_text_and_out_variable(openai_env, shell, red):
    server = openai_env
    server.reply = REPLY
    server.chunk_size = 4
    server.add_fault("drop", after=2)
    shell.user_ns["t_red"] = red
    result = shell.run_cell("%%ask_image t_red --out t_answer\nfaults: magic drop")
    assert result.error_in_exec is None
    answer = shell.user_ns["t_answer"]
    assert answer.text == REPLY[:8] and answer.incomplete
    assert vision_magic.last_answer is answer
    final = shell.displays.last()
    assert final["text/plain"].startswith(REPLY[:8]) and "incomplete" in final["text/plain"]


@pytest.mark.parametrize(
    ("fault", "kw", "expected"),
    [
        (
            "status",
            {"status": 400, "message": "Image too small (magic 400)."},
            "answered 400: Image too small",
        ),
        ("status", {"status": 503, "times": 5, "headers": FAST}, "answered 503"),
        ("html", {"status": 502, "times": 5, "headers": FAST}, "HTML error page (502 Bad Gateway)"),
        ("drop", {"after": 0}, "Could not reach"),
    ],
)
def test_magic_errors_are_one_printed_line(openai_env, shell, cfg, red, capsys, fault, kw, expected):
    server = openai_env
    cfg.max_retries = 1
    server.add_fault(fault, **kw)
    shell.user_ns["t_red"] = red
    result = shell.run_cell(f"%%ask_image t_red\nfaults: magic {fault} {kw.get('status')}")
    assert isinstance(result.error_in_exec, APIError)
    line = printed_error(capsys)
    assert "APIError" in line and expected in line
    assert server.chat_requests


# -- interrupting the kernel ------------------------------------------------------------------------


def interrupt_after(monkeypatch, calls: int) -> None:
    """Make the streaming display's update raise KeyboardInterrupt on its ``calls``-th call (the stop button
    interrupts whatever Python is doing; the on_text callback is one such point)."""
    from vision_magic.frontends.render import NotebookView as StreamingDisplay

    original = StreamingDisplay.update
    seen = []

    def update(self, text):
        original(self, text)
        seen.append(text)
        if len(seen) == calls:
            raise KeyboardInterrupt

    monkeypatch.setattr(StreamingDisplay, "update", update)


def test_interrupt_keeps_partial_answer(openai_env, shell, red, monkeypatch):
    server = openai_env
    server.reply = REPLY
    server.chunk_size = 6
    interrupt_after(monkeypatch, 3)
    current().last_answer = None
    with pytest.raises(KeyboardInterrupt):
        vision_magic.ask("faults: interrupt ask", red)
    answer = vision_magic.last_answer
    assert answer.text == REPLY[:18]
    assert answer.incomplete and answer.error == "interrupted"
    final = shell.displays.last()
    assert final["text/plain"].startswith(REPLY[:18]) and "interrupted" in final["text/plain"]
    assert "incomplete: interrupted" in final["text/markdown"]


def test_magic_interrupt_ends_cleanly(openai_env, shell, red, monkeypatch, capsys):
    from vision_magic.frontends.render import NotebookView as StreamingDisplay

    server = openai_env
    server.reply = REPLY
    server.chunk_size = 6
    original = StreamingDisplay.update
    interrupt_after(monkeypatch, 2)
    current().last_answer = None
    shell.user_ns["t_red"] = red
    result = shell.run_cell("%%ask_image t_red --out t_partial\nfaults: magic interrupt")
    assert isinstance(result.error_in_exec, VisionMagicError)
    line = printed_error(capsys)
    assert "Interrupted" in line and "last_answer" in line
    answer = vision_magic.last_answer
    assert answer.text == REPLY[:12] and answer.incomplete and answer.error == "interrupted"
    assert shell.user_ns["t_partial"] is answer
    final = shell.displays.last()
    assert final["text/plain"].startswith(REPLY[:12]) and "interrupted" in final["text/plain"]
    # the shell is still usable, and the next question goes through
    monkeypatch.setattr(StreamingDisplay, "update", original)
    result = shell.run_cell("%%ask_image t_red\nfaults: after the interrupt")
    assert result.error_in_exec is None
    assert vision_magic.last_answer.text == REPLY and not vision_magic.last_answer.incomplete


def test_stop_button_in_a_real_kernel(openai_env, tmp_path):
    """SIGINT to a real ipykernel mid-stream (what the notebook's stop button does): the cell ends with one
    line, the partial answer stays displayed and marked, and the kernel keeps working."""
    import os

    from kernel_helpers import Kernel, errors_of

    server = openai_env
    server.reply = REPLY * 5
    server.chunk_size = 4
    server.chunk_delay = 0.05  # ~10 s of streaming: the interrupt lands mid-stream
    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "blue.png")
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": os.environ["OPENAI_API_KEY"]}
    with Kernel(tmp_path, env) as kernel:
        kernel.run("%load_ext vision_magic\n%config VisionMagic.render_interval = 0.0")
        interrupted = []

        def interrupt_once_text_arrived(msg):
            data = msg["content"].get("data", {})
            if not interrupted and REPLY[:8] in data.get("text/plain", ""):
                interrupted.append(True)
                kernel.interrupt()

        msgs = kernel.run("%%ask_image blue.png\nfaults: kernel stop button", interrupt_once_text_arrived)
        assert interrupted
        errors = errors_of(msgs)
        assert len(errors) == 1 and errors[0]["ename"] == "VisionMagicError"
        assert len(errors[0]["traceback"]) == 1 and "Interrupted" in errors[0]["traceback"][0]
        shown = [
            m["content"]["data"] for m in msgs if m["msg_type"] in ("display_data", "update_display_data")
        ]
        final = shown[-1]["text/plain"]
        assert final.startswith(REPLY[:8]) and "interrupted" in final
        assert len(final) < len(REPLY * 5)
        out = kernel.printed(
            "import vision_magic; a = vision_magic.last_answer; print(a.incomplete, a.error, len(a.text))"
        )
        incomplete, error, n = out.split()
        assert incomplete == "True" and error == "interrupted" and 8 <= int(n) < len(REPLY * 5)
