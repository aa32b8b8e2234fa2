"""What an image is, whatever file format carries it: a SHA-256 of its decoded pixels.

The same picture goes to one server as PNG and to another as lossless WEBP (servers differ in what they
take), so the bytes sent differ while the model sees the same pixels. :func:`pixel_digest` is equal for both;
the replay key (:mod:`vision_magic.engine.record`) uses it so that a recorded answer matches whichever server
asks again.

Examples
--------
>>> from PIL import Image
>>> import io
>>> img = Image.new("RGB", (8, 8), "red")
>>> png, webp = io.BytesIO(), io.BytesIO()
>>> img.save(png, "PNG"); img.save(webp, "WEBP", lossless=True)
>>> pixel_digest(png.getvalue()) == pixel_digest(webp.getvalue())
True
"""

from __future__ import annotations

import hashlib
import io
import threading

_MEMO_SIZE = 512  # digests of recently seen encodings (a re-asked question decodes nothing)
_memo: dict[bytes, str] = {}
_lock = threading.Lock()


def pixel_digest(data: bytes, sha256: str | None = None) -> str:
    """SHA-256 of the decoded pixels of the encoded image ``data`` (as RGB, or RGBA when it has transparency,
    with its size); of the bytes themselves when they are not an image Pillow decodes. ``sha256``: the hex
    SHA-256 of ``data`` when already known (it keys the memo)."""
    raw = bytes.fromhex(sha256) if sha256 else hashlib.sha256(data).digest()
    with _lock:
        known = _memo.get(raw)
    if known is not None:
        return known
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            rgba = img.convert("RGBA")  # palette, grey or RGB, PNG or WEBP: the same pixels, the same digest
        opaque = rgba.getextrema()[3] == (255, 255)
        pixels = rgba.convert("RGB") if opaque else rgba
        head = f"{pixels.mode} {pixels.size[0]}x{pixels.size[1]}\n".encode()
        digest = hashlib.sha256(head + pixels.tobytes()).hexdigest()
    except Exception:  # noqa: BLE001 - any undecodable payload is identified by its bytes
        digest = raw.hex()
    with _lock:
        if len(_memo) >= _MEMO_SIZE:
            _memo.pop(next(iter(_memo)))
        _memo[raw] = digest
    return digest
