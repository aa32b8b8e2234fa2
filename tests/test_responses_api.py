"""Issue 13, the Responses API: ``%config VisionMagic.api = "responses"`` sends input_text/input_image parts to
/v1/responses, streamed with usage, and everything else (cache, conversations, batches, metadata, errors) works
as with Chat Completions. The test server checks each body against the published ``CreateResponse`` schema."""

from __future__ import annotations

import pytest
from PIL import Image

import vision_magic
from fake_openai import find_schema_dir
from fake_openai.request_body import chat_view, usage_for
from fake_openai.schema import responses_request_errors
from vision_magic.engine.server_models import forget_offered
from vision_magic.engine.session import settings
from vision_magic.errors import APIError


@pytest.fixture(autouse=True)
def responses_api():
    cfg = settings()
    saved = (cfg.api, cfg.max_retries)
    cfg.api = "responses"
    forget_offered()
    yield cfg
    cfg.api, cfg.max_retries = saved
    forget_offered()


def red() -> Image.Image:
    return Image.new("RGB", (40, 30), (230, 10, 10))


@pytest.mark.parametrize("stream", [True, False])
def test_a_question_goes_to_responses_with_input_parts_and_usage(openai_env, stream):
    server = openai_env
    answer = vision_magic.ask(
        "Which colour?", red(), display=False, cache=False, stream=stream, system="Be brief.", max_tokens=60
    )
    request = server.requests[-1]
    assert request.path == "/v1/responses" and request.is_responses
    body = request.body
    assert body["instructions"] == "Be brief." and body["max_output_tokens"] == 60 and body["store"] is False
    [message] = body["input"]
    assert message["role"] == "user"
    assert message["content"][0] == {"type": "input_text", "text": "Which colour?"}
    image = message["content"][1]
    assert image["type"] == "input_image" and image["image_url"].startswith("data:image/png;base64,")
    assert image["detail"] == "auto"
    assert ("stream" in body) is stream and "stream_options" not in body and "messages" not in body
    assert answer.text.startswith("**Answer** from gpt-4o: I see 1 image(s).")
    usage = usage_for(
        chat_view(body), answer.text
    )  # what the server counted, as Responses input/output tokens
    assert answer.usage == {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert answer.finish_reason == "stop" and not answer.incomplete and answer.cost is not None


def test_json_mode_and_schema_go_in_text_format(openai_env):
    server = openai_env
    answer = vision_magic.ask("Which colour?", red(), display=False, cache=False, json_mode=True)
    assert server.requests[-1].body["text"] == {"format": {"type": "json_object"}}
    assert isinstance(answer.data, dict)
    schema = {"title": "Colour", "type": "object", "properties": {"name": {"type": "string"}}}
    server.reply = '{"name": "red"}'
    answer = vision_magic.ask("Which colour?", red(), display=False, cache=False, schema=schema)
    assert server.requests[-1].body["text"] == {
        "format": {"type": "json_schema", "name": "Colour", "schema": schema}
    }
    assert answer.data == {"name": "red"}


def test_token_limit_and_refusal_read_from_the_response(openai_env):
    server = openai_env
    server.finish_reason = "length"
    cut = vision_magic.ask("Long?", red(), display=False, cache=False)
    assert cut.incomplete and "token limit" in cut.error
    server.finish_reason = "stop"
    server.refusal = "I can't help with that."
    refused = vision_magic.ask("Refuse?", red(), display=False, cache=False, stream=False)
    assert refused.refusal == "I can't help with that." and refused.error == "the model refused to answer"


def test_cache_replays_and_conversations_continue(openai_env, replay_cache):
    server = openai_env
    first = vision_magic.ask("Cached colour?", red(), display=False)
    again = vision_magic.ask("Cached colour?", red(), display=False)
    assert again.replayed and again.text == first.text
    assert len(server.chat_requests) == 1
    thread = vision_magic.chat("responses-thread")
    thread.reset()
    thread.ask("What is this?", red(), display=False, cache=False)
    thread.ask("And its colour?", display=False, cache=False)
    items = server.requests[-1].body["input"]
    assert [i["role"] for i in items] == ["user", "assistant", "user"]
    assert items[1]["content"].startswith("**Answer** from gpt-4o")
    assert items[0]["content"][1]["type"] == "input_image"
    assert items[2]["content"] == [{"type": "input_text", "text": "And its colour?"}]


def test_batches_use_responses(openai_env, folder):
    server = openai_env
    server.reply = lambda body: "ok"
    table = vision_magic.ask_many("Colour?", str(folder), progress=False, cache=False, concurrency=3)
    assert list(table["answer"]) == ["ok"] * len(table)
    assert all(r.path == "/v1/responses" for r in server.chat_requests)
    assert table["tokens"].notna().all()


def test_the_magic_records_metadata_with_responses(shell, openai_env, pics):
    shell.run_line_magic("config", 'VisionMagic.api = "responses"')
    result = shell.run_cell("%%ask_image red.png --no-cache --out t_resp\nWhich colour?")
    assert result.error_in_exec is None, result.error_in_exec
    record = shell.user_ns["t_resp"].record
    answer = shell.user_ns["t_resp"]
    assert record["usage"] == {"input_tokens": answer.tokens_in, "output_tokens": len(answer.text.split())}
    assert record["answer"].startswith("**Answer** from gpt-4o") and record["finish_reason"] == "stop"
    assert openai_env.requests[-1].path == "/v1/responses"
    assert record["api"] == "responses"
    shell.run_line_magic("config", 'VisionMagic.api = "chat"')
    shell.run_cell("%%ask_image red.png --no-cache --out t_chat\nWhich colour?")
    assert shell.user_ns["t_chat"].record["api"] == "chat"
    assert openai_env.requests[-1].path == "/v1/chat/completions"


def test_errors_and_unknown_models_read_the_same(openai_env, responses_api):
    server = openai_env
    responses_api.max_retries = 0
    server.add_fault("status", status=400, message="Image too small.")
    with pytest.raises(APIError, match=r"^The server answered 400: Image too small. \(the server refused"):
        vision_magic.ask("Err?", red(), display=False, cache=False)
    server.behave("litellm")
    server.models = ["llava"]
    with pytest.raises(APIError, match='pick one with %config VisionMagic.model = "llava"'):
        vision_magic.ask("Err?", red(), display=False, cache=False)
    assert len(server.chat_requests) == 2


def test_a_dropped_stream_keeps_what_arrived(openai_env):
    server = openai_env
    server.reply = "Red red red red red red red red."
    server.add_fault("drop", after=2)
    answer = vision_magic.ask("Drop?", red(), display=False, cache=False)
    assert answer.incomplete and answer.text == "Red red red red "
    assert answer.error == "the connection dropped before the answer was complete"


def test_the_server_really_checks_responses_bodies():
    schema_dir = find_schema_dir()
    good = {
        "model": "gpt-4o",
        "input": [
            {
                "role": "user",
                "content": [{"type": "input_image", "image_url": "https://x/a.png", "detail": "low"}],
            }
        ],
    }
    assert responses_request_errors(good, schema_dir) == []
    no_detail = {
        "model": "gpt-4o",
        "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
    }
    assert responses_request_errors(no_detail, schema_dir)
    assert responses_request_errors({**good, "max_output_tokens": "many"}, schema_dir)
    assert responses_request_errors({**good, "input": [{"role": "robot", "content": "hi"}]}, schema_dir)


def test_a_dry_run_shows_the_responses_body_with_base64_elided(shell, openai_env, pics):
    shell.run_line_magic("config", 'VisionMagic.api = "responses"')
    result = shell.run_cell("%%ask_image red.png --dry-run\nWhich colour?")
    assert result.error_in_exec is None, result.error_in_exec
    shown = shell.displays.last()["text/plain"]
    assert '"type": "input_image"' in shown and "base64 chars elided>" in shown and "iVBOR" not in shown
    assert "sent to /v1/responses" in shown
    assert openai_env.requests == [], "a dry run sends nothing"
