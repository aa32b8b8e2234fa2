"""Reading a chat request body: messages, their text and image parts, and the deterministic reply and usage
the server derives from it."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

ALLOWED_IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})

_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.S)


def messages(body: Any) -> list[dict]:
    """The body's ``messages`` that are objects ([] if there are none)."""
    msgs = body.get("messages") if isinstance(body, dict) else None
    return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []


def parts(message: dict) -> list[dict]:
    """The content parts of a message that are objects ([] for string content)."""
    content = message.get("content")
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    return []


def text_of(message: dict) -> str:
    """A message's string content, or its text parts joined by newlines."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(
        p["text"] for p in parts(message) if p.get("type") == "text" and isinstance(p.get("text"), str)
    )


def last_user_text(body: Any) -> str:
    """Text of the last user message (text parts joined by newlines), or ''."""
    for message in reversed(messages(body)):
        if message.get("role") == "user":
            return text_of(message)
    return ""


def image_parts(body: Any) -> list[dict]:
    """Every ``image_url`` part of every message, in order."""
    return [p for m in messages(body) for p in parts(m) if p.get("type") == "image_url"]


def _data_url_problem(url: str) -> tuple[str | None, int | None, str | None]:
    """``(mime, bytes, problem)`` of a ``data:`` URL; ``problem`` is None for a valid image."""
    m = _DATA_URL.fullmatch(url)
    mime = m["mime"].strip().lower() if m else None
    nbytes = None
    problem = None
    if m is None:
        problem = "Invalid image data URL: expected 'data:<mime>;base64,<data>'."
    elif ";base64" not in m["params"].lower():
        problem = "Invalid image data URL: the image data must be base64-encoded."
    else:
        try:
            nbytes = len(base64.b64decode(m["data"], validate=True))
        except (binascii.Error, ValueError):
            problem = "Invalid image data: the base64 payload could not be decoded."
    if problem is None and mime not in ALLOWED_IMAGE_MIMES:
        problem = f"Invalid MIME type {mime!r}. Only image/jpeg, image/png, image/gif, and image/webp are supported."
    return mime, nbytes, problem


def inspect_images(body: Any) -> tuple[list[dict], str | None]:
    """Describe every ``image_url`` part of every message and find the first invalid data URL.

    Returns ``(images, error)``; each image is ``{"url_kind": "data"|"http", "mime", "bytes", "detail"}``
    (``mime``/``bytes`` are None for http URLs, which also carry ``"url"``). ``error`` is the message of an
    ``invalid_image_format`` rejection, or None.
    """
    images: list[dict] = []
    error = None
    for part in image_parts(body):
        image_url = part.get("image_url")
        image_url = image_url if isinstance(image_url, dict) else {}
        url = image_url.get("url")
        detail = image_url.get("detail")
        if not isinstance(url, str):
            continue
        if not url.startswith("data:"):
            images.append({"url_kind": "http", "mime": None, "bytes": None, "detail": detail, "url": url})
            continue
        mime, nbytes, problem = _data_url_problem(url)
        if problem and error is None:
            error = problem
        images.append({"url_kind": "data", "mime": mime, "bytes": nbytes, "detail": detail})
    return images, error


def default_reply(body: Any) -> str:
    """The server's deterministic answer: Markdown with a LaTeX bit, echoing the last user prompt."""
    model = body.get("model") if isinstance(body, dict) else None
    n = len(image_parts(body))
    return (
        f"**Answer** from {model}: I see {n} image(s).\n\n"
        f"You asked: {last_user_text(body)}\n\n"
        "A formula: \\(E = mc^2\\)"
    )


def usage_for(body: Any, text: str) -> dict:
    """Deterministic token usage: prompt = 10 + (all message text chars)//4 + 85 per image."""
    chars = sum(len(text_of(m)) for m in messages(body))
    n_images = len(image_parts(body))
    prompt = 10 + chars // 4 + 85 * n_images
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_view(body: Any) -> dict:
    """A Responses API request body as the chat body it stands for: ``instructions`` as the system message,
    ``input`` items as messages (``input_text`` -> ``text``, ``input_image`` -> ``image_url`` parts),
    ``text.format`` as ``response_format``, and ``stream`` (with usage, which Responses streams always carry).
    The server reads, answers and measures a Responses question through this view."""
    if not isinstance(body, dict):
        return {}
    msgs: list[dict] = []
    if isinstance(body.get("instructions"), str):
        msgs.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        msgs.append({"role": "user", "content": items})
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, list):
            content = [_chat_part(p) for p in content if isinstance(p, dict)]
        msgs.append({"role": item.get("role"), "content": content})
    view: dict = {"model": body.get("model"), "messages": msgs}
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        view["response_format"] = {
            "type": "json_schema",
            "json_schema": {k: v for k, v in fmt.items() if k != "type"},
        }
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        view["response_format"] = {"type": "json_object"}
    if body.get("stream") is True:
        view["stream"] = True
        view["stream_options"] = {"include_usage": True}
    return view


def _chat_part(part: dict) -> dict:
    if part.get("type") == "input_text":
        return {"type": "text", "text": part.get("text")}
    if part.get("type") == "input_image":
        image = {"url": part.get("image_url")}
        if "detail" in part:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    return part
