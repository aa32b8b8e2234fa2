"""Issue 5, conversations and structured answers: --continue sends earlier turns (images included), --chat
keeps threads apart, --new starts over; vision_magic.chat(name); --json and schema= in ask()."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

import vision_magic
from vision_magic.engine.session import current


@pytest.fixture(autouse=True)
def isolated(replay_cache):
    current().chats.clear()
    yield
    current().chats.clear()


def roles(body) -> list[str]:
    return [m["role"] for m in body["messages"]]


def n_images(message) -> int:
    content = message["content"]
    return sum(1 for p in content if p.get("type") == "image_url") if isinstance(content, list) else 0


def test_continue_sends_the_earlier_turns_with_their_images(shell, openai_env, pics):
    server = openai_env
    server.reply = lambda body: f"turn {len([m for m in body['messages'] if m['role'] == 'user'])}"
    assert shell.run_cell("%%ask_image red.png --system Brief.\nWhat colour?").error_in_exec is None
    assert shell.run_cell("%%ask_image --continue --system Brief.\nAnd the shade?").error_in_exec is None
    body = server.last.body
    assert roles(body) == ["system", "user", "assistant", "user"]
    assert n_images(body["messages"][1]) == 1, "the first turn's image is sent again"
    assert body["messages"][1]["content"][0]["text"] == "What colour?"
    assert body["messages"][2] == {"role": "assistant", "content": "turn 1"}
    assert body["messages"][3]["content"] == [{"type": "text", "text": "And the shade?"}], "no new image"
    thread = vision_magic.chat()
    assert len(thread.answers) == 2 and [a.text for a in thread.answers] == ["turn 1", "turn 2"]

    assert shell.run_cell("%%ask_image blue.png --new\nStart over.").error_in_exec is None
    assert roles(server.last.body) == ["user"] and len(vision_magic.chat().answers) == 1
    assert shell.run_cell("%%ask_image blue.png\nPlain question.").error_in_exec is None
    assert roles(server.last.body) == ["user"], "a plain question starts the default thread over"


def test_named_threads_are_kept_apart(shell, openai_env, pics):
    server = openai_env
    assert shell.run_cell("%%ask_image red.png --chat reds\nRed?").error_in_exec is None
    assert shell.run_cell("%%ask_image blue.png --chat blues\nBlue?").error_in_exec is None
    assert shell.run_cell("%%ask_image --chat reds\nMore red?").error_in_exec is None
    body = server.last.body
    assert roles(body) == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][0]["text"] == "Red?"
    assert len(vision_magic.chat("reds").answers) == 2 and len(vision_magic.chat("blues").answers) == 1
    assert shell.run_cell("%%ask_image --chat reds --new red.png\nFresh.").error_in_exec is None
    assert roles(server.last.body) == ["user"]


def test_chat_object_usage_cost_and_markdown(openai_env, pics):
    thread = vision_magic.chat("figs")
    a = thread.ask("First?", "red.png", display=False)
    b = thread.ask("Second?", display=False)
    assert thread is vision_magic.chat("figs")
    assert thread.usage["prompt_tokens"] == a.usage["prompt_tokens"] + b.usage["prompt_tokens"]
    assert thread.usage["completion_tokens"] == a.tokens_out + b.tokens_out
    assert thread.cost == pytest.approx(a.cost + b.cost)
    assert b.usage["prompt_tokens"] > a.usage["prompt_tokens"], "the follow-up carried the history"
    md = thread.to_markdown()
    assert md.startswith("## figs")
    assert "**You:** *(1 image)* First?" in md and "**You:** Second?" in md
    assert md.count("**gpt-4o:**") == 2
    assert "base64" not in md and "base64" not in repr(thread)
    assert repr(thread).startswith("<Chat 'figs': 2 turn(s)")


def test_follow_ups_replay_from_the_cache_on_a_rerun(openai_env, pics):
    server = openai_env
    for _ in range(2):
        thread = vision_magic.chat("rerun")
        thread.reset()
        thread.ask("One?", "red.png", display=False)
        last = thread.ask("Two?", display=False)
    assert len(server.chat_requests) == 2 and last.replayed


def test_dry_run_is_not_added_to_the_thread(openai_env, pics):
    thread = vision_magic.chat("dry")
    thread.ask("Dry?", "red.png", display=False, dry_run=True)
    assert thread.messages == [] and openai_env.chat_requests == []


def test_json_flag_parses_into_answer_data(shell, openai_env, pics):
    server = openai_env
    server.reply = json.dumps({"colour": "red", "count": 1})
    r = shell.run_cell("%%ask_image red.png --json --out t_json\nWhat colour?")
    assert r.error_in_exec is None, r.error_in_exec
    assert shell.user_ns["t_json"].data == {"colour": "red", "count": 1}
    body = server.last.body
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][-1]["content"][0]["text"] == "What colour?\n\nAnswer with a JSON object."


class Colour(BaseModel):
    name: str
    hex: str


def test_schema_in_ask_gives_a_pydantic_object(openai_env, pics):
    server = openai_env
    server.reply = '```json\n{"name": "red", "hex": "#ff0000"}\n```'
    answer = vision_magic.ask("Colour?", "red.png", schema=Colour, display=False)
    assert answer.data == Colour(name="red", hex="#ff0000")
    spec = server.last.body["response_format"]["json_schema"]
    assert spec["name"] == "Colour" and spec.get("strict") is True
    assert spec["schema"]["additionalProperties"] is False
    replay = vision_magic.ask("Colour?", "red.png", schema=Colour, display=False)
    assert replay.replayed and replay.data == answer.data


def test_schema_as_a_dict_and_an_answer_that_does_not_fit(openai_env, pics):
    server = openai_env
    server.reply = json.dumps({"name": 3})
    schema = {"title": "Thing", "type": "object", "properties": {"name": {"type": "string"}}}
    answer = vision_magic.ask("Thing?", "red.png", schema=schema, display=False)
    assert answer.data == {"name": 3}, "a dict schema is parsed, not validated, on the client"
    assert server.last.body["response_format"]["json_schema"] == {"name": "Thing", "schema": schema}
    server.reply = json.dumps({"name": 3, "hex": None})
    bad = vision_magic.ask("Colour? v2", "red.png", schema=Colour, display=False)
    assert bad.data is None and "does not fit Colour" in bad.error
