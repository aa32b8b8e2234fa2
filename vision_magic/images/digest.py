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
from typing import Any

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
            digest = _digest_of(img)
    except Exception:  # noqa: BLE001 - any undecodable payload is identified by its bytes
        digest = raw.hex()
    _keep(raw, digest)
    return digest


def remember_pixels(data: bytes, img: Any) -> str:
    """Note the pixel digest of ``data``, a lossless encoding (PNG, lossless WEBP) of the PIL image ``img``,
    from ``img`` itself, so that :func:`pixel_digest` of ``data`` does not decode it again (hashing the
    pixels in memory costs a tenth of a decode). Returns the digest.

    Examples
    --------
    >>> from PIL import Image
    >>> img = Image.new("L", (30, 20), 90)
    >>> buf = io.BytesIO(); img.save(buf, "PNG")
    >>> seeded = remember_pixels(buf.getvalue(), img)
    >>> _memo.clear(); seeded == pixel_digest(buf.getvalue())
    True
    """
    digest = _digest_of(img)
    _keep(hashlib.sha256(data).digest(), digest)
    return digest


def _digest_of(img: Any) -> str:
    """The digest of an open PIL image's pixels: RGB, or RGBA when any pixel is not opaque."""
    if img.mode in ("RGB", "L"):  # no alpha: RGB as it is (grey spread to RGB, as RGBA -> RGB would)
        pixels = img if img.mode == "RGB" else img.convert("RGB")
    else:  # palette, grey+alpha, RGBA, ...: PNG or WEBP, the same pixels give the same digest
        rgba = img.convert("RGBA")
        opaque = rgba.getextrema()[3] == (255, 255)
        pixels = rgba.convert("RGB") if opaque else rgba
    digest = hashlib.sha256(f"{pixels.mode} {pixels.size[0]}x{pixels.size[1]}\n".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def _keep(raw: bytes, digest: str) -> None:
    with _lock:
        if len(_memo) >= _MEMO_SIZE:
            _memo.pop(next(iter(_memo)))
        _memo[raw] = digest
