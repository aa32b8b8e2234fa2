"""Injected faults: their kinds and parameters, and the error responses of the ``status`` and ``html`` kinds.

kinds and their keyword arguments (``OpenAIServer.add_fault``):
  status     HTTP ``status`` (default 500) with an OpenAI JSON error; message=, headers=, code=, type=
  html       HTTP ``status`` (default 502) with an HTML page (text/html); body=, headers=, content_type=
             (e.g. ``status=200, body="OK", content_type="text/plain"``: a proxy that is not the API;
             ``body=""``: an empty body)
  drop       stream ``after`` (default 2) content chunks, then close the socket (no finish, usage, [DONE]);
             non-streaming: half of the JSON body, then close
  malformed  stream ``after`` (default 2) content chunks, then ``data: {not json``, then close;
             non-streaming: a 200 whose JSON body is cut short
  hang       sleep ``seconds`` (default 60) before answering normally; reset()/stop() abort it
  close      close the connection without any response
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .replies import error_body

FAULT_KINDS = ("status", "html", "drop", "malformed", "hang", "close")

# Keyword arguments each fault kind understands (besides status and times).
FAULT_PARAMS = {
    "status": {"message", "headers", "code", "type"},
    "html": {"body", "headers", "content_type"},
    "drop": {"after"},
    "malformed": {"after"},
    "hang": {"seconds"},
    "close": set(),
}

# Faults answered (or hung up on) before any reply text exists.
EARLY_FAULTS = ("status", "html", "close")

# Default error "type"/"code" per status, as OpenAI sends them.
STATUS_ERRORS = {
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

HTML_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Fault:
    kind: str
    status: int | None = None
    params: dict = field(default_factory=dict)


def make_faults(kind: str, status: int | None, times: int, params: dict[str, Any]) -> list[Fault]:
    """``times`` faults of ``kind`` (each with its own copy of ``params``), or the error ``add_fault`` raises."""
    if kind not in FAULT_PARAMS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    unknown = set(params) - FAULT_PARAMS[kind]
    if unknown:
        raise TypeError(f"fault {kind!r} does not take {sorted(unknown)}")
    if status is not None and kind not in ("status", "html"):
        raise TypeError(f"fault {kind!r} does not take a status")
    if times < 1:
        raise ValueError("times must be >= 1")
    return [Fault(kind, status, copy.deepcopy(params)) for _ in range(times)]


def random_fault(what: int | str, retry_after: str) -> Fault:
    """The fault of a ``fault_rate = (probability, what)`` hit: a status code or a fault kind."""
    if isinstance(what, int):
        return Fault("status", what, {"headers": {"Retry-After": str(retry_after)}})
    if what == "status":
        return Fault("status", 500, {"headers": {"Retry-After": str(retry_after)}})
    return Fault(what, None, {})


def status_error(fault: Fault) -> tuple[int, dict, dict | None]:
    """``(status, OpenAI JSON error body, extra headers)`` of a ``status`` fault."""
    status = fault.status or 500
    type_, code, message = STATUS_ERRORS.get(status, ("server_error", None, f"HTTP {status} (injected)"))
    p = fault.params
    body = error_body(p.get("message", message), type_=p.get("type", type_), code=p.get("code", code))
    return status, body, p.get("headers")


def html_error(fault: Fault, reasons: Mapping[int, tuple[str, str]]) -> tuple[int, bytes, dict | None]:
    """``(status, HTML page, extra headers)`` of an ``html`` fault; ``reasons`` maps status to (phrase, ...)."""
    status = fault.status or 502
    reason = reasons.get(status, ("Error",))[0]
    page = fault.params["body"] if "body" in fault.params else HTML_PAGE.format(status=status, reason=reason)
    return status, page.encode("utf-8"), fault.params.get("headers")
