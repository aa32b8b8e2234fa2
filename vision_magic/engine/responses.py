"""The Responses API (``%config VisionMagic.api = "responses"``): the request body made from the Chat
Completions body a question is built as, and the answer read from a response or its stream of events.

A question is always built (and cached, recorded, continued in a chat) in the Chat Completions form; only what
goes over the wire differs: ``input_text`` / ``input_image`` parts to ``/v1/responses``, the system message as
``instructions``, ``max_output_tokens``, ``text.format`` for JSON, ``store: false`` (nothing kept on the
server). ``seed`` has no Responses counterpart and is left out.

Examples
--------
>>> body = {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user",
...     "content": [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}],
...     "max_tokens": 50, "stream": True, "stream_options": {"include_usage": True}}
>>> responses_body(body)["input"][0]["content"]
[{'type': 'input_text', 'text': 'What?'}, {'type': 'input_image', 'image_url': 'https://x/a.png', 'detail': 'auto'}]
>>> sorted(responses_body(body))
['input', 'instructions', 'max_output_tokens', 'model', 'store', 'stream']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import APIError, redact
from .answer import Answer

_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def responses_body(chat: dict[str, Any]) -> dict[str, Any]:
    """The ``/v1/responses`` body for a Chat Completions ``chat`` body (see the module docstring)."""
    body: dict[str, Any] = {"model": chat["model"], "input": []}
    system = []
    for message in chat.get("messages", []):
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.append(content if isinstance(content, str) else _text_of(content))
            continue
        if isinstance(content, list):
            content = [_part(p) for p in content]
        body["input"].append({"role": role, "content": content})
    if system:
        body["instructions"] = "\n\n".join(system)
    limit = chat.get("max_completion_tokens", chat.get("max_tokens"))
    if limit is not None:
        body["max_output_tokens"] = limit
    if "temperature" in chat:
        body["temperature"] = chat["temperature"]
    if chat.get("stream"):
        body["stream"] = True  # usage always comes with response.completed
    fmt = chat.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        body["text"] = {"format": {"type": "json_schema", **fmt.get("json_schema", {})}}
    elif isinstance(fmt, dict):
        body["text"] = {"format": dict(fmt)}
    body["store"] = False
    return body


def _text_of(parts: Any) -> str:
    return "\n".join(
        p.get("text", "") for p in parts or [] if isinstance(p, dict) and p.get("type") == "text"
    )


def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        return {"type": "input_image", "image_url": image.get("url"), "detail": image.get("detail", "auto")}
    return part


def usage_of(u: Any) -> dict[str, int] | None:
    """A Responses ``usage`` (input/output tokens) as the Chat Completions names the rest of the engine uses."""
    if u is None:
        return None
    prompt = int(getattr(u, "input_tokens", 0) or 0)
    completion = int(getattr(u, "output_tokens", 0) or 0)
    total = int(getattr(u, "total_tokens", 0) or 0) or prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def fill_from_response(resp: Any, answer: Answer, model: str) -> Answer:
    """Fill ``answer`` from a whole ``response`` object (a non-streamed answer, or a stream's last event's)."""
    if getattr(resp, "error", None):
        raise APIError(
            f"The server could not answer: {redact(str(getattr(resp.error, 'message', resp.error)))}"
        )
    text, refusal = "", ""
    for item in getattr(resp, "output", None) or []:
        for content in getattr(item, "content", None) or []:
            kind = getattr(content, "type", "")
            if kind == "output_text":
                text += getattr(content, "text", "") or ""
            elif kind == "refusal":
                refusal += getattr(content, "refusal", "") or ""
    answer.text = answer.text or text
    answer.refusal = answer.refusal or refusal or None
    _finish_status(resp, answer)
    answer.model = getattr(resp, "model", None) or model
    return answer


def _finish_status(resp: Any, answer: Answer) -> None:
    answer.usage = usage_of(getattr(resp, "usage", None)) or answer.usage
    status = getattr(resp, "status", None)
    if status == "incomplete":
        reason = getattr(getattr(resp, "incomplete_details", None), "reason", None)
        answer.finish_reason = _INCOMPLETE.get(reason or "", "length")
    elif status in (None, "completed"):
        answer.finish_reason = "stop"


def read_stream(
    stream: Any,
    answer: Answer,
    on_text: Callable[[str], None] | None,
    expired: Callable[[], bool],
) -> bool:
    """Read a Responses event stream into ``answer``; False when it was cut short by ``expired()`` (the
    deadline) or ended before ``response.completed`` / ``response.incomplete``."""
    for event in stream:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            answer.text += getattr(event, "delta", "") or ""
            if on_text:
                on_text(answer.text)
        elif kind == "response.refusal.delta":
            answer.refusal = (answer.refusal or "") + (getattr(event, "delta", "") or "")
        elif kind in ("response.created", "response.in_progress"):
            answer.model = getattr(event.response, "model", None) or answer.model
        elif kind in ("response.completed", "response.incomplete"):
            answer.model = getattr(event.response, "model", None) or answer.model
            _finish_status(event.response, answer)
            return True
        elif kind == "response.failed":
            error = getattr(event.response, "error", None)
            raise APIError(f"The server could not answer: {redact(str(getattr(error, 'message', error)))}")
        elif kind == "error":
            raise APIError(f"The server sent an error: {redact(str(getattr(event, 'message', event)))}")
        if expired():
            return False
    return False
