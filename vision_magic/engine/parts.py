""":func:`content_parts` as the package exports it: the pure converter's, plus references to earlier outputs.

``vision_magic.content_parts("@3")`` needs the session's store of outputs, which the pure
:mod:`vision_magic.images` never sees: references are resolved here, then :mod:`vision_magic.images.parts`
does the rest.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..images import parts
from .outputs import is_reference


def content_parts(*sources: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Chat Completions content parts for ``sources``: a text part when ``prompt`` is given, then one
    ``image_url`` part per image, in order. Nothing is sent. Takes ``detail``, ``model``, ``prompt``,
    ``resize`` and ``profiles`` as :func:`vision_magic.images.parts.content_parts` does.

    Sources are those of :func:`vision_magic.images.parts.content_parts` plus references to earlier outputs:
    ``"@3"`` (every image cell ``[3]`` showed), ``"@3:2"`` (its second), ``"@-1"`` (the previous cell's).

    Examples
    --------
    >>> from PIL import Image
    >>> parts = content_parts(Image.new("RGB", (64, 64), "red"), prompt="What colour?", detail="low")
    >>> [p["type"] for p in parts]
    ['text', 'image_url']
    >>> content_parts("@99")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    vision_magic.errors.SourceErrors: @99: cell [99] has not run yet; ... (nothing was sent)
    """
    if any(is_reference(src) for src in sources):
        from .question import resolve_references

        sources = tuple(resolve_references(sources))
    return parts.content_parts(*sources, **kwargs)


# detail, model, prompt, resize, profiles: those of the pure converter (help and completion show them)
content_parts.__signature__ = inspect.signature(parts.content_parts)  # type: ignore[attr-defined]
