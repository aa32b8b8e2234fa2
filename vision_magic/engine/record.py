"""What was asked and answered, as plain data: the replay key of a question and the record of an answer.

The record of an answer is what the notebook saves with it (output metadata under ``vision_magic``): the
model, the endpoint (scheme, host, port and path only), the options, the prompt, each image's label, SHA-256,
type, size, bytes and tokens, the usage, cost, time, finish reason, whether it was replayed, its replay key,
the answer text and when it was made. It never holds a key, a password, a query string or image bytes.

The replay key (:func:`request_key`) is THE key of the replay store (one key, not a second "recording
key"), and it is endpoint-independent: a SHA-256 of what was asked (the model, the system text, every
message's text, each image's identity and detail, and the options that change an answer: max_tokens,
temperature, seed, JSON mode or schema). An image's identity is the SHA-256 of its decoded pixels
(:mod:`vision_magic.images.digest`), because the same picture goes to OpenAI as lossless WEBP and to other
servers as PNG; an image the server fetches itself is identified by its link. The base URL, the API key, the
name of the token-limit field (``max_tokens`` or ``max_completion_tokens``) and whether a server is sent
``detail`` are left out. So an answer recorded against one server replays for the same question asked
against any other (or against none, with no key): the same question to the same model gives the recorded
answer; ``--refresh`` asks again. (An image given by URL is a link for servers that fetch links and
downloaded pixels for the others, so it matches only between servers of the same kind.)

Examples
--------
>>> from vision_magic.engine.answer import Answer
>>> k = request_key_of({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
...                     "max_tokens": 50, "stream": True}, [])
>>> k == request_key_of({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
...                      "max_completion_tokens": 50}, [])
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import redact
from ..images.digest import pixel_digest
from ..images.encode import PreparedImage

if TYPE_CHECKING:
    from .answer import Answer
    from .question import Question

VERSION = 1  # the record's format; a reader skips records of a newer format it does not know
KEY = "vision_magic"  # the output-metadata key the front ends write records under
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
_ANSWER_OPTIONS = ("temperature", "seed", "response_format")


def _payload(url: str) -> bytes | None:
    """The bytes a ``data:`` URL carries, or None (a link, or not base64)."""
    if not url.startswith("data:"):
        return None
    try:
        return base64.b64decode(url.partition(",")[2], validate=False)
    except (binascii.Error, ValueError):
        return None


def identity_of_url(url: str) -> str:
    """What the image of an image URL is, for the key: the SHA-256 of its pixels
    (:func:`vision_magic.images.digest.pixel_digest`: the same for PNG and lossless WEBP) for a ``data:``
    URL, else of the link the server fetches.

    Examples
    --------
    >>> identity_of_url("https://example.org/a.png") == hashlib.sha256(b"https://example.org/a.png").hexdigest()
    True
    """
    memo = url if len(url) <= 1024 else hashlib.sha256(url.encode("utf-8")).digest()
    known = _identities.get(memo)
    if known is not None:
        return known
    data = _payload(url)
    identity = pixel_digest(data) if data is not None else hashlib.sha256(url.encode("utf-8")).hexdigest()
    with _identities_lock:
        if len(_identities) >= _IDENTITIES:
            _identities.pop(next(iter(_identities)))
        _identities[memo] = identity
    return identity


# identities of recently keyed image URLs: a re-run keys the same (memoised) data URL again without decoding;
# a long data URL is remembered by its SHA-256, not kept (a Batch API file holds one image at a time)
_IDENTITIES = 256
_identities: dict[str | bytes, str] = {}
_identities_lock = threading.Lock()


def image_digest(img: PreparedImage) -> str:
    """SHA-256 of the bytes sent for ``img`` (of its link when the server fetches it)."""
    if img.data is not None and not img.is_link:
        return img.sha256
    data = _payload(img.url)
    return hashlib.sha256(data if data is not None else img.url.encode("utf-8")).hexdigest()


def image_identity(img: PreparedImage) -> str:
    """What ``img`` is for the key: the SHA-256 of its pixels, or of its link (see :func:`identity_of_url`)."""
    if img.data is not None and not img.is_link:
        return pixel_digest(img.data, img.sha256)
    return identity_of_url(img.url)


def _part(part: Any) -> Any:
    """One content part as it counts for the key: text as it is, an image by its identity (no detail)."""
    if isinstance(part, dict) and isinstance(part.get("image_url"), dict):
        return {"image": identity_of_url(str(part["image_url"].get("url", "")))}
    return part


def request_key_of(body: dict[str, Any], details: list[str]) -> str:
    """The endpoint-independent replay key of a request ``body`` whose question's images have ``details``.

    The system message counts as text; the token limit counts whatever its field is called; the transport
    flags (``stream``, ``stream_options``) and the ``detail`` fields of the body do not count (``details``,
    the question's own, do).
    """
    messages = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = [_part(p) for p in content]
        messages.append({"role": message.get("role"), "content": content})
    limit = next((body[f] for f in _TOKEN_FIELDS if f in body), None)
    asked = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": limit,
        **{name: body.get(name) for name in _ANSWER_OPTIONS},
        "details": list(details),
    }
    blob = json.dumps(asked, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def request_key(q: Question) -> str:
    """The replay key of the question ``q`` (see the module's docstring); computed once per question."""
    if q.replay_key is None:
        q.replay_key = request_key_of(q.body, [img.detail for img in q.images])
    return q.replay_key


def public_endpoint(base_url: str) -> str:
    """Scheme, host, port and path of ``base_url``: never a user, password, query string or fragment.

    Examples
    --------
    >>> public_endpoint("https://me:secret@llm.example.org:8443/v1/?api-key=abc#x")
    'https://llm.example.org:8443/v1'
    """
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    if ":" in host:
        host = f"[{host}]"
    return redact(f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}") if parts.scheme else ""


def image_record(img: PreparedImage, keyed: bool = True) -> dict[str, Any]:
    """What a record keeps of one image sent: label, SHA-256, type, size, bytes and tokens, and (``keyed``)
    the SHA-256 of its pixels that the replay key uses (decoding the image once)."""
    return {
        "label": redact(img.source),
        "sha256": image_digest(img),
        **({"pixels_sha256": image_identity(img)} if keyed else {}),
        "mime": img.mime,
        "width": img.width,
        "height": img.height,
        "bytes": img.nbytes,
        "tokens": img.tokens,
    }


def question_record(q: Question, keyed: bool = True) -> dict[str, Any]:
    """What a record keeps of the question ``q`` alone (no answer yet): model asked, endpoint, options, prompt,
    images and, when ``keyed``, the replay key. A batch keeps it per image while the server answers
    (:mod:`vision_magic.engine.batch_api`), so an answer arriving later needs no images in memory."""
    options = q.options
    return {
        "version": VERSION,
        "model": q.model,
        "model_asked": q.model,
        "endpoint": public_endpoint(q.base_url),
        "api": q.endpoint.api,  # "chat" (/chat/completions) or "responses" (/responses): which API answered
        "detail": options.detail,
        "params": {
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "seed": options.seed,
            "system": redact(options.system or ""),
            "json": bool(q.structured),
        },
        "prompt": redact(q.prompt),
        "images": [image_record(img, keyed=keyed) for img in q.images],
        "request_key": request_key(q) if keyed else None,  # a dry run is never replayed
    }


def answered_record(question: dict[str, Any], answer: Answer, elapsed: float | None = None) -> dict[str, Any]:
    """The record of ``answer`` to the question whose :func:`question_record` is ``question``."""
    usage = answer.usage or {}
    record: dict[str, Any] = {
        **question,
        "model": answer.model or question.get("model_asked"),
        "usage": (
            {"input_tokens": usage.get("prompt_tokens"), "output_tokens": usage.get("completion_tokens")}
            if answer.usage
            else None
        ),
        "cost_usd": answer.cost,
        "elapsed_s": None if elapsed is None else round(elapsed, 3),
        "finish_reason": answer.finish_reason,
        "replayed": bool(answer.replayed),
        "answer": answer.text,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if answer.dry_run:
        record["dry_run"] = True
    if answer.incomplete or answer.error:
        record["incomplete"] = bool(answer.incomplete)
        record["error"] = redact(answer.error or "")
    return record


def record_of(q: Question, answer: Answer, elapsed: float | None = None) -> dict[str, Any]:
    """The record of ``answer`` to ``q``: plain JSON data, saved with the answer in the notebook.

    Examples
    --------
    >>> from vision_magic.engine.question import build_question  # doctest: +SKIP
    >>> record_of(q, answer, 1.2)["usage"]  # doctest: +SKIP
    {'input_tokens': 95, 'output_tokens': 7}
    """
    return answered_record(question_record(q, keyed=not answer.dry_run), answer, elapsed)
