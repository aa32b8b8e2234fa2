"""Send a request through the official ``openai`` SDK; knows openai, not IPython.

Runs a request (streaming or not, or many concurrently with retries) and turns every SDK error into one
:class:`~vision_magic.errors.APIError` line with the status, the server's own message and a fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import APIError, redact
from .answer import Answer

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_DELAY = 60.0


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


def retry_delay(headers: Any, attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the server's ``retry-after-ms`` / ``Retry-After``
    (seconds or an HTTP date) when given, else exponential backoff with jitter.

    Examples
    --------
    >>> retry_delay({"retry-after": "2"}, 0)
    2.0
    >>> 0.25 <= retry_delay({}, 0) <= 0.5
    True
    """
    headers = headers or {}
    get = headers.get
    ms = get("retry-after-ms")
    try:
        if ms is not None:
            return min(max(float(ms) / 1000, 0.0), MAX_DELAY)
    except ValueError:
        pass
    value = get("retry-after") or get("Retry-After")
    if value is not None:
        try:
            return min(max(float(value), 0.0), MAX_DELAY)
        except ValueError:
            try:
                return min(max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0), MAX_DELAY)
            except (TypeError, ValueError):
                pass
    base = min(0.5 * 2**attempt, 20.0)
    return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


async def send_with_retries(client: Any, body: dict[str, Any], answer: Answer, retries: int) -> Answer:
    """Send one non-streaming request, retrying transient failures; fill ``answer``; raise :class:`APIError`."""
    import openai

    base_url = str(client.base_url).rstrip("/")
    for attempt in range(retries + 1):
        try:
            resp = await client.chat.completions.create(**body)
        except openai.APIStatusError as e:
            transient = e.status_code in RETRY_STATUSES or e.status_code >= 500
            if not transient or attempt == retries:
                raise _final(describe_error(e, base_url), attempt) from None
            delay = retry_delay(e.response.headers, attempt)
        except openai.APIConnectionError as e:
            if attempt == retries:
                raise _final(describe_error(e, base_url), attempt) from None
            delay = retry_delay({}, attempt)
        except Exception as e:  # malformed JSON and the like: not worth retrying blindly
            raise describe_error(e, base_url) from None
        else:
            return fill_from_completion(resp, answer, body["model"])
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _final(err: APIError, attempt: int) -> APIError:
    if attempt:
        return APIError(f"{err} (after {attempt} retries)", err.status)
    return err
