"""Byte-level image facts: the MIME type from the magic bytes, and lossless metadata stripping.

Pure standard library. Stripping works on the container (JPEG segments, PNG chunks) so an image that needs no
resize or rotation is sent without a decode/encode round trip, yet without EXIF, GPS, XMP or comments.

Examples
--------
>>> sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
'image/png'
>>> sniff_mime(b"GIF89a...")
'image/gif'
>>> sniff_mime(b"hello") is None
True
"""

from __future__ import annotations

import struct

# MIME types the OpenAI API accepts (non-animated GIF only).
API_MIMES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


def sniff_mime(data: bytes) -> str | None:
    """The image MIME type given by the first bytes of ``data``, or None when they name no image."""
    head = bytes(data[:64])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "image/heic"
    if head[:4] == b"\x00\x00\x01\x00":
        return "image/x-icon"
    if head[:4] == b"%PDF":
        return "application/pdf"
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in bytes(data[:1024]).lower()):
        return "image/svg+xml"
    if text.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    return None


# JPEG segments kept: JFIF (APP0), ICC profile (APP2 "ICC_PROFILE"), Adobe (APP14, colour transform).
def _keep_jpeg_segment(marker: int, payload: bytes) -> bool:
    if marker == 0xE0:
        return True
    if marker == 0xE2:
        return payload.startswith(b"ICC_PROFILE\x00")
    if marker == 0xEE:
        return payload.startswith(b"Adobe")
    # EXIF/XMP/IPTC (APP1..APP15) and comments go; structural segments stay.
    return not (0xE1 <= marker <= 0xEF or marker == 0xFE)


def strip_jpeg(data: bytes) -> bytes:
    """``data`` without EXIF, XMP, IPTC and comment segments (the compressed image is untouched).

    Returns the input unchanged when the segment structure is not what it expects.
    """
    if not data.startswith(b"\xff\xd8"):
        return data
    out = bytearray(b"\xff\xd8")
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return data
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan: the rest is image data
            out += data[i:]
            return bytes(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[i : i + 2]
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        end = i + 2 + length
        if length < 2 or end > n:
            return data
        if _keep_jpeg_segment(marker, data[i + 4 : end]):
            out += data[i:end]
        i = end
    return data


# PNG chunks dropped: text, EXIF, time stamps. Everything else (including unknown chunks) is kept as-is,
# so colour (gAMA, cHRM, sRGB, iCCP) and transparency (tRNS) survive.
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def strip_png(data: bytes) -> bytes:
    """``data`` without text, EXIF and time chunks. Returns the input unchanged if it is malformed."""
    sig = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(sig):
        return data
    out = bytearray(sig)
    i = len(sig)
    n = len(data)
    while i + 12 <= n:
        (length,) = struct.unpack(">I", data[i : i + 4])
        ctype = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > n:
            return data
        if ctype not in _PNG_DROP:
            out += data[i:end]
        i = end
        if ctype == b"IEND":
            return bytes(out)
    return data


def png_has_metadata(data: bytes) -> bool:
    """True when a PNG carries chunks that :func:`strip_png` would drop."""
    return len(strip_png(data)) != len(data)


def is_complete(data: bytes, mime: str) -> bool:
    """False when a PNG, JPEG, WEBP or GIF visibly ends early (no IEND chunk, end-of-image marker, trailer; or
    shorter than its RIFF header says).

    Examples
    --------
    >>> is_complete(b"\\xff\\xd8\\xff\\xe0", "image/jpeg")
    False
    """
    if mime == "image/png":
        return bytes(data[-12:-8]) == b"\x00\x00\x00\x00" and bytes(data[-8:-4]) == b"IEND"
    if mime == "image/jpeg":
        return bytes(data).rstrip(b"\x00")[-2:] == b"\xff\xd9"
    if mime == "image/webp":  # the RIFF header gives the length
        return len(data) >= 12 and len(data) >= 8 + struct.unpack("<I", bytes(data[4:8]))[0]
    if mime == "image/gif":  # the trailer byte
        return bytes(data).rstrip(b"\x00")[-1:] == b";"
    return True
