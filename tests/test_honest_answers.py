"""Issue 10, honest answers and displays: refusals, content filters and empty replies are shown for what they
are and never cached; a failed question leaves one line and no empty box; a proxy that is not the API is
named; every wait has a total deadline and the line says what was tried; Answers render as Markdown;
file:// URLs work; library warnings stay out of cells; a request with very many images is flagged first."""

from __future__ import annotations

import logging
import time
import warnings

import pytest
from PIL import Image

import vision_magic
from vision_magic.engine.session import current, settings
from vision_magic.errors import APIError, VisionMagicError

FAST = {"Retry-After": "0.01"}


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """The active settings with a private cache, restored after the test."""
    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    c = settings()
    names = ("timeout", "max_retries", "deadline", "stream", "cache", "cache_path")
    saved = {n: getattr(c, n) for n in names}
    c.cache, c.cache_path = True, ""
    yield c
    for n, v in saved.items():
        setattr(c, n, v)
    vision_magic.cache.close()


@pytest.fixture
def red(shell):
    shell.user_ns["t_red"] = Image.new("RGB", (32, 32), (255, 0, 0))
    return shell.user_ns["t_red"]


def printed(capsys) -> list[str]:
    out = capsys.readouterr()
    return [ln for ln in (out.out + out.err).splitlines() if ln.strip()]


def answer_displays(shell) -> list[dict]:
    return [b for b in shell.displays.bundles if "text/markdown" in b]


# -- refusals, content filters, empty replies --------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_a_refusal_is_shown_as_the_models_words_and_not_cached(openai_env, shell, cfg, red, stream):
    server = openai_env
    server.refusal = "I can't help with identifying people in images."
    cfg.stream = stream
    for _ in range(2):
        assert shell.run_cell("%%ask_image t_red\nWho is this?").error_in_exec is None
    answer = vision_magic.last_answer
    assert answer.refusal == server.refusal and answer.text == ""
    assert answer.error == "the model refused to answer" and not answer.replayed
    shown = shell.displays.last()["text/markdown"]
    assert "**Refused:**" in shown and "> I can't help with identifying people" in shown
    assert "⚠ the model refused to answer" in shown and "returned no text" not in shown
    assert len(server.chat_requests) == 2, "a refusal was replayed from the cache"


@pytest.mark.parametrize("stream", [True, False])
def test_a_content_filter_says_so_and_is_not_cached(openai_env, shell, cfg, red, stream):
    server = openai_env
    server.finish_reason = "content_filter"
    server.reply = "Partly"
    cfg.stream = stream
    for _ in range(2):
        assert shell.run_cell("%%ask_image t_red\nDescribe.").error_in_exec is None
    answer = vision_magic.last_answer
    assert answer.incomplete and answer.finish_reason == "content_filter"
    assert "content filter withheld" in answer.error
    assert "content filter withheld" in shell.displays.last()["text/markdown"]
    assert len(server.chat_requests) == 2


@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_with_no_choices_is_marked_and_not_cached(openai_env, shell, cfg, red, stream):
    server = openai_env
    server.no_choices = True
    cfg.stream = stream
    for _ in range(2):
        assert shell.run_cell("%%ask_image t_red\nDescribe.").error_in_exec is None
    answer = vision_magic.last_answer
    assert answer.incomplete and answer.error and not answer.replayed
    assert "⚠ incomplete" in shell.displays.last()["text/markdown"]
    assert len(server.chat_requests) == 2


# -- a failed question: one line, no empty box, Answer.error set ----------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_an_error_before_any_text_leaves_one_line_and_no_box(openai_env, shell, cfg, red, capsys, stream):
    server = openai_env
    cfg.stream = stream
    server.add_fault("status", status=400, message="Image too small (test).")
    result = shell.run_cell("%%ask_image t_red\nDescribe.")
    assert isinstance(result.error_in_exec, APIError)
    lines = printed(capsys)
    assert len(lines) == 1 and "Image too small" in lines[0], lines
    visible = [b for b in answer_displays(shell) if b["text/markdown"].strip()]
    if visible:  # a streamed question drew its placeholder only after the request was accepted
        pytest.fail(f"an answer box is left behind: {visible[-1]}")
    answer = vision_magic.last_answer
    assert answer.error and "Image too small" in answer.error and answer.incomplete


def test_a_missing_key_sets_the_answer_error(shell, red, monkeypatch, cfg):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    result = shell.run_cell("%%ask_image t_red\nDescribe.")
    assert isinstance(result.error_in_exec, VisionMagicError)
    assert "No API key" in vision_magic.last_answer.error
    assert not answer_displays(shell)


@pytest.mark.parametrize("stream", [True, False])
def test_a_proxy_that_is_not_the_api_is_named(openai_env, shell, cfg, red, capsys, stream):
    server = openai_env
    cfg.stream = stream
    server.add_fault("html", status=200, body="Welcome to the proxy", content_type="text/plain")
    result = shell.run_cell("%%ask_image t_red\nDescribe.")
    assert isinstance(result.error_in_exec, APIError)
    [line] = printed(capsys)
    assert "instead of a chat completion" in line and "Welcome to the proxy" in line and "/v1" in line
    assert "AttributeError" not in line


# -- bounded time -----------------------------------------------------------------------------------------


def test_a_hanging_server_is_bounded_by_the_deadline_and_the_line_says_what_was_tried(openai_env, cfg, red):
    server = openai_env
    cfg.timeout, cfg.max_retries, cfg.deadline, cfg.stream = 1.0, 5, 2.5, False
    server.add_fault("hang", seconds=30, times=10)
    t0 = time.monotonic()
    with pytest.raises(APIError) as info:
        vision_magic.ask("Describe.", red, display=False)
    took = time.monotonic() - t0
    assert took < 6, f"the question took {took:.1f} s with a 2.5 s deadline"
    line = str(info.value)
    assert "No answer" in line and "retr" in line and "2.5 s deadline" in line, line
    assert 2 <= len(server.chat_requests) <= 4


def test_retries_are_named_in_the_line(openai_env, cfg, red):
    server = openai_env
    cfg.max_retries = 2
    server.add_fault("status", status=503, times=5, headers=FAST)
    with pytest.raises(APIError, match=r"answered 503.*\(after 2 retries in \d+ s\)"):
        vision_magic.ask("Describe.", red, display=False)
    assert len(server.chat_requests) == 3


def test_a_slow_stream_is_cut_at_the_deadline_and_keeps_its_text(openai_env, shell, cfg, red):
    server = openai_env
    server.reply = "word " * 200
    server.chunk_size, server.chunk_delay = 5, 0.05  # ~10 s of streaming
    cfg.deadline = 1.5
    t0 = time.monotonic()
    assert shell.run_cell("%%ask_image t_red\nDescribe.").error_in_exec is None
    assert time.monotonic() - t0 < 5
    answer = vision_magic.last_answer
    assert answer.incomplete and "1.5 s deadline" in answer.error and answer.text.startswith("word")
    assert "1.5 s deadline" in shell.displays.last()["text/markdown"]


# -- displays -----------------------------------------------------------------------------------------------


def test_an_answer_as_a_cells_value_renders_as_markdown_once(openai_env, shell, cfg, red):
    openai_env.reply = "A **red** square."
    # the cell that drew the answer: as its value the answer would only repeat itself
    cell = "import vision_magic\nt_answer = vision_magic.ask('Colour?', t_red)\nt_same = t_answer._repr_markdown_()"
    assert shell.run_cell(cell).success
    assert shell.user_ns["t_same"] is None
    # any later cell: the answer renders as Markdown (with its footer), not as a repr with raw **
    assert shell.run_cell("t_later = t_answer._repr_markdown_()").success
    later = shell.user_ns["t_later"]
    assert later.startswith("A **red** square.") and "<sub>gpt-4o" in later
    assert vision_magic.Answer(text="*x*", model="m")._repr_markdown_().startswith("*x*")


def test_file_urls_are_read_as_local_files(tmp_path):
    path = tmp_path / "my plot.png"
    Image.new("RGB", (20, 10), "blue").save(path)
    parts = vision_magic.content_parts(path.as_uri())
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(VisionMagicError, match="another host"):
        vision_magic.content_parts("file://server/share/a.png")


def test_a_zero_size_figure_is_one_line_and_no_warnings(shell, capsys):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 0))
    shell.user_ns["t_fig"] = fig
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = shell.run_cell("%%ask_image t_fig --dry-run\nDescribe.")
    plt.close(fig)
    assert isinstance(result.error_in_exec, VisionMagicError)
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []
    [line] = printed(capsys)
    assert "no area" in line and "set_size_inches" in line


# -- many images --------------------------------------------------------------------------------------------


def test_very_many_images_in_one_request_are_flagged_before_sending(openai_env, shell, cfg, tmp_path, caplog):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        Image.new("RGB", (16, 16), (i * 4, 0, 0)).save(folder / f"{i:02d}.png")
    with caplog.at_level(logging.WARNING, logger="vision_magic"):
        result = shell.run_cell(f"%%ask_image {folder} --no-stream\nAny outliers?")
    assert result.error_in_exec is None
    [record] = [r for r in caplog.records if r.name.startswith("vision_magic")]
    line = record.getMessage()
    assert "60 images go in one request" in line and "--each" in line and "\n" not in line
    assert len(openai_env.chat_requests) == 1, "a warning does not stop the question"


def test_a_warning_is_one_line_on_stderr_in_a_fresh_process(tmp_path):
    """Without any logging set up (as in a kernel), the line is all that is printed."""
    import subprocess
    import sys

    code = "from vision_magic.errors import warn; warn('60 images go in one request: use --each')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr == "60 images go in one request: use --each\n"


def test_more_images_than_the_server_takes_are_refused_before_sending(openai_env, cfg, tmp_path):
    server = openai_env
    cfg.endpoints = {"small": {"base_url": server.base_url, "max_images": 3}}
    try:
        for i in range(4):
            Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
        with pytest.raises(
            VisionMagicError, match=r"4 images in one request, but small takes at most 3.*--each"
        ):
            vision_magic.ask("Compare.", str(tmp_path), display=False)
        assert server.chat_requests == []
    finally:
        cfg.endpoints = {}


def test_the_session_remembers_the_failed_answer(openai_env, cfg, red):
    openai_env.add_fault("status", status=401)
    with pytest.raises(APIError):
        vision_magic.ask("Describe.", red, display=False)
    assert current().last_answer.error.startswith("The server answered 401")
