"""Issue 13, every OpenAI-compatible server: the core cases against each behaviour of the test server that
copies one (fake_openai.behaviours), error lines whatever the error's shape, unknown models recognised and not
retried, 413 advice from its cause, server facts as data (formats, JSON mode, token field), --models, --schema.

Everything runs against the real fake_openai HTTP server on 127.0.0.1; each test asks with cache=False (or its
own prompt) so a stored answer never hides what the server did.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel

import vision_magic
from fake_openai import PRESETS, usage_for
from vision_magic.engine.endpoints import endpoint_for
from vision_magic.engine.send import error_message, is_unknown_model
from vision_magic.engine.server_models import forget_offered
from vision_magic.engine.session import settings
from vision_magic.errors import APIError

# The %config VisionMagic.server that goes with each preset of the test server ("auto": none needed)
SERVER_FOR = {
    "openai": "openai",
    "ollama": "ollama",
    "vllm": "vllm",
    "lmstudio": "lmstudio",
    "llamacpp": "llamacpp",
    "litellm": "litellm",
    "transformers": "transformers",
    "nginx_1mb": "auto",
}
OFFERED = ["llava:7b", "qwen2.5vl:7b", "llama3:8b"]


@pytest.fixture(autouse=True)
def cfg():
    """The settings these tests change, restored; no model list remembered from another test."""
    c = settings()
    names = ("server", "endpoints", "max_retries", "stream", "model", "base_url", "api")
    saved = {n: getattr(c, n) for n in names}
    c.max_retries = 2
    forget_offered()
    yield c
    for n, v in saved.items():
        setattr(c, n, v)
    forget_offered()


@pytest.fixture(params=sorted(PRESETS))
def preset(request, openai_env, cfg):
    """The test server behaving like one server, and ``%config VisionMagic.server`` set for it."""
    openai_env.behave(request.param)
    cfg.server = SERVER_FOR[request.param]
    return request.param


def test_every_preset_has_a_server_row():
    assert set(SERVER_FOR) == set(PRESETS)


def red_png() -> Image.Image:
    return Image.new("RGB", (48, 32), (220, 20, 20))


def webp_named_png(tmp_path) -> str:
    """A WEBP file whose name says PNG: the format must be judged by the bytes."""
    path = tmp_path / "looks-like.png"
    Image.new("RGB", (64, 48), (20, 200, 20)).save(path, "WEBP")
    assert path.read_bytes()[8:12] == b"WEBP"
    return str(path)


def expected_usage(server, text: str) -> dict:
    """The usage the test server reports for its last request and the answer ``text``."""
    usage = usage_for(server.last.body, text)
    return {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def chats(server) -> list:
    return server.chat_requests


def model_lists(server) -> list:
    return [r for r in server.requests if r.path.endswith("/models")]


# -- the core cases against each server the test server copies ---------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_core_answer(openai_env, preset, stream):
    server = openai_env
    answer = vision_magic.ask("What colour?", red_png(), display=False, cache=False, stream=stream)
    assert answer.error is None and not answer.incomplete, answer.error
    assert answer.text.startswith("**Answer** from gpt-4o: I see 1 image(s).")
    assert answer.usage == expected_usage(server, answer.text)
    body = server.last.body
    assert body["messages"][-1]["content"][1]["type"] == "image_url"
    image_url = body["messages"][-1]["content"][1]["image_url"]
    assert ("detail" in image_url) == endpoint_for(server.base_url, server=SERVER_FOR[preset]).detail


def test_core_webp_file_goes_in_a_format_the_server_takes(openai_env, preset, tmp_path):
    server = openai_env
    answer = vision_magic.ask("What colour?", webp_named_png(tmp_path), display=False, cache=False)
    assert answer.error is None, answer.error
    sent = server.last.images[0]["mime"]
    takes_webp = "webp" in endpoint_for(server.base_url, server=SERVER_FOR[preset]).formats
    assert sent == ("image/webp" if takes_webp else "image/png")
    assert answer.images[0].mime == sent


def test_core_json_gives_data_or_says_what_to_try(openai_env, preset):
    server = openai_env
    answer = vision_magic.ask("What colour?", red_png(), display=False, cache=False, json_mode=True)
    body = server.last.body
    mode = endpoint_for(server.base_url, server=SERVER_FOR[preset]).json_mode
    expected_format = {
        "json_object": {"type": "json_object"},
        "json_schema": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}},
        },
        "none": None,
    }[mode]
    assert body.get("response_format") == expected_format
    assert "JSON" in body["messages"][-1]["content"][0]["text"]
    if server.response_format != "ignored":
        assert answer.data == {"answer": json.loads(answer.text)["answer"]} and answer.error is None
    else:
        assert answer.data is None
        assert "not valid JSON" in answer.error and "describe the JSON you want" in answer.error
        assert "not valid JSON" in answer.footer(), "the footer says it, not only Answer.error"


def test_core_unknown_model_names_the_offered_ones_and_is_not_retried(openai_env, preset):
    server = openai_env
    server.models = list(OFFERED)
    if server.unknown_model is None:  # llama.cpp answers whatever model is asked for
        assert vision_magic.ask("Colour?", red_png(), display=False, cache=False).error is None
        return
    with pytest.raises(APIError) as err:
        vision_magic.ask("Colour?", red_png(), display=False, cache=False)
    line = str(err.value)
    assert "\n" not in line and err.value.kind == "unknown_model"
    assert "gpt-4o" in line.split(";")[0], "the server's own words name the model"
    assert (
        "; gpt-4o is the default, for OpenAI's API; the server offers llava:7b, qwen2.5vl:7b, llama3:8b"
        in line
    )
    assert line.endswith(
        'pick one with %config VisionMagic.model = "llava:7b", -m llava:7b or VISION_MAGIC_MODEL=llava:7b'
    )
    assert len(chats(server)) == 1, "an unknown model is never retried, even as a 500"
    with pytest.raises(APIError):
        vision_magic.ask("Colour? again", red_png(), display=False, cache=False)
    assert len(model_lists(server)) == 1, "the model list is fetched once"


def test_core_error_line_reads_naturally(openai_env, preset):
    server = openai_env
    server.add_fault("status", status=400, message="The image is too dark to read.")
    with pytest.raises(APIError) as err:
        vision_magic.ask("Colour?", red_png(), display=False, cache=False)
    line = str(err.value)
    assert "\n" not in line and "{" not in line and "<" not in line
    if server.error_shape == "html":
        assert line.startswith("The server answered 400: an HTML error page (400 Bad Request)")
    else:
        assert "The image is too dark to read." in line and line.startswith("The server answered 400:")


# -- each behaviour switch on its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    "switch",
    [{"done": False}, {"usage_on_finish": True}, {"usage_chunk_choices": True}, {"detail": "ignored"}],
)
def test_stream_shapes_still_give_the_whole_answer_and_its_usage(openai_env, switch):
    server = openai_env
    for name, value in switch.items():
        setattr(server, name, value)
    answer = vision_magic.ask("Shapes?", red_png(), display=False, cache=False)
    assert answer.error is None and not answer.incomplete
    assert answer.text.endswith("A formula: \\(E = mc^2\\)")
    assert answer.usage == expected_usage(server, answer.text)


@pytest.mark.parametrize(
    "shape, expected",
    [
        ("openai", "The server answered 400: Not a chart. (the server refused the request)"),
        ("fastapi", "The server answered 400: Not a chart. (the server refused the request)"),
        ("fastapi_list", "The server answered 400: Not a chart. (the server refused the request)"),
        ("litellm", "The server answered 400: Not a chart. (the server refused the request)"),
        ("text", "The server answered 400: Bad Request: Not a chart. (the server refused the request)"),
        (
            "html",
            "The server answered 400: an HTML error page (400 Bad Request) (the server refused the request)",
        ),
    ],
)
def test_error_shapes_read_as_one_natural_line(openai_env, shape, expected):
    server = openai_env
    server.error_shape = shape
    server.unknown_model = 400
    server.models = ["gpt-4o"]
    server.add_fault("status", status=400, message="Not a chart.")
    with pytest.raises(APIError) as err:
        vision_magic.ask("Shape?", red_png(), display=False, cache=False)
    assert str(err.value) == expected


def test_fastapi_validation_list_names_the_field(openai_env, cfg):
    server = openai_env
    server.detail = "rejected"  # a strict server, while the generic row keeps detail
    server.error_shape = "fastapi_list"
    with pytest.raises(APIError) as err:
        vision_magic.ask("Strict?", red_png(), display=False, cache=False)
    assert str(err.value) == (
        "The server answered 422: messages.0.content.1.image_url.detail: Extra inputs are not permitted "
        "(the server refused the request)"
    )
    cfg.server = "transformers"  # its row leaves detail out
    assert vision_magic.ask("Strict?", red_png(), display=False, cache=False).error is None


@pytest.mark.parametrize(
    "body, text, expected",
    [
        ({"message": "x", "type": "invalid_request_error"}, "", "x"),
        ({"detail": "Model not loaded"}, "", "Model not loaded"),
        (
            {"detail": [{"loc": ["body", "messages", 0], "msg": "bad"}, {"loc": ["query"], "msg": "worse"}]},
            "",
            "messages.0: bad; worse",
        ),
        ({"message": "{'error': {'message': 'deep'}}", "code": "400"}, "", "deep"),
        ("upstream connect error", "upstream connect error", "upstream connect error"),
        (
            None,
            "<!DOCTYPE html><html><head><title>503 Service Unavailable</title>",
            "an HTML error page (503 Service Unavailable)",
        ),
        ({"message": "{'error': not python"}, "", "{'error': not python"),
    ],
)
def test_error_message_of_every_shape(body, text, expected):
    assert error_message(body, text)[0] == expected


@pytest.mark.parametrize(
    "status, message, expected",
    [
        (404, "model 'llava' not found, try pulling it first", True),  # Ollama
        (404, "The model `llava` does not exist.", True),  # vLLM
        (400, "/chat/completions: Invalid model name passed in model=llava.", True),  # LiteLLM
        (500, "llava is not a local folder and is not a valid model identifier", True),  # transformers
        (500, "CUDA out of memory while loading llava", False),
        (400, "Invalid image: llava cannot read GIF", False),
        (400, "Image input is not supported for model llava", False),
        (404, "Invalid URL (POST /v2/chat/completions)", False),
    ],
)
def test_unknown_model_is_recognised_from_what_servers_say(status, message, expected):
    assert is_unknown_model(status, message, None, "llava") is expected


def test_unknown_model_500_is_not_retried_and_a_real_500_is(openai_env):
    server = openai_env
    server.unknown_model = 500
    server.models = ["qwen2.5vl:7b"]
    with pytest.raises(
        APIError, match=r"^The server answered 500: gpt-4o is not a local folder.*offers qwen2.5vl:7b:"
    ):
        vision_magic.ask("Five hundred?", red_png(), display=False, cache=False)
    assert len(chats(server)) == 1
    server.add_fault("status", status=500, times=3, headers={"Retry-After": "0.01"})
    with pytest.raises(APIError, match="after 2 retries"):
        vision_magic.ask("Five hundred?", red_png(), display=False, cache=False, model="qwen2.5vl:7b")
    assert len(chats(server)) == 4


def test_unknown_model_when_the_server_lists_no_models(openai_env):
    server = openai_env
    server.unknown_model = 404
    server.models = []
    with pytest.raises(APIError) as err:
        vision_magic.ask("None?", red_png(), display=False, cache=False, model="llava")
    assert str(err.value) == (
        "The server answered 404: The model `llava` does not exist or you do not have access to it; 'llava' is not "
        "offered here: pick a model the server has with -m, %config VisionMagic.model = ... or VISION_MAGIC_MODEL"
    )


def test_json_object_rejected_by_lmstudio_and_its_row_sends_json_schema(openai_env, cfg):
    server = openai_env
    server.response_format = "json_object_rejected"
    with pytest.raises(APIError) as err:
        vision_magic.ask("Json?", red_png(), display=False, cache=False, json_mode=True)
    assert str(err.value) == (
        "The server answered 400: 'response_format.type' must be 'json_schema' or 'text' (this server takes "
        'another JSON mode than json_object: give it "json_mode": "json_schema" in %config VisionMagic.endpoints '
        "(or %config VisionMagic.server, see docs/servers.md))"
    )
    cfg.server = "lmstudio"
    answer = vision_magic.ask("Json?", red_png(), display=False, cache=False, json_mode=True)
    assert answer.data is not None and server.last.body["response_format"]["type"] == "json_schema"


def test_webp_rejected_like_llamacpp_unless_reencoded(openai_env, cfg, tmp_path):
    server = openai_env
    server.webp_rejected = True
    path = webp_named_png(tmp_path)
    cfg.endpoints = {"mine": {"base_url": server.base_url, "webp": True}}
    with pytest.raises(APIError) as err:
        vision_magic.ask("Webp?", path, display=False, cache=False)
    assert str(err.value) == (
        "The server answered 400: Failed to load image or audio file (this server may not decode image/webp: "
        'give it "formats": ["png", "jpeg"] in %config VisionMagic.endpoints (or %config VisionMagic.server, '
        "see docs/servers.md))"
    )
    cfg.endpoints = {}
    answer = vision_magic.ask("Webp?", path, display=False, cache=False)
    assert answer.error is None and server.last.images[0]["mime"] == "image/png"
    cfg.endpoints = {"mine": {"base_url": server.base_url, "formats": ["jpeg"]}}
    photo = vision_magic.ask("Webp as jpeg?", path, display=False, cache=False)
    assert server.last.images[0]["mime"] == "image/jpeg" and photo.images[0].mime == "image/jpeg"


# -- 413: advice that matches the cause ----------------------------------------------------------------


def noise(size: int) -> Image.Image:
    rng = np.random.default_rng(size)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB")


def test_413_from_no_resize_says_drop_no_resize(openai_env):
    server = openai_env
    server.behave("nginx_1mb")
    with pytest.raises(APIError) as err:
        vision_magic.ask("Big?", noise(1400), display=False, cache=False, resize=False)
    line = str(err.value)
    assert line.startswith("The server answered 413: an HTML error page (413 Request Entity Too Large)")
    assert "at full size because of --no-resize: drop --no-resize" in line
    assert len(chats(server)) == 1, "a 413 is not retried"
    answer = vision_magic.ask("Big?", noise(1400), display=False, cache=False)  # resized, it fits
    assert answer.error is None


def test_413_with_many_images_says_fewer(openai_env):
    server = openai_env
    server.body_limit = 200_000
    with pytest.raises(
        APIError, match=r"in 4 images: ask about fewer at a time \(--each\), or use --detail low"
    ):
        vision_magic.ask("Many?", *[noise(400 + i) for i in range(4)], display=False, cache=False)


def test_413_with_one_image_says_detail_low(openai_env):
    server = openai_env
    server.body_limit = 100_000
    with pytest.raises(APIError, match=r"of images: use --detail low, or a smaller image"):
        vision_magic.ask("One?", noise(700), display=False, cache=False)


# -- bad answers: one line each, partial answer kept -----------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    "fault, expected",
    [
        (
            {"status": 200, "body": "this is not json", "content_type": "application/json"},
            "malformed|instead of",
        ),
        (
            {"status": 200, "body": "", "content_type": "application/json"},
            "malformed|no answer|instead of|empty",
        ),
        ({"status": 502}, r"502: an HTML error page \(502 Bad Gateway\)"),
    ],
)
def test_bad_answers_are_one_line(openai_env, cfg, stream, fault, expected):
    server = openai_env
    cfg.max_retries = 0
    server.add_fault("html", **fault)
    with pytest.raises(APIError) as err:
        vision_magic.ask("Bad?", red_png(), display=False, cache=False, stream=stream)
    line = str(err.value)
    assert "\n" not in line and "Traceback" not in line and "<" not in line
    assert re.search(expected, line), line


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_events_labelled_as_json_are_still_read_as_events(openai_env, cfg, api):
    server = openai_env
    server.sse_content_type = "application/json"
    cfg.api = api
    answer = vision_magic.ask("Label?", red_png(), display=False, cache=False)
    assert answer.error is None and not answer.incomplete, answer.error
    assert answer.text.endswith("A formula: \\(E = mc^2\\)") and answer.usage is not None


def test_non_json_mid_stream_keeps_the_partial_answer(openai_env):
    server = openai_env
    server.reply = "One two three four five six seven eight nine ten eleven twelve."
    server.add_fault("malformed", after=3)
    answer = vision_magic.ask("Partial?", red_png(), display=False, cache=False)
    assert answer.incomplete and answer.text == "One two three four five "
    assert answer.error and "\n" not in answer.error


# -- server facts, profiles and detection ------------------------------------------------------------


def test_server_rows_detection_and_overrides(openai_env, cfg):
    assert endpoint_for("http://localhost:11434/v1").server == "ollama"
    assert endpoint_for("http://localhost:1234/v1").json_mode == "json_schema"
    assert endpoint_for("http://gpu:8000/v1").server == "generic", "port 8000 is vLLM's and transformers'"
    assert endpoint_for("https://api.openai.com/v1").formats == ["png", "jpeg", "webp", "gif"]
    assert endpoint_for("http://x/v1", server="transformers").json_mode == "none"
    own = endpoint_for("http://x/v1", {"e": {"base_url": "http://x/v1", "server": "ollama", "detail": True}})
    assert own.server == "ollama" and own.detail is True and own.webp is True
    with pytest.raises(vision_magic.VisionMagicError, match="json_mode 'yaml'"):
        endpoint_for("http://x/v1", {"e": {"base_url": "http://x/v1", "json_mode": "yaml"}})
    from traitlets import TraitError

    with pytest.raises(TraitError):
        cfg.server = "tgi"


def test_token_field_follows_the_server_row(openai_env, cfg):
    server = openai_env
    vision_magic.ask("Tokens?", red_png(), display=False, cache=False, max_tokens=50)
    assert server.last.body["max_tokens"] == 50
    cfg.server = "openai"
    vision_magic.ask("Tokens?", red_png(), display=False, cache=False, max_tokens=50)
    assert server.last.body["max_completion_tokens"] == 50 and "max_tokens" not in server.last.body
    cfg.server = "auto"
    cfg.endpoints = {"e": {"base_url": server.base_url, "token_param": "max_completion_tokens"}}
    vision_magic.ask("Tokens?", red_png(), display=False, cache=False, max_tokens=50)
    assert server.last.body["max_completion_tokens"] == 50


class Colour(BaseModel):
    name: str


def test_schema_on_a_server_without_json_mode_goes_in_the_prompt_and_is_validated(openai_env, cfg):
    server = openai_env
    cfg.server = "transformers"
    server.reply = '{"name": "red"}'
    answer = vision_magic.ask("Colour?", red_png(), display=False, cache=False, schema=Colour)
    assert answer.data == Colour(name="red")
    body = server.last.body
    assert "response_format" not in body
    assert "fits this JSON Schema" in body["messages"][-1]["content"][0]["text"]
    server.reply = '{"colour": "red"}'
    bad = vision_magic.ask("Colour?", red_png(), display=False, cache=False, schema=Colour)
    assert bad.data is None and "does not fit Colour" in bad.error


# -- --models, models(), --schema on the line ------------------------------------------------------------


def test_models_lists_the_server_models_marking_vision_ones(openai_env):
    server = openai_env
    server.models = ["llama3:8b", "qwen2.5vl:7b", "gpt-4o-mini"]
    listed = vision_magic.models()
    assert [(m.id, m.vision) for m in listed] == [
        ("llama3:8b", False),
        ("qwen2.5vl:7b", True),
        ("gpt-4o-mini", True),
    ]


def test_magic_models_flag(shell, openai_env):
    server = openai_env
    server.models = ["llama3:8b", "llava:13b"]
    result = shell.run_cell("%ask_image --models")
    assert result.error_in_exec is None, result.error_in_exec
    bundle = shell.displays.last()
    assert bundle["text/plain"] == "llama3:8b\nllava:13b  (images)"
    assert '%config VisionMagic.model = "llava:13b"' in bundle["text/markdown"]
    assert chats(server) == [], "--models asks nothing"
    assert "says this is a" not in bundle["text/markdown"]
    server.owned_by = "vllm"
    result = shell.run_cell("%ask_image --models")
    assert result.error_in_exec is None, result.error_in_exec
    assert shell.displays.last()["text/plain"].endswith(
        'The model list says this is a vllm server: %config VisionMagic.server = "vllm" applies its facts.'
    )
    shell.run_line_magic("config", 'VisionMagic.server = "vllm"')
    shell.run_cell("%ask_image --models")
    assert "says this is a" not in shell.displays.last()["text/plain"], "no tip once the row is in force"


def test_magic_schema_flag_and_json_footer(shell, openai_env, pics):
    server = openai_env
    server.reply = '{"name": "red"}'
    shell.user_ns["Colour"] = Colour
    result = shell.run_cell("%%ask_image red.png --schema Colour --out t_schema --no-cache\nWhich colour?")
    assert result.error_in_exec is None, result.error_in_exec
    assert shell.user_ns["t_schema"].data == Colour(name="red")
    assert server.last.body["response_format"]["json_schema"]["name"] == "Colour"
    server.reply = "Red, I think."
    result = shell.run_cell("%%ask_image red.png --json --no-cache\nWhich colour, as JSON?")
    assert result.error_in_exec is None
    footer = shell.displays.last()["text/markdown"]
    assert "⚠ the answer is not valid JSON" in footer and "describe the JSON you want" in footer
    result = shell.run_cell("%%ask_image red.png --schema Nope\nWhich colour?")
    assert "--schema Nope: no such variable" in str(result.error_in_exec)


def test_webp_reencoding_happens_in_a_dry_run_too(openai_env, tmp_path):
    answer = vision_magic.ask("Dry?", webp_named_png(tmp_path), display=False, dry_run=True)
    assert answer.images[0].mime == "image/png"
    assert answer.request["messages"][-1]["content"][1]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )


def test_png_bytes_are_not_touched_by_the_format_check(openai_env, tmp_path):
    buf = io.BytesIO()
    red_png().save(buf, "PNG")
    answer = vision_magic.ask("Png?", buf.getvalue(), display=False, dry_run=True)
    assert answer.images[0].mime == "image/png"


# -- docs/servers.md: every recipe runs against the test server behaving like its server ------------------

RECIPES = {  # heading in docs/servers.md -> (preset of the test server, key variable the recipe names)
    "Ollama": ("ollama", None),
    "vLLM": ("vllm", "VLLM_KEY"),
    "LM Studio": ("lmstudio", None),
    "llama.cpp server": ("llamacpp", None),
    "LiteLLM proxy": ("litellm", "LITELLM_KEY"),
    "transformers serve": ("transformers", None),
    "Azure OpenAI": ("openai", "AZURE_OPENAI_API_KEY"),
}


def recipes() -> dict[str, str]:
    """The ```python block under each ``###`` heading of docs/servers.md's Recipes section."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "servers.md").read_text(encoding="utf-8")
    section = text.split("## Recipes", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^### (.+?)\n.*?```python\n(.*?)```", section, re.S | re.M))


def test_every_recipe_is_tested():
    assert set(recipes()) == set(RECIPES)


@pytest.mark.parametrize("heading", sorted(RECIPES))
def test_recipe_works_against_its_server(shell, openai_env, pics, tmp_path, monkeypatch, heading):
    server = openai_env
    preset, key_env = RECIPES[heading]
    block = recipes()[heading]
    url = re.search(r'VisionMagic\.base_url = "([^"]+)"', block).group(1)
    model = re.search(r'VisionMagic\.model = "([^"]+)"', block).group(1)
    server.behave(preset)
    server.models = [model, "some-text-model"]
    if key_env:
        monkeypatch.setenv(key_env, "sk-recipe-0123456789")
    result = shell.run_cell(block.replace(url, server.base_url))
    assert result.error_in_exec is None, result.error_in_exec
    assert settings().model == model

    result = shell.run_cell("%%ask_image red.png --no-cache --out t_recipe\nWhat colour?")
    assert result.error_in_exec is None, result.error_in_exec
    answer = shell.user_ns["t_recipe"]
    assert answer.error is None and answer.text.startswith(f"**Answer** from {model}")
    assert server.last.body["model"] == model
    if key_env:
        assert server.last.headers["authorization"] == "Bearer sk-recipe-0123456789"

    Image.new("RGB", (64, 48), (20, 200, 20)).save(tmp_path / "green.png", "WEBP")  # WEBP bytes, .png name
    result = shell.run_cell("%%ask_image green.png --no-cache --json --out t_recipe\nWhat colour?")
    assert result.error_in_exec is None, result.error_in_exec
    answer = shell.user_ns["t_recipe"]
    assert server.last.images[0]["mime"] in ("image/png", "image/webp")
    assert answer.data is not None or "not valid JSON" in shell.displays.last()["text/markdown"]

    result = shell.run_cell("%%ask_image red.png --no-cache -m not-a-model\nWhat colour?")
    if server.unknown_model is not None:
        assert f'%config VisionMagic.model = "{model}"' in str(result.error_in_exec)
    else:  # llama.cpp answers whatever model is named
        assert result.error_in_exec is None


def test_ask_many_rows_say_which_models_the_server_offers(openai_env, folder):
    server = openai_env
    server.behave("litellm")
    server.models = ["llava"]
    table = vision_magic.ask_many("Colour?", str(folder), progress=False, cache=False, concurrency=3)
    assert len(chats(server)) == len(table), "one request per row: an unknown model is not retried"
    assert all('pick one with %config VisionMagic.model = "llava"' in e for e in table["error"])
    assert len(model_lists(server)) == 1, "the model list is fetched once for the whole batch"


def raw_stream(server) -> list:
    """The ``data:`` payloads of one streamed chat answer, as the test server wrote them."""
    import httpx

    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=10).text
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def test_the_stream_switches_change_what_the_server_writes(openai_env):
    server = openai_env
    plain = raw_stream(server)
    assert plain[-1] == "[DONE]" and json.loads(plain[-2])["choices"] == []
    server.done = False
    assert "[DONE]" not in raw_stream(server)
    server.done, server.usage_chunk_choices = True, True
    last = json.loads(raw_stream(server)[-2])
    assert last["usage"] and last["choices"] == [
        {"index": 0, "delta": {"content": ""}, "finish_reason": None}
    ]
    server.usage_chunk_choices, server.usage_on_finish = False, True
    last = json.loads(raw_stream(server)[-2])
    assert last["usage"] and last["choices"][0]["finish_reason"] == "stop"
