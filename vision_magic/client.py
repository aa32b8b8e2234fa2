"""Talk to the model through the official ``openai`` SDK; knows openai, not IPython.

Builds the Chat Completions request body, runs it (streaming or not) and turns every SDK error into one
:class:`~vision_magic.errors.APIError` line with the status, the server's own message and a fix.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from .answer import Answer
from .config import VisionMagic
from .errors import APIError, ConfigError, redact

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY_PLACEHOLDER = "no-key-needed"  # local servers ignore the key, but the SDK insists on one


def resolve_base_url(cfg: VisionMagic) -> str:
    """The endpoint in force: ``VisionMagic.base_url``, else ``OPENAI_BASE_URL``, else OpenAI's."""
    return (cfg.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")


def is_openai(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.azure.com")


def api_key_for(base_url: str) -> str:
    """The key from ``OPENAI_API_KEY``; raises a one-line :class:`ConfigError` when OpenAI needs one."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        return key
    if is_openai(base_url):
        raise ConfigError(
            "No API key: set OPENAI_API_KEY (e.g. %env OPENAI_API_KEY=sk-...), or point OPENAI_BASE_URL at a "
            "local OpenAI-compatible server (e.g. http://localhost:11434/v1 for Ollama); "
            "--dry-run shows the request without sending"
        )
    return NO_KEY_PLACEHOLDER


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
    *,
    model: str,
    base_url: str,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    stream: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The request body. Optional fields are left out, never sent as null (the schema forbids nulls).

    OpenAI's newer models take ``max_completion_tokens`` only; other servers may know only ``max_tokens``.
    """
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_completion_tokens" if is_openai(base_url) else "max_tokens"] = int(max_tokens)
    if temperature is not None:
        body["temperature"] = float(temperature)
    if seed is not None:
        body["seed"] = int(seed)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(extra or {})
    return body


def make_client(cfg: VisionMagic, base_url: str) -> Any:
    """An ``openai.OpenAI`` client for ``base_url`` (imported here so importing vision_magic stays cheap)."""
    import openai

    return openai.OpenAI(
        api_key=api_key_for(base_url), base_url=base_url, timeout=cfg.timeout, max_retries=cfg.max_retries
    )


def run(
    client: Any,
    body: dict[str, Any],
    answer: Answer,
    on_text: Callable[[str], None] | None = None,
) -> Answer:
    """Send ``body``; fill ``answer`` (text, model, usage, finish reason) as the reply arrives.

    ``answer`` is filled in place so a caller keeps what arrived when an interrupt ends the stream. An error
    before any text raises :class:`APIError`; an error after some text marks the answer incomplete instead.
    """
    base_url = str(client.base_url).rstrip("/")
    try:
        if not body.get("stream"):
            fill_from_completion(client.chat.completions.create(**body), answer, body["model"])
            if on_text:
                on_text(answer.text)
            return answer
        stream = client.chat.completions.create(**body)
        try:
            for chunk in stream:
                if chunk.model:
                    answer.model = chunk.model
                if chunk.usage:
                    answer.usage = _usage(chunk.usage)
                if not chunk.choices:  # usage chunk, or a provider's empty first chunk
                    continue
                choice = chunk.choices[0]
                if choice.delta and choice.delta.content:
                    answer.text += choice.delta.content
                    if on_text:
                        on_text(answer.text)
                if choice.finish_reason:
                    answer.finish_reason = choice.finish_reason
        finally:
            stream.close()
        if answer.finish_reason is None:
            answer.incomplete = True
            answer.error = "the stream ended before the model finished"
        else:
            _mark_truncated(answer)
        return answer
    except KeyboardInterrupt:
        answer.incomplete = True
        answer.error = "interrupted"
        raise
    except Exception as e:
        err = describe_error(e, base_url)
        if answer.text:
            import openai

            answer.incomplete = True
            answer.error = str(err)
            if isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError):
                answer.error = "the connection dropped before the answer was complete"
            return answer
        raise err from None
    finally:
        answer.model = answer.model or body["model"]


def fill_from_completion(resp: Any, answer: Answer, model: str) -> Answer:
    """Fill ``answer`` from a whole (non-streamed) ``chat.completion`` response."""
    choice = resp.choices[0] if resp.choices else None
    answer.text = (choice.message.content or "") if choice else ""
    answer.finish_reason = choice.finish_reason if choice else None
    answer.model = resp.model or model
    answer.usage = _usage(resp.usage)
    _mark_truncated(answer)
    return answer


def _mark_truncated(answer: Answer) -> None:
    if answer.finish_reason == "length":
        answer.incomplete = True
        answer.error = "the answer reached the token limit (raise --max-tokens or max_tokens=)"


def _usage(u: Any) -> dict[str, int] | None:
    if u is None:
        return None
    return {
        "prompt_tokens": int(getattr(u, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(u, "completion_tokens", 0) or 0),
        "total_tokens": int(getattr(u, "total_tokens", 0) or 0),
    }


_HINTS = {
    400: "the server refused the request",
    401: "check OPENAI_API_KEY (and that it belongs to this server)",
    403: "the key may not use this model or endpoint",
    404: "check the model name (-m / %config VisionMagic.model) and OPENAI_BASE_URL",
    408: "try again, or raise %config VisionMagic.timeout",
    413: "the request is too large: use --detail low or fewer images",
    429: "rate limit or quota reached: wait a moment and retry, or check your plan's limits",
}


def describe_error(e: BaseException, base_url: str) -> APIError:
    """One line for an SDK or transport error: what happened, the server's words, and what to do."""
    import openai

    if isinstance(e, openai.APITimeoutError):
        return APIError(f"No answer from {base_url} in time: try again, or raise %config VisionMagic.timeout")
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__ or e.__context__
        why = f" ({type(cause).__name__}: {cause})" if cause else ""
        return APIError(f"Could not reach {base_url}{why}: is the server running and OPENAI_BASE_URL right?")
    if isinstance(e, openai.APIStatusError):
        status = e.status_code
        message = _server_message(e)
        hint = _HINTS.get(status, "the server failed; try again later" if status >= 500 else "")
        return APIError(f"The server answered {status}: {message}" + (f" ({hint})" if hint else ""), status)
    if isinstance(e, json.JSONDecodeError):
        return APIError(f"The server at {base_url} sent a malformed response ({e.msg}); try again")
    if isinstance(e, openai.OpenAIError):
        return APIError(f"{type(e).__name__}: {e}")
    return APIError(f"Unexpected {type(e).__name__} while talking to {base_url}: {e}")


def _server_message(e: Any) -> str:
    body = getattr(e, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
    if not msg:
        text = ""
        with contextlib.suppress(Exception):
            text = e.response.text
        if "<html" in text.lower() or "<!doctype" in text.lower():
            import re

            title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            msg = f"an HTML error page ({title.group(1).strip()})" if title else "an HTML error page"
        else:
            msg = text.strip()[:300] or e.message
    return redact(" ".join(str(msg).split()))[:500]
