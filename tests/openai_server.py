"""A real OpenAI-compatible HTTP server for the test suite (standard library + jsonschema/referencing).

It speaks enough of the Chat Completions API for vision_magic and the official ``openai`` SDK:

* ``POST /v1/chat/completions`` (also ``/chat/completions`` and Azure-style
  ``/openai/deployments/{name}/chat/completions?api-version=...``), streaming (SSE) or not;
* ``GET /v1/models`` and ``GET /v1/models/{id}``;
* anything else: 404 with an OpenAI-style JSON error body.

Every chat request body is validated against OpenAI's published schema (``validate.py`` next to the
schema bundle); invalid bodies get a 400 and are listed in ``server.schema_errors``. Data-URL images are
checked (MIME and base64) and measured. Faults (error statuses, HTML error pages, dropped or malformed
streams, hangs, closed connections) can be queued or injected at random.

Usage in tests::

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.requests[-1].images[0]["mime"] == "image/png"

As a script (for demos and benchmarks)::

    python tests/openai_server.py [--port N] [--latency S] [--chunk-delay S]

prints the base URL on one line and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import copy
import functools
import importlib.util
import itertools
import json
import os
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "ALLOWED_IMAGE_MIMES",
    "DEFAULT_MODELS",
    "DEFAULT_ORIGINAL_MODELS",
    "FAULT_KINDS",
    "Fault",
    "OpenAIServer",
    "RecordedRequest",
    "default_reply",
    "find_schema_dir",
    "inspect_images",
    "last_user_text",
    "request_errors",
    "response_errors",
    "usage_for",
]

TESTS_DIR = Path(__file__).resolve().parent
VENDORED_SCHEMA_DIR = TESTS_DIR / "openai_schema"

ALLOWED_IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "gpt-5.4", "gpt-5.5")
DEFAULT_ORIGINAL_MODELS = frozenset({"gpt-5.4", "gpt-5.5"})
FAULT_KINDS = ("status", "html", "drop", "malformed", "hang", "close")

# Keyword arguments each fault kind understands (besides status and times).
_FAULT_PARAMS = {
    "status": {"message", "headers", "code", "type"},
    "html": {"body", "headers"},
    "drop": {"after"},
    "malformed": {"after"},
    "hang": {"seconds"},
    "close": set(),
}

_CHAT_PATH = re.compile(
    r"(?:/v1)?/chat/completions|/openai/deployments/(?P<deployment>[^/]+)/chat/completions"
)
_MODEL_PATH = re.compile(r"(?:/v1)?/models(?:/(?P<model>[^/]+))?")
_LONG_URL = 256  # image URLs longer than this are shortened before schema validation
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.S)

# Default error "type"/"code" per status, as OpenAI sends them.
_STATUS_ERRORS = {
    400: ("invalid_request_error", None, "Bad request (injected by the test server)."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided (injected by the test server).",
    ),
    403: (
        "permission_error",
        None,
        "You are not allowed to access this model (injected by the test server).",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist (injected by the test server).",
    ),
    408: ("timeout", None, "Request timed out (injected by the test server)."),
    409: ("conflict", None, "Conflict (injected by the test server)."),
    413: ("invalid_request_error", None, "Request too large (injected by the test server)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (injected by the test server)."),
    500: (
        "server_error",
        None,
        "The server had an error processing your request (injected by the test server).",
    ),
    502: ("server_error", None, "Bad gateway (injected by the test server)."),
    503: ("server_error", None, "The engine is currently overloaded (injected by the test server)."),
    504: ("server_error", None, "Gateway timeout (injected by the test server)."),
}

_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------------------------------
# Schema handling
# --------------------------------------------------------------------------------------------------


def find_schema_dir() -> Path:
    """The directory holding ``validate.py`` and ``openai-chat-schemas.json``.

    ``$VISION_MAGIC_SCHEMA_DIR`` if set; else ``<repo root>/../shared/openai-schema`` if it exists; else the
    copy vendored in ``tests/openai_schema``.
    """
    env = os.environ.get("VISION_MAGIC_SCHEMA_DIR")
    if env:
        return Path(env)
    shared = TESTS_DIR.parent.parent / "shared" / "openai-schema"
    if (shared / "validate.py").is_file():
        return shared
    return VENDORED_SCHEMA_DIR


@functools.cache
def _validate_module(schema_dir: str):
    """Import ``validate.py`` from ``schema_dir`` without touching ``sys.path`` or ``sys.modules``."""
    path = Path(schema_dir) / "validate.py"
    if not path.is_file():
        raise FileNotFoundError(f"no validate.py in schema directory {schema_dir}")
    name = "_vision_magic_openai_validate_%x" % (hash(str(path)) & 0xFFFFFFFF)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def request_errors(
    body: Any, schema_dir: str | os.PathLike | None = None, *, schema="CreateChatCompletionRequest"
):
    """``errors_for(schema, body)`` from the schema directory's ``validate.py`` (strict, as published)."""
    return _validate_module(str(schema_dir or find_schema_dir())).errors_for(schema, body)


def _nullable_to_anyof(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``"nullable": true`` (ignored by JSON Schema 2020-12) as ``anyOf [..., null]``."""
    if isinstance(node, dict):
        out = {
            k: _nullable_to_anyof(v) for k, v in node.items() if not (k == "nullable" and isinstance(v, bool))
        }
        if node.get("nullable") is True:
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_nullable_to_anyof(v) for v in node]
    return node


@functools.cache
def _response_validator(schema_dir: str, schema_name: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = json.loads((Path(schema_dir) / "openai-chat-schemas.json").read_text(encoding="utf-8"))
    doc = _nullable_to_anyof(doc)
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openai", resource)
    return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{schema_name}"}, registry=registry)


def response_errors(schema_name: str, body: Any, schema_dir: str | os.PathLike | None = None) -> list[str]:
    """Schema errors of a *response* body, like ``errors_for`` but honouring OpenAPI ``nullable``.

    The bundle is a subset of an OpenAPI 3.0-style description: fields such as a stream chunk's
    ``finish_reason`` are marked ``"nullable": true``, which JSON Schema 2020-12 ignores, so real OpenAI
    responses (``"finish_reason": null``) would fail the plain validator.
    """
    v = _response_validator(str(schema_dir or find_schema_dir()), schema_name)
    out = []
    for e in sorted(v.iter_errors(body), key=lambda e: -len(e.absolute_path)):
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        out.append(f"{where}: {e.message[:300]}")
    return out


# --------------------------------------------------------------------------------------------------
# Request inspection and deterministic replies
# --------------------------------------------------------------------------------------------------


def _messages(body: Any) -> list[dict]:
    msgs = body.get("messages") if isinstance(body, dict) else None
    return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []


def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    return []


def _text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(
        p["text"] for p in _parts(message) if p.get("type") == "text" and isinstance(p.get("text"), str)
    )


def last_user_text(body: Any) -> str:
    """Text of the last user message (text parts joined by newlines), or ''."""
    for message in reversed(_messages(body)):
        if message.get("role") == "user":
            return _text_of(message)
    return ""


def _image_parts(body: Any) -> list[dict]:
    return [p for m in _messages(body) for p in _parts(m) if p.get("type") == "image_url"]


def inspect_images(body: Any) -> tuple[list[dict], str | None]:
    """Describe every ``image_url`` part of every message and find the first invalid data URL.

    Returns ``(images, error)``; each image is ``{"url_kind": "data"|"http", "mime", "bytes", "detail"}``
    (``mime``/``bytes`` are None for http URLs, which also carry ``"url"``). ``error`` is the message of an
    ``invalid_image_format`` rejection, or None.
    """
    images: list[dict] = []
    error = None
    for part in _image_parts(body):
        image_url = part.get("image_url")
        image_url = image_url if isinstance(image_url, dict) else {}
        url = image_url.get("url")
        detail = image_url.get("detail")
        if not isinstance(url, str):
            continue
        if not url.startswith("data:"):
            images.append({"url_kind": "http", "mime": None, "bytes": None, "detail": detail, "url": url})
            continue
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
        if problem and error is None:
            error = problem
        images.append({"url_kind": "data", "mime": mime, "bytes": nbytes, "detail": detail})
    return images, error


def default_reply(body: Any) -> str:
    """The server's deterministic answer: Markdown with a LaTeX bit, echoing the last user prompt."""
    model = body.get("model") if isinstance(body, dict) else None
    n = len(_image_parts(body))
    return (
        f"**Answer** from {model}: I see {n} image(s).\n\n"
        f"You asked: {last_user_text(body)}\n\n"
        "A formula: \\(E = mc^2\\)"
    )


def usage_for(body: Any, text: str) -> dict:
    """Deterministic token usage: prompt = 10 + (all message text chars)//4 + 85 per image."""
    chars = sum(len(_text_of(m)) for m in _messages(body))
    n_images = len(_image_parts(body))
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


def _error_body(
    message: str, type_: str = "invalid_request_error", code: str | None = None, param=None
) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# --------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One HTTP request as the server received it."""

    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None (no body / not JSON)
    raw: bytes
    time: float  # time.time() when the request line and body had been read
    monotonic: float = 0.0  # time.monotonic() at the same moment
    query: dict[str, str] = field(default_factory=dict)
    deployment: str | None = None  # Azure-style path's deployment name
    images: list[dict] = field(default_factory=list)  # see inspect_images()
    fault: str | None = None  # kind of the injected fault, if any
    status: int | None = None  # HTTP status sent (None: connection closed without a response)
    error: str | None = None  # error code of a 4xx the server produced itself (schema_validation, ...)
    client: tuple = ()  # (host, port) of the client socket: same port = same keep-alive connection

    @property
    def is_chat(self) -> bool:
        return _CHAT_PATH.fullmatch(self.path) is not None and self.method == "POST"


@dataclass
class Fault:
    kind: str
    status: int | None = None
    params: dict = field(default_factory=dict)


class _Abort(Exception):
    """Close the connection now, without (the rest of) a response."""


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog (socketserver's default of 5 resets bursts of connections)

    def __init__(self, address, handler, owner: OpenAIServer):
        self.owner = owner
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind calls socket.getfqdn(), which may do a (slow) reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away, socket shut down by stop(), ...
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vision-magic-test-openai/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections

    server: _HTTPServer

    # -- connection lifecycle --------------------------------------------------------------------

    def setup(self):
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._track(self.connection, False)

    def handle(self):
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        if self.server.owner.verbose:
            sys.stderr.write(f"[openai_server] {self.address_string()} {format % args}\n")

    def do_GET(self):
        self._guarded()

    def do_POST(self):
        self._guarded()

    def do_PUT(self):
        self._guarded()

    def do_DELETE(self):
        self._guarded()

    def do_PATCH(self):
        self._guarded()

    def _guarded(self):
        try:
            self._route()
        except _Abort:
            self._hard_close()
        except OSError:
            self.close_connection = True

    def _hard_close(self):
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- reading ---------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- writing ---------------------------------------------------------------------------------

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:  # tell the client not to reuse the connection
            self.send_header("Connection", "close")
        self._common_headers(headers)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json", headers)

    def _common_headers(self, headers: dict | None):
        self.send_header("x-request-id", self._request_id)
        self.send_header("openai-processing-ms", "1")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))

    def _start_sse(self, close: bool = False):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if close:
            self.send_header("Connection", "close")
        self._common_headers(None)
        self.end_headers()
        self.wfile.flush()

    def _write_chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _write_event(self, obj: Any):
        self._write_chunk(b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n")

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _record_status(self, record: RecordedRequest, status: int, error: str | None = None):
        record.status = status
        if error:
            record.error = error

    # -- routing ---------------------------------------------------------------------------------

    def _route(self):
        owner = self.server.owner
        split = urlsplit(self.path)
        path = split.path
        raw = self._read_body()
        now, mono = time.time(), time.monotonic()
        body = None
        json_problem = None
        if raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                json_problem = str(exc)
        record = RecordedRequest(
            method=self.command,
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
            time=now,
            monotonic=mono,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            client=tuple(self.client_address[:2]),
        )
        self._request_id = owner._record(record)

        chat = _CHAT_PATH.fullmatch(path)
        models = _MODEL_PATH.fullmatch(path)
        if chat and self.command == "POST":
            record.deployment = chat["deployment"]
            self._chat(record, json_problem)
        elif models and self.command == "GET":
            self._models(record, models["model"])
        else:
            self._record_status(record, 404, "unknown_url")
            self._send_json(404, _error_body(f"Invalid URL ({self.command} {path})"))

    def _models(self, record: RecordedRequest, model_id: str | None):
        owner = self.server.owner
        entries = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "vision-magic-tests"}
            for m in owner.models
        ]
        if model_id is None:
            self._record_status(record, 200)
            self._send_json(200, {"object": "list", "data": entries})
            return
        for entry in entries:
            if entry["id"] == model_id:
                self._record_status(record, 200)
                self._send_json(200, entry)
                return
        self._record_status(record, 404, "model_not_found")
        self._send_json(
            404,
            _error_body(f"The model '{model_id}' does not exist", code="model_not_found", param="model"),
        )

    # -- chat completions ------------------------------------------------------------------------

    def _chat(self, record: RecordedRequest, json_problem: str | None):
        owner = self.server.owner
        wake = owner._wake  # reset() and stop() set it: hung or delayed requests then give up
        body = record.body

        if json_problem is not None or not isinstance(body, dict):
            why = (
                f"request body is not valid JSON ({json_problem})"
                if json_problem is not None
                else f"request body must be a JSON object, got {type(body).__name__}"
            )
            errors = [f"(root): {why}"]
            owner._schema_error(record.path, errors)
            body = {}
        else:
            if record.deployment and "model" not in body:
                body = {**body, "model": record.deployment}  # Azure takes the model from the URL
            errors = owner.validate_request(body)
            if errors:
                owner._schema_error(record.path, errors)
        images, image_error = inspect_images(body)
        record.images = images

        fault = owner._next_fault()
        if fault is not None:
            record.fault = fault.kind

        if owner.latency and not self._wait(wake, owner.latency):
            raise _Abort

        if fault is not None and fault.kind == "hang":
            if not self._wait(wake, float(fault.params.get("seconds", 60))):
                raise _Abort
            fault = None  # then answer normally
        if fault is not None and fault.kind in ("status", "html", "close"):
            self._simple_fault(record, fault)
            return

        if errors and fault is None:
            self._record_status(record, 400, "schema_validation")
            self._send_json(400, _error_body("; ".join(errors[:3]), code="schema_validation"))
            return
        if image_error and fault is None:
            self._record_status(record, 400, "invalid_image_format")
            self._send_json(400, _error_body(image_error, code="invalid_image_format", param="messages"))
            return

        try:
            reply = owner.reply
            text = default_reply(body) if reply is None else reply(body) if callable(reply) else str(reply)
        except Exception as exc:  # a broken reply callable is a test bug: make it visible
            self._record_status(record, 500, "reply_callable_failed")
            self._send_json(500, _error_body(f"reply callable failed: {exc!r}", type_="server_error"))
            return

        model = body.get("model") if isinstance(body.get("model"), str) else record.deployment or "unknown"
        completion_id = f"chatcmpl-vmtest{_record_index(self._request_id):06d}"
        created = int(record.time)
        usage = usage_for(body, text)
        if body.get("stream") is True:
            self._stream(record, body, text, model, completion_id, created, usage, fault, wake)
        else:
            self._complete(record, text, model, completion_id, created, usage, fault)

    def _simple_fault(self, record: RecordedRequest, fault: Fault):
        if fault.kind == "close":
            record.status = None
            raise _Abort
        if fault.kind == "status":
            status = fault.status or 500
            type_, code, message = _STATUS_ERRORS.get(
                status, ("server_error", None, f"HTTP {status} (injected)")
            )
            p = fault.params
            body = _error_body(
                p.get("message", message), type_=p.get("type", type_), code=p.get("code", code)
            )
            self._record_status(record, status)
            self._send_json(status, body, p.get("headers"))
            return
        status = fault.status or 502
        reason = self.responses.get(status, ("Error",))[0]
        page = fault.params.get("body") or _HTML_PAGE.format(status=status, reason=reason)
        self._record_status(record, status)
        self._send(status, page.encode("utf-8"), "text/html; charset=utf-8", fault.params.get("headers"))

    def _complete(self, record, text, model, completion_id, created, usage, fault):
        owner = self.server.owner
        obj = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": owner.finish_reason,
                }
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_vmtest",
        }
        payload = json.dumps(obj).encode("utf-8")
        self._record_status(record, 200)
        if fault is None:
            self._send(200, payload, "application/json")
        elif fault.kind == "drop":  # announce the whole body, send half of it, hang up
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self._common_headers(None)
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            raise _Abort
        else:  # malformed
            self.close_connection = True
            self._send(
                200, b'{"id": "' + completion_id.encode() + b'", "choices": [{not json', "application/json"
            )

    def _stream(self, record, body, text, model, completion_id, created, usage, fault, wake):
        owner = self.server.owner
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        size = max(1, int(owner.chunk_size))
        pieces = [text[i : i + size] for i in range(0, len(text), size)]

        def chunk(choices: list, **extra) -> dict:
            obj = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_vmtest",
                "choices": choices,
            }
            if include_usage:
                obj["usage"] = None
            obj.update(extra)
            return obj

        def choice(delta: dict, finish_reason=None) -> list:
            return [{"index": 0, "delta": delta, "finish_reason": finish_reason}]

        events = []
        if owner.empty_first_chunk:
            events.append(chunk([]))
        events.append(chunk(choice({"role": "assistant", "content": ""})))
        events += [chunk(choice({"content": p})) for p in pieces]
        events.append(chunk(choice({}, owner.finish_reason)))
        if include_usage:
            events.append(chunk([], usage=usage))

        stop_after = None  # number of content chunks to send before the fault strikes
        if fault is not None:
            stop_after = int(fault.params.get("after", 2))
            head = (1 if owner.empty_first_chunk else 0) + 1
            events = events[: head + min(stop_after, len(pieces))]

        self._record_status(record, 200)
        self._start_sse(close=fault is not None)
        delay = owner.chunk_delay
        for i, event in enumerate(events):
            if i and delay and not self._wait(wake, delay):
                raise _Abort
            self._write_event(event)
        if fault is not None and fault.kind == "drop":
            raise _Abort
        if fault is not None:  # malformed
            self._write_chunk(b"data: {not json\n\n")
            self._end_chunks()
        else:  # [DONE] and the end of the chunked body in one write, so a client that stops reading
            # at [DONE] usually has the whole message and can keep the connection alive
            self.wfile.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
            self.wfile.flush()

    def _wait(self, wake: threading.Event, seconds: float) -> bool:
        """Sleep; False if reset()/stop() interrupted the sleep."""
        return not wake.wait(seconds)


def _record_index(request_id: str) -> int:
    return int(request_id.rsplit("_", 1)[-1])


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------

_SETTINGS = (
    "reply",
    "latency",
    "chunk_size",
    "chunk_delay",
    "empty_first_chunk",
    "original_models",
    "fault_rate",
    "retry_after",
    "seed",
    "models",
    "finish_reason",
)


class OpenAIServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 in a daemon thread. See the module docstring.

    Settings (plain attributes; ``reset()`` restores the constructor's values):
      reply              None (default_reply), a string, or a callable ``(body) -> str``
      latency            seconds slept before answering each chat request
      chunk_size         characters per streamed content chunk
      chunk_delay        seconds between streamed chunks
      empty_first_chunk  stream a first chunk with ``choices: []``
      original_models    models for which image ``detail: "original"`` is accepted
      fault_rate         None or ``(probability, status_code_or_fault_kind)``: random faults
      retry_after        Retry-After header value of random status faults
      seed               seed of the random-fault generator
      models             ids listed by ``GET /v1/models``
      finish_reason      finish_reason of successful answers
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reply: str | Callable[[dict], str] | None = None,
        latency: float = 0.0,
        chunk_size: int = 8,
        chunk_delay: float = 0.0,
        empty_first_chunk: bool = False,
        original_models: set[str] | frozenset[str] = DEFAULT_ORIGINAL_MODELS,
        fault_rate: tuple[float, int | str] | None = None,
        retry_after: str = "0",
        seed: int = 0,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
        finish_reason: str = "stop",
        schema_dir: str | os.PathLike | None = None,
        verbose: bool = False,
    ):
        self.host = host
        self.port = port
        self.schema_dir = Path(schema_dir) if schema_dir else find_schema_dir()
        self.verbose = verbose
        self._defaults = {
            "reply": reply,
            "latency": latency,
            "chunk_size": chunk_size,
            "chunk_delay": chunk_delay,
            "empty_first_chunk": empty_first_chunk,
            "original_models": set(original_models),
            "fault_rate": fault_rate,
            "retry_after": retry_after,
            "seed": seed,
            "models": list(models),
            "finish_reason": finish_reason,
        }
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._wake = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.schema_errors: list[tuple[str, list[str]]] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._apply_defaults()
        # Fail early if the schema directory is unusable, and build the (cached) validator now: the first
        # validation costs ~0.5 s, which would otherwise land on the first request of a test.
        request_errors({}, self.schema_dir)

    # -- settings and recordings -----------------------------------------------------------------

    def _apply_defaults(self):
        for name in _SETTINGS:
            setattr(self, name, copy.deepcopy(self._defaults[name]))
        self._rng = random.Random(self.seed)
        self._counter = itertools.count(1)

    def reset(self) -> None:
        """Forget recordings and queued faults, restore settings, wake (and abort) hung requests."""
        with self._lock:
            self.requests.clear()
            self.schema_errors.clear()
            self._faults.clear()
            old, self._wake = self._wake, threading.Event()
            self._apply_defaults()
        old.set()

    def _record(self, record: RecordedRequest) -> str:
        with self._lock:
            self.requests.append(record)
            return f"req_vmtest_{next(self._counter)}"

    def _schema_error(self, path: str, errors: list[str]) -> None:
        with self._lock:
            self.schema_errors.append((path, list(errors)))

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded chat completion requests (a snapshot)."""
        with self._lock:
            return [r for r in self.requests if r.is_chat]

    @property
    def last(self) -> RecordedRequest:
        """The most recent chat completion request."""
        chats = self.chat_requests
        if not chats:
            raise LookupError("the server has not received any chat completion request")
        return chats[-1]

    def validate_request(self, body: Any) -> list[str]:
        """Schema errors of a chat request body, with ``detail: "original"`` allowed for ``original_models``.

        Validated on a copy in which long image URLs are shortened: the schema only asks for a string there,
        and jsonschema puts the repr of the whole message into every failed anyOf/oneOf branch, which costs
        seconds for a 20 MB data URL.
        """
        if not isinstance(body, dict):
            return request_errors(body, self.schema_dir)
        allow_original = body.get("model") in self.original_models
        parts = [p for p in _image_parts(body) if isinstance(p.get("image_url"), dict)]
        if any(
            (allow_original and p["image_url"].get("detail") == "original")
            or len(str(p["image_url"].get("url", ""))) > _LONG_URL
            for p in parts
        ):
            body = copy.deepcopy(body)
            for p in _image_parts(body):
                image_url = p.get("image_url")
                if not isinstance(image_url, dict):
                    continue
                if allow_original and image_url.get("detail") == "original":
                    image_url["detail"] = "high"
                url = image_url.get("url")
                if isinstance(url, str) and len(url) > _LONG_URL:
                    image_url["url"] = url[:_LONG_URL]
        return request_errors(body, self.schema_dir)

    # -- faults ----------------------------------------------------------------------------------

    def add_fault(self, kind: str, *, status: int | None = None, times: int = 1, **kw: Any) -> None:
        """Queue ``times`` faults of ``kind`` for the next chat requests (consumed in order).

        kinds and their keyword arguments:
          status     HTTP ``status`` (default 500) with an OpenAI JSON error; message=, headers=, code=, type=
          html       HTTP ``status`` (default 502) with an HTML page (text/html); body=, headers=
          drop       stream ``after`` (default 2) content chunks, then close the socket (no finish, usage, [DONE]);
                     non-streaming: half of the JSON body, then close
          malformed  stream ``after`` (default 2) content chunks, then ``data: {not json``, then close;
                     non-streaming: a 200 whose JSON body is cut short
          hang       sleep ``seconds`` (default 60) before answering normally; reset()/stop() abort it
          close      close the connection without any response
        """
        if kind not in _FAULT_PARAMS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        unknown = set(kw) - _FAULT_PARAMS[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} does not take {sorted(unknown)}")
        if status is not None and kind not in ("status", "html"):
            raise TypeError(f"fault {kind!r} does not take a status")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(kind, status, copy.deepcopy(kw)))

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self.fault_rate is None:
                return None
            probability, what = self.fault_rate
            if self._rng.random() >= probability:
                return None
        if isinstance(what, int):
            return Fault("status", what, {"headers": {"Retry-After": str(self.retry_after)}})
        if what == "status":
            return Fault("status", 500, {"headers": {"Retry-After": str(self.retry_after)}})
        return Fault(what, None, {})

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (e.g. an Azure endpoint)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (what ``OPENAI_BASE_URL`` should be)."""
        return f"{self.root_url}/v1"

    def start(self) -> OpenAIServer:
        if self._httpd is not None:
            return self
        self._wake = threading.Event()
        httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; returns promptly even with hung or streaming requests in flight."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = None
        self._wake.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=2)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<OpenAIServer {self.base_url} {state}, {len(self.requests)} request(s)>"


# --------------------------------------------------------------------------------------------------
# Script entry point
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server (prints its base URL).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each chat answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--chunk-size", type=int, default=8, help="characters per streamed chunk")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a random fault")
    parser.add_argument("--fault-status", type=int, default=429, help="status code of random faults")
    parser.add_argument("--retry-after", default="0", help="Retry-After of random faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    server = OpenAIServer(
        args.host,
        args.port,
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        chunk_size=args.chunk_size,
        fault_rate=(args.fault_rate, args.fault_status) if args.fault_rate > 0 else None,
        retry_after=args.retry_after,
        seed=args.seed,
        verbose=args.verbose,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    server.start()
    print(server.base_url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
