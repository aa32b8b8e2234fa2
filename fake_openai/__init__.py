"""fake_openai: a real OpenAI-compatible HTTP server on 127.0.0.1 that plays the model in tests and benchmarks.

Standard library plus jsonschema/referencing. It speaks enough of the Chat Completions API for vision_magic
and the official ``openai`` SDK:

* ``POST /v1/chat/completions`` (also ``/chat/completions`` and Azure-style
  ``/openai/deployments/{name}/chat/completions?api-version=...``), streaming (SSE) or not;
* ``POST /v1/responses`` (the Responses API: ``input_text``/``input_image`` parts, streamed as events or
  whole; validated against ``CreateResponse``, see ``schema.responses_request_errors``);
* ``GET /v1/models`` and ``GET /v1/models/{id}``;
* anything else: 404 with an OpenAI-style JSON error body.

Every chat request body is validated against OpenAI's published schema (``validate.py`` next to the
schema bundle, see ``find_schema_dir``); invalid bodies get a 400 and are listed in ``server.schema_errors``.
Data-URL images are checked (MIME and base64) and measured. Faults (error statuses, HTML error pages, dropped
or malformed streams, hangs, closed connections) can be queued or injected at random. Behaviour switches
copy other OpenAI-compatible servers (no ``[DONE]``, usage on the finish chunk, error shapes of FastAPI and
LiteLLM, unknown-model answers, WEBP refused, a 1 MB body limit, ...): ``OpenAIServer(behaviour="llamacpp")``,
``server.behave("litellm")`` or single settings, see ``behaviours``.

Usage in tests::

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.requests[-1].images[0]["mime"] == "image/png"

As a script (for demos and benchmarks), from the repository root::

    python -m fake_openai [--port N] [--latency S] [--chunk-delay S]

prints the base URL on one line and serves until killed.

Modules: ``server`` (OpenAIServer: settings, recording, faults, lifecycle), ``handler`` (the endpoints),
``transport`` (HTTP plumbing), ``replies`` (the ``Reply`` record and the JSON/SSE bodies built from it),
``faults`` (fault kinds and their error responses), ``request_body`` (reading a request: messages, images,
default reply, usage), ``recording`` (RecordedRequest), ``schema`` (finding and applying OpenAI's schema),
``urls`` (the paths served), ``behaviours`` (switches and presets copying other servers).
"""

from __future__ import annotations

from .behaviours import BEHAVIOUR_DEFAULTS, PRESETS
from .faults import FAULT_KINDS, Fault
from .recording import RecordedRequest
from .replies import Reply
from .request_body import ALLOWED_IMAGE_MIMES, default_reply, inspect_images, last_user_text, usage_for
from .schema import VENDORED_SCHEMA_DIR, find_schema_dir, request_errors, response_errors
from .server import DEFAULT_MODELS, DEFAULT_ORIGINAL_MODELS, OpenAIServer

__all__ = [
    "ALLOWED_IMAGE_MIMES",
    "BEHAVIOUR_DEFAULTS",
    "PRESETS",
    "DEFAULT_MODELS",
    "DEFAULT_ORIGINAL_MODELS",
    "FAULT_KINDS",
    "VENDORED_SCHEMA_DIR",
    "Fault",
    "OpenAIServer",
    "RecordedRequest",
    "Reply",
    "default_reply",
    "find_schema_dir",
    "inspect_images",
    "last_user_text",
    "request_errors",
    "response_errors",
    "usage_for",
]
