"""The Chat Completions request body: the one place a request is built from a question and its options.

Optional fields are left out, never sent as null (OpenAI's schema forbids nulls). Per-server differences
(the token-limit field's name, whether ``detail`` is honoured, the JSON mode) come from the :class:`Endpoint`.
"""

from __future__ import annotations

from typing import Any

from .endpoints import Endpoint
from .options import AskOptions


def build_messages(prompt: str, parts: list[dict[str, Any]], system: str = "") -> list[dict[str, Any]]:
    """System (optional) and user messages for one question: the text first, then the images.

    Examples
    --------
    >>> build_messages("Hi?", [], system="Be brief.")
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': [{'type': 'text', 'text': 'Hi?'}]}]
    """
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": [{"type": "text", "text": prompt}, *parts]})
    return messages


def build_request(
    messages: list[dict[str, Any]],
    options: AskOptions,
    endpoint: Endpoint,
    response_format: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The request body for resolved ``options`` (see :meth:`AskOptions.resolved`) sent to ``endpoint``.

    OpenAI's newer models take ``max_completion_tokens`` only; other servers may know only ``max_tokens``:
    the endpoint's ``token_param`` says which.

    Examples
    --------
    >>> body = build_request([], AskOptions(model="m", max_tokens=50, stream=False), Endpoint("http://x/v1"))
    >>> body
    {'model': 'm', 'messages': [], 'max_tokens': 50}
    """
    body: dict[str, Any] = {"model": options.model, "messages": messages}
    if options.max_tokens is not None:
        body[endpoint.token_param or "max_tokens"] = int(options.max_tokens)
    if options.temperature is not None:
        body["temperature"] = float(options.temperature)
    if options.seed is not None:
        body["seed"] = int(options.seed)
    if options.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if response_format is not None:
        body["response_format"] = response_format
    if not endpoint.detail:
        strip_detail(body)
    return body


def strip_detail(body: dict[str, Any]) -> None:
    """Remove ``detail`` from every image part in place (for servers that reject or ignore it)."""
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("image_url"), dict):
                    part["image_url"].pop("detail", None)
