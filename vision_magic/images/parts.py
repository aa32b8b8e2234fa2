"""The pure converter's front door: sources in, Chat Completions content parts out (no IPython, no openai)."""

from __future__ import annotations

from typing import Any

from .encode import ImageOptions
from .profiles import profile_for
from .resolve import prepare_sources


def content_parts(
    *sources: Any,
    detail: str = "auto",
    model: str | None = None,
    prompt: str | None = None,
    resize: bool = True,
    profiles: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Chat Completions content parts for ``sources``: a text part when ``prompt`` is given, then one
    ``image_url`` part per image, in order. Pure: no IPython, no openai, no network.

    Local images become base64 ``data:`` URLs (MIME sniffed from the bytes), upright, metadata stripped,
    resized to what ``model`` really uses at ``detail``; ``http(s)`` URLs are passed on as links.

    Examples
    --------
    >>> from PIL import Image
    >>> parts = content_parts(Image.new("RGB", (64, 64), "red"), prompt="What colour?", detail="low")
    >>> [p["type"] for p in parts], parts[1]["image_url"]["detail"]
    (['text', 'image_url'], 'low')
    >>> parts[1]["image_url"]["url"][:22]
    'data:image/png;base64,'
    """
    profile = profile_for(model or "gpt-4o", profiles)
    options = ImageOptions(profile=profile, detail=detail, resize=resize)
    images = prepare_sources(sources, options)
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt is not None else []
    return parts + [img.part() for img in images]
