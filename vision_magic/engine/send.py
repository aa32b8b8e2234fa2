"""Send a request through the official ``openai`` SDK; knows openai, not IPython.

Runs a request (streaming or not, or many concurrently with retries) and turns every SDK error into one
:class:`~vision_magic.errors.APIError` line with the status, the server's own message and a fix.
"""

from __future__ import annotations

import ast
import contextlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import APIError, redact
from .answer import Answer

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_DELAY = 60.0


@dataclass
class Budget:
    """How long one question may take: ``retries`` of transient failures, each try up to ``timeout`` seconds
    (per read), and all of it within ``deadline`` seconds in total (None: no total limit).

    Examples
    --------
    >>> b = Budget(retries=2, timeout=120, deadline=30)
    >>> b.attempt_timeout() <= 30
    True
    """

    retries: int = 2
    timeout: float = 120.0
    deadline: float | None = None
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def from_settings(cls, cfg: Any, retries: int | None = None) -> Budget:
        """The budget ``%config VisionMagic`` sets (``max_retries``, ``timeout``, ``deadline``; 0: none)."""
        deadline = float(cfg.deadline) or None
        return cls(cfg.max_retries if retries is None else retries, float(cfg.timeout), deadline)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.elapsed()

    def attempt_timeout(self) -> float:
        """The timeout of the next try: the per-try timeout, cut to what is left of the deadline."""
        left = self.remaining()
        return self.timeout if left is None else max(0.1, min(self.timeout, left))

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def retry_after(self, e: Exception, attempt: int, base_url: str, model: str | None = None) -> float:
        """Seconds to wait before trying again after ``e`` (try ``attempt``, 0-based); raises the final one-line
        :class:`APIError`, saying what was tried, when ``e`` is not transient (an unknown ``model`` never is,
        even as a 500), the retries are used up, or the wait would pass the deadline."""
        import openai

        err = describe_error(e, base_url, model)
        if err.kind == "unknown_model":
            raise err from None
        if isinstance(e, openai.APIStatusError):
            transient, headers = e.status_code in RETRY_STATUSES or e.status_code >= 500, e.response.headers
        else:
            transient, headers = isinstance(e, openai.APIConnectionError), {}
        if not transient:
            raise err from None
        delay = retry_delay(headers, attempt)
        left = self.remaining()
        if attempt >= self.retries or (left is not None and delay >= left):
            raise self.final(err, attempt) from None
        return delay

    def final(self, err: APIError, attempt: int) -> APIError:
        """``err`` with what was tried: the tries, the time, and the deadline when it was the limit."""
        if attempt == 0 and not self.expired():
            return err
        elapsed = f"{self.elapsed():.0f} s"
        tries = (
            f"after {attempt} {'retry' if attempt == 1 else 'retries'} in {elapsed}"
            if attempt
            else f"after {elapsed}"
        )
        if self.deadline is not None and attempt < self.retries:
            tries += f", stopped by the {self.deadline:g} s deadline (%config VisionMagic.deadline)"
        return APIError(f"{err} ({tries})", err.status)


def run(
    client: Any,
    body: dict[str, Any],
    answer: Answer,
    on_text: Callable[[str], None] | None = None,
    *,
    budget: Budget | None = None,
    on_open: Callable[[], None] | None = None,
    api: str = "chat",
) -> Answer:
    """Send ``body``; fill ``answer`` (text, model, usage, finish reason) as the reply arrives (``on_text``:
    the text so far, after each streamed piece). ``api="responses"`` sends it to ``/v1/responses`` instead
    (:mod:`vision_magic.engine.responses`); ``body`` is the Chat Completions form either way.

    Transient failures before any text are retried within ``budget``. ``on_open`` is called once the server
    has accepted a streamed request (so a failed request draws nothing). ``answer`` is
    filled in place so a caller keeps what arrived when an interrupt ends the stream. An error before any
    text raises :class:`APIError`; an error after some text marks the answer incomplete instead.
    """
    budget = budget or Budget(retries=0)
    base_url = str(client.base_url).rstrip("/")
    if api == "responses":
        from .responses import responses_body

        body = responses_body(body)
    try:
        if not body.get("stream"):  # nothing to draw until the whole answer is there (the caller finishes it)
            return _fill(api, _create(client, body, budget, api), answer, body["model"], base_url)
        stream = _create(client, body, budget, api)
        try:
            whole = _check_event_stream(stream, base_url, api)
            if on_open:
                on_open()
            if whole is not None:  # the server ignored "stream": one whole answer
                _fill(api, whole, answer, body["model"], base_url)
                if on_text and answer.text:
                    on_text(answer.text)
            elif api == "responses":
                _read_response_stream(stream, answer, on_text, budget)
            else:
                _read_stream(stream, answer, on_text, budget)
        finally:
            stream.close()
        return answer
    except KeyboardInterrupt:
        answer.incomplete = True
        answer.error = "interrupted"
        raise
    except Exception as e:
        err = e if isinstance(e, APIError) else describe_error(e, base_url, body.get("model"))
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


def _fill(api: str, resp: Any, answer: Answer, model: str, base_url: str) -> Answer:
    """Fill ``answer`` from a whole answer of ``api``."""
    if api != "responses":
        return fill_from_completion(resp, answer, model, base_url)
    from .responses import fill_from_response

    if not hasattr(resp, "output"):  # a proxy's text/plain or HTML 200: the SDK hands over a str
        raise _not_a_completion(base_url, "text" if isinstance(resp, str) else type(resp).__name__, resp)
    fill_from_response(resp, answer, model)
    _mark_finish(answer)
    return answer


def _read_response_stream(
    stream: Any, answer: Answer, on_text: Callable[[str], None] | None, budget: Budget
) -> None:
    from .responses import read_stream

    if read_stream(stream, answer, on_text, budget.expired):
        _mark_finish(answer)
    elif budget.expired():
        answer.incomplete = True
        answer.error = (
            f"the answer took longer than the {budget.deadline:g} s deadline (%config VisionMagic.deadline)"
        )
    elif not answer.refusal:
        answer.incomplete = True
        answer.error = "the stream ended before the model finished"


def _method(client: Any, api: str) -> Any:
    return client.responses.create if api == "responses" else client.chat.completions.create


def _create(client: Any, body: dict[str, Any], budget: Budget, api: str = "chat") -> Any:
    """``chat.completions.create`` (or ``responses.create``) with the budget's retries and deadline (the client
    itself retries nothing)."""
    base_url = str(client.base_url).rstrip("/")
    attempt = 0
    while True:
        try:
            return _method(client, api)(**body, timeout=budget.attempt_timeout())
        except Exception as e:
            time.sleep(budget.retry_after(e, attempt, base_url, body.get("model")))
        attempt += 1


def _read_stream(stream: Any, answer: Answer, on_text: Callable[[str], None] | None, budget: Budget) -> None:
    for chunk in stream:
        if chunk.model:
            answer.model = chunk.model
        if chunk.usage:
            answer.usage = _usage(chunk.usage)
        if chunk.choices:  # else a usage chunk, or a provider's empty first chunk
            choice = chunk.choices[0]
            delta = choice.delta
            if delta is not None and getattr(delta, "refusal", None):
                answer.refusal = (answer.refusal or "") + delta.refusal
            if delta is not None and delta.content:
                answer.text += delta.content
                if on_text:
                    on_text(answer.text)
            if choice.finish_reason:
                answer.finish_reason = choice.finish_reason
        if budget.expired() and answer.finish_reason is None:
            answer.incomplete = True
            answer.error = f"the answer took longer than the {budget.deadline:g} s deadline (%config VisionMagic.deadline)"
            return
    if answer.finish_reason is None and not answer.refusal:
        answer.incomplete = True
        answer.error = "the stream ended before the model finished"
    else:
        _mark_finish(answer)


def _check_event_stream(stream: Any, base_url: str, api: str = "chat") -> Any:
    """A streamed request answered without events: a page (a proxy or web server) or a body that is empty
    or not JSON is one line; a whole ``chat.completion`` (a server that ignores ``stream``) is returned to be
    used as it is. None for an event stream."""
    response = getattr(stream, "response", None)
    ctype = (response.headers.get("content-type") or "") if response is not None else ""
    kind = ctype.split(";")[0].strip().lower()
    if not ctype or kind == "text/event-stream":
        return None
    with contextlib.suppress(Exception):
        response.read()
    text = str(getattr(response, "text", "") or "")
    if kind in ("text/plain", "text/html", "application/xml"):
        raise _not_a_completion(base_url, kind, text)
    if not text.strip():
        raise APIError(
            f"The server at {base_url} answered with an empty body instead of a chat completion; try again"
        )
    if text.lstrip().startswith(("data:", "event:")):  # events under another label: read them as events
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise APIError(f"The server at {base_url} sent a malformed response ({e.msg}); try again") from None
    if isinstance(data, dict) and "error" in data:
        raise APIError(f"The server answered {response.status_code}: {error_message(data, text)[0]}")
    if isinstance(data, dict) and "choices" in data and api != "responses":
        from openai.types.chat import ChatCompletion

        with contextlib.suppress(Exception):
            return ChatCompletion.model_validate(data)
    if isinstance(data, dict) and "output" in data and api == "responses":
        from openai.types.responses import Response

        with contextlib.suppress(Exception):
            return Response.model_validate(data)
    raise _not_a_completion(base_url, kind or "a body", text)


def _not_a_completion(base_url: str, what: str, text: str) -> APIError:
    head = " ".join(str(text).split())[:80]
    return APIError(
        f"The server at {base_url} answered with {what} instead of a chat completion"
        + (f" ({head!r})" if head else "")
        + ": is OPENAI_BASE_URL the API's base URL (usually ending in /v1)?"
    )


def fill_from_completion(resp: Any, answer: Answer, model: str, base_url: str = "the server") -> Answer:
    """Fill ``answer`` from a whole (non-streamed) ``chat.completion`` response."""
    if not hasattr(resp, "choices"):  # a proxy's text/plain or HTML 200: the SDK hands over a str
        raise _not_a_completion(base_url, type(resp).__name__ if not isinstance(resp, str) else "text", resp)
    choice = resp.choices[0] if resp.choices else None
    message = choice.message if choice is not None else None
    answer.text = (message.content or "") if message is not None else ""
    answer.refusal = getattr(message, "refusal", None) or None
    answer.finish_reason = choice.finish_reason if choice is not None else None
    answer.model = resp.model or model
    answer.usage = _usage(resp.usage)
    if choice is None:
        answer.incomplete = True
        answer.error = "the server's reply held no answer (no choices): try again"
    _mark_finish(answer)
    return answer


def _mark_finish(answer: Answer) -> None:
    """Say why an answer is not a whole answer: token limit, content filter, refusal."""
    if answer.finish_reason == "length":
        answer.incomplete = True
        answer.error = "the answer reached the token limit (raise --max-tokens or max_tokens=)"
    elif answer.finish_reason == "content_filter":
        answer.incomplete = True
        answer.error = "the server's content filter withheld the answer" + (
            " (or part of it)" if answer.text else ""
        )
    elif answer.refusal:
        answer.error = "the model refused to answer"


def _usage(u: Any) -> dict[str, int] | None:
    if u is None:
        return None
    return {
        "prompt_tokens": int(getattr(u, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(u, "completion_tokens", 0) or 0),
        "total_tokens": int(getattr(u, "total_tokens", 0) or 0),
    }


UNKNOWN_MODEL_HINT = "pick a model it has with -m, %config VisionMagic.model = ... or VISION_MAGIC_MODEL"
TOO_LARGE_HINT = "the request is too large: use --detail low or fewer images"
HINTS = {
    400: "the server refused the request",
    401: "check the key (OPENAI_API_KEY, or the endpoint's api_key_env) and that it belongs to this server",
    403: "the key may not use this model or endpoint",
    404: "check the model name (-m / %config VisionMagic.model) and OPENAI_BASE_URL",
    408: "try again, or raise %config VisionMagic.timeout",
    413: TOO_LARGE_HINT,
    422: "the server refused the request",
    429: "rate limit or quota reached: wait a moment and retry, or check your plan's limits",
}

# What servers say when they do not know a model (OpenAI, vLLM, Ollama, LM Studio, LiteLLM, transformers serve)
_UNKNOWN_MODEL = re.compile(
    r"does ?n[o']t exist|not found|no such model|unknown model|invalid model|model not (found|loaded|available)"
    r"|not a valid model|is not a local folder|not (available|loaded)|try pulling it",
    re.I,
)
# What servers say when they cannot decode an image (llama.cpp, PIL-based servers, OpenAI)
_IMAGE_NOT_DECODED = re.compile(
    r"failed to load image|cannot identify image|unsupported image|invalid image|image format|decode image",
    re.I,
)


def is_unknown_model(status: int, message: str, code: Any = None, model: str | None = None) -> bool:
    """Whether an error answer says the server does not know ``model``: a 404 naming it (or with OpenAI's
    ``model_not_found`` code), or a 400/422/500 whose message names it in words like "not found" or
    "invalid model name" (LiteLLM, servers pinned to one model, an unpinned transformers serve).

    Examples
    --------
    >>> is_unknown_model(400, "Invalid model name passed in model=llava", model="llava")
    True
    >>> is_unknown_model(500, "CUDA out of memory", model="llava")
    False
    """
    if code == "model_not_found":
        return True
    names_it = bool(model) and str(model).lower() in message.lower()
    if status == 404:
        return names_it or "model" in message.lower() and bool(_UNKNOWN_MODEL.search(message))
    return status in (400, 403, 422, 500) and names_it and bool(_UNKNOWN_MODEL.search(message))


def describe_error(e: BaseException, base_url: str, model: str | None = None) -> APIError:
    """One line for an SDK or transport error: what happened, the server's words, and what to do.

    ``model`` (the model asked for) lets an answer that does not know it be recognised, whatever its status
    (the error's ``kind`` is then ``"unknown_model"``; a 413's is ``"too_large"``; an image the server could
    not decode is ``"image_format"``, a refused ``response_format`` ``"json_mode"``)."""
    import openai

    if isinstance(e, openai.APITimeoutError):
        return APIError(f"No answer from {base_url} in time: try again, or raise %config VisionMagic.timeout")
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__ or e.__context__
        why = f" ({type(cause).__name__}: {cause})" if cause else ""
        return APIError(f"Could not reach {base_url}{why}: is the server running and OPENAI_BASE_URL right?")
    if isinstance(e, openai.APIStatusError):
        status = e.status_code
        message, code = _server_message(e)
        if is_unknown_model(status, message, code, model):
            return APIError(
                f"The server answered {status}: {message} ({UNKNOWN_MODEL_HINT})", status, "unknown_model"
            )
        hint = HINTS.get(status, "the server failed; try again later" if status >= 500 else "")
        kind = "too_large" if status == 413 else None
        if status in (400, 415, 422, 500) and _IMAGE_NOT_DECODED.search(message):
            kind = "image_format"
        elif status in (400, 422) and "response_format" in message:
            kind = "json_mode"
        return APIError(
            f"The server answered {status}: {message}" + (f" ({hint})" if hint else ""), status, kind
        )
    if isinstance(e, json.JSONDecodeError):
        if not str(e.doc).strip():
            return APIError(
                f"The server at {base_url} answered with an empty body instead of a chat completion; try again"
            )
        return APIError(f"The server at {base_url} sent a malformed response ({e.msg}); try again")
    if isinstance(e, openai.OpenAIError):
        return APIError(f"{type(e).__name__}: {e}")
    return APIError(f"Unexpected {type(e).__name__} while talking to {base_url}: {e}")


def error_message(body: Any, text: str = "") -> tuple[str, Any]:
    """``(message, code)`` of an error answer, whatever its shape: OpenAI's ``{"error": {"message"}}``,
    FastAPI's ``{"detail": "..."}`` or ``{"detail": [{"loc": [...], "msg": "..."}]}``, LiteLLM's message
    holding a Python dict repr, plain text, or an HTML page (its title only).

    Examples
    --------
    >>> error_message({"detail": [{"loc": ["body", "model"], "msg": "Field required"}]})
    ('model: Field required', None)
    >>> error_message({"message": "{'error': '/chat/completions: Invalid model name passed in model=x'}"})
    ('/chat/completions: Invalid model name passed in model=x', None)
    >>> error_message(None, "<html><head><title>502 Bad Gateway</title></head><body>...</body></html>")
    ('an HTML error page (502 Bad Gateway)', None)
    """
    code = None
    msg: Any = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code = inner.get("code")
            msg = inner.get("message") or inner.get("msg") or inner.get("detail")
        else:
            msg = inner
        if msg is None and "detail" in body:
            msg = body["detail"]
    elif isinstance(body, str):
        text = text or body
        is_page = "<html" in body.lower() or "<!doctype" in body.lower()
        msg = None if is_page else body.strip()[:300]
    msg = _unwrap(msg)
    if msg:
        return str(msg), code if isinstance(code, str) else None
    if "<html" in text.lower() or "<!doctype" in text.lower():
        import html  # only for error pages (html.entities costs a few ms of the first question's import)

        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        return (
            f"an HTML error page ({html.unescape(title.group(1).strip())})" if title else "an HTML error page"
        ), None
    return text.strip()[:300], None


def _unwrap(msg: Any) -> Any:
    """A message that is FastAPI's list of ``{loc, msg}``, or a dict (or its Python repr), as plain words."""
    if isinstance(msg, str) and msg.startswith("{") and msg.endswith("}"):
        with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
            msg = ast.literal_eval(msg)  # LiteLLM: "{'error': '/chat/completions: Invalid model name ...'}"
    if isinstance(msg, dict):
        for key in ("error", "message", "msg", "detail"):
            if msg.get(key):
                return _unwrap(msg[key])
        return None
    if isinstance(msg, list):
        items = []
        for item in msg[:3]:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", []) if p not in ("body", "query")]
                items.append((".".join(loc) + ": " if loc else "") + str(item.get("msg", "")))
            else:
                items.append(str(item))
        return "; ".join(items)
    return msg


def _server_message(e: Any) -> tuple[str, Any]:
    body = getattr(e, "body", None)
    text = ""
    with contextlib.suppress(Exception):
        text = e.response.text
    if isinstance(body, dict) and not (set(body) & {"error", "message", "msg", "detail"}):
        body = None  # not an error body we can read: fall back to the text
    message, code = error_message(body, text)
    message = message or getattr(e, "message", "") or "no details"
    return redact(" ".join(str(message).split()))[:500], code


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
                from email.utils import parsedate_to_datetime

                return min(max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0), MAX_DELAY)
            except (TypeError, ValueError):
                pass
    base = min(0.5 * 2**attempt, 20.0)
    return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


async def send_with_retries(
    client: Any, body: dict[str, Any], answer: Answer, budget: Budget, api: str = "chat"
) -> Answer:
    """Send one non-streaming request with ``budget``'s retries and deadline; fill ``answer``; raise
    :class:`APIError` (the same policy as :func:`run`; ``api`` as there)."""
    import asyncio

    base_url = str(client.base_url).rstrip("/")
    if api == "responses":
        from .responses import responses_body

        body = responses_body(body)
    attempt = 0
    while True:
        try:
            resp = await _method(client, api)(**body, timeout=budget.attempt_timeout())
        except Exception as e:
            await asyncio.sleep(budget.retry_after(e, attempt, base_url, body.get("model")))
        else:
            return _fill(api, resp, answer, body["model"], base_url)
        attempt += 1
