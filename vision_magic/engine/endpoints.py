"""Per-endpoint settings, and inlining image URLs for servers that cannot fetch them.

``%config VisionMagic.endpoints`` maps a name to settings of one OpenAI-compatible server; the entry whose
``base_url`` matches the endpoint in force applies. Without an entry, only api.openai.com (and Azure OpenAI)
are trusted to fetch ``http(s)`` image URLs; for every other server, vision_magic downloads the image itself
(size cap, total deadline, content-type check) and sends it as base64, the one format every server takes.

Examples
--------
>>> %config VisionMagic.server = "lmstudio"  # doctest: +SKIP
>>> %config VisionMagic.endpoints = {"ollama": {"base_url": "http://localhost:11434/v1", "detail": False}}  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from ..errors import ConfigError, add_secret
from ..images.download import DEFAULT_INLINE_MAX_BYTES, DEFAULT_INLINE_TIMEOUT, download
from ..images.encode import ImageOptions, PreparedImage, prepare_bytes
from .servers import ALL_FORMATS, JSON_MODES, SERVER_PROFILES, TOKEN_PARAMS, detect_server, server_facts

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_MAX_IMAGES = 500  # image inputs per request OpenAI accepts
BATCH_MAX_REQUESTS = (
    50_000  # requests per Batch API input file OpenAI accepts (the default of every Endpoint)
)
BATCH_MAX_BYTES = 200_000_000  # bytes per Batch API input file (200 MB)
NO_KEY_PLACEHOLDER = "no-key-needed"  # local servers ignore the key, but the SDK insists on one
WHERE_KEYS_GO = (
    "set {} in the environment that starts Jupyter, or load it from a .env file or a keyring "
    "(not in a notebook cell: the notebook would keep it)"
)


def resolve_base_url(cfg: Any) -> str:
    """The endpoint in force: ``VisionMagic.base_url``, else ``OPENAI_BASE_URL``, else OpenAI's. A password in
    it (``http://user:password@host/v1``) is added to what :func:`~vision_magic.errors.redact` removes."""
    url = (cfg.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
    add_secret(urlparse(url).password or "")
    return url


def is_openai(base_url: str) -> bool:
    """True for api.openai.com and Azure OpenAI (``*.openai.azure.com``).

    Examples
    --------
    >>> is_openai("https://api.openai.com/v1"), is_openai("http://localhost:11434/v1")
    (True, False)
    """
    host = urlparse(base_url).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.azure.com")


@dataclass
class Endpoint:
    """What vision_magic knows about one server.

    Attributes
    ----------
    base_url : the server's OpenAI-compatible base URL.
    server : the row of :data:`~vision_magic.engine.servers.SERVER_PROFILES` the unset facts come from
        (default: what the base URL reliably says, else ``"generic"``).
    api_key_env : the environment variable holding its key (default ``OPENAI_API_KEY``).
    fetch_urls : whether the server downloads ``http(s)`` image URLs itself (default: only OpenAI/Azure).
    detail : whether it honours the image ``detail`` field (False: the field is left out).
    models : its vision models (informational; listed in ``%config``).
    inline_max_bytes, inline_timeout : limits for downloading images that are inlined as base64 (the timeout is
        the total time a download may take, in seconds).
    formats : the image formats it decodes (``png``, ``jpeg``, ``webp``, ``gif``); an image in any other is
        re-encoded as PNG or JPEG, judged by its bytes (default: all four for OpenAI/Azure, else PNG and JPEG).
    webp : whether it takes WEBP (shorthand that adds ``webp`` to or removes it from ``formats``): graphics
        then go as lossless WEBP when smaller than PNG.
    json_mode : how ``--json`` asks for JSON: ``json_object``, ``json_schema`` (a permissive schema) or
        ``none`` (in the prompt only).
    token_param : ``max_tokens`` or ``max_completion_tokens`` (OpenAI's newer models take only the latter).
    batch_api : whether the server offers the Files and Batch APIs (``via="batch"``).
    api : ``chat`` (Chat Completions, the default) or ``responses`` (the Responses API), from
        ``%config VisionMagic.api`` unless the entry gives its own.
    max_images : the most images one request may hold (OpenAI: 500; None: not known, so only a warning
        above :data:`vision_magic.engine.question.MANY_IMAGES`).
    batch_max_requests, batch_max_bytes : the most requests and bytes one Batch API input file may hold
        (default :data:`BATCH_MAX_REQUESTS`, :data:`BATCH_MAX_BYTES`: OpenAI's 50,000 and 200 MB);
        ``via="batch"`` splits the work into as many files as they need.

    Examples
    --------
    >>> endpoint_for("http://localhost:11434/v1").fetch_urls
    False
    >>> endpoint_for("https://api.openai.com/v1").fetch_urls
    True
    """

    base_url: str
    name: str = ""
    server: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    fetch_urls: bool | None = None
    detail: bool | None = None
    models: list[str] = field(default_factory=list)
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    inline_timeout: float = DEFAULT_INLINE_TIMEOUT
    formats: list[str] | tuple[str, ...] | None = None
    webp: bool | None = None
    max_images: int | None = None
    batch_max_requests: int | None = None
    batch_max_bytes: int | None = None
    json_mode: str | None = None
    token_param: str | None = None
    batch_api: bool | None = None
    api: str = "chat"

    def __post_init__(self) -> None:
        self.server = str(self.server or "").lower() or detect_server(self.base_url) or "generic"
        try:
            facts = server_facts(self.server)
        except KeyError as e:
            raise ConfigError(f"{self.name or 'VisionMagic.server'}: {e.args[0]}") from None
        for name, value in facts.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        formats = [str(f).lower().removeprefix("image/").replace("jpg", "jpeg") for f in self.formats or ()]
        if self.webp is not None:  # the shorthand wins over the server's row
            formats = [f for f in formats if f != "webp"] + (["webp"] if self.webp else [])
        bad = sorted(set(formats) - set(ALL_FORMATS))
        if bad:
            raise ConfigError(
                f"{self.name or self.base_url}: unknown image formats {bad}: use {list(ALL_FORMATS)}"
            )
        self.formats = [f for f in ALL_FORMATS if f in formats] or ["png", "jpeg"]
        self.webp = "webp" in self.formats
        if self.json_mode not in JSON_MODES:
            raise ConfigError(
                f"{self.name or self.base_url}: json_mode {self.json_mode!r}: use one of {JSON_MODES}"
            )
        if self.token_param not in TOKEN_PARAMS:
            raise ConfigError(
                f"{self.name or self.base_url}: token_param {self.token_param!r}: use one of {TOKEN_PARAMS}"
            )
        if self.max_images is None and urlparse(self.base_url).hostname == "api.openai.com":
            self.max_images = OPENAI_MAX_IMAGES
        if self.batch_max_requests is None:
            self.batch_max_requests = BATCH_MAX_REQUESTS
        if self.batch_max_bytes is None:
            self.batch_max_bytes = BATCH_MAX_BYTES
        self.api = str(self.api or "chat").lower()
        if self.api not in ("chat", "responses"):
            raise ConfigError(f"{self.name or self.base_url}: api {self.api!r}: use chat or responses")

    @property
    def mimes(self) -> tuple[str, ...]:
        """The MIME types of :attr:`formats` (``image/png``, ...)."""
        return tuple(f"image/{f}" for f in self.formats or ())


def endpoint_for(
    base_url: str, configured: dict[str, Any] | None = None, server: str = "", api: str = "chat"
) -> Endpoint:
    """The settings for ``base_url``: the configured entry with that ``base_url``, else the defaults; unset
    facts come from the row of ``server`` (``%config VisionMagic.server``; an entry's own ``server`` wins),
    else the row the base URL reliably names.

    Examples
    --------
    >>> endpoint_for("http://gpu-box:1234/v1", server="llamacpp").formats
    ['png', 'jpeg']
    >>> endpoint_for("http://localhost:1234/v1").json_mode
    'json_schema'
    """
    server = "" if server in ("", "auto") else server
    if server and server not in SERVER_PROFILES:
        raise ConfigError(
            f"VisionMagic.server {server!r} is not known: use auto or one of {', '.join(SERVER_PROFILES)}"
        )
    wanted = base_url.rstrip("/")
    known = {f.name for f in fields(Endpoint)}
    for name, spec in (configured or {}).items():
        if not isinstance(spec, dict):
            raise ConfigError(f"VisionMagic.endpoints[{name!r}] must be a dict of settings")
        if isinstance(spec.get("api_key_env"), str):  # every key variable named is redacted, used or not
            add_secret(variable=spec["api_key_env"])
        if str(spec.get("base_url", "")).rstrip("/") != wanted:
            continue
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(
                f"VisionMagic.endpoints[{name!r}] has unknown settings {sorted(unknown)}: "
                f"use {sorted(known - {'name'})}"
            )
        return Endpoint(**{"server": server, "api": api, **spec, "base_url": wanted, "name": name})
    return Endpoint(base_url=wanted, server=server, api=api)


def endpoint_in_force(cfg: Any) -> Endpoint:
    """The endpoint settings for the base URL in force (``VisionMagic.base_url``, ``OPENAI_BASE_URL``, else
    OpenAI's) under ``cfg``'s ``endpoints``, ``server`` and ``api`` settings."""
    return endpoint_for(resolve_base_url(cfg), cfg.endpoints, cfg.server, cfg.api)


def link_handler(endpoint: Endpoint, options: ImageOptions) -> Any:
    """A ``prepare_sources`` link handler that inlines URLs for ``endpoint``, or None when it fetches them."""
    if endpoint.fetch_urls:
        return None

    def inline(url: str, label: str) -> PreparedImage:
        data = download(url, label, endpoint.inline_max_bytes, endpoint.inline_timeout)
        image = prepare_bytes(data, label, options)
        image.notes.append("downloaded and inlined: this server cannot fetch URLs")
        return image

    return inline


def api_key(endpoint: Endpoint) -> str:
    """The key for ``endpoint``: from its ``api_key_env`` variable (default ``OPENAI_API_KEY``), added to what
    :func:`~vision_magic.errors.redact` removes; a placeholder for servers that need none; a one-line
    :class:`ConfigError` when OpenAI or a configured variable needs one and it is unset. The message never
    suggests setting a key in a cell, where it would be saved with the notebook."""
    key = os.environ.get(endpoint.api_key_env, "").strip()
    if key:
        add_secret(key, endpoint.api_key_env)
        return key
    if endpoint.api_key_env != "OPENAI_API_KEY":
        raise ConfigError(
            f"No API key for {endpoint.name or endpoint.base_url}: {WHERE_KEYS_GO.format(endpoint.api_key_env)}"
        )
    if is_openai(endpoint.base_url):
        raise ConfigError(
            f"No API key: {WHERE_KEYS_GO.format('OPENAI_API_KEY')}; or point OPENAI_BASE_URL at a local "
            "OpenAI-compatible server (e.g. Ollama: http://localhost:11434/v1 with VISION_MAGIC_MODEL=qwen2.5vl); "
            "--dry-run shows the request "
            "without sending"
        )
    return NO_KEY_PLACEHOLDER


def make_client(
    cfg: Any,
    endpoint: Endpoint | str,
    *,
    asynchronous: bool = False,
    max_retries: int | None = None,
    reuse: bool = False,
) -> Any:
    """An ``openai.OpenAI`` (or ``AsyncOpenAI``) client for ``endpoint`` with its key (imported here so
    importing vision_magic stays cheap); raises the one-line "No API key" before anything is sent.

    ``reuse``: the same synchronous client for the same base URL, key, timeout and retries, kept for the
    process (the questions of a notebook then share its connection pool: no new connection, TLS handshake or
    certificate loading per question). The caller must not close it. The one made by the warm-up at
    ``%load_ext`` (:mod:`vision_magic.engine.warm`) is such a client.
    """
    from . import warm

    warm.wait()  # the SDK is being imported on the warm-up thread: wait for it rather than import alongside
    import openai

    if not isinstance(endpoint, Endpoint):  # a base URL
        endpoint = endpoint_for(
            str(endpoint),
            getattr(cfg, "endpoints", None),
            getattr(cfg, "server", ""),
            getattr(cfg, "api", "chat"),
        )
    settings = {
        "api_key": api_key(endpoint),
        "base_url": endpoint.base_url,
        "timeout": cfg.timeout,
        "max_retries": cfg.max_retries if max_retries is None else max_retries,
    }
    if asynchronous:
        return openai.AsyncOpenAI(**settings)
    if not reuse:
        return openai.OpenAI(**settings)
    key = tuple(settings.values())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) >= _MAX_CLIENTS:  # the oldest goes (its connections close when it is collected)
                _clients.pop(next(iter(_clients)))
            client = _clients[key] = openai.OpenAI(**settings)
    return client


def warm_up_client(cfg: Any) -> Callable[[], None] | None:
    """For the warm-up thread (:mod:`vision_magic.engine.warm`): a function that makes the client a question
    to ``cfg``'s endpoint in force will use (``reuse=True``, no retries: ``send.Budget`` retries) and loads
    the SDK's resources for its API; None for a dry run or without a key (nothing would be sent)."""
    if getattr(cfg, "dry_run", False):
        return None
    try:
        endpoint = endpoint_in_force(cfg)
        api_key(endpoint)
    except ConfigError:
        return None

    def make() -> None:
        client = make_client(cfg, endpoint, max_retries=0, reuse=True)
        _ = client.responses if endpoint.api == "responses" else client.chat.completions  # loaded on use

    return make


_MAX_CLIENTS = 8  # reused clients kept (one per endpoint, key, timeout and retries in use)
_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()
