"""Small previews of prepared images (dry runs, the panel's source list); never sent to a model."""

from __future__ import annotations

import io


def thumbnail(data: bytes | None, side: int = 160, fmt: str = "JPEG") -> bytes | None:
    """Encoded image bytes shrunk to fit ``side`` x ``side``, as ``fmt`` (JPEG or PNG); None when ``data``
    is empty or not readable (a preview must never break what it previews).

    Examples
    --------
    >>> import io; from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (640, 320), "red").save(buf, "PNG")
    >>> Image.open(io.BytesIO(thumbnail(buf.getvalue(), 96, "PNG"))).size
    (96, 48)
    >>> thumbnail(b"not an image") is None
    True
    """
    if not data:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (side, side))
            im.thumbnail((side, side))
            out = io.BytesIO()
            im.convert("RGB").save(out, fmt, **({"quality": 80} if fmt == "JPEG" else {}))
            return out.getvalue()
    except Exception:
        return None
