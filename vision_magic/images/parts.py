"""The pure converter's front door: sources in, Chat Completions content parts out (no IPython, no openai)."""

from __future__ import annotations

from typing import Any

from .encode import ImageOptions
from .profiles import profile_for
from .regions import max_tiles_of, parse_crop
from .resolve import prepare_sources


def content_parts(
    *sources: Any,
    detail: str = "auto",
    model: str | None = None,
    prompt: str | None = None,
    resize: bool = True,
    profiles: dict[str, Any] | None = None,
    crop: Any = None,
    zoom: bool | int | None = None,
) -> list[dict[str, Any]]:
    """Chat Completions content parts for ``sources``: a text part when ``prompt`` is given, then one
    ``image_url`` part per image, in order. Pure: no IPython, no openai, no network.

    Local images become base64 ``data:`` URLs (MIME sniffed from the bytes), upright, metadata stripped,
    resized to what ``model`` really uses at ``detail``; ``http(s)`` URLs are passed on as links. ``crop``
    (``"x0,y0,x1,y1"``, pixels or fractions) cuts every image before resizing; ``zoom`` (True or the most
    tiles) adds full-resolution tiles, each after a text part saying where it is.

    Examples
    --------
    >>> from PIL import Image
    >>> parts = content_parts(Image.new("RGB", (64, 64), "red"), prompt="What colour?", detail="low")
    >>> [p["type"] for p in parts], parts[1]["image_url"]["detail"]
    (['text', 'image_url'], 'low')
    >>> parts[1]["image_url"]["url"][:22]
    'data:image/png;base64,'
    >>> [p.get("text", "image")[:14] for p in content_parts(Image.new("RGB", (3000, 2000)), zoom=2)]
    ['overview of a ', 'image', 'tile 1 of 2, r', 'image', 'tile 2 of 2, r', 'image']
    """
    profile = profile_for(model or "gpt-4o", profiles)
    options = ImageOptions(
        profile=profile,
        detail=detail,
        resize=resize,
        crop=None if crop is None else parse_crop(crop),
        zoom=max_tiles_of(zoom),
    )
    images = prepare_sources(sources, options)
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt is not None else []
    return parts + [part for img in images for part in img.parts()]
