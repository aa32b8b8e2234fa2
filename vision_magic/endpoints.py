"""Per-endpoint settings, and inlining image URLs for servers that cannot fetch them.

``%config VisionMagic.endpoints`` maps a name to settings of one OpenAI-compatible server; the entry whose
``base_url`` matches the endpoint in force applies. Without an entry, only api.openai.com (and Azure OpenAI)
are trusted to fetch ``http(s)`` image URLs; for every other server, vision_magic downloads the image itself
(size cap, timeout, content-type check) and sends it as base64, the one format every server takes.

Examples
--------
>>> %config VisionMagic.endpoints = {"ollama": {"base_url": "http://localhost:11434/v1", "detail": False}}  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from .convert import ImageOptions, PreparedImage, prepare_bytes
from .errors import ConfigError, SourceError

DEFAULT_INLINE_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_INLINE_TIMEOUT = 15.0


@dataclass
class Endpoint:
    """What vision_magic knows about one server.

    Attributes
    ----------
    base_url : the server's OpenAI-compatible base URL.
    api_key_env : the environment variable holding its key (default ``OPENAI_API_KEY``).
    fetch_urls : whether the server downloads ``http(s)`` image URLs itself (default: only OpenAI/Azure).
    detail : whether it honours the image ``detail`` field (False: the field is left out).
    models : its vision models (informational; listed in ``%config``).
    inline_max_bytes, inline_timeout : limits for downloading images that are inlined as base64.
    webp : whether it takes WEBP: graphics then go as lossless WEBP when smaller than PNG (default: only
        OpenAI/Azure; some servers, e.g. LM Studio, reject WEBP, and PNG works everywhere).

    Examples
    --------
    >>> endpoint_for("http://localhost:11434/v1").fetch_urls
    False
    >>> endpoint_for("https://api.openai.com/v1").fetch_urls
    True
    """

    base_url: str
    name: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    fetch_urls: bool | None = None
    detail: bool = True
    models: list[str] = field(default_factory=list)
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    inline_timeout: float = DEFAULT_INLINE_TIMEOUT
    webp: bool | None = None

    def __post_init__(self) -> None:
        from .client import is_openai

        if self.fetch_urls is None:
            self.fetch_urls = is_openai(self.base_url)
        if self.webp is None:
            self.webp = is_openai(self.base_url)


def endpoint_for(base_url: str, configured: dict[str, Any] | None = None) -> Endpoint:
    """The settings for ``base_url``: the configured entry with that ``base_url``, else the defaults."""
    wanted = base_url.rstrip("/")
    known = {f.name for f in fields(Endpoint)}
    for name, spec in (configured or {}).items():
        if not isinstance(spec, dict):
            raise ConfigError(f"VisionMagic.endpoints[{name!r}] must be a dict of settings")
        if str(spec.get("base_url", "")).rstrip("/") != wanted:
            continue
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(
                f"VisionMagic.endpoints[{name!r}] has unknown settings {sorted(unknown)}: "
                f"use {sorted(known - {'name'})}"
            )
        return Endpoint(**{**spec, "base_url": wanted, "name": name})
    return Endpoint(base_url=wanted)


def download(url: str, label: str, max_bytes: int, timeout: float) -> bytes:
    """The bytes at ``url``, refusing non-images, bodies over ``max_bytes`` and slow servers (one line each)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "vision-magic", "Accept": "image/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
                raise SourceError(label, f"the URL returned {ctype}, not an image")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise SourceError(label, f"the image is {int(length) / 1e6:.1f} MB, over the inline limit")
            data = resp.read(max_bytes + 1)
    except SourceError:
        raise
    except urllib.error.HTTPError as e:
        raise SourceError(label, f"downloading the image failed: HTTP {e.code} {e.reason}") from None
    except TimeoutError:
        raise SourceError(label, f"downloading the image took longer than {timeout:g} s") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            raise SourceError(label, f"downloading the image took longer than {timeout:g} s") from None
        raise SourceError(label, f"downloading the image failed ({reason})") from None
    if len(data) > max_bytes:
        raise SourceError(
            label,
            f"the image is over the inline limit of {max_bytes / 1e6:.1f} MB "
            "(raise inline_max_bytes in VisionMagic.endpoints)",
        )
    return data


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


def strip_detail(body: dict[str, Any]) -> None:
    """Remove ``detail`` from every image part in place (for servers that reject or ignore it)."""
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("image_url"), dict):
                    part["image_url"].pop("detail", None)


def api_key(endpoint: Endpoint) -> str | None:
    """The key from the endpoint's variable, or None to let the default lookup (OPENAI_API_KEY) decide."""
    if endpoint.api_key_env == "OPENAI_API_KEY":
        return None
    key = os.environ.get(endpoint.api_key_env, "").strip()
    if not key:
        raise ConfigError(
            f"No API key for {endpoint.name or endpoint.base_url}: set {endpoint.api_key_env} "
            f"(e.g. %env {endpoint.api_key_env}=...)"
        )
    return key


def make_client(
    cfg: Any, endpoint: Endpoint | str, *, asynchronous: bool = False, max_retries: int | None = None
) -> Any:
    """An ``openai.OpenAI`` (or ``AsyncOpenAI``) client for ``endpoint`` with its key."""
    import openai

    from .client import api_key_for

    if not isinstance(endpoint, Endpoint):  # a base URL
        endpoint = endpoint_for(str(endpoint), getattr(cfg, "endpoints", None))
    key = api_key(endpoint) or api_key_for(endpoint.base_url)
    cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return cls(
        api_key=key,
        base_url=endpoint.base_url,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries if max_retries is None else max_retries,
    )
