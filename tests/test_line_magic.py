"""Issue 11, item 2: the one-line %ask_image: sources and flags first, then the question, which reaches the
magic intact even when it ends in `?` (IPython reads such a line as a help request otherwise)."""

from __future__ import annotations

import pytest
from PIL import Image

import vision_magic


def question_sent(server) -> str:
    return server.last.body["messages"][-1]["content"][0]["text"]


def test_a_question_ending_in_a_question_mark_reaches_the_magic(shell, openai_env, pics):
    result = shell.run_cell("%ask_image red.png What's the colour here?")
    assert result.error_in_exec is None and result.error_before_exec is None
    assert question_sent(openai_env) == "What's the colour here?"
    assert len(openai_env.last.images) == 1


def test_sources_and_flags_come_first(shell, openai_env, pics):
    shell.user_ns["t_img"] = Image.new("RGB", (20, 20), "green")
    assert shell.run_cell("%ask_image red.png t_img -d low --no-stream Which is greener?").success
    body = openai_env.last.body
    assert question_sent(openai_env) == "Which is greener?"
    assert [p["image_url"]["detail"] for p in body["messages"][-1]["content"][1:]] == ["low", "low"]
    assert "stream" not in body


def test_double_dash_ends_the_sources_when_a_word_could_be_one(shell, openai_env, pics):
    shell.user_ns["t_fig"] = Image.new("RGB", (20, 20), "green")
    assert shell.run_cell("%ask_image red.png -- t_fig or a photo?").success
    assert question_sent(openai_env) == "t_fig or a photo?"
    assert len(openai_env.last.images) == 1


def test_the_line_magic_has_the_cell_magics_options(shell, openai_env, pics):
    assert shell.run_cell("%ask_image red.png blue.png --dry-run Compare?").success
    assert openai_env.chat_requests == []
    answer = vision_magic.last_answer
    assert answer.dry_run and answer.prompt == "Compare?" and len(answer.images) == 2
    assert shell.run_cell("%ask_image red.png --out t_answer Red?").success
    assert shell.user_ns["t_answer"].text and question_sent(openai_env) == "Red?"


def test_no_question_asks_the_default_one(shell, openai_env, pics):
    assert shell.run_cell("%ask_image red.png").success
    assert question_sent(openai_env) == "Describe this image."


def test_the_help_still_works(shell, capsys):
    shell.run_cell("%ask_image?")
    # IPython's pager prints the help in a terminal shell
    assert "Ask a vision model about images" in capsys.readouterr().out


def test_a_line_magic_inside_code_and_an_indented_one(shell, openai_env, pics):
    cell = "for t_name in ['red.png']:\n    %ask_image red.png --no-stream Is it red?\nt_done = True"
    assert shell.run_cell(cell).success
    assert shell.user_ns["t_done"] and question_sent(openai_env) == "Is it red?"


@pytest.mark.parametrize(
    ("line", "missing"),
    [
        ("%ask_image missing.png -- What is it?", "missing.png"),
        # an image file name is a source even when it is misspelt: reported, not asked about
        ("%ask_image rde.png What colour is it?", "rde.png"),
    ],
)
def test_a_missing_source_is_one_line(shell, openai_env, pics, capsys, line, missing):
    result = shell.run_cell(line)
    assert result.error_in_exec is not None
    out = capsys.readouterr()
    assert f"{missing}: file not found" in out.out + out.err
    assert openai_env.chat_requests == []


def test_replay_from_on_one_line(shell, pics, capsys):
    result = shell.run_cell("%ask_image --replay-from no-such-lesson.ipynb")
    assert result.error_in_exec is not None
    out = capsys.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.strip()]
    assert len(lines) == 1 and "no-such-lesson.ipynb" in lines[0], lines
    result = shell.run_cell("%ask_image --replay-from lesson.ipynb What is this?")
    assert "asks nothing" in str(result.error_in_exec)
