"""Switchable behaviours that copy real OpenAI-compatible servers, and named presets of them.

Each switch is a setting of :class:`~fake_openai.server.OpenAIServer` (``reset()`` restores it):

  done                 False: a stream ends without ``data: [DONE]`` (some proxies and older servers)
  usage_on_finish      True: the usage rides on the finish chunk, no separate usage chunk (llama.cpp, LiteLLM)
  usage_chunk_choices  True: the usage chunk carries a non-empty ``choices`` (vLLM with continuous usage, some
                       proxies) instead of ``choices: []``
  detail               "honoured" (default), "ignored" (the server records the image ``detail`` as None: it
                       never sees it), or "rejected" (a strict pydantic server: a FastAPI 422 for the field)
  response_format      "honoured" (default: without a ``reply`` setting a JSON request gets a JSON answer),
                       "ignored" (plain text whatever was asked: transformers serve, LiteLLM's mock), or
                       "json_object_rejected" (LM Studio's 400 for ``{"type": "json_object"}``; json_schema
                       is honoured)
  webp_rejected        True: a WEBP data URL is a 400 with llama.cpp's "Failed to load image or audio file"
  error_shape          how every error is written: "openai" (default), "fastapi" (``{"detail": "..."}``),
                       "fastapi_list" (``{"detail": [{"loc": [...], "msg": ...}]}``), "litellm" (OpenAI's
                       shape whose message is a Python dict repr), "text" (text/plain), "html" (an HTML page)
  unknown_model        None (default: any model answers), or 404 / 400 / 500: a model not in ``models`` gets
                       that status with a body naming it, as OpenAI/Ollama/vLLM (404), LiteLLM and pinned
                       servers (400), or an unpinned transformers serve (500) answer
  body_limit           None, or the most request bytes taken: more is nginx's HTML 413 page
  owned_by             the ``owned_by`` of every ``/v1/models`` entry (vLLM says "vllm", llama.cpp "llamacpp")
  sse_content_type     the Content-Type of a stream (default ``text/event-stream; charset=utf-8``; some
                       proxies relabel it, e.g. ``application/json``)

:data:`PRESETS` names the combination of one server (``OpenAIServer(behaviour="llamacpp")`` or
``server.behave("llamacpp")``).
"""

from __future__ import annotations

import html
import json
from typing import Any

BEHAVIOUR_DEFAULTS: dict[str, Any] = {
    "done": True,
    "usage_on_finish": False,
    "usage_chunk_choices": False,
    "detail": "honoured",
    "response_format": "honoured",
    "webp_rejected": False,
    "error_shape": "openai",
    "unknown_model": None,
    "body_limit": None,
    "sse_content_type": "text/event-stream; charset=utf-8",
    "owned_by": "vision-magic-tests",
}

DETAIL_MODES = ("honoured", "ignored", "rejected")
RESPONSE_FORMAT_MODES = ("honoured", "ignored", "json_object_rejected")
ERROR_SHAPES = ("openai", "fastapi", "fastapi_list", "litellm", "text", "html")
UNKNOWN_MODEL_STATUSES = (None, 400, 404, 500)

# The servers the presets copy; every preset also serves only ``models`` (unknown ones get an error).
PRESETS: dict[str, dict[str, Any]] = {
    "openai": {"unknown_model": 404},
    "ollama": {"unknown_model": 404, "detail": "ignored"},
    "vllm": {"unknown_model": 404, "detail": "ignored", "usage_chunk_choices": True, "owned_by": "vllm"},
    "lmstudio": {"unknown_model": 404, "response_format": "json_object_rejected", "webp_rejected": True},
    "llamacpp": {"webp_rejected": True, "usage_on_finish": True, "detail": "ignored", "owned_by": "llamacpp"},
    "litellm": {
        "unknown_model": 400,
        "error_shape": "litellm",
        "response_format": "ignored",
        "usage_on_finish": True,
    },
    "transformers": {
        "unknown_model": 500,
        "error_shape": "fastapi",
        "response_format": "ignored",
        "detail": "rejected",
        "done": False,
    },
    "nginx_1mb": {"body_limit": 1024 * 1024, "error_shape": "html"},
}

LLAMACPP_IMAGE_ERROR = "Failed to load image or audio file"
LMSTUDIO_JSON_OBJECT_ERROR = "'response_format.type' must be 'json_schema' or 'text'"

NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx/1.27.0</center>\r\n</body>\r\n</html>\r\n"
)


def check_setting(name: str, value: Any) -> None:
    """Refuse a value a switch does not know (a typo would silently test the default)."""
    allowed = {
        "detail": DETAIL_MODES,
        "response_format": RESPONSE_FORMAT_MODES,
        "error_shape": ERROR_SHAPES,
        "unknown_model": UNKNOWN_MODEL_STATUSES,
    }.get(name)
    if allowed is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}")


def preset(name: str) -> dict[str, Any]:
    """The settings of preset ``name`` (every switch, defaults filled in)."""
    if name not in PRESETS:
        raise ValueError(f"unknown behaviour {name!r}; expected one of {sorted(PRESETS)}")
    return {**BEHAVIOUR_DEFAULTS, **PRESETS[name]}


def unknown_model_message(status: int, model: str) -> str:
    """What a server that does not know ``model`` says, by the status it answers with."""
    if status == 404:
        return f"The model `{model}` does not exist or you do not have access to it."
    if status == 400:
        return (
            f"/chat/completions: Invalid model name passed in model={model}. Call `/v1/models` to view "
            "available models for your key."
        )
    return (
        f"{model} is not a local folder and is not a valid model identifier listed on "
        "'https://huggingface.co/models'"
    )


def shaped_error(
    shape: str, status: int, body: dict, reason: str, loc: list | None = None
) -> tuple[bytes, str]:
    """``(payload, content type)`` of the OpenAI error ``body`` written the way ``shape`` servers write it."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    message = str(error.get("message", ""))
    if shape == "fastapi":
        return json.dumps({"detail": message}).encode(), "application/json"
    if shape == "fastapi_list":
        item = {"type": "value_error", "loc": loc or ["body"], "msg": message, "input": None}
        return json.dumps({"detail": [item]}).encode(), "application/json"
    if shape == "litellm":
        inner = {"error": message}
        wrapped = {"message": repr(inner), "type": "None", "param": "None", "code": str(status)}
        return json.dumps({"error": wrapped}).encode(), "application/json"
    if shape == "text":
        return f"{reason}: {message}".encode(), "text/plain; charset=utf-8"
    if shape == "html":
        page = NGINX_PAGE.format(status=status, reason=html.escape(reason))
        return page.encode(), "text/html"
    return json.dumps(body).encode(), "application/json"


def json_answer(text: str) -> str:
    """The default answer to a JSON request of a server that honours ``response_format``."""
    return json.dumps({"answer": text})
