"""What vision_magic knows about each kind of OpenAI-compatible server, as data: one row per server.

A row gives the facts an :class:`~vision_magic.engine.endpoints.Endpoint` starts from; an entry of
``%config VisionMagic.endpoints`` overrides any of them. The row in force is ``%config VisionMagic.server``
(or an endpoint entry's ``server``), else the one :func:`detect_server` reads from the base URL, else
``"generic"``. docs/servers.md says why each fact is what it is.

facts:
  fetch_urls   the server downloads ``http(s)`` image URLs itself (else vision_magic inlines them as base64)
  detail       it honours the image ``detail`` field (else the field is left out)
  formats      image formats it decodes; any other is re-encoded (by its bytes, not its name) as PNG or JPEG
  json_mode    how ``--json`` asks for JSON: ``"json_object"``, ``"json_schema"`` (a permissive schema), or
               ``"none"`` (asked for in the prompt only; the answer is parsed either way)
  token_param  the name of the answer-length field: ``"max_tokens"`` or ``"max_completion_tokens"``

Examples
--------
>>> detect_server("http://localhost:11434/v1"), detect_server("http://gpu-box:8000/v1")
('ollama', '')
>>> SERVER_PROFILES["lmstudio"]["json_mode"]
'json_schema'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

ALL_FORMATS = ("png", "jpeg", "webp", "gif")
SAFE_FORMATS = ("png", "jpeg")  # what every server decodes
JSON_MODES = ("json_object", "json_schema", "none")
TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")

SERVER_PROFILES: dict[str, dict[str, Any]] = {
    "openai": {
        "fetch_urls": True,
        "detail": True,
        "formats": ALL_FORMATS,
        "json_mode": "json_object",
        "token_param": "max_completion_tokens",
    },
    "azure": {
        "fetch_urls": True,
        "detail": True,
        "formats": ALL_FORMATS,
        "json_mode": "json_object",
        "token_param": "max_completion_tokens",
    },
    "ollama": {  # /v1 rejects URLs and GIF, ignores detail; format "json" behind json_object
        "fetch_urls": False,
        "detail": False,
        "formats": ("png", "jpeg", "webp"),
        "json_mode": "json_object",
        "token_param": "max_tokens",
    },
    "vllm": {  # fetches URLs only with internet access (5 s timeout): inline by default; drops detail
        "fetch_urls": False,
        "detail": False,
        "formats": ALL_FORMATS,
        "json_mode": "json_object",
        "token_param": "max_tokens",
    },
    "lmstudio": {  # base64 only; some builds reject WEBP; json_object refused ("must be 'json_schema' or 'text'")
        "fetch_urls": False,
        "detail": False,
        "formats": SAFE_FORMATS,
        "json_mode": "json_schema",
        "token_param": "max_tokens",
    },
    "llamacpp": {  # stb_image decodes no WEBP ("Failed to load image or audio file")
        "fetch_urls": False,
        "detail": False,
        "formats": SAFE_FORMATS,
        "json_mode": "json_object",
        "token_param": "max_tokens",
    },
    "litellm": {  # a proxy: the backend decides; PNG/JPEG and inlined images are safe for every backend
        "fetch_urls": False,
        "detail": True,
        "formats": SAFE_FORMATS,
        "json_mode": "json_object",
        "token_param": "max_tokens",
    },
    "transformers": {  # transformers serve: ignores response_format, strict about unknown fields
        "fetch_urls": False,
        "detail": False,
        "formats": SAFE_FORMATS,
        "json_mode": "none",
        "token_param": "max_tokens",
    },
    "generic": {  # any other server: what every OpenAI-compatible server takes
        "fetch_urls": False,
        "detail": True,
        "formats": SAFE_FORMATS,
        "json_mode": "json_object",
        "token_param": "max_tokens",
    },
}

# Default ports that only one kind of server uses (8000 is vLLM's and transformers serve's: not reliable)
_PORTS = {11434: "ollama", 1234: "lmstudio"}


# ``owned_by`` values of GET /v1/models that name the server (only ones no other server uses)
OWNED_BY = {"vllm": "vllm", "llamacpp": "llamacpp"}


def server_of_models(owners: list[str]) -> str:
    """The server a ``/v1/models`` answer names when every entry's ``owned_by`` says the same, else ``""``.

    Examples
    --------
    >>> server_of_models(["vllm", "vllm"]), server_of_models(["openai", "system"])
    ('vllm', '')
    """
    found = {OWNED_BY.get(str(o).lower(), "") for o in owners}
    return found.pop() if len(found) == 1 else ""


def detect_server(base_url: str) -> str:
    """The server a base URL is reliably known to be (OpenAI's and Azure's hosts, Ollama's and LM Studio's
    default ports), else ``""``."""
    parsed = urlparse(base_url)
    host = parsed.hostname or ""
    if host == "api.openai.com":
        return "openai"
    if host.endswith(".openai.azure.com"):
        return "azure"
    try:
        port = parsed.port
    except ValueError:
        return ""
    return _PORTS.get(port or 0, "")


def server_facts(name: str) -> dict[str, Any]:
    """The facts of server ``name`` (a copy); an unknown name is a ``KeyError`` listing the known ones."""
    if name not in SERVER_PROFILES:
        raise KeyError(f"unknown server {name!r}: use one of {', '.join(SERVER_PROFILES)}")
    return dict(SERVER_PROFILES[name])
